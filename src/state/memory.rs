//! The embedded backend: all live state in this process, one short critical section per call,
//! and on disk through the journal (`journal`), so a restart resumes every conversation.
//!
//! Each site has one `std::sync::Mutex` (not tokio's): no call awaits while holding it, and one
//! lock per site makes every routing step atomic exactly as the Redis scripts are. Each step
//! hands the journal the rows it changed under the lock (so the journal's order is the steps'
//! order), then waits outside the lock for their commit before returning: callers acknowledge
//! only what is on disk. Stored events reach the delivery sink after their commit, in order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use dashmap::DashMap;

use super::journal::{ConvRow, Journal, Snapshot, Write};
use super::{
    Appended, Guard, Guarded, Reassign, Result, Span, Start, Store, Unavailable, queue_score,
};
use crate::directory::model::AgentConfig;
use crate::envelope::{Envelope, Sink};
use crate::model::{
    AgentId, AgentState, AgentStatus, ConvId, ConvState, Conversation, DeptId, Event, EventBody,
    Millis, Rank, SiteId, VisitorId,
};

pub struct MemoryStore {
    /// One lock per site; sites never share state.
    sites: DashMap<SiteId, Arc<Mutex<SiteState>>>,
    /// Where ephemeral envelopes go on this (the only) node; stored events go through the
    /// journal, which delivers them here after their commit.
    sink: Arc<dyn Sink>,
    /// The disk.
    journal: Journal,
    /// Rate counters (`Store::count`).
    windows: super::windows::Windows,
}

#[derive(Default)]
struct SiteState {
    agents: BTreeMap<AgentId, AgentSlot>,
    /// Per department: (score, conversation) in serving order, and each member's score.
    queues: HashMap<DeptId, Queue>,
    convs: HashMap<ConvId, ConvSlot>,
    /// Each visitor's latest conversation, while that conversation is kept. Profiles are
    /// records in the database: a visitor who leaves without writing costs no memory here.
    visitors: HashMap<VisitorId, ConvId>,
    /// Closed conversations whose ticket is not saved yet.
    unticketed: BTreeSet<ConvId>,
    /// Until when each visitor counts as on the site.
    live: HashMap<VisitorId, Millis>,
    /// Queue arrivals so far: the tie-breaker that keeps queue order equal to arrival order.
    arrivals: u64,
    /// Per department: the agents who can take a chat (online, below their limit), best
    /// first, so an assignment reads the head instead of every agent of the site. Kept by
    /// `reindex` on every change of status, limit, load, departments or presence.
    avail: HashMap<DeptId, BTreeSet<Rank>>,
}

#[derive(Default)]
struct Queue {
    order: BTreeSet<(i64, ConvId)>,
    scores: HashMap<ConvId, i64>,
    /// When each member entered the queue.
    since: HashMap<ConvId, Millis>,
}

impl Queue {
    fn insert(&mut self, conv: &ConvId, score: i64, now: Millis) {
        self.remove(conv);
        self.order.insert((score, conv.clone()));
        self.scores.insert(conv.clone(), score);
        self.since.insert(conv.clone(), now);
    }

    fn remove(&mut self, conv: &ConvId) {
        if let Some(score) = self.scores.remove(conv) {
            self.order.remove(&(score, conv.clone()));
            self.since.remove(conv);
        }
    }

    /// A member's place, counting from whichever end of the queue is nearer: a visitor who
    /// just joined the tail of a long queue costs one step, not the length of the queue.
    fn position(&self, member: &(i64, ConvId)) -> u32 {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut before = self.order.range(..member);
        let mut after = self.order.range((Excluded(member), Unbounded));
        let (mut ahead, mut behind) = (0u32, 0u32);
        loop {
            if before.next_back().is_none() {
                return ahead + 1;
            }
            ahead += 1;
            if after.next().is_none() {
                return self.order.len() as u32 - behind;
            }
            behind += 1;
        }
    }

    fn head_score(&self) -> Option<i64> {
        self.order.first().map(|(s, _)| *s)
    }
}

struct AgentSlot {
    state: AgentState,
    /// Per node: until when it vouches for a live connection.
    presence: HashMap<String, Millis>,
    /// Where the agent stands in the departments' indexes (`SiteState::avail`), if anywhere:
    /// what `reindex` removes before it places the agent again.
    indexed: Option<(Rank, Vec<DeptId>)>,
}

impl AgentSlot {
    /// Until when some node vouches for the agent's connection.
    fn present_until(&self) -> Millis {
        self.presence.values().copied().max().unwrap_or(0)
    }
}

struct ConvSlot {
    conv: Conversation,
    events: Vec<Event>,
    client_ids: HashMap<String, u64>,
    /// When a closed conversation may be dropped from memory.
    expires_at: Option<Millis>,
    /// While active: the last visitor message or the assignment, for the inactivity close.
    activity: Option<Millis>,
}

impl ConvSlot {
    fn new(conv: Conversation, activity: Option<Millis>) -> Self {
        Self {
            conv,
            events: Vec::new(),
            client_ids: HashMap::new(),
            expires_at: None,
            activity,
        }
    }
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
        for (site, mut state) in snap.agents {
            state.present_until = 0;
            let presence = HashMap::from([(String::from("restart"), now)]);
            let id = state.id.clone();
            let site = self.site(&site);
            let mut s = lock(&site);
            s.agents.insert(
                id.clone(),
                AgentSlot {
                    state,
                    presence,
                    indexed: None,
                },
            );
            s.reindex(&id);
        }
        for (site, row) in snap.convs {
            let site = self.site(&site);
            let mut s = lock(&site);
            let id = row.conv.id.clone();
            if let Some((dept, score, since)) = &row.queue {
                s.queues
                    .entry(dept.clone())
                    .or_default()
                    .insert(&id, *score, *since);
            }
            if row.unticketed {
                s.unticketed.insert(id.clone());
            }
            // The visitor's latest conversation is the one they resume.
            let later = s
                .visitors
                .get(&row.conv.visitor)
                .and_then(|c| s.convs.get(c))
                .is_none_or(|c| c.conv.created_at <= row.conv.created_at);
            if later {
                s.visitors.insert(row.conv.visitor.clone(), id.clone());
            }
            s.convs.insert(
                id,
                ConvSlot {
                    conv: row.conv,
                    events: Vec::new(),
                    client_ids: HashMap::new(),
                    expires_at: row.expires_at,
                    activity: row.activity,
                },
            );
        }
        for (site, conv, event) in snap.events {
            let site = self.site(&site);
            let mut s = lock(&site);
            let Some(slot) = s.convs.get_mut(&conv) else {
                continue;
            };
            if let Some(cid) = event.body.client_id() {
                slot.client_ids.insert(cid.to_owned(), event.seq);
            }
            if let (
                EventBody::Message {
                    at,
                    author: crate::model::AuthorKind::Visitor,
                    ..
                },
                Some(t),
            ) = (&event.body, slot.activity)
            {
                slot.activity = Some(t.max(*at));
            }
            slot.conv.last_seq = slot.conv.last_seq.max(event.seq);
            slot.events.push(event);
        }
    }

    fn site(&self, site: &SiteId) -> Arc<Mutex<SiteState>> {
        self.sites.entry(site.clone()).or_default().clone()
    }
}

/// Locks a site, recovering from poisoning: every mutation below leaves the state consistent
/// before anything that could panic, so the data is still sound.
fn lock(m: &Mutex<SiteState>) -> MutexGuard<'_, SiteState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SiteState {
    /// The journal row of a conversation as it is now.
    fn conv_write(&self, site: &SiteId, conv: &ConvId) -> Option<Write> {
        let slot = self.convs.get(conv)?;
        let dept = &slot.conv.department;
        let queue = self.queues.get(dept).and_then(|q| {
            Some((
                dept.clone(),
                *q.scores.get(conv)?,
                q.since.get(conv).copied().unwrap_or(0),
            ))
        });
        Some(Write::Conv {
            site: site.clone(),
            row: ConvRow {
                conv: slot.conv.clone(),
                activity: slot.activity,
                expires_at: slot.expires_at,
                queue,
                unticketed: self.unticketed.contains(conv),
            },
        })
    }

    /// The journal row of an agent as it is now.
    fn agent_write(&self, site: &SiteId, agent: &AgentId) -> Option<Write> {
        self.agents.get(agent).map(|a| Write::Agent {
            site: site.clone(),
            state: a.state.clone(),
        })
    }

    fn arrivals_write(&self, site: &SiteId) -> Write {
        Write::Arrivals {
            site: site.clone(),
            n: self.arrivals,
        }
    }

    fn agent_view(slot: &AgentSlot) -> AgentState {
        let mut s = slot.state.clone();
        s.present_until = slot.present_until();
        s
    }

    fn release_agent(&mut self, agent: &AgentId, conv: &ConvId) {
        if let Some(a) = self.agents.get_mut(agent) {
            let before = a.state.chats.len();
            a.state.chats.retain(|c| c != conv);
            if a.state.chats.len() < before {
                a.state.load = a.state.load.saturating_sub(1);
            }
        }
        self.reindex(agent);
    }

    /// Places the agent in the indexes of its departments as it is now, or takes it out.
    fn reindex(&mut self, agent: &AgentId) {
        let Some(slot) = self.agents.get_mut(agent) else {
            return;
        };
        if let Some((rank, depts)) = slot.indexed.take() {
            unindex(&mut self.avail, &rank, &depts);
        }
        let st = &slot.state;
        if st.status == AgentStatus::Online && st.load < st.max_concurrent {
            let rank = Rank::of(st);
            for d in &st.departments {
                self.avail
                    .entry(d.clone())
                    .or_default()
                    .insert(rank.clone());
            }
            slot.indexed = Some((rank, st.departments.clone()));
        }
    }

    /// Gives the head of a department's queue to the best eligible agent.
    fn assign_one(
        &mut self,
        dept: &DeptId,
        now: Millis,
        grace_ms: Millis,
    ) -> Option<(ConvId, AgentId, String)> {
        let head = self.queues.get(dept)?.order.first()?.1.clone();
        let agent = loop {
            let id = self.avail.get(dept)?.first()?.id.clone();
            let slot = self.agents.get_mut(&id)?;
            if slot.present_until().saturating_add(grace_ms) > now {
                break id;
            }
            // Gone past the grace: out of the index until its presence next changes.
            if let Some((rank, depts)) = slot.indexed.take() {
                unindex(&mut self.avail, &rank, &depts);
            }
        };
        if let Some(q) = self.queues.get_mut(dept) {
            q.remove(&head);
        }
        self.take_agent(&agent, &head, now);
        let mut locale = String::from("en");
        if let Some(c) = self.convs.get_mut(&head) {
            c.conv.state = ConvState::Active;
            c.conv.agent = Some(agent.clone());
            c.conv.first_assigned_at.get_or_insert(now);
            c.activity = Some(now);
            locale = c.conv.locale.clone();
        }
        Some((head, agent, locale))
    }

    fn take_agent(&mut self, agent: &AgentId, conv: &ConvId, now: Millis) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.state.load += 1;
            a.state.idle_since = now;
            a.state.chats.push(conv.clone());
        }
        self.reindex(agent);
    }
}

/// Takes an agent's rank out of the indexes of `depts`.
fn unindex(avail: &mut HashMap<DeptId, BTreeSet<Rank>>, rank: &Rank, depts: &[DeptId]) {
    for d in depts {
        if let Some(set) = avail.get_mut(d) {
            set.remove(rank);
            if set.is_empty() {
                avail.remove(d);
            }
        }
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
        let n = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let slot = s
                .agents
                .entry(agent.id.clone())
                .or_insert_with(|| AgentSlot {
                    state: AgentState {
                        id: agent.id.clone(),
                        name: agent.name.clone(),
                        departments: agent.departments.clone(),
                        status: AgentStatus::Offline,
                        max_concurrent: agent.max_concurrent,
                        cap: agent.max_concurrent,
                        load: 0,
                        idle_since: 0,
                        present_until: 0,
                        chats: Vec::new(),
                    },
                    presence: HashMap::new(),
                    indexed: None,
                });
            slot.state.name = agent.name.clone();
            slot.state.departments = agent.departments.clone();
            slot.state.cap = agent.max_concurrent;
            slot.state.max_concurrent = slot.state.max_concurrent.min(agent.max_concurrent);
            s.reindex(&agent.id);
            let writes = s.agent_write(site_id, &agent.id).into_iter().collect();
            self.journal.submit(writes, None)
        };
        self.journal.committed(n).await
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
        let n = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let current = s
                .visitors
                .get(&new.visitor)
                .and_then(|c| s.convs.get(c))
                .filter(|c| c.conv.state != ConvState::Closed)
                .map(|c| c.conv.clone());
            if let Some(open) = current {
                return Ok((open, false));
            }
            s.convs
                .insert(new.id.clone(), ConvSlot::new(new.clone(), None));
            s.visitors.insert(new.visitor.clone(), new.id.clone());
            let writes = s.conv_write(site_id, &new.id).into_iter().collect();
            self.journal.submit(writes, None)
        };
        self.journal.committed(n).await?;
        Ok((new.clone(), true))
    }

    async fn start_conversation(
        &self,
        site_id: &SiteId,
        new: &Conversation,
        agent: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> Result<Start> {
        let n = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let busy = s
                .visitors
                .get(&new.visitor)
                .and_then(|c| s.convs.get(c))
                .is_some_and(|c| c.conv.state != ConvState::Closed);
            if busy {
                return Ok(Start::VisitorBusy);
            }
            let able = s.agents.get(agent).is_some_and(|slot| {
                let v = SiteState::agent_view(slot);
                v.status != AgentStatus::Offline
                    && v.load < v.max_concurrent
                    && v.present(now, grace_ms)
            });
            if !able {
                return Ok(Start::AgentFull);
            }
            let mut conv = new.clone();
            conv.state = ConvState::Active;
            conv.agent = Some(agent.clone());
            conv.first_assigned_at = Some(now);
            s.convs
                .insert(conv.id.clone(), ConvSlot::new(conv, Some(now)));
            s.visitors.insert(new.visitor.clone(), new.id.clone());
            s.take_agent(agent, &new.id, now);
            let writes = [
                s.conv_write(site_id, &new.id),
                s.agent_write(site_id, agent),
            ];
            self.journal
                .submit(writes.into_iter().flatten().collect(), None)
        };
        self.journal.committed(n).await?;
        Ok(Start::Done)
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
                    slot.conv.state == ConvState::Active && slot.conv.agent.as_ref() == Some(a)
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
                slot.events.push(event.clone());
                let delivery = Envelope::Event {
                    site: site_id.clone(),
                    conv: conv.clone(),
                    visitor: slot.conv.visitor.clone(),
                    event: event.clone(),
                };
                let write = Write::Event {
                    site: site_id.clone(),
                    conv: conv.clone(),
                    event,
                };
                // Under the lock, so the journal delivers this conversation's events in order.
                let n = self.journal.submit(vec![write], Some(delivery));
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
    ) -> Result<bool> {
        let n = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let Some(slot) = s.convs.get_mut(conv) else {
                return Ok(false);
            };
            if slot.conv.state == ConvState::Closed {
                return Ok(false);
            }
            let priority = slot.conv.priority;
            let old_dept = std::mem::replace(&mut slot.conv.department, dept.clone());
            slot.conv.state = ConvState::Queued;
            slot.conv.queued_at.get_or_insert(now);
            if let Some(q) = s.queues.get_mut(&old_dept) {
                q.remove(conv);
            }
            s.arrivals += 1;
            let arrival = s.arrivals;
            let queue = s.queues.entry(dept.clone()).or_default();
            let normal = queue_score(priority, arrival) as i64;
            let score = match (at_head, queue.head_score()) {
                (true, Some(head)) => head.min(normal) - 1,
                _ => normal,
            };
            queue.insert(conv, score, now);
            let writes = [s.conv_write(site_id, conv), Some(s.arrivals_write(site_id))];
            self.journal
                .submit(writes.into_iter().flatten().collect(), None)
        };
        self.journal.committed(n).await?;
        Ok(true)
    }

    async fn assign_batch(
        &self,
        site_id: &SiteId,
        dept: &DeptId,
        now: Millis,
        grace_ms: Millis,
        batch: usize,
    ) -> Result<Vec<(ConvId, AgentId, String)>> {
        let (n, out) = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let mut out = Vec::new();
            let mut writes = Vec::new();
            while out.len() < batch {
                match s.assign_one(dept, now, grace_ms) {
                    Some(a) => {
                        writes.extend(s.conv_write(site_id, &a.0));
                        writes.extend(s.agent_write(site_id, &a.1));
                        out.push(a);
                    }
                    None => break,
                }
            }
            if out.is_empty() {
                return Ok(out);
            }
            (self.journal.submit(writes, None), out)
        };
        self.journal.committed(n).await?;
        Ok(out)
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
        let (n, before) = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let Some(slot) = s.convs.get_mut(conv) else {
                return Ok(None);
            };
            if slot.conv.state == ConvState::Closed {
                return Ok(None);
            }
            let before = slot.conv.clone();
            slot.conv.state = ConvState::Closed;
            slot.conv.closed_at = Some(now);
            slot.conv.close_reason = Some(reason.to_owned());
            slot.expires_at = Some(now + retention_ms);
            slot.activity = None;
            s.unticketed.insert(conv.clone());
            if let Some(q) = s.queues.get_mut(&before.department) {
                q.remove(conv);
            }
            let mut writes = Vec::new();
            if let Some(agent) = &before.agent
                && before.state == ConvState::Active
            {
                s.release_agent(agent, conv);
                writes.extend(s.agent_write(site_id, agent));
            }
            writes.extend(s.conv_write(site_id, conv));
            (self.journal.submit(writes, None), before)
        };
        self.journal.committed(n).await?;
        Ok(Some(before))
    }

    async fn unassign(
        &self,
        site_id: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        dept: &DeptId,
        now: Millis,
    ) -> Result<bool> {
        let n = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let Some(slot) = s.convs.get_mut(conv) else {
                return Ok(false);
            };
            if slot.conv.state != ConvState::Active || slot.conv.agent.as_ref() != Some(owner) {
                return Ok(false);
            }
            slot.conv.state = ConvState::Queued;
            slot.conv.agent = None;
            slot.conv.department = dept.clone();
            slot.activity = None;
            let priority = slot.conv.priority;
            s.release_agent(owner, conv);
            s.arrivals += 1;
            let arrival = s.arrivals;
            let queue = s.queues.entry(dept.clone()).or_default();
            let normal = queue_score(priority, arrival) as i64;
            let score = queue.head_score().map_or(normal, |h| h.min(normal) - 1);
            queue.insert(conv, score, now);
            let writes = [
                s.conv_write(site_id, conv),
                s.agent_write(site_id, owner),
                Some(s.arrivals_write(site_id)),
            ];
            self.journal
                .submit(writes.into_iter().flatten().collect(), None)
        };
        self.journal.committed(n).await?;
        Ok(true)
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
        let n = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let owned = s.convs.get(conv).is_some_and(|c| {
                c.conv.state == ConvState::Active && c.conv.agent.as_ref() == Some(from)
            });
            if !owned {
                return Ok(Reassign::NotOwner);
            }
            let why = match s.agents.get(to).map(SiteState::agent_view) {
                _ if from == to => Some(Unavailable::Yourself),
                None => Some(Unavailable::Disconnected),
                Some(v) if v.status != AgentStatus::Online => Some(Unavailable::NotOnline),
                Some(v) if v.load >= v.max_concurrent => Some(Unavailable::Full),
                Some(v) if !v.present(now, grace_ms) => Some(Unavailable::Disconnected),
                Some(_) => None,
            };
            if let Some(why) = why {
                return Ok(Reassign::TargetUnavailable(why));
            }
            s.release_agent(from, conv);
            s.take_agent(to, conv, now);
            if let Some(c) = s.convs.get_mut(conv) {
                c.conv.agent = Some(to.clone());
            }
            let writes = [
                s.conv_write(site_id, conv),
                s.agent_write(site_id, from),
                s.agent_write(site_id, to),
            ];
            self.journal
                .submit(writes.into_iter().flatten().collect(), None)
        };
        self.journal.committed(n).await?;
        Ok(Reassign::Done)
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

    async fn inactive(&self, site: &SiteId, before: Millis) -> Result<Vec<ConvId>> {
        let site = self.site(site);
        let s = lock(&site);
        Ok(s.convs
            .values()
            .filter(|c| c.activity.is_some_and(|t| t < before))
            .map(|c| c.conv.id.clone())
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
        let (mark, n) = {
            let site = self.site(site_id);
            let mut s = lock(&site);
            let Some(slot) = s.convs.get_mut(conv) else {
                return Ok(None);
            };
            let c = &mut slot.conv;
            let seq = seq.min(c.last_seq);
            let read = if agent {
                &mut c.agent_read
            } else {
                &mut c.visitor_read
            };
            if seq <= *read {
                return Ok(None);
            }
            *read = seq;
            let writes = s.conv_write(site_id, conv).into_iter().collect();
            (seq, self.journal.submit(writes, None))
        };
        self.journal.committed(n).await?;
        Ok(Some(mark))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn online(s: &mut SiteState, id: &str, max: u32, present_until: Millis) {
        let id = AgentId::from(id);
        s.agents.insert(
            id.clone(),
            AgentSlot {
                state: AgentState {
                    id: id.clone(),
                    name: id.0.clone(),
                    departments: vec!["d".into()],
                    status: AgentStatus::Online,
                    max_concurrent: max,
                    cap: max,
                    load: 0,
                    idle_since: 0,
                    present_until: 0,
                    chats: vec![],
                },
                presence: HashMap::from([("n".to_owned(), present_until)]),
                indexed: None,
            },
        );
        s.reindex(&id);
    }

    fn queue(s: &mut SiteState, n: usize) {
        let q = s.queues.entry("d".into()).or_default();
        for i in 0..n {
            let conv = ConvId::from(format!("c{i:03}").as_str());
            q.insert(&conv, i as i64, 0);
        }
    }

    /// The index picks what a scan of every agent would: lowest load ratio, then idle longest;
    /// nobody past their limit, the absent skipped, and a limit change or status change is seen.
    #[test]
    fn index_assigns_like_a_scan() {
        let mut s = SiteState::default();
        online(&mut s, "a", 2, 1_000);
        online(&mut s, "b", 4, 1_000);
        online(&mut s, "gone", 9, 10);
        queue(&mut s, 8);
        let dept = DeptId::from("d");
        let mut who = Vec::new();
        while let Some((_, agent, _)) = s.assign_one(&dept, 500, 100) {
            who.push(agent.0);
        }
        // a 0/2 (id a first), b 0/4, b 1/4, a 1/2 = b 2/4 (b idle longer), a, b: a full at 2, b at 4.
        assert_eq!(who, ["a", "b", "b", "a", "b", "b"]);
        assert_eq!(
            s.queues[&DeptId::from("d")].order.len(),
            2,
            "two wait: every present agent is full"
        );
        assert!(!s.avail.contains_key(&dept), "no one is left in the index");
        let change = |s: &mut SiteState, f: &dyn Fn(&mut AgentSlot)| {
            f(s.agents.get_mut(&AgentId::from("gone")).unwrap());
            s.reindex(&"gone".into());
        };
        // The absent agent comes back: it takes the rest.
        change(&mut s, &|a| {
            a.presence.insert("n".into(), 2_000);
        });
        assert_eq!(s.assign_one(&dept, 500, 100).unwrap().1.0, "gone");
        // Away agents take nothing; online again, they do.
        change(&mut s, &|a| a.state.status = AgentStatus::Away);
        assert!(s.assign_one(&dept, 500, 100).is_none());
        change(&mut s, &|a| a.state.status = AgentStatus::Online);
        assert!(s.assign_one(&dept, 500, 100).is_some());
        // A chat released frees a place.
        let conv = s.agents[&AgentId::from("a")].state.chats[0].clone();
        s.release_agent(&"a".into(), &conv);
        assert!(s.avail[&dept].iter().any(|r| r.id.0 == "a"));
    }

    /// A member's position is the same counted from either end.
    #[test]
    fn queue_position_from_the_nearer_end() {
        let mut s = SiteState::default();
        queue(&mut s, 7);
        let q = &s.queues[&DeptId::from("d")];
        let members: Vec<_> = q.order.iter().cloned().collect();
        for (i, m) in members.iter().enumerate() {
            assert_eq!(q.position(m), i as u32 + 1);
        }
    }
}
