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
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
}

/// The verdict of the node's last probe (every 250 ms, each backend given 500 ms): the answer
/// never waits on a backend, so a one-second health check always gets one.
async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.engine.readiness() {
        Readiness::Ready => (StatusCode::OK, "ready"),
        other => (StatusCode::SERVICE_UNAVAILABLE, other.describe()),
    }
}
