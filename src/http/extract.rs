//! What REST handlers take from a request besides their own parameters: who is calling (the
//! `Caller`, and the `Admin` and `Supervisor` extractors that demand a role, so no handler can
//! forget it) and the shared query parameters.

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::auth::token_hash;
use crate::directory::model::AgentRole;
use crate::model::{AgentId, Millis, SiteId};
use crate::request::{SESSION_COOKIE, bearer, cookie};

/// Who is calling: the deployment's admin token, or an agent (by API token or console
/// session) with their role on their own site.
#[derive(Clone, Debug)]
pub struct Caller {
    /// For the audit log: `admin` or `agent:<site>/<id>`.
    pub actor: String,
    pub role: AgentRole,
    /// The agent's site; None for the admin token, which reaches every site.
    pub site: Option<SiteId>,
    pub agent: Option<AgentId>,
    /// The console session's CSRF token (cookie sign-ins only), for the console to send back.
    pub csrf: Option<String>,
    /// The console session cookie's hash (cookie sign-ins only), so signing out can end it.
    pub session: Option<String>,
}

impl Caller {
    /// Refuses a site outside the caller's reach.
    pub fn reaches(&self, site: &SiteId) -> Result<(), ApiError> {
        match &self.site {
            Some(own) if own != site => Err(ApiError::Forbidden(format!(
                "signed in to site {own}, not {site}"
            ))),
            _ => Ok(()),
        }
    }

    fn at_least(self, role: AgentRole) -> Result<Self, ApiError> {
        if self.role >= role {
            Ok(self)
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {} role",
                role.as_str()
            )))
        }
    }
}

/// The enabled agent of the directory in force, or a refusal.
fn enabled(state: &AppState, site: &SiteId, agent: &AgentId) -> Result<AgentRole, ApiError> {
    let config = state.engine.config();
    match config.site(site).and_then(|s| s.agent(agent)) {
        Some(a) if !a.disabled => Ok(a.role),
        _ => Err(ApiError::Unauthorized),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = bearer(&parts.headers) {
            // Comparing hashes: the token itself never meets a timing side channel.
            let hash = token_hash(token);
            if let Some(expected) = state.engine.config().admin_token_sha256.as_deref()
                && hash.eq_ignore_ascii_case(expected)
            {
                return Ok(Caller {
                    actor: "admin".into(),
                    role: AgentRole::Admin,
                    site: None,
                    agent: None,
                    csrf: None,
                    session: None,
                });
            }
            let Some((site, agent)) = state.engine.directory().agent_by_token(&hash).await? else {
                tracing::info!("REST request with an unknown bearer token");
                return Err(ApiError::Unauthorized);
            };
            let role = enabled(state, &site, &agent)?;
            return Ok(Caller {
                actor: format!("agent:{site}/{agent}"),
                role,
                site: Some(site),
                agent: Some(agent),
                csrf: None,
                session: None,
            });
        }
        let Some(cookie) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(ApiError::Unauthorized);
        };
        let session_hash = token_hash(cookie);
        let session = state
            .engine
            .directory()
            .session(&session_hash, state.engine.now())
            .await?
            .ok_or(ApiError::Unauthorized)?;
        // A cookie rides along on any request the browser makes, also from other pages:
        // anything that changes something must also show the token only our page can read.
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let given = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if token_hash(given) != token_hash(&session.csrf) {
                return Err(ApiError::Csrf);
            }
        }
        let role = enabled(state, &session.site, &session.agent)?;
        Ok(Caller {
            actor: format!("agent:{}/{}", session.site, session.agent),
            role,
            site: Some(session.site),
            agent: Some(session.agent),
            csrf: Some(session.csrf),
            session: Some(session_hash),
        })
    }
}

/// A caller with the admin role (the admin token, or an agent whose role is admin). Put it in
/// a handler's parameters and the handler runs only for them.
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Admin(caller.at_least(AgentRole::Admin)?))
    }
}

/// A caller with the supervisor role or above.
pub struct Supervisor(pub Caller);

impl FromRequestParts<AppState> for Supervisor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Supervisor(caller.at_least(AgentRole::Supervisor)?))
    }
}

/// A route's query parameters as a typed struct (`#[serde(deny_unknown_fields)]`): a parameter
/// the route does not know, or one that does not parse, is a `400 bad_request` naming it
/// (`since: expected RFC 3339 …`, `unknown field \`x\`, expected one of …`).
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                ApiError::BadRequest(if path == "." {
                    inner
                } else {
                    format!("{path}: {inner}")
                })
            })
    }
}

/// The `site` parameter alone: which site (default: every site the caller reaches).
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SiteParam {
    /// Only this site (default: every site the caller reaches)
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub site: Option<SiteId>,
}

/// `limit`: 1 to `max`, `default` without it.
pub fn limit(given: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match given {
        None => Ok(default),
        Some(l) if (1..=max).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::BadRequest(format!("limit: expected 1 to {max}"))),
    }
}

/// Cuts `items` (sorted, read `limit + 1` per site) to a page of `limit`, and returns the
/// `next_cursor`: the last id kept when more were read, none on the last page.
pub fn cut_page<T>(items: &mut Vec<T>, limit: usize, id: impl Fn(&T) -> &str) -> Option<String> {
    let more = items.len() > limit;
    items.truncate(limit);
    if more {
        items.last().map(|t| id(t).to_owned())
    } else {
        None
    }
}

/// `cursor`: the `next_cursor` of the previous page (a ULID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(pub String);

impl<'de> serde::Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let c = String::deserialize(d)?;
        if c.len() != 26 || !c.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(serde::de::Error::custom(
                "use next_cursor from the previous page",
            ));
        }
        Ok(Cursor(c))
    }
}

/// A time parameter (`since`, `until`): RFC 3339 (`2026-11-25T09:00:00Z`) or Unix
/// milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time(pub Millis);

impl<'de> serde::Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = String::deserialize(d)?;
        parse_time(&v).map(Time).ok_or_else(|| {
            serde::de::Error::custom(
                "expected RFC 3339 (2026-11-25T09:00:00Z) or Unix milliseconds",
            )
        })
    }
}

/// The OpenAPI schema of a time parameter: a date-time or Unix milliseconds.
pub fn time_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]{1,15}$")),
        )
        .build()
        .into()
}

/// RFC 3339 or Unix milliseconds.
pub fn parse_time(v: &str) -> Option<Millis> {
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    v.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// The sites a request names (`site`), or all of them the caller reaches.
pub fn sites(
    state: &AppState,
    site: Option<&SiteId>,
    caller: &Caller,
) -> Result<Vec<SiteId>, ApiError> {
    let config = state.engine.config();
    match site {
        Some(id) => {
            config.site(id).ok_or(ApiError::UnknownSite)?;
            caller.reaches(id)?;
            Ok(vec![id.clone()])
        }
        None => Ok(config
            .sites
            .iter()
            .map(|s| s.id.clone())
            .filter(|s| caller.site.as_ref().is_none_or(|own| own == s))
            .collect()),
    }
}

/// Why a JSON body was refused, in the API's error shape: `415 unsupported_type` without a
/// JSON content type, `413 too_large` past the body limit, `422 invalid` for JSON of the wrong
/// shape (an unknown, missing or mistyped field: as the directory's routes answer), otherwise
/// (not JSON at all) `400 bad_request`; each naming what is wrong.
pub fn json_refused(e: axum::extract::rejection::JsonRejection) -> ApiError {
    use axum::extract::rejection::JsonRejection;
    if let JsonRejection::JsonDataError(data) = &e {
        return ApiError::Invalid {
            field: "body".into(),
            problem: data.body_text(),
        };
    }
    let why = format!("body: {}", e.body_text());
    match e.status() {
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedType(why),
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(why),
        _ => ApiError::BadRequest(why),
    }
}

/// A JSON body; every failure as `json_refused` says.
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(body)| Self(body))
            .map_err(json_refused)
    }
}

/// An optional JSON body: nothing at all gives the default.
pub fn optional_body<T: serde::de::DeserializeOwned + Default>(
    bytes: &[u8],
) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        // As `json_refused`: JSON of another shape is 422, what is not JSON 400.
        serde_json::error::Category::Data => ApiError::Invalid {
            field: "body".into(),
            problem: e.to_string(),
        },
        _ => ApiError::BadRequest(format!("body: {e}")),
    })
}
