//! Web Push to agents' browsers: subscriptions through REST, notes encrypted for the browser
//! (RFC 8291) and signed with the server's VAPID key (RFC 8292), posted to a push service the
//! test runs; what is refused, and whose browsers are whose.

use serde_json::json;

use crate::helpers::*;
use crate::{all_stores, both_backends};

all_stores!(
    an_assigned_chat_reaches_the_agents_browser_encrypted,
    an_offline_message_reaches_the_department_and_gone_browsers_are_forgotten,
);
both_backends!(subscriptions_are_checked_and_kept_to_their_agent);

/// The server's key, and how many browsers the agent has.
async fn push_key(app: &TestApp, agent: &str) -> (String, u64) {
    let (status, body) = http_get(app.addr, "/v1/push/key", Some(&token(agent))).await;
    assert_eq!(status, 200, "{body}");
    (
        body["public_key"].as_str().unwrap().to_owned(),
        body["browsers"].as_u64().unwrap(),
    )
}

async fn subscribe(app: &TestApp, agent: &str, sub: serde_json::Value) -> (u16, serde_json::Value) {
    http(
        app.addr,
        "PUT",
        "/v1/push/subscription",
        Some(&token(agent)),
        Some(sub),
    )
    .await
}

/// A chat assigned to an agent is pushed to the browser they turned notifications on in:
/// encrypted so that browser's keys open it, with a VAPID token for the push service's origin.
async fn an_assigned_chat_reaches_the_agents_browser_encrypted(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut service = PushService::start().await;
    let mut browser = Browser::new();
    let (key, before) = push_key(&app, "alice").await;
    assert_eq!(before, 0);
    let endpoint = format!("{}/send/alice-laptop", service.base);
    let (status, body) = subscribe(&app, "alice", browser.subscription(&endpoint)).await;
    assert_eq!(
        (status, body["browsers"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let (again, _) = push_key(&app, "alice").await;
    assert_eq!(again, key, "the key is kept, not made per request");

    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut alice, "m1", "Hello, is the blue one in stock?").await;
    let got = service.next().await;
    assert_eq!(got.path, "/send/alice-laptop");
    assert_eq!(got.encoding, "aes128gcm");
    assert_eq!(got.ttl, "3600");
    let claims = vapid_claims(&got.authorization, &key, &service.base);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let exp = claims["exp"].as_i64().unwrap();
    assert!(
        exp > now && exp <= now + 24 * 3600,
        "a token for at most a day: {claims}"
    );
    let note = browser.decrypt(&got.body);
    assert_eq!(note["kind"], "assigned");
    assert_eq!(note["conversation"], conv.as_str());
    app.stop().await;
}

/// Nobody on duty: a visitor's offline message is pushed to the department's agents (their
/// consoles closed), and a browser the push service says is gone (410) is forgotten.
async fn an_offline_message_reaches_the_department_and_gone_browsers_are_forgotten(
    backend: Backend,
) {
    let app = spawn_app(
        backend,
        config(&[alice(2), agent("sam", "Sam Sales", &["sales"], 2)]),
    )
    .await;
    let mut service = PushService::start().await;
    let mut phone = Browser::new();
    let old = Browser::new();
    let sales = Browser::new();
    let phone_at = format!("{}/send/alice-phone", service.base);
    let old_at = format!("{}/send/alice-old/gone", service.base);
    for (agent, browser, at) in [
        ("alice", &phone, phone_at.clone()),
        ("alice", &old, old_at.clone()),
        ("sam", &sales, format!("{}/send/sam", service.base)),
    ] {
        let (status, body) = subscribe(&app, agent, browser.subscription(&at)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(push_key(&app, "alice").await.1, 2);

    let (mut v, _) = visitor(&app, json!({"name": "Nina"})).await;
    v.send(
        json!({"type": "offline_message", "email": "nina@example.com",
                  "text": "Do you ship to Norway?"}),
    )
    .await;
    let ticket = v.wait_type("offline_received").await["ticket"].clone();
    let mut paths = Vec::new();
    for _ in 0..2 {
        let got = service.next().await;
        if got.path == "/send/alice-phone" {
            let note = phone.decrypt(&got.body);
            assert_eq!(note["kind"], "offline");
            assert_eq!(note["ticket"], ticket);
            assert_eq!(note["name"], "Nina");
            assert_eq!(note["text"], "Do you ship to Norway?");
            assert_eq!(note["department"], "support");
        }
        paths.push(got.path);
    }
    paths.sort();
    assert_eq!(
        paths,
        ["/send/alice-old/gone", "/send/alice-phone"],
        "support's browsers only, not sales'"
    );
    // The push service said the old browser is gone: it is forgotten.
    let deadline = tokio::time::Instant::now() + WAIT;
    while push_key(&app, "alice").await.1 != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gone browser is still kept"
        );
        tokio::task::yield_now().await;
    }
    let (status, body) = http(
        app.addr,
        "DELETE",
        "/v1/push/subscription",
        Some(&token("alice")),
        Some(json!({"endpoint": old_at})),
    )
    .await;
    assert_eq!((status, &body["removed"]), (200, &json!(false)), "{body}");
    app.stop().await;
}

/// Only an agent subscribes, only to a push service the server may reach, with keys of the
/// right form; an agent cannot remove another's browser; ten browsers per agent at most.
async fn subscriptions_are_checked_and_kept_to_their_agent(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2), boris(2)])).await;
    let browser = Browser::new();
    let ok = browser.subscription("https://push.example.com/send/a");
    let (status, _) = http(
        app.addr,
        "PUT",
        "/v1/push/subscription",
        None,
        Some(ok.clone()),
    )
    .await;
    assert_eq!(status, 401, "anonymous");
    let (status, body) = http(
        app.addr,
        "PUT",
        "/v1/push/subscription",
        Some(ADMIN_TOKEN),
        Some(ok.clone()),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("forbidden")),
        "the admin token is no browser"
    );
    let (status, _) = http_get(app.addr, "/v1/push/key", None).await;
    assert_eq!(status, 401);

    let long = format!("https://push.example.com/{}", "a".repeat(1100));
    for (endpoint, field) in [
        ("http://93.184.216.34/send/x", "endpoint"),
        ("https://10.1.2.3/send/x", "endpoint"),
        ("https://169.254.169.254/latest", "endpoint"),
        ("https://user:pw@push.example.com/send/x", "endpoint"),
        ("javascript:alert(1)", "endpoint"),
        ("not a url", "endpoint"),
        (long.as_str(), "endpoint"),
    ] {
        let mut sub = ok.clone();
        sub["endpoint"] = json!(endpoint);
        let (status, body) = subscribe(&app, "alice", sub).await;
        assert_eq!(status, 422, "{endpoint}: {body}");
        assert_eq!(body["error"]["field"], field, "{endpoint}: {body}");
    }
    for (p256dh, auth) in [
        ("AAAA", "AAAAAAAAAAAAAAAAAAAAAA"),
        (ok["keys"]["p256dh"].as_str().unwrap(), "AAAA"),
    ] {
        let mut sub = ok.clone();
        sub["keys"] = json!({"p256dh": p256dh, "auth": auth});
        let (status, body) = subscribe(&app, "alice", sub).await;
        assert_eq!(
            (status, &body["error"]["field"]),
            (422, &json!("keys")),
            "{body}"
        );
    }
    let mut extra = ok.clone();
    extra["expirationTime"] = json!(null);
    let (status, _) = subscribe(&app, "alice", extra).await;
    assert_eq!(status, 422, "an unknown field is refused as on every route");

    let (status, _) = subscribe(&app, "alice", ok.clone()).await;
    assert_eq!(status, 200);
    let gone = |who: &'static str| {
        let app = &app;
        async move {
            http(
                app.addr,
                "DELETE",
                "/v1/push/subscription",
                Some(&token(who)),
                Some(json!({"endpoint": "https://push.example.com/send/a"})),
            )
            .await
        }
    };
    assert_eq!(
        gone("boris").await.1["removed"],
        false,
        "not boris's browser"
    );
    assert_eq!(push_key(&app, "alice").await.1, 1);
    assert_eq!(gone("alice").await.1["removed"], true);
    for i in 0..12 {
        let sub = Browser::new().subscription(&format!("https://push.example.com/send/{i}"));
        let (status, body) = subscribe(&app, "alice", sub).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["browsers"].as_u64().unwrap() <= 10, "{body}");
    }
    assert_eq!(
        push_key(&app, "alice").await.1,
        10,
        "the oldest are forgotten"
    );
    app.stop().await;
}
