//! The static surfaces: `/widget.js` (the embed), `/demo/` (a landing page with the widget
//! embedded), `/console/` (the agent console and supervisor view) and `GET /v1/widget/{site}`
//! (appearance, pre-chat form and departments).
//!
//! Assets are compiled into the binary, so one file is the whole deployment. The config endpoint
//! answers CORS requests from the site's allowed origins only.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;

use super::{ApiError, AppState};
use crate::model::SiteId;

const WIDGET_JS: &str = include_str!("../../widget/widget.js");
const DEMO_HTML: &str = include_str!("../../widget/demo.html");
const CONSOLE_HTML: &str = include_str!("../../widget/console.html");
const CONSOLE_JS: &str = include_str!("../../widget/console.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/widget.js", get(widget_js))
        .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
        .route("/demo/", get(demo))
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| async { html(CONSOLE_HTML) }))
        .route("/console/console.js", get(|| async { script(CONSOLE_JS) }))
        .route("/v1/widget/{site}", get(widget_config))
}

fn script(body: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn html(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The console is never framed by another site (clickjacking).
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

async fn widget_js() -> Response {
    script(WIDGET_JS)
}

async fn demo() -> Response {
    html(DEMO_HTML)
}

/// Appearance, pre-chat form and departments of a site, for the widget.
async fn widget_config(
    State(state): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let site = state
        .engine
        .site(&SiteId(site))
        .map_err(|_| ApiError::UnknownSite)?;
    let body = json!({
        "site": site.id,
        "name": site.name,
        "color": site.widget.color,
        "title": site.widget.title,
        "greeting": site.widget.greeting,
        "prechat": site.widget.prechat,
        "default_locale": site.default_locale,
        "departments": site.departments.iter().map(|d| json!({"id": d.id, "name": d.name})).collect::<Vec<_>>(),
    });
    let mut resp = Json(body).into_response();
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if let Some(o) = origin.filter(|o| site.allowed_origins.iter().any(|a| a == o))
        && let Ok(v) = HeaderValue::from_str(o)
    {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(resp)
}
