//! The exposition parser on real node_exporter output, on our own OpenMetrics, and on random
//! input.

use novaml_collect::exposition::{Dialect, Limits, parse};
use proptest::prelude::*;

#[test]
fn real_node_exporter_output_parses_completely() {
    // Captured from Debian's prometheus-node-exporter 1.5.0.
    let body =
        std::fs::read(novaml_testing::repo_root().join("fixtures/node_exporter_metrics.txt"))
            .expect("fixture");
    let p = parse(&body, Dialect::Prometheus, 1_000, Limits::default());
    let text = String::from_utf8_lossy(&body);
    let sample_lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let non_finite = text
        .lines()
        .filter(|l| !l.starts_with('#') && (l.ends_with(" NaN") || l.ends_with("Inf")))
        .count();
    assert!(
        p.skipped
            .iter()
            .all(|s| s.reason == novaml_collect::exposition::SkipReason::NonFinite),
        "{:?}",
        p.skipped
    );
    assert_eq!(p.skipped.len(), non_finite);
    assert_eq!(p.samples + non_finite, sample_lines);
    assert_eq!(p.series.len(), p.samples, "no duplicate keys in one scrape");
    assert_eq!(
        p.types.get("node_cpu_seconds_total").map(String::as_str),
        Some("counter")
    );
    let q = p
        .series
        .iter()
        .find(|s| s.key.name == "go_gc_duration_seconds" && s.key.label("quantile") == Some("0.5"));
    assert!(q.is_some(), "summary quantiles are series");
    assert!(
        p.series.iter().all(|s| s.points[0].ts == 1_000),
        "scrape time stamps samples without one"
    );
}

#[test]
fn our_own_openmetrics_output_round_trips() {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    let mut registry = prometheus_client::registry::Registry::default();
    let fam: Family<Vec<(String, String)>, Counter> = Family::default();
    fam.get_or_create(&vec![("source".into(), "a \"quoted\" \\ name".into())])
        .inc_by(7);
    registry.register("novaml_test_events", "Events", fam);
    let h = Histogram::new([0.1, 1.0]);
    h.observe(0.5);
    registry.register("novaml_test_seconds", "Durations", h);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let p = parse(text.as_bytes(), Dialect::OpenMetrics, 5, Limits::default());
    assert!(p.skipped.is_empty(), "{:?}\n{text}", p.skipped);
    let get = |name: &str, label: Option<(&str, &str)>| {
        p.series
            .iter()
            .find(|s| s.key.name == name && label.is_none_or(|(k, v)| s.key.label(k) == Some(v)))
            .map(|s| s.points[0].value)
    };
    assert_eq!(
        get(
            "novaml_test_events_total",
            Some(("source", "a \"quoted\" \\ name"))
        ),
        Some(7.0)
    );
    assert_eq!(
        get("novaml_test_seconds_bucket", Some(("le", "1.0"))),
        Some(1.0)
    );
    assert_eq!(
        get("novaml_test_seconds_bucket", Some(("le", "0.1"))),
        Some(0.0)
    );
    assert_eq!(get("novaml_test_seconds_count", None), Some(1.0));
    assert_eq!(get("novaml_test_seconds_sum", None), Some(0.5));
}

fn label_value() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('a'),
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just(' '),
            Just('é'),
            Just('{'),
            Just('}')
        ],
        0..8,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic, and every line is either a sample or skipped with a reason.
    #[test]
    fn never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let p = parse(&body, Dialect::Prometheus, 0, Limits::default());
        let lines = body.split(|&b| b == b'\n').count();
        prop_assert!(p.samples + p.skipped.len() <= lines);
    }

    /// A sample written in Prometheus notation parses back to the same key and value.
    #[test]
    fn written_samples_parse_back(name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", labels in proptest::collection::btree_map("[a-z_][a-z0-9_]{0,6}", label_value(), 0..4), value in -1e12f64..1e12, ts in 0i64..4_000_000_000_000) {
        let mut key = novaml_core::SeriesKey::new(name).expect("valid name");
        for (k, v) in labels {
            if k != "__name__" {
                key = key.with_label(k, v).expect("valid label");
            }
        }
        let line = format!("{key} {value} {ts}\n");
        let p = parse(line.as_bytes(), Dialect::Prometheus, 0, Limits::default());
        prop_assert!(p.skipped.is_empty(), "{line:?}: {:?}", p.skipped);
        prop_assert_eq!(&p.series[0].key, &key);
        prop_assert_eq!(p.series[0].points[0].value, value);
        prop_assert_eq!(p.series[0].points[0].ts, ts);
    }
}
