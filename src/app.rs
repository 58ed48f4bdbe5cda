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
    pub uploads: Arc<tokio::sync::Semaphore>,
}

/// Files read at once per server (8 × 10 MiB with the default `max_bytes`).
pub const UPLOADS_AT_ONCE: usize = 8;

/// Open connections per client IP; a guard gives its slot back on drop. Every WebSocket session
/// holds one for its whole life, so the map is empty exactly when no session runs: shutdown
/// waits for that (`wait_idle`) before it closes the state backend.
#[derive(Clone, Default)]
pub struct IpLimiter {
    counts: Arc<DashMap<IpAddr, usize>>,
    /// Woken when the last connection of the node ends.
    idle: Arc<tokio::sync::Notify>,
}

pub struct IpGuard {
    counts: Arc<DashMap<IpAddr, usize>>,
    idle: Arc<tokio::sync::Notify>,
    ip: IpAddr,
}

impl IpLimiter {
    pub fn acquire(&self, ip: IpAddr, limit: usize) -> Option<IpGuard> {
        let mut n = self.counts.entry(ip).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        drop(n);
        Some(IpGuard {
            counts: self.counts.clone(),
            idle: self.idle.clone(),
            ip,
        })
    }

    /// Waits until no connection is open, or `limit` passes; true when none is.
    pub async fn wait_idle(&self, limit: std::time::Duration) -> bool {
        let waiting = async {
            loop {
                let idle = self.idle.notified();
                tokio::pin!(idle);
                // Registered before the check, so a release in between is not missed.
                idle.as_mut().enable();
                if self.counts.is_empty() {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(limit, waiting).await.is_ok()
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.counts.iter().map(|e| *e.value()).sum()
    }
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        self.counts.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
        if self.counts.is_empty() {
            self.idle.notify_waiters();
        }
    }
}
