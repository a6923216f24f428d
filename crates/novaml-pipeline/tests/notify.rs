//! Alert delivery with retries and backoff against flaky receivers, and delivery to a real
//! Alertmanager (Debian's prometheus-alertmanager, installed by scripts/test.sh).

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::incident;
use novaml_anomaly::alert::{WebhookEvent, to_alertmanager};
use novaml_pipeline::notify::{DeliveryError, Notifier, Webhook, WebhookFormat};

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
