//! Domain types shared by every layer: identifiers, conversations, their stored events, agents.
//!
//! These are what the state backends store and what the engine reasons about. The wire format in
//! `protocol` embeds `Event` as it is, so a stored event reaches clients unchanged.

use std::fmt;

use serde::{Deserialize, Serialize};

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
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

/// Where a conversation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvState {
    Queued,
    Active,
    Closed,
}

impl ConvState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConvState::Queued => "queued",
            ConvState::Active => "active",
            ConvState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(ConvState::Queued),
            "active" => Some(ConvState::Active),
            "closed" => Some(ConvState::Closed),
            _ => None,
        }
    }
}

/// A conversation's routing record. The transcript lives in its event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConvId,
    pub visitor: VisitorId,
    pub department: DeptId,
    pub state: ConvState,
    /// The owner while active; the last owner once closed.
    pub agent: Option<AgentId>,
    /// Higher is served first; arrival breaks ties.
    pub priority: u8,
    pub created_at: Millis,
    pub queued_at: Option<Millis>,
    pub first_assigned_at: Option<Millis>,
    pub closed_at: Option<Millis>,
    pub close_reason: Option<String>,
    /// The visitor's locale when the chat started: automatic replies use it.
    pub locale: String,
    /// The highest sequence number stored so far.
    pub last_seq: u64,
    /// Read receipts: the highest sequence number the visitor has seen, and the agent.
    #[serde(default)]
    pub visitor_read: u64,
    #[serde(default)]
    pub agent_read: u64,
}

impl Conversation {
    /// A new conversation of a visitor, about to be queued (or closed at once when offline).
    pub fn new(visitor: VisitorId, department: DeptId, locale: String, now: Millis) -> Self {
        Self {
            id: ConvId::generate(),
            visitor,
            department,
            state: ConvState::Queued,
            agent: None,
            priority: 0,
            created_at: now,
            queued_at: None,
            first_assigned_at: None,
            closed_at: None,
            close_reason: None,
            locale,
            last_seq: 0,
            visitor_read: 0,
            agent_read: 0,
        }
    }
}

/// An agent's availability as the agent sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl AgentState {
    /// Connected, or disconnected for less than the grace period.
    pub fn present(&self, now: Millis, grace_ms: Millis) -> bool {
        self.present_until.saturating_add(grace_ms) > now
    }
}

/// An eligible agent's place among the candidates for a chat: lowest load ratio first, then
/// idle longest, then id for determinism (the Redis index's order). Ratios compare exactly by
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
        (mine, self.idle_since, &self.id).cmp(&(theirs, other.idle_since, &other.id))
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

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    Visitor,
    Agent,
    System,
}

/// An agent as the transcript names them: always with the full display name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRef {
    pub id: AgentId,
    pub name: String,
}

/// Which automatic notice a `notice` event is, so clients can style it without parsing text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// First reply while queued: position and estimate.
    Queued,
    /// No agent can serve: asks for an email.
    Offline,
    /// The chat is being transferred.
    Transferring,
    /// The agent was lost; the chat went back to the queue.
    Requeued,
}

/// A file in a message: what clients need to show it before fetching it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// Fetched from `/v1/attachments/{id}` by those who may read the conversation.
    pub id: String,
    /// The file name the sender gave, cleaned of paths and control characters.
    pub name: String,
    /// The type found in the file's first bytes, never the one the sender claimed.
    pub content_type: String,
    /// Bytes.
    pub size: u64,
}

/// A stored event of a conversation: what reconnecting clients replay by sequence number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    #[serde(flatten)]
    pub body: EventBody,
}

/// What happened. `at` is in every variant so a body serializes to a complete object on its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    Message {
        at: Millis,
        author: AuthorKind,
        /// The author's id (visitor or agent); absent for system text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author_id: Option<String>,
        /// The author's full display name (agents always have one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author_name: Option<String>,
        /// The words; for a file, its name (so clients that know no attachments show that).
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// A file sent with the message (an image or a PDF), fetched from `/v1/attachments/{id}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachment: Option<AttachmentRef>,
    },
    Notice {
        at: Millis,
        notice: NoticeKind,
        text: String,
        /// Queue position at the time of a `queued` notice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        estimate_minutes: Option<u32>,
    },
    /// An agent took the chat; `text` introduces them to the visitor by full name.
    Assigned {
        at: Millis,
        agent: AgentRef,
        text: String,
    },
    /// Internal: visitors see the `transferring` notice, never the reason or note.
    Transferred {
        at: Millis,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<AgentRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_agent: Option<AgentRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_department: Option<DeptId>,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Internal: a private note between agents; the visitor never sees it.
    Note {
        at: Millis,
        agent: AgentRef,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Internal: the owner was lost past the grace period and the chat went back to the queue.
    Requeued {
        at: Millis,
        agent: AgentRef,
        reason: String,
    },
    Closed {
        at: Millis,
        by: AuthorKind,
        reason: String,
        /// The visitor-facing goodbye, in the visitor's language.
        text: String,
    },
}

impl EventBody {
    /// Internal events are stored and shown to agents, never sent to the visitor.
    pub fn visible_to_visitor(&self) -> bool {
        !matches!(
            self,
            EventBody::Transferred { .. } | EventBody::Requeued { .. } | EventBody::Note { .. }
        )
    }

    pub fn client_id(&self) -> Option<&str> {
        match self {
            EventBody::Message { client_id, .. } | EventBody::Note { client_id, .. } => {
                client_id.as_deref()
            }
            _ => None,
        }
    }
}

/// A visitor as presence and routing know them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VisitorProfile {
    pub id: Option<VisitorId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub locale: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub first_seen: Millis,
    pub last_seen: Millis,
    /// Visits so far: a visit starts on first contact or after 30 minutes of absence.
    pub visits: u32,
    /// When the current visit started (time on site is measured from it).
    #[serde(default)]
    pub visit_started: Millis,
    /// Pages seen, oldest first (the last `MAX_PAGES`).
    #[serde(default)]
    pub pages: Vec<PageVisit>,
    /// `utm_*` tags of the landing page.
    #[serde(default)]
    pub utm: std::collections::BTreeMap<String, String>,
    /// The host site vouched for `user_id` with a valid `user_hash`.
    #[serde(default)]
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Answers to the site's custom pre-chat fields.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fields: std::collections::BTreeMap<String, String>,
}

/// Absence after which the next contact counts as a new visit.
pub const VISIT_GAP_MS: Millis = 30 * 60 * 1000;

/// How many pages a profile remembers.
pub const MAX_PAGES: usize = 50;

/// A page the visitor saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageVisit {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub at: Millis,
}

impl VisitorProfile {
    /// A profile that knows only the visitor's id.
    pub fn with_id(id: VisitorId) -> Self {
        Self {
            id: Some(id),
            ..Self::default()
        }
    }

    /// Records a page view (consecutive repeats of one URL count once).
    pub fn visit(&mut self, url: &str, title: Option<String>, at: Millis) {
        if self.pages.last().is_some_and(|p| p.url == url) {
            return;
        }
        if self.utm.is_empty() {
            self.utm = utm_tags(url);
        }
        self.pages.push(PageVisit {
            url: url.to_owned(),
            title,
            at,
        });
        if self.pages.len() > MAX_PAGES {
            self.pages.remove(0);
        }
    }
}

/// The `utm_*` query parameters of a URL, percent-decoded.
pub fn utm_tags(url: &str) -> std::collections::BTreeMap<String, String> {
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(""))
        .unwrap_or("");
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.starts_with("utm_") && k.len() <= 32)
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                // Byte-wise: slicing the str here could split a multibyte character.
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).chars().take(200).collect()
}

/// An address's shape as visitors type it: something, `@`, a domain with a dot, no spaces, at
/// most 320 bytes. Delivery proves the rest.
pub fn valid_email(email: &str) -> bool {
    email.len() <= 320
        && email
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'))
        && !email.contains(char::is_whitespace)
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
        }
    }

    /// Lower load ratio wins over idle time; equal ratios fall back to idle time.
    #[test]
    fn candidate_order_is_load_then_idle() {
        let better = |a: AgentState, b: AgentState| Rank::of(&a) < Rank::of(&b);
        assert!(better(agent("a", 1, 4, 9), agent("b", 1, 2, 1)));
        assert!(better(agent("a", 1, 2, 1), agent("b", 2, 4, 9)));
        assert!(!better(agent("a", 1, 2, 9), agent("b", 2, 4, 1)));
        // Equal ratio and idle time: the id decides, so two agents are never equal.
        assert!(better(agent("a", 1, 2, 5), agent("b", 2, 4, 5)));
        assert!(Rank::of(&agent("a", 1, 2, 5)) != Rank::of(&agent("b", 1, 2, 5)));
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

/// A secret that never shows in logs or debug output. It serializes whole, for the database
/// only: REST views of the directory leave secrets out.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
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
