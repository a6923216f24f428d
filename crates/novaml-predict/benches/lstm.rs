//! Training and inference speed of the LSTM.
//!
//! Shapes: the peer comparison's (bench/predict_vs_keras.py): 2 × 64 LSTM, sequence 60,
//! 8 features, 12 horizons × 3 quantiles, batch 64; one epoch is 10,000 windows (157 batches),
//! so the epoch time is 157 × the batch time below. Inference is one series (batch 1), as
//! `novaml predict` and the demo serve it.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use novaml_predict::model::{NetConfig, Network, pinball};
use std::hint::black_box;

const T: usize = 60;
const F: usize = 8;
const B: usize = 64;

fn net() -> Network {
    Network::new(
        NetConfig {
            inputs: F,
            layers: vec![64, 64],
            bidirectional: false,
            attention: false,
            dropout: 0.0,
            outputs: 36,
            skip: 0,
        },
        1,
    )
    .expect("net")
}

fn bench(c: &mut Criterion) {
    let n = net();
    let x: Vec<f32> = (0..T * B * F)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let y: Vec<f32> = (0..B * 12)
        .map(|i| ((i * 31) % 100) as f32 / 100.0)
        .collect();
    let q = [0.1f32, 0.5, 0.9];
    let mut g = c.benchmark_group("lstm");
    g.sample_size(20);
    g.bench_function("train_batch_64", |b| {
        let mut grad = vec![0.0f32; n.len()];
        b.iter(|| {
            grad.iter_mut().for_each(|v| *v = 0.0);
            novaml_predict::training::bench_batch_grad(&n, &x, &y, T, B, &q, &mut grad);
            black_box(&grad);
        });
    });
    g.bench_function("predict_one_series", |b| {
        let x1 = &x[..T * F];
        b.iter(|| black_box(n.forward(black_box(x1), T, 1, None).out));
    });
    g.bench_function("pinball_loss", |b| {
        let out = vec![0.5f32; B * 36];
        let mut d = vec![0.0f32; B * 36];
        b.iter(|| black_box(pinball(&out, &y, &q, (B * 36) as f32, &mut d)));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
