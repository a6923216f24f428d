//! The incident API through the router, alert delivery with retries, and delivery to a real
//! Alertmanager (Debian's prometheus-alertmanager, installed by scripts/test.sh).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use novaml_anomaly::alert::{WebhookEvent, to_alertmanager};
use novaml_anomaly::incident::{DetectConfig, Incident, detect};
use novaml_anomaly::streaming::StreamingParams;
use novaml_core::SeriesKey;
use novaml_server::alerts::{DeliveryError, Notifier, Webhook, WebhookFormat};
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

/// A receiver that answers 503 to the first `fail` requests, then 200, and keeps the bodies.
async fn flaky_receiver(fail: usize) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (h, b) = (hits.clone(), bodies.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let (h, b) = (h.clone(), b.clone());
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                b.lock().expect("lock").push(body);
                if n < fail {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits, bodies)
}

#[tokio::test]
async fn webhook_delivery_retries_with_backoff_then_gives_up() {
    let inc = incident();
    let events = [WebhookEvent::new(&inc, Some(1), inc.end, 600_000)];
    let (url, hits, bodies) = flaky_receiver(2).await;
    let hook = |url: &str| Webhook {
        url: url.to_owned(),
        format: WebhookFormat::Json,
        bearer_token: None,
    };
    let n = Notifier::new(
        vec![hook(&url)],
        4,
        Duration::from_millis(20),
        Duration::from_secs(2),
    )
    .expect("client");
    let t0 = Instant::now();
    let r = n.deliver(&[], &events).await;
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 3, "two failures, then success");
    assert!(
        t0.elapsed() >= Duration::from_millis(60),
        "backoff 20 + 40 ms"
    );
    let body: serde_json::Value =
        serde_json::from_str(&bodies.lock().expect("lock")[2]).expect("json");
    assert_eq!(body["alerts"][0]["status"], "firing");
    assert_eq!(body["alerts"][0]["incident"]["kind"], "latency_spike");

    let (url, hits, _) = flaky_receiver(100).await;
    let n = Notifier::new(
        vec![hook(&url)],
        3,
        Duration::from_millis(1),
        Duration::from_secs(2),
    )
    .expect("client");
    let r = n.deliver(&[], &events).await;
    assert!(
        matches!(r[0], Err(DeliveryError::GaveUp { attempts: 3, .. })),
        "{r:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // Nobody listening: gives up too, without hanging.
    let r = Notifier::new(
        vec![hook("http://127.0.0.1:9/hook")],
        2,
        Duration::from_millis(1),
        Duration::from_secs(2),
    )
    .expect("client")
    .deliver(&[], &events)
    .await;
    assert!(r[0].is_err());
}

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn alerts_reach_a_real_alertmanager() {
    let bin = Command::new("sh")
        .args(["-c", "command -v prometheus-alertmanager"])
        .output()
        .expect("sh");
    assert!(
        bin.status.success(),
        "prometheus-alertmanager is not installed; run scripts/test.sh (it installs it)"
    );
    let bin = String::from_utf8_lossy(&bin.stdout).trim().to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("am.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: none\nreceivers:\n  - name: none\n",
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let _am = Kill(
        Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    while client
        .get(format!("{base}/-/ready"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "alertmanager not ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let inc = incident();
    let alert = to_alertmanager(&inc, Some(42), "http://127.0.0.1:8600", inc.end, 600_000);
    let n = Notifier::new(
        vec![Webhook {
            url: base.clone(),
            format: WebhookFormat::Alertmanager,
            bearer_token: None,
        }],
        3,
        Duration::from_millis(100),
        Duration::from_secs(5),
    )
    .expect("client");
    let r = n.deliver(std::slice::from_ref(&alert), &[]).await;
    assert!(r[0].is_ok(), "{r:?}");
    let got: serde_json::Value = client
        .get(format!("{base}/api/v2/alerts"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let a = &got[0];
    assert_eq!(a["labels"]["alertname"], "NovamlAnomaly");
    assert_eq!(a["labels"]["host"], "h1");
    assert_eq!(a["labels"]["type"], "latency_spike");
    assert_eq!(a["annotations"]["incident_id"], "42");
    assert_eq!(a["status"]["state"], "active");
}
