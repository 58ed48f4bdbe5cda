//! Tickets: every way a chat ends, ratings, offline messages, business hours, REST, and
//! webhooks (signed, retried with one delivery id, surviving restarts).

use std::time::Duration;

use serde_json::{Value, json};

use crate::all_stores;
use crate::helpers::*;

mod email;
mod inbound;
mod inbox;
mod records;
mod webhooks;

all_stores!(
    agent_close_ticket_has_transcript_history_and_metrics,
    visitor_close_and_inactivity_make_tickets,
    offline_message_becomes_a_ticket,
    rating_updates_the_ticket_and_notifies,
    business_hours_decide_queue_or_offline,
);

/// The admin answers a ticket by email (`POST /v1/tickets/{id}/reply`): the status and body.
pub async fn answer_by_email(app: &TestApp, id: &str, text: &str) -> (u16, Value) {
    let path = format!("/v1/tickets/{id}/reply");
    admin(app.addr, "POST", &path, Some(json!({ "text": text }))).await
}

pub(crate) async fn ticket(app: &TestApp, id: &str) -> Value {
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
pub(crate) async fn agent_closes(agent: &mut Client, conv: &str, reason: &str) -> String {
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

/// The record database a test server on `backend` uses.
async fn records_of(
    backend: Backend,
    cfg: &switchboard::config::Config,
) -> switchboard::db::Database {
    let url = match backend {
        Backend::Postgres => postgres_database(cfg).await,
        _ => switchboard::db::default_url(&cfg.data_dir),
    };
    switchboard::db::Database::open(&url).await.unwrap()
}
