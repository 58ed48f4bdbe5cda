//! `POST /v1/inbound/email`: a visitor's email reply, raw, from a mail relay (an MTA's pipe,
//! a provider's inbound webhook): filed into the ticket its reply address names (`inbound`).

use axum::extract::{Request, State};
use axum::routing::post;
use axum::{Json, Router};

use super::error::{Conflicts, ReadRefusals};
use super::extract::Admin;
use super::{ApiError, AppState};
use crate::engine::Filed;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/inbound/email", post(receive))
}

/// Files a raw email (RFC 5322 with MIME, as received) into the ticket whose reply address
/// is among its recipients (To, Cc, Delivered-To, X-Original-To): the text without the quoted
/// conversation, and its files. The ticket is open again, and the department is told. The
/// same `Message-ID` twice is filed once (`duplicate`).
#[utoipa::path(post, path = "/v1/inbound/email", operation_id = "receiveEmail", tag = "Tickets",
    security(("admin" = []), ("session" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The message as received, headers and body (any Content-Type is taken: \
            message/rfc822 says it best)"),
    responses((status = 200, description = "Filed", body = Filed),
        (status = 413, response = super::error::Failure),
        (status = 429, response = super::error::Failure), ReadRefusals, Conflicts))]
async fn receive(
    State(state): State<AppState>,
    Admin(caller): Admin,
    req: Request,
) -> Result<Json<Filed>, ApiError> {
    let max = crate::inbound::max_bytes(&state.engine.config());
    let raw = axum::body::to_bytes(req.into_body(), max)
        .await
        .map_err(|_| ApiError::TooLarge(format!("a message may have at most {max} bytes")))?;
    let mail = crate::inbound::parse(&raw).ok_or_else(|| ApiError::Invalid {
        field: "message".into(),
        problem: "not an email (no From)".into(),
    })?;
    let (site, ticket) = mail
        .recipients
        .iter()
        .filter_map(|r| state.engine.reply_ticket(r))
        .find(|(site, _)| caller.reaches(site).is_ok())
        .ok_or(ApiError::NotFound(
            "no reply address of a ticket among the recipients",
        ))?;
    let filed = state
        .engine
        .email_received(&site, &ticket, &mail)
        .await?
        .ok_or(ApiError::NotFound("no such ticket"))?;
    Ok(Json(filed))
}
