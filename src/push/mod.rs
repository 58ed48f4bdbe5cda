//! Web Push: new chats reach an agent's phone or desktop when the console is closed.
//!
//! An agent turns notifications on in the console; the browser's push service gives it an
//! endpoint and keys, which the console stores here (`subscribe`). When a chat is assigned to
//! the agent, a visitor waits in one of their departments or leaves a message, the engine
//! hands a `Note` to `Push::notify`; a worker encrypts it for each of the agent's browsers
//! (`crypto::encrypt`), signs the request with the server's VAPID key (`crypto::Vapid`) and
//! posts it to the push service. The console's service worker shows it, unless a console
//! window is in front (that window tells the agent itself).
//!
//! Best effort by design: a note is a nudge, not a record (the chat, the queue and the inbox
//! are). The queue to the worker is bounded (`QUEUE`); when it is full a note is dropped and
//! counted. A browser whose subscription the push service no longer knows (404, 410) is
//! forgotten.

pub mod crypto;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sqlx::Row;
use tokio::sync::mpsc;

use crate::config::Live;
use crate::db::{Database, RecordError};
use crate::model::{AgentId, ConvId, DeptId, Millis, SiteId, now_ms};
use crate::shutdown::Shutdown;
use crate::tickets::outbound;

/// Notes waiting for the worker; more are dropped (and counted).
const QUEUE: usize = 1024;
/// Pushes in flight at once.
const IN_FLIGHT: usize = 16;
/// Browsers per agent; subscribing one more forgets the oldest.
pub const PER_AGENT: i64 = 10;
/// How long a push service keeps a note for a browser that is offline: a chat an hour old
/// is no longer news.
const TTL_SECS: u32 = 3600;
/// The longest endpoint accepted (the push services' are about 200 characters).
const MAX_ENDPOINT: usize = 1024;

/// What a browser is told. The service worker words it in the agent's language.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Note {
    /// `assigned` (a chat is the agent's), `waiting` (a visitor waits in a department of
    /// theirs), `offline` (a visitor left a message).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConvId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// The department's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Who wrote, when they said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The start of their message (offline messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One browser of an agent, as its push service described it.
#[derive(Clone, Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// The push service's URL for this browser (`PushSubscription.endpoint`).
    #[schema(example = "https://fcm.googleapis.com/fcm/send/abc…")]
    pub endpoint: String,
    pub keys: SubscriptionKeys,
}

#[derive(Clone, Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key, base64url.
    pub p256dh: String,
    /// The browser's 16-byte secret, base64url.
    pub auth: String,
}

/// Why a subscription is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Record(#[from] RecordError),
}

struct Job {
    site: SiteId,
    to: Audience,
    note: Note,
}

/// Whose browsers a note is for.
#[derive(Debug)]
pub enum Audience {
    Agents(Vec<AgentId>),
    /// Every agent of a department (resolved when the note is sent, against the few agents
    /// who subscribed, rather than listed for every note).
    Department(DeptId),
}

/// The push sender. Cheap to clone.
#[derive(Clone)]
pub struct Push {
    shared: Arc<Shared>,
}

struct Shared {
    db: Database,
    /// Read per push: who is enabled, which networks requests may reach.
    config: Live,
    client: reqwest::Client,
    /// The VAPID key, read (or made) on first use.
    vapid: tokio::sync::OnceCell<Arc<crypto::Vapid>>,
    tx: mpsc::Sender<Job>,
    /// The worker's end, taken by `run`.
    rx: std::sync::Mutex<Option<mpsc::Receiver<Job>>>,
    /// Per site: its browsers as last read, and when. A note goes out per queued chat and per
    /// assignment; reading them for each was a query per note (10,000 in a burst). Read again
    /// after `SUBSCRIPTIONS_FOR`, and at once after a change on this node. Bounded by the sites.
    subscriptions: std::sync::Mutex<HashMap<SiteId, (Instant, Subscribed)>>,
    /// Changes made on this node: a read that began before one is not kept.
    changes: std::sync::atomic::AtomicU64,
}

/// A site's browsers that asked for notes, with their agents.
type Subscribed = Arc<Vec<(AgentId, Subscription)>>;

/// How long a site's subscriptions read serve its notes: a browser subscribed on another node
/// gets notes within this.
const SUBSCRIPTIONS_FOR: Duration = Duration::from_secs(1);

impl Push {
    pub fn new(db: Database, config: Live) -> Self {
        let timeout = config.get().timing.webhook_timeout_secs;
        let client = outbound::client(&config, Duration::from_secs_f64(timeout));
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            shared: Arc::new(Shared {
                db,
                config,
                client,
                vapid: tokio::sync::OnceCell::new(),
                tx,
                rx: std::sync::Mutex::new(Some(rx)),
                subscriptions: std::sync::Mutex::new(HashMap::new()),
                changes: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// The server's VAPID key pair: the one in the database, or a new one stored there. Two
    /// nodes that start at once both insert; the first insert wins and both read it.
    pub async fn vapid(&self) -> Result<Arc<crypto::Vapid>, RecordError> {
        self.shared
            .vapid
            .get_or_try_init(|| async {
                let db = &self.shared.db;
                let read = || async {
                    sqlx::query("SELECT value FROM server_keys WHERE name = 'vapid'")
                        .fetch_optional(db.pool())
                        .await?
                        .map(|r| r.try_get::<String, _>(0))
                        .transpose()
                };
                let stored = match read().await? {
                    Some(v) => v,
                    None => {
                        let pkcs8 = crypto::Vapid::generate()
                            .map_err(|e| RecordError::Corrupt(e.to_string()))?;
                        let _turn = db.write_turn().await;
                        sqlx::query(
                            "INSERT INTO server_keys (name, value, created_at) VALUES ('vapid', \
                             $1, $2) ON CONFLICT (name) DO NOTHING",
                        )
                        .bind(URL_SAFE_NO_PAD.encode(pkcs8))
                        .bind(now_ms())
                        .execute(db.pool())
                        .await?;
                        read()
                            .await?
                            .ok_or_else(|| RecordError::Corrupt("no VAPID key".into()))?
                    }
                };
                let pkcs8 = URL_SAFE_NO_PAD
                    .decode(stored)
                    .map_err(|_| RecordError::Corrupt("VAPID key: not base64url".into()))?;
                let contact = self.shared.config.get().push_contact.clone();
                crypto::Vapid::from_pkcs8(&pkcs8, contact)
                    .map(Arc::new)
                    .map_err(|e| RecordError::Corrupt(e.to_string()))
            })
            .await
            .cloned()
    }

    /// Stores a browser of the agent (a browser subscribed again moves to the new account);
    /// past `PER_AGENT` browsers the oldest is forgotten.
    pub async fn subscribe(
        &self,
        site: &SiteId,
        agent: &AgentId,
        sub: &Subscription,
        now: Millis,
    ) -> Result<(), Refused> {
        self.check(sub)?;
        let db = &self.shared.db;
        let _turn = db.write_turn().await;
        let mut tx = db.begin_write().await.map_err(RecordError::from)?;
        sqlx::query(
            "INSERT INTO push_subscriptions (endpoint, site, agent, p256dh, auth, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (endpoint) DO UPDATE SET \
             site = excluded.site, agent = excluded.agent, p256dh = excluded.p256dh, \
             auth = excluded.auth, created_at = excluded.created_at",
        )
        .bind(&sub.endpoint)
        .bind(&site.0)
        .bind(&agent.0)
        .bind(&sub.keys.p256dh)
        .bind(&sub.keys.auth)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(RecordError::from)?;
        sqlx::query(
            "DELETE FROM push_subscriptions WHERE site = $1 AND agent = $2 AND endpoint NOT IN \
             (SELECT endpoint FROM push_subscriptions WHERE site = $1 AND agent = $2 \
             ORDER BY created_at DESC, endpoint LIMIT $3)",
        )
        .bind(&site.0)
        .bind(&agent.0)
        .bind(PER_AGENT)
        .execute(&mut *tx)
        .await
        .map_err(RecordError::from)?;
        tx.commit().await.map_err(RecordError::from)?;
        self.forget_subscriptions();
        Ok(())
    }

    /// Subscriptions changed on this node: the next note reads them again.
    fn forget_subscriptions(&self) {
        if let Ok(mut read) = self.shared.subscriptions.lock() {
            self.shared.changes.fetch_add(1, Ordering::AcqRel);
            read.clear();
        }
    }

    /// Forgets one browser of the agent; whether it was there.
    pub async fn unsubscribe(
        &self,
        site: &SiteId,
        agent: &AgentId,
        endpoint: &str,
    ) -> Result<bool, RecordError> {
        let db = &self.shared.db;
        let _turn = db.write_turn().await;
        let done = sqlx::query(
            "DELETE FROM push_subscriptions WHERE endpoint = $1 AND site = $2 AND agent = $3",
        )
        .bind(endpoint)
        .bind(&site.0)
        .bind(&agent.0)
        .execute(db.pool())
        .await?;
        self.forget_subscriptions();
        Ok(done.rows_affected() > 0)
    }

    /// How many browsers the agent has turned notifications on in.
    pub async fn count(&self, site: &SiteId, agent: &AgentId) -> Result<u32, RecordError> {
        let row =
            sqlx::query("SELECT COUNT(*) FROM push_subscriptions WHERE site = $1 AND agent = $2")
                .bind(&site.0)
                .bind(&agent.0)
                .fetch_one(self.shared.db.pool())
                .await?;
        Ok(row.try_get::<i64, _>(0)?.max(0) as u32)
    }

    /// An endpoint the server may post to, and keys of the right sizes.
    fn check(&self, sub: &Subscription) -> Result<(), Refused> {
        let bad = |m: &str| Refused::Invalid(m.to_owned());
        if sub.endpoint.len() > MAX_ENDPOINT {
            return Err(bad("endpoint: longer than 1024 characters"));
        }
        let url = reqwest::Url::parse(&sub.endpoint).map_err(|_| bad("endpoint: not a URL"))?;
        let allowed = self.shared.config.get().webhook_allowed_networks.clone();
        // Push services are public HTTPS servers; plain HTTP only to a network the deployment
        // allows (a push service of its own, or a test's).
        let plain_allowed = url.scheme() == "http"
            && url
                .host_str()
                .and_then(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| allowed.iter().any(|n| n.contains(ip)));
        if url.scheme() != "https" && !plain_allowed {
            return Err(bad("endpoint: must be https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("endpoint: no credentials in the URL"));
        }
        if outbound::literal_refused(&sub.endpoint, &allowed) {
            return Err(bad("endpoint: a private address"));
        }
        crypto::encrypt(&sub.keys.p256dh, &sub.keys.auth, b"")
            .map(|_| ())
            .map_err(|e| Refused::Invalid(format!("keys: {e}")))
    }

    /// Queues a note for the agents' browsers. Never waits: a full queue drops it.
    pub fn notify(&self, site: &SiteId, to: Audience, note: Note) {
        if matches!(&to, Audience::Agents(a) if a.is_empty()) {
            return;
        }
        let job = Job {
            site: site.clone(),
            to,
            note,
        };
        if self.shared.tx.try_send(job).is_err() {
            metrics::counter!(crate::observe::PUSHES, "outcome" => "dropped").increment(1);
        }
    }

    /// Sends queued notes until shutdown (notes still queued then are dropped: they are
    /// nudges). Runs once per process.
    pub async fn run(self, mut shutdown: Shutdown) {
        let Some(mut rx) = self.shared.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut sends = tokio::task::JoinSet::new();
        loop {
            let job = tokio::select! {
                job = rx.recv() => job,
                _ = shutdown.recv() => None,
            };
            let Some(job) = job else { break };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let this = self.clone();
            sends.spawn(async move {
                this.send_job(job).await;
                drop(slot);
            });
            // Finished sends are collected as we go, so the set stays small.
            while sends.try_join_next().is_some() {}
        }
        sends.abort_all();
    }

    async fn send_job(&self, job: Job) {
        let config = self.shared.config.get();
        let Some(site) = config.site(&job.site) else {
            return;
        };
        let subs = match self.subscriptions(&job.site).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(cause = %e, site = %job.site, "push subscriptions unreadable");
                return;
            }
        };
        if subs.is_empty() {
            return;
        }
        let Ok(payload) = serde_json::to_vec(&job.note) else {
            return;
        };
        // A disabled or removed agent is told nothing, whatever their browsers hold.
        let named: HashSet<&AgentId> = match &job.to {
            Audience::Agents(agents) => agents.iter().collect(),
            Audience::Department(_) => HashSet::new(),
        };
        let subs = subs.iter().filter(|(agent, _)| {
            site.agent(agent).is_some_and(|a| {
                !a.disabled
                    && match &job.to {
                        Audience::Agents(_) => named.contains(agent),
                        Audience::Department(d) => a.departments.contains(d),
                    }
            })
        });
        for (_, sub) in subs {
            self.send(sub, &payload).await;
        }
    }

    /// The site's browsers that asked for notes, with their agents, read at most every
    /// `SUBSCRIPTIONS_FOR`. Read whole and sorted by the caller: a department's note names
    /// every agent in it (a thousand bound parameters cost SQLite far more than the few rows it
    /// returns), and most agents subscribe none.
    async fn subscriptions(&self, site: &SiteId) -> Result<Subscribed, RecordError> {
        if let Ok(read) = self.shared.subscriptions.lock()
            && let Some((at, subs)) = read.get(site)
            && at.elapsed() < SUBSCRIPTIONS_FOR
        {
            return Ok(subs.clone());
        }
        let changes = self.shared.changes.load(Ordering::Acquire);
        let subs: Subscribed = Arc::new(self.read_subscriptions(site).await?);
        if let Ok(mut read) = self.shared.subscriptions.lock()
            && self.shared.changes.load(Ordering::Acquire) == changes
        {
            read.insert(site.clone(), (Instant::now(), subs.clone()));
        }
        Ok(subs)
    }

    async fn read_subscriptions(
        &self,
        site: &SiteId,
    ) -> Result<Vec<(AgentId, Subscription)>, RecordError> {
        let rows = sqlx::query(
            "SELECT agent, endpoint, p256dh, auth FROM push_subscriptions WHERE site = $1",
        )
        .bind(&site.0)
        .fetch_all(self.shared.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    AgentId(r.try_get(0)?),
                    Subscription {
                        endpoint: r.try_get(1)?,
                        keys: SubscriptionKeys {
                            p256dh: r.try_get(2)?,
                            auth: r.try_get(3)?,
                        },
                    },
                ))
            })
            .collect()
    }

    async fn send(&self, sub: &Subscription, payload: &[u8]) {
        let outcome = match self.post(sub, payload).await {
            Ok(status) if status.is_success() => "sent",
            Ok(status) if matches!(status.as_u16(), 404 | 410) => {
                // The browser unsubscribed, or the push service expired it.
                let db = &self.shared.db;
                let _turn = db.write_turn().await;
                let _ = sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1")
                    .bind(&sub.endpoint)
                    .execute(db.pool())
                    .await;
                self.forget_subscriptions();
                "gone"
            }
            Ok(status) => {
                tracing::info!(host = %host(&sub.endpoint), status = status.as_u16(), "push refused");
                "failed"
            }
            Err(e) => {
                tracing::info!(host = %host(&sub.endpoint), cause = %e, "push not sent");
                "failed"
            }
        };
        metrics::counter!(crate::observe::PUSHES, "outcome" => outcome).increment(1);
    }

    async fn post(
        &self,
        sub: &Subscription,
        payload: &[u8],
    ) -> anyhow::Result<reqwest::StatusCode> {
        let allowed = self.shared.config.get().webhook_allowed_networks.clone();
        if outbound::literal_refused(&sub.endpoint, &allowed) {
            anyhow::bail!(outbound::PrivateAddress);
        }
        let url = reqwest::Url::parse(&sub.endpoint)?;
        let vapid = self.vapid().await?;
        let body = crypto::encrypt(&sub.keys.p256dh, &sub.keys.auth, payload)?;
        let response = self
            .shared
            .client
            .post(url.clone())
            .header("authorization", vapid.authorization(&url, now_ms() / 1000)?)
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .header("ttl", TTL_SECS.to_string())
            .header("urgency", "high")
            .body(body)
            .send()
            .await?;
        Ok(response.status())
    }
}

/// The endpoint's host, for logs: the rest of the URL is the browser's secret address.
fn host(endpoint: &str) -> String {
    reqwest::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}
