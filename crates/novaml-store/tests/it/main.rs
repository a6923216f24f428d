//! Integration tests of the stores: SQLite, remote TSDBs, the state stores.

use novaml_core::{Batch, MetricStore, Point, Selector, Series, SeriesKey, TimeRange};
use novaml_store::SqliteStore;

mod remote;
mod state;

#[test]
fn sqlite_store_passes_metric_store_conformance() {
    // Points in the head only (the default for small data) …
    novaml_testing::conformance::metric_store(|| {
        SqliteStore::in_memory().expect("in-memory store")
    });
    // … and compacted after every write.
    novaml_testing::conformance::metric_store(|| {
        let mut s = SqliteStore::in_memory().expect("in-memory store");
        s.set_compact_points(1);
        s
    });
}

#[test]
fn reads_merge_both_tiers_and_the_later_write_wins() {
    let mut s = SqliteStore::in_memory().expect("store");
    let key = SeriesKey::new("m").expect("key");
    let write = |s: &mut SqliteStore, pts: Vec<Point>| {
        s.write(&Batch {
            source: "p".into(),
            series: vec![Series::new(key.clone(), pts)],
            cursor: None,
        })
        .expect("write")
    };
    write(&mut s, (1..11).map(|i| Point::new(i, i as f64)).collect());
    assert_eq!(s.compact().expect("compact"), 10);
    // Re-write point 5 and add point 11: both land in the head.
    write(&mut s, vec![Point::new(5, 50.0), Point::new(11, 11.0)]);
    let all = |s: &SqliteStore| {
        s.query(&Selector::exact(&key), TimeRange::all(), None)
            .expect("query")
    };
    let want: Vec<Point> = (1..12)
        .map(|i| Point::new(i, if i == 5 { 50.0 } else { i as f64 }))
        .collect();
    assert_eq!(all(&s)[0].points, want);
    // Documented: until the next compaction a re-written old point is counted in both tiers.
    assert_eq!(s.count_points().expect("count"), 12);
    let info = &s.series(&Selector::all()).expect("series")[0];
    assert_eq!((info.first, info.last), (Some(1), Some(11)));
    assert_eq!(s.last_timestamp(&key).expect("last"), Some(11));
    let part = s
        .query(
            &Selector::exact(&key),
            TimeRange::new(4, 7).expect("range"),
            None,
        )
        .expect("query");
    assert_eq!(part[0].values(), vec![4.0, 50.0, 6.0]);

    assert_eq!(s.compact().expect("compact"), 2);
    assert_eq!(
        s.count_points().expect("count"),
        11,
        "after compaction it counts once"
    );
    assert_eq!(
        all(&s)[0].points,
        want,
        "the head's value survived the merge"
    );
    let part = s
        .query(
            &Selector::exact(&key),
            TimeRange::new(4, 7).expect("range"),
            None,
        )
        .expect("query");
    assert_eq!(
        part[0].values(),
        vec![4.0, 50.0, 6.0],
        "range edges inside a chunk"
    );
    // Retention trims the chunk straddling the cutoff: 1..=5 go.
    assert_eq!(s.delete_before(6).expect("retention"), 5);
    assert_eq!(all(&s)[0].timestamps(), (6..12).collect::<Vec<_>>());
    assert_eq!(s.count_points().expect("count"), 6);
}

#[test]
fn sqlite_counts_the_memory_it_holds() {
    // Tests in this binary run in parallel and share SQLite's process-wide counter: this one
    // only checks that a store holding data is counted.
    let mut s = SqliteStore::in_memory().expect("store");
    let key = SeriesKey::new("m").expect("key");
    let pts: Vec<Point> = (0..50_000).map(|i| Point::new(i, i as f64)).collect();
    s.write(&Batch {
        source: "p".into(),
        series: vec![Series::new(key, pts)],
        cursor: None,
    })
    .expect("write");
    let held = novaml_store::sqlite_memory_used().expect("SQLite counts its memory");
    assert!(
        held > 100_000,
        "{held} bytes for an in-memory database of 50,000 points"
    );
}

#[test]
fn many_chunks_and_out_of_order_writes_read_back_exactly() {
    let mut s = SqliteStore::in_memory().expect("store");
    s.set_compact_points(1_000);
    let key = SeriesKey::new("m").expect("key");
    // 10,000 points written in shuffled blocks of 500, so compactions append, prepend and
    // merge into the middle of existing chunks.
    let mut blocks: Vec<i64> = (0..20).collect();
    blocks.sort_by_key(|b| (b * 7919) % 20);
    for b in blocks {
        let pts: Vec<Point> = (b * 500..(b + 1) * 500)
            .map(|i| Point::new(i * 10, i as f64))
            .collect();
        s.write(&Batch {
            source: "p".into(),
            series: vec![Series::new(key.clone(), pts)],
            cursor: None,
        })
        .expect("write");
    }
    s.compact().expect("compact");
    let got = s
        .query(&Selector::exact(&key), TimeRange::all(), None)
        .expect("query");
    assert_eq!(
        got[0].timestamps(),
        (0..10_000).map(|i| i * 10).collect::<Vec<_>>()
    );
    assert_eq!(s.count_points().expect("count"), 10_000);
    let mid = s
        .query(
            &Selector::exact(&key),
            TimeRange::new(49_995, 50_025).expect("range"),
            None,
        )
        .expect("query");
    assert_eq!(mid[0].timestamps(), vec![50_000, 50_010, 50_020]);
}

#[test]
fn data_and_cursor_survive_reopen_and_are_visible_to_other_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.db");
    let key = SeriesKey::new("up").expect("key");
    {
        let mut s = SqliteStore::open(&path).expect("open");
        s.write(&Batch {
            source: "p".into(),
            series: vec![Series::new(key.clone(), vec![Point::new(1, 1.0)])],
            cursor: Some(1),
        })
        .expect("write");
        let reader = SqliteStore::open(&path).expect("second connection");
        assert_eq!(
            reader
                .query(&Selector::exact(&key), TimeRange::all(), None)
                .expect("query")
                .len(),
            1
        );
        s.write(&Batch {
            source: "p".into(),
            series: vec![Series::new(key.clone(), vec![Point::new(2, 2.0)])],
            cursor: Some(2),
        })
        .expect("write");
        // The reader's cache learns nothing new here (same series), but it sees the new point.
        assert_eq!(
            reader
                .query(&Selector::exact(&key), TimeRange::all(), None)
                .expect("query")[0]
                .points
                .len(),
            2
        );
    }
    let s = SqliteStore::open(&path).expect("reopen");
    assert_eq!(s.cursor("p").expect("cursor"), Some(2));
    assert_eq!(s.last_timestamp(&key).expect("last"), Some(2));
    let info = s.series(&Selector::all()).expect("series");
    assert_eq!(
        (info[0].points, info[0].first, info[0].last),
        (2, Some(1), Some(2))
    );
}

#[test]
fn series_created_by_another_connection_are_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.db");
    let reader = SqliteStore::open(&path).expect("open reader");
    let mut writer = SqliteStore::open(&path).expect("open writer");
    let key = SeriesKey::new("late").expect("key");
    writer
        .write(&Batch {
            source: "p".into(),
            series: vec![Series::new(key.clone(), vec![Point::new(5, 1.0)])],
            cursor: None,
        })
        .expect("write");
    assert_eq!(
        reader
            .query(&Selector::exact(&key), TimeRange::all(), None)
            .expect("query")
            .len(),
        1
    );
}

#[test]
fn a_full_database_fails_the_whole_batch_and_keeps_the_old_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = SqliteStore::open(dir.path().join("m.db")).expect("open");
    let key = SeriesKey::new("x").expect("key");
    s.write(&Batch {
        source: "p".into(),
        series: vec![Series::new(key.clone(), vec![Point::new(0, 0.0)])],
        cursor: Some(0),
    })
    .expect("first write");
    s.set_max_page_count(8).expect("cap");
    let big: Vec<Point> = (1..200_000).map(|i| Point::new(i, i as f64)).collect();
    let err = s
        .write(&Batch {
            source: "p".into(),
            series: vec![Series::new(key.clone(), big)],
            cursor: Some(200_000),
        })
        .expect_err("full");
    assert!(err.is_transient(), "a full disk is worth retrying: {err}");
    assert_eq!(
        s.cursor("p").expect("cursor"),
        Some(0),
        "cursor not advanced"
    );
    assert_eq!(
        s.count_points().expect("count"),
        1,
        "nothing of the failed batch was kept"
    );
    s.set_max_page_count(1 << 30).expect("uncap");
    s.write(&Batch {
        source: "p".into(),
        series: vec![Series::new(key, vec![Point::new(1, 1.0)])],
        cursor: Some(1),
    })
    .expect("writes again");
}

/// The database holds everything collected and the incident log: a new one, its WAL and its
/// shared-memory file are readable by their owner only.
#[cfg(unix)]
#[test]
fn a_new_database_and_its_wal_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("novaml.db");
    let mut s = SqliteStore::open(&path).expect("open");
    s.write(&Batch {
        source: "p".into(),
        series: vec![Series::new(
            SeriesKey::new("m").expect("key"),
            vec![Point { ts: 1, value: 1.0 }],
        )],
        cursor: None,
    })
    .expect("write");
    for name in ["novaml.db", "novaml.db-wal", "novaml.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .expect(name)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
}

#[test]
fn the_store_conforms_when_reading_through_a_read_cache() {
    use std::sync::Arc;
    novaml_testing::conformance::metric_store(|| {
        SqliteStore::in_memory()
            .expect("in-memory store")
            .with_read_cache(Arc::new(novaml_store::ReadCache::new(10_000)))
    });
    novaml_testing::conformance::metric_store(|| {
        let mut s = SqliteStore::in_memory()
            .expect("in-memory store")
            .with_read_cache(Arc::new(novaml_store::ReadCache::new(10)));
        s.set_compact_points(1);
        s
    });
}

/// Cached readers answer exactly what an uncached reader answers, whatever the writer does
/// between reads: appends, late points, overwrites, compactions (appending to, merging into and
/// rewriting chunks) and retention.
#[test]
fn reads_through_the_shared_cache_equal_uncached_reads_under_every_kind_of_write() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.db");
    let mut writer = SqliteStore::open(&path).expect("writer");
    writer.set_compact_points(700);
    // A budget of 3,000 points: the chunk cache is dropped and refilled many times.
    let cache = Arc::new(novaml_store::ReadCache::new(3_000));
    let cached = [
        SqliteStore::open(&path)
            .expect("reader")
            .with_read_cache(cache.clone()),
        SqliteStore::open(&path)
            .expect("reader")
            .with_read_cache(cache.clone()),
    ];
    let plain = SqliteStore::open(&path).expect("reader");
    let keys: Vec<SeriesKey> = (0..5)
        .map(|i| {
            SeriesKey::new("m")
                .and_then(|k| k.with_label("vm", format!("v{i}")))
                .expect("key")
        })
        .collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) % n
    };
    let mut now = 10_000i64;
    let mut compared = 0;
    for round in 0..400 {
        match next(20) {
            // Retention now and then, compaction by hand now and then.
            0 => {
                writer.delete_before(now - 4_000).expect("retention");
            }
            1 => {
                writer.compact().expect("compact");
            }
            _ => {
                let mut series = Vec::new();
                for key in &keys {
                    if next(3) == 0 {
                        continue;
                    }
                    let n = 1 + next(40) as i64;
                    let late = next(5) == 0;
                    let start = if late { now - next(3_000) as i64 } else { now };
                    let pts: Vec<Point> = (0..n)
                        .map(|i| Point::new(start + i * 10, (round * 1_000 + i) as f64))
                        .collect();
                    series.push(Series::new(key.clone(), pts));
                }
                writer
                    .write(&Batch {
                        source: "w".into(),
                        series,
                        cursor: None,
                    })
                    .expect("write");
                now += 200;
            }
        }
        for _ in 0..3 {
            let from = now - next(6_000) as i64;
            let to = from + 1 + next(5_000) as i64;
            let range = if next(10) == 0 {
                TimeRange::all()
            } else {
                TimeRange::new(from, to).expect("range")
            };
            let sel = if next(2) == 0 {
                Selector::all()
            } else {
                Selector::exact(&keys[next(5) as usize])
            };
            let reader = &cached[next(2) as usize];
            let got = reader.query(&sel, range, None).expect("cached read");
            let want = plain.query(&sel, range, None).expect("plain read");
            assert_eq!(got, want, "round {round}, {range:?}");
            compared += 1;
        }
    }
    assert_eq!(compared, 1_200);
    let stats = cache.stats();
    assert!(stats.hits > 1_000 && stats.misses > 100, "{stats:?}");
    assert!(stats.chunk_points <= 3_000, "{stats:?}");
}
