//! Agents as routing sees them: status, limit, load, presence, and the order candidates are tried in.

use serde::{Deserialize, Serialize};

use super::{AgentId, ConvId, DeptId, Millis};

/// An agent's availability as the agent sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Online,
    Away,
    Offline,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Online => "online",
            AgentStatus::Away => "away",
            AgentStatus::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "online" => Some(AgentStatus::Online),
            "away" => Some(AgentStatus::Away),
            "offline" => Some(AgentStatus::Offline),
            _ => None,
        }
    }
}

/// An agent's live routing state, as a backend reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    pub id: AgentId,
    pub name: String,
    pub departments: Vec<DeptId>,
    pub status: AgentStatus,
    /// The limit in force now (the agent may lower or raise it up to `cap`).
    pub max_concurrent: u32,
    /// The configured ceiling for `max_concurrent`.
    pub cap: u32,
    pub load: u32,
    /// When the agent was last assigned a chat (0: never); ties in load go to the smallest.
    pub idle_since: Millis,
    /// The latest moment any node vouches for a live connection; in the past once all are gone.
    pub present_until: Millis,
    pub chats: Vec<ConvId>,
    /// When each of `chats` was assigned to the agent, in the same order (0: not known), so
    /// the wait estimate can tell how long each busy slot's chat has run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chats_since: Vec<Millis>,
    /// From the directory: chats that require skills go only to agents with all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
}

impl AgentState {
    /// An agent as first registered: offline, not connected, no chats, `max` as limit and cap.
    pub fn registered(id: AgentId, name: String, departments: Vec<DeptId>, max: u32) -> Self {
        Self {
            id,
            name,
            departments,
            status: AgentStatus::Offline,
            max_concurrent: max,
            cap: max,
            load: 0,
            idle_since: 0,
            present_until: 0,
            chats: Vec::new(),
            chats_since: Vec::new(),
            skills: Vec::new(),
        }
    }

    /// Connected, or disconnected for less than the grace period.
    pub fn present(&self, now: Millis, grace_ms: Millis) -> bool {
        self.present_until.saturating_add(grace_ms) > now
    }

    /// The agent takes a chat at `now`: one more in load, and the agent's idle time restarts.
    pub fn take_chat(&mut self, conv: &ConvId, now: Millis) {
        self.load += 1;
        self.idle_since = now;
        self.chats_since.resize(self.chats.len(), 0);
        self.chats.push(conv.clone());
        self.chats_since.push(now);
    }

    /// The agent no longer has the chat; false if they did not have it (the load stays).
    pub fn release_chat(&mut self, conv: &ConvId) -> bool {
        let Some(i) = self.chats.iter().position(|c| c == conv) else {
            return false;
        };
        self.chats.remove(i);
        if i < self.chats_since.len() {
            self.chats_since.remove(i);
        }
        self.load = self.load.saturating_sub(1);
        true
    }

    /// How long each chat has run at `now`, ms (0 where it is not known).
    pub fn chat_ages(&self, now: Millis) -> impl Iterator<Item = Millis> + '_ {
        (0..self.chats.len()).map(move |i| match self.chats_since.get(i) {
            Some(&since) if since > 0 => now.saturating_sub(since).max(0),
            _ => 0,
        })
    }
}

/// How finely "idle longest" tells agents apart: a tenth of a second. Redis's index holds an
/// agent's place as one number (the load ratio to 1/10,000, exact for limits up to 100, and
/// the idle time in these steps), and every backend and `routing::decide` compare at the same
/// step, so reading the index best first reads exactly the agents a decision can pick.
pub const IDLE_STEP_MS: Millis = 100;

/// `idle_since` in `IDLE_STEP_MS` steps: what "idle longest" compares.
pub fn idle_step(idle_since: Millis) -> Millis {
    idle_since.div_euclid(IDLE_STEP_MS)
}

/// An eligible agent's place among the candidates for a chat: lowest load ratio first, then
/// idle longest (in `IDLE_STEP_MS` steps), then id for determinism (the Redis index's order). Ratios compare exactly by
/// cross-multiplying; candidates are below their limit, so every limit compared is at least 1
/// and the order is total.
#[derive(Clone, Debug)]
pub struct Rank {
    load: u32,
    max: u32,
    idle_since: Millis,
    pub id: AgentId,
}

impl Rank {
    pub fn of(a: &AgentState) -> Self {
        Self {
            load: a.load,
            max: a.max_concurrent,
            idle_since: a.idle_since,
            id: a.id.clone(),
        }
    }
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let mine = u64::from(self.load) * u64::from(other.max);
        let theirs = u64::from(other.load) * u64::from(self.max);
        (mine, idle_step(self.idle_since), &self.id).cmp(&(
            theirs,
            idle_step(other.idle_since),
            &other.id,
        ))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Rank {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Rank {}
