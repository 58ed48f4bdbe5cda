//! The embedded backend: all live state in this process, one short critical section per call,
//! and on disk through the journal (`journal`), so a restart resumes every conversation.
//!
//! Each site has one `std::sync::Mutex` (not tokio's): no call awaits while holding it, and one
//! lock per site makes every routing step atomic exactly as the Redis scripts are. Each step
//! hands the journal the rows it changed under the lock (so the journal's order is the steps'
//! order), then waits outside the lock for their commit before returning: callers acknowledge
//! only what is on disk. Stored events reach the delivery sink after their commit, in order.
//!
//! - `site` — one site's state and the decisions made on it, as plain synchronous methods
//!   that return the rows they changed (unit-tested in `site_tests.rs`), over the pieces in
//!   `slots` (queue, agent, conversation); `resume` puts the journal's rows back at start;
//! - `journal` — the rows on disk (SQLite), and the commit each step waits for;
//! - `windows` — the rate counters (`Store::count`), not journaled;
//! - this file — `Store` as thin steps: lock the site, decide, journal, wait.

pub(crate) mod journal;
mod resume;
mod site;
mod slots;
mod windows;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dashmap::DashMap;

use crate::directory::model::AgentConfig;
use crate::envelope::{Envelope, Sink};
use crate::model::{
    AgentId, AgentState, AgentStatus, ConvId, ConvState, Conversation, DeptId, Event, EventBody,
    Millis, SiteId, VisitorId,
};
use crate::routing::Rules;
use crate::state::{Appended, Batch, Guard, Guarded, Reassign, Result, Span, Start, Store};
use journal::{Journal, Snapshot, Write};
use site::{SiteState, lock};

pub struct MemoryStore {
    /// One lock per site; sites never share state.
    sites: DashMap<SiteId, Arc<Mutex<SiteState>>>,
    /// Where ephemeral envelopes go on this (the only) node; stored events go through the
    /// journal, which delivers them here after their commit.
    sink: Arc<dyn Sink>,
    /// The disk.
    journal: Journal,
    /// Rate counters (`Store::count`).
    windows: windows::Windows,
}

impl MemoryStore {
    /// Opens the embedded state of a data directory and resumes what it holds. Agents count as
    /// having disconnected at `now`: those who reconnect within the grace period keep their
    /// chats.
    pub async fn open(
        data_dir: &std::path::Path,
        durability: crate::db::Durability,
        sink: Arc<dyn Sink>,
        now: Millis,
    ) -> anyhow::Result<Self> {
        let (journal, snapshot) = Journal::open(data_dir, durability, sink.clone()).await?;
        let store = Self {
            sites: DashMap::new(),
            sink,
            journal,
            windows: Default::default(),
        };
        let resumed = snapshot.convs.len();
        store.resume(snapshot, now);
        if resumed > 0 {
            tracing::info!(conversations = resumed, "embedded state resumed");
        }
        Ok(store)
    }

    /// Rebuilds the sites from the journal's rows.
    fn resume(&self, snap: Snapshot, now: Millis) {
        for (site, n) in snap.arrivals {
            lock(&self.site(&site)).arrivals = n;
        }
        for (site, state) in snap.agents {
            lock(&self.site(&site)).resume_agent(state, now);
        }
        for (site, row) in snap.convs {
            lock(&self.site(&site)).resume_conv(row);
        }
        for (site, conv, event) in snap.events {
            lock(&self.site(&site)).resume_event(&conv, event);
        }
    }

    /// One step: `decide` runs under the site's lock and returns the rows it changed with its
    /// outcome. The rows are handed to the journal under the lock (its order is the steps'
    /// order); the outcome is returned once they are on disk. A step that changed nothing
    /// answers at once.
    async fn step<T>(
        &self,
        site: &SiteId,
        decide: impl FnOnce(&mut SiteState) -> (Vec<Write>, T),
    ) -> Result<T> {
        let (n, out) = {
            let site = self.site(site);
            let mut s = lock(&site);
            let (writes, out) = decide(&mut s);
            if writes.is_empty() {
                return Ok(out);
            }
            (self.journal.submit(writes, None), out)
        };
        self.journal.committed(n).await?;
        Ok(out)
    }

    fn site(&self, site: &SiteId) -> Arc<Mutex<SiteState>> {
        self.sites.entry(site.clone()).or_default().clone()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn register_agent(
        &self,
        site_id: &SiteId,
        agent: &AgentConfig,
        _all: &[DeptId],
    ) -> Result<()> {
        self.step(site_id, |s| (s.register_agent(site_id, agent), ()))
            .await
    }

    async fn visitor_conversation(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
    ) -> Result<Option<Conversation>> {
        let site = self.site(site);
        let s = lock(&site);
        Ok(s.visitors
            .get(visitor)
            .and_then(|c| s.convs.get(c))
            .map(|c| c.conv.clone()))
    }

    async fn open_conversation(
        &self,
        site_id: &SiteId,
        new: &Conversation,
    ) -> Result<(Conversation, bool)> {
        self.step(site_id, |s| s.open_conversation(site_id, new))
            .await
    }

    async fn start_conversation(
        &self,
        site_id: &SiteId,
        new: &Conversation,
        agent: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> Result<Start> {
        self.step(site_id, |s| {
            s.start_conversation(site_id, new, agent, now, grace_ms)
        })
        .await
    }

    async fn conversation(&self, site: &SiteId, id: &ConvId) -> Result<Option<Conversation>> {
        let site = self.site(site);
        let s = lock(&site);
        Ok(s.convs.get(id).map(|c| c.conv.clone()))
    }

    async fn append_guarded(
        &self,
        site_id: &SiteId,
        conv: &ConvId,
        body: &EventBody,
        guard: &Guard,
    ) -> Result<Guarded> {
        let (n, appended) = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let Some(slot) = s.convs.get_mut(conv) else {
                return match guard {
                    Guard::None => Err(super::StoreError::Corrupt(format!(
                        "no conversation {conv}"
                    ))),
                    _ => Ok(Guarded::Refused),
                };
            };
            let holds = match guard {
                Guard::None => true,
                Guard::VisitorOpen(v, _) => {
                    slot.conv.state != ConvState::Closed && &slot.conv.visitor == v
                }
                Guard::AgentActive(a) => {
                    slot.conv.state == ConvState::Active
                        && slot.conv.agent.as_ref() == Some(a)
                        && !slot.conv.offered
                }
            };
            if !holds {
                return Ok(Guarded::Refused);
            }
            if let Some(cid) = body.client_id()
                && let Some(&seq) = slot.client_ids.get(cid)
            {
                // The first send may still be on its way to disk: answer once it is there.
                let appended = Appended {
                    seq,
                    duplicate: true,
                };
                (self.journal.submitted(), appended)
            } else {
                if let Guard::VisitorOpen(v, Some(rate)) = guard {
                    let keys = super::Rate::keys(v, Some(conv));
                    if self
                        .windows
                        .count_all(site_id, &keys, rate.window_ms, rate.now)
                        > u64::from(rate.limit)
                    {
                        return Ok(Guarded::Limited);
                    }
                }
                let seq = slot.conv.last_seq + 1;
                slot.conv.last_seq = seq;
                let event = Event {
                    seq,
                    body: body.clone(),
                };
                if let Some(cid) = body.client_id() {
                    slot.client_ids.insert(cid.to_owned(), seq);
                }
                if let (
                    EventBody::Message {
                        at,
                        author: crate::model::AuthorKind::Visitor,
                        ..
                    },
                    Some(_),
                ) = (body, slot.activity)
                {
                    slot.activity = Some(*at);
                }
                // The owner's first reply ends the first-reply clock: the row is journaled,
                // so a restart does not start it again.
                let answered = matches!(guard, Guard::AgentActive(_))
                    && matches!(body, EventBody::Message { .. })
                    && slot.conv.pending_since.take().is_some();
                slot.events.push(event.clone());
                let delivery = Envelope::Event {
                    site: site_id.clone(),
                    conv: conv.clone(),
                    visitor: slot.conv.visitor.clone(),
                    event: event.clone(),
                };
                let mut writes = vec![Write::Event {
                    site: site_id.clone(),
                    conv: conv.clone(),
                    event,
                }];
                if answered {
                    writes.extend(s.conv_write(site_id, conv));
                }
                // Under the lock, so the journal delivers this conversation's events in order.
                let n = self.journal.submit(writes, Some(delivery));
                let appended = Appended {
                    seq,
                    duplicate: false,
                };
                (n, appended)
            }
        };
        self.journal.committed(n).await?;
        Ok(Guarded::Stored(appended))
    }

    async fn events(&self, site: &SiteId, conv: &ConvId, span: Span) -> Result<Vec<Event>> {
        let (n, events) = {
            let site = self.site(site);
            let s = lock(&site);
            let events = s
                .convs
                .get(conv)
                .map(|c| {
                    // seq n sits at index n-1: `after < seq < before` is `after..before-1`.
                    let index = |seq: u64| usize::try_from(seq).unwrap_or(usize::MAX);
                    let to = index(span.before.saturating_sub(1)).min(c.events.len());
                    let from = index(span.after).min(to);
                    let range = &c.events[from..to];
                    let n = range.len().min(span.limit);
                    if span.latest {
                        range[range.len() - n..].to_vec()
                    } else {
                        range[..n].to_vec()
                    }
                })
                .unwrap_or_default();
            (self.journal.submitted(), events)
        };
        // What a client reads must be on disk first: a crash must not take it back.
        self.journal.committed(n).await?;
        Ok(events)
    }

    async fn enqueue(
        &self,
        site_id: &SiteId,
        conv: &ConvId,
        dept: &DeptId,
        at_head: bool,
        now: Millis,
        rules: &Rules,
    ) -> Result<bool> {
        self.step(site_id, |s| {
            s.enqueue(site_id, conv, dept, at_head, now, rules)
        })
        .await
    }

    async fn move_queued(
        &self,
        site_id: &SiteId,
        conv: &ConvId,
        from: &DeptId,
        to: &DeptId,
        now: Millis,
        rules: &Rules,
    ) -> Result<bool> {
        self.step(site_id, |s| {
            let waiting = s
                .convs
                .get(conv)
                .is_some_and(|c| c.conv.state == ConvState::Queued && &c.conv.department == from);
            if !waiting {
                return (Vec::new(), false);
            }
            s.enqueue(site_id, conv, to, true, now, rules)
        })
        .await
    }

    async fn assign_batch(
        &self,
        site_id: &SiteId,
        dept: &DeptId,
        now: Millis,
        grace_ms: Millis,
        rules: &Rules,
        batch: usize,
    ) -> Result<Batch> {
        self.step(site_id, |s| {
            let (writes, assigned) = s.assign_batch(site_id, dept, now, grace_ms, rules, batch);
            // The snapshot read the first `window` of the queue, which lost what was assigned.
            let left = s.queues.get(dept).map_or(0, |q| q.order.len());
            let read = (left + assigned.len()).min(crate::routing::window(batch));
            let more = crate::routing::more_after(assigned.len(), batch, read);
            (writes, Batch { assigned, more })
        })
        .await
    }

    fn decision_batch(&self) -> usize {
        // Deciding in memory is cheap next to the journal commit each batch waits for.
        1024
    }

    async fn queue_position(
        &self,
        site: &SiteId,
        dept: &DeptId,
        conv: &ConvId,
    ) -> Result<Option<u32>> {
        let site = self.site(site);
        let s = lock(&site);
        Ok(s.queues.get(dept).and_then(|q| {
            let score = *q.scores.get(conv)?;
            Some(q.position(&(score, conv.clone())))
        }))
    }

    async fn queue(&self, site: &SiteId, dept: &DeptId) -> Result<Vec<(ConvId, Millis)>> {
        let site = self.site(site);
        let s = lock(&site);
        Ok(s.queues
            .get(dept)
            .map(|q| {
                q.order
                    .iter()
                    .map(|(_, c)| (c.clone(), q.since.get(c).copied().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn close(
        &self,
        site_id: &SiteId,
        conv: &ConvId,
        reason: &str,
        now: Millis,
        retention_ms: Millis,
    ) -> Result<Option<Conversation>> {
        self.step(site_id, |s| {
            s.close(site_id, conv, reason, now, retention_ms)
        })
        .await
    }

    async fn unassign(
        &self,
        site_id: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        dept: &DeptId,
        now: Millis,
        rules: &Rules,
        needs: Option<&crate::routing::Needs>,
    ) -> Result<bool> {
        self.step(site_id, |s| {
            s.unassign(site_id, conv, owner, dept, now, rules, needs)
        })
        .await
    }

    async fn accept(
        &self,
        site_id: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        now: Millis,
    ) -> Result<bool> {
        self.step(site_id, |s| s.accept(site_id, conv, owner, now))
            .await
    }

    async fn pending(&self, site: &SiteId, before: Millis) -> Result<Vec<Conversation>> {
        let site = self.site(site);
        let s = lock(&site);
        let mut out: Vec<Conversation> = s
            .convs
            .values()
            .filter(|c| c.conv.state == ConvState::Active)
            .filter(|c| c.conv.pending_since.is_some_and(|t| t < before))
            .map(|c| c.conv.clone())
            .collect();
        out.sort_by(|a, b| (a.pending_since, &a.id).cmp(&(b.pending_since, &b.id)));
        Ok(out)
    }

    async fn reassign(
        &self,
        site_id: &SiteId,
        conv: &ConvId,
        from: &AgentId,
        to: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> Result<Reassign> {
        self.step(site_id, |s| {
            s.reassign(site_id, conv, from, to, now, grace_ms)
        })
        .await
    }

    async fn set_status(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        status: AgentStatus,
    ) -> Result<()> {
        self.update_agent(site_id, agent, |a| a.status = status)
            .await
    }

    async fn set_limit(&self, site_id: &SiteId, agent: &AgentId, limit: u32) -> Result<()> {
        self.update_agent(site_id, agent, |a| a.max_concurrent = limit.min(a.cap))
            .await
    }

    async fn set_presence(
        &self,
        site: &SiteId,
        agent: &AgentId,
        node: &str,
        until: Millis,
    ) -> Result<()> {
        // Not journaled: after a restart every agent counts as just disconnected.
        let site = self.site(site);
        let mut s = lock(&site);
        if let Some(a) = s.agents.get_mut(agent) {
            a.presence.insert(node.to_owned(), until);
        }
        s.reindex(agent);
        Ok(())
    }

    async fn agent(&self, site: &SiteId, id: &AgentId) -> Result<Option<AgentState>> {
        let site = self.site(site);
        let s = lock(&site);
        Ok(s.agents.get(id).map(SiteState::agent_view))
    }

    async fn agents(&self, site: &SiteId) -> Result<Vec<AgentState>> {
        let site = self.site(site);
        let s = lock(&site);
        Ok(s.agents.values().map(SiteState::agent_view).collect())
    }

    async fn visitor_left(&self, site: &SiteId, visitor: &VisitorId) -> Result<()> {
        let site = self.site(site);
        lock(&site).live.remove(visitor);
        Ok(())
    }

    async fn set_visitor_presence(
        &self,
        site: &SiteId,
        visitors: &[VisitorId],
        until: Millis,
    ) -> Result<()> {
        let site = self.site(site);
        let mut s = lock(&site);
        for v in visitors {
            s.live.insert(v.clone(), until);
        }
        Ok(())
    }

    async fn live_visitors(&self, site: &SiteId, now: Millis) -> Result<Vec<VisitorId>> {
        let site = self.site(site);
        let mut s = lock(&site);
        s.live.retain(|_, until| *until > now);
        let mut ids: Vec<VisitorId> = s.live.keys().cloned().collect();
        ids.sort();
        Ok(ids)
    }

    async fn inactive(&self, site: &SiteId, before: Millis) -> Result<Vec<(ConvId, Millis)>> {
        let site = self.site(site);
        let s = lock(&site);
        Ok(s.convs
            .values()
            .filter_map(|c| {
                let t = c.activity.filter(|t| *t < before)?;
                Some((c.conv.id.clone(), t))
            })
            .collect())
    }

    async fn unticketed(&self, site: &SiteId) -> Result<Vec<ConvId>> {
        let site = self.site(site);
        let s = lock(&site);
        Ok(s.unticketed.iter().cloned().collect())
    }

    async fn mark_ticketed(&self, site_id: &SiteId, conv: &ConvId) -> Result<()> {
        let n = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            if !s.unticketed.remove(conv) {
                return Ok(());
            }
            let writes = s.conv_write(site_id, conv).into_iter().collect();
            self.journal.submit(writes, None)
        };
        self.journal.committed(n).await
    }

    async fn mark_read(
        &self,
        site_id: &SiteId,
        conv: &ConvId,
        agent: bool,
        seq: u64,
    ) -> Result<Option<u64>> {
        self.step(site_id, |s| s.mark_read(site_id, conv, agent, seq))
            .await
    }

    async fn publish(&self, _site: &SiteId, envelope: &Envelope) -> Result<()> {
        self.sink.deliver(envelope.clone());
        Ok(())
    }

    async fn ready(&self) -> Result<bool> {
        Ok(true)
    }

    async fn count(
        &self,
        site: &SiteId,
        keys: &[String],
        window_ms: i64,
        now: Millis,
    ) -> Result<u64> {
        Ok(self.windows.count_all(site, keys, window_ms, now))
    }

    async fn forget_visitor(
        &self,
        site_id: &SiteId,
        visitor: &VisitorId,
        convs: &[ConvId],
    ) -> Result<()> {
        let n = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let current = s.visitors.remove(visitor);
            s.live.remove(visitor);
            let mut writes = Vec::new();
            for conv in convs.iter().chain(current.as_ref()) {
                if s.convs
                    .get(conv)
                    .is_some_and(|c| c.conv.visitor == *visitor)
                {
                    s.convs.remove(conv);
                    s.unticketed.remove(conv);
                    writes.push(Write::ForgetConv {
                        site: site_id.clone(),
                        conv: conv.clone(),
                    });
                }
            }
            self.journal.submit(writes, None)
        };
        self.journal.committed(n).await
    }

    async fn sweep_closed(&self, _sites: &[SiteId], now: Millis) -> Result<()> {
        self.windows.prune(now);
        let sites: Vec<_> = self
            .sites
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        let mut last = None;
        for (site_id, site) in sites {
            let mut s = lock(&site);
            let SiteState {
                visitors,
                convs,
                live,
                ..
            } = &mut *s;
            let mut writes = Vec::new();
            convs.retain(|id, c| {
                let keep = c.expires_at.is_none_or(|t| t > now);
                if !keep {
                    writes.push(Write::ForgetConv {
                        site: site_id.clone(),
                        conv: id.clone(),
                    });
                }
                keep
            });
            visitors.retain(|_, c| convs.contains_key(c));
            live.retain(|_, until| *until > now);
            if !writes.is_empty() {
                last = Some(self.journal.submit(writes, None));
            }
        }
        match last {
            Some(n) => self.journal.committed(n).await,
            None => Ok(()),
        }
    }

    async fn shutdown(&self) {
        self.journal.close().await;
    }
}

impl MemoryStore {
    /// Changes an agent's record and journals it.
    async fn update_agent(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        change: impl FnOnce(&mut AgentState),
    ) -> Result<()> {
        let n = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let Some(a) = s.agents.get_mut(agent) else {
                return Ok(());
            };
            change(&mut a.state);
            s.reindex(agent);
            let writes = s.agent_write(site_id, agent).into_iter().collect();
            self.journal.submit(writes, None)
        };
        self.journal.committed(n).await
    }
}
