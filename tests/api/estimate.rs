//! The wait estimate a queued visitor is told: a range, learned from the department's recent
//! chats, and its accuracy published (docs/routing.md).

use std::time::Duration;

use serde_json::{Value, json};

use crate::all_stores;
use crate::helpers::*;

all_stores!(the_estimate_learns_and_its_accuracy_is_published);

/// The queued notice of a visitor's chat: its estimate.
async fn queued_estimate(v: &mut Client) -> Value {
    let n = v
        .wait_for("queued notice", |m| {
            m["type"] == "event" && m["event"]["notice"] == "queued"
        })
        .await;
    n["event"]["estimate"].clone()
}

/// One agent, one chat at a time, chats that last a minute: each visitor waits a minute at
/// the head of the queue. The first estimates come from the configured handling time (300 s)
/// and miss; once the department's tickets show one-minute chats the estimate says a minute,
/// and its range holds the real waits. `/v1/stats` publishes how accurate they were. A
/// visitor who comes when the running chat is nearly done hears it is nearly done.
async fn the_estimate_learns_and_its_accuracy_is_published(backend: Backend) {
    // The clock jumps a minute per chat, faster than the console's presence is renewed (on
    // the wall clock): a long reconnect grace keeps alice present throughout.
    let text =
        config_toml(&[alice(1)]).replace("agent_grace_secs = 60.0", "agent_grace_secs = 7200.0");
    let config = switchboard::config::Config::from_toml(&text).expect("a valid configuration");
    let (app, clock) = spawn_with_clock(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut first, _) = visitor(&app, json!({})).await;
    say(&mut first, "m", "hello").await;
    let (mut current, _) = wait_assigned(&mut alice).await;
    let mut last = Value::Null;
    for i in 0..24 {
        let (mut v, _) = visitor(&app, json!({"locale": "en"})).await;
        say(&mut v, "m", &format!("visitor {i}")).await;
        let e = queued_estimate(&mut v).await;
        assert!(
            e["low_secs"].as_u64() <= e["secs"].as_u64()
                && e["secs"].as_u64() <= e["high_secs"].as_u64(),
            "a range around the point: {e}"
        );
        if i == 0 {
            assert_eq!(e["secs"], 300, "the configured handling time first: {e}");
        }
        last = e;
        clock.advance(Duration::from_secs(60));
        alice
            .send(json!({"type": "close", "conversation": current}))
            .await;
        current = wait_assigned(&mut alice).await.0;
        v.wait_event("assigned").await;
    }
    let point = last["secs"].as_u64().unwrap_or(0);
    assert!(
        (50..=70).contains(&point),
        "learned: one-minute chats, one at a time: {last}"
    );
    assert!(
        last["low_secs"].as_u64() <= Some(60) && last["high_secs"].as_u64() >= Some(60),
        "the range holds the real wait: {last}"
    );
    let (s, stats) = admin_get(&app, "/v1/stats?since=0").await;
    assert_eq!(s, 200, "{stats}");
    let w = &stats["wait_estimate"];
    assert!(w["samples"].as_u64() >= Some(23), "{w}");
    let coverage = w["coverage"].as_f64().unwrap_or(0.0);
    let error = w["median_error_ratio"].as_f64().unwrap_or(9.0);
    assert!(
        coverage >= 0.7,
        "most real waits in the range once learned: {w}"
    );
    assert!(error <= 0.3, "the median estimate within 30 %: {w}");
    let (_, metrics) = http_text(app.addr, "/metrics").await;
    assert!(
        metrics.contains("switchboard_wait_estimates_total")
            && metrics.contains("switchboard_wait_estimate_error_ratio"),
        "the accuracy on /metrics"
    );
    // How long alice's chat has run counts: 45 s into a one-minute chat, the next visitor
    // waits about the 15 s left (the backend keeps when each chat was assigned).
    clock.advance(Duration::from_secs(45));
    let (mut late, _) = visitor(&app, json!({"locale": "en"})).await;
    say(&mut late, "m", "after a while").await;
    let e = queued_estimate(&mut late).await;
    let point = e["secs"].as_u64().unwrap_or(0);
    assert!(
        (10..=20).contains(&point),
        "the 15 s left of the running chat: {e}"
    );
    app.stop().await;
}
