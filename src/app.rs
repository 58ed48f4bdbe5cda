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
    /// Sessions close when it fires.
    pub shutdown: Shutdown,
}

/// Open connections per client IP; a guard gives its slot back on drop.
#[derive(Clone, Default)]
pub struct IpLimiter {
    counts: Arc<DashMap<IpAddr, usize>>,
}

pub struct IpGuard {
    counts: Arc<DashMap<IpAddr, usize>>,
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
            ip,
        })
    }
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        self.counts.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}
