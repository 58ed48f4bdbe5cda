//! Tickets and their delivery: every closed conversation (and every offline message) becomes a
//! durable ticket, and webhooks announce it through an outbox that survives restarts.
//!
//! - `Ticket::build` turns a conversation's stored events into a ticket (transcript, history,
//!   metrics) — the same for both backends.
//! - `TicketStore` keeps tickets and the outbox in the record database (`sql`: SQLite or
//!   PostgreSQL); saving a ticket and queueing its deliveries is one transaction. `search`
//!   turns a listing's filters and words into one statement for either database; `figures`
//!   keeps the per-day figures `/v1/stats` reads; `redis` imports what earlier versions kept in
//!   Redis; `timed` times every record operation for the metrics.
//! - `webhooks` signs and sends deliveries, with retries, leases and dead letters; `outbound`
//!   keeps them off internal addresses.

pub mod figures;
pub mod outbound;
pub mod redis;
mod search;
pub mod sql;
pub mod timed;
pub mod webhooks;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::db::RecordError;
use crate::model::{
    AgentId, AgentRef, AuthorKind, ConvId, Conversation, DeptId, Event, EventBody, Millis, SiteId,
    VisitorId, VisitorProfile,
};
use crate::routing::estimate::WaitEstimate;

/// A finished conversation, as help desks and reports want it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ticket {
    /// Time-ordered (the conversation's ULID): one ticket per conversation, never two.
    #[schema(example = "01JDX5Q8M0K9V7ZP3W2N4R6T8Y")]
    pub id: String,
    pub site: SiteId,
    pub conversation: ConvId,
    pub department: DeptId,
    /// `resolved` (an agent served it), `missed` (ended before any agent took it),
    /// `offline` (no agent could serve: out of hours, nobody on duty, offline message).
    pub status: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub started_at: Millis,
    pub closed_at: Millis,
    pub close_reason: String,
    pub closed_by: AuthorKind,
    pub visitor: TicketVisitor,
    /// Every agent who held the chat, in order.
    pub agents: Vec<AgentRef>,
    /// Assignments, transfers and requeues with their reasons.
    pub history: Vec<HistoryEntry>,
    /// Every stored event, internal ones included, with authors and times.
    pub transcript: Vec<Event>,
    pub metrics: Metrics,
    #[serde(default)]
    pub rating: Option<Rating>,
    #[serde(default)]
    pub offline_message: Option<OfflineMessage>,
    /// Where follow-up stands: offline messages start `open`, finished chats `solved`.
    #[serde(default)]
    pub follow_up: FollowUp,
    /// Free labels for the inbox, lowercase.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Follow-up on a ticket, set over REST.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FollowUp {
    /// Someone has to act (offline messages start here).
    Open,
    /// Waiting on the visitor or a third party.
    Pending,
    #[default]
    Solved,
}

impl FollowUp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pending => "pending",
            Self::Solved => "solved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "pending" => Some(Self::Pending),
            "solved" => Some(Self::Solved),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketVisitor {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// True when the host site vouched for the identity (`user_hash`).
    pub verified: bool,
    pub user_id: Option<String>,
    /// What the host site signed for the visitor (`tier`): routing rules may have matched it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
    pub locale: String,
    pub pages: Vec<crate::model::PageVisit>,
    pub referrer: Option<String>,
    pub utm: std::collections::BTreeMap<String, String>,
    pub user_agent: Option<String>,
    /// Browser, system and kind of device, from the User-Agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<crate::model::Device>,
    /// The country of the visitor's address, when the deployment could tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<crate::model::Country>,
    /// Answers to the site's custom pre-chat fields.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub at: Millis,
    /// One of `HISTORY_KINDS`.
    #[schema(schema_with = history_kind_schema)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<AgentRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_department: Option<DeptId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Files that came with it (`email_received`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::model::AttachmentRef>,
    /// The email's `Message-ID` (`email_received`): a delivery retried is filed once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// What a ticket's history records: how the chat was routed (`assigned`, `transferred`,
/// `requeued`), and what was done with the ticket since (a copy of the chat mailed to the
/// visitor, follow-up, tags, an answer by email, the visitor's email reply).
pub const HISTORY_KINDS: &[&str] = &[
    "assigned",
    "transferred",
    "requeued",
    "transcript_email",
    "follow_up",
    "tags",
    "email_reply",
    "email_received",
    "sla_warning",
    "sla_breached",
];

fn history_kind_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(HISTORY_KINDS.iter().copied()))
        .build()
}

/// A ticket figure a service level is measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    QueueWait,
    FirstResponse,
}

impl Measure {
    /// Its column in the tickets table.
    pub fn column(self) -> &'static str {
        match self {
            Measure::QueueWait => "queue_wait",
            Measure::FirstResponse => "first_response",
        }
    }
}

/// One assigned chat as the wait estimate learns from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WaitSample {
    pub handling_secs: Option<f64>,
    pub queue_wait_secs: Option<f64>,
    pub estimate: Option<WaitEstimate>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Metrics {
    /// From entering the queue to the first assignment (or to the close if never assigned).
    pub queue_wait_secs: Option<f64>,
    /// From the visitor's first message to the first agent message.
    pub first_response_secs: Option<f64>,
    /// From the first assignment to the close.
    pub handling_secs: Option<f64>,
    pub visitor_messages: u32,
    pub agent_messages: u32,
    /// The wait estimate the visitor was given when the chat was first queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_estimate: Option<WaitEstimate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rating {
    /// 1 to 5.
    pub score: u8,
    pub comment: Option<String>,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OfflineMessage {
    pub email: String,
    pub name: Option<String>,
    pub text: String,
    pub at: Millis,
}

fn secs(from: Option<Millis>, to: Option<Millis>) -> Option<f64> {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => Some((b - a) as f64 / 1000.0),
        _ => None,
    }
}

impl Ticket {
    /// Builds the ticket of a closed conversation from its whole log.
    pub fn build(
        site: &SiteId,
        conv: &Conversation,
        events: Vec<Event>,
        visitor: &VisitorProfile,
        now: Millis,
    ) -> Ticket {
        let mut agents: Vec<AgentRef> = Vec::new();
        let mut history = Vec::new();
        let mut metrics = Metrics::default();
        let mut first_visitor_msg = None;
        let mut first_agent_msg = None;
        let mut closed = (conv.closed_at.unwrap_or(now), AuthorKind::System, None);
        let mut assigned_ever = false;
        for e in &events {
            match &e.body {
                EventBody::Message { at, author, .. } => match author {
                    AuthorKind::Visitor => {
                        metrics.visitor_messages += 1;
                        first_visitor_msg.get_or_insert(*at);
                    }
                    AuthorKind::Agent => {
                        metrics.agent_messages += 1;
                        first_agent_msg.get_or_insert(*at);
                    }
                    AuthorKind::System => {}
                },
                EventBody::Assigned { at, agent, .. } => {
                    assigned_ever = true;
                    if !agents.iter().any(|a| a.id == agent.id) {
                        agents.push(agent.clone());
                    }
                    history.push(HistoryEntry {
                        at: *at,
                        kind: "assigned".into(),
                        agent: Some(agent.clone()),
                        from: None,
                        to_department: None,
                        reason: None,
                        note: None,
                        ..Default::default()
                    });
                }
                EventBody::Offered { at, agent } => history.push(HistoryEntry {
                    at: *at,
                    kind: "offered".into(),
                    agent: Some(agent.clone()),
                    ..Default::default()
                }),
                EventBody::Transferred {
                    at,
                    from,
                    to_agent,
                    to_department,
                    reason,
                    note,
                } => history.push(HistoryEntry {
                    at: *at,
                    kind: "transferred".into(),
                    agent: to_agent.clone(),
                    from: from.clone(),
                    to_department: to_department.clone(),
                    reason: Some(reason.clone()),
                    note: note.clone(),
                    ..Default::default()
                }),
                EventBody::Requeued {
                    at,
                    agent,
                    reason,
                    note,
                } => history.push(HistoryEntry {
                    at: *at,
                    kind: "requeued".into(),
                    agent: None,
                    from: Some(agent.clone()),
                    to_department: None,
                    reason: Some(reason.clone()),
                    note: note.clone(),
                    ..Default::default()
                }),
                EventBody::Closed { at, by, reason, .. } => {
                    closed = (*at, *by, Some(reason.clone()));
                }
                EventBody::Notice { estimate, .. } => {
                    if metrics.wait_estimate.is_none() {
                        metrics.wait_estimate = *estimate;
                    }
                }
                EventBody::Sla {
                    at,
                    target,
                    breached,
                    ..
                } => history.push(HistoryEntry {
                    at: *at,
                    kind: if *breached {
                        "sla_breached"
                    } else {
                        "sla_warning"
                    }
                    .into(),
                    reason: Some(target.clone()),
                    ..Default::default()
                }),
                EventBody::Note { .. } => {}
            }
        }
        let close_reason = closed
            .2
            .or_else(|| conv.close_reason.clone())
            .unwrap_or_else(|| "closed".into());
        metrics.queue_wait_secs = secs(
            conv.queued_at,
            conv.first_assigned_at
                .or(Some(closed.0))
                .filter(|_| conv.queued_at.is_some()),
        );
        metrics.first_response_secs = secs(first_visitor_msg, first_agent_msg);
        metrics.handling_secs = secs(conv.first_assigned_at, Some(closed.0));
        let status = if assigned_ever {
            "resolved"
        } else if matches!(
            close_reason.as_str(),
            "no_agent" | "out_of_hours" | "offline_message" | "max_wait" | "max_tries"
        ) {
            "offline"
        } else {
            "missed"
        };
        Ticket {
            id: conv.id.0.clone(),
            site: site.clone(),
            conversation: conv.id.clone(),
            department: conv.department.clone(),
            follow_up: if status == "offline" {
                FollowUp::Open
            } else {
                FollowUp::Solved
            },
            tags: Vec::new(),
            status: status.into(),
            created_at: now,
            updated_at: now,
            started_at: conv.created_at,
            closed_at: closed.0,
            close_reason,
            closed_by: closed.1,
            visitor: TicketVisitor {
                id: conv.visitor.0.clone(),
                name: visitor.name.clone(),
                email: visitor.email.clone(),
                verified: visitor.verified,
                user_id: visitor.user_id.clone(),
                attributes: visitor.attributes.clone(),
                locale: if visitor.locale.is_empty() {
                    conv.locale.clone()
                } else {
                    visitor.locale.clone()
                },
                pages: visitor.pages.clone(),
                referrer: visitor.referrer.clone(),
                utm: visitor.utm.clone(),
                user_agent: visitor.user_agent.clone(),
                device: visitor.device,
                country: visitor.country,
                fields: visitor.fields.clone(),
            },
            agents,
            history,
            transcript: events,
            metrics,
            rating: None,
            offline_message: None,
        }
    }
}

/// What an `Idempotency-Key` claim found.
#[derive(Clone, Debug, PartialEq)]
pub enum IdempotencyClaim {
    /// The key is this request's: serve it, then keep the answer.
    Claimed,
    /// The same request was answered: this answer (status, content type, body).
    Answered(u16, String, String),
    /// The first request with the key is still being served.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

/// How many deliveries of one event to one receiver are dead.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeadCount {
    #[schema(value_type = String)]
    pub site: SiteId,
    /// The receiver, its key masked
    pub url: String,
    pub event: String,
    pub count: u64,
}

/// A webhook delivery waiting in (or dead in) the outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Stays the same across retries: receivers deduplicate by it (`Switchboard-Delivery`).
    pub id: String,
    pub site: SiteId,
    pub url: String,
    pub event: String,
    /// The exact JSON body sent (and signed).
    pub body: String,
    pub attempts: u32,
    pub created_at: Millis,
    pub next_at: Millis,
    /// Give up (keep as dead) after this instant.
    pub expires_at: Millis,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub dead: bool,
    /// The visitor the event is about, when it names one (a privacy erase removes it).
    #[serde(default)]
    pub visitor: Option<String>,
}

impl Ticket {
    /// What full-text search finds a ticket by: the visitor's name and email, the offline
    /// message, and every message and private note; as words (runs of letters and digits),
    /// the way queries are split, so both databases find the same tickets for the same words
    /// (PostgreSQL would keep an address as one token).
    pub fn search_text(&self) -> String {
        self.search_source()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn search_source(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        parts.extend(self.visitor.name.as_deref());
        parts.extend(self.visitor.email.as_deref());
        parts.extend(self.offline_message.as_ref().map(|m| m.text.as_str()));
        for e in &self.transcript {
            match &e.body {
                crate::model::EventBody::Message { text, .. }
                | crate::model::EventBody::Note { text, .. } => parts.push(text),
                _ => {}
            }
        }
        parts.join(" ")
    }
}

/// Which tickets to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct TicketFilter {
    /// Tickets closed at or after this instant.
    pub since: Option<Millis>,
    /// Tickets closed before this instant.
    pub until: Option<Millis>,
    /// Tickets the visitor rated with this score.
    pub rating: Option<u8>,
    pub department: Option<DeptId>,
    /// Only these departments (an agent's inbox: the departments they work in).
    pub departments: Option<Vec<DeptId>>,
    pub agent: Option<String>,
    pub status: Option<String>,
    /// One visitor's tickets (their earlier chats, for the agent in a new one).
    pub visitor: Option<String>,
    /// Continue after this ticket id (exclusive).
    pub cursor: Option<String>,
    /// Words that must all appear in the ticket (full-text search).
    pub query: Option<String>,
    pub follow_up: Option<FollowUp>,
    /// Tickets carrying this tag.
    pub tag: Option<String>,
    pub limit: usize,
}

impl TicketFilter {
    pub fn matches(&self, t: &Ticket) -> bool {
        self.since.is_none_or(|s| t.closed_at >= s)
            && self.until.is_none_or(|u| t.closed_at < u)
            && self
                .rating
                .is_none_or(|r| t.rating.as_ref().is_some_and(|x| x.score == r))
            && self.department.as_ref().is_none_or(|d| &t.department == d)
            && self.status.as_ref().is_none_or(|s| &t.status == s)
            && self.visitor.as_ref().is_none_or(|v| &t.visitor.id == v)
            && self
                .agent
                .as_ref()
                .is_none_or(|a| t.agents.iter().any(|x| &x.id.0 == a))
    }
}

pub type Result<T> = std::result::Result<T, RecordError>;

/// Durable tickets and the webhook outbox.
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Inserts or replaces a ticket and queues deliveries, durably, before returning.
    async fn save(&self, ticket: &Ticket, deliveries: &[Delivery]) -> Result<()>;
    async fn get(&self, site: &SiteId, id: &str) -> Result<Option<Ticket>>;
    /// Newest first, after the cursor, matching the filter, at most `limit`.
    async fn list(&self, site: &SiteId, filter: &TicketFilter) -> Result<Vec<Ticket>>;

    /// Queues deliveries that come with no ticket change (conversation events).
    async fn enqueue(&self, deliveries: &[Delivery]) -> Result<()>;
    /// Takes up to `max` due deliveries and hides them from other nodes until `lease_until`.
    async fn claim(&self, now: Millis, lease_until: Millis, max: usize) -> Result<Vec<Delivery>>;
    async fn delivered(&self, id: &str) -> Result<()>;
    /// Stores a failed attempt: `next_at` and `attempts` updated, or `dead` set.
    async fn reschedule(&self, delivery: &Delivery) -> Result<()>;
    /// A site's dead deliveries in id order, after `after` (an id), at most `limit`.
    async fn dead(&self, site: &SiteId, after: Option<&str>, limit: usize)
    -> Result<Vec<Delivery>>;
    /// One dead delivery of the site.
    async fn dead_one(&self, site: &SiteId, id: &str) -> Result<Option<Delivery>>;
    /// Claims an idempotency key for a request with this fingerprint, or says what became of
    /// the first request with it. A claim left by a request that never finished (its node
    /// died) is taken over after `stale_before`.
    async fn idempotency_claim(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: Millis,
        stale_before: Millis,
    ) -> Result<IdempotencyClaim>;
    /// Keeps the answer to a claimed key.
    async fn idempotency_keep(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        content_type: &str,
        body: &str,
    ) -> Result<()>;
    /// Lets a claimed key go (the request failed in a way a retry should redo).
    async fn idempotency_release(&self, scope: &str, key: &str) -> Result<()>;
    /// Forgets keys claimed before `before`; how many.
    async fn idempotency_expire(&self, before: Millis) -> Result<u64>;
    /// How many deliveries wait in the outbox (to be sent or retried) and how many are dead.
    async fn outbox_counts(&self) -> Result<(u64, u64)>;
    /// How many deliveries are dead per receiver URL and event, read by the database.
    async fn dead_counts(&self, site: &SiteId) -> Result<Vec<DeadCount>>;
    /// Makes a dead delivery due again now. False when there is no such dead delivery.
    async fn revive(&self, id: &str, now: Millis, expires_at: Millis) -> Result<bool>;

    /// Figures of the tickets closed in a range, per group, computed by the database.
    async fn stats(&self, query: &StatsQuery) -> Result<Vec<Figures>>;

    /// Deletes a visitor's tickets, their visitor record and every pending or dead delivery
    /// that names them, in one transaction. The number of tickets deleted.
    async fn erase_visitor(&self, site: &SiteId, visitor: &str) -> Result<u64>;
    /// Deletes tickets closed before `before` (the retention setting). The number deleted.
    async fn expire(&self, before: Millis) -> Result<u64>;
    /// Records an entry in the audit log.
    async fn audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Audit entries matching the filter, newest first, each with its id (the cursor).
    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<(String, AuditEntry)>>;

    /// Stores a visitor's profile (the record a returning visitor is recognised by).
    async fn put_visitor(&self, site: &SiteId, profile: &VisitorProfile) -> Result<()>;
    async fn visitor(&self, site: &SiteId, id: &VisitorId) -> Result<Option<VisitorProfile>>;
    /// The latest `limit` assigned chats of a department, newest first: their handling times
    /// and waits, with the estimate each visitor was given (what estimates learn from).
    async fn wait_samples(
        &self,
        site: &SiteId,
        dept: &DeptId,
        limit: u32,
    ) -> Result<Vec<WaitSample>>;
    /// Assigned chats closed in `[since, until)` whose visitor was given an estimate (of one
    /// department, or all): how accurate the estimates were.
    async fn wait_accuracy(
        &self,
        site: &SiteId,
        dept: Option<&DeptId>,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<WaitSample>>;
    /// How many of a department's chats closed in `[since, until)` took longer than `secs`
    /// to be assigned (`Measure::QueueWait`) or first answered (`Measure::FirstResponse`):
    /// service-level breaches.
    async fn count_over(
        &self,
        site: &SiteId,
        dept: &DeptId,
        range: (Millis, Millis),
        measure: Measure,
        secs: f64,
    ) -> Result<u64>;
    /// The agent who held the visitor's latest chat closed at or after `since`, if any (the
    /// routing policy's last agent).
    async fn last_agent(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        since: Millis,
    ) -> Result<Option<AgentId>>;
    /// Records that a trigger fired for a visitor, unless an earlier record still holds (its
    /// `until` is after `now`). True when this call made the record: one atomic statement, so
    /// two nodes never both fire the same rule for one visitor.
    async fn claim_trigger(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        trigger: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool>;
    /// Deletes visitor records last seen before `before`. The number deleted.
    async fn expire_visitors(&self, before: Millis) -> Result<u64>;
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub at: Millis,
    /// Who: `admin` for the REST admin token.
    pub actor: String,
    /// What: `visitor.export`, `visitor.erase`, `ticket.read`.
    pub action: String,
    pub site: SiteId,
    /// Whose data: a visitor id, or a ticket id.
    pub subject: String,
    /// Anything else worth keeping, as JSON.
    pub detail: serde_json::Value,
}

/// Which audit entries to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub site: Option<SiteId>,
    /// `visitor.export`, `visitor.erase`, `ticket.read`.
    pub action: Option<String>,
    /// Who did it: `admin` or `agent:<site>/<id>`.
    pub actor: Option<String>,
    /// A visitor or ticket id.
    pub subject: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// Continue after this entry id (exclusive).
    pub cursor: Option<String>,
    pub limit: usize,
}

/// How `/v1/stats` groups its figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsGroup {
    /// One group, `all`.
    All,
    Department,
    /// By the agent who held the chat last; "" for chats no agent took.
    Agent,
    /// By UTC day of the close; the key is the day's first millisecond.
    Day,
}

/// Which tickets the figures cover: closed in `since..until`, of one site or of all.
#[derive(Clone, Debug)]
pub struct StatsQuery {
    pub site: Option<SiteId>,
    pub since: Millis,
    pub until: Millis,
    pub group: StatsGroup,
}

/// Median and 90th percentile (nearest rank) of one measure, over the tickets that have it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Spread {
    pub count: u64,
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RatingFigures {
    pub count: u64,
    pub average: Option<f64>,
}

/// The figures of one group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Figures {
    pub key: String,
    pub chats: u64,
    pub by_status: std::collections::BTreeMap<String, u64>,
    pub queue_wait_secs: Spread,
    pub first_response_secs: Spread,
    pub handling_secs: Spread,
    pub rating: RatingFigures,
}
