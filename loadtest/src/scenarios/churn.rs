//! `churn`: visitors who come and go; what they leave behind on the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::*;
use crate::Ctx;
use crate::report::{Report, histogram};

/// The number of keys in a Redis database (`DBSIZE`), over a raw connection.
pub(super) async fn redis_keys(url: &str) -> anyhow::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hostport = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default();
    let mut conn = tokio::net::TcpStream::connect(hostport)
        .await
        .with_context(|| format!("cannot reach redis at {hostport}"))?;
    conn.write_all(b"*1\r\n$6\r\nDBSIZE\r\n").await?;
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).await?;
    let reply = std::str::from_utf8(&buf[..n])?;
    reply
        .trim()
        .strip_prefix(':')
        .and_then(|k| k.parse().ok())
        .with_context(|| format!("unexpected DBSIZE reply {reply:?}"))
}

/// Anonymous visitors connect, say hello and leave at `rate` per second; with `pid` and
/// `redis`, the server's memory and the Redis key count before and `settle` seconds after.
pub async fn churn(
    ctx: Arc<Ctx>,
    rate: f64,
    duration: f64,
    pid: Option<u32>,
    redis: Option<String>,
    settle: f64,
) -> anyhow::Result<Report> {
    let mut r = Report::new("churn");
    r.server_rss_before = rss(pid);
    let keys_before = match &redis {
        Some(url) => Some(redis_keys(url).await?),
        None => None,
    };
    let began = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    let mut tasks = Vec::new();
    while began.elapsed().as_secs_f64() < duration {
        tick.tick().await;
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let ws = ctx.visitor().await;
            let us = t0.elapsed().as_micros() as u64;
            match ws {
                Ok(mut ws) => {
                    let _ = ws.close(None).await;
                    Ok(us)
                }
                Err(e) => Err(e),
            }
        }));
    }
    let mut h = histogram();
    for t in tasks {
        match t.await? {
            Ok(us) => {
                r.connections += 1;
                h.record(us.max(1)).ok();
            }
            Err(e) => {
                r.errors += 1;
                if r.errors <= 3 {
                    eprintln!("churn: {e:#}");
                }
            }
        }
    }
    r.extra.push((
        "connections/s".into(),
        (r.connections as f64 / duration).round(),
    ));
    r.latencies = vec![("connect→welcome".into(), h)];
    r.duration_secs = began.elapsed().as_secs_f64();
    if pid.is_some() || redis.is_some() {
        // The server forgets a visitor when it sees the socket close: give it that moment.
        tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    }
    r.server_rss_after = rss(pid);
    if let (Some(url), Some(before)) = (&redis, keys_before) {
        let after = redis_keys(url).await?;
        r.extra.push(("redis keys before".into(), before as f64));
        r.extra.push(("redis keys after".into(), after as f64));
    }
    Ok(r)
}
