//! Local fan-out: which sockets of this node want which conversation, and their outgoing queues.
//!
//! Every session has a bounded queue. The hub never waits on a session: when a queue is full the
//! session is dropped from the hub (its receiver then ends and the socket closes with
//! `SLOW_CONSUMER`); the client reconnects and resumes by sequence number, so nothing is lost and
//! no memory grows behind a slow reader.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use tokio::sync::{Notify, mpsc};

use crate::envelope::{Envelope, Sink};
use crate::model::{AgentId, ConvId, DeptId, Event, EventBody, SiteId, VisitorId};
use crate::protocol::QueueStat;

pub type SessionId = u64;

/// Which kind of client a session serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Visitor,
    Agent,
}

/// What the hub hands a session task. Every variant is at most one pointer: each session's
/// channel preallocates a block of slots, so a small `Push` keeps idle connections cheap.
#[derive(Clone, Debug)]
pub enum Push {
    Event(Arc<Delivered>),
    Typing(Arc<TypingPush>),
    /// The other side has read the conversation up to a sequence number.
    Read(Arc<ReadPush>),
    /// Current queue position of a conversation (visitors).
    Position(Arc<PositionPush>),
    /// Fresh statistics of one department queue (agents).
    Queue(Arc<QueueStat>),
    /// A visitor arrived, moved or (false) left: for agents watching the live list.
    Visitor(Arc<(VisitorId, bool)>),
    /// An offline message arrived as a ticket: for the site's consoles.
    Offline(Arc<OfflinePush>),
    /// A chat neared or passed a service-level target: for the site's supervisors.
    Sla(Arc<crate::protocol::SlaWarning>),
    /// The agent's own state changed somewhere: re-read it.
    AgentChanged,
    /// The site's directory changed (names, departments, agents, canned responses): re-send
    /// what the console shows of it.
    Directory,
    /// A trigger's proactive message for this visitor socket.
    Proactive(Arc<ProactivePush>),
    /// Events may have been missed (pub/sub reconnected): backfill every conversation.
    Resync,
    /// The agent was removed, disabled or their credentials changed: close the console.
    SignedOut,
    /// The state backend lost this node's state: put back presence and status, and drop the
    /// conversations that are gone.
    Rebuild,
}

/// A stored event of a conversation, shared by every session it goes to.
#[derive(Debug)]
pub struct Delivered {
    pub conv: ConvId,
    pub event: Event,
}

#[derive(Debug)]
pub struct TypingPush {
    pub conv: ConvId,
    /// True when an agent types.
    pub agent: bool,
    pub on: bool,
    pub name: Option<String>,
    /// The visitor's draft (typing preview).
    pub draft: Option<String>,
}

#[derive(Debug)]
pub struct OfflinePush {
    pub ticket: String,
    pub department: DeptId,
    pub name: Option<String>,
    pub email: String,
    pub text: String,
    pub reply: bool,
}

#[derive(Debug)]
pub struct ReadPush {
    pub conv: ConvId,
    pub seq: u64,
}

#[derive(Debug)]
pub struct ProactivePush {
    pub trigger: String,
    pub text: String,
    pub author_name: String,
    pub at: crate::model::Millis,
}

#[derive(Debug)]
pub struct PositionPush {
    pub conv: ConvId,
    pub position: u32,
    pub estimate: crate::routing::estimate::WaitEstimate,
}

struct Entry {
    tx: mpsc::Sender<Push>,
    role: Role,
}

/// A handle to this node's sessions. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    next_id: AtomicU64,
    /// Outgoing queue and role of every live session.
    sessions: DashMap<SessionId, Entry>,
    /// Sessions following each conversation (visitor tabs and the owning agent's consoles).
    convs: DashMap<ConvId, Vec<SessionId>>,
    /// Sessions of each signed-in agent, to deliver assignments before they follow the chat.
    agents: DashMap<(SiteId, AgentId), Vec<SessionId>>,
    /// Sessions (tabs) of each visitor: they get every event of the visitor's conversations,
    /// including the first one of a conversation another tab started.
    visitors: DashMap<(SiteId, VisitorId), Vec<SessionId>>,
    /// Agent sessions watching each site's live visitor list.
    watchers: DashMap<SiteId, Vec<SessionId>>,
    /// Queues whose positions must be recomputed; a std Mutex: held for an insert, never across
    /// an await.
    dirty_queues: Mutex<HashSet<(SiteId, DeptId)>>,
    /// Wakes the queue notifier when `dirty_queues` gains an entry.
    queue_wakeup: Notify,
    /// The last position sent per queued conversation, to send only changes.
    positions: DashMap<ConvId, u32>,
    /// How many messages a session may have waiting.
    queue_capacity: usize,
}

/// Unregisters the session from every map when the socket task ends.
pub struct Registration {
    hub: Hub,
    pub id: SessionId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.shared.sessions.remove(&self.id);
        // Conversation and agent indexes are cleaned by the session via `unfollow`/`leave_agent`;
        // stale ids left behind are skipped at delivery and pruned then.
    }
}

impl Hub {
    pub fn new(queue_capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                next_id: AtomicU64::new(1),
                sessions: DashMap::new(),
                convs: DashMap::new(),
                agents: DashMap::new(),
                visitors: DashMap::new(),
                watchers: DashMap::new(),
                dirty_queues: Mutex::new(HashSet::new()),
                queue_wakeup: Notify::new(),
                positions: DashMap::new(),
                queue_capacity,
            }),
        }
    }

    /// Adds a session and returns its registration and the receiving end of its queue.
    pub fn register(&self, role: Role) -> (Registration, mpsc::Receiver<Push>) {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.shared.queue_capacity);
        self.shared.sessions.insert(id, Entry { tx, role });
        (
            Registration {
                hub: self.clone(),
                id,
            },
            rx,
        )
    }

    pub fn follow(&self, conv: &ConvId, session: SessionId) {
        join(&self.shared.convs, conv.clone(), session);
    }

    pub fn unfollow(&self, conv: &ConvId, session: SessionId) {
        leave(&self.shared.convs, conv, session);
    }

    /// Marks a session as one of an agent's consoles. Returns how many this node now has.
    pub fn join_agent(&self, site: &SiteId, agent: &AgentId, session: SessionId) -> usize {
        join(&self.shared.agents, (site.clone(), agent.clone()), session)
    }

    /// Returns how many consoles of the agent this node still has.
    pub fn leave_agent(&self, site: &SiteId, agent: &AgentId, session: SessionId) -> usize {
        leave(&self.shared.agents, &(site.clone(), agent.clone()), session)
    }

    pub fn join_visitor(&self, site: &SiteId, visitor: &VisitorId, session: SessionId) {
        join(
            &self.shared.visitors,
            (site.clone(), visitor.clone()),
            session,
        );
    }

    /// Returns how many sessions (tabs) of the visitor this node still has.
    pub fn leave_visitor(&self, site: &SiteId, visitor: &VisitorId, session: SessionId) -> usize {
        leave(
            &self.shared.visitors,
            &(site.clone(), visitor.clone()),
            session,
        )
    }

    /// An agent session starts or stops watching the site's live visitors.
    pub fn watch_visitors(&self, site: &SiteId, session: SessionId, on: bool) {
        if on {
            join(&self.shared.watchers, site.clone(), session);
        } else {
            leave(&self.shared.watchers, site, session);
        }
    }

    /// The visitors with at least one socket on this node (for presence refresh).
    pub fn local_visitors(&self) -> Vec<(SiteId, VisitorId)> {
        self.shared
            .visitors
            .iter()
            .map(|e| e.key().clone())
            .collect()
    }

    /// The agents with at least one console on this node (for presence refresh).
    pub fn local_agents(&self) -> Vec<(SiteId, AgentId)> {
        self.shared.agents.iter().map(|e| e.key().clone()).collect()
    }

    /// Closes every console of the agent on this node (removed, disabled, credentials changed).
    pub fn sign_out(&self, site: &SiteId, agent: &AgentId) {
        let ids = index(&self.shared.agents, &(site.clone(), agent.clone()));
        if !ids.is_empty() {
            tracing::info!(site = %site, agent = %agent, sockets = ids.len(), "signing the agent out");
        }
        // A session whose queue is full is dropped by send_to: it closes all the same.
        self.send_to(&ids, &Push::SignedOut, Some(Role::Agent));
    }

    /// Sends to one session; false when it is gone.
    pub fn send_session(&self, id: SessionId, push: Push) -> bool {
        self.send_to(&[id], &push, None).is_empty()
    }

    /// Sends to a list of sessions, dropping any whose queue is full. Collects ids first so no
    /// map reference is held while touching another map.
    fn send_to(&self, ids: &[SessionId], push: &Push, only: Option<Role>) -> Vec<SessionId> {
        let mut gone = Vec::new();
        for id in ids {
            let full = match self.shared.sessions.get(id) {
                None => {
                    gone.push(*id);
                    continue;
                }
                Some(entry) => {
                    if only.is_some_and(|r| r != entry.role) {
                        continue;
                    }
                    match entry.tx.try_send(push.clone()) {
                        Ok(()) => false,
                        Err(mpsc::error::TrySendError::Full(_)) => true,
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            gone.push(*id);
                            false
                        }
                    }
                }
            };
            if full {
                // Slow consumer: dropping the sender ends its receiver; the socket closes 4008.
                tracing::warn!(session = id, "slow consumer: send queue full, closing");
                self.shared.sessions.remove(id);
                gone.push(*id);
            }
        }
        gone
    }

    fn conv_sessions(&self, conv: &ConvId) -> Vec<SessionId> {
        index(&self.shared.convs, conv)
    }

    fn prune(&self, conv: &ConvId, gone: Vec<SessionId>) {
        for id in gone {
            self.unfollow(conv, id);
        }
    }

    /// Delivers an envelope from the backend to the local sessions it concerns.
    pub fn dispatch(&self, envelope: Envelope) {
        match envelope {
            Envelope::Event {
                site,
                conv,
                visitor,
                event,
            } => {
                metrics::counter!(crate::observe::EVENTS).increment(1);
                let assigned_to = match &event.body {
                    EventBody::Assigned { agent, .. } | EventBody::Offered { agent, .. } => {
                        Some(agent.id.clone())
                    }
                    EventBody::Closed { .. } => {
                        self.forget_position(&conv);
                        None
                    }
                    _ => None,
                };
                let push = Push::Event(Arc::new(Delivered {
                    conv: conv.clone(),
                    event,
                }));
                let followers = self.conv_sessions(&conv);
                let gone = self.send_to(&followers, &push, None);
                self.prune(&conv, gone);
                let mut others = index(&self.shared.visitors, &(site.clone(), visitor));
                // The new owner's consoles do not follow the chat yet: tell them.
                if let Some(agent) = assigned_to {
                    self.forget_position(&conv);
                    others.extend(index(&self.shared.agents, &(site, agent)));
                }
                others.retain(|id| !followers.contains(id));
                self.send_to(&others, &push, None);
            }
            Envelope::Typing {
                site,
                conv,
                visitor,
                agent,
                on,
                name,
                draft,
            } => {
                let push = Push::Typing(Arc::new(TypingPush {
                    conv: conv.clone(),
                    agent,
                    on,
                    name,
                    draft,
                }));
                // Typing goes to the other side only.
                let ids = if agent {
                    index(&self.shared.visitors, &(site, visitor))
                } else {
                    self.conv_sessions(&conv)
                };
                let to = if agent { Role::Visitor } else { Role::Agent };
                self.send_to(&ids, &push, Some(to));
            }
            Envelope::Read {
                site,
                conv,
                visitor,
                agent,
                seq,
            } => {
                let push = Push::Read(Arc::new(ReadPush {
                    conv: conv.clone(),
                    seq,
                }));
                // Like typing: to the other side only.
                let (ids, to) = if agent {
                    (
                        index(&self.shared.visitors, &(site, visitor)),
                        Role::Visitor,
                    )
                } else {
                    (self.conv_sessions(&conv), Role::Agent)
                };
                self.send_to(&ids, &push, Some(to));
            }
            Envelope::Sla { site, warning } => {
                let push = Push::Sla(Arc::new(warning));
                self.send_to(&self.site_consoles(&site), &push, Some(Role::Agent));
            }
            Envelope::Queue { site, dept } => {
                let inserted = self
                    .shared
                    .dirty_queues
                    .lock()
                    .map(|mut d| d.insert((site, dept)))
                    .unwrap_or(false);
                if inserted {
                    self.shared.queue_wakeup.notify_one();
                }
            }
            Envelope::Visitor {
                site,
                visitor,
                live,
            } => {
                let ids = index(&self.shared.watchers, &site);
                if !ids.is_empty() {
                    let push = Push::Visitor(Arc::new((visitor, live)));
                    let gone = self.send_to(&ids, &push, Some(Role::Agent));
                    for id in gone {
                        leave(&self.shared.watchers, &site, id);
                    }
                }
            }
            Envelope::Offline {
                site,
                ticket,
                department,
                name,
                email,
                text,
                reply,
            } => {
                // Every console of the site watches it (the live visitors list).
                let ids = index(&self.shared.watchers, &site);
                let push = Push::Offline(Arc::new(OfflinePush {
                    ticket,
                    department,
                    name,
                    email,
                    text,
                    reply,
                }));
                let gone = self.send_to(&ids, &push, Some(Role::Agent));
                for id in gone {
                    leave(&self.shared.watchers, &site, id);
                }
            }
            Envelope::Agent { site, agent } => {
                let ids = index(&self.shared.agents, &(site, agent));
                self.send_to(&ids, &Push::AgentChanged, None);
            }
        }
    }

    /// Waits until some queue changed, then takes the set of changed queues.
    pub async fn changed_queues(&self) -> Vec<(SiteId, DeptId)> {
        loop {
            let taken: Vec<_> = self
                .shared
                .dirty_queues
                .lock()
                .map(|mut d| d.drain().collect())
                .unwrap_or_default();
            if !taken.is_empty() {
                return taken;
            }
            self.shared.queue_wakeup.notified().await;
        }
    }

    /// Sends a queue position to the visitor sessions of a conversation if it changed.
    pub fn offer_position(
        &self,
        conv: &ConvId,
        position: u32,
        estimate: crate::routing::estimate::WaitEstimate,
    ) {
        let ids = self.conv_sessions(conv);
        if ids.is_empty() {
            return;
        }
        let changed = self.shared.positions.insert(conv.clone(), position) != Some(position);
        if changed {
            let push = Push::Position(Arc::new(PositionPush {
                conv: conv.clone(),
                position,
                estimate,
            }));
            let gone = self.send_to(&ids, &push, Some(Role::Visitor));
            self.prune(conv, gone);
        }
    }

    /// Records a position the visitor already got (in the stored acknowledgement).
    pub fn note_position(&self, conv: &ConvId, position: u32) {
        self.shared.positions.insert(conv.clone(), position);
    }

    /// The conversation left its queue: forget its position.
    pub fn forget_position(&self, conv: &ConvId) {
        self.shared.positions.remove(conv);
    }

    /// Sends queue statistics to every agent console of the site on this node.
    pub fn broadcast_queue(&self, site: &SiteId, stat: QueueStat) {
        let push = Push::Queue(Arc::new(stat));
        self.send_to(&self.site_consoles(site), &push, None);
    }

    /// Every agent console of the site on this node.
    fn site_consoles(&self, site: &SiteId) -> Vec<SessionId> {
        self.shared
            .agents
            .iter()
            .filter(|e| &e.key().0 == site)
            .flat_map(|e| e.value().clone())
            .collect()
    }

    /// Tells every agent console of the site on this node that its directory changed. Each
    /// node installs a new directory on its own (within a second), so no message crosses nodes.
    pub fn directory_changed(&self, site: &SiteId) {
        self.send_to(&self.site_consoles(site), &Push::Directory, None);
    }

    /// Tells every session to put back its state (after Redis lost it).
    pub fn rebuild_all(&self) {
        let ids: Vec<SessionId> = self.shared.sessions.iter().map(|e| *e.key()).collect();
        self.send_to(&ids, &Push::Rebuild, None);
    }

    /// Tells every session to backfill (after the pub/sub link was lost and restored).
    pub fn resync_all(&self) {
        let ids: Vec<SessionId> = self.shared.sessions.iter().map(|e| *e.key()).collect();
        self.send_to(&ids, &Push::Resync, None);
    }

    /// Whether a conversation has a local visitor session (for position updates).
    pub fn has_followers(&self, conv: &ConvId) -> bool {
        self.shared.convs.contains_key(conv)
    }
}

type Index<K> = DashMap<K, Vec<SessionId>>;

fn index<K: std::hash::Hash + Eq>(map: &Index<K>, key: &K) -> Vec<SessionId> {
    map.get(key).map(|s| s.clone()).unwrap_or_default()
}

fn join<K: std::hash::Hash + Eq>(map: &Index<K>, key: K, session: SessionId) -> usize {
    let mut subs = map.entry(key).or_default();
    if !subs.contains(&session) {
        subs.push(session);
    }
    subs.len()
}

fn leave<K: std::hash::Hash + Eq>(map: &Index<K>, key: &K, session: SessionId) -> usize {
    let mut left = 0;
    map.remove_if_mut(key, |_, subs| {
        subs.retain(|s| *s != session);
        left = subs.len();
        subs.is_empty()
    });
    left
}

impl Sink for Hub {
    fn deliver(&self, envelope: Envelope) {
        self.dispatch(envelope);
    }

    fn resync(&self) {
        self.resync_all();
    }
}
