//! Accepting connections. Every TCP connection is admitted against two caps before a byte of
//! it is read: connections in all (`limits.max_connections`) and per peer address
//! (`limits.connections_per_ip`; a trusted proxy's connections count only in all). Admitted
//! connections are served by hyper with a header deadline (`limits.header_timeout_secs`, which
//! also ends idle keep-alive connections); a WebSocket keeps its connection's slot for its
//! whole life.
//!
//! When the cap is full, a small reserve of connections is still served, by a router that
//! answers `/healthz` and `/readyz` only (everything else: 503 `too_many_connections`), so a
//! load balancer still sees the node. Past the reserve, or over the per-address cap, the
//! connection gets a fixed refusal written at once and is closed: nothing of it is read.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use dashmap::DashMap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tower_service::Service;

use crate::config::Network;
use crate::shutdown::Shutdown;

/// Connections beyond `max_connections` that are still served, for health checks only.
pub const RESERVE: usize = 32;

/// Descriptors kept for everything that is not a client connection (the database pool, Redis,
/// log files, webhook and mail connections, uploads).
const OTHER_DESCRIPTORS: usize = 256;

/// The counts behind both caps. Cheap to clone.
#[derive(Clone)]
pub struct Admission {
    shared: Arc<Counts>,
}

struct Counts {
    /// Connections open now, reserve included.
    total: AtomicUsize,
    /// Connections open now per peer address; an address leaves the map with its last one.
    per_ip: DashMap<IpAddr, usize>,
    /// `limits.max_connections`, lowered to what the descriptor limit allows.
    max: usize,
}

/// What becomes of a new connection.
pub enum Admit {
    /// Served in full.
    Serve(Slot),
    /// Over the cap, within the reserve: health checks only.
    Reserve(Slot),
    /// Refused at once with this answer.
    Refuse(Refused),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `limits.connections_per_ip` reached for the peer's address.
    PerAddress,
    /// `limits.max_connections` and the reserve are full.
    Full,
}

impl Refused {
    /// The whole HTTP answer, with the body every REST error has.
    fn response(self) -> Vec<u8> {
        let (status, extra, message) = match self {
            Self::PerAddress => (
                "429 Too Many Requests",
                "",
                "too many connections from this address",
            ),
            Self::Full => (
                "503 Service Unavailable",
                "retry-after: 5\r\n",
                "the server is at its connection limit",
            ),
        };
        let body = crate::request::error_body("too_many_connections", message, None);
        let body = serde_json::to_string(&body).unwrap_or_default();
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n\
             {extra}content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// One admitted connection's place in the counts, given back when the last clone goes.
/// The HTTP connection holds one; a WebSocket session it upgrades to takes another, so an
/// upgraded socket still counts.
#[derive(Clone)]
pub struct Slot {
    _held: Arc<SlotInner>,
}

struct SlotInner {
    shared: Arc<Counts>,
    /// The address counted, or none for a trusted proxy's connection.
    ip: Option<IpAddr>,
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        self.shared.total.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(crate::observe::HTTP_CONNECTIONS).decrement(1.0);
        if let Some(ip) = self.ip {
            self.shared.per_ip.remove_if_mut(&ip, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
    }
}

impl Admission {
    /// Caps at `max_connections`, or lower when the process may not open that many
    /// descriptors (the soft limit is raised to the hard one first).
    pub fn new(max_connections: usize) -> Self {
        let descriptors = raise_descriptor_limit();
        let fits = descriptors
            .saturating_sub(OTHER_DESCRIPTORS + RESERVE)
            .max(1);
        let max = if max_connections > fits {
            tracing::warn!(
                max_connections,
                descriptors,
                lowered_to = fits,
                "limits.max_connections does not fit the descriptor limit (LimitNOFILE / \
                 ulimit -n); lowered"
            );
            fits
        } else {
            max_connections
        };
        Self::fixed(max)
    }

    /// Caps at `max`, as it is (a small listener of its own, such as `metrics_listen`'s).
    pub fn fixed(max: usize) -> Self {
        Self {
            shared: Arc::new(Counts {
                total: AtomicUsize::new(0),
                per_ip: DashMap::new(),
                max,
            }),
        }
    }

    /// The cap in force.
    pub fn max(&self) -> usize {
        self.shared.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.shared.total.load(Ordering::Acquire)
    }

    /// Admits a connection from `peer`, or says why not. `per_ip` is 0 for no per-address
    /// cap; `trusted` peers (proxies) are not counted per address.
    pub fn admit(&self, peer: IpAddr, per_ip: usize, trusted: &[Network]) -> Admit {
        let counted = !trusted.iter().any(|n| n.contains(peer));
        let ip = peer.to_canonical();
        if counted {
            let mut n = self.shared.per_ip.entry(ip).or_insert(0);
            if per_ip > 0 && *n >= per_ip {
                drop(n);
                self.shared.per_ip.remove_if(&ip, |_, n| *n == 0);
                return Admit::Refuse(Refused::PerAddress);
            }
            *n += 1;
        }
        let before = self.shared.total.fetch_add(1, Ordering::AcqRel);
        metrics::gauge!(crate::observe::HTTP_CONNECTIONS).increment(1.0);
        // From here the slot owns both increments: dropping it gives them back.
        let slot = Slot {
            _held: Arc::new(SlotInner {
                shared: self.shared.clone(),
                ip: counted.then_some(ip),
            }),
        };
        if before < self.shared.max {
            Admit::Serve(slot)
        } else if before < self.shared.max + RESERVE {
            Admit::Reserve(slot)
        } else {
            Admit::Refuse(Refused::Full)
        }
    }
}

/// Raises the soft descriptor limit to the hard one; returns the limit in force.
fn raise_descriptor_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return usize::MAX;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

/// What `serve` needs besides the listener.
pub struct Serving {
    /// Every route, state applied.
    pub app: Router,
    /// What a reserve connection is served: health checks only.
    pub reserve: Router,
    pub admission: Admission,
    /// Limits and trusted proxies in force now (SIGHUP may change them).
    pub settings: Arc<dyn Fn() -> Arc<crate::config::Config> + Send + Sync>,
}

/// Accepts until shutdown, then lets every HTTP connection finish the request in hand and
/// waits for them (upgraded sockets are their sessions' to close).
pub async fn serve(listener: TcpListener, serving: Serving, mut shutdown: Shutdown) {
    let serving = Arc::new(serving);
    // Each connection task holds a sender; `recv` answers `None` once all have ended.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.recv() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (EMFILE) or a connection reset before accept: the
                // listener itself is fine. A pause stops a busy loop while descriptors run out.
                tracing::warn!(cause = %e, "accept failed");
                tokio::select! {
                    _ = shutdown.recv() => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
        };
        let config = (serving.settings)();
        let admit = serving.admission.admit(
            peer.ip(),
            config.limits.connections_per_ip,
            &config.trusted_proxies,
        );
        let (slot, app, reserve) = match admit {
            Admit::Serve(slot) => (slot, serving.app.clone(), false),
            Admit::Reserve(slot) => (slot, serving.reserve.clone(), true),
            Admit::Refuse(why) => {
                refuse(tcp, why);
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(cause = %e, "could not set TCP_NODELAY");
        }
        let header_timeout = config.limits.header_timeout();
        let shutdown = shutdown.clone();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            serve_connection(tcp, peer, app, slot, header_timeout, reserve, shutdown).await;
            drop(done_tx);
        });
    }
    drop(listener);
    drop(done_tx);
    let _ = done_rx.recv().await;
}

/// Writes the refusal without waiting (a fresh socket's buffer takes a few hundred bytes) and
/// closes the connection.
fn refuse(tcp: TcpStream, why: Refused) {
    metrics::counter!(crate::observe::CONNECTIONS_REFUSED, "reason" => match why {
        Refused::PerAddress => "per_address",
        Refused::Full => "full",
    })
    .increment(1);
    let _ = tcp.try_write(&why.response());
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    slot: Slot,
    header_timeout: Duration,
    reserve: bool,
    mut shutdown: Shutdown,
) {
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(slot.clone());
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(req).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(!reserve);
    let conn = builder
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(cause = %e, "connection ended with an error");
            }
        }
        _ = shutdown.recv() => {
            // No new request on this connection; the one in hand is answered.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
