//! The Redis backend: any number of nodes share presence, queues, loads and conversation logs.
//!
//! The backend's parts:
//! - `keys` — every key and channel, and the layout of the data;
//! - `scripts` — the Lua scripts (in `lua/`), each behind one typed call that owns its
//!   argument order;
//! - `store` — the `Store` contract: each method one script or one round trip;
//! - `codec` — agents and conversations as Redis hashes;
//! - `connect` — one server, Sentinel (followed across failovers) or a cluster;
//! - `subscriber` — every site's envelopes to this node's delivery sink.
//!
//! Deployments: one server (`redis://`, `rediss://`), Sentinel (`redis+sentinel://`) or
//! Cluster (`redis+cluster://`), all in `connect`.

mod codec;
mod connect;
mod keys;
mod scripts;
mod store;
mod subscriber;

pub use connect::{Conn, check_url};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use codec::parse_agent;
use redis::AsyncCommands;

use super::Result;
use crate::envelope::Sink;
use crate::model::{AgentId, AgentState, Millis, SiteId};
use crate::shutdown::Shutdown;
use keys::SiteKeys;
use scripts::Scripts;

/// Visitor records expire this long after they were last written.
const VISITOR_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// Presence fields of nodes silent this long are pruned.
const PRESENCE_PRUNE_MS: i64 = 3600 * 1000;

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
    /// Connects to `url` (verifying TLS servers against the PEM file `ca_file` when given),
    /// with every key under `key_prefix`, then starts the subscriber that feeds the delivery
    /// sink until shutdown.
    pub async fn connect(
        url: &str,
        ca_file: Option<&std::path::Path>,
        key_prefix: &str,
        sink: Arc<dyn Sink>,
        shutdown: Shutdown,
    ) -> anyhow::Result<(Self, Vec<tokio::task::JoinHandle<()>>)> {
        use anyhow::Context;
        let ca = match ca_file {
            Some(ca) => Some(
                std::fs::read(ca)
                    .with_context(|| format!("redis_ca_file: cannot read {}", ca.display()))?,
            ),
            None => None,
        };
        let prefix = key_prefix.to_owned();
        let subscribed = Arc::new(AtomicBool::new(false));
        let store = |conn, sites_tx| Self {
            conn: Arc::new(std::sync::RwLock::new(conn)),
            sites_tx,
            prefix: prefix.clone(),
            scripts: Arc::new(Scripts::new()),
            subscribed: subscribed.clone(),
            epoch: Default::default(),
        };
        if let Some(seeds) = connect::cluster_seeds(url)? {
            let conn = Conn::Cluster(connect::cluster(&seeds, ca.as_deref()).await?);
            let (sites_tx, sites_rx) = tokio::sync::watch::channel(Vec::new());
            let base = prefix.clone();
            let task = tokio::spawn(subscriber::cluster_loop(
                seeds,
                ca,
                move |site| SiteKeys::new(&base, site).channel(),
                sites_rx,
                sink,
                subscribed.clone(),
                shutdown,
            ));
            return Ok((store(conn, Some(sites_tx)), vec![task]));
        }
        let mut sentinel = match connect::SentinelUrl::parse(url)? {
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
        let this = store(Conn::Single(connect::manager(&client).await?), None);
        // One pattern for every site's channel, so sites added at run time are heard at once.
        let pattern = keys::channel_pattern(&prefix);
        let (client_tx, client_rx) = tokio::sync::watch::channel(client);
        let mut tasks = vec![tokio::spawn(subscriber::plain_loop(
            client_rx,
            pattern,
            sink,
            subscribed,
            shutdown.clone(),
        ))];
        if let Some(sentinel) = sentinel {
            tasks.push(tokio::spawn(connect::follow_primary(
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
        let _: i64 = self
            .scripts
            .set(&self.keys(site), agent, field, value)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
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

    /// The keys of a site.
    fn keys(&self, site: &SiteId) -> SiteKeys {
        SiteKeys::new(&self.prefix, site)
    }

    /// The connection state calls go through, timed.
    fn conn(&self) -> connect::Timed {
        connect::Timed(self.connection())
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
        let keys = self.keys(site);
        let (h, chats, since): (
            HashMap<String, String>,
            Vec<String>,
            HashMap<String, Millis>,
        ) = redis::pipe()
            .hgetall(keys.agent(id))
            .smembers(keys.chats(id))
            .hgetall(keys.since(id))
            .query_async(&mut self.conn())
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        Ok(Some(parse_agent(id, &h, chats, &since)?))
    }
}
