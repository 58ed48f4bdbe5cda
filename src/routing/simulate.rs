//! A policy simulator: recorded arrivals and handling times replayed through a candidate
//! routing policy with the decision function the server runs (`routing::decide`, `queue_score`,
//! `Policy::needs`, `Policy::rules`), on a simulated millisecond clock. What it reports for
//! each policy (`Report`) lets a team compare policies on last week's traffic before switching.
//!
//! The model: agents are on duty in their shifts, online and connected; each chat enters its
//! department's queue when it arrives and is held by its agent for its recorded handling time;
//! a visitor who left the queue in the recording leaves it after the same wait here if still
//! waiting; `max_wait_secs` moves a waiting chat along its overflow chain, to the offline form
//! at the end, as the server does. Offers and first-reply timeouts are not modelled (a chat is
//! taken at once), nor the visitor's last agent (the recording does not say who it would be).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};

use super::policy::{self, Policy};
use super::{Candidate, Needs, Snapshot, Waiting};
use crate::directory::model::SiteConfig;
use crate::model::{AgentId, AgentStatus, ConvId, DeptId, Millis, VisitorProfile};

/// What is replayed: who was on duty, and who came.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Trace {
    pub agents: Vec<Shift>,
    pub arrivals: Vec<Arrival>,
}

/// An agent on duty from `from` to `until` (ms since the epoch).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Shift {
    pub id: AgentId,
    pub departments: Vec<DeptId>,
    pub max_concurrent: u32,
    #[serde(default)]
    pub skills: Vec<String>,
    pub from: Millis,
    pub until: Millis,
}

/// One chat: when it entered the queue, where, and how long an agent held it.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Arrival {
    pub id: String,
    pub at: Millis,
    pub department: DeptId,
    pub handling_ms: Millis,
    /// The visitor left the queue after this long unserved (in the recording).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandon_after_ms: Option<Millis>,
    /// What page rules and the language policy read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    #[serde(default)]
    pub verified: bool,
    /// The attributes the host site signed for the visitor (`tier`), which rules may match.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_locale")]
    pub locale: String,
    /// The wait it had in the recording, to compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_wait_ms: Option<Millis>,
}

fn default_locale() -> String {
    "en".into()
}

/// What happened to one chat in the simulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Taken by an agent after this wait.
    Served { wait_ms: Millis, agent: AgentId },
    /// Left the queue unserved.
    Abandoned,
    /// Reached the offline form (nobody on duty, or the end of the overflow chain).
    Offline,
}

/// A policy's results on a trace.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub policy: String,
    pub chats: usize,
    pub served: usize,
    pub abandoned: usize,
    /// Chats that reached the offline form.
    pub offline: usize,
    pub wait_p50_secs: f64,
    pub wait_p90_secs: f64,
    /// Served chats that waited longer than their department's `sla_wait_secs`.
    pub sla_breaches: usize,
    /// Jain's index of chats per agent on duty: 1 when every agent took as many, 1/n when one
    /// took them all.
    pub fairness: f64,
    /// Against the recording, when it has waits: the median and largest difference per chat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_error_p50_ms: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_error_max_ms: Option<Millis>,
}

/// How often time-driven rules (widening, the age boost, max wait) are looked at between
/// events: the server's sweep.
const TICK_MS: Millis = 1_000;

struct Chat {
    arrival: usize,
    dept: DeptId,
    /// When it entered the current queue, and its place there.
    since: Millis,
    score: i64,
    needs: Needs,
}

struct Agent {
    shift: Shift,
    load: u32,
    idle_since: Millis,
    handled: u32,
}

/// Replays `trace` under `site`'s routing (its policy and departments): each arrival's fate,
/// in the trace's order.
pub fn run(site: &SiteConfig, trace: &Trace) -> Vec<Fate> {
    let mut order: Vec<usize> = (0..trace.arrivals.len()).collect();
    order.sort_by_key(|&i| (trace.arrivals[i].at, i));
    let mut fates: Vec<Option<Fate>> = vec![None; trace.arrivals.len()];
    let mut agents: Vec<Agent> = trace
        .agents
        .iter()
        .map(|s| Agent {
            shift: s.clone(),
            load: 0,
            idle_since: s.from,
            handled: 0,
        })
        .collect();
    let mut queues: BTreeMap<DeptId, Vec<Chat>> = BTreeMap::new();
    // (when, agent index) a chat ends.
    let mut ends: BinaryHeap<Reverse<(Millis, usize)>> = BinaryHeap::new();
    let mut arrivals = 0i64;
    let mut next = 0;
    let mut now = order.first().map_or(0, |&i| trace.arrivals[i].at);
    // Past the last arrival and shift, a day more: whoever still waits is not served.
    let horizon = order
        .last()
        .map(|&i| trace.arrivals[i].at)
        .into_iter()
        .chain(trace.agents.iter().map(|s| s.until))
        .max()
        .unwrap_or(0)
        .saturating_add(86_400_000);
    while now <= horizon {
        while let Some(&Reverse((t, a))) = ends.peek() {
            if t > now {
                break;
            }
            ends.pop();
            agents[a].load = agents[a].load.saturating_sub(1);
        }
        while next < order.len() && trace.arrivals[order[next]].at <= now {
            let i = order[next];
            next += 1;
            let a = &trace.arrivals[i];
            if !staffed(&agents, &a.department, now) {
                fates[i] = Some(Fate::Offline);
                continue;
            }
            let mut profile = VisitorProfile::with_id(crate::model::VisitorId(a.id.clone()));
            profile.page_url = a.page_url.clone();
            profile.verified = a.verified;
            profile.attributes = a.attributes.clone();
            profile.locale = a.locale.clone();
            let (priority, needs) = Policy::resolve(site, &a.department).needs(&profile, None);
            arrivals = super::next_arrival(now, arrivals);
            let unit = policy::rules(site, &a.department).priority_unit;
            queues.entry(a.department.clone()).or_default().push(Chat {
                arrival: i,
                dept: a.department.clone(),
                since: now,
                score: super::queue_score(priority, arrivals, unit),
                needs,
            });
        }
        expire(site, trace, &agents, &mut queues, &mut fates, now);
        for (dept, queue) in queues.iter_mut() {
            assign(
                site,
                trace,
                dept,
                queue,
                &mut agents,
                &mut ends,
                &mut fates,
                now,
            );
        }
        // The next moment anything can change.
        let waiting = queues.values().any(|q| !q.is_empty());
        let candidates = [
            order.get(next).map(|&i| trace.arrivals[i].at),
            ends.peek().map(|Reverse((t, _))| *t),
            waiting.then_some(now + TICK_MS),
            waiting.then(|| next_abandon(trace, &queues, now)).flatten(),
            agents
                .iter()
                .map(|a| a.shift.from)
                .filter(|t| *t > now)
                .min(),
        ];
        match candidates.into_iter().flatten().min() {
            Some(t) => now = t.max(now + 1),
            None => break,
        }
    }
    fates
        .into_iter()
        .map(|f| f.unwrap_or(Fate::Abandoned))
        .collect()
}

/// Whether anyone of the department is on duty now.
fn staffed(agents: &[Agent], dept: &DeptId, now: Millis) -> bool {
    agents
        .iter()
        .any(|a| on_duty(&a.shift, now) && a.shift.departments.contains(dept))
}

fn on_duty(s: &Shift, now: Millis) -> bool {
    s.from <= now && now < s.until
}

fn next_abandon(
    trace: &Trace,
    queues: &BTreeMap<DeptId, Vec<Chat>>,
    now: Millis,
) -> Option<Millis> {
    queues
        .values()
        .flatten()
        .filter_map(|c| {
            let a = &trace.arrivals[c.arrival];
            a.abandon_after_ms.map(|w| a.at + w)
        })
        .filter(|t| *t > now)
        .min()
}

/// Visitors who left, and chats past their department's longest wait (moved along the
/// overflow chain, or to the offline form).
fn expire(
    site: &SiteConfig,
    trace: &Trace,
    agents: &[Agent],
    queues: &mut BTreeMap<DeptId, Vec<Chat>>,
    fates: &mut [Option<Fate>],
    now: Millis,
) {
    let mut moved: Vec<(DeptId, Chat)> = Vec::new();
    for (dept, queue) in queues.iter_mut() {
        let max_wait = Policy::resolve(site, dept).max_wait_ms();
        let mut kept = Vec::with_capacity(queue.len());
        for c in queue.drain(..) {
            let a = &trace.arrivals[c.arrival];
            if a.abandon_after_ms.is_some_and(|w| now >= a.at + w) {
                fates[c.arrival] = Some(Fate::Abandoned);
            } else if max_wait.is_some_and(|m| now - c.since >= m) {
                match overflow_target(site, agents, dept, now) {
                    Some(to) => moved.push((to, c)),
                    None => fates[c.arrival] = Some(Fate::Offline),
                }
            } else {
                kept.push(c);
            }
        }
        *queue = kept;
    }
    for (to, mut c) in moved {
        // The head of the new queue: it has waited longest.
        let queue = queues.entry(to.clone()).or_default();
        c.score = queue
            .iter()
            .map(|x| x.score)
            .min()
            .unwrap_or(c.score)
            .min(c.score)
            - 1;
        c.since = now;
        c.dept = to;
        queue.push(c);
    }
}

/// The first department along `from`'s overflow chain with someone on duty (the server's
/// `overflow`, opening hours aside: a recording's chats arrived when they did).
fn overflow_target(
    site: &SiteConfig,
    agents: &[Agent],
    from: &DeptId,
    now: Millis,
) -> Option<DeptId> {
    let mut next = Policy::resolve(site, from).overflow_to(from).cloned();
    let mut hops = 0;
    while let Some(to) = next {
        if staffed(agents, &to, now) {
            return Some(to);
        }
        hops += 1;
        if hops >= site.departments.len() {
            return None;
        }
        next = Policy::resolve(site, &to).overflow_to(&to).cloned();
    }
    None
}

/// One department's decisions now, applied.
#[allow(clippy::too_many_arguments)]
fn assign(
    site: &SiteConfig,
    trace: &Trace,
    dept: &DeptId,
    queue: &mut Vec<Chat>,
    agents: &mut [Agent],
    ends: &mut BinaryHeap<Reverse<(Millis, usize)>>,
    fates: &mut [Option<Fate>],
    now: Millis,
) {
    if queue.is_empty() {
        return;
    }
    queue.sort_by_key(|c| (c.score, c.arrival));
    let snapshot = Snapshot {
        now,
        grace_ms: 0,
        rules: policy::rules(site, dept),
        queue: queue
            .iter()
            .enumerate()
            .map(|(i, c)| Waiting {
                conv: ConvId(i.to_string()),
                since: c.since,
                needs: c.needs.clone(),
            })
            .collect(),
        agents: agents
            .iter()
            .filter(|a| on_duty(&a.shift, now) && a.shift.departments.contains(dept))
            .map(|a| Candidate {
                id: a.shift.id.clone(),
                status: AgentStatus::Online,
                load: a.load,
                max: a.shift.max_concurrent,
                idle_since: a.idle_since,
                present_until: a.shift.until,
                skills: a.shift.skills.clone(),
            })
            .collect(),
    };
    let decided = super::decide(&snapshot, queue.len());
    if decided.is_empty() {
        return;
    }
    let index: HashMap<&AgentId, usize> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (&a.shift.id, i))
        .collect();
    let mut taken = vec![false; queue.len()];
    let mut picks = Vec::new();
    for d in &decided {
        let (Ok(q), Some(&a)) = (d.conv.0.parse::<usize>(), index.get(&d.agent)) else {
            continue;
        };
        picks.push((q, a));
    }
    for (q, a) in picks {
        taken[q] = true;
        let c = &queue[q];
        let arrival = &trace.arrivals[c.arrival];
        let agent = &mut agents[a];
        agent.load += 1;
        agent.idle_since = now;
        agent.handled += 1;
        ends.push(Reverse((now + arrival.handling_ms.max(0), a)));
        fates[c.arrival] = Some(Fate::Served {
            wait_ms: now - arrival.at,
            agent: agent.shift.id.clone(),
        });
    }
    let mut i = 0;
    queue.retain(|_| {
        let keep = !taken[i];
        i += 1;
        keep
    });
}

/// Sums up fates under a policy named `name`.
pub fn report(name: &str, site: &SiteConfig, trace: &Trace, fates: &[Fate]) -> Report {
    let mut waits: Vec<Millis> = Vec::new();
    let mut per_agent: BTreeMap<&AgentId, u32> = trace.agents.iter().map(|s| (&s.id, 0)).collect();
    let (mut abandoned, mut offline, mut breaches) = (0, 0, 0);
    let mut errors: Vec<Millis> = Vec::new();
    for (a, fate) in trace.arrivals.iter().zip(fates) {
        match fate {
            Fate::Served { wait_ms, agent } => {
                waits.push(*wait_ms);
                *per_agent.entry(agent).or_default() += 1;
                if let Some((target, _)) = Policy::resolve(site, &a.department).sla_wait()
                    && *wait_ms > target
                {
                    breaches += 1;
                }
                if let Some(r) = a.recorded_wait_ms {
                    errors.push((wait_ms - r).abs());
                }
            }
            Fate::Abandoned => abandoned += 1,
            Fate::Offline => offline += 1,
        }
    }
    waits.sort_unstable();
    errors.sort_unstable();
    let counts: Vec<f64> = per_agent.values().map(|n| f64::from(*n)).collect();
    let (sum, squares) = counts
        .iter()
        .fold((0.0, 0.0), |(s, q), x| (s + x, q + x * x));
    let fairness = if squares > 0.0 {
        sum * sum / (counts.len() as f64 * squares)
    } else {
        1.0
    };
    Report {
        policy: name.to_owned(),
        chats: trace.arrivals.len(),
        served: waits.len(),
        abandoned,
        offline,
        wait_p50_secs: percentile(&waits, 0.5) as f64 / 1000.0,
        wait_p90_secs: percentile(&waits, 0.9) as f64 / 1000.0,
        sla_breaches: breaches,
        fairness,
        replay_error_p50_ms: (!errors.is_empty()).then(|| percentile(&errors, 0.5)),
        replay_error_max_ms: errors.last().copied(),
    }
}

/// The nearest-rank percentile of sorted values (0 when there are none).
fn percentile(sorted: &[Millis], p: f64) -> Millis {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(routing: &str) -> SiteConfig {
        let text = format!(
            r#"
            listen = "127.0.0.1:0"
            secret = "test-secret-0123456789abcdef"
            [[sites]]
            id = "s"
            allowed_origins = ["http://shop.test"]
            departments = [{{ id = "support" }}, {{ id = "sales" }}]
            [sites.routing]
            {routing}
            "#
        );
        let config = crate::config::Config::from_toml(&text).expect("a configuration");
        config.sites[0].clone()
    }

    fn shift(id: &str, max: u32) -> Shift {
        Shift {
            id: AgentId(id.into()),
            departments: vec![DeptId("support".into())],
            max_concurrent: max,
            skills: Vec::new(),
            from: 0,
            until: 1_000_000,
        }
    }

    fn arrival(id: &str, at: Millis, handling_ms: Millis) -> Arrival {
        Arrival {
            id: id.into(),
            at,
            department: DeptId("support".into()),
            handling_ms,
            abandon_after_ms: None,
            page_url: None,
            verified: false,
            attributes: Default::default(),
            locale: "en".into(),
            recorded_wait_ms: None,
        }
    }

    fn waits(fates: &[Fate]) -> Vec<Option<Millis>> {
        fates
            .iter()
            .map(|f| match f {
                Fate::Served { wait_ms, .. } => Some(*wait_ms),
                _ => None,
            })
            .collect()
    }

    /// Two slots: the third chat waits for the first to end, the fourth for the second.
    #[test]
    fn chats_wait_for_the_first_free_slot() {
        let trace = Trace {
            agents: vec![shift("a", 1), shift("b", 1)],
            arrivals: vec![
                arrival("1", 0, 5_000),
                arrival("2", 0, 10_000),
                arrival("3", 1_000, 7_000),
                arrival("4", 6_000, 5_000),
            ],
        };
        let fates = run(&site(""), &trace);
        assert_eq!(waits(&fates), [Some(0), Some(0), Some(4_000), Some(4_000)]);
        let r = report("now", &site(""), &trace, &fates);
        assert_eq!((r.served, r.offline, r.wait_p50_secs), (4, 0, 0.0));
        assert!((r.fairness - 1.0).abs() < 1e-9, "{r:?}");
    }

    /// A longest wait with nowhere to overflow sends the chat to the offline form; a visitor
    /// who left in the recording leaves here too; nobody on duty is the offline form at once.
    #[test]
    fn max_wait_abandonment_and_nobody_on_duty() {
        let mut trace = Trace {
            agents: vec![shift("a", 1)],
            arrivals: vec![
                arrival("1", 0, 100_000),
                arrival("2", 1_000, 1_000),
                arrival("3", 2_000, 1_000),
                arrival("4", 2_000_000, 1_000),
            ],
        };
        trace.arrivals[2].abandon_after_ms = Some(5_000);
        let fates = run(&site("max_wait_secs = 30"), &trace);
        assert_eq!(fates[1..], [Fate::Offline, Fate::Abandoned, Fate::Offline]);
        let r = report("wait", &site("max_wait_secs = 30"), &trace, &fates);
        assert_eq!((r.served, r.offline, r.abandoned), (1, 2, 1));
    }
}
