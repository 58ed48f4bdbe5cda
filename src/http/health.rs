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

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.engine.ready().await {
        Ok(true) => (StatusCode::OK, "ready"),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "subscription down"),
        Err(e) => {
            tracing::warn!(cause = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "backend unreachable")
        }
    }
}
