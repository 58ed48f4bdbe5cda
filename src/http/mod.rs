//! HTTP surfaces: each module owns its `router()`, merged in `router()` here. One error type,
//! `ApiError` (`error`), gives every failure a status, a stable code and a message, logged once;
//! the `Admin` extractor (`extract`) guards every admin route.

mod accounts;
mod attachments;
mod audit;
mod directory;
pub(crate) mod embedded;
mod error;
mod extract;
pub mod health;
mod idempotency;
mod inbound;
#[cfg(test)]
mod openapi;
pub mod privacy;
mod push;
pub mod supervisor;
pub mod tickets;
pub mod widget;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;

pub use crate::app::AppState;
pub use error::ApiError;
pub use extract::{Admin, Caller, Supervisor};

/// This document.
///
/// Generated from the REST types and handlers (`http::openapi`); a unit test keeps the
/// served file equal to what they generate.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openApiDocument",
    tag = "Documentation",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json",
        body = Object)))]
async fn openapi(headers: axum::http::HeaderMap) -> axum::response::Response {
    static DOCUMENT: embedded::Gzipped = embedded::gzipped!("openapi.json");
    DOCUMENT.respond(&headers, "application/json")
}

/// Prometheus metrics (text format 0.0.4).
///
/// Served on the main address unless `metrics_listen` names one of its own (404 here then).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "Health",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain"),
        (status = 404, response = error::Failure)))]
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    if state.engine.config().metrics_listen.is_some() {
        return ApiError::NotFound("metrics are served on metrics_listen").into_response();
    }
    metrics_text(&state)
}

/// The metrics as an HTTP answer.
pub fn metrics_text(state: &AppState) -> axum::response::Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::observe::render(state.engine.site_figures()),
    )
        .into_response()
}

/// Logs each HTTP request once it is answered: method, path, status and time taken. Never the
/// query string (it may carry search words, visitor ids or keys). Health checks and metric
/// scrapes log at debug: they come every few seconds.
async fn log_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // The route's template (`/v1/tickets/{id}`), never the path: one series per route.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    let ms = elapsed * 1000.0;
    // Methods a client made up would each be a series of their own.
    let known: &'static str = match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    metrics::histogram!(
        crate::observe::HTTP_SECONDS,
        "method" => known,
        "route" => route,
        "status" => status.to_string()
    )
    .record(elapsed);
    if matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics") {
        tracing::debug!(method = %method, path, status, ms, "http request");
    } else {
        tracing::info!(method = %method, path, status, ms, "http request");
    }
    resp
}

/// Every request's body must arrive, and its answer be ready, within
/// `limits.body_timeout_secs`: a client that trickles a body cannot hold a connection and a
/// handler for long. 408 `request_timeout` otherwise (the connection is then closed).
async fn body_deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let limit = state.engine.config().limits.body_timeout();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            metrics::counter!(crate::observe::REQUEST_TIMEOUTS).increment(1);
            ApiError::RequestTimeout(format!(
                "the request did not complete within {} s",
                limit.as_secs_f64()
            ))
            .into_response()
        }
    }
}

/// What a connection over `limits.max_connections` is served (`listener`): health checks,
/// so a load balancer still sees the node; anything else 503 `too_many_connections`.
pub fn reserve_router() -> Router<AppState> {
    health::router().fallback(|| async { ApiError::TooManyConnections })
}

/// The REST and static routes; `server` merges them with the WebSocket ones.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(tickets::router())
        .merge(supervisor::router())
        .merge(privacy::router())
        .merge(audit::router())
        .merge(directory::router())
        .merge(accounts::router())
        .merge(push::router())
        .merge(inbound::router())
        .merge(widget::router())
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body_deadline,
        ))
        // Uploads have a deadline of their own, by size: a large file on a slow line is fine,
        // a trickle is not (`attachments`).
        .merge(attachments::router())
        // Outside the routes' own deadlines: a retried POST is answered from what was kept
        // without running again.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(axum::middleware::from_fn(log_request))
        // The documented error body for a route that exists but not with this method.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}
