//! The reference model: the live-state rules of `state::Store` written as plainly as they can
//! be, without indexes, journal or scripts, for the conformance test to hold both backends to.
//! Its routing reads every agent and the whole queue and lets `routing::decide` choose: the
//! backends' snapshots read only the queue's head and the best-placed agents (`routing::window`,
//! `routing::reach`), and must decide the same. Only what the conformance test calls is here.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use switchboard::directory::model::AgentConfig;
use switchboard::envelope::Envelope;
use switchboard::model::{
    AgentId, AgentState, AgentStatus, ConvId, ConvState, Conversation, DeptId, Event, EventBody,
    Millis, SiteId, VisitorId,
};
use switchboard::routing::{self, Candidate, Needs, Rules, Snapshot, Waiting};
use switchboard::state::{
    Appended, Batch, Guard, Guarded, Reassign, Result, Span, Start, Store, StoreError, Unavailable,
};

#[derive(Default)]
struct State {
    agents: BTreeMap<AgentId, (AgentState, BTreeMap<String, Millis>)>,
    convs: BTreeMap<ConvId, (Conversation, BTreeMap<String, u64>)>,
    visitors: BTreeMap<VisitorId, ConvId>,
    /// (score, conversation, since) per department, unsorted: read sorted.
    queues: BTreeMap<DeptId, Vec<(i64, ConvId, Millis)>>,
    arrivals: i64,
}

#[derive(Default)]
pub struct Model(Mutex<State>);

impl State {
    fn view(&self, a: &(AgentState, BTreeMap<String, Millis>)) -> AgentState {
        let mut s = a.0.clone();
        s.present_until = a.1.values().copied().max().unwrap_or(0);
        s
    }

    fn queue(&self, dept: &DeptId) -> Vec<(i64, ConvId, Millis)> {
        let mut q = self.queues.get(dept).cloned().unwrap_or_default();
        q.sort();
        q
    }

    fn dequeue(&mut self, conv: &ConvId) {
        for q in self.queues.values_mut() {
            q.retain(|(_, c, _)| c != conv);
        }
    }

    fn put(&mut self, conv: &ConvId, dept: &DeptId, at_head: bool, now: Millis, unit: i64) {
        let priority = self.convs[conv].0.priority;
        self.dequeue(conv);
        self.arrivals = routing::next_arrival(now, self.arrivals);
        let normal = routing::queue_score(priority, self.arrivals, unit);
        let head = self.queue(dept).first().map(|(s, _, _)| *s);
        let score = match (at_head, head) {
            (true, Some(h)) => h.min(normal) - 1,
            _ => normal,
        };
        self.queues
            .entry(dept.clone())
            .or_default()
            .push((score, conv.clone(), now));
    }

    fn release(&mut self, agent: &AgentId, conv: &ConvId) {
        if let Some((a, _)) = self.agents.get_mut(agent) {
            a.release_chat(conv);
        }
    }

    fn take(&mut self, agent: &AgentId, conv: &ConvId, now: Millis) {
        if let Some((a, _)) = self.agents.get_mut(agent) {
            a.take_chat(conv, now);
        }
    }
}

fn unused() -> ! {
    unreachable!("not in the reference model: the conformance test does not call it")
}

#[async_trait]
impl Store for Model {
    async fn register_agent(&self, _: &SiteId, agent: &AgentConfig, _: &[DeptId]) -> Result<()> {
        let mut s = self.0.lock().unwrap();
        let entry = s.agents.entry(agent.id.clone()).or_insert_with(|| {
            let state = AgentState::registered(
                agent.id.clone(),
                String::new(),
                Vec::new(),
                agent.max_concurrent,
            );
            (state, BTreeMap::new())
        });
        let a = &mut entry.0;
        a.name = agent.name.clone();
        a.departments = agent.departments.clone();
        a.skills = agent.skills.clone();
        a.cap = agent.max_concurrent;
        a.max_concurrent = a.max_concurrent.min(agent.max_concurrent);
        Ok(())
    }

    async fn visitor_conversation(
        &self,
        _: &SiteId,
        visitor: &VisitorId,
    ) -> Result<Option<Conversation>> {
        let s = self.0.lock().unwrap();
        Ok(s.visitors
            .get(visitor)
            .and_then(|c| s.convs.get(c))
            .map(|c| c.0.clone()))
    }

    async fn open_conversation(
        &self,
        _: &SiteId,
        new: &Conversation,
    ) -> Result<(Conversation, bool)> {
        let mut s = self.0.lock().unwrap();
        let open = s
            .visitors
            .get(&new.visitor)
            .and_then(|c| s.convs.get(c))
            .filter(|c| c.0.state != ConvState::Closed)
            .map(|c| c.0.clone());
        if let Some(open) = open {
            return Ok((open, false));
        }
        s.convs
            .insert(new.id.clone(), (new.clone(), BTreeMap::new()));
        s.visitors.insert(new.visitor.clone(), new.id.clone());
        Ok((new.clone(), true))
    }

    async fn conversation(&self, _: &SiteId, id: &ConvId) -> Result<Option<Conversation>> {
        Ok(self.0.lock().unwrap().convs.get(id).map(|c| c.0.clone()))
    }

    async fn start_conversation(
        &self,
        _: &SiteId,
        _: &Conversation,
        _: &AgentId,
        _: Millis,
        _: Millis,
    ) -> Result<Start> {
        unused()
    }

    async fn append_guarded(
        &self,
        _: &SiteId,
        conv: &ConvId,
        body: &EventBody,
        guard: &Guard,
    ) -> Result<Guarded> {
        let mut s = self.0.lock().unwrap();
        let Some((c, ids)) = s.convs.get_mut(conv) else {
            return match guard {
                Guard::None => Err(StoreError::Corrupt(format!("no conversation {conv}"))),
                _ => Ok(Guarded::Refused),
            };
        };
        let holds = match guard {
            Guard::None => true,
            Guard::VisitorOpen(v, _) => c.state != ConvState::Closed && &c.visitor == v,
            Guard::AgentActive(a) => {
                c.state == ConvState::Active && c.agent.as_ref() == Some(a) && !c.offered
            }
        };
        if !holds {
            return Ok(Guarded::Refused);
        }
        if let Some(cid) = body.client_id()
            && let Some(&seq) = ids.get(cid)
        {
            return Ok(Guarded::Stored(Appended {
                seq,
                duplicate: true,
            }));
        }
        c.last_seq += 1;
        if let Some(cid) = body.client_id() {
            ids.insert(cid.to_owned(), c.last_seq);
        }
        if matches!(guard, Guard::AgentActive(_)) && matches!(body, EventBody::Message { .. }) {
            c.pending_since = None;
        }
        Ok(Guarded::Stored(Appended {
            seq: c.last_seq,
            duplicate: false,
        }))
    }

    async fn events(&self, _: &SiteId, _: &ConvId, _: Span) -> Result<Vec<Event>> {
        unused()
    }

    async fn enqueue(
        &self,
        _: &SiteId,
        conv: &ConvId,
        dept: &DeptId,
        at_head: bool,
        now: Millis,
        rules: &Rules,
    ) -> Result<bool> {
        let mut s = self.0.lock().unwrap();
        let Some((c, _)) = s.convs.get_mut(conv) else {
            return Ok(false);
        };
        if c.state == ConvState::Closed {
            return Ok(false);
        }
        c.department = dept.clone();
        c.state = ConvState::Queued;
        c.queued_at.get_or_insert(now);
        s.put(conv, dept, at_head, now, rules.priority_unit);
        Ok(true)
    }

    async fn move_queued(
        &self,
        site: &SiteId,
        conv: &ConvId,
        from: &DeptId,
        to: &DeptId,
        now: Millis,
        rules: &Rules,
    ) -> Result<bool> {
        let waiting = self
            .0
            .lock()
            .unwrap()
            .convs
            .get(conv)
            .is_some_and(|c| c.0.state == ConvState::Queued && &c.0.department == from);
        if !waiting {
            return Ok(false);
        }
        self.enqueue(site, conv, to, true, now, rules).await
    }

    async fn assign_batch(
        &self,
        _: &SiteId,
        dept: &DeptId,
        now: Millis,
        grace_ms: Millis,
        rules: &Rules,
        batch: usize,
    ) -> Result<Batch> {
        let mut s = self.0.lock().unwrap();
        // The whole queue, and every agent of the department who could take a chat or whom
        // a waiting chat prefers, connected or within the grace.
        let queue: Vec<Waiting> = s
            .queue(dept)
            .into_iter()
            .map(|(_, c, _)| {
                let conv = &s.convs[&c].0;
                Waiting {
                    conv: c.clone(),
                    since: conv.queued_at.unwrap_or(now),
                    needs: conv.needs.clone(),
                }
            })
            .collect();
        let preferred: Vec<&AgentId> = queue
            .iter()
            .filter_map(|w| w.needs.prefer.as_ref())
            .collect();
        let agents: Vec<Candidate> = s
            .agents
            .values()
            .map(|a| s.view(a))
            .filter(|a| a.departments.contains(dept) && a.present(now, grace_ms))
            .filter(|a| {
                (a.status == AgentStatus::Online && a.load < a.max_concurrent)
                    || preferred.contains(&&a.id)
            })
            .map(|a| Candidate {
                id: a.id.clone(),
                status: a.status,
                load: a.load,
                max: a.max_concurrent,
                idle_since: a.idle_since,
                present_until: a.present_until,
                skills: a.skills.clone(),
            })
            .collect();
        let snapshot = Snapshot {
            now,
            grace_ms,
            rules: *rules,
            queue,
            agents,
        };
        let mut out = Vec::new();
        for a in routing::decide(&snapshot, batch) {
            s.dequeue(&a.conv);
            s.take(&a.agent, &a.conv, now);
            let c = &mut s.convs.get_mut(&a.conv).expect("queued").0;
            c.state = ConvState::Active;
            c.agent = Some(a.agent.clone());
            if !rules.offer {
                c.first_assigned_at.get_or_insert(now);
            }
            c.pending_since = Some(now);
            c.offered = rules.offer;
            out.push((a.conv, a.agent, c.locale.clone()));
        }
        // It reads the whole queue: whether more could follow is the backends' own concern.
        Ok(Batch {
            assigned: out,
            more: false,
        })
    }

    async fn queue_position(
        &self,
        _: &SiteId,
        dept: &DeptId,
        conv: &ConvId,
    ) -> Result<Option<u32>> {
        let s = self.0.lock().unwrap();
        Ok(s.queue(dept)
            .iter()
            .position(|(_, c, _)| c == conv)
            .map(|i| i as u32 + 1))
    }

    async fn queue(&self, _: &SiteId, dept: &DeptId) -> Result<Vec<(ConvId, Millis)>> {
        let s = self.0.lock().unwrap();
        Ok(s.queue(dept).into_iter().map(|(_, c, t)| (c, t)).collect())
    }

    async fn close(
        &self,
        _: &SiteId,
        conv: &ConvId,
        reason: &str,
        now: Millis,
        _: Millis,
    ) -> Result<Option<Conversation>> {
        let mut s = self.0.lock().unwrap();
        let Some((c, _)) = s.convs.get_mut(conv) else {
            return Ok(None);
        };
        if c.state == ConvState::Closed {
            return Ok(None);
        }
        let before = c.clone();
        c.state = ConvState::Closed;
        c.closed_at = Some(now);
        c.close_reason = Some(reason.to_owned());
        c.pending_since = None;
        c.offered = false;
        s.dequeue(conv);
        if let Some(agent) = &before.agent
            && before.state == ConvState::Active
        {
            s.release(agent, conv);
        }
        Ok(Some(before))
    }

    async fn unassign(
        &self,
        _: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        dept: &DeptId,
        now: Millis,
        rules: &Rules,
        needs: Option<&Needs>,
    ) -> Result<bool> {
        let mut s = self.0.lock().unwrap();
        let Some((c, _)) = s.convs.get_mut(conv) else {
            return Ok(false);
        };
        if c.state != ConvState::Active || c.agent.as_ref() != Some(owner) {
            return Ok(false);
        }
        if let Some(needs) = needs {
            c.needs = needs.clone();
        }
        c.pending_since = None;
        c.offered = false;
        c.state = ConvState::Queued;
        c.agent = None;
        c.department = dept.clone();
        s.release(owner, conv);
        s.put(conv, dept, true, now, rules.priority_unit);
        Ok(true)
    }

    async fn accept(
        &self,
        _: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        now: Millis,
    ) -> Result<bool> {
        let mut s = self.0.lock().unwrap();
        let Some((c, _)) = s.convs.get_mut(conv) else {
            return Ok(false);
        };
        if c.state != ConvState::Active || c.agent.as_ref() != Some(owner) || !c.offered {
            return Ok(false);
        }
        c.first_assigned_at.get_or_insert(now);
        c.offered = false;
        c.pending_since = Some(now);
        Ok(true)
    }

    async fn pending(&self, _: &SiteId, before: Millis) -> Result<Vec<Conversation>> {
        let s = self.0.lock().unwrap();
        let mut out: Vec<Conversation> = s
            .convs
            .values()
            .map(|c| c.0.clone())
            .filter(|c| c.state == ConvState::Active && c.pending_since.is_some_and(|t| t < before))
            .collect();
        out.sort_by(|a, b| (a.pending_since, &a.id).cmp(&(b.pending_since, &b.id)));
        Ok(out)
    }

    async fn reassign(
        &self,
        _: &SiteId,
        conv: &ConvId,
        from: &AgentId,
        to: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> Result<Reassign> {
        let mut s = self.0.lock().unwrap();
        let owned = s
            .convs
            .get(conv)
            .is_some_and(|c| c.0.state == ConvState::Active && c.0.agent.as_ref() == Some(from));
        if !owned {
            return Ok(Reassign::NotOwner);
        }
        let target = s.agents.get(to).map(|a| s.view(a));
        let why = match target {
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
        s.release(from, conv);
        s.take(to, conv, now);
        let c = &mut s.convs.get_mut(conv).expect("owned").0;
        c.agent = Some(to.clone());
        c.pending_since = None;
        c.offered = false;
        Ok(Reassign::Done)
    }

    async fn set_status(&self, _: &SiteId, agent: &AgentId, status: AgentStatus) -> Result<()> {
        if let Some((a, _)) = self.0.lock().unwrap().agents.get_mut(agent) {
            a.status = status;
        }
        Ok(())
    }

    async fn set_limit(&self, _: &SiteId, agent: &AgentId, limit: u32) -> Result<()> {
        if let Some((a, _)) = self.0.lock().unwrap().agents.get_mut(agent) {
            a.max_concurrent = limit.min(a.cap);
        }
        Ok(())
    }

    async fn set_presence(
        &self,
        _: &SiteId,
        agent: &AgentId,
        node: &str,
        until: Millis,
    ) -> Result<()> {
        if let Some((_, nodes)) = self.0.lock().unwrap().agents.get_mut(agent) {
            nodes.insert(node.to_owned(), until);
        }
        Ok(())
    }

    async fn agent(&self, _: &SiteId, _: &AgentId) -> Result<Option<AgentState>> {
        unused()
    }

    async fn agents(&self, _: &SiteId) -> Result<Vec<AgentState>> {
        let s = self.0.lock().unwrap();
        Ok(s.agents.values().map(|a| s.view(a)).collect())
    }

    async fn set_visitor_presence(&self, _: &SiteId, _: &[VisitorId], _: Millis) -> Result<()> {
        unused()
    }
    async fn visitor_left(&self, _: &SiteId, _: &VisitorId) -> Result<()> {
        unused()
    }
    async fn live_visitors(&self, _: &SiteId, _: Millis) -> Result<Vec<VisitorId>> {
        unused()
    }
    async fn inactive(&self, _: &SiteId, _: Millis) -> Result<Vec<(ConvId, Millis)>> {
        unused()
    }
    async fn unticketed(&self, _: &SiteId) -> Result<Vec<ConvId>> {
        unused()
    }
    async fn mark_ticketed(&self, _: &SiteId, _: &ConvId) -> Result<()> {
        unused()
    }
    async fn mark_read(&self, _: &SiteId, _: &ConvId, _: bool, _: u64) -> Result<Option<u64>> {
        unused()
    }
    async fn publish(&self, _: &SiteId, _: &Envelope) -> Result<()> {
        unused()
    }
    async fn ready(&self) -> Result<bool> {
        Ok(true)
    }
    async fn sweep_closed(&self, _: &[SiteId], _: Millis) -> Result<()> {
        unused()
    }
    async fn count(&self, _: &SiteId, _: &[String], _: i64, _: Millis) -> Result<u64> {
        unused()
    }
    async fn forget_visitor(&self, _: &SiteId, _: &VisitorId, _: &[ConvId]) -> Result<()> {
        unused()
    }
}
