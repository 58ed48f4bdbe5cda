//! The Redis backend: any number of nodes share presence, queues, loads and conversation logs.
//!
//! Keys are `<prefix>:{<site>}:…`: the braces are a Redis Cluster hash tag, so everything of one
//! site lives in one slot and each Lua script (in `lua/`) touches one slot. Layout:
//! - `c:<conv>` hash (routing record and `seq` counter), `c:<conv>:log` stream (events, id
//!   `0-<seq>`), `c:<conv>:cids` hash (client id → seq, for idempotent sends);
//! - `v:<visitor>` hash (the visitor's current `conv`), written when a conversation opens;
//!   visitor profiles are records in the database, so a visitor who never writes leaves no key;
//! - `a:<agent>` hash (status, max, cap, load, idle_since, depts, `node:<id>` presence per node),
//!   `a:<agent>:chats` set, `agents` set;
//! - `d:<dept>:agents` set (the department's agents), `d:<dept>:online` set (those online),
//!   `d:<dept>:avail` sorted set (those online below their limit, best first: routing reads its
//!   head, `lua/index.lua`);
//! - `q:<dept>` sorted set (score: priority band, then arrival number), `arrivals` counter (that
//!   number, so two visitors in one millisecond keep their order);
//! - `activity` sorted set (active conversation → the visitor's last message, for the
//!   inactivity close), `unticketed` set (closed conversations whose ticket is not yet known to
//!   be saved), `live` sorted set (visitor → until when some node vouches for their socket);
//! - channel `ev` carries every `Envelope` of the site to every node.
//!
//! Tickets and the webhook outbox have their own keys (`tickets::redis`).
//!
//! Deployments: one server (`redis://`, `rediss://`), Sentinel (`redis+sentinel://`, below) or
//! Cluster (`redis+cluster://`, `cluster`).

mod cluster;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::{
    Appended, Guard, Guarded, Reassign, Result, Span, Start, Store, StoreError, Unavailable,
};
use crate::config::Config;
use crate::directory::model::AgentConfig;
use crate::envelope::{Envelope, Sink};
use crate::model::{
    AgentId, AgentState, AgentStatus, ConvId, ConvState, Conversation, DeptId, Event, EventBody,
    Millis, SiteId, VisitorId,
};
use crate::shutdown::Shutdown;

/// Visitor records expire this long after they were last written.
const VISITOR_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// Presence fields of nodes silent this long are pruned.
const PRESENCE_PRUNE_MS: i64 = 3600 * 1000;

/// The scripts, loaded once per process and invoked by SHA (one round trip each).
struct Scripts {
    append: Script,
    open: Script,
    enqueue: Script,
    assign: Script,
    queue: Script,
    close: Script,
    unassign: Script,
    reassign: Script,
    register: Script,
    presence: Script,
    start: Script,
    set: Script,
    read: Script,
}

/// A script that changes what routing depends on, with the index maintenance it calls.
fn indexing(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("lua/index.lua")))
}

impl Scripts {
    fn new() -> Self {
        Self {
            append: Script::new(include_str!("lua/append.lua")),
            open: Script::new(include_str!("lua/open.lua")),
            enqueue: Script::new(include_str!("lua/enqueue.lua")),
            assign: indexing(include_str!("lua/assign.lua")),
            queue: Script::new(include_str!("lua/queue.lua")),
            close: indexing(include_str!("lua/close.lua")),
            unassign: indexing(include_str!("lua/unassign.lua")),
            reassign: indexing(include_str!("lua/reassign.lua")),
            register: indexing(include_str!("lua/register.lua")),
            presence: indexing(include_str!("lua/presence.lua")),
            start: indexing(include_str!("lua/start.lua")),
            set: indexing(include_str!("lua/set.lua")),
            read: Script::new(include_str!("lua/read.lua")),
        }
    }
}

pub struct RedisStore {
    /// Multiplexed, reconnecting connection for commands; cloning it is cheap. Replaced whole
    /// when Sentinel names a new primary.
    conn: Arc<std::sync::RwLock<Conn>>,
    /// On a cluster: the sites whose channels the subscriber follows (sharded pub/sub has no
    /// pattern form). None elsewhere: one pattern covers every site.
    sites_tx: Option<tokio::sync::watch::Sender<Vec<SiteId>>>,
    prefix: String,
    scripts: Arc<Scripts>,
    /// True while the pub/sub subscription is established (readiness); on a cluster, while
    /// every site's channel is confirmed since the last dropped connection.
    subscribed: Arc<AtomicBool>,
    /// The epoch this node last saw in `<prefix>:epoch` (on a cluster, in each site's
    /// `<prefix>:{<site>}:epoch`): a random id the first node writes into an empty Redis.
    /// Different later means the data this node relied on is gone.
    epoch: std::sync::Mutex<HashMap<String, String>>,
}

impl RedisStore {
    /// Connects, then starts the subscriber that feeds the delivery sink until shutdown.
    pub async fn connect(
        url: &str,
        config: &Config,
        sink: Arc<dyn Sink>,
        shutdown: Shutdown,
    ) -> anyhow::Result<(Self, Vec<tokio::task::JoinHandle<()>>)> {
        use anyhow::Context;
        let ca = match &config.redis_ca_file {
            Some(ca) => Some(
                std::fs::read(ca)
                    .with_context(|| format!("redis_ca_file: cannot read {}", ca.display()))?,
            ),
            None => None,
        };
        let prefix = config.key_prefix.clone();
        let subscribed = Arc::new(AtomicBool::new(false));
        let store = |conn, sites_tx| Self {
            conn: Arc::new(std::sync::RwLock::new(conn)),
            sites_tx,
            prefix: prefix.clone(),
            scripts: Arc::new(Scripts::new()),
            subscribed: subscribed.clone(),
            epoch: Default::default(),
        };
        if let Some(seeds) = cluster::seeds(url)? {
            let conn = Conn::Cluster(cluster::connect(&seeds, ca.as_deref()).await?);
            let (sites_tx, sites_rx) = tokio::sync::watch::channel(Vec::new());
            let base = prefix.clone();
            let task = tokio::spawn(cluster::subscribe_loop(
                seeds,
                ca,
                move |site| channel(&base, site),
                sites_rx,
                sink,
                subscribed.clone(),
                shutdown,
            ));
            return Ok((store(conn, Some(sites_tx)), vec![task]));
        }
        let mut sentinel = match SentinelUrl::parse(url)? {
            Some(s) => Some(s.connect(ca.clone())?),
            None => None,
        };
        let client = match &mut sentinel {
            Some(s) => s
                .primary()
                .await
                .context("Sentinel names no reachable primary")?,
            None => match ca {
                Some(root) if url.starts_with("rediss://") => redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root),
                    },
                )
                .context("invalid Redis URL or redis_ca_file")?,
                _ => redis::Client::open(url).context("invalid Redis URL")?,
            },
        };
        let this = store(Conn::Single(manager(&client).await?), None);
        // One pattern for every site's channel, so sites added at run time are heard at once.
        let pattern = format!("{}:{{*}}:ev", glob_escape(&prefix));
        let (client_tx, client_rx) = tokio::sync::watch::channel(client);
        let mut tasks = vec![tokio::spawn(subscribe_loop(
            client_rx,
            pattern,
            sink,
            subscribed,
            shutdown.clone(),
        ))];
        if let Some(sentinel) = sentinel {
            tasks.push(tokio::spawn(follow_primary(
                sentinel,
                this.conn.clone(),
                client_tx,
                shutdown,
            )));
        }
        Ok((this, tasks))
    }

    /// `<prefix>:{<site>}:` — every key of the site starts with it.
    /// Sets an agent's `status` or `max` with the department sets and routing index (`set.lua`).
    async fn set_field(
        &self,
        site: &SiteId,
        agent: &AgentId,
        field: &str,
        value: &str,
    ) -> Result<()> {
        let base = self.base(site);
        let _: i64 = self
            .scripts
            .set
            .key(format!("{base}a:{agent}"))
            .arg(&base)
            .arg(&agent.0)
            .arg(field)
            .arg(value)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    fn base(&self, site: &SiteId) -> String {
        format!("{}:{{{}}}:", self.prefix, site)
    }

    /// The key of a rate counter (`Store::count`) for the window `now` falls in: one key per
    /// window, expiring with it, so nothing is left behind.
    fn rate_key(&self, site: &SiteId, key: &str, window_ms: i64, now: Millis) -> String {
        format!(
            "{}rate:{key}:{}",
            self.base(site),
            now.div_euclid(window_ms.max(1))
        )
    }

    fn channel(&self, site: &SiteId) -> String {
        channel(&self.prefix, site)
    }

    /// How a site's channel is written to: sharded on a cluster, so it stays on the site's
    /// shard; plain elsewhere (one pattern subscription hears every site, and Redis before 7
    /// has no sharded channels).
    fn publish_command(&self) -> &'static str {
        if self.sites_tx.is_some() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// The connection state calls go through, timed.
    fn conn(&self) -> Timed {
        Timed(self.connection())
    }

    /// A handle on the same multiplexed connection, for the ticket store.
    pub fn connection(&self) -> Conn {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the epoch in `key` differs from the one this node last saw there. An empty
    /// Redis (first start, or restarted without its data) has none: the first node to get here
    /// names a new one, the others read it.
    async fn epoch_changed(&self, key: String) -> Result<bool> {
        let mut conn = self.conn();
        let mut current: Option<String> = conn.get(&key).await?;
        if current.is_none() {
            let _: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(ulid::Ulid::new().to_string())
                .arg("NX")
                .query_async(&mut conn)
                .await?;
            current = conn.get(&key).await?;
        }
        let mut seen = self.epoch.lock().unwrap_or_else(|e| e.into_inner());
        let before = match current {
            Some(now) => seen.insert(key, now.clone()).filter(|b| *b != now),
            None => None,
        };
        Ok(before.is_some())
    }

    async fn read_agent(&self, site: &SiteId, id: &AgentId) -> Result<Option<AgentState>> {
        let base = self.base(site);
        let (h, chats): (HashMap<String, String>, Vec<String>) = redis::pipe()
            .hgetall(format!("{base}a:{id}"))
            .smembers(format!("{base}a:{id}:chats"))
            .query_async(&mut self.conn())
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        Ok(Some(parse_agent(id, &h, chats)?))
    }
}

/// `<prefix>:{<site>}:ev`: the channel of a site's envelopes, in the site's slot.
fn channel(prefix: &str, site: &SiteId) -> String {
    format!("{prefix}:{{{site}}}:ev")
}

/// A key prefix as a literal in a Redis glob pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A connection manager to a client's server, with bounded connect and response times.
async fn manager(client: &redis::Client) -> anyhow::Result<ConnectionManager> {
    use anyhow::Context;
    let manager_config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(3);
    tokio::time::timeout(
        Duration::from_secs(10),
        client.get_connection_manager_with_config(manager_config),
    )
    .await
    .context("timed out connecting to Redis")?
    .context("cannot connect to Redis")
}

/// `redis+sentinel://[:password@]host:port[,host:port…]/<primary name>[/<db>]`: the Sentinels
/// to ask, and the name of the primary they watch. `rediss+sentinel://` speaks TLS to the
/// Sentinels and to the servers they name (verified against `redis_ca_file` when set).
#[derive(Debug, PartialEq)]
struct SentinelUrl {
    sentinels: Vec<String>,
    service: String,
    password: Option<String>,
    db: i64,
    tls: bool,
}

impl SentinelUrl {
    fn parse(url: &str) -> anyhow::Result<Option<Self>> {
        let (rest, tls) = match (
            url.strip_prefix("redis+sentinel://"),
            url.strip_prefix("rediss+sentinel://"),
        ) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => return Ok(None),
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let password = auth
            .map(|a| a.rsplit_once(':').map_or(a, |(_, p)| p).to_owned())
            .filter(|p| !p.is_empty());
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut path = path.split('/').filter(|p| !p.is_empty());
        let service = path.next().map(str::to_owned).ok_or_else(|| {
            anyhow::anyhow!("redis+sentinel URL: name the primary, e.g. redis+sentinel://h1:26379,h2:26379/mymaster")
        })?;
        let db = match path.next() {
            Some(d) => d.parse().map_err(|_| {
                anyhow::anyhow!("redis+sentinel URL: the database must be a number")
            })?,
            None => 0,
        };
        let sentinels: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("{}://{h}/", if tls { "rediss" } else { "redis" }))
            .collect();
        if sentinels.is_empty() {
            anyhow::bail!("redis+sentinel URL: at least one Sentinel host:port");
        }
        Ok(Some(Self {
            sentinels,
            service,
            password,
            db,
            tls,
        }))
    }

    /// `ca`: the authority (PEM) that signed the servers' certificates, for TLS.
    fn connect(self, ca: Option<Vec<u8>>) -> anyhow::Result<Discovery> {
        let bad = |e: redis::RedisError| anyhow::anyhow!("redis+sentinel URL: {e}");
        if self.tls {
            // The builder is the one way to give both hops the authority.
            use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
            let addrs = self
                .sentinels
                .iter()
                .map(|u| redis::IntoConnectionInfo::into_connection_info(u.as_str()))
                .map(|i| i.map(|i| i.addr().clone()))
                .collect::<redis::RedisResult<Vec<_>>>()
                .map_err(bad)?;
            let mut b =
                SentinelClientBuilder::new(addrs, &self.service, SentinelServerType::Master)
                    .map_err(bad)?
                    .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure)
                    .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                    .set_client_to_redis_db(self.db);
            if let Some(p) = &self.password {
                b = b.set_client_to_redis_password(p);
            }
            if let Some(root) = ca {
                let certs = || redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root.clone()),
                };
                b = b
                    .set_client_to_sentinel_certificates(certs())
                    .set_client_to_redis_certificates(certs());
            }
            let client = b.build().map_err(bad)?;
            return Ok(Discovery::Tls(Arc::new(std::sync::Mutex::new(client))));
        }
        let sentinel = redis::sentinel::Sentinel::build(self.sentinels.clone()).map_err(bad)?;
        let mut info = redis::RedisConnectionInfo::default().set_db(self.db);
        if let Some(p) = &self.password {
            info = info.set_password(p);
        }
        Ok(Discovery::Plain(Box::new(PlainDiscovery {
            sentinel,
            service: self.service,
            node: redis::sentinel::SentinelNodeConnectionInfo::default()
                .set_redis_connection_info(info),
        })))
    }
}

/// Sentinels over plain TCP, asked asynchronously.
struct PlainDiscovery {
    sentinel: redis::sentinel::Sentinel,
    service: String,
    node: redis::sentinel::SentinelNodeConnectionInfo,
}

/// Asks the Sentinels which server is the primary now.
enum Discovery {
    /// Boxed: the Sentinel client is large, and a discovery lives for the node's life.
    Plain(Box<PlainDiscovery>),
    /// Over TLS: the client redis-rs builds with certificates for both hops. It asks
    /// synchronously, so on a blocking thread (twice a second at most).
    Tls(Arc<std::sync::Mutex<redis::sentinel::SentinelClient>>),
}

impl Discovery {
    /// A client for the current primary (the Sentinel's answer, checked with the server).
    async fn primary(&mut self) -> redis::RedisResult<redis::Client> {
        match self {
            Self::Plain(p) => p.sentinel.async_master_for(&p.service, Some(&p.node)).await,
            Self::Tls(client) => {
                let client = client.clone();
                tokio::task::spawn_blocking(move || {
                    client
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_client()
                })
                .await
                .map_err(|e| {
                    redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "sentinel lookup",
                        e.to_string(),
                    ))
                })?
            }
        }
    }
}

/// How often a node asks the Sentinels for the primary.
const SENTINEL_POLL: Duration = Duration::from_millis(500);

/// Follows failovers: when the Sentinels name another primary, commands and the subscription
/// move to it. The data there is the replica's; if it lost some, the epoch check rebuilds.
async fn follow_primary(
    mut discovery: Discovery,
    conn: Arc<std::sync::RwLock<Conn>>,
    client_tx: tokio::sync::watch::Sender<redis::Client>,
    mut shutdown: Shutdown,
) {
    let addr = |c: &redis::Client| c.get_connection_info().addr().to_string();
    let mut current = addr(&client_tx.borrow());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SENTINEL_POLL) => {}
            _ = shutdown.recv() => return,
        }
        let found = tokio::select! {
            f = discovery.primary() => f,
            _ = shutdown.recv() => return,
        };
        let client = match found {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(cause = %e, "sentinel: no primary yet");
                continue;
            }
        };
        let next = addr(&client);
        if next == current {
            continue;
        }
        match manager(&client).await {
            Ok(m) => {
                tracing::warn!(primary = %next, was = %current, "sentinel: following the new primary");
                *conn.write().unwrap_or_else(|e| e.into_inner()) = Conn::Single(m);
                current = next;
                let _ = client_tx.send(client);
            }
            Err(e) => {
                tracing::warn!(cause = %e, primary = %next, "sentinel: cannot reach the new primary yet")
            }
        }
    }
}

/// Keeps one subscription to every site's channel, re-establishing it with backoff. After a
/// reconnect every session backfills, since anything published meanwhile was lost.
async fn subscribe_loop(
    mut client_rx: tokio::sync::watch::Receiver<redis::Client>,
    pattern: String,
    sink: Arc<dyn Sink>,
    subscribed: Arc<AtomicBool>,
    mut shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let client = client_rx.borrow_and_update().clone();
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            r = attempt => r,
            _ = shutdown.recv() => return,
        };
        match pubsub {
            Ok(pubsub) => {
                subscribed.store(true, Ordering::Release);
                backoff = Duration::from_millis(100);
                if !first {
                    tracing::info!("redis subscription restored; sessions backfill");
                    sink.resync();
                }
                first = false;
                let mut stream = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => match serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) {
                                Ok(env) => sink.deliver(env),
                                Err(e) => tracing::warn!(cause = %e, channel = msg.get_channel_name(), "undecodable envelope"),
                            },
                            None => break,
                        },
                        // Sentinel named another primary: subscribe there. (Without Sentinel
                        // nobody sends: the channel is closed, and that must not count.)
                        Ok(()) = client_rx.changed() => break,
                        _ = shutdown.recv() => return,
                    }
                }
                subscribed.store(false, Ordering::Release);
                tracing::warn!("redis subscription lost; reconnecting");
            }
            Err(e) => {
                subscribed.store(false, Ordering::Release);
                tracing::warn!(cause = %e, "redis subscribe failed; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.recv() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn num<T: std::str::FromStr + Default>(h: &HashMap<String, String>, k: &str) -> T {
    h.get(k).and_then(|v| v.parse().ok()).unwrap_or_default()
}

fn opt_num(h: &HashMap<String, String>, k: &str) -> Option<i64> {
    h.get(k)
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse().ok())
}

fn parse_agent(
    id: &AgentId,
    h: &HashMap<String, String>,
    chats: Vec<String>,
) -> Result<AgentState> {
    let departments: Vec<DeptId> = h
        .get("depts")
        .map(|d| serde_json::from_str(d))
        .transpose()
        .map_err(|e| corrupt(format!("agent {id} departments: {e}")))?
        .unwrap_or_default();
    let present_until = h
        .iter()
        .filter(|(k, _)| k.starts_with("node:"))
        .filter_map(|(_, v)| v.parse::<i64>().ok())
        .max()
        .unwrap_or(0);
    Ok(AgentState {
        id: id.clone(),
        name: h.get("name").cloned().unwrap_or_default(),
        departments,
        status: h
            .get("status")
            .and_then(|s| AgentStatus::parse(s))
            .unwrap_or(AgentStatus::Offline),
        max_concurrent: num(h, "max"),
        cap: num(h, "cap"),
        load: num::<i64>(h, "load").max(0) as u32,
        idle_since: num(h, "idle_since"),
        present_until,
        chats: chats.into_iter().map(ConvId).collect(),
    })
}

fn parse_conv(id: &ConvId, h: &HashMap<String, String>) -> Result<Conversation> {
    let state = h
        .get("state")
        .and_then(|s| ConvState::parse(s))
        .ok_or_else(|| corrupt(format!("conversation {id} has no state")))?;
    Ok(Conversation {
        id: id.clone(),
        visitor: VisitorId(h.get("visitor").cloned().unwrap_or_default()),
        department: DeptId(h.get("department").cloned().unwrap_or_default()),
        state,
        agent: h
            .get("agent")
            .filter(|a| !a.is_empty())
            .cloned()
            .map(AgentId),
        priority: num(h, "priority"),
        created_at: num(h, "created_at"),
        queued_at: opt_num(h, "queued_at"),
        first_assigned_at: opt_num(h, "first_assigned_at"),
        closed_at: opt_num(h, "closed_at"),
        close_reason: h.get("close_reason").cloned(),
        locale: h.get("locale").cloned().unwrap_or_else(|| "en".into()),
        last_seq: num(h, "seq"),
        visitor_read: num(h, "vr"),
        agent_read: num(h, "ar"),
    })
}

/// A new conversation's hash fields, as the open and start scripts take them (field, value, …).
fn conv_fields(inv: &mut redis::ScriptInvocation<'_>, new: &Conversation) {
    inv.arg("visitor")
        .arg(&new.visitor.0)
        .arg("department")
        .arg(&new.department.0)
        .arg("state")
        .arg(new.state.as_str())
        .arg("priority")
        .arg(new.priority)
        .arg("created_at")
        .arg(new.created_at)
        .arg("locale")
        .arg(&new.locale)
        .arg("seq")
        .arg(0);
}

fn flat_to_map(flat: Vec<String>) -> HashMap<String, String> {
    let mut it = flat.into_iter();
    let mut h = HashMap::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        h.insert(k, v);
    }
    h
}

#[async_trait]
impl Store for RedisStore {
    async fn register_agent(
        &self,
        site: &SiteId,
        agent: &AgentConfig,
        all: &[DeptId],
    ) -> Result<()> {
        let base = self.base(site);
        let depts =
            serde_json::to_string(&agent.departments).map_err(|e| corrupt(e.to_string()))?;
        let mut inv = self.scripts.register.prepare_invoke();
        inv.key(format!("{base}a:{}", agent.id))
            .key(format!("{base}agents"))
            .arg(&base)
            .arg(&agent.id.0)
            .arg(&agent.name)
            .arg(depts)
            .arg(agent.max_concurrent);
        for d in all {
            inv.arg(&d.0);
        }
        let _: i64 = inv.invoke_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn visitor_conversation(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
    ) -> Result<Option<Conversation>> {
        let conv: Option<String> = self
            .conn()
            .hget(format!("{}v:{visitor}", self.base(site)), "conv")
            .await?;
        match conv {
            Some(c) => self.conversation(site, &ConvId(c)).await,
            None => Ok(None),
        }
    }

    async fn open_conversation(
        &self,
        site: &SiteId,
        new: &Conversation,
    ) -> Result<(Conversation, bool)> {
        let base = self.base(site);
        let mut inv = self.scripts.open.prepare_invoke();
        inv.key(format!("{base}v:{}", new.visitor))
            .key(format!("{base}c:{}", new.id))
            .arg(&base)
            .arg(&new.id.0)
            .arg(VISITOR_TTL_MS);
        conv_fields(&mut inv, new);
        let existing: Option<String> = inv.invoke_async(&mut self.conn()).await?;
        match existing {
            None => Ok((new.clone(), true)),
            Some(id) => {
                let id = ConvId(id);
                let conv = self
                    .conversation(site, &id)
                    .await?
                    .ok_or_else(|| corrupt(format!("conversation {id} vanished")))?;
                Ok((conv, false))
            }
        }
    }

    async fn start_conversation(
        &self,
        site: &SiteId,
        new: &Conversation,
        agent: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> Result<Start> {
        let base = self.base(site);
        let mut inv = self.scripts.start.prepare_invoke();
        inv.key(format!("{base}v:{}", new.visitor))
            .key(format!("{base}c:{}", new.id))
            .key(format!("{base}a:{agent}"))
            .arg(&base)
            .arg(&new.id.0)
            .arg(&agent.0)
            .arg(now)
            .arg(grace_ms)
            .arg(VISITOR_TTL_MS);
        // The script sets state and owner itself after these.
        conv_fields(&mut inv, new);
        let r: i64 = inv.invoke_async(&mut self.conn()).await?;
        Ok(match r {
            1 => Start::Done,
            0 => Start::VisitorBusy,
            _ => Start::AgentFull,
        })
    }

    async fn conversation(&self, site: &SiteId, id: &ConvId) -> Result<Option<Conversation>> {
        let h: HashMap<String, String> = self
            .conn()
            .hgetall(format!("{}c:{id}", self.base(site)))
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        parse_conv(id, &h).map(Some)
    }

    async fn append_guarded(
        &self,
        site: &SiteId,
        conv: &ConvId,
        body: &EventBody,
        guard: &Guard,
    ) -> Result<Guarded> {
        let base = self.base(site);
        let json = serde_json::to_string(body).map_err(|e| corrupt(e.to_string()))?;
        let visitor_at = match body {
            EventBody::Message {
                at,
                author: crate::model::AuthorKind::Visitor,
                ..
            } => at.to_string(),
            _ => String::new(),
        };
        let guard_arg = match guard {
            Guard::None => String::new(),
            Guard::VisitorOpen(v, _) => format!("v:{v}"),
            Guard::AgentActive(a) => format!("a:{a}"),
        };
        let mut script = self.scripts.append.key(format!("{base}c:{conv}"));
        script
            .key(format!("{base}c:{conv}:log"))
            .key(format!("{base}c:{conv}:cids"))
            .key(format!("{base}activity"));
        let (limit, window) = match guard {
            Guard::VisitorOpen(v, Some(rate)) => {
                for k in crate::state::Rate::keys(v, Some(conv)) {
                    script.key(self.rate_key(site, &k, rate.window_ms, rate.now));
                }
                (rate.limit.to_string(), rate.window_ms.max(1).to_string())
            }
            _ => (String::new(), String::new()),
        };
        let (seq, flag): (u64, i64) = script
            .arg(body.client_id().unwrap_or(""))
            .arg(json)
            .arg(self.channel(site))
            .arg(&site.0)
            .arg(&conv.0)
            .arg(visitor_at)
            .arg(guard_arg)
            .arg(self.publish_command())
            .arg(limit)
            .arg(window)
            .invoke_async(&mut self.conn())
            .await?;
        if seq == 0 {
            return match (guard, flag) {
                (_, -2) => Ok(Guarded::Limited),
                (Guard::None, _) => Err(corrupt(format!("no conversation {conv}"))),
                _ => Ok(Guarded::Refused),
            };
        }
        Ok(Guarded::Stored(Appended {
            seq,
            duplicate: flag == 1,
        }))
    }

    async fn events(&self, site: &SiteId, conv: &ConvId, span: Span) -> Result<Vec<Event>> {
        let key = format!("{}c:{conv}:log", self.base(site));
        // Entry ids are `0-<seq>`; both ends exclusive.
        let start = format!("(0-{}", span.after);
        let end = match span.before {
            u64::MAX => "+".to_owned(),
            b => format!("(0-{b}"),
        };
        if span.after.saturating_add(1) >= span.before || span.limit == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = if span.latest {
            let mut c = redis::cmd("XREVRANGE");
            c.arg(&key).arg(end).arg(start);
            c
        } else {
            let mut c = redis::cmd("XRANGE");
            c.arg(&key).arg(start).arg(end);
            c
        };
        if span.limit != usize::MAX {
            cmd.arg("COUNT").arg(span.limit);
        }
        let entries: Vec<(String, HashMap<String, String>)> =
            cmd.query_async(&mut self.conn()).await?;
        let mut events = entries
            .into_iter()
            .map(|(_, fields)| {
                let raw = fields
                    .get("e")
                    .ok_or_else(|| corrupt(format!("log entry of {conv} without event")))?;
                serde_json::from_str(raw).map_err(|e| corrupt(format!("event of {conv}: {e}")))
            })
            .collect::<Result<Vec<Event>>>()?;
        if span.latest {
            events.reverse();
        }
        Ok(events)
    }

    async fn enqueue(
        &self,
        site: &SiteId,
        conv: &ConvId,
        dept: &DeptId,
        at_head: bool,
        now: Millis,
    ) -> Result<bool> {
        let base = self.base(site);
        let ok: i64 = self
            .scripts
            .enqueue
            .key(format!("{base}c:{conv}"))
            .key(format!("{base}q:{dept}"))
            .key(format!("{base}arrivals"))
            .arg(&conv.0)
            .arg(&dept.0)
            .arg(now)
            .arg(if at_head { "1" } else { "0" })
            .arg(&base)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(ok == 1)
    }

    async fn assign_batch(
        &self,
        site: &SiteId,
        dept: &DeptId,
        now: Millis,
        grace_ms: Millis,
        batch: usize,
    ) -> Result<Vec<(ConvId, AgentId, String)>> {
        let base = self.base(site);
        let flat: Vec<String> = self
            .scripts
            .assign
            .key(format!("{base}q:{dept}"))
            .key(format!("{base}d:{dept}:avail"))
            .arg(&base)
            .arg(now)
            .arg(grace_ms)
            .arg(&dept.0)
            .arg(batch)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(flat
            .chunks_exact(3)
            .map(|c| (ConvId(c[0].clone()), AgentId(c[1].clone()), c[2].clone()))
            .collect())
    }

    async fn queue_position(
        &self,
        site: &SiteId,
        dept: &DeptId,
        conv: &ConvId,
    ) -> Result<Option<u32>> {
        let rank: Option<u64> = self
            .conn()
            .zrank(format!("{}q:{dept}", self.base(site)), &conv.0)
            .await?;
        Ok(rank.map(|r| r as u32 + 1))
    }

    async fn queue(&self, site: &SiteId, dept: &DeptId) -> Result<Vec<(ConvId, Millis)>> {
        let base = self.base(site);
        let flat: Vec<String> = self
            .scripts
            .queue
            .key(format!("{base}q:{dept}"))
            .arg(&base)
            .invoke_async(&mut self.conn())
            .await?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(c), Some(t)) = (it.next(), it.next()) {
            out.push((ConvId(c), t.parse().unwrap_or(0)));
        }
        Ok(out)
    }

    async fn close(
        &self,
        site: &SiteId,
        conv: &ConvId,
        reason: &str,
        now: Millis,
        retention_ms: Millis,
    ) -> Result<Option<Conversation>> {
        let base = self.base(site);
        let flat: Option<Vec<String>> = self
            .scripts
            .close
            .key(format!("{base}c:{conv}"))
            .key(format!("{base}c:{conv}:log"))
            .key(format!("{base}c:{conv}:cids"))
            .arg(&base)
            .arg(&conv.0)
            .arg(reason)
            .arg(now)
            .arg(retention_ms.max(1))
            .invoke_async(&mut self.conn())
            .await?;
        flat.map(|f| parse_conv(conv, &flat_to_map(f))).transpose()
    }

    async fn unassign(
        &self,
        site: &SiteId,
        conv: &ConvId,
        owner: &AgentId,
        dept: &DeptId,
        now: Millis,
    ) -> Result<bool> {
        let base = self.base(site);
        let ok: i64 = self
            .scripts
            .unassign
            .key(format!("{base}c:{conv}"))
            .key(format!("{base}q:{dept}"))
            .key(format!("{base}arrivals"))
            .arg(&base)
            .arg(&conv.0)
            .arg(&owner.0)
            .arg(&dept.0)
            .arg(now)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(ok == 1)
    }

    async fn reassign(
        &self,
        site: &SiteId,
        conv: &ConvId,
        from: &AgentId,
        to: &AgentId,
        now: Millis,
        grace_ms: Millis,
    ) -> Result<Reassign> {
        let base = self.base(site);
        let r: i64 = self
            .scripts
            .reassign
            .key(format!("{base}c:{conv}"))
            .key(format!("{base}a:{from}"))
            .key(format!("{base}a:{to}"))
            .arg(&conv.0)
            .arg(&from.0)
            .arg(&to.0)
            .arg(now)
            .arg(grace_ms)
            .arg(&base)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match r {
            1 => Reassign::Done,
            0 => Reassign::NotOwner,
            -1 => Reassign::TargetUnavailable(Unavailable::Yourself),
            -2 => Reassign::TargetUnavailable(Unavailable::NotOnline),
            -3 => Reassign::TargetUnavailable(Unavailable::Full),
            _ => Reassign::TargetUnavailable(Unavailable::Disconnected),
        })
    }

    async fn set_status(&self, site: &SiteId, agent: &AgentId, status: AgentStatus) -> Result<()> {
        // Status, the per-department online sets and the routing index change together.
        self.set_field(site, agent, "status", status.as_str()).await
    }

    async fn set_limit(&self, site: &SiteId, agent: &AgentId, limit: u32) -> Result<()> {
        // The engine checked the limit against the configured cap.
        self.set_field(site, agent, "max", &limit.to_string()).await
    }

    async fn set_presence(
        &self,
        site: &SiteId,
        agent: &AgentId,
        node: &str,
        until: Millis,
    ) -> Result<()> {
        let _: i64 = self
            .scripts
            .presence
            .key(format!("{}a:{agent}", self.base(site)))
            .arg(format!("node:{node}"))
            .arg(until)
            .arg(until - PRESENCE_PRUNE_MS)
            .arg(self.base(site))
            .arg(&agent.0)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn agent(&self, site: &SiteId, id: &AgentId) -> Result<Option<AgentState>> {
        self.read_agent(site, id).await
    }

    async fn agents(&self, site: &SiteId) -> Result<Vec<AgentState>> {
        let base = self.base(site);
        let mut ids: Vec<String> = self.conn().smembers(format!("{base}agents")).await?;
        if ids.is_empty() {
            // An empty pipeline is an error to the client ("empty command").
            return Ok(Vec::new());
        }
        ids.sort();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(format!("{base}a:{id}"))
                .smembers(format!("{base}a:{id}:chats"));
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut it = replies.into_iter();
        for id in ids {
            let (Some(h), Some(c)) = (it.next(), it.next()) else {
                break;
            };
            let h: HashMap<String, String> =
                redis::from_redis_value(h).map_err(|e| corrupt(e.to_string()))?;
            let c: Vec<String> = redis::from_redis_value(c).map_err(|e| corrupt(e.to_string()))?;
            if !h.is_empty() {
                out.push(parse_agent(&AgentId(id), &h, c)?);
            }
        }
        Ok(out)
    }

    async fn visitor_left(&self, site: &SiteId, visitor: &VisitorId) -> Result<()> {
        let _: i64 = self
            .conn()
            .zrem(format!("{}live", self.base(site)), &visitor.0)
            .await?;
        Ok(())
    }

    async fn set_visitor_presence(
        &self,
        site: &SiteId,
        visitors: &[VisitorId],
        until: Millis,
    ) -> Result<()> {
        if visitors.is_empty() {
            return Ok(());
        }
        let key = format!("{}live", self.base(site));
        let mut pipe = redis::pipe();
        for chunk in visitors.chunks(500) {
            let items: Vec<(Millis, &str)> = chunk.iter().map(|v| (until, v.0.as_str())).collect();
            pipe.zadd_multiple(&key, &items).ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn live_visitors(&self, site: &SiteId, now: Millis) -> Result<Vec<VisitorId>> {
        // Those some node vouches for beyond now (the sweep forgets the others).
        let ids: Vec<String> = self
            .conn()
            .zrangebyscore(
                format!("{}live", self.base(site)),
                format!("({now}"),
                "+inf",
            )
            .await?;
        let mut ids: Vec<VisitorId> = ids.into_iter().map(VisitorId).collect();
        ids.sort();
        Ok(ids)
    }

    async fn inactive(&self, site: &SiteId, before: Millis) -> Result<Vec<ConvId>> {
        let ids: Vec<String> = self
            .conn()
            .zrangebyscore(
                format!("{}activity", self.base(site)),
                "-inf",
                format!("({before}"),
            )
            .await?;
        Ok(ids.into_iter().map(ConvId).collect())
    }

    async fn unticketed(&self, site: &SiteId) -> Result<Vec<ConvId>> {
        let ids: Vec<String> = self
            .conn()
            .smembers(format!("{}unticketed", self.base(site)))
            .await?;
        Ok(ids.into_iter().map(ConvId).collect())
    }

    async fn mark_ticketed(&self, site: &SiteId, conv: &ConvId) -> Result<()> {
        let _: i64 = self
            .conn()
            .srem(format!("{}unticketed", self.base(site)), &conv.0)
            .await?;
        Ok(())
    }

    async fn mark_read(
        &self,
        site: &SiteId,
        conv: &ConvId,
        agent: bool,
        seq: u64,
    ) -> Result<Option<u64>> {
        let mark: u64 = self
            .scripts
            .read
            .key(format!("{}c:{conv}", self.base(site)))
            .arg(if agent { "ar" } else { "vr" })
            .arg(seq)
            .invoke_async(&mut self.conn())
            .await?;
        Ok((mark > 0).then_some(mark))
    }

    async fn publish(&self, site: &SiteId, envelope: &Envelope) -> Result<()> {
        let json = serde_json::to_string(envelope).map_err(|e| corrupt(e.to_string()))?;
        let _: i64 = redis::cmd(self.publish_command())
            .arg(self.channel(site))
            .arg(json)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    fn follow_sites(&self, sites: Vec<SiteId>) {
        if let Some(tx) = &self.sites_tx {
            tx.send_if_modified(|current| {
                let changed = *current != sites;
                if changed {
                    // Not ready until the subscriber has confirmed the new sites' channels.
                    self.subscribed.store(false, Ordering::Release);
                }
                *current = sites;
                changed
            });
        }
    }

    async fn ready(&self) -> Result<bool> {
        if let Conn::Cluster(mut cluster) = self.connection() {
            // Every primary answers and says every slot is served. One node's view alone is
            // not enough: the others call a silent primary failed only after the node timeout
            // (15 s by default), and until a replica takes over the cluster refuses every
            // command. The client asks the primaries it reaches; fewer answers than the
            // cluster's size means one is gone.
            use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
            let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
            let answers = cluster
                .route_command(redis::cmd("CLUSTER").arg("INFO").clone(), all)
                .await?;
            let redis::Value::Map(answers) = answers else {
                return Ok(false);
            };
            let healthy = |info: &redis::Value| {
                let Ok(info) = redis::from_redis_value_ref::<String>(info) else {
                    return false;
                };
                let field = |name: &str| {
                    info.lines()
                        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
                };
                field("cluster_state") == Some("ok")
                    && field("cluster_size")
                        .and_then(|n| n.parse::<usize>().ok())
                        .is_some_and(|size| answers.len() >= size)
            };
            let ok = !answers.is_empty() && answers.iter().all(|(_, info)| healthy(info));
            return Ok(ok && self.subscribed.load(Ordering::Acquire));
        }
        // ROLE answers like PING and also tells a primary from a replica (read-only, so every
        // write would fail: not ready).
        let role: redis::Value = redis::cmd("ROLE").query_async(&mut self.conn()).await?;
        let primary = match &role {
            redis::Value::Array(parts) => matches!(
                parts.first(),
                Some(redis::Value::BulkString(r)) if r.as_slice() == b"master"
            ),
            _ => false,
        };
        Ok(primary && self.subscribed.load(Ordering::Acquire))
    }

    async fn state_lost(&self) -> Result<bool> {
        // On a cluster each shard can lose its data on its own: one epoch per site, in the
        // site's slot. Elsewhere one key tells for the whole server.
        let keys: Vec<String> = match &self.sites_tx {
            Some(tx) => tx
                .borrow()
                .iter()
                .map(|s| format!("{}epoch", self.base(s)))
                .collect(),
            None => vec![format!("{}:epoch", self.prefix)],
        };
        // Together: on a cluster each site's key may be on another shard.
        let checks =
            futures_util::future::join_all(keys.into_iter().map(|k| self.epoch_changed(k)));
        let mut lost = false;
        for changed in checks.await {
            lost |= changed?;
        }
        Ok(lost)
    }

    async fn count(
        &self,
        site: &SiteId,
        keys: &[String],
        window_ms: i64,
        now: Millis,
    ) -> Result<u64> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in keys {
            let k = self.rate_key(site, key, window_ms, now);
            pipe.incr(&k, 1u64).pexpire(&k, window_ms.max(1)).ignore();
        }
        let counts: Vec<u64> = pipe.query_async(&mut self.conn()).await?;
        Ok(counts.into_iter().max().unwrap_or(0))
    }

    async fn forget_visitor(
        &self,
        site: &SiteId,
        visitor: &VisitorId,
        convs: &[ConvId],
    ) -> Result<()> {
        let base = self.base(site);
        let current: Option<String> = self
            .conn()
            .hget(format!("{base}v:{visitor}"), "conv")
            .await?;
        let mut pipe = redis::pipe();
        pipe.del(format!("{base}v:{visitor}"))
            .ignore()
            .zrem(format!("{base}live"), &visitor.0)
            .ignore();
        let current = current.filter(|c| !c.is_empty()).map(ConvId);
        for conv in convs.iter().chain(current.as_ref()) {
            pipe.del(&[
                format!("{base}c:{conv}"),
                format!("{base}c:{conv}:log"),
                format!("{base}c:{conv}:cids"),
            ])
            .ignore()
            .srem(format!("{base}unticketed"), &conv.0)
            .ignore();
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn sweep_closed(&self, sites: &[SiteId], now: Millis) -> Result<()> {
        // Closed conversations' keys carry a TTL set by the close script. Visitors whose node
        // died without saying they left lapse here.
        // One call per site: on a cluster each site's keys live on their own shard.
        for site in sites {
            let _: i64 = self
                .conn()
                .zrembyscore(format!("{}live", self.base(site)), "-inf", now)
                .await?;
        }
        Ok(())
    }
}

/// A connection to one server (standalone or the primary Sentinel names) or to a cluster;
/// cloning it is cheap (both are multiplexed handles).
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection whose every round trip (a command, a script or a pipeline) is recorded in
/// `switchboard_redis_seconds`: two clock reads and an atomic add per call.
struct Timed(Conn);

impl Timed {
    fn record(start: std::time::Instant) {
        metrics::histogram!(crate::observe::REDIS_SECONDS).record(start.elapsed().as_secs_f64());
    }
}

impl redis::aio::ConnectionLike for Timed {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        let start = std::time::Instant::now();
        Box::pin(async move {
            let r = self.0.req_packed_command(cmd).await;
            Self::record(start);
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        let start = std::time::Instant::now();
        Box::pin(async move {
            let r = self.0.req_packed_commands(pipeline, offset, count).await;
            Self::record(start);
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sentinel URLs name the Sentinels, the primary's name, and optionally a password and db;
    /// other URLs are not theirs; a missing name is refused with an example.
    #[test]
    fn sentinel_urls() {
        assert_eq!(SentinelUrl::parse("redis://127.0.0.1:6379/").unwrap(), None);
        let s = SentinelUrl::parse("redis+sentinel://:pw@h1:26379,h2:26380/main/2")
            .unwrap()
            .unwrap();
        assert_eq!(s.sentinels, ["redis://h1:26379/", "redis://h2:26380/"]);
        assert_eq!(
            (s.service.as_str(), s.password.as_deref(), s.db),
            ("main", Some("pw"), 2)
        );
        assert!(!s.tls);
        let t = SentinelUrl::parse("rediss+sentinel://h1:26379/main")
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.sentinels.as_slice(), t.tls),
            (&["rediss://h1:26379/".to_owned()][..], true)
        );
        let e = SentinelUrl::parse("redis+sentinel://h1:26379").unwrap_err();
        assert!(e.to_string().contains("name the primary"), "{e}");
        assert_eq!(glob_escape("a*b[c]"), "a\\*b\\[c\\]");
    }
}
