//! The directory at run time: seeding it from the file, changes made on this node (stored, then
//! installed at once), changes made on others (seen by the version poll), and what installing a
//! directory does to live state:
//! - agents new or changed are registered with their departments and limit, and the queues of
//!   their departments drain (a raised limit is capacity);
//! - agents removed or disabled are signed out on this node, leave their departments, go
//!   offline, and their chats return to the head of their queues;
//! - agents whose credentials changed (token rotated, password reset) are signed out.

use super::{Engine, EngineError, Result};
use crate::config::Config;
use crate::directory::model::{AgentConfig, SiteConfig};
use crate::directory::{self, Credentials};
use crate::model::{AgentId, AgentStatus, ConvId, DeptId, SiteId};
use crate::protocol::ErrorCode;
use crate::state::StoreError;
use serde_json::value::RawValue;
use std::sync::Arc;

pub use crate::directory::DirectoryError;

impl Engine {
    /// Start-up: an empty directory is seeded from the configuration file; then what the
    /// database holds is installed and registered with the state backend.
    pub async fn start_directory(&self) -> anyhow::Result<()> {
        use anyhow::Context;
        let store = &self.inner.directory;
        let config = self.config();
        if store.is_empty().await? {
            let mut seed = (*config).clone();
            seed.fill_defaults();
            seed.validate()
                .context("the configuration's directory is invalid")?;
            let writes = directory::diff(&[], &seed.sites);
            let version = store.version().await?;
            if store.commit(version, &writes, self.now()).await?.is_some() {
                tracing::info!(
                    sites = config.sites.len(),
                    "directory seeded from the configuration"
                );
            }
        }
        let (version, sites) = store.load().await?;
        let mut next = (*config).clone();
        next.sites = sites;
        next.validate()
            .context("the directory in the database is invalid")?;
        self.follow_sites(&next);
        self.install(next);
        self.inner
            .directory_version
            .store(version, std::sync::atomic::Ordering::Release);
        self.register_directory()
            .await
            .context("cannot register agents with the state backend")?;
        Ok(())
    }

    /// Puts a configuration in force; what was built from the one before goes.
    fn install(&self, next: Config) {
        self.inner.config.set(next);
        self.inner.consoles_directory.clear();
        self.site_figures_follow_directory();
    }

    /// The site-wide gauges of `/metrics`.
    pub fn site_figures(&self) -> &crate::observe::SiteFigures {
        &self.inner.site_figures
    }

    /// Each department's gauges at zero until first measured; none for a site or department
    /// the directory no longer has.
    pub(super) fn site_figures_follow_directory(&self) {
        use crate::observe::{AGENTS_AVAILABLE, QUEUE_OLDEST, QUEUE_SIZE};
        let config = self.config();
        let figures = &self.inner.site_figures;
        for site in &config.sites {
            for dept in &site.departments {
                let labels = [
                    ("site", site.id.0.as_str()),
                    ("department", dept.id.0.as_str()),
                ];
                for name in [QUEUE_SIZE, QUEUE_OLDEST, AGENTS_AVAILABLE] {
                    figures.zero(name, &labels);
                }
            }
        }
        figures.retain(|site, dept| {
            config
                .site(&SiteId::from(site))
                .is_some_and(|s| dept.is_none_or(|d| s.departments.iter().any(|x| x.id.0 == d)))
        });
    }

    /// The site as a console needs it (name, departments, agents as transfer targets, canned
    /// responses), serialized once per configuration in force: every console connecting or
    /// told of a change gets the same bytes.
    pub fn console_directory(&self, site: &SiteId) -> Result<Arc<RawValue>> {
        let config = self.config();
        if let Some(e) = self.inner.consoles_directory.get(site)
            && std::ptr::eq(e.0.as_ptr(), Arc::as_ptr(&config))
        {
            return Ok(e.1.clone());
        }
        let s = crate::config::Site::of(config.clone(), site)
            .ok_or_else(|| EngineError::new(ErrorCode::UnknownSite, format!("no site {site}")))?;
        let json = serde_json::json!({
            "id": s.id,
            "name": s.name.as_deref().unwrap_or(&s.id.0),
            "departments": s.departments.iter().map(|d| serde_json::json!({
                "id": d.id,
                "name": s.department_name(&d.id),
            })).collect::<Vec<_>>(),
            "agents": s.agents.iter().map(|a| serde_json::json!({
                "id": a.id,
                "name": a.name,
                "departments": a.departments,
            })).collect::<Vec<_>>(),
            "canned": s.canned,
        });
        let raw: Arc<RawValue> = serde_json::value::to_raw_value(&json)
            .map_err(|e| {
                // A JSON value always serializes; kept an error rather than a panic.
                tracing::error!(cause = %e, site = %site, "could not serialize the site's directory");
                EngineError::unavailable()
            })?
            .into();
        self.inner
            .consoles_directory
            .insert(site.clone(), (Arc::downgrade(&config), raw.clone()));
        Ok(raw)
    }

    /// Tells the state backend which sites to listen to (a cluster subscribes one by one).
    fn follow_sites(&self, config: &Config) {
        let sites = config.sites.iter().map(|s| s.id.clone()).collect();
        self.inner.store.follow_sites(sites);
    }

    /// Registers every agent of the directory in force with the state backend (start-up, and
    /// after Redis lost its data).
    async fn register_directory(&self) -> std::result::Result<(), StoreError> {
        let config = self.config();
        for site in &config.sites {
            for agent in &site.agents {
                self.register_listed(site, agent).await?;
            }
        }
        Ok(())
    }

    /// Registers one agent as the directory lists them: their departments (none while
    /// disabled) among all of the site's.
    pub(super) async fn register_listed(
        &self,
        site: &SiteConfig,
        agent: &AgentConfig,
    ) -> std::result::Result<(), StoreError> {
        self.inner
            .store
            .register_agent(&site.id, &enlisted(agent), &dept_ids(site))
            .await
    }

    /// Redis lost this node's state (restarted empty, or a failover to a primary without it):
    /// every agent of the directory is registered again, and every session of this node is
    /// told to put back what it holds: consoles their presence and status, and each side learns
    /// which of its conversations are gone. Visitor presence returns with the next refresh.
    /// False when it could not finish (the backend failed again): the next probe retries.
    pub(super) async fn rebuild(&self) -> bool {
        tracing::warn!("redis lost this node's state (restarted empty or failed over); rebuilding");
        if let Err(e) = self.register_directory().await {
            tracing::warn!(cause = %e, "rebuild: registering agents failed; the next probe retries");
            return false;
        }
        self.inner.hub.rebuild_all();
        tracing::info!("rebuild: agents registered; sessions are putting back their state");
        true
    }

    /// Whether a conversation still exists in live state (after a rebuild, it may not).
    pub async fn conversation_exists(&self, site: &SiteId, conv: &ConvId) -> Result<bool> {
        Ok(self.inner.store.conversation(site, conv).await?.is_some())
    }

    /// Changes the directory (validated as the file is), and installs the result here at once.
    pub async fn change_directory(
        &self,
        edit: impl FnMut(&mut Vec<SiteConfig>) -> std::result::Result<(), DirectoryError>,
    ) -> std::result::Result<bool, DirectoryError> {
        let changed = directory::change(&self.inner.directory, self.now(), edit).await?;
        if changed.is_some() {
            self.sync_directory().await;
        }
        Ok(changed.is_some())
    }

    /// Changes an agent's credentials; the agent is signed out on every node.
    pub async fn set_credentials(
        &self,
        site: &SiteId,
        agent: &AgentId,
        change: Credentials,
    ) -> std::result::Result<(), DirectoryError> {
        directory::set_credentials(&self.inner.directory, site, agent, change, self.now()).await?;
        self.sync_directory().await;
        Ok(())
    }

    /// Who an agent socket's `hello` is: an API token (looked up in the database, so a rotated
    /// one is refused at once on every node), a single-sign-on JWT of a site's `sso_secret`, or
    /// (empty token) the console session the upgrade's cookie named. The agent must be listed
    /// and enabled in the directory in force.
    pub async fn authenticate_agent(
        &self,
        token: &str,
        signed_in: Option<(SiteId, AgentId)>,
    ) -> Result<(SiteId, AgentId)> {
        let refused = |m: &str| EngineError::new(ErrorCode::Unauthorized, m);
        let (site, agent) = if token.is_empty() {
            signed_in.ok_or_else(|| refused("sign in first, or send a token"))?
        } else if crate::auth::looks_like_jwt(token) {
            self.sso_agent(token)
                .ok_or_else(|| refused("single sign-on token invalid or expired"))?
        } else {
            let hash = crate::auth::token_hash(token);
            match self.inner.directory.agent_by_token(&hash).await? {
                Some(found) => found,
                None => return Err(refused("unknown token")),
            }
        };
        let config = self.config();
        match config.site(&site).and_then(|s| s.agent(&agent)) {
            Some(a) if !a.disabled => Ok((site, agent)),
            _ => Err(refused("this agent is disabled or no longer listed")),
        }
    }

    fn sso_agent(&self, token: &str) -> Option<(SiteId, AgentId)> {
        let config = self.config();
        let now_secs = self.now() / 1000;
        config.sites.iter().find_map(|site| {
            let secret = site.sso_secret.as_ref()?;
            let claims = crate::auth::verify_sso(secret, token, now_secs)?;
            if claims.site != site.id.0
                || site
                    .sso_issuer
                    .as_ref()
                    .is_some_and(|iss| claims.iss.as_ref() != Some(iss))
                || site
                    .sso_audience
                    .as_ref()
                    .is_some_and(|aud| !claims.for_audience(aud))
            {
                return None;
            }
            let agent = AgentId(claims.sub);
            // Issued before the agent's credentials last changed (a reset, a disable): void.
            let changed = site.agent(&agent).map_or(0, |a| a.credentials_at);
            (claims.iat * 1000 >= changed).then(|| (site.id.clone(), agent))
        })
    }

    /// SIGHUP: puts the file's settings in force (limits, timing, retention, logging), keeping
    /// the directory, which lives in the database. Returns the settings that cannot change
    /// without a restart but differ in the file; they keep their old values.
    pub async fn reload_settings(&self, file: Config) -> Vec<&'static str> {
        // Not interleaved with a directory install: each would overwrite the other's half.
        let _turn = self.inner.installing.lock().await;
        let old = self.config();
        let mut fixed = Vec::new();
        let mut next = file;
        macro_rules! keep {
            ($($field:ident).+, $name:literal) => {
                if format!("{:?}", next.$($field).+) != format!("{:?}", old.$($field).+) {
                    fixed.push($name);
                }
                next.$($field).+ = old.$($field).+.clone();
            };
        }
        keep!(listen, "listen");
        keep!(redis_url, "redis_url");
        keep!(redis_ca_file, "redis_ca_file");
        keep!(metrics_listen, "metrics_listen");
        keep!(database_url, "database_url");
        keep!(data_dir, "data_dir");
        keep!(key_prefix, "key_prefix");
        keep!(secret, "secret");
        keep!(durability, "durability");
        keep!(limits.send_queue, "limits.send_queue");
        next.sites = old.sites.clone();
        self.install(next);
        fixed
    }

    /// Installs the stored directory if it moved past the one in force here.
    pub(super) async fn sync_directory(&self) {
        let store = &self.inner.directory;
        let current = self
            .inner
            .directory_version
            .load(std::sync::atomic::Ordering::Acquire);
        let failing = &self.inner.directory_failing;
        match store.version().await {
            Ok(v) => {
                if failing.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    tracing::info!("directory version readable again");
                }
                if v == current {
                    return;
                }
            }
            Err(e) => {
                // Once per outage, not four times a second: the directory in force stays.
                if !failing.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(cause = %e, "cannot read the directory version; keeping the one in force");
                }
                return;
            }
        }
        let _turn = self.inner.installing.lock().await;
        let (version, sites) = match store.load().await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot read the directory");
                return;
            }
        };
        let current = self
            .inner
            .directory_version
            .load(std::sync::atomic::Ordering::Acquire);
        if version <= current {
            return;
        }
        let old = self.config();
        let mut next = (*old).clone();
        next.sites = sites;
        if let Err(e) = next.validate() {
            // Only a bug or a hand edit of the database gets here: keep what is in force.
            tracing::error!(cause = %e, version, "stored directory is invalid; not installed");
            return;
        }
        self.follow_sites(&next);
        self.install(next);
        self.inner
            .directory_version
            .store(version, std::sync::atomic::Ordering::Release);
        tracing::info!(version, "directory installed");
        let new = self.config();
        if let Err(e) = self.apply_directory(&old, &new).await {
            tracing::warn!(cause = %e.message, "applying the directory to live state failed; the sweep retries");
        }
        // Signed-in consoles see a new canned response, agent or department at once.
        for site in &new.sites {
            self.inner.hub.directory_changed(&site.id);
        }
    }

    /// What a new directory changes in live state (see the module comment).
    async fn apply_directory(&self, old: &Config, new: &Config) -> Result<()> {
        for site in &new.sites {
            let depts = dept_ids(site);
            let before = old.site(&site.id);
            let depts_changed = before.is_none_or(|b| dept_ids(b) != depts);
            let mut drain = std::collections::BTreeSet::new();
            for agent in &site.agents {
                let prior = before.and_then(|b| b.agent(&agent.id));
                if prior.is_some_and(|p| p.credentials != agent.credentials) {
                    self.inner.hub.sign_out(&site.id, &agent.id);
                }
                if agent.disabled {
                    if prior.is_none_or(|p| !p.disabled) {
                        self.retire(site, agent, &depts, "agent_disabled").await?;
                    }
                    continue;
                }
                let changed = prior.is_none_or(|p| {
                    p.disabled
                        || p.name != agent.name
                        || p.departments != agent.departments
                        || p.max_concurrent != agent.max_concurrent
                        || p.skills != agent.skills
                });
                if changed || depts_changed {
                    self.register_listed(site, agent).await?;
                    // An admin's new limit is in force at once (the agent may lower it again
                    // from the console); raised, it drains the queue below.
                    if prior.is_some_and(|p| p.max_concurrent != agent.max_concurrent) {
                        self.inner
                            .store
                            .set_limit(&site.id, &agent.id, agent.max_concurrent)
                            .await?;
                    }
                    drain.extend(agent.departments.iter().cloned());
                    self.agent_pushed(&site.id, &agent.id).await;
                }
            }
            for prior in before.iter().flat_map(|b| b.agents.iter()) {
                if site.agent(&prior.id).is_none() && !prior.disabled {
                    self.retire(site, prior, &depts, "agent_removed").await?;
                }
            }
            // A new policy may let waiting chats through (a skill dropped, a shorter wait).
            let policy_changed = before.is_none_or(|b| {
                b.routing != site.routing
                    || b.departments
                        .iter()
                        .map(|d| (&d.id, &d.routing))
                        .ne(site.departments.iter().map(|d| (&d.id, &d.routing)))
            });
            if policy_changed {
                drain.extend(depts.iter().cloned());
            }
            for dept in drain {
                self.drain(&site.id, &dept).await?;
            }
        }
        for site in &old.sites {
            if new.site(&site.id).is_none() {
                let depts = dept_ids(site);
                for agent in site.agents.iter().filter(|a| !a.disabled) {
                    self.retire(site, agent, &depts, "site_removed").await?;
                }
            }
        }
        Ok(())
    }

    /// An agent leaves: signed out here, out of every department, offline, and their chats
    /// back at the head of their queues. Every node does it; the requeue is conditional on
    /// the owner, so each chat moves once.
    async fn retire(
        &self,
        site: &SiteConfig,
        agent: &AgentConfig,
        depts: &[DeptId],
        reason: &str,
    ) -> Result<()> {
        tracing::info!(site = %site.id, agent = %agent.id, reason, "agent leaves: signed out, chats requeued");
        self.inner.hub.sign_out(&site.id, &agent.id);
        let store = &self.inner.store;
        let mut gone = agent.clone();
        gone.departments.clear();
        store.register_agent(&site.id, &gone, depts).await?;
        store
            .set_status(&site.id, &agent.id, AgentStatus::Offline)
            .await?;
        match store.agent(&site.id, &agent.id).await? {
            // Requeueing tells the agent's consoles, as every requeue does.
            Some(state) => self.requeue_chats(site, &state, reason, self.now()).await?,
            None => self.agent_pushed(&site.id, &agent.id).await,
        }
        Ok(())
    }
}

fn dept_ids(site: &SiteConfig) -> Vec<DeptId> {
    site.departments.iter().map(|d| d.id.clone()).collect()
}

/// The agent as the state backend should route to them: a disabled one in no department.
fn enlisted(agent: &AgentConfig) -> AgentConfig {
    let mut a = agent.clone();
    if a.disabled {
        a.departments.clear();
    }
    a
}
