//! `Idempotency-Key` on every POST: a client that retries a request (an email answer, an
//! upload, an admin create) after a lost answer sends the same key and gets the first answer
//! again; the request is carried out once.
//!
//! - The key is 1 to 255 visible ASCII characters; it is honoured for signed-in callers (a
//!   bearer token or a console session that signs someone in) and scoped to the credential,
//!   so one caller's key never answers another's request. Anonymous POSTs, and ones whose
//!   credential signs no one in, ignore it.
//! - The first request claims the key in the record database (`idempotency_keys`), with a
//!   fingerprint of its method, path, query and body. A retry with the same fingerprint gets
//!   the kept status and body with `Idempotent-Replayed: true`; one with another fingerprint is
//!   422 `idempotency_key_reused`; one while the first is still being served is 409
//!   `idempotency_key_in_flight` (retry after a moment).
//! - Answers are kept for a day, and only final ones: a 5xx, 401, 403, 408 or 429 (or an
//!   answer over 1 MiB, or one not UTF-8) releases the key so a retry runs again. A claim whose node died is taken over
//!   after `STALE_MS`.
//! - The body is read whole before the handler runs, within `limits.body_timeout_secs` and up
//!   to the largest file a chat may carry.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::extract::Caller;
use super::{ApiError, AppState};
use crate::tickets::IdempotencyClaim;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// A claim older than this whose request never answered is taken over.
const STALE_MS: i64 = 60_000;
/// Answers larger than this are not kept.
const MAX_KEPT: usize = 1024 * 1024;

/// The middleware: passes through everything but a signed-in POST with the header.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| (0x21..=0x7e).contains(&b)) => {
            k.to_owned()
        }
        _ => {
            return ApiError::BadRequest(
                "Idempotency-Key: 1 to 255 visible ASCII characters".into(),
            )
            .into_response();
        }
    };
    let credential = crate::request::bearer(req.headers())
        .or_else(|| crate::request::cookie(req.headers(), crate::request::SESSION_COOKIE));
    let Some(credential) = credential else {
        return next.run(req).await;
    };
    let scope = hex::encode(Sha256::digest(credential.as_bytes()));
    let config = state.engine.config();
    let (mut parts, body) = req.into_parts();
    // Only for a credential that signs someone in: a made-up token claims nothing (no row
    // for an anonymous flood to fill); the handler then refuses it as usual.
    if Caller::from_request_parts(&mut parts, &state)
        .await
        .is_err()
    {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let limit = config.attachments.max_bytes + 64 * 1024;
    let bytes = match tokio::time::timeout(
        config.limits.body_timeout(),
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return ApiError::TooLarge(format!("the body is over {limit} bytes")).into_response();
        }
        Err(_) => {
            return ApiError::RequestTimeout(format!(
                "the request did not complete within {} s",
                config.limits.body_timeout().as_secs_f64()
            ))
            .into_response();
        }
    };
    let fingerprint = {
        let mut h = Sha256::new();
        h.update(parts.method.as_str());
        h.update(b"\n");
        h.update(parts.uri.to_string());
        h.update(b"\n");
        h.update(&bytes);
        hex::encode(h.finalize())
    };
    let tickets = state.engine.tickets();
    let now = state.engine.now();
    let claim = tickets
        .idempotency_claim(&scope, &key, &fingerprint, now, now - STALE_MS)
        .await;
    match claim {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(IdempotencyClaim::Mismatch) => return ApiError::IdempotencyKeyReused.into_response(),
        Ok(IdempotencyClaim::InFlight) => return ApiError::IdempotencyKeyInFlight.into_response(),
        Ok(IdempotencyClaim::Answered(status, content_type, body)) => {
            return replay(status, &content_type, body);
        }
        Ok(IdempotencyClaim::Claimed) => {}
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = resp.status();
    // Not final: a server fault, or a refusal a retry may not meet (signed out, CSRF, a
    // deadline, a rate limit). The retry runs again.
    if status.is_server_error() || matches!(status.as_u16(), 401 | 403 | 408 | 429) {
        if let Err(e) = tickets.idempotency_release(&scope, &key).await {
            tracing::warn!(cause = %e, "idempotency key not released");
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_KEPT).await else {
        // Too large to keep (and now consumed): the retry runs again.
        if let Err(e) = tickets.idempotency_release(&scope, &key).await {
            tracing::warn!(cause = %e, "idempotency key not released");
        }
        return ApiError::Unavailable("answer over the idempotency limit".into()).into_response();
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let kept = match std::str::from_utf8(&bytes) {
        Ok(text) => {
            tickets
                .idempotency_keep(&scope, &key, status.as_u16(), &content_type, text)
                .await
        }
        Err(_) => tickets.idempotency_release(&scope, &key).await,
    };
    if let Err(e) = kept {
        tracing::warn!(cause = %e, "idempotent answer not kept");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The kept answer, marked as a replay.
fn replay(status: u16, content_type: &str, body: String) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Bytes::from(body),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp.headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}
