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
use crate::config::Site;
use crate::directory::DirectoryError;
use crate::directory::model::{
    AgentConfig, CannedResponse, DepartmentConfig, SiteConfig, TriggerConfig, WebhookConfig,
};
use crate::model::{AgentId, SiteId};

pub(super) mod credentials;
pub(super) mod docs;
pub(super) mod sites;

use credentials::{invite, issue_invite, new_token, revoke_token};
use docs::Sites;
use sites::{create_site, delete_site, get_site, list_sites, put_site};

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
pub(super) trait Entry:
    Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
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
        self.mask(&mut v);
        v
    }
    /// Hides what a read must not show beyond the secret fields (a webhook URL's key).
    fn mask(&self, _view: &mut Value) {}
    /// A `PUT` that sends back what a read showed masked keeps the stored value.
    fn unmask(&mut self, _stored: &Self) {}
}

/// An `Entry` impl: the type, the site's field (also the route segment), its noun, how to
/// read its id, and any constants that differ from the defaults.
macro_rules! entry {
    ($ty:ty, $field:ident, $noun:literal, |$e:ident| $id:expr $(, { $($extra:tt)* })?) => {
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
entry!(CannedResponse, canned, "canned", |e| &e.shortcut, {
    const ID: &'static str = "shortcut";
});
entry!(TriggerConfig, triggers, "trigger", |e| &e.id);
entry!(WebhookConfig, webhooks, "webhook", |e| &e.id, {
    const SECRETS: &'static [&'static str] = WEBHOOK_SECRETS;
    fn mask(&self, view: &mut Value) {
        view["url"] = json!(crate::tickets::webhooks::masked(&self.url));
    }
    fn unmask(&mut self, stored: &Self) {
        if self.url != stored.url && self.url == crate::tickets::webhooks::masked(&stored.url) {
            self.url = stored.url.clone();
        }
    }
});

/// A webhook's secret fields.
pub(super) const WEBHOOK_SECRETS: &[&str] = &["secret", "previous_secret"];

/// The fields of a site that are its own (the rest have routes of their own).
pub(super) const CHILDREN: &[&str] = &["departments", "agents", "canned", "triggers", "webhooks"];
pub(super) const SITE_SECRETS: &[&str] = &["identity_secret", "sso_secret", "smtp_password"];

/// The body as JSON, or why not (`extract::json_refused`).
pub(super) fn body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, ApiError> {
    let Json(v) = body.map_err(crate::http::extract::json_refused)?;
    if !v.is_object() {
        return Err(ApiError::BadRequest("body: expected a JSON object".into()));
    }
    Ok(v)
}

/// Parses a body into a directory type; serde names the unknown or mistyped field.
pub(super) fn parse<T: DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::Invalid {
        field: "body".into(),
        problem: e.to_string(),
    })
}

/// A validation error's field, relative to the body: `sites[0].departments[1].hours.monday`
/// becomes `hours.monday` for a department, `widget.color` for a site.
pub(super) fn relative(e: ApiError, path: Option<&str>) -> ApiError {
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

pub(super) fn site_of<'a>(
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
pub(super) async fn audited(
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
pub(super) fn reach(state: &AppState, caller: &Caller, site: String) -> Result<Site, ApiError> {
    let site = SiteId(site);
    caller.reaches(&site)?;
    state
        .engine
        .site(&site)
        .map_err(|_| ApiError::Missing(format!("no site {site}")))
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
        view["invite"] = json!(link);
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
        let mut new: E = serde_json::from_value(body)
            .map_err(|e| DirectoryError::Invalid(crate::validation::bad("body", e.to_string())))?;
        new.unmask(slot);
        *slot = new;
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
