//! What several concerns read before they act: a conversation that exists, is open, or is the
//! asking agent's; an agent's display name; the site's agents (a short-lived snapshot for
//! on-duty checks and estimates, never for routing).

use std::sync::Arc;

use super::{AGENTS_CACHE, Engine, EngineError, Result};
use crate::directory::model::SiteConfig;
use crate::model::{
    AgentId, AgentRef, AgentState, AgentStatus, ConvId, ConvState, Conversation, DeptId, SiteId,
};
use crate::protocol::ErrorCode;

impl Engine {
    /// Agent states as last read (or read now, with `fresh`, or when none was). A snapshot
    /// older than `AGENTS_CACHE` is answered at once and read again in the background.
    pub(super) async fn agents_cached(
        &self,
        site: &SiteId,
        fresh: bool,
    ) -> Result<Arc<Vec<AgentState>>> {
        let cached = self
            .inner
            .agents_cache
            .get(site)
            .map(|e| (e.0, e.1.clone()));
        let stale = match cached {
            Some((at, agents)) if !fresh => {
                if at.elapsed() < AGENTS_CACHE {
                    return Ok(agents);
                }
                Some(agents)
            }
            _ => None,
        };
        let asked = std::time::Instant::now();
        let lock = self
            .inner
            .agents_refresh
            .entry(site.clone())
            .or_default()
            .clone();
        if let Some(agents) = stale {
            // Stale: read again behind the caller, who goes on with what it has (a refresh
            // reads every agent; the new chat that happened to ask made the slow tail of first
            // acknowledgements). One refresh per site at a time, ending with its read.
            if let Ok(turn) = lock.try_lock_owned() {
                let engine = self.clone();
                let site = site.clone();
                tokio::spawn(async move {
                    let _turn = turn;
                    if let Err(e) = engine.read_agents(&site).await {
                        tracing::warn!(cause = %e, site = %site, "agents not read again");
                    }
                });
            }
            return Ok(agents);
        }
        let _turn = lock.lock().await;
        // A snapshot read after this call began is as fresh as one it would read itself.
        if let Some(e) = self.inner.agents_cache.get(site)
            && e.0 >= asked
        {
            return Ok(e.1.clone());
        }
        self.read_agents(site).await
    }

    /// Reads the site's agents into the cache, with the gauges of their statuses.
    async fn read_agents(&self, site: &SiteId) -> Result<Arc<Vec<AgentState>>> {
        let reading = std::time::Instant::now();
        let agents = Arc::new(self.inner.store.agents(site).await?);
        self.agent_figures(site, &agents);
        self.inner
            .agents_cache
            .insert(site.clone(), (reading, agents.clone()));
        Ok(agents)
    }

    /// The site-wide agent gauges: by status, counting an agent who is not present (every
    /// console closed past the grace) as offline whatever they chose; and available per
    /// department (present, online, with a free slot).
    fn agent_figures(&self, site: &SiteId, agents: &[AgentState]) {
        use crate::observe::{AGENTS, AGENTS_AVAILABLE};
        let figures = &self.inner.site_figures;
        let (now, grace) = (self.now(), self.grace_ms());
        let shown = |a: &AgentState| {
            if a.present(now, grace) {
                a.status
            } else {
                AgentStatus::Offline
            }
        };
        // One pass over the agents: read on the routing path, a site may have thousands.
        let mut by_status = [0usize; 3];
        let mut available: std::collections::HashMap<&DeptId, usize> =
            std::collections::HashMap::new();
        for a in agents {
            let status = shown(a);
            by_status[status as usize] += 1;
            if status == AgentStatus::Online && a.load < a.max_concurrent {
                for d in &a.departments {
                    *available.entry(d).or_default() += 1;
                }
            }
        }
        for status in [AgentStatus::Online, AgentStatus::Away, AgentStatus::Offline] {
            figures.set(
                AGENTS,
                &[("site", &site.0), ("status", status.as_str())],
                by_status[status as usize] as f64,
            );
        }
        let config = self.config();
        let Some(site_config) = config.site(site) else {
            return;
        };
        for dept in &site_config.departments {
            let n = available.get(&dept.id).copied().unwrap_or(0);
            figures.set(
                AGENTS_AVAILABLE,
                &[("site", &site.0), ("department", &dept.id.0)],
                n as f64,
            );
        }
    }

    pub(super) fn agent_ref(&self, site: &SiteConfig, agent: &AgentId) -> AgentRef {
        AgentRef {
            id: agent.clone(),
            name: site
                .agent(agent)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| agent.0.clone()),
        }
    }

    /// The conversation, or `not_found`.
    pub(super) async fn existing(&self, site: &SiteId, conv: &ConvId) -> Result<Conversation> {
        self.inner
            .store
            .conversation(site, conv)
            .await?
            .ok_or_else(|| EngineError::new(ErrorCode::NotFound, "no such conversation"))
    }

    /// The conversation if it is not closed: `not_found` or `conversation_closed` otherwise.
    pub(super) async fn open_conversation(
        &self,
        site: &SiteId,
        conv: &ConvId,
    ) -> Result<Conversation> {
        let c = self.existing(site, conv).await?;
        if c.state == ConvState::Closed {
            return Err(EngineError::new(
                ErrorCode::ConversationClosed,
                "the conversation is closed",
            ));
        }
        Ok(c)
    }

    /// The open conversation, checked to be the agent's.
    pub(super) async fn owned(
        &self,
        site: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
    ) -> Result<Conversation> {
        let c = self.open_conversation(site, conv).await?;
        if c.state != ConvState::Active || c.agent.as_ref() != Some(agent) {
            return Err(EngineError::not_owner());
        }
        if c.offered {
            return Err(EngineError::new(
                crate::protocol::ErrorCode::NotAccepted,
                "the chat is offered to you: accept it first",
            ));
        }
        Ok(c)
    }
}
