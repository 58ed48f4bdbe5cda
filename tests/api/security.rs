//! Bad input gets a clear error with a stable code; the connection and conversation stay intact.

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    bad_frames_get_errors_and_the_chat_survives,
    flood_is_limited_and_nothing_is_lost,
    wrong_tokens_are_refused,
    foreign_origin_is_refused_at_the_upgrade,
    connections_per_ip_count_the_client_behind_a_trusted_proxy
);

/// Malformed JSON, unknown types, bad fields, oversized frames and binary frames each get their
/// code; the same socket then still chats.
async fn bad_frames_get_errors_and_the_chat_survives(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, _) = visitor(&app, json!({})).await;
    let conv = say(&mut v, "m1", "hello").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();

    v.send_raw("{this is not json").await;
    v.wait_error("bad_json").await;
    v.send(json!({"type": "teleport"})).await;
    let e = v.wait_error("unknown_type").await;
    assert!(e["message"].as_str().unwrap().contains("teleport"));
    v.send(json!({"type": "message", "text": "no client id"}))
        .await;
    v.wait_error("invalid_message").await;
    v.send_raw(&format!(
        r#"{{"type":"message","client_id":"big","text":"{}"}}"#,
        "x".repeat(20_000)
    ))
    .await;
    v.wait_error("frame_too_large").await;
    v.send(json!({"type": "message", "client_id": "long", "text": "y".repeat(4001)}))
        .await;
    let e = v.wait_error("message_too_long").await;
    assert_eq!(e["client_id"], "long");
    v.send(json!({"type": "message", "client_id": "blank", "text": "   "}))
        .await;
    v.wait_error("empty_message").await;
    v.send(json!({"type": "hello"})).await;
    v.wait_error("already_authenticated").await;

    // Agents get the same treatment, plus ownership checks.
    alice.send_raw("[1,2").await;
    alice.wait_error("bad_json").await;
    alice
        .send(
            json!({"type": "message", "conversation": "01NOTMINE", "client_id": "x", "text": "hi"}),
        )
        .await;
    let e = alice.wait_error("not_found").await;
    assert_eq!(e["conversation"], "01NOTMINE");
    alice
        .send(json!({"type": "set_limit", "max_concurrent": 99}))
        .await;
    alice.wait_error("limit_out_of_range").await;

    // Still the same sockets, still the same conversation.
    let ack = say(&mut v, "m2", "still here").await;
    assert_eq!(ack["conversation"], conv.as_str());
    alice
        .wait_for("message after errors", |m| {
            m["type"] == "event" && m["event"]["text"] == "still here"
        })
        .await;
    app.stop().await;
}

/// A flood over the rate limit is refused frame by frame; everything acknowledged is stored.
async fn flood_is_limited_and_nothing_is_lost(backend: Backend) {
    let mut cfg = config(&[alice(2)]);
    cfg.limits.messages_per_second = 5.0;
    cfg.limits.message_burst = 10.0;
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, welcome) = visitor(&app, json!({})).await;
    for i in 0..60 {
        v.send(
            json!({"type": "message", "client_id": format!("f{i}"), "text": format!("flood {i}")}),
        )
        .await;
    }
    // Each frame gets exactly one answer: an ack or rate_limited.
    let mut acked = Vec::new();
    let mut limited = 0;
    while acked.len() + limited < 60 {
        let m = v
            .wait_for("ack or rate_limited", |m| {
                m["type"] == "ack" || m["code"] == "rate_limited"
            })
            .await;
        if m["type"] == "ack" {
            acked.push(m["client_id"].as_str().unwrap().to_owned());
        } else {
            limited += 1;
        }
    }
    assert!(limited > 0, "the flood was limited");
    // The hello took one token of the burst of 10.
    assert!(acked.len() >= 9, "the burst got through: {}", acked.len());
    wait_assigned(&mut alice).await;
    // The connection is intact and everything acknowledged is in the transcript.
    let (mut reader, _) = visitor(&app, json!({"token": welcome["token"]})).await;
    reader.sync().await;
    let stored: Vec<String> = reader
        .drain()
        .into_iter()
        .filter(|m| m["event"]["kind"] == "message")
        .map(|m| m["event"]["client_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, acked);
    app.stop().await;
}

/// Wrong agent tokens and forged visitor tokens are refused; the socket may try again.
async fn wrong_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend, config(&[alice(2)])).await;
    let mut c = connect(app.addr, "/v1/agent", None).await.unwrap();
    c.send(json!({"type": "set_status", "status": "online"}))
        .await;
    c.wait_error("hello_required").await;
    c.send(json!({"type": "hello", "token": "wrong"})).await;
    c.wait_error("unauthorized").await;
    c.send(json!({"type": "hello", "token": token("alice")}))
        .await;
    c.wait_type("welcome").await;

    let (_, welcome) = visitor(&app, json!({})).await;
    let forged = welcome["token"]
        .as_str()
        .unwrap()
        .replace("v1.test.", "v1.test.X");
    let mut v = connect(app.addr, &format!("/v1/visitor?site={SITE}"), Some(ORIGIN))
        .await
        .unwrap();
    v.send(json!({"type": "hello", "token": forged})).await;
    v.wait_error("unauthorized").await;
    // Three strikes close the socket.
    v.send(json!({"type": "hello", "token": "nope"})).await;
    v.send(json!({"type": "hello", "token": "nope"})).await;
    assert_eq!(v.closed().await, Some(4001));

    // Binary frames are refused with a code, not a disconnect.
    let mut v = connect(app.addr, &format!("/v1/visitor?site={SITE}"), Some(ORIGIN))
        .await
        .unwrap();
    v.send_message(Message::Binary(vec![1, 2, 3].into())).await;
    v.wait_error("binary_not_supported").await;
    app.stop().await;
}

/// A visitor socket from a page outside the site's allowlist is refused before the upgrade.
async fn foreign_origin_is_refused_at_the_upgrade(backend: Backend) {
    let app = spawn_app(backend, config(&[])).await;
    let e = connect(
        app.addr,
        &format!("/v1/visitor?site={SITE}"),
        Some("http://evil.test"),
    )
    .await
    .err()
    .expect("refused");
    assert!(e.contains("403"), "{e}");
    let e = connect(app.addr, &format!("/v1/visitor?site={SITE}"), None)
        .await
        .err()
        .expect("refused");
    assert!(e.contains("403"), "{e}");
    let e = connect(app.addr, "/v1/visitor?site=unknown", Some(ORIGIN))
        .await
        .err()
        .expect("refused");
    assert!(e.contains("404"), "{e}");
    app.stop().await;
}

/// The real binary's log, on stderr into a pipe: a failing webhook whose URL carries a key is
/// logged by host and path only, and a pipe gets no colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_keep_webhook_keys_out() {
    const KEY: &str = "topsecret-key-0123";
    let hooks = Receiver::start(&[Answer::Fail, Answer::Fail, Answer::Fail]).await;
    let text = format!(
        "{}\n[[sites.webhooks]]\nurl = \"{}?api_key={KEY}\"\nsecret = {HOOK_SECRET:?}\nevents = [\"ticket.created\"]\n",
        config_toml(&[alice(2)]),
        hooks.url
    );
    let path = temp_dir().with_extension("toml");
    std::fs::write(&path, text).unwrap();
    let (node, mut log) = crate::multinode::start_with_log(&path, false).await;
    let mut alice = agent_client_at(node.addr, "alice").await;
    let mut v = crate::multinode::visitor_at(node.addr).await;
    let conv = say(&mut v, "m1", "hello").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_assigned(&mut alice).await;
    alice
        .send(json!({"type": "close", "conversation": conv}))
        .await;
    alice.wait_type("closed").await;
    let mut seen = Vec::new();
    let retry = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = log.next_line().await {
            let done = line.contains("webhook delivery failed");
            seen.push(line);
            if done {
                return;
            }
        }
    })
    .await;
    assert!(retry.is_ok(), "no retry logged: {seen:#?}");
    let all = seen.join("\n");
    assert!(!all.contains(KEY), "a key in the log: {all}");
    assert!(!all.contains('\u{1b}'), "colour codes in a pipe: {all}");
    let hook_path = hooks.url.trim_start_matches("http://");
    assert!(all.contains(hook_path), "the log names the receiver: {all}");
    node.kill().await;
}

/// Opens a visitor socket as if through a proxy that sent `X-Forwarded-For: xff`.
async fn visitor_via(app: &TestApp, xff: &str) -> Result<impl std::fmt::Debug + use<>, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/v1/visitor?site=test", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("origin", ORIGIN.parse().unwrap());
    req.headers_mut()
        .insert("x-forwarded-for", xff.parse().unwrap());
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Behind a trusted proxy, `limits.connections_per_ip` counts the address the proxy forwarded;
/// from anyone else, `X-Forwarded-For` is ignored and the peer is counted.
async fn connections_per_ip_count_the_client_behind_a_trusted_proxy(backend: Backend) {
    let mut cfg = config(&[alice(2)]);
    cfg.limits.connections_per_ip = 2;
    cfg.trusted_proxies = vec!["127.0.0.0/8".to_owned().try_into().unwrap()];
    let app = spawn_app(backend, cfg).await;
    let mut open = vec![visitor_via(&app, "203.0.113.7").await.unwrap()];
    // A proxy chain: the trusted hop appended last is skipped.
    open.push(visitor_via(&app, "203.0.113.7, 127.0.0.1").await.unwrap());
    let e = visitor_via(&app, "203.0.113.7").await.unwrap_err();
    assert!(e.contains("429"), "{e}");
    // A spoofed entry left of the client is not believed: the client is the last untrusted one.
    let e = visitor_via(&app, "198.51.100.1, 203.0.113.7")
        .await
        .unwrap_err();
    assert!(e.contains("429"), "{e}");
    open.push(visitor_via(&app, "203.0.113.8").await.unwrap());
    app.stop().await;

    let mut cfg = config(&[alice(2)]);
    cfg.limits.connections_per_ip = 2;
    let app = spawn_app(backend, cfg).await;
    // The limit counts open sockets: these stay open to the end.
    open.push(visitor_via(&app, "203.0.113.1").await.unwrap());
    open.push(visitor_via(&app, "203.0.113.2").await.unwrap());
    let e = visitor_via(&app, "203.0.113.3").await.unwrap_err();
    assert!(e.contains("429"), "{e}");
    drop(open);
    app.stop().await;
}
