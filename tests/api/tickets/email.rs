//! Email from tickets: answers to offline messages, a copy of the chat for the visitor, and
//! what an SMTP refusal leaves behind.

use super::*;

all_stores!(
    visitor_gets_a_copy_of_the_chat_by_email,
    offline_message_is_answered_by_email,
    email_authenticates_and_a_refusal_records_nothing,
    a_retried_answer_with_its_idempotency_key_is_sent_once,
);

/// A POST with `Idempotency-Key` as a retrying client sends it.
async fn post_with_key(
    app: &TestApp,
    path: &str,
    token: &str,
    key: &str,
    body: Value,
) -> (u16, Option<String>, Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{}{path}", app.addr))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, replayed, r.json().await.unwrap_or(Value::Null))
}

/// An email answer retried with its `Idempotency-Key` is sent and recorded once, and the retry
/// gets the first answer again; the key with another body is refused; an admin create retried
/// creates once; another caller's same key is another request; a malformed key is 400.
async fn a_retried_answer_with_its_idempotency_key_is_sent_once(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let mut cfg = config(&[alice(2)]);
    cfg.sites[0].smtp_url = Some(sink.url.clone());
    cfg.sites[0].email_from = Some("Test shop <support@shop.test>".into());
    let app = spawn_app(backend, cfg).await;
    let (_v, id) = offline_ticket(&app, "olga@example.com").await;
    let path = format!("/v1/tickets/{id}/reply");
    let body = json!({"text": "Yes, we ship to Norway."});
    let first = post_with_key(&app, &path, ADMIN_TOKEN, "answer-1", body.clone()).await;
    assert_eq!((first.0, first.1.as_deref()), (200, None), "{:?}", first.2);
    sink.next().await;
    let again = post_with_key(&app, &path, ADMIN_TOKEN, "answer-1", body.clone()).await;
    assert_eq!(
        (again.0, again.1.as_deref(), &again.2),
        (200, Some("true"), &first.2),
        "the first answer, replayed"
    );
    let replies = ticket(&app, &id).await["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "email_reply")
        .count();
    assert_eq!(replies, 1, "answered once");
    let other = post_with_key(
        &app,
        &path,
        ADMIN_TOKEN,
        "answer-1",
        json!({"text": "Other"}),
    )
    .await;
    assert_eq!(
        (other.0, &other.2["error"]["code"]),
        (422, &json!("idempotency_key_reused"))
    );

    // An admin create, retried: one agent, the same 201 twice.
    let bob =
        json!({"id": "bob", "name": "Bob Stone", "departments": ["support"], "max_concurrent": 2});
    let made = post_with_key(
        &app,
        "/v1/sites/test/agents",
        ADMIN_TOKEN,
        "bob-1",
        bob.clone(),
    )
    .await;
    assert_eq!(made.0, 201, "{:?}", made.2);
    let retried = post_with_key(
        &app,
        "/v1/sites/test/agents",
        ADMIN_TOKEN,
        "bob-1",
        bob.clone(),
    )
    .await;
    assert_eq!((retried.0, retried.1.as_deref()), (201, Some("true")));
    // Without the key the same create is a second request: the id is taken.
    let (status, _) = admin(app.addr, "POST", "/v1/sites/test/agents", Some(bob.clone())).await;
    assert_eq!(status, 409);
    // Another caller's key of the same name is theirs: not the admin's answer.
    let alice = post_with_key(&app, "/v1/sites/test/agents", &token("alice"), "bob-1", bob).await;
    assert_eq!(alice.1, None, "{:?}", alice.2);
    assert_ne!(alice.0, 201);

    let bad = post_with_key(&app, &path, ADMIN_TOKEN, "has space", body).await;
    assert_eq!(
        (bad.0, &bad.2["error"]["code"]),
        (400, &json!("bad_request"))
    );
    app.stop().await;
}

/// An offline message is answered by email from the inbox: the visitor's address gets the
/// answer (through a real SMTP conversation) and the ticket records it; without an SMTP server
/// or an address the answer is refused, nothing recorded.
async fn offline_message_is_answered_by_email(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let mut cfg = config(&[alice(2)]);
    cfg.sites[0].smtp_url = Some(sink.url.clone());
    cfg.sites[0].email_from = Some("Test shop <support@shop.test>".into());
    let app = spawn_app(backend, cfg).await;
    let (mut v, _) = visitor(&app, json!({})).await;
    say(&mut v, "m1", "Do you ship to Norway?").await;
    v.wait_event("closed").await;
    v.send(json!({"type": "offline_message", "email": "nina@example.com", "name": "Nina", "text": "Do you ship to Norway?\nTo Tromsø."}))
        .await;
    let id = v.wait_type("offline_received").await["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/tickets/{id}/reply");

    let (status, e) = admin(app.addr, "POST", &path, Some(json!({"text": "  "}))).await;
    assert_eq!((status, &e["error"]["field"]), (422, &json!("text")));
    let (status, t) = admin(
        app.addr,
        "POST",
        &path,
        Some(json!({"text": "Yes, we do: 5 days to Tromsø."})),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let mail = sink.next().await;
    assert_eq!(mail.to, ["nina@example.com"]);
    assert!(
        mail.data.contains("Subject: Re: your message to"),
        "{}",
        mail.data
    );
    assert!(
        mail.data
            .contains("From: \"Test shop\" <support@shop.test>")
            || mail.data.contains("From: Test shop <support@shop.test>"),
        "{}",
        mail.data
    );
    let last = t["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["kind"], &last["reason"], &last["note"]),
        (
            &json!("email_reply"),
            &json!("nina@example.com"),
            &json!("Yes, we do: 5 days to Tromsø.")
        ),
        "{t}"
    );
    let stored = ticket(&app, &id).await;
    assert_eq!(
        stored["history"].as_array().unwrap().last().unwrap()["kind"],
        "email_reply"
    );

    // A chat whose visitor left no address cannot be answered by email.
    let mut agent = agent_client(&app, "alice", "online").await;
    let (_v2, conv) = chat_with(&app, &mut agent, "m1", "hello").await;
    agent
        .send(json!({"type": "close", "conversation": conv}))
        .await;
    agent.wait_type("closed").await;
    until_status(&app, &format!("/v1/tickets/{conv}"), 200).await;
    let (status, e) = answer_by_email(&app, &conv, "hi").await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (409, &json!("conflict")),
        "{e}"
    );
    app.stop().await;

    // A site without an SMTP server: refused, nothing recorded.
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let (_v, id) = offline_ticket(&app, "olga@example.com").await;
    let (status, e) = answer_by_email(&app, &id, "hi").await;
    assert_eq!(status, 409, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("smtp_url"),
        "{e}"
    );
    let stored = ticket(&app, &id).await;
    assert!(
        stored["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["kind"] != "email_reply")
    );
    app.stop().await;
}

/// At the end of a chat the visitor asks for a copy by email: it arrives with what they saw
/// (and no private note), is recorded on the ticket, and is refused without SMTP, for a bad
/// address, and after three copies.
async fn visitor_gets_a_copy_of_the_chat_by_email(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let mut cfg = config(&[alice(2)]);
    cfg.sites[0].smtp_url = Some(sink.url.clone());
    cfg.sites[0].email_from = Some("Test shop <support@shop.test>".into());
    let app = spawn_app(backend, cfg).await;
    let mut agent = agent_client(&app, "alice", "online").await;
    // The address given in the pre-chat form: the only one a copy may go to.
    let (mut v, _, conv) = chat_with_hello(
        &app,
        &mut agent,
        json!({"email": "vera@example.com"}),
        "m1",
        "Where is my parcel?",
    )
    .await;
    agent_say(&mut agent, &conv, "a1", "It left Riga today.").await;
    agent
        .send(
            json!({"type": "note", "conversation": conv, "client_id": "n1", "text": "secret note"}),
        )
        .await;
    agent.wait_type("ack").await;
    v.send(json!({"type": "close"})).await;
    v.wait_event("closed").await;

    v.send(json!({"type": "email_transcript", "email": "not an address"}))
        .await;
    v.wait_error("invalid_email").await;
    v.send(json!({"type": "email_transcript", "email": "vera@example.com"}))
        .await;
    let sent = v.wait_type("transcript_sent").await;
    assert_eq!(sent["email"], "vera@example.com");
    let mail = sink.next().await;
    assert_eq!(mail.to, ["vera@example.com"]);
    for line in ["Where is my parcel?", "Alice Moreau: It left Riga today."] {
        assert!(mail.data.contains(line), "{line} in:\n{}", mail.data);
    }
    assert!(!mail.data.contains("secret note"), "{}", mail.data);
    let t = ticket(&app, &conv).await;
    assert!(
        t["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "transcript_email" && h["reason"] == "vera@example.com"),
        "{t}"
    );
    for _ in 0..2 {
        v.send(json!({"type": "email_transcript", "email": "vera@example.com"}))
            .await;
        v.wait_type("transcript_sent").await;
        sink.next().await;
    }
    v.send(json!({"type": "email_transcript", "email": "vera@example.com"}))
        .await;
    v.wait_error("email_unavailable").await;
    app.stop().await;

    // A site that sends no email says so.
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut agent = agent_client(&app, "alice", "online").await;
    let (mut v, _) = chat_with(&app, &mut agent, "m1", "hello").await;
    v.send(json!({"type": "close"})).await;
    v.wait_event("closed").await;
    v.send(json!({"type": "email_transcript", "email": "vera@example.com"}))
        .await;
    v.wait_error("email_unavailable").await;
    app.stop().await;
}

/// An offline message answered through an SMTP server that requires a password: the site's
/// `smtp_password` and the user in `smtp_url` authenticate. A server that refuses the
/// recipient makes the answer a 503 and leaves the ticket as it was, and so does a copy the
/// visitor asks for.
async fn email_authenticates_and_a_refusal_records_nothing(backend: Backend) {
    for refuse in [false, true] {
        let mut sink = SmtpSink::start_with(SinkMode { auth: true, refuse }).await;
        let mut cfg = config(&[alice(2)]);
        cfg.sites[0].smtp_url = Some(sink.url.replace("smtp://", "smtp://shop-mailer@"));
        cfg.sites[0].smtp_password = Some(switchboard::model::Secret::new("mail-password-0123"));
        cfg.sites[0].email_from = Some("Test shop <support@shop.test>".into());
        let app = spawn_app(backend, cfg).await;
        let (mut v, id) = offline_ticket(&app, "olga@example.com").await;
        let (status, body) = answer_by_email(&app, &id, "Hello Olga").await;
        let replies = |t: &Value| {
            t["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["kind"] == "email_reply")
                .count()
        };
        if refuse {
            assert_eq!(
                (status, &body["error"]["code"]),
                (503, &json!("unavailable")),
                "{body}"
            );
            assert_eq!(
                replies(&ticket(&app, &id).await),
                0,
                "a refused email was recorded"
            );
            // The visitor's copy fails the same way: an error, nothing recorded.
            v.send(json!({"type": "email_transcript", "email": "olga@example.com"}))
                .await;
            v.wait_error("email_unavailable").await;
            let t = ticket(&app, &id).await;
            assert!(
                t["history"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|h| h["kind"] != "transcript_email"),
                "{t}"
            );
        } else {
            assert_eq!(status, 200, "{body}");
            let mail = sink.next().await;
            assert_eq!(
                mail.auth,
                Some(("shop-mailer".to_owned(), "mail-password-0123".to_owned()))
            );
            assert_eq!(mail.to, ["olga@example.com"]);
            assert_eq!(replies(&ticket(&app, &id).await), 1);
        }
        app.stop().await;
    }
}
