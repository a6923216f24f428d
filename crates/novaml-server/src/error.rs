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
        };
        (status, Json(Body { kind, message })).into_response()
    }
}
