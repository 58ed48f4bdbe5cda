//! What anonymous callers may spend: mail, uploads, messages across sockets, new visitors,
//! webhook targets, origins, file names, and a limit raised at run time.

use super::*;

both_backends!(
    a_copy_by_email_goes_only_to_the_address_given_and_is_limited,
    uploads_are_checked_before_they_take_a_turn,
    one_visitor_on_many_sockets_is_one_rate,
    new_visitors_per_address_are_limited,
    webhooks_never_reach_internal_addresses,
    an_origin_with_a_path_is_refused,
    a_limit_raised_over_rest_drains_the_queue,
    file_names_lose_their_format_characters,
);

/// A throw-away visitor who gave no address cannot have the chat mailed to a victim (before:
/// 15 phishing mails in 2.2 s); copies to the address given are limited per site per hour,
/// and the refusals are counted on `/metrics`.
async fn a_copy_by_email_goes_only_to_the_address_given_and_is_limited(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let mut cfg = config(&[alice(5)]);
    cfg.sites[0].smtp_url = Some(sink.url.clone());
    cfg.sites[0].email_from = Some("Test shop <support@shop.test>".into());
    cfg.limits.mail_per_site_per_hour = 2;
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, _) = chat_with(&app, &mut alice, "m1", "Click http://phish.example").await;
    v.send(json!({"type": "close"})).await;
    v.wait_event("closed").await;
    v.send(json!({"type": "email_transcript", "email": "victim@example.org"}))
        .await;
    v.wait_error("invalid_email").await;

    for (n, email) in ["a@example.org", "b@example.org", "c@example.org"]
        .iter()
        .enumerate()
    {
        let (mut v, _, _) =
            chat_with_hello(&app, &mut alice, json!({"email": email}), "m1", "hello").await;
        v.send(json!({"type": "close"})).await;
        v.wait_event("closed").await;
        v.send(json!({"type": "email_transcript", "email": email}))
            .await;
        if n < 2 {
            v.wait_type("transcript_sent").await;
            assert_eq!(sink.next().await.to, [email.to_string()]);
        } else {
            v.wait_error("rate_limited").await;
        }
    }
    let (_, metrics) = http_text(app.addr, "/metrics").await;
    assert!(
        metrics.contains(r#"switchboard_mail_total{kind="transcript",outcome="limited"}"#),
        "{metrics}"
    );
    app.stop().await;
}

/// A GET on the server's own address as text.
/// An upload that trickles, sent with the request's headers only.
async fn trickling_upload(app: &TestApp, conv: &str, bearer: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(
        format!(
            "POST /v1/conversations/{conv}/attachments?client_id=t&name=a.png HTTP/1.1\r\n\
             host: x\r\nauthorization: Bearer {bearer}\r\ncontent-length: 100000\r\n\r\nPNG"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tcp
}

/// Eight trickling uploads from a visitor token with no chat are refused before they take a
/// turn, so a real upload does not wait (before: it waited 10 s and got 503). One sender holds
/// one turn at a time, and bytes slower than the minimum rate end the upload with 408.
async fn uploads_are_checked_before_they_take_a_turn(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let (_idle, welcome) = visitor(&app, json!({})).await;
    let stranger = welcome["token"].as_str().unwrap().to_owned();
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v, welcome, conv) = chat_with_hello(&app, &mut alice, json!({}), "m1", "hi").await;
    let vtoken = welcome["token"].as_str().unwrap().to_owned();

    let mut stalls = Vec::new();
    for _ in 0..8 {
        let mut t = trickling_upload(&app, &conv, &stranger).await;
        let answer = read_to_close(&mut t).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        stalls.push(t);
    }
    let started = Instant::now();
    let (status, body) = crate::attachments::send_file(
        &app,
        &conv,
        &vtoken,
        "client_id=f1&name=a.png",
        crate::attachments::PNG,
        Some(ORIGIN),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // One turn per sender: a second upload while one trickles is refused at once.
    let mut slow = trickling_upload(&app, &conv, &vtoken).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = crate::attachments::send_file(
            &app,
            &conv,
            &vtoken,
            "client_id=f2&name=a.png",
            crate::attachments::PNG,
            Some(ORIGIN),
        )
        .await;
        if status == 503 {
            break;
        }
        // The trickle may not have taken its turn yet: then this one went through.
        assert_eq!(status, 201, "{body}");
        assert!(Instant::now() < deadline, "the trickle never took its turn");
        tokio::task::yield_now().await;
    }
    // Under the minimum rate past the grace: 408, the connection closed.
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut out))
        .await
        .expect("the trickle is cut")
        .ok();
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    app.stop().await;
}

/// One visitor on ten sockets is one message rate (before: 50 sockets stored 987 messages in
/// 1.8 s): past `limits.visitor_messages_per_minute`, every socket gets `rate_limited` and
/// nothing more is stored; what was acknowledged is all in the transcript.
async fn one_visitor_on_many_sockets_is_one_rate(backend: Backend) {
    let mut cfg = config(&[alice(2)]);
    cfg.limits.visitor_messages_per_minute = 10;
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut first, welcome, conv) = chat_with_hello(&app, &mut alice, json!({}), "m0", "hi").await;
    let vtoken = welcome["token"].as_str().unwrap().to_owned();
    let mut sockets = vec![];
    for _ in 0..9 {
        let (c, _) = visitor(&app, json!({"token": vtoken})).await;
        sockets.push(c);
    }
    let mut acked = 1;
    let mut limited = 0;
    for round in 0..3 {
        for (i, c) in sockets.iter_mut().enumerate() {
            let id = format!("r{round}-{i}");
            c.send(json!({"type": "message", "client_id": id, "text": "flood"}))
                .await;
            let r = c
                .wait_for("ack or error", |m| {
                    m["type"] == "ack" || m["type"] == "error"
                })
                .await;
            if r["type"] == "ack" {
                acked += 1;
            } else {
                assert_eq!(r["code"], "rate_limited", "{r}");
                limited += 1;
            }
        }
    }
    assert_eq!(acked, 10, "limited {limited}");
    assert_eq!(limited, 18);
    first
        .send(json!({"type": "message", "client_id": "last", "text": "x"}))
        .await;
    first.wait_error("rate_limited").await;
    let (s, t) = admin_get(&app, &format!("/v1/conversations/{conv}")).await;
    assert_eq!(s, 200, "{t}");
    let stored = t.to_string().matches("\"flood\"").count();
    assert_eq!(stored, 9, "{t}");
    app.stop().await;
}

/// New visitors from one address are limited per hour (before: 4,830 visitor records in
/// 10 s); a returning visitor (with their token) is not counted.
async fn new_visitors_per_address_are_limited(backend: Backend) {
    let mut cfg = config(&[alice(2)]);
    cfg.limits.new_visitors_per_ip_per_hour = 3;
    let app = spawn_app(backend, cfg).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (_c, w) = visitor(&app, json!({})).await;
        tokens.push(w["token"].as_str().unwrap().to_owned());
    }
    let mut c = connect(app.addr, &format!("/v1/visitor?site={SITE}"), Some(ORIGIN))
        .await
        .unwrap();
    c.send(json!({"type": "hello"})).await;
    c.wait_error("rate_limited").await;
    let (_c, w) = visitor(&app, json!({"token": tokens[0]})).await;
    assert_eq!(w["type"], "welcome");
    app.stop().await;
}

/// Webhooks at loopback in every spelling the issue tried (and a name that resolves to it)
/// are refused at delivery, and `last_error` says only that (before: the loopback listener got
/// the POSTs, and the error told open ports from closed ones). The tests' other webhooks reach
/// 127.0.0.1 through `webhook_allowed_networks`; here it is empty.
async fn webhooks_never_reach_internal_addresses(backend: Backend) {
    let hooks = Receiver::start(&[]).await;
    let port = hooks
        .url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut cfg = config(&[alice(2)]);
    cfg.webhook_allowed_networks.clear();
    let urls = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
    ];
    for (i, url) in urls.iter().enumerate() {
        let toml = format!(
            "id = \"h{i}\"\nurl = {url:?}\nsecret = {HOOK_SECRET:?}\nevents = [\"ticket.created\"]\nretry_for_secs = 0.2\n"
        );
        cfg.sites[0].webhooks.push(toml::from_str(&toml).unwrap());
    }
    cfg.timing.webhook_backoff_secs = 0.05;
    cfg.timing.webhook_max_backoff_secs = 0.1;
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    one_closed_chat(&app, &mut alice, "hello").await;
    let deadline = Instant::now() + WAIT;
    let dead = loop {
        let (_, b) = admin_get(&app, "/v1/webhooks/dead").await;
        let d = b["deliveries"].as_array().cloned().unwrap_or_default();
        if d.len() == urls.len() {
            break d;
        }
        assert!(Instant::now() < deadline, "not all dead: {b}");
        tokio::task::yield_now().await;
    };
    for d in &dead {
        assert_eq!(d["last_error"], "refused: private address", "{d}");
    }
    app.stop().await;
}

/// `PUT /v1/sites/{site}` refuses an origin with a path, as the OpenAPI pattern says (before:
/// `http://other.test/path/x` was stored with 200).
async fn an_origin_with_a_path_is_refused(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(1)])).await;
    for origin in ["http://other.test/path/x", "http://other.test/", "https://"] {
        let (s, b) = admin(
            app.addr,
            "PUT",
            "/v1/sites/test",
            Some(json!({"allowed_origins": [origin], "default_department": "support"})),
        )
        .await;
        assert_eq!(s, 422, "{origin}: {b}");
        assert_eq!(b["error"]["field"], "allowed_origins[0]", "{b}");
    }
    app.stop().await;
}

/// Alice at `max_concurrent: 1` holds one chat and a second waits; an admin raises her limit
/// to 2 over REST: the waiting chat is hers at once, and her `agent` frame says 2 (before:
/// `max_concurrent: 1, max_allowed: 2`, and nothing was assigned).
async fn a_limit_raised_over_rest_drains_the_queue(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(1)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v1, _) = chat_with(&app, &mut alice, "m1", "first").await;
    let (mut v2, _) = visitor(&app, json!({})).await;
    let waiting = say(&mut v2, "m1", "second").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(queue_size(app.addr, "support").await, 1);
    let (s, b) = admin(
        app.addr,
        "PUT",
        "/v1/sites/test/agents/alice",
        Some(json!({"name": "Alice Moreau", "departments": ["support"], "max_concurrent": 2})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (taken, _) = wait_assigned(&mut alice).await;
    assert_eq!(taken, waiting);
    alice
        .wait_for("her limit", |m| {
            m["type"] == "agent" && m["agent"]["max_concurrent"] == 2
        })
        .await;
    app.stop().await;
}

/// A file named `a\u{202E}gnp.exe` (shown as `aexe.png`) is stored as `agnp.exe`.
async fn file_names_lose_their_format_characters(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(1)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (_v, welcome, conv) = chat_with_hello(&app, &mut alice, json!({}), "m1", "hi").await;
    let vtoken = welcome["token"].as_str().unwrap();
    let (s, b) = crate::attachments::send_file(
        &app,
        &conv,
        vtoken,
        "client_id=f1&name=a%E2%80%AEgnp.exe",
        crate::attachments::PNG,
        Some(ORIGIN),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["attachment"]["name"], "agnp.exe");
    app.stop().await;
}
