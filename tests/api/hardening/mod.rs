//! Issue 24, the attacks as found: each test reproduces one against a real server and shows it
//! no longer works. HTTP deadlines and connection caps first.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::both_backends;
use crate::helpers::*;

mod identity;
mod limits;
mod tenants;

both_backends!(
    a_partial_header_is_closed_at_the_header_deadline,
    a_trickled_body_gets_request_timeout,
    connections_per_address_are_capped_before_a_byte_is_read,
    a_full_server_still_answers_health_checks,
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

/// The attack on the real binary: a process allowed 400 descriptors, 500 idle
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
