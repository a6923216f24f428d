//! `novaml demo` end to end: live detection over the simulated cluster, incidents through the
//! API, feedback with the generated token, anomaly metrics on /metrics.

use std::time::Duration;

use crate::env::{free_port, http_get, http_post, novaml, spawn_novaml, wait_for};

#[test]
fn demo_detects_incidents_and_takes_feedback_through_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.path().join("demo.log");
    let mut demo = spawn_novaml(
        &[
            "demo",
            "--listen",
            &listen,
            "--data-dir",
            "data",
            "--detect-every",
            "3",
            "--for",
            "180s",
        ],
        dir.path(),
        &log,
    );
    let dump = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(
        "incidents from live detection",
        Duration::from_secs(90),
        || {
            http_get(port, "/api/incidents?limit=5")
                .and_then(|(s, b)| (s == 200).then_some(b))
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        },
    );
    // A second pipeline on the same data directory stops at once, naming the first one.
    let (ok, _, err) = novaml(
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "data",
            "--for",
            "20s",
        ],
        dir.path(),
    );
    assert!(!ok, "a second demo ran on the same data directory");
    assert!(
        err.contains("is in use by another novaml")
            && err.contains(&format!("PID {}", demo.child.id())),
        "{err}"
    );
    let (_, body) = http_get(port, "/api/incidents?limit=5").expect("incidents");
    let list: serde_json::Value = serde_json::from_str(&body).expect("json");
    let first = &list[0];
    let id = first["id"].as_i64().expect("id");
    assert!(first["body"]["contributors"][0]["z"].is_f64(), "{first}");
    assert_eq!(first["body"]["labels"]["simulated"], "true");

    // /metrics has the scores and the incident counter.
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    assert!(metrics.contains("novaml_anomaly_score{"), "{metrics}");
    assert!(
        metrics.contains("novaml_anomaly_incidents_total{"),
        "{metrics}"
    );

    // Feedback needs the token the demo generated.
    let token = std::fs::read_to_string(dir.path().join("data/api-token")).expect("token file");
    let uri = format!("/api/incidents/{id}/feedback");
    let (code, _) = http_post(port, &uri, None, r#"{"label":"fp"}"#).expect("post");
    assert_eq!(code, 401);
    let (code, body) = http_post(
        port,
        &uri,
        Some(token.trim()),
        r#"{"label":"fp","note":"test"}"#,
    )
    .expect("post");
    assert_eq!(code, 200, "{body}\n{}", dump());
    let (_, stats) = http_get(port, "/api/incidents/stats").expect("stats");
    let s: serde_json::Value = serde_json::from_str(&stats).expect("json");
    assert_eq!(s["overall"]["false_positives"], 1, "{stats}");

    // A capacity plan of the simulated hosts, on the API and on /metrics.
    wait_for("the first capacity plan", Duration::from_secs(90), || {
        http_get(port, "/api/capacity").is_some_and(|(s, _)| s == 200)
    });
    let (_, body) = http_get(port, "/api/capacity").expect("capacity");
    let plan: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(plan["hosts"].as_array().map(Vec::len), Some(3), "{body}");
    assert_eq!(
        plan["cluster"]["forecast"]["p50"].as_array().map(Vec::len),
        Some(720)
    );
    // The simulated history ends now: forecasts start within the next hour, never in the past.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    for f in [&plan["cluster"]["forecast"], &plan["hosts"][0]["forecast"]] {
        let start = f["start"].as_i64().expect("start");
        assert!(
            start > now - 2 * 3_600 && start <= now + 3_600,
            "{start} vs now {now}"
        );
    }
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    for name in [
        "novaml_capacity_runway_seconds{",
        "novaml_forecast_yhat{",
        "novaml_forecast_yhat_upper{",
        "novaml_capacity_hosts_to_add{",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }

    demo.signal("TERM");
    let status = demo.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", dump());
}
