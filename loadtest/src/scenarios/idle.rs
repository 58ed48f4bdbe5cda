//! `idle`: many visitor connections held open, and the server's memory for each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::Ctx;
use crate::report::Report;

pub async fn idle(
    ctx: Arc<Ctx>,
    pid: Option<u32>,
    visitors: usize,
    hold: f64,
) -> anyhow::Result<Report> {
    let mut r = Report::new("idle");
    let start = Instant::now();
    r.server_rss_before = rss(pid);
    let c = ctx.clone();
    let sockets = open_many(visitors, 256, move |_| {
        let c = c.clone();
        async move { c.visitor().await }
    })
    .await?;
    r.connections = sockets.len() as u64;
    // Let allocator and kernel settle before reading memory; then hold.
    tokio::time::sleep(Duration::from_secs_f64(hold.max(0.5))).await;
    r.server_rss_after = rss(pid);
    if let (Some(b), Some(a)) = (r.server_rss_before, r.server_rss_after) {
        r.memory_per_connection = Some((a.saturating_sub(b)) as f64 / visitors.max(1) as f64);
    }
    drop(sockets);
    r.duration_secs = start.elapsed().as_secs_f64();
    Ok(r)
}
