//! A throwaway certificate authority, and Redis over TLS.

use std::process::{Command, Stdio};

use super::*;

/// A throwaway authority and a certificate for 127.0.0.1 it signed (made with the `openssl`
/// command), for TLS servers of a test.
#[derive(Clone)]
pub struct TestCerts {
    pub(super) dir: std::path::PathBuf,
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
