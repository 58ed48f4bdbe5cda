//! A visitor's socket: `hello` → `welcome` and the missed events, then messages both ways.
//!
//! The session follows the visitor's current conversation. Every event is checked against the
//! last sequence number delivered: duplicates are dropped, gaps are filled from the log, so the
//! widget sees each stored event exactly once and in order.

use std::net::IpAddr;

use tokio::sync::mpsc;

use super::session::{self, Attempt, page_after, send_error};
use super::{Connection, Order, order};
use crate::app::AppState;
use crate::engine::{Engine, EngineError};
use crate::hub::{Push, Registration, Role};
use crate::model::{ConvId, ConvState, Event, SiteId, VisitorClient, VisitorProfile};
use crate::protocol::{
    ConvSummary, ErrorCode, ResumeFrom, VisitorIn, VisitorOut, classify_parse_error,
};
use crate::shutdown::Shutdown;

struct Session {
    /// Only the engine: the rest of the application state (limiters, shutdown) is the
    /// upgrade's business, and every byte here is part of every idle visitor's memory.
    engine: Engine,
    site: SiteId,
    profile: VisitorProfile,
    department: Option<crate::model::DeptId>,
    reg: Registration,
    /// The conversation followed and the last sequence number delivered from it.
    current: Option<(ConvId, u64)>,
    conn: Connection,
    /// The client's address (as a trusted proxy forwards it): mail is limited per address.
    ip: IpAddr,
}

/// What a successful `hello` establishes.
type Hello = (
    crate::engine::VisitorSession,
    Option<ResumeFrom>,
    Option<crate::model::DeptId>,
);

/// Waits for a valid `hello` (None when the socket ended first).
async fn hello_phase(
    conn: &mut Connection,
    state: &AppState,
    site: &SiteId,
    client: VisitorClient,
    ip: IpAddr,
) -> Option<Hello> {
    let client = &client;
    session::hello_phase(conn, state, |text| async move {
        match serde_json::from_str::<VisitorIn>(&text) {
            Ok(VisitorIn::Hello(h)) => match hello(state, site, *h, client, ip).await {
                Ok(done) => Attempt::Welcome(done),
                Err(e) => Attempt::Failed(e),
            },
            Ok(VisitorIn::Ping) => Attempt::Ping,
            Ok(_) => Attempt::Failed(EngineError::new(
                ErrorCode::HelloRequired,
                "send hello first",
            )),
            Err(e) => {
                let (code, msg) = classify_parse_error::<VisitorIn>(&e, &text);
                Attempt::Failed(EngineError::new(code, msg))
            }
        }
    })
    .await
}

/// Checks one `hello` and establishes the visitor.
async fn hello(
    state: &AppState,
    site: &SiteId,
    mut h: crate::protocol::VisitorHello,
    client: &VisitorClient,
    ip: IpAddr,
) -> Result<Hello, EngineError> {
    let resume = h.resume.take();
    let department = h.department.clone();
    // Refused here, not at the first message: the widget learns of a typo at once.
    if let Some(d) = &department
        && state
            .engine
            .site(site)
            .is_ok_and(|s| s.department(d).is_none())
    {
        return Err(EngineError::new(
            ErrorCode::UnknownDepartment,
            format!("no department {d}"),
        ));
    }
    let session = state
        .engine
        .visitor_hello(site, h, client.clone(), ip)
        .await?;
    Ok((session, resume, department))
}

/// Runs a visitor socket to its end.
///
/// Not an `async fn` on purpose: an async fn's parameters stay in its frame for its whole life,
/// and this frame lives as long as an idle socket. Here the long-lived future captures only the
/// boxed setup; the setup's memory is freed once the visitor is welcomed, and the serving loop
/// is a box holding just the `Session`.
pub fn run(
    conn: Connection,
    state: AppState,
    site: SiteId,
    client: VisitorClient,
    ip: IpAddr,
) -> impl std::future::Future<Output = ()> + Send {
    let setup = Box::pin(setup(conn, state, site, client, ip));
    async move {
        let Some((session, rx, shutdown)) = setup.await else {
            return;
        };
        // Only the ids needed after the socket ends come back out of the box: a `Session`
        // held in this frame would be part of every idle connection's memory.
        let left = Box::pin(session.serve(rx, shutdown)).await;
        if let Some(visitor) = left.visitor {
            // Boxed too: inline, its state would sit in this long-lived frame.
            Box::pin(
                left.engine
                    .visitor_disconnected(&left.site, &visitor, left.session),
            )
            .await;
        }
    }
}

/// `hello`, registration, `welcome` and the missed events: a session ready to serve.
async fn setup(
    mut conn: Connection,
    state: AppState,
    site: SiteId,
    client: VisitorClient,
    ip: IpAddr,
) -> Option<(Session, mpsc::Receiver<Push>, Shutdown)> {
    let (hello, resume, department) =
        Box::pin(hello_phase(&mut conn, &state, &site, client, ip)).await?;
    let (reg, rx) = state.engine.hub().register(Role::Visitor);
    let visitor = hello.id.clone();
    state
        .engine
        .visitor_connected(&site, &visitor, reg.id)
        .await;
    let heartbeat_secs = state.engine.config().timing.heartbeat_secs;
    let summary = hello.conversation.as_ref().map(ConvSummary::from);
    let departments = Box::pin(state.engine.departments_now(&site)).await;
    let available = state
        .engine
        .answerable(&site, department.as_ref(), &departments);
    let welcome = VisitorOut::Welcome {
        visitor_id: &visitor,
        token: &hello.token,
        conversation: summary,
        heartbeat_secs,
        available,
        departments: &departments,
    };
    // Before the welcome: a client that saw it knows its page view is being timed.
    state.engine.page_seen(&site, reg.id, &hello.profile);
    if !conn.send(&welcome).await {
        state
            .engine
            .visitor_disconnected(&site, &visitor, reg.id)
            .await;
        return None;
    }
    let mut session = Session {
        engine: state.engine.clone(),
        site,
        profile: hello.profile,
        department,
        reg,
        current: None,
        conn,
        ip,
    };
    if let Some(conv) = hello.conversation {
        // Follow first, then read the log: nothing published in between is lost.
        let after = match resume {
            Some(ResumeFrom {
                conversation,
                last_seq,
            }) if conversation == conv.id => last_seq,
            _ => 0,
        };
        Box::pin(session.switch_to(conv.id.clone(), after)).await;
        if conv.state == ConvState::Queued {
            Box::pin(session.send_position(&conv)).await;
        }
    }
    Some((session, rx, state.shutdown))
}

impl session::Session for Session {
    fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    async fn handle(&mut self, text: String) -> bool {
        self.on_frame(&text).await
    }

    async fn push(&mut self, push: Push) -> bool {
        self.on_push(push).await
    }
}

/// What is left of a session once its socket ended.
struct Left {
    engine: crate::engine::Engine,
    site: SiteId,
    visitor: Option<crate::model::VisitorId>,
    session: crate::hub::SessionId,
}

impl Session {
    /// Serves until the socket ends; stops following the conversation and says who left.
    async fn serve(mut self, rx: mpsc::Receiver<Push>, shutdown: Shutdown) -> Left {
        session::serve(&mut self, rx, shutdown).await;
        let engine = self.engine.clone();
        if let Some((conv, _)) = &self.current {
            engine.hub().unfollow(conv, self.reg.id);
        }
        Left {
            engine,
            site: self.site.clone(),
            visitor: self.profile.id.clone(),
            session: self.reg.id,
        }
    }

    /// One client message. False when the socket is gone.
    async fn on_frame(&mut self, text: &str) -> bool {
        let msg = match serde_json::from_str::<VisitorIn>(text) {
            Ok(m) => m,
            Err(e) => {
                let (code, msg) = classify_parse_error::<VisitorIn>(&e, text);
                let e = EngineError::new(code, msg);
                send_error(&mut self.conn, &e, None, None).await;
                return true;
            }
        };
        let engine = self.engine.clone();
        match msg {
            VisitorIn::Hello(_) => {
                let e = EngineError::new(ErrorCode::AlreadyAuthenticated, "already said hello");
                send_error(&mut self.conn, &e, None, None).await;
            }
            VisitorIn::Ping => return self.conn.send(&VisitorOut::Pong).await,
            VisitorIn::Page(page) => {
                if let Err(e) = engine
                    .visitor_page(&self.site, &mut self.profile, page.url, page.title)
                    .await
                {
                    send_error(&mut self.conn, &e, None, None).await;
                }
                engine.page_seen(&self.site, self.reg.id, &self.profile);
            }
            VisitorIn::Message {
                client_id,
                text,
                trigger,
            } => {
                let text = match engine.message_text(text) {
                    Ok(t) => t,
                    Err(e) => {
                        send_error(&mut self.conn, &e, Some(&client_id), None).await;
                        return true;
                    }
                };
                match engine
                    .visitor_message(
                        &self.site,
                        &self.profile,
                        crate::engine::Route {
                            department: self.department.as_ref(),
                            trigger: trigger.as_deref(),
                        },
                        self.current.as_ref().map(|(c, _)| c),
                        client_id.clone(),
                        text,
                    )
                    .await
                {
                    Ok(ack) => {
                        if self.current.as_ref().is_none_or(|(c, _)| c != &ack.conv) {
                            self.switch_to(ack.conv.clone(), 0).await;
                        }
                        return self
                            .conn
                            .send(&VisitorOut::Ack {
                                client_id: &client_id,
                                conversation: &ack.conv,
                                seq: ack.seq,
                            })
                            .await;
                    }
                    Err(e) => {
                        send_error(&mut self.conn, &e, Some(&client_id), None).await;
                    }
                }
            }
            VisitorIn::Typing { on, text } => {
                if let (Some((conv, _)), Some(v)) = (&self.current, &self.profile.id) {
                    engine.visitor_typing(&self.site, v, conv, on, text).await;
                }
            }
            VisitorIn::Read { seq } => {
                if let (Some((conv, _)), Some(v)) = (&self.current, &self.profile.id) {
                    // Boxed: this loop's frame is every idle socket's memory.
                    let read = Box::pin(engine.visitor_read(&self.site, v, conv, seq)).await;
                    if let Err(e) = read {
                        return send_error(&mut self.conn, &e, None, None).await;
                    }
                }
            }
            VisitorIn::Close => {
                let Some(v) = self.profile.id.clone() else {
                    return true;
                };
                match engine.visitor_close(&self.site, &v).await {
                    Ok((conv, ticket)) => {
                        return self
                            .conn
                            .send(&VisitorOut::Closed {
                                conversation: &conv,
                                ticket: &ticket,
                            })
                            .await;
                    }
                    Err(e) => return send_error(&mut self.conn, &e, None, None).await,
                }
            }
            VisitorIn::Rate { score, comment } => {
                let Some(v) = self.profile.id.clone() else {
                    return true;
                };
                match engine.rate(&self.site, &v, score, comment).await {
                    Ok(ticket) => {
                        return self.conn.send(&VisitorOut::Rated { ticket: &ticket }).await;
                    }
                    Err(e) => return send_error(&mut self.conn, &e, None, None).await,
                }
            }
            VisitorIn::EmailTranscript { email } => {
                let Some(v) = self.profile.id.clone() else {
                    return true;
                };
                // Boxed: an SMTP conversation's state must not sit in every session's frame.
                return match Box::pin(engine.email_transcript(&self.site, &v, &email, self.ip))
                    .await
                {
                    Ok((ticket, email)) => {
                        self.conn
                            .send(&VisitorOut::TranscriptSent {
                                ticket: &ticket,
                                email: &email,
                            })
                            .await
                    }
                    Err(e) => send_error(&mut self.conn, &e, None, None).await,
                };
            }
            VisitorIn::OfflineMessage { email, text, name } => {
                let text = match engine.message_text(text) {
                    Ok(t) => t,
                    Err(e) => {
                        send_error(&mut self.conn, &e, None, None).await;
                        return true;
                    }
                };
                match engine
                    .offline_message(
                        &self.site,
                        &mut self.profile,
                        self.department.as_ref(),
                        email,
                        name,
                        text,
                    )
                    .await
                {
                    Ok(ticket) => {
                        return self
                            .conn
                            .send(&VisitorOut::OfflineReceived { ticket: &ticket })
                            .await;
                    }
                    Err(e) => return send_error(&mut self.conn, &e, None, None).await,
                }
            }
        }
        true
    }

    /// Something from the hub. False when the socket is gone.
    async fn on_push(&mut self, push: Push) -> bool {
        match push {
            Push::Event(d) => {
                let newer = self.current.as_ref().is_none_or(|(c, _)| d.conv > *c);
                if newer {
                    // A conversation started elsewhere (another tab): follow it from the start.
                    self.switch_to(d.conv.clone(), 0).await;
                }
                self.deliver(&d.conv, &d.event).await
            }
            Push::Typing(t) => {
                if self.current.as_ref().is_some_and(|(c, _)| c == &t.conv) {
                    return self
                        .conn
                        .send(&VisitorOut::Typing {
                            on: t.on,
                            name: t.name.as_deref(),
                        })
                        .await;
                }
                true
            }
            Push::Read(r) => {
                if self.current.as_ref().is_some_and(|(c, _)| c == &r.conv) {
                    return self
                        .conn
                        .send(&VisitorOut::Read {
                            conversation: &r.conv,
                            seq: r.seq,
                        })
                        .await;
                }
                true
            }
            Push::Position(p) => {
                if self.current.as_ref().is_some_and(|(c, _)| c == &p.conv) {
                    return self
                        .conn
                        .send(&VisitorOut::Queue {
                            conversation: &p.conv,
                            position: p.position,
                            estimate_minutes: p.estimate.point_minutes(),
                            estimate: p.estimate,
                        })
                        .await;
                }
                true
            }
            Push::Rebuild => {
                let Some((conv, _)) = self.current.clone() else {
                    return true;
                };
                match self.engine.conversation_exists(&self.site, &conv).await {
                    Ok(true) => true,
                    Ok(false) => {
                        self.current = None;
                        self.engine.hub().unfollow(&conv, self.reg.id);
                        let e = EngineError::new(
                            ErrorCode::ConversationLost,
                            "the server lost this conversation; your next message starts a new one",
                        );
                        send_error(&mut self.conn, &e, None, Some(&conv)).await
                    }
                    Err(e) => send_error(&mut self.conn, &e, None, None).await,
                }
            }
            Push::Resync => {
                if let Some((conv, last)) = self.current.clone() {
                    return self.backfill(&conv, last).await;
                }
                true
            }
            Push::Proactive(p) => {
                self.conn
                    .send(&VisitorOut::Proactive {
                        trigger: &p.trigger,
                        text: &p.text,
                        author_name: &p.author_name,
                        at: p.at,
                    })
                    .await
            }
            Push::Queue(_)
            | Push::AgentChanged
            | Push::Directory
            | Push::Visitor(_)
            | Push::Offline(_)
            | Push::Sla(_)
            | Push::SignedOut => true,
        }
    }

    /// Follows a conversation and sends what is stored after `after`.
    async fn switch_to(&mut self, conv: ConvId, after: u64) {
        let engine = &self.engine;
        if let Some((old, _)) = self.current.take() {
            engine.hub().unfollow(&old, self.reg.id);
        }
        engine.hub().follow(&conv, self.reg.id);
        self.current = Some((conv.clone(), after));
        self.backfill(&conv, after).await;
    }

    async fn deliver(&mut self, conv: &ConvId, event: &Event) -> bool {
        let Some((current, last)) = self.current.clone() else {
            return true;
        };
        if &current != conv {
            return true;
        }
        match order(last, event.seq) {
            Order::Seen => true,
            Order::Gap => self.backfill(conv, last).await,
            Order::Next => {
                self.current = Some((current, event.seq));
                if event.body.visible_to_visitor() {
                    return self
                        .conn
                        .send(&VisitorOut::Event {
                            conversation: conv,
                            event,
                        })
                        .await;
                }
                true
            }
        }
    }

    /// Sends every stored event after `after` (visible ones) and moves the cursor, reading the
    /// log a page at a time.
    async fn backfill(&mut self, conv: &ConvId, mut after: u64) -> bool {
        loop {
            let engine = &self.engine;
            let (events, more) = match page_after(engine, &self.site, conv, after).await {
                Ok(page) => page,
                Err(e) => {
                    send_error(&mut self.conn, &e, None, None).await;
                    return true;
                }
            };
            for event in events {
                after = event.seq;
                let last = self.current.as_ref().map_or(0, |(_, l)| *l);
                if event.seq <= last {
                    continue;
                }
                self.current = Some((conv.clone(), event.seq));
                if event.body.visible_to_visitor()
                    && !self
                        .conn
                        .send(&VisitorOut::Event {
                            conversation: conv,
                            event: &event,
                        })
                        .await
                {
                    return false;
                }
            }
            if !more {
                return true;
            }
        }
    }

    /// On (re)connect while queued: the current position, since the stored one may be stale.
    async fn send_position(&mut self, conv: &crate::model::Conversation) {
        let engine = self.engine.clone();
        if let Ok(Some((position, estimate))) = engine.position(&self.site, conv).await {
            self.conn
                .send(&VisitorOut::Queue {
                    conversation: &conv.id,
                    position,
                    estimate_minutes: estimate.point_minutes(),
                    estimate,
                })
                .await;
        }
    }
}
