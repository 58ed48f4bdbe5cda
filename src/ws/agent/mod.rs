//! An agent console's socket: authenticate with `hello`, receive assignments with the whole
//! transcript, answer, transfer, close; see the department queues.
//!
//! The session follows each conversation the agent owns and tracks the last sequence number it
//! delivered per conversation (gaps are backfilled from the log, duplicates dropped). It stops
//! following a chat when its events say it left: closed, transferred away, or requeued.

mod frames;
mod pushes;

use std::collections::{BTreeMap, HashMap};

use super::Connection;
use super::session::{self, Attempt, hello_phase, send_error};
use crate::app::AppState;
use crate::engine::EngineError;
use crate::hub::{Push, Registration, Role};
use crate::model::{AgentId, AgentState, ConvId, DeptId, SiteId};
use crate::protocol::{AgentIn, AgentOut, AgentSelf, ErrorCode, QueueStat, classify_parse_error};

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
    let welcomed = match engine.console_directory(&site) {
        // Shared by every console of the site; not held past the welcome.
        Ok(directory) => {
            let welcome = AgentOut::Welcome {
                agent: &agent_self(&me),
                heartbeat_secs: engine.config().timing.heartbeat_secs,
                site: &directory,
            };
            Box::pin(session.conn.send(&welcome)).await
        }
        Err(e) => {
            send_error(&mut session.conn, &e, None, None).await;
            false
        }
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
