//! Redis Cluster: `redis+cluster://h1:p1,h2:p2,…` names some of the cluster's nodes (the seed
//! list; the client learns the rest and follows slot moves and failovers).
//!
//! Every key of a site carries the `{site}` hash tag, so a site's keys and scripts live in one
//! slot; the site's channel (`<prefix>:{site}:ev`) is a sharded channel in that slot, written with
//! `SPUBLISH` and read with `SSUBSCRIBE`, so a site's traffic stays on its shard. Sharded pub/sub
//! has no pattern form: the subscriber follows the directory's sites one by one.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind};

use crate::envelope::{Envelope, Sink};
use crate::model::SiteId;
use crate::shutdown::Shutdown;

/// `redis+cluster://[:password@]host:port[,host:port…][/]` (`rediss+cluster://` for TLS): the
/// seed nodes' URLs, or None for another kind of URL.
pub(super) fn seeds(url: &str) -> anyhow::Result<Option<Vec<String>>> {
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

/// A client for the seed nodes; `ca` (PEM) verifies the nodes' certificates over TLS. With
/// `push`, it speaks RESP3 and hands what the servers push (sharded messages, dropped
/// connections) to that link.
fn client(
    seeds: &[String],
    ca: Option<&[u8]>,
    push: Option<Arc<Link>>,
) -> anyhow::Result<redis::cluster::ClusterClient> {
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
    if let Some(push) = push {
        b = b
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push);
    }
    b.build()
        .map_err(|e| anyhow::anyhow!("redis+cluster URL: {e}"))
}

/// Connects for commands.
pub(super) async fn connect(
    seeds: &[String],
    ca: Option<&[u8]>,
) -> anyhow::Result<ClusterConnection> {
    use anyhow::Context;
    let client = client(seeds, ca, None)?;
    tokio::time::timeout(Duration::from_secs(10), client.get_async_connection())
        .await
        .context("timed out connecting to the Redis Cluster")?
        .context("cannot connect to the Redis Cluster")
}

/// What the subscriber shares with the client's push handler.
struct Link {
    sink: Arc<dyn Sink>,
    /// Connections to nodes that dropped so far. After a drop the client subscribes again by
    /// itself, but what was published meanwhile is lost: the subscriber confirms every channel
    /// and then every session backfills.
    drops: std::sync::atomic::AtomicU64,
    /// Wakes the subscriber after a drop.
    dropped: tokio::sync::Notify,
}

impl redis::aio::AsyncPushSender for Link {
    /// Called by the client's connection tasks: never blocks (the sink only queues).
    fn send(&self, info: PushInfo) -> Result<(), redis::aio::SendError> {
        match info.kind {
            PushKind::SMessage => {
                let Some(redis::Value::BulkString(payload)) = info.data.get(1) else {
                    return Ok(());
                };
                match serde_json::from_slice::<Envelope>(payload) {
                    Ok(env) => self.sink.deliver(env),
                    Err(e) => tracing::warn!(cause = %e, "undecodable envelope"),
                }
            }
            // A node's connection dropped, or the node gave the slot away (a failover).
            PushKind::Disconnection | PushKind::SUnsubscribe => {
                self.drops.fetch_add(1, Ordering::AcqRel);
                self.dropped.notify_one();
            }
            _ => {}
        }
        Ok(())
    }
}

/// How long the subscriber waits before trying a failed subscription again.
const RETRY: Duration = Duration::from_millis(250);

/// Subscribes to each site's sharded channel as the directory names them (`sites_rx`), and keeps
/// at it until shutdown; messages go straight from the client's push handler to the sink.
/// `subscribed` is true while every site's channel is confirmed since the last dropped
/// connection (readiness).
pub(super) async fn subscribe_loop(
    seeds: Vec<String>,
    ca: Option<Vec<u8>>,
    channel: impl Fn(&SiteId) -> String + Send + 'static,
    mut sites_rx: tokio::sync::watch::Receiver<Vec<SiteId>>,
    sink: Arc<dyn Sink>,
    subscribed: Arc<AtomicBool>,
    mut shutdown: Shutdown,
) {
    let link = Arc::new(Link {
        sink,
        drops: Default::default(),
        dropped: tokio::sync::Notify::new(),
    });
    let mut backoff = RETRY;
    let mut conn = loop {
        let attempt = async {
            let client =
                client(&seeds, ca.as_deref(), Some(link.clone())).map_err(|e| e.to_string())?;
            client
                .get_async_connection()
                .await
                .map_err(|e| e.to_string())
        };
        tokio::select! {
            r = attempt => match r {
                Ok(c) => break c,
                Err(e) => tracing::warn!(cause = %e, "redis cluster subscriber cannot connect; retrying"),
            },
            _ = shutdown.recv() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.recv() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    };
    // Channels confirmed, and the drop count when they last all were.
    let mut have: HashSet<String> = HashSet::new();
    let mut confirmed_at = 0;
    loop {
        let drops = link.drops.load(Ordering::Acquire);
        let mut before = HashSet::new();
        if drops != confirmed_at {
            // Confirm them all again: each goes to whichever node holds its slot now.
            subscribed.store(false, Ordering::Release);
            before = std::mem::take(&mut have);
        }
        let want: HashSet<String> = sites_rx.borrow_and_update().iter().map(&channel).collect();
        // A site removed meanwhile is still let go (the client resubscribes what it had).
        have.extend(before.into_iter().filter(|ch| !want.contains(ch)));
        let mut complete = true;
        for ch in want.difference(&have).cloned().collect::<Vec<_>>() {
            match conn.ssubscribe(&ch).await {
                Ok(()) => {
                    have.insert(ch);
                }
                Err(e) => {
                    tracing::debug!(cause = %e, channel = %ch, "redis cluster subscribe failed; retrying");
                    complete = false;
                }
            }
        }
        for ch in have.difference(&want).cloned().collect::<Vec<_>>() {
            if conn.sunsubscribe(&ch).await.is_ok() {
                have.remove(&ch);
            }
        }
        let settled =
            link.drops.load(Ordering::Acquire) == drops && !sites_rx.has_changed().unwrap_or(false);
        if complete && settled {
            if drops != confirmed_at {
                tracing::info!("redis cluster subscription restored; sessions backfill");
                link.sink.resync();
                confirmed_at = drops;
            }
            subscribed.store(true, Ordering::Release);
        }
        let retry = async {
            if complete {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(RETRY).await
            }
        };
        tokio::select! {
            r = sites_rx.changed() => if r.is_err() { return },
            _ = link.dropped.notified() => {}
            _ = retry => {}
            _ = shutdown.recv() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cluster URLs name seed nodes (with the password each is reached with, over TLS with
    /// `rediss+`); other URLs are not theirs; a database number or no node is refused.
    #[test]
    fn cluster_urls() {
        assert_eq!(seeds("redis://h:6379/").unwrap(), None);
        assert_eq!(
            seeds("redis+cluster://:pw@h1:7000,h2:7001/")
                .unwrap()
                .unwrap(),
            ["redis://:pw@h1:7000/", "redis://:pw@h2:7001/"]
        );
        assert_eq!(
            seeds("rediss+cluster://h1:7000").unwrap().unwrap(),
            ["rediss://h1:7000/"]
        );
        assert!(seeds("redis+cluster://h1:7000/2").is_err());
        let e = seeds("redis+cluster://").unwrap_err();
        assert!(e.to_string().contains("at least one node"), "{e}");
    }
}
