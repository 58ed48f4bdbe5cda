//! Accounts: sign-in, sessions and CSRF, roles, single sign-on with the site's secret, a
//! supervisor's take-over, and disabling an agent.

use super::*;

crate::all_stores!(accounts_sessions_csrf_and_roles);
crate::both_backends!(disabling_an_agent_signs_out_and_requeues);
crate::both_backends!(single_sign_on_with_the_sites_secret);
crate::both_backends!(a_supervisor_takes_over_a_chat);

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
