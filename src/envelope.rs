//! What the state backends hand over for delivery: the `Envelope` (a stored event, or an
//! ephemeral change) and the `Sink` that takes it on this node.
//!
//! The backends know only the sink, not the sessions behind it: memory hands every envelope over
//! as it stores it, Redis through its pub/sub subscriber (and asks for a resync after losing the
//! subscription, since pub/sub is at-most-once). `hub::Hub` is the sink; it fans envelopes out
//! to the sockets that follow them.

use serde::{Deserialize, Serialize};

use crate::model::{AgentId, ConvId, DeptId, Event, SiteId, VisitorId};

/// Takes envelopes for this node's sessions. Must not block: called under the memory
/// backend's lock and from the Redis subscriber.
pub trait Sink: Send + Sync + 'static {
    /// One envelope for whoever on this node follows it.
    fn deliver(&self, envelope: Envelope);
    /// Envelopes may have been lost (a pub/sub reconnect): every session catches up from the log.
    fn resync(&self);
}

/// What travels between nodes (and, in memory, straight to the delivery sink).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Envelope {
    /// A stored event; the Redis append script builds this JSON itself, keep the shape.
    Event {
        site: SiteId,
        conv: ConvId,
        /// The conversation's visitor: all their tabs get it, even before following the chat.
        visitor: VisitorId,
        event: Event,
    },
    /// Ephemeral typing indicator.
    Typing {
        site: SiteId,
        conv: ConvId,
        visitor: VisitorId,
        /// True when the agent types (so the visitor's sessions show it), false for the visitor.
        agent: bool,
        on: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The visitor's draft, where the site enables `typing_preview`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        draft: Option<String>,
    },
    /// A read receipt: one side has seen the conversation up to `seq` (stored on the
    /// conversation; this tells the other side at once).
    Read {
        site: SiteId,
        conv: ConvId,
        visitor: VisitorId,
        /// True when the agent read (so the visitor's sessions show it).
        agent: bool,
        seq: u64,
    },
    /// An offline message became a ticket: every console of the site hears of it.
    Offline {
        site: SiteId,
        ticket: String,
        department: DeptId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        email: String,
        /// The message's beginning (at most 200 characters); the ticket has it whole.
        text: String,
        /// An email reply to an answer (`inbound`), not a message left in the widget.
        #[serde(default)]
        reply: bool,
    },
    /// A chat neared or passed a service-level target: the site's supervisors hear of it.
    Sla {
        site: SiteId,
        warning: crate::protocol::SlaWarning,
    },
    /// A department queue changed: positions and queue stats need refreshing.
    Queue { site: SiteId, dept: DeptId },
    /// An agent's status, limit or load changed.
    Agent { site: SiteId, agent: AgentId },
    /// A visitor arrived, moved to another page, or (`live: false`) left the site.
    Visitor {
        site: SiteId,
        visitor: VisitorId,
        live: bool,
    },
}
