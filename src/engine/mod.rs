//! The engine: what happens when a visitor writes, an agent answers, a chat closes or moves, and
//! capacity appears. Every decision that must be atomic is one `Store` call, so the same code is
//! correct on one node or many. Its own state is node-local and disposable: a short cache of
//! agent states (for on-duty checks and estimates, never for routing) and the schedule of this
//! node's pending triggers.
//!
//! This file holds the handle and the effects every concern shares (a notice to the visitor,
//! queue and agent pushes, webhook emits, the clock); the concerns live beside it:
//! - `intake` — a visitor's hello, page views, first message (answered at once), offline messages;
//! - `routing` — queues, drains, assignment, positions and estimates, grace expiry;
//! - `agents` — consoles connecting and leaving, status, limit, agent messages and notes;
//! - `attachments` — files sent into a chat, and who may fetch them;
//! - `lifecycle` — close, transfer, ticket filing, rating;
//! - `presence` — visitor presence and the live list;
//! - `triggers` — proactive messages;
//! - `background` — the node's loops: queue notifications, presence refresh, the sweep;
//! - `privacy` — a visitor's data exported or erased everywhere; ticket retention;
//! - `sessions` — what socket sessions ask of the node (the hub and the log reach them only here).
//!
//! Where a visitor's message goes: `ws::visitor` parses it → `Engine::visitor_message` stores it
//! (`Store::append`, which publishes) → on the first message, `route_new` acknowledges at once
//! and queues or assigns → the store's delivery sink (the `Hub`) on every node hands the event
//! to the sockets that follow the conversation → `ws::agent` sends it to the owner's consoles.

mod agents;
mod attachments;
mod background;
mod directory;
mod intake;
mod lifecycle;
mod presence;
mod privacy;
mod routing;
mod sessions;
mod triggers;

pub use attachments::{Reader, Sender};
pub use directory::DirectoryError;
pub use intake::{Route, VisitorSession};
pub use lifecycle::TicketChange;
pub use sessions::{AgentChat, Readiness};

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Keys;
use crate::config::{Config, Live, Site};
use crate::directory::DirectoryStore;
use crate::directory::accounts::SignInLimiter;
use crate::directory::model::SiteConfig;
use crate::envelope::Envelope;
use crate::hub::Hub;
use crate::model::{
    AgentId, AgentRef, AgentState, AgentStatus, AuthorKind, Clock, ConvId, ConvState, Conversation,
    DeptId, EventBody, Millis, NoticeKind, SiteId, VisitorId, VisitorProfile,
};
use crate::protocol::{ClientId, ErrorCode, MessageText, QueueStat, estimate_minutes, secs_since};
use crate::shutdown::Shutdown;
use crate::state::{Guard, Guarded, Reassign, Store, StoreError};
use crate::templates::{self, Template, Vars};
use crate::tickets::webhooks::{Courier, deliveries_for};
use crate::tickets::{OfflineMessage, Rating, Ticket, TicketStore};

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

    /// The conversation is not assigned to the agent asking.
    pub fn not_owner() -> Self {
        Self::new(ErrorCode::NotOwner, "not your conversation")
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

/// A notice for `Engine::notice`: which one, and the queue place it states.
struct Notice {
    kind: NoticeKind,
    template: Template,
    position: Option<u32>,
    /// Position and minutes, for the `queued` notice's text.
    queued: Option<(u32, u32)>,
}

impl Notice {
    fn plain(kind: NoticeKind, template: Template, position: Option<u32>) -> Self {
        Self {
            kind,
            template,
            position,
            queued: None,
        }
    }

    fn queued(position: u32, minutes: u32) -> Self {
        Self {
            kind: NoticeKind::Queued,
            template: Template::Queued,
            position: Some(position),
            queued: Some((position, minutes)),
        }
    }
}

/// The chat logic. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    /// Settings and directory in force; swapped whole on a directory change or SIGHUP.
    config: Live,
    /// Where the directory and agent accounts are kept.
    directory: DirectoryStore,
    /// The directory version installed on this node (-1: none yet).
    directory_version: std::sync::atomic::AtomicI64,
    /// The last readiness verdict (`sessions::Readiness` as its code), for `/readyz`.
    readiness: std::sync::atomic::AtomicU8,
    /// A rebuild after Redis lost its data did not finish; the next probe tries again.
    rebuild_pending: std::sync::atomic::AtomicBool,
    /// Whether the last directory poll failed (its warning is logged once per outage).
    directory_failing: std::sync::atomic::AtomicBool,
    /// Serializes installs, so two reloads never apply their effects interleaved.
    installing: tokio::sync::Mutex<()>,
    /// Sign-in attempts per address and IP on this node.
    sign_ins: SignInLimiter,
    store: Arc<dyn Store>,
    hub: Hub,
    keys: Keys,
    /// Durable tickets and the webhook outbox.
    tickets: Arc<dyn TicketStore>,
    /// Files sent in chats (record database).
    attachments: crate::attachments::Attachments,
    /// Sends the outbox; woken when this node queues a delivery.
    courier: Courier,
    /// The time for business hours (controllable in tests).
    clock: Arc<dyn Clock>,
    /// Recently read agent states per site, for on-duty checks and estimates only (never for
    /// routing decisions, which are atomic in the store). Saves reading every agent for each
    /// new chat.
    agents_cache: dashmap::DashMap<SiteId, (std::time::Instant, Arc<Vec<AgentState>>)>,
    /// One refresh of a site's agents at a time: callers that find the snapshot stale while a
    /// refresh runs wait for it instead of each reading every agent (with 1,000 agents and
    /// hundreds of first messages in flight, that was most of Redis's work).
    agents_refresh: dashmap::DashMap<SiteId, Arc<tokio::sync::Mutex<()>>>,
    /// This process's id in presence records.
    node: String,
    /// Trigger rules waiting for their time on page, per visitor socket of this node.
    triggers: crate::triggers::Schedule,
    /// When this node last applied the retention setting (engine clock; 0: never).
    retention_at: std::sync::atomic::AtomicI64,
}

/// How long an agents snapshot serves on-duty checks and estimates.
const AGENTS_CACHE: Duration = Duration::from_millis(250);

fn clip(s: Option<String>, max: usize) -> Option<String> {
    s.map(|s| s.chars().take(max).collect::<String>())
        .filter(|s| !s.trim().is_empty())
}

/// What the engine keeps in the record database.
pub struct Records {
    pub tickets: Arc<dyn TicketStore>,
    pub directory: DirectoryStore,
    pub attachments: crate::attachments::Attachments,
}

impl Engine {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        hub: Hub,
        keys: Keys,
        records: Records,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let Records {
            tickets,
            directory,
            attachments,
        } = records;
        let config = Live::new(config);
        let courier = Courier::new(tickets.clone(), config.clone());
        Self {
            inner: Arc::new(Inner {
                config,
                directory,
                directory_version: std::sync::atomic::AtomicI64::new(-1),
                directory_failing: std::sync::atomic::AtomicBool::new(false),
                rebuild_pending: std::sync::atomic::AtomicBool::new(false),
                readiness: std::sync::atomic::AtomicU8::new(0),
                installing: tokio::sync::Mutex::new(()),
                sign_ins: SignInLimiter::default(),
                store,
                hub,
                keys,
                tickets,
                attachments,
                courier,
                clock,
                agents_cache: dashmap::DashMap::new(),
                agents_refresh: dashmap::DashMap::new(),
                node: ulid::Ulid::new().to_string(),
                triggers: crate::triggers::Schedule::default(),
                retention_at: std::sync::atomic::AtomicI64::new(0),
            }),
        }
    }

    pub fn tickets(&self) -> &dyn TicketStore {
        &*self.inner.tickets
    }

    pub fn courier(&self) -> &Courier {
        &self.inner.courier
    }

    /// Agent states read at most `AGENTS_CACHE` ago (or now, with `fresh`). While one caller
    /// refreshes a stale snapshot, the others take the stale one rather than wait: with a large
    /// team a refresh reads every agent, and new chats queued behind it made the slow tail of
    /// first acknowledgements.
    async fn agents_cached(&self, site: &SiteId, fresh: bool) -> Result<Arc<Vec<AgentState>>> {
        let cached = self
            .inner
            .agents_cache
            .get(site)
            .map(|e| (e.0, e.1.clone()));
        let stale = match cached {
            Some((at, agents)) if !fresh => {
                if at.elapsed() < AGENTS_CACHE {
                    return Ok(agents);
                }
                Some(agents)
            }
            _ => None,
        };
        let asked = std::time::Instant::now();
        let lock = self
            .inner
            .agents_refresh
            .entry(site.clone())
            .or_default()
            .clone();
        let _turn = match stale {
            Some(agents) => match lock.try_lock() {
                Ok(turn) => turn,
                // Another caller is reading them now.
                Err(_) => return Ok(agents),
            },
            None => lock.lock().await,
        };
        // A snapshot read after this call began is as fresh as one it would read itself.
        if let Some(e) = self.inner.agents_cache.get(site)
            && e.0 >= asked
        {
            return Ok(e.1.clone());
        }
        let reading = std::time::Instant::now();
        let agents = Arc::new(self.inner.store.agents(site).await?);
        for status in [AgentStatus::Online, AgentStatus::Away, AgentStatus::Offline] {
            let n = agents.iter().filter(|a| a.status == status).count();
            let labels = [
                ("site", site.0.clone()),
                ("status", status.as_str().to_owned()),
            ];
            metrics::gauge!(crate::observe::AGENTS, &labels).set(n as f64);
        }
        self.inner
            .agents_cache
            .insert(site.clone(), (reading, agents.clone()));
        Ok(agents)
    }

    /// Queues an optional conversation event for the site's webhooks (if any subscribe).
    async fn emit(&self, site: &SiteConfig, event: &str, data: serde_json::Value) {
        let deliveries = deliveries_for(site, event, &data, self.now());
        if deliveries.is_empty() {
            return;
        }
        match self.inner.tickets.enqueue(&deliveries).await {
            Ok(()) => self.inner.courier.wake(),
            Err(e) => tracing::error!(cause = %e, event, "could not queue webhook"),
        }
    }

    /// The configuration in force now: one consistent snapshot.
    pub fn config(&self) -> Arc<Config> {
        self.inner.config.get()
    }

    pub fn directory(&self) -> &DirectoryStore {
        &self.inner.directory
    }

    pub fn sign_ins(&self) -> &SignInLimiter {
        &self.inner.sign_ins
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Now, by the engine's clock: every time the engine reads or stores comes from here, so
    /// tests move time by hand (grace, inactivity, triggers, business hours).
    pub fn now(&self) -> Millis {
        self.inner.clock.now_ms()
    }

    fn grace_ms(&self) -> Millis {
        self.config().timing.grace_ms()
    }

    fn retention_ms(&self) -> Millis {
        (self.config().timing.closed_retention_secs * 1000.0) as Millis
    }

    /// A site of the directory in force.
    pub fn site(&self, site: &SiteId) -> Result<Site> {
        Site::of(self.config(), site)
            .ok_or_else(|| EngineError::new(ErrorCode::UnknownSite, format!("no site {site}")))
    }

    /// Stores a notice to the visitor, rendered in their language (site and department
    /// templates first).
    async fn notice(
        &self,
        site: &SiteConfig,
        dept: &DeptId,
        conv: &ConvId,
        locale: &str,
        notice: Notice,
    ) -> Result<()> {
        let vars = Vars {
            position: notice.queued.map(|(p, _)| p),
            minutes: notice.queued.map(|(_, m)| m),
            ..Vars::default()
        };
        let text = templates::render(site, Some(dept), locale, notice.template, &vars);
        let body = EventBody::Notice {
            at: self.now(),
            notice: notice.kind,
            text,
            position: notice.position,
            estimate_minutes: notice.queued.map(|(_, m)| m),
        };
        self.inner.store.append(&site.id, conv, &body).await?;
        Ok(())
    }

    /// A department queue changed: every node refreshes positions and queue statistics.
    async fn queue_changed(&self, site: &SiteId, dept: &DeptId) {
        let envelope = Envelope::Queue {
            site: site.clone(),
            dept: dept.clone(),
        };
        self.publish(site, envelope).await;
    }

    /// An agent's status, limit or load changed: their consoles on every node hear of it.
    async fn agent_pushed(&self, site: &SiteId, agent: &AgentId) {
        let envelope = Envelope::Agent {
            site: site.clone(),
            agent: agent.clone(),
        };
        self.publish(site, envelope).await;
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

    /// A read receipt from one side (`agent`) of a conversation: stored, and, when it moved,
    /// the other side told at once.
    pub(super) async fn mark_read(
        &self,
        site: &SiteId,
        conv: &ConvId,
        visitor: &VisitorId,
        agent: bool,
        seq: u64,
    ) -> Result<()> {
        if let Some(seq) = self.inner.store.mark_read(site, conv, agent, seq).await? {
            let read = Envelope::Read {
                site: site.clone(),
                conv: conv.clone(),
                visitor: visitor.clone(),
                agent,
                seq,
            };
            self.publish(site, read).await;
        }
        Ok(())
    }

    /// Validates message text against the configured length.
    pub fn message_text(&self, text: String) -> Result<MessageText> {
        MessageText::parse(text, self.config().limits.max_message_chars)
            .map_err(|code| EngineError::new(code, "message text is empty or too long"))
    }
}

/// A visitor's email address, trimmed, or `invalid_email`.
fn checked_email(email: &str) -> Result<String> {
    let email = email.trim();
    if !crate::model::valid_email(email) {
        return Err(EngineError::new(
            ErrorCode::InvalidEmail,
            "a valid email address is required",
        ));
    }
    Ok(email.to_owned())
}
