//! Issue 24, the attacks as found: each test reproduces one against a real server and shows it
//! no longer works. HTTP deadlines and connection caps first.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    a_partial_header_is_closed_at_the_header_deadline,
    a_trickled_body_gets_request_timeout,
    connections_per_address_are_capped_before_a_byte_is_read,
    a_full_server_still_answers_health_checks,
    a_site_bound_caller_counts_its_own_site_only,
    an_agent_of_another_department_reads_none_of_its_records,
);
crate::all_stores!(
    an_address_taken_on_another_site_tells_nothing,
    a_ticket_with_follow_up_tags_and_a_note_fits_the_openapi_document,
    both_databases_find_the_same_tickets_for_the_same_words,
    an_invite_is_taken_once_and_passwords_are_checked,
    a_disabled_agents_token_stays_dead_when_enabled_again,
    a_deleted_sites_id_is_never_given_again,
    an_erase_of_a_wildcard_id_erases_no_ones_deliveries,
);
both_backends!(
    a_copy_by_email_goes_only_to_the_address_given_and_is_limited,
    uploads_are_checked_before_they_take_a_turn,
    one_visitor_on_many_sockets_is_one_rate,
    new_visitors_per_address_are_limited,
    webhooks_never_reach_internal_addresses,
    an_origin_with_a_path_is_refused,
    a_limit_raised_over_rest_drains_the_queue,
    file_names_lose_their_format_characters,
    a_verified_visitor_cannot_claim_an_unsigned_email,
    single_sign_on_tokens_are_checked_in_full,
    single_sign_on_checks_issuer_and_audience_when_set,
);

/// Reads what the server sends until it closes the connection (or `WAIT` passes: a failure).
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

/// One request on a fresh connection, the whole answer as text.
async fn raw_request(addr: std::net::SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    read_to_close(&mut tcp).await
}

/// Waits until a fresh connection's GET of `path` answers 200 (a place freed is given again).
async fn served_again(addr: std::net::SocketAddr, path: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = raw_request(addr, &get(path)).await;
        if answer.starts_with("HTTP/1.1 200") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never served again: {answer}"
        );
        tokio::task::yield_now().await;
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
}

/// A connection that sends half a header, and one left idle after a request, are both closed
/// once `limits.header_timeout_secs` passes (before: still open after 70 s).
async fn a_partial_header_is_closed_at_the_header_deadline(backend: Backend) {
    let mut cfg = config(&[alice(1)]);
    cfg.limits.header_timeout_secs = 1.0;
    let app = spawn_app(backend, cfg).await;

    let mut partial = TcpStream::connect(app.addr).await.unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_to_close(&mut partial).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));

    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.stop().await;
}

/// A body that trickles in is cut at `limits.body_timeout_secs` with 408 `request_timeout`
/// and the connection closed (before: 3,000 such connections were all open after 60 s).
async fn a_trickled_body_gets_request_timeout(backend: Backend) {
    let mut cfg = config(&[alice(1)]);
    cfg.limits.body_timeout_secs = 1.0;
    let app = spawn_app(backend, cfg).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(
        b"POST /v1/auth/sign-in HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 60\r\n\r\n{\"email\":",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    // Everything else goes on.
    let (status, _) = admin_get(&app, "/v1/agents").await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// Past `limits.connections_per_ip` open connections from one address, the next one is
/// refused with 429 `too_many_connections` at once, whatever it would have sent; a
/// WebSocket holds its connection's place; a freed place is taken again.
async fn connections_per_address_are_capped_before_a_byte_is_read(backend: Backend) {
    let mut cfg = config(&[alice(1)]);
    cfg.limits.connections_per_ip = 3;
    let app = spawn_app(backend, cfg).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let (_visitor, _) = visitor(&app, json!({})).await;
    let answer = raw_request(app.addr, &get("/healthz")).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("\"too_many_connections\""), "{answer}");
    drop(idle.pop());
    served_again(app.addr, "/healthz").await;
    app.stop().await;
}

/// With every place of `limits.max_connections` held by idle connections, a reserve still
/// answers `/healthz` and `/readyz` (and 503 `too_many_connections` to anything else); past
/// the reserve the refusal is immediate; once the holders go, the server serves again.
async fn a_full_server_still_answers_health_checks(backend: Backend) {
    let mut cfg = config(&[alice(1)]);
    cfg.limits.max_connections = 4;
    let app = spawn_app(backend, cfg).await;
    until_status(&app, "/readyz", 200).await;
    let mut holders = Vec::new();
    for _ in 0..4 {
        holders.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let answer = raw_request(app.addr, &get("/healthz")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = raw_request(app.addr, &get("/readyz")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = raw_request(app.addr, &get("/v1/openapi.json")).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"too_many_connections\""), "{answer}");
    // The reserve itself held: refused at once.
    for _ in 0..switchboard::listener::RESERVE {
        holders.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let started = Instant::now();
    let answer = raw_request(app.addr, &get("/healthz")).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(holders);
    served_again(app.addr, "/v1/openapi.json").await;
    app.stop().await;
}

/// The issue's attack on the real binary: a process allowed 400 descriptors, 500 idle
/// connections with half a header each. The public address refuses what it cannot hold
/// at once (before: `/healthz` hung for everyone); `metrics_listen`, outside the caps, says
/// healthy and ready; once the attackers go, the public address serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_out_of_descriptors_still_answers_health_checks() {
    let cfg = config(&[alice(1)]);
    let ops = free_port();
    let text = format!(
        "metrics_listen = \"127.0.0.1:{ops}\"\n{}",
        config_toml(&[alice(1)])
    );
    let path = cfg.data_dir.with_extension("toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    let (node, mut log) = crate::multinode::start_limited(&path, false, Some(400)).await;
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let ops: std::net::SocketAddr = format!("127.0.0.1:{ops}").parse().unwrap();
    let mut attackers = Vec::new();
    for _ in 0..500 {
        let mut tcp = TcpStream::connect(node.addr).await.unwrap();
        let _ = tcp.write_all(b"GET / HTTP/1.1\r\n").await;
        attackers.push(tcp);
    }
    let answer = raw_request(node.addr, &get("/healthz")).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"too_many_connections\""), "{answer}");
    let answer = raw_request(ops, &get("/healthz")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = raw_request(ops, &get("/readyz")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(attackers);
    served_again(node.addr, "/healthz").await;
    node.terminate().await;
}

/// A second site, `beta`, with one department and a supervisor `bea`; her API token.
async fn add_beta(app: &TestApp) -> String {
    let (s, b) = admin(
        app.addr,
        "POST",
        "/v1/sites",
        Some(json!({"id": "beta", "allowed_origins": ["http://beta.test"], "departments": [{"id": "help"}]})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = admin(
        app.addr,
        "POST",
        "/v1/sites/beta/agents",
        Some(json!({"id": "bea", "name": "Bea Stone", "departments": ["help"], "max_concurrent": 2, "role": "supervisor"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = admin(app.addr, "POST", "/v1/sites/beta/agents/bea/token", None).await;
    assert_eq!(s, 200, "{b}");
    b["token"].as_str().unwrap().to_owned()
}

/// One chat on the test site, answered and closed by alice: the ticket's conversation id.
async fn one_closed_chat(app: &TestApp, alice: &mut Client, text: &str) -> String {
    let (mut v, conv) = chat_with(app, alice, "m1", text).await;
    agent_say(alice, &conv, "r1", "Hello!").await;
    alice
        .send(json!({"type": "close", "conversation": conv}))
        .await;
    alice
        .wait_for("closed", |m| {
            m["type"] == "closed" && m["conversation"] == conv.as_str()
        })
        .await;
    v.wait_event("closed").await;
    conv
}

/// `GET /v1/stats` without `site=`: a supervisor of `beta` counts `beta` only, and its
/// groups name none of the test site's agents or departments (before: every site's totals
/// and ids). The deployment's admin token still counts every site.
async fn a_site_bound_caller_counts_its_own_site_only(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
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
async fn http_text(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

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

/// A privacy erase of the visitor id `_` (a LIKE wildcard) finds no visitor and removes no
/// one's webhook deliveries (before: 404, and all 14 of the site's deliveries were gone).
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
    app.stop().await;
}

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

/// The smaller points of the issue on the real server: `X-Forwarded-Proto` makes the cookie
/// `Secure` only from a trusted proxy; behind TLS the console's socket takes its cookie only
/// from an `https://` page of the host; the console sends a strict Content-Security-Policy;
/// the data directory the binary creates is private (0700).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_pages_and_the_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    for trusted in [false, true] {
        let mut cfg = config(&[alice(1)]);
        if trusted {
            cfg.trusted_proxies = vec!["127.0.0.1".to_owned().try_into().unwrap()];
        }
        let dir = cfg.data_dir.clone();
        let app = spawn_app(Backend::Memory, cfg).await;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
        let (s, created) = admin(
            app.addr,
            "POST",
            "/v1/sites/test/agents",
            Some(json!({"id": "sam", "name": "Sam Lee", "departments": ["support"], "max_concurrent": 2, "email": "sam@shop.test"})),
        )
        .await;
        assert_eq!(s, 201, "{created}");
        Console::accept_invite(app.addr, &invite_token(&created), "sam's own long password")
            .await
            .unwrap();
        let ((s, _), cookie) = http_with(
            app.addr,
            "POST",
            "/v1/auth/sign-in",
            None,
            Some(json!({"email": "sam@shop.test", "password": "sam's own long password"})),
            &[("x-forwarded-proto", "https")],
        )
        .await;
        assert_eq!(s, 200);
        let cookie = cookie.unwrap();
        assert_eq!(cookie.contains("Secure"), trusted, "{cookie}");
        let session = cookie.split(';').next().unwrap().to_owned();
        for (scheme, accepted) in [("http", !trusted), ("https", true)] {
            let got = console_socket(app.addr, &session, &format!("{scheme}://{}", app.addr)).await;
            assert_eq!(
                got["type"] == "welcome",
                accepted,
                "{scheme}, trusted {trusted}: {got}"
            );
        }
        let resp = reqwest::get(format!("http://{}/console/", app.addr))
            .await
            .unwrap();
        let csp = resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        app.stop().await;
    }
}

/// The agent socket opened with a session cookie by a page of `origin`, behind a proxy that
/// says the page came over TLS; the first answer to a cookie-only `hello`.
async fn console_socket(
    addr: std::net::SocketAddr,
    cookie: &str,
    origin: &str,
) -> serde_json::Value {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/v1/agent")
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert("cookie", cookie.parse().unwrap());
    h.insert("origin", origin.parse().unwrap());
    h.insert("x-forwarded-proto", "https".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        json!({"type": "hello", "status": "online"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("an answer")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "welcome" || v["type"] == "error" {
                return v;
            }
        }
    }
}

/// A ticket with a follow-up status, tags, a transfer and a private note, as `GET
/// /v1/tickets/{id}` returns it: every history and transcript kind is one the OpenAPI document
/// lists (before: `follow_up`, `tags` and `note` were not; schemathesis never made such a
/// ticket, so it could not see the drift).
async fn a_ticket_with_follow_up_tags_and_a_note_fits_the_openapi_document(backend: Backend) {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../src/http/openapi.json")).unwrap();
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

/// hex HMAC-SHA256 with the test site's identity secret.
fn signed(text: &str) -> String {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(b"identity-secret-0123456789").unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A verified visitor later says hello with `ceo@bigcustomer.com` and no `email_hash`: the
/// address on record stays (before: the new one was kept with `verified` still true). A signed
/// address is taken.
async fn a_verified_visitor_cannot_claim_an_unsigned_email(backend: Backend) {
    let mut cfg = config(&[alice(1)]);
    cfg.sites[0].identity_secret = Some(switchboard::model::Secret::new(
        "identity-secret-0123456789",
    ));
    let app = spawn_app(backend, cfg).await;
    let first = json!({"user_id": "u-1", "user_hash": signed("u-1"),
                       "email": "vera@example.com", "email_hash": signed("vera@example.com")});
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
        json!({"token": token, "email": "v.new@example.com", "email_hash": signed("v.new@example.com")}),
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
