//! A node killed with SIGKILL (no shutdown of any kind) and started again on the same records:
//! every ticket whose `closed` was acknowledged is there, once, on SQLite and on PostgreSQL.

use serde_json::json;

use crate::helpers::*;
use crate::multinode::start_process;

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
        let mut v = connect(node.addr, &format!("/v1/visitor?site={SITE}"), Some(ORIGIN))
            .await
            .unwrap();
        v.send(json!({"type": "hello"})).await;
        v.wait_type("welcome").await;
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
