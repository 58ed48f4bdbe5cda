//! Tenants and scope: a caller bound to a site, an agent of another department, a deleted
//! site id, an erase by wildcard, and records that fit the document on both databases.

use super::*;

both_backends!(
    a_site_bound_caller_counts_its_own_site_only,
    an_agent_of_another_department_reads_none_of_its_records,
);
crate::all_stores!(
    a_ticket_with_follow_up_tags_and_a_note_fits_the_openapi_document,
    both_databases_find_the_same_tickets_for_the_same_words,
    a_deleted_sites_id_is_never_given_again,
    an_erase_of_a_wildcard_id_erases_no_ones_deliveries,
);

/// `GET /v1/stats` without `site=`: a supervisor of `beta` counts `beta` only, and its
/// groups name none of the test site's agents or departments (before: every site's totals
/// and ids), nor its service levels or wait estimate. The deployment's admin token still
/// counts every site.
async fn a_site_bound_caller_counts_its_own_site_only(backend: Backend) {
    let text = config_toml(&[alice(2)]).replace(
        r#"departments = [{ id = "support" }, { id = "sales" }]"#,
        r#"departments = [{ id = "support", routing = { sla_wait_secs = 60 } }, { id = "sales" }]"#,
    );
    let config = switchboard::config::Config::from_toml(&text).expect("a valid configuration");
    let app = spawn_app(backend, config).await;
    let bea = add_beta(&app).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    one_closed_chat(&app, &mut alice, "hello").await;
    let deadline = Instant::now() + WAIT;
    while admin_get(&app, "/v1/stats").await.1["chats"] != 1 {
        assert!(Instant::now() < deadline, "the ticket is never counted");
        tokio::task::yield_now().await;
    }
    for group in ["", "?group=agent", "?group=department"] {
        let (s, b) = http_get(app.addr, &format!("/v1/stats{group}"), Some(&bea)).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["chats"], 0, "{group}: {b}");
        let text = b.to_string();
        assert!(
            !text.contains("alice") && !text.contains("support"),
            "{group}: {text}"
        );
    }
    let (s, b) = http_get(app.addr, "/v1/stats?site=test", Some(&bea)).await;
    assert_eq!(s, 403, "{b}");
    // What beta must not see is there for the test site's own callers.
    let (_, all) = admin_get(&app, "/v1/stats").await;
    assert!(
        all["service_levels"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["department"] == "support")),
        "{all}"
    );
    app.stop().await;
}

/// An agent (role `agent`) in `sales` only asks for a `support` visitor's tickets through
/// every door: the `history` and `transcript` frames and each REST route that returns
/// records. None of them shows the ticket, its transcript or the visitor's email (before: the
/// `history` frame gave the ticket with its private note).
async fn an_agent_of_another_department_reads_none_of_its_records(backend: Backend) {
    let app = spawn_app(
        backend,
        config(&[alice(2), agent("sid", "Sid Sales", &["sales"], 2)]),
    )
    .await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, welcome, conv) = chat_with_hello(
        &app,
        &mut alice,
        json!({"email": "secret.person@example.org"}),
        "m1",
        "my account number is 4242",
    )
    .await;
    let visitor_id = welcome["visitor_id"].as_str().unwrap().to_owned();
    alice
        .send(json!({"type": "note", "conversation": conv, "text": "private remark"}))
        .await;
    alice
        .send(json!({"type": "close", "conversation": conv}))
        .await;
    alice
        .wait_for("closed", |m| {
            m["type"] == "closed" && m["conversation"] == conv.as_str()
        })
        .await;
    v.wait_event("closed").await;
    let ticket = loop {
        let (_, b) = admin_get(&app, &format!("/v1/tickets?visitor={visitor_id}")).await;
        if let Some(t) = b["tickets"].as_array().and_then(|t| t.first()) {
            break t["id"].as_str().unwrap().to_owned();
        }
        tokio::task::yield_now().await;
    };
    let leaked = |text: &str| {
        ["4242", "private remark", "secret.person", ticket.as_str()]
            .iter()
            .find(|s| text.contains(*s))
            .map(|s| s.to_string())
    };

    let mut sid = agent_client(&app, "sid", "online").await;
    sid.send(json!({"type": "history", "visitor": visitor_id}))
        .await;
    let h = sid.wait_type("history").await;
    assert_eq!(h["tickets"], json!([]), "{h}");
    sid.send(json!({"type": "transcript", "conversation": conv}))
        .await;
    let t = sid
        .wait_for("transcript or error", |m| {
            m["type"] == "transcript" || m["type"] == "error"
        })
        .await;
    assert_eq!(t["type"], "error", "{t}");
    assert_eq!(leaked(&t.to_string()), None, "{t}");

    let sid_token = token("sid");
    for path in [
        "/v1/tickets".to_owned(),
        format!("/v1/tickets?visitor={visitor_id}"),
        "/v1/tickets?q=4242".to_owned(),
        format!("/v1/tickets/{ticket}"),
        format!("/v1/conversations/{conv}"),
        "/v1/visitors".to_owned(),
        format!("/v1/visitors/{visitor_id}/export?site=test"),
        "/v1/audit".to_owned(),
        "/v1/stats?group=agent".to_owned(),
        "/v1/agents".to_owned(),
        "/v1/queues".to_owned(),
        "/v1/webhooks/dead".to_owned(),
    ] {
        let (s, b) = http_get(app.addr, &path, Some(&sid_token)).await;
        assert!(s == 200 || s == 403 || s == 404, "{path}: {s} {b}");
        assert_eq!(leaked(&b.to_string()), None, "{path}: {b}");
    }
    // Alice, in support, does see it: the check is not blind.
    let (s, b) = http_get(
        app.addr,
        &format!("/v1/tickets/{ticket}"),
        Some(&token("alice")),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(leaked(&b.to_string()).is_some());
    app.stop().await;
}

/// A deleted site's id cannot be created again, so the new site could never read what the
/// old one left (before: the new admin read the old ticket, file, export and audit); the old
/// site's agent token and visitor token are dead.
async fn a_deleted_sites_id_is_never_given_again(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let bea = add_beta(&app).await;
    let (s, _) = http_get(app.addr, "/v1/agents", Some(&bea)).await;
    assert_eq!(s, 200);
    let (s, b) = admin(app.addr, "DELETE", "/v1/sites/beta", None).await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = admin(
        app.addr,
        "POST",
        "/v1/sites",
        Some(json!({"id": "beta", "allowed_origins": ["http://beta.test"], "departments": [{"id": "help"}]})),
    )
    .await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "conflict", "{b}");
    let (s, _) = http_get(app.addr, "/v1/agents", Some(&bea)).await;
    assert_eq!(s, 401);
    let (s, _) = admin_get(&app, "/v1/tickets?site=beta").await;
    assert_eq!(s, 404);
    // Other ids are still free.
    let (s, b) = admin(
        app.addr,
        "POST",
        "/v1/sites",
        Some(json!({"id": "gamma", "allowed_origins": ["http://gamma.test"], "departments": [{"id": "help"}]})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    app.stop().await;
}

/// A privacy erase of the visitor id `_` (a LIKE wildcard) finds no visitor and removes no
/// one's webhook deliveries (before: 404, and all 14 of the site's deliveries were gone); and
/// another site's admin reaches none of the dead letters by any of their routes.
async fn an_erase_of_a_wildcard_id_erases_no_ones_deliveries(backend: Backend) {
    let hooks = Receiver::start(&[]).await;
    hooks.answer_from_now(Answer::Fail);
    let mut cfg = config(&[alice(3)]);
    with_webhook(&mut cfg, &hooks.url, &["ticket.created"]);
    cfg.sites[0].webhooks[0].retry_for_secs = 0.2;
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    for _ in 0..2 {
        one_closed_chat(&app, &mut alice, "hello").await;
    }
    let dead = |b: &serde_json::Value| b["deliveries"].as_array().map_or(0, Vec::len);
    let deadline = Instant::now() + WAIT;
    while dead(&admin_get(&app, "/v1/webhooks/dead").await.1) < 2 {
        assert!(Instant::now() < deadline, "the deliveries never died");
        tokio::task::yield_now().await;
    }
    for id in ["_", "%"] {
        let (s, b) = admin(
            app.addr,
            "DELETE",
            &format!("/v1/visitors/{id}?site=test"),
            None,
        )
        .await;
        assert_eq!(s, 404, "{b}");
    }
    assert_eq!(dead(&admin_get(&app, "/v1/webhooks/dead").await.1), 2);

    // Another site's admin reaches none of them: not in the list or its counts, not by id,
    // not by a retry, not by naming the site.
    add_beta(&app).await;
    let boss = json!({"id": "boss", "name": "Beta Boss", "departments": ["help"],
        "max_concurrent": 1, "role": "admin"});
    assert_eq!(
        admin(app.addr, "POST", "/v1/sites/beta/agents", Some(boss))
            .await
            .0,
        201
    );
    let (_, t) = admin(app.addr, "POST", "/v1/sites/beta/agents/boss/token", None).await;
    let boss = t["token"].as_str().unwrap().to_owned();
    let (_, list) = admin_get(&app, "/v1/webhooks/dead").await;
    let id = list["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let (s, b) = http_get(app.addr, "/v1/webhooks/dead", Some(&boss)).await;
    assert_eq!(
        (s, &b["deliveries"], &b["summary"], &b["total"]),
        (200, &json!([]), &json!([]), &json!(0)),
        "{b}"
    );
    let (s, _) = http_get(app.addr, &format!("/v1/webhooks/dead/{id}"), Some(&boss)).await;
    assert_eq!(s, 404);
    let path = format!("/v1/webhooks/dead/{id}/retry");
    assert_eq!(
        http(app.addr, "POST", &path, Some(&boss), None).await.0,
        404
    );
    let (s, _) = http_get(app.addr, "/v1/webhooks/dead?site=test", Some(&boss)).await;
    assert_eq!(s, 403);
    app.stop().await;
}

/// One table of searches, run on SQLite and on PostgreSQL: a visitor's email is found whole
/// and by each of its words (before: every one of these gave `[]` on PostgreSQL and the
/// ticket on SQLite).
async fn both_databases_find_the_same_tickets_for_the_same_words(backend: Backend) {
    let app = spawn_app(backend, config(&[])).await;
    let (_v, id) = crate::tickets::offline_ticket(&app, "qwerty.person@mailhost.org").await;
    for (q, found) in [
        ("qwerty.person@mailhost.org", true),
        ("qwerty", true),
        ("mailhost", true),
        ("person", true),
        ("mailhost.org", true),
        ("QWERTY", true),
        ("hello", true),
        ("qwerty hello", true),
        ("qwertz", false),
        ("qwerty nowhere", false),
    ] {
        let path = format!("/v1/tickets?q={}", q.replace('@', "%40").replace(' ', "+"));
        let (s, b) = admin_get(&app, &path).await;
        assert_eq!(s, 200, "{b}");
        let ids: Vec<&str> = b["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["id"].as_str())
            .collect();
        assert_eq!(ids.contains(&id.as_str()), found, "{backend:?} q={q}: {b}");
    }
    app.stop().await;
}

/// A ticket with a follow-up status, tags, a transfer and a private note, as `GET
/// /v1/tickets/{id}` returns it: every history and transcript kind is one the OpenAPI document
/// lists (before: `follow_up`, `tags` and `note` were not; schemathesis never made such a
/// ticket, so it could not see the drift).
async fn a_ticket_with_follow_up_tags_and_a_note_fits_the_openapi_document(backend: Backend) {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../../src/http/openapi.json")).unwrap();
    // The names an enum lists, or those the variants of a `oneOf` each fix for `kind`.
    let kinds = |pointer: &str| -> Vec<String> {
        doc.pointer(pointer)
            .and_then(|e| e.as_array())
            .unwrap_or_else(|| panic!("no enum at {pointer}"))
            .iter()
            .map(|k| {
                k.as_str()
                    .or_else(|| k.pointer("/properties/kind/enum/0")?.as_str())
                    .unwrap_or_else(|| panic!("no kind in {k}"))
                    .to_owned()
            })
            .collect()
    };
    let history_kinds = kinds("/components/schemas/HistoryEntry/properties/kind/enum");
    // Each variant of a stored event names its kind.
    let event_kinds = kinds("/components/schemas/EventBody/oneOf");

    let app = spawn_app(backend, config(&[alice(2), boris(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let _boris = agent_client(&app, "boris", "away").await;
    let (mut v, conv) = chat_with(&app, &mut alice, "m1", "hello").await;
    alice
        .send(json!({"type": "note", "conversation": conv, "client_id": "n1", "text": "vip"}))
        .await;
    alice.wait_type("ack").await;
    alice
        .send(json!({"type": "close", "conversation": conv}))
        .await;
    alice
        .wait_for("closed", |m| {
            m["type"] == "closed" && m["conversation"] == conv.as_str()
        })
        .await;
    v.wait_event("closed").await;
    until_status(&app, &format!("/v1/tickets/{conv}"), 200).await;
    let (s, b) = admin(
        app.addr,
        "PUT",
        &format!("/v1/tickets/{conv}/follow-up"),
        Some(json!({"status": "pending"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = admin(
        app.addr,
        "PUT",
        &format!("/v1/tickets/{conv}/tags"),
        Some(json!({"tags": ["billing"]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (_, t) = admin_get(&app, &format!("/v1/tickets/{conv}")).await;
    let history: Vec<&str> = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    for k in ["follow_up", "tags"] {
        assert!(history.contains(&k), "{t}");
    }
    for k in &history {
        assert!(
            history_kinds.iter().any(|h| h == k),
            "history kind {k} not in the document"
        );
    }
    let events: Vec<&str> = t["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"note"), "{t}");
    for k in &events {
        assert!(
            event_kinds.iter().any(|e| e == k),
            "event kind {k} not in the document"
        );
    }
    app.stop().await;
}
