//! Who is on the site: visitor presence, the live list agents watch, presence refresh.

use super::{Engine, Result};
use crate::envelope::Envelope;
use crate::model::{ConvState, LiveVisitor, Millis, SiteId, VisitorId};
use crate::protocol::secs_since;

/// A node vouches for its agents and visitors for them this long, so a dead node's agents fall into grace soon after.
pub(super) const PRESENCE_TTL_MS: Millis = 15_000;

impl Engine {
    /// Whether presence must be refreshed: only when several nodes share state, so that a dead
    /// node's connections lapse. A single process always knows when its own sockets close.
    pub(super) fn shared_state(&self) -> bool {
        self.config().redis_url.is_some()
    }

    /// One visitor as the live list shows them (None if unknown).
    pub async fn live_visitor(
        &self,
        site: &SiteId,
        id: &VisitorId,
        now: Millis,
    ) -> Result<Option<LiveVisitor>> {
        let store = &self.inner.store;
        let Some(p) = self.inner.tickets.visitor(site, id).await? else {
            return Ok(None);
        };
        let conv = store
            .visitor_conversation(site, id)
            .await?
            .filter(|c| c.state != ConvState::Closed);
        let this_visit: Vec<_> = p
            .pages
            .iter()
            .filter(|pg| pg.at >= p.visit_started)
            .cloned()
            .collect();
        Ok(Some(LiveVisitor {
            site: site.clone(),
            id: id.clone(),
            name: p.name.clone(),
            email: p.email.clone(),
            page_url: p.page_url.clone(),
            page_title: p.page_title.clone(),
            referrer: p.referrer.clone(),
            utm: p.utm.clone(),
            locale: p.locale.clone(),
            timezone: p.timezone.clone(),
            device: p.device,
            country: p.country,
            time_on_site_secs: secs_since(p.visit_started, now),
            pages_this_visit: this_visit,
            visits: p.visits,
            returning: p.visits > 1,
            in_chat: conv.map(|c| c.id),
        }))
    }

    /// Everyone on the site right now.
    pub async fn live_visitors(&self, site: &SiteId) -> Result<Vec<LiveVisitor>> {
        let now = self.now();
        let mut out = Vec::new();
        for id in self.inner.store.live_visitors(site, now).await? {
            out.extend(self.live_visitor(site, &id, now).await?);
        }
        Ok(out)
    }

    /// Tells agents watching the live list that a visitor arrived, moved or left.
    pub(super) async fn visitor_changed(&self, site: &SiteId, visitor: &VisitorId, live: bool) {
        self.publish(
            site,
            Envelope::Visitor {
                site: site.clone(),
                visitor: visitor.clone(),
                live,
            },
        )
        .await;
    }

    /// A visitor's socket is open on this node.
    pub async fn visitor_connected(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        session: crate::hub::SessionId,
    ) {
        self.inner.hub.join_visitor(site, visitor, session);
        let until = if self.shared_state() {
            self.now() + PRESENCE_TTL_MS
        } else {
            Millis::MAX
        };
        if let Err(e) = self
            .inner
            .store
            .set_visitor_presence(site, std::slice::from_ref(visitor), until)
            .await
        {
            tracing::warn!(cause = %e, "could not record visitor presence");
        }
        self.visitor_changed(site, visitor, true).await;
    }

    /// A visitor's socket closed; with their last one on this node they leave the live list.
    pub async fn visitor_disconnected(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        session: crate::hub::SessionId,
    ) {
        if self.site(site).is_ok_and(|s| !s.triggers.is_empty()) {
            self.inner.triggers.set(session, None);
        }
        if self.inner.hub.leave_visitor(site, visitor, session) > 0 {
            return;
        }
        if let Err(e) = self.inner.store.visitor_left(site, visitor).await {
            // Presence then lapses on its own after PRESENCE_TTL_MS.
            tracing::warn!(cause = %e, "could not record a visitor leaving");
        }
        self.visitor_changed(site, visitor, false).await;
    }

    pub(super) async fn refresh_presence(&self) {
        let until = self.now() + PRESENCE_TTL_MS;
        self.refresh_agent_presence(until).await;
        if !self.shared_state() {
            return;
        }
        let mut by_site: std::collections::HashMap<SiteId, Vec<VisitorId>> = Default::default();
        for (site, visitor) in self.inner.hub.local_visitors() {
            by_site.entry(site).or_default().push(visitor);
        }
        for (site, visitors) in by_site {
            if let Err(e) = self
                .inner
                .store
                .set_visitor_presence(&site, &visitors, until)
                .await
            {
                tracing::warn!(cause = %e, "visitor presence refresh failed");
            }
        }
    }

    pub(super) async fn refresh_agent_presence(&self, until: Millis) {
        for (site, agent) in self.inner.hub.local_agents() {
            if let Err(e) = self
                .inner
                .store
                .set_presence(&site, &agent, &self.inner.node, until)
                .await
            {
                tracing::warn!(cause = %e, agent = %agent, "presence refresh failed");
            }
        }
    }
}
