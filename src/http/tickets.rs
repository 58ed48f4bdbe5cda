//! REST for tickets (every signed-in account: supervisors and admins see their site's
//! tickets, agents those of their departments) and webhook dead letters (admins).
//!
//! `GET /v1/tickets` (filters `site`, `since`, `department`, `agent`, `status`; `cursor`,
//! `limit`), `GET /v1/tickets/{id}`, `GET /v1/webhooks/dead`, `POST /v1/webhooks/dead/{id}/retry`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::{Caller, JsonBody};
use super::extract::{cursor_param, known_params, limit_param, sites, time_param};
use super::{Admin, ApiError, AppState};
use crate::engine::TicketChange;
use crate::model::DeptId;
use crate::tickets::{FollowUp, TicketFilter};

const MAX_LIMIT: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tickets", get(list))
        .route("/v1/tickets/{id}", get(one))
        .route("/v1/tickets/{id}/tags", put(set_tags))
        .route("/v1/tickets/{id}/follow-up", put(set_follow_up))
        .route("/v1/tickets/{id}/reply", post(reply))
        .route("/v1/webhooks/dead", get(dead))
        .route("/v1/webhooks/dead/{id}/retry", post(retry))
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    const KNOWN: &[&str] = &[
        "site",
        "since",
        "until",
        "rating",
        "department",
        "agent",
        "status",
        "visitor",
        "cursor",
        "limit",
        "q",
        "follow_up",
        "tag",
    ];
    known_params(&q, KNOWN)?;
    let limit = limit_param(&q, 50, MAX_LIMIT)?;
    if let Some(s) = q.get("status")
        && !["resolved", "missed", "offline"].contains(&s.as_str())
    {
        return Err(bad_request("status: one of resolved, missed, offline"));
    }
    let filter = TicketFilter {
        since: time_param(&q, "since")?,
        until: time_param(&q, "until")?,
        rating: q
            .get("rating")
            .map(|r| {
                r.parse::<u8>()
                    .ok()
                    .filter(|r| (1..=5).contains(r))
                    .ok_or_else(|| bad_request("rating: a score from 1 to 5"))
            })
            .transpose()?,
        department: q.get("department").map(|d| DeptId(d.clone())),
        departments: inbox_departments(&state, &caller),
        agent: q.get("agent").cloned(),
        status: q.get("status").cloned(),
        visitor: q.get("visitor").cloned(),
        cursor: cursor_param(&q)?,
        query: q.get("q").cloned(),
        follow_up: q
            .get("follow_up")
            .map(|f| {
                FollowUp::parse(f)
                    .ok_or_else(|| bad_request("follow_up: one of open, pending, solved"))
            })
            .transpose()?,
        tag: q.get("tag").map(|t| t.to_lowercase()),
        limit: limit + 1,
    };
    let mut tickets = Vec::new();
    for site in sites(&state, &q, &caller)? {
        tickets.extend(state.engine.tickets().list(&site, &filter).await?);
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

/// The departments whose tickets the caller reads (`Engine::readable_departments`).
fn inbox_departments(state: &AppState, caller: &Caller) -> Option<Vec<DeptId>> {
    state
        .engine
        .readable_departments(caller.role, caller.site.as_ref(), caller.agent.as_ref())
}

/// The ticket with this id on a site the caller reaches (and, for an agent, of one of their
/// departments), with that site.
async fn find(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(crate::model::SiteId, crate::tickets::Ticket), ApiError> {
    let departments = inbox_departments(state, caller);
    for site in sites(state, &HashMap::new(), caller)? {
        if let Some(t) = state.engine.tickets().get(&site, id).await?
            && departments
                .as_ref()
                .is_none_or(|d| d.contains(&t.department))
        {
            return Ok((site, t));
        }
    }
    Err(ApiError::NotFound("no such ticket"))
}

async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (site, t) = find(&state, &caller, &id).await?;
    state
        .engine
        .transcript_read(&site, &id, &caller.actor)
        .await?;
    Ok(Json(json!(t)))
}

async fn dead(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for site in sites(&state, &q, &caller)? {
        out.extend(state.engine.tickets().dead(&site).await?);
    }
    Ok(Json(json!({ "deliveries": out })))
}

async fn retry(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(site) = &caller.site {
        // A site's admin revives their own site's deliveries only.
        let own = state.engine.tickets().dead(site).await?;
        if !own.iter().any(|d| d.id == id) {
            return Err(ApiError::NotFound("no such dead delivery"));
        }
    }
    let now = state.engine.now();
    // A revived delivery gets a fresh retry window of a day.
    let revived = state
        .engine
        .tickets()
        .revive(&id, now, now + 86_400_000)
        .await?;
    if !revived {
        return Err(ApiError::NotFound("no such dead delivery"));
    }
    state.engine.courier().wake();
    Ok(Json(json!({ "id": id, "status": "queued" })))
}

/// Applies a change to the ticket with this id, whichever site it is on.
async fn change(
    state: &AppState,
    caller: &Caller,
    id: &str,
    change: TicketChange,
) -> Result<Json<Value>, ApiError> {
    let (site, _) = find(state, caller, id).await?;
    let t = state
        .engine
        .update_ticket(&site, id, change, &caller.actor)
        .await?
        .ok_or(ApiError::NotFound("no such ticket"))?;
    Ok(Json(json!(t)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsBody {
    tags: Vec<String>,
}

/// `PUT /v1/tickets/{id}/tags` `{"tags": [...]}`: replaces the tags (at most 20, each 1 to 40
/// letters, digits, `-` or `_`; stored lowercase, without duplicates).
async fn set_tags(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TagsBody>,
) -> Result<Json<Value>, ApiError> {
    if body.tags.len() > 20 {
        return Err(bad_request("tags: at most 20"));
    }
    let mut tags: Vec<String> = Vec::new();
    for (i, t) in body.tags.iter().enumerate() {
        // Letters of any script, so the schema states only the length.
        let valid = (1..=40).contains(&t.chars().count())
            && t.chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(ApiError::Invalid {
                field: format!("tags[{i}]"),
                problem: "1 to 40 letters, digits, - or _".into(),
            });
        }
        let t = t.to_lowercase();
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    change(&state, &caller, &id, TicketChange::Tags(tags)).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowUpBody {
    status: String,
}

/// `PUT /v1/tickets/{id}/follow-up` `{"status": "open" | "pending" | "solved"}`.
async fn set_follow_up(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<FollowUpBody>,
) -> Result<Json<Value>, ApiError> {
    let status = FollowUp::parse(&body.status)
        .ok_or_else(|| bad_request("status: one of open, pending, solved"))?;
    change(&state, &caller, &id, TicketChange::FollowUp(status)).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    text: String,
}

/// The longest email answer, in characters.
const MAX_REPLY_CHARS: usize = 20_000;

/// `POST /v1/tickets/{id}/reply` `{"text"}`: emails the visitor (the offline message's address,
/// else the visitor's) through the site's SMTP server, then records the answer on the ticket
/// (`email_reply` in its history; `ticket.updated` goes out).
async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReplyBody>,
) -> Result<Json<Value>, ApiError> {
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > MAX_REPLY_CHARS {
        return Err(ApiError::Invalid {
            field: "text".into(),
            problem: format!("1 to {MAX_REPLY_CHARS} characters"),
        });
    }
    let (site_id, ticket) = find(&state, &caller, &id).await?;
    let to = ticket
        .offline_message
        .as_ref()
        .map(|m| m.email.clone())
        .or_else(|| ticket.visitor.email.clone())
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| ApiError::Conflict("the visitor left no email address".into()))?;
    let site = state.engine.site(&site_id)?;
    let name = site.name.clone().unwrap_or_else(|| site.id.0.clone());
    let quoted = ticket
        .offline_message
        .as_ref()
        .map(|m| {
            let q: Vec<String> = m.text.lines().map(|l| format!("> {l}")).collect();
            format!("\n\n{}", q.join("\n"))
        })
        .unwrap_or_default();
    let agent = caller.agent.as_ref().and_then(|a| {
        site.agent(a).map(|c| crate::model::AgentRef {
            id: a.clone(),
            name: c.name.clone(),
        })
    });
    let signature = agent
        .as_ref()
        .map(|a| format!("\n\n{}, {name}", a.name))
        .unwrap_or_else(|| format!("\n\n{name}"));
    let subject = format!("Re: your message to {name}");
    match crate::email::send(&site, &to, &subject, format!("{text}{signature}{quoted}")).await {
        Ok(()) => {}
        Err(crate::email::EmailError::NotConfigured) => {
            return Err(ApiError::Conflict(
                "this site has no SMTP server configured (smtp_url)".into(),
            ));
        }
        Err(crate::email::EmailError::BadAddress(a)) => {
            return Err(ApiError::Conflict(format!("not an email address: {a}")));
        }
        Err(crate::email::EmailError::Failed(cause)) => {
            return Err(ApiError::Unavailable(format!(
                "email to the visitor: {cause}"
            )));
        }
    }
    tracing::info!(site = %site_id, ticket = %id, actor = %caller.actor, "email reply sent");
    let change = TicketChange::EmailReply {
        to,
        text: text.to_owned(),
        agent,
    };
    let t = state
        .engine
        .update_ticket(&site_id, &id, change, &caller.actor)
        .await?
        .ok_or(ApiError::NotFound("no such ticket"))?;
    Ok(Json(json!(t)))
}
