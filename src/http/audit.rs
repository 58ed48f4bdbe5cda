//! The audit log, behind the admin token: `GET /v1/audit`, newest first, filtered by site,
//! action, subject and time, paged by cursor. Who exported or erased a visitor's data and who
//! read a transcript over REST.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::{cursor_param, known_params, limit_param, sites, time_param};
use super::{Admin, ApiError, AppState};
use crate::tickets::AuditFilter;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list))
}

const MAX_LIMIT: usize = 500;

async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    const KNOWN: &[&str] = &[
        "site", "action", "actor", "subject", "since", "until", "cursor", "limit",
    ];
    known_params(&q, KNOWN)?;
    let limit = limit_param(&q, 100, MAX_LIMIT)?;
    let filter = AuditFilter {
        // A site's admin sees their own site's entries only.
        site: match (q.get("site"), &caller.site) {
            (Some(_), _) => sites(&state, &q, &caller)?.pop(),
            (None, own) => own.clone(),
        },
        action: q.get("action").cloned(),
        actor: q.get("actor").cloned(),
        subject: q.get("subject").cloned(),
        since: time_param(&q, "since")?,
        until: time_param(&q, "until")?,
        cursor: cursor_param(&q)?,
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
