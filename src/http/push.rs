//! Web Push for agents: the server's public key, and the browsers an agent turned
//! notifications on in (`push`). Signed-in agents only, each for their own browsers.

use axum::extract::State;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{Conflicts, ReadRefusals};
use super::extract::{Caller, JsonBody};
use super::{ApiError, AppState};
use crate::model::{AgentId, SiteId};
use crate::push::{Refused, Subscription};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/push/key", get(key))
        .route("/v1/push/subscription", put(subscribe).delete(unsubscribe))
}

/// The server's VAPID public key.
#[derive(Serialize, ToSchema)]
pub struct PushKey {
    /// The uncompressed P-256 point, base64url: `applicationServerKey` for
    /// `PushManager.subscribe`.
    #[schema(
        example = "BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U"
    )]
    public_key: String,
    /// The calling agent's browsers with notifications on.
    browsers: u32,
}

/// This browser's subscription, and how many the agent has.
#[derive(Serialize, ToSchema)]
pub struct Subscribed {
    subscribed: bool,
    /// The agent's browsers with notifications on (at most 10: a new one forgets the oldest).
    browsers: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Unsubscribe {
    /// The endpoint of the browser to forget.
    endpoint: String,
}

#[derive(Serialize, ToSchema)]
pub struct Unsubscribed {
    /// Whether it was there.
    removed: bool,
}

/// The agent's site and id; an admin token is no browser.
fn agent(caller: &Caller) -> Result<(SiteId, AgentId), ApiError> {
    match (&caller.site, &caller.agent) {
        (Some(site), Some(agent)) => Ok((site.clone(), agent.clone())),
        _ => Err(ApiError::Forbidden(
            "notifications are an agent's: sign in as one".into(),
        )),
    }
}

/// The public key browsers subscribe with (the same on every node), and how many browsers
/// of the calling agent have notifications on.
#[utoipa::path(get, path = "/v1/push/key", operation_id = "getPushKey", tag = "Accounts",
    security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "The key", body = PushKey), ReadRefusals))]
async fn key(State(state): State<AppState>, caller: Caller) -> Result<Json<PushKey>, ApiError> {
    let (site, agent) = agent(&caller)?;
    let push = state.engine.push();
    let vapid = push.vapid().await?;
    Ok(Json(PushKey {
        public_key: vapid.public_key(),
        browsers: push.count(&site, &agent).await?,
    }))
}

/// Turns notifications on in a browser: what `PushManager.subscribe` gave it. A browser
/// subscribed by another account moves to this one.
#[utoipa::path(put, path = "/v1/push/subscription", operation_id = "putPushSubscription",
    tag = "Accounts", security(("admin" = []), ("session" = [])),
    request_body = Subscription,
    responses((status = 200, description = "Stored", body = Subscribed), ReadRefusals, Conflicts))]
async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(sub): JsonBody<Subscription>,
) -> Result<Json<Subscribed>, ApiError> {
    let (site, agent) = agent(&caller)?;
    let push = state.engine.push();
    match push
        .subscribe(&site, &agent, &sub, state.engine.now())
        .await
    {
        Ok(()) => {}
        Err(Refused::Invalid(problem)) => {
            let (field, problem) = problem.split_once(": ").unwrap_or(("", &problem));
            return Err(ApiError::Invalid {
                field: field.to_owned(),
                problem: problem.to_owned(),
            });
        }
        Err(Refused::Record(e)) => return Err(e.into()),
    }
    Ok(Json(Subscribed {
        subscribed: true,
        browsers: push.count(&site, &agent).await?,
    }))
}

/// Turns notifications off in a browser.
#[utoipa::path(delete, path = "/v1/push/subscription", operation_id = "deletePushSubscription",
    tag = "Accounts", security(("admin" = []), ("session" = [])),
    request_body = Unsubscribe,
    responses((status = 200, description = "Forgotten", body = Unsubscribed), ReadRefusals, Conflicts))]
async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Unsubscribe>,
) -> Result<Json<Unsubscribed>, ApiError> {
    let (site, agent) = agent(&caller)?;
    let removed = state
        .engine
        .push()
        .unsubscribe(&site, &agent, &body.endpoint)
        .await?;
    Ok(Json(Unsubscribed { removed }))
}
