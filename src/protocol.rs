//! Protocol v1: the JSON messages on `/v1/visitor` and `/v1/agent`, error codes and close codes.
//!
//! Every message is an object with a `type`. Input is parsed into these enums at the edge and
//! validated into newtypes (`MessageText`, `ClientId`) before the engine sees it.
//! `docs/protocol.md` documents all of it; keep the two in step.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    AgentId, AgentStatus, ConvId, ConvState, DeptId, Event, Millis, VisitorId, VisitorProfile,
};

/// Stable, client-facing error codes. Never rename one: clients switch on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON.
    BadJson,
    /// The JSON has no known `type`.
    UnknownType,
    /// A known type with missing or invalid fields.
    InvalidMessage,
    /// The frame is larger than `limits.max_frame_bytes`.
    FrameTooLarge,
    /// The text is longer than `limits.max_message_chars` or empty.
    MessageTooLong,
    EmptyMessage,
    /// Over the per-connection rate; the frame was dropped.
    RateLimited,
    /// Binary frames are not part of the protocol.
    BinaryNotSupported,
    /// A message other than `hello` before `welcome`.
    HelloRequired,
    /// A second `hello` on an established connection.
    AlreadyAuthenticated,
    /// Wrong or expired token.
    Unauthorized,
    UnknownSite,
    UnknownDepartment,
    UnknownAgent,
    /// No such conversation, or not yours.
    NotFound,
    /// The conversation is not assigned to you.
    NotOwner,
    ConversationClosed,
    /// The requested concurrency limit is outside 1..=configured maximum.
    LimitOutOfRange,
    /// The transfer target cannot take the chat now.
    TargetUnavailable,
    /// The state backend failed; retry later. Nothing was stored.
    Unavailable,
    /// No recently closed conversation to rate, or the rating window has passed.
    NothingToRate,
    /// The rating is not 1 to 5.
    InvalidRating,
    InvalidEmail,
    /// `user_hash` does not match `user_id` for this site.
    IdentityMismatch,
    /// The visitor already has an open conversation.
    VisitorBusy,
    /// The server lost this conversation (Redis restarted without its data); the next message
    /// starts a new one.
    ConversationLost,
    /// The site sends no email (no SMTP server configured), or its server refused this one.
    EmailUnavailable,
    /// The conversation holds `attachments.max_per_conversation` files already.
    TooManyFiles,
}

impl ErrorCode {
    /// Every code, for the tests that hold the wire names to `as_str`.
    pub const ALL: [ErrorCode; 28] = [
        Self::BadJson,
        Self::UnknownType,
        Self::InvalidMessage,
        Self::FrameTooLarge,
        Self::MessageTooLong,
        Self::EmptyMessage,
        Self::RateLimited,
        Self::BinaryNotSupported,
        Self::HelloRequired,
        Self::AlreadyAuthenticated,
        Self::Unauthorized,
        Self::UnknownSite,
        Self::UnknownDepartment,
        Self::UnknownAgent,
        Self::NotFound,
        Self::NotOwner,
        Self::ConversationClosed,
        Self::LimitOutOfRange,
        Self::TargetUnavailable,
        Self::Unavailable,
        Self::NothingToRate,
        Self::InvalidRating,
        Self::InvalidEmail,
        Self::IdentityMismatch,
        Self::VisitorBusy,
        Self::ConversationLost,
        Self::EmailUnavailable,
        Self::TooManyFiles,
    ];

    /// The code on the wire: in error frames, REST error bodies and the `errors` metric.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadJson => "bad_json",
            Self::UnknownType => "unknown_type",
            Self::InvalidMessage => "invalid_message",
            Self::FrameTooLarge => "frame_too_large",
            Self::MessageTooLong => "message_too_long",
            Self::EmptyMessage => "empty_message",
            Self::RateLimited => "rate_limited",
            Self::BinaryNotSupported => "binary_not_supported",
            Self::HelloRequired => "hello_required",
            Self::AlreadyAuthenticated => "already_authenticated",
            Self::Unauthorized => "unauthorized",
            Self::UnknownSite => "unknown_site",
            Self::UnknownDepartment => "unknown_department",
            Self::UnknownAgent => "unknown_agent",
            Self::NotFound => "not_found",
            Self::NotOwner => "not_owner",
            Self::ConversationClosed => "conversation_closed",
            Self::LimitOutOfRange => "limit_out_of_range",
            Self::TargetUnavailable => "target_unavailable",
            Self::Unavailable => "unavailable",
            Self::NothingToRate => "nothing_to_rate",
            Self::InvalidRating => "invalid_rating",
            Self::InvalidEmail => "invalid_email",
            Self::IdentityMismatch => "identity_mismatch",
            Self::VisitorBusy => "visitor_busy",
            Self::ConversationLost => "conversation_lost",
            Self::EmailUnavailable => "email_unavailable",
            Self::TooManyFiles => "too_many_files",
        }
    }
}

/// WebSocket close codes Switchboard uses besides the standard ones.
pub mod close {
    /// No `hello` within `timing.hello_timeout_secs`.
    pub const HELLO_TIMEOUT: u16 = 4002;
    /// Nothing heard for three heartbeat intervals.
    pub const HEARTBEAT_TIMEOUT: u16 = 4003;
    /// The client fell `limits.send_queue` messages behind; reconnect and resume.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// Too many failed `hello` attempts.
    pub const UNAUTHORIZED: u16 = 4001;
    /// The agent was removed or disabled, or their credentials changed: sign in again.
    pub const SIGNED_OUT: u16 = 4004;
    /// The server is shutting down; reconnect (to another node).
    pub const GOING_AWAY: u16 = 1001;
}

/// A client-chosen id that makes a send idempotent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty() || s.chars().count() > 64 || s.chars().any(|c| c.is_control()) {
            Err("client_id must be 1-64 printable characters")
        } else {
            Ok(Self(s))
        }
    }
}

impl From<ClientId> for String {
    fn from(c: ClientId) -> String {
        c.0
    }
}

/// Message text, checked against the configured length. Rendered as text by every client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(s: String, max_chars: usize) -> Result<Self, ErrorCode> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(ErrorCode::EmptyMessage);
        }
        if trimmed.chars().count() > max_chars {
            return Err(ErrorCode::MessageTooLong);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

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
        }
    }
}

/// One department queue as agents see it.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
        estimate_minutes: u32,
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

/// Server → agent.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentOut<'a> {
    Welcome {
        agent: &'a AgentSelf,
        heartbeat_secs: f64,
        /// The site as a console needs it: name, departments and agents (transfer targets),
        /// canned responses.
        site: &'a serde_json::Value,
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
        visitors: &'a [serde_json::Value],
    },
    /// A visitor arrived or changed page, or their chat state changed.
    Visitor {
        visitor: &'a serde_json::Value,
    },
    /// An offline message arrived (now an open ticket in the inbox).
    OfflineMessage {
        ticket: &'a str,
        department: &'a DeptId,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        email: &'a str,
        text: &'a str,
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

/// At most this many events travel in one page (`assigned`, `transcript`, backfills read from
/// the log)...
pub const PAGE_EVENTS: usize = 100;
/// ...and at most about this many bytes of them, so no frame grows with a conversation. One
/// event is at most about 25 KB (4,000 characters, every one escaped), so one always fits; the
/// socket's write limit (`ws::configure`) leaves room for a page and more.
pub const PAGE_BYTES: usize = 48 * 1024;

/// Keeps the latest of `events` whose JSON fits in `budget` bytes, and always the newest one.
/// True when older events were dropped.
pub fn keep_latest(events: &mut Vec<Event>, budget: usize) -> bool {
    let mut used = 0;
    let mut keep = 0;
    for e in events.iter().rev() {
        let size = serde_json::to_vec(e).map_or(0, |v| v.len()) + 1;
        if keep > 0 && used + size > budget {
            break;
        }
        used += size;
        keep += 1;
    }
    let dropped = events.len() - keep;
    events.drain(..dropped);
    dropped > 0
}

/// A page of a transcript read backward: trimmed to `PAGE_BYTES`; `more` when events between
/// `after` and the page are left out.
pub fn latest_page(mut events: Vec<Event>, after: u64) -> (Vec<Event>, bool) {
    keep_latest(&mut events, PAGE_BYTES);
    let more = events.first().is_some_and(|e| e.seq > after + 1);
    (events, more)
}

/// An earlier ticket as `history` shows it: whole but for its transcript, of which only the
/// end travels (`transcript_more` when earlier events were left out; REST has the rest).
#[derive(Debug, Serialize)]
pub struct TicketPreview {
    #[serde(flatten)]
    pub ticket: crate::tickets::Ticket,
    pub transcript_more: bool,
}

/// Events of an earlier ticket shown in `history`, and their bytes.
const PREVIEW_EVENTS: usize = 20;
const PREVIEW_BYTES: usize = 6 * 1024;

/// Fits earlier tickets, newest first, into one frame: each keeps the end of its transcript;
/// tickets that no longer fit are left out. True when some were.
pub fn ticket_previews(tickets: Vec<crate::tickets::Ticket>) -> (Vec<TicketPreview>, bool) {
    let mut out = Vec::new();
    let mut used = 0;
    let total = tickets.len();
    for mut ticket in tickets {
        let start = ticket.transcript.len().saturating_sub(PREVIEW_EVENTS);
        let mut more = start > 0;
        ticket.transcript.drain(..start);
        more |= keep_latest(&mut ticket.transcript, PREVIEW_BYTES);
        let preview = TicketPreview {
            ticket,
            transcript_more: more,
        };
        let size = serde_json::to_vec(&preview).map_or(0, |v| v.len());
        if !out.is_empty() && used + size > PAGE_BYTES {
            break;
        }
        used += size;
        out.push(preview);
    }
    let more = out.len() < total;
    (out, more)
}

/// Classifies a frame that did not parse into a message: not JSON at all, no known `type`, or
/// a known type with bad fields.
pub fn classify_parse_error<T: serde::de::DeserializeOwned>(
    err: &serde_json::Error,
    raw: &str,
) -> (ErrorCode, String) {
    let value = match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(v) => v,
        Err(e) => return (ErrorCode::BadJson, format!("not JSON: {e}")),
    };
    let msg = err.to_string();
    match value.get("type").and_then(|t| t.as_str()) {
        None => (
            ErrorCode::InvalidMessage,
            "a JSON object with a string `type` is required".into(),
        ),
        // Only the message type itself: an unknown value of a field (`set_status` with a status
        // that does not exist) is an invalid message of a known type. A type is known when a
        // message with nothing but it fails for some other reason (or parses).
        Some(t) if !is_known_type::<T>(t) => (
            ErrorCode::UnknownType,
            format!("unknown message type `{t}`"),
        ),
        Some(t) => (ErrorCode::InvalidMessage, format!("invalid `{t}`: {msg}")),
    }
}

fn is_known_type<T: serde::de::DeserializeOwned>(t: &str) -> bool {
    match serde_json::from_value::<T>(serde_json::json!({ "type": t })) {
        Ok(_) => true,
        Err(e) => !e.to_string().starts_with("unknown variant"),
    }
}

/// Minutes in a queue estimate are shown whole and at least one.
pub fn estimate_minutes(position: u32, avg_handle_secs: f64, capacity: u32) -> u32 {
    let secs = f64::from(position) * avg_handle_secs / f64::from(capacity.max(1));
    ((secs / 60.0).ceil() as u32).max(1)
}

/// For time since something, in whole seconds.
pub fn secs_since(at: Millis, now: Millis) -> u64 {
    (now.saturating_sub(at).max(0) / 1000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_str` is the name serde writes: one mapping, whichever door an error leaves by.
    #[test]
    fn error_code_names_match_the_wire() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                code.as_str(),
                "{code:?}"
            );
        }
    }

    /// Malformed JSON, an unknown type and a bad field get three different codes.
    #[test]
    fn parse_errors_are_classified() {
        for (raw, want) in [
            ("{nope", ErrorCode::BadJson),
            ("[1,2", ErrorCode::BadJson),
            ("[1,2]", ErrorCode::InvalidMessage),
            (r#"{"type":"dance"}"#, ErrorCode::UnknownType),
            (r#"{"type":"message","text":1}"#, ErrorCode::InvalidMessage),
            (r#"{"text":"hi"}"#, ErrorCode::InvalidMessage),
        ] {
            let err = serde_json::from_str::<VisitorIn>(raw).unwrap_err();
            assert_eq!(
                classify_parse_error::<VisitorIn>(&err, raw).0,
                want,
                "{raw}"
            );
        }
        for (raw, want) in [
            (
                r#"{"type":"set_status","status":"busy"}"#,
                ErrorCode::InvalidMessage,
            ),
            (
                r#"{"type":"set_status","status":"set_status"}"#,
                ErrorCode::InvalidMessage,
            ),
            (r#"{"type":"set_mood"}"#, ErrorCode::UnknownType),
        ] {
            let err = serde_json::from_str::<AgentIn>(raw).unwrap_err();
            assert_eq!(classify_parse_error::<AgentIn>(&err, raw).0, want, "{raw}");
        }
    }

    /// A page keeps the newest events that fit, always at least one, and says whether
    /// earlier ones exist.
    #[test]
    fn pages_are_bounded() {
        let event = |seq: u64, len: usize| Event {
            seq,
            body: crate::model::EventBody::Message {
                at: 0,
                author: crate::model::AuthorKind::Visitor,
                author_id: Some("v".into()),
                author_name: None,
                text: "x".repeat(len),
                attachment: None,
                client_id: None,
            },
        };
        let events: Vec<Event> = (1..=30).map(|s| event(s, 4000)).collect();
        let (page, more) = latest_page(events, 0);
        assert!(more);
        assert_eq!(page.last().unwrap().seq, 30);
        assert!(serde_json::to_vec(&page).unwrap().len() <= PAGE_BYTES);
        assert!(page.len() >= 10, "{}", page.len());
        let (page, more) = latest_page(vec![event(7, 60_000)], 6);
        assert_eq!((page.len(), more), (1, false));
        let (page, more) = latest_page((3..=5).map(|s| event(s, 10)).collect(), 2);
        assert_eq!((page.len(), more), (3, false));
    }

    /// Text is trimmed, must be non-empty, and is bounded in characters (not bytes).
    #[test]
    fn message_text_limits() {
        assert_eq!(
            MessageText::parse("  ".into(), 5),
            Err(ErrorCode::EmptyMessage)
        );
        assert!(MessageText::parse("привет".into(), 6).is_ok());
        assert_eq!(
            MessageText::parse("привет!".into(), 6),
            Err(ErrorCode::MessageTooLong)
        );
    }
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
