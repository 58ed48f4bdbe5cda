//! The reverse-proxy set-ups of docs/deploy (nginx and Caddy), run for real: a visitor's chat,
//! an agent signing in with a password and the console's cookie socket all work through the
//! proxy, and with `trusted_proxies` the server sees the client's address, not the proxy's.

use std::net::SocketAddr;
use std::process::{Child, Command};

use serde_json::json;

use crate::helpers::*;

/// A proxy process started for one test, stopped when dropped.
struct Proxy {
    addr: SocketAddr,
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port and an empty directory for one proxy.
fn workspace() -> (u16, std::path::PathBuf) {
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    (free_port(), dir)
}

/// Starts the proxy's command and waits until it listens on `port`.
fn start(mut cmd: Command, port: u16, dir: std::path::PathBuf, what: &str, install: &str) -> Proxy {
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {what} ({e}); install it: apt-get install {install}")
        });
    wait_listening(port, what);
    Proxy {
        addr: ([127, 0, 0, 1], port).into(),
        child,
        dir,
    }
}

/// nginx with docs/deploy/nginx.conf, its TLS lines replaced by a plain local port.
fn nginx(upstream: SocketAddr) -> Proxy {
    let (port, dir) = workspace();
    let documented = include_str!("../../docs/deploy/nginx.conf");
    assert!(
        documented.contains("server 127.0.0.1:8080;") && documented.contains("listen 443 ssl;")
    );
    let site: String = documented
        .replace("server 127.0.0.1:8080;", &format!("server {upstream};"))
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port};"))
        .lines()
        .filter(|l| !l.trim_start().starts_with("ssl_certificate"))
        .collect::<Vec<_>>()
        .join("\n");
    let d = dir.display();
    let conf = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n\
         access_log off;\nclient_body_temp_path {d};\nproxy_temp_path {d};\n{site}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off; master_process off;"]);
    start(cmd, port, dir, "nginx", "nginx-light")
}

/// Caddy with docs/deploy/Caddyfile, its site address replaced by a plain local port.
fn caddy(upstream: SocketAddr) -> Proxy {
    let (port, dir) = workspace();
    let documented = include_str!("../../docs/deploy/Caddyfile");
    assert!(documented.contains("chat.example.com {") && documented.contains("127.0.0.1:8080"));
    let site = documented
        .replace("chat.example.com {", &format!("http://127.0.0.1:{port} {{"))
        .replace("127.0.0.1:8080", &upstream.to_string());
    // No admin endpoint (tests run side by side), no state outside the test's directory.
    let conf = format!(
        "{{\n\tadmin off\n\tstorage file_system {}\n}}\n{site}",
        dir.display()
    );
    std::fs::write(dir.join("Caddyfile"), conf).unwrap();
    let mut cmd = Command::new("caddy");
    cmd.arg("run")
        .arg("--adapter")
        .arg("caddyfile")
        .arg("--config")
        .arg(dir.join("Caddyfile"))
        .env("HOME", &dir)
        .env("XDG_DATA_HOME", &dir)
        .env("XDG_CONFIG_HOME", &dir);
    start(cmd, port, dir, "caddy", "caddy")
}

/// A password sign-in through the proxy from 127.0.0.2, with a forged `X-Forwarded-For` the
/// proxy must not let through: the answer's status.
async fn sign_in_from_elsewhere(proxy: SocketAddr, email: &str, password: &str) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    client
        .post(format!("http://{proxy}/v1/auth/sign-in"))
        .header("x-forwarded-for", "198.51.100.66")
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn through(proxy: fn(SocketAddr) -> Proxy, forged_is_dropped: bool) {
    let mut cfg = config(&[]);
    cfg.trusted_proxies = vec!["127.0.0.1".to_owned().try_into().unwrap()];
    let app = spawn_app(Backend::Memory, cfg).await;
    let p = proxy(app.addr);

    // An agent invited by the admin sets a password and signs in, all through the proxy.
    let (s, created) = admin(
        p.addr,
        "POST",
        "/v1/sites/test/agents",
        Some(
            json!({"id": "sam", "name": "Sam Lee", "departments": ["support"],
                    "max_concurrent": 2, "email": "sam@shop.test"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let console = Console::accept_invite(p.addr, &invite_token(&created), "a long password")
        .await
        .unwrap();
    // The console's socket, from a page of the proxy's host, authenticated by the cookie.
    let mut sam = console.socket().await.unwrap();

    // A visitor chats through the proxy.
    let mut v = crate::multinode::visitor_at(p.addr).await;
    let conv = say(&mut v, "m1", "through the proxy").await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (c, _) = wait_assigned(&mut sam).await;
    assert_eq!(c, conv);
    agent_say(&mut sam, &conv, "a1", "and back").await;
    let reply = v
        .wait_for("the agent's reply", |m| {
            m["type"] == "event" && m["event"]["text"] == "and back"
        })
        .await;
    assert_eq!(reply["event"]["author_name"], "Sam Lee");
    // A 2 MB picture passes the proxy (nginx refuses bodies over 1 MB unless told otherwise).
    let picture = [&b"\x89PNG\r\n\x1a\n"[..], &vec![7u8; 2 << 20]].concat();
    let sent = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/conversations/{conv}/attachments?client_id=p1&name=big.png",
            p.addr
        ))
        .header("cookie", &console.cookie)
        .header("x-csrf-token", &console.csrf)
        .body(picture.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 201);
    let file = v
        .wait_for("the picture", |m| {
            m["type"] == "event" && m["event"]["attachment"].is_object()
        })
        .await;
    assert_eq!(file["event"]["attachment"]["size"], picture.len());

    // The server records the client's address from behind the proxy.
    assert_eq!(
        sign_in_from_elsewhere(p.addr, "sam@shop.test", "a long password").await,
        200
    );
    let (s, audit) = admin(app.addr, "GET", "/v1/audit?action=agent.sign_in", None).await;
    assert_eq!(s, 200, "{audit}");
    let ips: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"]["ip"].as_str())
        .collect();
    assert!(ips.contains(&"127.0.0.2"), "{audit}");
    if forged_is_dropped {
        assert!(!ips.contains(&"198.51.100.66"), "{audit}");
    }
    // The metrics name every tenant: the shipped files do not pass them on (issue 24.14).
    let (s, _) = http_get(p.addr, "/metrics", None).await;
    assert_eq!(s, 404);
    app.stop().await;
}

/// docs/deploy/nginx.conf: a chat, a sign-in and the console's socket work through nginx; the
/// client's address reaches the server, a forged one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx() {
    through(nginx, true).await;
}

/// docs/deploy/Caddyfile: the same through Caddy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_caddy() {
    through(caddy, true).await;
}
