//! Messages left while nobody can answer: filed at once as an open ticket (with the visitor's
//! address for the reply), joined to the visitor's recent offline conversation, and announced
//! to the agents online.

use super::{Engine, EngineError, Result, clip};
use crate::directory::model::SiteConfig;
use crate::model::{
    AuthorKind, ConvState, Conversation, DeptId, EventBody, Millis, SiteId, VisitorProfile,
};
use crate::protocol::{ErrorCode, MessageText};
use crate::tickets::OfflineMessage;

/// An offline message joins the visitor's offline conversation if it closed this recently.
const OFFLINE_ATTACH_MS: Millis = 3_600_000;

impl Engine {
    /// An offline message (email and text): it joins the visitor's offline chat if that just
    /// ended, or becomes a conversation and ticket of its own.
    pub async fn offline_message(
        &self,
        site_id: &SiteId,
        profile: &mut VisitorProfile,
        department: Option<&DeptId>,
        email: String,
        name: Option<String>,
        text: MessageText,
    ) -> Result<String> {
        let site = self.site(site_id)?;
        let site = &*site;
        let email = super::checked_email(&email)?;
        let visitor = profile
            .id
            .clone()
            .ok_or_else(|| EngineError::new(ErrorCode::HelloRequired, "say hello first"))?;
        profile.email = Some(email.clone());
        if let Some(n) = clip(name.clone(), 200) {
            profile.name = Some(n);
        }
        self.inner.tickets.put_visitor(site_id, profile).await?;
        let now = self.now();
        let text = text.into_inner();
        let message = EventBody::Message {
            at: now,
            author: AuthorKind::Visitor,
            author_id: Some(visitor.0.clone()),
            author_name: profile.name.clone(),
            text: text.clone(),
            attachment: None,
            client_id: None,
        };
        let offline = OfflineMessage {
            email,
            name: clip(name, 200),
            text,
            at: now,
        };
        let recent = self
            .inner
            .store
            .visitor_conversation(site_id, &visitor)
            .await?
            .filter(|c| {
                c.state == ConvState::Closed
                    && matches!(
                        c.close_reason.as_deref(),
                        Some("no_agent" | "out_of_hours" | "max_wait" | "max_tries")
                    )
                    && c.closed_at.is_some_and(|t| t + OFFLINE_ATTACH_MS >= now)
            });
        if let Some(conv) = recent
            && let Some(mut ticket) = self.inner.tickets.get(site_id, &conv.id.0).await?
            && ticket.offline_message.is_none()
        {
            let appended = self.inner.store.append(site_id, &conv.id, &message).await?;
            ticket.transcript.push(crate::model::Event {
                seq: appended.seq,
                body: message,
            });
            ticket.metrics.visitor_messages += 1;
            ticket.visitor.email = profile.email.clone();
            ticket.visitor.name = profile.name.clone();
            ticket.offline_message = Some(offline);
            ticket.updated_at = now;
            self.save_ticket(site, &ticket, "ticket.updated").await?;
            self.announce_offline(site, &ticket).await;
            return Ok(ticket.id);
        }
        // A conversation of its own, closed at once.
        let dept = department
            .filter(|d| site.department(d).is_some())
            .unwrap_or_else(|| site.default_department())
            .clone();
        let new = Conversation::new(visitor.clone(), dept, profile.locale.clone(), now);
        let (conv, created) = self.inner.store.open_conversation(site_id, &new).await?;
        self.inner.store.append(site_id, &conv.id, &message).await?;
        if !created {
            // The visitor is in a live chat: the message simply joins it.
            return Ok(conv.id.0);
        }
        let closed = self
            .inner
            .store
            .close(
                site_id,
                &conv.id,
                "offline_message",
                now,
                self.retention_ms(),
            )
            .await?
            .is_some();
        if closed {
            // The widget thanks the visitor for the message itself: the close adds no words
            // (not "You ended the chat": the visitor ended nothing).
            self.inner
                .store
                .append(
                    site_id,
                    &conv.id,
                    &EventBody::Closed {
                        at: now,
                        by: AuthorKind::Visitor,
                        reason: "offline_message".into(),
                        text: String::new(),
                    },
                )
                .await?;
        }
        let mut ticket = self.file_ticket(site, &conv.id, false).await?;
        ticket.offline_message = Some(offline);
        self.save_ticket(site, &ticket, "ticket.created").await?;
        self.announce_offline(site, &ticket).await;
        Ok(ticket.id)
    }

    /// Tells the site's consoles and the department's browsers that an offline message waits.
    async fn announce_offline(&self, site: &SiteConfig, ticket: &crate::tickets::Ticket) {
        let Some(m) = &ticket.offline_message else {
            return;
        };
        let name = m.name.clone().or_else(|| ticket.visitor.name.clone());
        self.announce_inbox(site, ticket, name, &m.email, &m.text, false)
            .await;
    }
}
