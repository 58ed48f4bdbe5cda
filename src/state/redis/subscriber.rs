//! The subscriber: every site's envelopes, from every node, to this node's delivery sink. On
//! one server or Sentinel, one pattern subscription hears every site (`plain_loop`); on a
//! cluster, each site's sharded channel is subscribed as the directory names the sites
//! (`cluster_loop`): every key of a site carries the `{site}` hash tag, so its channel
//! (`<prefix>:{site}:ev`) lives in the site's slot, written with `SPUBLISH` and read with
//! `SSUBSCRIBE`, and a site's traffic stays on its shard. Sharded pub/sub has no pattern form.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::{PushInfo, PushKind};

use super::connect::cluster_builder;
use crate::envelope::{Envelope, Sink};
use crate::model::SiteId;
use crate::shutdown::Shutdown;

/// Keeps one subscription to every site's channel, re-establishing it with backoff. After a
/// reconnect every session backfills, since anything published meanwhile was lost.
pub(super) async fn plain_loop(
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
pub(super) async fn cluster_loop(
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
            let client = cluster_builder(&seeds, ca.as_deref())
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(link.clone())
                .build()
                .map_err(|e| e.to_string())?;
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
