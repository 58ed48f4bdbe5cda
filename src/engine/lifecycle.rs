//! The end of a chat and what follows: closing, transfer, the ticket, the rating.

use super::effects::Notice;
use super::{Engine, EngineError, Result, clip};
use crate::directory::model::SiteConfig;
use crate::model::{
    AgentId, AgentRef, AuthorKind, ConvId, ConvState, DeptId, EventBody, Millis, NoticeKind,
    SiteId, VisitorId,
};
use crate::protocol::{ErrorCode, TransferTarget};
use crate::routing::policy;
use crate::state::Reassign;
use crate::templates::{self, Template, Vars};
use crate::tickets::webhooks::deliveries_for;
use crate::tickets::{Rating, Ticket};

impl Engine {
    /// The visitor ends their chat. Returns the conversation and its (stored) ticket id.
    pub async fn visitor_close(
        &self,
        site_id: &SiteId,
        visitor: &VisitorId,
    ) -> Result<(ConvId, String)> {
        let site = self.site(site_id)?;
        let site = &*site;
        let conv = self
            .inner
            .store
            .visitor_conversation(site_id, visitor)
            .await?
            .filter(|c| c.state != ConvState::Closed)
            .ok_or_else(|| EngineError::new(ErrorCode::NotFound, "no open conversation"))?;
        let ticket = self
            .close_conversation(site, &conv.id, AuthorKind::Visitor, "visitor_closed")
            .await?;
        Ok((conv.id, ticket))
    }

    /// Stores a rating (1–5, optional comment) on the ticket of the visitor's last closed chat.
    /// Emails the visitor the transcript of their chat that closed within the rating window
    /// (what they saw: messages, notices, introductions), through the site's SMTP server, and
    /// records it on the ticket (`transcript_email`). At most three copies per chat.
    ///
    /// The copy goes only to the address the visitor gave in the chat's form (their profile's
    /// email when the chat closed), and within `limits.mail_per_*_per_hour`: an anonymous
    /// visitor cannot make the site's mail server write to anyone else.
    pub async fn email_transcript(
        &self,
        site_id: &SiteId,
        visitor: &VisitorId,
        email: &str,
        ip: std::net::IpAddr,
    ) -> Result<(String, String)> {
        const MAX_COPIES: usize = 3;
        let site = self.site(site_id)?;
        let site = &*site;
        let email = super::checked_email(email)?;
        if site.smtp_url.is_none() {
            return Err(EngineError::new(
                ErrorCode::EmailUnavailable,
                "this site does not send email",
            ));
        }
        let now = self.now();
        let mut ticket = self.recent_ticket(site, visitor, "send").await?;
        let sent = ticket
            .history
            .iter()
            .filter(|h| h.kind == "transcript_email")
            .count();
        if sent >= MAX_COPIES {
            return Err(EngineError::new(
                ErrorCode::EmailUnavailable,
                "three copies of this chat were sent already",
            ));
        }
        let given = ticket.visitor.email.as_deref().map(str::to_lowercase);
        if given.as_deref() != Some(email.to_lowercase().as_str()) {
            metrics::counter!(crate::observe::MAIL, "kind" => "transcript", "outcome" => "refused")
                .increment(1);
            return Err(EngineError::new(
                ErrorCode::InvalidEmail,
                "a copy goes only to the address given in the chat's form",
            ));
        }
        let limits = self.config().limits.clone();
        for (key, limit) in [
            (
                format!("mail:v:{visitor}"),
                limits.mail_per_visitor_per_hour,
            ),
            (format!("mail:i:{ip}"), limits.mail_per_ip_per_hour),
            ("mail:site".to_owned(), limits.mail_per_site_per_hour),
        ] {
            if !self.within(site_id, &[key], limit, 3_600_000).await? {
                metrics::counter!(crate::observe::MAIL, "kind" => "transcript", "outcome" => "limited")
                    .increment(1);
                return Err(EngineError::new(
                    ErrorCode::RateLimited,
                    "too many copies by email; try again later",
                ));
            }
        }
        let name = site.name.clone().unwrap_or_else(|| site.id.0.clone());
        let body = crate::email::transcript_text(&name, &ticket.transcript);
        let subject = format!("Your chat with {name}");
        let sent = crate::email::send(site, &email, None, &subject, body).await;
        let outcome = if sent.is_ok() { "sent" } else { "failed" };
        metrics::counter!(crate::observe::MAIL, "kind" => "transcript", "outcome" => outcome)
            .increment(1);
        if let Err(e) = sent {
            tracing::warn!(site = %site_id, ticket = %ticket.id, cause = %e, detail = ?e, "transcript email not sent");
            return Err(match e {
                crate::email::EmailError::BadAddress(_) => {
                    EngineError::new(ErrorCode::InvalidEmail, "not an email address")
                }
                _ => EngineError::new(ErrorCode::EmailUnavailable, e.to_string()),
            });
        }
        ticket.history.push(crate::tickets::HistoryEntry {
            at: now,
            kind: "transcript_email".into(),
            agent: None,
            from: None,
            to_department: None,
            reason: Some(email.clone()),
            note: None,
            ..Default::default()
        });
        ticket.updated_at = now;
        self.save_ticket(site, &ticket, "ticket.updated").await?;
        Ok((ticket.id, email))
    }

    /// The ticket of the visitor's chat that closed within the site's rating window (filed
    /// now if it closed a moment ago on another node), for a rating or a copy by email.
    async fn recent_ticket(
        &self,
        site: &SiteConfig,
        visitor: &VisitorId,
        what: &str,
    ) -> Result<Ticket> {
        let now = self.now();
        let window = (site.rating_window_secs * 1000.0) as Millis;
        let conv = self
            .inner
            .store
            .visitor_conversation(&site.id, visitor)
            .await?
            .filter(|c| {
                c.state == ConvState::Closed && c.closed_at.is_some_and(|t| t + window >= now)
            })
            .ok_or_else(|| {
                EngineError::new(
                    ErrorCode::NothingToRate,
                    format!("no recently closed chat to {what}"),
                )
            })?;
        match self.inner.tickets.get(&site.id, &conv.id.0).await? {
            Some(t) => Ok(t),
            None => self.file_ticket(site, &conv.id, false).await,
        }
    }

    pub async fn rate(
        &self,
        site_id: &SiteId,
        visitor: &VisitorId,
        score: u8,
        comment: Option<String>,
    ) -> Result<String> {
        let site = self.site(site_id)?;
        let site = &*site;
        if !(1..=5).contains(&score) {
            return Err(EngineError::new(
                ErrorCode::InvalidRating,
                "score must be 1 to 5",
            ));
        }
        let now = self.now();
        let mut ticket = self.recent_ticket(site, visitor, "rate").await?;
        ticket.rating = Some(Rating {
            score,
            comment: clip(comment, 2000),
            at: now,
        });
        ticket.updated_at = now;
        self.save_ticket(site, &ticket, "ticket.updated").await?;
        Ok(ticket.id)
    }

    /// Builds the ticket of a closed conversation from its log; keeps what a previous filing
    /// added (rating, offline message, creation time). With `save`, stores it and announces it.
    pub(super) async fn file_ticket(
        &self,
        site: &SiteConfig,
        conv_id: &ConvId,
        save: bool,
    ) -> Result<Ticket> {
        let store = &self.inner.store;
        let conv = store
            .conversation(&site.id, conv_id)
            .await?
            .ok_or_else(|| EngineError::new(ErrorCode::NotFound, "conversation expired"))?;
        let events = store.events_after(&site.id, conv_id, 0).await?;
        let visitor = (self.inner.tickets)
            .visitor(&site.id, &conv.visitor)
            .await?
            .unwrap_or_default();
        let now = self.now();
        let mut ticket = Ticket::build(&site.id, &conv, events, &visitor, now);
        let previous = self.inner.tickets.get(&site.id, &ticket.id).await?;
        if let Some(old) = &previous {
            ticket.created_at = old.created_at;
            ticket.rating = old.rating.clone();
            ticket.offline_message = old.offline_message.clone();
            ticket.follow_up = old.follow_up;
            ticket.tags = old.tags.clone();
        }
        if save {
            let event = if previous.is_some() {
                "ticket.updated"
            } else {
                "ticket.created"
            };
            self.save_ticket(site, &ticket, event).await?;
            tracing::info!(site = %site.id, conversation = %conv_id, ticket = %ticket.id, status = %ticket.status, "ticket stored");
            if previous.is_none() {
                observe_ticket(&ticket);
                self.emit(
                    site,
                    "conversation.closed",
                    serde_json::json!({"conversation": conv.id, "ticket": ticket.id, "reason": ticket.close_reason}),
                )
                .await;
            }
            store.mark_ticketed(&site.id, conv_id).await?;
        }
        Ok(ticket)
    }

    /// Stores a ticket durably with its webhook deliveries, then wakes the courier.
    pub(super) async fn save_ticket(
        &self,
        site: &SiteConfig,
        ticket: &Ticket,
        event: &str,
    ) -> Result<()> {
        let data = serde_json::to_value(ticket)
            .map_err(|e| EngineError::new(ErrorCode::Unavailable, e.to_string()))?;
        let deliveries = deliveries_for(site, event, &data, self.now());
        self.inner.tickets.save(ticket, &deliveries).await?;
        self.inner
            .store
            .mark_ticketed(&site.id, &ticket.conversation)
            .await?;
        if !deliveries.is_empty() {
            self.inner.courier.wake();
        }
        Ok(())
    }

    pub async fn agent_close(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        reason: Option<String>,
    ) -> Result<String> {
        let site = self.site(site_id)?;
        let site = &*site;
        self.owned(site_id, agent, conv).await?;
        let reason = clip(reason, 200).unwrap_or_else(|| "agent_closed".into());
        self.close_conversation(site, conv, AuthorKind::Agent, &reason)
            .await
    }

    /// Closes an open conversation and frees what it held. The close event carries the goodbye.
    pub(super) async fn close_conversation(
        &self,
        site: &SiteConfig,
        conv: &ConvId,
        by: AuthorKind,
        reason: &str,
    ) -> Result<String> {
        let store = &self.inner.store;
        let now = self.now();
        let Some(before) = store
            .close(&site.id, conv, reason, now, self.retention_ms())
            .await?
        else {
            return Err(EngineError::new(
                ErrorCode::ConversationClosed,
                "already closed",
            ));
        };
        tracing::info!(site = %site.id, conversation = %conv, visitor = %before.visitor, agent = before.agent.as_ref().map(|a| a.0.as_str()).unwrap_or(""), reason, "conversation closed");
        let template = match (by, reason) {
            (AuthorKind::Visitor, _) => Some(Template::ClosedByVisitor),
            (AuthorKind::System, "visitor_inactive") => Some(Template::ClosedInactive),
            // Nobody to answer: the offline reply just said so; no second word.
            (AuthorKind::System, _) => None,
            _ => Some(Template::ClosedByAgent),
        };
        let text = template
            .map(|template| {
                templates::render(
                    site,
                    Some(&before.department),
                    &before.locale,
                    template,
                    &Vars::default(),
                )
            })
            .unwrap_or_default();
        store
            .append(
                &site.id,
                conv,
                &EventBody::Closed {
                    at: now,
                    by,
                    reason: reason.to_owned(),
                    text,
                },
            )
            .await?;
        match (before.state, &before.agent) {
            (ConvState::Active, Some(agent)) => {
                self.agent_changed(&site.id, agent).await?;
            }
            (ConvState::Queued, _) => {
                self.queue_changed(&site.id, &before.department).await;
            }
            _ => {}
        }
        self.visitor_changed(&site.id, &before.visitor, true).await;
        let ticket = self.file_ticket(site, conv, true).await?;
        Ok(ticket.id)
    }

    /// Moves a chat to another agent or department, keeping its whole transcript.
    pub async fn transfer(
        &self,
        site_id: &SiteId,
        from: &AgentId,
        conv: &ConvId,
        target: TransferTarget,
        reason: String,
        note: Option<String>,
    ) -> Result<()> {
        let site = self.site(site_id)?;
        let site = &*site;
        let c = self.owned(site_id, from, conv).await?;
        let reason = clip(Some(reason), 500).ok_or_else(|| {
            EngineError::new(ErrorCode::InvalidMessage, "a transfer needs a reason")
        })?;
        let note = clip(note, 2000);
        let store = &self.inner.store;
        let now = self.now();
        let from_ref = self.agent_ref(site, from);
        // Take the chat from its owner first (one atomic store step), then record the transfer,
        // then tell whoever is next.
        /// Whom the transfer introduces next.
        enum Next {
            Agent(AgentId, AgentRef),
            Department(DeptId),
        }
        let next = match &target {
            TransferTarget::Agent(to) => {
                if site.agent(to).is_none() {
                    return Err(EngineError::new(
                        ErrorCode::UnknownAgent,
                        format!("no agent {to}"),
                    ));
                }
                match store
                    .reassign(site_id, conv, from, to, now, self.grace_ms())
                    .await?
                {
                    Reassign::Done => {}
                    Reassign::NotOwner => return Err(EngineError::not_owner()),
                    Reassign::TargetUnavailable(why) => {
                        return Err(EngineError::new(
                            ErrorCode::TargetUnavailable,
                            format!("{to} {}", why.describe()),
                        ));
                    }
                }
                Next::Agent(to.clone(), self.agent_ref(site, to))
            }
            TransferTarget::Department(dept) => {
                if site.department(dept).is_none() {
                    return Err(EngineError::new(
                        ErrorCode::UnknownDepartment,
                        format!("no department {dept}"),
                    ));
                }
                let rules = policy::rules(site, dept);
                if !store
                    .unassign(site_id, conv, from, dept, now, &rules, None)
                    .await?
                {
                    return Err(EngineError::not_owner());
                }
                Next::Department(dept.clone())
            }
        };
        let (to_agent, to_department) = match &next {
            Next::Agent(_, to_ref) => (Some(to_ref.clone()), None),
            Next::Department(dept) => (None, Some(dept.clone())),
        };
        let body = EventBody::Transferred {
            at: now,
            from: Some(from_ref),
            to_agent,
            to_department,
            reason,
            note,
        };
        tracing::info!(site = %site_id, conversation = %conv, from = %from, "conversation transferred");
        store.append(site_id, conv, &body).await?;
        match next {
            Next::Agent(to, to_ref) => {
                self.announce_agent(site, conv, &to_ref, &c.locale).await?;
                self.agent_changed(site_id, &to).await?;
            }
            Next::Department(dept) => {
                self.notice(
                    site,
                    &dept,
                    conv,
                    &c.locale,
                    Notice::plain(NoticeKind::Transferring, Template::Transferring, None),
                )
                .await?;
                self.queue_changed(site_id, &dept).await;
                self.drain(site_id, &dept).await?;
            }
        }
        self.emit(
            site,
            "conversation.transferred",
            serde_json::json!({"conversation": conv, "from": from}),
        )
        .await;
        self.agent_changed(site_id, from).await
    }
}

/// A change to a ticket's follow-up, over REST.
pub enum TicketChange {
    FollowUp(crate::tickets::FollowUp),
    Tags(Vec<String>),
    /// An email answer sent to the visitor: recorded with its recipient, text and author.
    EmailReply {
        to: String,
        text: String,
        agent: Option<crate::model::AgentRef>,
    },
}

impl Engine {
    /// Changes a ticket's follow-up status or tags, records it in the ticket's history and
    /// announces `ticket.updated`. None when there is no such ticket.
    pub async fn update_ticket(
        &self,
        site_id: &SiteId,
        id: &str,
        change: TicketChange,
        actor: &str,
    ) -> Result<Option<Ticket>> {
        let site = self.site(site_id)?;
        let site = &*site;
        let Some(mut ticket) = self.inner.tickets.get(site_id, id).await? else {
            return Ok(None);
        };
        let now = self.now();
        let entry = |kind: &str, agent, reason, note| crate::tickets::HistoryEntry {
            at: now,
            kind: kind.to_owned(),
            agent,
            from: None,
            to_department: None,
            reason: Some(reason),
            note: Some(note),
            ..Default::default()
        };
        let by = format!("by {actor}");
        ticket.history.push(match change {
            TicketChange::FollowUp(f) => {
                ticket.follow_up = f;
                entry("follow_up", None, f.as_str().to_owned(), by)
            }
            TicketChange::Tags(tags) => {
                let value = tags.join(", ");
                ticket.tags = tags;
                entry("tags", None, value, by)
            }
            // `reason` the recipient, `note` the text as sent.
            TicketChange::EmailReply { to, text, agent } => entry("email_reply", agent, to, text),
        });
        ticket.updated_at = now;
        self.save_ticket(site, &ticket, "ticket.updated").await?;
        Ok(Some(ticket))
    }
}

/// A ticket filed for the first time, in the metrics: its status and its times.
fn observe_ticket(ticket: &Ticket) {
    use crate::observe::{FIRST_RESPONSE, HANDLING, QUEUE_WAIT, TICKETS};
    let site = ticket.site.0.clone();
    metrics::counter!(TICKETS, "site" => site.clone(), "status" => ticket.status.clone())
        .increment(1);
    let m = &ticket.metrics;
    if ticket.status == "resolved"
        && let (Some(real), Some(e)) = (m.queue_wait_secs, m.wait_estimate)
    {
        use crate::observe::{ESTIMATE_ERROR, ESTIMATES};
        use crate::routing::estimate::{accuracy, covers};
        let (error, _) = accuracy(&[(real, e)]);
        metrics::histogram!(ESTIMATE_ERROR, "site" => site.clone()).record(error);
        let covered = if covers(&e, real) { "true" } else { "false" };
        metrics::counter!(ESTIMATES, "site" => site.clone(), "covered" => covered).increment(1);
    }
    for (name, value) in [
        (QUEUE_WAIT, m.queue_wait_secs),
        (FIRST_RESPONSE, m.first_response_secs),
        (HANDLING, m.handling_secs),
    ] {
        if let Some(v) = value {
            metrics::histogram!(name, "site" => site.clone()).record(v);
        }
    }
}
