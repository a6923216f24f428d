//! Integration tests of feature engineering: no feature looks ahead of its row.

use novaml_features::{DataConfig, FeatureConfig, Scalers, SeriesFrame, build, inputs, windows};
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
    fn dataset_labels_equal_future_values(values in proptest::collection::vec(0.5f64..1e3, 40..90), h in 1usize..6) {
        let pts: Vec<(i64, f64)> = (0..values.len()).map(|i| (i as i64 * 60_000, values[i])).collect();
        let frame = SeriesFrame::from_points(&pts, &[], 60_000).expect("frame");
        let cfg = DataConfig { lookback: 4, horizon: h, season: 0, calendar: true, covariates: vec![] };
        prop_assume!(Scalers::fit(&frame, &cfg, 30).is_ok());
        let scalers = Scalers::fit(&frame, &cfg, 30).expect("scalers");
        let table = inputs(&frame, &cfg, &scalers).expect("inputs");
        let w = windows(&frame, &cfg, &scalers, &table, 0..values.len(), true);
        prop_assert_eq!(w.len(), values.len() - 3 - h);
        let sd = scalers.target.std;
        for (k, &o) in w.origins.iter().enumerate() {
            // The label of every step is the true future value, as a change from the origin.
            for j in 0..h {
                let y = values[o] + f64::from(w.y[k * h + j]) * sd;
                prop_assert!((y - values[o + j + 1]).abs() < 1e-3 * values[o + j + 1].max(1.0));
            }
            // The last window row is the origin row itself.
            let last = &w.x[(k * w.steps + w.steps - 1) * w.features..];
            let v = f64::from(last[0]) * sd + scalers.target.mean;
            prop_assert!((v - values[o]).abs() < 1e-3 * values[o].max(1.0));
        }
    }
}
