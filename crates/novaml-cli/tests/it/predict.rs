//! `novaml train`, `predict`, `models` and `eval predict` on a synthetic VM series.

use crate::env::novaml;

/// Five-minute CPU with a daily cycle, AR noise and a leading covariate.
fn vm_csv(path: &std::path::Path, rows: usize) {
    let mut text = String::from("timestamp,cpu_pct,lead\n");
    let mut s = 11u64;
    let mut e = 0.0;
    for i in 0..rows {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let u = (s >> 33) as f64 / (1u64 << 31) as f64 - 0.5;
        e = 0.7 * e + 3.0 * u;
        let tau = std::f64::consts::TAU / 288.0;
        let cpu = 50.0 + 20.0 * (i as f64 * tau).sin() + e;
        let lead = 50.0 + 20.0 * ((i + 1) as f64 * tau).sin();
        text.push_str(&format!("{},{cpu:.3},{lead:.3}\n", 1_700_000_000 + i * 300));
    }
    std::fs::write(path, text).expect("write");
}

#[test]
fn train_predict_roll_back_and_evaluate() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let csv = d.join("vm.csv");
    vm_csv(&csv, 3000);
    let csv_s = csv.to_str().expect("utf8");
    let small = ["--layers", "12", "--epochs", "3", "--covariates", "lead"];

    // A baseline first, then the default (the ensemble, LSTM inside): it must win the holdout
    // and serve.
    let mut args = vec![
        "train", "--in", csv_s, "--column", "cpu_pct", "--kind", "naive",
    ];
    args.extend(small);
    let (ok, out, err) = novaml(&args, d);
    assert!(ok, "{err}");
    assert!(
        out.contains("vm.cpu_pct v1") && out.contains("promoted"),
        "{out}"
    );
    let mut args = vec!["train", "--in", csv_s, "--column", "cpu_pct"];
    args.extend(small);
    let (ok, out, err) = novaml(&args, d);
    assert!(ok, "{err}");
    assert!(out.contains("v2") && out.contains("promoted"), "{out}{err}");
    assert!(err.contains("epoch   1"), "loss per epoch is shown: {err}");
    assert!(
        d.join("novaml-models/vm.cpu_pct/v0002/weights.bin")
            .exists()
    );

    let (ok, out, err) = novaml(
        &[
            "predict",
            "--in",
            csv_s,
            "--column",
            "cpu_pct",
            "--name",
            "vm.cpu_pct",
            "--slo",
            "65",
        ],
        d,
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["version"], 2);
    assert_eq!(v["kind"], "ensemble");
    assert_eq!(
        v["forecast"]["predicted"].as_array().map(Vec::len),
        Some(12)
    );
    let risk = v["risk_of_crossing_slo"].as_f64().expect("risk");
    assert!((0.0..=1.0).contains(&risk));

    let (ok, _, err) = novaml(&["models", "rollback", "vm.cpu_pct", "1"], d);
    assert!(ok, "{err}");
    let (ok, out, _) = novaml(&["models", "show", "vm.cpu_pct"], d);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["champion"], 1);
    assert_eq!(v["log"].as_array().map(Vec::len), Some(3));
    let (ok, _, err) = novaml(&["models", "rollback", "vm.cpu_pct", "7"], d);
    assert!(!ok && err.contains("no version 7"), "{err}");

    // The evaluation writes every prediction; its MAE is recomputable from the CSV.
    let preds = d.join("preds");
    let report = d.join("report.json");
    let mut args = vec![
        "eval",
        "predict",
        "--data",
        csv_s,
        "--column",
        "cpu_pct",
        "--out",
        report.to_str().expect("utf8"),
        "--predictions",
        preds.to_str().expect("utf8"),
    ];
    args.extend(small);
    let (ok, _, err) = novaml(&args, d);
    assert!(ok, "{err}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    let lstm = &r["series"][0]["models"]["lstm"];
    let mae_h1 = lstm["horizons"][0]["mae"].as_f64().expect("mae");
    let text = std::fs::read_to_string(preds.join("lstm/vm.csv")).expect("csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("origin,h,timestamp,actual,predicted,lower,upper")
    );
    let (mut sum, mut n) = (0.0, 0);
    for l in lines {
        let f: Vec<f64> = l.split(',').map(|x| x.parse().expect("number")).collect();
        if f[1] == 1.0 {
            sum += (f[3] - f[4]).abs();
            n += 1;
        }
    }
    assert!(
        (sum / n as f64 - mae_h1).abs() < 1e-9,
        "{} vs {mae_h1}",
        sum / n as f64
    );
    // The leading covariate makes the LSTM beat naive clearly.
    let rel = lstm["summary"]["median_rel_mae"].as_f64().expect("rel");
    assert!(rel < 0.8, "relative MAE {rel}");
    assert!(preds.join("vm.csv").exists());
}

#[test]
fn prediction_commands_refuse_bad_input() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let csv = d.join("short.csv");
    vm_csv(&csv, 200);
    let csv_s = csv.to_str().expect("utf8");
    let (ok, _, err) = novaml(&["train", "--in", csv_s, "--column", "cpu_pct"], d);
    assert!(!ok && err.contains("too few"), "{err}");
    let (ok, _, err) = novaml(&["train", "--in", csv_s, "--column", "mem"], d);
    assert!(!ok && err.contains("no column \"mem\""), "{err}");
    let (ok, _, err) = novaml(
        &[
            "predict", "--in", csv_s, "--column", "cpu_pct", "--name", "nothing",
        ],
        d,
    );
    assert!(!ok && err.contains("no serving version"), "{err}");
    let (ok, _, err) = novaml(
        &[
            "eval",
            "predict",
            "--data",
            csv_s,
            "--column",
            "cpu_pct",
            "--models",
            "lstm,arima",
        ],
        d,
    );
    assert!(!ok && err.contains("arima"), "{err}");
    // Every file is checked before any fitting: the second file's missing column is reported,
    // not the first file's (too short) training.
    let other = d.join("other.csv");
    std::fs::write(&other, "timestamp,mem\n1700000000,1\n").expect("write");
    let (ok, _, err) = novaml(
        &[
            "eval",
            "predict",
            "--data",
            csv_s,
            other.to_str().expect("utf8"),
            "--column",
            "cpu_pct",
        ],
        d,
    );
    assert!(
        !ok && err.contains("other.csv") && err.contains("no column") && !err.contains("too few"),
        "{err}"
    );
}
