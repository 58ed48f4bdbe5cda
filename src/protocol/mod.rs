//! Protocol v1: the JSON messages on `/v1/visitor` and `/v1/agent`, error codes and close codes.
//!
//! Every message is an object with a `type`. Input is parsed into these enums at the edge and
//! validated into newtypes (`MessageText`, `ClientId`) before the engine sees it.
//! `docs/protocol.md` documents all of it; keep the two in step.
//!
//! This file holds what both sockets share: error codes, close codes, the input newtypes and
//! how a malformed frame is classified. `visitor` and `agent` hold each socket's messages;
//! `pages` bounds what one frame of events may carry.

mod agent;
mod pages;
mod visitor;

use serde::{Deserialize, Serialize};

pub use agent::*;
pub use pages::*;
pub use visitor::*;

use crate::model::Millis;

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
    /// The chat is offered to you: accept it before writing in it, closing or transferring it.
    NotAccepted,
}

impl ErrorCode {
    /// Every code, for the tests that hold the wire names to `as_str`.
    pub const ALL: [ErrorCode; 29] = [
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
        Self::NotAccepted,
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
            Self::NotAccepted => "not_accepted",
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

/// For time since something, in whole seconds.
pub fn secs_since(at: Millis, now: Millis) -> u64 {
    (now.saturating_sub(at).max(0) / 1000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;

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
