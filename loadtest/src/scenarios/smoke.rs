//! `smoke`: a short run of every scenario against both backends, servers started here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::*;
use crate::Ctx;
use crate::report::Report;

/// A process killed when dropped.
pub(super) struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(super) fn start_redis() -> anyhow::Result<(Proc, String)> {
    let port = free_port()?;
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("cannot start redis-server (apt-get install redis-server)")?;
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("redis-server did not start");
        }
        std::thread::yield_now();
    }
    Ok((proc, format!("redis://127.0.0.1:{port}/")))
}

pub(super) fn start_server(
    bin: &Path,
    config: &str,
    redis: Option<&str>,
) -> anyhow::Result<(Proc, std::net::SocketAddr, PathBuf)> {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!(
        "switchboard-smoke-{}-{}",
        std::process::id(),
        free_port()?
    ));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("lt.toml");
    std::fs::write(&file, config)?;
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--config")
        .arg(&file)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "warn")
        .env_remove("SWITCHBOARD_REDIS_URL")
        .stdout(std::process::Stdio::piped());
    if let Some(url) = redis {
        cmd.arg("--redis-url").arg(url);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let proc = Proc(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().context("the server printed nothing")??;
    let addr = first
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("unexpected first line: {first}"))?;
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((proc, addr, dir))
}

/// `switchboard simulate` on what the `estimate` run recorded, once its server has stopped:
/// its tickets (`window`, ms since the epoch), or the trace it wrote. The median difference
/// per chat between the replayed waits and the run's, in ms.
fn replay(bin: &Path, dir: &Path, window: Option<(i64, i64)>) -> anyhow::Result<i64> {
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--config")
        .arg(dir.join("lt.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["simulate", "--json"]);
    match window {
        Some((since, until)) => cmd
            .arg("--since")
            .arg(since.to_string())
            .arg("--until")
            .arg(until.to_string()),
        None => cmd.arg("--trace").arg(dir.join("trace.json")),
    };
    let out = cmd
        .env("RUST_LOG", "warn")
        .env_remove("SWITCHBOARD_REDIS_URL")
        .output()
        .with_context(|| format!("cannot run {} simulate", bin.display()))?;
    if !out.status.success() {
        bail!("simulate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let r = &reports[0];
    println!(
        "simulate ({}): {} chats, replayed waits differ from the run's by {} ms (median), {} ms (largest)",
        if window.is_some() {
            "the tickets"
        } else {
            "the trace"
        },
        r["chats"],
        r["replay_error_p50_ms"],
        r["replay_error_max_ms"]
    );
    r["replay_error_p50_ms"]
        .as_i64()
        .context("the replay has no recorded waits to compare")
}

/// Every scenario, small, against both backends. Prints a closing "N passed, M failed" line.
pub async fn smoke(bin: &Path) -> anyhow::Result<()> {
    let config = crate::server_config(20, 5);
    let (mut passed, mut failed) = (0, 0);
    for backend in ["embedded", "redis"] {
        let redis = if backend == "redis" {
            Some(start_redis()?)
        } else {
            None
        };
        let (server, addr, dir) = start_server(bin, &config, redis.as_ref().map(|r| r.1.as_str()))?;
        let pid = Some(server.0.id());
        let trace = dir.join("trace.json");
        let epoch = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        };
        let idle = idle(Arc::new(Ctx::new(addr, 4)?), pid, 200, 0.5).await;
        let since = epoch();
        let estimated = estimate(
            Arc::new(Ctx::new(addr, 4)?),
            pid,
            4,
            5,
            0.2,
            1.0,
            1.2,
            2.0,
            Some(&trace),
        )
        .await;
        let window = (since, epoch() + 1);
        let runs: Vec<(&str, anyhow::Result<Report>)> = vec![
            ("idle", idle),
            // Before `burst`, whose agents end full: this one needs agents with room.
            ("estimate", estimated),
            (
                "chat",
                chat(Arc::new(Ctx::new(addr, 4)?), pid, 40, 10, 200.0, 400.0, 2.0).await,
            ),
            (
                "burst",
                burst(Arc::new(Ctx::new(addr, 4)?), pid, 100, 20, 5).await,
            ),
            (
                "churn",
                churn(Arc::new(Ctx::new(addr, 4)?), 50.0, 2.0, None, None, 0.0).await,
            ),
        ];
        for (name, run) in runs {
            println!("--- smoke {name} on {backend} state");
            match run {
                Ok(report) => {
                    report.print();
                    let mut problems = report.failures();
                    if name == "chat" && report.received == 0 {
                        problems.push("no messages were delivered".into());
                    }
                    if problems.is_empty() {
                        passed += 1;
                    } else {
                        failed += 1;
                        println!("smoke {name} on {backend}: FAILED: {}", problems.join("; "));
                    }
                }
                Err(e) => {
                    failed += 1;
                    println!("smoke {name} on {backend}: FAILED: {e:#}");
                }
            }
        }
        drop(server);
        drop(redis);
        // The policy simulator on the recorded run: from its tickets, the same waits within
        // a few ms. From the trace (handling times measured at the agents' end of the socket,
        // so every slot's round trips are missing) it is printed, not held to that.
        if let Err(e) = replay(bin, &dir, None) {
            println!("simulate (the trace): {e:#}");
        }
        println!("--- smoke simulate on {backend} state");
        match replay(bin, &dir, Some(window)) {
            Ok(ms) if ms <= 100 => passed += 1,
            Ok(ms) => {
                failed += 1;
                println!("smoke simulate on {backend}: FAILED: a median difference of {ms} ms");
            }
            Err(e) => {
                failed += 1;
                println!("smoke simulate on {backend}: FAILED: {e:#}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
