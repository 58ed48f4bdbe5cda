//! State backends behind one interface: `memory` (embedded, one process) and `redis` (any number
//! of nodes). The engine only speaks `Store`; every routing step that must be atomic is one call
//! here (one Lua script with Redis, one short critical section in memory).
//!
//! Both backends hand what they store and publish to a delivery `Sink` (`envelope`): memory
//! directly, Redis through its pub/sub subscriber. They know nothing of sessions. Pub/sub is
//! at-most-once, so sessions detect gaps by sequence number and backfill with `events`.

pub mod memory;
pub mod redis;

use async_trait::async_trait;

use crate::envelope::Envelope;
use crate::routing::Rules;

use crate::directory::model::AgentConfig;
use crate::model::{
    AgentId, AgentState, AgentStatus, ConvId, Conversation, DeptId, Event, EventBody, Millis,
    SiteId, VisitorId,
};

/// A backend failure: the operation did not happen (or its outcome is unknown); callers report
/// `unavailable` to the client, who may retry with the same client id.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// The embedded state is closed: the node is shutting down.
    #[error("the embedded state is closed (shutting down)")]
    ShuttingDown,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The outcome of storing an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    /// The client id had been stored before: nothing new was written.
    pub duplicate: bool,
}

/// What one `assign_batch` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Each assignment: the conversation, the agent and the conversation's locale (for the
    /// greeting).
    pub assigned: Vec<(ConvId, AgentId, String)>,
    /// Another batch might assign more: this one was full, or its snapshot read only the head
    /// of a longer queue. Otherwise every waiting chat was weighed against every agent who
    /// could take it, and what is left waits for a change, which drains again.
    pub more: bool,
}

/// What `append_guarded` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarded {
    Stored(Appended),
    /// The guard did not hold: nothing was stored.
    Refused,
    /// The guard's rate was exceeded: nothing was stored.
    Limited,
}

impl Guarded {
    pub fn stored(self) -> Option<Appended> {
        match self {
            Self::Stored(a) => Some(a),
            _ => None,
        }
    }
}

/// A rate a visitor's messages must keep, counted in the step that stores them (so relaying a
/// message stays one round trip): every new message counts once in the visitor's counter and
/// in the conversation's, per fixed window; over `limit` in either, nothing is stored.
#[derive(Clone, Debug)]
pub struct Rate {
    pub limit: u32,
    pub window_ms: i64,
    pub now: Millis,
}

impl Rate {
    /// The counters (`Store::count` keys) a visitor's message counts in: the visitor's, and
    /// the conversation's when there is one.
    pub fn keys(visitor: &VisitorId, conv: Option<&ConvId>) -> Vec<String> {
        let mut keys = vec![format!("mv:{visitor}")];
        keys.extend(conv.map(|c| format!("mc:{c}")));
        keys
    }
}

/// A condition on an append.
#[derive(Clone, Debug)]
pub enum Guard {
    None,
    /// The conversation is this visitor's and not closed, and (with a rate) the message keeps
    /// it.
    VisitorOpen(VisitorId, Option<Rate>),
    /// The conversation is active with this agent.
    AgentActive(AgentId),
}

/// The outcome of an agent starting a conversation with a visitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Done,
    /// The visitor already has an open conversation.
    VisitorBusy,
    /// The agent is offline, absent or at their limit.
    AgentFull,
}

/// The outcome of a transfer to a named agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reassign {
    Done,
    /// The conversation is not active with the expected owner.
    NotOwner,
    /// The target cannot take it now, and why (the client is told).
    TargetUnavailable(Unavailable),
}

/// Why a named agent cannot take a transferred chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The conversation's own owner.
    Yourself,
    /// Away or offline: only online agents take new chats.
    NotOnline,
    /// At their own limit (routing may have just filled the last slot from the queue).
    Full,
    /// No console connected, and the reconnect grace is over.
    Disconnected,
}

impl Unavailable {
    /// For the client's error message.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Yourself => "is you",
            Self::NotOnline => "is not online",
            Self::Full => "has no free slot",
            Self::Disconnected => "is not connected",
        }
    }
}

/// The shared state of every site. Implementations must make each method atomic on its own.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Registers an agent of the directory: name, departments and ceiling (`all` is every
    /// department of the site, so membership of the others is withdrawn). Idempotent; live
    /// status, limit and load survive a restart or another node registering the same agent.
    async fn register_agent(
        &self,
        site: &SiteId,
        agent: &AgentConfig,
        all: &[DeptId],
    ) -> Result<()>;

    /// The visitor's latest conversation, open or closed (while its state is kept). Visitor
    /// profiles are records, in the database (`tickets::TicketStore::visitor`).
    async fn visitor_conversation(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
    ) -> Result<Option<Conversation>>;

    /// Makes `new` the visitor's conversation unless one is open (queued or active), in which case
    /// that one is returned with `false`.
    async fn open_conversation(
        &self,
        site: &SiteId,
        new: &Conversation,
    ) -> Result<(Conversation, bool)>;
    async fn conversation(&self, site: &SiteId, id: &ConvId) -> Result<Option<Conversation>>;
    /// An agent opens `new` with its visitor, already assigned to `agent`, within the agent's
    /// limit and only if the visitor has no open conversation: one atomic step.
    async fn start_conversation(
        &self,
        site: &SiteId,
        new: &Conversation,
        agent: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> Result<Start>;
    /// Stores an event with the next sequence number and publishes it, in one step. A body with a
    /// client id that was stored before is not stored again: its first number is returned.
    async fn append(&self, site: &SiteId, conv: &ConvId, body: &EventBody) -> Result<Appended> {
        self.append_guarded(site, conv, body, &Guard::None)
            .await?
            .stored()
            .ok_or_else(|| StoreError::Corrupt(format!("no conversation {conv}")))
    }
    /// As `append`, only if the guard holds and its rate is kept (checked and counted in the
    /// same atomic step, so relaying a message costs one round trip). A client id stored
    /// before is answered as stored, and not counted again.
    async fn append_guarded(
        &self,
        site: &SiteId,
        conv: &ConvId,
        body: &EventBody,
        guard: &Guard,
    ) -> Result<Guarded>;
    /// Stored events inside `span`, in order: at most `span.limit` of them, the earliest or the
    /// latest. Readers page through long conversations with this; nothing reads a whole log
    /// but ticket filing.
    async fn events(&self, site: &SiteId, conv: &ConvId, span: Span) -> Result<Vec<Event>>;
    /// Every stored event with `seq > after`, in order.
    async fn events_after(&self, site: &SiteId, conv: &ConvId, after: u64) -> Result<Vec<Event>> {
        self.events(site, conv, Span::after(after, usize::MAX))
            .await
    }

    /// Puts an open conversation in a department queue (in `routing::queue_score` order under
    /// the department's rules; or at the head). Returns false when the conversation is closed
    /// or unknown.
    async fn enqueue(
        &self,
        site: &SiteId,
        conv: &ConvId,
        dept: &DeptId,
        at_head: bool,
        now: Millis,
        rules: &Rules,
    ) -> Result<bool>;
    /// Moves a conversation still waiting in `from`'s queue to the head of `to`'s (an
    /// overflow): false when it is no longer queued there (served, closed, or moved by another
    /// node), so a move happens once.
    async fn move_queued(
        &self,
        site: &SiteId,
        conv: &ConvId,
        from: &DeptId,
        to: &DeptId,
        now: Millis,
        rules: &Rules,
    ) -> Result<bool>;
    /// Reads a snapshot of the department (the head of its queue, the agents who may take a
    /// chat), lets `routing::decide` choose at most `batch` assignments, and applies them
    /// atomically (each raises the agent's load). Empty when the queue or the free capacity
    /// is.
    async fn assign_batch(
        &self,
        site: &SiteId,
        dept: &DeptId,
        now: Millis,
        grace_ms: Millis,
        rules: &Rules,
        batch: usize,
    ) -> Result<Batch>;
    /// How many assignments one `assign_batch` decides at most: each batch is a snapshot, a
    /// decision and an atomic apply (Redis: two scripts whose reads grow with the batch,
    /// `routing::window` and `routing::reach`; embedded: one journal commit).
    fn decision_batch(&self) -> usize {
        64
    }
    /// 1-based position of a conversation in a department queue, if it is queued there.
    async fn queue_position(
        &self,
        site: &SiteId,
        dept: &DeptId,
        conv: &ConvId,
    ) -> Result<Option<u32>>;
    /// The queue in serving order, with when each entered it.
    async fn queue(&self, site: &SiteId, dept: &DeptId) -> Result<Vec<(ConvId, Millis)>>;
    /// Closes an open conversation, freeing its agent's slot or its queue place. Returns the
    /// conversation as it was, or None when it was already closed or unknown.
    async fn close(
        &self,
        site: &SiteId,
        conv: &ConvId,
        reason: &str,
        now: Millis,
        retention_ms: Millis,
    ) -> Result<Option<Conversation>>;
    /// Takes an active conversation from `owner` and puts it at the head of `dept`'s queue,
    /// with new `needs` when given (the agents it was tried with). False when `owner` no
    /// longer has it (another node got there first).
    #[allow(clippy::too_many_arguments)]
    async fn unassign(
        &self,
        site: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        dept: &DeptId,
        now: Millis,
        rules: &Rules,
        needs: Option<&crate::routing::Needs>,
    ) -> Result<bool>;
    /// The owner accepts a chat offered to them: it is theirs to answer, pending (for the
    /// first-response target) until they reply, and, if it is its first, its first
    /// assignment is now (queue wait and handling time count from an
    /// acceptance, not an offer). False when it is not (or no longer) an offer to them (it
    /// timed out, or another node took it back).
    async fn accept(
        &self,
        site: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        now: Millis,
    ) -> Result<bool>;
    /// Active conversations whose owner has not acted since before `before` (an offer not
    /// accepted, or no reply yet: `Conversation::pending_since`), oldest first.
    async fn pending(&self, site: &SiteId, before: Millis) -> Result<Vec<Conversation>>;
    /// Moves an active conversation from `from` to `to`, within `to`'s limit.
    async fn reassign(
        &self,
        site: &SiteId,
        conv: &ConvId,
        from: &AgentId,
        to: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> Result<Reassign>;

    async fn set_status(&self, site: &SiteId, agent: &AgentId, status: AgentStatus) -> Result<()>;
    async fn set_limit(&self, site: &SiteId, agent: &AgentId, limit: u32) -> Result<()>;
    /// This node vouches for a live connection of the agent until `until` (now, on disconnect).
    async fn set_presence(
        &self,
        site: &SiteId,
        agent: &AgentId,
        node: &str,
        until: Millis,
    ) -> Result<()>;
    async fn agent(&self, site: &SiteId, id: &AgentId) -> Result<Option<AgentState>>;
    async fn agents(&self, site: &SiteId) -> Result<Vec<AgentState>>;

    /// This node vouches for the visitors' live connections until `until` (now, on leaving).
    async fn set_visitor_presence(
        &self,
        site: &SiteId,
        visitors: &[VisitorId],
        until: Millis,
    ) -> Result<()>;
    /// The visitor's last socket on this node closed: they leave the live list at once.
    async fn visitor_left(&self, site: &SiteId, visitor: &VisitorId) -> Result<()>;
    /// Visitors on the site right now (some node vouches for them beyond `now`).
    async fn live_visitors(&self, site: &SiteId, now: Millis) -> Result<Vec<VisitorId>>;
    /// Active conversations whose visitor has been silent since before `before` (assignment
    /// counts as activity), each with the time of that last activity.
    async fn inactive(&self, site: &SiteId, before: Millis) -> Result<Vec<(ConvId, Millis)>>;
    /// Closed conversations whose ticket is not yet known to be saved (crash safety net).
    async fn unticketed(&self, site: &SiteId) -> Result<Vec<ConvId>>;
    async fn mark_ticketed(&self, site: &SiteId, conv: &ConvId) -> Result<()>;
    /// A read receipt: the visitor (or, `agent`, the agent) has seen the conversation up to
    /// `seq` (capped at its last event). The new mark, or None when it did not advance or
    /// the conversation is gone.
    async fn mark_read(
        &self,
        site: &SiteId,
        conv: &ConvId,
        agent: bool,
        seq: u64,
    ) -> Result<Option<u64>>;

    /// Publishes an ephemeral envelope to every node (this one included).
    async fn publish(&self, site: &SiteId, envelope: &Envelope) -> Result<()>;
    /// Readiness: the backend answers and its subscription is alive.
    async fn ready(&self) -> Result<bool>;
    /// The sites of the directory in force (start-up and each change): a backend that must
    /// subscribe to each site's channel one by one (Redis Cluster) follows them.
    fn follow_sites(&self, _sites: Vec<SiteId>) {}
    /// Frees closed conversations older than their retention and forgets presence no node
    /// vouches for any more (Redis expires conversation keys on its own).
    async fn sweep_closed(&self, sites: &[SiteId], now: Millis) -> Result<()>;
    /// Whether the backend lost this node's state since the last call: Redis restarted empty, or
    /// a failover moved the node to a primary with another data set (an epoch key that every
    /// node shares tells). The embedded state never does.
    async fn state_lost(&self) -> Result<bool> {
        Ok(false)
    }
    /// At shutdown, after the last session: makes what was stored durable and releases the
    /// backend's resources (the embedded state's file). Calls after this fail.
    async fn shutdown(&self) {}
    /// Counts one occurrence in each of `keys` (a visitor's messages, mail sent, new visitors
    /// from an address) in the fixed window of `window_ms` that `now` falls in, across every
    /// node, in one step; the highest count in that window so far, this one included. Limits
    /// compare it.
    async fn count(
        &self,
        site: &SiteId,
        keys: &[String],
        window_ms: i64,
        now: Millis,
    ) -> Result<u64>;
    /// Erases a visitor: their profile, presence, and the given (closed) conversations with
    /// their logs. A privacy request; the caller made sure no conversation of theirs is open.
    async fn forget_visitor(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        convs: &[ConvId],
    ) -> Result<()>;
}

/// A range of a conversation's log: `after < seq < before`, at most `limit` events, taken from
/// the start of the range or (`latest`) from its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub after: u64,
    pub before: u64,
    pub limit: usize,
    pub latest: bool,
}

impl Span {
    /// The first `limit` events after `after`: reading forward, page by page.
    pub fn after(after: u64, limit: usize) -> Self {
        Self {
            after,
            before: u64::MAX,
            limit,
            latest: false,
        }
    }

    /// The last `limit` events strictly between `after` and `before`: reading backward.
    pub fn latest(after: u64, before: u64, limit: usize) -> Self {
        Self {
            after,
            before,
            limit,
            latest: true,
        }
    }
}
