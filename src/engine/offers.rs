//! Chats an agent has not acted on: offers to accept or decline (a department in `offer`
//! mode) and first replies (`first_reply_secs`). A chat taken back goes to the head of its
//! queue for the next agent it has not been tried with, and after `max_tries` agents it
//! overflows. Every step is conditional on the owner, so any number of nodes sweeping take a
//! chat back once; the state the sweep reads (`Conversation::pending_since`) is stored, so a
//! restart resumes the clock where it was.

use super::effects::Notice;
use super::{Engine, EngineError, Result};
use crate::directory::model::SiteConfig;
use crate::model::{
    AgentId, AgentRef, ConvId, Conversation, EventBody, Millis, NoticeKind, SiteId,
};
use crate::protocol::ErrorCode;
use crate::routing::policy::{self, Policy};
use crate::templates::Template;

/// Why a chat was taken from its agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missed {
    Declined,
    OfferTimeout,
    NoReply,
}

impl Missed {
    fn as_str(self) -> &'static str {
        match self {
            Self::Declined => "declined",
            Self::OfferTimeout => "offer_timeout",
            Self::NoReply => "no_reply",
        }
    }
}

impl Engine {
    /// The agent takes a chat offered to them: it is theirs, and the visitor is introduced.
    pub async fn accept_offer(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
    ) -> Result<()> {
        let site = self.site(site_id)?;
        if !self
            .inner
            .store
            .accept(site_id, conv, agent, self.now())
            .await?
        {
            return Err(no_offer());
        }
        tracing::info!(site = %site_id, conversation = %conv, agent = %agent, "offer accepted");
        let locale = self
            .inner
            .store
            .conversation(site_id, conv)
            .await?
            .map_or_else(|| "en".to_owned(), |c| c.locale);
        let who = self.agent_ref(&site, agent);
        self.announce_agent(&site, conv, &who, &locale).await
    }

    /// The agent refuses a chat offered to them: the next agent gets it.
    pub async fn decline_offer(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        reason: String,
    ) -> Result<()> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(EngineError::new(
                ErrorCode::InvalidMessage,
                "a reason of 1 to 200 characters",
            ));
        }
        let site = self.site(site_id)?;
        let c = self.open_conversation(site_id, conv).await?;
        if !c.offered || c.agent.as_ref() != Some(agent) {
            return Err(no_offer());
        }
        if !self
            .take_back(&site, &c, Missed::Declined, Some(reason.to_owned()))
            .await?
        {
            return Err(no_offer());
        }
        Ok(())
    }

    /// Seconds left to accept a chat offered to its owner, if it is an offer.
    pub fn offer_secs(&self, site_id: &SiteId, c: &Conversation) -> Option<u32> {
        let since = c.pending_since.filter(|_| c.offered)?;
        let site = self.site(site_id).ok()?;
        let within = Policy::resolve(&site, &c.department).act_within_ms(true)?;
        let left = since
            .saturating_add(within)
            .saturating_sub(self.now())
            .max(0);
        Some(u32::try_from((left + 999) / 1000).unwrap_or(u32::MAX))
    }

    /// Takes back every chat whose owner let its offer or first-reply time pass, and warns
    /// supervisors of chats nearing their first-response target unanswered.
    pub(super) async fn expire_pending(&self, site: &SiteConfig, now: Millis) -> Result<()> {
        // The shortest time any department gives: older than that, a chat may be due. A
        // first-response target counts from the visitor's first message, not from the
        // assignment: with one, every chat still unanswered is looked at.
        let policies: Vec<Policy> = site
            .departments
            .iter()
            .map(|d| Policy::resolve(site, &d.id))
            .collect();
        let shortest = policies
            .iter()
            .flat_map(|p| [p.act_within_ms(p.offers()), p.act_within_ms(true)])
            .flatten()
            .min();
        let before = if policies.iter().any(|p| p.sla_first_response().is_some()) {
            now.saturating_add(1)
        } else if let Some(shortest) = shortest {
            now.saturating_sub(shortest).saturating_add(1)
        } else {
            return Ok(());
        };
        let due = self.inner.store.pending(&site.id, before).await?;
        // Warnings told for chats no longer waiting for a first reply go (bounded by them).
        let prefix = format!("sla:first_response:{}:", site.id);
        let unanswered: std::collections::HashSet<&str> =
            due.iter().map(|c| c.id.0.as_str()).collect();
        self.inner.sla_told.retain(|k| {
            !k.starts_with(&prefix)
                || k[prefix.len()..]
                    .split(':')
                    .next()
                    .is_some_and(|c| unanswered.contains(c))
        });
        for c in due {
            let Some(since) = c.pending_since else {
                continue;
            };
            self.first_response_near(site, &c, now).await?;
            let Some(within) = Policy::resolve(site, &c.department).act_within_ms(c.offered) else {
                continue;
            };
            if now.saturating_sub(since) < within {
                continue;
            }
            let why = if c.offered {
                Missed::OfferTimeout
            } else {
                Missed::NoReply
            };
            self.take_back(site, &c, why, None).await?;
        }
        Ok(())
    }

    /// An active chat nobody has answered yet (its first assignment still waits for a reply:
    /// a reply, a transfer or a requeue ends that) nearing its department's first-response
    /// target, counted from the visitor's first message: supervisors are warned once per
    /// target and state, as for the wait target.
    async fn first_response_near(
        &self,
        site: &SiteConfig,
        c: &Conversation,
        now: Millis,
    ) -> Result<()> {
        if c.offered || c.pending_since.is_none() || c.pending_since != c.first_assigned_at {
            return Ok(());
        }
        let Some((target, share)) = Policy::resolve(site, &c.department).sla_first_response()
        else {
            return Ok(());
        };
        let elapsed = now.saturating_sub(c.created_at);
        if (elapsed as f64) < target as f64 * share {
            return Ok(());
        }
        let breached = elapsed >= target;
        let reached = super::routing::Reached {
            target: "first_response",
            since: c.created_at,
            elapsed,
            of: target,
            told: format!(
                "sla:first_response:{}:{}:{}:{breached}",
                site.id, c.id, c.created_at
            ),
        };
        self.sla_reached(site, &c.department, &c.id, reached).await
    }

    /// Takes a chat from its owner for the next agent it has not been tried with: the head
    /// of its queue, the visitor told, the owner's miss counted; after the department's
    /// `max_tries`, the chat overflows. False when the owner no longer had it.
    async fn take_back(
        &self,
        site: &SiteConfig,
        c: &Conversation,
        why: Missed,
        note: Option<String>,
    ) -> Result<bool> {
        let Some(owner) = c.agent.clone() else {
            return Ok(false);
        };
        let now = self.now();
        let store = &self.inner.store;
        let mut needs = c.needs.clone();
        if !needs.tried.contains(&owner) {
            needs.tried.push(owner.clone());
        }
        let dept = &c.department;
        let rules = policy::rules(site, dept);
        if !store
            .unassign(&site.id, &c.id, &owner, dept, now, &rules, Some(&needs))
            .await?
        {
            return Ok(false);
        }
        tracing::info!(site = %site.id, conversation = %c.id, agent = %owner, reason = why.as_str(), "chat taken back for the next agent");
        metrics::counter!(crate::observe::MISSED, "site" => site.id.0.clone(), "agent" => owner.0.clone(), "reason" => why.as_str()).increment(1);
        let who: AgentRef = self.agent_ref(site, &owner);
        store
            .append(
                &site.id,
                &c.id,
                &EventBody::Requeued {
                    at: now,
                    agent: who,
                    reason: why.as_str().into(),
                    note,
                },
            )
            .await?;
        self.agent_pushed(&site.id, &owner).await;
        self.emit(
            site,
            "conversation.missed",
            serde_json::json!({"conversation": c.id, "agent": owner, "reason": why.as_str()}),
        )
        .await;
        if needs.tried.len() >= Policy::resolve(site, dept).max_tries() {
            self.queue_changed(&site.id, dept).await;
            self.overflow(site, dept, &c.id, now, "max_tries").await?;
            return Ok(true);
        }
        // An offer the visitor never saw needs no apology: they are told their place again.
        let notice = if c.offered {
            let agents = self.agents_cached(&site.id, false).await?;
            let estimate = self.estimate(&agents, &site.id, dept, 1, now).await;
            Notice::queued(1, estimate)
        } else {
            Notice::plain(NoticeKind::Reassigned, Template::Reassigned, Some(1))
        };
        self.notice(site, dept, &c.id, &c.locale, notice).await?;
        self.inner.hub.note_position(&c.id, 1);
        self.queue_changed(&site.id, dept).await;
        self.drain(&site.id, dept).await?;
        Ok(true)
    }
}

fn no_offer() -> EngineError {
    EngineError::new(ErrorCode::NotFound, "no offer of this chat is yours")
}
