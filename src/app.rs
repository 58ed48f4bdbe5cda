//! The application state every HTTP and WebSocket handler reaches, and the per-IP connection
//! count that admits sockets. Its own module so that `http` and `ws` both depend on it and
//! never on each other.

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;

use crate::engine::Engine;
use crate::shutdown::Shutdown;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Per-IP connection counts for the socket limit.
    pub ip_limiter: IpLimiter,
    /// TCP connections in all and per peer address (`listener`).
    pub admission: crate::listener::Admission,
    /// Sessions close when it fires.
    pub shutdown: Shutdown,
    /// Turns to read an uploaded file: each holds up to `attachments.max_bytes` in memory, so
    /// this bounds what a burst of uploads can take on this server.
    pub uploads: UploadTurns,
    /// Visitors' countries (`geo`).
    pub geo: std::sync::Arc<crate::geo::Geo>,
}

/// Files read at once per server (8 × 10 MiB with the default `max_bytes`).
pub const UPLOADS_AT_ONCE: usize = 8;
/// Of those, at most this many for one site, and one for one sender: a few clients cannot
/// take every turn of the server.
pub const UPLOADS_PER_SITE: usize = 4;
pub const UPLOADS_PER_SENDER: usize = 1;

/// The turns to read uploaded files: in all (waited for), per site and per sender (refused at
/// once when taken: the same visitor has no reason to send two files at the same moment).
#[derive(Clone)]
pub struct UploadTurns {
    all: Arc<tokio::sync::Semaphore>,
    held: Arc<DashMap<String, usize>>,
}

/// A taken turn; its places are given back on drop.
pub struct UploadTurn {
    _all: tokio::sync::OwnedSemaphorePermit,
    held: Arc<DashMap<String, usize>>,
    keys: [String; 2],
}

impl Default for UploadTurns {
    fn default() -> Self {
        Self {
            all: Arc::new(tokio::sync::Semaphore::new(UPLOADS_AT_ONCE)),
            held: Arc::default(),
        }
    }
}

impl UploadTurns {
    /// A turn for `sender` of `site`: None at once when the site or sender holds its share,
    /// or when no turn of the server frees within `wait`.
    pub async fn take(
        &self,
        site: &str,
        sender: &str,
        wait: std::time::Duration,
    ) -> Option<UploadTurn> {
        let keys = [format!("s:{site}"), format!("u:{site}:{sender}")];
        for (key, most) in keys.iter().zip([UPLOADS_PER_SITE, UPLOADS_PER_SENDER]) {
            let mut n = self.held.entry(key.clone()).or_insert(0);
            if *n >= most {
                drop(n);
                // Back out what this call counted.
                for k in keys.iter().take_while(|k| *k != key) {
                    release(&self.held, k);
                }
                self.held.remove_if(key, |_, n| *n == 0);
                return None;
            }
            *n += 1;
        }
        let permit = tokio::time::timeout(wait, self.all.clone().acquire_owned()).await;
        match permit {
            Ok(Ok(p)) => Some(UploadTurn {
                _all: p,
                held: self.held.clone(),
                keys,
            }),
            _ => {
                for k in &keys {
                    release(&self.held, k);
                }
                None
            }
        }
    }
}

fn release(held: &DashMap<String, usize>, key: &str) {
    held.remove_if_mut(key, |_, n| {
        *n -= 1;
        *n == 0
    });
}

impl Drop for UploadTurn {
    fn drop(&mut self) {
        for k in &self.keys {
            release(&self.held, k);
        }
    }
}

/// Open connections per client IP; a guard gives its slot back on drop. Every WebSocket session
/// holds one for its whole life, so the map is empty exactly when no session runs: shutdown
/// waits for that (`wait_idle`) before it closes the state backend.
#[derive(Clone, Default)]
pub struct IpLimiter {
    /// One allocation for both: a guard, kept by every idle socket, holds one pointer.
    shared: Arc<IpCounts>,
}

#[derive(Default)]
struct IpCounts {
    counts: DashMap<IpAddr, usize>,
    /// Woken when the last connection of the node ends.
    idle: tokio::sync::Notify,
}

pub struct IpGuard {
    shared: Arc<IpCounts>,
    ip: IpAddr,
}

impl IpLimiter {
    pub fn acquire(&self, ip: IpAddr, limit: usize) -> Option<IpGuard> {
        let mut n = self.shared.counts.entry(ip).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        drop(n);
        Some(IpGuard {
            shared: self.shared.clone(),
            ip,
        })
    }

    /// Waits until no connection is open, or `limit` passes; true when none is.
    pub async fn wait_idle(&self, limit: std::time::Duration) -> bool {
        let waiting = async {
            loop {
                let idle = self.shared.idle.notified();
                tokio::pin!(idle);
                // Registered before the check, so a release in between is not missed.
                idle.as_mut().enable();
                if self.shared.counts.is_empty() {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(limit, waiting).await.is_ok()
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.shared.counts.iter().map(|e| *e.value()).sum()
    }
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.counts.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
        if shared.counts.is_empty() {
            shared.idle.notify_waiters();
        }
    }
}
