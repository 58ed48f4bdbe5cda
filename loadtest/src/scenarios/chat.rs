//! `chat`: visitors and agents in conversation at a steady rate; every message checked, latencies recorded.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::*;
use crate::report::Report;
use crate::{Ctx, Ws, recv, send};

pub(super) enum Cmd {
    /// Visitor: send the first message.
    Start,
    /// Send one timestamped message in a conversation.
    Say(String),
}

/// A visitor's socket: starts its conversation on command, then answers `Say`.
pub(super) async fn visitor_task(
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
pub(super) async fn agent_task(
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
pub(super) fn reconcile(t: &Tally) -> (u64, u64, u64) {
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
    let agent_ws = open_agents(&ctx, agents, "online").await?;
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
