//! Agents: consoles connecting and leaving, status and limit, and what they write in their chats.

use super::presence::PRESENCE_TTL_MS;
use super::{Ack, Engine, EngineError, Result};
use crate::envelope::Envelope;
use crate::model::{
    AgentId, AgentState, AgentStatus, AuthorKind, ConvId, Conversation, EventBody, SiteId,
    VisitorId,
};
use crate::protocol::{ClientId, ErrorCode, MessageText};
use crate::state::{Guard, Guarded};

impl Engine {
    /// An agent console connected on this node.
    pub async fn agent_connected(
        &self,
        site: &SiteId,
        agent: &AgentId,
        session: crate::hub::SessionId,
        status: Option<AgentStatus>,
    ) -> Result<AgentState> {
        self.inner.hub.join_agent(site, agent, session);
        let store = &self.inner.store;
        // The directory may list an agent the backend does not know yet: installed a moment
        // ago on this node (registration follows the install), or lost with Redis's data
        // before the node noticed. Register from the directory rather than refuse.
        if store.agent(site, agent).await?.is_none() {
            let s = self.site(site)?;
            if let Some(a) = s.agent(agent) {
                self.register_listed(&s, a).await?;
            }
        }
        store
            .set_presence(site, agent, &self.inner.node, self.now() + PRESENCE_TTL_MS)
            .await?;
        if let Some(status) = status {
            store.set_status(site, agent, status).await?;
        }
        let state = self.agent_state(site, agent).await?;
        self.agent_pushed(site, agent).await;
        self.drain_for(site, &state.departments).await?;
        Ok(state)
    }

    /// An agent console went away; with the last one on this node, grace starts.
    pub async fn agent_disconnected(
        &self,
        site: &SiteId,
        agent: &AgentId,
        session: crate::hub::SessionId,
    ) {
        let left = self.inner.hub.leave_agent(site, agent, session);
        if left == 0
            && let Err(e) = self
                .inner
                .store
                .set_presence(site, agent, &self.inner.node, self.now())
                .await
        {
            // Presence then lapses on its own after PRESENCE_TTL_MS.
            tracing::warn!(cause = %e, agent = %agent, "could not record disconnect");
        }
    }

    pub async fn agent_state(&self, site: &SiteId, agent: &AgentId) -> Result<AgentState> {
        self.inner
            .store
            .agent(site, agent)
            .await?
            .ok_or_else(|| EngineError::new(ErrorCode::UnknownAgent, format!("no agent {agent}")))
    }

    pub async fn set_status(
        &self,
        site: &SiteId,
        agent: &AgentId,
        status: AgentStatus,
    ) -> Result<()> {
        self.inner.store.set_status(site, agent, status).await?;
        self.agent_changed(site, agent).await
    }

    pub async fn set_limit(&self, site: &SiteId, agent: &AgentId, limit: u32) -> Result<()> {
        let cap = self
            .site(site)?
            .agent(agent)
            .map(|a| a.max_concurrent)
            .unwrap_or(0);
        if limit == 0 || limit > cap {
            return Err(EngineError::new(
                ErrorCode::LimitOutOfRange,
                format!("max_concurrent must be 1 to {cap}"),
            ));
        }
        self.inner.store.set_limit(site, agent, limit).await?;
        self.agent_changed(site, agent).await
    }

    /// Tells the agent's consoles and drains the queues the agent can now serve.
    pub(super) async fn agent_changed(&self, site: &SiteId, agent: &AgentId) -> Result<()> {
        // This node's snapshot is out of date now: the next visitor reads the change.
        self.inner.agents_cache.remove(site);
        self.agent_pushed(site, agent).await;
        let state = self.agent_state(site, agent).await?;
        self.drain_for(site, &state.departments).await
    }

    pub async fn agent_message(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        client_id: ClientId,
        text: MessageText,
    ) -> Result<Ack> {
        let site = self.site(site_id)?;
        let site = &*site;
        let who = self.agent_ref(site, agent);
        let body = EventBody::Message {
            at: self.now(),
            author: AuthorKind::Agent,
            author_id: Some(who.id.0),
            author_name: Some(who.name),
            text: text.into_inner(),
            client_id: Some(client_id.as_str().to_owned()),
            attachment: None,
        };
        self.agent_append(site_id, agent, conv, body).await
    }

    /// An agent opens a conversation with a visitor who is browsing the site (proactive chat):
    /// assigned to the agent at once, within their limit, and only if the visitor has no open
    /// conversation. The visitor's widget gets the introduction and the message.
    pub async fn agent_start_chat(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        visitor: &VisitorId,
        client_id: ClientId,
        text: MessageText,
    ) -> Result<Ack> {
        let site = self.site(site_id)?;
        let site = &*site;
        let store = &self.inner.store;
        let profile = (self.inner.tickets)
            .visitor(site_id, visitor)
            .await?
            .ok_or_else(|| EngineError::new(ErrorCode::NotFound, "no such visitor"))?;
        let dept = site
            .agent(agent)
            .and_then(|a| a.departments.first().cloned())
            .unwrap_or_else(|| site.default_department().clone());
        let now = self.now();
        let conv = Conversation::new(visitor.clone(), dept, profile.locale.clone(), now);
        match store
            .start_conversation(site_id, &conv, agent, now, self.grace_ms())
            .await?
        {
            crate::state::Start::Done => {}
            crate::state::Start::VisitorBusy => {
                return Err(EngineError::new(
                    ErrorCode::VisitorBusy,
                    "the visitor is already in a conversation",
                ));
            }
            crate::state::Start::AgentFull => {
                return Err(EngineError::new(
                    ErrorCode::TargetUnavailable,
                    "you are offline or at your limit",
                ));
            }
        }
        self.visitor_changed(site_id, visitor, true).await;
        let who = self.agent_ref(site, agent);
        self.announce_agent(site, &conv.id, &who, &conv.locale)
            .await?;
        let ack = self
            .agent_message(site_id, agent, &conv.id, client_id, text)
            .await?;
        self.agent_pushed(site_id, agent).await;
        Ok(ack)
    }

    /// A private note: stored and shown to agents, never sent to the visitor.
    pub async fn agent_note(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        client_id: ClientId,
        text: MessageText,
    ) -> Result<Ack> {
        let site = self.site(site_id)?;
        let site = &*site;
        let body = EventBody::Note {
            at: self.now(),
            agent: self.agent_ref(site, agent),
            text: text.into_inner(),
            client_id: Some(client_id.as_str().to_owned()),
        };
        self.agent_append(site_id, agent, conv, body).await
    }

    /// Stores an agent's event in their own active chat.
    pub(super) async fn agent_append(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        body: EventBody,
    ) -> Result<Ack> {
        // Ownership is checked inside the append: one round trip per message.
        match self
            .inner
            .store
            .append_guarded(site_id, conv, &body, &Guard::AgentActive(agent.clone()))
            .await?
        {
            Guarded::Stored(appended) => {
                metrics::counter!(crate::observe::MESSAGES, "author" => "agent").increment(1);
                Ok(Ack {
                    conv: conv.clone(),
                    seq: appended.seq,
                })
            }
            Guarded::Refused | Guarded::Limited => {
                // Not stored: find out why, for a precise error.
                self.owned(site_id, agent, conv).await?;
                Err(EngineError::not_owner())
            }
        }
    }

    /// The agent has seen their chat up to `seq`: stored, and the visitor told.
    pub async fn agent_read(
        &self,
        site: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        seq: u64,
    ) -> Result<()> {
        let c = self.owned(site, agent, conv).await?;
        self.mark_read(site, conv, &c.visitor, true, seq).await
    }

    pub async fn agent_typing(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        on: bool,
    ) -> Result<()> {
        let site = self.site(site_id)?;
        let site = &*site;
        let c = self.owned(site_id, agent, conv).await?;
        self.publish(
            site_id,
            Envelope::Typing {
                site: site_id.clone(),
                conv: conv.clone(),
                visitor: c.visitor,
                agent: true,
                on,
                name: Some(self.agent_ref(site, agent).name),
                draft: None,
            },
        )
        .await;
        Ok(())
    }
}
