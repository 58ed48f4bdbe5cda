//! The static surfaces: `/widget.js` (the embed), `/demo/` (a landing page with the widget
//! embedded), `/console/` (the agent console and supervisor view) and `GET /v1/widget/{site}`
//! (appearance, pre-chat form and departments).
//!
//! Assets are compiled into the binary, so one file is the whole deployment. The config endpoint
//! answers CORS requests from the site's allowed origins only.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::embedded::{Gzipped, gzipped};
use super::error::Failure;
use super::{ApiError, AppState};
use crate::directory::model::PrechatConfig;
use crate::model::{DeptId, SiteId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/widget.js", get(widget_js))
        .route("/widget/{file}", get(widget_versioned))
        .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
        .route(
            "/demo/",
            get(|headers: HeaderMap| async move { serve(&DEMO, &headers) }),
        )
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route(
            "/console/",
            get(|headers: HeaderMap| async move { console(&headers) }),
        )
        .route("/console/{file}", get(console_module))
        .route("/v1/widget/{site}", get(widget_config))
}

/// A file compiled into the binary (gzip-compressed, `embedded`), with the entity tag of its
/// content.
struct Asset {
    file: Gzipped,
    content_type: &'static str,
    etag: std::sync::OnceLock<String>,
}

impl Asset {
    /// `"<16 hex digits of the SHA-256 of its gzip stream>"`: changes exactly when the file
    /// does (build.rs compresses the same bytes the same way).
    fn etag(&'static self) -> &'static str {
        self.etag.get_or_init(|| {
            use sha2::Digest;
            let digest = hex::encode(sha2::Sha256::digest(self.file.gz()));
            format!("\"{}\"", &digest[..16])
        })
    }
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            file: gzipped!($name),
            content_type: $type,
            etag: std::sync::OnceLock::new(),
        }
    };
}

const JS: &str = "application/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
static WIDGET: Asset = asset!("widget.js", JS);
static DEMO: Asset = asset!("demo.html", HTML);
static CONSOLE: Asset = asset!("console.html", HTML);

/// The console's files besides its page: its ES modules (`widget/console/`), one per view and
/// the few below them (the page loads `main.js`, which imports the rest by relative URL; no
/// build step: the files as written), its service worker, and what installing it as an app
/// takes (the manifest and icons).
static CONSOLE_FILES: [(&str, Asset); 21] = [
    ("main.js", asset!("console-main.js", JS)),
    ("state.js", asset!("console-state.js", JS)),
    ("strings.js", asset!("console-strings.js", JS)),
    ("dom.js", asset!("console-dom.js", JS)),
    ("shell.js", asset!("console-shell.js", JS)),
    ("views.js", asset!("console-views.js", JS)),
    ("api.js", asset!("console-api.js", JS)),
    ("session.js", asset!("console-session.js", JS)),
    ("chats.js", asset!("console-chats.js", JS)),
    ("compose.js", asset!("console-compose.js", JS)),
    ("notify.js", asset!("console-notify.js", JS)),
    ("visitors.js", asset!("console-visitors.js", JS)),
    ("supervisor.js", asset!("console-supervisor.js", JS)),
    ("inbox.js", asset!("console-inbox.js", JS)),
    ("admin.js", asset!("console-admin.js", JS)),
    ("push.js", asset!("console-push.js", JS)),
    ("sw.js", asset!("console-sw.js", JS)),
    (
        "manifest.webmanifest",
        asset!("console-manifest.webmanifest", "application/manifest+json"),
    ),
    ("icon.svg", asset!("console-icon.svg", "image/svg+xml")),
    ("icon-192.png", asset!("console-icon-192.png", "image/png")),
    ("icon-512.png", asset!("console-icon-512.png", "image/png")),
];

/// `/console/<file>`: one of the console's files, or 404.
async fn console_module(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match CONSOLE_FILES.iter().find(|(name, _)| *name == file) {
        Some((_, asset)) => serve(asset, &headers),
        None => ApiError::NotFound("no such file").into_response(),
    }
}

/// Serves an asset with its ETag, revalidated for five minutes; `If-None-Match` with the
/// current tag gets `304 Not Modified` and no body. Compression is the router's layer.
fn serve(asset: &'static Asset, headers: &HeaderMap) -> Response {
    serve_for(asset, headers, "public, max-age=300")
}

fn serve_for(asset: &'static Asset, headers: &HeaderMap, cache: &'static str) -> Response {
    let etag = asset.etag();
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == etag || t.trim() == "*");
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.file.respond(headers, asset.content_type)
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if asset.content_type == HTML {
        // The console is never framed by another site (clickjacking).
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    resp
}

/// The console's policy: its own script only (no inline script, no eval), its own origin for
/// requests and sockets, files shown from `blob:` URLs, never framed. Inline styles stay (the
/// page's one style sheet and a few `style` attributes); they cannot run code.
const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// `/console/`: the page, with its Content-Security-Policy.
fn console(headers: &HeaderMap) -> Response {
    let mut resp = serve(&CONSOLE, headers);
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
    resp
}

/// `/widget.js`: the embed, revalidated every five minutes. Its `Link` header names the
/// versioned URL of this very file, which may be cached for a year.
async fn widget_js(headers: HeaderMap) -> Response {
    let mut resp = serve(&WIDGET, &headers);
    let link = format!("</widget/{}.js>; rel=\"canonical\"", widget_version());
    if let Ok(v) = HeaderValue::from_str(&link) {
        resp.headers_mut().insert(header::LINK, v);
    }
    resp
}

/// The widget's version: its entity tag without quotes.
pub fn widget_version() -> &'static str {
    WIDGET.etag().trim_matches('"')
}

/// `/widget/<version>.js`: the same file under a name that changes with it, cached for a year
/// (immutable). An old version is gone: `404`, and the page should use the new name.
async fn widget_versioned(Path(file): Path<String>, headers: HeaderMap) -> Response {
    if file.strip_suffix(".js") == Some(widget_version()) {
        serve_for(&WIDGET, &headers, "public, max-age=31536000, immutable")
    } else {
        ApiError::NotFound("no such widget version; use /widget.js or its Link header")
            .into_response()
    }
}

/// A site's public settings, for the widget.
#[derive(Serialize, ToSchema)]
#[schema(as = WidgetSettings)]
pub struct WidgetSettings {
    #[schema(value_type = String)]
    site: SiteId,
    name: Option<String>,
    color: String,
    title: Option<String>,
    greeting: Option<String>,
    prechat: Option<PrechatConfig>,
    default_locale: String,
    /// The site sends email: the widget offers a copy of the chat
    email: bool,
    /// The site shows agents the visitor's draft: the widget sends it with its typing
    /// indicator
    typing_preview: bool,
    attachments: WidgetFiles,
    departments: Vec<WidgetDepartment>,
    /// Where a visitor who names no department goes: what a pre-chat menu preselects
    #[schema(value_type = String)]
    default_department: DeptId,
}

/// Files the widget may offer to send (none when `max_bytes` is 0).
#[derive(Serialize, ToSchema)]
pub struct WidgetFiles {
    max_bytes: usize,
    types: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WidgetDepartment {
    #[schema(value_type = String)]
    id: DeptId,
    name: Option<String>,
    /// The name in other languages, by language code; the widget shows the visitor's
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    names: std::collections::BTreeMap<String, String>,
}

/// The widget's public settings for a site.
///
/// Appearance, pre-chat form and departments. No credentials; CORS for the site's allowed
/// origins.
#[utoipa::path(get, path = "/v1/widget/{site}", operation_id = "getWidgetSettings",
    tag = "Widget", security(()),
    params(("site" = String, Path, description = "The site's id",
        pattern = r"^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, description = "Appearance, pre-chat form and departments",
            body = WidgetSettings),
        (status = 404, response = Failure)))]
async fn widget_config(
    State(state): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let site = state
        .engine
        .site(&SiteId(site))
        .map_err(|_| ApiError::UnknownSite)?;
    let files = &state.engine.config().attachments;
    let body = WidgetSettings {
        site: site.id.clone(),
        name: site.name.clone(),
        color: site.widget.color.clone(),
        title: site.widget.title.clone(),
        greeting: site.widget.greeting.clone(),
        prechat: site.widget.prechat.clone(),
        default_locale: site.default_locale.clone(),
        email: site.smtp_url.is_some(),
        typing_preview: site.widget.typing_preview,
        attachments: WidgetFiles {
            max_bytes: files.max_bytes,
            types: files.types.clone(),
        },
        departments: site
            .departments
            .iter()
            .map(|d| WidgetDepartment {
                id: d.id.clone(),
                name: d.name.clone(),
                names: d.names.clone(),
            })
            .collect(),
        default_department: site.default_department().clone(),
    };
    let mut resp = Json(body).into_response();
    if let Some(origin) = headers.get(header::ORIGIN)
        && origin.to_str().is_ok_and(|o| site.allows_origin(o))
    {
        allow_origin(&mut resp, origin.clone());
    }
    Ok(resp)
}

/// Lets a page of `origin` (checked to be allowed) read the answer: CORS, varying by Origin.
pub(super) fn allow_origin(resp: &mut Response, origin: HeaderValue) {
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
}
