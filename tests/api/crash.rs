//! A node killed with SIGKILL (no shutdown of any kind) and started again on the same records:
//! every ticket whose `closed` was acknowledged is there, once, on SQLite and on PostgreSQL.

use serde_json::json;

use crate::helpers::*;
use crate::multinode::{start_process, visitor_at};

/// kill -9 right after a burst of acknowledged closes, then a restart on the same database.
async fn acknowledged_tickets_survive_kill(postgres: bool) {
    let cfg = config(&[alice(5)]);
    let mut text = config_toml(&[alice(5)]);
    if postgres {
        text = format!("database_url = {:?}\n{text}", postgres_database(&cfg).await);
    }
    let path = cfg.data_dir.with_extension("toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    let node = start_process(&path, false).await;
    let mut console = agent_client_at(node.addr, "alice").await;
    let mut visitors = Vec::new();
    for i in 0..5 {
        let mut v = visitor_at(node.addr).await;
        say(&mut v, "m", &format!("question {i}")).await;
        wait_assigned(&mut console).await;
        visitors.push(v);
    }
    let mut acknowledged = Vec::new();
    for v in &mut visitors {
        v.send(json!({"type": "close"})).await;
    }
    for v in &mut visitors {
        acknowledged.push(
            v.wait_type("closed").await["ticket"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    node.kill().await;

    let node = start_process(&path, false).await;
    for id in &acknowledged {
        let (status, t) =
            http_get(node.addr, &format!("/v1/tickets/{id}"), Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 200, "ticket {id} after kill -9: {t}");
    }
    let (_, list) = http_get(node.addr, "/v1/tickets?limit=200", Some(ADMIN_TOKEN)).await;
    assert_eq!(
        list["tickets"].as_array().unwrap().len(),
        acknowledged.len(),
        "each once"
    );
    node.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tickets_survive_kill() {
    acknowledged_tickets_survive_kill(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tickets_survive_kill() {
    acknowledged_tickets_survive_kill(true).await;
}

/// The record database (PostgreSQL) goes away mid-chat and comes back. The chat goes on and a
/// new visitor still gets in; a close that cannot be filed is answered `unavailable`, never
/// acknowledged; once the database is back the sweep files the ticket, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_database_briefly_gone() {
    let mut pg = PrivatePostgres::start();
    let mut cfg = config(&[alice(2)]);
    cfg.database_url = Some(pg.url());
    let (app, clock) = spawn_with_clock(Backend::Memory, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, conv) = chat_with(&app, &mut alice, "m1", "my parcel is late").await;

    pg.stop();
    say(&mut v, "m2", "are you there?").await;
    agent_say(&mut alice, &conv, "a1", "Yes, looking into it").await;
    let (mut w, _) = visitor(&app, json!({})).await;
    say(&mut w, "w1", "hello from a new visitor").await;
    alice
        .send(json!({"type": "close", "conversation": conv}))
        .await;
    alice.wait_error("unavailable").await;
    assert!(
        alice.drain().iter().all(|m| m["type"] != "closed"),
        "a close is acknowledged only once its ticket is stored"
    );

    crate::health::until_ready_is(app.addr, 503).await;
    pg.start_again();
    crate::health::until_ready_is(app.addr, 200).await;
    // Past the grace the sweep gives a close before filing a ticket left behind.
    clock.advance(std::time::Duration::from_secs(11));
    until_status(&app, &format!("/v1/tickets/{conv}"), 200).await;
    let (_, ticket) = admin_get(&app, &format!("/v1/tickets/{conv}")).await;
    let texts: Vec<&str> = ticket["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    for text in [
        "my parcel is late",
        "are you there?",
        "Yes, looking into it",
    ] {
        assert!(texts.contains(&text), "{text} in {texts:?}");
    }
    app.stop().await;
}

/// Files and read receipts when what holds them fails. With the record database gone, a file
/// is refused as `unavailable` and no message claims it; sent again (same client id) once the
/// database is back, it is stored once. A restart of the embedded node keeps both read marks
/// and the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_read_marks_survive_an_outage_and_a_restart() {
    let mut pg = PrivatePostgres::start();
    let mut cfg = config(&[alice(2)]);
    cfg.database_url = Some(pg.url());
    let app = spawn_app(Backend::Memory, cfg.clone()).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, welcome, conv) =
        chat_with_hello(&app, &mut alice, json!({}), "m1", "see the picture").await;
    let vtoken = welcome["token"].as_str().unwrap().to_owned();
    let png = b"\x89PNG\r\n\x1a\n-picture-bytes".to_vec();
    let upload = || {
        reqwest::Client::new()
            .post(format!(
                "http://{}/v1/conversations/{conv}/attachments?client_id=f1&name=shot.png",
                app.addr
            ))
            .bearer_auth(&vtoken)
            .body(png.clone())
            .send()
    };

    pg.stop();
    let resp = upload().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    crate::health::until_ready_is(app.addr, 503).await;
    pg.start_again();
    crate::health::until_ready_is(app.addr, 200).await;
    let resp = upload().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let sent: serde_json::Value = resp.json().await.unwrap();
    let file = sent["attachment"]["id"].as_str().unwrap().to_owned();
    let seq = sent["seq"].as_u64().unwrap();
    // One message carries the file, at the number the answer gave.
    let ev = alice
        .wait_for("the file", |m| {
            m["type"] == "event" && m["event"]["attachment"].is_object()
        })
        .await;
    assert_eq!(ev["event"]["seq"], seq);
    v.send(json!({"type": "read", "seq": seq})).await;
    alice.wait_type("read").await;
    alice
        .send(json!({"type": "read", "conversation": conv, "seq": seq}))
        .await;
    v.wait_type("read").await;
    drop((v, alice));
    app.stop().await;

    // The same data directory and database: marks and file are there.
    let app = spawn_app(Backend::Memory, cfg).await;
    let (_v, again) = visitor(&app, json!({"token": vtoken})).await;
    assert_eq!(again["conversation"]["visitor_read"], seq);
    assert_eq!(again["conversation"]["agent_read"], seq);
    let resp = reqwest::Client::new()
        .get(format!("http://{}/v1/attachments/{file}", app.addr))
        .bearer_auth(&vtoken)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), png);
    let (_, watched) = admin_get(&app, &format!("/v1/conversations/{conv}")).await;
    assert_eq!(crate::attachments::file_events(&watched), 1, "{watched}");
    app.stop().await;
}
