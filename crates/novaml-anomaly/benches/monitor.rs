//! Live detection's own cost at fleet scale (issue #19: ≤ 5 µs per point): 1,000 series'
//! detectors, each warmed on 1,100 rows, then one new point for every series per iteration,
//! as a pass over a fleet at a 15 s step consumes it (the detectors' state is far larger than
//! the caches, so this is the cost with cache misses, unlike the single-series throughput in
//! `isolation_forest.rs`). Also prints the resident memory the detectors added (procfs).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use novaml_anomaly::incident::{DetectConfig, SeriesMonitor};
use novaml_anomaly::streaming::StreamingParams;
use novaml_core::SeriesKey;

const SERIES: usize = 1_000;
const WARM: usize = 1_100;

fn value(series: usize, row: usize) -> f64 {
    3.0 * (0.37 * row as f64 + 1.3 * series as f64).sin()
        + ((7_919 * row + 104_729 * series) % 1_000) as f64 / 1_000.0
}

fn rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn fleet(c: &mut Criterion) {
    let cfg = DetectConfig::new(StreamingParams::default().check().expect("valid"));
    let before = rss_kib();
    let mut monitors: Vec<SeriesMonitor> = (0..SERIES)
        .map(|i| {
            let key = SeriesKey::new("vm_cpu_usage_percent")
                .and_then(|k| k.with_label("vm", format!("vm-{i}")))
                .expect("key");
            let mut m = SeriesMonitor::new(key, &cfg);
            let pts: Vec<(i64, f64)> = (0..WARM).map(|r| (r as i64, value(i, r))).collect();
            m.consume(&pts, cfg.threshold, i64::MAX);
            m
        })
        .collect();
    if let (Some(a), Some(b)) = (before, rss_kib()) {
        eprintln!(
            "{SERIES} detectors warmed on {WARM} rows: +{} KiB resident, {:.1} KiB per series",
            b.saturating_sub(a),
            b.saturating_sub(a) as f64 / SERIES as f64
        );
    }
    let mut row = WARM;
    let mut g = c.benchmark_group("live_detection");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("one_new_point_for_each_of_1000_series", |b| {
        b.iter(|| {
            for (i, m) in monitors.iter_mut().enumerate() {
                black_box(m.consume(&[(row as i64, value(i, row))], cfg.threshold, i64::MIN));
            }
            row += 1;
        })
    });
    g.finish();
}

criterion_group!(benches, fleet);
criterion_main!(benches);
