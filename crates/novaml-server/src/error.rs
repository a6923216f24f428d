//! API errors: JSON with a kind and a message; internals are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered by the API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Something failed inside; the detail goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
    /// The request was malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No such resource.
    #[error("not found: {0}")]
    NotFound(String),
    /// A mutating request without the right bearer token.
    #[error("unauthorized")]
    Unauthorized,
    /// The request conflicts with the resource's state (e.g. a queue is full).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The client sent too many requests.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds until a request will be accepted again.
        retry_after: u64,
    },
    /// No route has this path (or not with this method).
    #[error("no route {0}")]
    NoRoute(String),
    /// The path exists, not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is larger than the server accepts.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The request target is longer than the server accepts.
    #[error("URI too long")]
    UriTooLong,
    /// The request's headers are larger than the server accepts.
    #[error("headers too large")]
    HeadersTooLarge,
    /// The server is at its limit for this kind of work; retry later.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What is busy.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The `Host` header names another server.
    #[error("host not allowed: {0}")]
    HostNotAllowed(String),
}

impl ApiError {
    /// An internal failure; `e` goes to the log only.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    /// A rejected JSON body: too large, or malformed.
    pub fn from_json(e: &axum::extract::rejection::JsonRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge
        } else {
            Self::BadRequest(e.body_text())
        }
    }
}

/// A request body, which every OpenAPI schema of ours says is a JSON object. Read through a
/// `Value` because serde also builds a struct from an array of its fields in order (`["tp"]` for
/// a feedback), which the schema forbids; `like` shows the expected shape in the error.
pub(crate) fn object_body<T: serde::de::DeserializeOwned>(
    body: Result<axum::Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
    like: &str,
) -> Result<T, ApiError> {
    let axum::Json(v) = body.map_err(|e| ApiError::from_json(&e))?;
    if !v.is_object() {
        return Err(ApiError::BadRequest(format!(
            "the body must be an object like {like}"
        )));
    }
    crate::services::from_body(v).map_err(ApiError::BadRequest)
}

/// A numeric id from the path: digits only (no sign, no spaces), as the OpenAPI schema says.
pub(crate) fn path_id(
    p: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    what: &str,
) -> Result<u64, ApiError> {
    let text = p
        .map(|axum::extract::Path(t)| t)
        .map_err(|_| ApiError::BadRequest(format!("{what} is missing from the path")))?;
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest(format!(
            "{what} must be a whole number such as 42, not {:?}",
            text.chars().take(40).collect::<String>()
        )));
    }
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} {text:?} is out of range")))
}

/// Runs `f` on a blocking thread (SQLite, files, the tuning state): handlers never block the
/// async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

#[derive(Serialize)]
struct Body<'a> {
    kind: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, message) = match self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "Request failed.");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log".to_owned(),
                )
            }
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this endpoint needs `Authorization: Bearer <token>` with the server's token"
                    .to_owned(),
            ),
            Self::NoRoute(path) => (
                StatusCode::NOT_FOUND,
                "no_route",
                format!("no endpoint {path}; the API is described at /api/openapi.json"),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take this method; see /api/openapi.json".to_owned(),
            ),
            Self::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            Self::Unavailable {
                message,
                retry_after,
            } => {
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(Body {
                        kind: "unavailable",
                        message,
                    }),
                )
                    .into_response();
                r.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(retry_after),
                );
                return r;
            }
            Self::TooManyRequests { retry_after } => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(Body {
                        kind: "rate_limited",
                        message: format!("too many requests; retry in {retry_after} s"),
                    }),
                )
                    .into_response();
                r.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(retry_after),
                );
                return r;
            }
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {} bytes", crate::MAX_BODY),
            ),
            Self::UriTooLong => (
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!(
                    "the path and query are longer than {} bytes",
                    crate::checks::MAX_URI
                ),
            ),
            Self::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!(
                    "the request headers are larger than {} bytes",
                    crate::checks::MAX_HEADER_BYTES
                ),
            ),
            Self::HostNotAllowed(host) => (
                StatusCode::MISDIRECTED_REQUEST,
                "host_not_allowed",
                format!(
                    "this server does not answer to the host {host:?}; add it to server.allowed_hosts \
                     if it is a name of this server"
                ),
            ),
        };
        (status, Json(Body { kind, message })).into_response()
    }
}
