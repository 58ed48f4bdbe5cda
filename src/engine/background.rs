//! The node's background duties: queue notifications, presence refresh, the safety-net sweep,
//! the directory watch.

use std::time::Duration;

use super::{Engine, Result};
use crate::directory::model::SiteConfig;
use crate::model::{AuthorKind, Millis, SiteId};
use crate::protocol::ErrorCode;
use crate::shutdown::Shutdown;

/// A node refreshes its agents' presence this often (for how long, `presence::PRESENCE_TTL_MS`).
const PRESENCE_REFRESH: Duration = Duration::from_secs(5);

/// How often a node asks the database whether the directory changed: a change made on another
/// node is in force here within this (plus one read of the directory).
const DIRECTORY_POLL: Duration = Duration::from_millis(250);

/// How often a node probes its backends for `/readyz`: with the probe's own timeout, a backend
/// gone is reported within a second.
const READINESS_PROBE: Duration = Duration::from_millis(250);

/// The shortest interval between two queue-position refreshes on a node.
const QUEUE_REFRESH: Duration = Duration::from_millis(250);

/// Closed conversations left unticketed this long are ticketed by the sweep (a node died
/// between the close and the ticket).
const UNTICKETED_GRACE_MS: Millis = 10_000;

/// Gives freed heap pages back to the kernel. Every connection's handshake allocates buffers
/// that are freed right after the upgrade, between long-lived allocations; glibc keeps those
/// holes resident until trimmed, which would count against memory per idle connection.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe in glibc.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Engine {
    /// Runs the node's background duties until shutdown: queue notifications, presence refresh
    /// and the safety-net sweep (grace expiry, stuck queues, memory of closed chats).
    pub async fn run_background(self, mut shutdown: Shutdown) {
        let notifier = {
            let engine = self.clone();
            let mut shutdown = shutdown.clone();
            async move {
                loop {
                    let changed = tokio::select! {
                        c = engine.inner.hub.changed_queues() => c,
                        _ = shutdown.recv() => return,
                    };
                    for (site, dept) in changed {
                        if let Err(e) = engine.refresh_queue(&site, &dept).await {
                            tracing::warn!(cause = %e, "queue refresh failed");
                        }
                    }
                    // Coalesce bursts: at most 4 refreshes a second per node. While a long
                    // queue drains every position changes on every assignment; refreshing
                    // thousands of visitors 20 times a second cost more than the routing.
                    tokio::select! {
                        _ = tokio::time::sleep(QUEUE_REFRESH) => {}
                        _ = shutdown.recv() => return,
                    }
                }
            }
        };
        let courier = self.inner.courier.clone().run(shutdown.clone());
        let push = self.inner.push.clone().run(shutdown.clone());
        let mut watch_shutdown = shutdown.clone();
        let mut probe_shutdown = shutdown.clone();
        let triggers = self.run_triggers(shutdown.clone());
        let sweeper = async {
            let mut presence = tokio::time::interval(PRESENCE_REFRESH);
            presence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = presence.tick() => {
                        self.refresh_presence().await;
                        self.refresh_site_figures().await;
                        release_free_memory();
                    }
                    // Read each time: SIGHUP may change it.
                    _ = tokio::time::sleep(self.config().timing.sweep()) => self.sweep().await,
                    _ = shutdown.recv() => return,
                }
            }
        };
        let directory = async {
            let mut poll = tokio::time::interval(DIRECTORY_POLL);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = poll.tick() => self.sync_directory().await,
                    _ = watch_shutdown.recv() => return,
                }
            }
        };
        let probe = async {
            let mut every = tokio::time::interval(READINESS_PROBE);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => self.probe_readiness().await,
                    _ = probe_shutdown.recv() => return,
                }
            }
        };
        tokio::join!(notifier, sweeper, courier, push, triggers, directory, probe);
    }

    /// Asks a silent visitor whether they are still there, before the inactivity close. Once
    /// per silence, however many nodes sweep: the notice's client id names the silence.
    async fn warn_inactive(
        &self,
        site: &SiteConfig,
        conv: &crate::model::ConvId,
        activity: Millis,
        silent_ms: Millis,
        timeout_ms: Millis,
    ) -> Result<()> {
        let Some(c) = self.inner.store.conversation(&site.id, conv).await? else {
            return Ok(());
        };
        if c.state != crate::model::ConvState::Active {
            return Ok(());
        }
        let left = timeout_ms.saturating_sub(silent_ms);
        let minutes = u32::try_from((left.max(1) + 59_999) / 60_000).unwrap_or(u32::MAX);
        self.notice(
            site,
            &c.department,
            conv,
            &c.locale,
            super::effects::Notice::inactivity_warning(minutes, activity),
        )
        .await
    }

    /// Closes chats whose visitor went silent, and files tickets a dead node left unfiled.
    pub(super) async fn sweep_tickets(&self, site: &SiteConfig, now: Millis) -> Result<()> {
        let timeout = (site.inactivity_timeout_secs * 1000.0) as Millis;
        let warning = (site.inactivity_warning_secs * 1000.0) as Millis;
        for (conv, activity) in self
            .inner
            .store
            .inactive(&site.id, now - timeout + warning)
            .await?
        {
            if activity >= now - timeout {
                // Silent long enough for the warning, not yet for the close.
                self.warn_inactive(site, &conv, activity, now - activity, timeout)
                    .await?;
                continue;
            }
            tracing::info!(conversation = %conv, "closing: visitor inactive");
            match self
                .close_conversation(site, &conv, AuthorKind::System, "visitor_inactive")
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == ErrorCode::ConversationClosed => {}
                Err(e) => return Err(e),
            }
        }
        for conv in self.inner.store.unticketed(&site.id).await? {
            let Some(c) = self.inner.store.conversation(&site.id, &conv).await? else {
                self.inner.store.mark_ticketed(&site.id, &conv).await?;
                continue;
            };
            if c.closed_at.is_none_or(|t| t + UNTICKETED_GRACE_MS >= now) {
                continue;
            }
            if self.inner.tickets.get(&site.id, &conv.0).await?.is_none() {
                tracing::warn!(conversation = %conv, "filing a ticket left behind");
                self.file_ticket(site, &conv, true).await?;
            } else {
                self.inner.store.mark_ticketed(&site.id, &conv).await?;
            }
        }
        Ok(())
    }

    /// The site-wide gauges (`observe`), every presence refresh: the agents read again (so an
    /// agent whose consoles closed is counted offline once the grace is over, though nothing
    /// else happened), each department's queue figures at zero until its first refresh, the
    /// outbox's backlog, and no series left for a site or department the directory dropped.
    async fn refresh_site_figures(&self) {
        use crate::observe::{OUTBOX_DEAD, OUTBOX_PENDING};
        for site in &self.config().sites {
            if let Err(e) = self.agents_cached(&site.id, true).await {
                tracing::debug!(cause = %e.message, site = %site.id, "agent figures not read");
            }
        }
        self.site_figures_follow_directory();
        match self.inner.tickets.outbox_counts().await {
            Ok((pending, dead)) => {
                let figures = self.site_figures();
                figures.set(OUTBOX_PENDING, &[], pending as f64);
                figures.set(OUTBOX_DEAD, &[], dead as f64);
            }
            Err(e) => tracing::debug!(cause = %e, "outbox figures not read"),
        }
    }

    pub(super) async fn sweep(&self) {
        let now = self.now();
        self.apply_retention(now).await;
        let config = self.config();
        for site in &config.sites {
            if let Err(e) = self.sweep_tickets(site, now).await {
                tracing::warn!(cause = %e.message, site = %site.id, "ticket sweep failed");
            }
            if let Err(e) = self.expire_grace(site, now).await {
                tracing::warn!(cause = %e.message, site = %site.id, "grace sweep failed");
            }
            if let Err(e) = self.expire_pending(site, now).await {
                tracing::warn!(cause = %e.message, site = %site.id, "offer sweep failed");
            }
            if let Err(e) = self.overflow_waiting(site, now).await {
                tracing::warn!(cause = %e.message, site = %site.id, "overflow sweep failed");
            }
            for dept in &site.departments {
                if let Err(e) = self.drain(&site.id, &dept.id).await {
                    tracing::warn!(cause = %e.message, site = %site.id, "drain sweep failed");
                }
            }
        }
        let sites: Vec<SiteId> = config.sites.iter().map(|s| s.id.clone()).collect();
        if let Err(e) = self.inner.store.sweep_closed(&sites, now).await {
            tracing::warn!(cause = %e, "closed-conversation sweep failed");
        }
    }
}
