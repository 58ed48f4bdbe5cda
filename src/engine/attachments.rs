//! Files in chats: a visitor or the owning agent sends an image or a PDF into an open
//! conversation. The file is stored first, then the message that carries it (text: the file's
//! name), acknowledged like any other; a message refused (the chat closed meanwhile) takes its
//! file with it. A file no message claims (a store failure) stays until `retention_days` or
//! the visitor's erasure removes it.

use super::{Ack, Engine, EngineError, Result};
use crate::attachments::{File, Upload};
use crate::model::{AgentId, AttachmentRef, AuthorKind, ConvId, EventBody, SiteId, VisitorId};
use crate::protocol::{ClientId, ErrorCode};
use crate::state::Guard;

/// Who sends a file.
#[derive(Clone, Debug)]
pub enum Sender {
    Visitor(VisitorId),
    Agent(AgentId),
}

/// Who asks for a file, and what they may read.
#[derive(Clone, Copy, Debug)]
pub enum Reader<'a> {
    /// Files of their own conversations.
    Visitor(&'a SiteId, &'a VisitorId),
    /// Files of the chat they have (or last had).
    Agent(&'a SiteId, &'a AgentId),
    /// Files of every chat of these sites.
    Supervisor(&'a [SiteId]),
}

impl Engine {
    /// Whether `sender` may send a file into `conv` now: the visitor's own open chat, or one
    /// the agent owns, and (for a visitor) within the message rate. Asked before a byte of
    /// the file is read, so that nobody can hold an upload turn without a chat.
    pub async fn file_sender(
        &self,
        site_id: &SiteId,
        sender: &Sender,
        conv: &ConvId,
    ) -> Result<(crate::model::Conversation, String, Guard)> {
        Ok(match sender {
            Sender::Visitor(v) => {
                let c = self.open_conversation(site_id, conv).await?;
                if &c.visitor != v {
                    return Err(EngineError::new(
                        ErrorCode::NotFound,
                        "no such conversation",
                    ));
                }
                // The rate was counted before the file was read (`visitor_within_rate`).
                (
                    c,
                    format!("visitor:{v}"),
                    Guard::VisitorOpen(v.clone(), None),
                )
            }
            Sender::Agent(a) => (
                self.owned(site_id, a, conv).await?,
                format!("agent:{a}"),
                Guard::AgentActive(a.clone()),
            ),
        })
    }

    /// Stores a file and the message carrying it in an open conversation of the sender's:
    /// the visitor's own, or one the agent owns. A retry with the same `client_id` stores
    /// neither twice.
    pub async fn send_file(
        &self,
        site_id: &SiteId,
        sender: &Sender,
        conv: &ConvId,
        client_id: ClientId,
        file: File<'_>,
    ) -> Result<(Ack, AttachmentRef)> {
        let site = self.site(site_id)?;
        let (record, author, guard) = self.file_sender(site_id, sender, conv).await?;
        let now = self.now();
        let attachment = self
            .inner
            .attachments
            .put(&Upload {
                site: site_id,
                conversation: conv,
                visitor: &record.visitor,
                author,
                client_id: client_id.as_str(),
                name: file.name,
                content_type: file.content_type,
                data: file.data,
                at: now,
            })
            .await?;
        // Counted with this one (a retry finds its own file and counts the same).
        let most = self.config().attachments.max_per_conversation;
        if self.inner.attachments.count(site_id, conv).await? > u64::from(most) {
            self.inner.attachments.delete(&attachment.id).await?;
            return Err(EngineError::new(
                ErrorCode::TooManyFiles,
                format!("a conversation holds at most {most} files"),
            ));
        }
        let (kind, author_id, author_name) = match sender {
            Sender::Visitor(v) => {
                let profile = self.inner.tickets.visitor(site_id, v).await?;
                (
                    AuthorKind::Visitor,
                    v.0.clone(),
                    profile.and_then(|p| p.name),
                )
            }
            Sender::Agent(a) => {
                let who = self.agent_ref(&site, a);
                (AuthorKind::Agent, who.id.0, Some(who.name))
            }
        };
        let body = EventBody::Message {
            at: now,
            author: kind,
            author_id: Some(author_id),
            author_name,
            text: attachment.name.clone(),
            client_id: Some(client_id.as_str().to_owned()),
            attachment: Some(attachment.clone()),
        };
        // A store error leaves the file: the message may have been stored with only the answer
        // lost, and a retry (same client_id) finds both. A refusal is final: the file goes.
        let stored = self
            .inner
            .store
            .append_guarded(site_id, conv, &body, &guard)
            .await?;
        let Some(appended) = stored.stored() else {
            // The chat closed (or moved) meanwhile: no message, no file.
            if let Err(e) = self.inner.attachments.delete(&attachment.id).await {
                tracing::warn!(cause = %e, attachment = %attachment.id, "could not remove an unsent file");
            }
            return Err(match sender {
                Sender::Visitor(_) => {
                    EngineError::new(ErrorCode::ConversationClosed, "the conversation is closed")
                }
                Sender::Agent(_) => EngineError::not_owner(),
            });
        };
        metrics::counter!(crate::observe::ATTACHMENTS).increment(1);
        Ok((
            Ack {
                conv: conv.clone(),
                seq: appended.seq,
            },
            attachment,
        ))
    }

    /// A stored file, if this reader may see its conversation.
    /// Whether the conversation's ticket is in one of the agent's departments (the inbox's
    /// rule, `readable_departments`).
    async fn ticket_readable(&self, site: &SiteId, agent: &AgentId, conv: &ConvId) -> Result<bool> {
        let Some(departments) = self.readable_departments(
            crate::directory::model::AgentRole::Agent,
            Some(site),
            Some(agent),
        ) else {
            return Ok(true);
        };
        Ok(self
            .inner
            .tickets
            .get(site, &conv.0)
            .await?
            .is_some_and(|t| departments.contains(&t.department)))
    }

    pub async fn file(
        &self,
        reader: Reader<'_>,
        id: &str,
    ) -> Result<Option<crate::attachments::Stored>> {
        let Some(file) = self.inner.attachments.get(id).await? else {
            return Ok(None);
        };
        let allowed = match reader {
            Reader::Visitor(site, visitor) => &file.site == site && &file.visitor == visitor,
            Reader::Supervisor(sites) => sites.contains(&file.site),
            Reader::Agent(site, agent) => {
                &file.site == site
                    && (self
                        .inner
                        .store
                        .conversation(site, &file.conversation)
                        .await?
                        .is_some_and(|c| c.agent.as_ref() == Some(agent))
                        // Or its ticket is one the agent may read (their departments' inbox:
                        // files that came by email with a reply, or after the chat ended).
                        || self.ticket_readable(site, agent, &file.conversation).await?)
            }
        };
        Ok(allowed.then_some(file))
    }
}
