//! HTTP surfaces: each module owns its `router()`, merged in `router()` here. One error type,
//! `ApiError`, gives every failure a status, a stable code and a message; details are logged.

pub mod health;
pub mod supervisor;
pub mod tickets;
pub mod widget;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

pub use crate::app::AppState;

/// An HTTP error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl ApiError {
    /// A state or ticket backend failed: logged here once, only "retry" reaches the client.
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %e, "storage backend failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "storage temporarily unavailable",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

/// The OpenAPI document of every REST endpoint.
async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

/// The REST and static routes; `server` merges them with the WebSocket ones.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(tickets::router())
        .merge(supervisor::router())
        .merge(widget::router())
        .route("/v1/openapi.json", get(openapi))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        // The documented error body for a route that exists but not with this method.
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
}
