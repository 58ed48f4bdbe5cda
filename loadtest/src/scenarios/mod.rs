//! The scenarios. Each socket runs in its own task and keeps its own tally (no shared locks on
//! the hot path); tallies are merged at the end. Loss and duplication are checked by sequence
//! number: every acknowledged message must reach the other side exactly once.
//!
//! One file per scenario; this one holds what they share (opening many sockets, samples and
//! tallies, timestamps in message texts, the server's memory).

mod burst;
mod chat;
mod churn;
mod estimate;
mod idle;
mod smoke;

pub use burst::burst;
pub use chat::chat;
pub use churn::churn;
pub use estimate::estimate;
pub use idle::idle;
pub use smoke::smoke;

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::report::histogram;
use crate::{Ctx, Ws, rss_bytes};

/// How long `chat` waits after connecting everyone before it starts conversations.
pub(super) const SETTLE: Duration = Duration::from_secs(1);

/// Opens `n` sockets with at most `parallel` handshakes at a time.
pub(super) async fn open_many<F, Fut>(n: usize, parallel: usize, f: F) -> anyhow::Result<Vec<Ws>>
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

/// Signs in agents lt0…lt`n-1` with a status, 64 handshakes at a time.
pub(super) async fn open_agents(
    ctx: &std::sync::Arc<Ctx>,
    n: usize,
    status: &'static str,
) -> anyhow::Result<Vec<Ws>> {
    let c = ctx.clone();
    open_many(n, 64, move |i| {
        let c = c.clone();
        async move { c.agent(i, status).await }
    })
    .await
}

/// What one socket saw.
/// Latencies one task measured, as a plain list: one histogram for the whole run is built
/// from them at the end. A histogram per task (1 µs to 10 min at 3 digits: 172 KB of
/// counters) made the generator, with 10,000 sockets each with four, the busiest process on
/// the machine.
#[derive(Default)]
pub(super) struct Samples(Vec<u64>);

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

pub(super) struct Tally {
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
pub(super) fn stamp(ctx: &Ctx) -> String {
    format!("lt {}", ctx.micros())
}

pub(super) fn latency(ctx: &Ctx, text: &str) -> Option<u64> {
    let sent: u64 = text.strip_prefix("lt ")?.parse().ok()?;
    Some(ctx.micros().saturating_sub(sent).max(1))
}

pub(super) fn rss(pid: Option<u32>) -> Option<u64> {
    pid.and_then(rss_bytes)
}
