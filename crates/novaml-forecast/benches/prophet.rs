//! Prophet fit + predict with our L-BFGS optimizer on `fixtures/prophet_vm_hourly.csv` (700
//! hourly CPU values of a real VM), 168 steps ahead, default options (1,000 uncertainty samples):
//! the Rust side of `bench/prophet_vs_python.sh`.

use std::hint::black_box;

use augurs_prophet::{PredictionData, Prophet, ProphetOptions, TrainingData};
use criterion::{Criterion, criterion_group, criterion_main};
use novaml_forecast::prophet::LbfgsOptimizer;

fn series() -> (Vec<i64>, Vec<f64>) {
    let path = novaml_testing::repo_root().join("fixtures/prophet_vm_hourly.csv");
    let text = std::fs::read_to_string(path).expect("fixture");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            Some((c[0].parse::<i64>().ok()?, c[1].parse::<f64>().ok()?))
        })
        .unzip()
}

fn prophet(c: &mut Criterion) {
    let (ds, y) = series();
    let step = ds[1] - ds[0];
    let last = ds[ds.len() - 1];
    let future: Vec<i64> = (1..=168).map(|h| last + h * step).collect();
    let mut g = c.benchmark_group("prophet");
    g.sample_size(10);
    g.bench_function("fit_predict_700_hourly_168_ahead", |b| {
        b.iter(|| {
            let data = TrainingData::new(ds.clone(), y.clone()).expect("data");
            let mut p = Prophet::new(ProphetOptions::default(), LbfgsOptimizer::default());
            p.fit(data, Default::default()).expect("fit");
            black_box(
                p.predict(PredictionData::new(future.clone()))
                    .expect("predict"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, prophet);
criterion_main!(benches);
