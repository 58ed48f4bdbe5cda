//! Privacy requests and retention: everything stored about a visitor, exported or erased
//! everywhere (the record database with their files, the live state, pending webhooks), each request recorded
//! in the audit log; and tickets older than the retention setting deleted.

use super::{Engine, EngineError, Result};
use crate::model::{ConvId, ConvState, Millis, SiteId, VisitorId};
use crate::protocol::ErrorCode;
use crate::tickets::{AuditEntry, Ticket};

/// How often the sweep applies the retention setting.
const RETENTION_EVERY_MS: Millis = 3_600_000;

impl Engine {
    /// All of a visitor's tickets (paged through, newest first).
    async fn all_tickets(&self, site: &SiteId, visitor: &VisitorId) -> Result<Vec<Ticket>> {
        let mut filter = crate::tickets::TicketFilter {
            visitor: Some(visitor.0.clone()),
            limit: 500,
            ..Default::default()
        };
        let mut out = Vec::new();
        loop {
            let page = self.inner.tickets.list(site, &filter).await?;
            let full = page.len() == filter.limit;
            filter.cursor = page.last().map(|t| t.id.clone());
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// Records an entry in the audit log: who did what to whose data, or to the directory.
    pub async fn record(
        &self,
        actor: &str,
        action: &str,
        site: &SiteId,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let entry = AuditEntry {
            at: self.now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            site: site.clone(),
            subject: subject.to_owned(),
            detail,
        };
        Ok(self.inner.tickets.audit(&entry).await?)
    }

    /// A ticket read whole (its transcript) over REST, recorded in the audit log.
    pub async fn transcript_read(&self, site: &SiteId, ticket: &str, actor: &str) -> Result<()> {
        self.record(actor, "ticket.read", site, ticket, serde_json::json!({}))
            .await
    }

    /// Everything stored about a visitor: profile, tickets, and the events of their current
    /// conversation. None when nothing is.
    pub async fn export_visitor(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        actor: &str,
    ) -> Result<Option<VisitorExport>> {
        let store = &self.inner.store;
        let profile = self.inner.tickets.visitor(site, visitor).await?;
        let tickets = self.all_tickets(site, visitor).await?;
        let current = store.visitor_conversation(site, visitor).await?;
        if profile.is_none() && tickets.is_empty() && current.is_none() {
            return Ok(None);
        }
        let conversation = match current {
            Some(c) => {
                let events = store.events_after(site, &c.id, 0).await?;
                Some(ExportedConversation {
                    id: c.id,
                    state: c.state,
                    events,
                })
            }
            None => None,
        };
        self.record(
            actor,
            "visitor.export",
            site,
            &visitor.0,
            serde_json::json!({"tickets": tickets.len()}),
        )
        .await?;
        Ok(Some(VisitorExport {
            visitor: profile,
            tickets,
            conversation,
        }))
    }

    /// Erases a visitor everywhere. Refused while they are in an open conversation (close it
    /// first). False when nothing was stored about them.
    pub async fn erase_visitor(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        actor: &str,
    ) -> Result<bool> {
        let store = &self.inner.store;
        let current = store.visitor_conversation(site, visitor).await?;
        if current
            .as_ref()
            .is_some_and(|c| c.state != ConvState::Closed)
        {
            return Err(EngineError::new(
                ErrorCode::VisitorBusy,
                "the visitor is in an open conversation: close it first",
            ));
        }
        let profile = self.inner.tickets.visitor(site, visitor).await?;
        let convs: Vec<ConvId> = self
            .all_tickets(site, visitor)
            .await?
            .into_iter()
            .map(|t| t.conversation)
            .collect();
        let tickets = self.inner.tickets.erase_visitor(site, &visitor.0).await?;
        let files = self.inner.attachments.erase_visitor(site, visitor).await?;
        store.forget_visitor(site, visitor, &convs).await?;
        if profile.is_none() && tickets == 0 && files == 0 && current.is_none() {
            return Ok(false);
        }
        self.record(
            actor,
            "visitor.erase",
            site,
            &visitor.0,
            serde_json::json!({"tickets": tickets, "files": files}),
        )
        .await?;
        tracing::info!(site = %site, visitor = %visitor, tickets, files, "visitor erased");
        Ok(true)
    }

    /// Deletes tickets and visitor records past their retention settings, at most once an hour.
    pub(super) async fn apply_retention(&self, now: Millis) {
        let last = self
            .inner
            .retention_at
            .load(std::sync::atomic::Ordering::Relaxed);
        if last != 0 && now - last < RETENTION_EVERY_MS {
            return;
        }
        self.inner
            .retention_at
            .store(now, std::sync::atomic::Ordering::Relaxed);
        const DAY_MS: Millis = 86_400_000;
        let tickets = &self.inner.tickets;
        if let Some(days) = self.config().retention_days {
            match tickets.expire(now - Millis::from(days) * DAY_MS).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(tickets = n, days, "tickets past retention deleted"),
                Err(e) => tracing::warn!(cause = %e, "retention sweep failed"),
            }
            // Files go with the tickets of their time.
            match self
                .inner
                .attachments
                .expire(now - Millis::from(days) * DAY_MS)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(files = n, days, "files past retention deleted"),
                Err(e) => tracing::warn!(cause = %e, "file retention sweep failed"),
            }
        }
        let days = self.config().visitor_retention_days;
        match tickets
            .expire_visitors(now - Millis::from(days) * DAY_MS)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(visitors = n, days, "visitor records past retention deleted"),
            Err(e) => tracing::warn!(cause = %e, "visitor retention sweep failed"),
        }
        match tickets.idempotency_expire(now - DAY_MS).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(keys = n, "idempotency keys past a day forgotten"),
            Err(e) => tracing::warn!(cause = %e, "idempotency key sweep failed"),
        }
        self.inner.sign_ins.prune();
        if let Err(e) = self.inner.directory.expire(now).await {
            tracing::warn!(cause = %e, "expiring console sessions and invites failed");
        }
    }
}

/// Everything stored about a visitor (`GET /v1/visitors/{id}/export`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct VisitorExport {
    /// The profile presence keeps, if any
    pub visitor: Option<crate::model::VisitorProfile>,
    pub tickets: Vec<crate::tickets::Ticket>,
    /// The conversation not yet closed, if any
    pub conversation: Option<ExportedConversation>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ExportedConversation {
    #[schema(value_type = String)]
    pub id: crate::model::ConvId,
    pub state: crate::model::ConvState,
    pub events: Vec<crate::model::Event>,
}
