//! HTTP surfaces: each module owns its `router()`, merged in `router()` here. One error type,
//! `ApiError` (`error`), gives every failure a status, a stable code and a message, logged once;
//! the `Admin` extractor (`extract`) guards every admin route.

mod accounts;
mod audit;
mod directory;
mod error;
mod extract;
pub mod health;
pub mod privacy;
pub mod supervisor;
pub mod tickets;
pub mod widget;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;

pub use crate::app::AppState;
pub use error::ApiError;
pub use extract::{Admin, Caller, SESSION_COOKIE, Supervisor, cookie};

/// The OpenAPI document of every REST endpoint.
async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

/// `GET /metrics`: Prometheus's text format (`observe`). Served on the main address unless
/// `metrics_listen` names one of its own.
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    if state.engine.config().metrics_listen.is_some() {
        return ApiError::NotFound("metrics are served on metrics_listen").into_response();
    }
    metrics_text().into_response()
}

/// The metrics as an HTTP answer.
pub fn metrics_text() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::observe::render(),
    )
}

/// The REST and static routes; `server` merges them with the WebSocket ones.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(tickets::router())
        .merge(supervisor::router())
        .merge(privacy::router())
        .merge(audit::router())
        .merge(directory::router())
        .merge(accounts::router())
        .merge(widget::router())
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound("no such route") })
        // The documented error body for a route that exists but not with this method.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}
