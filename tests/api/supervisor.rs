//! Supervisor figures over REST: agents, queues, and today's statistics from the tickets.

use serde_json::{Value, json};

use crate::all_stores;
use crate::helpers::*;

all_stores!(
    supervisor_figures,
    live_visitors_for_sales,
    live_visitors_pushed_to_agents
);

fn agent_row<'a>(agents: &'a Value, id: &str) -> &'a Value {
    agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap()
}

/// Agents with load and status, queue sizes, and chats, waits, responses and ratings of today.
async fn supervisor_figures(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2), boris(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let _boris = agent_client(&app, "boris", "away").await;
    let mut visitors = Vec::new();
    for i in 0..3 {
        let (mut v, _) = visitor(&app, json!({})).await;
        let conv = say(&mut v, "m", &format!("visitor {i}")).await["conversation"]
            .as_str()
            .unwrap()
            .to_owned();
        v.wait_for("answered", |m| {
            m["event"]["kind"] == "assigned" || m["event"]["notice"] == "queued"
        })
        .await;
        visitors.push((v, conv));
    }
    let (c0, _) = wait_assigned(&mut alice).await;
    let (c1, _) = wait_assigned(&mut alice).await;

    let (status, agents) = admin_get(&app, "/v1/agents").await;
    assert_eq!(status, 200);
    let a = agent_row(&agents, "alice");
    assert_eq!(
        (a["load"].as_u64(), a["max_concurrent"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(a["status"], "online");
    assert_eq!(a["connected"], true);
    assert_eq!(a["chats"].as_array().unwrap().len(), 2);
    assert_eq!(agent_row(&agents, "boris")["status"], "away");
    let (_, queues) = admin_get(&app, "/v1/queues").await;
    let support = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["department"] == "support")
        .unwrap();
    assert_eq!(support["size"], 1);

    // Serve everyone: reply, close; the third chat comes in when a slot frees.
    for c in [c0, c1] {
        agent_say(&mut alice, &c, &format!("r-{c}"), "Hello!").await;
        alice
            .send(json!({"type": "close", "conversation": c}))
            .await;
        alice
            .wait_for("closed", |m| {
                m["type"] == "closed" && m["conversation"] == c.as_str()
            })
            .await;
    }
    let (c2, _) = wait_assigned(&mut alice).await;
    agent_say(&mut alice, &c2, "r2", "Hello!").await;
    alice
        .send(json!({"type": "close", "conversation": c2}))
        .await;
    alice.wait_for("closed", |m| m["type"] == "closed").await;
    for (score, (v, _)) in [5, 3].iter().zip(visitors.iter_mut()) {
        v.wait_event("closed").await;
        v.send(json!({"type": "rate", "score": score})).await;
        v.wait_type("rated").await;
    }

    let (status, s) = admin_get(&app, "/v1/stats").await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["chats"], 3);
    assert_eq!(s["by_status"]["resolved"], 3);
    assert_eq!(s["queue_wait_secs"]["count"], 3);
    assert!(
        s["queue_wait_secs"]["p90"].as_f64().unwrap()
            >= s["queue_wait_secs"]["median"].as_f64().unwrap()
    );
    assert_eq!(s["first_response_secs"]["count"], 3);
    assert_eq!(s["rating"]["count"], 2);
    assert_eq!(s["rating"]["average"], 4.0);
    assert_eq!(s["handling_secs"]["count"], 3);
    // Whole days come from the figures kept as tickets are written, parts of days from the
    // tickets: both give the same figures (from one millisecond after midnight, all is read
    // from the tickets).
    let since = s["since"].as_i64().unwrap();
    let (_, raw) = admin_get(&app, &format!("/v1/stats?since={}", since + 1)).await;
    for field in [
        "chats",
        "by_status",
        "queue_wait_secs",
        "first_response_secs",
        "handling_secs",
        "rating",
    ] {
        assert_eq!(raw[field], s[field], "{field}: {raw} vs {s}");
    }
    let (_, later) = admin_get(&app, "/v1/stats?since=2100-01-01T00:00:00Z").await;
    assert_eq!(later["chats"], 0);
    // A range that ends before the chats closed has none of them.
    let (_, before) = admin_get(&app, &format!("/v1/stats?since=0&until={}", s["since"])).await;
    assert_eq!(before["chats"], 0, "{before}");
    // Grouped by department and by day (the database computes each group's figures).
    let (_, by_dept) = admin_get(&app, "/v1/stats?group=department").await;
    let groups = by_dept["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{by_dept}");
    assert_eq!(groups[0]["key"], "support");
    assert_eq!(groups[0]["chats"], 3);
    assert_eq!(groups[0]["rating"]["average"], 4.0);
    assert_eq!(groups[0]["queue_wait_secs"], s["queue_wait_secs"]);
    let (_, by_agent) = admin_get(&app, "/v1/stats?group=agent").await;
    let groups = by_agent["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{by_agent}");
    assert_eq!(groups[0]["key"], "alice");
    assert_eq!(groups[0]["chats"], 3);
    assert_eq!(groups[0]["handling_secs"], s["handling_secs"]);
    let (_, by_day) = admin_get(&app, "/v1/stats?group=day").await;
    assert_eq!(
        by_day["groups"][0]["key"],
        s["since"].to_string(),
        "{by_day}"
    );
    let (status, e) = admin_get(&app, "/v1/stats?group=week").await;
    assert_eq!((status, &e["error"]["code"]), (400, &json!("bad_request")));
    let (status, _) = http_get(app.addr, "/v1/stats", None).await;
    assert_eq!(status, 401);
    let (status, _) = http_get(app.addr, "/v1/agents", Some("wrong")).await;
    assert_eq!(status, 401);
    app.stop().await;
}

fn live(list: &Value) -> Vec<&Value> {
    list["visitors"].as_array().unwrap().iter().collect()
}

/// The live list shows who is on the site with page, source and chat, and drops those who leave.
async fn live_visitors_for_sales(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let _alice = agent_client(&app, "alice", "online").await;
    let (a, wa) = visitor(
        &app,
        json!({"page": {"url": "https://shop.test/landing?utm_source=ads&utm_campaign=winter",
                        "title": "Winter sale", "referrer": "https://news.test/"}}),
    )
    .await;
    let (mut b, wb) = visitor(
        &app,
        json!({"page": {"url": "https://shop.test/", "title": "Home"}}),
    )
    .await;
    b.send(json!({"type": "page", "url": "https://shop.test/pricing", "title": "Pricing"}))
        .await;
    let conv = say(&mut b, "m1", "Do you ship abroad?").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, list) = admin_get(&app, "/v1/visitors").await;
    assert_eq!(status, 200, "{list}");
    let rows = live(&list);
    let row = |id: &Value| {
        rows.iter()
            .find(|r| r["id"] == *id)
            .copied()
            .unwrap_or_else(|| panic!("{id} listed: {list}"))
    };
    let ra = row(&wa["visitor_id"]);
    assert_eq!(ra["utm"]["utm_source"], "ads");
    assert_eq!(ra["referrer"], "https://news.test/");
    assert_eq!(ra["page_title"], "Winter sale");
    assert_eq!(ra["returning"], false);
    assert!(ra["in_chat"].is_null());
    let rb = row(&wb["visitor_id"]);
    assert_eq!(rb["page_url"], "https://shop.test/pricing");
    assert_eq!(rb["pages_this_visit"].as_array().unwrap().len(), 2);
    assert_eq!(rb["in_chat"], conv.as_str());
    assert!(rb["time_on_site_secs"].as_u64().is_some());

    // A reload within the visit is not a new visit.
    let (_a2, _) = visitor(&app, json!({"token": wa["token"]})).await;
    let (_, list) = admin_get(&app, "/v1/visitors").await;
    let again = live(&list)
        .into_iter()
        .find(|r| r["id"] == wa["visitor_id"])
        .cloned()
        .unwrap();
    assert_eq!(again["visits"], 1);

    // B leaves: gone from the list once the server saw the socket close.
    drop(b);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, list) = admin_get(&app, "/v1/visitors").await;
        if live(&list).iter().all(|r| r["id"] != wb["visitor_id"]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never left the live list"
        );
        tokio::task::yield_now().await;
    }
    drop(a);
    app.stop().await;
}

/// An agent watching the live list gets it at once, then arrivals, page changes, chats and leavings.
async fn live_visitors_pushed_to_agents(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_a, wa) = visitor(&app, json!({"page": {"url": "https://shop.test/a"}})).await;
    alice
        .send(json!({"type": "watch_visitors", "on": true}))
        .await;
    let list = alice.wait_type("visitors").await;
    assert!(
        list["visitors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == wa["visitor_id"])
    );

    let (mut b, wb) = visitor(
        &app,
        json!({"page": {"url": "https://shop.test/landing?utm_source=ads"}}),
    )
    .await;
    let id = wb["visitor_id"].clone();
    let arrived = alice
        .wait_for("b arrived", |m| {
            m["type"] == "visitor" && m["visitor"]["id"] == id
        })
        .await;
    assert_eq!(arrived["visitor"]["utm"]["utm_source"], "ads");
    b.send(json!({"type": "page", "url": "https://shop.test/pricing", "title": "Pricing"}))
        .await;
    alice
        .wait_for("b moved", |m| {
            m["type"] == "visitor"
                && m["visitor"]["id"] == id
                && m["visitor"]["page_url"] == "https://shop.test/pricing"
        })
        .await;
    let conv = say(&mut b, "m1", "hello").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    alice
        .wait_for("b in chat", |m| {
            m["type"] == "visitor"
                && m["visitor"]["id"] == id
                && m["visitor"]["in_chat"] == conv.as_str()
        })
        .await;
    drop(b);
    alice
        .wait_for("b left", |m| m["type"] == "visitor_left" && m["id"] == id)
        .await;
    // A proactive chat marks the visitor as in a chat too.
    let ida = wa["visitor_id"].clone();
    alice
        .send(json!({"type": "start_chat", "visitor": ida, "client_id": "p1", "text": "Hi!"}))
        .await;
    let started = alice.wait_type("ack").await;
    alice
        .wait_for("a in chat", |m| {
            m["type"] == "visitor"
                && m["visitor"]["id"] == ida
                && m["visitor"]["in_chat"] == started["conversation"]
        })
        .await;
    app.stop().await;
}

/// An agent's console asks for its colleagues (the transfer dialog): each with status,
/// presence and load, the load following a chat taken.
async fn colleagues_show_status_and_load(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2), boris(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    // Away: on duty, not routed to, so the chat goes to alice.
    let mut boris = agent_client(&app, "boris", "away").await;
    let (_v, conv) = chat_with(&app, &mut alice, "m1", "hello").await;
    // Read fresh: the chat just taken is in alice's load.
    boris.send(json!({"type": "colleagues"})).await;
    let m = boris.wait_type("colleagues").await;
    let agents = m["agents"].as_array().unwrap();
    let a = agents
        .iter()
        .find(|a| a["id"] == "alice")
        .expect("alice listed");
    assert_eq!(
        (
            &a["name"],
            &a["status"],
            &a["present"],
            &a["load"],
            &a["max_concurrent"]
        ),
        (
            &json!("Alice Moreau"),
            &json!("online"),
            &json!(true),
            &json!(1),
            &json!(2)
        ),
        "{m} ({conv})"
    );
    assert!(
        agents
            .iter()
            .any(|b| b["id"] == "boris" && b["status"] == "away"),
        "{m}"
    );
    app.stop().await;
}

crate::both_backends!(colleagues_show_status_and_load);

/// A site created over REST without agents: its agents list is empty, not an error (on Redis
/// an empty read was an "empty command" 503 until schemathesis found it).
async fn a_site_without_agents_lists_none(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let (status, body) = admin(
        app.addr,
        "POST",
        "/v1/sites",
        Some(
            json!({"id": "empty", "allowed_origins": ["https://empty.test"],
                    "departments": [{"id": "support"}]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin(app.addr, "GET", "/v1/agents?site=empty", None).await;
    assert_eq!((status, &body["agents"]), (200, &json!([])), "{body}");
    let (status, body) = admin(app.addr, "GET", "/v1/agents", None).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

crate::both_backends!(a_site_without_agents_lists_none);

/// A supervisor watches a live chat over REST and joins it with a note: the agent gets the
/// note live, the visitor never; a closed chat takes no note, an unknown one is not found.
async fn supervisor_watches_and_notes_a_live_chat(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, conv) = chat_with(&app, &mut alice, "m1", "Is my order packed?").await;
    let (status, w) = admin(app.addr, "GET", &format!("/v1/conversations/{conv}"), None).await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["conversation"]["agent"]["name"], "Alice Moreau");
    assert!(
        w["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"] == "Is my order packed?"),
        "{w}"
    );
    let path = format!("/v1/conversations/{conv}/note");
    let (status, n) = admin(
        app.addr,
        "POST",
        &path,
        Some(json!({"text": "Check the warehouse"})),
    )
    .await;
    assert_eq!(status, 200, "{n}");
    let got = alice
        .wait_for("the supervisor's note", |m| {
            m["type"] == "event" && m["event"]["kind"] == "note"
        })
        .await;
    assert_eq!(got["event"]["agent"]["name"], "Supervisor");
    // The agent's reply, sent after the note, reaches the visitor; the note never does.
    agent_say(&mut alice, &conv, "a1", "Packed this morning.").await;
    v.wait_for("the reply", |m| {
        m["event"]["text"] == "Packed this morning."
    })
    .await;
    v.sync().await;
    let seen = serde_json::to_string(&v.drain()).unwrap();
    assert!(
        !seen.contains("Check the warehouse"),
        "the note reached the visitor: {seen}"
    );
    let (status, e) = admin(app.addr, "POST", &path, Some(json!({"text": ""}))).await;
    assert_eq!((status, &e["error"]["field"]), (422, &json!("text")));

    alice
        .send(json!({"type": "close", "conversation": conv}))
        .await;
    alice.wait_type("closed").await;
    let (status, _) = admin(app.addr, "POST", &path, Some(json!({"text": "late"}))).await;
    assert_eq!(status, 409);
    let (status, _) = admin(
        app.addr,
        "GET",
        "/v1/conversations/01NOSUCHCONVERSATION000000",
        None,
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

crate::both_backends!(supervisor_watches_and_notes_a_live_chat);
