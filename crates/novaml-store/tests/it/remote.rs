//! The remote store against a real VictoriaMetrics and a real Prometheus (Debian's packages,
//! started on free loopback ports), and against a fake TSDB for answers no real one gives.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use novaml_core::{Batch, MetricStore, Point, Selector, Series, SeriesKey, StepSpec, TimeRange};
use novaml_store::{CURSOR_METRIC, Flavor, RemoteConfig, RemoteStore, StoreError};
use novaml_testing::conformance::{Rewrites, Semantics, metric_store_with};
use novaml_testing::services::{Service, free_port};

/// A remote store with its own TSDB; after each write it makes the samples searchable, as the
/// suite reads right after writing (VictoriaMetrics shows them within a second otherwise).
struct Owned {
    store: RemoteStore,
    _tsdb: Service,
}

impl MetricStore for Owned {
    type Error = StoreError;

    fn write(&mut self, batch: &Batch) -> Result<usize, StoreError> {
        let n = self.store.write(batch)?;
        self.store.flush()?;
        Ok(n)
    }

    fn query(
        &self,
        selector: &Selector,
        range: TimeRange,
        step: Option<StepSpec>,
    ) -> Result<Vec<Series>, StoreError> {
        self.store.query(selector, range, step)
    }

    fn cursor(&self, source: &str) -> Result<Option<i64>, StoreError> {
        self.store.cursor(source)
    }

    fn delete_before(&mut self, cutoff: i64) -> Result<usize, StoreError> {
        self.store.delete_before(cutoff)
    }
}

fn owned(tsdb: Service, config: impl FnOnce(&mut RemoteConfig)) -> Owned {
    let mut c = RemoteConfig::new(tsdb.url());
    config(&mut c);
    let store = RemoteStore::connect(c).expect("connects");
    Owned { store, _tsdb: tsdb }
}

fn key(name: &str, host: &str) -> SeriesKey {
    SeriesKey::new(name)
        .and_then(|k| k.with_label("host", host))
        .expect("key")
}

#[test]
fn victoria_metrics_conforms_keeping_one_value_of_a_rewritten_timestamp() {
    metric_store_with(
        || {
            let s = owned(Service::victoria_metrics(), |_| {});
            assert_eq!(
                s.store.flavor(),
                Flavor::VictoriaMetrics,
                "found at connect"
            );
            s
        },
        Semantics {
            rewrites: Rewrites::KeepsOne,
            deletes: false,
            base: 0,
        },
    );
}

#[test]
fn prometheus_conforms_refusing_rewrites() {
    metric_store_with(
        || {
            let s = owned(Service::prometheus_receiver(), |_| {});
            assert_eq!(s.store.flavor(), Flavor::Prometheus, "found at connect");
            s
        },
        Semantics {
            rewrites: Rewrites::Refused,
            deletes: false,
            // Prometheus refuses samples older than its head (the cursor is stamped now).
            base: novaml_core::time::now_ms() - 600_000,
        },
    );
}

#[test]
fn a_large_batch_goes_in_several_requests_and_its_cursor_with_the_last() {
    let mut s = owned(Service::victoria_metrics(), |c| {
        c.max_samples_per_request = 70
    });
    let series: Vec<Series> = ["a", "b", "c"]
        .iter()
        .map(|h| {
            let points = (0..400).map(|i| Point::new(1_000 * i, i as f64)).collect();
            Series::new(key("cpu", h), points)
        })
        .collect();
    let batch = Batch {
        source: "import".into(),
        series: series.clone(),
        cursor: Some(399_000),
    };
    assert_eq!(s.write(&batch).expect("write"), 1_200);
    let got = s
        .query(&"cpu".parse().expect("selector"), TimeRange::all(), None)
        .expect("query");
    assert_eq!(
        got, series,
        "every point, in order, no cursor series among them"
    );
    assert_eq!(s.cursor("import").expect("cursor"), Some(399_000));
    assert_eq!(s.cursor("other").expect("cursor"), None);
    let keys = s
        .store
        .series(&Selector::all(), TimeRange::all())
        .expect("series");
    assert_eq!(
        keys,
        vec![key("cpu", "a"), key("cpu", "b"), key("cpu", "c")]
    );
    // The cursor's own name is refused as data: it would be read as a cursor.
    let bad = Batch {
        source: "x".into(),
        series: vec![Series::new(
            SeriesKey::new(CURSOR_METRIC).expect("key"),
            vec![Point::new(1, 1.0)],
        )],
        cursor: None,
    };
    assert!(matches!(s.write(&bad), Err(StoreError::InvalidInput(_))));
}

#[test]
fn an_answer_over_the_limit_is_refused_not_held() {
    let mut s = owned(Service::victoria_metrics(), |c| {
        c.max_response_bytes = 2_000
    });
    let points = (0..1_000).map(|i| Point::new(i, i as f64)).collect();
    s.write(&Batch {
        source: "t".into(),
        series: vec![Series::new(key("m", "a"), points)],
        cursor: None,
    })
    .expect("write");
    let err = s
        .query(&Selector::all(), TimeRange::all(), None)
        .expect_err("over the limit");
    assert!(
        matches!(err, StoreError::RemoteTooLarge { limit: 2_000, .. }),
        "{err}"
    );
    // A narrower range fits.
    let part = s
        .query(
            &Selector::all(),
            TimeRange::new(0, 10).expect("range"),
            None,
        )
        .expect("a small answer");
    assert_eq!(part[0].points.len(), 10);
}

#[test]
fn an_unreachable_tsdb_is_a_transient_error_naming_the_url() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let err = RemoteStore::connect(RemoteConfig::new(&url)).expect_err("nothing listens");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(err.is_transient(), "worth retrying: {err}");
}

/// A one-thread HTTP server answering every request by path from `answers`.
fn fake_tsdb(answers: Vec<(&'static str, u16, String)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            // Headers, then the body by its length.
            let mut len = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let (status, text) = answers
                .iter()
                .find(|(p, _, _)| path.starts_with(p))
                .map_or((404, String::new()), |(_, s, t)| (*s, t.clone()));
            let mut out = &stream;
            let _ = write!(
                out,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    url
}

#[test]
fn a_cut_or_foreign_answer_is_an_error_never_a_shorter_series() {
    let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[0,"1"]}}"#;
    let cut = "{\"metric\":{\"__name__\":\"m\"},\"values\":[1,2],\"timestamps\":[1,2]}\n{\"metric\":{\"__name__\":\"m\",\"a\":\"b\"},\"values\":[1,";
    let url = fake_tsdb(vec![
        ("/api/v1/query", 200, scalar.into()),
        ("/api/v1/export", 200, cut.into()),
    ]);
    let s = RemoteStore::connect(RemoteConfig::new(&url)).expect("connects");
    assert_eq!(s.flavor(), Flavor::VictoriaMetrics);
    let err = s
        .query(&Selector::all(), TimeRange::all(), None)
        .expect_err("cut answer");
    assert!(matches!(err, StoreError::RemoteMalformed { .. }), "{err}");

    // Something that is not a PromQL API at all is refused at connect, naming it.
    let url = fake_tsdb(vec![("/api/v1/query", 404, "not here".into())]);
    let err = RemoteStore::connect(RemoteConfig::new(&url)).expect_err("not a TSDB");
    assert!(
        err.to_string().contains(&url) && err.to_string().contains("404"),
        "{err}"
    );
    assert!(!err.is_transient());

    // A Prometheus answering a query with an error status says why.
    let url = fake_tsdb(vec![
        ("/api/v1/query", 200, scalar.into()),
        ("/api/v1/export", 404, String::new()),
    ]);
    let s = RemoteStore::connect(RemoteConfig::new(&url)).expect("connects");
    assert_eq!(s.flavor(), Flavor::Prometheus);
    let err = s
        .query(&Selector::all(), TimeRange::all(), None)
        .expect_err("a scalar is not raw samples");
    assert!(matches!(err, StoreError::RemoteMalformed { .. }), "{err}");
}
