//! Runs a fixed number of training steps of the benchmark shape (2 × 64 LSTM, sequence 60,
//! 8 features, batch 64), for `perf stat` cycle counts, which are steadier than wall time on a
//! shared machine: `perf stat -e cycles target/release/examples/train_steps 100`.
#![allow(missing_docs)]

use novaml_predict::model::{NetConfig, Network};

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let (t, f, b) = (60, 8, 64);
    let net = Network::new(
        NetConfig {
            inputs: f,
            layers: vec![64, 64],
            bidirectional: false,
            attention: false,
            dropout: 0.0,
            outputs: 36,
            skip: 0,
        },
        1,
    )
    .expect("net");
    let x: Vec<f32> = (0..t * b * f)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let y: Vec<f32> = (0..b * 12)
        .map(|i| ((i * 31) % 100) as f32 / 100.0)
        .collect();
    let mut grad = vec![0.0f32; net.len()];
    let started = std::time::Instant::now();
    let mut loss = 0.0;
    for _ in 0..steps {
        loss += novaml_predict::training::bench_batch_grad(
            &net,
            &x,
            &y,
            t,
            b,
            &[0.1, 0.5, 0.9],
            &mut grad,
        );
    }
    println!(
        "{steps} steps, {:.2} ms/step (loss {loss:.3})",
        started.elapsed().as_secs_f64() * 1e3 / steps as f64
    );
}
