//! WebSocket surfaces: `/v1/visitor` and `/v1/agent`.
//!
//! Upgrade handlers only check what must be checked before the upgrade (site, Origin, per-IP
//! limit) and hand the socket to a session task (`visitor::run`, `agent::run`), which share the
//! hello phase and serving loop of `session`. `Connection` wraps the socket with what both need:
//! frame and rate limits, heartbeats, close frames, JSON out. Its `next()` sends nothing until
//! the socket ends, so selecting on it is cancel-safe.

pub mod agent;
mod session;
pub mod visitor;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, Interval};
use tracing::Instrument;

use crate::app::{AppState, IpGuard};
use crate::config::Limits;
use crate::listener::Slot;
use crate::model::{AgentId, SiteId};
use crate::protocol::{ClientId, ErrorCode};

/// Applies the configured buffer and frame limits to an upgrade: small buffers keep idle
/// connections cheap (tungstenite's defaults would allocate 128 KiB each).
fn configure(ws: WebSocketUpgrade, limits: &Limits) -> WebSocketUpgrade {
    ws.read_buffer_size(limits.ws_read_buffer)
        .write_buffer_size(limits.ws_write_buffer)
        // A bound, not an allocation: room for the largest frame the server sends (a transcript
        // page, with what the buffer may already hold); a bigger one would fail the socket.
        .max_write_buffer_size(
            limits.ws_write_buffer.max(limits.hard_frame_bytes) * 2
                + 2 * crate::protocol::PAGE_BYTES,
        )
        .max_message_size(limits.hard_frame_bytes)
        .max_frame_size(limits.hard_frame_bytes)
}

/// Why an upgrade was refused: an HTTP answer with the body every REST error has,
/// `{"error": {"code", "message"}}` (docs/protocol.md lists these).
#[derive(Debug)]
pub enum Refusal {
    UnknownSite,
    ForbiddenOrigin,
    TooManyConnections,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::UnknownSite => (StatusCode::NOT_FOUND, "unknown_site", "no such site"),
            Self::ForbiddenOrigin => (
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                "this origin may not open visitor sockets for the site",
            ),
            Self::TooManyConnections => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                "too many connections from this address",
            ),
        };
        let body = crate::request::error_body(code, message, None);
        (status, axum::Json(body)).into_response()
    }
}

/// The WebSocket surfaces' routes; `server` merges them with the REST ones.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/visitor", get(visitor_upgrade))
        .route("/v1/agent", get(agent_upgrade))
}

fn acquire_ip(state: &AppState, addr: SocketAddr) -> Result<IpGuard, Refusal> {
    state
        .ip_limiter
        .acquire(addr.ip(), state.engine.config().limits.connections_per_ip)
        .ok_or(Refusal::TooManyConnections)
}

#[derive(Deserialize)]
pub struct VisitorQuery {
    site: Option<String>,
}

/// `GET /v1/visitor?site=<id>`: checks the site and the page's Origin, then upgrades.
pub async fn visitor_upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    slot: Option<Extension<Slot>>,
    Query(q): Query<VisitorQuery>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let peer = addr;
    let addr = crate::request::client_addr(&state.engine.config(), addr, &headers);
    let site_id = SiteId(q.site.unwrap_or_default());
    let site = state
        .engine
        .site(&site_id)
        .map_err(|_| Refusal::UnknownSite)?;
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("");
    if !site.allows_origin(origin) {
        tracing::info!(site = %site_id, origin, "visitor socket refused: origin not allowed");
        return Err(Refusal::ForbiddenOrigin);
    }
    let guard = acquire_ip(&state, addr)?;
    let client = crate::model::VisitorClient {
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        country: state
            .geo
            .country(&state.engine.config(), peer, addr.ip(), &headers),
    };
    let limits = state.engine.config().limits.clone();
    Ok(configure(ws, &limits).on_upgrade(move |socket| {
        // Built outside the async block so the socket and state are not kept twice in it.
        let conn = Connection::new(socket, &state);
        let session = visitor::run(conn, state, site_id, client, addr.ip());
        async move {
            metrics::gauge!(crate::observe::CONNECTIONS, "kind" => "visitor").increment(1.0);
            session.await;
            metrics::gauge!(crate::observe::CONNECTIONS, "kind" => "visitor").decrement(1.0);
            drop((guard, slot));
        }
        .instrument(connection_span("visitor", addr))
    }))
}

/// `GET /v1/agent`: authentication happens in the first message (browsers cannot set headers
/// on WebSockets, and query strings end up in logs).
pub async fn agent_upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    slot: Option<Extension<Slot>>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let peer = addr;
    let addr = crate::request::client_addr(&state.engine.config(), peer, &headers);
    let guard = acquire_ip(&state, addr)?;
    let signed_in = cookie_session(&state, peer, &headers).await;
    let limits = state.engine.config().limits.clone();
    Ok(configure(ws, &limits).on_upgrade(move |socket| {
        async move {
            let conn = Connection::new(socket, &state);
            metrics::gauge!(crate::observe::CONNECTIONS, "kind" => "agent").increment(1.0);
            agent::run(conn, state, signed_in).await;
            metrics::gauge!(crate::observe::CONNECTIONS, "kind" => "agent").decrement(1.0);
            drop((guard, slot));
        }
        .instrument(connection_span("agent", addr))
    }))
}

/// The span every log line of one socket carries: a connection id unique in this process, so
/// the lines of one connection can be picked out of many, and the peer's address.
fn connection_span(kind: &'static str, peer: SocketAddr) -> tracing::Span {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info_span!("connection", id, kind, peer = %peer)
}

/// The console session the upgrade's cookie names, if any. Only from a page of this server:
/// a cookie would ride along on a socket another site's page opens, so the Origin must be
/// this host.
async fn cookie_session(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Option<(SiteId, AgentId)> {
    let cookie = crate::request::cookie(headers, crate::request::SESSION_COOKIE)?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok())?;
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())?;
    // Scheme, host and port: behind TLS (as a trusted proxy says), a plain-http page of the
    // same host is not this console.
    let https = crate::request::forwarded_https(&state.engine.config(), peer, headers);
    let same =
        origin == format!("https://{host}") || (!https && origin == format!("http://{host}"));
    if !same {
        tracing::info!(
            origin,
            "agent socket: session cookie from a foreign origin ignored"
        );
        return None;
    }
    let hash = crate::auth::token_hash(cookie);
    match state
        .engine
        .directory()
        .session(&hash, state.engine.now())
        .await
    {
        Ok(s) => s.map(|s| (s.site, s.agent)),
        Err(e) => {
            tracing::warn!(cause = %e, "cannot read console sessions");
            None
        }
    }
}

/// Close codes of RFC 6455 for frames the transport refuses.
const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_INVALID_DATA: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;
/// How long a closing socket waits for the peer's side of the handshake.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// The `client_id` of a frame, if it has a readable one.
fn client_id_of(text: &str) -> Option<Box<ClientId>> {
    #[derive(Deserialize)]
    struct Ids {
        client_id: Option<ClientId>,
    }
    serde_json::from_str::<Ids>(text)
        .ok()?
        .client_id
        .map(Box::new)
}

/// What the next read produced.
pub enum Incoming {
    /// A text frame within the limits.
    Text(String),
    /// A frame we refuse; tell the client (naming the frame's `client_id` when it matters),
    /// keep the connection. Boxed: this value sits in every idle session's frame.
    Reject(ErrorCode, &'static str, Option<Box<ClientId>>),
    /// Heartbeat time: call `Connection::heartbeat`.
    Tick,
    /// The peer closed or the socket failed.
    Gone,
}

/// What one read produced: something for the session, or the end of the socket (a read error,
/// or the client's Close with `None`), which `next` answers before saying `Gone`.
enum Read {
    Frame(Incoming),
    End(Option<axum::Error>),
}

/// A token bucket: `burst` frames at once, refilled at `rate` per second.
struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A socket with the limits every session applies.
pub struct Connection {
    socket: WebSocket,
    max_frame: usize,
    rate: RateLimit,
    heartbeat: Interval,
    heartbeat_every: Duration,
    last_heard: Instant,
}

impl Connection {
    fn new(socket: WebSocket, state: &AppState) -> Self {
        let config = state.engine.config();
        let every = config.timing.heartbeat();
        let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            socket,
            max_frame: config.limits.max_frame_bytes,
            rate: RateLimit {
                rate: config.limits.messages_per_second,
                burst: config.limits.message_burst,
                tokens: config.limits.message_burst,
                at: Instant::now(),
            },
            heartbeat,
            heartbeat_every: every,
            last_heard: Instant::now(),
        }
    }

    /// Waits for the next frame or heartbeat tick. Cancel-safe.
    ///
    /// A frame that ends the socket gets its close frame before `Gone`: the answer to the
    /// client's Close, 1009 for a frame over `limits.hard_frame_bytes`, 1007 for invalid UTF-8,
    /// 1002 for a protocol violation. That ending runs boxed, after the read: this future lives
    /// in every idle session, and the ending's state would otherwise sit in it.
    pub async fn next(&mut self) -> Incoming {
        let end = match self.read().await {
            Read::Frame(incoming) => return incoming,
            Read::End(end) => end,
        };
        match end {
            Some(err) => Box::pin(self.failed(err)).await,
            None => Box::pin(self.finish()).await,
        }
        Incoming::Gone
    }

    async fn read(&mut self) -> Read {
        loop {
            tokio::select! {
                msg = self.socket.recv() => {
                    let msg = match msg {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => return Read::End(Some(e)),
                        None => return Read::Frame(Incoming::Gone),
                    };
                    self.last_heard = Instant::now();
                    let incoming = match msg {
                        Message::Text(t) => {
                            if t.len() > self.max_frame {
                                Incoming::Reject(ErrorCode::FrameTooLarge, "frame larger than limits.max_frame_bytes", None)
                            } else if !self.rate.allow() {
                                // Named, so the client knows which message to send again.
                                Incoming::Reject(ErrorCode::RateLimited, "too many messages; slow down", client_id_of(t.as_str()))
                            } else {
                                Incoming::Text(t.as_str().to_owned())
                            }
                        }
                        Message::Binary(_) => {
                            Incoming::Reject(ErrorCode::BinaryNotSupported, "send JSON text frames", None)
                        }
                        Message::Ping(_) | Message::Pong(_) => continue,
                        Message::Close(_) => return Read::End(None),
                    };
                    return Read::Frame(incoming);
                }
                _ = self.heartbeat.tick() => return Read::Frame(Incoming::Tick),
            }
        }
    }

    /// A read failed: say why in a close frame when the peer can still hear it.
    async fn failed(&mut self, err: axum::Error) {
        use tungstenite::Error as WsError;
        let code = match err.into_inner().downcast::<WsError>().map(|e| *e) {
            // tungstenite refuses an oversized frame by its header, before buffering it.
            Ok(WsError::Capacity(_)) => {
                Some((CLOSE_TOO_BIG, "frame larger than limits.hard_frame_bytes"))
            }
            Ok(WsError::Utf8(_)) => Some((CLOSE_INVALID_DATA, "text frame is not valid UTF-8")),
            Ok(WsError::Protocol(e)) => {
                tracing::debug!(cause = %e, "websocket protocol violation");
                Some((CLOSE_PROTOCOL, "websocket protocol violation"))
            }
            Ok(e) => {
                tracing::debug!(cause = %e, "socket read failed");
                None
            }
            Err(e) => {
                tracing::debug!(cause = %e, "socket read failed");
                None
            }
        };
        if let Some((code, reason)) = code {
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            if self.socket.send(frame).await.is_ok() {
                // The stream reads nothing more after an error, and closing the TCP socket
                // with the peer's unread bytes would reset it before it reads our frame: give
                // the peer a moment to read the close frame and hang up first.
                tokio::time::sleep(CLOSE_LINGER).await;
            }
        }
    }

    /// After a Close from either side: reads until the peer's closing handshake is done, which
    /// also sends tungstenite's answer to a client's Close (RFC 6455 §5.5.1). Bounded in time.
    async fn finish(&mut self) {
        let drain = async { while let Some(Ok(_)) = self.socket.recv().await {} };
        let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
    }

    /// Pings the peer, or closes when nothing was heard for three intervals. False when closed.
    pub async fn heartbeat(&mut self) -> bool {
        if self.last_heard.elapsed() > self.heartbeat_every * 3 {
            self.close(
                crate::protocol::close::HEARTBEAT_TIMEOUT,
                "heartbeat timeout",
            )
            .await;
            return false;
        }
        self.socket
            .send(Message::Ping(Default::default()))
            .await
            .is_ok()
    }

    /// Sends one JSON message. False when the socket is gone.
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> bool {
        match serde_json::to_string(msg) {
            Ok(s) => self.socket.send(Message::Text(s.into())).await.is_ok(),
            Err(e) => {
                tracing::error!(cause = %e, "unserializable message");
                true
            }
        }
    }

    /// Sends a close frame and waits (briefly) for the client's answer. Boxed inside, so the
    /// sessions that call it keep a small frame.
    pub async fn close(&mut self, code: u16, reason: &'static str) {
        Box::pin(async move {
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            if self.socket.send(frame).await.is_ok() {
                self.finish().await;
            }
        })
        .await
    }
}

/// How an incoming event relates to what a session already delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum Order {
    /// Already delivered (a duplicate from pub/sub or a backfill overlap).
    Seen,
    /// The very next one.
    Next,
    /// Events in between are missing: backfill from the log first.
    Gap,
}

pub fn order(last: u64, seq: u64) -> Order {
    if seq <= last {
        Order::Seen
    } else if seq == last + 1 {
        Order::Next
    } else {
        Order::Gap
    }
}
