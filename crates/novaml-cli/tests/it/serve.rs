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

/// `[store] kind = "remote"`: the sources write to a real VictoriaMetrics, detection and planning
/// read from it, the state stays in the SQLite file, and the status page names the TSDB.
#[test]
fn serve_keeps_the_metrics_in_victoria_metrics() {
    let vm = novaml_testing::services::Service::victoria_metrics();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    std::fs::write(
        dir.path().join("novaml.toml"),
        format!(
            r#"
[store]
kind = "remote"
url = "{}"
path = "data/novaml.db"

[sources.simulator]
enabled = true
seed = 7
hosts = 2
vms_per_host = 1
step = "60s"
history = "3d"
interval = "5s"

[detect]
enabled = true
interval = "5s"
"#,
            vm.url()
        ),
    )
    .expect("config");
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
        ],
        dir.path(),
        &log,
    );
    let dump = || std::fs::read_to_string(&log).unwrap_or_default();
    // The simulated history is in VictoriaMetrics, found by its own series API.
    wait_for(
        "the simulated series in VictoriaMetrics",
        Duration::from_secs(60),
        || {
            http_get(
                vm.port,
                "/api/v1/series?match%5B%5D=host_cpu_usage_percent&start=1",
            )
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["data"].as_array().is_some_and(|a| a.len() == 2))
        },
    );
    wait_for("the status page", Duration::from_secs(30), || {
        http_get(port, "/api/status")
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
            .is_some_and(|v| {
                v["store"].as_str() == Some(&format!("remote {}", vm.url())[..])
                    && v["series"].as_u64().is_some_and(|n| n > 2)
            })
    });
    // Detection passes and the capacity plan read the remote store.
    wait_for("a detection pass", Duration::from_secs(60), || {
        http_get(port, "/metrics").is_some_and(|(_, b)| {
            b.lines().any(|l| {
                l.starts_with("novaml_anomaly_detection_runs_total")
                    && l.split_whitespace()
                        .last()
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(|n| n >= 1.0)
            })
        })
    });
    wait_for("a capacity plan", Duration::from_secs(90), || {
        http_get(port, "/api/capacity").is_some_and(|(s, _)| s == 200)
    });
    let (_, body) = http_get(port, "/api/capacity").expect("plan");
    let plan: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(plan["hosts"].as_array().map(Vec::len), Some(2), "{plan}");
    // The series API is the TSDB's: this server says so.
    let (code, body) = http_get(port, "/api/series").expect("get");
    assert_eq!(code, 404, "{body}");
    // The state file exists; no metric was written to it.
    let db = dir.path().join("data/novaml.db");
    assert!(db.exists(), "the state store\n{}", dump());
    serve.signal("TERM");
    let status = serve.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", dump());
    let after = novaml_store::SqliteStore::open(&db).expect("open");
    assert_eq!(
        after.count_points().expect("count"),
        0,
        "metrics stayed remote"
    );
}

#[test]
fn a_remote_store_misconfigured_or_unreachable_fails_at_start_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dead = format!("http://127.0.0.1:{}", free_port());
    for (store, want) in [
        ("kind = \"remote\"".to_owned(), "store.url".to_owned()),
        (format!("kind = \"remote\"\nurl = \"{dead}\""), dead.clone()),
        ("url = \"http://x:1\"".to_owned(), "store.url".to_owned()),
    ] {
        std::fs::write(
            dir.path().join("novaml.toml"),
            format!(
                "[store]\npath = \"data/novaml.db\"\n{store}\n\n[sources.simulator]\nenabled = true\n"
            ),
        )
        .expect("config");
        let listen = format!("127.0.0.1:{}", free_port());
        let (ok, _, err) = crate::env::novaml(
            &["serve", "--config", "novaml.toml", "--listen", &listen],
            dir.path(),
        );
        assert!(!ok, "{store}: should fail");
        assert!(err.contains(&want), "{store}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Three workers (`--shard 0/3 .. 2/3`) over one VictoriaMetrics, filled by the test (no
/// sources of their own): every series is scored by exactly one worker.
#[test]
fn three_shards_score_every_series_exactly_once() {
    use novaml_core::{Batch, MetricStore, Point, Series, SeriesKey};
    let vm = novaml_testing::services::Service::victoria_metrics();
    let mut store = novaml_store::RemoteStore::connect(novaml_store::RemoteConfig::new(vm.url()))
        .expect("connect");
    let now = novaml_core::time::now_ms() / 60_000 * 60_000;
    let n = 30;
    let series: Vec<Series> = (0..n)
        .map(|i| {
            let key = SeriesKey::new("vm_cpu_usage_percent")
                .and_then(|k| k.with_label("vm", format!("vm-{i}")))
                .expect("key");
            // Two days a minute apart, a daily cycle, each series its own phase.
            let points = (0..2 * 1_440)
                .map(|m| {
                    let t = now - (2 * 1_440 - m) * 60_000;
                    let v = 50.0
                        + 20.0
                            * ((m as f64 / 1_440.0 + i as f64 / n as f64) * std::f64::consts::TAU)
                                .sin();
                    Point::new(t, v)
                })
                .collect();
            Series::new(key, points)
        })
        .collect();
    store
        .write(&Batch {
            source: "test".into(),
            series,
            cursor: None,
        })
        .expect("write");
    store.flush().expect("flush");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut workers = Vec::new();
    for k in 0..3 {
        let wdir = dir.path().join(format!("w{k}"));
        std::fs::create_dir_all(&wdir).expect("dir");
        let shard = format!("{k}/3");
        let (proc, port) = detection_worker(&wdir, &vm.url(), "2s", "", &["--shard", &shard]);
        workers.push((proc, port, wdir));
    }
    // The series each worker scored, from the `vm` label of its score gauges.
    let scored = |port: u16| -> Vec<String> {
        http_get(port, "/metrics")
            .map(|(_, b)| {
                b.lines()
                    .filter(|l| l.starts_with("novaml_anomaly_score{"))
                    .filter_map(|l| l.split("vm=\"").nth(1))
                    .filter_map(|l| l.split('"').next())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_for("every series scored", Duration::from_secs(90), || {
        workers
            .iter()
            .map(|(_, p, _)| scored(*p).len())
            .sum::<usize>()
            >= n as usize
    });
    let mut all: Vec<String> = Vec::new();
    for (_, port, wdir) in &workers {
        let mine = scored(*port);
        assert!(
            !mine.is_empty() && mine.len() < n as usize,
            "each worker scores a share: {mine:?}\n{}",
            std::fs::read_to_string(wdir.join("serve.log")).unwrap_or_default()
        );
        all.extend(mine);
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "no series is scored by two workers");
    assert_eq!(all.len(), n as usize, "every series is scored");
    // A shard out of range is refused before anything starts.
    let (ok, _, err) = crate::env::novaml(
        &["serve", "--config", "novaml.toml", "--shard", "3/3"],
        &workers[0].2,
    );
    assert!(!ok && err.contains("below the count"), "{err}");
    for (mut p, _, _) in workers {
        p.signal("TERM");
        assert!(p.wait_exit(Duration::from_secs(30)).success());
    }
}

/// Incremental detection with checkpoints: scores are written back to VictoriaMetrics at the
/// rows' own timestamps; after `kill -9` and more data, a restarted worker scores exactly the
/// rows it had not (no gap), and opens no incident a second time.
#[test]
fn a_killed_worker_resumes_from_its_checkpoint_without_gaps_or_repeated_incidents() {
    use novaml_core::{Batch, MetricStore, Point, Selector, Series, SeriesKey, TimeRange};
    let vm = novaml_testing::services::Service::victoria_metrics();
    let mut store = novaml_store::RemoteStore::connect(novaml_store::RemoteConfig::new(vm.url()))
        .expect("connect");
    let step = 60_000;
    let end = novaml_core::time::now_ms() / step * step;
    let n_series = 4;
    let value = |i: usize, m: i64| {
        let daily = ((m as f64 / 1_440.0) + i as f64 / 7.0) * std::f64::consts::TAU;
        // A fixed pseudo-random wiggle, and a spike on every series 200 minutes before the end
        // of the first part.
        let wiggle = ((m * 7_919 + i as i64 * 104_729) % 1_000) as f64 / 1_000.0;
        let spike = if (1_240..1_246).contains(&m) {
            60.0
        } else {
            0.0
        };
        40.0 + 15.0 * daily.sin() + 2.0 * wiggle + spike
    };
    let key = |i: usize| {
        SeriesKey::new("vm_net_rx_mbps")
            .and_then(|k| k.with_label("vm", format!("vm-{i}")))
            .expect("key")
    };
    // Minutes 0..1440 end 60 minutes before now; minutes 1440..1470 come while the worker is down.
    let first = end - 1_500 * step;
    let write = |store: &mut novaml_store::RemoteStore, minutes: std::ops::Range<i64>| {
        let series = (0..n_series)
            .map(|i| {
                let points = minutes
                    .clone()
                    .map(|m| Point::new(first + m * step, value(i, m)))
                    .collect();
                Series::new(key(i), points)
            })
            .collect();
        store
            .write(&Batch {
                source: "test".into(),
                series,
                cursor: None,
            })
            .expect("write");
        store.flush().expect("flush");
    };
    write(&mut store, 0..1_440);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("serve.log");
    let start = |_: &std::path::Path| detection_worker(dir.path(), &vm.url(), "1s", "", &[]).0;
    // Every series' written-back score timestamps.
    let scored = |store: &novaml_store::RemoteStore| -> Vec<Vec<i64>> {
        let _ = store.flush();
        let sel: Selector = "novaml_anomaly_score".parse().expect("selector");
        let mut found = store
            .query(&sel, TimeRange::all(), None)
            .unwrap_or_default();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        found.iter().map(Series::timestamps).collect()
    };
    let upto = |minute: i64| {
        let want = first + (minute - 1) * step;
        move |s: &[Vec<i64>]| s.len() == n_series && s.iter().all(|t| t.last() == Some(&want))
    };
    let mut worker = start(&log);
    let dump = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("scores up to the last row", Duration::from_secs(60), || {
        upto(1_440)(&scored(&store))
    });
    let db = dir.path().join("data/novaml.db");
    let incidents = || {
        novaml_store::incidents::IncidentLog::open(&db)
            .and_then(|mut l| novaml_store::StateStore::count(&mut l))
            .expect("incident log")
    };
    wait_for("the spikes' incidents", Duration::from_secs(30), || {
        incidents() >= n_series
    });
    let before = incidents();
    worker.signal("KILL");
    worker.wait_exit(Duration::from_secs(10));
    // Rows VictoriaMetrics took by remote write: the restarted worker must send only the new
    // rows' scores (a detector re-warmed without its checkpoint would resend ~1,200 per series).
    let ingested = || {
        http_get(vm.port, "/metrics")
            .and_then(|(_, b)| {
                b.lines()
                    .find(|l| l.starts_with("vm_rows_inserted_total{type=\"promremotewrite\"}"))
                    .and_then(|l| l.split_whitespace().last())
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .expect("VictoriaMetrics counts its rows")
    };
    let rows_before = ingested();
    write(&mut store, 1_440..1_470);
    let mut worker = start(&log);
    wait_for(
        "scores of the rows that came while it was down",
        Duration::from_secs(60),
        || upto(1_470)(&scored(&store)),
    );
    // Every row after the warm-up has its score, once: the timestamps are the rows'.
    for (i, ts) in scored(&store).iter().enumerate() {
        let first_scored = ts[0];
        let want: Vec<i64> = (0..1_470)
            .map(|m| first + m * step)
            .filter(|&t| t >= first_scored)
            .collect();
        assert_eq!(ts, &want, "series {i}: a gap or a stray score\n{}", dump());
        assert_eq!(
            first_scored,
            first + 250 * step,
            "scored after the 250-row warm-up"
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(incidents(), before, "no incident opened again\n{}", dump());
    assert_eq!(
        ingested() - rows_before,
        2 * 30 * n_series as u64,
        "the new rows and their scores, nothing resent\n{}",
        dump()
    );
    worker.signal("TERM");
    assert!(
        worker.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        dump()
    );
}

/// The shipped vmalert rules (dashboards/grafana/vmalert.yml) on the scores a worker writes back:
/// a real vmalert over VictoriaMetrics fires for the series with a recent spike, for it only,
/// and a real Alertmanager receives the alert with the series' labels.
#[test]
fn vmalert_fires_on_written_back_scores_and_alertmanager_receives_it() {
    use novaml_core::{Batch, MetricStore, Point, Series, SeriesKey};
    let vm = novaml_testing::services::Service::victoria_metrics();
    let am = novaml_testing::services::Service::alertmanager();
    let mut store = novaml_store::RemoteStore::connect(novaml_store::RemoteConfig::new(vm.url()))
        .expect("connect");
    let step = 60_000;
    let end = novaml_core::time::now_ms() / step * step;
    // A day and a half of a minute-step daily cycle, up to now; vm-0 spikes 8 to 4 minutes ago.
    let rows = 2_160i64;
    let series = (0..3)
        .map(|i| {
            let key = SeriesKey::new("vm_disk_io_mbps")
                .and_then(|k| k.with_label("vm", format!("vm-{i}")))
                .expect("key");
            let points = (0..rows)
                .map(|m| {
                    let t = end - (rows - 1 - m) * step;
                    let daily = (m as f64 / 1_440.0 + i as f64 / 5.0) * std::f64::consts::TAU;
                    let wiggle = ((m * 7_919 + i as i64 * 104_729) % 1_000) as f64 / 1_000.0;
                    let spike = if i == 0 && (rows - 9..rows - 4).contains(&m) {
                        80.0
                    } else {
                        0.0
                    };
                    Point::new(t, 30.0 + 10.0 * daily.sin() + wiggle + spike)
                })
                .collect();
            Series::new(key, points)
        })
        .collect();
    store
        .write(&Batch {
            source: "test".into(),
            series,
            cursor: None,
        })
        .expect("write");
    store.flush().expect("flush");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("serve.log");
    let (mut worker, _) = detection_worker(dir.path(), &vm.url(), "1s", "", &[]);
    let rules = novaml_testing::repo_root().join("dashboards/grafana/vmalert.yml");
    let vmalert = novaml_testing::services::Service::vmalert(&rules, &vm.url(), &am.url());
    let dump = || std::fs::read_to_string(&log).unwrap_or_default();
    // vmalert's own view, then what reached Alertmanager.
    let alerts = |port: u16, path: &str| -> String {
        http_get(port, path).map(|(_, b)| b).unwrap_or_default()
    };
    wait_for("the alert in Alertmanager", Duration::from_secs(90), || {
        let _ = store.flush();
        alerts(am.port, "/api/v2/alerts").contains("NovamlSeriesAnomalous")
    });
    // A few more evaluations: an alert for another series would have come by now.
    std::thread::sleep(Duration::from_secs(3));
    let received: serde_json::Value =
        serde_json::from_str(&alerts(am.port, "/api/v2/alerts")).expect("json");
    let anomalous: Vec<(String, String)> = received
        .as_array()
        .expect("a list")
        .iter()
        .filter(|a| a["labels"]["alertname"] == "NovamlSeriesAnomalous")
        .map(|a| {
            (
                a["labels"]["vm"].as_str().unwrap_or("").to_owned(),
                a["labels"]["metric"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        anomalous,
        vec![("vm-0".to_owned(), "vm_disk_io_mbps".to_owned())],
        "only the spiked series, with its labels\nvmalert: {}\n{}",
        alerts(vmalert.port, "/api/v1/alerts"),
        dump()
    );
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(30)).success());
}

/// A series that appears while the worker runs, with history behind it (a new source, a
/// backfill), is read from the lookback's start: its history warms its detector, and an
/// incident in that history is found.
#[test]
fn a_series_that_appears_mid_run_is_read_with_its_history() {
    use novaml_core::{Batch, MetricStore, Point, Series, SeriesKey};
    let vm = novaml_testing::services::Service::victoria_metrics();
    let mut store = novaml_store::RemoteStore::connect(novaml_store::RemoteConfig::new(vm.url()))
        .expect("connect");
    let step = 60_000;
    let end = novaml_core::time::now_ms() / step * step;
    let series = |name: &str, spike: bool| {
        let key = SeriesKey::new(name).expect("key");
        let points = (0..1_440i64)
            .map(|m| {
                let daily = (m as f64 / 1_440.0) * std::f64::consts::TAU;
                let wiggle = ((m * 7_919) % 1_000) as f64 / 1_000.0;
                let bump = if spike && (900..906).contains(&m) {
                    70.0
                } else {
                    0.0
                };
                Point::new(
                    end - (1_439 - m) * step,
                    20.0 + 5.0 * daily.sin() + wiggle + bump,
                )
            })
            .collect();
        Series::new(key, points)
    };
    let mut write = |s: Series| {
        store
            .write(&Batch {
                source: "test".into(),
                series: vec![s],
                cursor: None,
            })
            .expect("write");
        store.flush().expect("flush");
    };
    write(series("vm_first", false));
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("serve.log");
    let (mut worker, port) = detection_worker(dir.path(), &vm.url(), "1s", "", &[]);
    let dump = || std::fs::read_to_string(&log).unwrap_or_default();
    let passes = || {
        http_get(port, "/metrics")
            .and_then(|(_, b)| {
                b.lines()
                    .find(|l| l.starts_with("novaml_anomaly_detection_runs_total"))
                    .and_then(|l| l.split_whitespace().last())
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    };
    wait_for(
        "two passes over the first series",
        Duration::from_secs(30),
        || passes() >= 2.0,
    );
    // The second series arrives with a day of history (no point newer than the first series'
    // last) and a spike nine hours ago: found in the store's list of series, read whole.
    write(series("vm_second", true));
    wait_for(
        "the incident in its history",
        Duration::from_secs(30),
        || http_get(port, "/api/incidents?limit=10").is_some_and(|(_, b)| b.contains("vm_second")),
    );
    worker.signal("TERM");
    assert!(
        worker.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        dump()
    );
}

/// Two workers share their state in a real PostgreSQL: each scores its shard, and either one's
/// API lists the whole fleet's incidents and every shard's lease; a third worker started on a
/// running shard refuses; a worker killed with `kill -9` shows as a shard without a worker on
/// the other's /metrics, takes its shard back at once when restarted, and opens no incident
/// twice.
#[test]
fn a_fleet_shares_incidents_and_shard_leases_in_postgres() {
    use novaml_core::{Batch, MetricStore, Point, Series, SeriesKey};
    use novaml_store::StateStore;
    let vm = novaml_testing::services::Service::victoria_metrics();
    let pg = novaml_testing::services::Service::postgres();
    let pg_url = pg.postgres_url();
    let mut store = novaml_store::RemoteStore::connect(novaml_store::RemoteConfig::new(vm.url()))
        .expect("connect");
    let step = 60_000;
    let end = novaml_core::time::now_ms() / step * step;
    let n = 8;
    let series: Vec<Series> = (0..n)
        .map(|i| {
            let key = SeriesKey::new("vm_disk_latency_ms")
                .and_then(|k| k.with_label("vm", format!("vm-{i}")))
                .expect("key");
            // A day a minute apart: a daily cycle, a fixed wiggle, a spike 100 minutes ago.
            let points = (0..1_440)
                .map(|m| {
                    let daily = (m as f64 / 1_440.0 + i as f64 / 11.0) * std::f64::consts::TAU;
                    let wiggle = ((m * 7_919 + i * 104_729) % 1_000) as f64 / 1_000.0;
                    let spike = if (1_340..1_346).contains(&m) {
                        60.0
                    } else {
                        0.0
                    };
                    let t = end - (1_440 - m) * step;
                    Point::new(t, 40.0 + 15.0 * daily.sin() + 2.0 * wiggle + spike)
                })
                .collect();
            Series::new(key, points)
        })
        .collect();
    store
        .write(&Batch {
            source: "test".into(),
            series,
            cursor: None,
        })
        .expect("write");
    store.flush().expect("flush");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = format!("\n[state]\npostgres = \"{pg_url}\"\n");
    let worker = |k: usize, shard: &str| {
        let wdir = dir.path().join(format!("w{k}"));
        std::fs::create_dir_all(&wdir).expect("dir");
        let (p, port) = detection_worker(&wdir, &vm.url(), "1s", &state, &["--shard", shard]);
        (p, port, wdir)
    };
    let (mut w0, port0, dir0) = worker(0, "0/2");
    let (mut w1, _, dir1) = worker(1, "1/2");
    let log_of =
        |d: &std::path::Path| std::fs::read_to_string(d.join("serve.log")).unwrap_or_default();
    let mut fleet = novaml_store::PgState::connect(&pg_url).expect("PostgreSQL");
    let mut incidents = || fleet.count().expect("count");
    wait_for(
        "every series' spike recorded",
        Duration::from_secs(90),
        || incidents() >= n as usize,
    );
    // One worker's API: the whole fleet's incidents, and both shards held.
    let listed = http_get(port0, "/api/incidents?limit=1000").expect("incidents");
    let listed: serde_json::Value = serde_json::from_str(&listed.1).expect("JSON");
    let mut vms: Vec<String> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|i| i["series"].as_str())
        .map(str::to_owned)
        .collect();
    vms.sort();
    vms.dedup();
    assert_eq!(
        vms.len(),
        n as usize,
        "both shards' incidents: {vms:?}\n{}",
        log_of(&dir0)
    );
    let held = |port: u16, shard: &str| -> Option<i64> {
        let (_, body) = http_get(port, "/metrics")?;
        let line = format!("novaml_anomaly_shard_held{{shard=\"{shard}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|v| v.trim().parse().ok())
    };
    wait_for("both leases on /metrics", Duration::from_secs(30), || {
        held(port0, "0/2") == Some(1) && held(port0, "1/2") == Some(1)
    });
    let status: serde_json::Value =
        serde_json::from_str(&http_get(port0, "/api/status").expect("status").1).expect("JSON");
    assert_eq!(
        status["shards"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
    assert!(
        status["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("PostgreSQL"))
    );

    // A second worker on a running shard refuses, naming the holder.
    let wdir = dir.path().join("w2");
    std::fs::create_dir_all(&wdir).expect("dir");
    std::fs::copy(dir1.join("novaml.toml"), wdir.join("novaml.toml")).expect("config");
    let (ok, _, err) = crate::env::novaml(
        &[
            "serve",
            "--config",
            "novaml.toml",
            "--shard",
            "1/2",
            "--listen",
            "127.0.0.1:0",
        ],
        &wdir,
    );
    assert!(!ok && err.contains("shard 1/2 is held by"), "{err}");

    // kill -9: the other worker shows the shard without a worker; a restart takes it back.
    let before = incidents();
    w1.signal("KILL");
    w1.wait_exit(Duration::from_secs(10));
    wait_for(
        "the killed worker's lease gone",
        Duration::from_secs(30),
        || held(port0, "1/2") == Some(0),
    );
    let (mut w1, _, _) = worker(1, "1/2");
    wait_for(
        "the restarted worker's lease",
        Duration::from_secs(30),
        || held(port0, "1/2") == Some(1),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        incidents(),
        before,
        "no incident opened twice\n{}",
        log_of(&dir1)
    );
    // Every connection to PostgreSQL is cut (a restart, a proxy): the workers reconnect and
    // take their leases back at their next pass.
    let cut = std::process::Command::new("psql")
        .args([&pg_url, "-qAtc"])
        .arg(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND datname = current_database()",
        )
        .output()
        .expect("psql runs");
    assert!(
        cut.status.success(),
        "{}",
        String::from_utf8_lossy(&cut.stderr)
    );
    let mut admin = novaml_store::PgState::connect(&pg_url).expect("PostgreSQL");
    wait_for("both leases back", Duration::from_secs(30), || {
        admin
            .shards()
            .is_ok_and(|s| s.len() == 2 && s.iter().all(|s| s.held))
    });
    let mut fleet = novaml_store::PgState::connect(&pg_url).expect("PostgreSQL");
    assert_eq!(
        fleet.count().expect("count"),
        before,
        "nothing recorded twice\n{}",
        log_of(&dir0)
    );
    for w in [&mut w0, &mut w1] {
        w.signal("TERM");
        assert!(w.wait_exit(Duration::from_secs(30)).success());
    }
}

/// A detection worker over the VictoriaMetrics at `vm_url` with its state in `dir`: writes its
/// configuration (detection every `every`, no sources, then `more_toml`), starts `novaml serve`
/// with `extra` flags
/// on a free port, logging to `dir/serve.log`; the process and its port.
fn detection_worker(
    dir: &std::path::Path,
    vm_url: &str,
    every: &str,
    more_toml: &str,
    extra: &[&str],
) -> (Proc, u16) {
    std::fs::write(
        dir.join("novaml.toml"),
        format!(
            "[store]\nkind = \"remote\"\nurl = \"{vm_url}\"\npath = \"data/novaml.db\"\n\n[detect]\nenabled = true\ninterval = \"{every}\"\n{more_toml}"
        ),
    )
    .expect("config");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["serve", "--config", "novaml.toml", "--listen", &listen];
    args.extend_from_slice(extra);
    (spawn_novaml(&args, dir, &dir.join("serve.log")), port)
}
