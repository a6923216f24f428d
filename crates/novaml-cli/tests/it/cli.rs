//! The command line: help, bad input, the features command.

use crate::env::novaml;

#[test]
fn help_teaches_and_bad_input_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, out, _) = novaml(&["--help"], dir.path());
    assert!(ok);
    for cmd in ["demo", "collect", "features"] {
        assert!(out.contains(cmd), "--help lists {cmd}: {out}");
    }
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[[sources.scrape]]\nname = \"n\"\nurl = \"http://127.0.0.1:1/metrics\"\ninterval = \"often\"\n").expect("write");
    let (ok, _, err) = novaml(
        &["collect", "--config", cfg.to_str().expect("path")],
        dir.path(),
    );
    assert!(!ok);
    assert!(
        err.contains("sources.scrape[0].interval"),
        "names the field: {err}"
    );
    let (ok, _, err) = novaml(&["features", "--in", "/nonexistent.csv"], dir.path());
    assert!(!ok && err.contains("/nonexistent.csv"), "{err}");
}

#[test]
fn features_of_a_real_nab_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input =
        novaml_testing::repo_root().join("fixtures/nab_ec2_cpu_utilization_24ae8d_head.csv");
    let out = dir.path().join("f.csv");
    let (ok, _, err) = novaml(
        &[
            "features",
            "--in",
            input.to_str().expect("path"),
            "--out",
            out.to_str().expect("path"),
        ],
        dir.path(),
    );
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&out).expect("output");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(header[..3], ["timestamp", "value", "hour"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 120);
    assert_eq!(rows[0][0], "2014-02-14T14:30:00Z");
    assert_eq!(rows[0][1], "0.132");
    // lag_1 of row 1 is the value of row 0.
    let lag1 = header
        .iter()
        .position(|h| *h == "lag_1")
        .expect("lag_1 column");
    assert_eq!(rows[1][lag1], "0.132");
    assert_eq!(rows[0][lag1], "", "no history yet: empty cell");
}

#[test]
fn eval_nab_writes_nab_format_results_and_scores_the_detector() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nab = novaml_testing::shared_data()
        .expect("../shared/data beside the repository")
        .join("nab");
    let out = dir.path().join("results");
    let json = dir.path().join("scores.json");
    let (ok, stdout, err) = novaml(
        &[
            "eval",
            "nab",
            "--data",
            nab.to_str().expect("path"),
            "--out",
            out.to_str().expect("path"),
            "--json",
            json.to_str().expect("path"),
        ],
        dir.path(),
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("standard"), "{stdout}");
    let scores: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    let standard = scores["profiles"][0]["normalized"].as_f64().expect("score");
    let fpr = scores["default_operating_point"]["false_positive_rate"]
        .as_f64()
        .expect("fpr");
    assert!(
        fpr < 0.05,
        "point-wise FP rate {fpr} at the default operating point"
    );
    // A floor against regressions (the default detector scored 71.6 when this was written),
    // far above NAB's random detector (14.8).
    assert!(standard >= 68.0, "NAB standard score fell to {standard}");
    let result =
        std::fs::read_to_string(out.join("realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv"))
            .expect("result file");
    let mut lines = result.lines();
    assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
    assert_eq!(lines.count(), 4032);
}

#[test]
fn detect_reports_one_incident_per_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("latency.csv");
    let mut text = String::from("timestamp,latency_ms\n");
    for i in 0..3_000i64 {
        // A daily cycle at 5-minute steps with deterministic jitter, and one 10-row spike.
        let base = 50.0
            + 20.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin()
            + ((i * 7_919) % 13) as f64 * 0.1;
        let v = if (2_500..2_510).contains(&i) {
            base + 400.0
        } else {
            base
        };
        text.push_str(&format!("{},{v}\n", 1_700_000_000 + i * 300));
    }
    std::fs::write(&input, text).expect("write");
    let (ok, stdout, err) = novaml(
        &["detect", "--in", input.to_str().expect("path")],
        dir.path(),
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let incidents = v["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "{stdout}");
    assert_eq!(incidents[0]["kind"], "latency_spike");
    assert_eq!(
        incidents[0]["start"],
        (1_700_000_000i64 + 2_500 * 300) * 1000
    );
    let (ok, _, err) = novaml(
        &[
            "detect",
            "--in",
            input.to_str().expect("path"),
            "--threshold",
            "2",
        ],
        dir.path(),
    );
    assert!(!ok && err.contains("--threshold"), "{err}");
}
