//! What a socket session asks of its node: a place in the hub, the conversations it follows,
//! pages of a transcript, and an agent's chat as the console shows it. Sessions reach the hub
//! and the store only through these.

use tokio::sync::mpsc;

use super::*;
use crate::hub::{Push, Registration, Role, SessionId};
use crate::model::Event;
use crate::state::Span;

/// An agent's chat as a console opens it: the conversation, a page of its transcript, the
/// visitor.
pub struct AgentChat {
    pub conversation: Conversation,
    pub events: Vec<Event>,
    pub visitor: VisitorProfile,
}

impl Engine {
    /// A new session on this node, with the bounded queue the hub fills for it.
    pub fn register(&self, role: Role) -> (Registration, mpsc::Receiver<Push>) {
        self.inner.hub.register(role)
    }

    /// The session gets the conversation's events from now on.
    pub fn follow(&self, conv: &ConvId, session: SessionId) {
        self.inner.hub.follow(conv, session);
    }

    pub fn unfollow(&self, conv: &ConvId, session: SessionId) {
        self.inner.hub.unfollow(conv, session);
    }

    /// The session gets (or stops getting) the site's live-visitor changes.
    pub fn watch_visitors(&self, site: &SiteId, session: SessionId, on: bool) {
        self.inner.hub.watch_visitors(site, session, on);
    }

    /// Stored events of a conversation inside `span`.
    pub async fn transcript(&self, site: &SiteId, conv: &ConvId, span: Span) -> Result<Vec<Event>> {
        Ok(self.inner.store.events(site, conv, span).await?)
    }

    /// The agent's chat with the events after `after` (at most `limit`, the latest), or None
    /// when it is not (or no longer) the agent's.
    pub async fn agent_chat(
        &self,
        site: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        after: u64,
        limit: usize,
    ) -> Result<Option<AgentChat>> {
        let store = &self.inner.store;
        let Some(conversation) = store.conversation(site, conv).await? else {
            return Ok(None);
        };
        if conversation.agent.as_ref() != Some(agent) {
            return Ok(None);
        }
        let events = store
            .events(site, conv, Span::latest(after, u64::MAX, limit))
            .await?;
        let visitor = (self.inner.tickets)
            .visitor(site, &conversation.visitor)
            .await?
            .unwrap_or_else(|| VisitorProfile::with_id(conversation.visitor.clone()));
        Ok(Some(AgentChat {
            conversation,
            events,
            visitor,
        }))
    }

    /// Every agent of a site with status, load and presence.
    /// The live state of the site's agents that the directory still lists (the backend keeps
    /// a removed agent's record, out of every department, so a stale node cannot revive it).
    pub async fn agents(&self, site: &SiteId) -> Result<Vec<AgentState>> {
        let config = self.config();
        let listed = config.site(site);
        let mut agents = self.inner.store.agents(site).await?;
        agents.retain(|a| listed.is_some_and(|s| s.agent(&a.id).is_some()));
        Ok(agents)
    }

    /// Readiness: the state backend answers and its subscription is alive.
    pub async fn ready(&self) -> std::result::Result<bool, StoreError> {
        self.inner.store.ready().await
    }
}
