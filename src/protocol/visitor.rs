//! What a visitor's socket carries: `hello`, page views, messages in (`VisitorIn`), and `welcome`, events and notices out (`VisitorOut`).

use serde::{Deserialize, Serialize};

use super::ClientId;
use crate::model::{ConvId, ConvState, DeptId, Event, Millis, VisitorId};

/// Where the visitor is, reported on `hello` and on every navigation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageInfo {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub referrer: Option<String>,
}

/// Where a reconnecting client left off.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeFrom {
    pub conversation: ConvId,
    pub last_seq: u64,
}

/// The fields of a visitor's `hello`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitorHello {
    /// The signed token from an earlier `welcome`; absent on first contact.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub resume: Option<ResumeFrom>,
    #[serde(default)]
    pub page: Option<PageInfo>,
    #[serde(default)]
    pub locale: Option<String>,
    /// The browser's IANA time zone (`Europe/Berlin`): agents see the visitor's local time.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub department: Option<DeptId>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// The host site's user id, with `user_hash` = hex HMAC-SHA256(identity secret, user_id).
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub user_hash: Option<String>,
    /// HMAC-SHA256 of `email` with the site's `identity_secret`, hex: a verified visitor's
    /// email is taken only with it (otherwise the one on record stays).
    #[serde(default)]
    pub email_hash: Option<String>,
    /// Facts the host site vouches for about a verified visitor (`{"tier": "gold"}`), which
    /// routing rules may match: taken only with `attributes_hash` (`auth::attributes_signed`).
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub attributes_hash: Option<String>,
    /// Answers to the site's custom pre-chat fields (at most 20, 500 characters each).
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
}

/// Visitor → server.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VisitorIn {
    /// Boxed: it is much larger than the other messages.
    Hello(Box<VisitorHello>),
    Page(PageInfo),
    Message {
        client_id: ClientId,
        text: String,
        /// The trigger whose proactive message this answers (first message only).
        #[serde(default)]
        trigger: Option<String>,
    },
    Typing {
        on: bool,
        /// The draft so far, shown to agents only where the site enables `typing_preview`.
        #[serde(default)]
        text: Option<String>,
    },
    /// A read receipt: the visitor has seen their conversation up to `seq`.
    Read {
        seq: u64,
    },
    Close,
    /// Rates the last closed conversation, within the site's rating window.
    Rate {
        score: u8,
        #[serde(default)]
        comment: Option<String>,
    },
    /// Emails the visitor a copy of their chat that just ended (within the rating window),
    /// answered with `transcript_sent`. At most three copies per chat.
    EmailTranscript {
        email: String,
    },
    /// Leaves a message for when no agent can serve; it becomes a ticket.
    OfflineMessage {
        email: String,
        text: String,
        #[serde(default)]
        name: Option<String>,
    },
    Ping,
}

/// A conversation as a client sees it at a glance.
#[derive(Clone, Debug, Serialize)]
pub struct ConvSummary {
    pub id: ConvId,
    pub state: ConvState,
    pub department: DeptId,
    pub last_seq: u64,
    /// Read receipts: how far the visitor and the agent have read.
    pub visitor_read: u64,
    pub agent_read: u64,
    /// Offered to the agent, not accepted yet (agents' frames only): seconds left to accept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_secs: Option<u32>,
}

impl From<&crate::model::Conversation> for ConvSummary {
    fn from(c: &crate::model::Conversation) -> Self {
        Self {
            id: c.id.clone(),
            state: c.state,
            department: c.department.clone(),
            last_seq: c.last_seq,
            visitor_read: c.visitor_read,
            agent_read: c.agent_read,
            offer_secs: None,
        }
    }
}

/// Server → visitor.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VisitorOut<'a> {
    Welcome {
        visitor_id: &'a VisitorId,
        /// Keep it (e.g. in localStorage) and send it on the next `hello`.
        token: &'a str,
        conversation: Option<ConvSummary>,
        heartbeat_secs: f64,
        /// Whether a first message would reach an agent now (someone on duty in the visitor's
        /// department, within its hours); false: the widget offers the offline form at once.
        available: bool,
        /// Every department: whether it would answer now, and when a closed one opens, so a
        /// visitor whose department is closed can pick one that is staffed.
        departments: &'a [crate::engine::DepartmentNow],
    },
    Event {
        conversation: &'a ConvId,
        event: &'a Event,
    },
    Ack {
        client_id: &'a ClientId,
        conversation: &'a ConvId,
        seq: u64,
    },
    /// Ephemeral: the current queue position (not stored; the first one is the stored notice).
    Queue {
        conversation: &'a ConvId,
        position: u32,
        /// The estimate's point in whole minutes (kept for older widgets).
        estimate_minutes: u32,
        /// The estimate: its range is what the widget shows.
        estimate: crate::routing::estimate::WaitEstimate,
    },
    Typing {
        on: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
    },
    /// The agent has read the conversation up to `seq`.
    Read {
        conversation: &'a ConvId,
        seq: u64,
    },
    // `error` frames come from `ws::session`: the same shape on both sockets.
    /// Your `close` is done and the ticket is stored.
    Closed {
        conversation: &'a ConvId,
        ticket: &'a str,
    },
    /// Your rating is stored on the ticket.
    Rated {
        ticket: &'a str,
    },
    /// A copy of the chat went to this address (the site's SMTP server accepted it).
    TranscriptSent {
        ticket: &'a str,
        email: &'a str,
    },
    /// Your offline message is stored as (part of) a ticket.
    OfflineReceived {
        ticket: &'a str,
    },
    /// A trigger's proactive message; answering it (`message` with `trigger`) starts the chat.
    Proactive {
        trigger: &'a str,
        text: &'a str,
        author_name: &'a str,
        at: Millis,
    },
    Pong,
}
