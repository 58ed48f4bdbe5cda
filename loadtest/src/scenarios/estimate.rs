//! `estimate`: how accurate the wait estimate is under realistic traffic. Visitors arrive at
//! random (a Poisson process) at `load` times the agents' throughput; each agent holds every
//! chat for a long-tailed, log-normal time (median `median_secs`, spread `sigma`) and closes
//! it. Each visitor who was queued compares the estimate of their `queued` notice with the
//! wait they had until `assigned`. Reported: the median of |estimate − real| ÷ real and the
//! share of real waits inside the range, for all visitors and for the second half (after the
//! server has learned from the first).
//!
//! With a trace file, the run is written down as `switchboard simulate --trace` replays it:
//! the agents' shift, each chat's arrival, handling time and the wait it had.

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

/// One visitor's chat, for the trace: when they wrote (ms since the epoch) and how long until
/// an agent took it.
struct Chat {
    conv: String,
    at_ms: i64,
    wait_ms: i64,
    /// What the estimate saw, when the visitor was queued.
    seen: Option<Seen>,
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
    trace: Option<&std::path::Path>,
) -> anyhow::Result<Report> {
    let mut r = Report::new("estimate");
    let began = Instant::now();
    let shift_from = epoch_ms();
    r.server_rss_before = rss(pid);
    let agent_ws = open_agents(&ctx, agents, "online").await?;
    let mean = median_secs * (sigma * sigma / 2.0).exp();
    let rate = load * (agents as f64 * f64::from(slots)) / mean;
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each assignment an agent reads: the run stops only once the agents have read every one,
    // so they close every chat they were given (none is left open for the next scenario).
    let (heard_tx, mut heard_rx) = mpsc::unbounded_channel::<()>();
    // Each chat an agent closed, and how long they held it (ms).
    let (held_tx, mut held_rx) = mpsc::unbounded_channel::<(String, i64)>();
    let mut atasks = Vec::new();
    for (i, ws) in agent_ws.into_iter().enumerate() {
        let stop = stop_rx.clone();
        let rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        let heard = heard_tx.clone();
        atasks.push(tokio::spawn(agent(
            ws,
            rng,
            (median_secs, sigma),
            heard,
            held_tx.clone(),
            stop,
        )));
    }
    drop(heard_tx);
    drop(held_tx);
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Result<Chat, ()>>();
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
    let mut chats = Vec::new();
    let mut served = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while served < arrivals {
        match tokio::time::timeout_at(deadline, seen_rx.recv()).await {
            Ok(Some(Ok(mut c))) => {
                served += 1;
                seen.extend(c.seen.take());
                chats.push(c);
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
    if let Some(path) = trace {
        let mut held = std::collections::HashMap::new();
        while let Ok((conv, ms)) = held_rx.try_recv() {
            held.insert(conv, ms);
        }
        write_trace(
            path,
            (agents, slots),
            (shift_from, epoch_ms()),
            &chats,
            &held,
        )?;
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

/// The run as `switchboard simulate --trace` reads it: agents lt0… on duty from the first
/// agent's sign-in to the end, in `support`, each with `slots` chats at once (the server's
/// `max_concurrent`, as `switchboard-loadtest config` writes it); each chat with its arrival,
/// handling time and wait.
fn write_trace(
    path: &std::path::Path,
    (agents, slots): (usize, u32),
    (from, until): (i64, i64),
    chats: &[Chat],
    held: &std::collections::HashMap<String, i64>,
) -> anyhow::Result<()> {
    let shifts: Vec<Value> = (0..agents)
        .map(|i| {
            json!({"id": format!("lt{i}"), "departments": ["support"], "max_concurrent": slots,
                   "from": from, "until": until})
        })
        .collect();
    let arrivals: Vec<Value> = chats
        .iter()
        .filter_map(|c| {
            let handling = *held.get(&c.conv)?;
            Some(json!({"id": c.conv, "at": c.at_ms, "department": "support",
                        "handling_ms": handling, "recorded_wait_ms": c.wait_ms}))
        })
        .collect();
    if arrivals.len() != chats.len() {
        bail!(
            "{} of {} chats have a handling time",
            arrivals.len(),
            chats.len()
        );
    }
    std::fs::write(
        path,
        serde_json::to_vec_pretty(&json!({"agents": shifts, "arrivals": arrivals}))?,
    )?;
    Ok(())
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

/// One visitor: writes, and waits to be assigned; what the estimate saw when queued.
async fn visitor(ctx: Arc<Ctx>, index: usize) -> Result<Chat, ()> {
    let mut ws = ctx.visitor().await.map_err(|_| ())?;
    let msg = json!({"type": "message", "client_id": format!("e{index}"), "text": "hello"});
    let (at_ms, sent) = (epoch_ms(), Instant::now());
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
            return Ok(Chat {
                conv: m["conversation"].as_str().unwrap_or_default().to_owned(),
                at_ms,
                wait_ms: sent.elapsed().as_millis() as i64,
                seen: queued.map(|(at, est)| Seen {
                    index,
                    point: est["secs"].as_f64().unwrap_or(0.0),
                    low: est["low_secs"].as_f64().unwrap_or(0.0),
                    high: est["high_secs"].as_f64().unwrap_or(0.0),
                    real: at.elapsed().as_secs_f64(),
                }),
            });
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
    (median_secs, sigma): (f64, f64),
    heard: mpsc::UnboundedSender<()>,
    held: mpsc::UnboundedSender<(String, i64)>,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    // (close at, conversation), soonest first; when each was taken.
    let mut closing: BinaryHeap<std::cmp::Reverse<(tokio::time::Instant, String)>> =
        BinaryHeap::new();
    let mut taken: std::collections::HashMap<String, tokio::time::Instant> =
        std::collections::HashMap::new();
    // A chat let go: how long it was held goes to the trace.
    let release = |taken: &mut std::collections::HashMap<String, tokio::time::Instant>,
                   conv: &str| {
        if let Some(t) = taken.remove(conv) {
            let _ = held.send((conv.to_owned(), t.elapsed().as_millis() as i64));
        }
    };
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
                    taken.insert(conv.clone(), tokio::time::Instant::now());
                    closing.push(std::cmp::Reverse((at, conv)));
                    let _ = heard.send(());
                }
                Ok(Some(m)) if m["type"] == "error" => errors += 1,
                Ok(Some(_)) => {}
                _ => return errors + 1,
            },
            _ = tokio::time::sleep_until(next) => {
                if let Some(std::cmp::Reverse((_, conv))) = closing.pop() {
                    release(&mut taken, &conv);
                    if send(&mut ws, &json!({"type": "close", "conversation": conv})).await.is_err() {
                        return errors + 1;
                    }
                }
            }
            _ = stop.changed() => {
                // Chats still held are closed, and the agent leaves only once each close is
                // stored (a frame still unread when the socket goes is not acted on): the
                // next scenario finds the agents with nothing open.
                let mut open = std::collections::HashSet::new();
                while let Some(std::cmp::Reverse((_, conv))) = closing.pop() {
                    release(&mut taken, &conv);
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
