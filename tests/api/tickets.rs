//! Tickets: every way a chat ends, ratings, offline messages, business hours, REST, and
//! webhooks (signed, retried with one delivery id, surviving restarts).

use std::time::Duration;

use serde_json::{Value, json};

use crate::all_stores;
use crate::helpers::*;

all_stores!(
    visitor_gets_a_copy_of_the_chat_by_email,
    offline_message_is_answered_by_email,
    email_authenticates_and_a_refusal_records_nothing,
    agents_work_the_tickets_of_their_departments,
    agent_close_ticket_has_transcript_history_and_metrics,
    visitor_close_and_inactivity_make_tickets,
    offline_message_becomes_a_ticket,
    rating_updates_the_ticket_and_notifies,
    webhook_retries_keep_one_delivery_id,
    restart_between_close_and_delivery,
    dead_deliveries_are_listed_and_retried,
    business_hours_decide_queue_or_offline,
    rest_filters_pagination_and_errors,
    privacy_requests_and_retention,
    search_finds_tickets_by_their_words,
    search_over_thousands_of_matches,
    follow_up_status_and_tags,
);

async fn ticket(app: &TestApp, id: &str) -> Value {
    let (status, t) = admin_get(app, &format!("/v1/tickets/{id}")).await;
    assert_eq!(status, 200, "{t}");
    t
}

/// A visitor with nobody on duty writes "Hello?" and leaves it as an offline message from
/// `email`: their socket and the ticket.
pub async fn offline_ticket(app: &TestApp, email: &str) -> (Client, String) {
    let (mut v, _) = visitor(app, json!({})).await;
    say(&mut v, "m1", "Hello?").await;
    v.wait_event("closed").await;
    v.send(json!({"type": "offline_message", "email": email, "text": "Hello?"}))
        .await;
    let id = v.wait_type("offline_received").await["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    (v, id)
}

/// Closes the visitor's chat as the agent; returns the ticket id from the `closed` ack.
async fn agent_closes(agent: &mut Client, conv: &str, reason: &str) -> String {
    agent
        .send(json!({"type": "close", "conversation": conv, "reason": reason}))
        .await;
    let ack = agent
        .wait_for("closed ack", |m| {
            m["type"] == "closed" && m["conversation"] == conv
        })
        .await;
    ack["ticket"].as_str().unwrap().to_owned()
}

/// The agent closes: the ticket carries visitor, pages, UTM, agents, history, transcript and metrics.
async fn agent_close_ticket_has_transcript_history_and_metrics(backend: Backend) {
    let mut hooks = Receiver::start(&[]).await;
    let mut cfg = config(&[alice(2), boris(2)]);
    with_webhook(
        &mut cfg,
        &hooks.url,
        &["ticket.created", "conversation.closed"],
    );
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, _) = visitor(
        &app,
        json!({"page": {"url": "https://shop.test/land?utm_source=news&utm_campaign=fall", "title": "Fall sale",
                        "referrer": "https://search.test/"}, "name": "Vera", "locale": "ru-RU"}),
    )
    .await;
    v.send(json!({"type": "page", "url": "https://shop.test/cart", "title": "Cart"}))
        .await;
    let conv = say(&mut v, "m1", "Где мой заказ?").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_assigned(&mut alice).await;
    agent_say(&mut alice, &conv, "a1", "Проверяю").await;
    let mut boris = agent_client(&app, "boris", "online").await;
    alice
        .send(json!({"type": "transfer", "conversation": conv, "to_agent": "boris", "reason": "shipping", "note": "DHL"}))
        .await;
    wait_assigned(&mut boris).await;
    agent_say(&mut boris, &conv, "b1", "Заказ в пути").await;
    let id = agent_closes(&mut boris, &conv, "resolved").await;
    assert_eq!(
        id, conv,
        "one ticket per conversation, same time-ordered id"
    );

    let t = ticket(&app, &id).await;
    assert_eq!(t["status"], "resolved");
    assert_eq!(t["close_reason"], "resolved");
    assert_eq!(t["closed_by"], "agent");
    assert_eq!(t["department"], "support");
    assert_eq!(t["visitor"]["name"], "Vera");
    assert_eq!(t["visitor"]["locale"], "ru-RU");
    assert_eq!(t["visitor"]["referrer"], "https://search.test/");
    assert_eq!(t["visitor"]["utm"]["utm_source"], "news");
    assert_eq!(t["visitor"]["utm"]["utm_campaign"], "fall");
    let pages: Vec<&str> = t["visitor"]["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        pages,
        [
            "https://shop.test/land?utm_source=news&utm_campaign=fall",
            "https://shop.test/cart"
        ]
    );
    let agents: Vec<&str> = t["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["Alice Moreau", "Boris Ivanov"]);
    let kinds: Vec<&str> = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["assigned", "transferred", "assigned"]);
    assert_eq!(t["history"][1]["reason"], "shipping");
    assert_eq!(t["history"][1]["note"], "DHL");
    let transcript = t["transcript"].as_array().unwrap();
    let seqs: Vec<u64> = transcript
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=transcript.len() as u64).collect::<Vec<_>>(),
        "every event, in order"
    );
    let messages: Vec<(&str, &str)> = transcript
        .iter()
        .filter(|e| e["kind"] == "message")
        .map(|e| {
            (
                e["author_name"].as_str().unwrap_or("visitor"),
                e["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        messages,
        [
            ("Vera", "Где мой заказ?"),
            ("Alice Moreau", "Проверяю"),
            ("Boris Ivanov", "Заказ в пути")
        ]
    );
    assert_eq!(transcript.last().unwrap()["kind"], "closed");
    let m = &t["metrics"];
    assert_eq!(m["visitor_messages"], 1);
    assert_eq!(m["agent_messages"], 2);
    assert!(m["queue_wait_secs"].as_f64().unwrap() >= 0.0);
    assert!(m["first_response_secs"].as_f64().unwrap() >= 0.0);
    assert!(m["handling_secs"].as_f64().unwrap() >= 0.0);
    assert!(t["rating"].is_null());

    // Deliveries run concurrently: take them in any order.
    let got = hooks.each(&["ticket.created", "conversation.closed"]).await;
    let created = &got["ticket.created"];
    assert!(created.signed_with(HOOK_SECRET));
    assert_eq!(created.json()["data"]["id"], id.as_str());
    let closed = &got["conversation.closed"];
    assert_eq!(closed.json()["data"]["ticket"], id.as_str());
    app.stop().await;
}

/// The visitor closes; another visitor goes silent past the inactivity timeout: both are tickets.
async fn visitor_close_and_inactivity_make_tickets(backend: Backend) {
    let mut cfg = config(&[alice(2)]);
    cfg.sites[0].inactivity_timeout_secs = 600.0;
    let (app, clock) = spawn_with_clock(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;

    let (mut v, _) = visitor(&app, json!({})).await;
    let conv = say(&mut v, "m1", "bye soon").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    v.wait_event("assigned").await;
    v.send(json!({"type": "close"})).await;
    let ack = v.wait_type("closed").await;
    assert_eq!(ack["conversation"], conv.as_str());
    let t = ticket(&app, ack["ticket"].as_str().unwrap()).await;
    assert_eq!(t["closed_by"], "visitor");
    assert_eq!(t["close_reason"], "visitor_closed");
    assert_eq!(t["status"], "resolved");

    let (mut quiet, _) = visitor(&app, json!({})).await;
    let conv = say(&mut quiet, "m1", "hello").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    quiet.wait_event("assigned").await;
    // Ten minutes of silence, on the test clock; Alice stays (her presence is refreshed).
    clock.advance(Duration::from_secs(601));
    agent_client(&app, "alice", "online").await;
    let closed = quiet.wait_event("closed").await;
    assert_eq!(closed["event"]["reason"], "visitor_inactive");
    assert!(
        closed["event"]["text"]
            .as_str()
            .unwrap()
            .contains("without messages"),
        "{closed}"
    );
    alice
        .wait_for("unassigned", |m| {
            m["type"] == "unassigned" && m["conversation"] == conv.as_str()
        })
        .await;
    // The ticket is written by the closing sweep; poll the API as a help desk would.
    let deadline = std::time::Instant::now() + WAIT;
    let t = loop {
        let (status, t) = admin_get(&app, &format!("/v1/tickets/{conv}")).await;
        if status == 200 {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ticket for the inactive chat"
        );
        tokio::task::yield_now().await;
    };
    assert_eq!(t["close_reason"], "visitor_inactive");
    assert_eq!(t["closed_by"], "system");
    app.stop().await;
}

/// No agent on duty: the offline reply, then the visitor's email and message make an offline ticket.
async fn offline_message_becomes_a_ticket(backend: Backend) {
    let mut hooks = Receiver::start(&[]).await;
    let mut cfg = config(&[alice(2)]);
    with_webhook(&mut cfg, &hooks.url, &["ticket.created", "ticket.updated"]);
    let app = spawn_app(backend, cfg).await;
    let (mut v, _) = visitor(&app, json!({})).await;
    say(&mut v, "m1", "Is anyone there?").await;
    v.wait_for("offline notice", |m| m["event"]["notice"] == "offline")
        .await;
    v.wait_event("closed").await;
    let first = hooks.next_event("ticket.created").await.json();
    assert_eq!(first["data"]["status"], "offline");
    assert_eq!(first["data"]["close_reason"], "no_agent");

    v.send(json!({"type": "offline_message", "email": "not-an-email", "text": "x"}))
        .await;
    v.wait_error("invalid_email").await;
    v.send(json!({"type": "offline_message", "email": "vera@example.com", "name": "Vera", "text": "Please call me back"}))
        .await;
    let got = v.wait_type("offline_received").await;
    let id = got["ticket"].as_str().unwrap();
    assert_eq!(
        id,
        first["data"]["id"].as_str().unwrap(),
        "joins the offline chat's ticket"
    );
    let t = ticket(&app, id).await;
    assert_eq!(t["status"], "offline");
    assert_eq!(t["offline_message"]["email"], "vera@example.com");
    assert_eq!(t["offline_message"]["text"], "Please call me back");
    assert_eq!(t["visitor"]["email"], "vera@example.com");
    let texts: Vec<&str> = t["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"Is anyone there?") && texts.contains(&"Please call me back"),
        "{texts:?}"
    );
    let updated = hooks.next_event("ticket.updated").await.json();
    assert_eq!(
        updated["data"]["offline_message"]["email"],
        "vera@example.com"
    );

    // An offline message with no chat before it is a ticket of its own.
    let (mut w, _) = visitor(&app, json!({})).await;
    w.send(
        json!({"type": "offline_message", "email": "max@example.com", "text": "Price list please"}),
    )
    .await;
    let got = w.wait_type("offline_received").await;
    let t = ticket(&app, got["ticket"].as_str().unwrap()).await;
    assert_eq!(t["close_reason"], "offline_message");
    assert_eq!(t["offline_message"]["text"], "Price list please");
    // The visitor ended nothing: the close says nothing (the widget thanks them itself).
    let closed = t["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "closed")
        .cloned()
        .unwrap_or_default();
    assert_eq!(closed["text"], "", "{closed}");
    app.stop().await;
}

/// A rating after the close lands on the ticket and sends `ticket.updated`.
async fn rating_updates_the_ticket_and_notifies(backend: Backend) {
    let mut hooks = Receiver::start(&[]).await;
    let mut cfg = config(&[alice(2)]);
    with_webhook(&mut cfg, &hooks.url, &["ticket.created", "ticket.updated"]);
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, _) = visitor(&app, json!({})).await;
    v.send(json!({"type": "rate", "score": 5})).await;
    v.wait_error("nothing_to_rate").await;
    let conv = say(&mut v, "m1", "hi").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_assigned(&mut alice).await;
    let id = agent_closes(&mut alice, &conv, "resolved").await;
    hooks.next_event("ticket.created").await;

    v.send(json!({"type": "rate", "score": 9})).await;
    v.wait_error("invalid_rating").await;
    v.send(json!({"type": "rate", "score": 4, "comment": "quick and kind"}))
        .await;
    let rated = v.wait_type("rated").await;
    assert_eq!(rated["ticket"], id.as_str());
    let t = ticket(&app, &id).await;
    assert_eq!(t["rating"]["score"], 4);
    assert_eq!(t["rating"]["comment"], "quick and kind");
    let hook = hooks.next_event("ticket.updated").await;
    assert!(hook.signed_with(HOOK_SECRET));
    assert!(!hook.signed_with("some-other-secret-123"));
    assert_eq!(hook.json()["data"]["rating"]["score"], 4);
    // The inbox filters by score.
    let (_, rated) = admin_get(&app, "/v1/tickets?rating=4").await;
    assert_eq!(rated["tickets"][0]["id"], id.as_str(), "{rated}");
    let (_, other) = admin_get(&app, "/v1/tickets?rating=3").await;
    assert_eq!(other["tickets"], json!([]));
    app.stop().await;
}

/// A receiver that fails three times, then succeeds, gets the event four times with one id.
async fn webhook_retries_keep_one_delivery_id(backend: Backend) {
    let mut hooks = Receiver::start(&[Answer::Fail, Answer::Fail, Answer::Fail]).await;
    let mut cfg = config(&[alice(2)]);
    with_webhook(&mut cfg, &hooks.url, &["ticket.created"]);
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut alice, "m1", "hi").await;
    let id = agent_closes(&mut alice, &conv, "resolved").await;
    let attempts: Vec<Hook> = vec![
        hooks.next().await,
        hooks.next().await,
        hooks.next().await,
        hooks.next().await,
    ];
    let ids: Vec<&str> = attempts.iter().map(|h| h.delivery.as_str()).collect();
    assert!(ids.iter().all(|d| *d == ids[0] && !d.is_empty()), "{ids:?}");
    for h in &attempts {
        assert_eq!(h.event, "ticket.created");
        assert!(h.signed_with(HOOK_SECRET));
        assert_eq!(h.json()["data"]["id"], id.as_str());
        assert_eq!(h.json()["id"], h.delivery.as_str());
    }
    // Accepted: no fifth attempt arrives (checked via the dead-letter list staying empty).
    let (status, dead) = admin_get(&app, "/v1/webhooks/dead").await;
    assert_eq!(status, 200);
    assert_eq!(dead["deliveries"], json!([]));
    app.stop().await;
}

/// A delivery that keeps failing past its retry window is kept as dead, listed and retried over REST.
async fn dead_deliveries_are_listed_and_retried(backend: Backend) {
    let mut hooks = Receiver::start(&[]).await;
    hooks.answer_from_now(Answer::Fail);
    let mut cfg = config(&[alice(2)]);
    with_webhook(&mut cfg, &hooks.url, &["ticket.created"]);
    cfg.sites[0].webhooks[0].retry_for_secs = 0.3;
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut alice, "m1", "hi").await;
    agent_closes(&mut alice, &conv, "resolved").await;
    let first = hooks.next().await;
    // Poll the dead-letter list as an operator would, until the retry window has passed.
    let deadline = std::time::Instant::now() + WAIT;
    let dead = loop {
        let (status, body) = admin_get(&app, "/v1/webhooks/dead").await;
        assert_eq!(status, 200);
        if let Some(d) = body["deliveries"].as_array().and_then(|d| d.first()) {
            break d.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the delivery never died"
        );
        tokio::task::yield_now().await;
    };
    assert_eq!(dead["id"], first.delivery.as_str());
    assert!(dead["attempts"].as_u64().unwrap() >= 1);
    assert_eq!(dead["last_error"], "HTTP 500");

    hooks.answer_from_now(Answer::Ok);
    let id = dead["id"].as_str().unwrap();
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/webhooks/dead/{id}/retry", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let delivered = loop {
        let h = hooks.next().await;
        if h.delivery == id {
            break h;
        }
    };
    assert!(delivered.signed_with(HOOK_SECRET));
    let (_, body) = admin_get(&app, "/v1/webhooks/dead").await;
    assert_eq!(body["deliveries"], json!([]));
    app.stop().await;
}

/// Switchboard restarts between the close and the delivery: the ticket survives and the same
/// delivery (same id) reaches the receiver after the restart.
async fn restart_between_close_and_delivery(backend: Backend) {
    // The first attempt hangs: the delivery is in flight when the server stops.
    let mut hooks = Receiver::start(&[Answer::Hang]).await;
    let mut cfg = config(&[alice(2)]);
    with_webhook(&mut cfg, &hooks.url, &["ticket.created"]);
    cfg.timing.webhook_timeout_secs = 60.0;
    cfg.timing.delivery_lease_secs = 0.5;
    let prefix = unique_prefix();
    let app = spawn_with(backend, cfg.clone(), Some(&prefix)).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (v, conv) = chat_with(&app, &mut alice, "m1", "hi").await;
    let id = agent_closes(&mut alice, &conv, "resolved").await;
    let in_flight = hooks.next().await;
    assert_eq!(in_flight.event, "ticket.created");
    drop((alice, v));
    app.stop().await;

    // Restarted on the same data directory (or the same Redis).
    let app = spawn_with(backend, cfg, Some(&prefix)).await;
    let t = ticket(&app, &id).await;
    assert_eq!(t["transcript"][0]["text"], "hi");
    let delivered = hooks.next().await;
    assert_eq!(
        delivered.delivery, in_flight.delivery,
        "the same delivery, not a new one"
    );
    assert!(delivered.signed_with(HOOK_SECRET));
    assert_eq!(delivered.json()["data"]["id"], id.as_str());
    app.stop().await;
}

/// Inside business hours a chat is queued or served; outside, and on holidays, the visitor gets
/// the offline reply at once and nothing is queued. Hours are in the department's zone.
async fn business_hours_decide_queue_or_offline(backend: Backend) {
    let mut cfg = config(&[alice(2)]);
    cfg.sites[0].departments[0].hours = Some(
        toml::from_str(
            r#"timezone = "Europe/Berlin"
               monday = ["09:00-17:00"]
               holidays = ["2026-12-21"]"#,
        )
        .unwrap(),
    );
    // Monday 2026-11-23, 07:30 UTC = 08:30 in Berlin: closed (though 09:00 is past in… Tokyo).
    let clock = TestClock::at("2026-11-23T07:30:00Z");
    let app = spawn_full(backend, cfg, None, clock.clone()).await;
    // On duty, but the department is closed.
    let _early = agent_client(&app, "alice", "online").await;

    let (mut v, _) = visitor(&app, json!({})).await;
    say(&mut v, "m1", "too early").await;
    let n = v.wait_event("notice").await;
    assert_eq!(n["event"]["notice"], "offline");
    let c = v.wait_event("closed").await;
    assert_eq!(c["event"]["reason"], "out_of_hours");

    // 08:30 UTC = 09:30 in Berlin: open; Alice (back at her console: an hour passed, and a
    // console that said nothing for an hour is past its grace) gets the chat.
    clock.set("2026-11-23T08:30:00Z");
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, _) = visitor(&app, json!({})).await;
    say(&mut v, "m1", "now?").await;
    v.wait_event("assigned").await;
    wait_assigned(&mut alice).await;

    // A holiday Monday at the same local time: closed.
    clock.set("2026-12-21T08:30:00Z");
    let (mut v, _) = visitor(&app, json!({})).await;
    say(&mut v, "m1", "holiday?").await;
    let c = v.wait_event("closed").await;
    assert_eq!(c["event"]["reason"], "out_of_hours");
    alice.sync().await;
    assert!(
        alice.drain().iter().all(|m| m["type"] != "assigned"),
        "nothing queued or assigned"
    );
    let (_, list) = admin_get(&app, "/v1/tickets?status=offline").await;
    assert_eq!(list["tickets"].as_array().unwrap().len(), 2);
    app.stop().await;
}

/// Filters, cursor pagination, 401 for a wrong token, 400 with a message for bad parameters.
async fn rest_filters_pagination_and_errors(backend: Backend) {
    let app = spawn_app(
        backend,
        config(&[alice(5), agent("boris", "Boris Ivanov", &["sales"], 5)]),
    )
    .await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (mut v, _) = visitor(&app, json!({})).await;
        let conv = say(&mut v, "m", &format!("resolved {i}")).await["conversation"]
            .as_str()
            .unwrap()
            .to_owned();
        wait_assigned(&mut alice).await;
        ids.push(agent_closes(&mut alice, &conv, "resolved").await);
    }
    // Two missed chats in sales: queued (Boris is away), then the visitor leaves.
    let _boris = agent_client(&app, "boris", "away").await;
    for i in 0..2 {
        let (mut v, _) = visitor(&app, json!({"department": "sales"})).await;
        say(&mut v, "m", &format!("missed {i}")).await;
        v.wait_for("queued", |m| m["event"]["notice"] == "queued")
            .await;
        v.send(json!({"type": "close"})).await;
        ids.push(
            v.wait_type("closed").await["ticket"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids.sort();
    ids.reverse();

    // Pages of two, newest first, no duplicates, no gaps.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tickets?limit=2&cursor={c}"),
            None => "/v1/tickets?limit=2".to_owned(),
        };
        let (status, page) = admin_get(&app, &path).await;
        assert_eq!(status, 200, "{page}");
        let got = page["tickets"].as_array().unwrap();
        assert!(got.len() <= 2);
        seen.extend(got.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let count = |v: &Value| v["tickets"].as_array().unwrap().len();
    for (query, want) in [
        ("status=resolved", 3),
        ("status=missed&department=sales", 2),
        ("agent=alice", 3),
        ("agent=boris", 0),
        ("since=2020-01-01T00:00:00Z", 5),
        ("since=2100-01-01T00:00:00Z", 0),
        // A date range: nothing closed before 2020, everything before 2100.
        ("until=2020-01-01T00:00:00Z", 0),
        ("since=2020-01-01T00:00:00Z&until=2100-01-01T00:00:00Z", 5),
        // Nobody rated these chats.
        ("rating=5", 0),
    ] {
        let (_, body) = admin_get(&app, &format!("/v1/tickets?{query}")).await;
        assert_eq!(count(&body), want, "{query}");
    }

    let (status, body) = http_get(app.addr, "/v1/tickets", Some("wrong-token")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = http_get(app.addr, "/v1/tickets", None).await;
    assert_eq!(status, 401);
    for (path, needle) in [
        ("/v1/tickets?limit=0", "limit"),
        ("/v1/tickets?since=yesterday", "since"),
        ("/v1/tickets?status=lost", "status"),
        ("/v1/tickets?colour=red", "colour"),
        ("/v1/tickets?cursor=../../etc", "cursor"),
        ("/v1/tickets?rating=6", "rating"),
        ("/v1/tickets?until=soon", "until"),
    ] {
        let (status, body) = admin_get(&app, path).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{body}"
        );
    }
    // A site that does not exist is not found, on every route that takes `site`.
    for path in [
        "/v1/tickets?site=nope",
        "/v1/agents?site=nope",
        "/v1/webhooks/dead?site=nope",
    ] {
        let (status, body) = admin_get(&app, path).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (404, &json!("unknown_site")),
            "{path}"
        );
    }
    let (status, _) = admin_get(&app, "/v1/tickets/01NOSUCHTICKET0000000000000").await;
    assert_eq!(status, 404);
    let (status, doc) = http_get(app.addr, "/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/tickets",
        "/v1/tickets/{id}",
        "/v1/webhooks/dead",
        "/v1/webhooks/dead/{id}/retry",
        "/v1/agents",
        "/v1/queues",
        "/v1/stats",
        "/v1/visitors",
        "/v1/audit",
        "/v1/sites",
        "/v1/sites/{site}",
        "/v1/sites/{site}/departments/{id}",
        "/v1/sites/{site}/agents/{id}/token",
        "/v1/sites/{site}/webhooks/{id}",
        "/v1/auth/sign-in",
        "/v1/auth/invite",
        "/v1/widget/{site}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    app.stop().await;
}

/// An upgrade from the JSON-file ticket store: its tickets and outbox entries, the complete
/// ones a crash left as `.tmp` files included, are imported into the database once, and the
/// directories are kept, renamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_is_imported_once() {
    let cfg = config(&[alice(2)]);
    let app = spawn_app(Backend::Memory, cfg).await;
    let mut console = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut console, "m1", "an old question").await;
    let id = agent_closes(&mut console, &conv, "resolved").await;
    let old = ticket(&app, &id).await;
    app.stop().await;

    // The layout the file store left: tickets/<id>.json, a torn-rename .tmp, an outbox entry.
    let cfg = config(&[alice(2)]);
    let dir = cfg.data_dir.clone();
    std::fs::create_dir_all(dir.join("tickets")).unwrap();
    std::fs::create_dir_all(dir.join("outbox")).unwrap();
    std::fs::write(dir.join(format!("tickets/{id}.json")), old.to_string()).unwrap();
    let mut crashed = old.clone();
    // Another valid id: the same with a different last character.
    let last = if id.ends_with('0') { '1' } else { '0' };
    let crashed_id = format!("{}{last}", &id[..id.len() - 1]);
    crashed["id"] = json!(crashed_id);
    std::fs::write(
        dir.join(format!("tickets/.{crashed_id}.json.tmp")),
        crashed.to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("tickets/.torn.json.tmp"), "{\"id\": \"01").unwrap();
    let dead = json!({"id": "d1", "site": SITE, "url": "http://127.0.0.1:9/hook",
        "event": "ticket.created", "body": "{}", "attempts": 9, "created_at": 1,
        "next_at": 1, "expires_at": 2, "last_error": "refused", "dead": true});
    std::fs::write(dir.join("outbox/d1.json"), dead.to_string()).unwrap();

    let app = spawn_app(Backend::Memory, cfg.clone()).await;
    assert_eq!(ticket(&app, &id).await, old);
    assert_eq!(ticket(&app, &crashed_id).await["id"], crashed_id.as_str());
    let (_, list) = admin_get(&app, "/v1/webhooks/dead").await;
    assert_eq!(list["deliveries"][0]["id"], "d1", "{list}");
    assert!(dir.join("tickets.imported").is_dir() && !dir.join("tickets").exists());
    assert!(dir.join("outbox.imported").is_dir());
    app.stop().await;
    // Once: a restart finds nothing more to import and keeps what it has.
    let app = spawn_app(Backend::Memory, cfg).await;
    let (_, list) = admin_get(&app, "/v1/tickets").await;
    assert_eq!(list["tickets"].as_array().unwrap().len(), 2);
    app.stop().await;
}

/// `switchboard migrate` brings an empty SQLite file and an empty PostgreSQL database to the
/// current schema, and running it again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_command_on_both_databases() {
    let cfg = config(&[]);
    let sqlite = format!("sqlite://{}", cfg.data_dir.join("records.db").display());
    let postgres = postgres_database(&cfg).await;
    for url in [sqlite, postgres] {
        for _ in 0..2 {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
                .args(["--database-url", &url, "migrate"])
                .output()
                .await
                .expect("switchboard runs");
            assert!(
                out.status.success(),
                "{url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let db = switchboard::db::Database::open(&url).await.unwrap();
        let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(
            version,
            switchboard::db::Database::schema_version(),
            "{url}"
        );
    }
}

/// Redis only: an upgrade from the version that kept tickets and the outbox in Redis. A node
/// copies them into the database once and renames the indexes; the next start imports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tickets_are_imported_once() {
    use redis::AsyncCommands;
    // A real ticket, as an earlier version would have written it.
    let app = spawn_app(Backend::Memory, config(&[alice(2)])).await;
    let mut console = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut console, "m1", "kept in Redis").await;
    let id = agent_closes(&mut console, &conv, "resolved").await;
    let old = ticket(&app, &id).await;
    app.stop().await;

    let prefix = unique_prefix();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut r = client.get_multiplexed_async_connection().await.unwrap();
    let site = |rest: &str| format!("{prefix}:{{{SITE}}}:{rest}");
    let outbox = |rest: &str| format!("{prefix}:{{outbox}}:{rest}");
    let dead = json!({"id": "d1", "site": SITE, "url": "http://127.0.0.1:9/hook",
        "event": "ticket.created", "body": "{}", "attempts": 9, "created_at": 1,
        "next_at": 1, "expires_at": 2, "last_error": "refused", "dead": true});
    let _: () = redis::pipe()
        .set(site(&format!("t:{id}")), old.to_string())
        .zadd(site("tickets"), &id, 0)
        .set(outbox("d:d1"), dead.to_string())
        .zadd(outbox("dead"), "d1", 1)
        .query_async(&mut r)
        .await
        .unwrap();

    let cfg = config(&[alice(2)]);
    let app = spawn_with(Backend::Redis, cfg.clone(), Some(&prefix)).await;
    assert_eq!(ticket(&app, &id).await, old);
    let (_, list) = admin_get(&app, "/v1/webhooks/dead").await;
    assert_eq!(list["deliveries"][0]["id"], "d1", "{list}");
    let renamed: bool = r.exists(site("tickets:imported")).await.unwrap();
    let index: bool = r.exists(site("tickets")).await.unwrap();
    assert!(renamed && !index);
    app.stop().await;
    // The next start finds nothing to import, and the database still has the ticket.
    let app = spawn_with(Backend::Redis, cfg, Some(&prefix)).await;
    let (_, list) = admin_get(&app, "/v1/tickets").await;
    assert_eq!(list["tickets"].as_array().unwrap().len(), 1);
    app.stop().await;
}

/// The record database a test server on `backend` uses.
async fn records(backend: Backend, cfg: &switchboard::config::Config) -> switchboard::db::Database {
    let url = match backend {
        Backend::Postgres => postgres_database(cfg).await,
        _ => switchboard::db::default_url(&cfg.data_dir),
    };
    switchboard::db::Database::open(&url).await.unwrap()
}

/// A visitor's data is exported whole and erased everywhere (tickets, live profile and
/// conversation), never while they chat, each request audited; tickets past the retention
/// setting go on their own.
async fn privacy_requests_and_retention(backend: Backend) {
    let mut cfg = config(&[alice(3)]);
    cfg.retention_days = Some(30);
    let (app, clock) = spawn_with_clock(backend, cfg.clone()).await;
    let mut console = agent_client(&app, "alice", "online").await;
    let (mut v, welcome) =
        visitor(&app, json!({"name": "Vera", "email": "vera@example.com"})).await;
    let vid = welcome["visitor_id"].as_str().unwrap().to_owned();
    let conv = say(&mut v, "m1", "my address is 1 Main St").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_assigned(&mut console).await;
    let id = agent_closes(&mut console, &conv, "resolved").await;

    let (status, data) = admin_get(&app, &format!("/v1/visitors/{vid}/export")).await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["visitor"]["email"], "vera@example.com");
    assert_eq!(data["tickets"][0]["id"], id.as_str());
    assert!(data.to_string().contains("1 Main St"));

    // Not while a chat is open.
    let (mut w, wwelcome) = visitor(&app, json!({})).await;
    let wconv = say(&mut w, "m1", "still here").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_assigned(&mut console).await;
    let busy_visitor = wwelcome["visitor_id"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let erase = |who: String| {
        client
            .delete(format!("http://{}/v1/visitors/{who}", app.addr))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    let resp = erase(busy_visitor).await.unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "visitor_busy");

    let resp = erase(vid.clone()).await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let (status, _) = admin_get(&app, &format!("/v1/tickets/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = admin_get(&app, &format!("/v1/visitors/{vid}/export")).await;
    assert_eq!(status, 404);
    assert_eq!(erase(vid.clone()).await.unwrap().status().as_u16(), 404);
    let db = records(backend, &cfg).await;
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit WHERE subject = $1 ORDER BY action")
            .bind(&vid)
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(actions, ["visitor.erase", "visitor.export"]);
    // The same over REST, newest first, a page at a time; reading a transcript is there too.
    let (status, log) = admin_get(&app, &format!("/v1/audit?subject={vid}&limit=1")).await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["entries"][0]["action"], "visitor.erase");
    assert_eq!(log["entries"][0]["actor"], "admin");
    let cursor = log["next_cursor"].as_str().unwrap();
    let (_, rest) = admin_get(
        &app,
        &format!("/v1/audit?subject={vid}&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(rest["entries"][0]["action"], "visitor.export");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (status, _) = admin_get(&app, "/v1/audit?who=me").await;
    assert_eq!(status, 400);

    // Retention: 31 days later the other chat's ticket is gone too.
    let other = agent_closes(&mut console, &wconv, "resolved").await;
    ticket(&app, &other).await;
    let (_, reads) = admin_get(
        &app,
        &format!("/v1/audit?action=ticket.read&subject={other}"),
    )
    .await;
    assert_eq!(reads["entries"].as_array().unwrap().len(), 1, "{reads}");
    clock.advance(std::time::Duration::from_secs(31 * 86_400));
    until_status(&app, &format!("/v1/tickets/{other}"), 404).await;
    // The figures kept for /v1/stats lost both tickets too (one erased, one expired).
    let (_, figures) = admin_get(&app, "/v1/stats?since=0").await;
    assert_eq!(figures["chats"], 0, "{figures}");
    // And the visitor's record, unseen for 31 days (visitor_retention_days: 30 by default).
    let gone = wwelcome["visitor_id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM visitors WHERE id = $1")
            .bind(gone)
            .fetch_one(db.pool())
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the visitor record outlived its retention"
        );
        tokio::task::yield_now().await;
    }
    app.stop().await;
}

/// `q` finds tickets by the words of their messages, notes and visitor, all words required,
/// whatever the case, combined with the other filters; search syntax in the words is just text.
async fn search_finds_tickets_by_their_words(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(3)])).await;
    let mut console = agent_client(&app, "alice", "online").await;
    let mut ids = Vec::new();
    for (name, text) in [
        ("Olga", "My parcel to Oslo is late"),
        ("Pavel", "Refund for order 7431, please"),
    ] {
        let (mut v, _) = visitor(&app, json!({"name": name})).await;
        let conv = say(&mut v, "m1", text).await["conversation"]
            .as_str()
            .unwrap()
            .to_owned();
        wait_assigned(&mut console).await;
        if name == "Pavel" {
            console
                .send(json!({"type": "note", "conversation": conv, "client_id": "n1", "text": "VIP customer"}))
                .await;
            console.wait_for("note ack", |m| m["type"] == "ack").await;
        }
        ids.push(agent_closes(&mut console, &conv, "resolved").await);
    }
    assert_eq!(found(&app, "oslo").await, [ids[0].clone()]);
    assert_eq!(found(&app, "PARCEL late").await, [ids[0].clone()]);
    assert_eq!(found(&app, "refund 7431").await, [ids[1].clone()]);
    assert_eq!(
        found(&app, "vip").await,
        [ids[1].clone()],
        "private notes are searched"
    );
    assert_eq!(
        found(&app, "pavel").await,
        [ids[1].clone()],
        "the visitor's name is searched"
    );
    assert!(
        found(&app, "parcel refund").await.is_empty(),
        "every word is required"
    );
    assert!(found(&app, "\"NEAR(oslo* OR").await.len() <= 1);
    let (_, none) = admin_get(&app, "/v1/tickets?q=oslo&status=offline").await;
    assert_eq!(none["tickets"], json!([]));
    app.stop().await;
}

/// The ids of the tickets `GET /v1/tickets?q=` finds.
async fn found(app: &TestApp, q: &str) -> Vec<String> {
    listed(app, &format!("q={}", urlencode(q))).await
}

/// The ids of the tickets `GET /v1/tickets?<query>` lists.
async fn listed(app: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = admin_get(app, &format!("/v1/tickets?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A PUT with the admin token; the status and the JSON body.
async fn admin_put(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(format!("http://{}{path}", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Offline messages start `open`, finished chats `solved`; follow-up and tags change over REST,
/// are recorded in the ticket's history, and filter the list.
async fn follow_up_status_and_tags(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    // Nobody on duty: the chat ends offline.
    let (mut v, _) = visitor(&app, json!({})).await;
    say(&mut v, "m1", "anyone?").await;
    let offline = v.wait_event("closed").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut console = agent_client(&app, "alice", "online").await;
    let (_w, conv) = chat_with(&app, &mut console, "m1", "hello").await;
    let served = agent_closes(&mut console, &conv, "resolved").await;
    until_status(&app, &format!("/v1/tickets/{offline}"), 200).await;
    assert_eq!(ticket(&app, &offline).await["follow_up"], "open");
    assert_eq!(ticket(&app, &served).await["follow_up"], "solved");
    assert_eq!(listed(&app, "follow_up=open").await, [offline.as_str()]);

    let (status, t) = admin_put(
        &app,
        &format!("/v1/tickets/{offline}/tags"),
        json!({"tags": ["Billing", "vip", "vip"]}),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["tags"], json!(["billing", "vip"]));
    let (status, t) = admin_put(
        &app,
        &format!("/v1/tickets/{offline}/follow-up"),
        json!({"status": "pending"}),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let t = ticket(&app, &offline).await;
    assert_eq!(t["follow_up"], "pending");
    let kinds: Vec<&str> = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.ends_with(&["tags", "follow_up"]), "{kinds:?}");
    assert_eq!(listed(&app, "tag=vip").await, [offline.as_str()]);
    assert_eq!(listed(&app, "follow_up=pending").await, [offline.as_str()]);
    assert!(listed(&app, "follow_up=open").await.is_empty());

    // A tag the document's schema allows (length) but the server does not (a space).
    let (status, e) = admin_put(
        &app,
        &format!("/v1/tickets/{offline}/tags"),
        json!({"tags": ["ok", "has space"]}),
    )
    .await;
    assert_eq!((status, &e["error"]["field"]), (422, &json!("tags[1]")));
    for (path, body) in [
        (
            format!("/v1/tickets/{offline}/follow-up"),
            json!({"status": "done"}),
        ),
        (
            format!("/v1/tickets/{offline}/follow-up"),
            json!({"state": "open"}),
        ),
    ] {
        let (status, e) = admin_put(&app, &path, body).await;
        assert_eq!(
            (status, &e["error"]["code"]),
            (400, &json!("bad_request")),
            "{path}"
        );
    }
    let (status, _) = admin_put(&app, "/v1/tickets/01NOPE/tags", json!({"tags": []})).await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// The durability setting reaches SQLite: `process` is synchronous=NORMAL, `power` FULL; and
/// the configuration file takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability_setting_reaches_sqlite() {
    use switchboard::db::{Database, Durability};
    let cfg = config(&[]);
    for (durability, level) in [(Durability::Process, 1), (Durability::Power, 2)] {
        let url = format!(
            "sqlite://{}",
            cfg.data_dir.join(format!("{level}.db")).display()
        );
        let db = Database::open_with(&url, durability).await.unwrap();
        let got: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(got, level, "{durability:?}");
    }
    let text = format!("durability = \"power\"\n{}", config_toml(&[]));
    let parsed = switchboard::config::Config::from_toml(&text).unwrap();
    assert_eq!(parsed.durability, Durability::Power);
}

/// A search that matches thousands of tickets (which SQLite answers by walking the tickets
/// newest first, where a rare word is answered by fetching its few matches) returns the newest
/// matches in order and pages on by cursor; a rare word among them is found too.
async fn search_over_thousands_of_matches(backend: Backend) {
    const MANY: usize = 2_100;
    let cfg = config(&[alice(3)]);
    let app = spawn_app(backend, cfg.clone()).await;
    let mut console = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut console, "m1", "a template chat").await;
    let id = agent_closes(&mut console, &conv, "resolved").await;
    let template: switchboard::tickets::Ticket =
        serde_json::from_value(ticket(&app, &id).await).unwrap();
    let store = switchboard::tickets::sql::SqlTickets::new(records(backend, &cfg).await);
    let start = template.closed_at - MANY as i64 * 1000;
    let tickets: Vec<_> = (0..MANY)
        .map(|i| {
            let mut t = template.clone();
            let at = start + i as i64 * 1000;
            t.id = ulid::Ulid::from_parts(at as u64, i as u128).to_string();
            t.closed_at = at;
            // Every one is a zebra; one in a thousand a narwhal too.
            let rare = if i % 1000 == 7 { " narwhal" } else { "" };
            t.visitor.name = Some(format!("Zebra {i}{rare}"));
            t
        })
        .collect();
    store.save_batch(&tickets).await.unwrap();
    let mut newest: Vec<String> = tickets.iter().rev().map(|t| t.id.clone()).collect();
    newest.truncate(100);
    let (status, page) = admin_get(&app, "/v1/tickets?q=zebra&limit=50").await;
    assert_eq!(status, 200, "{page}");
    let ids = |page: &Value| -> Vec<String> {
        page["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = ids(&page);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, next) = admin_get(
        &app,
        &format!("/v1/tickets?q=zebra&limit=50&cursor={cursor}"),
    )
    .await;
    assert_eq!([first, ids(&next)].concat(), newest);
    let (_, rare) = admin_get(&app, "/v1/tickets?q=narwhal%20zebra").await;
    let mut expected: Vec<String> = tickets
        .iter()
        .rev()
        .filter(|t| {
            t.visitor
                .name
                .as_deref()
                .is_some_and(|n| n.contains("narwhal"))
        })
        .map(|t| t.id.clone())
        .collect();
    expected.truncate(50);
    assert_eq!(ids(&rare), expected);
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
    let (status, e) = admin(
        app.addr,
        "POST",
        &format!("/v1/tickets/{conv}/reply"),
        Some(json!({"text": "hi"})),
    )
    .await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (409, &json!("conflict")),
        "{e}"
    );
    app.stop().await;

    // A site without an SMTP server: refused, nothing recorded.
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let (_v, id) = offline_ticket(&app, "olga@example.com").await;
    let (status, e) = admin(
        app.addr,
        "POST",
        &format!("/v1/tickets/{id}/reply"),
        Some(json!({"text": "hi"})),
    )
    .await;
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
        let (status, body) = admin(
            app.addr,
            "POST",
            &format!("/v1/tickets/{id}/reply"),
            Some(json!({"text": "Hello Olga"})),
        )
        .await;
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

/// Agents have an inbox too: the tickets of their own departments, to read, follow up and
/// answer; another department's tickets do not exist for them. Supervisors see every one.
async fn agents_work_the_tickets_of_their_departments(backend: Backend) {
    let cfg = config(&[alice(2), agent("sam", "Sam Reyes", &["sales"], 2)]);
    let app = spawn_app(backend, cfg).await;
    let offline = |dept: &'static str| {
        let app = &app;
        async move {
            let (mut v, _) = visitor(app, json!({"department": dept})).await;
            v.send(json!({"type": "offline_message", "email": "v@example.com", "text": format!("about {dept}")}))
                .await;
            v.wait_type("offline_received").await["ticket"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let support = offline("support").await;
    let sales = offline("sales").await;
    let as_agent = |who: &'static str, method: &'static str, path: String, body: Option<Value>| {
        let addr = app.addr;
        async move { http(addr, method, &path, Some(&token(who)), body).await }
    };
    // Alice works in support: she lists, reads and follows up its ticket only.
    let (status, list) = as_agent("alice", "GET", "/v1/tickets".into(), None).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [support.as_str()]);
    assert_eq!(
        as_agent("alice", "GET", format!("/v1/tickets/{support}"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        as_agent("alice", "GET", format!("/v1/tickets/{sales}"), None)
            .await
            .0,
        404
    );
    let follow = json!({"status": "pending"});
    let (status, _) = as_agent(
        "alice",
        "PUT",
        format!("/v1/tickets/{support}/follow-up"),
        Some(follow.clone()),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = as_agent(
        "alice",
        "PUT",
        format!("/v1/tickets/{sales}/follow-up"),
        Some(follow),
    )
    .await;
    assert_eq!(status, 404);
    // Asking for the other department gives nothing, not its tickets.
    let (_, list) = as_agent("alice", "GET", "/v1/tickets?department=sales".into(), None).await;
    assert_eq!(list["tickets"], json!([]));
    // Sam sees sales; the admin token sees both.
    let (_, list) = as_agent("sam", "GET", "/v1/tickets".into(), None).await;
    assert_eq!(list["tickets"][0]["id"], sales.as_str());
    assert_eq!(list["tickets"].as_array().unwrap().len(), 1);
    let (_, all) = admin_get(&app, "/v1/tickets").await;
    assert_eq!(all["tickets"].as_array().unwrap().len(), 2);
    app.stop().await;
}
