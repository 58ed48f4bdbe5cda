//! The protocol's edges: long conversations in bounded pages, close frames as RFC 6455 says,
//! queue positions under concurrent arrival, and the documented error codes.

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    long_conversation_travels_in_pages,
    close_frames_follow_the_rfc,
    queue_positions_are_unique_and_in_arrival_order,
    error_codes_match_the_docs,
);

/// Frames must stay far below what a socket accepts; a page is at most about 48 KiB.
const MAX_FRAME: usize = 96 * 1024;

/// Reads the next frame as raw text (to measure it) and parses it.
async fn next_sized(c: &mut Client, what: &str) -> (Value, usize) {
    let v = c.wait_for(what, |v| v["type"] == what).await;
    let size = v.to_string().len();
    (v, size)
}

/// Walks a chat's transcript back from `before` to `after` with `transcript` requests; returns
/// every event's seq, oldest first.
async fn walk_back(c: &mut Client, conv: &str, mut before: u64, after: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    loop {
        c.send(
            json!({"type": "transcript", "conversation": conv, "before": before, "after": after}),
        )
        .await;
        let (page, size) = next_sized(c, "transcript").await;
        assert!(size < MAX_FRAME, "transcript page of {size} bytes");
        let events = page["events"].as_array().unwrap();
        assert!(
            !events.is_empty(),
            "a page with `more` before it is never empty"
        );
        let mut got: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(got.iter().all(|s| *s > after && *s < before));
        before = got[0];
        got.extend(seqs);
        seqs = got;
        if page["more"] == false {
            return seqs;
        }
    }
}

/// A 10,000-event conversation of 4,000-character messages: an agent far behind resumes, a
/// fresh console loads it, and a transfer hands it over, each through bounded pages that add
/// up to exactly the whole transcript.
async fn long_conversation_travels_in_pages(backend: Backend) {
    let mut cfg = config(&[alice(2), boris(2)]);
    cfg.limits.messages_per_second = 1e6;
    cfg.limits.message_burst = 1e6;
    // Alice's silence must end in the slow-consumer close, not in a heartbeat timeout.
    cfg.timing.heartbeat_secs = 60.0;
    cfg.limits.send_queue = 16;
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, _) = visitor(&app, json!({})).await;
    let conv = say(&mut v, "m0", "hello").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, first) = wait_assigned(&mut alice).await;
    let seen = first["events"].as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    // Alice stops reading: she falls behind while the visitor writes 4,000-character messages.
    let long = "x".repeat(4000);
    let mut last = 0;
    // Small batches: the test reads only between batches, and the server's answers (about
    // 8 KB per message) must fit in the socket buffers meanwhile, or both sides wait forever.
    for batch in 0..1000 {
        for i in 0..10 {
            v.send(json!({"type": "message", "client_id": format!("b{batch}-{i}"), "text": long}))
                .await;
        }
        let ack = v
            .wait_for("last ack of a batch", |m| {
                m["type"] == "ack" && m["client_id"] == format!("b{batch}-9")
            })
            .await;
        last = ack["seq"].as_u64().unwrap();
        // And its own copy of the event: the visitor's queue is empty again (a client that
        // writes faster than it reads is a slow consumer too).
        v.wait_for("last event of a batch", |m| m["event"]["seq"] == last)
            .await;
        v.drain();
    }
    assert!(last >= 10_000, "{last} events");
    // She is too far behind for her queue: closed as a slow consumer.
    assert_eq!(alice.closed().await, Some(4008));

    // Resume from where she was: the latest page, then earlier pages down to what she saw.
    let mut alice = connect(app.addr, "/v1/agent", None).await.unwrap();
    alice
        .send(json!({"type": "hello", "token": token("alice"), "resume": {conv.as_str(): seen}}))
        .await;
    alice.wait_type("welcome").await;
    let (assigned, size) = next_sized(&mut alice, "assigned").await;
    assert!(size < MAX_FRAME, "assigned of {size} bytes");
    assert_eq!(assigned["more"], true);
    let page: Vec<u64> = assigned["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(*page.last().unwrap(), last);
    let mut all = walk_back(&mut alice, &conv, page[0], seen).await;
    all.extend(page);
    assert_eq!(
        all,
        (seen + 1..=last).collect::<Vec<_>>(),
        "exactly what she missed"
    );

    // A console without `resume` gets the latest page and can load all of it.
    let mut fresh = agent_client(&app, "alice", "online").await;
    let (assigned, size) = next_sized(&mut fresh, "assigned").await;
    assert!(size < MAX_FRAME);
    let first_seq = assigned["events"][0]["seq"].as_u64().unwrap();
    let earlier = walk_back(&mut fresh, &conv, first_seq, 0).await;
    assert_eq!(earlier, (1..first_seq).collect::<Vec<_>>());

    // A transfer hands the long chat over without breaking the receiver's socket.
    let mut boris = agent_client(&app, "boris", "online").await;
    alice
        .send(json!({"type": "transfer", "conversation": conv, "to_agent": "boris", "reason": "shift ends"}))
        .await;
    let (assigned, size) = next_sized(&mut boris, "assigned").await;
    assert!(size < MAX_FRAME);
    assert_eq!(assigned["more"], true);
    let transferred = assigned["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "transferred");
    assert!(transferred, "the handover is in the latest page");
    let ack = agent_say(&mut boris, &conv, "k1", "Boris here").await;
    assert!(ack["seq"].as_u64().unwrap() > last);
    // Earlier pages are only for one's own chats.
    let mut other = agent_client(&app, "alice", "online").await;
    other
        .send(json!({"type": "transcript", "conversation": conv, "before": 10}))
        .await;
    other.wait_error("not_found").await;
    app.stop().await;
}

/// 1009 for a frame over the hard limit, 1007 for invalid UTF-8, and the client's own Close
/// answered with a Close.
async fn close_frames_follow_the_rfc(backend: Backend) {
    let app = spawn_app(backend, config(&[])).await;
    let path = format!("/v1/visitor?site={SITE}");

    let (mut v, _) = visitor(&app, json!({})).await;
    v.send_raw(&"x".repeat(100_000)).await;
    assert_eq!(v.closed().await, Some(1009));

    let (mut v, _) = visitor(&app, json!({})).await;
    let bad = Frame::message(vec![b'"', 0xff, 0xfe, b'"'], OpCode::Data(Data::Text), true);
    v.send_message(Message::Frame(bad)).await;
    assert_eq!(v.closed().await, Some(1007));

    for path in [path.as_str(), "/v1/agent"] {
        let mut c = connect(app.addr, path, Some(ORIGIN)).await.unwrap();
        c.send_message(Message::Close(Some(CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        })))
        .await;
        assert_eq!(c.closed().await, Some(1000), "{path}");
    }
    app.stop().await;
}

/// Visitors who write one after another are told #1, #2, … and keep those places; visitors who
/// write at once get distinct places that match the queue's order.
async fn queue_positions_are_unique_and_in_arrival_order(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(1)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    // Alice's one slot is taken, so everyone after waits.
    let (mut busy, _) = visitor(&app, json!({})).await;
    say(&mut busy, "b", "first").await;
    wait_assigned(&mut alice).await;

    let queued = |v: &Value| v["type"] == "event" && v["event"]["notice"] == "queued";
    let mut waiting = Vec::new();
    for i in 0..25 {
        let (mut v, _) = visitor(&app, json!({})).await;
        say(&mut v, "m", &format!("visitor {i}")).await;
        let notice = v.wait_for("queued notice", queued).await;
        assert_eq!(notice["event"]["position"], i + 1, "visitor {i}");
        waiting.push(v);
    }
    // Nobody was moved back by a later arrival.
    for v in &mut waiting {
        v.sync().await;
        let moved = v.drain().into_iter().any(|m| m["type"] == "queue");
        assert!(!moved, "a later arrival changed an earlier visitor's place");
    }

    let concurrent = join_all((0..40).map(|i| {
        let app = &app;
        async move {
            let (mut v, _) = visitor(app, json!({})).await;
            let ack = say(&mut v, "m", &format!("at once {i}")).await;
            let notice = v.wait_for("queued notice", queued).await;
            let position = notice["event"]["position"].as_u64().unwrap();
            (ack["conversation"].as_str().unwrap().to_owned(), position)
        }
    }))
    .await;
    let mut positions: Vec<u64> = concurrent.iter().map(|(_, p)| *p).collect();
    positions.sort();
    assert_eq!(positions, (26..=65).collect::<Vec<_>>(), "distinct places");
    assert_eq!(queue_size(app.addr, "support").await, 65);
    app.stop().await;
}

/// Error codes as docs/protocol.md and docs/api.md give them.
async fn error_codes_match_the_docs(backend: Backend) {
    let mut cfg = config(&[alice(2)]);
    cfg.limits.messages_per_second = 1.0;
    cfg.limits.message_burst = 3.0;
    let app = spawn_app(backend, cfg).await;

    // A known type with a bad value is an invalid message, not an unknown type.
    let mut alice = agent_client(&app, "alice", "online").await;
    alice
        .send(json!({"type": "set_status", "status": "busy"}))
        .await;
    alice.wait_error("invalid_message").await;

    // A dropped frame names its client id, so the client knows what to resend.
    let (mut v, _) = visitor(&app, json!({})).await;
    for i in 0..6 {
        v.send(json!({"type": "message", "client_id": format!("r{i}"), "text": "hi"}))
            .await;
    }
    let e = v.wait_error("rate_limited").await;
    assert!(e["client_id"].as_str().unwrap().starts_with('r'), "{e}");

    // Every failed hello counts, malformed ones too: the third closes the socket.
    for path in [format!("/v1/visitor?site={SITE}"), "/v1/agent".to_owned()] {
        let mut c = connect(app.addr, &path, Some(ORIGIN)).await.unwrap();
        c.send_raw("{not json").await;
        c.wait_error("bad_json").await;
        c.send(json!({"type": "hello", "token": 5})).await;
        c.wait_error("invalid_message").await;
        c.send(json!({"type": "hello", "resume": "x", "token": 5}))
            .await;
        assert_eq!(c.closed().await, Some(4001), "{path}");
    }

    // An unknown department is refused at hello, with no welcome.
    let mut c = connect(app.addr, &format!("/v1/visitor?site={SITE}"), Some(ORIGIN))
        .await
        .unwrap();
    c.send(json!({"type": "hello", "department": "nowhere"}))
        .await;
    c.wait_error("unknown_department").await;
    c.send(json!({"type": "hello", "department": "sales"}))
        .await;
    c.wait_type("welcome").await;

    // REST: a route with the wrong method answers with the documented error body.
    let client = reqwest::Client::new();
    for (method, path) in [
        (reqwest::Method::POST, "/v1/tickets"),
        (reqwest::Method::DELETE, "/v1/tickets/01ANY"),
        (reqwest::Method::PUT, "/healthz"),
    ] {
        let resp = client
            .request(method.clone(), format!("http://{}{path}", app.addr))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{method} {path}"
        );
    }
    app.stop().await;
}

/// Two nodes on one Redis: an agent who just connected (or just went online) on either node
/// takes a transfer at once, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_to_a_just_connected_agent_on_two_nodes() {
    let prefix = unique_prefix();
    let cfg = config(&[alice(5), boris(5)]);
    let n1 = spawn_with(Backend::Redis, cfg.clone(), Some(&prefix)).await;
    let n2 = spawn_with(Backend::Redis, cfg, Some(&prefix)).await;
    let mut alice = agent_client(&n1, "alice", "online").await;
    let (_v, conv) = chat_with(&n1, &mut alice, "m0", "hello").await;
    for i in 0..60 {
        let node = if i % 2 == 0 { &n1 } else { &n2 };
        let mut boris =
            agent_client(node, "boris", if i % 3 == 0 { "away" } else { "online" }).await;
        if i % 3 == 0 {
            boris
                .send(json!({"type": "set_status", "status": "online"}))
                .await;
            boris
                .wait_for("online", |m| {
                    m["type"] == "agent" && m["agent"]["status"] == "online"
                })
                .await;
        }
        there_and_back(&mut alice, &mut boris, &conv, i).await;
        drop(boris);
    }
}

/// Alice transfers the chat to Boris, who takes it and hands it back: both accepted.
async fn there_and_back(alice: &mut Client, boris: &mut Client, conv: &str, round: usize) {
    hand_over(alice, boris, "boris", conv, round).await;
    hand_over(boris, alice, "alice", conv, round).await;
}

async fn hand_over(from: &mut Client, to: &mut Client, to_id: &str, conv: &str, round: usize) {
    from.send(json!({"type": "transfer", "conversation": conv, "to_agent": to_id, "reason": "x"}))
        .await;
    let m = from
        .wait_for("unassigned or error", |m| {
            m["type"] == "unassigned" || m["type"] == "error"
        })
        .await;
    assert_eq!(m["type"], "unassigned", "round {round}, to {to_id}: {m}");
    wait_assigned(to).await;
}

both_backends!(transfer_to_a_just_connected_agent);

/// An agent whose console just connected takes a transfer at once, while the previous console
/// of theirs is still closing.
async fn transfer_to_a_just_connected_agent(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(5), boris(5)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut alice, "m0", "hello").await;
    for i in 0..50 {
        let mut boris = agent_client(&app, "boris", "online").await;
        there_and_back(&mut alice, &mut boris, &conv, i).await;
        drop(boris);
    }
}

both_backends!(transfer_refusals_say_why);

/// A refused transfer says why: away, or full because the queue just took the agent's last
/// slot when they came online (what looks like "online with load 0" a moment earlier).
async fn transfer_refusals_say_why(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(1), boris(1)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v1, conv) = chat_with(&app, &mut alice, "m", "first").await;
    let transfer =
        json!({"type": "transfer", "conversation": conv, "to_agent": "boris", "reason": "x"});

    let mut boris = agent_client(&app, "boris", "away").await;
    alice.send(transfer.clone()).await;
    let e = alice.wait_error("target_unavailable").await;
    assert_eq!(e["message"], "boris is not online", "{e}");

    // A second visitor waits; Boris going online takes them at once, so he is full.
    let (mut v2, _) = visitor(&app, json!({})).await;
    say(&mut v2, "m", "second").await;
    boris
        .send(json!({"type": "set_status", "status": "online"}))
        .await;
    wait_assigned(&mut boris).await;
    alice.send(transfer.clone()).await;
    let e = alice.wait_error("target_unavailable").await;
    assert_eq!(e["message"], "boris has no free slot", "{e}");
    app.stop().await;
}

both_backends!(a_busy_site_lists_its_visitors_in_bounded_frames);

/// 120 visitors with long page addresses (well over what one frame may carry): an agent who
/// starts watching gets them all, in frames that each stay within a page.
async fn a_busy_site_lists_its_visitors_in_bounded_frames(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut ids = std::collections::HashSet::new();
    let mut sockets = Vec::new();
    for i in 0..120 {
        let url = format!("https://shop.test/{i}/{}", "p".repeat(2000));
        let (v, welcome) = visitor(&app, json!({"page": {"url": url, "title": "Page"}})).await;
        ids.insert(welcome["visitor_id"].as_str().unwrap().to_owned());
        sockets.push(v);
    }
    let mut console = agent_client(&app, "alice", "online").await;
    console
        .send(json!({"type": "watch_visitors", "on": true}))
        .await;
    let list = console.wait_type("visitors").await;
    assert!(list.to_string().len() < MAX_FRAME);
    let mut seen: std::collections::HashSet<String> = list["visitors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        seen.len() < ids.len(),
        "the first frame cannot hold them all"
    );
    while !ids.is_subset(&seen) {
        let v = console.wait_type("visitor").await;
        assert!(v.to_string().len() < MAX_FRAME);
        seen.insert(v["visitor"]["id"].as_str().unwrap().to_owned());
    }
    app.stop().await;
}
