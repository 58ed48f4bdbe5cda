//! The widget's public surface: `/widget.js` (the embed), `/demo/` (a landing page with the
//! widget embedded) and `GET /v1/widget/{site}` (appearance, pre-chat form and departments).
//!
//! Assets are compiled into the binary, so one file is the whole deployment. The config endpoint
//! answers CORS requests from the site's allowed origins only.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;

use super::{ApiError, AppState};
use crate::model::SiteId;

const WIDGET_JS: &str = include_str!("../../widget/widget.js");
const DEMO_HTML: &str = include_str!("../../widget/demo.html");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/widget.js", get(widget_js))
        .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
        .route("/demo/", get(demo))
        .route("/v1/widget/{site}", get(widget_config))
}

async fn widget_js() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        WIDGET_JS,
    )
        .into_response()
}

async fn demo() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DEMO_HTML,
    )
        .into_response()
}

/// Appearance, pre-chat form and departments of a site, for the widget.
async fn widget_config(
    State(state): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let site = state
        .engine
        .config()
        .site(&SiteId(site))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_site", "no such site"))?;
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
