//! Resuming the embedded backend: the journal's rows, read back at start, put in place in a
//! site's state.

use std::collections::HashMap;

use super::journal::ConvRow;
use super::site::SiteState;
use super::slots::{AgentSlot, ConvSlot};
use crate::model::{AgentState, ConvId, Event, EventBody, Millis};

/// Resuming: the journal's rows, read back at start, put in place.
impl SiteState {
    /// An agent as the journal has them; their presence is vouched for by "restart" until the
    /// grace after `now` (their consoles reconnect meanwhile).
    pub(super) fn resume_agent(&mut self, mut state: AgentState, now: Millis) {
        state.present_until = 0;
        let presence = HashMap::from([(String::from("restart"), now)]);
        let id = state.id.clone();
        self.agents.insert(
            id.clone(),
            AgentSlot {
                state,
                presence,
                indexed: None,
            },
        );
        self.reindex(&id);
    }

    /// A conversation, with its place in a queue and whether its ticket is still owed.
    pub(super) fn resume_conv(&mut self, row: ConvRow) {
        let id = row.conv.id.clone();
        if let Some((dept, score, since)) = &row.queue {
            self.queues
                .entry(dept.clone())
                .or_default()
                .insert(&id, *score, *since);
        }
        if row.unticketed {
            self.unticketed.insert(id.clone());
        }
        // The visitor's latest conversation is the one they resume.
        let later = self
            .visitors
            .get(&row.conv.visitor)
            .and_then(|c| self.convs.get(c))
            .is_none_or(|c| c.conv.created_at <= row.conv.created_at);
        if later {
            self.visitors.insert(row.conv.visitor.clone(), id.clone());
        }
        self.convs.insert(
            id,
            ConvSlot {
                conv: row.conv,
                events: Vec::new(),
                client_ids: HashMap::new(),
                expires_at: row.expires_at,
                activity: row.activity,
            },
        );
    }

    /// One stored event of a conversation, in order.
    pub(super) fn resume_event(&mut self, conv: &ConvId, event: Event) {
        let Some(slot) = self.convs.get_mut(conv) else {
            return;
        };
        if let Some(cid) = event.body.client_id() {
            slot.client_ids.insert(cid.to_owned(), event.seq);
        }
        if let (
            EventBody::Message {
                at,
                author: crate::model::AuthorKind::Visitor,
                ..
            },
            Some(t),
        ) = (&event.body, slot.activity)
        {
            slot.activity = Some(t.max(*at));
        }
        slot.conv.last_seq = slot.conv.last_seq.max(event.seq);
        slot.events.push(event);
    }
}
