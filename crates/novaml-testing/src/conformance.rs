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

fn pts(p: &[(i64, f64)]) -> Vec<Point> {
    p.iter().map(|&(t, v)| Point::new(t, v)).collect()
}

/// Runs every [`MetricStore`] check against stores made by `make`.
pub fn metric_store<S: MetricStore>(make: impl Fn() -> S) {
    round_trip_sorted(&mut make());
    upsert_not_error(&mut make());
    label_matchers(&mut make());
    exact_key(&mut make());
    time_range_half_open(&mut make());
    step_aggregation(&mut make());
    cursor_saved_with_batch(&mut make());
    retention(&mut make());
    non_finite_not_stored(&mut make());
}

fn round_trip_sorted<S: MetricStore>(s: &mut S) {
    let k = key("cpu", &[("host", "a")]);
    let n = s
        .write(&batch(
            "t",
            vec![Series::new(k.clone(), pts(&[(3, 3.0), (1, 1.0), (2, 2.0)]))],
            None,
        ))
        .expect("write");
    assert_eq!(n, 3);
    let got = s
        .query(&Selector::exact(&k), TimeRange::all(), None)
        .expect("query");
    assert_eq!(
        got,
        vec![Series::new(k, pts(&[(1, 1.0), (2, 2.0), (3, 3.0)]))]
    );
}

fn upsert_not_error<S: MetricStore>(s: &mut S) {
    let k = key("cpu", &[]);
    s.write(&batch(
        "t",
        vec![Series::new(k.clone(), pts(&[(1, 1.0), (2, 2.0)]))],
        None,
    ))
    .expect("write");
    s.write(&batch(
        "t",
        vec![Series::new(k.clone(), pts(&[(2, 20.0), (2, 21.0)]))],
        None,
    ))
    .expect("upsert");
    let got = s
        .query(&Selector::exact(&k), TimeRange::all(), None)
        .expect("query");
    assert_eq!(
        got[0].points,
        pts(&[(1, 1.0), (2, 21.0)]),
        "last write wins, no duplicates"
    );
}

fn label_matchers<S: MetricStore>(s: &mut S) {
    let series = vec![
        Series::new(
            key("cpu", &[("host", "a"), ("mode", "idle")]),
            pts(&[(1, 1.0)]),
        ),
        Series::new(
            key("cpu", &[("host", "b"), ("mode", "user")]),
            pts(&[(1, 2.0)]),
        ),
        Series::new(key("mem", &[("host", "a")]), pts(&[(1, 3.0)])),
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

fn exact_key<S: MetricStore>(s: &mut S) {
    let narrow = key("cpu", &[("host", "a")]);
    let wide = key("cpu", &[("host", "a"), ("mode", "idle")]);
    let series = vec![
        Series::new(narrow.clone(), pts(&[(1, 1.0)])),
        Series::new(wide.clone(), pts(&[(1, 2.0)])),
    ];
    s.write(&batch("t", series, None)).expect("write");
    let got = s.query_key(&narrow, TimeRange::all(), None).expect("query");
    assert_eq!(
        got,
        Some(Series::new(narrow, pts(&[(1, 1.0)]))),
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

fn time_range_half_open<S: MetricStore>(s: &mut S) {
    let k = key("x", &[]);
    s.write(&batch(
        "t",
        vec![Series::new(
            k.clone(),
            pts(&[(10, 1.0), (20, 2.0), (30, 3.0)]),
        )],
        None,
    ))
    .expect("write");
    let got = s
        .query(
            &Selector::exact(&k),
            TimeRange::new(10, 30).expect("range"),
            None,
        )
        .expect("query");
    assert_eq!(got[0].points, pts(&[(10, 1.0), (20, 2.0)]));
    let none = s
        .query(
            &Selector::exact(&k),
            TimeRange::new(31, 40).expect("range"),
            None,
        )
        .expect("query");
    assert!(
        none.is_empty(),
        "series without points in range are left out"
    );
}

fn step_aggregation<S: MetricStore>(s: &mut S) {
    let k = key("x", &[]);
    s.write(&batch(
        "t",
        vec![Series::new(
            k.clone(),
            pts(&[(0, 1.0), (5, 3.0), (10, 5.0)]),
        )],
        None,
    ))
    .expect("write");
    let step = StepSpec::new(10, Aggregation::Avg).expect("step");
    let got = s
        .query(
            &Selector::exact(&k),
            TimeRange::new(0, 20).expect("range"),
            Some(step),
        )
        .expect("query");
    assert_eq!(got[0].points, pts(&[(0, 2.0), (10, 5.0)]));
}

fn cursor_saved_with_batch<S: MetricStore>(s: &mut S) {
    assert_eq!(s.cursor("src").expect("cursor"), None);
    s.write(&batch("src", vec![], Some(42))).expect("write");
    assert_eq!(s.cursor("src").expect("cursor"), Some(42));
    s.write(&batch(
        "src",
        vec![Series::new(key("y", &[]), pts(&[(1, 1.0)]))],
        Some(43),
    ))
    .expect("write");
    assert_eq!(s.cursor("src").expect("cursor"), Some(43));
    assert_eq!(s.cursor("other").expect("cursor"), None);
}

fn retention<S: MetricStore>(s: &mut S) {
    let a = key("a", &[]);
    let b = key("b", &[]);
    s.write(&batch(
        "t",
        vec![
            Series::new(a.clone(), pts(&[(1, 1.0), (100, 2.0)])),
            Series::new(b, pts(&[(2, 1.0)])),
        ],
        None,
    ))
    .expect("write");
    assert_eq!(s.delete_before(50).expect("retention"), 2);
    let left = s
        .query(&Selector::all(), TimeRange::all(), None)
        .expect("query");
    assert_eq!(left, vec![Series::new(a, pts(&[(100, 2.0)]))]);
}

fn non_finite_not_stored<S: MetricStore>(s: &mut S) {
    let k = key("z", &[]);
    let n = s
        .write(&batch(
            "t",
            vec![Series::new(
                k.clone(),
                pts(&[(1, f64::NAN), (2, f64::INFINITY), (3, 1.0)]),
            )],
            None,
        ))
        .expect("write");
    assert_eq!(n, 1);
    let got = s
        .query(&Selector::exact(&k), TimeRange::all(), None)
        .expect("query");
    assert_eq!(got[0].points, pts(&[(3, 1.0)]));
}
