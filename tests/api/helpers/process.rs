//! Server processes of the harness: ports, temporary directories, waiting for a listener.

use super::*;

pub(super) fn port_of(url: &str) -> u16 {
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
