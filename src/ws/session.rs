//! What the visitor and agent sockets share: the hello phase (deadline, shutdown, pings, three
//! strikes), the serving loop (client frames, hub pushes, heartbeats, the slow-consumer close,
//! shutdown), error frames, and reading a conversation's log a page at a time.
//!
//! `ws::visitor` and `ws::agent` supply only what differs: how a `hello` is checked, what a
//! client frame does, and what a hub push becomes on the wire.

use std::future::Future;

use serde::Serialize;
use tokio::sync::mpsc;

use super::{Connection, Incoming};
use crate::app::AppState;
use crate::engine::{Engine, EngineError};
use crate::hub::Push;
use crate::model::{ConvId, Event, SiteId};
use crate::protocol::{ClientId, ErrorCode, PAGE_EVENTS, close};
use crate::shutdown::Shutdown;
use crate::state::Span;

/// Failed `hello`s before the socket is closed (4001).
const HELLO_ATTEMPTS: u32 = 3;

/// `error`: the same shape on both sockets (the agent's may name a conversation).
#[derive(Serialize)]
#[serde(tag = "type", rename = "error")]
struct ErrorFrame<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a ClientId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation: Option<&'a ConvId>,
}

/// `pong`, on both sockets.
#[derive(Serialize)]
#[serde(tag = "type", rename = "pong")]
struct Pong {}

/// Sends an error frame. False when the socket is gone.
pub async fn send_error(
    conn: &mut Connection,
    e: &EngineError,
    client_id: Option<&ClientId>,
    conversation: Option<&ConvId>,
) -> bool {
    metrics::counter!(crate::observe::ERRORS, "code" => e.code.as_str()).increment(1);
    conn.send(&ErrorFrame {
        code: e.code,
        message: &e.message,
        client_id,
        conversation,
    })
    .await
}

/// What one frame of the hello phase came to.
pub enum Attempt<T> {
    /// A good `hello`: the session starts.
    Welcome(T),
    /// A `ping`: answered, not counted.
    Ping,
    /// Anything else: refused, and counted toward the close.
    Failed(EngineError),
}

/// Waits for a good `hello` within the timeout; `attempt` checks each text frame. Every frame
/// that is neither a `ping` nor a good `hello` counts, and the third closes the socket. None
/// when the socket ended first.
pub async fn hello_phase<T, F, Fut>(
    conn: &mut Connection,
    state: &AppState,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let mut shutdown = state.shutdown.clone();
    let deadline = tokio::time::sleep(state.engine.config().timing.hello_timeout());
    tokio::pin!(deadline);
    let mut attempts = 0;
    loop {
        tokio::select! {
            _ = &mut deadline => {
                conn.close(close::HELLO_TIMEOUT, "hello timeout").await;
                return None;
            }
            _ = shutdown.recv() => {
                conn.close(close::GOING_AWAY, "server shutting down").await;
                return None;
            }
            incoming = conn.next() => {
                let failure = match incoming {
                    Incoming::Text(text) => match Box::pin(attempt(text)).await {
                        Attempt::Welcome(done) => return Some(done),
                        Attempt::Ping => {
                            conn.send(&Pong {}).await;
                            continue;
                        }
                        Attempt::Failed(e) => e,
                    },
                    Incoming::Reject(code, msg, _) => EngineError::new(code, msg),
                    Incoming::Tick => {
                        if !conn.heartbeat().await {
                            return None;
                        }
                        continue;
                    }
                    Incoming::Gone => return None,
                };
                send_error(conn, &failure, None, None).await;
                attempts += 1;
                if attempts >= HELLO_ATTEMPTS {
                    conn.close(close::UNAUTHORIZED, "too many failed hellos").await;
                    return None;
                }
            }
        }
    }
}

/// A welcomed socket session: what its client frames and hub pushes do.
pub trait Session: Send {
    fn conn(&mut self) -> &mut Connection;
    /// One client frame. False when the socket is gone.
    fn handle(&mut self, text: String) -> impl Future<Output = bool> + Send;
    /// One push from the hub. False when the socket is gone.
    fn push(&mut self, push: Push) -> impl Future<Output = bool> + Send;
}

/// Serves a session until its socket ends, it falls too far behind (4008: the hub dropped its
/// queue), or the server shuts down (1001).
pub async fn serve<S: Session>(
    session: &mut S,
    mut rx: mpsc::Receiver<Push>,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            // In this order: frames the client already sent are handled before shutdown is
            // noticed, so a burst in flight at SIGTERM is answered, not dropped (the drain
            // time bounds it, and the rate limit bounds what a client can have in flight).
            biased;
            incoming = session.conn().next() => match incoming {
                Incoming::Text(text) => {
                    // Boxed: an idle session then holds no room for the largest handler's state.
                    if !Box::pin(session.handle(text)).await {
                        return;
                    }
                }
                Incoming::Reject(code, msg, client_id) => {
                    // Boxed like the handlers: its state would otherwise sit in every idle frame.
                    let e = EngineError::new(code, msg);
                    Box::pin(send_error(session.conn(), &e, client_id.as_deref(), None)).await;
                }
                Incoming::Tick => if !session.conn().heartbeat().await { return },
                Incoming::Gone => return,
            },
            push = rx.recv() => match push {
                Some(push) => {
                    if !Box::pin(session.push(push)).await {
                        return;
                    }
                }
                None => {
                    session.conn().close(close::SLOW_CONSUMER, "too far behind; reconnect and resume").await;
                    return;
                }
            },
            _ = shutdown.recv() => {
                session.conn().close(close::GOING_AWAY, "server shutting down").await;
                return;
            }
        }
    }
}

/// The next page of a conversation's log after `after`, oldest first, and whether more may
/// follow. Backfills read this way, so a long conversation never sits in memory whole.
pub async fn page_after(
    engine: &Engine,
    site: &SiteId,
    conv: &ConvId,
    after: u64,
) -> Result<(Vec<Event>, bool), EngineError> {
    let events = engine
        .transcript(site, conv, Span::after(after, PAGE_EVENTS))
        .await?;
    let full = events.len() == PAGE_EVENTS;
    Ok((events, full))
}
