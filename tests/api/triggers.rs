//! Triggers: proactive messages after time on a matching page, once per visitor, never during
//! a chat, within business hours; the answer opens a chat in the trigger's department.
//!
//! Time on page passes on a test clock: a rule waits 30 s, and the test moves the clock instead of
//! waiting. "Did not fire" is asserted by order: a visitor who would have fired started timing
//! before another visitor whose trigger we saw fire, so its message would have come first.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    trigger_fires_on_matching_page_once,
    trigger_never_during_a_chat,
    trigger_only_in_business_hours,
    history_of_earlier_tickets
);

/// The time on page of the rules (on the test clock).
const DELAY_SECS: u64 = 30;

/// Moves the test clock past every page view's time on page so far.
fn time_passes(clock: &TestClock) {
    clock.advance(Duration::from_secs(DELAY_SECS));
}

async fn spawn_triggers(backend: Backend) -> (TestApp, Arc<TestClock>) {
    spawn_with_clock(backend, trigger_config()).await
}

fn trigger_config() -> switchboard::config::Config {
    let mut text = config_toml(&[agent("alice", "Alice Moreau", &["support", "sales"], 3)]);
    text.push_str(&format!(
        r#"
        [[sites.triggers]]
        id = "pricing"
        url = "https://shop.test/pricing*"
        time_on_page_secs = {DELAY_SECS}
        message = "Questions about our plans?"
        messages = {{ ru = "Вопросы о тарифах?" }}
        as_agent = "alice"
        department = "sales"

        [[sites.triggers]]
        id = "night"
        url = "https://shop.test/night*"
        time_on_page_secs = {DELAY_SECS}
        message = "We are open!"
        department = "support"
        business_hours_only = true
        "#
    ));
    switchboard::config::Config::from_toml(&text).expect("trigger configuration is valid")
}

async fn on_page(app: &TestApp, url: &str, extra: Value) -> Client {
    let mut hello = json!({"page": {"url": url, "title": "Page"}});
    if let (Some(h), Some(e)) = (hello.as_object_mut(), extra.as_object()) {
        h.extend(e.clone());
    }
    visitor(app, hello).await.0
}

/// True when nothing proactive arrived so far (after a round trip).
async fn no_proactive(c: &mut Client) -> bool {
    c.sync().await;
    !c.drain().iter().any(|m| m["type"] == "proactive")
}

/// After N seconds on a matching URL the widget gets the message; not on another URL; and
/// never twice for one visitor. The answer opens a sales chat that starts with that message.
async fn trigger_fires_on_matching_page_once(backend: Backend) {
    let (app, clock) = spawn_triggers(backend).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut other = on_page(&app, "https://shop.test/about", json!({})).await;
    let mut v = on_page(&app, "https://shop.test/pricing?plan=pro", json!({})).await;
    assert!(no_proactive(&mut v).await, "fired before its time on page");
    time_passes(&clock);
    let p = v.wait_type("proactive").await;
    assert_eq!(p["trigger"], "pricing");
    assert_eq!(p["text"], "Questions about our plans?");
    assert_eq!(p["author_name"], "Alice Moreau");
    assert!(no_proactive(&mut other).await, "fired on another URL");

    // A new page view on the same URL, and a new socket: the rule has fired for this visitor.
    v.send(json!({"type": "page", "url": "https://shop.test/pricing", "title": "Pricing"}))
        .await;
    v.sync().await;
    let mut later = on_page(&app, "https://shop.test/pricing", json!({})).await;
    time_passes(&clock);
    later.wait_type("proactive").await;
    assert!(no_proactive(&mut v).await, "fired twice for one visitor");

    // Answering opens the chat in sales; its transcript starts with the proactive message.
    v.send(json!({"type": "message", "client_id": "a1", "text": "Is there a discount?", "trigger": "pricing"}))
        .await;
    v.wait_for("ack", |m| m["type"] == "ack").await;
    let (_, assigned) = wait_assigned(&mut alice).await;
    assert_eq!(assigned["conversation"]["department"], "sales");
    let events = assigned["events"].as_array().unwrap();
    assert_eq!(events[0]["text"], "Questions about our plans?");
    assert_eq!(events[0]["author_name"], "Alice Moreau");
    assert_eq!(events[1]["text"], "Is there a discount?");

    // Russian visitors get the Russian message.
    let mut ru = on_page(
        &app,
        "https://shop.test/pricing",
        json!({"locale": "ru-RU"}),
    )
    .await;
    time_passes(&clock);
    assert_eq!(
        ru.wait_type("proactive").await["text"],
        "Вопросы о тарифах?"
    );
    app.stop().await;
}

/// A visitor already in a conversation gets no proactive message.
async fn trigger_never_during_a_chat(backend: Backend) {
    let (app, clock) = spawn_triggers(backend).await;
    let _alice = agent_client(&app, "alice", "online").await;
    let mut busy = on_page(&app, "https://shop.test/about", json!({})).await;
    say(&mut busy, "m1", "Hello").await;
    busy.wait_event("assigned").await;
    busy.send(json!({"type": "page", "url": "https://shop.test/pricing", "title": "Pricing"}))
        .await;
    busy.sync().await;
    let mut fresh = on_page(&app, "https://shop.test/pricing", json!({})).await;
    time_passes(&clock);
    fresh.wait_type("proactive").await;
    assert!(no_proactive(&mut busy).await, "fired during an open chat");
    app.stop().await;
}

/// A rule limited to business hours stays silent while its department is closed.
async fn trigger_only_in_business_hours(backend: Backend) {
    let mut cfg = trigger_config();
    cfg.sites[0].departments[0].hours = Some(
        toml::from_str(
            r#"timezone = "Europe/Berlin"
               monday = ["09:00-17:00"]"#,
        )
        .unwrap(),
    );
    // Monday 08:30 in Berlin: support is closed.
    let clock = TestClock::at("2026-11-23T07:30:00Z");
    let app = spawn_full(backend, cfg, None, clock.clone()).await;
    let mut closed = on_page(&app, "https://shop.test/night", json!({})).await;
    let mut witness = on_page(&app, "https://shop.test/pricing", json!({})).await;
    time_passes(&clock);
    witness.wait_type("proactive").await;
    assert!(no_proactive(&mut closed).await, "fired out of hours");
    // 10:00 in Berlin: open.
    clock.set("2026-11-23T09:00:00Z");
    let mut open = on_page(&app, "https://shop.test/night", json!({})).await;
    time_passes(&clock);
    let p = open.wait_type("proactive").await;
    assert_eq!(
        p["author_name"], "support",
        "a department without a name signs with its id"
    );
    app.stop().await;
}

/// An agent asks for a visitor's earlier tickets and gets them, newest first, with transcripts.
async fn history_of_earlier_tickets(backend: Backend) {
    let (app, _clock) = spawn_triggers(backend).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, welcome) = visitor(&app, json!({})).await;
    let visitor_id = welcome["visitor_id"].as_str().unwrap().to_owned();
    for (i, text) in ["first question", "second question"].iter().enumerate() {
        say(&mut v, &format!("m{i}"), text).await;
        let (conv, _) = wait_assigned(&mut alice).await;
        alice
            .send(json!({"type": "close", "conversation": conv}))
            .await;
        alice
            .wait_for("closed", |m| {
                m["type"] == "closed" && m["conversation"] == conv.as_str()
            })
            .await;
    }
    let (_, other) = visitor(&app, json!({})).await;
    alice
        .send(json!({"type": "history", "visitor": visitor_id}))
        .await;
    let h = alice.wait_type("history").await;
    let tickets = h["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    assert_eq!(tickets[0]["transcript"][0]["text"], "second question");
    assert_eq!(tickets[1]["transcript"][0]["text"], "first question");
    alice
        .send(json!({"type": "history", "visitor": other["visitor_id"]}))
        .await;
    assert_eq!(alice.wait_type("history").await["tickets"], json!([]));
    // The same over REST.
    let (status, body) = admin_get(&app, &format!("/v1/tickets?visitor={visitor_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["tickets"].as_array().unwrap().len(), 2);
    app.stop().await;
}

/// Redis only: one visitor with a tab on each of two nodes (sharing Redis and PostgreSQL, as
/// several nodes do) gets the message once, not twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_fires_once_across_nodes() {
    let prefix = unique_prefix();
    let clock = TestClock::now();
    let mut config = trigger_config();
    config.database_url = Some(postgres_database(&config).await);
    let a = spawn_full(Backend::Redis, config.clone(), Some(&prefix), clock.clone()).await;
    let b = spawn_full(Backend::Redis, config, Some(&prefix), clock.clone()).await;
    let pricing = json!({"page": {"url": "https://shop.test/pricing"}});
    let (mut on_a, welcome) = visitor(&a, pricing.clone()).await;
    let mut same = pricing.clone();
    same["token"] = welcome["token"].clone();
    let (mut on_b, again) = visitor(&b, same).await;
    assert_eq!(again["visitor_id"], welcome["visitor_id"]);
    // Both tabs started timing before the witnesses did: once each node's witness has its
    // message, each node has tried the visitor's rule.
    let mut witness_a = on_page(&a, "https://shop.test/pricing", json!({})).await;
    let mut witness_b = on_page(&b, "https://shop.test/pricing", json!({})).await;
    time_passes(&clock);
    witness_a.wait_type("proactive").await;
    witness_b.wait_type("proactive").await;
    // The winner's message is on its way to its tab; the loser sent none.
    async fn proactive(tabs: [&mut Client; 2]) -> usize {
        let mut n = 0;
        for tab in tabs {
            tab.sync().await;
            n += tab
                .drain()
                .iter()
                .filter(|m| m["type"] == "proactive")
                .count();
        }
        n
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut fired = 0;
    while fired == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rule never fired"
        );
        fired += proactive([&mut on_a, &mut on_b]).await;
    }
    fired += proactive([&mut on_a, &mut on_b]).await;
    assert_eq!(fired, 1, "the rule fired {fired} times for one visitor");
    a.stop().await;
    b.stop().await;
}
