//! Embedded restarts: the real binary killed (SIGKILL) or stopped (SIGTERM) in the middle of
//! conversations and started again on the same data directory resumes them exactly: chats,
//! queues and assignments as they were, nothing acknowledged lost or repeated.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::multinode::{Node, start_process};

/// Messages each side sends into each chat just before the node goes down.
pub const BURST: usize = 25;

/// A visitor socket that said hello (optionally resuming) and got its welcome.
pub async fn visitor_hello(node: &Node, hello: Value) -> (Client, Value) {
    let mut c = visitor_says_hello(node.addr, &hello).await;
    let welcome = c.wait_type("welcome").await;
    (c, welcome)
}

/// Every event a client received, by conversation: seq → the event.
pub fn events_by_conv(msgs: &[Value], into: &mut HashMap<String, BTreeMap<u64, Value>>) {
    for m in msgs {
        let (conv, events) = match m["type"].as_str() {
            Some("event") => (&m["conversation"], vec![m["event"].clone()]),
            Some("assigned") => (
                &m["conversation"]["id"],
                m["events"].as_array().cloned().unwrap_or_default(),
            ),
            _ => continue,
        };
        let Some(conv) = conv.as_str() else { continue };
        for e in events {
            let seq = e["seq"].as_u64().unwrap();
            into.entry(conv.to_owned()).or_default().insert(seq, e);
        }
    }
}

/// The highest number a client saw in a conversation (0: none).
pub fn last_seen(saw: &HashMap<String, BTreeMap<u64, Value>>, conv: &str) -> u64 {
    saw.get(conv)
        .and_then(|m| m.keys().last().copied())
        .unwrap_or(0)
}

/// A conversation's log as a client read it whole: numbered 1..=n without a gap, each
/// acknowledged message at its number, no message stored twice. Returns how many messages
/// with a client id it holds.
pub fn assert_whole_log(
    log: &BTreeMap<u64, Value>,
    conv: &str,
    acked: &[(String, u64, String)],
) -> usize {
    let n = log.len() as u64;
    assert_eq!(
        log.keys().copied().collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    for (c, seq, client_id) in acked.iter().filter(|(c, ..)| c == conv) {
        assert_eq!(
            log[seq]["client_id"],
            client_id.as_str(),
            "ack {c}#{seq} ({client_id}) is in the log at its number"
        );
    }
    let mut ids: Vec<&str> = log
        .values()
        .filter_map(|e| e["client_id"].as_str())
        .collect();
    let stored = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), stored, "no message stored twice");
    stored
}

/// (conversation, seq, client id) of every ack among the messages.
pub fn acks(msgs: &[Value]) -> Vec<(String, u64, String)> {
    msgs.iter()
        .filter(|m| m["type"] == "ack")
        .map(|m| {
            (
                m["conversation"].as_str().unwrap().to_owned(),
                m["seq"].as_u64().unwrap(),
                m["client_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Two chats in full flow and two visitors queued behind them; the node goes down mid-burst
/// and comes back on the same data directory. Every acknowledged message is there once, at
/// its number; both sides resume exactly from where they were; the agent keeps both chats
/// (inside the grace period), the queue keeps its order, numbering continues, and a closed
/// chat can still be rated after a further restart.
async fn live_chats_resume_after(kill: bool) {
    let text = config_toml(&[alice(2)]);
    let path = temp_dir().with_extension("toml");
    std::fs::write(&path, text).unwrap();
    let node = start_process(&path, false).await;
    let mut alice = agent_client_at(node.addr, "alice").await;
    let mut alice_saw = HashMap::new();
    let mut chats = Vec::new();
    for i in 0..2 {
        let (mut v, welcome) = visitor_hello(&node, json!({})).await;
        let conv = say(&mut v, &format!("open{i}"), "hello").await["conversation"]
            .as_str()
            .unwrap()
            .to_owned();
        let (assigned, a) = wait_assigned(&mut alice).await;
        assert_eq!(assigned, conv);
        events_by_conv(&[a], &mut alice_saw);
        chats.push((v, welcome["token"].as_str().unwrap().to_owned(), conv));
    }
    let mut queued = Vec::new();
    for i in 0..2 {
        let (mut v, welcome) = visitor_hello(&node, json!({})).await;
        let conv = say(&mut v, &format!("wait{i}"), "anyone?").await["conversation"]
            .as_str()
            .unwrap()
            .to_owned();
        v.wait_for("queued notice", |m| m["event"]["notice"] == "queued")
            .await;
        queued.push((welcome["token"].as_str().unwrap().to_owned(), conv));
    }

    // Both sides write without waiting; the node goes down while this is in flight.
    for k in 0..BURST {
        for (i, (v, _, conv)) in chats.iter_mut().enumerate() {
            v.send(json!({"type": "message", "client_id": format!("v{i}-{k}"), "text": format!("visitor {i} says {k}")}))
                .await;
            alice
                .send(json!({"type": "message", "conversation": conv, "client_id": format!("a{i}-{k}"), "text": format!("alice tells {i} {k}")}))
                .await;
        }
    }
    // Some of it is through.
    let through = [
        alice
            .wait_for("an ack", |m| m["type"] == "ack" && m["client_id"] == "a1-5")
            .await,
        chats[1]
            .0
            .wait_for("an ack", |m| m["type"] == "ack" && m["client_id"] == "v1-5")
            .await,
    ];
    if kill {
        node.kill().await;
    } else {
        node.terminate().await;
    }
    // Everything each client received before its socket closed.
    let mut acked = acks(&through);
    alice.closed().await;
    let got = alice.drain();
    acked.extend(acks(&got));
    events_by_conv(&got, &mut alice_saw);
    let mut visitor_saw = Vec::new();
    for (v, _, _) in &mut chats {
        v.closed().await;
        let got = v.drain();
        acked.extend(acks(&got));
        let mut saw = HashMap::new();
        events_by_conv(&got, &mut saw);
        visitor_saw.push(saw);
    }

    let node = start_process(&path, false).await;
    // The agent resumes each chat from the last number she saw and gets exactly the rest.
    let resume: serde_json::Map<String, Value> = chats
        .iter()
        .map(|(_, _, conv)| (conv.clone(), json!(last_seen(&alice_saw, conv))))
        .collect();
    let mut alice = connect(node.addr, "/v1/agent", None).await.unwrap();
    alice
        .send(
            json!({"type": "hello", "token": token("alice"), "status": "online", "resume": resume}),
        )
        .await;
    alice.wait_type("welcome").await;
    let mut after: HashMap<String, Vec<u64>> = HashMap::new();
    for _ in 0..2 {
        let (conv, a) = wait_assigned(&mut alice).await;
        let seqs = a["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        after.insert(conv, seqs);
    }

    for (i, (_, token, conv)) in chats.iter().enumerate() {
        // The whole transcript, read back: numbered 1..=n without a gap, each acknowledged
        // message in it once, at its number.
        let (mut full, welcome) = visitor_hello(&node, json!({"token": token})).await;
        assert_eq!(welcome["conversation"]["id"], conv.as_str());
        assert_eq!(welcome["conversation"]["state"], "active");
        full.sync().await;
        let mut transcript = HashMap::new();
        events_by_conv(&full.drain(), &mut transcript);
        let transcript = &transcript[conv];
        let n = transcript.len() as u64;
        assert_whole_log(transcript, conv, &acked);
        // The agent got exactly what she had not seen.
        let last = last_seen(&alice_saw, conv);
        assert_eq!(
            after[conv],
            ((last + 1)..=n).collect::<Vec<_>>(),
            "agent resume"
        );
        // The visitor too.
        let last = last_seen(&visitor_saw[i], conv);
        let (mut v, _) = visitor_hello(
            &node,
            json!({"token": token, "resume": {"conversation": conv, "last_seq": last}}),
        )
        .await;
        v.sync().await;
        let mut missed = HashMap::new();
        events_by_conv(&v.drain(), &mut missed);
        let missed: Vec<u64> = missed
            .get(conv)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        assert_eq!(
            missed,
            ((last + 1)..=n).collect::<Vec<_>>(),
            "visitor resume"
        );
        // Numbering continues, and the message reaches the agent.
        let ack = say(&mut v, "after", "still there?").await;
        assert_eq!(ack["seq"].as_u64().unwrap(), n + 1);
        alice
            .wait_for("the new message", |m| {
                m["type"] == "event" && m["event"]["client_id"] == "after"
            })
            .await;
    }

    // The queue kept its members and its order: each chat the agent closes hands her the
    // next visitor in the order they arrived.
    assert_eq!(queue_size(node.addr, "support").await, 2);
    let (_, welcome) = visitor_hello(&node, json!({"token": queued[0].0})).await;
    assert_eq!(welcome["conversation"]["state"], "queued");
    for ((_, _, conv), (_, next)) in chats.iter().zip(&queued) {
        alice
            .send(json!({"type": "close", "conversation": conv}))
            .await;
        let (assigned, _) = wait_assigned(&mut alice).await;
        assert_eq!(&assigned, next, "queue order after the restart");
    }
    alice.wait_type("closed").await;

    // A closed chat keeps its rating window across another restart.
    node.kill().await;
    let node = start_process(&path, false).await;
    let (mut v, _) = visitor_hello(&node, json!({"token": chats[0].1})).await;
    v.send(json!({"type": "rate", "score": 5})).await;
    v.wait_type("rated").await;
    node.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_chats_resume_after_kill() {
    live_chats_resume_after(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_chats_resume_after_sigterm() {
    live_chats_resume_after(false).await;
}

/// A second process on the same data directory is refused with a message that says why,
/// instead of forking the embedded state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_per_data_directory() {
    let path = temp_dir().with_extension("toml");
    std::fs::write(&path, config_toml(&[alice(1)])).unwrap();
    let node = start_process(&path, false).await;
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .env_remove("SWITCHBOARD_REDIS_URL")
        .output();
    let out = tokio::time::timeout(WAIT, second)
        .await
        .expect("the second process exits")
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by another switchboard process"),
        "{err}"
    );
    node.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_burst_of_closes_embedded() {
    sigterm_drains_a_burst_of_closes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_burst_of_closes_on_redis() {
    sigterm_drains_a_burst_of_closes(true).await;
}

/// SIGTERM while an agent's burst of closes is on the wire: the node finishes the frame in hand,
/// answers, and closes every socket with 1001 (none cut off); a close it did not answer is
/// retried after the restart; every chat then has exactly one ticket.
async fn sigterm_drains_a_burst_of_closes(on_redis: bool) {
    const CHATS: usize = 30;
    let text = format!(
        "key_prefix = {:?}\n{}",
        unique_prefix(),
        config_toml(&[alice(CHATS as u32)])
    );
    let path = temp_dir().with_extension("toml");
    std::fs::write(&path, text).unwrap();
    let node = start_process(&path, on_redis).await;
    let mut alice = agent_client_at(node.addr, "alice").await;
    let mut visitors = Vec::new();
    let mut convs = Vec::new();
    for i in 0..CHATS {
        let (mut v, _) = visitor_hello(&node, json!({})).await;
        let conv = say(&mut v, &format!("m{i}"), "please close me").await["conversation"]
            .as_str()
            .unwrap()
            .to_owned();
        let (assigned, _) = wait_assigned(&mut alice).await;
        assert_eq!(assigned, conv);
        visitors.push(v);
        convs.push(conv);
    }
    for conv in &convs {
        alice
            .send(json!({"type": "close", "conversation": conv, "reason": "resolved"}))
            .await;
    }
    node.terminate().await;
    assert_eq!(alice.closed().await, Some(1001), "the agent's socket");
    let answered: std::collections::HashSet<String> = alice
        .drain()
        .into_iter()
        .filter(|m| m["type"] == "closed")
        .map(|m| m["conversation"].as_str().unwrap().to_owned())
        .collect();
    for v in &mut visitors {
        assert_eq!(v.closed().await, Some(1001), "a visitor's socket");
    }

    let node = start_process(&path, on_redis).await;
    let mut alice = agent_client_at(node.addr, "alice").await;
    for conv in convs.iter().filter(|c| !answered.contains(*c)) {
        alice
            .send(json!({"type": "close", "conversation": conv, "reason": "resolved"}))
            .await;
        let answer = alice
            .wait_for("the retried close answered", |m| {
                m["conversation"] == conv.as_str()
                    && (m["type"] == "closed" || m["type"] == "error")
            })
            .await;
        if answer["type"] == "error" {
            assert_eq!(answer["code"], "conversation_closed", "{answer}");
        }
    }
    let (status, list) = http_get(node.addr, "/v1/tickets?limit=200", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{list}");
    let mut per_conv: HashMap<String, usize> = HashMap::new();
    for t in list["tickets"].as_array().unwrap() {
        *per_conv
            .entry(t["conversation"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for conv in &convs {
        assert_eq!(
            per_conv.get(conv),
            Some(&1),
            "one ticket for {conv}: {per_conv:?}"
        );
    }
    eprintln!(
        "{} of {CHATS} closes answered before SIGTERM's 1001, the rest retried",
        answered.len()
    );
    node.kill().await;
}
