//! What a socket session asks of its node: the hub (its place there and the conversations it
//! follows, asked of the `Hub` itself), pages of a transcript, an agent's chat as the console
//! shows it, the colleagues it lists, and the node's readiness. Sessions reach the store only
//! through these.

use std::time::Duration;

use super::{Engine, Result};
use crate::hub::Hub;
use crate::model::{AgentId, AgentState, ConvId, Conversation, Event, SiteId, VisitorProfile};
use crate::state::Span;

/// An agent's chat as a console opens it: the conversation, a page of its transcript, the
/// visitor.
pub struct AgentChat {
    pub conversation: Conversation,
    pub events: Vec<Event>,
    pub visitor: VisitorProfile,
}

impl Engine {
    /// This node's sessions: sockets register there and follow conversations (`Hub`).
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
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

    /// The site's agents as a console's transfer dialog lists them, read now (one refresh of
    /// the shared snapshot: consoles asking at once share it; each is held to the frame rate).
    pub async fn colleagues(&self, site: &SiteId) -> Result<Vec<AgentState>> {
        let agents = self.agents_cached(site, true).await?;
        Ok(self.listed(site, agents.iter().cloned()))
    }

    /// Those of the agents the directory still lists (the backend keeps a removed agent's
    /// record, out of every department, so a stale node cannot revive it).
    fn listed(&self, site: &SiteId, agents: impl Iterator<Item = AgentState>) -> Vec<AgentState> {
        let config = self.config();
        let listed = config.site(site);
        agents
            .filter(|a| listed.is_some_and(|s| s.agent(&a.id).is_some()))
            .collect()
    }

    /// Every agent of a site the directory lists, with status, load and presence, read now.
    pub async fn agents(&self, site: &SiteId) -> Result<Vec<AgentState>> {
        let agents = self.inner.store.agents(site).await?;
        Ok(self.listed(site, agents.into_iter()))
    }

    /// Readiness as last probed (`probe_readiness`): answered at once, whatever the backends do.
    pub fn readiness(&self) -> Readiness {
        Readiness::from_code(
            self.inner
                .readiness
                .load(std::sync::atomic::Ordering::Acquire),
        )
    }

    /// Probes the state backend (it answers within `PROBE_WITHIN`, as a primary, with its
    /// subscription alive) and the record database, and keeps the verdict for `/readyz`.
    pub(super) async fn probe_readiness(&self) {
        let store = tokio::time::timeout(PROBE_WITHIN, self.inner.store.ready()).await;
        let verdict = match store {
            Ok(Ok(true)) => {
                match tokio::time::timeout(PROBE_WITHIN, self.inner.directory.version()).await {
                    Ok(Ok(_)) => {
                        let lost = matches!(
                            tokio::time::timeout(PROBE_WITHIN, self.inner.store.state_lost()).await,
                            Ok(Ok(true))
                        );
                        let pending = &self.inner.rebuild_pending;
                        if lost || pending.load(std::sync::atomic::Ordering::Acquire) {
                            self.set_readiness(Readiness::Rebuilding);
                            let done = self.rebuild().await;
                            pending.store(!done, std::sync::atomic::Ordering::Release);
                        }
                        if pending.load(std::sync::atomic::Ordering::Acquire) {
                            Readiness::Rebuilding
                        } else {
                            Readiness::Ready
                        }
                    }
                    _ => Readiness::DatabaseUnreachable,
                }
            }
            Ok(Ok(false)) => Readiness::NotPrimaryOrUnsubscribed,
            Ok(Err(_)) | Err(_) => Readiness::BackendUnreachable,
        };
        self.set_readiness(verdict);
    }

    fn set_readiness(&self, verdict: Readiness) {
        let before = self
            .inner
            .readiness
            .swap(verdict as u8, std::sync::atomic::Ordering::AcqRel);
        let ready = if verdict == Readiness::Ready {
            1.0
        } else {
            0.0
        };
        self.site_figures().set(crate::observe::READY, &[], ready);
        if before != verdict as u8 {
            if verdict == Readiness::Ready {
                tracing::info!("ready");
            } else {
                tracing::warn!(reason = verdict.describe(), "not ready");
            }
        }
    }
}

/// How long a readiness probe waits for a backend before counting it as down.
const PROBE_WITHIN: Duration = Duration::from_millis(500);

/// What `/readyz` says, as last probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Readiness {
    /// No probe has finished yet.
    Starting = 0,
    Ready = 1,
    /// The state backend did not answer in time, or failed.
    BackendUnreachable = 2,
    /// Redis answers, but as a replica (read-only), or this node's subscription is down.
    NotPrimaryOrUnsubscribed = 3,
    DatabaseUnreachable = 4,
    /// Redis lost the node's state; the node is putting back what it can.
    Rebuilding = 5,
}

impl Readiness {
    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Ready,
            2 => Self::BackendUnreachable,
            3 => Self::NotPrimaryOrUnsubscribed,
            4 => Self::DatabaseUnreachable,
            5 => Self::Rebuilding,
            _ => Self::Starting,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::BackendUnreachable => "state backend unreachable",
            Self::NotPrimaryOrUnsubscribed => "redis is a replica or the subscription is down",
            Self::DatabaseUnreachable => "database unreachable",
            Self::Rebuilding => "rebuilding state that redis lost",
        }
    }
}
