//! `novaml serve` from a configuration file: the configured sources reach the store and the
//! series API, capacity planning runs on the selector given, and what is not configured answers
//! a JSON 404 that says so; novaml's own metrics reach a real Prometheus by remote write.

use std::time::Duration;

use std::process::{Command, Stdio};

use crate::env::{Proc, free_port, http_get, need, spawn_novaml, wait_for};

#[test]
fn serve_runs_the_configured_pipeline_with_the_api_and_dashboards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    std::fs::write(
        dir.path().join("novaml.toml"),
        r#"
[store]
path = "data/novaml.db"

[sources.simulator]
enabled = true
seed = 7
hosts = 2
vms_per_host = 1
step = "60s"
history = "3d"
interval = "10s"
"#,
    )
    .expect("config");
    // A real Prometheus that accepts remote writes (Debian's, installed by scripts/test.sh).
    let prom_port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global:\n  scrape_interval: 1m\n",
    )
    .expect("prometheus config");
    let _prom = Proc {
        child: Command::new(need("prometheus"))
            .arg("--config.file=prometheus.yml")
            .arg("--storage.tsdb.path=prom-data")
            .arg("--web.enable-remote-write-receiver")
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
        name: "prometheus",
    };
    wait_for("prometheus ready", Duration::from_secs(30), || {
        http_get(prom_port, "/-/ready").is_some_and(|(s, _)| s == 200)
    });
    let remote = format!("http://127.0.0.1:{prom_port}/api/v1/write");
    let log = dir.path().join("serve.log");
    let listen = format!("127.0.0.1:{port}");
    let mut serve = spawn_novaml(
        &[
            "serve",
            "--config",
            "novaml.toml",
            "--listen",
            &listen,
            "--plan",
            "host_cpu_usage_percent",
            "--remote-write",
            &remote,
            "--remote-write-every",
            "1",
        ],
        dir.path(),
        &log,
    );
    let dump = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(
        "the simulated series in the API",
        Duration::from_secs(60),
        || {
            http_get(port, "/api/series?match=host_cpu_usage_percent")
                .and_then(|(s, b)| (s == 200).then_some(b))
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v.as_array().is_some_and(|a| a.len() == 2))
        },
    );
    wait_for("a capacity plan", Duration::from_secs(90), || {
        http_get(port, "/api/capacity").is_some_and(|(s, _)| s == 200)
    });
    let (_, body) = http_get(port, "/api/capacity").expect("plan");
    let plan: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(plan["hosts"].as_array().map(Vec::len), Some(2), "{plan}");
    for (path, what) in [
        ("/api/tuning", "tuning is not enabled"),
        ("/api/models", "no model registry"),
    ] {
        let (code, body) = http_get(port, path).expect("get");
        assert_eq!(code, 404, "{path}: {body}");
        assert!(body.contains(what), "{path}: {body}\n{}", dump());
    }
    let (code, page) = http_get(port, "/dashboards/capacity").expect("page");
    assert_eq!(code, 200);
    assert!(page.contains("data-page=\"capacity\""));
    // novaml's own metrics arrived in Prometheus by remote write, with their labels and values.
    let query = "/api/v1/query?query=novaml_collect_samples_total%7Bsource%3D%22simulator%22%7D";
    wait_for(
        "remote-written samples in Prometheus",
        Duration::from_secs(30),
        || {
            http_get(prom_port, query)
                .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
                .and_then(|v| {
                    v["data"]["result"][0]["value"][1]
                        .as_str()
                        .and_then(|s| s.parse::<f64>().ok())
                })
                .is_some_and(|n| n > 1_000.0)
        },
    );
    wait_for(
        "the capacity gauges in Prometheus",
        Duration::from_secs(30),
        || {
            http_get(
                prom_port,
                "/api/v1/query?query=novaml_capacity_hosts_to_add",
            )
            .is_some_and(|(_, b)| b.contains("\"resource\":\"cpu\""))
        },
    );
    // The token was generated beside the store.
    let token = std::fs::read_to_string(dir.path().join("data/api-token")).expect("token");
    assert_eq!(token.trim().len(), 32);
    serve.signal("TERM");
    let status = serve.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", dump());
}
