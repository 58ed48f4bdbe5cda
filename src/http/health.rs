//! `/healthz`: the process answers. `/readyz`: the state backend answers (with Redis: as the
//! primary, with this node's pub/sub subscription alive) and so does the record database — a
//! load balancer should route only to ready nodes.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::AppState;
use crate::engine::Readiness;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthy))
        .route("/readyz", get(ready))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", operation_id = "health", tag = "Health",
    responses((status = 200, description = "ok", body = String, content_type = "text/plain")))]
async fn healthy() -> &'static str {
    "ok"
}

/// The state backend (and Redis pub/sub) and the record database are reachable.
///
/// The verdict of the node's last probe (every 250 ms, each backend given 500 ms): the answer
/// never waits on a backend, so a one-second health check always gets one.
#[utoipa::path(get, path = "/readyz", operation_id = "readiness", tag = "Health",
    responses((status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 503, description = "not ready, and why", body = String,
            content_type = "text/plain")))]
async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.engine.readiness() {
        Readiness::Ready => (StatusCode::OK, "ready"),
        other => (StatusCode::SERVICE_UNAVAILABLE, other.describe()),
    }
}
