//! Figures for supervisors and dashboards (admin token): agents with status, load and limit,
//! the department queues, and today's statistics computed from the tickets.
//!
//! `GET /v1/agents`, `GET /v1/queues`, `GET /v1/stats` — each takes an optional `site`.

use std::collections::HashMap;

use axum::extract::{Query, State};

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::Supervisor;
use super::extract::{known_params, sites, time_param};
use super::{ApiError, AppState};
use crate::tickets::{StatsGroup, StatsQuery};

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

async fn agents(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let now = state.engine.now();
    let grace = state.engine.config().timing.grace_ms();
    let mut out = Vec::new();
    for site in sites(&state, &q, &caller)? {
        for a in state.engine.agents(&site).await? {
            out.push(json!({
                "site": site,
                "id": a.id,
                "name": a.name,
                "status": a.status,
                "departments": a.departments,
                "load": a.load,
                "max_concurrent": a.max_concurrent,
                "max_allowed": a.cap,
                "connected": a.present_until > now,
                "present": a.present(now, grace),
                "chats": a.chats,
            }));
        }
    }
    Ok(Json(json!({ "agents": out })))
}

async fn queues(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for site in sites(&state, &q, &caller)? {
        let config = state.engine.config();
        let Some(cfg) = config.site(&site) else {
            continue;
        };
        for dept in &cfg.departments {
            let (stat, _) = state.engine.queue_stat(&site, &dept.id).await?;
            out.push(json!({
                "site": site,
                "department": stat.department,
                "size": stat.size,
                "oldest_wait_secs": stat.oldest_wait_secs,
            }));
        }
    }
    Ok(Json(json!({ "queues": out })))
}

/// Everyone on the site right now, for sales: where they are, where they came from, how long
/// they have been here, new or returning, and whether they are in a chat.
async fn visitors(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for site in sites(&state, &q, &caller)? {
        out.extend(state.engine.live_visitors(&site).await?);
    }
    Ok(Json(json!({ "visitors": out })))
}

async fn stats(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    known_params(&q, &["site", "since", "until", "group"])?;
    // Default: since midnight UTC today, no end.
    let since = time_param(&q, "since")?.unwrap_or_else(|| {
        let now = state.engine.now();
        now - now.rem_euclid(86_400_000)
    });
    let until = time_param(&q, "until")?.unwrap_or(i64::MAX);
    let group = match q.get("group").map(String::as_str) {
        None => None,
        Some("department") => Some(StatsGroup::Department),
        Some("agent") => Some(StatsGroup::Agent),
        Some("day") => Some(StatsGroup::Day),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "group: department, agent or day".into(),
            ));
        }
    };
    // A caller bound to a site counts that site alone; only the deployment's admin token
    // may ask for every site at once.
    let site = match q.get("site") {
        Some(_) => sites(&state, &q, &caller)?.pop(),
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
    let mut body = json!({
        "since": since,
        "until": (until != i64::MAX).then_some(until),
        "chats": total.chats,
        "by_status": total.by_status,
        "queue_wait_secs": total.queue_wait_secs,
        "first_response_secs": total.first_response_secs,
        "handling_secs": total.handling_secs,
        "rating": total.rating,
    });
    if let Some(group) = group {
        body["groups"] = json!(tickets.stats(&query(group)).await?);
    }
    Ok(Json(body))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TakeOver {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/conversations/{id}/take-over` `{"reason"?}`: the signed-in supervisor takes an
/// active chat from its agent (a transfer, recorded with the reason; the visitor is told).
async fn take_over(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: TakeOver = super::extract::optional_body(&body)?;
    let (Some(site), Some(agent)) = (&caller.site, &caller.agent) else {
        return Err(ApiError::Forbidden(
            "a chat is taken over by a signed-in supervisor, not the admin token".into(),
        ));
    };
    let reason = body.reason;
    let conv = crate::model::ConvId(id);
    state.engine.take_over(site, agent, &conv, reason).await?;
    Ok(Json(json!({ "conversation": conv, "agent": agent })))
}

/// The sites a conversation may be in for this caller: the one named, else all they reach.
fn conversation_sites(
    state: &AppState,
    q: &HashMap<String, String>,
    caller: &super::Caller,
) -> Result<Vec<crate::model::SiteId>, ApiError> {
    known_params(q, &["site"])?;
    sites(state, q, caller)
}

/// `GET /v1/conversations/{id}[?site=]`: a live conversation, read-only, for a supervisor:
/// its state, agent and visitor, and its latest 100 events (private notes included).
async fn watch(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let conv = crate::model::ConvId(id);
    for site in conversation_sites(&state, &q, &caller)? {
        match state.engine.watch(&site, &conv, 100).await {
            Ok(v) => return Ok(Json(v)),
            Err(e) if e.code == crate::protocol::ErrorCode::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::NotFound("no such conversation"))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

/// `POST /v1/conversations/{id}/note[?site=]` `{"text"}`: a supervisor joins an open chat with
/// a private note the agents in it see (the visitor never does), without taking it over.
async fn note(
    State(state): State<AppState>,
    Supervisor(caller): Supervisor,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
    super::extract::JsonBody(body): super::extract::JsonBody<NoteBody>,
) -> Result<Json<Value>, ApiError> {
    let text = state
        .engine
        .message_text(body.text)
        .map_err(|e| ApiError::Invalid {
            field: "text".into(),
            problem: e.message,
        })?;
    let conv = crate::model::ConvId(id);
    for site in conversation_sites(&state, &q, &caller)? {
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
            Ok(seq) => return Ok(Json(json!({ "conversation": conv, "seq": seq }))),
            Err(e) if e.code == crate::protocol::ErrorCode::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::NotFound("no such conversation"))
}
