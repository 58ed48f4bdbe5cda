//! Files in chats over HTTP: `POST /v1/conversations/{id}/attachments` sends one into an open
//! conversation, `GET /v1/attachments/{id}` fetches it. Both take either a visitor's token
//! (`Authorization: Bearer v1.…`, the widget, from the site's allowed origins) or an agent's
//! credentials (console session or API token).
//!
//! A file is served only to its visitor, to the agent who has (or last had) the chat, and to
//! supervisors of its site; with its sniffed type, `nosniff`, a sandboxing CSP, and PDFs as
//! downloads, so nothing fetched from here runs in the server's origin.

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{Conflicts, Failure, ReadRefusals};
use super::extract::{Caller, Params, SiteParam};
use super::{ApiError, AppState};
use crate::attachments::{File, Refused, Stored};
use crate::directory::model::AgentRole;
use crate::engine::{Reader, Sender};
use crate::model::{AttachmentRef, ConvId, SiteId, VisitorId};
use crate::protocol::ClientId;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/conversations/{id}/attachments",
            post(upload).options(preflight),
        )
        .route("/v1/attachments/{id}", get(download).options(preflight))
}

/// Who is asking: a visitor (by their signed token) or an agent, supervisor or admin.
enum Party {
    Visitor { site: SiteId, visitor: VisitorId },
    Staff(Caller),
}

impl FromRequestParts<AppState> for Party {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = crate::request::bearer(&parts.headers).filter(|t| t.starts_with("v1."))
        else {
            return Ok(Self::Staff(Caller::from_request_parts(parts, state).await?));
        };
        // `v1.<site>.<visitor>.<sig>`: the site is named inside, the signature proves it.
        let site = SiteId(token.split('.').nth(1).unwrap_or_default().to_owned());
        let visitor = state
            .engine
            .keys()
            .verify_visitor(&site, token)
            .ok_or(ApiError::Unauthorized)?;
        let config = state
            .engine
            .site(&site)
            .map_err(|_| ApiError::Unauthorized)?;
        // The widget runs on the site's pages: a request from anywhere else is refused.
        if let Some(origin) = parts.headers.get(header::ORIGIN)
            && !origin.to_str().is_ok_and(|o| config.allows_origin(o))
        {
            return Err(ApiError::Forbidden(
                "this origin is not allowed for the site".into(),
            ));
        }
        Ok(Self::Visitor { site, visitor })
    }
}

/// The CORS headers for a visitor's request from an allowed origin (checked by `Party`).
fn cors(headers: &HeaderMap, resp: &mut Response) {
    if let Some(origin) = headers.get(header::ORIGIN) {
        super::widget::allow_origin(resp, origin.clone());
    }
}

/// `OPTIONS`: the widget's preflight. Allowed for the origins some site allows; the request
/// itself is then checked against its own site.
async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let config = state.engine.config();
    let origin = headers.get(header::ORIGIN);
    let allowed = origin.filter(|o| {
        o.to_str()
            .is_ok_and(|o| config.sites.iter().any(|s| s.allows_origin(o)))
    });
    let Some(origin) = allowed else {
        return ApiError::Forbidden("this origin is not allowed".into()).into_response();
    };
    let mut resp = StatusCode::NO_CONTENT.into_response();
    super::widget::allow_origin(&mut resp, origin.clone());
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    resp
}

/// A file's bytes must keep arriving at this rate (after a grace for the first ones): a large
/// file on a slow line is fine, a trickle that would hold a turn is not.
const MIN_BYTES_PER_SEC: f64 = 16.0 * 1024.0;
const UPLOAD_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long an upload waits for its turn before it is told to come back.
const UPLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a body of at most `max` bytes (one more is enough to know it is over) within the
/// upload deadline: the grace plus what its bytes so far take at the minimum rate.
async fn read_file(body: axum::body::Body, max: usize) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let started = tokio::time::Instant::now();
    let mut stream = body.into_data_stream();
    let mut data = Vec::new();
    loop {
        let allowed = UPLOAD_GRACE
            + std::time::Duration::from_secs_f64(data.len() as f64 / MIN_BYTES_PER_SEC);
        let next = tokio::time::timeout_at(started + allowed, stream.next())
            .await
            .map_err(|_| {
                ApiError::RequestTimeout(format!(
                    "the file arrived slower than {} KiB/s",
                    MIN_BYTES_PER_SEC / 1024.0
                ))
            })?;
        match next {
            None => return Ok(data),
            Some(Ok(chunk)) => {
                if data.len() + chunk.len() > max {
                    return Err(too_large(max));
                }
                data.extend_from_slice(&chunk);
            }
            Some(Err(_)) => return Err(ApiError::BadRequest("the upload broke off".into())),
        }
    }
}

/// The parameters of an upload.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The sender's id for this message: a retry stores neither file nor message twice
    #[param(value_type = String, min_length = 1, max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$")]
    client_id: ClientId,
    /// The file name (its path is dropped; at most 120 characters are kept). Default: `file`
    #[param(max_length = 1000)]
    name: Option<String>,
    /// The agent's own site (checked)
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    site: Option<SiteId>,
}

/// A file stored and sent.
#[derive(Serialize, ToSchema)]
pub struct Sent {
    #[schema(value_type = String)]
    conversation: ConvId,
    seq: u64,
    attachment: AttachmentRef,
}

/// Sends an image or a PDF into an open conversation.
///
/// The visitor's own conversation, or one the agent owns. The file is the body; its type is
/// read from its bytes. Stored with the message that carries it (text: the file name), which
/// reaches the other side like any message. The same `client_id` again answers with the same
/// message.
#[utoipa::path(post, path = "/v1/conversations/{id}/attachments",
    operation_id = "uploadAttachment", tag = "Files",
    params(("id" = String, Path, description = "The conversation's id"), UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("visitor" = []), ("admin" = []), ("session" = [])),
    responses((status = 201, description = "Stored and sent", body = Sent), (status = 413, response = Failure),
        (status = 415, response = Failure), ReadRefusals, Conflicts))]
async fn upload(
    State(state): State<AppState>,
    party: Party,
    Path(id): Path<String>,
    Params(q): Params<UploadParams>,
    req: Request,
) -> Result<Response, ApiError> {
    let client_id = q.client_id;
    let name = q.name.as_deref().unwrap_or("file");
    let (site, sender) = match &party {
        Party::Visitor { site, visitor } => (site.clone(), Sender::Visitor(visitor.clone())),
        Party::Staff(caller) => {
            let Some(agent) = &caller.agent else {
                return Err(ApiError::Forbidden(
                    "files are sent by the chat's agent, not the admin token".into(),
                ));
            };
            let site = caller.site.clone().ok_or(ApiError::Unauthorized)?;
            if let Some(s) = &q.site {
                caller.reaches(s)?;
            }
            (site, Sender::Agent(agent.clone()))
        }
    };
    let headers = req.headers().clone();
    let rules = state.engine.config().attachments.clone();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > rules.max_bytes) {
        return Err(too_large(rules.max_bytes));
    }
    // The chat is checked before a turn is taken: without one, nobody holds a turn.
    let conv = ConvId(id);
    state.engine.file_sender(&site, &sender, &conv).await?;
    let who = match &sender {
        Sender::Visitor(v) => {
            state
                .engine
                .visitor_within_rate(&site, v, Some(&conv))
                .await?;
            format!("v:{v}")
        }
        Sender::Agent(a) => format!("a:{a}"),
    };
    let _turn = state
        .uploads
        .take(&site.0, &who, UPLOAD_WAIT)
        .await
        .ok_or_else(|| ApiError::Unavailable("too many uploads at once".into()))?;
    let body = read_file(req.into_body(), rules.max_bytes).await?;
    let file = File::check(name, &body, &rules).map_err(|r| match r {
        Refused::TooLarge(max) => too_large(max),
        Refused::Unsupported => {
            ApiError::UnsupportedType(format!("send one of: {}", rules.types.join(", ")))
        }
    })?;
    let (ack, attachment) = state
        .engine
        .send_file(&site, &sender, &conv, client_id, file)
        .await?;
    tracing::info!(site = %site, conversation = %conv, seq = ack.seq, size = attachment.size, "file sent");
    let mut resp = (
        StatusCode::CREATED,
        Json(Sent {
            conversation: ack.conv,
            seq: ack.seq,
            attachment,
        }),
    )
        .into_response();
    cors(&headers, &mut resp);
    Ok(resp)
}

fn too_large(max: usize) -> ApiError {
    ApiError::TooLarge(format!("files may be at most {max} bytes"))
}

/// A file sent in a chat.
///
/// To its visitor, the agent who has (or last had) the chat, and supervisors of its site
/// (`site`: look in this site only). Images inline, PDFs as downloads; `nosniff` and a
/// sandboxing CSP.
#[utoipa::path(get, path = "/v1/attachments/{id}", operation_id = "getAttachment", tag = "Files",
    params(("id" = String, Path, description = "The file's id"), SiteParam),
    security(("visitor" = []), ("admin" = []), ("session" = [])),
    responses((status = 200, description = "The file's bytes with its type",
            content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/gif"),
                (Vec<u8> = "image/webp"), (Vec<u8> = "application/pdf"))), ReadRefusals))]
async fn download(
    State(state): State<AppState>,
    party: Party,
    Path(id): Path<String>,
    Params(q): Params<SiteParam>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let sites;
    let reader = match &party {
        Party::Visitor { site, visitor } => Reader::Visitor(site, visitor),
        Party::Staff(caller) if caller.role >= AgentRole::Supervisor => {
            sites = super::extract::sites(&state, q.site.as_ref(), caller)?;
            Reader::Supervisor(&sites)
        }
        Party::Staff(Caller {
            site: Some(site),
            agent: Some(agent),
            ..
        }) => Reader::Agent(site, agent),
        Party::Staff(_) => return Err(ApiError::Unauthorized),
    };
    let file = state.engine.file(reader, &id).await?;
    let file = file.ok_or(ApiError::NotFound("no such file"))?;
    let mut resp = serve(file);
    cors(&headers, &mut resp);
    Ok(resp)
}

/// The bytes with headers that keep them inert: the stored (sniffed) type, no sniffing by the
/// browser, no script or plugin even if opened directly, PDFs downloaded rather than shown.
fn serve(file: Stored) -> Response {
    let inline = file.content_type.starts_with("image/");
    let disposition = format!(
        "{}; filename=\"{}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        file.name.replace(|c: char| !c.is_ascii() || c == '\\', "_"),
        percent(&file.name)
    );
    let mut resp = file.data.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&file.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    // A file never changes under its id; only those allowed fetch it, so no shared caches.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    resp
}

/// RFC 8187 encoding of a file name for `filename*`.
fn percent(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
