//! Test harness: a real Switchboard on 127.0.0.1:0, on the embedded backend or on a real
//! redis-server that this harness starts (or that `SWITCHBOARD_TEST_REDIS_URL` names), and
//! WebSocket clients that wait for events with a timeout instead of sleeping.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use switchboard::auth::token_hash;
use switchboard::config::Config;
use switchboard::model::{Clock, SystemClock};
use switchboard::server::Application;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Message, http};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub const ORIGIN: &str = "http://shop.test";
pub const SITE: &str = "test";

/// Where a test server keeps its state. `Memory` and `Redis` are the two live-state backends
/// (records in SQLite: a file in the data directory); `Postgres` is the embedded backend with
/// its records in a real PostgreSQL that the harness starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    Postgres,
}

/// One test per listed backend, in a module named after the scenario.
#[macro_export]
macro_rules! backend_tests {
    ([$($test:ident = $backend:ident),*] $name:ident) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$name($crate::helpers::Backend::$backend).await
                }
            )*
        }
    };
}

/// Generates `#[tokio::test]`s named `memory` and `redis` in a module named after the scenario.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        $crate::backend_tests!([memory = Memory, redis = Redis] $name);
    )*};
}

/// Adds a `postgres` test to those: for scenarios about records (tickets, the outbox), which
/// must hold on both live-state backends and on both databases.
#[macro_export]
macro_rules! all_stores {
    ($($name:ident),* $(,)?) => {$(
        $crate::backend_tests!([memory = Memory, redis = Redis, postgres = Postgres] $name);
    )*};
}

/// The shared Redis for this test process.
pub fn redis_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("SWITCHBOARD_TEST_REDIS_URL") {
            return url;
        }
        start_redis()
    })
    .clone()
}

/// Starts redis-server on a free port. It is spawned from a thread that lives as long as the
/// process, with PR_SET_PDEATHSIG, so the server dies with the test binary.
/// `redis-server` on a port of 127.0.0.1, without persistence.
fn redis_command(port: u16) -> Command {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    cmd
}

/// A redis-server of one test's own, which the test can kill. Killed when dropped.
pub struct PrivateRedis {
    pub url: String,
    child: std::process::Child,
    /// With persistence: the directory of its append-only file (fsync on every write).
    aof: Option<std::path::PathBuf>,
    /// TLS only (`rediss://`), with these certificates.
    tls: Option<TestCerts>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        Self::spawn(free_port(), None)
    }

    /// With an append-only file, fsynced on every write: a restart keeps everything.
    pub fn start_persistent() -> Self {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        Self::spawn(free_port(), Some(dir))
    }

    /// Speaking TLS only, with a certificate these `certs` made.
    pub fn start_tls(certs: &TestCerts) -> Self {
        let port = free_port();
        Self {
            url: format!("rediss://127.0.0.1:{port}/"),
            child: Self::server(port, None, Some(certs), &[]),
            aof: None,
            tls: Some(certs.clone()),
        }
    }

    fn spawn(port: u16, aof: Option<std::path::PathBuf>) -> Self {
        Self {
            url: format!("redis://127.0.0.1:{port}/"),
            child: Self::server(port, aof.as_deref(), None, &[]),
            aof,
            tls: None,
        }
    }

    /// A redis-server on `port` (the TLS port with `tls`), with `extra` arguments.
    fn server(
        port: u16,
        aof: Option<&std::path::Path>,
        tls: Option<&TestCerts>,
        extra: &[&str],
    ) -> std::process::Child {
        let mut cmd = redis_command(port);
        if let Some(dir) = aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir);
        }
        if let Some(certs) = tls {
            cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                .args(certs.server_args());
        }
        cmd.args(extra);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        wait_listening(port, "redis-server");
        child
    }

    /// kill -9, then the same server again on the same port (with its data when persistent).
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::server(
            port_of(&self.url),
            self.aof.as_deref(),
            self.tls.as_ref(),
            &[],
        );
    }

    /// kill -9: Redis is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// kill -9, then a fresh redis-server on the same port: Redis is back, without its data.
    pub fn restart_empty(&mut self) {
        self.aof = None;
        self.restart();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start_redis() -> String {
    let port = free_port();
    let cmd = redis_command(port);
    if let Err(e) = spawn_for_life(cmd) {
        panic!(
            "cannot start redis-server ({e}). Install it (Debian: apt-get install redis-server) \
             or run ./scripts/test.sh, which installs it"
        );
    }
    wait_listening(port, "redis-server");
    format!("redis://127.0.0.1:{port}/")
}

/// Starts a server that lives as long as the test process: it is spawned from a thread that
/// never ends, with PR_SET_PDEATHSIG (set last, after any change of account, so it holds), so
/// the server dies with the test binary.
fn spawn_for_life(mut cmd: Command) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn();
        let ok = child.is_ok();
        tx.send(child.map(|_| ()).map_err(|e| e.to_string())).ok();
        if ok {
            // Keep this thread (the child's parent for PDEATHSIG) alive for the process's life.
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv().map_err(|e| e.to_string())?
}

/// Waits until something accepts TCP connections on a loopback port.
/// A throwaway authority and a certificate for 127.0.0.1 it signed (made with the `openssl`
/// command), for TLS servers of a test.
#[derive(Clone)]
pub struct TestCerts {
    dir: std::path::PathBuf,
}

impl TestCerts {
    pub fn make() -> Self {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl runs (apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=switchboard-test-ca",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Self { dir }
    }

    /// The authority's certificate (PEM), for `redis_ca_file`.
    pub fn ca(&self) -> std::path::PathBuf {
        self.dir.join("ca.crt")
    }

    /// redis-server's TLS settings for the certificate (clients need none of their own).
    pub fn server_args(&self) -> Vec<std::ffi::OsString> {
        let path = |f: &str| self.dir.join(f).into_os_string();
        vec![
            "--tls-cert-file".into(),
            path("server.crt"),
            "--tls-key-file".into(),
            path("server.key"),
            "--tls-ca-cert-file".into(),
            path("ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
            "--tls-replication".into(),
            "yes".into(),
        ]
    }
}

/// A redis-server that speaks TLS only, with a certificate for 127.0.0.1 signed by a throwaway
/// authority (made with the `openssl` command); killed when dropped.
pub struct TlsRedis {
    pub url: String,
    /// The authority's certificate (PEM), for `redis_ca_file`.
    pub ca: std::path::PathBuf,
    child: std::process::Child,
}

impl TlsRedis {
    pub fn start() -> Self {
        let certs = TestCerts::make();
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--tls-port")
            .arg(port.to_string())
            .args(certs.server_args())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        wait_listening(port, "redis-server (TLS)");
        Self {
            url: format!("rediss://127.0.0.1:{port}/"),
            ca: certs.ca(),
            child,
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A primary, its replica and one Sentinel watching them (quorum 1, down after 1 s), each a
/// redis-server of this test's own; killed when dropped.
pub struct SentinelSet {
    pub primary: PrivateRedis,
    replica: std::process::Child,
    sentinel: std::process::Child,
    pub sentinel_port: u16,
    _dir: std::path::PathBuf,
}

impl SentinelSet {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Every server and the Sentinel speaking TLS only, with these certificates.
    pub fn start_tls(certs: &TestCerts) -> Self {
        Self::start_with(Some(certs))
    }

    fn start_with(tls: Option<&TestCerts>) -> Self {
        let primary = match tls {
            Some(certs) => PrivateRedis::start_tls(certs),
            None => PrivateRedis::start(),
        };
        let primary_port = port_of(&primary.url);
        let replica_port = free_port();
        let replica = PrivateRedis::server(
            replica_port,
            None,
            tls,
            &["--replicaof", "127.0.0.1", &primary_port.to_string()],
        );
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let sentinel_port = free_port();
        let conf = dir.join("sentinel.conf");
        let listen = match tls {
            // The Sentinel talks TLS to its clients and to the servers it watches.
            Some(certs) => {
                let path = |f: &str| certs.dir.join(f).display().to_string();
                format!(
                    "port 0\ntls-port {sentinel_port}\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
                    path("server.crt"),
                    path("server.key"),
                    path("ca.crt")
                )
            }
            None => format!("port {sentinel_port}\n"),
        };
        std::fs::write(
            &conf,
            format!(
                "{listen}bind 127.0.0.1\ndir {}\n\
                 sentinel monitor sb 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds sb 1000\n\
                 sentinel failover-timeout sb 5000\n",
                dir.display()
            ),
        )
        .unwrap();
        let sentinel = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts in Sentinel mode");
        wait_listening(sentinel_port, "redis sentinel");
        Self {
            primary,
            replica,
            sentinel,
            sentinel_port,
            _dir: dir,
        }
    }

    /// What a node is given: the Sentinel and the primary's name.
    pub fn url(&self) -> String {
        let scheme = if self.primary.tls.is_some() {
            "rediss+sentinel"
        } else {
            "redis+sentinel"
        };
        format!("{scheme}://127.0.0.1:{}/sb", self.sentinel_port)
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for c in [&mut self.replica, &mut self.sentinel] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A Redis Cluster of this test's own: three primaries and a replica of each (six
/// redis-server processes, `redis-cli --cluster create`), a node timeout of one second so a
/// replica takes over quickly. Killed when dropped.
pub struct RedisCluster {
    /// Each node's port and process.
    nodes: Vec<(u16, std::process::Child)>,
    /// The nodes' working directories (cluster configuration files), removed on drop.
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// A cluster whose nodes declare a silent peer failed after one second.
    pub fn start() -> Self {
        Self::start_with(Duration::from_secs(1))
    }

    /// A cluster whose nodes declare a silent peer failed after `node_timeout` (Redis's
    /// default is 15 s).
    pub fn start_with(node_timeout: Duration) -> Self {
        let dir = temp_dir();
        let node_timeout = node_timeout.as_millis().to_string();
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_port();
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut cmd = redis_command(port);
            // The bus port is the client port + 10,000 unless named: a free port of its own
            // (an ephemeral port + 10,000 may be taken, or past 65,535).
            let bus = free_port().to_string();
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                &node_timeout,
            ])
            .args(["--cluster-port", &bus])
            .arg("--dir")
            .arg(&node_dir);
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts (apt-get install redis-server)");
            wait_listening(port, "redis-server (cluster node)");
            nodes.push((port, child));
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for (port, _) in &nodes {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs (apt-get install redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let this = Self { nodes, dir };
        // Every node agrees the cluster is whole before a test uses it.
        let deadline = std::time::Instant::now() + WAIT;
        while !this.nodes.iter().all(|(port, _)| {
            this.cli(*port, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
        }) {
            assert!(
                std::time::Instant::now() < deadline,
                "the cluster never became whole"
            );
            std::thread::yield_now();
        }
        this
    }

    /// What a node is given: every node of the cluster as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// redis-cli's answer to a command on one node.
    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The port of the primary serving `key`'s slot now.
    pub fn primary_of(&self, key: &str) -> u16 {
        let first = self.nodes[0].0;
        let slot: u16 = self
            .cli(first, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("a slot number");
        self.cli(first, &["CLUSTER", "NODES"])
            .lines()
            .filter(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("master")))
            .find_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let serves = f[8..].iter().any(|r| match r.split_once('-') {
                    Some((a, b)) => {
                        (a.parse().unwrap_or(u16::MAX)..=b.parse().unwrap_or(0)).contains(&slot)
                    }
                    None => r.parse() == Ok(slot),
                });
                let port = f[1].split(['@', ':']).nth(1)?.parse().ok()?;
                serves.then_some(port)
            })
            .expect("a primary serves the slot")
    }

    /// Waits until the primary on `port` has shipped everything to its replica (replication is
    /// asynchronous: what a replica lacks dies with its primary).
    pub fn sync_replica(&self, port: u16) {
        let deadline = std::time::Instant::now() + WAIT;
        while self.cli(port, &["WAIT", "1", "200"]).trim() != "1" {
            assert!(
                std::time::Instant::now() < deadline,
                "the replica never caught up"
            );
        }
    }

    /// How many clients of the node on `port` listen to the shard channel `channel`.
    pub fn shard_subscribers(&self, port: u16, channel: &str) -> u64 {
        let out = self.cli(port, &["PUBSUB", "SHARDNUMSUB", channel]);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(channel), "PUBSUB SHARDNUMSUB: {out}");
        lines
            .next()
            .and_then(|n| n.trim().parse().ok())
            .expect("a count")
    }

    /// FLUSHALL on the node on `port` (a primary: its replica follows).
    pub fn flush(&self, port: u16) {
        assert_eq!(self.cli(port, &["FLUSHALL"]).trim(), "OK");
    }

    /// kill -9 of the node on `port`; it is gone from the cluster's list.
    pub fn kill(&mut self, port: u16) {
        let at = self.nodes.iter().position(|(p, _)| *p == port).unwrap();
        let (_, mut child) = self.nodes.remove(at);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn port_of(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the URL has a port")
}

pub fn wait_listening(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start listening on port {port}"
        );
        std::thread::yield_now();
    }
}

/// The PostgreSQL server of this test process (`SWITCHBOARD_TEST_POSTGRES_URL` names one to use
/// instead): its base URL, without a database name.
pub fn postgres_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL") {
            return url.trim_end_matches('/').to_owned();
        }
        start_postgres()
    })
    .clone()
}

/// Debian's PostgreSQL binaries, newest version first.
fn postgres_bin(name: &str) -> std::path::PathBuf {
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join("bin").join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "cannot find PostgreSQL's {name}. Install it (Debian: apt-get install postgresql) \
                 or run ./scripts/test.sh, which installs it"
            )
        })
}

/// The `postgres` account's uid and gid: PostgreSQL refuses to run as root.
fn postgres_account() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.first() != Some(&"postgres") || f.len() < 4 {
                return None;
            }
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        })
        .expect(
            "running as root, PostgreSQL needs the `postgres` account (apt-get install postgresql)",
        )
}

/// A throwaway PostgreSQL cluster: `initdb` into a temporary directory, run as the `postgres`
/// account when the tests run as root (PostgreSQL refuses root).
struct PgCluster {
    dir: std::path::PathBuf,
    account: Option<(u32, u32)>,
    port: u16,
}

impl PgCluster {
    fn init() -> Self {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let account = (unsafe { libc::geteuid() } == 0).then(postgres_account);
        if let Some((uid, gid)) = account {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let cluster = Self {
            dir,
            account,
            port: free_port(),
        };
        let mut initdb = Command::new(postgres_bin("initdb"));
        initdb
            .args([
                "-D",
                cluster.data().to_str().unwrap(),
                "-U",
                "switchboard",
                "--auth=trust",
                "-E",
                "UTF8",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cluster.as_account(&mut initdb);
        let out = initdb.output().expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.join("pg")
    }

    fn as_account(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        if let Some((uid, gid)) = self.account {
            cmd.uid(uid).gid(gid);
        }
    }

    /// The `postgres` command on a free port of 127.0.0.1.
    fn server(&self) -> Command {
        let mut cmd = Command::new(postgres_bin("postgres"));
        cmd.args([
            "-D",
            self.data().to_str().unwrap(),
            "-p",
            &self.port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            &format!("unix_socket_directories={}", self.dir.display()),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=300",
        ]);
        self.as_account(&mut cmd);
        cmd
    }

    fn url(&self) -> String {
        format!("postgres://switchboard@127.0.0.1:{}", self.port)
    }
}

/// Starts the test process's PostgreSQL. It dies with the test process (PR_SET_PDEATHSIG, set
/// after the account switch so it survives it).
fn start_postgres() -> String {
    let cluster = PgCluster::init();
    if let Err(e) = spawn_for_life(cluster.server()) {
        panic!("cannot start postgres ({e}); install it: apt-get install postgresql");
    }
    wait_listening(cluster.port, "postgres");
    cluster.url()
}

/// A PostgreSQL of one test's own, which the test stops and starts again: the record database
/// briefly gone. Killed when dropped.
pub struct PrivatePostgres {
    cluster: PgCluster,
    server: Option<std::process::Child>,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let mut pg = Self {
            cluster: PgCluster::init(),
            server: None,
        };
        pg.start_again();
        pg
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("{}/postgres", self.cluster.url())
    }

    /// Stops it the fast way (SIGINT: sessions are cut, no checkpoint waited for).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            // SAFETY: a signal to our own child process.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGINT);
            }
            let _ = child.wait();
        }
    }

    pub fn start_again(&mut self) {
        let child = self
            .cluster
            .server()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts (apt-get install postgresql)");
        self.server = Some(child);
        wait_listening(self.cluster.port, "postgres");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A database of its own on the test PostgreSQL for one configuration (named after its data
/// directory, so every server built from that configuration shares it, as nodes would).
pub async fn postgres_database(config: &Config) -> String {
    use sqlx::Connection;
    let name = format!(
        "t{}",
        hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            config.data_dir.display().to_string()
        )))[..24]
            .to_owned()
    );
    let base = postgres_url();
    // Accepting connections on TCP comes a moment before accepting logins.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut admin = loop {
        match sqlx::PgConnection::connect(&format!("{base}/postgres")).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "postgres login: {e}"
                );
                tokio::task::yield_now().await;
            }
        }
    };
    match sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
    {
        Ok(_) => {}
        Err(e) if e.to_string().contains("already exists") => {}
        Err(e) => panic!("cannot create database {name}: {e}"),
    }
    format!("{base}/{name}")
}

/// The admin bearer token of the test configuration.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123";

/// A fresh directory under the system temp dir (for embedded-mode data).
pub fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("switchboard-test-{}", ulid::Ulid::new()))
}

/// A port no server of this test process has had: tests restart servers on their own port, and
/// the system would otherwise hand a port just freed by one test to another's new server.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// One agent of the test site.
#[derive(Clone)]
pub struct AgentSpec {
    pub id: String,
    pub name: String,
    pub departments: Vec<String>,
    pub max: u32,
}

pub fn agent(id: &str, name: &str, departments: &[&str], max: u32) -> AgentSpec {
    AgentSpec {
        id: id.into(),
        name: name.into(),
        departments: departments.iter().map(|d| d.to_string()).collect(),
        max,
    }
}

/// The test site's usual agents, in `support`, with a limit.
pub fn alice(max: u32) -> AgentSpec {
    agent("alice", "Alice Moreau", &["support"], max)
}

pub fn boris(max: u32) -> AgentSpec {
    agent("boris", "Boris Ivanov", &["support"], max)
}

/// The token the test configuration gives an agent.
pub fn token(agent: &str) -> String {
    format!("token-for-{agent}-0123456789")
}

/// A test configuration: site `test` (origin http://shop.test) with `support` and `sales`.
pub fn config(agents: &[AgentSpec]) -> Config {
    Config::from_toml(&config_toml(agents)).expect("test configuration is valid")
}

/// The TOML text of `config`, for running the real binary.
pub fn config_toml(agents: &[AgentSpec]) -> String {
    let mut text = String::from(
        r#"
                listen = "127.0.0.1:0"
        secret = "test-secret-0123456789abcdef"
        admin_token_sha256 = "ADMIN_HASH"
        data_dir = "DATA_DIR"
        webhook_allowed_networks = ["127.0.0.0/8"]
        [timing]
        heartbeat_secs = 5.0
        agent_grace_secs = 60.0
        sweep_secs = 0.1
        [limits]
        messages_per_second = 200.0
        message_burst = 200.0
        connections_per_ip = 0
        visitor_messages_per_minute = 0
        new_visitors_per_ip_per_hour = 0
        [[sites]]
        id = "test"
        allowed_origins = ["http://shop.test"]
        default_department = "support"
        departments = [{ id = "support" }, { id = "sales" }]
        "#,
    );
    text = text
        .replace("ADMIN_HASH", &token_hash(ADMIN_TOKEN))
        .replace("DATA_DIR", &temp_dir().display().to_string());
    for a in agents {
        text.push_str(&format!(
            "[[sites.agents]]\nid = {:?}\nname = {:?}\ndepartments = {:?}\nmax_concurrent = {}\ntoken_sha256 = {:?}\n",
            a.id,
            a.name,
            a.departments,
            a.max,
            token_hash(&token(&a.id))
        ));
    }
    text
}

/// A running server; stops when dropped or with `stop()`.
pub struct TestApp {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Builds a server on either backend. Each Redis-backed app gets its own key prefix so tests
/// running in parallel never see each other's state; pass `prefix` to share one (multi-node).
pub async fn spawn_with(backend: Backend, config: Config, prefix: Option<&str>) -> TestApp {
    spawn_full(backend, config, prefix, Arc::new(SystemClock)).await
}

/// A clock tests move by hand. It runs like the wall clock from wherever it was set, so
/// everything that waits for time keeps working; `set` and `advance` jump it and wake whatever
/// sleeps on it (the trigger schedule), and the next sweep sees the new time.
pub struct TestClock {
    /// Clock time minus wall time.
    offset: AtomicI64,
    jumped: tokio::sync::Notify,
}

impl TestClock {
    pub fn at(rfc3339: &str) -> Arc<Self> {
        let clock = Arc::new(Self {
            offset: AtomicI64::new(0),
            jumped: tokio::sync::Notify::new(),
        });
        clock.set(rfc3339);
        clock
    }

    /// A clock at the wall time, to be moved forward.
    pub fn now() -> Arc<Self> {
        Arc::new(Self {
            offset: AtomicI64::new(0),
            jumped: tokio::sync::Notify::new(),
        })
    }

    pub fn set(&self, rfc3339: &str) {
        let offset = parse_time(rfc3339) - switchboard::model::now_ms();
        self.offset.store(offset, Ordering::SeqCst);
        self.jumped.notify_waiters();
    }

    pub fn advance(&self, by: Duration) {
        self.offset
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        self.jumped.notify_waiters();
    }
}

pub fn parse_time(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        switchboard::model::now_ms() + self.offset.load(Ordering::SeqCst)
    }

    fn sleep_until(
        &self,
        at: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                let jumped = self.jumped.notified();
                let now = self.now_ms();
                if now >= at {
                    return;
                }
                let wait = Duration::from_millis((at - now) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = jumped => {}
                }
            }
        })
    }
}

pub async fn spawn_full(
    backend: Backend,
    mut config: Config,
    prefix: Option<&str>,
    clock: Arc<dyn Clock>,
) -> TestApp {
    // RUST_LOG=debug shows the server's log in a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    match backend {
        Backend::Memory => {}
        Backend::Redis => {
            config.redis_url = Some(redis_url());
            config.key_prefix = prefix.map(str::to_owned).unwrap_or_else(unique_prefix);
        }
        Backend::Postgres => {
            if config.database_url.is_none() {
                config.database_url = Some(postgres_database(&config).await);
            }
        }
    }
    let app = Application::build_with_clock(config, clock)
        .await
        .expect("application builds");
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        stop: Some(tx),
        task: Some(task),
    }
}

/// A server on a test clock that starts at the wall time: tests move it past a grace period or
/// an inactivity timeout instead of waiting for one.
pub async fn spawn_with_clock(backend: Backend, config: Config) -> (TestApp, Arc<TestClock>) {
    let clock = TestClock::now();
    let app = spawn_full(backend, config, None, clock.clone()).await;
    (app, clock)
}

/// Whether the server counts one of the agent's consoles as connected.
pub async fn agent_connected(app: &TestApp, id: &str) -> bool {
    let (_, body) = admin_get(app, "/v1/agents").await;
    body["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == id))
        .is_some_and(|a| a["connected"] == true)
}

/// Waits until the server has seen an agent's last console go (their grace starts then).
pub async fn agent_gone(app: &TestApp, id: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while agent_connected(app, id).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} still connected"
        );
        tokio::task::yield_now().await;
    }
}

pub async fn spawn_app(backend: Backend, config: Config) -> TestApp {
    spawn_with(backend, config, None).await
}

pub fn unique_prefix() -> String {
    format!("t{}", ulid::Ulid::new())
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client that remembers what it received but has not been asked for yet.
pub struct Client {
    ws: Ws,
    pending: VecDeque<Value>,
}

pub async fn connect(addr: SocketAddr, path: &str, origin: Option<&str>) -> Result<Client, String> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut()
            .insert(http::header::ORIGIN, o.parse().unwrap());
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await {
        Err(_) => Err("connect timed out".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok((ws, _))) => Ok(Client {
            ws,
            pending: VecDeque::new(),
        }),
    }
}

impl Client {
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_message(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next JSON message from the server before `deadline`, or None when the socket closed.
    async fn read(&mut self, deadline: tokio::time::Instant, what: &str) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; got {:?}", self.pending));
            match msg {
                Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Waits for the first message matching `pred`, keeping the others for later calls.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self.read(deadline, what).await {
                Some(v) if pred(&v) => return v,
                Some(v) => self.pending.push_back(v),
                None => panic!(
                    "socket closed while waiting for {what}; got {:?}",
                    self.pending
                ),
            }
        }
    }

    /// Waits for a message of a type.
    pub async fn wait_type(&mut self, ty: &str) -> Value {
        self.wait_for(ty, |v| v["type"] == ty).await
    }

    /// Waits for a stored event of a kind.
    pub async fn wait_event(&mut self, kind: &str) -> Value {
        self.wait_for(&format!("event {kind}"), |v| {
            v["type"] == "event" && v["event"]["kind"] == kind
        })
        .await
    }

    /// Waits for an error with a code.
    pub async fn wait_error(&mut self, code: &str) -> Value {
        self.wait_for(&format!("error {code}"), |v| {
            v["type"] == "error" && v["code"] == code
        })
        .await
    }

    /// Round-trips a ping: everything the server sent before the pong is then in `pending`.
    pub async fn sync(&mut self) {
        self.send(json!({"type": "ping"})).await;
        self.wait_type("pong").await;
    }

    /// Everything received so far and not yet taken (after a `sync`).
    pub fn drain(&mut self) -> Vec<Value> {
        self.pending.drain(..).collect()
    }

    /// Waits until the server closes the socket; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for the server to close");
            match msg {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Text(t))) => {
                    self.pending.push_back(serde_json::from_str(&t).unwrap())
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

/// A visitor that said hello (first contact) and got its welcome.
pub async fn visitor(app: &TestApp, hello: Value) -> (Client, Value) {
    let mut c = connect(app.addr, &format!("/v1/visitor?site={SITE}"), Some(ORIGIN))
        .await
        .expect("visitor connects");
    let mut h = json!({"type": "hello", "page": {"url": "https://shop.test/", "title": "Shop"}});
    if let (Some(h), Some(extra)) = (h.as_object_mut(), hello.as_object()) {
        for (k, v) in extra {
            h.insert(k.clone(), v.clone());
        }
    }
    c.send(h).await;
    let welcome = c.wait_type("welcome").await;
    (c, welcome)
}

/// An agent console that said hello with a status.
pub async fn agent_client(app: &TestApp, id: &str, status: &str) -> Client {
    agent_status_at(app.addr, id, status).await
}

/// An online agent console on a server address.
pub async fn agent_client_at(addr: SocketAddr, id: &str) -> Client {
    agent_status_at(addr, id, "online").await
}

async fn agent_status_at(addr: SocketAddr, id: &str, status: &str) -> Client {
    let mut c = connect(addr, "/v1/agent", None)
        .await
        .expect("agent connects");
    c.send(json!({"type": "hello", "token": token(id), "status": status}))
        .await;
    let w = c.wait_type("welcome").await;
    assert_eq!(w["agent"]["id"], id);
    c
}

/// Sends a visitor message and returns its ack.
pub async fn say(c: &mut Client, client_id: &str, text: &str) -> Value {
    c.send(json!({"type": "message", "client_id": client_id, "text": text}))
        .await;
    c.wait_for("ack", |v| v["type"] == "ack" && v["client_id"] == client_id)
        .await
}

/// Sends an agent message and returns its ack.
pub async fn agent_say(c: &mut Client, conv: &str, client_id: &str, text: &str) -> Value {
    c.send(json!({"type": "message", "conversation": conv, "client_id": client_id, "text": text}))
        .await;
    c.wait_for("ack", |v| v["type"] == "ack" && v["client_id"] == client_id)
        .await
}

/// A new visitor whose first message (`client_id`, `text`) opens a chat that `agent` takes:
/// the visitor's socket and the conversation id.
pub async fn chat_with(
    app: &TestApp,
    agent: &mut Client,
    client_id: &str,
    text: &str,
) -> (Client, String) {
    let (v, _, conv) = chat_with_hello(app, agent, json!({}), client_id, text).await;
    (v, conv)
}

/// As `chat_with`, the visitor saying `hello` first; also returns their `welcome` (its token).
pub async fn chat_with_hello(
    app: &TestApp,
    agent: &mut Client,
    hello: Value,
    client_id: &str,
    text: &str,
) -> (Client, Value, String) {
    let (mut v, welcome) = visitor(app, hello).await;
    let conv = say(&mut v, client_id, text).await["conversation"]
        .as_str()
        .unwrap()
        .to_owned();
    let (assigned, _) = wait_assigned(agent).await;
    assert_eq!(assigned, conv, "the agent took this visitor's chat");
    (v, welcome, conv)
}

/// Waits for an assignment on an agent console; returns the conversation id.
pub async fn wait_assigned(c: &mut Client) -> (String, Value) {
    let a = c.wait_type("assigned").await;
    (a["conversation"]["id"].as_str().unwrap().to_owned(), a)
}

/// The size of a department's queue, from `GET /v1/queues`.
pub async fn queue_size(addr: SocketAddr, department: &str) -> u64 {
    let (status, queues) = http_get(addr, "/v1/queues", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{queues}");
    queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["department"] == department)
        .and_then(|q| q["size"].as_u64())
        .unwrap_or_else(|| panic!("no queue {department}: {queues}"))
}

/// A REST call with the admin token; returns the status and the JSON body.
pub async fn admin_get(app: &TestApp, path: &str) -> (u16, Value) {
    http_get(app.addr, path, Some(ADMIN_TOKEN)).await
}

/// Waits until an admin GET of `path` answers `status` (for what the server does on its own
/// time: a sweep, a filing).
pub async fn until_status(app: &TestApp, path: &str, status: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while admin_get(app, path).await.0 != status {
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path} never answered {status}"
        );
        tokio::task::yield_now().await;
    }
}

pub async fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = tokio::time::timeout(WAIT, req.send())
        .await
        .expect("REST timed out")
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// What a webhook receiver does with the next request.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Fail,
    /// Never answer (the sender is stuck until its timeout or death).
    Hang,
    Ok,
}

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Hook {
    pub delivery: String,
    pub event: String,
    pub signature: String,
    pub body: String,
}

impl Hook {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Verifies `t=…,v1=…` as a receiver would: HMAC-SHA256(secret, "<t>.<body>").
    pub fn signed_with(&self, secret: &str) -> bool {
        use hmac::Mac;
        let mut t = None;
        let mut v1 = None;
        for part in self.signature.split(',') {
            match part.split_once('=') {
                Some(("t", v)) => t = Some(v.to_owned()),
                Some(("v1", v)) => v1 = Some(v.to_owned()),
                _ => {}
            }
        }
        let (Some(t), Some(v1)) = (t, v1) else {
            return false;
        };
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.{}", self.body).as_bytes());
        hex::decode(v1).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
    }
}

/// A real HTTP webhook receiver on a free port, answering by a plan (then 200 for everything).
pub struct Receiver {
    pub url: String,
    hooks: tokio::sync::mpsc::UnboundedReceiver<Hook>,
    /// The answer once the plan is used up (200 unless changed).
    fallback: Arc<std::sync::Mutex<Answer>>,
}

pub const HOOK_SECRET: &str = "webhook-secret-0123456789";

impl Receiver {
    pub async fn start(plan: &[Answer]) -> Receiver {
        use axum::http::HeaderMap;
        let (tx, hooks) = tokio::sync::mpsc::unbounded_channel();
        let plan = Arc::new(std::sync::Mutex::new(
            plan.iter().copied().collect::<VecDeque<_>>(),
        ));
        let fallback = Arc::new(std::sync::Mutex::new(Answer::Ok));
        let handler_fallback = fallback.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let tx = tx.clone();
                let plan = plan.clone();
                let fallback = handler_fallback.clone();
                async move {
                    let h = |k: &str| {
                        headers
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    let _ = tx.send(Hook {
                        delivery: h("switchboard-delivery"),
                        event: h("switchboard-event"),
                        signature: h("switchboard-signature"),
                        body,
                    });
                    let next = plan.lock().unwrap().pop_front();
                    let answer = next.unwrap_or_else(|| *fallback.lock().unwrap());
                    match answer {
                        Answer::Ok => axum::http::StatusCode::OK,
                        Answer::Fail => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        Answer::Hang => std::future::pending().await,
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook"),
            hooks,
            fallback,
        }
    }

    /// The next request, waiting at most `WAIT`.
    pub async fn next(&mut self) -> Hook {
        tokio::time::timeout(WAIT, self.hooks.recv())
            .await
            .expect("timed out waiting for a webhook")
            .expect("receiver running")
    }

    /// The next request of an event type (others are skipped).
    pub async fn next_event(&mut self, event: &str) -> Hook {
        loop {
            let h = self.next().await;
            if h.event == event {
                return h;
            }
        }
    }

    /// What to answer once the plan is used up.
    pub fn answer_from_now(&self, a: Answer) {
        *self.fallback.lock().unwrap() = a;
    }

    /// Collects one request of each listed event, in whatever order they come.
    pub async fn each(&mut self, events: &[&str]) -> std::collections::HashMap<String, Hook> {
        let mut got = std::collections::HashMap::new();
        while got.len() < events.len() {
            let h = self.next().await;
            if events.contains(&h.event.as_str()) {
                got.entry(h.event.clone()).or_insert(h);
            }
        }
        got
    }
}

/// Adds a webhook for `events` to the test site.
pub fn with_webhook(config: &mut Config, url: &str, events: &[&str]) {
    let toml = format!(
        "url = {url:?}\nsecret = {HOOK_SECRET:?}\nevents = {:?}\n",
        events
    );
    let hook: switchboard::directory::model::WebhookConfig = toml::from_str(&toml).unwrap();
    config.sites[0].webhooks.push(hook);
    config.timing.webhook_backoff_secs = 0.05;
    config.timing.webhook_max_backoff_secs = 0.2;
}

/// A REST call with any method, an optional bearer token and JSON body; the status and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    http_with(addr, method, path, token, body, &[]).await.0
}

/// As `http`, with extra request headers; also returns the response's `Set-Cookie`.
pub async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> ((u16, Value), Option<String>) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new().request(method, format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(WAIT, req.send())
        .await
        .expect("REST timed out")
        .unwrap();
    let status = resp.status().as_u16();
    let cookie = resp
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    ((status, body), cookie)
}

/// A REST call with the admin token.
pub async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    http(addr, method, path, Some(ADMIN_TOKEN), body).await
}

/// A console signed in with an address and password: its session cookie and CSRF token.
pub struct Console {
    pub addr: SocketAddr,
    /// `sb_session=…`, as a Cookie header carries it.
    pub cookie: String,
    pub csrf: String,
    /// What sign-in answered: site, agent, name, role.
    pub me: Value,
}

impl Console {
    /// Signs in; the refusal's status and body when it fails.
    pub async fn sign_in(
        addr: SocketAddr,
        email: &str,
        password: &str,
    ) -> Result<Console, (u16, Value)> {
        let body = json!({"email": email, "password": password});
        Self::post(addr, "/v1/auth/sign-in", body).await
    }

    /// Sets a password from an invite link's token, which signs in.
    pub async fn accept_invite(
        addr: SocketAddr,
        token: &str,
        password: &str,
    ) -> Result<Console, (u16, Value)> {
        let body = json!({"token": token, "password": password});
        Self::post(addr, "/v1/auth/invite", body).await
    }

    /// A request that signs in when it succeeds: the console with its cookie and CSRF token.
    async fn post(addr: SocketAddr, path: &str, body: Value) -> Result<Console, (u16, Value)> {
        let ((status, me), cookie) = http_with(addr, "POST", path, None, Some(body), &[]).await;
        if status != 200 {
            return Err((status, me));
        }
        let cookie = cookie.expect("a session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        Ok(Console {
            addr,
            cookie: cookie.split(';').next().unwrap().to_owned(),
            csrf: me["csrf"].as_str().unwrap().to_owned(),
            me,
        })
    }

    /// A REST call with the session cookie, and the CSRF token when `csrf`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> (u16, Value) {
        let mut headers = vec![("cookie", self.cookie.as_str())];
        if csrf {
            headers.push(("x-csrf-token", self.csrf.as_str()));
        }
        http_with(self.addr, method, path, None, body, &headers)
            .await
            .0
    }

    /// The agent socket, authenticated by the cookie (a page of this server opens it).
    pub async fn socket(&self) -> Result<Client, String> {
        self.socket_from(&format!("http://{}", self.addr)).await
    }

    /// The agent socket with the cookie, opened by a page of `origin`.
    pub async fn socket_from(&self, origin: &str) -> Result<Client, String> {
        let mut req = format!("ws://{}/v1/agent", self.addr)
            .into_client_request()
            .unwrap();
        let h = req.headers_mut();
        h.insert(http::header::COOKIE, self.cookie.parse().unwrap());
        h.insert(http::header::ORIGIN, origin.parse().unwrap());
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let mut c = Client {
            ws,
            pending: VecDeque::new(),
        };
        c.send(json!({"type": "hello", "status": "online"})).await;
        let first = c
            .wait_for("welcome or error", |v| {
                v["type"] == "welcome" || v["type"] == "error"
            })
            .await;
        if first["type"] == "welcome" {
            Ok(c)
        } else {
            Err(first.to_string())
        }
    }
}

/// The token of an invite link's URL (`/console/#invite=TOKEN`).
pub fn invite_token(answer: &Value) -> String {
    answer["invite"]["url"]
        .as_str()
        .and_then(|u| u.split("#invite=").nth(1))
        .unwrap_or_else(|| panic!("an invite link: {answer}"))
        .to_owned()
}

/// A mail server for tests: speaks just enough SMTP (EHLO, MAIL, RCPT, DATA, QUIT) on a free
/// port of 127.0.0.1 and hands over every message it accepts.
pub struct SmtpSink {
    /// `smtp://127.0.0.1:<port>`, for a site's `smtp_url`.
    pub url: String,
    mail_rx: tokio::sync::mpsc::Receiver<Mail>,
}

/// A message the sink accepted: its recipients and its data (headers and body).
#[derive(Debug)]
pub struct Mail {
    pub to: Vec<String>,
    pub data: String,
    /// The credentials the client authenticated with (`AUTH PLAIN`, decoded: user, password).
    pub auth: Option<(String, String)>,
}

/// How an `SmtpSink` behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct SinkMode {
    /// Offers `AUTH PLAIN` and requires it before mail.
    pub auth: bool,
    /// Refuses every recipient (550).
    pub refuse: bool,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_with(SinkMode::default()).await
    }

    pub async fn start_with(mode: SinkMode) -> Self {
        use base64::Engine;
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let (mail_tx, mail_rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mail_tx = mail_tx.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let mut to = Vec::new();
                    let mut auth = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let answer: &[u8] = match verb.as_str() {
                            "EHLO" if mode.auth => {
                                b"250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
                            }
                            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                            "AUTH" => {
                                // AUTH PLAIN <base64 of "\0user\0password">
                                let given = line.split_whitespace().nth(2).unwrap_or("");
                                let raw = base64::engine::general_purpose::STANDARD
                                    .decode(given)
                                    .unwrap_or_default();
                                let parts: Vec<String> = String::from_utf8_lossy(&raw)
                                    .split('\0')
                                    .map(str::to_owned)
                                    .collect();
                                if let [_, user, password] = &parts[..] {
                                    auth = Some((user.clone(), password.clone()));
                                }
                                b"235 accepted\r\n"
                            }
                            "MAIL" if mode.auth && auth.is_none() => b"530 authenticate first\r\n",
                            "RCPT" if mode.refuse => b"550 no such mailbox\r\n",
                            "RCPT" => {
                                to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                                b"250 OK\r\n"
                            }
                            "DATA" => {
                                let _ = write.write_all(b"354 go on\r\n").await;
                                let mut data = String::new();
                                while let Ok(Some(l)) = lines.next_line().await {
                                    if l == "." {
                                        break;
                                    }
                                    data.push_str(&l);
                                    data.push('\n');
                                }
                                let mail = Mail {
                                    to: std::mem::take(&mut to),
                                    data,
                                    auth: auth.clone(),
                                };
                                let _ = mail_tx.send(mail).await;
                                b"250 queued\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 OK\r\n",
                        };
                        if write.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { url, mail_rx }
    }

    /// The next message accepted, within the test timeout.
    pub async fn next(&mut self) -> Mail {
        tokio::time::timeout(WAIT, self.mail_rx.recv())
            .await
            .expect("an email within the timeout")
            .expect("the sink runs")
    }
}
