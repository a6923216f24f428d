//! Test support shared by the novaml crates: seeded generators, approximate asserts, the
//! conformance suites that every implementation of a core trait must pass, and real services
//! (VictoriaMetrics, Prometheus) started on free loopback ports.

pub mod conformance;
pub mod generators;
pub mod services;

/// Asserts `|a − b| ≤ tol` with a message naming both values.
#[track_caller]
pub fn assert_close(a: f64, b: f64, tol: f64) {
    assert!(
        (a - b).abs() <= tol || (a.is_nan() && b.is_nan()),
        "{a} and {b} differ by more than {tol}"
    );
}

/// Asserts element-wise closeness of two slices of equal length.
#[track_caller]
pub fn assert_all_close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol || (x.is_nan() && y.is_nan()),
            "index {i}: {x} and {y} differ by more than {tol}"
        );
    }
}

/// The repository's root directory (two levels above a crate's manifest).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared real-data folder (`../shared/data` relative to the repository root), if present.
pub fn shared_data() -> Option<std::path::PathBuf> {
    let p = repo_root().join("../shared/data");
    p.is_dir().then_some(p)
}
