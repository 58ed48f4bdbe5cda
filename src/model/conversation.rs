//! Conversations and the events stored in their logs: what a chat is, and every step of it.

use serde::{Deserialize, Serialize};

use super::{AgentId, ConvId, DeptId, Millis, VisitorId};

/// Where a conversation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConvState {
    Queued,
    Active,
    Closed,
}

impl ConvState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConvState::Queued => "queued",
            ConvState::Active => "active",
            ConvState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(ConvState::Queued),
            "active" => Some(ConvState::Active),
            "closed" => Some(ConvState::Closed),
            _ => None,
        }
    }
}

/// A conversation's routing record. The transcript lives in its event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Conversation {
    pub id: ConvId,
    pub visitor: VisitorId,
    pub department: DeptId,
    pub state: ConvState,
    /// The owner while active; the last owner once closed.
    pub agent: Option<AgentId>,
    /// Higher is served first; arrival breaks ties.
    pub priority: u8,
    pub created_at: Millis,
    pub queued_at: Option<Millis>,
    pub first_assigned_at: Option<Millis>,
    pub closed_at: Option<Millis>,
    pub close_reason: Option<String>,
    /// The visitor's locale when the chat started: automatic replies use it.
    pub locale: String,
    /// The highest sequence number stored so far.
    pub last_seq: u64,
    /// Read receipts: the highest sequence number the visitor has seen, and the agent.
    #[serde(default)]
    pub visitor_read: u64,
    #[serde(default)]
    pub agent_read: u64,
    /// What the agent who takes it must have (skills), may need to have (optional skills,
    /// until the department widens), and the visitor's last agent: fixed when it opens.
    #[serde(default, skip_serializing_if = "crate::routing::Needs::is_empty")]
    pub needs: crate::routing::Needs,
    /// Since when the owner has not yet acted on the chat: accepted the offer (`offered`), or
    /// answered the visitor. A department with an accept or first-reply timeout takes the chat
    /// back once it has passed (`Store::pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<Millis>,
    /// Offered to its owner, not yet accepted (a department in `offer` mode): the owner may
    /// accept or decline, not write.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offered: bool,
}

impl Conversation {
    /// A new conversation of a visitor, about to be queued (or closed at once when offline).
    pub fn new(visitor: VisitorId, department: DeptId, locale: String, now: Millis) -> Self {
        Self {
            id: ConvId::generate(),
            visitor,
            department,
            state: ConvState::Queued,
            agent: None,
            priority: 0,
            created_at: now,
            queued_at: None,
            first_assigned_at: None,
            closed_at: None,
            close_reason: None,
            locale,
            needs: crate::routing::Needs::default(),
            last_seq: 0,
            visitor_read: 0,
            agent_read: 0,
            pending_since: None,
            offered: false,
        }
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    Visitor,
    Agent,
    System,
}

/// An agent as the transcript names them: always with the full display name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentRef {
    pub id: AgentId,
    pub name: String,
}

/// Which automatic notice a `notice` event is, so clients can style it without parsing text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// First reply while queued: position and estimate.
    Queued,
    /// No agent can serve: asks for an email.
    Offline,
    /// The chat is being transferred.
    Transferring,
    /// The agent was lost; the chat went back to the queue.
    Requeued,
    /// The chat waited its department's longest and moved to the next of its overflow chain.
    Overflowed,
    /// The agent did not answer in time; the chat goes to the next agent, first in line.
    Reassigned,
    /// The visitor has been silent a while: the chat closes soon unless they answer.
    InactivityWarning,
}

/// A file in a message: what clients need to show it before fetching it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttachmentRef {
    /// Fetched from `/v1/attachments/{id}` by those who may read the conversation.
    pub id: String,
    /// The file name the sender gave, cleaned of paths and control characters.
    pub name: String,
    /// The type found in the file's first bytes, never the one the sender claimed.
    pub content_type: String,
    /// Bytes.
    pub size: u64,
}

/// A stored event of a conversation: what reconnecting clients replay by sequence number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub seq: u64,
    #[serde(flatten)]
    pub body: EventBody,
}

/// What happened. `at` is in every variant so a body serializes to a complete object on its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    Message {
        at: Millis,
        author: AuthorKind,
        /// The author's id (visitor or agent); absent for system text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author_id: Option<String>,
        /// The author's full display name (agents always have one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author_name: Option<String>,
        /// The words; for a file, its name (so clients that know no attachments show that).
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// A file sent with the message (an image or a PDF), fetched from `/v1/attachments/{id}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachment: Option<AttachmentRef>,
    },
    Notice {
        at: Millis,
        notice: NoticeKind,
        text: String,
        /// Queue position at the time of a `queued` notice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        estimate_minutes: Option<u32>,
        /// The wait estimate of a `queued` notice: a range, and what the ticket measures.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        estimate: Option<crate::routing::estimate::WaitEstimate>,
        /// Stores a notice that several nodes may send (an inactivity warning) once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// An agent took the chat; `text` introduces them to the visitor by full name.
    Assigned {
        at: Millis,
        agent: AgentRef,
        text: String,
    },
    /// Internal: the chat was offered to an agent (a department in `offer` mode), who has
    /// `accept_secs` to accept or decline it; `assigned` follows an acceptance.
    Offered { at: Millis, agent: AgentRef },
    /// Internal: visitors see the `transferring` notice, never the reason or note.
    Transferred {
        at: Millis,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<AgentRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_agent: Option<AgentRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_department: Option<DeptId>,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Internal: a private note between agents; the visitor never sees it.
    Note {
        at: Millis,
        agent: AgentRef,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Internal: the owner was lost past the grace period and the chat went back to the queue.
    Requeued {
        at: Millis,
        agent: AgentRef,
        /// `agent_disconnected`, `declined`, `offer_timeout` or `no_reply`.
        reason: String,
        /// What the agent said when declining.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Internal: a chat neared (`breached: false`) or passed its department's service-level
    /// target. Stored once per target and department (its client id), so every node tells
    /// supervisors once.
    Sla {
        at: Millis,
        department: DeptId,
        /// `wait`.
        target: String,
        target_secs: u32,
        elapsed_secs: u32,
        breached: bool,
        client_id: String,
    },
    Closed {
        at: Millis,
        by: AuthorKind,
        reason: String,
        /// The visitor-facing goodbye, in the visitor's language.
        text: String,
    },
}

impl EventBody {
    /// Internal events are stored and shown to agents, never sent to the visitor.
    pub fn visible_to_visitor(&self) -> bool {
        !matches!(
            self,
            EventBody::Transferred { .. }
                | EventBody::Offered { .. }
                | EventBody::Requeued { .. }
                | EventBody::Note { .. }
                | EventBody::Sla { .. }
        )
    }

    pub fn client_id(&self) -> Option<&str> {
        match self {
            EventBody::Message { client_id, .. }
            | EventBody::Note { client_id, .. }
            | EventBody::Notice { client_id, .. } => client_id.as_deref(),
            EventBody::Sla { client_id, .. } => Some(client_id),
            _ => None,
        }
    }
}
