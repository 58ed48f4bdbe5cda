//! Redis only: two real `switchboard` processes share one Redis behind no load balancer at all —
//! the visitor on one, the agent on the other.

use std::net::SocketAddr;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

use crate::helpers::*;

/// A `switchboard` process; killed when dropped.
pub struct Node {
    pub addr: SocketAddr,
    child: Child,
}

impl Node {
    /// kill -9: no shutdown of any kind.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("the node is killed");
    }

    /// Sends a signal (SIGHUP: reload).
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id().expect("the node runs") as libc::pid_t;
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// SIGTERM, then waits for the process to exit on its own.
    pub async fn terminate(mut self) {
        let pid = self.child.id().expect("the node runs") as libc::pid_t;
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the node exits after SIGTERM")
            .unwrap();
        assert!(status.success(), "exit after SIGTERM: {status}");
    }
}

async fn start_node(config_path: &std::path::Path) -> Node {
    start_process(config_path, true).await
}

/// Starts the real binary on a configuration file, on Redis or on embedded state.
pub async fn start_process(config_path: &std::path::Path, on_redis: bool) -> Node {
    let (node, mut log) = start_with_log(config_path, on_redis).await;
    // Keep reading so the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    node
}

/// As `start_process` (at `RUST_LOG=info`), with the process's log (stderr) line by line.
pub async fn start_with_log(
    config_path: &std::path::Path,
    on_redis: bool,
) -> (Node, Lines<BufReader<ChildStderr>>) {
    start_limited(config_path, on_redis, None).await
}

/// As `start_with_log`, the process allowed at most `nofile` descriptors when one is given.
pub async fn start_limited(
    config_path: &std::path::Path,
    on_redis: bool,
    nofile: Option<u64>,
) -> (Node, Lines<BufReader<ChildStderr>>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    if let Some(n) = nofile {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    cmd.arg("--config").arg(config_path);
    start_command(cmd, on_redis).await
}

/// Starts a node with `cmd` (the binary and its arguments, already set) and reads its address.
pub async fn start_command(
    mut cmd: Command,
    on_redis: bool,
) -> (Node, Lines<BufReader<ChildStderr>>) {
    cmd.env("RUST_LOG", "info")
        .env_remove("SWITCHBOARD_REDIS_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if on_redis {
        cmd.env("SWITCHBOARD_REDIS_URL", redis_url());
    }
    let mut child = cmd.spawn().expect("the switchboard binary starts");
    let stdout = child.stdout.take().unwrap();
    let log = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("node prints its address")
        .unwrap()
        .expect("a first line");
    // "switchboard listening on 127.0.0.1:PORT (redis state)"
    let addr = first
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"));
    assert_eq!(first.contains("(redis state)"), on_redis, "{first}");
    // Keep reading so the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (Node { addr, child }, log)
}

fn write_config(agents: &[AgentSpec]) -> std::path::PathBuf {
    let text = format!(
        "key_prefix = {:?}\n{}",
        unique_prefix(),
        config_toml(agents)
    );
    let path = std::env::temp_dir().join(format!("switchboard-test-{}.toml", unique_prefix()));
    std::fs::write(&path, text).unwrap();
    path
}

/// A visitor on a node, after its welcome.
pub async fn visitor_at(addr: SocketAddr) -> Client {
    let mut c = connect(addr, &format!("/v1/visitor?site={SITE}"), Some(ORIGIN))
        .await
        .unwrap();
    c.send(json!({"type": "hello"})).await;
    c.wait_type("welcome").await;
    c
}

/// Visitor on node A, agent on node B: messages flow both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_relay_both_ways() {
    let path = write_config(&[alice(2)]);
    let a = start_node(&path).await;
    let b = start_node(&path).await;
    let mut alice = agent_client_at(b.addr, "alice").await;
    let mut v = visitor_at(a.addr).await;
    let conv = say(&mut v, "m1", "hello from node A").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (c, assigned) = wait_assigned(&mut alice).await;
    assert_eq!(c, conv);
    assert_eq!(assigned["events"][0]["text"], "hello from node A");
    v.wait_event("assigned").await;
    agent_say(&mut alice, &conv, "a1", "hello from node B").await;
    v.wait_for("reply across nodes", |m| {
        m["type"] == "event" && m["event"]["text"] == "hello from node B"
    })
    .await;
    say(&mut v, "m2", "and back").await;
    alice
        .wait_for("message across nodes", |m| {
            m["type"] == "event" && m["event"]["text"] == "and back"
        })
        .await;
    let _ = std::fs::remove_file(path);
}

/// Visitors arriving at once on both nodes: the agent's limit holds across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_limit_holds() {
    let path = write_config(&[alice(2)]);
    let a = start_node(&path).await;
    let b = start_node(&path).await;
    let mut alice = agent_client_at(a.addr, "alice").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        tasks.push(tokio::spawn(async move {
            let mut v = visitor_at(addr).await;
            say(&mut v, "m", &format!("visitor {i}")).await;
            let first = v
                .wait_for("assigned or queued", |m| {
                    m["type"] == "event"
                        && (m["event"]["kind"] == "assigned" || m["event"]["notice"] == "queued")
                })
                .await;
            (v, first["event"]["kind"] == "assigned")
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(
        results.iter().filter(|(_, a)| *a).count(),
        2,
        "only two chats at once"
    );
    let (c1, _) = wait_assigned(&mut alice).await;
    wait_assigned(&mut alice).await;
    alice.sync().await;
    assert!(alice.drain().iter().all(|m| m["type"] != "assigned"));
    // Closing one lets exactly one more in, whichever node its visitor is on.
    alice
        .send(json!({"type": "close", "conversation": c1}))
        .await;
    wait_assigned(&mut alice).await;
    alice.sync().await;
    assert!(alice.drain().iter().all(|m| m["type"] != "assigned"));
    let _ = std::fs::remove_file(path);
}

/// The node holding a webhook delivery is killed mid-request: the other node delivers it, with
/// the same delivery id, once the lease runs out. Both nodes share one SQLite file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_taken_over_from_a_dead_node() {
    delivery_taken_over(None).await;
}

/// The same with the nodes' records in PostgreSQL, where claims lease rows with
/// `FOR UPDATE SKIP LOCKED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_taken_over_from_a_dead_node_on_postgres() {
    let db = postgres_database(&config(&[])).await;
    delivery_taken_over(Some(db)).await;
}

async fn delivery_taken_over(database_url: Option<String>) {
    let mut hooks = Receiver::start(&[Answer::Hang]).await;
    let database = database_url
        .map(|url| format!("database_url = {url:?}\n"))
        .unwrap_or_default();
    let text = format!(
        "{database}key_prefix = {:?}\n{}\n[[sites.webhooks]]\nurl = {:?}\nsecret = {HOOK_SECRET:?}\nevents = [\"ticket.created\"]\n",
        unique_prefix(),
        config_toml(&[alice(2)]).replace(
            "[timing]\n",
            "[timing]\ndelivery_lease_secs = 1.0\nwebhook_timeout_secs = 60.0\n"
        ),
        hooks.url
    );
    let path = std::env::temp_dir().join(format!("switchboard-test-{}.toml", unique_prefix()));
    std::fs::write(&path, text).unwrap();

    let a = start_node(&path).await;
    let mut alice = agent_client_at(a.addr, "alice").await;
    let mut v = visitor_at(a.addr).await;
    let conv = say(&mut v, "m1", "hello").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_assigned(&mut alice).await;
    alice
        .send(json!({"type": "close", "conversation": conv}))
        .await;
    let ticket = alice.wait_type("closed").await["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    // Node A is now stuck sending it.
    let stuck = hooks.next().await;
    let b = start_node(&path).await;
    drop((alice, v));
    drop(a); // SIGKILL: no graceful anything.
    let taken_over = hooks.next().await;
    assert_eq!(taken_over.delivery, stuck.delivery);
    assert!(taken_over.signed_with(HOOK_SECRET));
    assert_eq!(taken_over.json()["data"]["id"], ticket.as_str());
    let (status, t) = http_get(b.addr, &format!("/v1/tickets/{ticket}"), Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(t["status"], "resolved");
    let _ = std::fs::remove_file(path);
}

/// Three nodes on one Redis. kill -9 of the visitor's node mid-burst, then of the agent's node:
/// each side reconnects to a node still up, resumes from the last number it saw, and resends
/// what was not acknowledged with the same client ids. Every message is stored once, the log
/// is numbered without a gap, and each side ends up with every message of the other, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_either_node_mid_chat_loses_nothing() {
    use crate::restart::{BURST, acks, assert_whole_log, events_by_conv, last_seen, visitor_hello};
    use std::collections::HashMap;
    let path = write_config(&[alice(2)]);
    let a = start_node(&path).await;
    let b = start_node(&path).await;
    let c = start_node(&path).await;
    let mut alice = agent_client_at(b.addr, "alice").await;
    let (mut v, welcome) = visitor_hello(&a, json!({})).await;
    let token = welcome["token"].as_str().unwrap().to_owned();
    let conv = say(&mut v, "open", "hello").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, assigned) = wait_assigned(&mut alice).await;
    let mut alice_saw = HashMap::new();
    let mut v_saw = HashMap::new();
    events_by_conv(&[assigned], &mut alice_saw);
    let mut acked: Vec<(String, u64, String)> = Vec::new();

    // Both sides write without waiting; the visitor's node dies while this is in flight.
    let send_burst = |round: &str| {
        let v_msgs: Vec<_> = (0..BURST)
            .map(|k| json!({"type": "message", "client_id": format!("v{round}{k}"), "text": format!("visitor {round} {k}")}))
            .collect();
        let a_msgs: Vec<_> = (0..BURST)
            .map(|k| json!({"type": "message", "conversation": conv, "client_id": format!("a{round}{k}"), "text": format!("alice {round} {k}")}))
            .collect();
        (v_msgs, a_msgs)
    };
    let (v_msgs, a_msgs) = send_burst("1");
    for (vm, am) in v_msgs.iter().zip(&a_msgs) {
        v.send(vm.clone()).await;
        alice.send(am.clone()).await;
    }
    v.wait_for("an ack", |m| m["type"] == "ack" && m["client_id"] == "v15")
        .await;
    a.kill().await;
    v.closed().await;
    let got = v.drain();
    acked.extend(acks(&got));
    events_by_conv(&got, &mut v_saw);
    let last = last_seen(&v_saw, &conv);
    let (mut v, _) = visitor_hello(
        &c,
        json!({"token": token, "resume": {"conversation": conv, "last_seq": last}}),
    )
    .await;
    // Resend what was not acknowledged: stored once whatever happened to the first try.
    for m in &v_msgs {
        let id = m["client_id"].as_str().unwrap();
        if !acked.iter().any(|(_, _, c)| c == id) {
            v.send(m.clone()).await;
        }
    }

    // Now the agent's node.
    alice
        .wait_for("an ack", |m| m["type"] == "ack" && m["client_id"] == "a110")
        .await;
    b.kill().await;
    alice.closed().await;
    let got = alice.drain();
    acked.extend(acks(&got));
    events_by_conv(&got, &mut alice_saw);
    let mut alice = connect(c.addr, "/v1/agent", None).await.unwrap();
    alice
        .send(
            json!({"type": "hello", "token": crate::helpers::token("alice"), "status": "online",
            "resume": {conv.clone(): last_seen(&alice_saw, &conv)}}),
        )
        .await;
    alice.wait_type("welcome").await;
    for m in &a_msgs {
        let id = m["client_id"].as_str().unwrap();
        if !acked.iter().any(|(_, _, c)| c == id) {
            alice.send(m.clone()).await;
        }
    }

    // Each side ends up with every message of the other, each once.
    for (client, saw, prefix) in [
        (&mut v, &mut v_saw, "a1"),
        (&mut alice, &mut alice_saw, "v1"),
    ] {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let texts: Vec<String> = saw
                .get(&conv)
                .map(|m| {
                    m.values()
                        .filter_map(|e| e["client_id"].as_str())
                        .filter(|id| id.starts_with(prefix))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if texts.len() == BURST {
                let mut unique = texts.clone();
                unique.sort();
                unique.dedup();
                assert_eq!(unique.len(), BURST, "each message once: {texts:?}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "missing messages: {} of {BURST} {prefix}*",
                texts.len()
            );
            let m = client
                .wait_for("an event", |m| {
                    m["type"] == "event" || m["type"] == "assigned"
                })
                .await;
            events_by_conv(&[m], saw);
        }
    }
    // The log itself: numbered 1..=n without a gap, every client id once.
    let (mut full, _) = visitor_hello(&c, json!({"token": token})).await;
    full.sync().await;
    let mut log = HashMap::new();
    events_by_conv(&full.drain(), &mut log);
    let stored = assert_whole_log(&log[&conv], &conv, &acked);
    assert_eq!(stored, 1 + 2 * BURST, "every message stored");
    drop(c);
}
