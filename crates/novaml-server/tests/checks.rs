//! What every request passes before routing, and what every answer carries: Host allow-list,
//! JSON 414/431/413 whatever the route, framing and content-security headers.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use novaml_server::checks::{MAX_HEADER_BYTES, MAX_URI, default_allowed_hosts};
use novaml_server::{AppState, MAX_BODY, PipelineStatus, StatusProvider};
use prometheus_client::registry::Registry;
use tower::ServiceExt;

struct NoStatus;

impl StatusProvider for NoStatus {
    fn status(&self) -> Result<PipelineStatus, String> {
        Err("not used".into())
    }
}

fn app() -> axum::Router {
    let mut state = AppState::new(Arc::new(Registry::default()), Arc::new(NoStatus));
    state.allowed_hosts = default_allowed_hosts(
        "127.0.0.1:8600".parse().expect("addr"),
        &["novaml.lan".into()],
    );
    novaml_server::app(state)
}

async fn send(req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let resp = app().oneshot(req).await.expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, headers, v)
}

fn get(uri: &str, host: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri(uri);
    if let Some(h) = host {
        b = b.header("host", h);
    }
    b.body(Body::empty()).expect("request")
}

#[tokio::test]
async fn only_this_servers_names_are_answered() {
    for host in [
        "127.0.0.1:8600",
        "localhost:8600",
        "LOCALHOST:8600",
        "127.0.0.1",
        "[::1]:8600",
        "novaml.lan",
    ] {
        let (code, _, v) = send(get("/healthz", Some(host))).await;
        assert_eq!(code, StatusCode::OK, "{host}: {v}");
    }
    // A rebinding page's own name, or this server's on another port, is refused.
    for host in [
        "evil.example:8600",
        "evil.example",
        "novaml.lan.evil.example",
    ] {
        let (code, _, v) = send(get("/api/status", Some(host))).await;
        assert_eq!(code, StatusCode::MISDIRECTED_REQUEST, "{host}");
        assert_eq!(v["kind"], "host_not_allowed", "{v}");
    }
    // Off loopback with no names configured, any host is answered (a proxy decides).
    assert_eq!(
        default_allowed_hosts("0.0.0.0:8600".parse().expect("addr"), &[]),
        None
    );
}

#[tokio::test]
async fn oversized_targets_headers_and_bodies_are_refused_in_json_on_every_route() {
    let long = format!("/api/incidents?series={}", "x".repeat(MAX_URI));
    let (code, _, v) = send(get(&long, None)).await;
    assert_eq!(
        (code, &v["kind"]),
        (StatusCode::URI_TOO_LONG, &"uri_too_long".into())
    );

    let mut req = get("/healthz", None);
    for i in 0..4 {
        req.headers_mut().insert(
            axum::http::HeaderName::from_bytes(format!("x-fill-{i}").as_bytes()).expect("name"),
            "y".repeat(MAX_HEADER_BYTES / 4).parse().expect("value"),
        );
    }
    let (code, _, v) = send(req).await;
    assert_eq!(
        (code, &v["kind"]),
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &"headers_too_large".into()
        )
    );

    // Routes that take no body refuse a large one too.
    let big = vec![b'x'; MAX_BODY + 1];
    for uri in ["/api/incidents/1/ack", "/api/tuning/rollback"] {
        let declared = Request::post(uri)
            .header("content-length", big.len())
            .body(Body::from(big.clone()))
            .expect("request");
        let (code, _, v) = send(declared).await;
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{uri}: {v}");
        // Without a length: the body is read up to the limit and refused past it.
        let undeclared = Request::post(uri)
            .body(Body::from(big.clone()))
            .expect("request");
        let (code, _, v) = send(undeclared).await;
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{uri} undeclared: {v}");
        assert_eq!(v["kind"], "payload_too_large");
    }
}

#[tokio::test]
async fn pages_cannot_be_framed_and_the_dashboards_run_only_their_own_scripts() {
    let (code, h, _) = send(get("/dashboards/anomalies", None)).await;
    assert_eq!(code, StatusCode::OK);
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    let (_, h, _) = send(get("/api/openapi.json", None)).await;
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
}
