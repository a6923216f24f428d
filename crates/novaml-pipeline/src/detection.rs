//! Anomaly detection as the running system does it: the live job over the store, and the steps
//! it shares with the one-shot `novaml detect` (recording incidents in the incident log,
//! delivering alerts for the new ones, the thresholds operator feedback calls for).
//!
//! Every `interval`, each stored series' recent history is scored, `novaml_anomaly_score` is set
//! to its latest row's score, new incidents go to the incident log (re-detections merge) and,
//! when receivers are configured, out as alerts. Each pass re-scores a trailing window instead of
//! keeping detector state between passes: the store is the state, so a restart, a late point or
//! a retention cut cannot desynchronise a detector from the data, and a pass over ~100 series ×
//! 3,000 rows takes a few hundred ms.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use novaml_anomaly::alert::{WebhookEvent, to_alertmanager};
use novaml_anomaly::feedback::Summary;
use novaml_anomaly::incident::{DetectConfig, Incident, detect_series};
use novaml_anomaly::metrics::AnomalyMetrics;
use novaml_core::time::now_ms;
use novaml_core::{MetricStore, Selector, TimeRange};
use novaml_store::MetricsAt;
use novaml_store::incidents::{IncidentLog, NewIncident, Recorded};
use tracing::{info, warn};

use crate::PipelineError;
use crate::notify::{DeliveryError, Notifier};

/// An open incident stays open this long past its last anomalous row (alerts resolve after);
/// also the incident log's de-duplication window.
pub const OPEN_FOR_MS: i64 = 10 * 60_000;

/// Rows a detector sees before its incidents are recorded (its baseline is still forming).
const WARMUP_ROWS: usize = 250;

/// The incident log's row for an incident.
pub fn new_incident(inc: &Incident) -> Result<NewIncident, PipelineError> {
    Ok(NewIncident {
        series: inc.series.clone(),
        kind: inc.kind.as_str().into(),
        severity: inc.severity.as_str().into(),
        start: inc.start,
        end: inc.end,
        peak_score: inc.peak_score,
        suppressed: inc.suppressed.is_some(),
        body: serde_json::to_value(inc)?,
    })
}

/// The feedback summary of an incident log: precision from the labels, and the per-series
/// thresholds they call for.
pub fn feedback(log: &IncidentLog) -> Result<Summary, PipelineError> {
    Ok(Summary::from_rows(log.labelled()?, log.count()?))
}

/// Records `incidents` at time `now`: one result per incident, new or merged into an earlier one.
pub fn record(
    log: &mut IncidentLog,
    incidents: &[Incident],
    now: i64,
) -> Result<Vec<Recorded>, PipelineError> {
    incidents
        .iter()
        .map(|inc| Ok(log.record(&new_incident(inc)?, OPEN_FOR_MS, now)?))
        .collect()
}

/// Sends `incidents` (with their ids in the log, when recorded) to every receiver of
/// `notifier`, as Alertmanager alerts or JSON events linking to `base_url`; one result per
/// receiver.
pub async fn deliver(
    notifier: &Notifier,
    incidents: &[(&Incident, Option<i64>)],
    base_url: &str,
    now: i64,
) -> Vec<Result<(), DeliveryError>> {
    let am: Vec<_> = incidents
        .iter()
        .map(|(i, id)| to_alertmanager(i, *id, base_url, now, OPEN_FOR_MS))
        .collect();
    let ev: Vec<_> = incidents
        .iter()
        .map(|(i, id)| WebhookEvent::new(i, *id, now, OPEN_FOR_MS))
        .collect();
    notifier.deliver(&am, &ev).await
}

/// The live detection job.
pub(crate) struct Detection {
    /// Where the metrics are read.
    pub(crate) store: MetricsAt,
    /// The series this worker owns.
    pub(crate) shard: novaml_core::Shard,
    pub(crate) log: Arc<Mutex<IncidentLog>>,
    pub(crate) metrics: AnomalyMetrics,
    pub(crate) notifier: Option<Notifier>,
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
pub(crate) struct Pass {
    series: usize,
    rows: usize,
    /// New or merged incidents with their ids.
    recorded: Vec<(Incident, Recorded)>,
}

impl Detection {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, IncidentLog>, PipelineError> {
        self.log
            .lock()
            .map_err(|_| PipelineError::Task("incident log lock poisoned".into()))
    }

    /// One pass over the store (blocking: SQLite and the detectors).
    pub(crate) fn pass(&self) -> Result<Pass, PipelineError> {
        let store = self.store.open()?;
        let now = now_ms();
        let range = TimeRange::new(now - self.lookback.as_millis() as i64, now + 60_000)?;
        let all = store.query(&Selector::all(), range, None)?;
        let thresholds = feedback(&*self.lock()?)?.thresholds;
        let mut out = Pass {
            series: 0,
            rows: 0,
            recorded: Vec::new(),
        };
        let mut found = Vec::new();
        for s in all {
            // By default our own series: the simulator's ground truth and self-metrics.
            if !self.shard.owns(&s.key)
                || self
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
        let recorded = record(&mut *self.lock()?, &found, now)?;
        for (inc, r) in found.into_iter().zip(recorded) {
            if matches!(r, Recorded::New(_)) {
                self.metrics.count_incident(&inc);
            }
            out.recorded.push((inc, r));
        }
        self.metrics.count_run();
        Ok(out)
    }

    /// Logs a pass and delivers alerts for its new, unsuppressed incidents that are still open;
    /// marks them notified when every receiver took them.
    pub(crate) async fn report(&self, p: Pass, seconds: f64) {
        let now = now_ms();
        let new: Vec<(&Incident, Option<i64>)> = p
            .recorded
            .iter()
            .filter(|(_, r)| matches!(r, Recorded::New(_)))
            .map(|(i, r)| (i, Some(r.id())))
            .collect();
        info!(
            series = p.series,
            rows = p.rows,
            new_incidents = new.len(),
            seconds,
            "Detection pass."
        );
        let Some(n) = &self.notifier else { return };
        let send: Vec<(&Incident, Option<i64>)> = new
            .into_iter()
            .filter(|(i, _)| i.suppressed.is_none() && i.end >= now - OPEN_FOR_MS)
            .collect();
        if send.is_empty() {
            return;
        }
        let results = deliver(n, &send, &self.base_url, now).await;
        if results.iter().all(Result::is_ok)
            && let Ok(mut log) = self.log.lock()
        {
            for id in send.iter().filter_map(|(_, id)| *id) {
                if let Err(e) = log.mark_notified(id) {
                    warn!(error = %e, "Cannot mark an incident notified.");
                }
            }
        }
    }
}
