//! Routing: limits, queue positions and drains, fairness, grace, transfers.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    limit_two_with_five_visitors,
    many_visitors_many_agents_concurrently,
    fairness_least_load_then_longest_idle,
    grace_keeps_chats_then_requeues_at_head,
    dead_connection_is_detected,
    transfer_to_agent_and_department,
);

/// An agent with limit 2 and five visitors: two chats at once, three queued 1..3, the queue drains.
async fn limit_two_with_five_visitors(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut visitors = Vec::new();
    for i in 0..5 {
        let (mut v, _) = visitor(&app, json!({})).await;
        let ack = say(&mut v, "m", &format!("visitor {i}")).await;
        visitors.push((v, ack["conversation"].as_str().unwrap().to_owned()));
    }
    for (v, _) in visitors.iter_mut().take(2) {
        v.wait_event("assigned").await;
    }
    for (i, (v, _)) in visitors.iter_mut().enumerate().skip(2) {
        let n = v.wait_event("notice").await;
        assert_eq!(n["event"]["position"], i as u64 - 1, "visitor {i}");
    }
    let (c0, _) = wait_assigned(&mut alice).await;
    let (c1, _) = wait_assigned(&mut alice).await;
    assert_eq!(
        [c0.clone(), c1],
        [visitors[0].1.clone(), visitors[1].1.clone()]
    );

    // Closing one chat lets exactly the head of the queue in; the others move up.
    alice
        .send(json!({"type": "close", "conversation": c0}))
        .await;
    let (c2, _) = wait_assigned(&mut alice).await;
    assert_eq!(c2, visitors[2].1);
    visitors[2].0.wait_event("assigned").await;
    let p = visitors[3]
        .0
        .wait_for("position 1", |m| m["type"] == "queue" && m["position"] == 1)
        .await;
    assert_eq!(p["conversation"], visitors[3].1.as_str());
    visitors[4]
        .0
        .wait_for("position 2", |m| m["type"] == "queue" && m["position"] == 2)
        .await;
    alice.sync().await;
    assert!(
        alice.drain().iter().all(|m| m["type"] != "assigned"),
        "no third chat while at the limit"
    );
    app.stop().await;
}

/// 200 visitors and 20 agents (limits 1..5) at once: nobody above their limit, every visitor
/// assigned or queued; then, as agents close chats, every visitor is served exactly once.
async fn many_visitors_many_agents_concurrently(backend: Backend) {
    let specs: Vec<AgentSpec> = (0..20)
        .map(|i| {
            agent(
                &format!("a{i:02}"),
                &format!("Agent {i}"),
                &["support"],
                (i % 5) + 1,
            )
        })
        .collect();
    let capacity: u32 = specs.iter().map(|s| s.max).sum();
    let app = spawn_app(backend, config(&specs)).await;
    let addr = app.addr;
    // Phase 0: hold every chat; 1: close every chat; 2: stop.
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(0u8);
    let mut agents = Vec::new();
    for spec in specs.clone() {
        let mut phase = phase_rx.clone();
        let mut c = agent_client_at(addr, &spec.id).await;
        agents.push(tokio::spawn(async move {
            let mut open: Vec<String> = Vec::new();
            let mut served = Vec::new();
            let mut max_seen = 0;
            loop {
                let closing = *phase.borrow() == 1;
                if closing {
                    for conv in open.drain(..) {
                        c.send(json!({"type": "close", "conversation": conv})).await;
                    }
                }
                tokio::select! {
                    m = c.wait_type("assigned") => {
                        let conv = m["conversation"]["id"].as_str().unwrap().to_owned();
                        served.push(conv.clone());
                        open.push(conv);
                        max_seen = max_seen.max(open.len() as u32);
                    }
                    r = phase.changed() => {
                        if r.is_err() || *phase.borrow() == 2 {
                            break;
                        }
                    }
                }
            }
            (spec, served, max_seen)
        }));
    }
    let mut visitors = Vec::new();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    for i in 0..200 {
        let mut go = go_rx.clone();
        visitors.push(tokio::spawn(async move {
            let mut c = connect(addr, &format!("/v1/visitor?site={SITE}"), Some(ORIGIN))
                .await
                .unwrap();
            c.send(json!({"type": "hello"})).await;
            c.wait_type("welcome").await;
            // Everyone writes at the same moment.
            go.wait_for(|g| *g).await.unwrap();
            let ack = say(&mut c, "first", &format!("visitor {i}")).await;
            let first = c
                .wait_for("assigned or queued", |m| {
                    m["type"] == "event"
                        && (m["event"]["kind"] == "assigned" || m["event"]["notice"] == "queued")
                })
                .await;
            let assigned_at_once = first["event"]["kind"] == "assigned";
            (
                c,
                ack["conversation"].as_str().unwrap().to_owned(),
                assigned_at_once,
            )
        }));
    }
    go_tx.send(true).unwrap();
    let mut waiting = Vec::new();
    let mut at_once = 0;
    for v in visitors {
        let (c, conv, assigned) = v.await.expect("every visitor is answered at once");
        at_once += assigned as u32;
        waiting.push((c, conv, assigned));
    }
    assert_eq!(
        at_once, capacity,
        "exactly the agents' total capacity is assigned at once"
    );

    // Now serve everyone: each agent closes what it holds and whatever comes next.
    phase_tx.send(1).unwrap();
    let mut convs = Vec::new();
    for (mut c, conv, assigned) in waiting {
        if !assigned {
            c.wait_event("assigned").await;
        }
        c.wait_event("closed").await;
        convs.push(conv);
    }
    phase_tx.send(2).unwrap();
    let mut served = Vec::new();
    for a in agents {
        let (spec, list, max_seen) = a.await.unwrap();
        assert!(
            max_seen <= spec.max,
            "agent {} held {max_seen} chats, limit {}",
            spec.id,
            spec.max
        );
        served.extend(list);
    }
    convs.sort();
    convs.dedup();
    assert_eq!(convs.len(), 200);
    served.sort();
    assert_eq!(served, convs, "each conversation assigned exactly once");
    app.stop().await;
}

/// Equal capacity: least load first, then whoever has waited longest since their last chat.
async fn fairness_least_load_then_longest_idle(backend: Backend) {
    let app = spawn_app(
        backend,
        config(&[
            agent("ann", "Ann A", &["support"], 2),
            agent("bob", "Bob B", &["support"], 2),
            agent("cat", "Cat C", &["support"], 2),
        ]),
    )
    .await;
    let mut agents: Vec<(String, Client)> = Vec::new();
    for id in ["ann", "bob", "cat"] {
        agents.push((id.to_owned(), agent_client(&app, id, "online").await));
    }
    let mut order = Vec::new();
    for i in 0..6 {
        let (mut v, _) = visitor(&app, json!({})).await;
        say(&mut v, "m", &format!("visitor {i}")).await;
        let intro = v.wait_event("assigned").await;
        order.push(intro["event"]["agent"]["id"].as_str().unwrap().to_owned());
    }
    // Round 1 on load (all idle since never: id breaks the tie); round 2: load equal, idle order.
    assert_eq!(order, ["ann", "bob", "cat", "ann", "bob", "cat"]);
    app.stop().await;
}

/// Inside the grace period an agent's chats survive a reconnect; after it they go back to the
/// head of the queue and the visitor is told.
async fn grace_keeps_chats_then_requeues_at_head(backend: Backend) {
    let cfg = config(&[alice(1), boris(1)]);
    let (app, clock) = spawn_with_clock(backend, cfg).await;
    let alice = agent_client(&app, "alice", "online").await;
    let (mut v1, _) = visitor(&app, json!({})).await;
    let conv1 = say(&mut v1, "m", "first").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    v1.wait_event("assigned").await;
    let (mut v2, _) = visitor(&app, json!({})).await;
    say(&mut v2, "m", "second").await;
    let n = v2.wait_event("notice").await;
    assert_eq!(n["event"]["position"], 1);

    // Drop and come back at once: the chat is still Alice's.
    drop(alice);
    let mut alice = agent_client(&app, "alice", "online").await;
    let (c, _) = wait_assigned(&mut alice).await;
    assert_eq!(c, conv1);

    // Drop for good: after the grace period (60 s, on the test clock) v1 is requeued at the
    // head, ahead of v2.
    drop(alice);
    agent_gone(&app, "alice").await;
    clock.advance(Duration::from_secs(61));
    let n = v1
        .wait_for("requeued notice", |m| {
            m["type"] == "event" && m["event"]["notice"] == "requeued"
        })
        .await;
    assert!(
        n["event"]["text"]
            .as_str()
            .unwrap()
            .contains("disconnected")
    );
    v2.wait_for("pushed to 2", |m| {
        m["type"] == "queue" && m["position"] == 2
    })
    .await;
    let mut boris = agent_client(&app, "boris", "online").await;
    let (c, a) = wait_assigned(&mut boris).await;
    assert_eq!(c, conv1, "the requeued chat is served first");
    let kinds: Vec<&str> = a["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"requeued"), "{kinds:?}");
    let intro = v1.wait_event("assigned").await;
    assert_eq!(intro["event"]["agent"]["name"], "Boris Ivanov");
    app.stop().await;
}

/// A console that stops answering heartbeats is closed, and its chats follow the grace rules.
async fn dead_connection_is_detected(backend: Backend) {
    let mut cfg = config(&[alice(1)]);
    cfg.timing.heartbeat_secs = 0.2;
    let (app, clock) = spawn_with_clock(backend, cfg).await;
    // A raw socket that says hello and then never reads again: pings go unanswered.
    let mut raw = connect(app.addr, "/v1/agent", None).await.unwrap();
    raw.send(json!({"type": "hello", "token": token("alice"), "status": "online"}))
        .await;
    raw.wait_type("welcome").await;
    let (mut v, _) = visitor(&app, json!({})).await;
    say(&mut v, "m", "hello").await;
    v.wait_event("assigned").await;
    // The visitor's client answers pings while it reads; the silent agent is dropped after
    // three heartbeats (real time: that is the socket), and after the grace period (the test
    // clock) the chat comes back to the queue. The visitor reads (and so answers pings) all
    // along, in its own task.
    let requeued = tokio::spawn(async move {
        v.wait_for("requeued notice", |m| m["event"]["notice"] == "requeued")
            .await;
    });
    agent_gone(&app, "alice").await;
    clock.advance(Duration::from_secs(61));
    requeued.await.unwrap();
    drop(raw);
    app.stop().await;
}

/// Transfers keep the whole transcript, record the reason, and introduce the new agent.
async fn transfer_to_agent_and_department(backend: Backend) {
    let app = spawn_app(
        backend,
        config(&[
            alice(2),
            boris(2),
            agent("carla", "Carla Sales", &["sales"], 2),
        ]),
    )
    .await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, _) = visitor(&app, json!({})).await;
    let conv = say(&mut v, "m1", "I want a refund").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (c, _) = wait_assigned(&mut alice).await;
    assert_eq!(c, conv);
    agent_say(&mut alice, &conv, "a1", "Let me check").await;
    let mut boris = agent_client(&app, "boris", "online").await;
    let mut carla = agent_client(&app, "carla", "online").await;

    alice
        .send(json!({"type": "transfer", "conversation": conv, "to_agent": "boris", "reason": "billing", "note": "VIP"}))
        .await;
    let (c, a) = wait_assigned(&mut boris).await;
    assert_eq!(c, conv);
    let events = a["events"].as_array().unwrap();
    assert_eq!(events[0]["text"], "I want a refund");
    let t = events
        .iter()
        .find(|e| e["kind"] == "transferred")
        .expect("transfer recorded");
    assert_eq!(t["reason"], "billing");
    assert_eq!(t["note"], "VIP");
    assert_eq!(t["from"]["name"], "Alice Moreau");
    let gone = alice.wait_type("unassigned").await;
    assert_eq!(gone["reason"], "transferred");
    let intro = v
        .wait_for("boris introduced", |m| {
            m["type"] == "event" && m["event"]["agent"]["id"] == "boris"
        })
        .await;
    assert!(
        intro["event"]["text"]
            .as_str()
            .unwrap()
            .contains("Boris Ivanov")
    );

    // Transfer on to the sales department: Carla gets it with everything before.
    boris
        .send(json!({"type": "transfer", "conversation": conv, "to_department": "sales", "reason": "upgrade question"}))
        .await;
    let (c, a) = wait_assigned(&mut carla).await;
    assert_eq!(c, conv);
    let events: &Vec<Value> = a["events"].as_array().unwrap();
    let texts: Vec<&str> = events.iter().filter_map(|e| e["text"].as_str()).collect();
    assert!(
        texts.contains(&"I want a refund") && texts.contains(&"Let me check"),
        "{texts:?}"
    );
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "transferred").count(),
        2
    );
    v.wait_for("carla introduced", |m| {
        m["type"] == "event" && m["event"]["agent"]["id"] == "carla"
    })
    .await;
    // The visitor never sees internal transfer records.
    v.sync().await;
    assert!(
        v.drain()
            .iter()
            .all(|m| m["event"]["kind"] != "transferred")
    );
    app.stop().await;
}
