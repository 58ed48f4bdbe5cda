//! A private redis-server per test that needs one (killed with the test binary), and the shared one
//! of `redis_url`.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::*;

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
pub(super) fn redis_command(port: u16) -> Command {
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
    pub(super) tls: Option<TestCerts>,
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
    pub(super) fn server(
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

pub(super) fn start_redis() -> String {
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
pub(super) fn spawn_for_life(mut cmd: Command) -> Result<(), String> {
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
