//! The runner: retries, timeouts, backpressure and flush, with nothing lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use novaml_collect::sources::prometheus_scrape::{PrometheusScrape, ScrapeConfig};
use novaml_collect::sources::simulator::{SimConfig, Simulator};
use novaml_collect::{CollectMetrics, RetryPolicy, Runner, Schedule};
use novaml_core::{Batch, MetricStore, Selector, Series, StepSpec, TimeRange, Timestamp};
use novaml_store::{SqliteStore, StoreError};
use tokio::sync::watch;

async fn serve(app: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

fn fast_schedule(timeout_ms: u64) -> Schedule {
    Schedule {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(timeout_ms),
        retry: RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            jitter: 0.5,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_server_errors_then_collects() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let port = serve(Router::new().route(
        "/metrics",
        get(move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "boom".to_owned(),
                    )
                } else {
                    (
                        axum::http::StatusCode::OK,
                        "# TYPE up gauge\nup 1\nbroken line\n".to_owned(),
                    )
                }
            }
        }),
    ))
    .await;
    let src = PrometheusScrape::new(
        ScrapeConfig {
            name: "t".into(),
            url: format!("http://127.0.0.1:{port}/metrics"),
            job: None,
            max_labels: 64,
        },
        Duration::from_secs(1),
    )
    .expect("source");
    let metrics = CollectMetrics::default();
    let mut runner = Runner::new(4, metrics.clone()).with_seed(3);
    runner.add(Box::new(src), fast_schedule(1000));
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(runner.run(SqliteStore::in_memory().expect("store"), rx));
    while metrics.samples("t") == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(true).expect("stop");
    let (store, report) = handle.await.expect("join").expect("run");
    assert_eq!(
        metrics.errors("t", "transient"),
        2,
        "two 500s, each counted"
    );
    assert!(report.written >= 1);
    let up = store
        .query(
            &"up".parse::<Selector>().expect("sel"),
            TimeRange::all(),
            None,
        )
        .expect("query");
    assert_eq!(up[0].key.label("job"), Some("t"));
    assert_eq!(
        up[0].key.label("instance"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_server_costs_one_timeout_per_attempt_and_shutdown_is_prompt() {
    let port = serve(Router::new().route(
        "/metrics",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "up 1\n"
        }),
    ))
    .await;
    let src = PrometheusScrape::new(
        ScrapeConfig {
            name: "h".into(),
            url: format!("http://127.0.0.1:{port}/metrics"),
            job: None,
            max_labels: 64,
        },
        Duration::from_secs(30),
    )
    .expect("source");
    let metrics = CollectMetrics::default();
    let mut runner = Runner::new(4, metrics.clone());
    runner.add(Box::new(src), fast_schedule(150));
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(runner.run(SqliteStore::in_memory().expect("store"), rx));
    while metrics.errors("h", "timeout") < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = std::time::Instant::now();
    tx.send(true).expect("stop");
    let (_, report) = tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("prompt shutdown")
        .expect("join")
        .expect("run");
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(report.written, 0);
}

/// A real SQLite store whose first `fail` writes fail, as on a full disk, and whose write number
/// `refuse` is refused for good, as a TSDB refuses samples older than its head.
struct Flaky {
    inner: SqliteStore,
    fail: usize,
    refuse: usize,
    writes: usize,
}

#[derive(Debug, thiserror::Error)]
enum FlakyError {
    #[error("injected: disk full")]
    Injected,
    #[error("injected: out of bounds")]
    Refused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MetricStore for Flaky {
    type Error = FlakyError;

    fn write(&mut self, batch: &Batch) -> Result<usize, Self::Error> {
        self.writes += 1;
        if self.writes <= self.fail {
            return Err(FlakyError::Injected);
        }
        if self.writes == self.refuse {
            return Err(FlakyError::Refused);
        }
        Ok(self.inner.write(batch)?)
    }

    fn refuses(err: &FlakyError) -> bool {
        matches!(err, FlakyError::Refused)
    }

    fn query(
        &self,
        s: &Selector,
        r: TimeRange,
        step: Option<StepSpec>,
    ) -> Result<Vec<Series>, Self::Error> {
        Ok(self.inner.query(s, r, step)?)
    }

    fn cursor(&self, source: &str) -> Result<Option<Timestamp>, Self::Error> {
        Ok(self.inner.cursor(source)?)
    }

    fn delete_before(&mut self, cutoff: Timestamp) -> Result<usize, Self::Error> {
        Ok(self.inner.delete_before(cutoff)?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_store_writes_are_retried_and_nothing_is_lost() {
    let cfg = SimConfig {
        history: Duration::from_secs(86_400),
        ..SimConfig::default()
    };
    let sim = Simulator::new(cfg.clone()).expect("sim");
    let metrics = CollectMetrics::default();
    // A buffer of one batch: the simulator's catch-up chunks must wait for the slow writer.
    let mut runner = Runner::new(1, metrics.clone());
    runner.add(Box::new(sim), fast_schedule(1000));
    let store = Flaky {
        inner: SqliteStore::in_memory().expect("store"),
        fail: 3,
        refuse: 0,
        writes: 0,
    };
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(runner.run(store, rx));
    while metrics.samples("simulator") == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(true).expect("stop");
    let (store, report) = handle.await.expect("join").expect("run");
    assert_eq!(metrics.errors("simulator", "store"), 3);
    assert_eq!(report.lost_batches, 0);
    // Everything up to the persisted cursor is exactly what the simulator generates.
    let cursor = store
        .cursor("simulator")
        .expect("cursor")
        .expect("some cursor");
    let stored = store
        .query(&Selector::all(), TimeRange::all(), None)
        .expect("query");
    let first = stored.iter().map(|s| s.points[0].ts).min().expect("points");
    let want = Simulator::new(cfg).expect("sim").generate(first, cursor);
    let total: usize = want.iter().map(|s| s.points.len()).sum();
    assert_eq!(
        report.written as usize, total,
        "every generated point written once"
    );
    let mut stored = stored;
    stored.sort_by(|a, b| a.key.cmp(&b.key));
    let mut want = want;
    want.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(stored, want);
}

/// A batch the store refuses for good is dropped with an error, once, and the batches after it
/// are written: one refusal does not stop collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_store_refuses_is_dropped_and_collection_goes_on() {
    let sim = Simulator::new(SimConfig {
        history: Duration::from_secs(86_400),
        ..SimConfig::default()
    })
    .expect("sim");
    let metrics = CollectMetrics::default();
    let mut runner = Runner::new(1, metrics.clone());
    runner.add(Box::new(sim), fast_schedule(1000));
    let store = Flaky {
        inner: SqliteStore::in_memory().expect("store"),
        fail: 0,
        refuse: 2,
        writes: 0,
    };
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(runner.run(store, rx));
    let t0 = std::time::Instant::now();
    while metrics.samples("simulator") == 0 || t0.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(true).expect("stop");
    let (store, report) = handle.await.expect("join").expect("run");
    assert_eq!(report.refused_batches, 1);
    assert_eq!(
        metrics.errors("simulator", "store"),
        1,
        "tried once, not retried"
    );
    assert!(store.writes > 2, "the batches after it were written");
    assert_eq!(report.lost_batches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_error_stops_that_source_only() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    // 404: the path is wrong; retrying cannot help.
    let port = serve(Router::new().route(
        "/other",
        get(move || {
            c.fetch_add(1, Ordering::SeqCst);
            async { "up 1\n" }
        }),
    ))
    .await;
    let bad = PrometheusScrape::new(
        ScrapeConfig {
            name: "bad".into(),
            url: format!("http://127.0.0.1:{port}/metrics"),
            job: None,
            max_labels: 64,
        },
        Duration::from_secs(1),
    )
    .expect("source");
    let good = PrometheusScrape::new(
        ScrapeConfig {
            name: "good".into(),
            url: format!("http://127.0.0.1:{port}/other"),
            job: None,
            max_labels: 64,
        },
        Duration::from_secs(1),
    )
    .expect("source");
    let metrics = CollectMetrics::default();
    let mut runner = Runner::new(4, metrics.clone());
    runner.add(Box::new(bad), fast_schedule(1000));
    runner.add(Box::new(good), fast_schedule(1000));
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(runner.run(SqliteStore::in_memory().expect("store"), rx));
    while calls.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(true).expect("stop");
    handle.await.expect("join").expect("run");
    assert_eq!(
        metrics.errors("bad", "fatal"),
        1,
        "counted once, then the source stopped"
    );
    assert_eq!(
        metrics.errors("bad", "transient"),
        0,
        "a 404 is not retried"
    );
    assert!(metrics.samples("good") >= 4, "the other source kept going");
}
