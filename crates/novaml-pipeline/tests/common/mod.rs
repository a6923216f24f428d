//! What the pipeline's integration tests share: a status provider for tests that need none, one
//! request through the router, and an incident as live detection finds it.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use novaml_anomaly::incident::{DetectConfig, Incident, detect};
use novaml_anomaly::streaming::StreamingParams;
use novaml_core::SeriesKey;
use novaml_server::{PipelineStatus, StatusProvider};
use serde_json::Value;
use tower::ServiceExt;

/// A status provider for routers whose tests do not read `/api/status`.
pub(crate) struct NoStatus;

impl StatusProvider for NoStatus {
    fn status(&self) -> Result<PipelineStatus, String> {
        Err("not used".into())
    }
}

pub(crate) async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let ty = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(resp.into_body(), 4 << 20)
        .await
        .expect("body");
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let text = if v.is_null() {
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        ty
    };
    (status, v, text)
}

/// An incident found by the live detector's defaults in a seasonal series ending now with a
/// 10-row spike near its end (recent, so Alertmanager keeps it active).
pub(crate) fn incident() -> Incident {
    let mut v = novaml_testing::generators::seasonal(5, 3_000, 288, 0.5);
    for x in &mut v[2_500..2_510] {
        *x += 40.0;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // The series ends now, so the incident is recent (Alertmanager keeps it active).
    let ts: Vec<i64> = (0..3_000).map(|i| now - (2_999 - i) * 1_000).collect();
    let key = SeriesKey::new("dwcp_transfer_latency_ms")
        .and_then(|k| k.with_label("host", "h1"))
        .expect("valid");
    let cfg = DetectConfig::new(StreamingParams::default().check().expect("valid"));
    detect(&key, &ts, &v, &cfg).remove(0)
}
