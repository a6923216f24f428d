//! Live detection inside the pipeline (`novaml demo`): every `interval`, each stored series'
//! recent history is scored, `novaml_anomaly_score` is set to its latest row's score, new
//! incidents go to the incident log (re-detections merge) and, when receivers are configured,
//! out as alerts.
//!
//! Each pass re-scores a trailing window instead of keeping detector state between passes: the
//! store is the state, so a restart, a late point or a retention cut cannot desynchronise a
//! detector from the data, and a pass over ~100 series × 3,000 rows takes a few hundred ms.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use novaml_anomaly::alert::{WebhookEvent, to_alertmanager};
use novaml_anomaly::incident::{DetectConfig, Incident, detect_series};
use novaml_anomaly::metrics::AnomalyMetrics;
use novaml_core::{MetricStore, Selector, TimeRange};
use novaml_server::alerts::Notifier;
use novaml_store::SqliteStore;
use novaml_store::incidents::{IncidentLog, Recorded};
use tokio::sync::watch;
use tracing::{info, warn};

use super::detect::OPEN_FOR_MS;

/// Rows a detector sees before its incidents are recorded (its baseline is still forming).
const WARMUP_ROWS: usize = 250;

/// The live detection task.
pub(crate) struct Detection {
    pub(crate) store_path: PathBuf,
    pub(crate) log: Arc<Mutex<IncidentLog>>,
    pub(crate) metrics: AnomalyMetrics,
    pub(crate) notifier: Option<Notifier>,
    pub(crate) interval: Duration,
    /// How far back each pass reads.
    pub(crate) lookback: Duration,
    /// At most this many of the latest rows per series.
    pub(crate) max_rows: usize,
    /// Metric-name prefixes not scored.
    pub(crate) exclude: Vec<String>,
    /// Threshold, members, severity rules, maintenance windows.
    pub(crate) config: DetectConfig,
    /// Where the API serves incidents (for alert links).
    pub(crate) base_url: String,
}

/// What one pass found.
struct Pass {
    series: usize,
    rows: usize,
    /// New or merged incidents with their ids.
    recorded: Vec<(Incident, Recorded)>,
}

impl Detection {
    /// Runs passes until `stop` turns true.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut tick = tokio::time::interval(this.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let t = this.clone();
            let t0 = std::time::Instant::now();
            match tokio::task::spawn_blocking(move || t.pass()).await {
                Ok(Ok(p)) => {
                    let new: Vec<&(Incident, Recorded)> = p
                        .recorded
                        .iter()
                        .filter(|(_, r)| matches!(r, Recorded::New(_)))
                        .collect();
                    info!(
                        series = p.series,
                        rows = p.rows,
                        new_incidents = new.len(),
                        seconds = t0.elapsed().as_secs_f64(),
                        "Detection pass."
                    );
                    this.alert(&new).await;
                }
                Ok(Err(e)) => {
                    warn!(error = %format!("{e:#}"), "Detection pass failed; retrying next interval.")
                }
                Err(e) => warn!(error = %e, "Detection task failed."),
            }
        }
    }

    /// One pass over the store.
    fn pass(&self) -> Result<Pass> {
        let store = SqliteStore::open(&self.store_path)
            .with_context(|| format!("cannot open {}", self.store_path.display()))?;
        let now = novaml_collect::now_ms();
        let range = TimeRange::new(now - self.lookback.as_millis() as i64, now + 60_000)?;
        let all = store.query(&Selector::all(), range, None)?;
        let thresholds = {
            let log = self
                .log
                .lock()
                .map_err(|_| anyhow::anyhow!("incident log lock poisoned"))?;
            super::incidents::summary(&log)?.thresholds
        };
        let mut out = Pass {
            series: 0,
            rows: 0,
            recorded: Vec::new(),
        };
        let mut found = Vec::new();
        for s in all {
            // By default our own series: the simulator's ground truth and self-metrics.
            if self
                .exclude
                .iter()
                .any(|p| s.key.name.starts_with(p.as_str()))
                || s.points.len() <= WARMUP_ROWS
            {
                continue;
            }
            let points = &s.points[s.points.len().saturating_sub(self.max_rows)..];
            let ts: Vec<i64> = points.iter().map(|p| p.ts).collect();
            let vs: Vec<f64> = points.iter().map(|p| p.value).collect();
            let mut cfg = self.config.clone();
            cfg.threshold = cfg.threshold.max(thresholds.for_series(&s.key.to_string()));
            let (incidents, last) = detect_series(&s.key, &ts, &vs, &cfg);
            self.metrics.set_score(&s.key.name, &s.key.labels, last);
            out.series += 1;
            out.rows += points.len();
            let warm = ts[WARMUP_ROWS];
            found.extend(incidents.into_iter().filter(|i| i.start >= warm));
        }
        let mut log = self
            .log
            .lock()
            .map_err(|_| anyhow::anyhow!("incident log lock poisoned"))?;
        for inc in found {
            let r = log.record(&super::detect::new_incident(&inc)?, OPEN_FOR_MS, now)?;
            if matches!(r, Recorded::New(_)) {
                self.metrics.count_incident(&inc);
            }
            out.recorded.push((inc, r));
        }
        self.metrics.count_run();
        Ok(out)
    }

    /// Delivers alerts for new, unsuppressed incidents that are still open.
    async fn alert(&self, new: &[&(Incident, Recorded)]) {
        let Some(n) = &self.notifier else { return };
        let now = novaml_collect::now_ms();
        let send: Vec<&(Incident, Recorded)> = new
            .iter()
            .copied()
            .filter(|(i, _)| i.suppressed.is_none() && i.end >= now - OPEN_FOR_MS)
            .collect();
        if send.is_empty() {
            return;
        }
        let am: Vec<_> = send
            .iter()
            .map(|(i, r)| to_alertmanager(i, Some(r.id()), &self.base_url, now, OPEN_FOR_MS))
            .collect();
        let ev: Vec<_> = send
            .iter()
            .map(|(i, r)| WebhookEvent::new(i, Some(r.id()), now, OPEN_FOR_MS))
            .collect();
        let results = n.deliver(&am, &ev).await;
        if results.iter().all(Result::is_ok)
            && let Ok(mut log) = self.log.lock()
        {
            for (_, r) in &send {
                if let Err(e) = log.mark_notified(r.id()) {
                    warn!(error = %e, "Cannot mark an incident notified.");
                }
            }
        }
    }
}
