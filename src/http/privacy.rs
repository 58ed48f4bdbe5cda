//! Privacy requests, behind the admin token: `GET /v1/visitors/{id}/export` (everything stored
//! about a visitor, as JSON) and `DELETE /v1/visitors/{id}` (erased everywhere). Both are
//! recorded in the audit log. `site` names the visitor's site; without it every site is tried.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::extract::sites;
use super::{Admin, ApiError, AppState};
use crate::model::VisitorId;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/visitors/{id}", axum::routing::delete(erase))
        .route("/v1/visitors/{id}/export", get(export))
}

async fn export(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let visitor = VisitorId(id);
    for site in sites(&state, &q, &caller)? {
        if let Some(data) = state
            .engine
            .export_visitor(&site, &visitor, &caller.actor)
            .await?
        {
            return Ok(Json(data));
        }
    }
    Err(ApiError::NotFound("nothing is stored about this visitor"))
}

async fn erase(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let visitor = VisitorId(id);
    let mut found = false;
    for site in sites(&state, &q, &caller)? {
        found |= state
            .engine
            .erase_visitor(&site, &visitor, &caller.actor)
            .await?;
    }
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("nothing is stored about this visitor"))
    }
}
