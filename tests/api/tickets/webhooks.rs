//! Webhooks of tickets: signed, retried with one delivery id, dead letters retried, surviving a
//! restart between the close and the delivery.

use super::*;

all_stores!(
    webhook_retries_keep_one_delivery_id,
    restart_between_close_and_delivery,
    dead_deliveries_are_listed_and_retried,
    webhook_urls_are_masked_in_reads,
    a_webhook_secret_is_rotated_without_a_gap,
    dead_letters_are_paged_and_counted,
);

/// Dead letters come a page at a time without their bodies, with counts per receiver and
/// event over all of them; one is read whole by its id.
async fn dead_letters_are_paged_and_counted(backend: Backend) {
    let hooks = Receiver::start(&[]).await;
    hooks.answer_from_now(Answer::Fail);
    let mut cfg = config(&[alice(3)]);
    with_webhook(
        &mut cfg,
        &format!("{}?key=s3cret", hooks.url),
        &["ticket.created"],
    );
    cfg.sites[0].webhooks[0].retry_for_secs = 0.3;
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    for i in 0..3 {
        let (_v, conv) = chat_with(&app, &mut alice, &format!("m{i}"), "hi").await;
        agent_closes(&mut alice, &conv, "resolved").await;
    }
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, body) = admin_get(&app, "/v1/webhooks/dead?limit=2").await;
        assert_eq!(status, 200, "{body}");
        if body["total"] == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not all died: {body}");
        tokio::task::yield_now().await;
    }
    // All dead now: the page and the counts are read after the last one died.
    let (_, first) = admin_get(&app, "/v1/webhooks/dead?limit=2").await;
    let page = first["deliveries"].as_array().unwrap();
    assert_eq!(page.len(), 2, "{first}");
    assert!(page.iter().all(|d| d.get("body").is_none()), "{first}");
    assert_eq!(
        first["summary"],
        json!([{"site": "test", "url": format!("{}?key=***", hooks.url),
                "event": "ticket.created", "count": 3}])
    );
    assert!(!first.to_string().contains("s3cret"), "{first}");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second) = admin_get(&app, &format!("/v1/webhooks/dead?limit=2&cursor={cursor}")).await;
    let rest = second["deliveries"].as_array().unwrap();
    assert_eq!(rest.len(), 1, "{second}");
    assert_eq!(second["next_cursor"], Value::Null);
    let mut ids: Vec<&str> = page
        .iter()
        .chain(rest)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each once, in id order: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let (status, one) = admin_get(&app, &format!("/v1/webhooks/dead/{}", ids[0])).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["event"], "ticket.created");
    assert!(
        one["body"].as_str().unwrap().contains("ticket.created"),
        "{one}"
    );
    assert!(!one.to_string().contains("s3cret"), "{one}");
    let (status, _) = admin_get(&app, "/v1/webhooks/dead/01NOSUCHDELIVERY00000000000").await;
    assert_eq!(status, 404);
    // The outbox gauges count them from this store's database (read every 5 s).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, text) = http_text(app.addr, "/metrics").await;
        if text.lines().any(|l| l == "switchboard_outbox_dead 3") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "outbox_dead never 3:\n{text}"
        );
        tokio::task::yield_now().await;
    }
    app.stop().await;
}

/// A rotation: the new secret and the previous one both sign each delivery (two `v1=`, the
/// new first) until the previous one is removed; reads show neither, only that each is set.
async fn a_webhook_secret_is_rotated_without_a_gap(backend: Backend) {
    const NEW: &str = "rotated-secret-abcdef0123";
    let mut hooks = Receiver::start(&[]).await;
    let mut cfg = config(&[alice(2)]);
    with_webhook(&mut cfg, &hooks.url, &["ticket.created"]);
    let app = spawn_app(backend, cfg).await;
    let (_, list) = admin_get(&app, "/v1/sites/test/webhooks").await;
    let id = list["webhooks"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/sites/test/webhooks/{id}");
    let put = async |body: Value| {
        let (status, b) = admin(app.addr, "PUT", &path, Some(body)).await;
        assert_eq!(status, 200, "{b}");
        b
    };
    let rotating = put(json!({
        "id": id, "url": hooks.url, "events": ["ticket.created"],
        "secret": NEW, "previous_secret": HOOK_SECRET,
    }))
    .await;
    assert_eq!(rotating["secret_set"], true, "{rotating}");
    assert_eq!(rotating["previous_secret_set"], true, "{rotating}");
    assert!(!rotating.to_string().contains(NEW), "{rotating}");
    assert!(!rotating.to_string().contains(HOOK_SECRET), "{rotating}");

    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut alice, "m1", "hi").await;
    agent_closes(&mut alice, &conv, "resolved").await;
    let h = hooks.next_event("ticket.created").await;
    assert_eq!(h.signatures().len(), 2, "{}", h.signature);
    assert!(h.signed_with(NEW) && h.signed_with(HOOK_SECRET));
    assert!(!h.signed_with("some-other-secret-123"));

    // Over: the previous secret removed (secret left out: kept).
    let done = put(json!({
        "id": id, "url": hooks.url, "events": ["ticket.created"], "previous_secret": null,
    }))
    .await;
    assert_eq!(done["previous_secret_set"], false, "{done}");
    let (_v2, conv) = chat_with(&app, &mut alice, "m2", "again").await;
    agent_closes(&mut alice, &conv, "resolved").await;
    let h = hooks.next_event("ticket.created").await;
    assert_eq!(h.signatures().len(), 1, "{}", h.signature);
    assert!(h.signed_with(NEW));
    assert!(!h.signed_with(HOOK_SECRET));

    // Too short to sign: refused with the field named.
    let (status, b) = admin(
        app.addr,
        "PUT",
        &path,
        Some(json!({"id": id, "url": hooks.url, "previous_secret": "short"})),
    )
    .await;
    assert_eq!(status, 422, "{b}");
    assert!(b.to_string().contains("previous_secret"), "{b}");
    app.stop().await;
}

/// Reads show a webhook URL with its key masked; a PUT that sends the read back keeps the real
/// URL, and deliveries go on to it.
async fn webhook_urls_are_masked_in_reads(backend: Backend) {
    let mut hooks = Receiver::start(&[]).await;
    let url = format!("{}?token=s3cret", hooks.url);
    let mut cfg = config(&[alice(2)]);
    with_webhook(&mut cfg, &url, &["ticket.created"]);
    let app = spawn_app(backend, cfg).await;
    let (status, list) = admin_get(&app, "/v1/sites/test/webhooks").await;
    assert_eq!(status, 200, "{list}");
    let mut hook = list["webhooks"][0].clone();
    let shown = hook["url"].as_str().unwrap().to_owned();
    assert_eq!(shown, format!("{}?token=***", hooks.url));
    let (_, site) = admin_get(&app, "/v1/sites/test").await;
    assert!(!site.to_string().contains("s3cret"), "{site}");
    // Sent back as read (the secret left out keeps the stored one).
    for set in ["secret_set", "previous_secret_set"] {
        hook.as_object_mut().unwrap().remove(set);
    }
    let id = hook["id"].as_str().unwrap().to_owned();
    let (status, b) = admin(
        app.addr,
        "PUT",
        &format!("/v1/sites/test/webhooks/{id}"),
        Some(hook),
    )
    .await;
    assert_eq!(
        (status, b["url"].as_str()),
        (200, Some(shown.as_str())),
        "{b}"
    );
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut alice, "m1", "hi").await;
    agent_closes(&mut alice, &conv, "resolved").await;
    let h = hooks.next_event("ticket.created").await;
    assert_eq!(
        h.query.as_deref(),
        Some("token=s3cret"),
        "the real URL is kept"
    );
    app.stop().await;
}

/// A receiver that fails three times, then succeeds, gets the event four times with one id.
async fn webhook_retries_keep_one_delivery_id(backend: Backend) {
    let mut hooks = Receiver::start(&[Answer::Fail, Answer::Fail, Answer::Fail]).await;
    let mut cfg = config(&[alice(2)]);
    with_webhook(&mut cfg, &hooks.url, &["ticket.created"]);
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut alice, "m1", "hi").await;
    let id = agent_closes(&mut alice, &conv, "resolved").await;
    let attempts: Vec<Hook> = vec![
        hooks.next().await,
        hooks.next().await,
        hooks.next().await,
        hooks.next().await,
    ];
    let ids: Vec<&str> = attempts.iter().map(|h| h.delivery.as_str()).collect();
    assert!(ids.iter().all(|d| *d == ids[0] && !d.is_empty()), "{ids:?}");
    for h in &attempts {
        assert_eq!(h.event, "ticket.created");
        assert!(h.signed_with(HOOK_SECRET));
        assert_eq!(h.json()["data"]["id"], id.as_str());
        assert_eq!(h.json()["id"], h.delivery.as_str());
    }
    // Accepted: no fifth attempt arrives (checked via the dead-letter list staying empty).
    let (status, dead) = admin_get(&app, "/v1/webhooks/dead").await;
    assert_eq!(status, 200);
    assert_eq!(dead["deliveries"], json!([]));
    app.stop().await;
}

/// A delivery that keeps failing past its retry window is kept as dead, listed and retried over REST.
async fn dead_deliveries_are_listed_and_retried(backend: Backend) {
    let mut hooks = Receiver::start(&[]).await;
    hooks.answer_from_now(Answer::Fail);
    let mut cfg = config(&[alice(2)]);
    with_webhook(&mut cfg, &hooks.url, &["ticket.created"]);
    cfg.sites[0].webhooks[0].retry_for_secs = 0.3;
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v, conv) = chat_with(&app, &mut alice, "m1", "hi").await;
    agent_closes(&mut alice, &conv, "resolved").await;
    let first = hooks.next().await;
    // Poll the dead-letter list as an operator would, until the retry window has passed.
    let deadline = std::time::Instant::now() + WAIT;
    let dead = loop {
        let (status, body) = admin_get(&app, "/v1/webhooks/dead").await;
        assert_eq!(status, 200);
        if let Some(d) = body["deliveries"].as_array().and_then(|d| d.first()) {
            break d.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the delivery never died"
        );
        tokio::task::yield_now().await;
    };
    assert_eq!(dead["id"], first.delivery.as_str());
    assert!(dead["attempts"].as_u64().unwrap() >= 1);
    assert_eq!(dead["last_error"], "HTTP 500");

    hooks.answer_from_now(Answer::Ok);
    let id = dead["id"].as_str().unwrap();
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/webhooks/dead/{id}/retry", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let delivered = loop {
        let h = hooks.next().await;
        if h.delivery == id {
            break h;
        }
    };
    assert!(delivered.signed_with(HOOK_SECRET));
    let (_, body) = admin_get(&app, "/v1/webhooks/dead").await;
    assert_eq!(body["deliveries"], json!([]));
    app.stop().await;
}

/// Switchboard restarts between the close and the delivery: the ticket survives and the same
/// delivery (same id) reaches the receiver after the restart.
async fn restart_between_close_and_delivery(backend: Backend) {
    // The first attempt hangs: the delivery is in flight when the server stops.
    let mut hooks = Receiver::start(&[Answer::Hang]).await;
    let mut cfg = config(&[alice(2)]);
    with_webhook(&mut cfg, &hooks.url, &["ticket.created"]);
    cfg.timing.webhook_timeout_secs = 60.0;
    cfg.timing.delivery_lease_secs = 0.5;
    let prefix = unique_prefix();
    let app = spawn_with(backend, cfg.clone(), Some(&prefix)).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (v, conv) = chat_with(&app, &mut alice, "m1", "hi").await;
    let id = agent_closes(&mut alice, &conv, "resolved").await;
    let in_flight = hooks.next().await;
    assert_eq!(in_flight.event, "ticket.created");
    drop((alice, v));
    app.stop().await;

    // Restarted on the same data directory (or the same Redis).
    let app = spawn_with(backend, cfg, Some(&prefix)).await;
    let t = ticket(&app, &id).await;
    assert_eq!(t["transcript"][0]["text"], "hi");
    let delivered = hooks.next().await;
    assert_eq!(
        delivered.delivery, in_flight.delivery,
        "the same delivery, not a new one"
    );
    assert!(delivered.signed_with(HOOK_SECRET));
    assert_eq!(delivered.json()["data"]["id"], id.as_str());
    app.stop().await;
}
