//! Domain types shared by every layer: identifiers, conversations, their stored events, agents.
//!
//! These are what the state backends store and what the engine reasons about. The wire format in
//! `protocol` embeds `Event` as it is, so a stored event reaches clients unchanged.
//!
//! Here: identifiers, the clock, secrets. `conversation` (conversations and their events),
//! `agent` (agents as routing sees them) and `visitor` (profiles and page visits) beside it.

mod agent;
mod conversation;
mod device;
mod visitor;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use agent::*;
pub use conversation::*;
pub use device::{Browser, Country, Device, DeviceKind, Os, VisitorClient};
pub use visitor::*;

/// Milliseconds since the Unix epoch. Plain integers keep Redis scripts and JSON simple.
pub type Millis = i64;

/// Where the engine reads all of its time (timestamps, grace, inactivity, triggers, business
/// hours); tests substitute one they can move.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> Millis;

    /// Waits until the clock reads `at` or later. A clock that can jump (a test clock) wakes
    /// its sleepers when it does; this default simply sleeps.
    fn sleep_until(
        &self,
        at: Millis,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        let wait = at.saturating_sub(self.now_ms()).max(0) as u64;
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(wait)))
    }
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        now_ms()
    }
}

/// The wall clock in milliseconds.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id_type!(
    /// A site: one embedding customer with its own origins, departments, agents and templates.
    SiteId
);
id_type!(
    /// A department of a site; each has its own queue.
    DeptId
);
id_type!(
    /// An agent, as named in the configuration.
    AgentId
);
id_type!(
    /// A visitor, minted by the server on first contact (ULID) and carried in the signed token.
    VisitorId
);
id_type!(
    /// A conversation (ULID: globally unique, so it also keys local fan-out without its site).
    ConvId
);

impl ConvId {
    pub fn generate() -> Self {
        Self(ulid::Ulid::new().to_string())
    }
}

impl VisitorId {
    pub fn generate() -> Self {
        Self(ulid::Ulid::new().to_string())
    }
}

/// A secret that never shows in logs or debug output. It serializes whole, for the database
/// only: REST views of the directory leave secrets out.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
    /// Its length in characters, for the minimum lengths the configuration asks.
    pub fn char_count(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, load: u32, max: u32, idle: Millis) -> AgentState {
        AgentState {
            id: id.into(),
            name: id.into(),
            departments: vec!["d".into()],
            status: AgentStatus::Online,
            max_concurrent: max,
            cap: max,
            load,
            idle_since: idle,
            present_until: Millis::MAX,
            chats: vec![],
            chats_since: Vec::new(),
            skills: vec![],
        }
    }

    /// Lower load ratio wins over idle time; equal ratios fall back to idle time.
    #[test]
    fn candidate_order_is_load_then_idle() {
        let better = |a: AgentState, b: AgentState| Rank::of(&a) < Rank::of(&b);
        assert!(better(agent("a", 1, 4, 900), agent("b", 1, 2, 100)));
        assert!(better(agent("a", 1, 2, 100), agent("b", 2, 4, 900)));
        assert!(!better(agent("a", 1, 2, 900), agent("b", 2, 4, 100)));
        // Equal ratio and idle time: the id decides, so two agents are never equal.
        assert!(better(agent("a", 1, 2, 500), agent("b", 2, 4, 500)));
        assert!(Rank::of(&agent("a", 1, 2, 5)) != Rank::of(&agent("b", 1, 2, 5)));
        // Idle times within one step (a tenth of a second) are equal: the id decides, as in
        // Redis's index.
        assert!(better(agent("a", 1, 2, 199), agent("b", 1, 2, 100)));
        assert!(better(agent("b", 1, 2, 100), agent("a", 1, 2, 200)));
    }

    /// UTM tags are read from the landing page's query string.
    #[test]
    fn utm_from_url() {
        let t =
            utm_tags("https://x.test/p?a=1&utm_source=google&utm_campaign=black%20friday+sale#top");
        assert_eq!(t.get("utm_source").unwrap(), "google");
        assert_eq!(t.get("utm_campaign").unwrap(), "black friday sale");
        assert_eq!(t.len(), 2);
        assert!(utm_tags("https://x.test/").is_empty());
        // Malformed escapes never panic.
        assert_eq!(utm_tags("https://x.test/?utm_x=%é%2")["utm_x"], "%é%2");
    }

    /// A stored event round-trips through JSON with its kind tag and sequence number.
    #[test]
    fn event_json_round_trip() {
        let e = Event {
            seq: 7,
            body: EventBody::Closed {
                at: 5,
                by: AuthorKind::Agent,
                reason: "resolved".into(),
                text: "Bye".into(),
            },
        };
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(
            s,
            r#"{"seq":7,"kind":"closed","at":5,"by":"agent","reason":"resolved","text":"Bye"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&s).unwrap(), e);
    }
}
