//! A visitor's email reply filed into its ticket (`inbound`): text and files, the ticket open
//! again, the department told.

use super::{Engine, EngineError, Result};
use crate::attachments::{File, Upload, clean_name};
use crate::inbound::{Inbound, ticket_of};
use crate::model::{AttachmentRef, SiteId};
use crate::protocol::ErrorCode;
use crate::tickets::{FollowUp, HistoryEntry};

/// Email replies one ticket keeps; more are refused (the ticket is a record, not a mailbox).
pub const MAX_EMAILS_PER_TICKET: usize = 100;
/// The longest reply text kept.
const MAX_TEXT: usize = 20_000;

/// What became of an email reply.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Filed {
    /// The ticket it joined.
    pub ticket: String,
    /// Files kept with it.
    pub files: usize,
    /// Files left out (a type or size not allowed), by name.
    pub refused: Vec<String>,
    /// The same message was filed before (a retried delivery): nothing changed.
    pub duplicate: bool,
}

impl Engine {
    /// The site and ticket a reply address names, among the sites that receive email.
    pub fn reply_ticket(&self, address: &str) -> Option<(SiteId, String)> {
        let config = self.config();
        let inboxes = config
            .sites
            .iter()
            .filter_map(|s| Some((&s.id, s.email_inbound.as_deref()?)));
        ticket_of(&self.inner.keys, inboxes, address)
    }

    /// The reply address for a ticket's answers, when its site receives email.
    pub fn reply_address(&self, site: &SiteId, ticket: &str) -> Option<String> {
        let config = self.config();
        let inbound = config.site(site)?.email_inbound.clone()?;
        crate::inbound::reply_address(&self.inner.keys, site, &inbound, ticket)
    }

    /// Files a visitor's email reply into the ticket: its text (quotes trimmed) and files in
    /// the history as `email_received`, the ticket open again, `ticket.updated` sent, the
    /// department's consoles and browsers told. The same `Message-ID` twice is filed once.
    /// None when there is no such ticket.
    pub async fn email_received(
        &self,
        site_id: &SiteId,
        ticket_id: &str,
        mail: &Inbound,
    ) -> Result<Option<Filed>> {
        let site = self.site(site_id)?;
        let site = &*site;
        let Some(mut ticket) = self.inner.tickets.get(site_id, ticket_id).await? else {
            return Ok(None);
        };
        let received = || ticket.history.iter().filter(|h| h.kind == "email_received");
        if let Some(id) = &mail.message_id
            && received().any(|h| h.message_id.as_ref() == Some(id))
        {
            return Ok(Some(Filed {
                ticket: ticket.id.clone(),
                files: 0,
                refused: Vec::new(),
                duplicate: true,
            }));
        }
        if received().count() >= MAX_EMAILS_PER_TICKET {
            return Err(EngineError::new(
                ErrorCode::RateLimited,
                "this ticket has taken as many email replies as it keeps",
            ));
        }
        let now = self.now();
        let rules = self.config().attachments.clone();
        // Files join the conversation's, as if sent in the chat: the same types, sizes and
        // count, and whoever may read the ticket may open them.
        let mut room = (rules.max_per_conversation as u64).saturating_sub(
            self.inner
                .attachments
                .count(site_id, &ticket.conversation)
                .await?,
        );
        let key = mail.message_id.clone().map_or_else(
            || ulid::Ulid::new().to_string(),
            |id| {
                use sha2::Digest;
                hex::encode(&sha2::Sha256::digest(id.as_bytes())[..8])
            },
        );
        let mut kept: Vec<AttachmentRef> = Vec::new();
        let mut refused = Vec::new();
        for (n, f) in mail.files.iter().enumerate() {
            let file = match File::check(&f.name, &f.data, &rules) {
                Ok(file) if room > 0 => file,
                _ => {
                    refused.push(clean_name(&f.name));
                    continue;
                }
            };
            room -= 1;
            let stored = self
                .inner
                .attachments
                .put(&Upload {
                    site: site_id,
                    conversation: &ticket.conversation,
                    visitor: &crate::model::VisitorId(ticket.visitor.id.clone()),
                    author: format!("visitor:{}", ticket.visitor.id),
                    client_id: &format!("email:{key}:{n}"),
                    name: file.name,
                    content_type: file.content_type,
                    data: file.data,
                    at: now,
                })
                .await?;
            kept.push(stored);
        }
        let text: String = mail.text.chars().take(MAX_TEXT).collect();
        ticket.history.push(HistoryEntry {
            at: now,
            kind: "email_received".into(),
            reason: Some(mail.from.clone()),
            note: Some(text.clone()),
            attachments: kept.clone(),
            message_id: mail.message_id.clone(),
            ..HistoryEntry::default()
        });
        ticket.follow_up = FollowUp::Open;
        ticket.updated_at = now;
        self.save_ticket(site, &ticket, "ticket.updated").await?;
        tracing::info!(site = %site_id, ticket = %ticket.id, files = kept.len(), refused = refused.len(), "email reply filed");
        let name = mail
            .from_name
            .clone()
            .or_else(|| ticket.visitor.name.clone());
        self.announce_inbox(site, &ticket, name, &mail.from, &text, true)
            .await;
        Ok(Some(Filed {
            ticket: ticket.id,
            files: kept.len(),
            refused,
            duplicate: false,
        }))
    }
}
