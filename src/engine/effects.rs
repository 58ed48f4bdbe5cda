//! The effects several concerns share: a notice to the visitor in their language, a webhook
//! event queued, and the pushes every node hears (a queue changed, an agent changed).

use super::{Engine, Result};
use crate::directory::model::SiteConfig;
use crate::envelope::Envelope;
use crate::model::{AgentId, ConvId, DeptId, EventBody, NoticeKind, SiteId};
use crate::push::{Audience, Note};
use crate::routing::estimate::WaitEstimate;
use crate::templates::{self, Template, Vars};
use crate::tickets::webhooks::deliveries_for;

/// A notice for `Engine::notice`: which one, and the queue place it states.
pub(super) struct Notice {
    kind: NoticeKind,
    template: Template,
    position: Option<u32>,
    /// Position and estimate, for the `queued` notice's text.
    queued: Option<(u32, WaitEstimate)>,
    /// The department a chat overflowed to, by name, for the `overflowed` notice's text.
    department: Option<String>,
    /// Minutes, for a notice that says them (the inactivity warning).
    minutes: Option<u32>,
    /// Stores the notice once however many nodes send it.
    client_id: Option<String>,
}

impl Notice {
    pub(super) fn plain(kind: NoticeKind, template: Template, position: Option<u32>) -> Self {
        Self {
            kind,
            template,
            position,
            queued: None,
            department: None,
            minutes: None,
            client_id: None,
        }
    }

    /// The visitor has been silent since `activity`: the chat closes in `minutes` unless they
    /// answer. Once per silence: its client id names the silence.
    pub(super) fn inactivity_warning(minutes: u32, activity: crate::model::Millis) -> Self {
        Self {
            minutes: Some(minutes),
            client_id: Some(format!("inactivity:{activity}")),
            ..Self::plain(
                NoticeKind::InactivityWarning,
                Template::InactivityWarning,
                None,
            )
        }
    }

    pub(super) fn overflowed(department: &str) -> Self {
        Self {
            department: Some(department.to_owned()),
            ..Self::plain(NoticeKind::Overflowed, Template::Overflowed, None)
        }
    }

    pub(super) fn queued(position: u32, estimate: WaitEstimate) -> Self {
        Self {
            kind: NoticeKind::Queued,
            template: Template::Queued,
            position: Some(position),
            queued: Some((position, estimate)),
            department: None,
            minutes: None,
            client_id: None,
        }
    }
}

impl Engine {
    /// Tells the browsers of the department's enabled agents (Web Push; their consoles hear
    /// it over their sockets).
    pub(super) fn push_department(&self, site: &SiteConfig, dept: &DeptId, note: Note) {
        self.inner
            .push
            .notify(&site.id, Audience::Department(dept.clone()), note);
    }

    /// A ticket waits in the inbox (an offline message, or an email `reply` to an answer):
    /// the site's consoles hear it (`offline_message`), the department's browsers get a note.
    pub(super) async fn announce_inbox(
        &self,
        site: &SiteConfig,
        ticket: &crate::tickets::Ticket,
        name: Option<String>,
        email: &str,
        text: &str,
        reply: bool,
    ) {
        self.push_department(
            site,
            &ticket.department,
            Note {
                kind: if reply { "email_reply" } else { "offline" },
                ticket: Some(ticket.id.clone()),
                department: Some(site.department_name(&ticket.department)),
                name: name.clone(),
                text: Some(text.chars().take(120).collect()),
                ..Default::default()
            },
        );
        self.publish(
            &site.id,
            Envelope::Offline {
                site: site.id.clone(),
                ticket: ticket.id.clone(),
                department: ticket.department.clone(),
                name,
                email: email.to_owned(),
                text: text.chars().take(200).collect(),
                reply,
            },
        )
        .await;
    }

    /// Queues an optional conversation event for the site's webhooks (if any subscribe).
    pub(super) async fn emit(&self, site: &SiteConfig, event: &str, data: serde_json::Value) {
        let deliveries = deliveries_for(site, event, &data, self.now());
        if deliveries.is_empty() {
            return;
        }
        match self.inner.tickets.enqueue(&deliveries).await {
            Ok(()) => self.inner.courier.wake(),
            Err(e) => tracing::error!(cause = %e, event, "could not queue webhook"),
        }
    }

    /// Stores a notice to the visitor, rendered in their language (site and department
    /// templates first).
    pub(super) async fn notice(
        &self,
        site: &SiteConfig,
        dept: &DeptId,
        conv: &ConvId,
        locale: &str,
        notice: Notice,
    ) -> Result<()> {
        let vars = Vars {
            position: notice.queued.map(|(p, _)| p),
            minutes: notice
                .queued
                .map(|(_, e)| e.point_minutes())
                .or(notice.minutes),
            range: notice.queued.map(|(_, e)| e.minutes()),
            department: notice.department.as_deref(),
            ..Vars::default()
        };
        let text = templates::render(site, Some(dept), locale, notice.template, &vars);
        let body = EventBody::Notice {
            at: self.now(),
            notice: notice.kind,
            text,
            position: notice.position,
            estimate_minutes: notice.queued.map(|(_, e)| e.point_minutes()),
            estimate: notice.queued.map(|(_, e)| e),
            client_id: notice.client_id,
        };
        self.inner.store.append(&site.id, conv, &body).await?;
        Ok(())
    }

    /// A department queue changed: every node refreshes positions and queue statistics.
    pub(super) async fn queue_changed(&self, site: &SiteId, dept: &DeptId) {
        let envelope = Envelope::Queue {
            site: site.clone(),
            dept: dept.clone(),
        };
        self.publish(site, envelope).await;
    }

    /// An agent's status, limit or load changed: their consoles on every node hear of it.
    pub(super) async fn agent_pushed(&self, site: &SiteId, agent: &AgentId) {
        let envelope = Envelope::Agent {
            site: site.clone(),
            agent: agent.clone(),
        };
        self.publish(site, envelope).await;
    }

    pub(super) async fn publish(&self, site: &SiteId, envelope: Envelope) {
        if let Err(e) = self.inner.store.publish(site, &envelope).await {
            // Ephemeral: the periodic sweep repairs positions and queue statistics.
            tracing::warn!(cause = %e, "publish failed");
        }
    }
}
