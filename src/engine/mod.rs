//! The engine: what happens when a visitor writes, an agent answers, a chat closes or moves, and
//! capacity appears. Every decision that must be atomic is one `Store` call, so the same code is
//! correct on one node or many. Its own state is node-local and disposable: a short cache of
//! agent states (for on-duty checks and estimates, never for routing) and the schedule of this
//! node's pending triggers.
//!
//! This file holds the handle, its parts (`Inner`) and the clock; the concerns live beside it,
//! each importing what it uses:
//! - `intake` — a visitor's hello, page views, first message (answered at once), offline messages;
//! - `routing` — queues, drains, assignment, positions and estimates, grace expiry;
//! - `agents` — consoles connecting and leaving, status, limit, agent messages and notes;
//! - `attachments` — files sent into a chat, and who may fetch them;
//! - `lifecycle` — close, transfer, ticket filing, rating;
//! - `offline` — messages left while nobody can answer, filed as tickets;
//! - `supervision` — watch, notes, take-over, and the scope rule every read goes through;
//! - `presence` — visitor presence and the live list;
//! - `triggers` — proactive messages;
//! - `background` — the node's loops: queue notifications, presence refresh, the sweep;
//! - `privacy` — a visitor's data exported or erased everywhere; ticket retention;
//! - `sessions` — what socket sessions ask of the node: the hub, transcripts, readiness;
//! - `directory` — the directory installed on this node, credentials, sign-in;
//! - `effects` — what several concerns do alike: a notice to the visitor, a webhook event, the
//!   queue and agent pushes every node hears;
//! - `lookup` — what several concerns read before they act: an open or owned conversation, an
//!   agent's name, the site's agents (cached for estimates, never for routing).
//!
//! Where a visitor's message goes: `ws::visitor` parses it → `Engine::visitor_message` stores it
//! (`Store::append`, which publishes) → on the first message, `route_new` acknowledges at once
//! and queues or assigns → the store's delivery sink (the `Hub`) on every node hands the event
//! to the sockets that follow the conversation → `ws::agent` sends it to the owner's consoles.

mod agents;
mod attachments;
mod background;
mod directory;
mod effects;
mod intake;
mod lifecycle;
mod lookup;
mod mail;
mod offers;
mod offline;
mod presence;
mod privacy;
mod routing;
mod sessions;
mod supervision;
mod triggers;

pub use attachments::{Reader, Sender};
pub use directory::DirectoryError;
pub use intake::{DepartmentNow, Route, VisitorSession};
pub use lifecycle::TicketChange;
pub use mail::Filed;
pub use privacy::VisitorExport;
pub use sessions::{AgentChat, Readiness};
pub use supervision::Watched;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Keys;
use crate::config::{Config, Live, Site};
use crate::db::RecordError;
use crate::directory::DirectoryStore;
use crate::directory::accounts::SignInLimiter;
use crate::envelope::Envelope;
use crate::hub::Hub;
use crate::model::{AgentState, Clock, ConvId, Millis, SiteId, VisitorId};
use crate::protocol::{ErrorCode, MessageText};
use crate::state::{Store, StoreError};
use crate::tickets::TicketStore;
use crate::tickets::webhooks::Courier;

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

    /// A backend failed (logged where it was converted); the client may retry.
    pub(super) fn unavailable() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "temporarily unavailable, retry with the same client_id",
        )
    }

    /// The conversation is not assigned to the agent asking.
    pub fn not_owner() -> Self {
        Self::new(ErrorCode::NotOwner, "not your conversation")
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        // Logged once here; the client only learns that it may retry.
        match e {
            // Expected while the node stops: the client reconnects to another.
            StoreError::ShuttingDown => tracing::debug!(cause = %e, "state backend closed"),
            _ => tracing::error!(cause = %e, "state backend failed"),
        }
        EngineError::unavailable()
    }
}

impl From<RecordError> for EngineError {
    fn from(e: RecordError) -> Self {
        tracing::error!(cause = %e, "record database failed");
        EngineError::unavailable()
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// A stored message's acknowledgement.
#[derive(Clone, Debug)]
pub struct Ack {
    pub conv: ConvId,
    pub seq: u64,
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
    /// Notes to agents' browsers (Web Push), best effort.
    push: crate::push::Push,
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
    /// Per department: what its recent tickets teach the wait estimate, and when it was read
    /// (`routing::Engine::learned`). Bounded by the directory's departments.
    learned: dashmap::DashMap<
        (SiteId, crate::model::DeptId),
        (Millis, Arc<crate::routing::estimate::Learned>),
    >,
    /// Per department: the drain running on this node, if any (`routing::Engine::drain`).
    /// Bounded by the directory's departments.
    drains: dashmap::DashMap<(SiteId, crate::model::DeptId), Arc<routing::DrainGate>>,
    /// Service-level events this node has stored (or found stored) for chats still waiting:
    /// the sweep does not ask the store again each time. Bounded by the queues: a key leaves
    /// when its chat is no longer in the queue it was read in.
    sla_told: dashmap::DashSet<String>,
    /// This process's id in presence records.
    node: String,
    /// Trigger rules waiting for their time on page, per visitor socket of this node.
    triggers: crate::triggers::Schedule,
    /// When this node last applied the retention setting (engine clock; 0: never).
    retention_at: std::sync::atomic::AtomicI64,
    /// Per site: the directory as consoles are sent it, serialized once for the configuration
    /// it was built from (`Engine::console_directory`). With 1,000 agents it is about 100 KB,
    /// and each of them connecting built it anew. Bounded by the sites; emptied on each install.
    consoles_directory:
        dashmap::DashMap<SiteId, (std::sync::Weak<Config>, Arc<serde_json::value::RawValue>)>,
    /// The site-wide gauges `/metrics` shows (`observe`): of the sites in force only.
    site_figures: crate::observe::SiteFigures,
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
    /// Where agents' browsers for Web Push and the server's VAPID key are kept.
    pub push: crate::db::Database,
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
            push,
        } = records;
        let config = Live::new(config);
        let courier = Courier::new(tickets.clone(), config.clone(), clock.clone());
        let push = crate::push::Push::new(push, config.clone());
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
                push,
                clock,
                agents_cache: dashmap::DashMap::new(),
                agents_refresh: dashmap::DashMap::new(),
                learned: dashmap::DashMap::new(),
                drains: dashmap::DashMap::new(),
                sla_told: dashmap::DashSet::new(),
                node: ulid::Ulid::new().to_string(),
                triggers: crate::triggers::Schedule::default(),
                retention_at: std::sync::atomic::AtomicI64::new(0),
                consoles_directory: dashmap::DashMap::new(),
                site_figures: crate::observe::SiteFigures::default(),
            }),
        }
    }

    pub fn tickets(&self) -> &dyn TicketStore {
        &*self.inner.tickets
    }

    pub fn push(&self) -> &crate::push::Push {
        &self.inner.push
    }

    pub fn courier(&self) -> &Courier {
        &self.inner.courier
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
