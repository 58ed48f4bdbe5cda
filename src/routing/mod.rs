//! Routing decisions, written once: which waiting conversation of a department goes next, and
//! to which agent, as a pure function (`decide`) of a snapshot of the department. The state
//! backends only take the snapshot and apply what `decide` returns atomically: the embedded
//! one under the site's lock, Redis with a compare-and-set script that first checks that every
//! agent the decision assigns to still has the load, limit and status it read (on a conflict
//! the backend reads a new snapshot and decides again). `policy` holds what teams configure
//! (priorities with an age boost, skills and languages that widen, the visitor's last agent)
//! and turns it into what a conversation needs (`Needs`) and what a decision follows (`Rules`).
//!
//! The queue's order is written here too (`queue_score`): priority first, where each level is
//! worth `age_boost` of waiting, then arrival. The backends store the score, so positions are
//! one rank lookup, and they follow the serving order.

pub mod estimate;
pub mod policy;
pub mod simulate;

use serde::{Deserialize, Serialize};

use crate::model::{AgentId, AgentStatus, ConvId, Millis, idle_step};

/// What a conversation asks of the agent who takes it, fixed when it is opened: skills the
/// agent must have, skills preferred until the department's widening time, and the visitor's
/// previous agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Needs {
    /// The agent must have all of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// The agent must have these too, until the chat has waited `widen_after_secs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optional: Vec<String>,
    /// The visitor's previous agent: preferred while present with room, waited for a while
    /// when present but full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub prefer: Option<AgentId>,
    /// Agents who already had this chat and let it go (declined, or let an offer or the first
    /// reply time out): it never goes to them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub tried: Vec<AgentId>,
}

impl Needs {
    pub fn is_empty(&self) -> bool {
        self.skills.is_empty()
            && self.optional.is_empty()
            && self.prefer.is_none()
            && self.tried.is_empty()
    }

    /// Whether a decision must read every agent of the department, not only the best few
    /// (`reach`): the best may lack a skill or have had the chat already.
    pub fn narrows(&self) -> bool {
        !self.skills.is_empty() || !self.optional.is_empty() || !self.tried.is_empty()
    }
}

/// The part of a department's policy the backends follow: the queue's order, and what a
/// decision reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// `queue_score`'s unit: what a priority level is worth in waiting (`priority_unit`).
    pub priority_unit: i64,
    /// After this long in the queue (ms), optional skills are no longer required.
    pub widen_after_ms: Option<Millis>,
    /// How long a chat waits for the visitor's previous agent while that agent is present
    /// but full (ms); 0: never waits.
    pub sticky_wait_ms: Millis,
    /// Assignments are offers the agent accepts or declines (`offer` mode).
    pub offer: bool,
}

impl Default for Rules {
    /// Strict priority, no widening, never waiting for a previous agent.
    fn default() -> Self {
        Self {
            priority_unit: priority_unit(None),
            widen_after_ms: None,
            sticky_wait_ms: 0,
            offer: false,
        }
    }
}

/// A conversation waiting in the queue, as the decision sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub conv: ConvId,
    /// When it first entered a queue: the clock of widening and of waiting for an agent.
    pub since: Millis,
    pub needs: Needs,
}

/// An agent as the decision sees it: the fields it reads, which a compare-and-set checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: AgentId,
    pub status: AgentStatus,
    pub load: u32,
    pub max: u32,
    pub idle_since: Millis,
    /// Until when some node vouches for a connection.
    pub present_until: Millis,
    pub skills: Vec<String>,
}

impl Candidate {
    fn present(&self, now: Millis, grace_ms: Millis) -> bool {
        self.present_until.saturating_add(grace_ms) > now
    }

    /// Online and connected (or within the grace): could take a chat if it had room.
    fn reachable(&self, now: Millis, grace_ms: Millis) -> bool {
        self.status == AgentStatus::Online && self.present(now, grace_ms)
    }

    /// Lowest load ratio first (compared exactly), then idle longest (to the step the Redis
    /// index keeps, `IDLE_STEP_MS`), then id.
    fn before(&self, other: &Self) -> bool {
        let mine = u64::from(self.load) * u64::from(other.max);
        let theirs = u64::from(other.load) * u64::from(self.max);
        (mine, idle_step(self.idle_since), &self.id)
            < (theirs, idle_step(other.idle_since), &other.id)
    }
}

/// A department as one decision reads it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub now: Millis,
    pub grace_ms: Millis,
    pub rules: Rules,
    /// The head of the queue, in serving order (a bounded window of it).
    pub queue: Vec<Waiting>,
    /// The department's agents who may take a chat, and any preferred agent of a waiting
    /// conversation (even full: the decision may wait for them).
    pub agents: Vec<Candidate>,
}

/// One conversation to one agent, with what the decision read of that agent: the backend
/// applies it only if the agent still has that load, limit and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub conv: ConvId,
    pub agent: AgentId,
    /// The agent's load and limit as read (before any assignment of this decision).
    pub read_load: u32,
    pub read_max: u32,
}

/// How much of the queue's head a snapshot for `batch` assignments reads: enough that chats
/// skipped for their skills or their previous agent do not starve the ones behind them.
pub fn window(batch: usize) -> usize {
    batch.saturating_mul(4).max(64)
}

/// Whether another batch after this one could assign more: this one assigned something, and
/// either was full or read only the head of a longer queue (`read` entries of the queue, up to
/// `window(batch)`). A batch that assigned nothing, or weighed the whole queue against every
/// agent who could take a chat, leaves nothing for another until something changes (and every
/// change that frees or adds capacity drains again).
pub fn more_after(assigned: usize, batch: usize, read: usize) -> bool {
    assigned > 0 && (assigned >= batch || read >= window(batch))
}

/// How far a snapshot reads a department's agents, best placed first: only as far as a
/// decision can use. `decide` gives each chat the best agent with room that has the skills it
/// requires, and an agent's place only worsens as it is given chats; so a chat with `m`
/// assignments before it, which has already tried `t` agents, only ever goes to one of the
/// `m + 1 + t` best agents with its skills. The waiting chats are grouped by the skills they
/// require now (optional ones until widened), and the reading stops once every group has that
/// many: no margin, as both backends' indexes order agents exactly as `decide` does (the load
/// ratio, then idle time in `IDLE_STEP_MS` steps, then id). Agents with the skills of no group
/// are of no use to the decision. `snapshot.lua` reads Redis's index the same way.
#[derive(Debug)]
pub struct Reach {
    groups: Vec<Group>,
    /// Groups that still want more agents.
    wanting: usize,
}

/// Waiting chats that require the same skills, and how many agents with them the reading
/// needs.
#[derive(Debug)]
struct Group {
    skills: Vec<String>,
    need: usize,
    have: usize,
}

impl Reach {
    /// The reading a decision of up to `batch` assignments over `queue` (in serving order)
    /// needs.
    pub fn new(queue: &[Waiting], batch: usize, rules: &Rules, now: Millis) -> Self {
        let mut groups: Vec<Group> = Vec::new();
        for (j, w) in queue.iter().enumerate() {
            let widened = rules
                .widen_after_ms
                .is_some_and(|t| now.saturating_sub(w.since) >= t);
            let mut skills = w.needs.skills.clone();
            if !widened {
                skills.extend(w.needs.optional.iter().cloned());
            }
            skills.sort();
            skills.dedup();
            let need = j.min(batch.saturating_sub(1)) + 1 + w.needs.tried.len();
            match groups.iter_mut().find(|g| g.skills == skills) {
                Some(g) => g.need = g.need.max(need),
                None => groups.push(Group {
                    skills,
                    need,
                    have: 0,
                }),
            }
        }
        let wanting = groups.len();
        Self { groups, wanting }
    }

    /// Counts the next agent read (best placed first): whether the decision can use it.
    pub fn read(&mut self, skills: &[String]) -> bool {
        let mut useful = false;
        for g in &mut self.groups {
            if g.skills.iter().all(|s| skills.contains(s)) {
                useful = true;
                g.have += 1;
                if g.have == g.need {
                    self.wanting -= 1;
                }
            }
        }
        useful
    }

    /// Every group has as many agents as the decision can use.
    pub fn done(&self) -> bool {
        self.wanting == 0
    }
}

/// Up to `batch` assignments, in queue order. A waiting conversation that no reachable agent
/// with room can take (skills, or waiting for its previous agent) keeps its place and does
/// not hold up the ones behind it.
pub fn decide(s: &Snapshot, batch: usize) -> Vec<Assignment> {
    let mut agents = s.agents.clone();
    let numbers = SkillNumbers::of(&s.queue);
    let has: Vec<Bits> = agents.iter().map(|a| numbers.bits(&a.skills)).collect();
    let mut out = Vec::new();
    let room = |a: &Candidate| a.load < a.max && a.reachable(s.now, s.grace_ms);
    // Agents who could still take a chat: none left, nothing more to decide.
    let mut free = agents.iter().filter(|a| room(a)).count();
    for w in &s.queue {
        if out.len() >= batch || free == 0 {
            break;
        }
        let waited = s.now.saturating_sub(w.since);
        let widened = s.rules.widen_after_ms.is_some_and(|t| waited >= t);
        let (required, optional) = (
            numbers.bits(&w.needs.skills),
            numbers.bits(&w.needs.optional),
        );
        let fits = |i: usize, a: &Candidate| {
            room(a)
                && has[i].covers(&required)
                && (widened || has[i].covers(&optional))
                && !w.needs.tried.contains(&a.id)
        };
        let mut pick = None;
        if let Some(p) = &w.needs.prefer
            && !w.needs.tried.contains(p)
            && let Some(i) = agents.iter().position(|a| &a.id == p)
        {
            let a = &agents[i];
            if fits(i, a) {
                pick = Some(i);
            } else if a.reachable(s.now, s.grace_ms)
                && has[i].covers(&required)
                && waited < s.rules.sticky_wait_ms
            {
                // Present but full: this chat waits for them a while.
                continue;
            }
        }
        let pick = pick.or_else(|| {
            let mut best: Option<usize> = None;
            for (i, a) in agents.iter().enumerate() {
                if fits(i, a) && best.is_none_or(|b| a.before(&agents[b])) {
                    best = Some(i);
                }
            }
            best
        });
        let Some(i) = pick else {
            continue;
        };
        // `agents` is the snapshot's list, in its order: what was read is at the same place.
        let read = &s.agents[i];
        out.push(Assignment {
            conv: w.conv.clone(),
            agent: read.id.clone(),
            read_load: read.load,
            read_max: read.max,
        });
        let a = &mut agents[i];
        a.load += 1;
        a.idle_since = s.now;
        if a.load >= a.max {
            free -= 1;
        }
    }
    out
}

/// The skills a decision's chats ask for, numbered, so that `decide`'s inner loop (every
/// waiting chat against every agent) compares bits, not strings.
struct SkillNumbers<'a>(std::collections::HashMap<&'a str, usize>);

/// A set of numbered skills; skills no chat asks for are left out.
struct Bits(Vec<u64>);

impl<'a> SkillNumbers<'a> {
    fn of(queue: &'a [Waiting]) -> Self {
        let mut numbers = std::collections::HashMap::new();
        for w in queue {
            for skill in w.needs.skills.iter().chain(&w.needs.optional) {
                let next = numbers.len();
                numbers.entry(skill.as_str()).or_insert(next);
            }
        }
        Self(numbers)
    }

    fn bits(&self, skills: &[String]) -> Bits {
        let mut words = vec![0u64; self.0.len().div_ceil(64)];
        for n in skills.iter().filter_map(|s| self.0.get(s.as_str())) {
            words[n / 64] |= 1 << (n % 64);
        }
        Bits(words)
    }
}

impl Bits {
    fn covers(&self, need: &Bits) -> bool {
        self.0.iter().zip(&need.0).all(|(h, n)| h & n == *n)
    }
}

/// The score a conversation is kept under in its queue, lowest served first: its arrival,
/// moved earlier by `unit` per priority level. `arrival` counts in thousandths of a
/// millisecond (`next_arrival`), so with `unit` = `age_boost_ms × 1000` a chat one level lower
/// overtakes a newer one once it has waited `age_boost_ms` longer; without a boost the unit
/// exceeds any wait, and priority is strict. Exact in an f64 (Redis scores).
pub fn queue_score(priority: u8, arrival: i64, unit: i64) -> i64 {
    arrival - i64::from(priority.min(9)) * unit
}

/// The priority unit of `queue_score` for an age boost (ms), or strict priority.
pub fn priority_unit(age_boost_ms: Option<Millis>) -> i64 {
    const STRICT: i64 = 10_000_000_000_000; // 115 days of waiting, in thousandths of a ms
    age_boost_ms.map_or(STRICT, |b| b.clamp(1, STRICT / 1000) * 1000)
}

/// The arrival number of the next queue entry: the clock in thousandths of a millisecond,
/// or one past the previous when the clock has not moved (two in the same millisecond keep
/// the order they arrived in).
pub fn next_arrival(now: Millis, previous: i64) -> i64 {
    now.saturating_mul(1000).max(previous + 1)
}

#[cfg(test)]
mod tests;
