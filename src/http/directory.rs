//! The admin API of the directory: sites and, under each, departments, agents, canned
//! responses, triggers and webhooks. Create, read, update, delete; every change is validated
//! as the configuration file is (errors name the field, relative to the body), audit-logged,
//! in force on this node at once and on every other within a second.
//!
//! Bodies have the configuration's shape (docs/api.md). Secrets are write-only: views say
//! whether one is set, and a `PUT` that leaves a secret out keeps the stored one.

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::extract::Caller;
use super::{Admin, ApiError, AppState};
use crate::auth::{random_token, token_hash};
use crate::config::Site;
use crate::directory::accounts::INVITE_TTL;
use crate::directory::model::{
    AgentConfig, CannedResponse, DepartmentConfig, SiteConfig, TriggerConfig, WebhookConfig,
};
use crate::directory::{Credentials, DirectoryError};
use crate::model::{AgentId, SiteId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sites", get(list_sites).post(create_site))
        .route(
            "/v1/sites/{site}",
            get(get_site).put(put_site).delete(delete_site),
        )
        .merge(entries::<DepartmentConfig>())
        .merge(entries::<AgentConfig>())
        .merge(entries::<CannedResponse>())
        .merge(entries::<TriggerConfig>())
        .merge(entries::<WebhookConfig>())
        .route("/v1/sites/{site}/agents/{id}/invite", post(invite))
        .route(
            "/v1/sites/{site}/agents/{id}/token",
            post(new_token).delete(revoke_token),
        )
}

fn entries<E: Entry>() -> Router<AppState> {
    Router::new()
        .route(
            &format!("/v1/sites/{{site}}/{}", E::PATH),
            get(list::<E>).post(create::<E>),
        )
        .route(
            &format!("/v1/sites/{{site}}/{}/{{id}}", E::PATH),
            get(one::<E>).put(replace::<E>).delete(remove::<E>),
        )
}

/// One kind of entry under a site.
trait Entry: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The route segment and the site's field.
    const PATH: &'static str;
    /// In audit actions and messages.
    const NOUN: &'static str;
    /// Secret fields a `PUT` keeps when the body leaves them out.
    const SECRETS: &'static [&'static str] = &[];
    /// The field that holds the id.
    const ID: &'static str = "id";
    fn id(&self) -> &str;
    fn list(site: &SiteConfig) -> &Vec<Self>;
    fn list_mut(site: &mut SiteConfig) -> &mut Vec<Self>;
    /// What a read shows: no secrets.
    fn view(&self) -> Value {
        let mut v = json!(self);
        for s in Self::SECRETS {
            if let Some(o) = v.as_object_mut() {
                let set = o.remove(*s).is_some_and(|x| !x.is_null());
                o.insert(format!("{s}_set"), json!(set));
            }
        }
        v
    }
}

/// An `Entry` impl: the type, the site's field (also the route segment), its noun, how to
/// read its id, and any constants that differ from the defaults.
macro_rules! entry {
    ($ty:ty, $field:ident, $noun:literal, |$e:ident| $id:expr $(, $($extra:tt)*)?) => {
        impl Entry for $ty {
            const PATH: &'static str = stringify!($field);
            const NOUN: &'static str = $noun;
            $($($extra)*)?
            fn id(&self) -> &str {
                let $e = self;
                $id
            }
            fn list(site: &SiteConfig) -> &Vec<Self> {
                &site.$field
            }
            fn list_mut(site: &mut SiteConfig) -> &mut Vec<Self> {
                &mut site.$field
            }
        }
    };
}

entry!(DepartmentConfig, departments, "department", |e| &e.id.0);
entry!(AgentConfig, agents, "agent", |e| &e.id.0);
entry!(
    CannedResponse,
    canned,
    "canned",
    |e| &e.shortcut,
    const ID: &'static str = "shortcut";
);
entry!(TriggerConfig, triggers, "trigger", |e| &e.id);
entry!(
    WebhookConfig,
    webhooks,
    "webhook",
    |e| &e.id,
    const SECRETS: &'static [&'static str] = &["secret"];
);

/// The fields of a site that are its own (the rest have routes of their own).
const CHILDREN: &[&str] = &["departments", "agents", "canned", "triggers", "webhooks"];
const SITE_SECRETS: &[&str] = &["identity_secret", "sso_secret", "smtp_password"];

/// A site's secret by its name in SITE_SECRETS.
fn secret_mut<'a>(site: &'a mut SiteConfig, name: &str) -> &'a mut Option<crate::model::Secret> {
    match name {
        "identity_secret" => &mut site.identity_secret,
        "sso_secret" => &mut site.sso_secret,
        _ => &mut site.smtp_password,
    }
}

/// A site as a read shows it: its own settings and its entries, no secrets.
fn site_view(site: &SiteConfig) -> Value {
    let mut v = json!(site);
    if let Some(o) = v.as_object_mut() {
        for s in SITE_SECRETS {
            let set = o.remove(*s).is_some_and(|x| !x.is_null());
            o.insert(format!("{s}_set"), json!(set));
        }
        o.insert(
            "agents".into(),
            json!(site.agents.iter().map(Entry::view).collect::<Vec<_>>()),
        );
        o.insert(
            "webhooks".into(),
            json!(site.webhooks.iter().map(Entry::view).collect::<Vec<_>>()),
        );
    }
    v
}

/// The body as JSON, or a 400 that says what is wrong with it.
fn body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, ApiError> {
    let Json(v) = body.map_err(|e| ApiError::BadRequest(format!("body: {}", e.body_text())))?;
    if !v.is_object() {
        return Err(ApiError::BadRequest("body: expected a JSON object".into()));
    }
    Ok(v)
}

/// Parses a body into a directory type; serde names the unknown or mistyped field.
fn parse<T: DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::Invalid {
        field: "body".into(),
        problem: e.to_string(),
    })
}

/// A validation error's field, relative to the body: `sites[0].departments[1].hours.monday`
/// becomes `hours.monday` for a department, `widget.color` for a site.
fn relative(e: ApiError, path: Option<&str>) -> ApiError {
    let ApiError::Invalid { field, problem } = e else {
        return e;
    };
    let mut rest = field.as_str();
    if let Some(i) = rest.find("].")
        && rest.starts_with("sites[")
    {
        rest = &rest[i + 2..];
        if let Some(p) = path
            && rest.starts_with(&format!("{p}["))
            && let Some(j) = rest.find("].")
        {
            rest = &rest[j + 2..];
        }
    }
    ApiError::Invalid {
        field: rest.to_owned(),
        problem,
    }
}

fn site_of<'a>(
    sites: &'a mut [SiteConfig],
    id: &SiteId,
) -> Result<&'a mut SiteConfig, DirectoryError> {
    sites
        .iter_mut()
        .find(|s| &s.id == id)
        .ok_or_else(|| DirectoryError::NotFound(format!("no site {id}")))
}

/// Audit-logs a directory change. The change is made; a failed audit write is logged, and
/// the request answers 503 so the caller knows the record is incomplete.
async fn audited(
    state: &AppState,
    caller: &Caller,
    action: String,
    site: &SiteId,
    subject: &str,
) -> Result<(), ApiError> {
    state
        .engine
        .record(&caller.actor, &action, site, subject, json!({}))
        .await?;
    Ok(())
}

/// The site a path names, if the caller reaches it.
fn reach(state: &AppState, caller: &Caller, site: String) -> Result<Site, ApiError> {
    let site = SiteId(site);
    caller.reaches(&site)?;
    state
        .engine
        .site(&site)
        .map_err(|_| ApiError::Missing(format!("no site {site}")))
}

/// Only the deployment's admin token creates and deletes sites.
fn deployment_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.site.is_some() {
        return Err(ApiError::Forbidden(
            "sites are created and deleted with the deployment's admin token".into(),
        ));
    }
    Ok(())
}

async fn list_sites(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<Json<Value>, ApiError> {
    let config = state.engine.config();
    let sites: Vec<Value> = config
        .sites
        .iter()
        .filter(|s| caller.reaches(&s.id).is_ok())
        .map(site_view)
        .collect();
    Ok(Json(json!({ "sites": sites })))
}

async fn get_site(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(site): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let site = reach(&state, &caller, site)?;
    Ok(Json(site_view(&site)))
}

async fn create_site(
    State(state): State<AppState>,
    Admin(caller): Admin,
    raw: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    deployment_admin(&caller)?;
    let mut site: SiteConfig = parse(body(raw)?)?;
    for (j, w) in site.webhooks.iter_mut().enumerate() {
        if w.id.is_empty() {
            w.id = format!("hook-{}", j + 1);
        }
    }
    let id = site.id.clone();
    let new = site.clone();
    state
        .engine
        .change_directory(move |sites| {
            if sites.iter().any(|s| s.id == new.id) {
                return Err(DirectoryError::Conflict(format!("site {} exists", new.id)));
            }
            sites.push(new.clone());
            Ok(())
        })
        .await
        .map_err(|e| relative(e.into(), None))?;
    audited(&state, &caller, "directory.site.create".into(), &id, &id.0).await?;
    let site = state.engine.site(&id)?;
    Ok((StatusCode::CREATED, Json(site_view(&site))))
}

async fn put_site(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(site): Path<String>,
    raw: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = SiteId(site);
    caller.reaches(&id)?;
    let mut v = body(raw)?;
    let o = v.as_object_mut().expect("body() checked it is an object");
    if let Some(child) = CHILDREN.iter().find(|c| o.contains_key(**c)) {
        return Err(ApiError::Invalid {
            field: (*child).into(),
            problem: format!("managed at /v1/sites/{id}/{child}"),
        });
    }
    if o.get("id").is_some_and(|i| i != &json!(id.0)) {
        return Err(ApiError::Invalid {
            field: "id".into(),
            problem: "a site's id cannot change".into(),
        });
    }
    o.insert("id".into(), json!(id.0));
    o.insert("departments".into(), json!([]));
    let secrets_given: Vec<&str> = SITE_SECRETS
        .iter()
        .copied()
        .filter(|s| o.contains_key(*s))
        .collect();
    let mut own: SiteConfig = parse(v)?;
    let at = id.clone();
    // An empty secret clears it.
    for name in SITE_SECRETS {
        let s = secret_mut(&mut own, name);
        if s.as_ref().is_some_and(|x| x.expose().is_empty()) {
            *s = None;
        }
    }
    state
        .engine
        .change_directory(move |sites| {
            let site = site_of(sites, &at)?;
            let mut next = own.clone();
            // A secret left out of the body keeps its stored value.
            for name in SITE_SECRETS {
                if !secrets_given.contains(name) {
                    *secret_mut(&mut next, name) = secret_mut(site, name).clone();
                }
            }
            next.departments = std::mem::take(&mut site.departments);
            next.agents = std::mem::take(&mut site.agents);
            next.canned = std::mem::take(&mut site.canned);
            next.triggers = std::mem::take(&mut site.triggers);
            next.webhooks = std::mem::take(&mut site.webhooks);
            *site = next;
            Ok(())
        })
        .await
        .map_err(|e| relative(e.into(), None))?;
    audited(&state, &caller, "directory.site.update".into(), &id, &id.0).await?;
    let site = state.engine.site(&id)?;
    Ok(Json(site_view(&site)))
}

async fn delete_site(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(site): Path<String>,
) -> Result<StatusCode, ApiError> {
    deployment_admin(&caller)?;
    let id = SiteId(site);
    let gone = id.clone();
    state
        .engine
        .change_directory(move |sites| {
            site_of(sites, &gone)?;
            sites.retain(|s| s.id != gone);
            Ok(())
        })
        .await
        .map_err(|e| relative(e.into(), None))?;
    audited(&state, &caller, "directory.site.delete".into(), &id, &id.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list<E: Entry>(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(site): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let site = reach(&state, &caller, site)?;
    let items: Vec<Value> = E::list(&site).iter().map(Entry::view).collect();
    Ok(Json(json!({ E::PATH: items })))
}

async fn one<E: Entry>(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path((site, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let site = reach(&state, &caller, site)?;
    E::list(&site)
        .iter()
        .find(|e| e.id() == id)
        .map(|e| Json(e.view()))
        .ok_or_else(|| ApiError::Missing(format!("no {} {id}", E::NOUN)))
}

/// Agents' credentials have routes of their own; a body cannot set them.
fn refuse_credentials<E: Entry>(v: &Value) -> Result<(), ApiError> {
    if E::PATH == "agents" {
        for f in ["token_sha256", "password_argon2"] {
            if v.get(f).is_some() {
                return Err(ApiError::Invalid {
                    field: f.into(),
                    problem: "set through the agent's /token route or an invite link".into(),
                });
            }
        }
    }
    Ok(())
}

async fn create<E: Entry>(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(site): Path<String>,
    raw: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let site = SiteId(site);
    caller.reaches(&site)?;
    let v = body(raw)?;
    refuse_credentials::<E>(&v)?;
    let entry: E = parse(v)?;
    let id = entry.id().to_owned();
    edit::<E>(&state, &caller, &site, &id, "create", move |site| {
        if E::list(site).iter().any(|e| e.id() == entry.id()) {
            let (noun, id) = (E::NOUN, entry.id());
            return Err(DirectoryError::Conflict(format!("{noun} {id} exists")));
        }
        E::list_mut(site).push(entry.clone());
        Ok(())
    })
    .await?;
    let mut view = current::<E>(&state, &site, &id)?;
    // A new agent with an address gets an invite link at once: shown here only.
    if E::PATH == "agents" && view.get("email").is_some_and(|e| !e.is_null()) {
        let link = issue_invite(&state, &site, &AgentId(id.clone())).await?;
        view["invite"] = link;
    }
    Ok((StatusCode::CREATED, Json(view)))
}

/// Changes one site's entries of a kind, validated and stored, then audit-logged as
/// `directory.<noun>.<op>`; a refusal names the field relative to the entry.
async fn edit<E: Entry>(
    state: &AppState,
    caller: &Caller,
    site: &SiteId,
    id: &str,
    op: &str,
    mut change: impl FnMut(&mut SiteConfig) -> Result<(), DirectoryError>,
) -> Result<(), ApiError> {
    let at = site.clone();
    state
        .engine
        .change_directory(move |sites| change(site_of(sites, &at)?))
        .await
        .map_err(|e| relative(e.into(), Some(E::PATH)))?;
    let action = format!("directory.{}.{op}", E::NOUN);
    audited(state, caller, action, site, id).await
}

/// The entry as the directory in force shows it.
fn current<E: Entry>(state: &AppState, site: &SiteId, id: &str) -> Result<Value, ApiError> {
    let site = state.engine.site(site)?;
    E::list(&site)
        .iter()
        .find(|e| e.id() == id)
        .map(Entry::view)
        .ok_or_else(|| ApiError::Missing(format!("no {} {id}", E::NOUN)))
}

async fn replace<E: Entry>(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path((site, id)): Path<(String, String)>,
    raw: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let site = SiteId(site);
    caller.reaches(&site)?;
    let mut v = body(raw)?;
    refuse_credentials::<E>(&v)?;
    let o = v.as_object_mut().expect("body() checked it is an object");
    if o.get(E::ID).is_some_and(|i| i != &json!(id)) {
        return Err(ApiError::Invalid {
            field: E::ID.into(),
            problem: "differs from the id in the path; ids cannot change".into(),
        });
    }
    o.insert(E::ID.into(), json!(id));
    let missing: Vec<&str> = E::SECRETS
        .iter()
        .copied()
        .filter(|s| !o.contains_key(*s))
        .collect();
    let key = id.clone();
    edit::<E>(&state, &caller, &site, &id, "update", move |site| {
        let Some(slot) = E::list_mut(site).iter_mut().find(|e| e.id() == key) else {
            return Err(DirectoryError::NotFound(format!("no {} {key}", E::NOUN)));
        };
        let mut body = v.clone();
        // Secrets left out keep their stored values.
        let stored = json!(slot);
        for s in &missing {
            body[*s] = stored[*s].clone();
        }
        *slot = serde_json::from_value(body)
            .map_err(|e| DirectoryError::Invalid(crate::validation::bad("body", e.to_string())))?;
        Ok(())
    })
    .await?;
    Ok(Json(current::<E>(&state, &site, &id)?))
}

async fn remove<E: Entry>(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path((site, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let site = SiteId(site);
    caller.reaches(&site)?;
    let key = id.clone();
    edit::<E>(&state, &caller, &site, &id, "delete", move |site| {
        let list = E::list_mut(site);
        let before = list.len();
        list.retain(|e| e.id() != key);
        if list.len() == before {
            return Err(DirectoryError::NotFound(format!("no {} {key}", E::NOUN)));
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The agent, if the directory in force lists it.
fn agent_of(state: &AppState, site: &SiteId, id: &AgentId) -> Result<AgentConfig, ApiError> {
    let s = state.engine.site(site)?;
    s.agent(id)
        .cloned()
        .ok_or_else(|| ApiError::Missing(format!("no agent {id}")))
}

/// Makes a new invite link (clearing the password and signing the agent out): the link is in
/// the answer only.
async fn issue_invite(state: &AppState, site: &SiteId, id: &AgentId) -> Result<Value, ApiError> {
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
    Ok(json!({
        "url": format!("/console/#invite={token}"),
        "expires_at": until,
    }))
}

/// `POST …/agents/{id}/invite`: a new invite link, also the way to reset a password.
async fn invite(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path((site, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "invite": link })))
}

/// `POST …/agents/{id}/token`: a new API token, shown once; the old one is refused at once.
async fn new_token(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path((site, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let token = random_token();
    set_token(&state, &caller, site, id, Some(&token)).await?;
    Ok(Json(json!({ "token": token })))
}

/// `DELETE …/agents/{id}/token`: no API token any more.
async fn revoke_token(
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
