//! Figures for supervisors and dashboards (admin token): agents with status, load and limit,
//! the department queues, and today's statistics computed from the tickets.
//!
//! `GET /v1/agents`, `GET /v1/queues`, `GET /v1/stats` — each takes an optional `site`.

use std::collections::HashMap;

use axum::extract::{Query, State};

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::{parse_since, sites};
use super::{Admin, ApiError, AppState};
use crate::tickets::TicketFilter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/agents", get(agents))
        .route("/v1/queues", get(queues))
        .route("/v1/stats", get(stats))
        .route("/v1/visitors", get(visitors))
}

async fn agents(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let now = state.engine.now();
    let grace = state.engine.config().timing.grace_ms();
    let mut out = Vec::new();
    for site in sites(&state, &q)? {
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
    _: Admin,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for site in sites(&state, &q)? {
        let Some(cfg) = state.engine.config().site(&site) else {
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
    _: Admin,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for site in sites(&state, &q)? {
        out.extend(state.engine.live_visitors(&site).await?);
    }
    Ok(Json(json!({ "visitors": out })))
}

/// Median and 90th percentile (nearest rank) of a set of figures.
fn spread(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return json!({ "count": 0, "median": null, "p90": null });
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    json!({ "count": v.len(), "median": rank(0.5), "p90": rank(0.9) })
}

async fn stats(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    // Default: since midnight UTC today.
    let since = match q.get("since") {
        Some(s) => parse_since(s)?,
        None => {
            let now = state.engine.now();
            now - now.rem_euclid(86_400_000)
        }
    };
    let mut by_status: HashMap<String, u64> = HashMap::new();
    let (mut waits, mut responses, mut ratings) = (Vec::new(), Vec::new(), Vec::new());
    let mut chats = 0u64;
    for site in sites(&state, &q)? {
        let mut filter = TicketFilter {
            since: Some(since),
            limit: 500,
            ..TicketFilter::default()
        };
        loop {
            let page = state.engine.tickets().list(&site, &filter).await?;
            for t in &page {
                chats += 1;
                *by_status.entry(t.status.clone()).or_default() += 1;
                waits.extend(t.metrics.queue_wait_secs);
                responses.extend(t.metrics.first_response_secs);
                ratings.extend(t.rating.as_ref().map(|r| f64::from(r.score)));
            }
            match page.last() {
                Some(last) if page.len() == filter.limit => filter.cursor = Some(last.id.clone()),
                _ => break,
            }
        }
    }
    let average = (!ratings.is_empty()).then(|| ratings.iter().sum::<f64>() / ratings.len() as f64);
    Ok(Json(json!({
        "since": since,
        "chats": chats,
        "by_status": by_status,
        "queue_wait_secs": spread(waits),
        "first_response_secs": spread(responses),
        "rating": { "count": ratings.len(), "average": average },
    })))
}
