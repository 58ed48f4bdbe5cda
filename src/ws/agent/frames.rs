//! What an agent's console sends: each client frame checked and carried out (messages,
//! notes, status and limit, transfer and close, history, live visitors, proactive chats).

use super::{HISTORY_LIMIT, Session};
use crate::engine::EngineError;
use crate::model::ConvId;
use crate::protocol::{
    AgentIn, AgentOut, ClientId, ErrorCode, TransferTarget, classify_parse_error,
};
use crate::ws::session::send_error;

impl Session {
    /// One client message. False when the socket is gone.
    pub(super) async fn on_frame(&mut self, text: &str) -> bool {
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
            AgentIn::Accept { conversation } => (
                engine.accept_offer(site, agent, &conversation).await,
                None,
                Some(conversation),
            ),
            AgentIn::Decline {
                conversation,
                reason,
            } => (
                engine
                    .decline_offer(site, agent, &conversation, reason)
                    .await,
                None,
                Some(conversation),
            ),
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
    pub(super) async fn store_text(
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
    pub(super) async fn acknowledge(
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
    pub(super) async fn send_visitors(&mut self, list: Vec<crate::model::LiveVisitor>) -> bool {
        let mut used = 0;
        let fit = list
            .iter()
            .take_while(|v| {
                used += serde_json::to_string(v).map_or(0, |s| s.len()) + 1;
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
}
