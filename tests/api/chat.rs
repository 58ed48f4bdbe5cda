//! The basic loop: queue, assignment, messages both ways, close; acknowledgements by locale.

use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    queued_assigned_messages_flow_and_close,
    acknowledgements_by_locale,
    offline_reply_when_nobody_is_on,
    private_note_never_reaches_the_visitor,
    agent_starts_a_chat_with_a_browsing_visitor,
    read_receipts_both_ways,
    typing_preview_only_where_the_site_enables_it,
    offline_messages_are_announced_to_consoles,
);

/// A visitor is queued, an agent comes online, gets the chat, messages flow both ways, the agent closes.
async fn queued_assigned_messages_flow_and_close(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(3)])).await;
    let mut alice = agent_client(&app, "alice", "away").await;
    let (mut v, welcome) = visitor(&app, json!({"locale": "en-US"})).await;
    assert!(welcome["token"].as_str().unwrap().starts_with("v1.test."));
    assert!(welcome["conversation"].is_null());

    let ack = say(&mut v, "c1", "Hello, anyone there?").await;
    assert_eq!(ack["seq"], 1);
    let conv = ack["conversation"].as_str().unwrap().to_owned();
    let queued = v.wait_event("notice").await;
    assert_eq!(queued["event"]["notice"], "queued");
    assert_eq!(queued["event"]["position"], 1);
    assert!(queued["event"]["text"].as_str().unwrap().contains("#1"));

    alice
        .send(json!({"type": "set_status", "status": "online"}))
        .await;
    let (got, assigned) = wait_assigned(&mut alice).await;
    assert_eq!(got, conv);
    let transcript = assigned["events"].as_array().unwrap();
    assert_eq!(transcript[0]["text"], "Hello, anyone there?");
    assert_eq!(assigned["visitor"]["page_url"], "https://shop.test/");

    let intro = v.wait_event("assigned").await;
    assert_eq!(intro["event"]["agent"]["name"], "Alice Moreau");
    assert!(
        intro["event"]["text"]
            .as_str()
            .unwrap()
            .contains("Alice Moreau")
    );

    agent_say(&mut alice, &conv, "a1", "Hi! How can I help?").await;
    let m = v.wait_event("message").await;
    assert_eq!(m["event"]["text"], "Hello, anyone there?");
    let m = v.wait_event("message").await;
    assert_eq!(m["event"]["text"], "Hi! How can I help?");
    assert_eq!(m["event"]["author"], "agent");
    assert_eq!(m["event"]["author_name"], "Alice Moreau");

    say(&mut v, "c2", "My order is late").await;
    let m = alice
        .wait_for("visitor message", |m| {
            m["type"] == "event" && m["event"]["text"] == "My order is late"
        })
        .await;
    assert_eq!(m["event"]["author"], "visitor");

    alice.sync().await;
    alice.drain();
    alice
        .send(json!({"type": "close", "conversation": conv, "reason": "resolved"}))
        .await;
    let closed = v.wait_event("closed").await;
    assert_eq!(closed["event"]["by"], "agent");
    assert_eq!(closed["event"]["reason"], "resolved");
    let gone = alice.wait_type("unassigned").await;
    assert_eq!(gone["reason"], "closed");
    let me = alice
        .wait_for("load back to 0", |m| {
            m["type"] == "agent" && m["agent"]["load"] == 0
        })
        .await;
    assert_eq!(me["agent"]["status"], "online");
    app.stop().await;
}

/// The first reply is immediate and in the visitor's language: English, Russian, fallback.
async fn acknowledgements_by_locale(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(1)])).await;
    let _alice = agent_client(&app, "alice", "online").await;

    // Alice is free: the Russian visitor is connected to her at once, in Russian.
    let (mut ru, _) = visitor(&app, json!({"locale": "ru-RU"})).await;
    say(&mut ru, "r1", "Здравствуйте").await;
    let intro = ru.wait_event("assigned").await;
    let text = intro["event"]["text"].as_str().unwrap();
    assert!(text.starts_with("Вас приветствует Alice Moreau"), "{text}");

    // Alice is full now: the next visitors are queued, told so in their language.
    let (mut ru2, _) = visitor(&app, json!({"locale": "ru"})).await;
    say(&mut ru2, "r2", "Привет").await;
    let n = ru2.wait_event("notice").await;
    let text = n["event"]["text"].as_str().unwrap();
    assert!(text.contains("1-й в очереди"), "{text}");
    assert_eq!(n["event"]["estimate_minutes"], 5);

    let (mut en, _) = visitor(&app, json!({"locale": "de-DE"})).await;
    say(&mut en, "e1", "Hallo").await;
    let n = en.wait_event("notice").await;
    let text = n["event"]["text"].as_str().unwrap();
    assert!(text.contains("You are #2 in line"), "{text}");
    app.stop().await;
}

/// With no agent on duty the visitor gets the offline reply at once, and the chat ends.
async fn offline_reply_when_nobody_is_on(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(1)])).await;
    let (mut v, welcome) = visitor(&app, json!({"locale": "en"})).await;
    // Told before writing: a first message would get the offline reply.
    assert_eq!(welcome["available"], false, "{welcome}");
    say(&mut v, "c1", "Hello?").await;
    let n = v.wait_event("notice").await;
    assert_eq!(n["event"]["notice"], "offline");
    assert!(n["event"]["text"].as_str().unwrap().contains("email"));
    let c = v.wait_event("closed").await;
    assert_eq!(c["event"]["reason"], "no_agent");
    // Nobody ended anything: the offline reply said it all.
    assert_eq!(c["event"]["text"], "", "{c}");

    let (mut ru, _) = visitor(&app, json!({"locale": "ru-RU"})).await;
    say(&mut ru, "c1", "Есть кто?").await;
    let n = ru.wait_event("notice").await;
    assert!(n["event"]["text"].as_str().unwrap().contains("e-mail"));
    // With an agent on duty, the welcome says a message would reach them.
    let _alice = agent_client(&app, "alice", "online").await;
    let (_, welcome) = visitor(&app, json!({"locale": "en"})).await;
    assert_eq!(welcome["available"], true, "{welcome}");
    app.stop().await;
}

/// A private note reaches the agents and the ticket, never the visitor (live or on resume).
async fn private_note_never_reaches_the_visitor(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, welcome, conv) = chat_with_hello(&app, &mut alice, json!({}), "m1", "hello").await;
    alice
        .send(json!({"type": "note", "conversation": conv, "client_id": "n1", "text": "VIP: refund approved"}))
        .await;
    let ack = alice
        .wait_for("note ack", |m| m["type"] == "ack" && m["client_id"] == "n1")
        .await;
    let note = alice.wait_event("note").await;
    assert_eq!(note["event"]["text"], "VIP: refund approved");
    assert_eq!(note["event"]["agent"]["name"], "Alice Moreau");
    assert_eq!(note["event"]["seq"], ack["seq"]);
    agent_say(&mut alice, &conv, "a1", "Good news!").await;
    v.wait_for("the reply", |m| m["event"]["text"] == "Good news!")
        .await;
    v.sync().await;
    let seen = v.drain();
    assert!(
        seen.iter()
            .all(|m| m["event"]["kind"] != "note" && m["event"]["text"] != "VIP: refund approved"),
        "{seen:?}"
    );
    // Nor on a reconnect that replays the whole history.
    let (mut again, _) = visitor(&app, json!({"token": welcome["token"]})).await;
    again.sync().await;
    assert!(again.drain().iter().all(|m| m["event"]["kind"] != "note"));
    alice
        .send(json!({"type": "close", "conversation": conv}))
        .await;
    let ticket = alice.wait_type("closed").await["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, t) = admin_get(&app, &format!("/v1/tickets/{ticket}")).await;
    let notes: Vec<&str> = t["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "note")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["VIP: refund approved"]);
    assert_eq!(t["metrics"]["agent_messages"], 1, "notes are not messages");
    app.stop().await;
}

/// An agent opens a chat with a visitor who is browsing: within the agent's limit, never over an
/// open chat, and the visitor gets the introduction and the message.
async fn agent_starts_a_chat_with_a_browsing_visitor(backend: Backend) {
    let app = spawn_app(
        backend,
        config(&[agent("alice", "Alice Moreau", &["sales"], 1)]),
    )
    .await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, welcome) =
        visitor(&app, json!({"page": {"url": "https://shop.test/pricing"}})).await;
    let vid = welcome["visitor_id"].clone();
    alice
        .send(json!({"type": "start_chat", "visitor": vid, "client_id": "p1", "text": "Hi! Questions about pricing?"}))
        .await;
    let ack = alice
        .wait_for("ack", |m| m["type"] == "ack" && m["client_id"] == "p1")
        .await;
    let conv = ack["conversation"].as_str().unwrap().to_owned();
    let (c, assigned) = wait_assigned(&mut alice).await;
    assert_eq!(c, conv);
    assert_eq!(assigned["conversation"]["department"], "sales");
    let intro = v.wait_event("assigned").await;
    assert_eq!(intro["conversation"], conv.as_str());
    let m = v.wait_event("message").await;
    assert_eq!(m["event"]["text"], "Hi! Questions about pricing?");
    assert_eq!(m["event"]["author_name"], "Alice Moreau");
    // The visitor answers in the same conversation.
    let reply = say(&mut v, "v1", "Yes, is there a discount?").await;
    assert_eq!(reply["conversation"], conv.as_str());
    alice
        .wait_for("answer", |m| {
            m["type"] == "event" && m["event"]["text"] == "Yes, is there a discount?"
        })
        .await;
    // Not over an open chat, and not past the agent's limit.
    alice
        .send(json!({"type": "start_chat", "visitor": vid, "client_id": "p2", "text": "again"}))
        .await;
    alice.wait_error("visitor_busy").await;
    let (_w, other) = visitor(&app, json!({})).await;
    alice
        .send(json!({"type": "start_chat", "visitor": other["visitor_id"], "client_id": "p3", "text": "hello"}))
        .await;
    alice.wait_error("target_unavailable").await;
    alice
        .send(json!({"type": "start_chat", "visitor": "01NOSUCHVISITOR", "client_id": "p4", "text": "hello"}))
        .await;
    alice.wait_error("not_found").await;
    app.stop().await;
}

/// Read receipts both ways: each side's `read` reaches the other at once, is capped at the
/// last event, never goes back, refuses an agent who does not own the chat, and is kept on
/// the conversation, so a reconnecting widget and console learn it.
async fn read_receipts_both_ways(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2), boris(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, welcome, conv) = chat_with_hello(&app, &mut alice, json!({}), "m1", "hello").await;
    let reply = agent_say(&mut alice, &conv, "a1", "hi, how can I help?").await;
    let reply_seq = reply["seq"].as_u64().unwrap();
    v.wait_for("the reply", |m| {
        m["type"] == "event" && m["event"]["seq"] == reply_seq
    })
    .await;

    // The visitor has seen the reply: the agent is told (a mark past the end is capped).
    v.send(json!({"type": "read", "seq": reply_seq + 50})).await;
    let r = alice
        .wait_for("the visitor's read", |m| m["type"] == "read")
        .await;
    assert_eq!(r["conversation"], conv.as_str());
    assert_eq!(r["seq"], reply_seq);
    // The agent reads the visitor's message: the visitor is told.
    alice
        .send(json!({"type": "read", "conversation": conv, "seq": 1}))
        .await;
    let r = v
        .wait_for("the agent's read", |m| m["type"] == "read")
        .await;
    assert_eq!(
        (r["conversation"].as_str(), r["seq"].as_u64()),
        (Some(conv.as_str()), Some(1))
    );
    // Going back tells nobody anything; a chat that is not Boris's is refused.
    v.send(json!({"type": "read", "seq": 1})).await;
    let mut boris = agent_client(&app, "boris", "online").await;
    boris
        .send(json!({"type": "read", "conversation": conv, "seq": 2}))
        .await;
    boris.wait_error("not_owner").await;
    v.sync().await;
    alice.sync().await;
    assert!(
        !alice.drain().iter().any(|m| m["type"] == "read"),
        "a read mark went back"
    );

    // Both marks are kept: a reconnecting widget and console get them.
    let (again, w) = visitor(&app, json!({"token": welcome["token"]})).await;
    assert_eq!(w["conversation"]["agent_read"], 1);
    assert_eq!(w["conversation"]["visitor_read"], reply_seq);
    drop(again);
    drop(alice);
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_, a) = wait_assigned(&mut alice).await;
    assert_eq!(a["conversation"]["visitor_read"], reply_seq);
    assert_eq!(a["conversation"]["agent_read"], 1);
    app.stop().await;
}

/// Typing preview is the site's choice: off, the visitor's draft reaches nobody even if a
/// client sends it; on, the agent sees it (cut to the longest message) and never after "off".
async fn typing_preview_only_where_the_site_enables_it(backend: Backend) {
    for preview in [false, true] {
        let mut cfg = config(&[alice(2)]);
        cfg.limits.max_message_chars = 10;
        cfg.sites[0].widget.typing_preview = preview;
        let app = spawn_app(backend, cfg).await;
        let mut alice = agent_client(&app, "alice", "online").await;
        let (mut v, _) = visitor(&app, json!({})).await;
        say(&mut v, "m1", "hello").await;
        wait_assigned(&mut alice).await;
        v.send(json!({"type": "typing", "on": true, "text": "my card number is"}))
            .await;
        let t = alice.wait_type("typing").await;
        assert_eq!(t["on"], true);
        if preview {
            assert_eq!(t["text"], "my card nu", "cut to max_message_chars");
        } else {
            assert!(t.get("text").is_none(), "a draft leaked: {t}");
        }
        v.send(json!({"type": "typing", "on": false, "text": "ignored"}))
            .await;
        let t = alice.wait_type("typing").await;
        assert_eq!(t["on"], false);
        assert!(t.get("text").is_none(), "{t}");
        let (_, w) = crate::helpers::http_get(app.addr, "/v1/widget/test", None).await;
        assert_eq!(w["typing_preview"], preview);
        app.stop().await;
    }
}

/// An offline message is announced at once to the site's open consoles (those watching the
/// site), with its ticket, so someone can answer it from the inbox.
async fn offline_messages_are_announced_to_consoles(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut alice = agent_client(&app, "alice", "offline").await;
    alice
        .send(json!({"type": "watch_visitors", "on": true}))
        .await;
    alice.wait_type("visitors").await;
    let (mut v, _) = visitor(&app, json!({"name": "Nina"})).await;
    v.send(
        json!({"type": "offline_message", "email": "nina@example.com",
                  "text": "Do you ship to Norway?"}),
    )
    .await;
    let got = v.wait_type("offline_received").await;
    let heard = alice.wait_type("offline_message").await;
    assert_eq!(heard["ticket"], got["ticket"]);
    assert_eq!(heard["name"], "Nina");
    assert_eq!(heard["email"], "nina@example.com");
    assert_eq!(heard["text"], "Do you ship to Norway?");
    assert_eq!(heard["department"], "support");
    let (status, t) = admin_get(
        &app,
        &format!("/v1/tickets/{}", got["ticket"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["follow_up"], "open");
    app.stop().await;
}
