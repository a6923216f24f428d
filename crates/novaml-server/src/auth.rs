//! Who may write: every mutating request (POST, PUT, PATCH, DELETE) is checked here, before any
//! handler runs, in this order: the bearer token, then the rate limit of the caller. A request
//! without the right token is refused (401) and counts against its client address only, so
//! anyone who can reach the port can neither write nor use up the operators' write budget; an
//! authorised request counts against the token's budget. Reads need no token.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::limit::Caller;
use crate::{ApiError, AppState};

/// Checks the bearer token of a mutating request. The scheme is case-insensitive (RFC 9110
/// §11.1); the token is compared in constant time.
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim_start());
    match given {
        Some(g)
            if g.len() == token.len()
                && g.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0 =>
        {
            Ok(())
        }
        _ => Err(ApiError::Unauthorized),
    }
}

/// Whether a request changes something.
pub(crate) fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware: token first, then the caller's rate limit.
pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !is_write(req.method()) {
        return next.run(req).await;
    }
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let caller = match authorize(&state, req.headers()) {
        Err(refused) => {
            // Guessing costs time: refused attempts have their own budget per address.
            if let Err(retry_after) = state.limiter.take(Caller::Refused(client)) {
                return ApiError::TooManyRequests { retry_after }.into_response();
            }
            return refused.into_response();
        }
        // With a token, the operators share its budget wherever they come from; an open
        // server (no token, loopback use) limits each address.
        Ok(()) if state.token.is_some() => Caller::Token,
        Ok(()) => Caller::Open(client),
    };
    if let Err(retry_after) = state.limiter.take(caller) {
        return ApiError::TooManyRequests { retry_after }.into_response();
    }
    next.run(req).await
}
