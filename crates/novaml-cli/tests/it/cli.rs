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
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "the cause is said once: {err}"
    );
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
    let grid = dir.path().join("grid.toml");
    std::fs::write(&grid, "suppress = [60]\nshort_window = [1, 4]\n").expect("grid");
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
            "--cv",
            "--grid",
            grid.to_str().expect("path"),
        ],
        dir.path(),
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("standard"), "{stdout}");
    assert!(
        stdout.contains("leave one category out (3 candidates"),
        "{stdout}"
    );
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
    // Leave one category out: a fold per category, each scored at a choice made on the others.
    let cv = scores["cross_validation"]
        .as_array()
        .expect("cross_validation");
    assert_eq!(cv.len(), 3, "one report per profile");
    let folds = cv[0]["folds"].as_array().expect("folds");
    let held: Vec<&str> = folds
        .iter()
        .map(|f| f["held_out"].as_str().expect("category"))
        .collect();
    assert_eq!(
        held,
        [
            "artificialNoAnomaly",
            "artificialWithAnomaly",
            "realAWSCloudwatch",
            "realAdExchange",
            "realTraffic"
        ]
    );
    assert!(folds.iter().all(|f| f["candidate"].as_u64() < Some(3)));
    // The in-sample choice includes the defaults at their best threshold.
    let in_sample = cv[0]["in_sample"]["normalized"]
        .as_f64()
        .expect("in-sample");
    assert!(in_sample >= standard - 1e-9, "{in_sample} < {standard}");
    let pooled = cv[0]["pooled"].as_f64().expect("pooled");
    assert!(
        pooled.is_finite() && pooled < in_sample,
        "{pooled} vs {in_sample}"
    );
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

/// A latency series at 5-minute steps with a spike of `height` at each of `at`.
fn latency_csv(path: &std::path::Path, at: &[i64], height: f64) {
    let mut text = String::from("timestamp,latency_ms\n");
    for i in 0..3_000i64 {
        let base = 50.0
            + 20.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin()
            + ((i * 7_919) % 13) as f64 * 0.1;
        let v = if at.iter().any(|a| (*a..*a + 5).contains(&i)) {
            base + height
        } else {
            base
        };
        text.push_str(&format!("{},{v}\n", 1_700_000_000 + i * 300));
    }
    std::fs::write(path, text).expect("write");
}

#[test]
fn feedback_from_the_cli_raises_the_threshold_and_maintenance_suppresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("latency.csv");
    // Spikes that grow: the first ones will be labelled false positives.
    latency_csv(&input, &[1_200, 1_600, 2_000, 2_400, 2_800], 12.0);
    let inp = input.to_str().expect("path");
    let (ok, stdout, err) = novaml(&["detect", "--in", inp, "--db", "inc.db"], dir.path());
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let incidents = v["incidents"].as_array().expect("incidents").clone();
    assert!(incidents.len() >= 5, "{stdout}");
    assert!(incidents.iter().all(|i| i["id"].is_i64()));
    assert!(incidents[0]["contributors"][0]["baseline_p95"].is_f64());
    // Re-running records nothing new: the log merges re-detections.
    let (ok, _, err) = novaml(&["detect", "--in", inp, "--db", "inc.db"], dir.path());
    assert!(ok, "{err}");
    let (ok, list, _) = novaml(&["incidents", "--db", "inc.db", "list"], dir.path());
    assert!(ok);
    assert_eq!(list.lines().count(), incidents.len(), "{list}");

    // Label every incident a false positive.
    for i in &incidents {
        let id = i["id"].to_string();
        let (ok, _, err) = novaml(
            &[
                "incidents",
                "--db",
                "inc.db",
                "label",
                &id,
                "fp",
                "--note",
                "noise",
            ],
            dir.path(),
        );
        assert!(ok, "{err}");
    }
    let (ok, stats, _) = novaml(&["incidents", "--db", "inc.db", "stats"], dir.path());
    assert!(ok);
    let s: serde_json::Value = serde_json::from_str(&stats).expect("json");
    assert_eq!(s["overall"]["precision"], 0.0);
    assert_eq!(s["overall"]["false_alarm_rate"], 1.0);
    let series = incidents[0]["series"].as_str().expect("series");
    let adapted = s["thresholds"]["per_series"][series]
        .as_f64()
        .expect("the series has its own threshold");
    assert!(adapted > 0.5, "{stats}");
    // The next run uses it and reports fewer incidents.
    let (ok, stdout, err) = novaml(&["detect", "--in", inp, "--db", "inc.db"], dir.path());
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["threshold"].as_f64(), Some(adapted));
    assert!(v["incidents"].as_array().expect("array").len() < incidents.len());

    // Bad input to the feedback commands fails clearly.
    let (ok, _, err) = novaml(
        &["incidents", "--db", "inc.db", "label", "99999", "tp"],
        dir.path(),
    );
    assert!(!ok && err.contains("no incident 99999"), "{err}");
    let (ok, _, err) = novaml(
        &["incidents", "--db", "inc.db", "label", "1", "maybe"],
        dir.path(),
    );
    assert!(!ok && err.contains("tp or fp"), "{err}");
    let (ok, _, err) = novaml(&["incidents", "--db", "missing.db", "stats"], dir.path());
    assert!(!ok && err.contains("does not exist"), "{err}");

    // A maintenance window over the last spike suppresses it; a malformed one is refused.
    let window = "{__name__=\"latency_ms\"};2023-11-24T00:00:00Z;2023-11-30T00:00:00Z;upgrade";
    let (ok, stdout, err) = novaml(
        &["detect", "--in", inp, "--maintenance", window],
        dir.path(),
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let inc = v["incidents"].as_array().expect("array");
    let last = inc.last().expect("an incident");
    assert_eq!(last["suppressed"], "upgrade", "{stdout}");
    assert!(inc[0]["suppressed"].is_null());
    let (ok, _, err) = novaml(
        &["detect", "--in", inp, "--maintenance", "{x=1};a;b"],
        dir.path(),
    );
    assert!(!ok && err.contains("--maintenance"), "{err}");
}

#[test]
fn detect_scores_all_metrics_of_an_entity_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("vm.csv");
    let mut text = String::from("timestamp,cpu_pct,net_rx_kbps\n");
    for i in 0..3_000i64 {
        // Deterministic load in [0, 1); CPU and network follow it together, except for a
        // stretch where the network is busy and the CPU idle.
        let hash = |x: u64| {
            let mut z = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z ^ (z >> 31)) as f64 / u64::MAX as f64
        };
        let load = hash(i as u64);
        let (c, n) = if (2_500..2_510).contains(&i) {
            (0.1, 0.9)
        } else {
            (load, load)
        };
        text.push_str(&format!(
            "{},{},{}\n",
            1_700_000_000 + i * 300,
            50.0 * c + hash(i as u64 + 1_000_000),
            1_000.0 * n + 20.0 * hash(i as u64 + 2_000_000)
        ));
    }
    std::fs::write(&input, text).expect("write");
    let (ok, stdout, err) = novaml(
        &["detect", "--in", input.to_str().expect("path")],
        dir.path(),
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let inc = v["incidents"].as_array().expect("array");
    let hit = inc
        .iter()
        .find(|i| {
            i["start"].as_i64().is_some_and(|s| {
                ((1_700_000_000 + 2_500 * 300) * 1000..=(1_700_000_000 + 2_510 * 300) * 1000)
                    .contains(&s)
            })
        })
        .unwrap_or_else(|| panic!("the broken correlation is found: {stdout}"));
    assert_eq!(hit["contributors"].as_array().map(Vec::len), Some(2));
    assert_eq!(hit["detectors"][2]["member"], "mahalanobis");
    assert_eq!(inc.len(), 1, "only the break: {stdout}");
}

#[test]
fn detect_is_neutral_on_short_constant_and_gappy_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "short.csv",
            (0..5)
                .map(|i| format!("{},{}\n", 1_700_000_000 + i * 60, i))
                .collect::<String>(),
        ),
        (
            "constant.csv",
            (0..2_000)
                .map(|i| format!("{},42\n", 1_700_000_000 + i * 60))
                .collect(),
        ),
        (
            // Irregular steps and empty cells (gaps).
            "gappy.csv",
            (0..2_000)
                .map(|i| {
                    let v = if i % 7 == 0 {
                        String::new()
                    } else {
                        format!("{}", (i % 13) as f64)
                    };
                    format!("{},{v}\n", 1_700_000_000 + i * 60 + (i % 5) * 17)
                })
                .collect(),
        ),
    ];
    for (name, body) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("timestamp,value\n{body}")).expect("write");
        let (ok, stdout, err) = novaml(&["detect", "--in", p.to_str().expect("path")], dir.path());
        assert!(ok, "{name}: {err}");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
        assert_eq!(
            v["incidents"].as_array().map(Vec::len),
            Some(0),
            "{name}: {stdout}"
        );
    }
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "timestamp,value\n").expect("write");
    let (ok, _, err) = novaml(
        &["detect", "--in", empty.to_str().expect("path")],
        dir.path(),
    );
    assert!(!ok && err.contains("no series"), "{err}");
}

#[test]
fn forecast_writes_an_interval_and_refuses_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("cpu.csv");
    // 40 days of 5-minute CPU with a daily cycle and deterministic jitter.
    let mut text = String::from("timestamp,cpu_pct\n");
    for i in 0..(40 * 288) {
        let v = 40.0
            + 15.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin()
            + ((i * 7_919) % 17) as f64 * 0.2;
        text.push_str(&format!("{},{v}\n", 1_700_000_000 + i * 300));
    }
    std::fs::write(&input, text).expect("write");
    let inp = input.to_str().expect("path");
    let (ok, _, err) = novaml(
        &[
            "forecast",
            "--in",
            inp,
            "--column",
            "cpu_pct",
            "--freq",
            "1h",
            "--horizon",
            "2d",
            "--level",
            "80",
            "--models",
            "seasonal_naive,seasonal_mean,mstl",
            "--out",
            "f.csv",
        ],
        dir.path(),
    );
    assert!(ok, "{err}");
    assert!(err.contains("model: "), "{err}");
    let out = std::fs::read_to_string(dir.path().join("f.csv")).expect("output");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("timestamp,yhat,yhat_lower,yhat_upper"));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .skip(1)
                .map(|v| v.parse().expect("number"))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 48);
    assert!(
        rows.iter().all(|r| r[1] <= r[0] && r[0] <= r[2]),
        "lower ≤ yhat ≤ upper"
    );
    // The forecast starts after the data (which ends 2023-12-24T22:08Z), never in the past.
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("2023-12-24T23:00:00Z")),
        "{out}"
    );
    // A calendar and a cap are accepted; a cap below the history is refused.
    std::fs::write(
        dir.path().join("events.csv"),
        "name,start,end\nupgrade,2023-12-20T02:00:00Z,2023-12-20T04:00:00Z\nupgrade,2023-12-26T02:00:00Z,2023-12-26T04:00:00Z\n",
    )
    .expect("write");
    let (ok, _, err) = novaml(
        &[
            "forecast",
            "--in",
            inp,
            "--column",
            "cpu_pct",
            "--horizon",
            "1d",
            "--models",
            "prophet",
            "--events",
            "events.csv",
            "--cap",
            "100",
            "--out",
            "g.csv",
        ],
        dir.path(),
    );
    assert!(ok && err.contains("model: prophet"), "{err}");
    for bad in [
        vec!["--level", "120"],
        vec!["--horizon", "0s"],
        vec!["--models", "crystal_ball"],
        vec!["--cap", "10"],
    ] {
        let mut args = vec!["forecast", "--in", inp, "--column", "cpu_pct"];
        args.extend(bad.iter());
        let (ok, _, err) = novaml(&args, dir.path());
        assert!(
            !ok && err.contains(bad[0].trim_start_matches("--")),
            "{bad:?}: {err}"
        );
    }
    // Shorter than two seasons.
    let short = dir.path().join("short.csv");
    std::fs::write(
        &short,
        "timestamp,cpu_pct\n1700000000,1\n1700003600,2\n1700007200,3\n",
    )
    .expect("write");
    let (ok, _, err) = novaml(
        &[
            "forecast",
            "--in",
            short.to_str().expect("path"),
            "--column",
            "cpu_pct",
        ],
        dir.path(),
    );
    assert!(!ok && err.contains("too short"), "{err}");
}

/// Hourly utilisation growing `growth` points a day from `base`, with a daily cycle.
fn utilisation_csv(path: &std::path::Path, base: f64, growth: f64) {
    let mut text = String::from("timestamp,util\n");
    for i in 0..(35 * 24) {
        let v = base
            + growth * i as f64 / 24.0
            + 5.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin()
            + ((i * 7_919) % 13) as f64 * 0.1;
        text.push_str(&format!("{},{v}\n", 1_700_000_000 + i * 3_600));
    }
    std::fs::write(path, text).expect("write");
}

#[test]
fn plan_gives_runway_hosts_scenarios_and_charts() {
    let dir = tempfile::tempdir().expect("tempdir");
    utilisation_csv(&dir.path().join("h1_cpu.csv"), 50.0, 0.8);
    utilisation_csv(&dir.path().join("h2_cpu.csv"), 55.0, 0.8);
    utilisation_csv(&dir.path().join("h1_mem.csv"), 40.0, 0.1);
    utilisation_csv(&dir.path().join("h2_mem.csv"), 42.0, 0.1);
    let series = |host: &str, res: &str, file: &str| {
        format!(
            "[[series]]\nhost = \"{host}\"\nresource = \"{res}\"\nfile = \"{file}\"\ncolumn = \"util\"\n"
        )
    };
    let cfg = format!(
        "horizon = \"30d\"\nfreq = \"1h\"\nout = \"plan\"\n[policy]\nhost_month_price = 1000.0\n{}{}{}{}\
         [[scenarios]]\nname = \"add 10 VMs\"\nadd_vms = 10\nvm_template = {{ memory = 8.0 }}\n\
         [[scenarios]]\nname = \"drain one\"\ndrain_hosts = 1\n",
        series("h1", "cpu", "h1_cpu.csv"),
        series("h2", "cpu", "h2_cpu.csv"),
        series("h1", "memory", "h1_mem.csv"),
        series("h2", "memory", "h2_mem.csv"),
    );
    std::fs::write(dir.path().join("plan.toml"), cfg).expect("write");
    let (ok, stdout, err) = novaml(&["plan", "--config", "plan.toml"], dir.path());
    assert!(ok, "{err}");
    assert!(stdout.contains("Bottleneck: cpu"), "{stdout}");
    let plan: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("plan/plan.json")).expect("plan.json"),
    )
    .expect("json");
    let cpu = &plan["cluster"]["resources"][0];
    assert_eq!(cpu["plan"]["resource"], "cpu");
    // CPU at ~80 % after 35 days, growing 0.8 points a day: warning within days, P90 first.
    let w = &cpu["plan"]["warning_runway"];
    let (p90, p50) = (
        w["p90"].as_f64().expect("p90"),
        w["p50"].as_f64().expect("p50"),
    );
    assert!(p90 <= p50, "{w}");
    assert!(p50 < 20.0 * 86_400.0, "{w}");
    let add = plan["cluster"]["hosts_to_add"].as_u64().expect("hosts");
    assert!(add >= 1, "{plan}");
    assert_eq!(
        plan["cluster"]["monthly_cost"].as_f64(),
        Some(add as f64 * 1000.0)
    );
    assert_eq!(cpu["forecast"]["p50"].as_array().map(Vec::len), Some(720));
    // The forecast starts after the history, never in the past.
    assert!(cpu["forecast"]["start"].as_i64() > cpu["history_end"].as_i64());
    // Draining one of two hosts doubles the load: more hosts needed than without.
    let drain = &plan["scenarios"][1];
    assert_eq!(drain["name"], "drain one");
    assert!(drain["hosts_to_add"].as_u64().expect("n") > add);
    for f in ["plan/cpu.svg", "plan/memory.svg", "plan/summary.txt"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }

    // Bad plans fail and name the problem.
    let bad = [
        ("[policy]\nwarning = 99.0\ncritical = 90.0\n", "policy"),
        ("bogus = 1\n", "bogus"),
        ("horizon = \"soon\"\n", "horizon"),
    ];
    for (extra, want) in bad {
        let text = format!("{extra}{}", series("h1", "cpu", "h1_cpu.csv"));
        std::fs::write(dir.path().join("bad.toml"), text).expect("write");
        let (ok, _, err) = novaml(&["plan", "--config", "bad.toml"], dir.path());
        assert!(!ok && err.contains(want), "{extra}: {err}");
    }
}

#[test]
fn the_example_plan_config_is_valid() {
    let root = novaml_testing::repo_root();
    let (ok, stdout, err) = novaml(
        &["plan", "--config", "config/plan.example.toml", "--check"],
        &root,
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("valid; 4 series"), "{stdout}");
}

#[test]
fn eval_nab_refuses_a_bad_grid_before_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grid = dir.path().join("grid.toml");
    for (text, why) in [
        ("suppress = []\n", "empty list"),
        ("nonsense = [1, 2]\n", "invalid combination"),
        ("short_window = [0]\n", "invalid combination"),
    ] {
        std::fs::write(&grid, text).expect("grid");
        let (ok, _, err) = novaml(
            &[
                "eval",
                "nab",
                "--data",
                dir.path().to_str().expect("path"),
                "--cv",
                "--grid",
                grid.to_str().expect("path"),
            ],
            dir.path(),
        );
        assert!(!ok, "{text}");
        assert!(err.contains(why), "{text}: {err}");
    }
}

#[test]
fn eval_forecast_from_several_origins_reports_each_and_refuses_bad_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let traces = novaml_testing::shared_data()
        .expect("../shared/data beside the repository")
        .join("vm-traces/bitbrains");
    let files: Vec<String> = ["vm_303.csv", "vm_338.csv"]
        .iter()
        .map(|f| traces.join(f).display().to_string())
        .collect();
    let out = dir.path().join("report.json");
    let run = |extra: &[&str]| {
        let mut args = vec!["eval", "forecast", "--data", &files[0], &files[1]];
        args.extend_from_slice(&["--column", "cpu_pct", "--freq", "1h"]);
        args.extend_from_slice(extra);
        novaml(&args, dir.path())
    };
    let (ok, stdout, err) = run(&["--origins", "2", "--out", out.to_str().expect("path")]);
    assert!(ok, "{err}");
    assert!(stdout.contains("over 4 forecasts"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("report")).expect("json");
    let series = v["series"].as_array().expect("series");
    let seen: Vec<(u64, u64, u64)> = series
        .iter()
        .map(|r| {
            (
                r["origin"].as_u64().expect("origin"),
                r["train"].as_u64().expect("train"),
                r["test"].as_u64().expect("test"),
            )
        })
        .collect();
    // 2,184 hourly rows: a 437-row tail, then the 437 rows before it.
    assert_eq!(
        seen,
        vec![
            (0, 1747, 437),
            (1, 1310, 437),
            (0, 1747, 437),
            (1, 1310, 437)
        ]
    );
    for r in series {
        let c: Vec<f64> = r["coverage"]
            .as_array()
            .expect("coverage")
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        assert!(c.len() == 3 && c[0] <= c[1] && c[1] <= c[2], "{c:?}");
    }
    assert_eq!(v["mean_coverage_levels"].as_array().map(Vec::len), Some(3));
    for (extra, why) in [
        (&["--origins", "0"][..], "origins"),
        (&["--interval-floor", "-1"][..], "floor weight -1"),
        (&["--interval-excess", "NaN"][..], "excess weight NaN"),
    ] {
        let (ok, _, err) = run(extra);
        assert!(!ok && err.contains(why), "{extra:?}: {err}");
    }
}

#[test]
fn eval_forecast_m4_reproduces_the_official_seasonal_naive_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m4 = novaml_testing::shared_data()
        .expect("../shared/data beside the repository")
        .join("m4");
    let out = dir.path().join("m4.json");
    let (ok, stdout, err) = novaml(
        &[
            "eval",
            "forecast",
            "--m4",
            m4.to_str().expect("path"),
            "--models",
            "seasonal_naive",
            "--out",
            out.to_str().expect("path"),
        ],
        dir.path(),
    );
    assert!(ok, "{err}");
    assert!(
        stdout.contains("ES-RNN") && stdout.contains("novaml"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("report")).expect("json");
    let sum = &v["summary"];
    assert_eq!(sum["series"], 414);
    // M4's published Hourly row for seasonal naive: sMAPE 13.912, MASE 1.193.
    let smape = sum["smape"].as_f64().expect("smape");
    let mase = sum["mase"].as_f64().expect("mase");
    assert!((smape - 13.912).abs() < 5e-4, "sMAPE {smape}");
    assert!((mase - 1.193).abs() < 5e-4, "MASE {mase}");
    let cov = sum["coverage"].as_array().expect("coverage");
    assert_eq!(cov.len(), 3);
    assert!(cov[0].as_f64() < cov[1].as_f64() && cov[1].as_f64() < cov[2].as_f64());
    // --m4 and --data exclude each other.
    let (ok, _, err) = novaml(
        &["eval", "forecast", "--m4", "x", "--data", "y.csv"],
        dir.path(),
    );
    assert!(!ok && err.contains("cannot be used with"), "{err}");
}

#[test]
fn eval_smd_writes_score_files_and_prints_held_out_figures() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("smd");
    std::fs::create_dir_all(data.join("interpretation_label")).expect("dirs");
    // Two machines of 3 metrics: a seeded daily-ish wave plus noise; in the test half metric 2
    // jumps for rows 120..130, labelled, and explained by metric 2.
    let mut rng = 11u64;
    let mut noise = || {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) as f64 / (1u64 << 31) as f64 * 0.02
    };
    for name in ["machine-1-1", "machine-1-2"] {
        for (part, rows) in [("train", 400), ("test", 200)] {
            let file =
                std::fs::File::create(data.join(format!("{name}.{part}.csv.gz"))).expect("f");
            let mut w = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            let labelled = part == "test";
            writeln!(w, "t,m01,m02,m03{}", if labelled { ",label" } else { "" }).expect("w");
            for t in 0..rows {
                let wave = 0.5 + 0.2 * (t as f64 / 30.0).sin();
                let anomalous = labelled && (120..130).contains(&t);
                let m2 = if anomalous { 0.95 } else { 0.3 + noise() };
                write!(w, "{t},{:.6},{m2:.6},{:.6}", wave + noise(), 0.1 + noise()).expect("w");
                if labelled {
                    write!(w, ",{}", u8::from(anomalous)).expect("w");
                }
                writeln!(w).expect("w");
            }
            w.finish().expect("gz");
        }
        std::fs::write(
            data.join("interpretation_label")
                .join(format!("{name}.txt")),
            "120-130:2\n",
        )
        .expect("interpretation");
    }
    let out = dir.path().join("scores");
    let json = dir.path().join("smd.json");
    let (ok, stdout, err) = novaml(
        &[
            "eval",
            "smd",
            "--data",
            data.to_str().expect("path"),
            "--out",
            out.to_str().expect("path"),
            "--json",
            json.to_str().expect("path"),
            "--cv",
        ],
        dir.path(),
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("held out: event F1"), "{stdout}");
    for name in ["machine-1-1", "machine-1-2"] {
        let text = std::fs::read_to_string(out.join(format!("{name}.csv"))).expect("scores");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "score,alert,top");
        assert_eq!(lines.len(), 201, "one row per test row");
        // The jump is caught, and metric 2 leads the ranking there.
        let row: Vec<&str> = lines[1 + 121].split(',').collect();
        assert_eq!(row[1], "1", "{}", lines[1 + 121]);
        assert!(row[2].starts_with('2'), "{}", lines[1 + 121]);
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("json");
    assert_eq!(v["overall"]["segments"], 2);
    for cv in ["rule_and_threshold", "threshold"] {
        assert_eq!(
            v["cross_validation"][cv]["folds"].as_array().map(Vec::len),
            Some(2),
            "{cv}"
        );
    }
    assert_eq!(
        v["cross_validation"]["threshold"]["folds"][0]["candidate"], "mean",
        "the default rule"
    );
    assert!(
        stdout.contains("rule and alert threshold chosen on the others"),
        "{stdout}"
    );
    assert!(v["overall"]["hitrate150"].as_f64().is_some_and(|h| h > 0.5));

    // Bad input: a clear error, no panic.
    for (args, why) in [
        (
            vec!["eval", "smd", "--data", "/nonexistent/smd"],
            "cannot list SMD machines",
        ),
        (
            vec!["eval", "smd", "--data", dir.path().to_str().expect("path")],
            "no machine-X-Y.test.csv.gz",
        ),
        (
            vec!["eval", "smd", "--threshold", "2"],
            "--threshold must be in [0, 1]",
        ),
    ] {
        let (ok, _, err) = novaml(&args, dir.path());
        assert!(!ok, "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
}
