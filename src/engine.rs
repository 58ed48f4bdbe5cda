//! The engine: what happens when a visitor writes, an agent answers, a chat closes or moves, and
//! capacity appears. It holds no state of its own beyond handles; every decision that must be
//! atomic is one `Store` call, so the same code is correct on one node or many.
//!
//! Where a visitor's message goes: `ws::visitor` parses it → `Engine::visitor_message` stores it
//! (`Store::append`, which publishes) → on the first message, `route_new` acknowledges at once
//! and queues or assigns → `Hub::dispatch` on every node hands the event to the sockets that
//! follow the conversation → `ws::agent` sends it to the owner's consoles.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Keys;
use crate::config::{Config, SiteConfig};
use crate::hub::Hub;
use crate::model::{
    AgentId, AgentRef, AgentState, AgentStatus, AuthorKind, Clock, ConvId, ConvState, Conversation,
    DeptId, EventBody, Millis, NoticeKind, SiteId, VisitorId, VisitorProfile, now_ms,
};
use crate::protocol::{ClientId, ErrorCode, MessageText, QueueStat, estimate_minutes, secs_since};
use crate::shutdown::Shutdown;
use crate::state::{Envelope, Guard, Reassign, Store, StoreError};
use crate::templates::{self, Template, Vars};
use crate::tickets::webhooks::{Courier, deliveries_for};
use crate::tickets::{OfflineMessage, Rating, Ticket, TicketStore};

/// A node refreshes its agents' presence this often…
const PRESENCE_REFRESH: Duration = Duration::from_secs(5);
/// …and vouches for them this long, so a dead node's agents fall into grace soon after.
const PRESENCE_TTL_MS: Millis = 15_000;

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

/// An error a client can act on: a stable code and a sentence.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct EngineError {
    pub code: ErrorCode,
    pub message: String,
}

impl EngineError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        // Logged once here; the client only learns that it may retry.
        tracing::error!(cause = %e, "state backend failed");
        EngineError::new(
            ErrorCode::Unavailable,
            "temporarily unavailable, retry with the same client_id",
        )
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// A stored message's acknowledgement.
#[derive(Clone, Debug)]
pub struct Ack {
    pub conv: ConvId,
    pub seq: u64,
}

/// What a visitor's `hello` establishes.
pub struct VisitorSession {
    pub id: VisitorId,
    pub token: String,
    pub profile: VisitorProfile,
    pub conversation: Option<Conversation>,
}

/// The fields of a visitor `hello` the engine uses.
#[derive(Default)]
pub struct VisitorHello {
    pub token: Option<String>,
    pub user_id: Option<String>,
    pub user_hash: Option<String>,
    pub fields: std::collections::BTreeMap<String, String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    pub referrer: Option<String>,
    pub locale: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub user_agent: Option<String>,
}

/// Where a visitor's first message goes.
#[derive(Clone, Copy, Default)]
pub struct Route<'a> {
    /// Chosen by the visitor (pre-chat form); the site's default without it.
    pub department: Option<&'a DeptId>,
    /// The trigger whose proactive message the visitor answers: its department wins.
    pub trigger: Option<&'a str>,
}

/// The chat logic. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    hub: Hub,
    keys: Keys,
    /// Durable tickets and the webhook outbox.
    tickets: Arc<dyn TicketStore>,
    /// Sends the outbox; woken when this node queues a delivery.
    courier: Courier,
    /// The time for business hours (controllable in tests).
    clock: Arc<dyn Clock>,
    /// Recently read agent states per site, for on-duty checks and estimates only (never for
    /// routing decisions, which are atomic in the store). Saves reading every agent for each
    /// new chat.
    agents_cache: dashmap::DashMap<SiteId, (std::time::Instant, Arc<Vec<AgentState>>)>,
    /// This process's id in presence records.
    node: String,
    /// Trigger rules waiting for their time on page, per visitor socket of this node.
    triggers: crate::triggers::Schedule,
}

/// The shortest interval between two queue-position refreshes on a node.
const QUEUE_REFRESH: Duration = Duration::from_millis(250);

/// How long an agents snapshot serves on-duty checks and estimates.
const AGENTS_CACHE: Duration = Duration::from_millis(250);

/// Closed conversations left unticketed this long are ticketed by the sweep (a node died
/// between the close and the ticket).
const UNTICKETED_GRACE_MS: Millis = 10_000;
/// An offline message joins the visitor's offline conversation if it closed this recently.
const OFFLINE_ATTACH_MS: Millis = 3_600_000;

fn clip(s: Option<String>, max: usize) -> Option<String> {
    s.map(|s| s.chars().take(max).collect::<String>())
        .filter(|s| !s.trim().is_empty())
}

impl Engine {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        hub: Hub,
        keys: Keys,
        tickets: Arc<dyn TicketStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let courier = Courier::new(tickets.clone(), config.clone());
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                hub,
                keys,
                tickets,
                courier,
                clock,
                agents_cache: dashmap::DashMap::new(),
                node: ulid::Ulid::new().to_string(),
                triggers: crate::triggers::Schedule::default(),
            }),
        }
    }

    pub fn tickets(&self) -> &dyn TicketStore {
        &*self.inner.tickets
    }

    pub fn courier(&self) -> &Courier {
        &self.inner.courier
    }

    /// Agent states read at most `AGENTS_CACHE` ago (or now, with `fresh`).
    async fn agents_cached(&self, site: &SiteId, fresh: bool) -> Result<Arc<Vec<AgentState>>> {
        if !fresh
            && let Some(e) = self.inner.agents_cache.get(site)
            && e.0.elapsed() < AGENTS_CACHE
        {
            return Ok(e.1.clone());
        }
        let agents = Arc::new(self.inner.store.agents(site).await?);
        self.inner
            .agents_cache
            .insert(site.clone(), (std::time::Instant::now(), agents.clone()));
        Ok(agents)
    }

    /// Queues an optional conversation event for the site's webhooks (if any subscribe).
    async fn emit(&self, site: &SiteConfig, event: &str, data: serde_json::Value) {
        let deliveries = deliveries_for(site, event, &data, now_ms());
        if deliveries.is_empty() {
            return;
        }
        match self.inner.tickets.enqueue(&deliveries).await {
            Ok(()) => self.inner.courier.wake(),
            Err(e) => tracing::error!(cause = %e, event, "could not queue webhook"),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    fn grace_ms(&self) -> Millis {
        self.inner.config.timing.grace_ms()
    }

    fn retention_ms(&self) -> Millis {
        (self.inner.config.timing.closed_retention_secs * 1000.0) as Millis
    }

    pub fn site(&self, site: &SiteId) -> Result<&SiteConfig> {
        self.inner
            .config
            .site(site)
            .ok_or_else(|| EngineError::new(ErrorCode::UnknownSite, format!("no site {site}")))
    }

    /// Registers every configured agent with the backend (start-up).
    pub async fn register_agents(&self) -> std::result::Result<(), StoreError> {
        for site in &self.inner.config.sites {
            for agent in &site.agents {
                self.inner.store.register_agent(&site.id, agent).await?;
            }
        }
        Ok(())
    }

    async fn publish(&self, site: &SiteId, envelope: Envelope) {
        if let Err(e) = self.inner.store.publish(site, &envelope).await {
            // Ephemeral: the periodic sweep repairs positions and queue statistics.
            tracing::warn!(cause = %e, "publish failed");
        }
    }

    fn agent_ref(&self, site: &SiteConfig, agent: &AgentId) -> AgentRef {
        AgentRef {
            id: agent.clone(),
            name: site
                .agent(agent)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| agent.0.clone()),
        }
    }

    /// Validates message text against the configured length.
    pub fn message_text(&self, text: String) -> Result<MessageText> {
        MessageText::parse(text, self.inner.config.limits.max_message_chars)
            .map_err(|code| EngineError::new(code, "message text is empty or too long"))
    }

    // ----- visitors -----

    /// Identifies (or mints) the visitor and records where they are.
    pub async fn visitor_hello(
        &self,
        site_id: &SiteId,
        hello: VisitorHello,
    ) -> Result<VisitorSession> {
        let site = self.site(site_id)?;
        let now = now_ms();
        let known = match &hello.token {
            Some(t) => Some(self.inner.keys.verify_visitor(site_id, t).ok_or_else(|| {
                EngineError::new(ErrorCode::Unauthorized, "invalid visitor token")
            })?),
            None => None,
        };
        let (id, existing) = match known {
            Some(id) => {
                let p = self.inner.store.visitor(site_id, &id).await?;
                (id, p)
            }
            None => (VisitorId::generate(), None),
        };
        let mut profile = existing.unwrap_or_else(|| VisitorProfile {
            id: Some(id.clone()),
            first_seen: now,
            ..VisitorProfile::default()
        });
        // A new visit on first contact or after half an hour away; page loads within a visit
        // do not count again.
        if profile.visits == 0 || now - profile.last_seen > crate::model::VISIT_GAP_MS {
            profile.visits += 1;
            profile.visit_started = now;
        }
        profile.last_seen = now;
        if let Some(user_id) = clip(hello.user_id, 200) {
            let secret = site.identity_secret.as_ref().ok_or_else(|| {
                EngineError::new(
                    ErrorCode::IdentityMismatch,
                    "this site does not verify identities",
                )
            })?;
            let hash = hello.user_hash.unwrap_or_default();
            if !crate::auth::verify_user_hash(secret, &user_id, &hash) {
                return Err(EngineError::new(
                    ErrorCode::IdentityMismatch,
                    "user_hash does not match user_id",
                ));
            }
            profile.user_id = Some(user_id);
            profile.verified = true;
        }
        profile.locale = clip(hello.locale, 35)
            .or_else(|| Some(profile.locale.clone()).filter(|l| !l.is_empty()))
            .unwrap_or_else(|| site.default_locale.clone());
        if hello.page_url.is_some() {
            profile.page_url = clip(hello.page_url, 2048);
            profile.page_title = clip(hello.page_title, 512);
            if let Some(url) = profile.page_url.clone() {
                profile.visit(&url, profile.page_title.clone(), now);
            }
        }
        if let Some(r) = clip(hello.referrer, 2048) {
            profile.referrer = Some(r);
        }
        if let Some(n) = clip(hello.name, 200) {
            profile.name = Some(n);
        }
        if let Some(e) = clip(hello.email, 320) {
            profile.email = Some(e);
        }
        for (k, v) in hello.fields.into_iter().take(20) {
            if let (Some(k), Some(v)) = (clip(Some(k), 64), clip(Some(v), 500)) {
                profile.fields.insert(k, v);
            }
        }
        if let Some(ua) = clip(hello.user_agent, 512) {
            profile.user_agent = Some(ua);
        }
        self.inner.store.put_visitor(site_id, &profile).await?;
        let conversation = self.inner.store.visitor_conversation(site_id, &id).await?;
        let token = self.inner.keys.visitor_token(site_id, &id);
        Ok(VisitorSession {
            id,
            token,
            profile,
            conversation,
        })
    }

    /// A navigation inside the site.
    pub async fn visitor_page(
        &self,
        site: &SiteId,
        profile: &mut VisitorProfile,
        url: Option<String>,
        title: Option<String>,
    ) -> Result<()> {
        profile.page_url = clip(url, 2048);
        profile.page_title = clip(title, 512);
        profile.last_seen = now_ms();
        if let Some(url) = profile.page_url.clone() {
            profile.visit(&url, profile.page_title.clone(), profile.last_seen);
        }
        self.inner.store.put_visitor(site, profile).await?;
        if let Some(id) = &profile.id {
            self.visitor_changed(site, id, true).await;
        }
        Ok(())
    }

    /// Stores a visitor's message; the first one opens a conversation and is answered at once.
    /// With the conversation the session follows, a message in an open chat is one store call.
    pub async fn visitor_message(
        &self,
        site_id: &SiteId,
        profile: &VisitorProfile,
        route: Route<'_>,
        current: Option<&ConvId>,
        client_id: ClientId,
        text: MessageText,
    ) -> Result<Ack> {
        let site = self.site(site_id)?;
        let visitor = profile
            .id
            .clone()
            .ok_or_else(|| EngineError::new(ErrorCode::HelloRequired, "say hello first"))?;
        let body = EventBody::Message {
            at: now_ms(),
            author: AuthorKind::Visitor,
            author_id: Some(visitor.0.clone()),
            author_name: profile.name.clone(),
            text: text.into_inner(),
            client_id: Some(client_id.as_str().to_owned()),
        };
        if let Some(conv) = current
            && let Some(appended) = self
                .inner
                .store
                .append_guarded(site_id, conv, &body, &Guard::VisitorOpen(visitor.clone()))
                .await?
        {
            return Ok(Ack {
                conv: conv.clone(),
                seq: appended.seq,
            });
        }
        // An answer to a trigger's message goes to the trigger's department.
        let trigger = route.trigger.and_then(|t| site.trigger(t));
        let department = trigger
            .and_then(|t| t.department.as_ref())
            .or(route.department);
        let dept = match department {
            Some(d) if site.department(d).is_some() => d.clone(),
            Some(d) => {
                return Err(EngineError::new(
                    ErrorCode::UnknownDepartment,
                    format!("no department {d}"),
                ));
            }
            None => site.default_department().clone(),
        };
        let now = now_ms();
        let current = self
            .inner
            .store
            .visitor_conversation(site_id, &visitor)
            .await?;
        let (conv, created) = match current {
            Some(c) if c.state != ConvState::Closed => (c, false),
            _ => {
                let new = Conversation::new(visitor.clone(), dept, profile.locale.clone(), now);
                self.inner.store.open_conversation(site_id, &new).await?
            }
        };
        if created && let Some(rule) = trigger {
            // The transcript starts with the message the visitor answered.
            let (author, author_id, name) = self.trigger_author(site, rule);
            let proactive = EventBody::Message {
                at: now,
                author,
                author_id,
                author_name: Some(name),
                text: crate::triggers::message_for(rule, &conv.locale).to_owned(),
                client_id: None,
            };
            self.inner
                .store
                .append(site_id, &conv.id, &proactive)
                .await?;
        }
        let appended = self.inner.store.append(site_id, &conv.id, &body).await?;
        if created {
            self.route_new(site, &conv).await?;
        }
        Ok(Ack {
            conv: conv.id,
            seq: appended.seq,
        })
    }

    /// Answers a new conversation at once: queued (and perhaps assigned right away) or offline.
    async fn route_new(&self, site: &SiteConfig, conv: &Conversation) -> Result<()> {
        self.visitor_changed(&site.id, &conv.visitor, true).await;
        let store = &self.inner.store;
        let now = now_ms();
        let dept = &conv.department;
        let grace = self.grace_ms();
        let on_duty = |agents: &[AgentState]| {
            agents.iter().any(|a| {
                a.departments.contains(dept)
                    && a.status != AgentStatus::Offline
                    && a.present(now, grace)
            })
        };
        let mut agents = self.agents_cached(&site.id, false).await?;
        if !on_duty(&agents) {
            // Never send a visitor away on a stale snapshot.
            agents = self.agents_cached(&site.id, true).await?;
        }
        let staffed = on_duty(&agents);
        let open = self.department_open(site, dept);
        if !open || !staffed {
            let text = templates::render(
                site,
                Some(dept),
                &conv.locale,
                Template::Offline,
                &Vars::default(),
            );
            store
                .append(
                    &site.id,
                    &conv.id,
                    &EventBody::Notice {
                        at: now,
                        notice: NoticeKind::Offline,
                        text,
                        position: None,
                        estimate_minutes: None,
                    },
                )
                .await?;
            let reason = if open { "no_agent" } else { "out_of_hours" };
            self.close_conversation(site, &conv.id, AuthorKind::System, reason)
                .await?;
            return Ok(());
        }
        store.enqueue(&site.id, &conv.id, dept, false, now).await?;
        self.emit(
            site,
            "conversation.queued",
            serde_json::json!({"conversation": conv.id, "department": dept, "visitor": conv.visitor}),
        )
        .await;
        self.drain(&site.id, dept).await?;
        // Still waiting? Then say where in line, with an estimate.
        if let Some(position) = store.queue_position(&site.id, dept, &conv.id).await? {
            let minutes = self.estimate(&agents, dept, position, now);
            let text = templates::render(
                site,
                Some(dept),
                &conv.locale,
                Template::Queued,
                &Vars {
                    position: Some(position),
                    minutes: Some(minutes),
                    ..Vars::default()
                },
            );
            self.inner.hub.note_position(&conv.id, position);
            store
                .append(
                    &site.id,
                    &conv.id,
                    &EventBody::Notice {
                        at: now_ms(),
                        notice: NoticeKind::Queued,
                        text,
                        position: Some(position),
                        estimate_minutes: Some(minutes),
                    },
                )
                .await?;
            self.publish(
                &site.id,
                Envelope::Queue {
                    site: site.id.clone(),
                    dept: dept.clone(),
                },
            )
            .await;
        }
        Ok(())
    }

    /// Minutes until a queued visitor at `position` is likely served.
    fn estimate(&self, agents: &[AgentState], dept: &DeptId, position: u32, now: Millis) -> u32 {
        let grace = self.grace_ms();
        let capacity: u32 = agents
            .iter()
            .filter(|a| {
                a.departments.contains(dept)
                    && a.status == AgentStatus::Online
                    && a.present(now, grace)
            })
            .map(|a| a.max_concurrent)
            .sum();
        estimate_minutes(
            position,
            self.inner.config.timing.average_handle_secs,
            capacity,
        )
    }

    /// The visitor ends their chat. Returns the conversation and its (stored) ticket id.
    pub async fn visitor_close(
        &self,
        site_id: &SiteId,
        visitor: &VisitorId,
    ) -> Result<(ConvId, String)> {
        let site = self.site(site_id)?;
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
    pub async fn rate(
        &self,
        site_id: &SiteId,
        visitor: &VisitorId,
        score: u8,
        comment: Option<String>,
    ) -> Result<String> {
        let site = self.site(site_id)?;
        if !(1..=5).contains(&score) {
            return Err(EngineError::new(
                ErrorCode::InvalidRating,
                "score must be 1 to 5",
            ));
        }
        let now = now_ms();
        let window = (site.rating_window_secs * 1000.0) as Millis;
        let conv = self
            .inner
            .store
            .visitor_conversation(site_id, visitor)
            .await?
            .filter(|c| {
                c.state == ConvState::Closed && c.closed_at.is_some_and(|t| t + window >= now)
            })
            .ok_or_else(|| {
                EngineError::new(ErrorCode::NothingToRate, "no recently closed chat to rate")
            })?;
        let mut ticket = match self.inner.tickets.get(site_id, &conv.id.0).await? {
            Some(t) => t,
            // Closed a moment ago on another node and not yet filed: file it now.
            None => self.file_ticket(site, &conv.id, false).await?,
        };
        ticket.rating = Some(Rating {
            score,
            comment: clip(comment, 2000),
            at: now,
        });
        ticket.updated_at = now;
        self.save_ticket(site, &ticket, "ticket.updated").await?;
        Ok(ticket.id)
    }

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
        let email = email.trim().to_owned();
        let valid = email.len() <= 320
            && email
                .split_once('@')
                .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'))
            && !email.contains(char::is_whitespace);
        if !valid {
            return Err(EngineError::new(
                ErrorCode::InvalidEmail,
                "a valid email address is required",
            ));
        }
        let visitor = profile
            .id
            .clone()
            .ok_or_else(|| EngineError::new(ErrorCode::HelloRequired, "say hello first"))?;
        profile.email = Some(email.clone());
        if let Some(n) = clip(name.clone(), 200) {
            profile.name = Some(n);
        }
        self.inner.store.put_visitor(site_id, profile).await?;
        let now = now_ms();
        let text = text.into_inner();
        let message = EventBody::Message {
            at: now,
            author: AuthorKind::Visitor,
            author_id: Some(visitor.0.clone()),
            author_name: profile.name.clone(),
            text: text.clone(),
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
                    && matches!(c.close_reason.as_deref(), Some("no_agent" | "out_of_hours"))
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
            let text = templates::render(
                site,
                None,
                &conv.locale,
                Template::ClosedByVisitor,
                &Vars::default(),
            );
            self.inner
                .store
                .append(
                    site_id,
                    &conv.id,
                    &EventBody::Closed {
                        at: now,
                        by: AuthorKind::Visitor,
                        reason: "offline_message".into(),
                        text,
                    },
                )
                .await?;
        }
        let mut ticket = self.file_ticket(site, &conv.id, false).await?;
        ticket.offline_message = Some(offline);
        self.save_ticket(site, &ticket, "ticket.created").await?;
        Ok(ticket.id)
    }

    /// Builds the ticket of a closed conversation from its log; keeps what a previous filing
    /// added (rating, offline message, creation time). With `save`, stores it and announces it.
    async fn file_ticket(&self, site: &SiteConfig, conv_id: &ConvId, save: bool) -> Result<Ticket> {
        let store = &self.inner.store;
        let conv = store
            .conversation(&site.id, conv_id)
            .await?
            .ok_or_else(|| EngineError::new(ErrorCode::NotFound, "conversation expired"))?;
        let events = store.events_after(&site.id, conv_id, 0).await?;
        let visitor = store
            .visitor(&site.id, &conv.visitor)
            .await?
            .unwrap_or_default();
        let now = now_ms();
        let mut ticket = Ticket::build(&site.id, &conv, events, &visitor, now);
        let previous = self.inner.tickets.get(&site.id, &ticket.id).await?;
        if let Some(old) = &previous {
            ticket.created_at = old.created_at;
            ticket.rating = old.rating.clone();
            ticket.offline_message = old.offline_message.clone();
        }
        if save {
            let event = if previous.is_some() {
                "ticket.updated"
            } else {
                "ticket.created"
            };
            self.save_ticket(site, &ticket, event).await?;
            if previous.is_none() {
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
    async fn save_ticket(&self, site: &SiteConfig, ticket: &Ticket, event: &str) -> Result<()> {
        let data = serde_json::to_value(ticket)
            .map_err(|e| EngineError::new(ErrorCode::Unavailable, e.to_string()))?;
        let deliveries = deliveries_for(site, event, &data, now_ms());
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

    pub async fn visitor_typing(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        conv: &ConvId,
        on: bool,
    ) {
        self.publish(
            site,
            Envelope::Typing {
                site: site.clone(),
                conv: conv.clone(),
                visitor: visitor.clone(),
                agent: false,
                on,
                name: None,
            },
        )
        .await;
    }

    // ----- agents -----

    /// An agent console connected on this node.
    pub async fn agent_connected(
        &self,
        site: &SiteId,
        agent: &AgentId,
        session: crate::hub::SessionId,
        status: Option<AgentStatus>,
    ) -> Result<AgentState> {
        self.inner.hub.join_agent(site, agent, session);
        let store = &self.inner.store;
        store
            .set_presence(site, agent, &self.inner.node, now_ms() + PRESENCE_TTL_MS)
            .await?;
        if let Some(status) = status {
            store.set_status(site, agent, status).await?;
        }
        let state = self.agent_state(site, agent).await?;
        self.publish(
            site,
            Envelope::Agent {
                site: site.clone(),
                agent: agent.clone(),
            },
        )
        .await;
        self.drain_for(site, &state.departments).await?;
        Ok(state)
    }

    /// An agent console went away; with the last one on this node, grace starts.
    pub async fn agent_disconnected(
        &self,
        site: &SiteId,
        agent: &AgentId,
        session: crate::hub::SessionId,
    ) {
        let left = self.inner.hub.leave_agent(site, agent, session);
        if left == 0
            && let Err(e) = self
                .inner
                .store
                .set_presence(site, agent, &self.inner.node, now_ms())
                .await
        {
            // Presence then lapses on its own after PRESENCE_TTL_MS.
            tracing::warn!(cause = %e, agent = %agent, "could not record disconnect");
        }
    }

    pub async fn agent_state(&self, site: &SiteId, agent: &AgentId) -> Result<AgentState> {
        self.inner
            .store
            .agent(site, agent)
            .await?
            .ok_or_else(|| EngineError::new(ErrorCode::UnknownAgent, format!("no agent {agent}")))
    }

    pub async fn set_status(
        &self,
        site: &SiteId,
        agent: &AgentId,
        status: AgentStatus,
    ) -> Result<()> {
        self.inner.store.set_status(site, agent, status).await?;
        self.agent_changed(site, agent).await
    }

    pub async fn set_limit(&self, site: &SiteId, agent: &AgentId, limit: u32) -> Result<()> {
        let cap = self
            .site(site)?
            .agent(agent)
            .map(|a| a.max_concurrent)
            .unwrap_or(0);
        if limit == 0 || limit > cap {
            return Err(EngineError::new(
                ErrorCode::LimitOutOfRange,
                format!("max_concurrent must be 1 to {cap}"),
            ));
        }
        self.inner.store.set_limit(site, agent, limit).await?;
        self.agent_changed(site, agent).await
    }

    /// Tells the agent's consoles and drains the queues the agent can now serve.
    async fn agent_changed(&self, site: &SiteId, agent: &AgentId) -> Result<()> {
        self.publish(
            site,
            Envelope::Agent {
                site: site.clone(),
                agent: agent.clone(),
            },
        )
        .await;
        let state = self.agent_state(site, agent).await?;
        self.drain_for(site, &state.departments).await
    }

    /// The open conversation, checked to be the agent's.
    async fn owned(&self, site: &SiteId, agent: &AgentId, conv: &ConvId) -> Result<Conversation> {
        let c = self
            .inner
            .store
            .conversation(site, conv)
            .await?
            .ok_or_else(|| EngineError::new(ErrorCode::NotFound, "no such conversation"))?;
        if c.state == ConvState::Closed {
            return Err(EngineError::new(
                ErrorCode::ConversationClosed,
                "the conversation is closed",
            ));
        }
        if c.state != ConvState::Active || c.agent.as_ref() != Some(agent) {
            return Err(EngineError::new(
                ErrorCode::NotOwner,
                "not your conversation",
            ));
        }
        Ok(c)
    }

    pub async fn agent_message(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        client_id: ClientId,
        text: MessageText,
    ) -> Result<Ack> {
        let site = self.site(site_id)?;
        let who = self.agent_ref(site, agent);
        let body = EventBody::Message {
            at: now_ms(),
            author: AuthorKind::Agent,
            author_id: Some(who.id.0),
            author_name: Some(who.name),
            text: text.into_inner(),
            client_id: Some(client_id.as_str().to_owned()),
        };
        self.agent_append(site_id, agent, conv, body).await
    }

    /// An agent opens a conversation with a visitor who is browsing the site (proactive chat):
    /// assigned to the agent at once, within their limit, and only if the visitor has no open
    /// conversation. The visitor's widget gets the introduction and the message.
    pub async fn agent_start_chat(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        visitor: &VisitorId,
        client_id: ClientId,
        text: MessageText,
    ) -> Result<Ack> {
        let site = self.site(site_id)?;
        let store = &self.inner.store;
        let profile = store
            .visitor(site_id, visitor)
            .await?
            .ok_or_else(|| EngineError::new(ErrorCode::NotFound, "no such visitor"))?;
        let dept = site
            .agent(agent)
            .and_then(|a| a.departments.first().cloned())
            .unwrap_or_else(|| site.default_department().clone());
        let now = now_ms();
        let conv = Conversation::new(visitor.clone(), dept, profile.locale.clone(), now);
        match store
            .start_conversation(site_id, &conv, agent, now, self.grace_ms())
            .await?
        {
            crate::state::Start::Done => {}
            crate::state::Start::VisitorBusy => {
                return Err(EngineError::new(
                    ErrorCode::VisitorBusy,
                    "the visitor is already in a conversation",
                ));
            }
            crate::state::Start::AgentFull => {
                return Err(EngineError::new(
                    ErrorCode::TargetUnavailable,
                    "you are offline or at your limit",
                ));
            }
        }
        self.visitor_changed(site_id, visitor, true).await;
        let who = self.agent_ref(site, agent);
        self.announce_agent(site, &conv.id, &who, &conv.locale)
            .await?;
        let ack = self
            .agent_message(site_id, agent, &conv.id, client_id, text)
            .await?;
        self.publish(
            site_id,
            Envelope::Agent {
                site: site_id.clone(),
                agent: agent.clone(),
            },
        )
        .await;
        Ok(ack)
    }

    /// A private note: stored and shown to agents, never sent to the visitor.
    pub async fn agent_note(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        client_id: ClientId,
        text: MessageText,
    ) -> Result<Ack> {
        let site = self.site(site_id)?;
        let body = EventBody::Note {
            at: now_ms(),
            agent: self.agent_ref(site, agent),
            text: text.into_inner(),
            client_id: Some(client_id.as_str().to_owned()),
        };
        self.agent_append(site_id, agent, conv, body).await
    }

    /// Stores an agent's event in their own active chat.
    async fn agent_append(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        body: EventBody,
    ) -> Result<Ack> {
        // Ownership is checked inside the append: one round trip per message.
        match self
            .inner
            .store
            .append_guarded(site_id, conv, &body, &Guard::AgentActive(agent.clone()))
            .await?
        {
            Some(appended) => Ok(Ack {
                conv: conv.clone(),
                seq: appended.seq,
            }),
            None => {
                // Not stored: find out why, for a precise error.
                self.owned(site_id, agent, conv).await?;
                Err(EngineError::new(
                    ErrorCode::NotOwner,
                    "not your conversation",
                ))
            }
        }
    }

    pub async fn agent_typing(
        &self,
        site_id: &SiteId,
        agent: &AgentId,
        conv: &ConvId,
        on: bool,
    ) -> Result<()> {
        let site = self.site(site_id)?;
        let c = self.owned(site_id, agent, conv).await?;
        self.publish(
            site_id,
            Envelope::Typing {
                site: site_id.clone(),
                conv: conv.clone(),
                visitor: c.visitor,
                agent: true,
                on,
                name: Some(self.agent_ref(site, agent).name),
            },
        )
        .await;
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
        self.owned(site_id, agent, conv).await?;
        let reason = clip(reason, 200).unwrap_or_else(|| "agent_closed".into());
        self.close_conversation(site, conv, AuthorKind::Agent, &reason)
            .await
    }

    /// Closes an open conversation and frees what it held. The close event carries the goodbye.
    async fn close_conversation(
        &self,
        site: &SiteConfig,
        conv: &ConvId,
        by: AuthorKind,
        reason: &str,
    ) -> Result<String> {
        let store = &self.inner.store;
        let now = now_ms();
        let Some(before) = store
            .close(&site.id, conv, reason, now, self.retention_ms())
            .await?
        else {
            return Err(EngineError::new(
                ErrorCode::ConversationClosed,
                "already closed",
            ));
        };
        let template = match by {
            AuthorKind::Visitor => Template::ClosedByVisitor,
            _ => Template::ClosedByAgent,
        };
        let text = templates::render(
            site,
            Some(&before.department),
            &before.locale,
            template,
            &Vars::default(),
        );
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
                self.publish(
                    &site.id,
                    Envelope::Queue {
                        site: site.id.clone(),
                        dept: before.department.clone(),
                    },
                )
                .await;
            }
            _ => {}
        }
        self.visitor_changed(&site.id, &before.visitor, true).await;
        let ticket = self.file_ticket(site, conv, true).await?;
        Ok(ticket.id)
    }

    /// Moves a chat to another agent or department, keeping its whole transcript.
    #[allow(clippy::too_many_arguments)]
    pub async fn transfer(
        &self,
        site_id: &SiteId,
        from: &AgentId,
        conv: &ConvId,
        to_agent: Option<AgentId>,
        to_department: Option<DeptId>,
        reason: String,
        note: Option<String>,
    ) -> Result<()> {
        let site = self.site(site_id)?;
        let c = self.owned(site_id, from, conv).await?;
        let reason = clip(Some(reason), 500).ok_or_else(|| {
            EngineError::new(ErrorCode::InvalidMessage, "a transfer needs a reason")
        })?;
        let note = clip(note, 2000);
        let store = &self.inner.store;
        let now = now_ms();
        let from_ref = self.agent_ref(site, from);
        match (to_agent, to_department) {
            (Some(to), None) => {
                if site.agent(&to).is_none() {
                    return Err(EngineError::new(
                        ErrorCode::UnknownAgent,
                        format!("no agent {to}"),
                    ));
                }
                match store
                    .reassign(site_id, conv, from, &to, now, self.grace_ms())
                    .await?
                {
                    Reassign::Done => {}
                    Reassign::NotOwner => {
                        return Err(EngineError::new(
                            ErrorCode::NotOwner,
                            "not your conversation",
                        ));
                    }
                    Reassign::TargetUnavailable(why) => {
                        return Err(EngineError::new(
                            ErrorCode::TargetUnavailable,
                            format!("{to} {}", why.describe()),
                        ));
                    }
                }
                let to_ref = self.agent_ref(site, &to);
                store
                    .append(
                        site_id,
                        conv,
                        &EventBody::Transferred {
                            at: now,
                            from: Some(from_ref),
                            to_agent: Some(to_ref.clone()),
                            to_department: None,
                            reason,
                            note,
                        },
                    )
                    .await?;
                self.announce_agent(site, conv, &to_ref, &c.locale).await?;
                self.agent_changed(site_id, &to).await?;
            }
            (None, Some(dept)) => {
                if site.department(&dept).is_none() {
                    return Err(EngineError::new(
                        ErrorCode::UnknownDepartment,
                        format!("no department {dept}"),
                    ));
                }
                if !store.unassign(site_id, conv, from, &dept, now).await? {
                    return Err(EngineError::new(
                        ErrorCode::NotOwner,
                        "not your conversation",
                    ));
                }
                store
                    .append(
                        site_id,
                        conv,
                        &EventBody::Transferred {
                            at: now,
                            from: Some(from_ref),
                            to_agent: None,
                            to_department: Some(dept.clone()),
                            reason,
                            note,
                        },
                    )
                    .await?;
                let text = templates::render(
                    site,
                    Some(&dept),
                    &c.locale,
                    Template::Transferring,
                    &Vars::default(),
                );
                store
                    .append(
                        site_id,
                        conv,
                        &EventBody::Notice {
                            at: now,
                            notice: NoticeKind::Transferring,
                            text,
                            position: None,
                            estimate_minutes: None,
                        },
                    )
                    .await?;
                self.publish(
                    site_id,
                    Envelope::Queue {
                        site: site_id.clone(),
                        dept: dept.clone(),
                    },
                )
                .await;
                self.drain(site_id, &dept).await?;
            }
            _ => {
                return Err(EngineError::new(
                    ErrorCode::InvalidMessage,
                    "name exactly one of to_agent and to_department",
                ));
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

    // ----- routing -----

    /// Stores the assignment event that introduces the agent to the visitor by full name.
    async fn announce_agent(
        &self,
        site: &SiteConfig,
        conv: &ConvId,
        agent: &AgentRef,
        locale: &str,
    ) -> Result<()> {
        let text = templates::render(
            site,
            None,
            locale,
            Template::Connected,
            &Vars {
                agent: Some(&agent.name),
                ..Vars::default()
            },
        );
        self.inner
            .store
            .append(
                &site.id,
                conv,
                &EventBody::Assigned {
                    at: now_ms(),
                    agent: agent.clone(),
                    text,
                },
            )
            .await?;
        self.emit(
            site,
            "conversation.assigned",
            serde_json::json!({"conversation": conv, "agent": agent}),
        )
        .await;
        Ok(())
    }

    /// Assigns from a department queue while there are both waiting chats and free agents, in
    /// batches (one read of the agents per batch); each batch's introductions go out together.
    pub async fn drain(&self, site_id: &SiteId, dept: &DeptId) -> Result<()> {
        const BATCH: usize = 64;
        let site = self.site(site_id)?;
        let mut assigned: Vec<AgentId> = Vec::new();
        loop {
            let batch = self
                .inner
                .store
                .assign_batch(site_id, dept, now_ms(), self.grace_ms(), BATCH)
                .await?;
            let full = batch.len() == BATCH;
            let intros = batch.iter().map(|(conv, agent, locale)| {
                let who = self.agent_ref(site, agent);
                async move { self.announce_agent(site, conv, &who, locale).await }
            });
            for r in futures_util::future::join_all(intros).await {
                r?;
            }
            for (_, agent, _) in batch {
                if !assigned.contains(&agent) {
                    assigned.push(agent);
                }
            }
            if !full {
                break;
            }
        }
        if !assigned.is_empty() {
            self.publish(
                site_id,
                Envelope::Queue {
                    site: site_id.clone(),
                    dept: dept.clone(),
                },
            )
            .await;
            for agent in assigned {
                self.publish(
                    site_id,
                    Envelope::Agent {
                        site: site_id.clone(),
                        agent,
                    },
                )
                .await;
            }
        }
        Ok(())
    }

    async fn drain_for(&self, site: &SiteId, depts: &[DeptId]) -> Result<()> {
        for d in depts {
            self.drain(site, d).await?;
        }
        Ok(())
    }

    /// Gives back the chats of agents gone past their grace period: head of the queue, visitor told.
    async fn expire_grace(&self, site: &SiteConfig, now: Millis) -> Result<()> {
        let store = &self.inner.store;
        for agent in store.agents(&site.id).await? {
            if agent.present(now, self.grace_ms()) || agent.chats.is_empty() {
                continue;
            }
            let who = AgentRef {
                id: agent.id.clone(),
                name: agent.name.clone(),
            };
            for conv_id in &agent.chats {
                let Some(conv) = store.conversation(&site.id, conv_id).await? else {
                    continue;
                };
                // Conditional on the owner: when several nodes sweep, one wins.
                if !store
                    .unassign(&site.id, conv_id, &agent.id, &conv.department, now)
                    .await?
                {
                    continue;
                }
                tracing::info!(agent = %agent.id, conversation = %conv_id, "grace expired; chat requeued");
                store
                    .append(
                        &site.id,
                        conv_id,
                        &EventBody::Requeued {
                            at: now,
                            agent: who.clone(),
                            reason: "agent_disconnected".into(),
                        },
                    )
                    .await?;
                let text = templates::render(
                    site,
                    Some(&conv.department),
                    &conv.locale,
                    Template::Requeued,
                    &Vars::default(),
                );
                store
                    .append(
                        &site.id,
                        conv_id,
                        &EventBody::Notice {
                            at: now,
                            notice: NoticeKind::Requeued,
                            text,
                            position: Some(1),
                            estimate_minutes: None,
                        },
                    )
                    .await?;
                self.inner.hub.note_position(conv_id, 1);
                self.publish(
                    &site.id,
                    Envelope::Queue {
                        site: site.id.clone(),
                        dept: conv.department.clone(),
                    },
                )
                .await;
                self.drain(&site.id, &conv.department).await?;
            }
            self.publish(
                &site.id,
                Envelope::Agent {
                    site: site.id.clone(),
                    agent: agent.id.clone(),
                },
            )
            .await;
        }
        Ok(())
    }

    /// Statistics of one department queue.
    pub async fn queue_stat(
        &self,
        site: &SiteId,
        dept: &DeptId,
    ) -> Result<(QueueStat, Vec<(ConvId, Millis)>)> {
        let queue = self.inner.store.queue(site, dept).await?;
        let now = now_ms();
        let stat = QueueStat {
            department: dept.clone(),
            size: queue.len() as u32,
            oldest_wait_secs: queue
                .iter()
                .map(|(_, t)| secs_since(*t, now))
                .max()
                .unwrap_or(0),
        };
        Ok((stat, queue))
    }

    /// A queued conversation's position and estimate, if it is queued.
    pub async fn position(&self, site: &SiteId, conv: &Conversation) -> Result<Option<(u32, u32)>> {
        let Some(position) = self
            .inner
            .store
            .queue_position(site, &conv.department, &conv.id)
            .await?
        else {
            return Ok(None);
        };
        let agents = self.agents_cached(site, false).await?;
        Ok(Some((
            position,
            self.estimate(&agents, &conv.department, position, now_ms()),
        )))
    }

    /// Sends fresh positions to local queued visitors and queue statistics to local agents.
    async fn refresh_queue(&self, site_id: &SiteId, dept: &DeptId) -> Result<()> {
        let (stat, queue) = self.queue_stat(site_id, dept).await?;
        let hub = &self.inner.hub;
        if queue.iter().any(|(c, _)| hub.has_followers(c)) {
            let agents = self.agents_cached(site_id, false).await?;
            let now = now_ms();
            for (i, (conv, _)) in queue.iter().enumerate() {
                if hub.has_followers(conv) {
                    let position = i as u32 + 1;
                    hub.offer_position(conv, position, self.estimate(&agents, dept, position, now));
                }
            }
        }
        hub.broadcast_queue(site_id, stat);
        Ok(())
    }

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
        let triggers = self.run_triggers(shutdown.clone());
        let sweeper = async {
            let mut sweep = tokio::time::interval(self.inner.config.timing.sweep());
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut presence = tokio::time::interval(PRESENCE_REFRESH);
            presence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = presence.tick() => {
                        self.refresh_presence().await;
                        release_free_memory();
                    }
                    _ = sweep.tick() => self.sweep().await,
                    _ = shutdown.recv() => return,
                }
            }
        };
        tokio::join!(notifier, sweeper, courier, triggers);
    }

    // ----- triggers -----

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
        let now = now_ms();
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
    async fn run_triggers(&self, mut shutdown: Shutdown) {
        let schedule = &self.inner.triggers;
        loop {
            let wait = schedule
                .next_due()
                .map_or(Duration::from_secs(3600), |due| {
                    Duration::from_millis(due.saturating_sub(now_ms()).max(0) as u64)
                });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = schedule.wakeup.notified() => continue,
                _ = shutdown.recv() => return,
            }
            let now = now_ms();
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
    async fn fire_trigger(
        &self,
        session: crate::hub::SessionId,
        pending: &crate::triggers::Pending,
        index: usize,
        now: Millis,
    ) -> Result<bool> {
        let site = self.site(&pending.site)?;
        let Some(rule) = site.triggers.get(index) else {
            return Ok(false);
        };
        if rule.business_hours_only && !self.department_open(site, site.answering(rule)) {
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
        if !store
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
    fn trigger_author(
        &self,
        site: &SiteConfig,
        rule: &crate::config::TriggerConfig,
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

    /// Whether a department is inside its business hours now (always, without hours).
    fn department_open(&self, site: &SiteConfig, dept: &DeptId) -> bool {
        site.department(dept)
            .and_then(|d| d.hours.as_ref())
            .is_none_or(|h| h.is_open(self.inner.clock.now_ms()))
    }

    /// A visitor's tickets, newest first, at most `limit`: their earlier chats, for the agent.
    pub async fn visitor_tickets(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        limit: usize,
    ) -> Result<Vec<crate::tickets::Ticket>> {
        let filter = crate::tickets::TicketFilter {
            visitor: Some(visitor.0.clone()),
            limit,
            ..Default::default()
        };
        Ok(self.inner.tickets.list(site, &filter).await?)
    }

    /// Whether presence must be refreshed: only when several nodes share state, so that a dead
    /// node's connections lapse. A single process always knows when its own sockets close.
    fn shared_state(&self) -> bool {
        self.inner.config.redis_url.is_some()
    }

    /// One visitor as the live list shows them (None if unknown).
    pub async fn live_visitor(
        &self,
        site: &SiteId,
        id: &VisitorId,
        now: Millis,
    ) -> Result<Option<serde_json::Value>> {
        let store = &self.inner.store;
        let Some(p) = store.visitor(site, id).await? else {
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
            .collect();
        Ok(Some(serde_json::json!({
            "site": site,
            "id": id,
            "name": p.name,
            "email": p.email,
            "page_url": p.page_url,
            "page_title": p.page_title,
            "referrer": p.referrer,
            "utm": p.utm,
            "locale": p.locale,
            "time_on_site_secs": secs_since(p.visit_started, now),
            "pages_this_visit": this_visit,
            "visits": p.visits,
            "returning": p.visits > 1,
            "in_chat": conv.as_ref().map(|c| &c.id),
        })))
    }

    /// Everyone on the site right now.
    pub async fn live_visitors(&self, site: &SiteId) -> Result<Vec<serde_json::Value>> {
        let now = now_ms();
        let mut out = Vec::new();
        for id in self.inner.store.live_visitors(site, now).await? {
            out.extend(self.live_visitor(site, &id, now).await?);
        }
        Ok(out)
    }

    /// Tells agents watching the live list that a visitor arrived, moved or left.
    async fn visitor_changed(&self, site: &SiteId, visitor: &VisitorId, live: bool) {
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
    pub async fn visitor_connected(&self, site: &SiteId, visitor: &VisitorId) {
        let until = if self.shared_state() {
            now_ms() + PRESENCE_TTL_MS
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
        self.visitor_changed(site, visitor, false).await;
        if let Err(e) = self
            .inner
            .store
            .set_visitor_presence(site, std::slice::from_ref(visitor), now_ms())
            .await
        {
            // Presence then lapses on its own after PRESENCE_TTL_MS.
            tracing::warn!(cause = %e, "could not record a visitor leaving");
        }
    }

    async fn refresh_presence(&self) {
        let until = now_ms() + PRESENCE_TTL_MS;
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

    async fn refresh_agent_presence(&self, until: Millis) {
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

    /// Closes chats whose visitor went silent, and files tickets a dead node left unfiled.
    async fn sweep_tickets(&self, site: &SiteConfig, now: Millis) -> Result<()> {
        let timeout = (site.inactivity_timeout_secs * 1000.0) as Millis;
        for conv in self.inner.store.inactive(&site.id, now - timeout).await? {
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

    async fn sweep(&self) {
        let now = now_ms();
        for site in &self.inner.config.sites {
            if let Err(e) = self.sweep_tickets(site, now).await {
                tracing::warn!(cause = %e.message, site = %site.id, "ticket sweep failed");
            }
            if let Err(e) = self.expire_grace(site, now).await {
                tracing::warn!(cause = %e.message, site = %site.id, "grace sweep failed");
            }
            for dept in &site.departments {
                if let Err(e) = self.drain(&site.id, &dept.id).await {
                    tracing::warn!(cause = %e.message, site = %site.id, "drain sweep failed");
                }
            }
        }
        if let Err(e) = self.inner.store.sweep_closed(now).await {
            tracing::warn!(cause = %e, "closed-conversation sweep failed");
        }
    }
}
