//! Privacy requests, behind the admin token: `GET /v1/visitors/{id}/export` (everything stored
//! about a visitor, as JSON) and `DELETE /v1/visitors/{id}` (erased everywhere). Both are
//! recorded in the audit log. `site` names the visitor's site; without it every site is tried.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use super::error::{Conflicts, ReadRefusals};
use super::extract::{Params, SiteParam, sites};
use super::{Admin, ApiError, AppState};
use crate::engine::VisitorExport;
use crate::model::VisitorId;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/visitors/{id}", axum::routing::delete(erase))
        .route("/v1/visitors/{id}/export", get(export))
}

/// Everything stored about a visitor (audited).
#[utoipa::path(get, path = "/v1/visitors/{id}/export", operation_id = "exportVisitor",
    tag = "Privacy", params(("id" = String, Path, description = "The visitor's id"), SiteParam),
    security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "The visitor's profile, tickets and current conversation",
            body = VisitorExport), ReadRefusals))]
async fn export(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    Params(q): Params<SiteParam>,
) -> Result<Json<VisitorExport>, ApiError> {
    let visitor = VisitorId(id);
    for site in sites(&state, q.site.as_ref(), &caller)? {
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

/// Erases a visitor everywhere (audited).
///
/// Tickets, webhook deliveries naming them, live profile and closed conversations.
#[utoipa::path(delete, path = "/v1/visitors/{id}", operation_id = "eraseVisitor",
    tag = "Privacy", params(("id" = String, Path, description = "The visitor's id"), SiteParam),
    security(("admin" = []), ("session" = [])),
    responses((status = 204, description = "Erased"), ReadRefusals, Conflicts))]
async fn erase(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    Params(q): Params<SiteParam>,
) -> Result<StatusCode, ApiError> {
    let visitor = VisitorId(id);
    let mut found = false;
    for site in sites(&state, q.site.as_ref(), &caller)? {
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
