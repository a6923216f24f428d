//! Integration tests of feature engineering: no feature looks ahead of its row.

use novaml_features::{FeatureConfig, build, windowed};
use proptest::prelude::*;

fn config() -> FeatureConfig {
    FeatureConfig {
        calendar: true,
        windows: vec![3, 10],
        quantiles: vec![0.1, 0.5, 0.9],
        zscore_window: 8,
        ewma_alphas: vec![0.3],
        lags: vec![1, 5],
        fft_window: 16,
        spike_z: 2.5,
    }
}

/// Row `t` of the features of the whole series equals row `t` of the features of the prefix
/// ending at `t`: nothing after `t` influenced it.
fn assert_no_look_ahead(values: &[f64]) {
    let ts: Vec<i64> = (0..values.len() as i64)
        .map(|i| 1_700_000_000_000 + i * 300_000)
        .collect();
    let full = build(&ts, values, &config()).expect("features");
    for t in 0..values.len() {
        let prefix = build(&ts[..=t], &values[..=t], &config()).expect("prefix features");
        for (c, name) in full.names.iter().enumerate() {
            let (a, b) = (full.columns[c][t], prefix.columns[c][t]);
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{name} at row {t}: full {a} vs prefix {b}"
            );
        }
    }
}

#[test]
fn no_look_ahead_on_real_nab_data() {
    // The first 120 rows of NAB's ec2_cpu_utilization_24ae8d.csv (real CloudWatch data).
    let path = novaml_testing::repo_root().join("fixtures/nab_ec2_cpu_utilization_24ae8d_head.csv");
    let text = std::fs::read_to_string(path).expect("fixture");
    let values: Vec<f64> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1)?.parse().ok())
        .collect();
    assert_eq!(values.len(), 120);
    assert_no_look_ahead(&values);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

    #[test]
    fn no_feature_looks_ahead(values in proptest::collection::vec(-1e3f64..1e3, 1..60)) {
        assert_no_look_ahead(&values);
    }

    #[test]
    fn dataset_labels_equal_future_values(values in proptest::collection::vec(0.5f64..1e3, 30..80), h in 1usize..6) {
        let ts: Vec<i64> = (0..values.len() as i64).map(|i| i * 60_000).collect();
        let f = build(&ts, &values, &config()).expect("features");
        let ds = windowed(&f, &values, 60_000, 4, &[h]).expect("dataset");
        for (o, y) in ds.origins.iter().zip(&ds.y) {
            let i = (*o / 60_000) as usize;
            prop_assert_eq!(y[0], values[i + h]);
            // The last window row is the origin row itself.
            let row = &ds.x[ds.origins.iter().position(|x| x == o).expect("origin")];
            prop_assert_eq!(row[row.len() - f.names.len()], values[i]);
        }
    }
}
