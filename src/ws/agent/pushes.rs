//! What reaches an agent's console from the hub: events of followed conversations in order
//! (gaps filled from the log), assignments and releases, queue and agent changes, resyncs.

use super::{Session, agent_self};
use crate::engine::{AgentChat, EngineError};
use crate::hub::Push;
use crate::model::{ConvId, Event, EventBody};
use crate::protocol::{AgentOut, ConvSummary, ErrorCode, PAGE_EVENTS, QueueStat, latest_page};
use crate::state::Span;
use crate::ws::session::{page_after, send_error};
use crate::ws::{Order, order};

impl Session {
    /// Something from the hub. False when the socket is gone.
    pub(super) async fn on_push(&mut self, push: Push) -> bool {
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
            Push::Directory => match self.state.engine.console_directory(&self.site) {
                Ok(site) => self.conn.send(&AgentOut::Site { site: &site }).await,
                // The site is gone: the session ends with its credentials.
                Err(_) => true,
            },
            Push::Position(_) | Push::Proactive(_) => true,
            // For supervisors and admins: they watch the site's service levels.
            Push::Sla(w) => {
                let supervisor = self
                    .state
                    .engine
                    .site(&self.site)
                    .ok()
                    .and_then(|s| s.agent(&self.agent).map(|a| a.role))
                    .is_some_and(|r| r >= crate::directory::model::AgentRole::Supervisor);
                if !supervisor {
                    return true;
                }
                self.conn.send(&AgentOut::SlaWarning { warning: &w }).await
            }
            Push::Offline(o) => {
                self.conn
                    .send(&AgentOut::OfflineMessage {
                        ticket: &o.ticket,
                        department: &o.department,
                        name: o.name.as_deref(),
                        email: &o.email,
                        text: &o.text,
                        email_reply: o.reply,
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

    pub(super) async fn on_event(&mut self, conv: &ConvId, event: &Event) -> bool {
        let Some(&last) = self.chats.get(conv) else {
            // Not followed: only an assignment to this agent concerns us.
            if matches!(&event.body, EventBody::Assigned { agent, .. } | EventBody::Offered { agent, .. } if agent.id == self.agent)
            {
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
    pub(super) async fn forward(&mut self, conv: &ConvId, event: &Event) -> bool {
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

    pub(super) async fn release(&mut self, conv: &ConvId, reason: &str) -> bool {
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
    pub(super) async fn take(&mut self, conv: &ConvId, after: u64) -> bool {
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
        let summary = ConvSummary {
            offer_secs: engine.offer_secs(&self.site, &c),
            ..ConvSummary::from(&c)
        };
        self.conn
            .send(&AgentOut::Assigned {
                conversation: &summary,
                visitor: &visitor,
                events: &events,
                more,
            })
            .await
    }

    /// An earlier page of a chat this session follows.
    pub(super) async fn transcript(&mut self, conv: &ConvId, after: u64, before: u64) -> bool {
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
    pub(super) async fn backfill(&mut self, conv: &ConvId, mut after: u64) -> bool {
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
    pub(super) async fn resync(&mut self) -> bool {
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
    pub(super) async fn rebuild(&mut self) -> bool {
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

    pub(super) async fn send_all_queues(&mut self) -> bool {
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

    pub(super) async fn send_queues(&mut self) -> bool {
        let list: Vec<QueueStat> = self.queues.values().cloned().collect();
        self.conn.send(&AgentOut::Queues { queues: &list }).await
    }
}
