//! The directory at run time: admin REST with field-named errors, agent accounts (invite,
//! password, session cookie, CSRF, roles, API tokens), changes in force without a restart on
//! every node, SIGHUP and `switchboard import`.

use std::time::Instant;

use serde_json::json;

use crate::helpers::*;
use crate::multinode::{Node, start_process, start_with_log};

crate::all_stores!(admin_api_crud_with_field_named_errors);
crate::all_stores!(accounts_sessions_csrf_and_roles);
crate::both_backends!(disabling_an_agent_signs_out_and_requeues);
crate::both_backends!(new_hours_apply_to_the_next_message);
crate::both_backends!(single_sign_on_with_the_sites_secret);
crate::both_backends!(a_supervisor_takes_over_a_chat);
crate::both_backends!(signed_in_consoles_get_directory_changes_at_once);

/// An admin adds a canned response and renames a department: a console signed in before the
/// change gets the new site (a `site` frame) without reconnecting. The widget's settings name
/// the department a visitor who picks none goes to.
async fn signed_in_consoles_get_directory_changes_at_once(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let a = app.addr;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (s, b) = admin(
        a,
        "POST",
        "/v1/sites/test/canned",
        Some(json!({"shortcut": "ship", "text": "We ship in 3 days."})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let site = alice
        .wait_for("the site with the new canned response", |m| {
            m["type"] == "site"
                && m["site"]["canned"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|r| r["shortcut"] == "ship"))
        })
        .await;
    assert_eq!(site["site"]["id"], "test", "{site}");
    let (s, b) = admin(
        a,
        "PUT",
        "/v1/sites/test/departments/sales",
        Some(json!({"name": "Sales team"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    alice
        .wait_for("the renamed department", |m| {
            m["type"] == "site"
                && m["site"]["departments"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|d| d["name"] == "Sales team"))
        })
        .await;
    let (_, w) = http_get(a, "/v1/widget/test", None).await;
    assert_eq!(w["default_department"], "support", "{w}");
    app.stop().await;
}

/// A supervisor takes an active chat from its agent: the chat moves to them with its history,
/// the transfer is recorded with the reason, and the visitor is introduced to them. An agent
/// may not, nor may the admin token (no agent behind it).
async fn a_supervisor_takes_over_a_chat(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let a = app.addr;
    let (s, _) = admin(
        a,
        "POST",
        "/v1/sites/test/agents",
        Some(json!({"id": "sam", "name": "Sam Lee", "departments": ["support"], "max_concurrent": 2, "role": "supervisor"})),
    )
    .await;
    assert_eq!(s, 201);
    let sam_token = admin(a, "POST", "/v1/sites/test/agents/sam/token", None)
        .await
        .1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice_token = admin(a, "POST", "/v1/sites/test/agents/alice/token", None)
        .await
        .1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut alice = connect(a, "/v1/agent", None).await.unwrap();
    alice
        .send(json!({"type": "hello", "token": alice_token, "status": "online"}))
        .await;
    alice.wait_type("welcome").await;
    let (mut v, conv) = chat_with(&app, &mut alice, "m1", "I need help").await;
    let mut sam = connect(a, "/v1/agent", None).await.unwrap();
    sam.send(json!({"type": "hello", "token": sam_token, "status": "online"}))
        .await;
    sam.wait_type("welcome").await;

    let path = format!("/v1/conversations/{conv}/take-over");
    let body = json!({"reason": "escalation"});
    let (s, b) = http(a, "POST", &path, Some(&alice_token), Some(body.clone())).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{b}"
    );
    let (s, b) = admin(a, "POST", &path, Some(body.clone())).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{b}"
    );
    let (s, b) = http(a, "POST", &path, Some(&sam_token), Some(body)).await;
    assert_eq!(s, 200, "{b}");
    let (taken, assigned) = wait_assigned(&mut sam).await;
    assert_eq!(taken, conv);
    assert!(
        assigned["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"] == "I need help"),
        "the whole history comes along: {assigned}"
    );
    assert!(
        assigned["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "transferred"
                && e["reason"] == "escalation"
                && e["from"]["id"] == "alice"),
        "the take-over is recorded with its reason: {assigned}"
    );
    v.wait_for("sam introduced", |m| {
        m["type"] == "event"
            && m["event"]["kind"] == "assigned"
            && m["event"]["agent"]["id"] == "sam"
    })
    .await;
    app.stop().await;
}

/// An HS256 JWT, as a host application would sign it.
pub fn jwt(secret: &str, claims: serde_json::Value) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64.encode(claims.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", b64.encode(mac.finalize().into_bytes()))
}

/// A host application's JWT signs an agent in once the site has an `sso_secret`; an expired
/// one, one for another agent's site or one signed with another key does not.
async fn single_sign_on_with_the_sites_secret(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let secret = "host-app-sso-secret-0123";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hello = |token: String| json!({"type": "hello", "token": token, "status": "online"});
    let good = jwt(
        secret,
        json!({"sub": "alice", "site": SITE, "iat": now - 10, "exp": now + 300}),
    );
    let mut before = connect(app.addr, "/v1/agent", None).await.unwrap();
    before.send(hello(good.clone())).await;
    before.wait_error("unauthorized").await;
    let (s, b) = admin(
        app.addr,
        "PUT",
        "/v1/sites/test",
        Some(json!({"allowed_origins": [ORIGIN], "default_department": "support", "sso_secret": secret})),
    )
    .await;
    assert_eq!((s, b["sso_secret_set"].as_bool()), (200, Some(true)), "{b}");
    let mut c = connect(app.addr, "/v1/agent", None).await.unwrap();
    c.send(hello(good)).await;
    assert_eq!(c.wait_type("welcome").await["agent"]["id"], "alice");
    for bad in [
        jwt(
            secret,
            json!({"sub": "alice", "site": SITE, "iat": now - 10, "exp": now - 1}),
        ),
        jwt(
            secret,
            json!({"sub": "nobody", "site": SITE, "iat": now - 10, "exp": now + 300}),
        ),
        jwt(
            "another-secret-0123456789",
            json!({"sub": "alice", "site": SITE, "iat": now - 10, "exp": now + 300}),
        ),
    ] {
        let mut c = connect(app.addr, "/v1/agent", None).await.unwrap();
        c.send(hello(bad)).await;
        c.wait_error("unauthorized").await;
    }
    app.stop().await;
}

/// Sends a change the admin API must refuse as invalid; the field it names.
async fn refused(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> String {
    let (s, b) = admin(addr, method, path, Some(body.clone())).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("invalid")),
        "{body}: {b}"
    );
    b["error"]["field"].as_str().unwrap_or_default().to_owned()
}

/// Every entry kind can be created, read, replaced and deleted; bad bodies get 422 with the
/// field named relative to the body; secrets are write-only; each change is audit-logged.
async fn admin_api_crud_with_field_named_errors(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let a = app.addr;
    let depts = "/v1/sites/test/departments";
    for (body, field) in [
        (
            json!({"id": "billing", "hours": {"timezone": "Mars/Olympus"}}),
            "hours.timezone",
        ),
        (
            json!({"id": "billing", "hours": {"timezone": "UTC", "monday": ["18:00-09:00"]}}),
            "hours.monday[0]",
        ),
        (json!({"id": "bad id!"}), "id"),
        (json!({"id": "billing", "bogus": 1}), "body"),
    ] {
        assert_eq!(refused(a, "POST", depts, body).await, field);
    }
    let (s, b) = admin(
        a,
        "POST",
        depts,
        Some(json!({"id": "billing", "name": "Billing"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = admin(a, "POST", depts, Some(json!({"id": "billing"}))).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{b}"
    );
    let (s, b) = admin(
        a,
        "PUT",
        &format!("{depts}/billing"),
        Some(json!({"name": "Invoices"})),
    )
    .await;
    assert_eq!((s, b["name"].as_str()), (200, Some("Invoices")), "{b}");
    let (s, b) = admin(a, "PUT", &format!("{depts}/nowhere"), Some(json!({}))).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{b}"
    );

    let agents = "/v1/sites/test/agents";
    for (body, field) in [
        (
            json!({"id": "sam", "name": "Sam Lee", "departments": ["support"], "max_concurrent": 0}),
            "max_concurrent",
        ),
        (
            json!({"id": "sam", "name": "Sam Lee", "departments": ["nope"], "max_concurrent": 2}),
            "departments[0]",
        ),
        (
            json!({"id": "sam", "name": " ", "departments": [], "max_concurrent": 2}),
            "name",
        ),
        (
            json!({"id": "sam", "name": "Sam", "departments": [], "max_concurrent": 2, "email": "not-an-address"}),
            "email",
        ),
        (
            json!({"id": "sam", "name": "Sam", "departments": [], "max_concurrent": 2, "role": "owner"}),
            "body",
        ),
        (
            json!({"id": "sam", "name": "Sam", "departments": [], "max_concurrent": 2, "token_sha256": "00"}),
            "token_sha256",
        ),
    ] {
        assert_eq!(refused(a, "POST", agents, body).await, field);
    }
    let (s, b) = admin(
        a,
        "POST",
        agents,
        Some(json!({"id": "sam", "name": "Sam Lee", "departments": ["billing"], "max_concurrent": 2, "email": "Sam@Shop.test"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["email"], "sam@shop.test");
    assert!(invite_token(&b).len() > 20, "{b}");
    // A department an agent is in cannot go.
    let (s, b) = admin(a, "DELETE", &format!("{depts}/billing"), None).await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("agents[1].departments[0]")),
        "{b}"
    );

    assert_eq!(
        refused(
            a,
            "POST",
            "/v1/sites/test/canned",
            json!({"shortcut": "hi", "text": " "})
        )
        .await,
        "text"
    );
    let (s, _) = admin(
        a,
        "POST",
        "/v1/sites/test/canned",
        Some(json!({"shortcut": "hi", "text": "Hello!"})),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(refused(a, "POST", "/v1/sites/test/triggers", json!({"id": "pricing", "url": "*/pricing*", "time_on_page_secs": 99999, "message": "Hi"})).await, "time_on_page_secs");

    let hooks = "/v1/sites/test/webhooks";
    assert_eq!(
        refused(
            a,
            "POST",
            hooks,
            json!({"id": "crm", "url": "ftp://x", "secret": "0123456789abcdef"})
        )
        .await,
        "url"
    );
    let (s, b) = admin(
        a,
        "POST",
        hooks,
        Some(json!({"id": "crm", "url": "http://127.0.0.1:9/h", "secret": "0123456789abcdef"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert!(
        b.get("secret").is_none() && b["secret_set"] == true,
        "secrets are write-only: {b}"
    );
    // A PUT that leaves the secret out keeps it.
    let (s, b) = admin(
        a,
        "PUT",
        &format!("{hooks}/crm"),
        Some(json!({"url": "http://127.0.0.1:9/v2"})),
    )
    .await;
    assert_eq!((s, b["secret_set"].as_bool()), (200, Some(true)), "{b}");

    // The site's own settings: the widget colour is public at once.
    assert_eq!(
        refused(
            a,
            "PUT",
            "/v1/sites/test",
            json!({"allowed_origins": [ORIGIN], "widget": {"color": "red"}})
        )
        .await,
        "widget.color"
    );
    assert_eq!(
        refused(
            a,
            "PUT",
            "/v1/sites/test",
            json!({"allowed_origins": [ORIGIN], "departments": []})
        )
        .await,
        "departments"
    );
    let (s, b) = admin(
        a,
        "PUT",
        "/v1/sites/test",
        Some(json!({"allowed_origins": [ORIGIN], "default_department": "support", "widget": {"color": "#112233", "title": "Shop help"}})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["departments"].as_array().unwrap().len(),
        3,
        "entries stay: {b}"
    );
    let (_, w) = http_get(a, "/v1/widget/test", None).await;
    assert_eq!(
        (w["color"].as_str(), w["title"].as_str()),
        (Some("#112233"), Some("Shop help")),
        "{w}"
    );

    // Deletes, and what is refused without the right credentials or a readable body.
    let (s, _) = admin(a, "DELETE", &format!("{agents}/sam"), None).await;
    assert_eq!(s, 204);
    let (s, _) = admin(a, "DELETE", &format!("{depts}/billing"), None).await;
    assert_eq!(s, 204);
    let (s, _) = admin(a, "GET", &format!("{depts}/billing"), None).await;
    assert_eq!(s, 404);
    let (s, _) = http(a, "POST", depts, None, Some(json!({"id": "x"}))).await;
    assert_eq!(s, 401);
    let (s, _) = http(
        a,
        "POST",
        depts,
        Some("wrong-token"),
        Some(json!({"id": "x"})),
    )
    .await;
    assert_eq!(s, 401);
    let resp = reqwest::Client::new()
        .post(format!("http://{a}{depts}"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    // Who changed what.
    let (_, log) = admin_get(&app, "/v1/audit?action=directory.department.create").await;
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{log}");
    assert_eq!(
        (entries[0]["actor"].as_str(), entries[0]["subject"].as_str()),
        (Some("admin"), Some("billing"))
    );
    let (_, log) = admin_get(&app, "/v1/audit?subject=crm").await;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["directory.webhook.update", "directory.webhook.create"],
        "{log}"
    );
    app.stop().await;
}

/// An invited agent sets a password, signs in with it, and gets a session cookie; changes need
/// the CSRF token; roles limit what each may do; attempts are rate limited; an API token is
/// shown once and a rotated one is refused at once, closing the sockets it opened.
async fn accounts_sessions_csrf_and_roles(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let a = app.addr;
    let (s, created) = admin(
        a,
        "POST",
        "/v1/sites/test/agents",
        Some(
            json!({"id": "sam", "name": "Sam Lee", "departments": ["support"], "max_concurrent": 2,
                    "email": "sam@shop.test", "role": "supervisor"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let invite = invite_token(&created);
    let (s, b) = Console::accept_invite(a, &invite, "short")
        .await
        .err()
        .unwrap();
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("password")),
        "{b}"
    );
    let sam = Console::accept_invite(a, &invite, "a long enough password")
        .await
        .unwrap();
    assert_eq!(sam.me["role"], "supervisor");
    assert_eq!(sam.me["name"], "Sam Lee");
    // An invite works once.
    let (s, _) = Console::accept_invite(a, &invite, "another long password")
        .await
        .err()
        .unwrap();
    assert_eq!(s, 404);

    // Supervisors read figures and tickets, not the directory; changes need the CSRF token.
    assert_eq!(sam.call("GET", "/v1/queues", None, false).await.0, 200);
    assert_eq!(
        sam.call("GET", "/v1/auth/session", None, false).await.1["agent"],
        "sam"
    );
    let (s, b) = sam
        .call(
            "PUT",
            "/v1/tickets/01J00000000000000000000000/tags",
            Some(json!({"tags": []})),
            false,
        )
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("csrf")), "{b}");
    let (s, b) = sam
        .call(
            "PUT",
            "/v1/tickets/01J00000000000000000000000/tags",
            Some(json!({"tags": []})),
            true,
        )
        .await;
    assert_eq!(s, 404, "with the token the request goes through: {b}");
    let (s, b) = sam
        .call(
            "POST",
            "/v1/sites/test/departments",
            Some(json!({"id": "x"})),
            true,
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{b}"
    );

    // The console socket signs in by cookie, from a page of this server only.
    let mut ws = sam.socket().await.expect("the cookie signs the socket in");
    let foreign = sam.socket_from("https://evil.test").await.err().unwrap();
    assert!(foreign.contains("unauthorized"), "{foreign}");

    // Wrong passwords: 401, then 429 once the address is over its limit.
    let wrong = Console::sign_in(a, "sam@shop.test", "not the password")
        .await
        .err()
        .unwrap();
    assert_eq!(wrong.0, 401);
    let unknown = Console::sign_in(a, "nobody@shop.test", "whatever it is")
        .await
        .err()
        .unwrap();
    assert_eq!(unknown.0, 401, "unknown addresses look the same");
    for _ in 0..4 {
        Console::sign_in(a, "nobody@shop.test", "whatever it is")
            .await
            .err()
            .unwrap();
    }
    let (s, b) = Console::sign_in(a, "nobody@shop.test", "whatever it is")
        .await
        .err()
        .unwrap();
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{b}"
    );
    let again = Console::sign_in(a, "SAM@shop.test", "a long enough password")
        .await
        .unwrap();

    // Sign-out ends that session only.
    assert_eq!(
        again.call("POST", "/v1/auth/sign-out", None, true).await.0,
        200
    );
    assert_eq!(
        again.call("GET", "/v1/auth/session", None, false).await.0,
        401
    );
    assert_eq!(
        sam.call("GET", "/v1/auth/session", None, false).await.0,
        200
    );

    // An API token, shown once; rotating it refuses the old one and closes its sockets.
    let (s, t1) = admin(a, "POST", "/v1/sites/test/agents/sam/token", None).await;
    assert_eq!(s, 200, "{t1}");
    assert_eq!(
        ws.closed().await,
        Some(4004),
        "credentials changed: the console signs in again"
    );
    assert_eq!(
        sam.call("GET", "/v1/auth/session", None, false).await.0,
        200,
        "the cookie still works"
    );
    let t1 = t1["token"].as_str().unwrap().to_owned();
    let mut by_token = connect(a, "/v1/agent", None).await.unwrap();
    by_token.send(json!({"type": "hello", "token": t1})).await;
    by_token.wait_type("welcome").await;
    assert_eq!(http(a, "GET", "/v1/queues", Some(&t1), None).await.0, 200);
    let (_, t2) = admin(a, "POST", "/v1/sites/test/agents/sam/token", None).await;
    assert!(t2["token"].as_str().is_some_and(|t| t != t1));
    assert_eq!(by_token.closed().await, Some(4004));
    assert_eq!(http(a, "GET", "/v1/queues", Some(&t1), None).await.0, 401);
    let mut old = connect(a, "/v1/agent", None).await.unwrap();
    old.send(json!({"type": "hello", "token": t1})).await;
    old.wait_error("unauthorized").await;

    // A reset (new invite) clears the password and every session.
    let (s, _) = admin(a, "POST", "/v1/sites/test/agents/sam/invite", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        sam.call("GET", "/v1/auth/session", None, false).await.0,
        401
    );
    let (s, _) = Console::sign_in(a, "sam@shop.test", "a long enough password")
        .await
        .err()
        .unwrap();
    assert_eq!(s, 401);
    let (_, log) = admin_get(&app, "/v1/audit?subject=sam").await;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "directory.agent.create",
        "agent.password_set",
        "agent.sign_in",
        "directory.agent.token",
        "directory.agent.invite",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    app.stop().await;
}

/// Disabling an agent closes their console and gives their chats to the next agent; a deleted
/// agent leaves `GET /v1/agents` on both backends.
async fn disabling_an_agent_signs_out_and_requeues(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(1), boris(1)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, conv) = chat_with(&app, &mut alice, "m1", "hello").await;
    let mut boris = agent_client(&app, "boris", "online").await;
    let (s, b) = admin(
        app.addr,
        "PUT",
        "/v1/sites/test/agents/alice",
        Some(json!({"name": "Alice Moreau", "departments": ["support"], "max_concurrent": 1, "disabled": true})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(alice.closed().await, Some(4004));
    let (taken, _) = wait_assigned(&mut boris).await;
    assert_eq!(taken, conv, "boris takes alice's chat");
    v.wait_for("requeued notice", |m| {
        m["type"] == "event" && m["event"]["notice"] == "requeued"
    })
    .await;
    v.wait_for("boris introduced", |m| {
        m["type"] == "event"
            && m["event"]["kind"] == "assigned"
            && m["event"]["agent"]["id"] == "boris"
    })
    .await;
    let mut again = connect(app.addr, "/v1/agent", None).await.unwrap();
    again
        .send(json!({"type": "hello", "token": token("alice")}))
        .await;
    again.wait_error("unauthorized").await;

    let (s, _) = admin(app.addr, "DELETE", "/v1/sites/test/agents/alice", None).await;
    assert_eq!(s, 204);
    let (_, list) = admin_get(&app, "/v1/agents").await;
    let ids: Vec<&str> = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["boris"], "{list}");
    app.stop().await;
}

/// Hours changed over REST apply to the next message: a department closed all week answers
/// the next visitor with the offline reply.
async fn new_hours_apply_to_the_next_message(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let _alice = agent_client(&app, "alice", "online").await;
    let (s, b) = admin(
        app.addr,
        "PUT",
        "/v1/sites/test/departments/support",
        Some(json!({"name": "Support", "hours": {"timezone": "Europe/Berlin", "holidays": []}})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (mut v, _) = visitor(&app, json!({"locale": "en"})).await;
    say(&mut v, "c1", "Anyone there?").await;
    let n = v.wait_event("notice").await;
    assert_eq!(n["event"]["notice"], "offline", "{n}");
    app.stop().await;
}

/// A node configuration file for the real binary: Redis or embedded, SQLite in its data
/// directory or a PostgreSQL database of its own.
async fn node_config(agents: &[AgentSpec], postgres: bool) -> std::path::PathBuf {
    let mut text = format!(
        "key_prefix = {:?}\n{}",
        unique_prefix(),
        config_toml(agents)
    );
    if postgres {
        let url = postgres_database(&config(agents)).await;
        text = format!("database_url = {url:?}\n{text}");
    }
    let path = std::env::temp_dir().join(format!("switchboard-test-{}.toml", unique_prefix()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_on_sqlite() {
    across_nodes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_on_postgres() {
    across_nodes(true).await;
}

/// Two nodes on one Redis and one database: an agent created on A signs in on B within a
/// second; a token rotated on A is refused on B at once and B closes the sockets it opened.
async fn across_nodes(postgres: bool) {
    let path = node_config(&[alice(2)], postgres).await;
    let a = start_process(&path, true).await;
    let b = start_process(&path, true).await;
    let mut alice_b = agent_client_at(b.addr, "alice").await;

    let (s, created) = admin(
        a.addr,
        "POST",
        "/v1/sites/test/agents",
        Some(json!({"id": "nina", "name": "Nina Park", "departments": ["support"], "max_concurrent": 2,
                    "email": "nina@shop.test"})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    // B learns of the change from its version poll (every 250 ms); how fast is a property of
    // that interval, not something a test should time on a loaded machine.
    let nina = Console::accept_invite(b.addr, &invite_token(&created), "nina's long password")
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut socket = loop {
        match nina.socket().await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "not on B: {e}"),
        }
    };
    socket.sync().await;

    let (s, _) = admin(a.addr, "POST", "/v1/sites/test/agents/alice/token", None).await;
    assert_eq!(s, 200);
    let mut old = connect(b.addr, "/v1/agent", None).await.unwrap();
    old.send(json!({"type": "hello", "token": token("alice")}))
        .await;
    old.wait_error("unauthorized").await;
    assert_eq!(alice_b.closed().await, Some(4004));
    drop((a, b));
}

/// SIGHUP puts new limits in force without closing a socket, and names what needs a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_settings_without_dropping_sockets() {
    let path = node_config(&[alice(2)], false).await;
    let (node, mut log) = start_with_log(&path, false).await;
    let mut alice = agent_client_at(node.addr, "alice").await;
    let mut v = crate::multinode::visitor_at(node.addr).await;
    let conv = say(&mut v, "m1", "a message of some length").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_assigned(&mut alice).await;
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[limits]", "[limits]\nmax_message_chars = 10")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"");
    std::fs::write(&path, text).unwrap();
    node.signal(libc::SIGHUP);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let line = tokio::time::timeout_at(deadline, log.next_line())
            .await
            .expect("a reload line in the log")
            .unwrap()
            .expect("the node runs");
        if line.contains("SIGHUP") {
            assert!(
                line.contains("listen"),
                "names what needs a restart: {line}"
            );
            break;
        }
    }
    v.send(json!({"type": "message", "client_id": "m2", "text": "longer than ten characters"}))
        .await;
    v.wait_error("message_too_long").await;
    say(&mut v, "m3", "short").await;
    agent_say(&mut alice, &conv, "a1", "still here").await;
    drop(node);
}

/// `switchboard import FILE` upserts a directory from TOML; the running node has it within a
/// second, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_reaches_a_running_node() {
    let path = node_config(&[alice(2)], false).await;
    let node: Node = start_process(&path, false).await;
    let file = std::env::temp_dir().join(format!("switchboard-test-{}.toml", unique_prefix()));
    std::fs::write(&file, config_toml(&[alice(3), boris(1)])).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&path)
        .arg("import")
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, b) = admin(node.addr, "GET", "/v1/sites/test/agents", None).await;
        let agents = b["agents"].as_array().unwrap();
        if agents.len() == 2 && agents[0]["max_concurrent"] == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "not in force: {b}");
        tokio::task::yield_now().await;
    }
    agent_client_at(node.addr, "boris").await;
}

/// The demo (no `--config`) started twice on one data directory: the password and tokens the
/// second start prints are the ones that work, though the directory was seeded by the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_credentials_that_work_on_every_start() {
    use tokio::io::AsyncBufReadExt;
    let dir = temp_dir();
    for _ in 0..2 {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--data-dir")
            .arg(&dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env_remove("SWITCHBOARD_REDIS_URL")
            .env_remove("SWITCHBOARD_CONFIG")
            .env_remove("SWITCHBOARD_DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        while printed.len() < 6 {
            let line = tokio::time::timeout(WAIT, lines.next_line())
                .await
                .expect("the demo prints its credentials")
                .unwrap()
                .expect("a line");
            printed.push(line);
        }
        let addr: std::net::SocketAddr = printed[0]
            .split_whitespace()
            .nth(3)
            .unwrap()
            .parse()
            .unwrap();
        let password = printed[2].rsplit(' ').next().unwrap();
        let alice_token = printed[4].rsplit(' ').next().unwrap();
        let me = Console::sign_in(addr, "alice@demo.test", password)
            .await
            .expect("the printed password signs Alice in");
        assert_eq!(me.me["role"], "admin");
        assert_eq!(
            http(addr, "GET", "/v1/queues", Some(alice_token), None)
                .await
                .0,
            200
        );
        child.kill().await.unwrap();
    }
}
