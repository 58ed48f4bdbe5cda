//! What an agent's socket carries: commands in (`AgentIn`), and chats, queues and the agent's own state out (`AgentOut`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{ClientId, ConvSummary, TicketPreview};
use crate::model::{AgentId, AgentStatus, ConvId, DeptId, Event, VisitorProfile};

/// Agent → server.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentIn {
    Hello {
        /// An API token, or an HS256 JWT from the host application (single sign-on); empty
        /// when the console's session cookie came with the upgrade.
        #[serde(default)]
        token: String,
        #[serde(default)]
        status: Option<AgentStatus>,
        /// Last sequence number seen per conversation; chats not listed arrive whole.
        #[serde(default)]
        resume: HashMap<ConvId, u64>,
    },
    SetStatus {
        status: AgentStatus,
    },
    SetLimit {
        max_concurrent: u32,
    },
    Message {
        conversation: ConvId,
        client_id: ClientId,
        text: String,
    },
    Typing {
        conversation: ConvId,
        on: bool,
    },
    /// A read receipt: the agent has seen the conversation up to `seq`.
    Read {
        conversation: ConvId,
        seq: u64,
    },
    /// Starts (or stops) receiving the site's live visitors: `visitors` now, then `visitor`
    /// and `visitor_left` as they arrive, move and leave.
    WatchVisitors {
        on: bool,
    },
    /// Opens a conversation with a browsing visitor; the widget opens with this message.
    StartChat {
        visitor: crate::model::VisitorId,
        client_id: ClientId,
        text: String,
    },
    /// The site's agents with their status and load (for the transfer dialog), answered with
    /// `colleagues`.
    Colleagues,
    /// The visitor's earlier tickets, newest first (at most 20), answered with `history`.
    History {
        visitor: crate::model::VisitorId,
    },
    /// A private note in a chat: agents see it (and the ticket keeps it), the visitor never.
    Note {
        conversation: ConvId,
        client_id: ClientId,
        text: String,
    },
    /// An earlier page of one of your chats: the latest events with `after < seq < before`,
    /// answered with `transcript`.
    Transcript {
        conversation: ConvId,
        before: u64,
        #[serde(default)]
        after: u64,
    },
    Close {
        conversation: ConvId,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Takes a chat offered to you (a department in `offer` mode): the visitor is introduced
    /// to you.
    Accept {
        conversation: ConvId,
    },
    /// Refuses a chat offered to you: it goes to the next agent and never comes back to you.
    Decline {
        conversation: ConvId,
        /// Why, for the ticket's history (`busy`, `wrong_department`, `language`, or words).
        reason: String,
    },
    Transfer {
        conversation: ConvId,
        #[serde(default)]
        to_agent: Option<AgentId>,
        #[serde(default)]
        to_department: Option<DeptId>,
        reason: String,
        #[serde(default)]
        note: Option<String>,
    },
    Ping,
}

/// Where a transfer sends a chat. On the wire `transfer` names exactly one of `to_agent` and
/// `to_department`; the socket turns the pair into this before the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferTarget {
    Agent(AgentId),
    Department(DeptId),
}

impl TransferTarget {
    pub fn parse(to_agent: Option<AgentId>, to_department: Option<DeptId>) -> Option<Self> {
        match (to_agent, to_department) {
            (Some(a), None) => Some(Self::Agent(a)),
            (None, Some(d)) => Some(Self::Department(d)),
            _ => None,
        }
    }
}

/// A chat nearing or past its department's service-level target, as supervisors hear of it
/// (the `sla_warning` frame, the `sla.warning` and `sla.breached` webhooks).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SlaWarning {
    #[schema(value_type = String)]
    pub conversation: ConvId,
    #[schema(value_type = String)]
    pub department: DeptId,
    /// `wait`: the time in the department's queue.
    pub target: String,
    pub target_secs: u32,
    pub elapsed_secs: u32,
    /// False: near the target (its warning share, 80 % by default); true: past it.
    pub breached: bool,
}

/// One department queue as agents see it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueStat {
    pub department: DeptId,
    pub size: u32,
    /// Seconds the oldest queued conversation has waited.
    pub oldest_wait_secs: u64,
}

/// The agent's own routing state, sent on `welcome` and whenever it changes.
#[derive(Clone, Debug, Serialize)]
pub struct AgentSelf {
    pub id: AgentId,
    pub name: String,
    pub status: AgentStatus,
    pub max_concurrent: u32,
    pub max_allowed: u32,
    pub load: u32,
    pub departments: Vec<DeptId>,
}

/// Server → agent.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentOut<'a> {
    Welcome {
        agent: &'a AgentSelf,
        heartbeat_secs: f64,
        /// The site as a console needs it: name, departments and agents (transfer targets),
        /// canned responses.
        site: &'a serde_json::value::RawValue,
    },
    /// The site changed (an admin edited its departments, agents or canned responses): the
    /// same object as `welcome.site`, in force now.
    Site {
        site: &'a serde_json::value::RawValue,
    },
    /// A visitor's earlier tickets, newest first, each with the end of its transcript; `more`
    /// when older tickets did not fit in the frame.
    History {
        visitor: &'a crate::model::VisitorId,
        tickets: &'a [TicketPreview],
        more: bool,
    },
    /// The site's agents as the transfer dialog shows them (answer to `colleagues`).
    Colleagues {
        agents: &'a [Colleague<'a>],
    },
    /// The agent's status, limit or load changed (from this or another connection).
    Agent {
        agent: &'a AgentSelf,
    },
    /// A chat is yours: the latest page of its transcript (of what you missed, when resuming)
    /// and the visitor; `more` when earlier events are left for `transcript` requests.
    Assigned {
        conversation: &'a ConvSummary,
        visitor: &'a VisitorProfile,
        events: &'a [Event],
        more: bool,
    },
    /// A page of a chat's transcript, answering `transcript`.
    Transcript {
        conversation: &'a ConvId,
        events: &'a [Event],
        more: bool,
    },
    Event {
        conversation: &'a ConvId,
        event: &'a Event,
    },
    /// The chat is no longer yours (transferred away, requeued after grace, or closed).
    Unassigned {
        conversation: &'a ConvId,
        reason: &'a str,
    },
    Ack {
        client_id: &'a ClientId,
        conversation: &'a ConvId,
        seq: u64,
    },
    Queues {
        queues: &'a [QueueStat],
    },
    /// Everyone on the site now (after `watch_visitors`).
    Visitors {
        visitors: &'a [crate::model::LiveVisitor],
    },
    /// A visitor arrived or changed page, or their chat state changed.
    Visitor {
        visitor: &'a crate::model::LiveVisitor,
    },
    /// An offline message arrived (now an open ticket in the inbox).
    OfflineMessage {
        ticket: &'a str,
        department: &'a DeptId,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        email: &'a str,
        text: &'a str,
        /// The visitor answered an email from the inbox (the ticket is open again).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        email_reply: bool,
    },
    /// A chat neared or passed its department's service-level target (supervisors and admins).
    SlaWarning {
        #[serde(flatten)]
        warning: &'a crate::protocol::SlaWarning,
    },
    /// A visitor left the site.
    VisitorLeft {
        id: &'a crate::model::VisitorId,
    },
    Typing {
        conversation: &'a ConvId,
        on: bool,
        /// The visitor's draft (sites with `typing_preview` only).
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<&'a str>,
    },
    /// The visitor has read the conversation up to `seq`.
    Read {
        conversation: &'a ConvId,
        seq: u64,
    },
    /// Your `close` is done and the ticket is stored.
    Closed {
        conversation: &'a ConvId,
        ticket: &'a str,
    },
    // `error` frames come from `ws::session`: the same shape on both sockets.
    Pong,
}

/// A colleague as the transfer dialog shows them: who is there and how busy.
#[derive(Debug, Serialize)]
pub struct Colleague<'a> {
    pub id: &'a AgentId,
    pub name: &'a str,
    pub status: AgentStatus,
    /// Connected, or within the reconnect grace.
    pub present: bool,
    pub load: u32,
    pub max_concurrent: u32,
    pub departments: &'a [DeptId],
}
