//! A Redis primary, a replica and Sentinels watching them, for failover tests.

use std::process::{Command, Stdio};

use super::*;

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
