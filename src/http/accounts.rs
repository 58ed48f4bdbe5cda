//! Console sign-in: email and password (argon2id), a session cookie (HttpOnly, SameSite=Strict,
//! Secure behind TLS) with a CSRF token, invite links that set a password, sign-out. Attempts
//! are rate limited per address and per client IP.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::error::{Conflicts, Failure, ReadRefusals};
use super::extract::{Caller, JsonBody};
use super::{ApiError, AppState};
use crate::auth::{random_token, token_hash};
use crate::directory::Credentials;
use crate::directory::accounts::{SESSION_TTL, check_password, hash_password, verify_password};
use crate::directory::model::AgentRole;
use crate::model::{AgentId, SiteId};
use crate::request::SESSION_COOKIE;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/sign-in", post(sign_in))
        .route("/v1/auth/sign-out", post(sign_out))
        .route("/v1/auth/session", get(session))
        .route("/v1/auth/invite", post(accept_invite))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvite {
    /// The token of the invite link (`/console/#invite=TOKEN`)
    token: String,
    /// At least 10 characters
    #[schema(min_length = 10, max_length = 256)]
    password: String,
}

/// Who is signed in.
#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    site: Option<SiteId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    agent: Option<AgentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    role: Option<AgentRole>,
    /// Send it back in X-CSRF-Token on every request that changes something
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf: Option<String>,
    /// The deployment's admin token (no agent)
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    admin: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SignedOut {
    signed_out: bool,
}

/// What the console learns of the agent signed in.
fn who(state: &AppState, site: &SiteId, agent: &AgentId, csrf: &str) -> SignedIn {
    let config = state.engine.config();
    let a = config.site(site).and_then(|s| s.agent(agent));
    SignedIn {
        site: Some(site.clone()),
        agent: Some(agent.clone()),
        name: a.map(|a| a.name.clone()),
        role: a.map(|a| a.role),
        csrf: Some(csrf.to_owned()),
        admin: false,
    }
}

/// Starts a session: the cookie carries a random token (only its hash is stored).
async fn start_session(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    site: &SiteId,
    agent: &AgentId,
) -> Result<Response, ApiError> {
    let token = random_token();
    let csrf = random_token();
    let now = state.engine.now();
    state
        .engine
        .directory()
        .create_session(
            site,
            agent,
            &token_hash(&token),
            &csrf,
            now,
            now + SESSION_TTL.as_millis() as i64,
        )
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if crate::request::forwarded_https(&state.engine.config(), peer, headers) {
            "; Secure"
        } else {
            ""
        }
    );
    let mut response = Json(who(state, site, agent, &csrf)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("the cookie is ASCII"),
    );
    Ok(response)
}

/// Console sign-in with email and password.
///
/// Sets the session cookie (HttpOnly, SameSite=Strict, Secure behind TLS). Rate limited per
/// address and client IP.
#[utoipa::path(post, path = "/v1/auth/sign-in", operation_id = "signIn", tag = "Accounts",
    request_body = SignIn,
    responses((status = 200, description = "Signed in", body = SignedIn), (status = 429, response = Failure), ReadRefusals))]
async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<Response, ApiError> {
    let addr = crate::request::client_addr(&state.engine.config(), peer, &headers);
    // One form of the address for the limit and the lookup alike: variants in case or
    // surrounding whitespace are the same address and share its five attempts.
    let email = crate::directory::accounts::normalize_email(&body.email);
    if !state.engine.sign_ins().allow(&email, addr.ip()) {
        tracing::info!(ip = %addr.ip(), "sign-in refused: too many attempts");
        return Err(ApiError::RateLimited);
    }
    let logins = state.engine.directory().login(&email).await?;
    let password = body.password;
    // argon2 takes tens of milliseconds of CPU: off the async workers. An unknown address
    // costs the same as a wrong password, so timing does not tell which addresses exist.
    // Sites may share an address: the account whose password matches signs in.
    let found = tokio::task::spawn_blocking(move || {
        let hashed: Vec<_> = logins
            .into_iter()
            .filter(|l| l.password_hash.is_some())
            .collect();
        if hashed.is_empty() {
            let _ = verify_password(&DUMMY_HASH, &password);
            return None;
        }
        hashed.into_iter().find(|l| {
            l.password_hash
                .as_deref()
                .is_some_and(|h| verify_password(h, &password))
        })
    })
    .await
    .ok()
    .flatten();
    let Some(login) = found else {
        tracing::info!("sign-in refused: wrong address or password");
        return Err(ApiError::Unauthorized);
    };
    let config = state.engine.config();
    let enabled = config
        .site(&login.site)
        .and_then(|s| s.agent(&login.agent))
        .is_some_and(|a| !a.disabled);
    if !enabled {
        return Err(ApiError::Forbidden("this agent is disabled".into()));
    }
    let response = start_session(&state, peer, &headers, &login.site, &login.agent).await?;
    let actor = format!("agent:{}/{}", login.site, login.agent);
    state
        .engine
        .record(
            &actor,
            "agent.sign_in",
            &login.site,
            &login.agent.0,
            json!({ "ip": addr.ip().to_string() }),
        )
        .await?;
    Ok(response)
}

/// A hash of a random password, verified against when the address is unknown.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&random_token()));

/// Ends the session (CSRF token required, as for every change).
#[utoipa::path(post, path = "/v1/auth/sign-out", operation_id = "signOut", tag = "Accounts",
    security(("session" = [])),
    responses((status = 200, description = "Signed out; the cookie is cleared", body = SignedOut),
        (status = 401, response = Failure), (status = 403, response = Failure)))]
async fn sign_out(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    // Only a console session signs out; a bearer token has nothing to end.
    let Some(hash) = &caller.session else {
        return Err(ApiError::Unauthorized);
    };
    state.engine.directory().end_session(hash).await?;
    let mut response = Json(SignedOut { signed_out: true }).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sb_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

/// Who is signed in, with the session's CSRF token the console sends back.
#[utoipa::path(get, path = "/v1/auth/session", operation_id = "getSession", tag = "Accounts",
    security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "The session", body = SignedIn),
        (status = 401, response = Failure)))]
async fn session(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SignedIn>, ApiError> {
    match (&caller.site, &caller.agent) {
        (Some(site), Some(agent)) => Ok(Json(who(
            &state,
            site,
            agent,
            caller.csrf.as_deref().unwrap_or(""),
        ))),
        _ => Ok(Json(SignedIn {
            site: None,
            agent: None,
            name: None,
            role: Some(AgentRole::Admin),
            csrf: None,
            admin: true,
        })),
    }
}

/// Sets the password an invite link allows (at least 10 characters) and signs in.
#[utoipa::path(post, path = "/v1/auth/invite", operation_id = "acceptInvite", tag = "Accounts",
    request_body = AcceptInvite,
    responses((status = 200, description = "Signed in", body = SignedIn), (status = 429, response = Failure), ReadRefusals, Conflicts))]
async fn accept_invite(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<AcceptInvite>,
) -> Result<Response, ApiError> {
    let addr = crate::request::client_addr(&state.engine.config(), peer, &headers);
    // Invite tokens are 256 random bits; the limit keeps floods of guesses cheap all the same.
    if !state.engine.sign_ins().allow_ip(addr.ip()) {
        return Err(ApiError::RateLimited);
    }
    check_password(&body.password).map_err(|problem| ApiError::Invalid {
        field: "password".into(),
        problem,
    })?;
    let Some((site, agent)) = state
        .engine
        .directory()
        .consume_invite(&token_hash(&body.token), state.engine.now())
        .await?
    else {
        return Err(ApiError::Missing(
            "this invite link is unknown, used or expired; ask an admin for a new one".into(),
        ));
    };
    let password = body.password;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    state
        .engine
        .set_credentials(&site, &agent, Credentials::Password(hash))
        .await?;
    let actor = format!("agent:{site}/{agent}");
    state
        .engine
        .record(&actor, "agent.password_set", &site, &agent.0, json!({}))
        .await?;
    start_session(&state, peer, &headers, &site, &agent).await
}
