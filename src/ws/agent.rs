//! An agent console's socket: authenticate with `hello`, receive assignments with the whole
//! transcript, answer, transfer, close; see the department queues.
//!
//! The session follows each conversation the agent owns and tracks the last sequence number it
//! delivered per conversation (gaps are backfilled from the log, duplicates dropped). It stops
//! following a chat when its events say it left: closed, transferred away, or requeued.

use std::collections::{BTreeMap, HashMap};

use super::session::{self, Attempt, hello_phase, page_after, send_error};
use super::{Connection, Order, order};
use crate::app::AppState;
use crate::engine::{AgentChat, EngineError};
use crate::hub::{Push, Registration, Role};
use crate::model::{AgentId, AgentState, ConvId, DeptId, Event, EventBody, SiteId};
use crate::protocol::{
    AgentIn, AgentOut, AgentSelf, ClientId, ConvSummary, ErrorCode, PAGE_EVENTS, QueueStat,
    TransferTarget, classify_parse_error, latest_page,
};
use crate::state::Span;

struct Session {
    state: AppState,
    site: SiteId,
    agent: AgentId,
    departments: Vec<DeptId>,
    reg: Registration,
    /// Followed conversations and the last sequence number delivered from each.
    chats: HashMap<ConvId, u64>,
    /// Latest statistics of the agent's department queues.
    queues: BTreeMap<DeptId, QueueStat>,
    /// The status this console last set, to put back if the state backend loses it.
    status: crate::model::AgentStatus,
    conn: Connection,
}

fn agent_self(a: &AgentState) -> AgentSelf {
    AgentSelf {
        id: a.id.clone(),
        name: a.name.clone(),
        status: a.status,
        max_concurrent: a.max_concurrent,
        max_allowed: a.cap,
        load: a.load,
        departments: a.departments.clone(),
    }
}

/// What a console needs to know of its site: names, transfer targets, canned responses.
fn site_directory(site: &crate::directory::model::SiteConfig) -> serde_json::Value {
    serde_json::json!({
        "id": site.id,
        "name": site.name.as_deref().unwrap_or(&site.id.0),
        "departments": site.departments.iter().map(|d| serde_json::json!({
            "id": d.id,
            "name": site.department_name(&d.id),
        })).collect::<Vec<_>>(),
        "agents": site.agents.iter().map(|a| serde_json::json!({
            "id": a.id,
            "name": a.name,
            "departments": a.departments,
        })).collect::<Vec<_>>(),
        "canned": site.canned,
    })
}

/// How many earlier tickets `history` returns.
const HISTORY_LIMIT: usize = 20;

/// `signed_in`: the console session the upgrade's cookie named, for a `hello` without token.
pub async fn run(mut conn: Connection, state: AppState, signed_in: Option<(SiteId, AgentId)>) {
    let checked = hello_phase(&mut conn, &state, |text| {
        let engine = state.engine.clone();
        let signed_in = signed_in.clone();
        async move {
            match serde_json::from_str::<AgentIn>(&text) {
                Ok(AgentIn::Hello {
                    token,
                    status,
                    resume,
                }) => match engine.authenticate_agent(&token, signed_in).await {
                    Ok((site, agent)) => Attempt::Welcome((site, agent, status, resume)),
                    Err(e) => {
                        tracing::info!("agent hello refused: {}", e.message);
                        Attempt::Failed(e)
                    }
                },
                Ok(AgentIn::Ping) => Attempt::Ping,
                Ok(_) => Attempt::Failed(EngineError::new(
                    ErrorCode::HelloRequired,
                    "send hello first",
                )),
                Err(e) => {
                    let (code, msg) = classify_parse_error::<AgentIn>(&e, &text);
                    Attempt::Failed(EngineError::new(code, msg))
                }
            }
        }
    });
    let Some((site, agent, status, resume)) = checked.await else {
        return;
    };
    let shutdown = state.shutdown.clone();

    let engine = state.engine.clone();
    let (reg, rx) = engine.hub().register(Role::Agent);
    let me = match Box::pin(engine.agent_connected(&site, &agent, reg.id, status)).await {
        Ok(me) => me,
        Err(e) => {
            send_error(&mut conn, &e, None, None).await;
            engine.agent_disconnected(&site, &agent, reg.id).await;
            return;
        }
    };
    tracing::info!(site = %site, agent = %agent, "agent connected");
    let mut session = Session {
        state: state.clone(),
        site: site.clone(),
        agent: agent.clone(),
        departments: me.departments.clone(),
        reg,
        chats: HashMap::new(),
        queues: BTreeMap::new(),
        status: me.status,
        conn,
    };
    let welcomed = {
        // Built, sent and dropped here: with a large team the directory is hundreds of
        // kilobytes as a JSON value, which no session may hold for its lifetime.
        let directory = engine
            .site(&site)
            .map(|s| site_directory(&s))
            .unwrap_or_default();
        let welcome = AgentOut::Welcome {
            agent: &agent_self(&me),
            heartbeat_secs: engine.config().timing.heartbeat_secs,
            site: &directory,
        };
        Box::pin(session.conn.send(&welcome)).await
    };
    if welcomed {
        let mut alive = true;
        for conv in &me.chats {
            let after = resume.get(conv).copied().unwrap_or(0);
            alive = alive && Box::pin(session.take(conv, after)).await;
        }
        if alive && Box::pin(session.send_all_queues()).await {
            session::serve(&mut session, rx, shutdown).await;
        }
    }
    for conv in session.chats.keys() {
        engine.hub().unfollow(conv, session.reg.id);
    }
    engine.hub().watch_visitors(&site, session.reg.id, false);
    engine
        .agent_disconnected(&site, &agent, session.reg.id)
        .await;
    tracing::info!(site = %site, agent = %agent, "agent disconnected");
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

impl Session {
    /// One client message. False when the socket is gone.
    async fn on_frame(&mut self, text: &str) -> bool {
        let msg = match serde_json::from_str::<AgentIn>(text) {
            Ok(m) => m,
            Err(e) => {
                let (code, msg) = classify_parse_error::<AgentIn>(&e, text);
                return send_error(&mut self.conn, &EngineError::new(code, msg), None, None).await;
            }
        };
        let engine = self.state.engine.clone();
        let (site, agent) = (&self.site, &self.agent);
        let (result, client_id, conversation) = match msg {
            AgentIn::Hello { .. } => (
                Err(EngineError::new(
                    ErrorCode::AlreadyAuthenticated,
                    "already said hello",
                )),
                None,
                None,
            ),
            AgentIn::Ping => return self.conn.send(&AgentOut::Pong).await,
            AgentIn::SetStatus { status } => {
                let result = engine.set_status(site, agent, status).await;
                if result.is_ok() {
                    self.status = status;
                }
                (result, None, None)
            }
            AgentIn::SetLimit { max_concurrent } => (
                engine.set_limit(site, agent, max_concurrent).await,
                None,
                None,
            ),
            AgentIn::Message {
                conversation,
                client_id,
                text,
            } => return self.store_text(conversation, client_id, text, false).await,
            AgentIn::WatchVisitors { on } => {
                engine.hub().watch_visitors(site, self.reg.id, on);
                if !on {
                    return true;
                }
                return match engine.live_visitors(site).await {
                    Ok(list) => self.send_visitors(list).await,
                    Err(e) => send_error(&mut self.conn, &e, None, None).await,
                };
            }
            AgentIn::StartChat {
                visitor,
                client_id,
                text,
            } => {
                let text = match engine.message_text(text) {
                    Ok(t) => t,
                    Err(e) => return send_error(&mut self.conn, &e, Some(&client_id), None).await,
                };
                return match engine
                    .agent_start_chat(site, agent, &visitor, client_id.clone(), text)
                    .await
                {
                    Ok(ack) => {
                        self.conn
                            .send(&AgentOut::Ack {
                                client_id: &client_id,
                                conversation: &ack.conv,
                                seq: ack.seq,
                            })
                            .await
                    }
                    Err(e) => send_error(&mut self.conn, &e, Some(&client_id), None).await,
                };
            }
            AgentIn::Note {
                conversation,
                client_id,
                text,
            } => return self.store_text(conversation, client_id, text, true).await,
            AgentIn::Colleagues => {
                return match engine.colleagues(site).await {
                    Ok(agents) => {
                        let now = engine.now();
                        let grace = engine.config().timing.grace_ms();
                        let view: Vec<crate::protocol::Colleague<'_>> = agents
                            .iter()
                            .map(|a| crate::protocol::Colleague {
                                id: &a.id,
                                name: &a.name,
                                status: a.status,
                                present: a.present(now, grace),
                                load: a.load,
                                max_concurrent: a.max_concurrent,
                                departments: &a.departments,
                            })
                            .collect();
                        self.conn
                            .send(&AgentOut::Colleagues { agents: &view })
                            .await
                    }
                    Err(e) => send_error(&mut self.conn, &e, None, None).await,
                };
            }
            AgentIn::History { visitor } => {
                return match engine
                    .visitor_tickets(site, agent, &visitor, HISTORY_LIMIT)
                    .await
                {
                    Ok(tickets) => {
                        let (tickets, more) = crate::protocol::ticket_previews(tickets);
                        self.conn
                            .send(&AgentOut::History {
                                visitor: &visitor,
                                tickets: &tickets,
                                more,
                            })
                            .await
                    }
                    Err(e) => send_error(&mut self.conn, &e, None, None).await,
                };
            }
            AgentIn::Transcript {
                conversation,
                before,
                after,
            } => return self.transcript(&conversation, after, before).await,
            AgentIn::Typing { conversation, on } => (
                engine.agent_typing(site, agent, &conversation, on).await,
                None,
                Some(conversation),
            ),
            AgentIn::Read { conversation, seq } => (
                engine.agent_read(site, agent, &conversation, seq).await,
                None,
                Some(conversation),
            ),
            AgentIn::Close {
                conversation,
                reason,
            } => match engine.agent_close(site, agent, &conversation, reason).await {
                Ok(ticket) => {
                    return self
                        .conn
                        .send(&AgentOut::Closed {
                            conversation: &conversation,
                            ticket: &ticket,
                        })
                        .await;
                }
                Err(e) => (Err(e), None, Some(conversation)),
            },
            AgentIn::Transfer {
                conversation,
                to_agent,
                to_department,
                reason,
                note,
            } => {
                let result = match TransferTarget::parse(to_agent, to_department) {
                    Some(target) => {
                        engine
                            .transfer(site, agent, &conversation, target, reason, note)
                            .await
                    }
                    None => Err(EngineError::new(
                        ErrorCode::InvalidMessage,
                        "name exactly one of to_agent and to_department",
                    )),
                };
                (result, None, Some(conversation))
            }
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                send_error(
                    &mut self.conn,
                    &e,
                    client_id.as_ref(),
                    conversation.as_ref(),
                )
                .await
            }
        }
    }

    /// Validates and stores a message (or, with `note`, a private note), then answers.
    async fn store_text(
        &mut self,
        conversation: ConvId,
        client_id: ClientId,
        text: String,
        note: bool,
    ) -> bool {
        let engine = self.state.engine.clone();
        let result = match engine.message_text(text) {
            Err(e) => Err(e),
            Ok(text) if note => {
                engine
                    .agent_note(
                        &self.site,
                        &self.agent,
                        &conversation,
                        client_id.clone(),
                        text,
                    )
                    .await
            }
            Ok(text) => {
                engine
                    .agent_message(
                        &self.site,
                        &self.agent,
                        &conversation,
                        client_id.clone(),
                        text,
                    )
                    .await
            }
        };
        self.acknowledge(result, &client_id, &conversation).await
    }

    /// Answers a stored message or note with `ack`, or with the error.
    async fn acknowledge(
        &mut self,
        result: crate::engine::Result<crate::engine::Ack>,
        client_id: &ClientId,
        conversation: &ConvId,
    ) -> bool {
        match result {
            Ok(ack) => {
                self.conn
                    .send(&AgentOut::Ack {
                        client_id,
                        conversation: &ack.conv,
                        seq: ack.seq,
                    })
                    .await
            }
            Err(e) => send_error(&mut self.conn, &e, Some(client_id), Some(conversation)).await,
        }
    }

    /// Everyone on the site, in frames that stay within a page: as many as fit in `visitors`
    /// (which replaces the console's list), the rest one `visitor` frame each.
    async fn send_visitors(&mut self, list: Vec<serde_json::Value>) -> bool {
        let mut used = 0;
        let fit = list
            .iter()
            .take_while(|v| {
                used += v.to_string().len() + 1;
                used <= crate::protocol::PAGE_BYTES
            })
            .count();
        if !self
            .conn
            .send(&AgentOut::Visitors {
                visitors: &list[..fit],
            })
            .await
        {
            return false;
        }
        for visitor in &list[fit..] {
            if !self.conn.send(&AgentOut::Visitor { visitor }).await {
                return false;
            }
        }
        true
    }

    /// Something from the hub. False when the socket is gone.
    async fn on_push(&mut self, push: Push) -> bool {
        match push {
            Push::Event(d) => self.on_event(&d.conv, &d.event).await,
            Push::Typing(t) => {
                let (conv, on) = (&t.conv, t.on);
                if self.chats.contains_key(conv) {
                    return self
                        .conn
                        .send(&AgentOut::Typing {
                            conversation: conv,
                            on,
                            text: t.draft.as_deref(),
                        })
                        .await;
                }
                true
            }
            Push::Read(r) => {
                if self.chats.contains_key(&r.conv) {
                    return self
                        .conn
                        .send(&AgentOut::Read {
                            conversation: &r.conv,
                            seq: r.seq,
                        })
                        .await;
                }
                true
            }
            Push::Queue(stat) => {
                if self.departments.contains(&stat.department) {
                    self.queues.insert(stat.department.clone(), (*stat).clone());
                    return self.send_queues().await;
                }
                true
            }
            Push::Rebuild => self.rebuild().await,
            Push::SignedOut => {
                self.conn
                    .close(crate::protocol::close::SIGNED_OUT, "signed out")
                    .await;
                false
            }
            Push::AgentChanged => {
                match self.state.engine.agent_state(&self.site, &self.agent).await {
                    Ok(me) => {
                        // The directory may have moved the agent between departments.
                        self.departments = me.departments.clone();
                        self.conn
                            .send(&AgentOut::Agent {
                                agent: &agent_self(&me),
                            })
                            .await
                    }
                    Err(e) => send_error(&mut self.conn, &e, None, None).await,
                }
            }
            Push::Resync => self.resync().await,
            Push::Position(_) | Push::Proactive(_) => true,
            Push::Offline(o) => {
                self.conn
                    .send(&AgentOut::OfflineMessage {
                        ticket: &o.ticket,
                        department: &o.department,
                        name: o.name.as_deref(),
                        email: &o.email,
                        text: &o.text,
                    })
                    .await
            }
            Push::Visitor(v) => {
                let (id, live) = (&v.0, v.1);
                if !live {
                    return self.conn.send(&AgentOut::VisitorLeft { id }).await;
                }
                let row = self
                    .state
                    .engine
                    .live_visitor(&self.site, id, self.state.engine.now())
                    .await;
                match row {
                    Ok(Some(row)) => self.conn.send(&AgentOut::Visitor { visitor: &row }).await,
                    Ok(None) => true,
                    Err(e) => send_error(&mut self.conn, &e, None, None).await,
                }
            }
        }
    }

    async fn on_event(&mut self, conv: &ConvId, event: &Event) -> bool {
        let Some(&last) = self.chats.get(conv) else {
            // Not followed: only an assignment to this agent concerns us.
            if matches!(&event.body, EventBody::Assigned { agent, .. } if agent.id == self.agent) {
                return self.take(conv, 0).await;
            }
            return true;
        };
        match order(last, event.seq) {
            Order::Seen => true,
            Order::Gap => self.backfill(conv, last).await,
            Order::Next => self.forward(conv, event).await,
        }
    }

    /// Sends one event in order, then lets go of the chat if the event took it away.
    async fn forward(&mut self, conv: &ConvId, event: &Event) -> bool {
        self.chats.insert(conv.clone(), event.seq);
        if !self
            .conn
            .send(&AgentOut::Event {
                conversation: conv,
                event,
            })
            .await
        {
            return false;
        }
        let gone = match &event.body {
            EventBody::Closed { .. } => Some("closed"),
            EventBody::Transferred { from: Some(f), .. } if f.id == self.agent => {
                Some("transferred")
            }
            EventBody::Requeued { agent, .. } if agent.id == self.agent => Some("requeued"),
            EventBody::Assigned { agent, .. } if agent.id != self.agent => Some("transferred"),
            _ => None,
        };
        match gone {
            Some(reason) => self.release(conv, reason).await,
            None => true,
        }
    }

    async fn release(&mut self, conv: &ConvId, reason: &str) -> bool {
        self.chats.remove(conv);
        self.state.engine.hub().unfollow(conv, self.reg.id);
        self.conn
            .send(&AgentOut::Unassigned {
                conversation: conv,
                reason,
            })
            .await
    }

    /// Follows a chat and sends it with the visitor's profile and its events after `after`.
    async fn take(&mut self, conv: &ConvId, after: u64) -> bool {
        let engine = self.state.engine.clone();
        engine.hub().follow(conv, self.reg.id);
        let chat = match engine
            .agent_chat(&self.site, &self.agent, conv, after, PAGE_EVENTS)
            .await
        {
            Ok(Some(chat)) => chat,
            // Moved on before we got here; its later events do not concern us.
            Ok(None) => {
                engine.hub().unfollow(conv, self.reg.id);
                return true;
            }
            Err(e) => {
                engine.hub().unfollow(conv, self.reg.id);
                return send_error(&mut self.conn, &e, None, Some(conv)).await;
            }
        };
        let AgentChat {
            conversation: c,
            events,
            visitor,
        } = chat;
        let (events, more) = latest_page(events, after);
        let last = events.last().map_or(after, |e| e.seq);
        self.chats.insert(conv.clone(), last);
        self.conn
            .send(&AgentOut::Assigned {
                conversation: &ConvSummary::from(&c),
                visitor: &visitor,
                events: &events,
                more,
            })
            .await
    }

    /// An earlier page of a chat this session follows.
    async fn transcript(&mut self, conv: &ConvId, after: u64, before: u64) -> bool {
        if !self.chats.contains_key(conv) {
            let e = EngineError::new(ErrorCode::NotFound, "not one of your chats");
            return send_error(&mut self.conn, &e, None, Some(conv)).await;
        }
        let span = Span::latest(after, before, PAGE_EVENTS);
        let events = match self.state.engine.transcript(&self.site, conv, span).await {
            Ok(events) => events,
            Err(e) => return send_error(&mut self.conn, &e, None, Some(conv)).await,
        };
        let (events, more) = latest_page(events, after);
        self.conn
            .send(&AgentOut::Transcript {
                conversation: conv,
                events: &events,
                more,
            })
            .await
    }

    /// Sends what this session missed of a chat, reading the log a page at a time.
    async fn backfill(&mut self, conv: &ConvId, mut after: u64) -> bool {
        loop {
            let engine = &self.state.engine;
            let (events, more) = match page_after(engine, &self.site, conv, after).await {
                Ok(page) => page,
                Err(e) => return send_error(&mut self.conn, &e, None, Some(conv)).await,
            };
            for event in events {
                after = event.seq;
                match self.chats.get(conv) {
                    Some(&last) if event.seq > last => {
                        if !self.forward(conv, &event).await {
                            return false;
                        }
                    }
                    Some(_) => {}
                    None => return true,
                }
            }
            if !more {
                return true;
            }
        }
    }

    /// After a lost subscription: catch up on every chat and on what was assigned meanwhile.
    async fn resync(&mut self) -> bool {
        let followed: Vec<(ConvId, u64)> =
            self.chats.iter().map(|(c, l)| (c.clone(), *l)).collect();
        for (conv, last) in followed {
            if !self.backfill(&conv, last).await {
                return false;
            }
        }
        match self.state.engine.agent_state(&self.site, &self.agent).await {
            Ok(me) => {
                for conv in me.chats {
                    if !self.chats.contains_key(&conv) && !self.take(&conv, 0).await {
                        return false;
                    }
                }
                true
            }
            Err(e) => send_error(&mut self.conn, &e, None, None).await,
        }
    }

    /// The state backend lost its state: this console's presence and status go back, and each
    /// chat it follows that no longer exists is released as `lost`.
    async fn rebuild(&mut self) -> bool {
        let engine = self.state.engine.clone();
        if let Err(e) = engine
            .agent_connected(&self.site, &self.agent, self.reg.id, Some(self.status))
            .await
        {
            return send_error(&mut self.conn, &e, None, None).await;
        }
        let followed: Vec<ConvId> = self.chats.keys().cloned().collect();
        for conv in followed {
            match engine.conversation_exists(&self.site, &conv).await {
                Ok(true) => {}
                Ok(false) => {
                    if !self.release(&conv, "lost").await {
                        return false;
                    }
                }
                Err(e) => return send_error(&mut self.conn, &e, None, None).await,
            }
        }
        self.send_all_queues().await
    }

    async fn send_all_queues(&mut self) -> bool {
        let engine = self.state.engine.clone();
        for dept in self.departments.clone() {
            match engine.queue_stat(&self.site, &dept).await {
                Ok((stat, _)) => {
                    self.queues.insert(dept, stat);
                }
                Err(e) => return send_error(&mut self.conn, &e, None, None).await,
            }
        }
        self.send_queues().await
    }

    async fn send_queues(&mut self) -> bool {
        let list: Vec<QueueStat> = self.queues.values().cloned().collect();
        self.conn.send(&AgentOut::Queues { queues: &list }).await
    }
}
