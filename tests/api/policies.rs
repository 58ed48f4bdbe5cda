//! Routing policies through real sockets (docs/routing.md): skills and page rules, priorities
//! in the queue's order, languages that widen on the test clock, the visitor's last agent.

use std::time::Duration;

use serde_json::json;
use switchboard::config::Config;

use crate::helpers::*;
use crate::{all_stores, both_backends};

both_backends!(
    skills_and_page_rules_choose_the_agent_and_the_order,
    a_language_is_preferred_then_widened,
    a_policy_set_over_rest_applies_at_once,
    a_chat_that_waits_too_long_overflows_then_reaches_the_offline_form,
    a_silent_visitor_is_warned_once_per_silence_then_the_chat_closes,
    a_signed_attribute_raises_the_priority_and_a_forged_one_is_refused,
);

// The last agent is read from the tickets, and the service levels counted from them: on
// PostgreSQL too.
all_stores!(
    a_returning_visitor_gets_their_last_agent,
    supervisors_hear_of_a_chat_nearing_and_passing_its_service_level,
);

/// The test site with agents' skills and a `[sites.routing]` table.
fn policy_config(agents: &[(AgentSpec, &[&str])], routing: &str) -> Config {
    let specs: Vec<AgentSpec> = agents.iter().map(|(a, _)| a.clone()).collect();
    let mut text = config_toml(&specs);
    for (a, skills) in agents {
        text = text.replace(
            &format!("id = {:?}\nname", a.id),
            &format!("id = {:?}\nskills = {:?}\nname", a.id, skills),
        );
    }
    text.push_str("[sites.routing]\n");
    text.push_str(routing);
    Config::from_toml(&text).expect("a valid configuration")
}

async fn visitor_on(app: &TestApp, url: &str, locale: &str) -> Client {
    visitor(
        app,
        json!({"page": {"url": url, "title": "Page"}, "locale": locale}),
    )
    .await
    .0
}

fn conv_of(ack: &serde_json::Value) -> String {
    ack["conversation"]
        .as_str()
        .expect("a conversation")
        .to_owned()
}

/// A checkout page requires `billing` and raises the priority: the chat goes to the agent with
/// the skill though another is idle longer, and once both are full it waits ahead of an older
/// chat, its position saying so.
async fn skills_and_page_rules_choose_the_agent_and_the_order(backend: Backend) {
    let config = policy_config(
        &[(alice(1), &[]), (boris(1), &["billing"])],
        "rules = [{ url = \"*/checkout*\", priority = 1, skills = [\"billing\"] }]\n",
    );
    let app = spawn_app(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut boris = agent_client(&app, "boris", "online").await;
    let mut v1 = visitor_on(&app, "https://shop.test/checkout", "en").await;
    let c1 = conv_of(&say(&mut v1, "m1", "my card was refused").await);
    let (got, _) = wait_assigned(&mut boris).await;
    assert_eq!(got, c1, "the checkout chat goes to the agent with billing");
    let mut v2 = visitor_on(&app, "https://shop.test/", "en").await;
    let c2 = conv_of(&say(&mut v2, "m2", "hello").await);
    assert_eq!(wait_assigned(&mut alice).await.0, c2);

    // Both full: an ordinary chat, then a checkout chat, which goes ahead of it.
    let mut v3 = visitor_on(&app, "https://shop.test/", "en").await;
    let c3 = conv_of(&say(&mut v3, "m3", "a question").await);
    v3.wait_for("queued first", |m| {
        m["type"] == "event" && m["event"]["position"] == 1
    })
    .await;
    let mut v4 = visitor_on(&app, "https://shop.test/checkout?step=2", "en").await;
    let c4 = conv_of(&say(&mut v4, "m4", "payment failed").await);
    v4.wait_for("queued ahead", |m| {
        m["type"] == "event" && m["event"]["position"] == 1
    })
    .await;
    v3.wait_for("moved back", |m| m["type"] == "queue" && m["position"] == 2)
        .await;

    // Alice frees a slot: the checkout chat needs billing, so the ordinary one is hers; it
    // does not wait behind a chat she cannot take.
    alice
        .send(json!({"type": "close", "conversation": c2}))
        .await;
    assert_eq!(wait_assigned(&mut alice).await.0, c3);
    boris
        .send(json!({"type": "close", "conversation": c1}))
        .await;
    assert_eq!(wait_assigned(&mut boris).await.0, c4);
    app.stop().await;
}

/// With `language = true`, a Russian speaker's chat waits for an agent with `lang:ru` while
/// the only free agent lacks it; once it has waited `widen_after_secs` (the test clock moved),
/// anyone may take it.
async fn a_language_is_preferred_then_widened(backend: Backend) {
    let config = policy_config(
        &[(alice(2), &["lang:en"])],
        "language = true\nwiden_after_secs = 30\n",
    );
    let (app, clock) = spawn_with_clock(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut en = visitor_on(&app, "https://shop.test/", "en-GB").await;
    let c_en = conv_of(&say(&mut en, "e1", "hello").await);
    assert_eq!(
        wait_assigned(&mut alice).await.0,
        c_en,
        "she speaks English"
    );
    let mut ru = visitor_on(&app, "https://shop.test/", "ru").await;
    let c_ru = conv_of(&say(&mut ru, "r1", "здравствуйте").await);
    ru.wait_for("queued", |m| {
        m["type"] == "event" && m["event"]["position"] == 1
    })
    .await;
    alice.sync().await;
    assert!(
        alice.drain().iter().all(|m| m["type"] != "assigned"),
        "not before the widening time, though she has room"
    );
    // Less than the agents' reconnect grace: a jump past it would count alice as gone.
    clock.advance(Duration::from_secs(31));
    assert_eq!(wait_assigned(&mut alice).await.0, c_ru, "widened");
    ru.wait_event("assigned").await;
    app.stop().await;
}

/// A returning visitor (within `sticky_days`) waits for the agent of their last chat while
/// that agent is full, though another has room, and takes them when they free a slot; past
/// `sticky_wait_secs` (the test clock moved) the chat is routed normally.
async fn a_returning_visitor_gets_their_last_agent(backend: Backend) {
    let config = policy_config(
        &[(alice(1), &[]), (boris(3), &[])],
        "sticky_days = 30\nsticky_wait_secs = 60\n",
    );
    let (app, clock) = spawn_with_clock(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut v1 = visitor_on(&app, "https://shop.test/", "en").await;
    let first = conv_of(&say(&mut v1, "a1", "first visit").await);
    assert_eq!(wait_assigned(&mut alice).await.0, first);
    let close = |conv: &str| json!({"type": "close", "conversation": conv});
    alice.send(close(&first)).await;
    v1.wait_event("closed").await;
    let mut boris = agent_client(&app, "boris", "online").await;
    // Boris, idle longest, takes the next chat; then alice takes one and is full.
    let mut v2 = visitor_on(&app, "https://shop.test/", "en").await;
    let c2 = conv_of(&say(&mut v2, "b1", "hi").await);
    assert_eq!(wait_assigned(&mut boris).await.0, c2);
    let mut v3 = visitor_on(&app, "https://shop.test/", "en").await;
    let c3 = conv_of(&say(&mut v3, "c1", "hello").await);
    assert_eq!(wait_assigned(&mut alice).await.0, c3);

    // The first visitor returns: their chat waits for alice though boris has room.
    let second = conv_of(&say(&mut v1, "a2", "me again").await);
    assert_ne!(second, first, "a new conversation");
    v1.wait_for("waits for alice", |m| {
        m["type"] == "event" && m["event"]["position"] == 1
    })
    .await;
    alice.send(close(&c3)).await;
    assert_eq!(wait_assigned(&mut alice).await.0, second, "alice again");
    boris.sync().await;
    assert!(
        boris.drain().iter().all(|m| m["type"] != "assigned"),
        "boris never had it"
    );

    // Once more, alice full: past the wait, the chat is routed normally (boris).
    alice.send(close(&second)).await;
    v1.wait_event("closed").await;
    let mut v4 = visitor_on(&app, "https://shop.test/", "en").await;
    let c4 = conv_of(&say(&mut v4, "d1", "hey").await);
    assert_eq!(wait_assigned(&mut alice).await.0, c4);
    let third = conv_of(&say(&mut v1, "a3", "and again").await);
    v1.wait_for("waits for alice", |m| {
        m["type"] == "event" && m["event"]["position"] == 1
    })
    .await;
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        wait_assigned(&mut boris).await.0,
        third,
        "routed normally after sticky_wait_secs"
    );
    app.stop().await;
}

/// A department's policy set over REST is checked field by field, audit-logged, and in force
/// for the next chat: a required skill sends it to the agent who has it.
async fn a_policy_set_over_rest_applies_at_once(backend: Backend) {
    let config = policy_config(&[(alice(2), &[]), (boris(2), &["billing"])], "");
    let app = spawn_app(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut boris = agent_client(&app, "boris", "online").await;
    let path = "/v1/sites/test/departments/support";
    for (routing, field) in [
        (json!({"priority": 12}), "routing.priority"),
        (json!({"skills": ["no spaces"]}), "routing.skills[0]"),
        (json!({"age_boost_secs": 0}), "routing.age_boost_secs"),
        (json!({"overflow_to": "nowhere"}), "routing.overflow_to"),
        // A rule, or the policy, given as an array of its fields (serde's default would take it).
        (json!({"rules": [[null, null]]}), "body"),
        (json!([]), "body"),
        (json!({"rules": [{"priority": 1, "colour": "red"}]}), "body"),
    ] {
        let (s, b) = admin(app.addr, "PUT", path, Some(json!({"routing": routing}))).await;
        assert_eq!(s, 422, "{routing}: {b}");
        assert!(
            b["error"]["field"]
                .as_str()
                .is_some_and(|f| f.starts_with(field)),
            "{routing}: {b}"
        );
    }
    let (s, b) = admin(
        app.addr,
        "PUT",
        path,
        Some(json!({"routing": {"skills": ["billing"]}})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["routing"]["skills"], json!(["billing"]), "{b}");
    let mut v = visitor_on(&app, "https://shop.test/", "en").await;
    let c = conv_of(&say(&mut v, "m1", "an invoice question").await);
    assert_eq!(
        wait_assigned(&mut boris).await.0,
        c,
        "only boris has billing"
    );
    alice.sync().await;
    assert!(alice.drain().iter().all(|m| m["type"] != "assigned"));
    let (_, log) = admin_get(&app, "/v1/audit?action=directory.department.update").await;
    assert_eq!(log["entries"].as_array().map(Vec::len), Some(1), "{log}");
    app.stop().await;
}

/// Support waits at most a minute, then overflows to sales; sales waits a minute too, and is
/// the end of the chain. The visitor is told at each step (the department by name), the
/// history records the move, and at the end the offline form is offered: what the visitor
/// writes there joins the chat's ticket, which waits in the inbox.
async fn a_chat_that_waits_too_long_overflows_then_reaches_the_offline_form(backend: Backend) {
    let mut text = config_toml(&[alice(1), agent("boris", "Boris Ivanov", &["sales"], 1)])
        // The clock jumps past the console's presence renewal (wall clock): a long grace.
        .replace("agent_grace_secs = 60.0", "agent_grace_secs = 7200.0")
        .replace(
            r#"departments = [{ id = "support" }, { id = "sales" }]"#,
            r#"departments = [
                { id = "support", routing = { max_wait_secs = 60, overflow_to = "sales" } },
                { id = "sales", name = "Sales team", routing = { max_wait_secs = 60 } },
            ]"#,
        );
    text.push('\n');
    let mut config = Config::from_toml(&text).expect("a valid configuration");
    let mut hooks = Receiver::start(&[]).await;
    with_webhook(&mut config, &hooks.url, &["conversation.overflowed"]);
    let (app, clock) = spawn_with_clock(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut boris = agent_client(&app, "boris", "online").await;
    let mut v0 = visitor_on(&app, "https://shop.test/", "en").await;
    say(&mut v0, "a", "support question").await;
    wait_assigned(&mut alice).await;
    let (mut v1, _) = visitor(&app, json!({"department": "sales"})).await;
    say(&mut v1, "b", "sales question").await;
    wait_assigned(&mut boris).await;

    let mut v = visitor_on(&app, "https://shop.test/", "en").await;
    let c = conv_of(&say(&mut v, "c", "anyone?").await);
    v.wait_for("queued", |m| {
        m["type"] == "event" && m["event"]["notice"] == "queued"
    })
    .await;
    clock.advance(Duration::from_secs(61));
    let moved = v
        .wait_for("overflowed", |m| {
            m["type"] == "event" && m["event"]["notice"] == "overflowed"
        })
        .await;
    let said = moved["event"]["text"].as_str().unwrap_or_default();
    assert!(
        said.contains("Sales team"),
        "the new department by name: {said}"
    );
    let hook = hooks.next_event("conversation.overflowed").await.json();
    assert_eq!(
        (
            hook["data"]["conversation"].as_str(),
            hook["data"]["from"].as_str(),
            hook["data"]["to"].as_str()
        ),
        (Some(c.as_str()), Some("support"), Some("sales")),
        "{hook}"
    );
    let queued = v
        .wait_for("queued in sales", |m| {
            m["type"] == "event" && m["event"]["notice"] == "queued"
        })
        .await;
    assert_eq!(queued["event"]["position"], 1, "{queued}");
    let (_, queues) = admin_get(&app, "/v1/queues").await;
    let size = |d: &str| {
        queues["queues"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|q| q["department"] == d)
            .map(|q| q["size"].clone())
    };
    assert_eq!(
        (size("support"), size("sales")),
        (Some(json!(0)), Some(json!(1))),
        "{queues}"
    );

    // The end of the chain: the offline form, never a silent close.
    clock.advance(Duration::from_secs(61));
    v.wait_for("offline form", |m| {
        m["type"] == "event" && m["event"]["notice"] == "offline"
    })
    .await;
    let closed = v.wait_event("closed").await;
    assert_eq!(closed["event"]["reason"], "max_wait", "{closed}");
    // The chat's ticket is filed as it closes; the form's message joins it.
    until_status(&app, &format!("/v1/tickets/{c}"), 200).await;
    v.send(json!({"type": "offline_message", "email": "nina@example.com", "text": "Call me back"}))
        .await;
    let got = v.wait_type("offline_received").await;
    assert_eq!(got["ticket"], c.as_str(), "the chat's own ticket: {got}");
    let (s, t) = admin_get(&app, &format!("/v1/tickets/{c}")).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (t["status"].as_str(), t["follow_up"].as_str()),
        (Some("offline"), Some("open")),
        "{t}"
    );
    assert_eq!(t["offline_message"]["text"], "Call me back", "{t}");
    let moves: Vec<&serde_json::Value> = t["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["kind"] == "transferred")
        .collect();
    assert_eq!(moves.len(), 1, "{t}");
    assert_eq!(
        (
            moves[0]["to_department"].as_str(),
            moves[0]["reason"].as_str()
        ),
        (Some("sales"), Some("max_wait"))
    );
    app.stop().await;
}

/// Ten minutes of silence close a chat; a minute before, the visitor is asked whether they are
/// still there, once per silence (sweeps run every 100 ms; the warning's client id keeps it to
/// one). An answer starts a new silence, with its own warning.
async fn a_silent_visitor_is_warned_once_per_silence_then_the_chat_closes(backend: Backend) {
    let text = config_toml(&[alice(2)])
        // The clock jumps past the console's presence renewal (wall clock): a long grace.
        .replace("agent_grace_secs = 60.0", "agent_grace_secs = 7200.0");
    let mut config = Config::from_toml(&text).expect("a valid configuration");
    config.sites[0].inactivity_timeout_secs = 600.0;
    let (app, clock) = spawn_with_clock(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut v = visitor_on(&app, "https://shop.test/", "en").await;
    let c = conv_of(&say(&mut v, "m1", "hello").await);
    wait_assigned(&mut alice).await;
    let warned = |m: &serde_json::Value| {
        m["type"] == "event" && m["event"]["notice"] == "inactivity_warning"
    };
    clock.advance(Duration::from_secs(545));
    let w = v.wait_for("the warning", warned).await;
    assert!(
        w["event"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("1 min"),
        "{w}"
    );
    clock.advance(Duration::from_secs(10));
    say(&mut v, "m2", "still here").await;
    clock.advance(Duration::from_secs(545));
    v.wait_for("the second silence's warning", warned).await;
    clock.advance(Duration::from_secs(60));
    let closed = v.wait_event("closed").await;
    assert_eq!(closed["event"]["reason"], "visitor_inactive", "{closed}");
    until_status(&app, &format!("/v1/tickets/{c}"), 200).await;
    let (_, t) = admin_get(&app, &format!("/v1/tickets/{c}")).await;
    let warnings = t["transcript"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["notice"] == "inactivity_warning")
        .count();
    assert_eq!(warnings, 2, "one per silence: {t}");
    app.stop().await;
}

/// Support's targets: a minute in the queue, half a minute to a first reply. At 80 % of the
/// wait a supervisor's console hears `sla_warning`, at 100 % a breach (an agent's console
/// hears neither); the same for a chat assigned but not answered, against the first-response
/// target; the ticket's history has them; `/v1/stats` counts the breaches of both targets from
/// the tickets, and `/metrics` the breaches.
async fn supervisors_hear_of_a_chat_nearing_and_passing_its_service_level(backend: Backend) {
    let sam = agent("sam", "Sam Supervisor", &["support"], 1);
    let text = config_toml(&[alice(1), sam])
        .replace("agent_grace_secs = 60.0", "agent_grace_secs = 7200.0")
        .replace(
            "id = \"sam\"\nname",
            "id = \"sam\"\nrole = \"supervisor\"\nname",
        )
        .replace(
            r#"departments = [{ id = "support" }, { id = "sales" }]"#,
            r#"departments = [
                { id = "support", routing = { sla_wait_secs = 60, sla_first_response_secs = 30 } },
                { id = "sales" },
            ]"#,
        );
    let mut config = Config::from_toml(&text).expect("a valid configuration");
    let mut hooks = Receiver::start(&[]).await;
    with_webhook(&mut config, &hooks.url, &["sla.warning", "sla.breached"]);
    let (app, clock) = spawn_with_clock(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let mut sam = agent_client(&app, "sam", "away").await;
    let mut v0 = visitor_on(&app, "https://shop.test/", "en").await;
    let c0 = conv_of(&say(&mut v0, "a", "first").await);
    wait_assigned(&mut alice).await;
    // Alice has not answered the first chat: at 24 s, 80 % of the first-response target.
    clock.advance(Duration::from_secs(25));
    let unanswered = sam.wait_type("sla_warning").await;
    assert_eq!(
        (
            unanswered["conversation"].as_str(),
            unanswered["target"].as_str(),
            unanswered["breached"].as_bool()
        ),
        (Some(c0.as_str()), Some("first_response"), Some(false)),
        "{unanswered}"
    );
    let hook = hooks.next_event("sla.warning").await.json();
    assert_eq!(
        (
            hook["data"]["conversation"].as_str(),
            hook["data"]["target"].as_str()
        ),
        (Some(c0.as_str()), Some("first_response")),
        "{hook}"
    );
    agent_say(&mut alice, &c0, "r0", "here").await;
    let mut v = visitor_on(&app, "https://shop.test/", "en").await;
    let c = conv_of(&say(&mut v, "b", "waiting").await);
    v.wait_for("queued", |m| {
        m["type"] == "event" && m["event"]["notice"] == "queued"
    })
    .await;
    clock.advance(Duration::from_secs(49));
    let near = sam.wait_type("sla_warning").await;
    assert_eq!(
        (
            near["conversation"].as_str(),
            near["department"].as_str(),
            near["breached"].as_bool()
        ),
        (Some(c.as_str()), Some("support"), Some(false)),
        "{near}"
    );
    assert_eq!(
        (near["target"].as_str(), near["target_secs"].as_u64()),
        (Some("wait"), Some(60)),
        "{near}"
    );
    clock.advance(Duration::from_secs(12));
    let past = sam.wait_type("sla_warning").await;
    assert_eq!(past["breached"], true, "{past}");
    // Answered: the first chat is no longer counted against its first-response target.
    assert_ne!(past["conversation"], c0.as_str(), "{past}");
    alice.sync().await;
    assert!(
        alice.drain().iter().all(|m| m["type"] != "sla_warning"),
        "agents do not hear service levels"
    );
    // Served late and answered late: both targets missed, in the records.
    alice
        .send(json!({"type": "close", "conversation": c0}))
        .await;
    assert_eq!(wait_assigned(&mut alice).await.0, c);
    // Assigned 61 s after its first message and not answered yet: past its first-response
    // target as soon as a sweep looks.
    let late = sam
        .wait_for("first response missed", |m| {
            m["type"] == "sla_warning" && m["target"] == "first_response"
        })
        .await;
    assert_eq!(
        (late["conversation"].as_str(), late["breached"].as_bool()),
        (Some(c.as_str()), Some(true)),
        "{late}"
    );
    clock.advance(Duration::from_secs(31));
    agent_say(&mut alice, &c, "r1", "sorry for the wait").await;
    alice
        .send(json!({"type": "close", "conversation": c}))
        .await;
    until_status(&app, &format!("/v1/tickets/{c}"), 200).await;
    let (_, t) = admin_get(&app, &format!("/v1/tickets/{c}")).await;
    let kinds: Vec<(&str, &str)> = t["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            Some((
                h["kind"].as_str()?,
                h["reason"].as_str().unwrap_or_default(),
            ))
        })
        .filter(|(k, _)| k.starts_with("sla_"))
        .collect();
    assert_eq!(
        kinds,
        [
            ("sla_warning", "wait"),
            ("sla_breached", "wait"),
            ("sla_breached", "first_response")
        ],
        "{t}"
    );
    let (_, stats) = admin_get(&app, "/v1/stats?since=0").await;
    let levels = stats["service_levels"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(levels.len(), 1, "{stats}");
    assert_eq!(
        (
            levels[0]["wait_breaches"].as_u64(),
            levels[0]["first_response_breaches"].as_u64()
        ),
        (Some(1), Some(1)),
        "{stats}"
    );
    let (_, metrics) = http_text(app.addr, "/metrics").await;
    assert!(
        metrics.contains("switchboard_sla_breaches_total"),
        "on /metrics"
    );
    app.stop().await;
}

/// A rule on a verified visitor's signed attribute (`tier = "gold"`) raises the priority: a
/// gold customer's chat waits ahead of an older one. Attributes signed for another user, or
/// unsigned, are refused (`identity_mismatch`), and so are attributes without a verified
/// identity; a visitor cannot give themselves a tier. Malformed ones are `invalid_message`.
async fn a_signed_attribute_raises_the_priority_and_a_forged_one_is_refused(backend: Backend) {
    let mut config = policy_config(
        &[(alice(1), &[])],
        "rules = [{ attributes = { tier = \"gold\" }, priority = 2 }]\n",
    );
    config.sites[0].identity_secret = Some(switchboard::model::Secret::new(IDENTITY_SECRET));
    let app = spawn_app(backend, config).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v0, _) = visitor(&app, json!({})).await;
    let c0 = conv_of(&say(&mut v0, "m0", "first").await);
    assert_eq!(wait_assigned(&mut alice).await.0, c0);

    // Alice is full. A verified visitor without a tier queues first.
    let plain = json!({"user_id": "u-1", "user_hash": identity_signed("u-1")});
    let (mut v1, _) = visitor(&app, plain).await;
    say(&mut v1, "m1", "a question").await;
    v1.wait_for("queued first", |m| {
        m["type"] == "event" && m["event"]["position"] == 1
    })
    .await;

    // Forged: gold signed for u-2, claimed by u-3; gold unsigned; gold without an identity.
    let forged = [
        json!({"user_id": "u-3", "user_hash": identity_signed("u-3"),
               "attributes": {"tier": "gold"}, "attributes_hash": identity_signed("u-2\ntier=gold\n")}),
        json!({"user_id": "u-3", "user_hash": identity_signed("u-3"), "attributes": {"tier": "gold"}}),
        json!({"attributes": {"tier": "gold"}, "attributes_hash": identity_signed("\ntier=gold\n")}),
    ];
    for hello in forged {
        let mut c = visitor_says_hello(app.addr, &hello).await;
        let refused = c.wait_type("error").await;
        assert_eq!(refused["code"], "identity_mismatch", "{hello}: {refused}");
    }
    // Malformed (a key that is not a-z, 0-9 or _), however signed: refused as such.
    let bad = json!({"user_id": "u-3", "user_hash": identity_signed("u-3"),
                     "attributes": {"Tier!": "gold"}, "attributes_hash": identity_signed("u-3\nTier!=gold\n")});
    let mut c = visitor_says_hello(app.addr, &bad).await;
    assert_eq!(c.wait_type("error").await["code"], "invalid_message");

    // Gold, signed for the identity it comes with: ahead of the older chat.
    let gold = json!({"user_id": "u-2", "user_hash": identity_signed("u-2"),
                      "attributes": {"tier": "gold"}, "attributes_hash": identity_signed("u-2\ntier=gold\n")});
    let (mut v2, _) = visitor(&app, gold).await;
    let c2 = conv_of(&say(&mut v2, "m2", "my order is late").await);
    v2.wait_for("queued ahead", |m| {
        m["type"] == "event" && m["event"]["position"] == 1
    })
    .await;
    v1.wait_for("moved back", |m| m["type"] == "queue" && m["position"] == 2)
        .await;
    alice
        .send(json!({"type": "close", "conversation": c0}))
        .await;
    assert_eq!(wait_assigned(&mut alice).await.0, c2, "gold first");
    // The ticket keeps what was signed (the simulator replays the rule from it).
    alice
        .send(json!({"type": "close", "conversation": c2}))
        .await;
    until_status(&app, &format!("/v1/tickets/{c2}"), 200).await;
    let (_, t) = admin_get(&app, &format!("/v1/tickets/{c2}")).await;
    assert_eq!(t["visitor"]["attributes"], json!({"tier": "gold"}), "{t}");
    app.stop().await;
}
