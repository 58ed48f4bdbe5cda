//! `burst`: many visitors queued at once, then many agents coming online; time to the last assignment.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::chat::agent_task;
use super::*;
use crate::report::Report;
use crate::{Ctx, recv, send};

pub async fn burst(
    ctx: Arc<Ctx>,
    pid: Option<u32>,
    visitors: usize,
    agents: usize,
    slots: u32,
) -> anyhow::Result<Report> {
    let mut r = Report::new("burst");
    let began = Instant::now();
    r.server_rss_before = rss(pid);
    if visitors > agents * slots as usize {
        bail!("burst needs agents × slots ≥ visitors");
    }
    // Away: on duty (so visitors are queued, not sent away) but not taking chats.
    let agent_ws = open_agents(&ctx, agents, "away").await?;
    let c = ctx.clone();
    let visitor_ws = open_many(visitors, 256, move |_| {
        let c = c.clone();
        async move { c.visitor().await }
    })
    .await?;
    r.connections = (agents + visitors) as u64;
    let online_at = Arc::new(AtomicU64::new(u64::MAX));
    let (queued_tx, mut queued_rx) = mpsc::unbounded_channel::<()>();
    let mut vtasks = Vec::new();
    for (i, mut ws) in visitor_ws.into_iter().enumerate() {
        let (ctx, online_at, queued_tx) = (ctx.clone(), online_at.clone(), queued_tx.clone());
        vtasks.push(tokio::spawn(async move {
            let mut t = Tally::new();
            let sent = ctx.micros();
            if send(
                &mut ws,
                &json!({"type": "message", "client_id": format!("b{i}"), "text": "burst"}),
            )
            .await
            .is_err()
            {
                t.errors += 1;
                return (t, None);
            }
            let mut queued = false;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let m = match tokio::time::timeout_at(deadline, recv(&mut ws)).await {
                    Ok(Ok(Some(m))) => m,
                    _ => {
                        t.errors += 1;
                        return (t, None);
                    }
                };
                let e = &m["event"];
                if m["type"] == "event"
                    && e["kind"] == "notice"
                    && e["notice"] == "queued"
                    && !queued
                {
                    queued = true;
                    t.first_ack.record(ctx.micros().saturating_sub(sent).max(1));
                    let _ = queued_tx.send(());
                }
                if m["type"] == "event" && e["kind"] == "assigned" {
                    let since = online_at.load(Ordering::SeqCst);
                    if since == u64::MAX {
                        // Assigned before any agent was online: a routing error.
                        t.errors += 1;
                    } else {
                        t.queued_to_assigned
                            .record(ctx.micros().saturating_sub(since).max(1));
                    }
                    // Stays on the page: a visitor leaving the moment they are served would
                    // load the server with disconnects the measurement is not about.
                    return (t, Some(ws));
                }
                if m["type"] == "error" {
                    t.errors += 1;
                }
            }
        }));
    }
    drop(queued_tx);
    let mut n = 0;
    while n < visitors {
        match tokio::time::timeout(Duration::from_secs(60), queued_rx.recv()).await {
            Ok(Some(())) => n += 1,
            _ => bail!("only {n} of {visitors} visitors were queued"),
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, _ready_rx) = mpsc::unbounded_channel();
    online_at.store(ctx.micros(), Ordering::SeqCst);
    let mut atasks = Vec::new();
    for (i, mut ws) in agent_ws.into_iter().enumerate() {
        let (_tx, rx) = mpsc::channel(1);
        let (ctx, ready_tx, stop_rx) = (ctx.clone(), ready_tx.clone(), stop_rx.clone());
        atasks.push(tokio::spawn(async move {
            if send(&mut ws, &json!({"type": "set_status", "status": "online"}))
                .await
                .is_err()
            {
                let mut t = Tally::new();
                t.errors += 1;
                return t;
            }
            let _keep = _tx;
            agent_task(ctx, ws, i, rx, ready_tx, stop_rx).await
        }));
    }
    let mut all = Tally::new();
    let mut served = Vec::with_capacity(visitors);
    for t in vtasks {
        let (t, ws) = t.await?;
        all.merge(t);
        served.push(ws);
    }
    let drained = ctx
        .micros()
        .saturating_sub(online_at.load(Ordering::SeqCst));
    drop(served);
    stop_tx.send(true).ok();
    for t in atasks {
        all.merge(t.await?);
    }
    if all.max_held > u64::from(slots) {
        r.problems.push(format!(
            "an agent held {} chats, limit {slots}",
            all.max_held
        ));
    }
    r.extra.push(("max held".into(), all.max_held as f64));
    r.extra
        .push(("all assigned ms".into(), (drained as f64 / 1000.0).round()));
    r.server_rss_after = rss(pid);
    r.errors = all.errors;
    r.latencies = vec![
        ("first message→queued".into(), all.first_ack.histogram()),
        ("online→assigned".into(), all.queued_to_assigned.histogram()),
    ];
    r.duration_secs = began.elapsed().as_secs_f64();
    Ok(r)
}
