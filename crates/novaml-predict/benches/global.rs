//! The per-series cost of serving a fleet from one global model: one forecast (12 steps, median
//! and 80 % interval) of one series from its last rows, the model's trees fitted once on 40
//! seeded synthetic VM-like series (fitting is not timed here: `novaml eval fleet` times a whole
//! training round of 10,000 series).
//!
//! - `global_predict_one_series`: the forecast with the calibration of the training round (what
//!   a fleet's prediction round does per series; the target of #22 is under 50 µs);
//! - `global_predict_one_series_rolling`: the same recomputing the rolling recalibration and the
//!   guard from two days of known outcomes in the call (today's `Predictor::predict`).
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use novaml_features::{SeriesFrame, Split};
use novaml_predict::inference::{FitConfig, ModelKind, fit_global, serve_global};
use std::hint::black_box;

/// A VM-like series (daily cycle, AR(1) noise; seeded) as a 5-minute frame.
fn series(n: usize, seed: u64, level: f64, amp: f64) -> SeriesFrame {
    SeriesFrame {
        start_ms: 1_700_000_000_000,
        step_ms: 300_000,
        target: novaml_testing::generators::daily_cycle(seed, n, level, amp),
        covariates: vec![],
    }
}

fn bench(c: &mut Criterion) {
    let rows = 4 * 288;
    let cfg = FitConfig::default();
    let frames: Vec<SeriesFrame> = (0..40)
        .map(|i| series(rows, 100 + i, 20.0 + i as f64, 3.0 + (i % 7) as f64))
        .collect();
    let split = Split::new(rows, 0.2, 0.0, &cfg.data).expect("split");
    let members: Vec<(&SeriesFrame, Split)> = frames.iter().map(|f| (f, split)).collect();
    let g = fit_global(ModelKind::Gbm, &members, &cfg, &mut |_| {}).expect("fit");
    let mut p = serve_global(&g.model, &frames[0], split, &cfg)
        .expect("serve")
        .predictor;
    let rolling = p.clone();
    p.recalibrate = 0;
    let h = cfg.data.history();
    let tail = SeriesFrame {
        start_ms: frames[0].ts(rows - h),
        step_ms: 300_000,
        target: frames[0].target[rows - h..].to_vec(),
        covariates: vec![],
    };
    c.bench_function("global_predict_one_series", |b| {
        b.iter(|| black_box(p.predict(black_box(&tail)).expect("predict")))
    });
    c.bench_function("global_predict_one_series_rolling", |b| {
        b.iter(|| black_box(rolling.predict(black_box(&frames[0])).expect("predict")))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
