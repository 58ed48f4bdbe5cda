//! Chats an agent does not act on (docs/routing.md, "Offers and first replies"): in `assign`
//! mode a first reply missed, in `offer` mode an offer declined or let time out. The chat goes
//! to the next agent it has not been tried with, never back; after `max_tries` it overflows.
//! On the test clock, on both backends; then two nodes sweeping at once, a kill -9, and Redis
//! restarted empty.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard::config::Config;

use crate::both_backends;
use crate::health::until_ready_is;
use crate::helpers::*;
use crate::multinode::{start_process, visitor_at};

both_backends!(
    an_unanswered_chat_goes_to_the_next_agent_then_overflows,
    offers_are_accepted_declined_or_left_to_time_out,
    an_accepted_offer_is_watched_for_its_first_response,
);

/// The test site with `routing` on the support department; a long grace, since the clock
/// jumps past the consoles' presence renewals (wall clock).
fn routing_toml(agents: &[AgentSpec], routing: &str) -> String {
    config_toml(agents)
        .replace("agent_grace_secs = 60.0", "agent_grace_secs = 7200.0")
        .replace(
            r#"departments = [{ id = "support" }, { id = "sales" }]"#,
            &format!(r#"departments = [{{ id = "support", routing = {{ {routing} }} }}, {{ id = "sales" }}]"#),
        )
}

fn routing_config(agents: &[AgentSpec], routing: &str) -> Config {
    Config::from_toml(&routing_toml(agents, routing)).expect("a valid configuration")
}

fn conv_of(v: &Value) -> String {
    v["conversation"]
        .as_str()
        .expect("a conversation")
        .to_owned()
}

async fn notice(v: &mut Client, kind: &str) -> Value {
    v.wait_for(kind, |m| {
        m["type"] == "event" && m["event"]["notice"] == kind
    })
    .await
}

async fn unassigned(c: &mut Client, conv: &str) -> Value {
    c.wait_for("unassigned", |m| {
        m["type"] == "unassigned" && m["conversation"] == conv
    })
    .await
}

/// The entries of a ticket's history of one kind.
async fn history(app: &TestApp, conv: &str, kind: &str) -> Vec<Value> {
    let (status, t) = admin_get(app, &format!("/v1/tickets/{conv}")).await;
    assert_eq!(status, 200, "{t}");
    t["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["kind"] == kind)
        .cloned()
        .collect()
}

/// `first_reply_secs = 30`, `max_tries = 2`: Alice does not answer, so the chat goes to Boris
/// (never back to Alice, though she has room), the visitor told they are first in line; Boris
/// answers and keeps it. A second chat missed by Alice and then by Boris has been tried twice:
/// it reaches the offline form (no overflow department), closed as `max_tries`, both misses in
/// its ticket and counted per agent in `/metrics`; Boris keeps the chat he answered.
async fn an_unanswered_chat_goes_to_the_next_agent_then_overflows(backend: Backend) {
    let mut config = routing_config(
        &[alice(1), boris(2)],
        "first_reply_secs = 30, max_tries = 2",
    );
    let mut hooks = Receiver::start(&[]).await;
    with_webhook(&mut config, &hooks.url, &["conversation.missed"]);
    let (app, clock) = spawn_with_clock(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut boris = agent_client(&app, "boris", "away").await;
    let (mut v1, _) = visitor(&app, json!({})).await;
    let c1 = conv_of(&say(&mut v1, "a", "hello?").await);
    assert_eq!(wait_assigned(&mut alice).await.0, c1);
    v1.wait_event("assigned").await;

    clock.advance(Duration::from_secs(31));
    let gone = unassigned(&mut alice, &c1).await;
    assert_eq!(gone["reason"], "requeued", "{gone}");
    let told = notice(&mut v1, "reassigned").await;
    assert_eq!(told["event"]["position"], 1, "{told}");
    let missed = hooks.next_event("conversation.missed").await.json();
    assert_eq!(
        (
            missed["data"]["agent"].as_str(),
            missed["data"]["reason"].as_str()
        ),
        (Some("alice"), Some("no_reply")),
        "{missed}"
    );
    assert_eq!(
        queue_size(app.addr, "support").await,
        1,
        "waiting, not back with Alice"
    );

    boris
        .send(json!({"type": "set_status", "status": "online"}))
        .await;
    assert_eq!(wait_assigned(&mut boris).await.0, c1);
    agent_say(&mut boris, &c1, "b1", "Boris here").await;

    // A second chat: Alice (no chat) is ahead of Boris (one of two), and has never had it.
    let (mut v2, _) = visitor(&app, json!({})).await;
    let c2 = conv_of(&say(&mut v2, "a", "me too").await);
    assert_eq!(wait_assigned(&mut alice).await.0, c2);
    clock.advance(Duration::from_secs(31));
    unassigned(&mut alice, &c2).await;
    notice(&mut v2, "reassigned").await;
    assert_eq!(wait_assigned(&mut boris).await.0, c2);
    clock.advance(Duration::from_secs(31));
    unassigned(&mut boris, &c2).await;
    notice(&mut v2, "offline").await;
    let closed = v2.wait_event("closed").await;
    assert_eq!(closed["event"]["reason"], "max_tries", "{closed}");
    until_status(&app, &format!("/v1/tickets/{c2}"), 200).await;
    let missed = history(&app, &c2, "requeued").await;
    let who: Vec<(&str, &str)> = missed
        .iter()
        .map(|h| {
            (
                h["from"]["id"].as_str().unwrap_or_default(),
                h["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(who, [("alice", "no_reply"), ("boris", "no_reply")]);
    let (_, metrics) = http_text(app.addr, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchboard_missed_chats_total")
                && l.contains("agent=\"boris\"")
                && l.contains("reason=\"no_reply\"")),
        "missed chats counted per agent"
    );
    // The sweeps that took c2 passed over c1: Boris answered it.
    boris.sync().await;
    assert!(
        !boris
            .drain()
            .iter()
            .any(|m| m["type"] == "unassigned" && m["conversation"] == c1.as_str()),
        "an answered chat stays"
    );
    agent_say(&mut boris, &c1, "b2", "still here").await;
    app.stop().await;
}

/// `mode = "offer"`, `accept_secs = 20`: Alice's console shows the offer with its time left;
/// she cannot write in it before accepting. She declines (with a reason): the visitor is told
/// their place, and the chat is offered to Boris, who accepts: only then is the visitor
/// introduced to him. A second offer to Alice times out on the clock. The ticket keeps the
/// decline with its reason.
async fn offers_are_accepted_declined_or_left_to_time_out(backend: Backend) {
    let mut config = routing_config(&[alice(1), boris(1)], r#"mode = "offer", accept_secs = 20"#);
    let mut hooks = Receiver::start(&[]).await;
    with_webhook(&mut config, &hooks.url, &["conversation.missed"]);
    let (app, clock) = spawn_with_clock(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut boris = agent_client(&app, "boris", "away").await;
    let (mut v1, _) = visitor(&app, json!({})).await;
    let c1 = conv_of(&say(&mut v1, "a", "hello?").await);
    let (c, offer) = wait_assigned(&mut alice).await;
    assert_eq!(c, c1);
    let left = offer["conversation"]["offer_secs"].as_u64().unwrap_or(0);
    assert!((1..=20).contains(&left), "time left to accept: {offer}");

    alice
        .send(json!({"type": "message", "conversation": c1, "client_id": "x", "text": "hi"}))
        .await;
    alice.wait_error("not_accepted").await;
    for frame in [
        json!({"type": "close", "conversation": c1}),
        json!({"type": "transfer", "conversation": c1, "to_department": "sales", "reason": "x"}),
    ] {
        alice.send(frame).await;
        alice.wait_error("not_accepted").await;
    }
    alice
        .send(json!({"type": "decline", "conversation": c1, "reason": "busy"}))
        .await;
    unassigned(&mut alice, &c1).await;
    let missed = hooks.next_event("conversation.missed").await.json();
    assert_eq!(
        (
            missed["data"]["conversation"].as_str(),
            missed["data"]["agent"].as_str(),
            missed["data"]["reason"].as_str()
        ),
        (Some(c1.as_str()), Some("alice"), Some("declined")),
        "{missed}"
    );
    let told = notice(&mut v1, "queued").await;
    assert_eq!(told["event"]["position"], 1, "{told}");
    // Declined: never offered to Alice again, though she has room.
    alice.sync().await;
    assert_eq!(queue_size(app.addr, "support").await, 1);

    boris
        .send(json!({"type": "set_status", "status": "online"}))
        .await;
    let (c, offer) = wait_assigned(&mut boris).await;
    assert_eq!(c, c1);
    assert!(offer["conversation"]["offer_secs"].is_u64(), "{offer}");
    // Another agent can neither take nor refuse Boris's offer.
    for frame in [
        json!({"type": "accept", "conversation": c1}),
        json!({"type": "decline", "conversation": c1, "reason": "busy"}),
    ] {
        alice.send(frame).await;
        let refused = alice.wait_type("error").await;
        assert_eq!(refused["code"], "not_found", "{refused}");
    }
    boris
        .send(json!({"type": "accept", "conversation": c1}))
        .await;
    let intro = v1.wait_event("assigned").await;
    assert_eq!(intro["event"]["agent"]["id"], "boris", "{intro}");
    agent_say(&mut boris, &c1, "b1", "Boris here").await;
    // A second accept is refused: it is no longer an offer.
    boris
        .send(json!({"type": "accept", "conversation": c1}))
        .await;
    boris.wait_error("not_found").await;

    let (mut v2, _) = visitor(&app, json!({})).await;
    let c2 = conv_of(&say(&mut v2, "a", "me too").await);
    assert_eq!(wait_assigned(&mut alice).await.0, c2);
    clock.advance(Duration::from_secs(21));
    unassigned(&mut alice, &c2).await;
    notice(&mut v2, "queued").await;

    boris
        .send(json!({"type": "close", "conversation": c1}))
        .await;
    boris.wait_type("closed").await;
    let missed = history(&app, &c1, "requeued").await;
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(
        (
            missed[0]["from"]["id"].as_str(),
            missed[0]["reason"].as_str(),
            missed[0]["note"].as_str()
        ),
        (Some("alice"), Some("declined"), Some("busy"))
    );
    assert_eq!(history(&app, &c1, "assigned").await.len(), 1);
    app.stop().await;
}

/// Two nodes on one Redis and one clock, both sweeping every 100 ms: an offer that times out
/// is taken back once (one `requeued` in the ticket), and the chat never sits with two agents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_take_an_expired_offer_back_once() {
    let prefix = unique_prefix();
    let clock = TestClock::now();
    let config = || routing_config(&[alice(1), boris(1)], r#"mode = "offer", accept_secs = 20"#);
    let a = spawn_full(Backend::Redis, config(), Some(&prefix), clock.clone()).await;
    let b = spawn_full(Backend::Redis, config(), Some(&prefix), clock.clone()).await;
    let mut alice = agent_client(&a, "alice", "online").await;
    let mut boris = agent_client(&b, "boris", "away").await;
    let (mut v, _) = visitor(&b, json!({})).await;
    let c = conv_of(&say(&mut v, "a", "hello?").await);
    assert_eq!(wait_assigned(&mut alice).await.0, c);
    for _ in 0..3 {
        // Several sweeps of both nodes see it due.
        clock.advance(Duration::from_secs(21));
    }
    unassigned(&mut alice, &c).await;
    boris
        .send(json!({"type": "set_status", "status": "online"}))
        .await;
    assert_eq!(wait_assigned(&mut boris).await.0, c);
    boris
        .send(json!({"type": "accept", "conversation": c}))
        .await;
    v.wait_event("assigned").await;
    let (_, agents) = admin_get(&a, "/v1/agents").await;
    let load = |id: &str| {
        agents["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["id"] == id)
            .map(|x| x["load"].clone())
    };
    assert_eq!(
        (load("alice"), load("boris")),
        (Some(json!(0)), Some(json!(1))),
        "{agents}"
    );
    boris
        .send(json!({"type": "close", "conversation": c}))
        .await;
    boris.wait_type("closed").await;
    // Records: each node here has its own SQLite; the ticket is where the close was.
    let missed = history(&b, &c, "requeued").await;
    assert_eq!(missed.len(), 1, "taken back once: {missed:?}");
    assert_eq!(missed[0]["reason"], "offer_timeout");
    // The queue wait runs to the acceptance, not to the first offer (63 s of offers went by).
    let (_, t) = admin_get(&b, &format!("/v1/tickets/{c}")).await;
    let waited = t["metrics"]["queue_wait_secs"].as_f64().unwrap_or(0.0);
    assert!(waited >= 63.0, "queue wait {waited}: {t}");
    a.stop().await;
    b.stop().await;
}

/// kill -9 while a chat is offered (embedded, journaled): after the restart the offer is
/// resumed, with the time it had left, and accepted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_survives_kill() {
    let cfg = config(&[alice(1)]);
    let path = cfg.data_dir.with_extension("toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        routing_toml(&[alice(1)], r#"mode = "offer", accept_secs = 600"#),
    )
    .unwrap();
    let node = start_process(&path, false).await;
    let mut console = agent_client_at(node.addr, "alice").await;
    let mut v = visitor_at(node.addr).await;
    let c = conv_of(&say(&mut v, "a", "hello?").await);
    assert_eq!(wait_assigned(&mut console).await.0, c);
    node.kill().await;

    let node = start_process(&path, false).await;
    let mut console = agent_client_at(node.addr, "alice").await;
    let (again, offer) = wait_assigned(&mut console).await;
    assert_eq!(again, c, "the offer is resumed");
    let left = offer["conversation"]["offer_secs"].as_u64().unwrap_or(0);
    assert!((1..=600).contains(&left), "{offer}");
    console
        .send(json!({"type": "accept", "conversation": c}))
        .await;
    console
        .wait_for("the introduction", |m| {
            m["type"] == "event" && m["event"]["kind"] == "assigned"
        })
        .await;
    agent_say(&mut console, &c, "b1", "Alice here").await;
    console
        .send(json!({"type": "close", "conversation": c}))
        .await;
    console.wait_type("closed").await;
    let (status, t) = http_get(node.addr, &format!("/v1/tickets/{c}"), Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{t}");
    let kinds: Vec<&str> = t["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "assigned").count(),
        1,
        "introduced once: {kinds:?}"
    );
    assert!(!kinds.contains(&"requeued"), "{kinds:?}");
    node.kill().await;
}

/// Redis restarted without its data while an offer waits: the agent is told the offered chat
/// is gone (`lost`) and the visitor that their conversation is, the node heals on its own, and
/// offers work again: a new chat is offered to the same console, and accepting it introduces
/// the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_pending_when_redis_restarts_empty_is_released_and_offers_go_on() {
    let mut redis = PrivateRedis::start();
    let mut config = routing_config(&[alice(2)], r#"mode = "offer", accept_secs = 600"#);
    config.redis_url = Some(redis.url.clone());
    config.key_prefix = unique_prefix();
    let app = spawn_with(Backend::Memory, config, None).await;
    until_ready_is(app.addr, 200).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, _) = visitor(&app, json!({})).await;
    let c = conv_of(&say(&mut v, "a", "hello?").await);
    let (offered, offer) = wait_assigned(&mut alice).await;
    assert_eq!(offered, c);
    assert!(offer["conversation"]["offer_secs"].is_u64(), "{offer}");

    redis.restart_empty();
    let released = unassigned(&mut alice, &c).await;
    assert_eq!(released["reason"], "lost", "{released}");
    let e = v.wait_error("conversation_lost").await;
    assert_eq!(e["conversation"], c.as_str());
    until_ready_is(app.addr, 200).await;

    let (mut w, _) = visitor(&app, json!({})).await;
    let c2 = conv_of(&say(&mut w, "b", "anyone after the crash?").await);
    let (offered, offer) = wait_assigned(&mut alice).await;
    assert_eq!(offered, c2);
    assert!(offer["conversation"]["offer_secs"].is_u64(), "{offer}");
    // The lost offer cannot be accepted; the new one can.
    alice
        .send(json!({"type": "accept", "conversation": c}))
        .await;
    alice.wait_error("not_found").await;
    alice
        .send(json!({"type": "accept", "conversation": c2}))
        .await;
    let intro = w.wait_event("assigned").await;
    assert_eq!(intro["event"]["agent"]["id"], "alice", "{intro}");
    agent_say(&mut alice, &c2, "r1", "Alice here").await;
    app.stop().await;
}

/// In `offer` mode a chat accepted but not answered is watched against the first-response
/// target like an assigned one: at 80 % supervisors hear `sla_warning`, and the agent's reply
/// ends it. An offer still waiting is not watched, and the accepted chat is not taken back for
/// a slow reply.
async fn an_accepted_offer_is_watched_for_its_first_response(backend: Backend) {
    let sam = agent("sam", "Sam Supervisor", &["support"], 1);
    let text = routing_toml(
        &[alice(1), sam],
        r#"mode = "offer", accept_secs = 20, sla_first_response_secs = 60"#,
    )
    .replace(
        "id = \"sam\"\nname",
        "id = \"sam\"\nrole = \"supervisor\"\nname",
    );
    let config = Config::from_toml(&text).expect("a valid configuration");
    let (app, clock) = spawn_with_clock(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut sam = agent_client(&app, "sam", "away").await;
    let (mut v, _) = visitor(&app, json!({})).await;
    let c = conv_of(&say(&mut v, "a", "hello?").await);
    assert_eq!(wait_assigned(&mut alice).await.0, c);
    clock.advance(Duration::from_secs(15));
    alice
        .send(json!({"type": "accept", "conversation": c}))
        .await;
    v.wait_event("assigned").await;
    // 50 s after the first message: 80 % of the target (48 s) is past.
    clock.advance(Duration::from_secs(35));
    let near = sam.wait_type("sla_warning").await;
    assert_eq!(
        (
            near["conversation"].as_str(),
            near["target"].as_str(),
            near["breached"].as_bool()
        ),
        (Some(c.as_str()), Some("first_response"), Some(false)),
        "{near}"
    );
    // Long past the accept time: still Alice's (an accepted chat is not taken back).
    clock.advance(Duration::from_secs(30));
    let past = sam.wait_type("sla_warning").await;
    assert_eq!(
        (past["target"].as_str(), past["breached"].as_bool()),
        (Some("first_response"), Some(true)),
        "{past}"
    );
    agent_say(&mut alice, &c, "r1", "sorry, here now").await;
    alice.sync().await;
    assert!(
        alice.drain().iter().all(|m| m["type"] != "unassigned"),
        "the accepted chat stays Alice's"
    );
    app.stop().await;
}
