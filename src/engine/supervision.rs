//! What supervisors do beside the agents, and what anyone may read: watching a chat, notes only
//! agents see, taking a chat over, and the one scope rule (`readable_departments`) that every
//! read of a conversation or ticket goes through, whichever door it comes by.

use super::{Engine, EngineError, Result};
use crate::model::{AgentId, ConvId, ConvState, EventBody, SiteId, VisitorId};
use crate::protocol::{ErrorCode, MessageText, TransferTarget};

impl Engine {
    /// A supervisor takes over an active chat: a transfer from its owner to the supervisor,
    /// recorded with the reason, within the supervisor's limit.
    /// A live conversation as a supervisor watches it: its state, the visitor's name and the
    /// latest `limit` events (notes included). Read-only; `not_found` when there is none.
    pub async fn watch(&self, site_id: &SiteId, conv: &ConvId, limit: usize) -> Result<Watched> {
        let c = self.existing(site_id, conv).await?;
        let events = self
            .inner
            .store
            .events(
                site_id,
                conv,
                crate::state::Span::latest(0, u64::MAX, limit),
            )
            .await?;
        let visitor = self.inner.tickets.visitor(site_id, &c.visitor).await?;
        let site = self.site(site_id)?;
        let agent = c.agent.as_ref().map(|a| self.agent_ref(&site, a));
        Ok(Watched {
            conversation: WatchedConversation {
                id: c.id,
                state: c.state,
                department: c.department,
                agent,
                visitor: c.visitor,
            },
            visitor: WatchedVisitor {
                name: visitor.as_ref().and_then(|v| v.name.clone()),
                email: visitor.as_ref().and_then(|v| v.email.clone()),
            },
            events,
        })
    }

    /// A supervisor's private note in any open conversation (joining it without taking it):
    /// the agents in it see it, the visitor never does.
    pub async fn supervisor_note(
        &self,
        site_id: &SiteId,
        conv: &ConvId,
        by: crate::model::AgentRef,
        text: MessageText,
    ) -> Result<u64> {
        self.open_conversation(site_id, conv).await?;
        let body = EventBody::Note {
            at: self.now(),
            agent: by,
            text: text.into_inner(),
            client_id: None,
        };
        Ok(self.inner.store.append(site_id, conv, &body).await?.seq)
    }

    pub async fn take_over(
        &self,
        site_id: &SiteId,
        supervisor: &AgentId,
        conv: &ConvId,
        reason: Option<String>,
    ) -> Result<()> {
        let c = self.existing(site_id, conv).await?;
        let owner = match (&c.state, &c.agent) {
            (ConvState::Active, Some(owner)) => owner.clone(),
            _ => {
                return Err(EngineError::new(
                    ErrorCode::ConversationClosed,
                    "only an active chat can be taken over",
                ));
            }
        };
        if &owner == supervisor {
            return Ok(());
        }
        let reason = reason.unwrap_or_else(|| "taken over by a supervisor".into());
        self.transfer(
            site_id,
            &owner,
            conv,
            TransferTarget::Agent(supervisor.clone()),
            reason,
            None,
        )
        .await
    }

    /// The one scope rule for reading a site's records, whichever door the read comes
    /// through (REST or the agent socket): supervisors and admins read every record of their
    /// site; an agent only those of the departments they are in (none once no longer listed).
    /// None means the whole site.
    pub fn readable_departments(
        &self,
        role: crate::directory::model::AgentRole,
        site: Option<&SiteId>,
        agent: Option<&AgentId>,
    ) -> Option<Vec<crate::model::DeptId>> {
        if role >= crate::directory::model::AgentRole::Supervisor {
            return None;
        }
        let config = self.config();
        let listed = site
            .zip(agent)
            .and_then(|(s, a)| config.site(s)?.agent(a).cloned());
        Some(listed.map(|a| a.departments).unwrap_or_default())
    }

    /// A visitor's tickets, newest first, at most `limit`: their earlier chats, for the agent,
    /// within what that agent may read (`readable_departments`).
    pub async fn visitor_tickets(
        &self,
        site: &SiteId,
        agent: &AgentId,
        visitor: &VisitorId,
        limit: usize,
    ) -> Result<Vec<crate::tickets::Ticket>> {
        let role = self
            .config()
            .site(site)
            .and_then(|s| s.agent(agent).map(|a| a.role))
            .unwrap_or_default();
        let filter = crate::tickets::TicketFilter {
            visitor: Some(visitor.0.clone()),
            departments: self.readable_departments(role, Some(site), Some(agent)),
            limit,
            ..Default::default()
        };
        Ok(self.inner.tickets.list(site, &filter).await?)
    }
}

/// A live conversation as a supervisor watches it (`GET /v1/conversations/{id}`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Watched {
    pub conversation: WatchedConversation,
    pub visitor: WatchedVisitor,
    /// The latest events, oldest first, private notes included
    pub events: Vec<crate::model::Event>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WatchedConversation {
    #[schema(value_type = String)]
    pub id: ConvId,
    pub state: crate::model::ConvState,
    #[schema(value_type = String)]
    pub department: crate::model::DeptId,
    pub agent: Option<crate::model::AgentRef>,
    #[schema(value_type = String)]
    pub visitor: crate::model::VisitorId,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WatchedVisitor {
    pub name: Option<String>,
    pub email: Option<String>,
}
