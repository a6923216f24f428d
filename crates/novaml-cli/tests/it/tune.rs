//! `novaml env-eval`: one measured run of the transfer engine as JSON.

use crate::env::novaml;

#[test]
fn env_eval_measures_a_run_and_refuses_bad_parameters() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let (ok, out, err) = novaml(&["env-eval", "--list"], d);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["default"]["algorithm"], "zstd");
    assert_eq!(v["scenarios"].as_array().map(Vec::len), Some(3));

    let (ok, out, err) = novaml(
        &[
            "env-eval",
            "--scenario",
            "wan-100m",
            "--params",
            r#"{"algorithm":"lz4","streams":8}"#,
        ],
        d,
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let goodput = v["goodput_bps"].as_f64().expect("goodput");
    let ratio = v["compression_ratio"].as_f64().expect("ratio");
    // lz4 compresses the VM-like payload, so goodput exceeds the 100 Mbit/s link by about the
    // ratio (never by more).
    assert!(ratio > 1.3, "{ratio}");
    assert!(
        goodput > 100e6 && goodput < 100e6 * ratio * 1.05,
        "{goodput}"
    );
    assert_eq!(v["payload_bytes"], 24 * 1024 * 1024);
    assert_eq!(v["config"]["streams"], 8);

    for (params, needle) in [
        (r#"{"streams":64}"#, "outside [1, 16]"),
        (r#"{"compression":"zstd"}"#, "unknown"),
        (r#"{"level":"high"}"#, "not an integer"),
        ("not json", "not valid JSON"),
    ] {
        let (ok, _, err) = novaml(&["env-eval", "--params", params], d);
        assert!(!ok && err.contains(needle), "{params}: {err}");
    }
    let (ok, _, err) = novaml(&["env-eval", "--scenario", "moon"], d);
    assert!(!ok && err.contains("wan-100m"), "{err}");
    let (ok, _, err) = novaml(
        &[
            "env-eval",
            "--params",
            r#"{"algorithm":"none"}"#,
            "--timeout",
            "100ms",
        ],
        d,
    );
    assert!(!ok && err.contains("timed out"), "{err}");
}

/// A "system" whose latency is lowest at threads = 6 with cache on; it records every
/// configuration it was given, so the test can check what was applied.
const SYSTEM: &str = r#"echo "$NOVAML_CONFIG" >> applied.jsonl; t=$NOVAML_PARAM_THREADS; c=0; [ "$NOVAML_PARAM_CACHE" = true ] && c=20; echo "{\"latency_ms\": $(( (t - 6) * (t - 6) + 50 - c )), \"threads\": $t}""#;

const SPACE: &str = r#"[
  {"name": "threads", "domain": {"type": "int", "lo": 1, "hi": 16, "log": false},
   "default": 2, "help": "worker threads"},
  {"name": "cache", "domain": {"type": "bool"}, "default": false, "help": "response cache"}
]"#;

#[test]
fn tune_drives_a_command_environment_and_reports_the_improvement() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    std::fs::write(d.join("space.json"), SPACE).expect("space");
    let args = [
        "tune",
        "--env",
        "command",
        "--space",
        "space.json",
        "--command",
        SYSTEM,
        "--objective",
        "latency_ms",
        "--minimize",
        "--tuner",
        "bo",
        "--budget",
        "16",
        "--repeats",
        "2",
        "--constraint",
        "threads<=12",
        "--out",
        "r.json",
    ];
    let (ok, _, err) = novaml(&args, d);
    assert!(ok, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).expect("out"))
            .expect("json");
    // Default: (2-6)² + 50 = 66 ms; the optimum: 30 ms (threads 6, cache on).
    let best = v["best"]["metrics"]["latency_ms"].as_f64().expect("best");
    assert!(
        best <= 34.0,
        "bo finds near the optimum in 16 trials: {best}"
    );
    assert_eq!(v["default"]["config"]["threads"], 2);
    let trials = v["trials"].as_array().expect("trials");
    let measured = trials.iter().filter(|t| t["status"] != "refused").count();
    assert_eq!(measured, 16, "the budget counts measured trials");
    // Refused proposals (predicted to break threads<=12) were never applied.
    for t in trials.iter().filter(|t| t["status"] == "refused") {
        assert!(t["p_feasible"].as_f64().is_some_and(|p| p < 0.5), "{t}");
    }
    // A minimised metric's improvement is its reduction: 1 - best/default.
    let imp = v["improvement"].as_f64().expect("improvement");
    assert!((imp - (1.0 - best / 66.0)).abs() < 1e-9, "{imp}");
    assert!(
        v["improvement_ci95"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    );
    assert!(v["share_of_optimum"].is_null(), "no cached optimum here");
    let applied = std::fs::read_to_string(d.join("applied.jsonl")).expect("log");
    // 16 trials + 2 × 2 re-measurements.
    assert_eq!(applied.lines().count(), 20);

    for (extra, needle) in [
        (
            vec!["--space", "space.json", "--constraint", "threads<12"],
            "METRIC<=BOUND",
        ),
        (
            vec!["--space", "space.json", "--tuner", "magic"],
            "invalid value 'magic'",
        ),
        (vec!["--space", "missing.json"], "missing.json"),
    ] {
        let mut a = vec![
            "tune",
            "--env",
            "command",
            "--command",
            "true",
            "--objective",
            "x",
        ];
        a.extend(extra);
        let (ok, _, err) = novaml(&a, d);
        assert!(!ok && err.contains(needle), "{needle}: {err}");
    }
    let (ok, _, err) = novaml(&["tune", "--env", "command", "--space", "space.json"], d);
    assert!(!ok && err.contains("--command"), "{err}");
}

#[test]
fn tune_measures_through_a_real_prometheus() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let textfile = d.join("textfile");
    std::fs::create_dir_all(&textfile).expect("dir");
    let svc = crate::env::start_services_with(Some(&textfile));
    std::fs::write(d.join("space.json"), SPACE).expect("space");
    // Applying a configuration publishes the "system's" latency through node_exporter's
    // textfile collector; Prometheus scrapes it every second.
    let apply = format!(
        r#"t=$NOVAML_PARAM_THREADS; c=0; [ "$NOVAML_PARAM_CACHE" = true ] && c=20; echo "demo_latency_ms $(( (t - 6) * (t - 6) + 50 - c ))" > {dir}/demo.prom.tmp && mv {dir}/demo.prom.tmp {dir}/demo.prom"#,
        dir = textfile.display()
    );
    let url = format!("http://127.0.0.1:{}", svc.prom_port);
    let (ok, _, err) = novaml(
        &[
            "tune",
            "--env",
            "prometheus",
            "--prometheus",
            &url,
            "--space",
            "space.json",
            "--apply-command",
            &apply,
            "--query",
            "latency=max_over_time(demo_latency_ms[$window])",
            "--objective",
            "latency",
            "--minimize",
            "--settle",
            "2500ms",
            "--window",
            "2s",
            "--tuner",
            "grid",
            "--budget",
            "4",
            "--repeats",
            "0",
            "--out",
            "r.json",
        ],
        d,
    );
    assert!(ok, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).expect("out"))
            .expect("json");
    // Every measurement is what the applied configuration published, read back by PromQL.
    for t in v["trials"].as_array().expect("trials") {
        let c = &t["config"];
        let th = c["threads"].as_i64().expect("threads");
        let cache = if c["cache"] == true { 20 } else { 0 };
        let want = ((th - 6) * (th - 6) + 50 - cache) as f64;
        assert_eq!(t["metrics"]["latency"].as_f64(), Some(want), "{t}");
    }
    assert_eq!(v["default"]["objective"].as_f64(), Some(-66.0));
    // A query that returns no number is a clear error.
    let (ok, _, err) = novaml(
        &[
            "tune",
            "--env",
            "prometheus",
            "--prometheus",
            &url,
            "--space",
            "space.json",
            "--apply-command",
            "true",
            "--query",
            "x=nonexistent_metric",
            "--objective",
            "x",
            "--settle",
            "0s",
            "--window",
            "1s",
            "--budget",
            "1",
            "--repeats",
            "0",
        ],
        d,
    );
    assert!(
        !ok && err.contains("no configuration was measured") && err.contains("returned 0 series"),
        "{err}"
    );
}
