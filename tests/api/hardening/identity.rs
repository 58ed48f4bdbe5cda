//! Who is who: invites and passwords, a re-enabled agent's old token, verified visitors,
//! single sign-on tokens checked in full, and an address taken on another site.

use super::*;

crate::all_stores!(
    an_address_taken_on_another_site_tells_nothing,
    an_invite_is_taken_once_and_passwords_are_checked,
    a_disabled_agents_token_stays_dead_when_enabled_again,
);
both_backends!(
    a_verified_visitor_cannot_claim_an_unsigned_email,
    single_sign_on_tokens_are_checked_in_full,
    single_sign_on_checks_issuer_and_audience_when_set,
);

/// Five simultaneous acceptances of one invite: exactly one signs in (before: all five, and
/// all five sessions stayed valid). A common or repetitive password is refused. Variants of an
/// address in case and whitespace share its five sign-in attempts a minute (before: each
/// variant had its own five).
async fn an_invite_is_taken_once_and_passwords_are_checked(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(1)])).await;
    let a = app.addr;
    let (s, created) = admin(
        a,
        "POST",
        "/v1/sites/test/agents",
        Some(json!({"id": "sam", "name": "Sam Lee", "departments": ["support"], "max_concurrent": 2, "email": "sam@shop.test"})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let invite = invite_token(&created);
    for weak in ["aaaaaaaaaa", "password123", "1234567890"] {
        let (s, b) = Console::accept_invite(a, &invite, weak)
            .await
            .err()
            .unwrap();
        assert_eq!(
            (s, b["error"]["field"].as_str()),
            (422, Some("password")),
            "{weak}: {b}"
        );
    }
    let tries = (0..5).map(|i| {
        let invite = invite.clone();
        tokio::spawn(async move {
            Console::accept_invite(a, &invite, &format!("sam's own long password {i}")).await
        })
    });
    let mut signed_in = Vec::new();
    for t in tries {
        if let Ok(c) = t.await.unwrap() {
            signed_in.push(c);
        }
    }
    assert_eq!(signed_in.len(), 1, "one acceptance signs in");
    assert_eq!(
        signed_in[0]
            .call("GET", "/v1/auth/session", None, false)
            .await
            .0,
        200
    );

    for email in [
        " nobody@shop.test",
        "nobody@shop.test\t",
        "NOBODY@shop.test",
        "\tnobody@shop.test",
        "nobody@shop.test ",
    ] {
        let (s, _) = Console::sign_in(a, email, "wrong password 123")
            .await
            .err()
            .unwrap();
        assert_eq!(s, 401, "{email:?}");
    }
    let (s, _) = Console::sign_in(a, "nobody@shop.test", "wrong password 123")
        .await
        .err()
        .unwrap();
    assert_eq!(s, 429);
    app.stop().await;
}

/// Disable, then enable again: the old API token stays refused (before: it worked again).
async fn a_disabled_agents_token_stays_dead_when_enabled_again(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(1)])).await;
    let (s, _) = http_get(app.addr, "/v1/tickets", Some(&token("alice"))).await;
    assert_eq!(s, 200);
    for disabled in [true, false] {
        let (s, b) = admin(
            app.addr,
            "PUT",
            "/v1/sites/test/agents/alice",
            Some(json!({"name": "Alice Moreau", "departments": ["support"], "max_concurrent": 1, "disabled": disabled})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, _) = http_get(app.addr, "/v1/tickets", Some(&token("alice"))).await;
    assert_eq!(s, 401);
    let mut again = connect(app.addr, "/v1/agent", None).await.unwrap();
    again
        .send(json!({"type": "hello", "token": token("alice")}))
        .await;
    again.wait_error("unauthorized").await;
    app.stop().await;
}

/// A verified visitor later says hello with `ceo@bigcustomer.com` and no `email_hash`: the
/// address on record stays (before: the new one was kept with `verified` still true). A signed
/// address is taken.
async fn a_verified_visitor_cannot_claim_an_unsigned_email(backend: Backend) {
    let mut cfg = config(&[alice(1)]);
    cfg.sites[0].identity_secret = Some(switchboard::model::Secret::new(IDENTITY_SECRET));
    let app = spawn_app(backend, cfg).await;
    let first = json!({"user_id": "u-1", "user_hash": identity_signed("u-1"),
                       "email": "vera@example.com", "email_hash": identity_signed("vera@example.com")});
    let (_c, w) = visitor(&app, first).await;
    let id = w["visitor_id"].as_str().unwrap().to_owned();
    let token = w["token"].as_str().unwrap().to_owned();
    let email = |app: &TestApp| {
        let path = format!("/v1/visitors/{id}/export?site=test");
        let addr = app.addr;
        async move {
            let (s, b) = http_get(addr, &path, Some(ADMIN_TOKEN)).await;
            assert_eq!(s, 200, "{b}");
            (
                b["visitor"]["email"].clone(),
                b["visitor"]["verified"].clone(),
            )
        }
    };
    assert_eq!(email(&app).await, (json!("vera@example.com"), json!(true)));
    let (_c, _) = visitor(
        &app,
        json!({"token": token, "email": "ceo@bigcustomer.com"}),
    )
    .await;
    assert_eq!(email(&app).await, (json!("vera@example.com"), json!(true)));
    let (_c, _) = visitor(
        &app,
        json!({"token": token, "email": "v.new@example.com", "email_hash": identity_signed("v.new@example.com")}),
    )
    .await;
    assert_eq!(email(&app).await, (json!("v.new@example.com"), json!(true)));
    app.stop().await;
}

/// Single-sign-on JWTs: `nbf` in the future, no `iat`, a lifetime over twelve hours, and a
/// token issued before the agent's password reset are all refused (before: each signed in).
async fn single_sign_on_tokens_are_checked_in_full(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let secret = "host-app-sso-secret-0123";
    let (s, b) = admin(
        app.addr,
        "PUT",
        "/v1/sites/test",
        Some(json!({"allowed_origins": [ORIGIN], "default_department": "support", "sso_secret": secret})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signs_in = |claims: serde_json::Value| sso_signs_in(app.addr, secret, claims);
    let old = json!({"sub": "alice", "site": SITE, "iat": now - 5, "exp": now + 300});
    assert!(signs_in(old.clone()).await);
    for (claims, why) in [
        (
            json!({"sub": "alice", "site": SITE, "exp": now + 300}),
            "no iat",
        ),
        (
            json!({"sub": "alice", "site": SITE, "iat": now, "nbf": now + 600, "exp": now + 900}),
            "nbf ahead",
        ),
        (
            json!({"sub": "alice", "site": SITE, "iat": now, "exp": now + 13 * 3600}),
            "lives 13 h",
        ),
    ] {
        assert!(!signs_in(claims).await, "{why}");
    }
    // A reset (a new invite) voids what was issued before it.
    let (s, b) = admin(
        app.addr,
        "PUT",
        "/v1/sites/test/agents/alice",
        Some(json!({"name": "Alice Moreau", "departments": ["support"], "max_concurrent": 2, "email": "alice@shop.test"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        signs_in(old.clone()).await,
        "a change of address is no reset"
    );
    let (s, b) = admin(app.addr, "POST", "/v1/sites/test/agents/alice/invite", None).await;
    assert_eq!(s, 200, "{b}");
    let deadline = Instant::now() + WAIT;
    while signs_in(old.clone()).await {
        assert!(
            Instant::now() < deadline,
            "a token from before the reset still signs in"
        );
        tokio::task::yield_now().await;
    }
    let later = json!({"sub": "alice", "site": SITE, "iat": now + 2, "exp": now + 300});
    let deadline = Instant::now() + WAIT;
    while !signs_in(later.clone()).await {
        assert!(
            Instant::now() < deadline,
            "a token from after the reset is refused"
        );
        tokio::task::yield_now().await;
    }
    app.stop().await;
}

/// Another site's agent has `sam@shop.test`: creating one with it on `beta` succeeds (before:
/// `email: another agent has it` told beta's admin the address exists elsewhere); each signs in
/// with their own password to their own site; within one site the address is still unique.
async fn an_address_taken_on_another_site_tells_nothing(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(1)])).await;
    add_beta(&app).await;
    let mut passwords = Vec::new();
    for (site, password) in [
        ("test", "sam's long test password"),
        ("beta", "sam's long beta password"),
    ] {
        let dept = if site == "test" { "support" } else { "help" };
        let (s, created) = admin(
            app.addr,
            "POST",
            &format!("/v1/sites/{site}/agents"),
            Some(json!({"id": "sam", "name": "Sam Lee", "departments": [dept], "max_concurrent": 2, "email": "sam@shop.test"})),
        )
        .await;
        assert_eq!(s, 201, "{site}: {created}");
        Console::accept_invite(app.addr, &invite_token(&created), password)
            .await
            .unwrap();
        passwords.push((site, password));
    }
    for (site, password) in passwords {
        let c = Console::sign_in(app.addr, "sam@shop.test", password)
            .await
            .unwrap();
        assert_eq!(c.me["site"], site, "{}", c.me);
    }
    let (s, b) = admin(
        app.addr,
        "POST",
        "/v1/sites/test/agents",
        Some(json!({"id": "sam2", "name": "Sam Two", "departments": ["support"], "max_concurrent": 2, "email": "SAM@shop.test"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("email")),
        "{b}"
    );
    app.stop().await;
}

/// With `sso_issuer` and `sso_audience` set, a token must carry that `iss` and name that `aud`
/// (a string, or in an array); without them set, neither is asked for (before: both ignored).
async fn single_sign_on_checks_issuer_and_audience_when_set(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let secret = "host-app-sso-secret-0123";
    let (s, b) = admin(
        app.addr,
        "PUT",
        "/v1/sites/test",
        Some(json!({"allowed_origins": [ORIGIN], "default_department": "support", "sso_secret": secret,
                    "sso_issuer": "https://app.example", "sso_audience": "switchboard"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["sso_issuer"], "https://app.example", "{b}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signs_in = |extra: serde_json::Value| {
        let mut claims = json!({"sub": "alice", "site": SITE, "iat": now - 5, "exp": now + 300});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        sso_signs_in(app.addr, secret, claims)
    };
    for (extra, ok) in [
        (json!({}), false),
        (json!({"iss": "https://app.example"}), false),
        (
            json!({"iss": "https://evil.example", "aud": "switchboard"}),
            false,
        ),
        (json!({"iss": "https://app.example", "aud": "other"}), false),
        (
            json!({"iss": "https://app.example", "aud": "switchboard"}),
            true,
        ),
        (
            json!({"iss": "https://app.example", "aud": ["crm", "switchboard"]}),
            true,
        ),
    ] {
        assert_eq!(signs_in(extra.clone()).await, ok, "{extra}");
    }
    app.stop().await;
}

/// Whether an agent socket signs in with a JWT of these claims, signed with `secret`.
async fn sso_signs_in(addr: std::net::SocketAddr, secret: &str, claims: serde_json::Value) -> bool {
    let token = crate::directory::jwt(secret, claims);
    let mut c = connect(addr, "/v1/agent", None).await.unwrap();
    c.send(json!({"type": "hello", "token": token, "status": "online"}))
        .await;
    c.wait_for("welcome or error", |m| {
        m["type"] == "welcome" || m["type"] == "error"
    })
    .await["type"]
        == "welcome"
}
