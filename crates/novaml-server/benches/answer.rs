//! The JSON of a heavy range answer (64 series of a day at one point a minute: 92,160 points,
//! ~2.9 MB, the size bench/load.sh asks for), written by `points_json` against the peer: serde_json
//! serialising the same answer through serde (what the server did before, structs included).

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use novaml_core::{Point, Series, SeriesKey};

#[derive(serde::Serialize)]
struct Points {
    name: String,
    labels: BTreeMap<String, String>,
    points: Vec<(f64, f64)>,
}

fn answer() -> Vec<Series> {
    (0..64)
        .map(|k| {
            let key = SeriesKey::new("vm_cpu_usage_percent")
                .and_then(|x| x.with_label("vm", format!("sim-vm-{k}")))
                .expect("valid key");
            let points = (0..1_440)
                .map(|i| {
                    let v = 25.0 + (f64::from(i) * 0.37 + f64::from(k)).sin() * 3.123_456_789;
                    Point::new(1_796_440_320_000 + i64::from(i) * 60_000, v)
                })
                .collect();
            Series::new(key, points)
        })
        .collect()
}

fn range_answer(c: &mut Criterion) {
    let found = answer();
    let total: usize = found.iter().map(|s| s.points.len()).sum();
    let mut g = c.benchmark_group("range_answer_json");
    g.throughput(Throughput::Elements(total as u64));
    g.bench_function("points_json", |b| {
        b.iter(|| black_box(novaml_server::points_json(black_box(&found), total)))
    });
    g.bench_function("serde_json_peer", |b| {
        b.iter(|| {
            let pts: Vec<Points> = black_box(&found)
                .iter()
                .map(|s| Points {
                    name: s.key.name.clone(),
                    labels: s.key.labels.clone(),
                    points: s
                        .points
                        .iter()
                        .map(|p| (p.ts as f64 / 1000.0, p.value))
                        .collect(),
                })
                .collect();
            black_box(serde_json::to_vec(&pts))
        })
    });
    g.finish();
}

criterion_group!(benches, range_answer);
criterion_main!(benches);
