use super::*;

fn agent(id: &str, load: u32, max: u32, idle_since: Millis, skills: &[&str]) -> Candidate {
    Candidate {
        id: id.into(),
        status: AgentStatus::Online,
        load,
        max,
        idle_since,
        present_until: 1_000_000,
        skills: skills.iter().map(|s| s.to_string()).collect(),
    }
}

fn waiting(id: &str, since: Millis, skills: &[&str], optional: &[&str]) -> Waiting {
    Waiting {
        conv: id.into(),
        since,
        needs: Needs {
            skills: skills.iter().map(|s| s.to_string()).collect(),
            optional: optional.iter().map(|s| s.to_string()).collect(),
            prefer: None,
            tried: Vec::new(),
        },
    }
}

fn snapshot(now: Millis, queue: Vec<Waiting>, agents: Vec<Candidate>) -> Snapshot {
    Snapshot {
        now,
        grace_ms: 60_000,
        rules: Rules::default(),
        queue,
        agents,
    }
}

fn pairs(decided: &[Assignment]) -> Vec<(&str, &str)> {
    decided
        .iter()
        .map(|a| (a.conv.0.as_str(), a.agent.0.as_str()))
        .collect()
}

/// A drain goes on to another batch only while one could assign more: never after a batch
/// that assigned nothing, however long the queue.
#[test]
fn another_batch_only_while_one_could_assign_more() {
    assert!(
        !more_after(0, 8, window(8)),
        "nothing assigned: a longer queue waits"
    );
    assert!(more_after(8, 8, 10), "a full batch");
    assert!(
        more_after(3, 8, window(8)),
        "only the head of the queue was read"
    );
    assert!(
        !more_after(3, 8, window(8) - 1),
        "the whole queue was weighed"
    );
}

/// Lowest load ratio first, then idle longest; nobody beyond their limit; what was read of
/// each agent travels with the assignment (for the compare-and-set).
#[test]
fn least_loaded_then_idle_longest_within_limits() {
    let s = snapshot(
        10,
        vec![
            waiting("c1", 1, &[], &[]),
            waiting("c2", 2, &[], &[]),
            waiting("c3", 3, &[], &[]),
            waiting("c4", 4, &[], &[]),
        ],
        vec![agent("a", 1, 2, 5, &[]), agent("b", 0, 1, 9, &[])],
    );
    let d = decide(&s, 10);
    assert_eq!(pairs(&d), [("c1", "b"), ("c2", "a")]);
    assert_eq!((d[1].read_load, d[1].read_max), (1, 2));
    assert_eq!(pairs(&decide(&s, 1)), [("c1", "b")], "at most the batch");
    let mut idle = s.clone();
    idle.now = 1_000;
    idle.agents = vec![agent("a", 0, 2, 700, &[]), agent("b", 0, 2, 300, &[])];
    assert_eq!(
        pairs(&decide(&idle, 2)),
        [("c1", "b"), ("c2", "a")],
        "equal loads: the one idle longest, then the other (who is now idle longer)"
    );
}

/// A chat goes only to an agent with every required skill; one nobody present can take
/// keeps its place without holding up the chats behind it.
#[test]
fn skills_are_required_and_do_not_block_the_queue() {
    let s = snapshot(
        10,
        vec![
            waiting("c1", 1, &["billing"], &[]),
            waiting("c2", 2, &["lang:de"], &[]),
            waiting("c3", 3, &[], &[]),
        ],
        vec![
            agent("a", 0, 1, 0, &[]),
            agent("b", 0, 1, 5, &["billing", "lang:ru"]),
        ],
    );
    assert_eq!(pairs(&decide(&s, 10)), [("c1", "b"), ("c3", "a")]);
}

/// Optional skills hold until the chat has waited `widen_after_ms`, then any agent will do.
#[test]
fn optional_skills_widen_after_a_while() {
    let mut s = snapshot(
        10_000,
        vec![waiting("c1", 0, &[], &["lang:ru"])],
        vec![agent("a", 0, 1, 0, &[])],
    );
    s.rules.widen_after_ms = Some(30_000);
    assert!(decide(&s, 1).is_empty(), "nobody speaks Russian yet");
    s.now = 30_000;
    assert_eq!(pairs(&decide(&s, 1)), [("c1", "a")], "widened");
    s.rules.widen_after_ms = None;
    assert!(decide(&s, 1).is_empty(), "without widening it waits");
    s.agents.push(agent("r", 3, 4, 0, &["lang:ru"]));
    assert_eq!(
        pairs(&decide(&s, 1)),
        [("c1", "r")],
        "the speaker, though busier"
    );
}

/// The visitor's last agent takes the chat while present with room; while present but full
/// the chat waits for them up to `sticky_wait_ms`; an agent away or gone is never waited for.
#[test]
fn the_last_agent_is_preferred_and_waited_for_a_while() {
    let mut w = waiting("c1", 0, &[], &[]);
    w.needs.prefer = Some("busy".into());
    let mut s = snapshot(
        1_000,
        vec![w],
        vec![agent("busy", 1, 2, 0, &[]), agent("free", 0, 2, 0, &[])],
    );
    s.rules.sticky_wait_ms = 20_000;
    assert_eq!(
        pairs(&decide(&s, 1)),
        [("c1", "busy")],
        "preferred over a freer agent"
    );
    s.agents[0].load = 2;
    assert!(decide(&s, 1).is_empty(), "full: the chat waits for them");
    s.now = 20_000;
    assert_eq!(pairs(&decide(&s, 1)), [("c1", "free")], "waited enough");
    s.now = 1_000;
    s.agents[0].status = AgentStatus::Away;
    assert_eq!(
        pairs(&decide(&s, 1)),
        [("c1", "free")],
        "away: not waited for"
    );
    s.agents[0].status = AgentStatus::Online;
    s.agents[0].present_until = 0;
    s.now = 100_000;
    s.rules.sticky_wait_ms = 1_000_000;
    assert_eq!(
        pairs(&decide(&s, 1)),
        [("c1", "free")],
        "gone past the grace: not waited for"
    );
}

/// Agents away, offline or gone past the grace take nothing.
#[test]
fn only_reachable_agents_take_chats() {
    let mut away = agent("away", 0, 3, 0, &[]);
    away.status = AgentStatus::Away;
    let mut gone = agent("gone", 0, 3, 0, &[]);
    gone.present_until = 100;
    let s = snapshot(
        100 + 60_000,
        vec![waiting("c1", 1, &[], &[])],
        vec![away, gone],
    );
    assert!(decide(&s, 5).is_empty());
}

/// Priority first, but each level is worth `age_boost` of waiting: a low-priority chat that
/// has waited long enough is served before a newer high-priority one. Without a boost the
/// order is strict. Arrivals in the same millisecond keep their order.
#[test]
fn queue_order_with_an_age_boost() {
    let boost = priority_unit(Some(60_000));
    let old_low = queue_score(0, next_arrival(0, 0), boost);
    let new_high = queue_score(1, next_arrival(30_000, 0), boost);
    assert!(new_high < old_low, "30 s newer, one level higher: first");
    let newer_high = queue_score(1, next_arrival(90_000, 0), boost);
    assert!(old_low < newer_high, "90 s newer: the old low one first");
    let strict = priority_unit(None);
    assert!(
        queue_score(1, next_arrival(86_400_000 * 30, 0), strict)
            < queue_score(0, next_arrival(0, 0), strict)
    );
    let a = next_arrival(5, 0);
    let b = next_arrival(5, a);
    assert!(b > a && next_arrival(4, b) > b, "monotonic");
    assert!(
        (queue_score(9, next_arrival(4_102_444_800_000, 0), strict) as f64) < 9.007e15,
        "exact as a Redis score until 2100"
    );
}

/// A snapshot that reads the agents only as far as `Reach` says (the best placed first, with
/// no margin at all) decides exactly as one that reads every agent: random departments with
/// skills, optional skills that widen, previous agents, tried agents, full and absent agents.
#[test]
fn reading_as_far_as_reach_decides_as_reading_everyone() {
    use rand::{Rng, SeedableRng};
    use std::cmp::Ordering;
    let mut rng = rand::rngs::StdRng::seed_from_u64(27);
    let names = ["de", "fr", "billing", "vip"];
    let now = 1_000_000;
    let mut narrowed = 0;
    for case in 0..3000 {
        let some = |rng: &mut rand::rngs::StdRng, p: f64| -> Vec<String> {
            names
                .iter()
                .filter(|_| rng.random_bool(p))
                .map(|s| s.to_string())
                .collect()
        };
        let agents: Vec<Candidate> = (0..rng.random_range(1..60))
            .map(|i| {
                let max = rng.random_range(1..4);
                Candidate {
                    id: AgentId(format!("a{i:02}")),
                    status: if rng.random_bool(0.9) {
                        AgentStatus::Online
                    } else {
                        AgentStatus::Away
                    },
                    load: rng.random_range(0..=max),
                    max,
                    idle_since: rng.random_range(0..4000),
                    present_until: if rng.random_bool(0.95) { now + 1 } else { 0 },
                    skills: some(&mut rng, 0.5),
                }
            })
            .collect();
        let pick =
            |rng: &mut rand::rngs::StdRng| agents[rng.random_range(0..agents.len())].id.clone();
        let queue: Vec<Waiting> = (0..rng.random_range(1..24))
            .map(|i| Waiting {
                conv: ConvId(format!("c{i:02}")),
                since: now - rng.random_range(0..200),
                needs: Needs {
                    skills: some(&mut rng, 0.2),
                    optional: some(&mut rng, 0.15),
                    prefer: rng.random_bool(0.2).then(|| pick(&mut rng)),
                    tried: (0..rng.random_range(0..3))
                        .map(|_| pick(&mut rng))
                        .collect(),
                },
            })
            .collect();
        let rules = Rules {
            widen_after_ms: rng.random_bool(0.5).then(|| rng.random_range(0..200)),
            sticky_wait_ms: rng.random_range(0..200),
            ..Rules::default()
        };
        let batch = rng.random_range(1..6);
        let whole = Snapshot {
            now,
            grace_ms: 0,
            rules,
            queue,
            agents: agents.clone(),
        };
        // The index: agents who can take a chat, best placed first.
        let mut index: Vec<&Candidate> = agents
            .iter()
            .filter(|a| a.load < a.max && a.reachable(now, 0))
            .collect();
        index.sort_by(|x, y| {
            if x.before(y) {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        });
        let mut reach = Reach::new(&whole.queue, batch, &rules, now);
        let mut read: Vec<Candidate> = Vec::new();
        for a in index {
            if reach.done() {
                break;
            }
            if reach.read(&a.skills) {
                read.push(a.clone());
            }
        }
        if read.len() < agents.len() && !decide(&whole, batch).is_empty() {
            narrowed += 1;
        }
        for p in whole.queue.iter().filter_map(|w| w.needs.prefer.as_ref()) {
            let a = agents.iter().find(|a| &a.id == p).unwrap();
            if a.present(now, 0) && !read.iter().any(|r| &r.id == p) {
                read.push(a.clone());
            }
        }
        let partial = Snapshot {
            agents: read,
            ..whole.clone()
        };
        assert_eq!(
            decide(&whole, batch),
            decide(&partial, batch),
            "case {case}: {whole:#?}"
        );
    }
    assert!(
        narrowed > 1000,
        "the reading stopped early before a decision in only {narrowed} cases"
    );
}
