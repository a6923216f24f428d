//! Conformance suites: behaviour every implementation of a core trait must show. Each
//! implementation's tests call the suite with a constructor of fresh, empty instances.

use novaml_core::{
    Aggregation, Batch, MetricStore, Point, Selector, Series, SeriesKey, StepSpec, TimeRange,
};

fn key(name: &str, labels: &[(&str, &str)]) -> SeriesKey {
    labels
        .iter()
        .try_fold(SeriesKey::new(name).expect("valid name"), |k, (a, b)| {
            k.with_label(*a, *b)
        })
        .expect("valid labels")
}

fn batch(source: &str, series: Vec<Series>, cursor: Option<i64>) -> Batch {
    Batch {
        source: source.into(),
        series,
        cursor,
    }
}

/// Points at `base + t`.
fn pts(base: i64, p: &[(i64, f64)]) -> Vec<Point> {
    p.iter().map(|&(t, v)| Point::new(base + t, v)).collect()
}

/// What a second write of a timestamp does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrites {
    /// The last value written is kept (SQLite).
    LastWins,
    /// One of the values written is kept, not necessarily the last (VictoriaMetrics).
    KeepsOne,
    /// The write fails, and what was stored stays (Prometheus' remote-write receiver).
    Refused,
}

/// Where a store may differ from the embedded one; each difference is itself checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Semantics {
    /// A rewritten timestamp.
    pub rewrites: Rewrites,
    /// Whether `delete_before` deletes (false: retention is someone else's; it deletes nothing
    /// and returns 0).
    pub deletes: bool,
    /// Where the checks' timestamps start, in ms (0 for the embedded store; a store that takes
    /// only recent samples, such as Prometheus, needs a recent base).
    pub base: i64,
}

impl Semantics {
    /// The embedded store's: the last write wins, retention deletes.
    pub const EMBEDDED: Self = Self {
        rewrites: Rewrites::LastWins,
        deletes: true,
        base: 0,
    };
}

/// Runs every [`MetricStore`] check against stores made by `make`, with the embedded store's
/// semantics.
pub fn metric_store<S: MetricStore>(make: impl Fn() -> S) {
    metric_store_with(make, Semantics::EMBEDDED);
}

/// Runs every [`MetricStore`] check against stores made by `make`, a store that differs from
/// the embedded one as `semantics` says.
pub fn metric_store_with<S: MetricStore>(make: impl Fn() -> S, semantics: Semantics) {
    let b = semantics.base;
    round_trip_sorted(&mut make(), b);
    upsert(&mut make(), b, semantics.rewrites);
    label_matchers(&mut make(), b);
    exact_key(&mut make(), b);
    time_range_half_open(&mut make(), b);
    step_aggregation(&mut make(), b);
    cursor_saved_with_batch(&mut make(), b);
    retention(&mut make(), b, semantics.deletes);
    non_finite_not_stored(&mut make(), b);
}

fn round_trip_sorted<S: MetricStore>(s: &mut S, b: i64) {
    let k = key("cpu", &[("host", "a")]);
    let n = s
        .write(&batch(
            "t",
            vec![Series::new(
                k.clone(),
                pts(b, &[(3, 3.0), (1, 1.0), (2, 2.0)]),
            )],
            None,
        ))
        .expect("write");
    assert_eq!(n, 3);
    let got = s
        .query(&Selector::exact(&k), TimeRange::all(), None)
        .expect("query");
    assert_eq!(
        got,
        vec![Series::new(k, pts(b, &[(1, 1.0), (2, 2.0), (3, 3.0)]))]
    );
}

fn upsert<S: MetricStore>(s: &mut S, b: i64, rewrites: Rewrites) {
    let k = key("cpu", &[]);
    s.write(&batch(
        "t",
        vec![Series::new(k.clone(), pts(b, &[(1, 1.0), (2, 2.0)]))],
        None,
    ))
    .expect("write");
    let again = s.write(&batch(
        "t",
        vec![Series::new(k.clone(), pts(b, &[(2, 20.0), (2, 21.0)]))],
        None,
    ));
    let got = s
        .query(&Selector::exact(&k), TimeRange::all(), None)
        .expect("query");
    match rewrites {
        Rewrites::LastWins => {
            again.expect("upsert");
            assert_eq!(
                got[0].points,
                pts(b, &[(1, 1.0), (2, 21.0)]),
                "last write wins, no duplicates"
            );
        }
        Rewrites::KeepsOne => {
            again.expect("upsert");
            assert_eq!(got[0].timestamps(), vec![b + 1, b + 2], "no duplicates");
            assert!(
                [2.0, 21.0].contains(&got[0].points[1].value),
                "one of the values written (within a batch the last): {:?}",
                got[0].points
            );
        }
        Rewrites::Refused => {
            assert!(again.is_err(), "a rewrite is refused: {again:?}");
            assert_eq!(
                got[0].points,
                pts(b, &[(1, 1.0), (2, 2.0)]),
                "what was stored stays"
            );
        }
    }
}

fn label_matchers<S: MetricStore>(s: &mut S, b: i64) {
    let series = vec![
        Series::new(
            key("cpu", &[("host", "a"), ("mode", "idle")]),
            pts(b, &[(1, 1.0)]),
        ),
        Series::new(
            key("cpu", &[("host", "b"), ("mode", "user")]),
            pts(b, &[(1, 2.0)]),
        ),
        Series::new(key("mem", &[("host", "a")]), pts(b, &[(1, 3.0)])),
    ];
    s.write(&batch("t", series, None)).expect("write");
    let cases = [
        ("cpu", vec![1.0, 2.0]),
        (r#"cpu{host="a"}"#, vec![1.0]),
        (r#"cpu{host!="a"}"#, vec![2.0]),
        (r#"{host=~"a|b",mode!~"idle"}"#, vec![2.0, 3.0]),
        (r#"{__name__=~"c.*"}"#, vec![1.0, 2.0]),
        (r#"cpu{host="zzz"}"#, vec![]),
    ];
    for (sel, want) in cases {
        let sel: Selector = sel.parse().expect("selector");
        let mut got: Vec<f64> = s
            .query(&sel, TimeRange::all(), None)
            .expect("query")
            .iter()
            .map(|x| x.points[0].value)
            .collect();
        got.sort_by(f64::total_cmp);
        assert_eq!(got, want, "{sel}");
    }
}

fn exact_key<S: MetricStore>(s: &mut S, b: i64) {
    let narrow = key("cpu", &[("host", "a")]);
    let wide = key("cpu", &[("host", "a"), ("mode", "idle")]);
    let series = vec![
        Series::new(narrow.clone(), pts(b, &[(1, 1.0)])),
        Series::new(wide.clone(), pts(b, &[(1, 2.0)])),
    ];
    s.write(&batch("t", series, None)).expect("write");
    let got = s.query_key(&narrow, TimeRange::all(), None).expect("query");
    assert_eq!(
        got,
        Some(Series::new(narrow, pts(b, &[(1, 1.0)]))),
        "extra labels are another series"
    );
    assert_eq!(
        s.query_key(&wide, TimeRange::all(), None)
            .expect("query")
            .map(|x| x.points[0].value),
        Some(2.0)
    );
    assert_eq!(
        s.query_key(&key("cpu", &[]), TimeRange::all(), None)
            .expect("query"),
        None
    );
}

fn time_range_half_open<S: MetricStore>(s: &mut S, b: i64) {
    let k = key("x", &[]);
    s.write(&batch(
        "t",
        vec![Series::new(
            k.clone(),
            pts(b, &[(10, 1.0), (20, 2.0), (30, 3.0)]),
        )],
        None,
    ))
    .expect("write");
    let got = s
        .query(
            &Selector::exact(&k),
            TimeRange::new(b + 10, b + 30).expect("range"),
            None,
        )
        .expect("query");
    assert_eq!(got[0].points, pts(b, &[(10, 1.0), (20, 2.0)]));
    let none = s
        .query(
            &Selector::exact(&k),
            TimeRange::new(b + 31, b + 40).expect("range"),
            None,
        )
        .expect("query");
    assert!(
        none.is_empty(),
        "series without points in range are left out"
    );
}

fn step_aggregation<S: MetricStore>(s: &mut S, b: i64) {
    let k = key("x", &[]);
    s.write(&batch(
        "t",
        vec![Series::new(
            k.clone(),
            pts(b, &[(0, 1.0), (5, 3.0), (10, 5.0)]),
        )],
        None,
    ))
    .expect("write");
    let step = StepSpec::new(10, Aggregation::Avg).expect("step");
    let got = s
        .query(
            &Selector::exact(&k),
            TimeRange::new(b, b + 20).expect("range"),
            Some(step),
        )
        .expect("query");
    assert_eq!(got[0].points, pts(b, &[(0, 2.0), (10, 5.0)]));
}

fn cursor_saved_with_batch<S: MetricStore>(s: &mut S, b: i64) {
    assert_eq!(s.cursor("src").expect("cursor"), None);
    s.write(&batch("src", vec![], Some(42))).expect("write");
    assert_eq!(s.cursor("src").expect("cursor"), Some(42));
    s.write(&batch(
        "src",
        vec![Series::new(key("y", &[]), pts(b, &[(1, 1.0)]))],
        Some(43),
    ))
    .expect("write");
    assert_eq!(s.cursor("src").expect("cursor"), Some(43));
    assert_eq!(s.cursor("other").expect("cursor"), None);
}

fn retention<S: MetricStore>(s: &mut S, b: i64, deletes: bool) {
    let a = key("a", &[]);
    let other = key("b", &[]);
    s.write(&batch(
        "t",
        vec![
            Series::new(a.clone(), pts(b, &[(1, 1.0), (100, 2.0)])),
            Series::new(other, pts(b, &[(2, 1.0)])),
        ],
        None,
    ))
    .expect("write");
    let deleted = s.delete_before(b + 50).expect("retention");
    let left = s
        .query(&Selector::all(), TimeRange::all(), None)
        .expect("query");
    if deletes {
        assert_eq!(deleted, 2);
        assert_eq!(left, vec![Series::new(a, pts(b, &[(100, 2.0)]))]);
    } else {
        assert_eq!(deleted, 0, "retention is the store's own");
        assert_eq!(left.len(), 2, "nothing deleted");
    }
}

fn non_finite_not_stored<S: MetricStore>(s: &mut S, b: i64) {
    let k = key("z", &[]);
    let n = s
        .write(&batch(
            "t",
            vec![Series::new(
                k.clone(),
                pts(b, &[(1, f64::NAN), (2, f64::INFINITY), (3, 1.0)]),
            )],
            None,
        ))
        .expect("write");
    assert_eq!(n, 1);
    let got = s
        .query(&Selector::exact(&k), TimeRange::all(), None)
        .expect("query");
    assert_eq!(got[0].points, pts(b, &[(3, 1.0)]));
}
