//! The incident API through the router, over a real incident log.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use novaml_anomaly::incident::{DetectConfig, Incident, detect};
use novaml_anomaly::streaming::StreamingParams;
use novaml_core::SeriesKey;
use novaml_server::{AppState, PipelineStatus, StatusProvider};
use novaml_store::incidents::{IncidentLog, NewIncident};
use prometheus_client::registry::Registry;
use tower::ServiceExt;

struct NoStatus;

impl StatusProvider for NoStatus {
    fn status(&self) -> Result<PipelineStatus, String> {
        Err("not used".into())
    }
}

fn incident() -> Incident {
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

fn state_with(log: IncidentLog, token: Option<&str>) -> AppState {
    let mut s = AppState::new(Arc::new(Registry::default()), Arc::new(NoStatus));
    s.incidents = Some(Arc::new(Mutex::new(log)));
    s.token = token.map(str::to_owned);
    s
}

async fn call(
    app: axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .oneshot(req.body(Body::from(body.to_owned())).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, v)
}

#[tokio::test]
async fn feedback_through_the_api_changes_the_real_rates() {
    let mut log = IncidentLog::in_memory().expect("log");
    let inc = incident();
    let mut ids = Vec::new();
    for i in 0..6 {
        let new = NewIncident {
            series: format!("s{}", i % 2),
            kind: inc.kind.as_str().into(),
            severity: inc.severity.as_str().into(),
            start: i * 100_000,
            end: i * 100_000 + 10,
            peak_score: 0.5 + 0.05 * i as f64,
            suppressed: false,
            body: serde_json::to_value(&inc).expect("json"),
        };
        ids.push(log.record(&new, 0, 0).expect("record").id());
    }
    let app = novaml_server::app(state_with(log, Some("secret")));
    let (code, v) = call(app.clone(), "GET", "/api/incidents?limit=3", None, "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v.as_array().map(Vec::len), Some(3));
    assert_eq!(v[0]["body"]["kind"], "latency_spike");

    // Mutations need the token; errors are JSON with a kind.
    let fb = format!("/api/incidents/{}/feedback", ids[0]);
    let (code, v) = call(app.clone(), "POST", &fb, None, r#"{"label":"fp"}"#).await;
    assert_eq!(
        (code, v["kind"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (code, _) = call(
        app.clone(),
        "POST",
        &fb,
        Some("wrong!"),
        r#"{"label":"fp"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    for bad in [r#"{"label":"maybe"}"#, r#"{"lbl":"fp"}"#, "not json"] {
        let (code, v) = call(app.clone(), "POST", &fb, Some("secret"), bad).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(v["kind"], "bad_request");
    }
    let (code, _) = call(
        app.clone(),
        "POST",
        "/api/incidents/999/feedback",
        Some("secret"),
        r#"{"label":"tp"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = call(app.clone(), "GET", "/api/incidents/abc", None, "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    // Label: 2 false, 3 true → precision 0.6.
    for (i, label) in ["fp", "fp", "tp", "tp", "tp"].iter().enumerate() {
        let uri = format!("/api/incidents/{}/feedback", ids[i]);
        let body = format!(r#"{{"label":"{label}","note":"checked"}}"#);
        let (code, v) = call(app.clone(), "POST", &uri, Some("secret"), &body).await;
        assert_eq!(code, StatusCode::OK, "{v}");
        assert_eq!(v["label"], *label);
    }
    let (code, v) = call(app.clone(), "GET", "/api/incidents/stats", None, "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["overall"]["true_positives"], 3);
    assert_eq!(v["overall"]["false_positives"], 2);
    assert_eq!(v["overall"]["precision"], 0.6);
    assert_eq!(v["unlabelled"], 1);
    // The false positives scored 0.5 and 0.55, the true ones 0.6+: the threshold moves past
    // the false ones.
    let t = v["thresholds"]["default"].as_f64().expect("number");
    assert!(t > 0.55 && t <= 0.6, "{t}");
    let (code, v) = call(app.clone(), "GET", "/api/incidents?label=fp", None, "").await;
    assert_eq!(
        (code, v.as_array().map(Vec::len)),
        (StatusCode::OK, Some(2))
    );
    let (code, _) = call(app, "GET", "/api/incidents?label=bogus", None, "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}
