//! Seeded generators of test data. Every generator takes an explicit seed.

use novaml_core::{Point, Series, SeriesKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded RNG for tests.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` series named `metric` with label `id="0".."n-1"`, each with `points` points at `step_ms`
/// from `start`, values a random walk.
pub fn random_walks(
    seed: u64,
    metric: &str,
    n: usize,
    points: usize,
    start: i64,
    step_ms: i64,
) -> Vec<Series> {
    let mut r = rng(seed);
    (0..n)
        .map(|i| {
            let key = SeriesKey::new(metric)
                .and_then(|k| k.with_label("id", i.to_string()))
                .expect("generator keys are valid");
            let mut v = 100.0;
            let pts = (0..points)
                .map(|j| {
                    v += r.random_range(-1.0..1.0);
                    Point::new(start + j as i64 * step_ms, v)
                })
                .collect();
            Series::new(key, pts)
        })
        .collect()
}

/// A daily sine (period `period` points) plus seeded uniform noise of amplitude `noise`.
pub fn seasonal(seed: u64, len: usize, period: usize, noise: f64) -> Vec<f64> {
    let mut r = rng(seed);
    (0..len)
        .map(|i| {
            let phase = i as f64 / period as f64 * std::f64::consts::TAU;
            10.0 + 5.0 * phase.sin() + noise * r.random_range(-1.0..1.0)
        })
        .collect()
}

/// `n` 5-minute values of a VM-like metric: a daily cycle of amplitude `amp` around `level`
/// plus AR(1) noise (coefficient 0.8, innovations uniform of width 0.3 × `amp`), seeded.
pub fn daily_cycle(seed: u64, n: usize, level: f64, amp: f64) -> Vec<f64> {
    let mut r = rng(seed);
    let mut e = 0.0;
    (0..n)
        .map(|i| {
            e = 0.8 * e + 0.3 * amp * (r.random::<f64>() - 0.5);
            level + amp * (i as f64 * std::f64::consts::TAU / 288.0).sin() + e
        })
        .collect()
}
