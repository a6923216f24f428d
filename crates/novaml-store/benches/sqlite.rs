//! Benchmarks of the SQLite store.
//!
//! Shapes: a batch of 10,000 points is what one scrape of a large exporter (10k series × 1 point)
//! or one catch-up chunk of a range query (10 series × 1,000 points) hands the writer; the issue's
//! target is ≥ 1M samples/s for such batches. Each run writes 128 batches into a fresh store, so
//! the figure includes the compactions they cause. The query reads one series of 1M points (about 35
//! days at 3 s resolution), the largest single read a model does; target < 200 ms.
//! The range read is the API's heavy dashboard query: a day of 80 series (~3,500 points each,
//! a third of them still in the head), read while a writer appends a scrape between reads (which
//! resets every other connection's page cache), with and without the shared [`ReadCache`].

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use novaml_core::{Batch, MetricStore, Point, Selector, Series, SeriesKey, TimeRange};
use novaml_store::{ReadCache, SqliteStore};

fn key(i: usize) -> SeriesKey {
    SeriesKey::new("bench_metric")
        .and_then(|k| k.with_label("id", i.to_string()))
        .expect("valid key")
}

fn batch(series: usize, points: usize, t0: i64) -> Batch {
    Batch {
        source: "bench".into(),
        series: (0..series)
            .map(|s| {
                Series::new(
                    key(s),
                    (0..points)
                        .map(|p| Point::new(t0 + p as i64 * 1000, (s * p) as f64 * 0.5))
                        .collect(),
                )
            })
            .collect(),
        cursor: Some(t0),
    }
}

/// Batches per measured run: enough that the head is compacted twice (every 64 points per series
/// for 10k series), so the figure includes compaction, amortised, not just appends.
const RUN_BATCHES: usize = 128;

fn ingest(c: &mut Criterion) {
    let mut g = c.benchmark_group("sqlite_ingest");
    g.sample_size(10);
    g.throughput(Throughput::Elements((RUN_BATCHES * 10_000) as u64));
    for (name, series, points) in [("10k_series_x1", 10_000, 1), ("10_series_x1000", 10, 1_000)] {
        let batches: Vec<Batch> = (0..RUN_BATCHES)
            .map(|i| batch(series, points, 1_000_000 + (i * points) as i64 * 1000))
            .collect();
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let mut store = SqliteStore::open(dir.path().join("b.db")).expect("store");
                    // Create the series first, as in steady state.
                    store.write(&batch(series, 1, 0)).expect("warm-up");
                    (dir, store)
                },
                |(dir, mut store)| {
                    for b in &batches {
                        black_box(store.write(b).expect("write"));
                    }
                    (dir, store)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn query(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = SqliteStore::open(dir.path().join("q.db")).expect("store");
    for chunk in 0..100 {
        store
            .write(&batch(1, 10_000, chunk * 10_000_000))
            .expect("fill");
    }
    let sel = Selector::exact(&key(0));
    let mut g = c.benchmark_group("sqlite_query");
    g.throughput(Throughput::Elements(1_000_000));
    g.sample_size(10);
    g.bench_function("one_series_1M_points", |b| {
        b.iter(|| {
            let s = store.query(&sel, TimeRange::all(), None).expect("query");
            assert_eq!(s[0].points.len(), 1_000_000);
            black_box(s)
        })
    });
    g.finish();
}

fn range_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.db");
    let mut writer = SqliteStore::open(&path).expect("store");
    // 80 series × 3,500 points at 25 s: 2,300 per series compacted into chunks, the rest in the
    // head (written after the compaction), as between two compactions of the demo.
    let t0 = 1_000_000_000i64;
    let scrape = |i: i64| Batch {
        source: "bench".into(),
        series: (0..80)
            .map(|s| {
                Series::new(
                    key(s),
                    vec![Point::new(t0 + i * 25_000, (s as i64 * i) as f64)],
                )
            })
            .collect(),
        cursor: None,
    };
    for i in 0..2_300 {
        writer.write(&scrape(i)).expect("fill");
    }
    writer.compact().expect("compact");
    for i in 2_300..3_500 {
        writer.write(&scrape(i)).expect("fill");
    }
    let mut next = 3_500;
    let sel: Selector = "{__name__=\"bench_metric\"}".parse().expect("selector");
    let range = TimeRange::new(t0, t0 + 4_000 * 25_000).expect("range");
    let plain = SqliteStore::open(&path).expect("reader");
    let cached = SqliteStore::open(&path)
        .expect("reader")
        .with_read_cache(std::sync::Arc::new(ReadCache::new(1 << 20)));
    let mut g = c.benchmark_group("sqlite_range_read");
    g.throughput(Throughput::Elements(80 * 3_500));
    g.sample_size(20);
    for (name, reader) in [("uncached", &plain), ("shared_cache", &cached)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                writer.write(&scrape(next)).expect("scrape");
                next += 1;
                let s = reader.query(&sel, range, None).expect("query");
                assert_eq!(s.len(), 80);
                black_box(s)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ingest, query, range_read);
criterion_main!(benches);
