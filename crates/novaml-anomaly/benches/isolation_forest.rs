//! Isolation forest fit + score against scikit-learn's `IsolationForest`, single thread each.
//!
//! Shape from issue #3: 100,000 rows × 8 features, 100 trees of 256 samples; fit on all rows,
//! then score all rows. The data is a deterministic formula that `bench/isolation_forest_vs_sklearn.py`
//! computes identically, so both sides see the same numbers. Streaming scoring throughput of the
//! per-series detector is measured on 100,000 rows of the same formula.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use novaml_anomaly::isolation_forest::{IsolationForestParams, MaxSamples};
use novaml_anomaly::streaming::{StreamingDetector, StreamingParams};

const ROWS: usize = 100_000;
const FEATURES: usize = 8;

/// `x[i][j] = 3·sin(0.37·i + 1.3·j) + ((7919·i + 104729·j) mod 1000)/1000`.
fn data() -> Vec<f64> {
    (0..ROWS)
        .flat_map(|i| {
            (0..FEATURES).map(move |j| {
                3.0 * (0.37 * i as f64 + 1.3 * j as f64).sin()
                    + ((7_919 * i + 104_729 * j) % 1_000) as f64 / 1_000.0
            })
        })
        .collect()
}

fn isolation_forest(c: &mut Criterion) {
    let x = data();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let params = IsolationForestParams::default()
        .n_estimators(100)
        .max_samples(MaxSamples::Count(256))
        .seed(0)
        .check()
        .expect("valid");
    let mut g = c.benchmark_group("isolation_forest");
    g.sample_size(10);
    g.bench_function("fit_score_100k_x8_single_thread", |b| {
        b.iter(|| {
            pool.install(|| {
                let f = params.fit(&x, FEATURES).expect("fit");
                black_box(f.score_samples(&x).expect("score"))
            })
        })
    });
    g.finish();
}

fn streaming(c: &mut Criterion) {
    let x: Vec<f64> = data().chunks(FEATURES).map(|r| r[0]).collect();
    let mut g = c.benchmark_group("streaming_detector");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("default_params_100k_rows", |b| {
        b.iter(|| {
            black_box(StreamingDetector::score_series(
                StreamingParams::default().check().expect("valid"),
                &x,
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, isolation_forest, streaming);
criterion_main!(benches);
