//! Connecting to Redis: one server (`redis://`, `rediss://`), the primary that Sentinel names
//! (`redis+sentinel://`, followed across failovers), or a cluster (`redis+cluster://`, seed
//! nodes; the client learns the rest and follows slot moves and failovers). `Conn` is the
//! multiplexed handle commands go through; `Timed` records each round trip.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;

use crate::shutdown::Shutdown;

/// A connection manager to a client's server, with bounded connect and response times.
pub(super) async fn manager(client: &redis::Client) -> anyhow::Result<ConnectionManager> {
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
pub(super) struct SentinelUrl {
    sentinels: Vec<String>,
    service: String,
    password: Option<String>,
    db: i64,
    tls: bool,
}

impl SentinelUrl {
    pub(super) fn parse(url: &str) -> anyhow::Result<Option<Self>> {
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
    pub(super) fn connect(self, ca: Option<Vec<u8>>) -> anyhow::Result<Discovery> {
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
pub(super) struct PlainDiscovery {
    sentinel: redis::sentinel::Sentinel,
    service: String,
    node: redis::sentinel::SentinelNodeConnectionInfo,
}

/// Asks the Sentinels which server is the primary now.
pub(super) enum Discovery {
    /// Boxed: the Sentinel client is large, and a discovery lives for the node's life.
    Plain(Box<PlainDiscovery>),
    /// Over TLS: the client redis-rs builds with certificates for both hops. It asks
    /// synchronously, so on a blocking thread (twice a second at most).
    Tls(Arc<std::sync::Mutex<redis::sentinel::SentinelClient>>),
}

impl Discovery {
    /// A client for the current primary (the Sentinel's answer, checked with the server).
    pub(super) async fn primary(&mut self) -> redis::RedisResult<redis::Client> {
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
pub(super) async fn follow_primary(
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

/// Whether a Redis URL is one Switchboard can connect with (checked with the settings, before
/// anything connects): a Sentinel or cluster URL as those parse it, otherwise one the Redis
/// client takes (`redis://`, `rediss://`, `redis+unix://`, `unix://`).
pub fn check_url(url: &str) -> anyhow::Result<()> {
    if SentinelUrl::parse(url)?.is_some() || cluster_seeds(url)?.is_some() {
        return Ok(());
    }
    redis::IntoConnectionInfo::into_connection_info(url)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// `redis+cluster://[:password@]host:port[,host:port…][/]` (`rediss+cluster://` for TLS): the
/// seed nodes' URLs, or None for another kind of URL.
pub(super) fn cluster_seeds(url: &str) -> anyhow::Result<Option<Vec<String>>> {
    let (rest, scheme) = match (
        url.strip_prefix("redis+cluster://"),
        url.strip_prefix("rediss+cluster://"),
    ) {
        (Some(rest), _) => (rest, "redis"),
        (_, Some(rest)) => (rest, "rediss"),
        _ => return Ok(None),
    };
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let hosts = hosts.trim_end_matches('/');
    if hosts.contains('/') {
        anyhow::bail!("redis+cluster URL: a cluster has no database number");
    }
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("{scheme}://{auth}{h}/"))
        .collect();
    if nodes.is_empty() {
        anyhow::bail!("redis+cluster URL: at least one node, e.g. redis+cluster://h1:6379,h2:6379");
    }
    Ok(Some(nodes))
}

/// A client builder for the seed nodes; `ca` (PEM) verifies the nodes' certificates over TLS.
/// The subscriber adds its push handler to it (`subscriber::cluster_loop`).
pub(super) fn cluster_builder(seeds: &[String], ca: Option<&[u8]>) -> ClusterClientBuilder {
    let mut b = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
        .connection_timeout(Duration::from_secs(5))
        .response_timeout(Duration::from_secs(5))
        // A failover takes the cluster about its node timeout: retry across it, not forever.
        .retries(4);
    if let Some(root) = ca {
        b = b.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root.to_vec()),
        });
    }
    b
}

/// Connects for commands.
pub(super) async fn cluster(
    seeds: &[String],
    ca: Option<&[u8]>,
) -> anyhow::Result<ClusterConnection> {
    use anyhow::Context;
    let client = cluster_builder(seeds, ca)
        .build()
        .map_err(|e| anyhow::anyhow!("redis+cluster URL: {e}"))?;
    tokio::time::timeout(Duration::from_secs(10), client.get_async_connection())
        .await
        .context("timed out connecting to the Redis Cluster")?
        .context("cannot connect to the Redis Cluster")
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
pub(super) struct Timed(pub(super) Conn);

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
    }

    /// Cluster URLs name seed nodes (with the password each is reached with, over TLS with
    /// `rediss+`); other URLs are not theirs; a database number or no node is refused.
    #[test]
    fn cluster_urls() {
        assert_eq!(cluster_seeds("redis://h:6379/").unwrap(), None);
        assert_eq!(
            cluster_seeds("redis+cluster://:pw@h1:7000,h2:7001/")
                .unwrap()
                .unwrap(),
            ["redis://:pw@h1:7000/", "redis://:pw@h2:7001/"]
        );
        assert_eq!(
            cluster_seeds("rediss+cluster://h1:7000").unwrap().unwrap(),
            ["rediss://h1:7000/"]
        );
        assert!(cluster_seeds("redis+cluster://h1:7000/2").is_err());
        let e = cluster_seeds("redis+cluster://").unwrap_err();
        assert!(e.to_string().contains("at least one node"), "{e}");
    }
}
