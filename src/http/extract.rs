//! What REST handlers take from a request besides their own parameters: the admin token
//! (an extractor, so no handler can forget it) and the shared query parameters.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::config::token_hash;
use crate::model::{Millis, SiteId};

/// Proof that the request carries `Authorization: Bearer <admin token>`. Put it in a handler's
/// parameters and the handler runs only for the admin.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let expected = state
            .engine
            .config()
            .admin_token_sha256
            .as_deref()
            .ok_or(ApiError::Unauthorized)?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        // Comparing hashes: equal length, and the token itself never meets a timing side channel.
        if token_hash(token.trim()).eq_ignore_ascii_case(expected) {
            Ok(Admin)
        } else {
            tracing::info!("REST request with a wrong admin token");
            Err(ApiError::Unauthorized)
        }
    }
}

/// Refuses a query parameter the route does not know, naming those it does.
pub fn known_params(q: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::BadRequest(format!(
            "unknown parameter {k}; known: {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// `limit`: 1 to `max`, `default` without it.
pub fn limit_param(
    q: &HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match q.get("limit") {
        None => Ok(default),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| ApiError::BadRequest(format!("limit: expected 1 to {max}"))),
    }
}

/// A time parameter (`since`, `until`): RFC 3339 or Unix milliseconds, if given.
pub fn time_param(q: &HashMap<String, String>, name: &str) -> Result<Option<Millis>, ApiError> {
    q.get(name)
        .map(|v| {
            parse_since(v).map_err(|_| {
                ApiError::BadRequest(format!(
                    "{name}: expected RFC 3339 (2026-11-25T09:00:00Z) or Unix milliseconds"
                ))
            })
        })
        .transpose()
}

/// `since`: RFC 3339 (`2026-11-25T09:00:00Z`) or Unix milliseconds.
pub fn parse_since(v: &str) -> Result<Millis, ApiError> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    v.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            ApiError::BadRequest(
                "since: expected RFC 3339 (2026-11-25T09:00:00Z) or Unix milliseconds".into(),
            )
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
                .ok_or_else(|| ApiError::BadRequest(format!("site: no site {s}")))?;
            Ok(vec![id])
        }
        None => Ok(config.sites.iter().map(|s| s.id.clone()).collect()),
    }
}
