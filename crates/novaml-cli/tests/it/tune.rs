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
