//! systemd's `Type=notify`: the binary says when it is ready (after it can serve), when a
//! reload begins and ends, when it stops, and pings the watchdog it was given.

use crate::helpers::*;

/// The datagrams the node sends to `NOTIFY_SOCKET`, in order: READY=1 once its port answers,
/// WATCHDOG=1 repeatedly at half `WATCHDOG_USEC`, RELOADING=1 then READY=1 around a SIGHUP,
/// STOPPING=1 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_manager_hears_ready_reload_watchdog_and_stop() {
    use tokio::io::AsyncBufReadExt;
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let config = dir.join("switchboard.toml");
    std::fs::write(&config, config_toml(&[alice(2)])).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        // 0.4 s: a ping every 0.2 s.
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .env_remove("SWITCHBOARD_REDIS_URL")
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut pings = 0;
    assert_eq!(next_state(&socket, &mut pings).await, "READY=1");
    // Ready means serving: the port is bound and answers.
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = out.next_line().await.unwrap().unwrap();
    let addr: std::net::SocketAddr = first.split_whitespace().nth(3).unwrap().parse().unwrap();
    let (status, _) = http(addr, "GET", "/readyz", None, None).await;
    assert_eq!(status, 200);
    for _ in 0..3 {
        assert_eq!(next(&socket).await, "WATCHDOG=1");
    }

    let pid = child.id().unwrap() as i32;
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let reloading = next_state(&socket, &mut pings).await;
    assert!(
        reloading.starts_with("RELOADING=1\n"),
        "RELOADING=1 with its MONOTONIC_USEC: {reloading:?}"
    );
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    assert_eq!(next_state(&socket, &mut pings).await, "READY=1");

    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(next_state(&socket, &mut pings).await, "STOPPING=1");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the node stops")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// The next datagram.
async fn next(socket: &tokio::net::UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
        .await
        .expect("a notification in time")
        .unwrap();
    // One state per line, each ending in a newline.
    String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
}

/// The next datagram that is not a watchdog ping, counting the pings on the way.
async fn next_state(socket: &tokio::net::UnixDatagram, pings: &mut u32) -> String {
    loop {
        let m = next(socket).await;
        if m != "WATCHDOG=1" {
            return m;
        }
        *pings += 1;
    }
}
