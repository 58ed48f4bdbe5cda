//! The audit log, behind the admin token: `GET /v1/audit`, newest first, filtered by site,
//! action, subject and time, paged by cursor. Who exported or erased a visitor's data and who
//! read a transcript over REST.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ReadRefusals;
use super::extract::{Cursor, Params, Time, limit, sites, time_schema};
use super::{Admin, ApiError, AppState};
use crate::model::SiteId;
use crate::tickets::{AuditEntry, AuditFilter};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list))
}

const MAX_LIMIT: usize = 500;

/// The filters of `GET /v1/audit`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this site
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    site: Option<SiteId>,
    /// e.g. directory.agent.create, directory.department.update, agent.sign_in,
    /// visitor.export, visitor.erase, ticket.read
    action: Option<String>,
    /// admin, or agent:<site>/<id>
    actor: Option<String>,
    /// A visitor id or a ticket id
    subject: Option<String>,
    /// At or after: RFC 3339 or Unix milliseconds
    #[param(schema_with = time_schema)]
    since: Option<Time>,
    /// Before: RFC 3339 or Unix milliseconds
    #[param(schema_with = time_schema)]
    until: Option<Time>,
    /// `next_cursor` of the previous page
    #[param(value_type = Option<String>, pattern = "^[0-9A-Za-z]{26}$")]
    cursor: Option<Cursor>,
    /// 1 to 500, default 100
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: Option<usize>,
}

/// An audit entry with its id.
#[derive(Serialize, ToSchema)]
pub struct AuditRow {
    id: String,
    #[serde(flatten)]
    entry: AuditEntry,
}

/// A page of the audit log, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditRow>,
    /// Pass as `cursor` for the next page; null on the last
    next_cursor: Option<String>,
}

/// The audit log, newest first (admin role).
///
/// Directory changes, sign-ins, privacy requests and transcripts read over REST. A site's
/// admin sees their own site's entries only.
#[utoipa::path(get, path = "/v1/audit", operation_id = "listAuditEntries", tag = "Audit",
    params(AuditQuery), security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Entries", body = AuditPage), ReadRefusals))]
async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Params(q): Params<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = limit(q.limit, 100, MAX_LIMIT)?;
    let filter = AuditFilter {
        // A site's admin sees their own site's entries only.
        site: match (&q.site, &caller.site) {
            (Some(_), _) => sites(&state, q.site.as_ref(), &caller)?.pop(),
            (None, own) => own.clone(),
        },
        action: q.action,
        actor: q.actor,
        subject: q.subject,
        since: q.since.map(|t| t.0),
        until: q.until.map(|t| t.0),
        cursor: q.cursor.map(|c| c.0),
        limit: limit + 1,
    };
    let mut entries = state.engine.tickets().audit_log(&filter).await?;
    let next_cursor = (entries.len() > limit)
        .then(|| {
            entries.truncate(limit);
            entries.last().map(|(id, _)| id.clone())
        })
        .flatten();
    let entries = entries
        .into_iter()
        .map(|(id, entry)| AuditRow { id, entry })
        .collect();
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}
