//! Tickets over REST, as the inbox reads them: filters and pages, full-text search, follow-up
//! and tags, and an agent who reads only their departments.

use super::*;

all_stores!(
    agents_work_the_tickets_of_their_departments,
    rest_filters_pagination_and_errors,
    search_finds_tickets_by_their_words,
    search_over_thousands_of_matches,
    follow_up_status_and_tags,
);

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
        "/v1/webhooks/dead/{id}",
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
            (422, &json!("invalid")),
            "{path}"
        );
    }
    let (status, _) = admin_put(&app, "/v1/tickets/01NOPE/tags", json!({"tags": []})).await;
    assert_eq!(status, 404);
    app.stop().await;
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
    let store = switchboard::tickets::sql::SqlTickets::new(records_of(backend, &cfg).await);
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
