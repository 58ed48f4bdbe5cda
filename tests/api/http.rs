//! HTTP done properly for the static files and REST: compression, entity tags and revalidation,
//! a versioned widget URL that may be cached for a year.

use crate::helpers::*;

async fn get(url: String, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    tokio::time::timeout(WAIT, req.send())
        .await
        .expect("an answer")
        .unwrap()
}

/// The widget comes compressed when the client accepts it, with an ETag that a revalidation
/// answers with 304, and a Link to its versioned URL, which is immutable for a year.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_are_compressed_tagged_and_versioned() {
    let app = spawn_app(Backend::Memory, config(&[])).await;
    let base = format!("http://{}", app.addr);
    let plain = get(format!("{base}/widget.js"), &[]).await;
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let link = plain.headers()["link"].to_str().unwrap().to_owned();
    let size = plain.bytes().await.unwrap().len();

    let gz = get(format!("{base}/widget.js"), &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["etag"].to_str().unwrap(), etag);
    let body = gz.bytes().await.unwrap();
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(body.len() * 2 < size, "{} of {size} bytes", body.len());

    let again = get(format!("{base}/widget.js"), &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    let path = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    let versioned = get(format!("{base}{path}"), &[]).await;
    assert_eq!(versioned.status(), 200);
    assert_eq!(
        versioned.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(versioned.bytes().await.unwrap().len(), size);
    assert_eq!(
        get(format!("{base}/widget/0123456789abcdef.js"), &[])
            .await
            .status(),
        404
    );

    let console = get(format!("{base}/console/"), &[]).await;
    let tag = console.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(console.headers()["x-frame-options"], "DENY");
    let revalidated = get(format!("{base}/console/"), &[("if-none-match", &tag)]).await;
    assert_eq!(revalidated.status(), 304);

    // REST too: a large JSON answer comes gzip-compressed when asked (brotli is not offered:
    // gzip only); a small one is left alone.
    let doc = get(
        format!("{base}/v1/openapi.json"),
        &[("accept-encoding", "br, gzip")],
    )
    .await;
    assert_eq!(doc.headers()["content-encoding"], "gzip");
    let plain = get(
        format!("{base}/v1/openapi.json"),
        &[("accept-encoding", "br")],
    )
    .await;
    assert!(plain.headers().get("content-encoding").is_none());
    let small = get(
        format!("{base}/healthz"),
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert!(small.headers().get("content-encoding").is_none());
    app.stop().await;
}

/// The console's modules: the page loads `main.js` as a module, and every module any module
/// imports (by relative URL) is served as JavaScript with an ETag; any other name under
/// `/console/`, a path climbing out included, is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_modules_are_served_and_nothing_else() {
    let app = spawn_app(Backend::Memory, config(&[])).await;
    let base = format!("http://{}", app.addr);
    let page = get(format!("{base}/console/"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"<script type="module" src="/console/main.js"></script>"#),
        "{page}"
    );
    let mut todo = vec!["main.js".to_owned()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(file) = todo.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let resp = get(format!("{base}/console/{file}"), &[]).await;
        assert_eq!(resp.status(), 200, "{file}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/javascript; charset=utf-8",
            "{file}"
        );
        assert!(resp.headers().get("etag").is_some(), "{file}");
        let body = resp.text().await.unwrap();
        for imported in body
            .split("from \"./")
            .skip(1)
            .chain(body.split("import \"./").skip(1))
        {
            todo.push(imported.split('"').next().unwrap().to_owned());
        }
    }
    assert!(seen.len() >= 10, "{seen:?}");
    for bad in [
        "nope.js",
        "console.js",
        "..%2F..%2FCargo.toml",
        "%2e%2e%2fmain.js",
        "main.js%00",
    ] {
        let resp = get(format!("{base}/console/{bad}"), &[]).await;
        assert_eq!(resp.status(), 404, "{bad}");
    }
    app.stop().await;
}

/// The value of a metric line (`name{labels} value`) in Prometheus text, if present.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A chat from first message to ticket shows in `/metrics`: connections, messages, the
/// assignment, the queue of the department, the ticket's times, and errors by code.
async fn metrics_follow_a_chat(backend: Backend) {
    let mut receiver = Receiver::start(&[]).await;
    let mut cfg = config(&[alice(2)]);
    with_webhook(&mut cfg, &receiver.url, &["ticket.created"]);
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, conv) = chat_with(&app, &mut alice, "m1", "counted?").await;
    agent_say(&mut alice, &conv, "a1", "counted.").await;
    v.send(serde_json::json!({"type": "dance"})).await;
    v.wait_error("unknown_type").await;
    alice
        .send(serde_json::json!({"type": "close", "conversation": conv}))
        .await;
    alice.wait_type("closed").await;
    receiver.next_event("ticket.created").await;
    // The courier records the outcome just after the receiver answered.
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(
        &get(format!("http://{}/metrics", app.addr), &[])
            .await
            .text()
            .await
            .unwrap(),
        "switchboard_webhook_deliveries_total{outcome=\"delivered\"}",
    )
    .is_none_or(|n| n < 1.0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery never counted"
        );
        tokio::task::yield_now().await;
    }
    let text = get(format!("http://{}/metrics", app.addr), &[])
        .await
        .text()
        .await
        .unwrap();
    for series in [
        "switchboard_messages_total{author=\"visitor\"}",
        "switchboard_messages_total{author=\"agent\"}",
        "switchboard_assignments_total",
        "switchboard_events_delivered_total",
        "switchboard_errors_total{code=\"unknown_type\"}",
        "switchboard_tickets_total{site=\"test\",status=\"resolved\"}",
        "switchboard_first_response_seconds_count{site=\"test\"}",
        "switchboard_connections{kind=\"agent\"}",
        "switchboard_build_info{version=\"0.1.0\"}",
        "switchboard_ready",
        // The first scrape, by its route's template.
        "switchboard_http_request_duration_seconds_count{method=\"GET\",route=\"/metrics\",status=\"200\"}",
        "process_resident_memory_bytes",
        "process_open_fds",
        // Alice is present and online with a free slot again.
        "switchboard_agents{site=\"test\",status=\"online\"}",
        "switchboard_agents_available{site=\"test\",department=\"support\"}",
    ] {
        let value = metric(&text, series).unwrap_or_else(|| panic!("{series} in:\n{text}"));
        assert!(value >= 1.0, "{series} = {value}");
    }
    // Known from the start: the first dead letter after a restart is an increase. (The
    // counter is the process's, which other tests share: present, not necessarily zero.)
    assert!(
        metric(
            &text,
            "switchboard_webhook_deliveries_total{outcome=\"dead\"}"
        )
        .is_some(),
        "{text}"
    );
    // This node's own, at zero.
    for series in [
        "switchboard_outbox_dead",
        "switchboard_queue_size{site=\"test\",department=\"sales\"}",
        "switchboard_agents_available{site=\"test\",department=\"sales\"}",
    ] {
        assert_eq!(metric(&text, series), Some(0.0), "{series} in:\n{text}");
    }
    // Backend latencies, in buckets fit for a round trip (half a millisecond and up).
    let mut latencies = vec![
        "switchboard_db_seconds_count{op=\"ticket_save\"}",
        "switchboard_db_seconds_bucket{op=\"ticket_save\",le=\"0.0005\"}",
    ];
    if backend == Backend::Redis {
        latencies.push("switchboard_redis_seconds_count");
        latencies.push("switchboard_redis_seconds_bucket{le=\"0.0005\"}");
    }
    for series in latencies {
        assert!(metric(&text, series).is_some(), "{series} in:\n{text}");
    }
    assert!(text.contains("switchboard_queue_size{"), "{text}");
    assert!(
        text.contains("# HELP switchboard_handling_seconds"),
        "{text}"
    );
    // The shipped dashboard and alert rules name only metrics that exist.
    for doc in [
        include_str!("../../docs/monitoring/grafana-dashboard.json"),
        include_str!("../../docs/monitoring/alerts.yml"),
    ] {
        for name in doc
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("switchboard_") || w.starts_with("process_"))
        {
            assert!(
                text.contains(&format!("\n{name}{{")) || text.contains(&format!("\n{name} ")),
                "{name} (docs/monitoring) is not in /metrics:\n{text}"
            );
        }
    }
    app.stop().await;
}

crate::both_backends!(metrics_follow_a_chat);

/// A site added at run time has its series at once, at zero; deleted, they go away. An agent
/// whose console closed is counted offline (and not available) once the grace is over,
/// though she never chose to go offline.
async fn site_series_follow_the_directory(backend: Backend) {
    let mut cfg = config(&[alice(2)]);
    cfg.timing.agent_grace_secs = 0.2;
    let app = spawn_app(backend, cfg).await;
    let scrape = async || {
        get(format!("http://{}/metrics", app.addr), &[])
            .await
            .text()
            .await
            .unwrap()
    };
    // Waits until `ok` holds of a scrape.
    let until = async |what: &str, ok: &dyn Fn(&str) -> bool| {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = scrape().await;
            if ok(&text) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}:\n{text}");
            tokio::task::yield_now().await;
        }
    };
    let body = serde_json::json!({"id": "pop-up", "allowed_origins": [ORIGIN],
        "departments": [{"id": "help"}]});
    assert_eq!(
        admin(app.addr, "POST", "/v1/sites", Some(body)).await.0,
        201
    );
    let series = "switchboard_queue_size{site=\"pop-up\",department=\"help\"}";
    until("the new site's queue at zero", &|t| {
        metric(t, series) == Some(0.0)
    })
    .await;
    assert_eq!(
        admin(app.addr, "DELETE", "/v1/sites/pop-up", None).await.0,
        204
    );
    until("no series of a deleted site", &|t| {
        !t.contains("site=\"pop-up\"")
    })
    .await;

    let alice = agent_client(&app, "alice", "online").await;
    let online = "switchboard_agents{site=\"test\",status=\"online\"}";
    let available = "switchboard_agents_available{site=\"test\",department=\"support\"}";
    until("alice online", &|t| metric(t, online) == Some(1.0)).await;
    drop(alice);
    until("alice gone, counted offline and not available", &|t| {
        metric(t, online) == Some(0.0) && metric(t, available) == Some(0.0)
    })
    .await;
    app.stop().await;
}

crate::both_backends!(site_series_follow_the_directory);

/// With `metrics_listen`, `/metrics` is on that address only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_address() {
    let mut cfg = config(&[]);
    cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = switchboard::server::Application::build(cfg).await.unwrap();
    let (main, own) = (app.local_addr(), app.metrics_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async {
        let _ = rx.await;
    }));
    assert_eq!(
        get(format!("http://{main}/metrics"), &[]).await.status(),
        404
    );
    let r = get(format!("http://{own}/metrics"), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("# TYPE"));
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

/// `--log-format json`: every log line is one JSON object. A chat's steps are logged with the
/// conversation's id (opened, assigned, closed, ticket stored), REST requests with status and
/// time, and never a query string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_explain_a_chat() {
    use tokio::io::AsyncBufReadExt;
    let path = std::env::temp_dir().join(format!("switchboard-test-{}.toml", unique_prefix()));
    std::fs::write(&path, config_toml(&[alice(2)])).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&path)
        .arg("--log-format")
        .arg("json")
        .env("RUST_LOG", "info")
        .env_remove("SWITCHBOARD_REDIS_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, out.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr: std::net::SocketAddr = first.split_whitespace().nth(3).unwrap().parse().unwrap();
    let mut log = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();

    let mut alice = agent_client_at(addr, "alice").await;
    let mut v = crate::multinode::visitor_at(addr).await;
    let conv = say(&mut v, "m1", "hello").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_assigned(&mut alice).await;
    alice
        .send(serde_json::json!({"type": "close", "conversation": conv}))
        .await;
    alice.wait_type("closed").await;
    let (status, _) = http(
        addr,
        "GET",
        "/v1/tickets?q=secretword",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let mut wanted = vec![
        "conversation opened and queued",
        "conversation assigned",
        "conversation closed",
        "ticket stored",
    ];
    let mut request_logged = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !wanted.is_empty() || !request_logged {
        let line = tokio::time::timeout_at(deadline, log.next_line())
            .await
            .unwrap_or_else(|_| panic!("not logged: {wanted:?}, request {request_logged}"))
            .unwrap()
            .expect("the node runs");
        assert!(
            !line.contains("secretword"),
            "a query string in the log: {line}"
        );
        let entry: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let message = entry["message"].as_str().unwrap_or_default();
        if let Some(i) = wanted.iter().position(|w| *w == message) {
            assert_eq!(entry["conversation"], conv.as_str(), "{line}");
            wanted.remove(i);
        }
        // What a visitor's message caused carries the visitor's connection span.
        if message == "conversation opened and queued" {
            let span = &entry["spans"][0];
            assert_eq!(
                (&span["name"], &span["kind"]),
                (
                    &serde_json::json!("connection"),
                    &serde_json::json!("visitor")
                ),
                "{line}"
            );
            assert!(
                span["id"].as_u64().is_some() && span["peer"].is_string(),
                "{line}"
            );
        }
        if message == "http request" && entry["path"] == "/v1/tickets" {
            assert_eq!(entry["status"], 200, "{line}");
            assert!(entry["ms"].as_f64().is_some(), "{line}");
            request_logged = true;
        }
    }
    child.kill().await.unwrap();
}

/// A JSON body that cannot be read says why, with the same status on every kind of route
/// (directory, tickets, sign-in): `415 unsupported_type` without a JSON content type, `413
/// too_large` past the body limit, `400 bad_request` for what is not JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_bodies_get_their_own_status() {
    let app = spawn_app(Backend::Memory, config(&[])).await;
    for (method, path) in [
        ("POST", "/v1/sites/test/departments"),
        ("PUT", "/v1/tickets/01JAAAAAAAAAAAAAAAAAAAAAAA/tags"),
        ("POST", "/v1/auth/sign-in"),
    ] {
        for (content_type, body, status, code) in [
            (None, b"{}".to_vec(), 415, "unsupported_type"),
            (
                Some("application/json"),
                vec![b' '; 3 << 20],
                413,
                "too_large",
            ),
            (Some("application/json"), b"{".to_vec(), 400, "bad_request"),
        ] {
            let (got, answer) = raw_request(app.addr, method, path, content_type, body).await;
            assert_eq!(
                (got, answer["error"]["code"].as_str()),
                (status, Some(code)),
                "{method} {path} {content_type:?}: {answer}"
            );
        }
    }
}

/// One request on its own connection, the body written while the answer is read: a server
/// that refuses a body part-way answers and closes, and a client that only reads once it has
/// written everything may never see that answer. The status and the JSON answer.
async fn raw_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(t) = content_type {
        head.push_str(&format!("content-type: {t}\r\n"));
    }
    head.push_str("\r\n");
    // The write half is kept open until the answer is read: the server takes a client's
    // half-close for its leaving.
    let writer = tokio::spawn(async move {
        if w.write_all(head.as_bytes()).await.is_ok() {
            for chunk in body.chunks(64 << 10) {
                // The server may answer and close before the body ends: stop there.
                if w.write_all(chunk).await.is_err() {
                    break;
                }
            }
        }
        w
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        match tokio::time::timeout(WAIT, r.read(&mut buf))
            .await
            .expect("an answer")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    drop(writer.await);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_else(|| panic!("no JSON answer: {text:?}"));
    (status, json)
}
