//! The scenarios. Each socket runs in its own task and keeps its own tally (no shared locks on
//! the hot path); tallies are merged at the end. Loss and duplication are checked by sequence
//! number: every acknowledged message must reach the other side exactly once.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::report::{Report, histogram};
use crate::{Ctx, Ws, recv, rss_bytes, send};

/// How long `chat` waits after connecting everyone before it starts conversations.
const SETTLE: Duration = Duration::from_secs(1);

/// Opens `n` sockets with at most `parallel` handshakes at a time.
async fn open_many<F, Fut>(n: usize, parallel: usize, f: F) -> anyhow::Result<Vec<Ws>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Ws>> + Send + 'static,
{
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + parallel).min(n))
            .map(|k| tokio::spawn(f(k)))
            .collect();
        for t in batch {
            out.push(t.await??);
        }
        i += parallel;
    }
    Ok(out)
}

/// What one socket saw.
/// Latencies one task measured, as a plain list: one histogram for the whole run is built
/// from them at the end. A histogram per task (1 µs to 10 min at 3 digits: 172 KB of
/// counters) made the generator, with 10,000 sockets each with four, the busiest process on
/// the machine.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn record(&mut self, micros: u64) {
        self.0.push(micros);
    }

    fn histogram(self) -> Histogram<u64> {
        let mut h = histogram();
        for v in self.0 {
            h.saturating_record(v);
        }
        h
    }
}

struct Tally {
    errors: u64,
    /// (conversation, seq, from visitor) of acknowledged messages this socket sent.
    sent: Vec<(String, u64, bool)>,
    /// (conversation, seq, from visitor) of messages this socket received from the other side.
    received: Vec<(String, u64, bool)>,
    v2a: Samples,
    a2v: Samples,
    first_ack: Samples,
    queued_to_assigned: Samples,
    /// Most chats an agent held at once.
    max_held: u64,
}

impl Tally {
    fn new() -> Self {
        Self {
            errors: 0,
            sent: Vec::new(),
            received: Vec::new(),
            v2a: Samples::default(),
            a2v: Samples::default(),
            first_ack: Samples::default(),
            queued_to_assigned: Samples::default(),
            max_held: 0,
        }
    }

    fn merge(&mut self, o: Tally) {
        self.errors += o.errors;
        self.sent.extend(o.sent);
        self.received.extend(o.received);
        self.v2a.0.extend(o.v2a.0);
        self.a2v.0.extend(o.a2v.0);
        self.first_ack.0.extend(o.first_ack.0);
        self.queued_to_assigned.0.extend(o.queued_to_assigned.0);
        self.max_held = self.max_held.max(o.max_held);
    }
}

/// The send time carried in a message's text.
fn stamp(ctx: &Ctx) -> String {
    format!("lt {}", ctx.micros())
}

fn latency(ctx: &Ctx, text: &str) -> Option<u64> {
    let sent: u64 = text.strip_prefix("lt ")?.parse().ok()?;
    Some(ctx.micros().saturating_sub(sent).max(1))
}

fn rss(pid: Option<u32>) -> Option<u64> {
    pid.and_then(rss_bytes)
}

// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------

enum Cmd {
    /// Visitor: send the first message.
    Start,
    /// Send one timestamped message in a conversation.
    Say(String),
}

/// A visitor's socket: starts its conversation on command, then answers `Say`.
async fn visitor_task(
    ctx: Arc<Ctx>,
    mut ws: Ws,
    idx: usize,
    mut cmds: mpsc::Receiver<Cmd>,
    ready: mpsc::UnboundedSender<(String, Option<usize>, Option<usize>)>,
    mut stop: watch::Receiver<bool>,
) -> Tally {
    let mut t = Tally::new();
    let mut conv: Option<String> = None;
    let mut first_sent: Option<u64> = None;
    let mut first_answered = false;
    let mut queued_at: Option<u64> = None;
    let mut next_cid = 0u64;
    loop {
        tokio::select! {
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { break };
                next_cid += 1;
                let text = stamp(&ctx);
                if matches!(cmd, Cmd::Start) {
                    first_sent = Some(ctx.micros());
                }
                if send(&mut ws, &json!({"type": "message", "client_id": format!("v{next_cid}"), "text": text})).await.is_err() {
                    t.errors += 1;
                    break;
                }
            }
            msg = recv(&mut ws) => {
                let m = match msg {
                    Ok(Some(m)) => m,
                    Ok(None) | Err(_) => {
                        if !*stop.borrow() { t.errors += 1; }
                        break;
                    }
                };
                match m["type"].as_str() {
                    Some("ack") => {
                        let c = m["conversation"].as_str().unwrap_or("").to_owned();
                        if conv.is_none() {
                            conv = Some(c.clone());
                            let _ = ready.send((c.clone(), Some(idx), None));
                        }
                        t.sent.push((c, m["seq"].as_u64().unwrap_or(0), true));
                    }
                    Some("event") => {
                        let e = &m["event"];
                        let c = m["conversation"].as_str().unwrap_or("");
                        let kind = e["kind"].as_str().unwrap_or("");
                        if !first_answered && (kind == "assigned" || (kind == "notice" && e["notice"] == "queued")) {
                            first_answered = true;
                            if let Some(s) = first_sent { t.first_ack.record(ctx.micros().saturating_sub(s).max(1)); }
                        }
                        match kind {
                            "notice" if e["notice"] == "queued" => queued_at = Some(ctx.micros()),
                            "notice" if e["notice"] == "offline" => t.errors += 1,
                            "assigned" => {
                                if let Some(q) = queued_at.take() {
                                    t.queued_to_assigned.record(ctx.micros().saturating_sub(q).max(1));
                                }
                            }
                            "message" if e["author"] == "agent" => {
                                if let Some(l) = latency(&ctx, e["text"].as_str().unwrap_or("")) { t.a2v.record(l); }
                                t.received.push((c.to_owned(), e["seq"].as_u64().unwrap_or(0), false));
                            }
                            _ => {}
                        }
                    }
                    Some("error") => t.errors += 1,
                    _ => {}
                }
            }
            _ = stop.changed() => break,
        }
    }
    t
}

/// An agent's socket: registers assigned chats, answers `Say`, counts what it holds.
async fn agent_task(
    ctx: Arc<Ctx>,
    mut ws: Ws,
    idx: usize,
    mut cmds: mpsc::Receiver<Cmd>,
    ready: mpsc::UnboundedSender<(String, Option<usize>, Option<usize>)>,
    mut stop: watch::Receiver<bool>,
) -> Tally {
    let mut t = Tally::new();
    let mut next_cid = 0u64;
    let mut held = 0u64;
    let mut chats: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            cmd = cmds.recv() => {
                let Some(Cmd::Say(conv)) = cmd else {
                    if cmd.is_none() { break } else { continue }
                };
                next_cid += 1;
                let msg = json!({"type": "message", "conversation": conv, "client_id": format!("a{next_cid}"), "text": stamp(&ctx)});
                if send(&mut ws, &msg).await.is_err() {
                    t.errors += 1;
                    break;
                }
            }
            msg = recv(&mut ws) => {
                let m = match msg {
                    Ok(Some(m)) => m,
                    Ok(None) | Err(_) => {
                        if !*stop.borrow() { t.errors += 1; }
                        break;
                    }
                };
                match m["type"].as_str() {
                    Some("assigned") => {
                        held += 1;
                        t.max_held = t.max_held.max(held);
                        let c = m["conversation"]["id"].as_str().unwrap_or("").to_owned();
                        chats.push(c.clone());
                        for e in m["events"].as_array().into_iter().flatten() {
                            if e["kind"] == "message" && e["author"] == "visitor" {
                                t.received.push((c.clone(), e["seq"].as_u64().unwrap_or(0), true));
                            }
                        }
                        let _ = ready.send((c, None, Some(idx)));
                    }
                    Some("unassigned") => held = held.saturating_sub(1),
                    Some("ack") => {
                        let c = m["conversation"].as_str().unwrap_or("").to_owned();
                        t.sent.push((c, m["seq"].as_u64().unwrap_or(0), false));
                    }
                    Some("event") => {
                        let e = &m["event"];
                        if e["kind"] == "message" && e["author"] == "visitor" {
                            if let Some(l) = latency(&ctx, e["text"].as_str().unwrap_or("")) { t.v2a.record(l); }
                            let c = m["conversation"].as_str().unwrap_or("").to_owned();
                            t.received.push((c, e["seq"].as_u64().unwrap_or(0), true));
                        }
                    }
                    Some("error") => t.errors += 1,
                    _ => {}
                }
            }
            _ = stop.changed() => break,
        }
    }
    // Leave the server as we found it: close what this agent holds, and wait for the acks.
    let mut open = chats.len();
    for c in chats.drain(..) {
        let _ = send(&mut ws, &json!({"type": "close", "conversation": c})).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while open > 0 {
            match recv(&mut ws).await {
                Ok(Some(m)) if m["type"] == "closed" || m["type"] == "error" => open -= 1,
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    })
    .await;
    t
}

/// Sent vs received by (conversation, seq, direction): (received, lost, duplicated).
fn reconcile(t: &Tally) -> (u64, u64, u64) {
    let mut seen: HashMap<&(String, u64, bool), u64> = HashMap::new();
    for r in &t.received {
        *seen.entry(r).or_default() += 1;
    }
    let sent: HashSet<&(String, u64, bool)> = t.sent.iter().collect();
    let lost = sent.iter().filter(|s| !seen.contains_key(*s)).count() as u64;
    let dup = seen.values().filter(|&&n| n > 1).map(|n| n - 1).sum();
    (t.received.len() as u64, lost, dup)
}

#[allow(clippy::too_many_arguments)]
pub async fn chat(
    ctx: Arc<Ctx>,
    pid: Option<u32>,
    visitors: usize,
    agents: usize,
    start_rate: f64,
    msg_rate: f64,
    duration: f64,
) -> anyhow::Result<Report> {
    let mut r = Report::new("chat");
    let began = Instant::now();
    r.server_rss_before = rss(pid);
    let c = ctx.clone();
    let agent_ws = open_many(agents, 64, move |i| {
        let c = c.clone();
        async move { c.agent(i, "online").await }
    })
    .await?;
    let c = ctx.clone();
    let visitor_ws = open_many(visitors, 256, move |_| {
        let c = c.clone();
        async move { c.visitor().await }
    })
    .await?;
    r.connections = (agents + visitors) as u64;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let mut v_cmd = Vec::new();
    let mut a_cmd = Vec::new();
    let mut tasks = Vec::new();
    for (i, ws) in agent_ws.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel(256);
        a_cmd.push(tx);
        tasks.push(tokio::spawn(agent_task(
            ctx.clone(),
            ws,
            i,
            rx,
            ready_tx.clone(),
            stop_rx.clone(),
        )));
    }
    for (i, ws) in visitor_ws.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel(64);
        v_cmd.push(tx);
        tasks.push(tokio::spawn(visitor_task(
            ctx.clone(),
            ws,
            i,
            rx,
            ready_tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(ready_tx);

    // Start conversations at the given rate; pair each with its agent as both sides report it.
    let mut pairs: HashMap<String, (Option<usize>, Option<usize>)> = HashMap::new();
    let mut active: Vec<(String, usize, usize)> = Vec::new();
    let note = |pairs: &mut HashMap<String, (Option<usize>, Option<usize>)>,
                active: &mut Vec<(String, usize, usize)>,
                (conv, v, a): (String, Option<usize>, Option<usize>)| {
        let e = pairs.entry(conv.clone()).or_default();
        if v.is_some() {
            e.0 = v;
        }
        if a.is_some() {
            e.1 = a;
        }
        if let (Some(v), Some(a)) = *e {
            active.push((conv, v, a));
        }
    };
    // Settle before measuring: the sessions' tasks just spawned read first what their sockets
    // received while the others connected. Starting at once measured that backlog (this
    // process's, the server was idle): with 1,000 agents the first 300 ms of starts waited
    // 60-140 ms for the generator, not for the server.
    tokio::time::sleep(SETTLE).await;
    let gap = Duration::from_secs_f64(1.0 / start_rate.max(0.001));
    let mut tick = tokio::time::interval(gap);
    for tx in &v_cmd {
        tick.tick().await;
        let _ = tx.send(Cmd::Start).await;
        while let Ok(x) = ready_rx.try_recv() {
            note(&mut pairs, &mut active, x);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while active.len() < visitors && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), ready_rx.recv()).await {
            Ok(Some(x)) => note(&mut pairs, &mut active, x),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    if active.len() < visitors {
        r.problems.push(format!(
            "only {} of {visitors} conversations were assigned",
            active.len()
        ));
    }
    r.extra.push(("conversations".into(), active.len() as f64));

    // Messages at the total rate, alternating directions, round robin over conversations.
    let traffic = Instant::now();
    let mut budget = 0.0;
    let mut k = 0usize;
    let mut every = tokio::time::interval(Duration::from_millis(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut last = Instant::now();
    let mut skipped = 0u64;
    while traffic.elapsed().as_secs_f64() < duration && !active.is_empty() {
        every.tick().await;
        let now = Instant::now();
        budget += msg_rate * now.duration_since(last).as_secs_f64();
        last = now;
        while budget >= 1.0 {
            budget -= 1.0;
            let (conv, v, a) = &active[(k / 2) % active.len()];
            let tx = if k.is_multiple_of(2) {
                &v_cmd[*v]
            } else {
                &a_cmd[*a]
            };
            if tx.try_send(Cmd::Say(conv.clone())).is_err() {
                skipped += 1;
            }
            k += 1;
        }
    }
    let offered = k as f64 / traffic.elapsed().as_secs_f64();
    r.extra.push(("offered msg/s".into(), offered.round()));
    r.extra
        .push(("skipped (client backlog)".into(), skipped as f64));
    // Let the last messages arrive, then stop every socket.
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.server_rss_after = rss(pid);
    stop_tx.send(true).ok();
    drop(v_cmd);
    drop(a_cmd);
    let mut all = Tally::new();
    for t in tasks {
        all.merge(t.await?);
    }
    r.errors = all.errors;
    r.sent = all.sent.len() as u64;
    (r.received, r.lost, r.duplicated) = reconcile(&all);
    r.latencies = vec![
        ("visitor→agent".into(), all.v2a.histogram()),
        ("agent→visitor".into(), all.a2v.histogram()),
        ("first message→ack".into(), all.first_ack.histogram()),
        ("queued→assigned".into(), all.queued_to_assigned.histogram()),
    ];
    r.duration_secs = began.elapsed().as_secs_f64();
    Ok(r)
}

// ---------------------------------------------------------------------------------------------

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
    let c = ctx.clone();
    // Away: on duty (so visitors are queued, not sent away) but not taking chats.
    let agent_ws = open_many(agents, 64, move |i| {
        let c = c.clone();
        async move { c.agent(i, "away").await }
    })
    .await?;
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

// ---------------------------------------------------------------------------------------------

/// The number of keys in a Redis database (`DBSIZE`), over a raw connection.
async fn redis_keys(url: &str) -> anyhow::Result<u64> {
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

// ---------------------------------------------------------------------------------------------

/// A process killed when dropped.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_redis() -> anyhow::Result<(Proc, String)> {
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

fn start_server(
    bin: &Path,
    config: &str,
    redis: Option<&str>,
) -> anyhow::Result<(Proc, std::net::SocketAddr)> {
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
    Ok((proc, addr))
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
        let (server, addr) = start_server(bin, &config, redis.as_ref().map(|r| r.1.as_str()))?;
        let pid = Some(server.0.id());
        let runs: Vec<(&str, anyhow::Result<Report>)> = vec![
            (
                "idle",
                idle(Arc::new(Ctx::new(addr, 4)?), pid, 200, 0.5).await,
            ),
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
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
