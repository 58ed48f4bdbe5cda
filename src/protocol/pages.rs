//! Bounded pages of a conversation's events, and ticket previews: no frame grows with a conversation.

use serde::Serialize;

use crate::model::Event;

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
