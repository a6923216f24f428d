//! Integration tests of the SQLite store.

use novaml_core::{Batch, MetricStore, Point, Selector, Series, SeriesKey, TimeRange};
use novaml_store::SqliteStore;

#[test]
fn sqlite_store_passes_metric_store_conformance() {
    // Points in the head only (the default for small data) …
    novaml_testing::conformance::metric_store(|| {
        SqliteStore::in_memory().expect("in-memory store")
    });
    // … and compacted after every write.
    novaml_testing::conformance::metric_store(|| {
        let mut s = SqliteStore::in_memory().expect("in-memory store");
        s.set_compact_rows(1);
        s
    });
}

#[test]
fn reads_merge_both_tiers_and_the_later_write_wins() {
    let mut s = SqliteStore::in_memory().expect("store");
    let key = SeriesKey::new("m").expect("key");
    let pts = |r: std::ops::Range<i64>, f: f64| {
        r.map(|i| Point::new(i, i as f64 * f)).collect::<Vec<_>>()
    };
    s.write(&Batch {
        source: "p".into(),
        series: vec![Series::new(key.clone(), pts(1..11, 1.0))],
        cursor: None,
    })
    .expect("write");
    assert_eq!(s.compact().expect("compact"), 10);
    // Re-write point 5 and add point 11: both land in the head.
    s.write(&Batch {
        source: "p".into(),
        series: vec![Series::new(
            key.clone(),
            vec![Point::new(5, 50.0), Point::new(11, 11.0)],
        )],
        cursor: None,
    })
    .expect("write");
    let got = s
        .query(&Selector::exact(&key), TimeRange::all(), None)
        .expect("query");
    let want: Vec<Point> = (1..12)
        .map(|i| Point::new(i, if i == 5 { 50.0 } else { i as f64 }))
        .collect();
    assert_eq!(got[0].points, want);
    assert_eq!(
        s.count_points().expect("count"),
        11,
        "the re-written point counts once"
    );
    let info = &s.series(&Selector::all()).expect("series")[0];
    assert_eq!(
        (info.points, info.first, info.last),
        (11, Some(1), Some(11))
    );
    assert_eq!(s.last_timestamp(&key).expect("last"), Some(11));
    let got = s
        .query(
            &Selector::exact(&key),
            TimeRange::new(4, 7).expect("range"),
            None,
        )
        .expect("query");
    assert_eq!(got[0].values(), vec![4.0, 50.0, 6.0]);
    s.delete_before(6).expect("retention");
    assert_eq!(
        s.query(&Selector::exact(&key), TimeRange::all(), None)
            .expect("query")[0]
            .timestamps(),
        (6..12).collect::<Vec<_>>()
    );
    // Compacting again keeps the head's value.
    s.compact().expect("compact");
    assert_eq!(s.count_points().expect("count"), 6);
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
