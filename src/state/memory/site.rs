//! One site's live state on the embedded backend, and the decisions made on it: the queues in
//! serving order, the agents and the routing index of those who can take a chat, the
//! conversations. Plain synchronous code under the site's lock (`lock`); the store
//! (`memory::MemoryStore`) journals the rows each step changed and waits for their commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::journal::{ConvRow, Write};
use super::slots::{AgentSlot, ConvSlot, Queue};
use crate::directory::model::AgentConfig;
use crate::model::{
    AgentId, AgentState, AgentStatus, ConvId, ConvState, Conversation, DeptId, Millis, Rank,
    SiteId, VisitorId,
};
use crate::routing::{self, Candidate, Rules, Snapshot, Waiting};
use crate::state::{Reassign, Start, Unavailable};

#[derive(Default)]
pub(super) struct SiteState {
    pub(super) agents: BTreeMap<AgentId, AgentSlot>,
    /// Per department: (score, conversation) in serving order, and each member's score.
    pub(super) queues: HashMap<DeptId, Queue>,
    pub(super) convs: HashMap<ConvId, ConvSlot>,
    /// Each visitor's latest conversation, while that conversation is kept. Profiles are
    /// records in the database: a visitor who leaves without writing costs no memory here.
    pub(super) visitors: HashMap<VisitorId, ConvId>,
    /// Closed conversations whose ticket is not saved yet.
    pub(super) unticketed: BTreeSet<ConvId>,
    /// Until when each visitor counts as on the site.
    pub(super) live: HashMap<VisitorId, Millis>,
    /// The last queue arrival number (`routing::next_arrival`): keeps queue order equal to
    /// arrival order within a millisecond.
    pub(super) arrivals: u64,
    /// Per department: the agents who can take a chat (online, below their limit), best
    /// first, so an assignment reads the head instead of every agent of the site. Kept by
    /// `reindex` on every change of status, limit, load, departments or presence.
    pub(super) avail: HashMap<DeptId, BTreeSet<Rank>>,
}

/// Locks a site, recovering from poisoning: every mutation below leaves the state consistent
/// before anything that could panic, so the data is still sound.
pub(super) fn lock(m: &Mutex<SiteState>) -> MutexGuard<'_, SiteState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SiteState {
    /// The journal row of a conversation as it is now.
    pub(super) fn conv_write(&self, site: &SiteId, conv: &ConvId) -> Option<Write> {
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
    pub(super) fn agent_write(&self, site: &SiteId, agent: &AgentId) -> Option<Write> {
        self.agents.get(agent).map(|a| Write::Agent {
            site: site.clone(),
            state: a.state.clone(),
        })
    }

    pub(super) fn arrivals_write(&self, site: &SiteId) -> Write {
        Write::Arrivals {
            site: site.clone(),
            n: self.arrivals,
        }
    }

    pub(super) fn agent_view(slot: &AgentSlot) -> AgentState {
        let mut s = slot.state.clone();
        s.present_until = slot.present_until();
        s
    }

    pub(super) fn release_agent(&mut self, agent: &AgentId, conv: &ConvId) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.state.release_chat(conv);
        }
        self.reindex(agent);
    }

    /// Places the agent in the indexes of its departments as it is now, or takes it out.
    pub(super) fn reindex(&mut self, agent: &AgentId) {
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

    /// The department as `routing::decide` reads it: the first `window` of its queue, the
    /// agents of its index (dropping those gone past the grace, until their presence next
    /// changes), and any waiting chat's preferred agent.
    pub(super) fn snapshot(
        &mut self,
        dept: &DeptId,
        now: Millis,
        grace_ms: Millis,
        rules: &Rules,
        batch: usize,
    ) -> Snapshot {
        let mut snap = Snapshot {
            now,
            grace_ms,
            rules: *rules,
            ..Snapshot::default()
        };
        // Nobody can take a chat (a preferred agent with room is indexed too): nothing to
        // decide, and no need to read the queue.
        if self.avail.get(dept).is_none_or(|a| a.is_empty()) {
            return snap;
        }
        snap.queue = self
            .queues
            .get(dept)
            .map(|q| {
                q.order
                    .iter()
                    .take(routing::window(batch))
                    .filter_map(|(_, c)| {
                        let slot = self.convs.get(c)?;
                        Some(Waiting {
                            conv: c.clone(),
                            since: slot.conv.queued_at.unwrap_or(now),
                            needs: slot.conv.needs.clone(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        if snap.queue.is_empty() {
            return snap;
        }
        // The best placed first, as far as the decision can use (`routing::Reach`); then
        // any waiting chat's previous agent, who may be full or away.
        let mut reach = routing::Reach::new(&snap.queue, batch, rules, now);
        let preferred: Vec<AgentId> = snap
            .queue
            .iter()
            .filter_map(|w| w.needs.prefer.clone())
            .collect();
        // Looked up for every agent read: a set, not the list.
        let wanted: std::collections::HashSet<&AgentId> = preferred.iter().collect();
        let mut gone = Vec::new();
        let indexed = self.avail.get(dept).into_iter().flatten();
        for (id, in_index) in indexed
            .map(|r| (&r.id, true))
            .chain(preferred.iter().map(|id| (id, false)))
        {
            if in_index && reach.done() {
                continue;
            }
            // The index holds each agent once; a previous agent may be in it too.
            if !in_index && snap.agents.iter().any(|a| &a.id == id) {
                continue;
            }
            let Some(slot) = self.agents.get(id) else {
                continue;
            };
            let present_until = slot.present_until();
            if present_until.saturating_add(grace_ms) <= now {
                // Gone past the grace: out of the index until its presence next changes.
                gone.push(id.clone());
                continue;
            }
            let st = &slot.state;
            if !st.departments.contains(dept) {
                continue;
            }
            let useful = in_index && reach.read(&st.skills);
            if !useful && !wanted.contains(id) {
                continue;
            }
            snap.agents.push(Candidate {
                id: id.clone(),
                status: st.status,
                load: st.load,
                max: st.max_concurrent,
                idle_since: st.idle_since,
                present_until,
                skills: st.skills.clone(),
            });
        }
        for id in gone {
            if let Some((rank, depts)) = self.agents.get_mut(&id).and_then(|s| s.indexed.take()) {
                unindex(&mut self.avail, &rank, &depts);
            }
        }
        snap
    }

    /// One decided assignment: the chat leaves the queue and joins the agent.
    fn apply(
        &mut self,
        dept: &DeptId,
        conv: &ConvId,
        agent: &AgentId,
        now: Millis,
        offer: bool,
    ) -> String {
        if let Some(q) = self.queues.get_mut(dept) {
            q.remove(conv);
        }
        self.take_agent(agent, conv, now);
        let mut locale = String::from("en");
        if let Some(c) = self.convs.get_mut(conv) {
            c.conv.state = ConvState::Active;
            c.conv.agent = Some(agent.clone());
            if !offer {
                // An offer is not an assignment until it is accepted (`accept`).
                c.conv.first_assigned_at.get_or_insert(now);
            }
            c.conv.pending_since = Some(now);
            c.conv.offered = offer;
            c.activity = Some(now);
            locale = c.conv.locale.clone();
        }
        locale
    }

    pub(super) fn take_agent(&mut self, agent: &AgentId, conv: &ConvId, now: Millis) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.state.take_chat(conv, now);
        }
        self.reindex(agent);
    }
}

/// Takes an agent's rank out of the indexes of `depts`.
pub(super) fn unindex(avail: &mut HashMap<DeptId, BTreeSet<Rank>>, rank: &Rank, depts: &[DeptId]) {
    for d in depts {
        if let Some(set) = avail.get_mut(d) {
            set.remove(rank);
            if set.is_empty() {
                avail.remove(d);
            }
        }
    }
}

/// The steps: each decides under the site's lock and returns the rows it changed (none when
/// nothing changed) with its outcome. `MemoryStore` journals the rows and answers once they
/// are on disk.
impl SiteState {
    /// An agent of the directory: created offline, or its name, departments and cap updated
    /// (a lowered cap lowers the current limit).
    pub(super) fn register_agent(&mut self, site_id: &SiteId, agent: &AgentConfig) -> Vec<Write> {
        let slot = self
            .agents
            .entry(agent.id.clone())
            .or_insert_with(|| AgentSlot {
                state: AgentState::registered(
                    agent.id.clone(),
                    agent.name.clone(),
                    agent.departments.clone(),
                    agent.max_concurrent,
                ),
                presence: HashMap::new(),
                indexed: None,
            });
        slot.state.name = agent.name.clone();
        slot.state.departments = agent.departments.clone();
        slot.state.skills = agent.skills.clone();
        slot.state.cap = agent.max_concurrent;
        slot.state.max_concurrent = slot.state.max_concurrent.min(agent.max_concurrent);
        self.reindex(&agent.id);
        self.agent_write(site_id, &agent.id).into_iter().collect()
    }

    /// The visitor's open conversation, or `new` opened (true).
    pub(super) fn open_conversation(
        &mut self,
        site_id: &SiteId,
        new: &Conversation,
    ) -> (Vec<Write>, (Conversation, bool)) {
        let current = self
            .visitors
            .get(&new.visitor)
            .and_then(|c| self.convs.get(c))
            .filter(|c| c.conv.state != ConvState::Closed)
            .map(|c| c.conv.clone());
        if let Some(open) = current {
            return (Vec::new(), (open, false));
        }
        self.convs
            .insert(new.id.clone(), ConvSlot::new(new.clone(), None));
        self.visitors.insert(new.visitor.clone(), new.id.clone());
        let writes = self.conv_write(site_id, &new.id).into_iter().collect();
        (writes, (new.clone(), true))
    }

    /// A conversation an agent starts, assigned to them at once if they can take it.
    pub(super) fn start_conversation(
        &mut self,
        site_id: &SiteId,
        new: &Conversation,
        agent: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> (Vec<Write>, Start) {
        let busy = self
            .visitors
            .get(&new.visitor)
            .and_then(|c| self.convs.get(c))
            .is_some_and(|c| c.conv.state != ConvState::Closed);
        if busy {
            return (Vec::new(), Start::VisitorBusy);
        }
        let able = self.agents.get(agent).is_some_and(|slot| {
            let v = Self::agent_view(slot);
            v.status != AgentStatus::Offline
                && v.load < v.max_concurrent
                && v.present(now, grace_ms)
        });
        if !able {
            return (Vec::new(), Start::AgentFull);
        }
        let mut conv = new.clone();
        conv.state = ConvState::Active;
        conv.agent = Some(agent.clone());
        conv.first_assigned_at = Some(now);
        self.convs
            .insert(conv.id.clone(), ConvSlot::new(conv, Some(now)));
        self.visitors.insert(new.visitor.clone(), new.id.clone());
        self.take_agent(agent, &new.id, now);
        let writes = [
            self.conv_write(site_id, &new.id),
            self.agent_write(site_id, agent),
        ];
        (writes.into_iter().flatten().collect(), Start::Done)
    }

    /// A conversation into a department's queue, at the head on a requeue; false when it is
    /// gone or closed.
    pub(super) fn enqueue(
        &mut self,
        site_id: &SiteId,
        conv: &ConvId,
        dept: &DeptId,
        at_head: bool,
        now: Millis,
        rules: &Rules,
    ) -> (Vec<Write>, bool) {
        let Some(slot) = self.convs.get_mut(conv) else {
            return (Vec::new(), false);
        };
        if slot.conv.state == ConvState::Closed {
            return (Vec::new(), false);
        }
        let priority = slot.conv.priority;
        let old_dept = std::mem::replace(&mut slot.conv.department, dept.clone());
        slot.conv.state = ConvState::Queued;
        slot.conv.queued_at.get_or_insert(now);
        if let Some(q) = self.queues.get_mut(&old_dept) {
            q.remove(conv);
        }
        let arrival = routing::next_arrival(now, self.arrivals as i64);
        self.arrivals = arrival as u64;
        let queue = self.queues.entry(dept.clone()).or_default();
        let normal = routing::queue_score(priority, arrival, rules.priority_unit);
        let score = match (at_head, queue.head_score()) {
            (true, Some(head)) => head.min(normal) - 1,
            _ => normal,
        };
        queue.insert(conv, score, now);
        let writes = [
            self.conv_write(site_id, conv),
            Some(self.arrivals_write(site_id)),
        ];
        (writes.into_iter().flatten().collect(), true)
    }

    /// Up to `batch` queued conversations of a department to agents, as `routing::decide`
    /// chooses on a snapshot taken under the same lock (nothing can change in between).
    pub(super) fn assign_batch(
        &mut self,
        site_id: &SiteId,
        dept: &DeptId,
        now: Millis,
        grace_ms: Millis,
        rules: &Rules,
        batch: usize,
    ) -> (Vec<Write>, Vec<(ConvId, AgentId, String)>) {
        let snap = self.snapshot(dept, now, grace_ms, rules, batch);
        let mut out = Vec::new();
        let mut writes = Vec::new();
        for a in routing::decide(&snap, batch) {
            let locale = self.apply(dept, &a.conv, &a.agent, now, rules.offer);
            writes.extend(self.conv_write(site_id, &a.conv));
            writes.extend(self.agent_write(site_id, &a.agent));
            out.push((a.conv, a.agent, locale));
        }
        (writes, out)
    }

    /// A conversation closed (its owner's slot freed); what it was before, or None when it
    /// was gone or closed already.
    pub(super) fn close(
        &mut self,
        site_id: &SiteId,
        conv: &ConvId,
        reason: &str,
        now: Millis,
        retention_ms: Millis,
    ) -> (Vec<Write>, Option<Conversation>) {
        let Some(slot) = self.convs.get_mut(conv) else {
            return (Vec::new(), None);
        };
        if slot.conv.state == ConvState::Closed {
            return (Vec::new(), None);
        }
        let before = slot.conv.clone();
        slot.conv.state = ConvState::Closed;
        slot.conv.closed_at = Some(now);
        slot.conv.close_reason = Some(reason.to_owned());
        slot.expires_at = Some(now + retention_ms);
        slot.activity = None;
        slot.conv.pending_since = None;
        slot.conv.offered = false;
        self.unticketed.insert(conv.clone());
        if let Some(q) = self.queues.get_mut(&before.department) {
            q.remove(conv);
        }
        let mut writes = Vec::new();
        if let Some(agent) = &before.agent
            && before.state == ConvState::Active
        {
            self.release_agent(agent, conv);
            writes.extend(self.agent_write(site_id, agent));
        }
        writes.extend(self.conv_write(site_id, conv));
        (writes, Some(before))
    }

    /// The owner's conversation back to the head of a department's queue; false when it is
    /// not (or no longer) theirs.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn unassign(
        &mut self,
        site_id: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        dept: &DeptId,
        now: Millis,
        rules: &Rules,
        needs: Option<&routing::Needs>,
    ) -> (Vec<Write>, bool) {
        let Some(slot) = self.convs.get_mut(conv) else {
            return (Vec::new(), false);
        };
        if slot.conv.state != ConvState::Active || slot.conv.agent.as_ref() != Some(owner) {
            return (Vec::new(), false);
        }
        if let Some(needs) = needs {
            slot.conv.needs = needs.clone();
        }
        slot.conv.pending_since = None;
        slot.conv.offered = false;
        slot.conv.state = ConvState::Queued;
        slot.conv.agent = None;
        slot.conv.department = dept.clone();
        slot.activity = None;
        let priority = slot.conv.priority;
        self.release_agent(owner, conv);
        let arrival = routing::next_arrival(now, self.arrivals as i64);
        self.arrivals = arrival as u64;
        let queue = self.queues.entry(dept.clone()).or_default();
        let normal = routing::queue_score(priority, arrival, rules.priority_unit);
        let score = queue.head_score().map_or(normal, |h| h.min(normal) - 1);
        queue.insert(conv, score, now);
        let writes = [
            self.conv_write(site_id, conv),
            self.agent_write(site_id, owner),
            Some(self.arrivals_write(site_id)),
        ];
        (writes.into_iter().flatten().collect(), true)
    }

    /// The owner accepts the chat offered to them; false when it is not (or no longer) an
    /// offer to them.
    pub(super) fn accept(
        &mut self,
        site_id: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        now: Millis,
    ) -> (Vec<Write>, bool) {
        let Some(slot) = self.convs.get_mut(conv) else {
            return (Vec::new(), false);
        };
        let c = &mut slot.conv;
        if c.state != ConvState::Active || c.agent.as_ref() != Some(owner) || !c.offered {
            return (Vec::new(), false);
        }
        c.first_assigned_at.get_or_insert(now);
        c.offered = false;
        // Now it waits for the owner's first reply.
        c.pending_since = Some(now);
        (self.conv_write(site_id, conv).into_iter().collect(), true)
    }

    /// A transfer from `from` to `to`, within the target's limit and presence.
    pub(super) fn reassign(
        &mut self,
        site_id: &SiteId,
        conv: &ConvId,
        from: &AgentId,
        to: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> (Vec<Write>, Reassign) {
        let owned = self.convs.get(conv).is_some_and(|c| {
            c.conv.state == ConvState::Active && c.conv.agent.as_ref() == Some(from)
        });
        if !owned {
            return (Vec::new(), Reassign::NotOwner);
        }
        let why = match self.agents.get(to).map(Self::agent_view) {
            _ if from == to => Some(Unavailable::Yourself),
            None => Some(Unavailable::Disconnected),
            Some(v) if v.status != AgentStatus::Online => Some(Unavailable::NotOnline),
            Some(v) if v.load >= v.max_concurrent => Some(Unavailable::Full),
            Some(v) if !v.present(now, grace_ms) => Some(Unavailable::Disconnected),
            Some(_) => None,
        };
        if let Some(why) = why {
            return (Vec::new(), Reassign::TargetUnavailable(why));
        }
        self.release_agent(from, conv);
        self.take_agent(to, conv, now);
        if let Some(c) = self.convs.get_mut(conv) {
            c.conv.agent = Some(to.clone());
            c.conv.pending_since = None;
            c.conv.offered = false;
        }
        let writes = [
            self.conv_write(site_id, conv),
            self.agent_write(site_id, from),
            self.agent_write(site_id, to),
        ];
        (writes.into_iter().flatten().collect(), Reassign::Done)
    }

    /// One side's read mark raised to `seq` (capped at the last event); the new mark, or None
    /// when it did not advance.
    pub(super) fn mark_read(
        &mut self,
        site_id: &SiteId,
        conv: &ConvId,
        agent: bool,
        seq: u64,
    ) -> (Vec<Write>, Option<u64>) {
        let Some(slot) = self.convs.get_mut(conv) else {
            return (Vec::new(), None);
        };
        let c = &mut slot.conv;
        let seq = seq.min(c.last_seq);
        let read = if agent {
            &mut c.agent_read
        } else {
            &mut c.visitor_read
        };
        if seq <= *read {
            return (Vec::new(), None);
        }
        *read = seq;
        let writes = self.conv_write(site_id, conv).into_iter().collect();
        (writes, Some(seq))
    }
}

#[cfg(test)]
#[path = "site_tests.rs"]
mod tests;
