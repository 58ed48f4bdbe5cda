//! The directory at run time: admin REST with field-named errors, agent accounts (invite,
//! password, session cookie, CSRF, roles, API tokens), changes in force without a restart on
//! every node, SIGHUP and `switchboard import`.

use std::time::Instant;

use serde_json::json;

use crate::helpers::*;
use crate::multinode::{Node, start_process, start_with_log};

mod accounts;
mod nodes;

crate::all_stores!(admin_api_crud_with_field_named_errors);
crate::both_backends!(new_hours_apply_to_the_next_message);
crate::both_backends!(signed_in_consoles_get_directory_changes_at_once);

/// An admin adds a canned response and renames a department: a console signed in before the
/// change gets the new site (a `site` frame) without reconnecting, and one connecting after it
/// is welcomed with the new site. The widget's settings name
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
    // A console that connects now is welcomed with the site as it is now (the directory
    // consoles are sent is built once per change, not kept from before).
    let mut again = connect(a, "/v1/agent", None).await.expect("agent connects");
    again
        .send(json!({"type": "hello", "token": token("alice"), "status": "online"}))
        .await;
    let welcome = again.wait_type("welcome").await;
    let names: Vec<&str> = welcome["site"]["departments"]
        .as_array()
        .map(|d| d.iter().filter_map(|d| d["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(names.contains(&"Sales team"), "{welcome}");
    assert!(
        welcome["site"]["canned"]
            .as_array()
            .is_some_and(|c| c.iter().any(|r| r["shortcut"] == "ship")),
        "{welcome}"
    );
    let (_, w) = http_get(a, "/v1/widget/test", None).await;
    assert_eq!(w["default_department"], "support", "{w}");

    // A department's name in other languages reaches the widget; a bad language code is
    // refused with its field.
    let (s, b) = admin(
        a,
        "PUT",
        "/v1/sites/test/departments/sales",
        Some(json!({"name": "Sales team", "names": {"ru": "Продажи"}})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (_, w) = http_get(a, "/v1/widget/test", None).await;
    let sales = w["departments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "sales")
        .cloned()
        .unwrap_or_default();
    assert_eq!(sales["names"]["ru"], "Продажи", "{w}");
    let (s, b) = admin(
        a,
        "PUT",
        "/v1/sites/test/departments/sales",
        Some(json!({"names": {"Russian": "Продажи"}})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("names.Russian")),
        "{b}"
    );
    app.stop().await;
}

/// An HS256 JWT, as a host application would sign it.
pub fn jwt(secret: &str, claims: serde_json::Value) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64.encode(claims.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", b64.encode(mac.finalize().into_bytes()))
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
