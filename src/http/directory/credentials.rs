//! Agents' credentials: invite links (also the password reset) and API tokens, each shown
//! once in the answer that makes it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::audited;
use crate::auth::{random_token, token_hash};
use crate::directory::Credentials;
use crate::directory::accounts::INVITE_TTL;
use crate::directory::model::AgentConfig;
use crate::http::error::{Conflicts, ReadRefusals};
use crate::http::extract::Caller;
use crate::http::{Admin, ApiError, AppState};
use crate::model::{AgentId, SiteId};

/// The agent, if the directory in force lists it.
fn agent_of(state: &AppState, site: &SiteId, id: &AgentId) -> Result<AgentConfig, ApiError> {
    let s = state.engine.site(site)?;
    s.agent(id)
        .cloned()
        .ok_or_else(|| ApiError::Missing(format!("no agent {id}")))
}

/// An invite link: opening it lets the agent set a password.
#[derive(Serialize, ToSchema)]
#[schema(as = Invite)]
pub struct InviteLink {
    /// `/console/#invite=TOKEN`: shown once; sets the password
    url: String,
    /// Unix milliseconds
    expires_at: crate::model::Millis,
}

#[derive(Serialize, ToSchema)]
pub struct InviteAnswer {
    invite: InviteLink,
}

/// A new API token, shown once.
#[derive(Serialize, ToSchema)]
pub struct NewToken {
    token: String,
}

/// Makes a new invite link (clearing the password and signing the agent out): the link is in
/// the answer only.
pub(super) async fn issue_invite(
    state: &AppState,
    site: &SiteId,
    id: &AgentId,
) -> Result<InviteLink, ApiError> {
    let token = random_token();
    let until = state.engine.now() + INVITE_TTL.as_millis() as i64;
    state
        .engine
        .set_credentials(
            site,
            id,
            Credentials::Invite {
                hash: token_hash(&token),
                until,
            },
        )
        .await?;
    Ok(InviteLink {
        url: format!("/console/#invite={token}"),
        expires_at: until,
    })
}

/// A new invite link, also the password reset.
///
/// Clears the password, ends the agent's sessions and closes their sockets. The link is in
/// the answer only.
#[utoipa::path(post, path = "/v1/sites/{site}/agents/{id}/invite", operation_id = "inviteAgent",
    tag = "Accounts", params(("site" = String, Path, description = "The site's id"), ("id" = String, Path, description = "The agent's id")), security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "The link, shown once", body = InviteAnswer), ReadRefusals, Conflicts))]
pub async fn invite(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path((site, id)): Path<(String, String)>,
) -> Result<Json<InviteAnswer>, ApiError> {
    let (site, id) = (SiteId(site), AgentId(id));
    caller.reaches(&site)?;
    let agent = agent_of(&state, &site, &id)?;
    if agent.email.is_none() {
        return Err(ApiError::Invalid {
            field: "email".into(),
            problem: "the agent needs an address to sign in with".into(),
        });
    }
    let link = issue_invite(&state, &site, &id).await?;
    audited(
        &state,
        &caller,
        "directory.agent.invite".into(),
        &site,
        &id.0,
    )
    .await?;
    Ok(Json(InviteAnswer { invite: link }))
}

/// A new API token for the agent, shown once.
///
/// The old one is refused at once and its sockets closed.
#[utoipa::path(post, path = "/v1/sites/{site}/agents/{id}/token",
    operation_id = "rotateAgentToken", tag = "Accounts", params(("site" = String, Path, description = "The site's id"), ("id" = String, Path, description = "The agent's id")), security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "The token", body = NewToken), ReadRefusals))]
pub async fn new_token(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path((site, id)): Path<(String, String)>,
) -> Result<Json<NewToken>, ApiError> {
    let token = random_token();
    set_token(&state, &caller, site, id, Some(&token)).await?;
    Ok(Json(NewToken { token }))
}

/// Revokes the agent's API token.
#[utoipa::path(delete, path = "/v1/sites/{site}/agents/{id}/token",
    operation_id = "revokeAgentToken", tag = "Accounts", params(("site" = String, Path, description = "The site's id"), ("id" = String, Path, description = "The agent's id")), security(("admin" = []), ("session" = [])),
    responses((status = 204, description = "Revoked"), ReadRefusals))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path((site, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    set_token(&state, &caller, site, id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets (or, with none, revokes) an agent's API token, audit-logged.
async fn set_token(
    state: &AppState,
    caller: &Caller,
    site: String,
    id: String,
    token: Option<&str>,
) -> Result<(), ApiError> {
    let (site, id) = (SiteId(site), AgentId(id));
    caller.reaches(&site)?;
    agent_of(state, &site, &id)?;
    let hash = token.map(token_hash);
    state
        .engine
        .set_credentials(&site, &id, Credentials::Token(hash))
        .await?;
    let action = if token.is_some() {
        "directory.agent.token"
    } else {
        "directory.agent.token_revoked"
    };
    audited(state, caller, action.into(), &site, &id.0).await
}
