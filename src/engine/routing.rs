//! Queues and assignment: drains on every capacity change, positions and estimates, the
//! introduction of an assigned agent, and chats given back after an agent's grace period.

use super::effects::Notice;
use super::{Engine, Result};
use crate::directory::model::SiteConfig;
use crate::model::{
    AgentId, AgentRef, AgentState, AgentStatus, AuthorKind, ConvId, ConvState, Conversation,
    DeptId, EventBody, Millis, NoticeKind, SiteId,
};
use crate::protocol::{QueueStat, secs_since};
use crate::push::{Audience, Note};
use crate::routing::estimate::{Learned, Slots, WaitEstimate};
use crate::routing::policy::{self, Policy};
use crate::templates::{self, Template, Vars};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One department's drains on this node: one pass at a time (`running`, fair), calls counted
/// (`requested`), and the last call a finished pass began after (`done`).
#[derive(Default)]
pub(super) struct DrainGate {
    running: tokio::sync::Mutex<()>,
    requested: AtomicU64,
    done: AtomicU64,
}

/// How long what a department learned for its estimates is used before it is read again.
const LEARNED_FOR_MS: Millis = 10_000;
/// How many recent chats it is learned from.
const LEARN_FROM: u32 = 500;

impl Engine {
    /// How long a queued visitor at `position` is likely to wait.
    pub(super) async fn estimate(
        &self,
        agents: &[AgentState],
        site: &SiteId,
        dept: &DeptId,
        position: u32,
        now: Millis,
    ) -> WaitEstimate {
        let learned = self.learned(site, dept).await;
        learned.estimate(position, &self.slots(&learned, agents, dept, now))
    }

    /// What the department's recent tickets teach the estimate (handling times, and its own
    /// past errors), read again every `LEARNED_FOR_MS` on the engine's clock. While one
    /// caller reads, the others use what was learned before; a failed read keeps it.
    pub(super) async fn learned(&self, site: &SiteId, dept: &DeptId) -> Arc<Learned> {
        let now = self.now();
        let key = (site.clone(), dept.clone());
        let default_handling = self.config().timing.average_handle_secs;
        let before = match self.inner.learned.get_mut(&key) {
            Some(e) if now.saturating_sub(e.0) < LEARNED_FOR_MS => return e.1.clone(),
            Some(mut e) => {
                e.0 = now;
                e.1.clone()
            }
            None => {
                let first = Arc::new(Learned::from_samples(&[], &[], default_handling));
                self.inner.learned.insert(key.clone(), (now, first.clone()));
                first
            }
        };
        match self
            .inner
            .tickets
            .wait_samples(site, dept, LEARN_FROM)
            .await
        {
            Ok(samples) => {
                let handling: Vec<f64> = samples.iter().filter_map(|s| s.handling_secs).collect();
                let waits: Vec<(f64, u32)> = samples
                    .iter()
                    .filter_map(|s| Some((s.queue_wait_secs?, s.estimate?.handlings_milli)))
                    .collect();
                let learned = Arc::new(Learned::from_samples(&handling, &waits, default_handling));
                self.inner.learned.insert(key, (now, learned.clone()));
                learned
            }
            Err(e) => {
                tracing::warn!(cause = %e, site = %site, department = %dept, "could not read recent chats for the wait estimate");
                before
            }
        }
    }

    /// The slots of the department's online, present agents, and the frees to expect from them.
    fn slots(&self, learned: &Learned, agents: &[AgentState], dept: &DeptId, now: Millis) -> Slots {
        let grace = self.grace_ms();
        learned.slots(
            agents.iter().filter(|a| {
                a.departments.contains(dept)
                    && a.status == AgentStatus::Online
                    && a.present(now, grace)
            }),
            now,
        )
    }

    /// Stores the assignment event that introduces the agent to the visitor by full name.
    pub(super) async fn announce_agent(
        &self,
        site: &SiteConfig,
        conv: &ConvId,
        agent: &AgentRef,
        locale: &str,
    ) -> Result<()> {
        let text = templates::render(
            site,
            None,
            locale,
            Template::Connected,
            &Vars {
                agent: Some(&agent.name),
                ..Vars::default()
            },
        );
        self.inner
            .store
            .append(
                &site.id,
                conv,
                &EventBody::Assigned {
                    at: self.now(),
                    agent: agent.clone(),
                    text,
                },
            )
            .await?;
        self.emit(
            site,
            "conversation.assigned",
            serde_json::json!({"conversation": conv, "agent": agent}),
        )
        .await;
        self.inner.push.notify(
            &site.id,
            Audience::Agents(vec![agent.id.clone()]),
            Note {
                kind: "assigned",
                conversation: Some(conv.clone()),
                ..Note::default()
            },
        );
        Ok(())
    }

    /// Stores an offer: the agent's consoles take the chat from it, and their browsers are
    /// told.
    async fn offer(&self, site: &SiteConfig, conv: &ConvId, agent: &AgentRef) -> Result<()> {
        self.inner
            .store
            .append(
                &site.id,
                conv,
                &EventBody::Offered {
                    at: self.now(),
                    agent: agent.clone(),
                },
            )
            .await?;
        self.inner.push.notify(
            &site.id,
            Audience::Agents(vec![agent.id.clone()]),
            Note {
                kind: "offered",
                conversation: Some(conv.clone()),
                ..Note::default()
            },
        );
        Ok(())
    }

    /// Assigns from a department queue while there are both waiting chats and free agents;
    /// returns once a pass that began after the call has decided. One pass per department at
    /// a time on this node, and one pass serves every call made before it began: a thousand
    /// agents coming online at once are two passes, not a thousand deciding on the same queue
    /// head and refusing each other's decisions. Only the deciding is one at a time: a pass
    /// finishes its introductions and tells consoles after the next may have begun.
    pub async fn drain(&self, site_id: &SiteId, dept: &DeptId) -> Result<()> {
        let gate = self
            .inner
            .drains
            .entry((site_id.clone(), dept.clone()))
            .or_default()
            .clone();
        let mine = gate.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let pass = {
            let _turn = gate.running.lock().await;
            if gate.done.load(Ordering::Acquire) >= mine {
                // A pass that began after this call has decided meanwhile.
                return Ok(());
            }
            let upto = gate.requested.load(Ordering::Acquire);
            let pass = self.decide_pass(site_id, dept).await?;
            gate.done.fetch_max(upto, Ordering::AcqRel);
            pass
        };
        self.finish_pass(site_id, dept, pass).await
    }

    /// The deciding part of one `drain` pass: batches (one decision each) while a batch may
    /// leave more to assign, each batch's introductions stored by a task of its own so they
    /// progress while the next batch is decided.
    async fn decide_pass(&self, site_id: &SiteId, dept: &DeptId) -> Result<Pass> {
        // A drain of thousands is not one round trip after another, nor unbounded.
        const IN_FLIGHT: usize = 4;
        let batch_size = self.inner.store.decision_batch();
        let site = self.site(site_id)?;
        let rules = policy::rules(&site, dept);
        let mut pass = Pass::default();
        loop {
            let decided = self
                .inner
                .store
                .assign_batch(
                    site_id,
                    dept,
                    self.now(),
                    self.grace_ms(),
                    &rules,
                    batch_size,
                )
                .await;
            let batch = match decided {
                Ok(batch) => batch,
                Err(e) => {
                    keep_first(&mut pass.failed, Ok(Err(e.into())));
                    break;
                }
            };
            if batch.assigned.is_empty() {
                break;
            }
            metrics::counter!(crate::observe::ASSIGNMENTS).increment(batch.assigned.len() as u64);
            for (conv, agent, _) in &batch.assigned {
                tracing::info!(site = %site_id, conversation = %conv, agent = %agent, department = %dept, "conversation assigned");
                pass.assigned.insert(agent.clone());
            }
            let (engine, id) = (self.clone(), site_id.clone());
            let offer = rules.offer;
            let assigned = batch.assigned;
            pass.introducing
                .spawn(async move { engine.introduce(&id, assigned, offer).await });
            while pass.introducing.len() >= IN_FLIGHT {
                if let Some(r) = pass.introducing.join_next().await {
                    keep_first(&mut pass.failed, r);
                }
            }
            // A batch that was not full and read the whole queue weighed every waiting chat
            // against every agent who could take it: another would find nothing.
            if !batch.more || pass.failed.is_some() {
                break;
            }
        }
        Ok(pass)
    }

    /// The rest of a `drain` pass, after its deciding: every introduction stored, then the
    /// department's consoles and the agents given chats told. The first failure, returned once
    /// every chat already assigned is introduced.
    async fn finish_pass(&self, site_id: &SiteId, dept: &DeptId, mut pass: Pass) -> Result<()> {
        while let Some(r) = pass.introducing.join_next().await {
            keep_first(&mut pass.failed, r);
        }
        if !pass.assigned.is_empty() {
            self.queue_changed(site_id, dept).await;
            for agent in &pass.assigned {
                self.agent_pushed(site_id, agent).await;
            }
        }
        pass.failed.map_or(Ok(()), Err)
    }

    /// Stores the introductions of one batch of assignments, together; or, when they are
    /// `offer`s, the offers (the visitor is introduced once the agent accepts).
    async fn introduce(
        &self,
        site_id: &SiteId,
        batch: Vec<(ConvId, AgentId, String)>,
        offer: bool,
    ) -> Result<()> {
        let site = self.site(site_id)?;
        let site = &*site;
        let intros = batch.iter().map(|(conv, agent, locale)| {
            let who = self.agent_ref(site, agent);
            async move {
                if offer {
                    self.offer(site, conv, &who).await
                } else {
                    self.announce_agent(site, conv, &who, locale).await
                }
            }
        });
        for r in futures_util::future::join_all(intros).await {
            r?;
        }
        Ok(())
    }

    pub(super) async fn drain_for(&self, site: &SiteId, depts: &[DeptId]) -> Result<()> {
        for d in depts {
            self.drain(site, d).await?;
        }
        Ok(())
    }

    /// Gives back the chats of agents gone past their grace period: head of the queue, visitor told.
    pub(super) async fn expire_grace(&self, site: &SiteConfig, now: Millis) -> Result<()> {
        for agent in self.inner.store.agents(&site.id).await? {
            if agent.present(now, self.grace_ms()) || agent.chats.is_empty() {
                continue;
            }
            self.requeue_chats(site, &agent, "agent_disconnected", now)
                .await?;
        }
        Ok(())
    }

    /// Puts every chat of the agent back at the head of its queue, tells the visitors, and
    /// drains. Conditional on the owner: when several nodes do it, each chat moves once.
    pub(super) async fn requeue_chats(
        &self,
        site: &SiteConfig,
        agent: &AgentState,
        reason: &str,
        now: Millis,
    ) -> Result<()> {
        let store = &self.inner.store;
        let who = AgentRef {
            id: agent.id.clone(),
            name: agent.name.clone(),
        };
        for conv_id in &agent.chats {
            let Some(conv) = store.conversation(&site.id, conv_id).await? else {
                continue;
            };
            if !store
                .unassign(
                    &site.id,
                    conv_id,
                    &agent.id,
                    &conv.department,
                    now,
                    &policy::rules(site, &conv.department),
                    None,
                )
                .await?
            {
                continue;
            }
            tracing::info!(agent = %agent.id, conversation = %conv_id, reason, "chat requeued");
            store
                .append(
                    &site.id,
                    conv_id,
                    &EventBody::Requeued {
                        at: now,
                        agent: who.clone(),
                        reason: reason.into(),
                        note: None,
                    },
                )
                .await?;
            self.notice(
                site,
                &conv.department,
                conv_id,
                &conv.locale,
                Notice::plain(NoticeKind::Requeued, Template::Requeued, Some(1)),
            )
            .await?;
            self.inner.hub.note_position(conv_id, 1);
            self.queue_changed(&site.id, &conv.department).await;
            self.drain(&site.id, &conv.department).await?;
        }
        self.agent_pushed(&site.id, &agent.id).await;
        Ok(())
    }

    /// Moves on every chat that has waited its department's `max_wait_secs`: to the first
    /// department of the overflow chain that is open and has someone on duty, or, at the end of
    /// the chain, to the offline form (what the visitor wrote becomes a ticket). Each move is
    /// conditional on the chat still waiting where it was: several nodes sweeping move it once.
    pub(super) async fn overflow_waiting(&self, site: &SiteConfig, now: Millis) -> Result<()> {
        for dept in &site.departments {
            let policy = Policy::resolve(site, &dept.id);
            let (max_wait, sla) = (policy.max_wait_ms(), policy.sla_wait());
            if max_wait.is_none() && sla.is_none() {
                continue;
            }
            let queue = self.inner.store.queue(&site.id, &dept.id).await?;
            let prefix = format!("sla:wait:{}:{}:", site.id, dept.id);
            let waiting: std::collections::HashSet<&ConvId> =
                queue.iter().map(|(c, _)| c).collect();
            // Keys of chats that left this queue go: the set stays as large as the queues.
            self.inner.sla_told.retain(|k| {
                !k.starts_with(&prefix)
                    || k[prefix.len()..]
                        .split(':')
                        .next()
                        .is_some_and(|c| waiting.contains(&ConvId(c.to_owned())))
            });
            for (conv, since) in &queue {
                let (conv, since) = (conv.clone(), *since);
                let waited = now.saturating_sub(since);
                if let Some((target, share)) = sla
                    && waited as f64 >= target as f64 * share
                {
                    let breached = waited >= target;
                    let reached = Reached {
                        target: "wait",
                        since,
                        elapsed: waited,
                        of: target,
                        told: format!("{prefix}{conv}:{since}:{breached}"),
                    };
                    self.sla_reached(site, &dept.id, &conv, reached).await?;
                }
                if max_wait.is_some_and(|m| waited >= m) {
                    self.overflow(site, &dept.id, &conv, now, "max_wait")
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// A chat neared (or passed) one of its department's targets: stored once per target and
    /// start (the event's client id names them: the chat's time in this queue, or its first
    /// message), and the node that stored it tells the site's supervisors and the webhooks.
    /// What this node stored or found stored is remembered (`Reached::told`), so later sweeps
    /// do not ask the store again.
    pub(super) async fn sla_reached(
        &self,
        site: &SiteConfig,
        dept: &DeptId,
        conv: &ConvId,
        r: Reached,
    ) -> Result<()> {
        if self.inner.sla_told.contains(&r.told) {
            return Ok(());
        }
        let (since, waited, target) = (r.since, r.elapsed, r.of);
        let breached = waited >= target;
        let warning = crate::protocol::SlaWarning {
            conversation: conv.clone(),
            department: dept.clone(),
            target: r.target.into(),
            target_secs: u32::try_from(target / 1000).unwrap_or(u32::MAX),
            elapsed_secs: u32::try_from(waited / 1000).unwrap_or(u32::MAX),
            breached,
        };
        let body = EventBody::Sla {
            at: self.now(),
            department: dept.clone(),
            target: warning.target.clone(),
            target_secs: warning.target_secs,
            elapsed_secs: warning.elapsed_secs,
            breached,
            client_id: format!("sla:{}:{dept}:{since}:{breached}", r.target),
        };
        let stored = self.inner.store.append(&site.id, conv, &body).await?;
        self.inner.sla_told.insert(r.told.clone());
        if stored.duplicate {
            return Ok(());
        }
        if breached {
            metrics::counter!(crate::observe::SLA_BREACHES, "site" => site.id.0.clone(), "department" => dept.0.clone(), "target" => r.target).increment(1);
        }
        tracing::info!(site = %site.id, conversation = %conv, department = %dept, breached, target = r.target, "service level: target near or passed");
        let event = if breached {
            "sla.breached"
        } else {
            "sla.warning"
        };
        self.emit(site, event, serde_json::json!(warning)).await;
        let envelope = crate::envelope::Envelope::Sla {
            site: site.id.clone(),
            warning,
        };
        if let Err(e) = self.inner.store.publish(&site.id, &envelope).await {
            tracing::warn!(cause = %e, "could not tell supervisors of a service level");
        }
        Ok(())
    }

    /// One chat past its department's longest wait (`max_wait`), or tried with as many
    /// agents as it may be (`max_tries`), moved on.
    pub(super) async fn overflow(
        &self,
        site: &SiteConfig,
        from: &DeptId,
        conv_id: &ConvId,
        now: Millis,
        reason: &'static str,
    ) -> Result<()> {
        let store = &self.inner.store;
        let Some(conv) = store.conversation(&site.id, conv_id).await? else {
            return Ok(());
        };
        // The first department along the chain that can answer now.
        let mut next = Policy::resolve(site, from).overflow_to(from).cloned();
        let mut hops = 0;
        while let Some(to) = next.clone() {
            let (_, staffed) = self.staffed(&site.id, &to).await?;
            if staffed && site.department_open(&to, now) {
                break;
            }
            hops += 1;
            next = Policy::resolve(site, &to)
                .overflow_to(&to)
                .cloned()
                .filter(|_| hops < site.departments.len());
        }
        let Some(to) = next else {
            if conv.state != ConvState::Queued || &conv.department != from {
                return Ok(());
            }
            tracing::info!(site = %site.id, conversation = %conv_id, department = %from, reason, "end of the overflow chain: offline form");
            self.notice(
                site,
                from,
                conv_id,
                &conv.locale,
                Notice::plain(NoticeKind::Offline, Template::Offline, None),
            )
            .await?;
            match self
                .close_conversation(site, conv_id, AuthorKind::System, reason)
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == crate::protocol::ErrorCode::ConversationClosed => {}
                Err(e) => return Err(e),
            }
            metrics::counter!(crate::observe::OVERFLOWS, "to" => "offline").increment(1);
            return Ok(());
        };
        let rules = policy::rules(site, &to);
        if !store
            .move_queued(&site.id, conv_id, from, &to, now, &rules)
            .await?
        {
            return Ok(());
        }
        tracing::info!(site = %site.id, conversation = %conv_id, from = %from, to = %to, reason, "overflowed");
        metrics::counter!(crate::observe::OVERFLOWS, "to" => "department").increment(1);
        store
            .append(
                &site.id,
                conv_id,
                &EventBody::Transferred {
                    at: now,
                    from: None,
                    to_agent: None,
                    to_department: Some(to.clone()),
                    reason: reason.into(),
                    note: None,
                },
            )
            .await?;
        let name = localized_department(site, &to, &conv.locale);
        self.notice(site, &to, conv_id, &conv.locale, Notice::overflowed(&name))
            .await?;
        self.emit(
            site,
            "conversation.overflowed",
            serde_json::json!({"conversation": conv_id, "from": from, "to": to}),
        )
        .await;
        self.queue_changed(&site.id, from).await;
        self.queue_changed(&site.id, &to).await;
        self.drain(&site.id, &to).await?;
        // Still waiting: where in the new line, and how long.
        if let Some(position) = store.queue_position(&site.id, &to, conv_id).await? {
            let agents = self.agents_cached(&site.id, false).await?;
            let estimate = self.estimate(&agents, &site.id, &to, position, now).await;
            self.inner.hub.note_position(conv_id, position);
            self.notice(
                site,
                &to,
                conv_id,
                &conv.locale,
                Notice::queued(position, estimate),
            )
            .await?;
        }
        Ok(())
    }

    /// Statistics of one department queue.
    pub async fn queue_stat(
        &self,
        site: &SiteId,
        dept: &DeptId,
    ) -> Result<(QueueStat, Vec<(ConvId, Millis)>)> {
        let queue = self.inner.store.queue(site, dept).await?;
        let now = self.now();
        let stat = QueueStat {
            department: dept.clone(),
            size: queue.len() as u32,
            oldest_wait_secs: queue
                .iter()
                .map(|(_, t)| secs_since(*t, now))
                .max()
                .unwrap_or(0),
        };
        Ok((stat, queue))
    }

    /// A queued conversation's position and estimate, if it is queued.
    pub async fn position(
        &self,
        site: &SiteId,
        conv: &Conversation,
    ) -> Result<Option<(u32, WaitEstimate)>> {
        let Some(position) = self
            .inner
            .store
            .queue_position(site, &conv.department, &conv.id)
            .await?
        else {
            return Ok(None);
        };
        // The session is about to say it: later refreshes only send changes.
        self.inner.hub.note_position(&conv.id, position);
        let agents = self.agents_cached(site, false).await?;
        let estimate = self
            .estimate(&agents, site, &conv.department, position, self.now())
            .await;
        Ok(Some((position, estimate)))
    }

    /// Sends fresh positions to local queued visitors and queue statistics to local agents.
    pub(super) async fn refresh_queue(&self, site_id: &SiteId, dept: &DeptId) -> Result<()> {
        let (stat, queue) = self.queue_stat(site_id, dept).await?;
        let labels = [
            ("site", site_id.0.as_str()),
            ("department", dept.0.as_str()),
        ];
        let figures = &self.inner.site_figures;
        figures.set(crate::observe::QUEUE_SIZE, &labels, f64::from(stat.size));
        figures.set(
            crate::observe::QUEUE_OLDEST,
            &labels,
            stat.oldest_wait_secs as f64,
        );
        let hub = &self.inner.hub;
        if queue.iter().any(|(c, _)| hub.has_followers(c)) {
            let agents = self.agents_cached(site_id, false).await?;
            // Once per refresh, not per visitor: the agents do not change in between.
            let learned = self.learned(site_id, dept).await;
            let slots = self.slots(&learned, &agents, dept, self.now());
            for (i, (conv, _)) in queue.iter().enumerate() {
                if hub.has_followers(conv) {
                    let position = i as u32 + 1;
                    hub.offer_position(conv, position, learned.estimate_quick(position, &slots));
                }
            }
        }
        hub.broadcast_queue(site_id, stat);
        Ok(())
    }
}

/// A service-level target a chat reached: which (`wait`, `first_response`), since when it
/// counts, how long it has run and the target (ms).
pub(super) struct Reached {
    pub target: &'static str,
    pub since: Millis,
    pub elapsed: Millis,
    pub of: Millis,
    /// Its key in the node's memory of what was told (`Inner::sla_told`): the sweep that
    /// looks at this target drops keys of chats it no longer sees.
    pub told: String,
}

/// A department's name in a visitor's language: its translation, its name, or its id.
fn localized_department(site: &SiteConfig, dept: &DeptId, locale: &str) -> String {
    let lang = crate::templates::language(locale);
    site.department(dept)
        .and_then(|d| d.names.get(&lang).or(d.name.as_ref()).cloned())
        .unwrap_or_else(|| dept.0.clone())
}

/// One `drain` pass between its deciding and its end.
#[derive(Default)]
struct Pass {
    /// Batches whose introductions are being stored.
    introducing: tokio::task::JoinSet<Result<()>>,
    /// The agents given chats.
    assigned: std::collections::BTreeSet<AgentId>,
    /// The first failure.
    failed: Option<super::EngineError>,
}

/// Keeps the first failure of a drain's introductions (a task that did not finish counts as
/// the backend failing).
fn keep_first(
    failed: &mut Option<super::EngineError>,
    r: std::result::Result<Result<()>, tokio::task::JoinError>,
) {
    let e = match r {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(e) => {
            tracing::error!(cause = %e, "an introduction task failed");
            super::EngineError::unavailable()
        }
    };
    failed.get_or_insert(e);
}
