//! The pieces of a site's state on the embedded backend: a department's queue in serving
//! order, an agent with the nodes that vouch for their connection, a conversation with its
//! events. `site` makes its decisions over them.

use std::collections::{BTreeSet, HashMap};

use crate::model::{AgentState, ConvId, Conversation, DeptId, Event, Millis, Rank};

#[derive(Default)]
pub(super) struct Queue {
    pub(super) order: BTreeSet<(i64, ConvId)>,
    pub(super) scores: HashMap<ConvId, i64>,
    /// When each member entered the queue.
    pub(super) since: HashMap<ConvId, Millis>,
}

impl Queue {
    pub(super) fn insert(&mut self, conv: &ConvId, score: i64, now: Millis) {
        self.remove(conv);
        self.order.insert((score, conv.clone()));
        self.scores.insert(conv.clone(), score);
        self.since.insert(conv.clone(), now);
    }

    pub(super) fn remove(&mut self, conv: &ConvId) {
        if let Some(score) = self.scores.remove(conv) {
            self.order.remove(&(score, conv.clone()));
            self.since.remove(conv);
        }
    }

    /// A member's place, counting from whichever end of the queue is nearer: a visitor who
    /// just joined the tail of a long queue costs one step, not the length of the queue.
    pub(super) fn position(&self, member: &(i64, ConvId)) -> u32 {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut before = self.order.range(..member);
        let mut after = self.order.range((Excluded(member), Unbounded));
        let (mut ahead, mut behind) = (0u32, 0u32);
        loop {
            if before.next_back().is_none() {
                return ahead + 1;
            }
            ahead += 1;
            if after.next().is_none() {
                return self.order.len() as u32 - behind;
            }
            behind += 1;
        }
    }

    pub(super) fn head_score(&self) -> Option<i64> {
        self.order.first().map(|(s, _)| *s)
    }
}

pub(super) struct AgentSlot {
    pub(super) state: AgentState,
    /// Per node: until when it vouches for a live connection.
    pub(super) presence: HashMap<String, Millis>,
    /// Where the agent stands in the departments' indexes (`SiteState::avail`), if anywhere:
    /// what `reindex` removes before it places the agent again.
    pub(super) indexed: Option<(Rank, Vec<DeptId>)>,
}

impl AgentSlot {
    /// Until when some node vouches for the agent's connection.
    pub(super) fn present_until(&self) -> Millis {
        self.presence.values().copied().max().unwrap_or(0)
    }
}

pub(super) struct ConvSlot {
    pub(super) conv: Conversation,
    pub(super) events: Vec<Event>,
    pub(super) client_ids: HashMap<String, u64>,
    /// When a closed conversation may be dropped from memory.
    pub(super) expires_at: Option<Millis>,
    /// While active: the last visitor message or the assignment, for the inactivity close.
    pub(super) activity: Option<Millis>,
}

impl ConvSlot {
    pub(super) fn new(conv: Conversation, activity: Option<Millis>) -> Self {
        Self {
            conv,
            events: Vec::new(),
            client_ids: HashMap::new(),
            expires_at: None,
            activity,
        }
    }
}
