//! Benchmark of the exposition parser on real node_exporter output (57 KB, ~1,000 samples; the
//! fixture the tests use), reported in bytes/s and samples/s.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use novaml_collect::exposition::{Dialect, Limits, parse};

fn node_exporter(c: &mut Criterion) {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/node_exporter_metrics.txt"
    ))
    .expect("fixture");
    let samples = parse(&body, Dialect::Prometheus, 0, Limits::default()).samples as u64;
    let mut g = c.benchmark_group("exposition_parse");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("node_exporter_bytes", |b| {
        b.iter(|| {
            black_box(parse(
                black_box(&body),
                Dialect::Prometheus,
                0,
                Limits::default(),
            ))
        })
    });
    g.throughput(Throughput::Elements(samples));
    g.bench_function("node_exporter_samples", |b| {
        b.iter(|| {
            black_box(parse(
                black_box(&body),
                Dialect::Prometheus,
                0,
                Limits::default(),
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, node_exporter);
criterion_main!(benches);
