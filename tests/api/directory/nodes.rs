//! The directory across processes: several nodes on SQLite and PostgreSQL, SIGHUP, an import
//! into a running node, and the demo's credentials on every start.

use super::*;

/// A node configuration file for the real binary: Redis or embedded, SQLite in its data
/// directory or a PostgreSQL database of its own.
async fn node_config(agents: &[AgentSpec], postgres: bool) -> std::path::PathBuf {
    let mut text = format!(
        "key_prefix = {:?}\n{}",
        unique_prefix(),
        config_toml(agents)
    );
    if postgres {
        let url = postgres_database(&config(agents)).await;
        text = format!("database_url = {url:?}\n{text}");
    }
    let path = std::env::temp_dir().join(format!("switchboard-test-{}.toml", unique_prefix()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_on_sqlite() {
    across_nodes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_on_postgres() {
    across_nodes(true).await;
}

/// Two nodes on one Redis and one database: an agent created on A signs in on B within a
/// second; a token rotated on A is refused on B at once and B closes the sockets it opened.
async fn across_nodes(postgres: bool) {
    let path = node_config(&[alice(2)], postgres).await;
    let a = start_process(&path, true).await;
    let b = start_process(&path, true).await;
    let mut alice_b = agent_client_at(b.addr, "alice").await;

    let (s, created) = admin(
        a.addr,
        "POST",
        "/v1/sites/test/agents",
        Some(json!({"id": "nina", "name": "Nina Park", "departments": ["support"], "max_concurrent": 2,
                    "email": "nina@shop.test"})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    // B learns of the change from its version poll (every 250 ms); how fast is a property of
    // that interval, not something a test should time on a loaded machine.
    let nina = Console::accept_invite(b.addr, &invite_token(&created), "nina's long password")
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut socket = loop {
        match nina.socket().await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "not on B: {e}"),
        }
    };
    socket.sync().await;

    let (s, _) = admin(a.addr, "POST", "/v1/sites/test/agents/alice/token", None).await;
    assert_eq!(s, 200);
    let mut old = connect(b.addr, "/v1/agent", None).await.unwrap();
    old.send(json!({"type": "hello", "token": token("alice")}))
        .await;
    old.wait_error("unauthorized").await;
    assert_eq!(alice_b.closed().await, Some(4004));
    drop((a, b));
}

/// SIGHUP puts new limits in force without closing a socket, and names what needs a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_settings_without_dropping_sockets() {
    let path = node_config(&[alice(2)], false).await;
    let (node, mut log) = start_with_log(&path, false).await;
    let mut alice = agent_client_at(node.addr, "alice").await;
    let mut v = crate::multinode::visitor_at(node.addr).await;
    let conv = say(&mut v, "m1", "a message of some length").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_assigned(&mut alice).await;
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[limits]", "[limits]\nmax_message_chars = 10")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"");
    std::fs::write(&path, text).unwrap();
    node.signal(libc::SIGHUP);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let line = tokio::time::timeout_at(deadline, log.next_line())
            .await
            .expect("a reload line in the log")
            .unwrap()
            .expect("the node runs");
        if line.contains("SIGHUP") {
            assert!(
                line.contains("listen"),
                "names what needs a restart: {line}"
            );
            break;
        }
    }
    v.send(json!({"type": "message", "client_id": "m2", "text": "longer than ten characters"}))
        .await;
    v.wait_error("message_too_long").await;
    say(&mut v, "m3", "short").await;
    agent_say(&mut alice, &conv, "a1", "still here").await;
    drop(node);
}

/// `switchboard import FILE` upserts a directory from TOML; the running node has it within a
/// second, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_reaches_a_running_node() {
    let path = node_config(&[alice(2)], false).await;
    let node: Node = start_process(&path, false).await;
    let file = std::env::temp_dir().join(format!("switchboard-test-{}.toml", unique_prefix()));
    std::fs::write(&file, config_toml(&[alice(3), boris(1)])).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&path)
        .arg("import")
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, b) = admin(node.addr, "GET", "/v1/sites/test/agents", None).await;
        let agents = b["agents"].as_array().unwrap();
        if agents.len() == 2 && agents[0]["max_concurrent"] == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "not in force: {b}");
        tokio::task::yield_now().await;
    }
    agent_client_at(node.addr, "boris").await;
}

/// The demo (no `--config`) started twice on one data directory: the password and tokens the
/// second start prints are the ones that work, though the directory was seeded by the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_credentials_that_work_on_every_start() {
    use tokio::io::AsyncBufReadExt;
    let dir = temp_dir();
    for _ in 0..2 {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--data-dir")
            .arg(&dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env_remove("SWITCHBOARD_REDIS_URL")
            .env_remove("SWITCHBOARD_CONFIG")
            .env_remove("SWITCHBOARD_DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        while printed.len() < 6 {
            let line = tokio::time::timeout(WAIT, lines.next_line())
                .await
                .expect("the demo prints its credentials")
                .unwrap()
                .expect("a line");
            printed.push(line);
        }
        let addr: std::net::SocketAddr = printed[0]
            .split_whitespace()
            .nth(3)
            .unwrap()
            .parse()
            .unwrap();
        let password = printed[2].rsplit(' ').next().unwrap();
        let alice_token = printed[4].rsplit(' ').next().unwrap();
        let me = Console::sign_in(addr, "alice@demo.test", password)
            .await
            .expect("the printed password signs Alice in");
        assert_eq!(me.me["role"], "admin");
        assert_eq!(
            http(addr, "GET", "/v1/queues", Some(alice_token), None)
                .await
                .0,
            200
        );
        child.kill().await.unwrap();
    }
}
