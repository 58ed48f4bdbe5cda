//! Exact resume by sequence number, and idempotent sends by client id.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    visitor_resume_gets_exactly_the_missed_events,
    agent_resume_gets_exactly_the_missed_events,
    repeated_client_id_is_stored_once
);

fn seqs(msgs: &[Value]) -> Vec<u64> {
    msgs.iter()
        .filter(|m| m["type"] == "event")
        .map(|m| m["event"]["seq"].as_u64().unwrap())
        .collect()
}

/// A visitor reconnecting with its last sequence number receives exactly what it missed.
async fn visitor_resume_gets_exactly_the_missed_events(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, welcome) = visitor(&app, json!({})).await;
    let token = welcome["token"].as_str().unwrap().to_owned();
    let conv = say(&mut v, "m1", "hello").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let intro = v.wait_event("assigned").await;
    let last_seen = intro["event"]["seq"].as_u64().unwrap();
    wait_assigned(&mut alice).await;
    drop(v);

    for i in 0..3 {
        agent_say(
            &mut alice,
            &conv,
            &format!("a{i}"),
            &format!("while you were away {i}"),
        )
        .await;
    }
    let (mut v, welcome) = visitor(
        &app,
        json!({"token": token, "resume": {"conversation": conv, "last_seq": last_seen}}),
    )
    .await;
    assert_eq!(welcome["conversation"]["id"], conv.as_str());
    assert_eq!(welcome["conversation"]["state"], "active");
    v.sync().await;
    let got = v.drain();
    assert_eq!(
        seqs(&got),
        vec![last_seen + 1, last_seen + 2, last_seen + 3],
        "{got:?}"
    );
    assert_eq!(
        got.iter().find(|m| m["type"] == "event").unwrap()["event"]["text"],
        "while you were away 0"
    );

    // Without a resume point the whole history arrives.
    let (mut v2, _) = visitor(&app, json!({"token": welcome["token"]})).await;
    v2.sync().await;
    assert_eq!(seqs(&v2.drain()), (1..=last_seen + 3).collect::<Vec<_>>());
    app.stop().await;
}

/// An agent reconnecting with its last sequence number per chat receives exactly what it missed.
async fn agent_resume_gets_exactly_the_missed_events(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, _) = visitor(&app, json!({})).await;
    let conv = say(&mut v, "m1", "hello").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, a) = wait_assigned(&mut alice).await;
    let last = a["events"].as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    drop(alice);
    say(&mut v, "m2", "are you there?").await;
    say(&mut v, "m3", "hello??").await;

    let mut alice = connect(app.addr, "/v1/agent", None).await.unwrap();
    alice
        .send(json!({"type": "hello", "token": token("alice"), "resume": {conv.clone(): last}}))
        .await;
    alice.wait_type("welcome").await;
    let (c, a) = wait_assigned(&mut alice).await;
    assert_eq!(c, conv);
    let got: Vec<u64> = a["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(got, vec![last + 1, last + 2]);
    assert_eq!(a["events"][1]["text"], "hello??");
    app.stop().await;
}

/// A message re-sent with the same client id is stored once and acknowledged with its number.
async fn repeated_client_id_is_stored_once(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, welcome) = visitor(&app, json!({})).await;
    let first = say(&mut v, "same", "only once please").await;
    let again = say(&mut v, "same", "only once please").await;
    assert_eq!(first["seq"], again["seq"]);
    let (conv, _) = wait_assigned(&mut alice).await;

    // A retry after a reconnect is recognised too.
    drop(v);
    let (mut v, _) = visitor(&app, json!({"token": welcome["token"]})).await;
    let third = say(&mut v, "same", "only once please").await;
    assert_eq!(third["seq"], first["seq"]);

    // Agents' retries as well.
    let a1 = agent_say(&mut alice, &conv, "dup", "answer").await;
    let a2 = agent_say(&mut alice, &conv, "dup", "answer").await;
    assert_eq!(a1["seq"], a2["seq"]);

    v.sync().await;
    let (mut fresh, _) = visitor(&app, json!({"token": welcome["token"]})).await;
    fresh.sync().await;
    let texts: Vec<Value> = fresh
        .drain()
        .into_iter()
        .filter(|m| m["event"]["kind"] == "message")
        .map(|m| m["event"]["text"].clone())
        .collect();
    assert_eq!(texts, vec![json!("only once please"), json!("answer")]);
    app.stop().await;
}
