//! `/healthz`: the process answers. `/readyz`: the state backend answers and, with Redis, the
//! pub/sub subscription is alive — a load balancer should route only to ready nodes.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
}

/// A backend that has not answered by then counts as down: health checks commonly give up
/// after a second, and a check that times out tells the load balancer less than a 503.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(READY_WITHIN, state.engine.ready()).await {
        Ok(Ok(true)) => (StatusCode::OK, "ready"),
        Ok(Ok(false)) => (StatusCode::SERVICE_UNAVAILABLE, "subscription down"),
        Ok(Err(e)) => {
            tracing::warn!(cause = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "backend unreachable")
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "backend did not answer in time",
            )
        }
    }
}
