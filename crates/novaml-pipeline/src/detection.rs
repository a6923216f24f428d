//! Anomaly detection as the running system does it: the live job over the store, and the steps
//! it shares with the one-shot `novaml detect` (recording incidents in the incident log,
//! delivering alerts for the new ones, the thresholds operator feedback calls for).
//!
//! Every `interval`, each series' detector ([`SeriesMonitor`], kept between passes) consumes
//! the points that arrived since the last pass, and only those: `novaml_anomaly_score` on
//! `/metrics` is set to its latest row's score, new incidents go to the incident log
//! (re-detections merge) and, when receivers are configured, out as alerts. With a remote store
//! every new row's score is written back to the TSDB as `novaml_anomaly_score{metric=…, …}` at
//! the row's timestamp, for Grafana and vmalert.
//!
//! **Checkpoints.** After a pass has reported (scores written back, incidents recorded), each
//! series' newest scored timestamp is saved in the state store (the SQLite file, or the
//! fleet's PostgreSQL). A report that fails (the TSDB or PostgreSQL unreachable) is kept and
//! sent again before the next pass consumes anything: while it fails, the detectors wait and
//! the shard's lag grows; when the store returns nothing was lost. After a restart the detectors
//! are rebuilt from the store's history (the latest `max_rows` within `lookback`), learning the
//! rows at or before their checkpoint silently and reporting only the later ones: nothing within
//! the lookback is skipped, nothing is reported twice. (A crash between the write-back and the
//! checkpoint re-sends those scores at the same timestamps, where the TSDB keeps one; the
//! incident log merges a re-recorded incident.) Points down for longer than `lookback` are not
//! scored.
//!
//! **Reads.** Each pass makes one bulk read of every series' new points, from the oldest last
//! point among the detectors that saw a point in the last ten minutes, so the read stays small
//! however many series the store holds. A series without a detector (new, backfilled, or every
//! series after a restart) is read on its own from the lookback's start, one series at a time,
//! so its history warms its detector; a detector further behind (its series was quiet, or the
//! store was away) is read on its own from its last point. A series with nothing new is not
//! read on its own again until the bulk read shows points of it.
//!
//! **Late points.** A point at or before its series' newest consumed point is not scored (a
//! streaming detector cannot go back); it stays in the store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use novaml_anomaly::alert::{WebhookEvent, to_alertmanager};
use novaml_anomaly::feedback::Summary;
use novaml_anomaly::incident::{DetectConfig, Incident, SeriesMonitor};
use novaml_anomaly::metrics::AnomalyMetrics;
use novaml_core::time::now_ms;
use novaml_core::{Batch, MetricStore, Point, Selector, Series, SeriesKey, TimeRange};
use novaml_store::incidents::{NewIncident, Recorded};
use novaml_store::{AnyStore, MetricsAt, ShardState, SharedState, StateStore};
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
pub fn feedback(log: &mut dyn StateStore) -> Result<Summary, PipelineError> {
    Ok(Summary::from_rows(log.labelled()?, log.count()?))
}

/// Records `incidents` at time `now`: one result per incident, new or merged into an earlier one.
pub fn record(
    log: &mut dyn StateStore,
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

/// The written-back scores of one series: `novaml_anomaly_score` with its labels and the label
/// `metric` (a label of that name is exported as `exported_metric`, as on `/metrics`).
fn score_series(key: &SeriesKey, scores: &[(i64, f64)]) -> Series {
    let mut k = SeriesKey {
        name: SCORE_METRIC.into(),
        labels: key.labels.clone(),
    };
    if let Some(v) = k.labels.remove("metric") {
        k.labels.insert("exported_metric".into(), v);
    }
    k.labels.insert("metric".into(), key.name.clone());
    Series::new(k, scores.iter().map(|&(t, v)| Point::new(t, v)).collect())
}

/// The live detection job.
pub(crate) struct Detection {
    /// Where the metrics are read.
    pub(crate) store: MetricsAt,
    /// The series this worker owns.
    pub(crate) shard: novaml_core::Shard,
    pub(crate) log: SharedState,
    /// Every shard's lease and progress as of the last pass (for the status page).
    pub(crate) shards: Arc<std::sync::RwLock<Vec<ShardState>>>,
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
    /// The detectors, kept between passes, and the checkpoints they resumed from.
    pub(crate) monitors: Mutex<Monitors>,
}

/// A pass's bulk read starts at the oldest last point among the detectors that saw a point
/// within this span; the others are read one by one from their own last point.
const BULK_SPAN_MS: i64 = 10 * 60_000;

/// With no detector keeping up (the first pass), the bulk read covers this much.
const LATE_MS: i64 = 60_000;

/// What a pass reads for one series: points the bulk read brought, or a read of its own from a
/// timestamp (made when the series' turn comes, so a first pass over many series holds one
/// series' history at a time).
enum Work {
    Loaded(Series),
    Read(SeriesKey, i64),
}

/// The name scores are written back under (and never scored themselves).
pub const SCORE_METRIC: &str = "novaml_anomaly_score";

/// Detectors between passes.
#[derive(Debug, Default)]
pub(crate) struct Monitors {
    by_series: std::collections::HashMap<SeriesKey, SeriesMonitor>,
    /// Loaded at the first pass: where each series' reporting stopped before this process.
    resumed: Option<std::collections::HashMap<String, i64>>,
    /// Series whose read of their own found nothing new: not read on their own again until the
    /// bulk read shows points of theirs.
    idle: std::collections::HashSet<SeriesKey>,
    /// A pass's results that could not be reported yet.
    unreported: Option<Report>,
}

/// What a pass sends out: scores to the TSDB, incidents to the log, then checkpoints.
#[derive(Debug, Default)]
struct Report {
    scores: Vec<Series>,
    found: Vec<Incident>,
    checkpoints: Vec<(String, i64)>,
}

/// What one pass found.
pub(crate) struct Pass {
    series: usize,
    rows: usize,
    /// New or merged incidents with their ids.
    recorded: Vec<(Incident, Recorded)>,
}

impl Detection {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Box<dyn StateStore>>, PipelineError> {
        self.log
            .lock()
            .map_err(|_| PipelineError::Task("incident log lock poisoned".into()))
    }

    /// One pass over the store (blocking: SQLite and the detectors): the points since the last
    /// pass, scored, reported, checkpointed.
    pub(crate) fn pass(&self) -> Result<Pass, PipelineError> {
        let mut store = self.store.open()?;
        let now = now_ms();
        let mut monitors = self
            .monitors
            .lock()
            .map_err(|_| PipelineError::Task("detector lock poisoned".into()))?;
        let monitors = &mut *monitors;
        if monitors.resumed.is_none() {
            monitors.resumed = Some(self.lock()?.checkpoints()?);
        }
        let mut out = Pass {
            series: 0,
            rows: 0,
            recorded: Vec::new(),
        };
        // What an earlier pass could not report goes first; until it does, nothing new is
        // consumed.
        if let Some(report) = monitors.unreported.take() {
            match self.send(&mut store, &report, now) {
                Ok(recorded) => out.recorded = recorded,
                Err(e) => {
                    monitors.unreported = Some(report);
                    return Err(e);
                }
            }
        }
        let lookback_start = now - self.lookback.as_millis() as i64;
        let horizon = now + 60_000;
        // One bulk read of every series' new points: from the oldest last point of the
        // detectors that are keeping up (within BULK_SPAN_MS), so it stays small however many
        // series there are. Detectors further behind (a quiet series, a worker that was down)
        // and series without one (new, or this process just started) are read one by one
        // below, from their last point or the lookback's start.
        let bulk_start = monitors
            .by_series
            .values()
            .filter_map(SeriesMonitor::last_ts)
            .filter(|&t| t >= now - BULK_SPAN_MS)
            .min()
            .map_or(now - LATE_MS, |t| t + 1)
            .max(lookback_start);
        // By default our own series are left out: the simulator's ground truth and self-metrics.
        let wanted = |key: &SeriesKey| {
            self.shard.owns(key)
                && key.name != SCORE_METRIC
                && !self
                    .exclude
                    .iter()
                    .any(|p| key.name.starts_with(p.as_str()))
        };
        let mut bulk = store.query(&Selector::all(), TimeRange::new(bulk_start, horizon)?, None)?;
        bulk.retain(|s| wanted(&s.key));
        let mut in_bulk: std::collections::HashMap<SeriesKey, Series> =
            bulk.into_iter().map(|s| (s.key.clone(), s)).collect();
        let mut work: Vec<Work> = Vec::new();
        for key in store.keys(TimeRange::new(lookback_start, horizon)?)? {
            if !wanted(&key) {
                continue;
            }
            let from = match monitors.by_series.get(&key).map(SeriesMonitor::last_ts) {
                // Keeping up: the bulk read has its new points.
                Some(Some(t)) if t + 1 >= bulk_start => None,
                // Behind the bulk read: from its last point.
                Some(Some(t)) => Some(t + 1),
                // No detector yet: its history warms one.
                _ => Some(lookback_start),
            };
            match from {
                // A series with nothing new at its last read is read again once the bulk read
                // shows it has points.
                Some(_) if monitors.idle.contains(&key) && !in_bulk.contains_key(&key) => {}
                Some(from) => {
                    in_bulk.remove(&key);
                    work.push(Work::Read(key, from));
                }
                None => {}
            }
        }
        // Series in the bulk read but not (yet) in the list: a list lags writes by a moment.
        work.extend(in_bulk.into_values().map(Work::Loaded));
        let thresholds = feedback(self.lock()?.as_mut())?.thresholds;
        let mut report = Report::default();
        for w in work {
            let (s, read) = match w {
                Work::Loaded(s) => (s, false),
                Work::Read(key, from) => {
                    match store.query_key(&key, TimeRange::new(from, horizon)?, None)? {
                        Some(s) => (s, true),
                        None => {
                            monitors.idle.insert(key);
                            continue;
                        }
                    }
                }
            };
            let series = s.key.to_string();
            let resumed = monitors
                .resumed
                .as_ref()
                .and_then(|r| r.get(&series).copied())
                .unwrap_or(i64::MIN);
            let fresh = !monitors.by_series.contains_key(&s.key);
            let m = monitors.by_series.entry(s.key.clone()).or_insert_with(|| {
                SeriesMonitor::new(s.key.clone(), &self.config).quiet_for(WARMUP_ROWS)
            });
            // A new detector learns from the latest `max_rows` only.
            let from = if fresh {
                s.points.len().saturating_sub(self.max_rows)
            } else {
                0
            };
            // The read starts at the oldest detector's last point: the others skip what they saw.
            let seen = m.last_ts().unwrap_or(i64::MIN);
            let points: Vec<(i64, f64)> = s.points[from..]
                .iter()
                .filter(|p| p.ts > seen)
                .map(|p| (p.ts, p.value))
                .collect();
            let mut cfg = self.config.clone();
            cfg.threshold = cfg.threshold.max(thresholds.for_series(&series));
            let c = m.consume(&points, cfg.threshold, resumed);
            if c.rows == 0 {
                if read {
                    monitors.idle.insert(s.key);
                }
                continue;
            }
            monitors.idle.remove(&s.key);
            self.metrics
                .set_score(&s.key.name, &s.key.labels, m.likelihood());
            out.series += 1;
            out.rows += c.rows;
            if !c.scores.is_empty() {
                report.scores.push(score_series(&s.key, &c.scores));
            }
            report
                .found
                .extend(m.incidents(&cfg).into_iter().filter(|i| i.end > resumed));
            if let Some(t) = m.last_ts() {
                report.checkpoints.push((series, t));
            }
        }
        // Detectors of series gone for longer than the lookback are dropped.
        monitors
            .by_series
            .retain(|_, m| m.last_ts().is_some_and(|t| t >= lookback_start));
        let scored_until = report.checkpoints.iter().map(|&(_, t)| t).max();
        match self.send(&mut store, &report, now) {
            Ok(recorded) => out.recorded.extend(recorded),
            Err(e) => {
                monitors.unreported = Some(report);
                return Err(e);
            }
        }
        self.metrics.count_run();
        // The pass is reported: its alerts go out even when the lease table cannot be written.
        if let Err(e) = self.progress(scored_until, now) {
            warn!(error = %e, "Cannot record this shard's progress.");
        }
        Ok(out)
    }

    /// Sends a pass's report: scores written back, incidents recorded, then checkpoints (a
    /// failure before the checkpoint reports again, never skips; a re-sent score lands on the
    /// same timestamp and a re-recorded incident merges).
    fn send(
        &self,
        store: &mut AnyStore,
        report: &Report,
        now: i64,
    ) -> Result<Vec<(Incident, Recorded)>, PipelineError> {
        if let AnyStore::Remote(remote) = store
            && !report.scores.is_empty()
        {
            remote.write(&Batch {
                source: "novaml_detection".into(),
                series: report.scores.clone(),
                cursor: None,
            })?;
        }
        let mut log = self.lock()?;
        let recorded = record(log.as_mut(), &report.found, now)?;
        log.save_checkpoints(&report.checkpoints)?;
        drop(log);
        let mut out = Vec::with_capacity(recorded.len());
        for (inc, r) in report.found.iter().zip(recorded) {
            if matches!(r, Recorded::New(_)) {
                self.metrics.count_incident(inc);
            }
            out.push((inc.clone(), r));
        }
        Ok(out)
    }

    /// Records this shard's progress and refreshes every shard's lag on /metrics and the
    /// status page.
    fn progress(&self, scored_until: Option<i64>, now: i64) -> Result<(), PipelineError> {
        let shards = {
            let mut log = self.lock()?;
            log.report_shard(scored_until, now)?;
            log.shards()?
        };
        for s in &shards {
            let lag = s.scored_until.map(|t| ((now - t) as f64 / 1000.0).max(0.0));
            self.metrics.set_shard(&s.shard.to_string(), s.held, lag);
        }
        if let Ok(mut view) = self.shards.write() {
            *view = shards;
        }
        Ok(())
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
        if results.iter().all(Result::is_ok) {
            // The state's clients block (PostgreSQL's on a runtime of its own): off this task.
            let ids: Vec<i64> = send.iter().filter_map(|(_, id)| *id).collect();
            let log = self.log.clone();
            let marked = crate::periodic::blocking(move || {
                let mut log = log
                    .lock()
                    .map_err(|_| PipelineError::Task("incident log lock poisoned".into()))?;
                ids.iter().try_for_each(|&id| Ok(log.mark_notified(id)?))
            })
            .await;
            if let Err(e) = marked {
                warn!(error = %e, "Cannot mark incidents notified.");
            }
        }
    }
}
