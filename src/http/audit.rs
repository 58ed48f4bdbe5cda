//! The audit log, behind the admin token: `GET /v1/audit`, newest first, filtered by site,
//! action, subject and time, paged by cursor. Who exported or erased a visitor's data and who
//! read a transcript over REST.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::{parse_since, sites};
use super::{Admin, ApiError, AppState};
use crate::tickets::AuditFilter;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list))
}

const MAX_LIMIT: usize = 500;

async fn list(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    const KNOWN: &[&str] = &[
        "site", "action", "subject", "since", "until", "cursor", "limit",
    ];
    if let Some(k) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "unknown parameter {k}; known: {}",
            KNOWN.join(", ")
        )));
    }
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::BadRequest(format!("limit: expected 1 to {MAX_LIMIT}")))?,
    };
    let time = |name: &str| {
        q.get(name)
            .map(|v| {
                parse_since(v).map_err(|_| {
                    ApiError::BadRequest(format!(
                        "{name}: expected RFC 3339 (2026-11-25T09:00:00Z) or Unix milliseconds"
                    ))
                })
            })
            .transpose()
    };
    let filter = AuditFilter {
        site: match q.get("site") {
            Some(_) => sites(&state, &q)?.pop(),
            None => None,
        },
        action: q.get("action").cloned(),
        subject: q.get("subject").cloned(),
        since: time("since")?,
        until: time("until")?,
        cursor: q.get("cursor").cloned(),
        limit: limit + 1,
    };
    let mut entries = state.engine.tickets().audit_log(&filter).await?;
    let next = (entries.len() > limit).then(|| {
        entries.truncate(limit);
        entries.last().map(|(id, _)| id.clone())
    });
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|(id, e)| {
            let mut v = json!(e);
            v["id"] = json!(id);
            v
        })
        .collect();
    Ok(Json(
        json!({ "entries": entries, "next_cursor": next.flatten() }),
    ))
}
