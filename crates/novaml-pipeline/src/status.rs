//! The pipeline's status for `/api/status` and the pipeline dashboard: the store's size, each
//! source's counters and lag, and a 30-minute history of the counters (one sample per 5 s).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use novaml_collect::CollectMetrics;
use novaml_core::time::now_ms;
use novaml_server::{PipelineStatus, ShardStatus, SourceStatus, StatusProvider, StatusSample};
use novaml_store::{AnyStore, MetricsAt, ShardState};

/// Samples of the counters kept for the pipeline dashboard (one per 5 s: 30 min).
const HISTORY: usize = 360;

/// A source as the status page describes it: name, kind, interval (s), simulated.
pub(crate) type Described = (String, &'static str, f64, bool);

pub(crate) struct Status {
    started: Instant,
    history: Mutex<VecDeque<StatusSample>>,
    store: MetricsAt,
    reader: Mutex<Option<AnyStore>>,
    metrics: CollectMetrics,
    sources: Vec<Described>,
    /// Where the state is, when this process keeps any.
    pub(crate) state: Option<String>,
    /// The fleet's shards as the last detection pass read them.
    pub(crate) shards: std::sync::Arc<std::sync::RwLock<Vec<ShardState>>>,
}

impl Status {
    pub(crate) fn new(store: MetricsAt, metrics: CollectMetrics, sources: Vec<Described>) -> Self {
        Self {
            started: Instant::now(),
            history: Mutex::new(VecDeque::new()),
            store,
            reader: Mutex::new(None),
            metrics,
            sources,
            state: None,
            shards: Default::default(),
        }
    }

    /// Adds a sample of the counters to the history.
    pub(crate) fn record(&self) {
        let sample = StatusSample {
            t: now_ms() as f64 / 1000.0,
            samples: self
                .sources
                .iter()
                .map(|(n, ..)| (n.clone(), self.metrics.samples(n)))
                .collect(),
            errors_total: self.sources.iter().map(|(n, ..)| self.errors(n)).sum(),
            buffer_utilization: self.metrics.buffer_utilization(),
        };
        if let Ok(mut h) = self.history.lock() {
            if h.len() >= HISTORY {
                h.pop_front();
            }
            h.push_back(sample);
        }
    }

    fn errors(&self, name: &str) -> u64 {
        ["transient", "timeout", "fatal", "store"]
            .iter()
            .map(|k| self.metrics.errors(name, k))
            .sum()
    }
}

impl StatusProvider for Status {
    fn status(&self) -> Result<PipelineStatus, String> {
        let mut guard = self
            .reader
            .lock()
            .map_err(|_| "status reader lock poisoned".to_owned())?;
        if guard.is_none() {
            *guard = Some(self.store.open().map_err(|e| e.to_string())?);
        }
        let store = guard.as_ref().ok_or("store not open")?;
        // A remote TSDB: the series written to in the last day; its points are counted there.
        let series = store.series_count(86_400_000).map_err(|e| e.to_string())?;
        let points = store
            .count_points()
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        let now = now_ms() as f64 / 1000.0;
        let sources = self
            .sources
            .iter()
            .map(|(name, kind, interval, simulated)| {
                let last = self.metrics.last_success(name);
                SourceStatus {
                    name: name.clone(),
                    kind: (*kind).to_owned(),
                    interval_seconds: *interval,
                    samples_total: self.metrics.samples(name),
                    errors_total: self.errors(name),
                    last_success: last,
                    lag_seconds: last.map(|t| (now - t).max(0.0)),
                    simulated: *simulated,
                }
            })
            .collect();
        let history = self
            .history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default();
        Ok(PipelineStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            store: self.store.describe(),
            series,
            points,
            buffer_utilization: self.metrics.buffer_utilization(),
            sources,
            history,
            state: self.state.clone(),
            shards: self
                .shards
                .read()
                .map(|v| {
                    v.iter()
                        .map(|s| {
                            let secs = |ms: i64| ms as f64 / 1000.0;
                            ShardStatus {
                                shard: s.shard.to_string(),
                                holder: s.holder.clone(),
                                held: s.held,
                                heartbeat: secs(s.heartbeat),
                                scored_until: s.scored_until.map(secs),
                                lag_seconds: s.scored_until.map(|t| (now - secs(t)).max(0.0)),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}
