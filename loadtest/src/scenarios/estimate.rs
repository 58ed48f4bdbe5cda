//! `estimate`: how accurate the wait estimate is under realistic traffic. Visitors arrive at
//! random (a Poisson process) at `load` times the agents' throughput; each agent holds every
//! chat for a long-tailed, log-normal time (median `median_secs`, spread `sigma`) and closes
//! it. Each visitor who was queued compares the estimate of their `queued` notice with the
//! wait they had until `assigned`. Reported: the median of |estimate − real| ÷ real and the
//! share of real waits inside the range, for all visitors and for the second half (after the
//! server has learned from the first).

use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::*;
use crate::report::Report;
use crate::{Ctx, recv, send};

/// A small deterministic generator (xorshift64*): the run repeats with the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.next().ln()
    }

    fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        // Box–Muller.
        let z = (-2.0 * self.next().ln()).sqrt() * (std::f64::consts::TAU * self.next()).cos();
        median * (sigma * z).exp()
    }
}

/// What a queued visitor saw: the estimate's point and range, and the real wait (seconds).
struct Seen {
    index: usize,
    point: f64,
    low: f64,
    high: f64,
    real: f64,
}

#[allow(clippy::too_many_arguments)]
pub async fn estimate(
    ctx: Arc<Ctx>,
    pid: Option<u32>,
    agents: usize,
    slots: u32,
    median_secs: f64,
    sigma: f64,
    load: f64,
    duration: f64,
) -> anyhow::Result<Report> {
    let mut r = Report::new("estimate");
    let began = Instant::now();
    r.server_rss_before = rss(pid);
    let agent_ws = open_agents(&ctx, agents, "online").await?;
    let mean = median_secs * (sigma * sigma / 2.0).exp();
    let rate = load * (agents as f64 * f64::from(slots)) / mean;
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each assignment an agent reads: the run stops only once the agents have read every one,
    // so they close every chat they were given (none is left open for the next scenario).
    let (heard_tx, mut heard_rx) = mpsc::unbounded_channel::<()>();
    let mut atasks = Vec::new();
    for (i, ws) in agent_ws.into_iter().enumerate() {
        let stop = stop_rx.clone();
        let rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        let heard = heard_tx.clone();
        atasks.push(tokio::spawn(agent(
            ws,
            rng,
            median_secs,
            sigma,
            heard,
            stop,
        )));
    }
    drop(heard_tx);
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Result<Option<Seen>, ()>>();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let start = tokio::time::Instant::now();
    let mut next = start;
    let mut arrivals = 0usize;
    while next.duration_since(start).as_secs_f64() < duration {
        tokio::time::sleep_until(next).await;
        let (ctx, seen_tx, index) = (ctx.clone(), seen_tx.clone(), arrivals);
        tokio::spawn(async move {
            let _ = seen_tx.send(visitor(ctx, index).await);
        });
        arrivals += 1;
        next += Duration::from_secs_f64(rng.exponential(1.0 / rate));
    }
    drop(seen_tx);
    let mut seen = Vec::new();
    let mut served = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while served < arrivals {
        match tokio::time::timeout_at(deadline, seen_rx.recv()).await {
            Ok(Some(Ok(s))) => {
                served += 1;
                seen.extend(s);
            }
            Ok(Some(Err(()))) => {
                served += 1;
                r.errors += 1;
            }
            _ => bail!("only {served} of {arrivals} visitors were served"),
        }
    }
    let assigned = served - r.errors as usize;
    for n in 0..assigned {
        if tokio::time::timeout_at(deadline, heard_rx.recv())
            .await
            .ok()
            .flatten()
            .is_none()
        {
            bail!("the agents read {n} of {assigned} assignments");
        }
    }
    stop_tx.send(true).ok();
    for t in atasks {
        r.errors += t.await?;
    }
    r.connections = (agents + arrivals) as u64;
    let half = arrivals / 2;
    let later: Vec<&Seen> = seen.iter().filter(|s| s.index >= half).collect();
    let all: Vec<&Seen> = seen.iter().collect();
    r.extra.push(("visitors".into(), arrivals as f64));
    r.extra
        .push(("queued (measured)".into(), seen.len() as f64));
    for (label, set) in [("all", &all), ("second half", &later)] {
        let (error, coverage) = accuracy(set);
        r.extra.push((
            format!("median error % ({label})"),
            (error * 1000.0).round() / 10.0,
        ));
        r.extra.push((
            format!("range coverage % ({label})"),
            (coverage * 1000.0).round() / 10.0,
        ));
    }
    let mut waits: Vec<f64> = seen.iter().map(|s| s.real).collect();
    waits.sort_by(f64::total_cmp);
    if let Some(m) = waits.get(waits.len() / 2) {
        r.extra
            .push(("median real wait s".into(), (m * 10.0).round() / 10.0));
    }
    r.server_rss_after = rss(pid);
    r.duration_secs = began.elapsed().as_secs_f64();
    Ok(r)
}

/// Median |point − real| ÷ real, and the share of real waits in the range (to the second).
fn accuracy(set: &[&Seen]) -> (f64, f64) {
    if set.is_empty() {
        return (0.0, 0.0);
    }
    let mut errors: Vec<f64> = set
        .iter()
        .map(|s| (s.point - s.real).abs() / s.real.max(1.0))
        .collect();
    errors.sort_by(f64::total_cmp);
    let covered = set
        .iter()
        .filter(|s| s.real >= s.low - 1.0 && s.real <= s.high + 1.0)
        .count();
    (errors[errors.len() / 2], covered as f64 / set.len() as f64)
}

/// One visitor: writes, and if queued, waits to be assigned. None when served at once.
async fn visitor(ctx: Arc<Ctx>, index: usize) -> Result<Option<Seen>, ()> {
    let mut ws = ctx.visitor().await.map_err(|_| ())?;
    let msg = json!({"type": "message", "client_id": format!("e{index}"), "text": "hello"});
    send(&mut ws, &msg).await.map_err(|_| ())?;
    let mut queued: Option<(Instant, Value)> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let m = match tokio::time::timeout_at(deadline, recv(&mut ws)).await {
            Ok(Ok(Some(m))) => m,
            _ => return Err(()),
        };
        let e = &m["event"];
        if m["type"] == "event" && e["notice"] == "queued" && queued.is_none() {
            queued = Some((Instant::now(), e["estimate"].clone()));
        }
        if m["type"] == "event" && e["kind"] == "assigned" {
            // Leaves once served: the agent closes the chat on their own time.
            return Ok(queued.map(|(at, est)| Seen {
                index,
                point: est["secs"].as_f64().unwrap_or(0.0),
                low: est["low_secs"].as_f64().unwrap_or(0.0),
                high: est["high_secs"].as_f64().unwrap_or(0.0),
                real: at.elapsed().as_secs_f64(),
            }));
        }
        if m["type"] == "error" {
            return Err(());
        }
    }
}

/// One agent: each chat assigned is closed after a log-normal handling time. Its error count.
async fn agent(
    mut ws: crate::Ws,
    mut rng: Rng,
    median_secs: f64,
    sigma: f64,
    heard: mpsc::UnboundedSender<()>,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    // (close at, conversation), soonest first.
    let mut closing: BinaryHeap<std::cmp::Reverse<(tokio::time::Instant, String)>> =
        BinaryHeap::new();
    let mut errors = 0;
    loop {
        let next = closing
            .peek()
            .map(|c| c.0.0)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            m = recv(&mut ws) => match m {
                Ok(Some(m)) if m["type"] == "assigned" => {
                    let conv = m["conversation"]["id"].as_str().unwrap_or_default().to_owned();
                    let hold = rng.log_normal(median_secs, sigma).min(median_secs * 50.0);
                    let at = tokio::time::Instant::now() + Duration::from_secs_f64(hold);
                    closing.push(std::cmp::Reverse((at, conv)));
                    let _ = heard.send(());
                }
                Ok(Some(m)) if m["type"] == "error" => errors += 1,
                Ok(Some(_)) => {}
                _ => return errors + 1,
            },
            _ = tokio::time::sleep_until(next) => {
                if let Some(std::cmp::Reverse((_, conv))) = closing.pop()
                    && send(&mut ws, &json!({"type": "close", "conversation": conv})).await.is_err()
                {
                    return errors + 1;
                }
            }
            _ = stop.changed() => {
                // Chats still held are closed, and the agent leaves only once each close is
                // stored (a frame still unread when the socket goes is not acted on): the
                // next scenario finds the agents with nothing open.
                let mut open = std::collections::HashSet::new();
                while let Some(std::cmp::Reverse((_, conv))) = closing.pop() {
                    if send(&mut ws, &json!({"type": "close", "conversation": conv})).await.is_err() {
                        return errors + 1;
                    }
                    open.insert(conv);
                }
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while !open.is_empty() {
                    match tokio::time::timeout_at(deadline, recv(&mut ws)).await {
                        Ok(Ok(Some(m))) => {
                            if m["type"] == "event" && m["event"]["kind"] == "closed" {
                                open.remove(m["conversation"].as_str().unwrap_or_default());
                            }
                        }
                        _ => return errors + 1,
                    }
                }
                return errors;
            }
        }
    }
}
