//! The one HTTP error type: every failure has a status, a stable client-facing code and a
//! sentence, with the body `{"error": {"code", "message"}}`. It is logged once, here at the
//! edge: server faults with their cause as errors, client mistakes at debug.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::db::RecordError;
use crate::engine::EngineError;
use crate::protocol::ErrorCode;

/// The documented answer of every failure (OpenAPI `components.responses.Failure`).
#[derive(utoipa::ToResponse)]
#[response(description = "An error with a stable code")]
pub struct Failure(#[allow(dead_code)] crate::request::ErrorBody<'static>);

/// What a read may answer besides its result (OpenAPI): a bad parameter, no or wrong
/// credentials, a role or site not allowed, nothing there, the storage unavailable.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // The shape of the document only.
pub enum ReadRefusals {
    #[response(status = 400)]
    BadRequest(#[ref_response] Failure),
    #[response(status = 401)]
    Unauthorized(#[ref_response] Failure),
    #[response(status = 403)]
    Forbidden(#[ref_response] Failure),
    #[response(status = 404)]
    NotFound(#[ref_response] Failure),
    #[response(status = 503)]
    Unavailable(#[ref_response] Failure),
}

/// What a change may answer besides those of a read (OpenAPI; declared with `ReadRefusals`):
/// a conflict with what is stored, or a body field that is invalid.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // The shape of the document only.
pub enum Conflicts {
    #[response(status = 409)]
    Conflict(#[ref_response] Failure),
    #[response(status = 422)]
    Invalid(#[ref_response] Failure),
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter is invalid or unknown; the message names it.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong credentials (bearer token or session cookie).
    #[error("sign in, or send a valid bearer token")]
    Unauthorized,
    /// Signed in, but the role does not allow it (or the site is another's).
    #[error("{0}")]
    Forbidden(String),
    /// A cookie-authenticated request that changes something without its CSRF token.
    #[error("missing or wrong X-CSRF-Token header")]
    Csrf,
    /// A body field is invalid; `field` names it (as the configuration file would).
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    /// The request contradicts what is stored (an id or address already taken).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts (sign-in); retry later.
    #[error("too many attempts; wait a minute")]
    RateLimited,
    /// A directory entry that does not exist; the message says which.
    #[error("{0}")]
    Missing(String),
    /// No such ticket, delivery or route; the message says which.
    #[error("{0}")]
    NotFound(&'static str),
    #[error("no such site")]
    UnknownSite,
    /// A file over `attachments.max_bytes`.
    #[error("{0}")]
    TooLarge(String),
    /// A file of a type that is not allowed (read from its bytes).
    #[error("{0}")]
    UnsupportedType(String),
    #[error("this route does not take that method")]
    MethodNotAllowed,
    /// The body did not arrive (or the answer was not ready) within the deadline.
    #[error("{0}")]
    RequestTimeout(String),
    /// A reserve connection (the server is at its connection limit) asked for more than a
    /// health check.
    #[error("the server is at its connection limit")]
    TooManyConnections,
    /// An `Idempotency-Key` already used for a different request.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still being served.
    #[error("a request with this Idempotency-Key is in progress; retry in a moment")]
    IdempotencyKeyInFlight,
    /// A backend failed; only "retry" reaches the client.
    #[error("storage temporarily unavailable")]
    Unavailable(String),
    /// What the engine refused, with its own code.
    #[error("{}", .0.message)]
    Engine(EngineError),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Csrf => StatusCode::FORBIDDEN,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) | Self::UnknownSite | Self::Missing(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyKeyInFlight => StatusCode::CONFLICT,
            Self::Engine(e) => match e.code {
                ErrorCode::NotFound | ErrorCode::UnknownSite => StatusCode::NOT_FOUND,
                ErrorCode::UnknownDepartment | ErrorCode::UnknownAgent => StatusCode::NOT_FOUND,
                ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
                ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NotOwner
                | ErrorCode::ConversationClosed
                | ErrorCode::TargetUnavailable
                | ErrorCode::VisitorBusy
                | ErrorCode::TooManyFiles => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            },
        }
    }

    /// Stable: clients switch on it (docs/api.md lists them).
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::Csrf => "csrf",
            Self::Invalid { .. } => "invalid",
            Self::Conflict(_) => "conflict",
            Self::RateLimited => "rate_limited",
            Self::NotFound(_) | Self::Missing(_) => "not_found",
            Self::UnknownSite => "unknown_site",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout(_) => "request_timeout",
            Self::TooManyConnections => "too_many_connections",
            Self::TooLarge(_) => "too_large",
            Self::UnsupportedType(_) => "unsupported_type",
            Self::Unavailable(_) => "unavailable",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            Self::Engine(e) => e.code.as_str(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e.code {
            // The engine logged the cause; keep the client's answer the same as for a store.
            ErrorCode::Unavailable => Self::Unavailable(e.message),
            _ => Self::Engine(e),
        }
    }
}

impl From<crate::directory::DirectoryError> for ApiError {
    fn from(e: crate::directory::DirectoryError) -> Self {
        use crate::directory::DirectoryError as D;
        match e {
            D::Invalid(c) => Self::Invalid {
                field: c.field,
                problem: c.problem,
            },
            D::NotFound(m) => Self::Missing(m),
            D::Conflict(m) => Self::Conflict(m),
            D::Unavailable(s) => Self::Unavailable(s.to_string()),
        }
    }
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let code = self.code();
        metrics::counter!(crate::observe::ERRORS, "code" => code).increment(1);
        match &self {
            Self::Unavailable(cause) => {
                tracing::error!(cause = %cause, code = %code, "request failed: backend");
            }
            _ => tracing::debug!(code = %code, message = %self, "request refused"),
        }
        let field = match &self {
            Self::Invalid { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let message = self.to_string();
        let body = Json(crate::request::error_body(code, &message, field));
        if matches!(self, Self::RequestTimeout(_) | Self::TooManyConnections) {
            // The rest of a late body is not read: the connection cannot carry another request.
            return (status, [(header::CONNECTION, "close")], body).into_response();
        }
        if status == StatusCode::UNAUTHORIZED {
            return (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
        (status, body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine refusal keeps its code and gets the status that code means; a backend
    /// failure is a 503 whose body says only "retry".
    #[test]
    fn engine_errors_map_to_their_status() {
        for (code, status, wire) in [
            (ErrorCode::NotFound, 404, "not_found"),
            (ErrorCode::UnknownDepartment, 404, "unknown_department"),
            (ErrorCode::NotOwner, 409, "not_owner"),
            (ErrorCode::InvalidMessage, 400, "invalid_message"),
        ] {
            let e = ApiError::from(EngineError::new(code, "x"));
            assert_eq!(e.status_code().as_u16(), status, "{code:?}");
            assert_eq!(e.code(), wire);
        }
        let e = ApiError::from(EngineError::new(ErrorCode::Unavailable, "redis is down"));
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.to_string(), "storage temporarily unavailable");
    }
}
