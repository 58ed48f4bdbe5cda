//! Figures for supervisors and dashboards (admin token): agents with status, load and limit,
//! the department queues, and today's statistics computed from the tickets.
//!
//! `GET /v1/agents`, `GET /v1/queues`, `GET /v1/stats` — each takes an optional `site`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{Conflicts, ReadRefusals};
use super::extract::{Params, SiteParam, Supervisor, Time, sites, time_schema};
use super::{ApiError, AppState};
use crate::engine::Watched;
use crate::model::{AgentId, AgentStatus, ConvId, DeptId, LiveVisitor, Millis, SiteId};
use crate::protocol::QueueStat;
use crate::tickets::{Figures, RatingFigures, Spread, StatsGroup, StatsQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/agents", get(agents))
        .route("/v1/queues", get(queues))
        .route("/v1/stats", get(stats))
        .route("/v1/visitors", get(visitors))
        .route("/v1/conversations/{id}", get(watch))
        .route("/v1/conversations/{id}/note", axum::routing::post(note))
        .route(
            "/v1/conversations/{id}/take-over",
            axum::routing::post(take_over),
        )
}

/// An agent as the supervisor sees them.
#[derive(Serialize, ToSchema)]
pub struct AgentRow {
    #[schema(value_type = String)]
    site: SiteId,
    #[schema(value_type = String)]
    id: AgentId,
    name: String,
    status: AgentStatus,
    #[schema(value_type = Vec<String>)]
    departments: Vec<DeptId>,
    load: u32,
    /// The limit in force now
    max_concurrent: u32,
    /// The configured ceiling the agent may raise their limit to
    max_allowed: u32,
    connected: bool,
    /// Connected or inside the reconnect grace
    present: bool,
    #[schema(value_type = Vec<String>)]
    chats: Vec<ConvId>,
}

#[derive(Serialize, ToSchema)]
pub struct AgentRows {
    agents: Vec<AgentRow>,
}

/// Agents with status, load, limit and chats (supervisor view).
#[utoipa::path(get, path = "/v1/agents", operation_id = "listAgentStates", tag = "Supervisor",
    params(SiteParam), security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Agents", body = AgentRows), ReadRefusals))]
async fn agents(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    Params(q): Params<SiteParam>,
) -> Result<Json<AgentRows>, ApiError> {
    let now = state.engine.now();
    let grace = state.engine.config().timing.grace_ms();
    let mut agents = Vec::new();
    for site in sites(&state, q.site.as_ref(), &caller)? {
        for a in state.engine.agents(&site).await? {
            agents.push(AgentRow {
                site: site.clone(),
                connected: a.present_until > now,
                present: a.present(now, grace),
                id: a.id,
                name: a.name,
                status: a.status,
                departments: a.departments,
                load: a.load,
                max_concurrent: a.max_concurrent,
                max_allowed: a.cap,
                chats: a.chats,
            });
        }
    }
    Ok(Json(AgentRows { agents }))
}

/// A department's queue now.
#[derive(Serialize, ToSchema)]
pub struct QueueRow {
    #[schema(value_type = String)]
    site: SiteId,
    /// The department's display name (its id when it has none)
    name: String,
    #[serde(flatten)]
    queue: QueueStat,
}

#[derive(Serialize, ToSchema)]
pub struct QueueRows {
    queues: Vec<QueueRow>,
}

/// Department queues.
#[utoipa::path(get, path = "/v1/queues", operation_id = "listQueues", tag = "Supervisor",
    params(SiteParam), security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Queues", body = QueueRows), ReadRefusals))]
async fn queues(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    Params(q): Params<SiteParam>,
) -> Result<Json<QueueRows>, ApiError> {
    let mut queues = Vec::new();
    for site in sites(&state, q.site.as_ref(), &caller)? {
        let config = state.engine.config();
        let Some(cfg) = config.site(&site) else {
            continue;
        };
        for dept in &cfg.departments {
            let (queue, _) = state.engine.queue_stat(&site, &dept.id).await?;
            queues.push(QueueRow {
                site: site.clone(),
                name: cfg.department_name(&dept.id),
                queue,
            });
        }
    }
    Ok(Json(QueueRows { queues }))
}

#[derive(Serialize, ToSchema)]
pub struct LiveVisitors {
    visitors: Vec<LiveVisitor>,
}

/// Visitors on the site right now (live presence, for sales).
///
/// Where they are, where they came from, how long they have been here, new or returning, and
/// whether they are in a chat.
#[utoipa::path(get, path = "/v1/visitors", operation_id = "listLiveVisitors", tag = "Supervisor",
    params(SiteParam), security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Live visitors", body = LiveVisitors), ReadRefusals))]
async fn visitors(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    Params(q): Params<SiteParam>,
) -> Result<Json<LiveVisitors>, ApiError> {
    let mut visitors = Vec::new();
    for site in sites(&state, q.site.as_ref(), &caller)? {
        visitors.extend(state.engine.live_visitors(&site).await?);
    }
    Ok(Json(LiveVisitors { visitors }))
}

/// The range and grouping of `GET /v1/stats`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Only this site (default: every site the caller reaches)
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    site: Option<SiteId>,
    /// Start of the range: RFC 3339 or Unix milliseconds (default: midnight UTC today)
    #[param(schema_with = time_schema)]
    since: Option<Time>,
    /// End of the range, exclusive: RFC 3339 or Unix milliseconds (default: no end)
    #[param(schema_with = time_schema)]
    until: Option<Time>,
    /// Also return the figures per department, per agent (who held the chat last; "" for
    /// chats no agent took) or per UTC day, in `groups`
    group: Option<Group>,
}

#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Department,
    Agent,
    Day,
}

/// The figures of a range, and of each group when asked.
#[derive(Serialize, ToSchema)]
pub struct Stats {
    since: Millis,
    until: Option<Millis>,
    chats: u64,
    by_status: std::collections::BTreeMap<String, u64>,
    queue_wait_secs: Spread,
    first_response_secs: Spread,
    handling_secs: Spread,
    rating: RatingFigures,
    wait_estimate: EstimateAccuracy,
    /// Per department with a service-level target: chats past it (docs/routing.md).
    service_levels: Vec<ServiceLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<Figures>>,
}

/// A department's service-level targets and how many of the range's chats missed them.
#[derive(Serialize, ToSchema)]
pub struct ServiceLevel {
    #[schema(value_type = String)]
    site: SiteId,
    #[schema(value_type = String)]
    department: crate::model::DeptId,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_target_secs: Option<f64>,
    /// Chats assigned (or given up) after waiting longer than the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_breaches: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_response_target_secs: Option<f64>,
    /// Chats whose first agent reply came later than the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_response_breaches: Option<u64>,
}

/// How accurate the wait estimates given to visitors were, over the range's assigned chats
/// that were queued (docs/routing.md).
#[derive(Serialize, ToSchema)]
pub struct EstimateAccuracy {
    /// Chats measured: assigned after a wait, with an estimate given.
    samples: u64,
    /// The median of |estimated wait − real wait| ÷ real wait (0.3: off by 30 %).
    median_error_ratio: f64,
    /// The share of real waits inside the range the visitor was shown.
    coverage: f64,
}

/// Figures of the tickets closed in a range.
///
/// Default range: since midnight UTC today. Computed by the database from figures kept as
/// tickets are written (percentiles at 1 s resolution below a minute, 10 s below ten minutes,
/// 1 min below an hour, 10 min beyond), optionally per department, agent or day.
#[utoipa::path(get, path = "/v1/stats", operation_id = "getStats", tag = "Supervisor",
    params(StatsParams), security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Figures", body = Stats), ReadRefusals))]
async fn stats(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    Params(q): Params<StatsParams>,
) -> Result<Json<Stats>, ApiError> {
    // Default: since midnight UTC today, no end.
    let since = q.since.map(|t| t.0).unwrap_or_else(|| {
        let now = state.engine.now();
        now - now.rem_euclid(86_400_000)
    });
    let until = q.until.map(|t| t.0).unwrap_or(i64::MAX);
    let group = q.group.map(|g| match g {
        Group::Department => StatsGroup::Department,
        Group::Agent => StatsGroup::Agent,
        Group::Day => StatsGroup::Day,
    });
    // A caller bound to a site counts that site alone; only the deployment's admin token
    // may ask for every site at once.
    let site = match &q.site {
        Some(_) => sites(&state, q.site.as_ref(), &caller)?.pop(),
        None => caller.site.clone(),
    };
    let query = |group| StatsQuery {
        site: site.clone(),
        since,
        until,
        group,
    };
    let tickets = state.engine.tickets();
    let total = tickets
        .stats(&query(StatsGroup::All))
        .await?
        .pop()
        .unwrap_or_default();
    let groups = match group {
        Some(group) => Some(tickets.stats(&query(group)).await?),
        None => None,
    };
    let measured = match &site {
        Some(s) => vec![s.clone()],
        None => sites(&state, None, &caller)?,
    };
    let mut pairs = Vec::new();
    for s in &measured {
        for w in tickets.wait_accuracy(s, None, since, until).await? {
            if let (Some(real), Some(e)) = (w.queue_wait_secs, w.estimate) {
                pairs.push((real, e));
            }
        }
    }
    let (median_error_ratio, coverage) = crate::routing::estimate::accuracy(&pairs);
    let mut service_levels = Vec::new();
    for s in &measured {
        let site_config = state.engine.site(s)?;
        for d in &site_config.departments {
            let policy = crate::routing::policy::Policy::resolve(&site_config, &d.id);
            let wait = policy.sla_wait().map(|(t, _)| t as f64 / 1000.0);
            let first = policy.sla_first_response_secs();
            if wait.is_none() && first.is_none() {
                continue;
            }
            let over = |measure, target: Option<f64>| {
                let tickets = &tickets;
                let d = &d.id;
                async move {
                    match target {
                        Some(secs) => tickets
                            .count_over(s, d, (since, until), measure, secs)
                            .await
                            .map(Some),
                        None => Ok(None),
                    }
                }
            };
            let wait_breaches = over(crate::tickets::Measure::QueueWait, wait).await?;
            let first_response_breaches =
                over(crate::tickets::Measure::FirstResponse, first).await?;
            service_levels.push(ServiceLevel {
                site: s.clone(),
                department: d.id.clone(),
                wait_target_secs: wait,
                wait_breaches,
                first_response_target_secs: first,
                first_response_breaches,
            });
        }
    }
    Ok(Json(Stats {
        since,
        until: (until != i64::MAX).then_some(until),
        chats: total.chats,
        by_status: total.by_status,
        queue_wait_secs: total.queue_wait_secs,
        first_response_secs: total.first_response_secs,
        handling_secs: total.handling_secs,
        rating: total.rating,
        wait_estimate: EstimateAccuracy {
            samples: pairs.len() as u64,
            median_error_ratio,
            coverage,
        },
        service_levels,
        groups,
    }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakeOver {
    /// Recorded with the transfer; longer than 500 characters is cut
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TakenOver {
    #[schema(value_type = String)]
    conversation: ConvId,
    /// The supervisor, now the chat's agent
    #[schema(value_type = String)]
    agent: AgentId,
}

/// Takes an active chat from its agent.
///
/// A signed-in supervisor takes the chat (a transfer recorded with the reason; within the
/// supervisor's limit, while online); the visitor is told.
#[utoipa::path(post, path = "/v1/conversations/{id}/take-over",
    operation_id = "takeOverConversation", tag = "Conversations",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body(content = TakeOver, description = "Optional"),
    security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Taken over", body = TakenOver), ReadRefusals, Conflicts))]
async fn take_over(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<TakenOver>, ApiError> {
    let body: TakeOver = super::extract::optional_body(&body)?;
    let (Some(site), Some(agent)) = (&caller.site, &caller.agent) else {
        return Err(ApiError::Forbidden(
            "a chat is taken over by a signed-in supervisor, not the admin token".into(),
        ));
    };
    let reason = body.reason;
    let conv = ConvId(id);
    state.engine.take_over(site, agent, &conv, reason).await?;
    Ok(Json(TakenOver {
        conversation: conv,
        agent: agent.clone(),
    }))
}

/// A live conversation, read-only (supervisors).
///
/// Its state, agent and visitor, and its latest 100 events, private notes included.
#[utoipa::path(get, path = "/v1/conversations/{id}", operation_id = "getConversation",
    tag = "Conversations",
    params(("id" = String, Path, description = "The conversation's id"), SiteParam),
    security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "The conversation", body = Watched), ReadRefusals))]
async fn watch(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    axum::extract::Path(id): axum::extract::Path<String>,
    Params(q): Params<SiteParam>,
) -> Result<Json<Watched>, ApiError> {
    let conv = ConvId(id);
    for site in sites(&state, q.site.as_ref(), &caller)? {
        match state.engine.watch(&site, &conv, 100).await {
            Ok(v) => return Ok(Json(v)),
            Err(e) if e.code == crate::protocol::ErrorCode::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::NotFound("no such conversation"))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    #[schema(pattern = r"\S", max_length = 4000)]
    text: String,
}

/// A stored event of a conversation.
#[derive(Serialize, ToSchema)]
pub struct Stored {
    #[schema(value_type = String)]
    conversation: ConvId,
    seq: u64,
}

/// Joins an open conversation with a private note (supervisors).
///
/// The agents in it see the note, the visitor never does; the chat is not taken over.
#[utoipa::path(post, path = "/v1/conversations/{id}/note", operation_id = "addConversationNote",
    tag = "Conversations",
    params(("id" = String, Path, description = "The conversation's id"), SiteParam),
    request_body = NoteBody, security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Stored", body = Stored), ReadRefusals, Conflicts))]
async fn note(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    axum::extract::Path(id): axum::extract::Path<String>,
    Params(q): Params<SiteParam>,
    super::extract::JsonBody(body): super::extract::JsonBody<NoteBody>,
) -> Result<Json<Stored>, ApiError> {
    let text = state
        .engine
        .message_text(body.text)
        .map_err(|e| ApiError::Invalid {
            field: "text".into(),
            problem: e.message,
        })?;
    let conv = ConvId(id);
    for site in sites(&state, q.site.as_ref(), &caller)? {
        let by = match &caller.agent {
            Some(a) => {
                let config = state.engine.site(&site)?;
                crate::model::AgentRef {
                    id: a.clone(),
                    name: config
                        .agent(a)
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| a.0.clone()),
                }
            }
            None => crate::model::AgentRef {
                id: crate::model::AgentId::from("admin"),
                name: "Supervisor".into(),
            },
        };
        match state
            .engine
            .supervisor_note(&site, &conv, by, text.clone())
            .await
        {
            Ok(seq) => {
                return Ok(Json(Stored {
                    conversation: conv,
                    seq,
                }));
            }
            Err(e) if e.code == crate::protocol::ErrorCode::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::NotFound("no such conversation"))
}
