//! REST for tickets and webhook dead letters, behind the admin bearer token.
//!
//! `GET /v1/tickets` (filters `site`, `since`, `department`, `agent`, `status`; `cursor`,
//! `limit`), `GET /v1/tickets/{id}`, `GET /v1/webhooks/dead`, `POST /v1/webhooks/dead/{id}/retry`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::config::token_hash;
use crate::model::{DeptId, Millis, SiteId, now_ms};
use crate::tickets::TicketFilter;

const MAX_LIMIT: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tickets", get(list))
        .route("/v1/tickets/{id}", get(one))
        .route("/v1/webhooks/dead", get(dead))
        .route("/v1/webhooks/dead/{id}/retry", post(retry))
}

/// Checks `Authorization: Bearer <admin token>` against the configured hash.
pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin bearer token is required",
        )
    };
    let expected = state
        .engine
        .config()
        .admin_token_sha256
        .as_deref()
        .ok_or_else(unauthorized)?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    // Comparing hashes: equal length, and the token itself never meets a timing side channel.
    if token_hash(token.trim()).eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// `since`: RFC 3339 (`2026-11-25T09:00:00Z`) or Unix milliseconds.
pub fn parse_since(v: &str) -> Result<Millis, ApiError> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    v.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            bad_request("since: expected RFC 3339 (2026-11-25T09:00:00Z) or Unix milliseconds")
        })
}

/// The sites a request names (`site`), or all of them.
pub fn sites(state: &AppState, q: &HashMap<String, String>) -> Result<Vec<SiteId>, ApiError> {
    let config = state.engine.config();
    match q.get("site") {
        Some(s) => {
            let id = SiteId(s.clone());
            config
                .site(&id)
                .ok_or_else(|| bad_request(format!("site: no site {s}")))?;
            Ok(vec![id])
        }
        None => Ok(config.sites.iter().map(|s| s.id.clone()).collect()),
    }
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    const KNOWN: &[&str] = &[
        "site",
        "since",
        "department",
        "agent",
        "status",
        "visitor",
        "cursor",
        "limit",
    ];
    if let Some(k) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad_request(format!(
            "unknown parameter {k}; known: {}",
            KNOWN.join(", ")
        )));
    }
    let limit = match q.get("limit") {
        None => 50,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| bad_request(format!("limit: expected 1 to {MAX_LIMIT}")))?,
    };
    if let Some(s) = q.get("status")
        && !["resolved", "missed", "offline"].contains(&s.as_str())
    {
        return Err(bad_request("status: one of resolved, missed, offline"));
    }
    if let Some(c) = q.get("cursor")
        && (c.len() != 26 || !c.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(bad_request(
            "cursor: use next_cursor from the previous page",
        ));
    }
    let filter = TicketFilter {
        since: q.get("since").map(|s| parse_since(s)).transpose()?,
        department: q.get("department").map(|d| DeptId(d.clone())),
        agent: q.get("agent").cloned(),
        status: q.get("status").cloned(),
        visitor: q.get("visitor").cloned(),
        cursor: q.get("cursor").cloned(),
        limit: limit + 1,
    };
    let mut tickets = Vec::new();
    for site in sites(&state, &q)? {
        tickets.extend(
            state
                .engine
                .tickets()
                .list(&site, &filter)
                .await
                .map_err(ApiError::unavailable)?,
        );
    }
    tickets.sort_by(|a, b| b.id.cmp(&a.id));
    let more = tickets.len() > limit;
    tickets.truncate(limit);
    let next = if more {
        tickets.last().map(|t| t.id.clone())
    } else {
        None
    };
    Ok(Json(json!({ "tickets": tickets, "next_cursor": next })))
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    for site in &state.engine.config().sites {
        if let Some(t) = state
            .engine
            .tickets()
            .get(&site.id, &id)
            .await
            .map_err(ApiError::unavailable)?
        {
            return Ok(Json(json!(t)));
        }
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such ticket",
    ))
}

async fn dead(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let mut out = Vec::new();
    for site in sites(&state, &q)? {
        out.extend(
            state
                .engine
                .tickets()
                .dead(&site)
                .await
                .map_err(ApiError::unavailable)?,
        );
    }
    Ok(Json(json!({ "deliveries": out })))
}

async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let now = now_ms();
    // A revived delivery gets a fresh retry window of a day.
    let revived = state
        .engine
        .tickets()
        .revive(&id, now, now + 86_400_000)
        .await
        .map_err(ApiError::unavailable)?;
    if !revived {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such dead delivery",
        ));
    }
    state.engine.courier().wake();
    Ok(Json(json!({ "id": id, "status": "queued" })))
}
