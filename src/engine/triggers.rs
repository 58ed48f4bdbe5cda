//! Proactive messages: scheduling a page view's triggers and firing them when due.

use std::sync::Arc;

use super::{Engine, Result};
use crate::directory::model::SiteConfig;
use crate::model::{AuthorKind, ConvState, Millis, SiteId, VisitorProfile};
use crate::shutdown::Shutdown;

impl Engine {
    /// A visitor socket's page view started (hello or navigation): schedules the site's
    /// triggers whose page conditions hold, replacing whatever the socket waited for before.
    pub fn page_seen(
        &self,
        site: &SiteId,
        session: crate::hub::SessionId,
        profile: &VisitorProfile,
    ) {
        let (Some(id), Ok(config)) = (&profile.id, self.site(site)) else {
            return;
        };
        // Most sites have no triggers: then no socket of theirs is ever scheduled.
        if config.triggers.is_empty() {
            return;
        }
        let now = self.now();
        let rules: Vec<(Millis, usize)> = config
            .triggers
            .iter()
            .enumerate()
            .filter(|(_, rule)| crate::triggers::matches(rule, profile))
            .map(|(i, rule)| (now + (rule.time_on_page_secs * 1000.0) as Millis, i))
            .collect();
        let pending = (!rules.is_empty()).then(|| {
            crate::triggers::Pending::new(site.clone(), id.clone(), profile.locale.clone(), rules)
        });
        self.inner.triggers.set(session, pending);
    }

    /// Fires due triggers until shutdown. One proactive message per page view at most: after
    /// one fires, the page view's other rules are dropped.
    pub(super) async fn run_triggers(&self, mut shutdown: Shutdown) {
        let schedule = &self.inner.triggers;
        loop {
            // By the engine's clock, so a test that moves it fires what became due.
            let due = schedule.next_due().unwrap_or(self.now() + 3_600_000);
            tokio::select! {
                _ = self.inner.clock.sleep_until(due) => {}
                _ = schedule.wakeup.notified() => continue,
                _ = shutdown.recv() => return,
            }
            let now = self.now();
            for (session, mut pending) in schedule.take_due(now) {
                while let Some(&(due, rule)) = pending.rules.first()
                    && due <= now
                {
                    pending.rules.remove(0);
                    match self.fire_trigger(session, &pending, rule, now).await {
                        Ok(true) => pending.rules.clear(),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(cause = %e.message, "trigger check failed"),
                    }
                }
                schedule.finish(session, pending);
            }
        }
    }

    /// Sends a due trigger's message if nothing stands in the way: an open conversation, closed
    /// business hours, or an earlier firing for this visitor. True when it was sent.
    pub(super) async fn fire_trigger(
        &self,
        session: crate::hub::SessionId,
        pending: &crate::triggers::Pending,
        index: usize,
        now: Millis,
    ) -> Result<bool> {
        let site = self.site(&pending.site)?;
        let site = &*site;
        let Some(rule) = site.triggers.get(index) else {
            return Ok(false);
        };
        if rule.business_hours_only && !site.department_open(site.answering(rule), self.now()) {
            return Ok(false);
        }
        let store = &self.inner.store;
        let (site_id, visitor) = (&pending.site, &pending.visitor);
        if store
            .visitor_conversation(site_id, visitor)
            .await?
            .is_some_and(|c| c.state != ConvState::Closed)
        {
            return Ok(false);
        }
        let until = rule
            .repeat_after_secs
            .map_or(Millis::MAX, |r| now + (r * 1000.0) as Millis);
        if !(self.inner.tickets)
            .claim_trigger(site_id, visitor, &rule.id, now, until)
            .await?
        {
            return Ok(false);
        }
        let push = crate::hub::ProactivePush {
            trigger: rule.id.clone(),
            text: crate::triggers::message_for(rule, &pending.locale).to_owned(),
            author_name: self.trigger_author(site, rule).2,
            at: now,
        };
        let sent = self
            .inner
            .hub
            .send_session(session, crate::hub::Push::Proactive(Arc::new(push)));
        tracing::info!(site = %site_id, trigger = %rule.id, sent, "trigger fired");
        Ok(sent)
    }

    /// Who a trigger's message is from: the named agent, or else the department.
    pub(super) fn trigger_author(
        &self,
        site: &SiteConfig,
        rule: &crate::directory::model::TriggerConfig,
    ) -> (AuthorKind, Option<String>, String) {
        match &rule.as_agent {
            Some(agent) => {
                let who = self.agent_ref(site, agent);
                (AuthorKind::Agent, Some(who.id.0), who.name)
            }
            None => (
                AuthorKind::System,
                None,
                site.department_name(site.answering(rule)),
            ),
        }
    }
}
