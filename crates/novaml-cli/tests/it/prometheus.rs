//! Collection from a real Prometheus and node_exporter: no gap and no duplicate across a SIGKILL
//! of the collector and an outage of Prometheus; one-shot range export; scraping node_exporter.

use std::time::Duration;

use novaml_core::{MetricStore, Selector, Series, TimeRange};
use novaml_store::SqliteStore;

use crate::env::{free_port, http_get, novaml, spawn_novaml, start_services, wait_for};

fn stored(db: &std::path::Path, selector: &str) -> Vec<Series> {
    let store = SqliteStore::open(db).expect("open store");
    store
        .query(
            &selector.parse::<Selector>().expect("selector"),
            TimeRange::all(),
            None,
        )
        .expect("query")
}

/// Prometheus' own answer for `expr` on the 1 s grid over `[start, end]` (ms), as (ts, value).
fn prometheus_range(port: u16, expr: &str, start: i64, end: i64) -> Vec<(i64, f64)> {
    let q: String = expr
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let path = format!(
        "/api/v1/query_range?query={q}&start={}&end={}&step=1",
        start / 1000,
        end / 1000
    );
    let (status, body) = http_get(port, &path).expect("prometheus answers");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let result = v["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 1, "one series for {expr}: {body}");
    result[0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|p| {
            (
                (p[0].as_f64().expect("ts") * 1000.0).round() as i64,
                p[1].as_str().expect("value").parse().expect("number"),
            )
        })
        .collect()
}

fn metric_value(port: u16, needle: &str) -> f64 {
    let Some((_, body)) = http_get(port, "/metrics") else {
        return 0.0;
    };
    body.lines()
        .filter(|l| l.starts_with(needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn follow_survives_sigkill_and_a_prometheus_outage_without_gaps_or_duplicates() {
    let svc = start_services();
    let work = svc.dir.path();
    let db = work.join("store.db");
    let cfg = work.join("novaml.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[store]
path = "{db}"
[[sources.prometheus_api]]
name = "prom"
url = "http://127.0.0.1:{port}"
step = "1s"
backfill = "10s"
delay = "2s"
interval = "1s"
timeout = "1s"
retries = 1
backoff = "200ms"
queries = [
  {{ name = "up", expr = "up" }},
  {{ name = "node_load1", expr = "node_load1" }},
  {{ name = "cpu_busy", expr = "sum(rate(node_cpu_seconds_total{{mode!=\"idle\"}}[5s]))" }},
]
"#,
            db = db.display(),
            port = svc.prom_port
        ),
    )
    .expect("config");
    let log = work.join("novaml.log");
    let cfg_s = cfg.display().to_string();
    let up_points = || stored(&db, "up").first().map_or(0, |s| s.points.len());

    // 1. Collect, then kill -9 mid-run.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut c = spawn_novaml(
        &[
            "collect", "--config", &cfg_s, "--follow", "--listen", &listen,
        ],
        work,
        &log,
    );
    wait_for("first points", Duration::from_secs(30), || {
        db.exists() && up_points() >= 8
    });
    c.signal("KILL");
    c.wait_exit(Duration::from_secs(10));
    let at_kill = up_points();
    std::thread::sleep(Duration::from_secs(3));

    // 2. Restart: it resumes from the stored cursor.
    let listen2_port = free_port();
    let listen2 = format!("127.0.0.1:{listen2_port}");
    let mut c = spawn_novaml(
        &[
            "collect", "--config", &cfg_s, "--follow", "--listen", &listen2,
        ],
        work,
        &log,
    );
    wait_for("collection after restart", Duration::from_secs(30), || {
        up_points() >= at_kill + 4
    });

    // 3. Prometheus hangs (SIGSTOP): the collector times out and retries; then it comes back.
    svc.prom.signal("STOP");
    wait_for("timeouts counted", Duration::from_secs(30), || {
        metric_value(
            listen2_port,
            "novaml_collect_errors_total{source=\"prom\",kind=\"timeout\"}",
        ) >= 1.0
    });
    std::thread::sleep(Duration::from_secs(3));
    svc.prom.signal("CONT");
    let resumed_at = novaml_core::time::now_ms();
    wait_for("backfill after the outage", Duration::from_secs(30), || {
        stored(&db, "up")
            .first()
            .and_then(|s| s.points.last())
            .is_some_and(|p| p.ts >= resumed_at - 2_000)
    });

    // 4. Graceful stop flushes.
    c.signal("TERM");
    let status = c.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "clean exit after SIGTERM; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // No gap: instant selectors have a value at every grid point.
    for name in ["up", "node_load1"] {
        let s = stored(&db, name);
        assert_eq!(s.len(), 1, "{name}: one series");
        let ts = s[0].timestamps();
        assert!(
            ts.windows(2).all(|w| w[1] - w[0] == 1_000),
            "{name}: a gap or duplicate in {ts:?}"
        );
        assert!(
            ts[ts.len() - 1] - ts[0] >= 15_000,
            "{name}: covers the kill and the outage ({} points)",
            ts.len()
        );
    }
    // No loss, no duplicate, no alteration: exactly Prometheus' own answer over the same range.
    for (name, expr) in [
        ("up", "up"),
        ("node_load1", "node_load1"),
        (
            "cpu_busy",
            "sum(rate(node_cpu_seconds_total{mode!=\"idle\"}[5s]))",
        ),
    ] {
        let ours = stored(&db, name);
        let ours: Vec<(i64, f64)> = ours[0].points.iter().map(|p| (p.ts, p.value)).collect();
        let (first, last) = (ours[0].0, ours[ours.len() - 1].0);
        let theirs = prometheus_range(svc.prom_port, expr, first, last);
        assert_eq!(ours, theirs, "{name}: the store differs from Prometheus");
    }
}

#[test]
fn one_shot_range_export_and_node_exporter_scrape() {
    let svc = start_services();
    let work = svc.dir.path();
    std::thread::sleep(Duration::from_secs(3));
    let to = novaml_core::time::now_ms() / 1000 * 1000 - 2_000;
    let from = to - 8_000;
    let out = work.join("up.csv");
    let (ok, _, err) = novaml(
        &[
            "collect",
            "--prometheus",
            &format!("http://127.0.0.1:{}", svc.prom_port),
            "--query",
            "up=up",
            "--step",
            "1s",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
        work,
    );
    assert!(ok, "{err}");
    let csv = std::fs::read_to_string(&out).expect("csv");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    // Every grid point Prometheus has in the range, no more, no fewer.
    let theirs = prometheus_range(svc.prom_port, "up", from, to);
    assert!(theirs.len() >= 3, "Prometheus has a few points: {theirs:?}");
    assert_eq!(rows.len(), theirs.len(), "{csv}");
    for (row, (ts, _)) in rows.iter().zip(&theirs) {
        let stamp = chrono::DateTime::from_timestamp_millis(*ts)
            .expect("ts")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        assert!(
            row.starts_with("\"up{instance=") && row.ends_with(&format!(",{stamp},1")),
            "{row} vs {stamp}"
        );
    }

    // Scrape node_exporter once into JSON lines, then import that file into a store.
    let jsonl = work.join("node.jsonl");
    let (ok, _, err) = novaml(
        &[
            "collect",
            "--scrape",
            &format!("http://127.0.0.1:{}/metrics", svc.node_port),
            "--out",
            jsonl.to_str().expect("path"),
        ],
        work,
    );
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .expect("jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let has = |name: &str, label: Option<(&str, &str)>| {
        lines.iter().any(|l| {
            l["name"] == name
                && label.is_none_or(|(k, v)| l["labels"][k] == v)
                && l["labels"]["job"] == "scrape0"
        })
    };
    assert!(
        lines.len() > 200,
        "node_exporter exposes hundreds of series, got {}",
        lines.len()
    );
    assert!(has("node_cpu_seconds_total", Some(("mode", "idle"))));
    assert!(
        has("go_gc_duration_seconds", Some(("quantile", "0.5"))),
        "summary quantiles"
    );
    assert!(has("go_gc_duration_seconds_count", None) && has("go_gc_duration_seconds_sum", None));

    let db = work.join("imported.db");
    let (ok, _, err) = novaml(
        &[
            "collect",
            "--file",
            jsonl.to_str().expect("path"),
            "--store",
            db.to_str().expect("path"),
        ],
        work,
    );
    assert!(ok, "{err}");
    let store = SqliteStore::open(&db).expect("store");
    assert_eq!(
        store.count_points().expect("count"),
        lines.len() as u64,
        "JSON lines round-trip into the store"
    );
}
