//! Checks every request passes before it is routed, and headers every answer carries:
//!
//! - the `Host` header must name this server ([`AppState::allowed_hosts`]; by default the
//!   loopback names of the listening port): a page on another origin that re-points its DNS name
//!   at 127.0.0.1 (DNS rebinding) is refused with 421 before it can read anything;
//! - a target longer than [`MAX_URI`] is refused with 414, headers larger than
//!   [`MAX_HEADER_BYTES`] with 431, both as JSON (hyper itself answers, with an empty body,
//!   only past its own much larger buffer);
//! - a mutating request's body is read here, whatever its route does with it, and refused with
//!   413 past [`crate::MAX_BODY`] (with or without `Content-Length`);
//! - every answer says `nosniff`; pages may not be framed (`X-Frame-Options: DENY`,
//!   `frame-ancestors 'none'`); the dashboards, which hold the API token, get a strict
//!   Content-Security-Policy (scripts, styles and connections from this origin only) and
//!   `Cache-Control: no-store`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::is_write;
use crate::{ApiError, AppState, MAX_BODY};

/// Longest request target (path and query) accepted, bytes.
pub const MAX_URI: usize = 8 * 1024;

/// Largest total of request header names and values accepted, bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The Content-Security-Policy of the dashboards.
pub(crate) const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// The middleware.
pub(crate) async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut response = match admit(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn admit(state: &AppState, req: Request) -> Result<Request, ApiError> {
    if let Some(allowed) = &state.allowed_hosts {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        // Requests without a Host (HTTP/1.0, oneshot tests) come from no browser.
        if let Some(host) = host
            && !allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
        {
            return Err(ApiError::HostNotAllowed(host.chars().take(100).collect()));
        }
    }
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI {
        return Err(ApiError::UriTooLong);
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge);
    }
    if !is_write(req.method()) {
        return Ok(req);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The hosts a server on `addr` answers to by default: its address, and `localhost` when it
/// listens on loopback. `None` (any host) on other addresses, where a proxy or the network
/// decides who reaches it, unless `extra` names hosts.
pub fn default_allowed_hosts(addr: std::net::SocketAddr, extra: &[String]) -> Option<Vec<String>> {
    let port = addr.port();
    let mut hosts: Vec<String> = extra.to_vec();
    if addr.ip().is_loopback() {
        // Loopback names need no port to be safe: a rebinding page comes with its own name.
        let ip = match addr.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        for name in [ip.as_str(), "localhost", "127.0.0.1", "[::1]"] {
            hosts.push(name.to_owned());
            hosts.push(format!("{name}:{port}"));
        }
    } else if extra.is_empty() {
        return None;
    }
    hosts.sort();
    hosts.dedup();
    Some(hosts)
}

/// For an optional string in a request body: absent is `None`, and a present value must be a
/// string (`null` is refused as the OpenAPI schema's `"type": "string"` says). Use with
/// `#[serde(default, deserialize_with = "checks::string_if_present")]`.
pub(crate) fn string_if_present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    <String as serde::Deserialize>::deserialize(d).map(Some)
}
