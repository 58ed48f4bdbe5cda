//! Sites: a site's own settings (its entries have routes of their own, in `mod.rs`). Reads
//! show whether each secret is set, never the secret; a `PUT` that leaves one out keeps it.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{CHILDREN, Entry, SITE_SECRETS, Sites, audited, body, parse, reach, relative, site_of};
use crate::directory::DirectoryError;
use crate::directory::model::SiteConfig;
use crate::http::error::{Conflicts, ReadRefusals};
use crate::http::extract::Caller;
use crate::http::{Admin, ApiError, AppState};
use crate::model::SiteId;

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

/// Only the deployment's admin token creates and deletes sites.
fn deployment_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.site.is_some() {
        return Err(ApiError::Forbidden(
            "sites are created and deleted with the deployment's admin token".into(),
        ));
    }
    Ok(())
}

/// The sites the caller reaches, each with its entries (secrets never shown).
#[utoipa::path(get, path = "/v1/sites", operation_id = "listSites", tag = "Directory", security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Sites", body = Sites), ReadRefusals))]
pub async fn list_sites(
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

/// A site with its entries (secrets never shown).
#[utoipa::path(get, path = "/v1/sites/{site}", operation_id = "getSite", tag = "Directory",
    params(("site" = String, Path, description = "The site's id")), security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "The site", body = SiteConfig), ReadRefusals))]
pub async fn get_site(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(site): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let site = reach(&state, &caller, site)?;
    Ok(Json(site_view(&site)))
}

/// Creates a site with its entries (the deployment's admin token only).
///
/// In force on every node within a second.
#[utoipa::path(post, path = "/v1/sites", operation_id = "createSite", tag = "Directory",
    request_body = SiteConfig, security(("admin" = []), ("session" = [])),
    responses((status = 201, description = "Created", body = SiteConfig), ReadRefusals, Conflicts))]
pub async fn create_site(
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

/// Replaces a site's own settings.
///
/// Its entries have routes of their own. A secret left out keeps its stored value; an empty
/// string clears it.
#[utoipa::path(put, path = "/v1/sites/{site}", operation_id = "updateSite", tag = "Directory",
    params(("site" = String, Path, description = "The site's id")), request_body = SiteConfig, security(("admin" = []), ("session" = [])),
    responses((status = 200, description = "Replaced", body = SiteConfig), ReadRefusals, Conflicts))]
pub async fn put_site(
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

/// Deletes a site and everything under it (the deployment's admin token only).
#[utoipa::path(delete, path = "/v1/sites/{site}", operation_id = "deleteSite",
    tag = "Directory", params(("site" = String, Path, description = "The site's id")), security(("admin" = []), ("session" = [])),
    responses((status = 204, description = "Deleted"), ReadRefusals, Conflicts))]
pub async fn delete_site(
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
