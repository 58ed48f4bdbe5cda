//! Supervisor figures over REST: agents, queues, and today's statistics from the tickets.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(supervisor_figures);

fn agent_row<'a>(agents: &'a Value, id: &str) -> &'a Value {
    agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap()
}

/// Agents with load and status, queue sizes, and chats, waits, responses and ratings of today.
async fn supervisor_figures(backend: Backend) {
    let app = spawn_app(
        backend,
        config(&[
            agent("alice", "Alice Moreau", &["support"], 2),
            agent("boris", "Boris Ivanov", &["support"], 2),
        ]),
    )
    .await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let _boris = agent_client(&app, "boris", "away").await;
    let mut visitors = Vec::new();
    for i in 0..3 {
        let (mut v, _) = visitor(&app, json!({})).await;
        let conv = say(&mut v, "m", &format!("visitor {i}")).await["conversation"]
            .as_str()
            .unwrap()
            .to_owned();
        v.wait_for("answered", |m| {
            m["event"]["kind"] == "assigned" || m["event"]["notice"] == "queued"
        })
        .await;
        visitors.push((v, conv));
    }
    let (c0, _) = wait_assigned(&mut alice).await;
    let (c1, _) = wait_assigned(&mut alice).await;

    let (status, agents) = admin_get(&app, "/v1/agents").await;
    assert_eq!(status, 200);
    let a = agent_row(&agents, "alice");
    assert_eq!(
        (a["load"].as_u64(), a["max_concurrent"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(a["status"], "online");
    assert_eq!(a["connected"], true);
    assert_eq!(a["chats"].as_array().unwrap().len(), 2);
    assert_eq!(agent_row(&agents, "boris")["status"], "away");
    let (_, queues) = admin_get(&app, "/v1/queues").await;
    let support = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["department"] == "support")
        .unwrap();
    assert_eq!(support["size"], 1);

    // Serve everyone: reply, close; the third chat comes in when a slot frees.
    for c in [c0, c1] {
        agent_say(&mut alice, &c, &format!("r-{c}"), "Hello!").await;
        alice
            .send(json!({"type": "close", "conversation": c}))
            .await;
        alice
            .wait_for("closed", |m| {
                m["type"] == "closed" && m["conversation"] == c.as_str()
            })
            .await;
    }
    let (c2, _) = wait_assigned(&mut alice).await;
    agent_say(&mut alice, &c2, "r2", "Hello!").await;
    alice
        .send(json!({"type": "close", "conversation": c2}))
        .await;
    alice.wait_for("closed", |m| m["type"] == "closed").await;
    for (score, (v, _)) in [5, 3].iter().zip(visitors.iter_mut()) {
        v.wait_event("closed").await;
        v.send(json!({"type": "rate", "score": score})).await;
        v.wait_type("rated").await;
    }

    let (status, s) = admin_get(&app, "/v1/stats").await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["chats"], 3);
    assert_eq!(s["by_status"]["resolved"], 3);
    assert_eq!(s["queue_wait_secs"]["count"], 3);
    assert!(
        s["queue_wait_secs"]["p90"].as_f64().unwrap()
            >= s["queue_wait_secs"]["median"].as_f64().unwrap()
    );
    assert_eq!(s["first_response_secs"]["count"], 3);
    assert_eq!(s["rating"]["count"], 2);
    assert_eq!(s["rating"]["average"], 4.0);
    let (_, later) = admin_get(&app, "/v1/stats?since=2100-01-01T00:00:00Z").await;
    assert_eq!(later["chats"], 0);
    let (status, _) = http_get(app.addr, "/v1/stats", None).await;
    assert_eq!(status, 401);
    let (status, _) = http_get(app.addr, "/v1/agents", Some("wrong")).await;
    assert_eq!(status, 401);
    app.stop().await;
}
