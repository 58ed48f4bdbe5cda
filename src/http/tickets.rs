//! REST for tickets (every signed-in account: supervisors and admins see their site's
//! tickets, agents those of their departments) and webhook dead letters (admins).
//!
//! `GET /v1/tickets` (filters `site`, `since`, `department`, `agent`, `status`; `cursor`,
//! `limit`), `GET /v1/tickets/{id}`, `GET /v1/webhooks/dead` (a page without bodies, and
//! counts per receiver), `GET /v1/webhooks/dead/{id}`, `POST /v1/webhooks/dead/{id}/retry`.

use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{Conflicts, ReadRefusals};
use super::extract::{Caller, Cursor, JsonBody, Params, Time, time_schema};
use super::extract::{cut_page, limit, sites};
use super::{Admin, ApiError, AppState};
use crate::engine::TicketChange;
use crate::model::{DeptId, SiteId};
use crate::tickets::{DeadCount, Delivery, FollowUp, Ticket, TicketFilter};

const MAX_LIMIT: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tickets", get(list))
        .route("/v1/tickets/{id}", get(one))
        .route("/v1/tickets/{id}/tags", put(set_tags))
        .route("/v1/tickets/{id}/follow-up", put(set_follow_up))
        .route("/v1/tickets/{id}/reply", post(reply))
        .route("/v1/webhooks/dead", get(dead))
        .route("/v1/webhooks/dead/{id}", get(dead_one))
        .route("/v1/webhooks/dead/{id}/retry", post(retry))
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// The filters of `GET /v1/tickets`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TicketQuery {
    /// Only this site (default: every site the caller reaches)
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    site: Option<SiteId>,
    /// Closed at or after: RFC 3339 or Unix milliseconds
    #[param(schema_with = time_schema)]
    since: Option<Time>,
    /// Closed before: RFC 3339 or Unix milliseconds
    #[param(schema_with = time_schema)]
    until: Option<Time>,
    /// Rated with this score by the visitor
    #[param(minimum = 1, maximum = 5)]
    rating: Option<u8>,
    department: Option<String>,
    /// Agent id who held the chat
    agent: Option<String>,
    /// Visitor id: that visitor's earlier tickets
    visitor: Option<String>,
    status: Option<TicketStatus>,
    /// `next_cursor` of the previous page
    #[param(value_type = Option<String>, pattern = "^[0-9A-Za-z]{26}$")]
    cursor: Option<Cursor>,
    #[param(minimum = 1, maximum = 200, default = 50)]
    limit: Option<usize>,
    /// Full-text search: every word must appear in the ticket's messages, notes, offline
    /// message or visitor name and email
    q: Option<String>,
    /// Follow-up status
    follow_up: Option<FollowUp>,
    /// Tickets carrying this tag
    tag: Option<String>,
}

/// How a ticket's chat ended, as a filter.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    Resolved,
    Missed,
    Offline,
}

impl TicketStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Resolved => "resolved",
            Self::Missed => "missed",
            Self::Offline => "offline",
        }
    }
}

/// A page of tickets, newest first.
#[derive(Serialize, ToSchema)]
pub struct TicketPage {
    tickets: Vec<Ticket>,
    /// Pass as `cursor` for the next page; null on the last
    next_cursor: Option<String>,
}

/// List tickets, newest first.
///
/// Supervisors and admins see every ticket of their site (the admin token: every site); agents
/// only those of their departments.
#[utoipa::path(get, path = "/v1/tickets", operation_id = "listTickets", tag = "Tickets",
    params(TicketQuery), security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "A page of tickets", body = TicketPage), ReadRefusals))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<TicketQuery>,
) -> Result<Json<TicketPage>, ApiError> {
    let limit = limit(q.limit, 50, MAX_LIMIT)?;
    if q.rating.is_some_and(|r| !(1..=5).contains(&r)) {
        return Err(bad_request("rating: a score from 1 to 5"));
    }
    let filter = TicketFilter {
        since: q.since.map(|t| t.0),
        until: q.until.map(|t| t.0),
        rating: q.rating,
        department: q.department.map(DeptId),
        departments: inbox_departments(&state, &caller),
        agent: q.agent,
        status: q.status.map(|s| s.as_str().to_owned()),
        visitor: q.visitor,
        cursor: q.cursor.map(|c| c.0),
        query: q.q,
        follow_up: q.follow_up,
        tag: q.tag.map(|t| t.to_lowercase()),
        limit: limit + 1,
    };
    let mut tickets = Vec::new();
    for site in sites(&state, q.site.as_ref(), &caller)? {
        tickets.extend(state.engine.tickets().list(&site, &filter).await?);
    }
    tickets.sort_by(|a, b| b.id.cmp(&a.id));
    let next_cursor = cut_page(&mut tickets, limit, |t| &t.id);
    Ok(Json(TicketPage {
        tickets,
        next_cursor,
    }))
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
    for site in sites(state, None, caller)? {
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

/// One ticket, with its transcript (the read is audit-logged).
#[utoipa::path(get, path = "/v1/tickets/{id}", operation_id = "getTicket", tag = "Tickets",
    params(("id" = String, Path, description = "The ticket's id")),
    security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "The ticket", body = Ticket), ReadRefusals))]
async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Ticket>, ApiError> {
    let (site, t) = find(&state, &caller, &id).await?;
    state
        .engine
        .transcript_read(&site, &id, &caller.actor)
        .await?;
    Ok(Json(t))
}

/// The filters of `GET /v1/webhooks/dead`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadQuery {
    /// Only this site (default: every site the caller reaches)
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    site: Option<SiteId>,
    /// `next_cursor` of the previous page
    #[param(value_type = Option<String>, pattern = "^[0-9A-Za-z]{26}$")]
    cursor: Option<Cursor>,
    #[param(minimum = 1, maximum = 200, default = 50)]
    limit: Option<usize>,
}

/// Webhook deliveries that gave up: a page of them, and how many per receiver and event.
#[derive(Serialize, ToSchema)]
pub struct DeadDeliveries {
    /// Oldest first, without their bodies (`GET /v1/webhooks/dead/{id}` has one whole)
    deliveries: Vec<DeadDelivery>,
    /// Every dead delivery the caller reaches, counted per site, receiver and event
    summary: Vec<DeadCount>,
    /// How many dead deliveries the caller reaches in all
    total: u64,
    /// Pass as `cursor` for the next page; null on the last
    next_cursor: Option<String>,
}

/// A dead delivery, without its body.
#[derive(Serialize, ToSchema)]
pub struct DeadDelivery {
    id: String,
    #[schema(value_type = String)]
    site: SiteId,
    /// The receiver, its key masked
    url: String,
    event: String,
    attempts: u32,
    created_at: crate::model::Millis,
    /// When it gave up
    expires_at: crate::model::Millis,
    last_error: Option<String>,
}

impl From<Delivery> for DeadDelivery {
    fn from(d: Delivery) -> Self {
        DeadDelivery {
            url: crate::tickets::webhooks::masked(&d.url),
            id: d.id,
            site: d.site,
            event: d.event,
            attempts: d.attempts,
            created_at: d.created_at,
            expires_at: d.expires_at,
            last_error: d.last_error,
        }
    }
}

/// Webhook deliveries that gave up (dead letters): a page, and counts per receiver.
#[utoipa::path(get, path = "/v1/webhooks/dead", operation_id = "listDeadDeliveries",
    tag = "Webhooks", params(DeadQuery), security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Dead deliveries", body = DeadDeliveries), ReadRefusals))]
async fn dead(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Params(q): Params<DeadQuery>,
) -> Result<Json<DeadDeliveries>, ApiError> {
    let limit = limit(q.limit, 50, MAX_LIMIT)?;
    let after = q.cursor.map(|c| c.0);
    let mut page = Vec::new();
    let mut summary: Vec<DeadCount> = Vec::new();
    for site in sites(&state, q.site.as_ref(), &caller)? {
        let tickets = state.engine.tickets();
        page.extend(tickets.dead(&site, after.as_deref(), limit + 1).await?);
        for mut c in tickets.dead_counts(&site).await? {
            // URLs that differ only in their keys are one receiver to the reader.
            c.url = crate::tickets::webhooks::masked(&c.url);
            match summary
                .iter_mut()
                .find(|s| s.site == c.site && s.url == c.url && s.event == c.event)
            {
                Some(s) => s.count += c.count,
                None => summary.push(c),
            }
        }
    }
    page.sort_by(|a, b| a.id.cmp(&b.id));
    let next_cursor = cut_page(&mut page, limit, |d| &d.id);
    Ok(Json(DeadDeliveries {
        total: summary.iter().map(|c| c.count).sum(),
        deliveries: page.into_iter().map(DeadDelivery::from).collect(),
        summary,
        next_cursor,
    }))
}

/// The dead delivery with this id on a site the caller reaches.
async fn find_dead(state: &AppState, caller: &Caller, id: &str) -> Result<Delivery, ApiError> {
    for site in sites(state, None, caller)? {
        if let Some(d) = state.engine.tickets().dead_one(&site, id).await? {
            return Ok(d);
        }
    }
    Err(ApiError::NotFound("no such dead delivery"))
}

/// One dead delivery, with the body that was sent (its receiver's key masked).
#[utoipa::path(get, path = "/v1/webhooks/dead/{id}", operation_id = "getDeadDelivery",
    tag = "Webhooks", params(("id" = String, Path, description = "The delivery's id")),
    security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "The delivery", body = Delivery), ReadRefusals))]
async fn dead_one(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    let mut d = find_dead(&state, &caller, &id).await?;
    d.url = crate::tickets::webhooks::masked(&d.url);
    Ok(Json(d))
}

/// A dead delivery queued again.
#[derive(Serialize, ToSchema)]
pub struct Requeued {
    id: String,
    /// Always `queued`
    #[schema(example = "queued")]
    status: &'static str,
}

/// Queues a dead delivery again, with a fresh retry window of a day (same delivery id).
#[utoipa::path(post, path = "/v1/webhooks/dead/{id}/retry", operation_id = "retryDeadDelivery",
    tag = "Webhooks", params(("id" = String, Path, description = "The delivery's id")),
    security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Queued again", body = Requeued), ReadRefusals))]
async fn retry(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Json<Requeued>, ApiError> {
    // A site's admin revives their own site's deliveries only.
    find_dead(&state, &caller, &id).await?;
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
    Ok(Json(Requeued {
        id,
        status: "queued",
    }))
}

/// Applies a change to the ticket with this id, whichever site it is on.
async fn change(
    state: &AppState,
    caller: &Caller,
    id: &str,
    change: TicketChange,
) -> Result<Json<Ticket>, ApiError> {
    let (site, _) = find(state, caller, id).await?;
    let t = state
        .engine
        .update_ticket(&site, id, change, &caller.actor)
        .await?
        .ok_or(ApiError::NotFound("no such ticket"))?;
    Ok(Json(t))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    /// Letters of any script, digits, - or _ (else 422 with the tag's index in `field`);
    /// stored lowercase, without duplicates
    #[schema(schema_with = tags_schema)]
    tags: Vec<String>,
}

/// At most 20 tags of 1 to 40 characters (letters of any script: the schema states only the
/// length).
fn tags_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(40)),
        )
        .max_items(Some(20))
        .build()
}

/// Replaces the ticket's tags (at most 20, each 1 to 40 letters, digits, `-` or `_`; stored
/// lowercase, without duplicates).
#[utoipa::path(put, path = "/v1/tickets/{id}/tags", operation_id = "setTicketTags",
    tag = "Tickets", params(("id" = String, Path, description = "The ticket's id")),
    request_body = TagsBody, security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "The ticket", body = Ticket), ReadRefusals, Conflicts))]
async fn set_tags(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TagsBody>,
) -> Result<Json<Ticket>, ApiError> {
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpBody {
    status: FollowUp,
}

/// Sets where follow-up stands: open, pending or solved.
#[utoipa::path(put, path = "/v1/tickets/{id}/follow-up", operation_id = "setTicketFollowUp",
    tag = "Tickets", params(("id" = String, Path, description = "The ticket's id")),
    request_body = FollowUpBody, security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "The ticket", body = Ticket), ReadRefusals))]
async fn set_follow_up(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<FollowUpBody>,
) -> Result<Json<Ticket>, ApiError> {
    change(&state, &caller, &id, TicketChange::FollowUp(body.status)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    /// The answer; the agent's name and the site's sign it, the visitor's message is quoted
    #[schema(min_length = 1, max_length = 20000, pattern = r"\S")]
    text: String,
}

/// The longest email answer, in characters.
const MAX_REPLY_CHARS: usize = 20_000;

/// Answers by email.
///
/// Emails the visitor (the offline message's address, else the visitor's) through the site's
/// SMTP server, then records the answer on the ticket (`email_reply` in its history;
/// `ticket.updated` goes out).
#[utoipa::path(post, path = "/v1/tickets/{id}/reply", operation_id = "replyToTicket",
    tag = "Tickets", params(("id" = String, Path, description = "The ticket's id")),
    request_body = ReplyBody, security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Sent; the ticket with the answer in its history",
            body = Ticket), ReadRefusals, Conflicts))]
async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReplyBody>,
) -> Result<Json<Ticket>, ApiError> {
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
    // Answers to this one come back into the ticket (`inbound`), where the site receives mail.
    let reply_to = state.engine.reply_address(&site_id, &ticket.id);
    let body = format!("{text}{signature}{quoted}");
    match crate::email::send(&site, &to, reply_to.as_deref(), &subject, body).await {
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
    Ok(Json(t))
}
