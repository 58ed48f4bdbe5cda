//! A private PostgreSQL (initdb into a temporary directory, run as an unprivileged user), and a
//! fresh database per test.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use switchboard::config::Config;

use super::*;

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
pub(super) fn postgres_bin(name: &str) -> std::path::PathBuf {
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
pub(super) fn postgres_account() -> (u32, u32) {
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
pub(super) struct PgCluster {
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
pub(super) fn start_postgres() -> String {
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
    match sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
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
