//! Incidents, not points: consecutive anomalous rows of one series merge into one incident with
//! its start, end, peak, type, severity and recommended actions.
//!
//! An incident opens on a reported score ≥ the threshold, stays open while the unsuppressed
//! likelihood stays above half the threshold (hysteresis, so one event is one incident), and
//! absorbs a new opening within `merge_gap` rows of its end (de-duplication).

use novaml_core::{Selector, SeriesKey};
use serde::{Deserialize, Serialize};

use crate::AnomalyError;
use crate::streaming::{
    DEFAULT_THRESHOLD, Deviation, MemberScore, StreamingDetector, ValidStreamingParams,
};

/// What kind of trouble an incident is, guessed from the metric name and the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentType {
    /// Latency above its baseline.
    LatencySpike,
    /// Throughput or bandwidth below its baseline.
    ThroughputDrop,
    /// Error rate above its baseline.
    ErrorBurst,
    /// CPU, memory or disk usage above its baseline.
    ResourceExhaustion,
    /// Compression ratio below its baseline.
    CompressionFailure,
    /// Prediction error above its baseline.
    PredictionError,
    /// Consensus time above its baseline.
    ConsensusDelay,
    /// Network traffic off its baseline.
    NetworkAnomaly,
    /// None of the above.
    Unknown,
}

impl IncidentType {
    /// Classifies by metric name and whether the peak lies above the baseline.
    pub fn classify(metric: &str, above: bool) -> Self {
        let m = metric.to_ascii_lowercase();
        let has = |w: &[&str]| w.iter().any(|k| m.contains(k));
        match () {
            () if has(&["latency", "response_time", "duration"]) && above => Self::LatencySpike,
            () if has(&["throughput", "bandwidth", "goodput"]) && !above => Self::ThroughputDrop,
            () if has(&["error", "fail"]) && above => Self::ErrorBurst,
            () if has(&["compression"]) && !above => Self::CompressionFailure,
            () if has(&["consensus"]) && above => Self::ConsensusDelay,
            () if has(&["prediction", "forecast"]) && above => Self::PredictionError,
            () if has(&["cpu", "mem", "disk", "load"]) && above => Self::ResourceExhaustion,
            () if has(&["net", "network", "rx", "tx", "bytes_in", "bytes_out"]) => {
                Self::NetworkAnomaly
            }
            () => Self::Unknown,
        }
    }

    /// What an operator should look at first.
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Self::LatencySpike => &[
                "Check the slowest hops and queue depths",
                "Compare with deploys and migrations in the window",
            ],
            Self::ThroughputDrop => &[
                "Check link utilisation and stream count",
                "Look for throttling or a degraded NIC",
            ],
            Self::ErrorBurst => &[
                "Read the error logs of the window",
                "Roll back the last change if it coincides",
            ],
            Self::ResourceExhaustion => &[
                "Find the top consumers on the host",
                "Migrate or resize the VM; check for leaks",
            ],
            Self::CompressionFailure => &[
                "Check the payload type (already compressed data?)",
                "Verify the compression level and library",
            ],
            Self::PredictionError => &[
                "Check the model's input data for gaps",
                "Retrain or roll back the model",
            ],
            Self::ConsensusDelay => &[
                "Check peer latency and leader health",
                "Look for partitions or overloaded members",
            ],
            Self::NetworkAnomaly => &[
                "Compare with expected transfers (backups, migrations)",
                "Check for scans or floods",
            ],
            Self::Unknown => &["Inspect the series around the peak"],
        }
    }
}

/// Severity, from the peak score and from absolute thresholds per metric kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Peak score < 0.6.
    Low,
    /// < 0.8.
    Medium,
    /// < 0.95.
    High,
    /// ≥ 0.95 (a tail probability below about 10⁻¹¹, or a new extreme).
    Critical,
}

impl Severity {
    /// From a peak score in `[0, 1]`.
    pub fn from_score(s: f64) -> Self {
        match s {
            s if s >= 0.95 => Self::Critical,
            s if s >= 0.8 => Self::High,
            s if s >= 0.6 => Self::Medium,
            _ => Self::Low,
        }
    }

    /// Lower case name, as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl IncidentType {
    /// Snake-case name, as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LatencySpike => "latency_spike",
            Self::ThroughputDrop => "throughput_drop",
            Self::ErrorBurst => "error_burst",
            Self::ResourceExhaustion => "resource_exhaustion",
            Self::CompressionFailure => "compression_failure",
            Self::PredictionError => "prediction_error",
            Self::ConsensusDelay => "consensus_delay",
            Self::NetworkAnomaly => "network_anomaly",
            Self::Unknown => "unknown",
        }
    }
}

/// Which side of a threshold is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Values at or above the thresholds are bad (latency, usage, errors).
    Above,
    /// Values at or below the thresholds are bad (throughput, compression ratio).
    Below,
}

/// An absolute severity scale for the metrics whose name matches `metric` (a regular
/// expression): the value at an incident's peak raises its severity to the highest threshold it
/// crosses, whatever the score says (a 1.2 s latency is critical even on a series that is always
/// slow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityRule {
    /// A name for the rule (shown as the reason).
    pub name: String,
    /// Regular expression on the metric name.
    pub metric: String,
    /// Which side is bad.
    pub direction: Direction,
    /// Thresholds for low, medium, high, critical, in the metric's unit, ordered in the bad
    /// direction.
    pub thresholds: [f64; 4],
}

/// Checked severity rules (regular expressions compiled, thresholds ordered).
#[derive(Debug, Clone)]
pub struct SeverityRules(Vec<(SeverityRule, regex::Regex)>);

impl SeverityRules {
    /// Rules for the metric kinds every platform has: latency (ms and seconds), CPU, memory and
    /// disk usage (percent) and error ratios.
    pub fn defaults() -> Vec<SeverityRule> {
        let rule = |name: &str, metric: &str, direction, thresholds| SeverityRule {
            name: name.into(),
            metric: metric.into(),
            direction,
            thresholds,
        };
        vec![
            rule(
                "latency_ms",
                r"(latency|response_time|duration).*_(ms|milliseconds)$",
                Direction::Above,
                [100.0, 200.0, 500.0, 1_000.0],
            ),
            rule(
                "latency_seconds",
                r"(latency|response_time|duration).*_seconds$",
                Direction::Above,
                [0.1, 0.2, 0.5, 1.0],
            ),
            rule(
                "cpu_percent",
                r"cpu.*(percent|pct)",
                Direction::Above,
                [80.0, 90.0, 95.0, 99.0],
            ),
            rule(
                "memory_percent",
                r"mem.*(percent|pct)",
                Direction::Above,
                [85.0, 90.0, 95.0, 98.0],
            ),
            rule(
                "disk_percent",
                r"(disk|filesystem|fs).*(used|usage).*(percent|pct)",
                Direction::Above,
                [85.0, 90.0, 95.0, 98.0],
            ),
            rule(
                "error_ratio",
                r"error.*ratio",
                Direction::Above,
                [0.01, 0.05, 0.1, 0.25],
            ),
        ]
    }

    /// Compiles and checks the rules.
    pub fn new(rules: Vec<SeverityRule>) -> Result<Self, AnomalyError> {
        rules
            .into_iter()
            .map(|r| {
                let re = regex::Regex::new(&r.metric).map_err(|e| AnomalyError::InvalidParam {
                    name: "severity.metric",
                    reason: format!("rule {:?}: {e}", r.name),
                })?;
                let t = r.thresholds;
                let ordered = match r.direction {
                    Direction::Above => t.windows(2).all(|w| w[0] <= w[1]),
                    Direction::Below => t.windows(2).all(|w| w[0] >= w[1]),
                };
                if !ordered || t.iter().any(|x| !x.is_finite()) {
                    return Err(AnomalyError::InvalidParam {
                        name: "severity.thresholds",
                        reason: format!(
                            "rule {:?}: thresholds must be finite and ordered low → critical in the {:?} direction",
                            r.name, r.direction
                        ),
                    });
                }
                Ok((r, re))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The severity the first rule matching `metric` gives `value`, with the rule's name; `None`
    /// when no rule matches or the value crosses no threshold.
    pub fn severity(&self, metric: &str, value: f64) -> Option<(Severity, &str)> {
        let (rule, _) = self.0.iter().find(|(_, re)| re.is_match(metric))?;
        let levels = [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ];
        let crossed = |t: f64| match rule.direction {
            Direction::Above => value >= t,
            Direction::Below => value <= t,
        };
        rule.thresholds
            .iter()
            .zip(levels)
            .rev()
            .find(|(t, _)| crossed(**t))
            .map(|(_, s)| (s, rule.name.as_str()))
    }
}

impl Default for SeverityRules {
    fn default() -> Self {
        // The defaults are valid by construction (tested).
        Self::new(Self::defaults()).unwrap_or(Self(Vec::new()))
    }
}

/// A maintenance or suppression window: incidents of series matching `selector` that overlap
/// `[start, end]` are kept but marked suppressed, and no alert is sent for them.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppression {
    /// Which series (label matchers, e.g. `{host="h1"}`).
    pub selector: Selector,
    /// Start (ms since the epoch).
    pub start: i64,
    /// End (ms since the epoch).
    pub end: i64,
    /// Why (shown on the incident).
    pub reason: String,
}

impl Suppression {
    /// Whether the window covers an incident of `key` from `start` to `end`.
    pub fn covers(&self, key: &SeriesKey, start: i64, end: i64) -> bool {
        start <= self.end && end >= self.start && self.selector.matches(key)
    }
}

/// A metric's deviation from its baseline at an incident's peak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contributor {
    /// The series (Prometheus notation).
    pub metric: String,
    /// Its value at the peak.
    pub value: f64,
    /// Mean of its trailing baseline.
    pub baseline_mean: f64,
    /// 95th percentile of its trailing baseline.
    pub baseline_p95: f64,
    /// Signed robust z of the value against the baseline.
    pub z: f64,
}

impl Contributor {
    /// From a series and its detector's deviation.
    pub fn new(metric: &SeriesKey, d: &Deviation) -> Self {
        Self {
            metric: metric.to_string(),
            value: d.value,
            baseline_mean: d.baseline_mean,
            baseline_p95: d.baseline_p95,
            z: d.z,
        }
    }
}

/// One incident of one series (or of one entity, for multivariate detection).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// The series, or the entity's labels for multivariate detection (Prometheus notation).
    pub series: String,
    /// The metric name (empty for an entity).
    pub metric: String,
    /// The series' (or entity's) labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// First anomalous row's timestamp (ms).
    pub start: i64,
    /// Last anomalous row's timestamp (ms).
    pub end: i64,
    /// Rows in the incident.
    pub rows: usize,
    /// Highest score.
    pub peak_score: f64,
    /// Timestamp of the peak.
    pub peak_at: i64,
    /// Value at the peak (of the top contributor).
    pub peak_value: f64,
    /// Baseline median the peak was compared with (of the top contributor).
    pub baseline: f64,
    /// Type.
    pub kind: IncidentType,
    /// Severity.
    pub severity: Severity,
    /// What set the severity: `score`, or the name of the absolute rule that raised it.
    pub severity_reason: String,
    /// Metrics ordered by how far they were off at the peak (at most 5).
    pub contributors: Vec<Contributor>,
    /// The detectors' scores at the peak.
    pub detectors: Vec<MemberScore>,
    /// Recommended actions for the type.
    pub actions: Vec<&'static str>,
    /// The suppression window's reason when one covers the incident (no alert is sent).
    pub suppressed: Option<String>,
}

/// Everything [`detect`] needs besides the data.
#[derive(Debug, Clone)]
pub struct DetectConfig {
    /// The streaming detector's parameters.
    pub params: ValidStreamingParams,
    /// Reported scores at or above this open an incident.
    pub threshold: f64,
    /// An anomaly within this many rows of an open incident's end joins it (de-duplication).
    pub merge_gap: usize,
    /// Absolute severity rules.
    pub severity: SeverityRules,
    /// Maintenance / suppression windows.
    pub suppressions: Vec<Suppression>,
}

impl DetectConfig {
    /// The defaults around `params`: threshold [`DEFAULT_THRESHOLD`], merge gap 12 rows, the
    /// default severity rules, no suppression.
    pub fn new(params: ValidStreamingParams) -> Self {
        Self {
            params,
            threshold: DEFAULT_THRESHOLD,
            merge_gap: 12,
            severity: SeverityRules::default(),
            suppressions: Vec::new(),
        }
    }
}

/// What an incident records about its peak row.
#[derive(Debug, Clone)]
pub(crate) struct Peak {
    pub(crate) metric_name: String,
    pub(crate) value: f64,
    pub(crate) baseline: f64,
    pub(crate) contributors: Vec<Contributor>,
    pub(crate) detectors: Vec<MemberScore>,
}

/// The peak record of row `x` of `key`, as detector `d` saw it.
fn peak_of(key: &SeriesKey, d: &StreamingDetector, x: f64) -> Peak {
    let dev = d.deviation();
    Peak {
        metric_name: key.name.clone(),
        value: x,
        baseline: dev.baseline_median,
        contributors: vec![Contributor::new(key, &dev)],
        detectors: d.members().collect(),
    }
}

/// Groups scored rows into incidents: opens on a reported score ≥ the threshold, stays open
/// while the unsuppressed likelihood stays ≥ half the threshold (hysteresis), absorbs a new
/// opening within `merge_gap` rows of its end.
#[derive(Debug)]
pub(crate) struct Grouper {
    threshold: f64,
    merge_gap: usize,
    open: Option<(Incident, Peak, usize)>,
    done: Vec<(Incident, Peak)>,
}

impl Grouper {
    pub(crate) fn new(threshold: f64, merge_gap: usize) -> Self {
        Self {
            threshold,
            merge_gap,
            open: None,
            done: Vec::new(),
        }
    }

    /// Row `i` at time `t` with its reported `score` and unsuppressed `likelihood`; `peak` is
    /// called only when the row becomes an incident's peak.
    pub(crate) fn push(
        &mut self,
        i: usize,
        t: i64,
        score: f64,
        likelihood: f64,
        peak: impl FnOnce() -> Peak,
    ) {
        let threshold = self.threshold;
        match self.open.as_mut() {
            Some((inc, pk, last))
                if likelihood >= threshold / 2.0
                    || (score >= threshold && i - *last <= self.merge_gap) =>
            {
                inc.end = t;
                inc.rows += i - *last;
                *last = i;
                if likelihood > inc.peak_score {
                    inc.peak_score = likelihood;
                    inc.peak_at = t;
                    *pk = peak();
                }
                return;
            }
            Some((_, _, last)) if i - *last > self.merge_gap => {
                if let Some((inc, pk, _)) = self.open.take() {
                    self.done.push((inc, pk));
                }
            }
            _ => {}
        }
        if self.open.is_none() && score >= threshold {
            let incident = Incident {
                series: String::new(),
                metric: String::new(),
                labels: Default::default(),
                start: t,
                end: t,
                rows: 1,
                peak_score: likelihood.max(score),
                peak_at: t,
                peak_value: 0.0,
                baseline: 0.0,
                kind: IncidentType::Unknown,
                severity: Severity::Low,
                severity_reason: String::new(),
                contributors: Vec::new(),
                detectors: Vec::new(),
                actions: Vec::new(),
                suppressed: None,
            };
            self.open = Some((incident, peak(), i));
        }
    }

    /// The incidents, completed with type, severity, actions and suppression.
    pub(crate) fn finish(
        mut self,
        key: &SeriesKey,
        severity: &SeverityRules,
        suppressions: &[Suppression],
        contributor_keys: &[SeriesKey],
    ) -> Vec<Incident> {
        if let Some((inc, pk, _)) = self.open.take() {
            self.done.push((inc, pk));
        }
        complete(self.done, key, severity, suppressions, contributor_keys)
    }

    /// The incidents closed since the last call (taken) and the open one as it stands
    /// (kept open), completed: what a stream reports after each batch of rows.
    pub(crate) fn drain(
        &mut self,
        key: &SeriesKey,
        severity: &SeverityRules,
        suppressions: &[Suppression],
    ) -> Vec<Incident> {
        let mut out = std::mem::take(&mut self.done);
        if let Some((inc, pk, _)) = &self.open {
            out.push((inc.clone(), pk.clone()));
        }
        complete(out, key, severity, suppressions, &[])
    }
}

/// Incidents with their peaks, completed with type, severity, actions and suppression.
fn complete(
    found: Vec<(Incident, Peak)>,
    key: &SeriesKey,
    severity: &SeverityRules,
    suppressions: &[Suppression],
    contributor_keys: &[SeriesKey],
) -> Vec<Incident> {
    found
        .into_iter()
        .map(|(mut inc, pk)| {
            inc.series = key.to_string();
            inc.metric = key.name.clone();
            inc.labels = key.labels.clone();
            inc.peak_value = pk.value;
            inc.baseline = pk.baseline;
            inc.kind = IncidentType::classify(&pk.metric_name, pk.value >= pk.baseline);
            inc.severity = Severity::from_score(inc.peak_score);
            inc.severity_reason = "score".into();
            for c in &pk.contributors {
                let name = c.metric.split('{').next().unwrap_or(&c.metric);
                if let Some((s, rule)) = severity.severity(name, c.value)
                    && s > inc.severity
                {
                    inc.severity = s;
                    inc.severity_reason = rule.to_owned();
                }
            }
            inc.actions = inc.kind.actions().to_vec();
            inc.contributors = pk.contributors;
            inc.detectors = pk.detectors;
            inc.suppressed = suppressions
                .iter()
                .find(|w| {
                    w.covers(key, inc.start, inc.end)
                        || contributor_keys
                            .iter()
                            .any(|k| w.covers(k, inc.start, inc.end))
                })
                .map(|w| w.reason.clone());
            inc
        })
        .collect()
}

/// One series' detector kept between passes of a live job: it consumes only the points newer
/// than the last one it saw, so a pass costs the new points, not a re-scored window.
///
/// Points at or before the newest consumed one arrive late (out of order) and are not scored: a
/// streaming detector cannot go back. They are counted ([`Consumed::late`]) and stay in the store.
/// Rows before `emit_after` are learned without being reported (a restart re-warms the detector
/// over the history it had already reported, then reports only what is new).
#[derive(Debug)]
pub struct SeriesMonitor {
    key: SeriesKey,
    detector: StreamingDetector,
    grouper: Grouper,
    rows: usize,
    last_ts: Option<i64>,
    /// Rows learned before anything is reported (the baseline is still forming).
    quiet: usize,
    /// The timestamp of the first row reported on (row `quiet`).
    warm_ts: Option<i64>,
}

/// What one [`SeriesMonitor::consume`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consumed {
    /// `(timestamp, score)` of every new row after `emit_after` (the reported score, as
    /// [`detect`] sees it).
    pub scores: Vec<(i64, f64)>,
    /// Rows learned (reported or not).
    pub rows: usize,
    /// Points at or before the newest already consumed: not scored.
    pub late: usize,
}

impl SeriesMonitor {
    /// A fresh detector for `key`.
    pub fn new(key: SeriesKey, cfg: &DetectConfig) -> Self {
        Self {
            key,
            detector: StreamingDetector::new(cfg.params.clone()),
            grouper: Grouper::new(cfg.threshold, cfg.merge_gap),
            rows: 0,
            last_ts: None,
            quiet: 0,
            warm_ts: None,
        }
    }

    /// Reports nothing (scores, incidents) on the first `rows` rows.
    pub fn quiet_for(mut self, rows: usize) -> Self {
        self.quiet = rows;
        self
    }

    /// The series.
    pub fn key(&self) -> &SeriesKey {
        &self.key
    }

    /// The newest timestamp consumed.
    pub fn last_ts(&self) -> Option<i64> {
        self.last_ts
    }

    /// Rows consumed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The last row's score before suppression (the series' current anomaly score).
    pub fn likelihood(&self) -> f64 {
        self.detector.likelihood()
    }

    /// Consumes time-ordered `(timestamp, value)` points; those at or before the newest already
    /// consumed are late and skipped. Scores are reported for rows after `emit_after`; incidents
    /// are grouped over every row, as [`detect`] groups them (the threshold is `threshold`).
    pub fn consume(&mut self, points: &[(i64, f64)], threshold: f64, emit_after: i64) -> Consumed {
        let mut out = Consumed::default();
        self.grouper.threshold = threshold;
        for &(t, x) in points {
            if self.last_ts.is_some_and(|l| t <= l) {
                out.late += 1;
                continue;
            }
            let d = &mut self.detector;
            let score = d.update(x);
            let key = &self.key;
            self.grouper
                .push(self.rows, t, score, d.likelihood(), || peak_of(key, d, x));
            if self.rows == self.quiet {
                self.warm_ts = Some(t);
            }
            if self.rows >= self.quiet && t > emit_after {
                out.scores.push((t, score));
            }
            self.rows += 1;
            self.last_ts = Some(t);
            out.rows += 1;
        }
        out
    }

    /// Incidents closed since the last call, and the open one as it stands (reported again,
    /// with its end moved on, until it closes; the incident log merges re-reports).
    pub fn incidents(&mut self, cfg: &DetectConfig) -> Vec<Incident> {
        let found = self
            .grouper
            .drain(&self.key, &cfg.severity, &cfg.suppressions);
        match self.warm_ts {
            Some(warm) => found.into_iter().filter(|i| i.start >= warm).collect(),
            None => Vec::new(),
        }
    }
}

/// Runs the streaming detector over one series and groups its anomalies into incidents.
pub fn detect(
    key: &SeriesKey,
    timestamps: &[i64],
    values: &[f64],
    cfg: &DetectConfig,
) -> Vec<Incident> {
    detect_series(key, timestamps, values, cfg).0
}

/// [`detect`], also returning the last row's score before suppression (the series' current
/// anomaly score; 0 for an empty series).
pub fn detect_series(
    key: &SeriesKey,
    timestamps: &[i64],
    values: &[f64],
    cfg: &DetectConfig,
) -> (Vec<Incident>, f64) {
    let mut d = StreamingDetector::new(cfg.params.clone());
    let mut g = Grouper::new(cfg.threshold, cfg.merge_gap);
    for (i, (&t, &x)) in timestamps.iter().zip(values).enumerate() {
        let score = d.update(x);
        g.push(i, t, score, d.likelihood(), || peak_of(key, &d, x));
    }
    let last = d.likelihood();
    (g.finish(key, &cfg.severity, &cfg.suppressions, &[]), last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::StreamingParams;

    #[test]
    fn a_spike_is_one_incident_with_type_and_severity() {
        let mut v = novaml_testing::generators::seasonal(5, 3_000, 288, 0.5);
        for x in &mut v[2_500..2_510] {
            *x += 40.0;
        }
        let ts: Vec<i64> = (0..3_000).map(|i| i * 300_000).collect();
        let params = StreamingParams::default().check().expect("valid");
        let key = SeriesKey::new("dwcp_transfer_latency_ms").expect("valid");
        let inc = detect(&key, &ts, &v, &DetectConfig::new(params));
        assert_eq!(inc.len(), 1, "{inc:#?}");
        let i = &inc[0];
        assert!(i.start >= ts[2_500] && i.start <= ts[2_502], "{i:?}");
        assert!(i.end >= ts[2_509], "the incident covers the anomaly: {i:?}");
        assert_eq!(i.kind, IncidentType::LatencySpike);
        assert_eq!(i.severity, Severity::Critical, "a new extreme");
        assert!(!i.actions.is_empty());
    }

    #[test]
    fn a_monitor_fed_in_pieces_reports_what_one_pass_over_the_whole_reports() {
        let mut v = novaml_testing::generators::seasonal(9, 3_000, 288, 0.5);
        for x in &mut v[2_000..2_006] {
            *x += 30.0;
        }
        for x in &mut v[2_700..2_760] {
            *x -= 25.0;
        }
        let ts: Vec<i64> = (0..3_000).map(|i| i * 300_000).collect();
        let params = StreamingParams::default().check().expect("valid");
        let key = SeriesKey::new("vm_cpu_usage_percent").expect("valid");
        let cfg = DetectConfig::new(params);
        let (whole, last) = detect_series(&key, &ts, &v, &cfg);
        assert!(whole.len() >= 2, "{whole:#?}");
        let mut m = SeriesMonitor::new(key.clone(), &cfg);
        let pts: Vec<(i64, f64)> = ts.iter().copied().zip(v.iter().copied()).collect();
        let mut incidents: Vec<Incident> = Vec::new();
        let mut scores = Vec::new();
        // Uneven pieces, each overlapping the last: the overlap is late and skipped.
        let mut at = 0;
        for (i, len) in [7usize, 300, 1, 999, 50, 1_200, 443]
            .iter()
            .cycle()
            .enumerate()
        {
            if at >= pts.len() {
                break;
            }
            let from = at.saturating_sub(if i % 2 == 1 { 5 } else { 0 });
            let to = (at + len).min(pts.len());
            let c = m.consume(&pts[from..to], cfg.threshold, 1_000 * 300_000);
            assert_eq!(c.late, at - from, "the overlap is late");
            scores.extend(c.scores);
            for inc in m.incidents(&cfg) {
                // A re-report of the open incident replaces the earlier one (as the log merges).
                match incidents.iter_mut().find(|j| j.start == inc.start) {
                    Some(j) => *j = inc,
                    None => incidents.push(inc),
                }
            }
            at = to;
        }
        assert_eq!(m.rows(), 3_000);
        assert_eq!(m.likelihood(), last);
        assert_eq!(scores.len(), 1_999, "scores after emit_after only");
        assert_eq!(scores[0].0, 1_001 * 300_000);
        let key_of = |i: &Incident| (i.start, i.end, i.kind, i.severity, i.peak_at);
        assert_eq!(
            incidents.iter().map(key_of).collect::<Vec<_>>(),
            whole.iter().map(key_of).collect::<Vec<_>>()
        );
        let again = StreamingDetector::score_series(cfg.params.clone(), &v);
        for (t, s) in &scores {
            assert_eq!(*s, again[(*t / 300_000) as usize], "row {t}");
        }
    }

    #[test]
    fn classification_by_name_and_direction() {
        let cases = [
            ("dwcp_transfer_latency_ms", true, IncidentType::LatencySpike),
            (
                "dwcp_transfer_throughput_mbps",
                false,
                IncidentType::ThroughputDrop,
            ),
            ("dwcp_transfer_error_ratio", true, IncidentType::ErrorBurst),
            (
                "vm_cpu_usage_percent",
                true,
                IncidentType::ResourceExhaustion,
            ),
            (
                "dwcp_hde_compression_ratio",
                false,
                IncidentType::CompressionFailure,
            ),
            (
                "dwcp_acp_consensus_time_ms",
                true,
                IncidentType::ConsensusDelay,
            ),
            (
                "vm_network_receive_bytes_per_second",
                true,
                IncidentType::NetworkAnomaly,
            ),
            ("value", true, IncidentType::Unknown),
        ];
        for (m, above, want) in cases {
            assert_eq!(IncidentType::classify(m, above), want, "{m}");
        }
        assert_eq!(Severity::from_score(0.55), Severity::Low);
        assert_eq!(Severity::from_score(0.97), Severity::Critical);
    }

    #[test]
    fn absolute_rules_raise_severity_and_are_checked() {
        let rules = SeverityRules::new(SeverityRules::defaults()).expect("defaults are valid");
        assert_eq!(
            rules.severity("dwcp_transfer_latency_ms", 250.0),
            Some((Severity::Medium, "latency_ms"))
        );
        assert_eq!(
            rules.severity("dwcp_transfer_latency_ms", 1_200.0),
            Some((Severity::Critical, "latency_ms"))
        );
        assert_eq!(rules.severity("dwcp_transfer_latency_ms", 50.0), None);
        assert_eq!(
            rules.severity("vm_cpu_usage_percent", 96.0),
            Some((Severity::High, "cpu_percent"))
        );
        assert_eq!(rules.severity("value", 1e9), None);
        let mut bad = SeverityRules::defaults();
        bad[0].thresholds = [500.0, 100.0, 200.0, 1_000.0];
        assert!(matches!(
            SeverityRules::new(bad),
            Err(AnomalyError::InvalidParam {
                name: "severity.thresholds",
                ..
            })
        ));
        let mut bad = SeverityRules::defaults();
        bad[0].metric = "(".into();
        assert!(SeverityRules::new(bad).is_err());

        // A mild anomaly on a series that sits at 1.1 s is critical by the rule, not the score.
        let mut v: Vec<f64> = novaml_testing::generators::seasonal(5, 3_000, 288, 0.5)
            .iter()
            .map(|x| 1_100.0 + x)
            .collect();
        for x in &mut v[2_500..2_504] {
            *x += 3.0;
        }
        let ts: Vec<i64> = (0..3_000).map(|i| i * 300_000).collect();
        let key = SeriesKey::new("dwcp_transfer_latency_ms").expect("valid");
        // No new-extreme rule, so the score alone would not say critical.
        let params = StreamingParams::default().spatial_tolerance(0.0);
        let cfg = DetectConfig::new(params.check().expect("valid"));
        let inc = detect(&key, &ts, &v, &cfg);
        assert!(!inc.is_empty());
        assert!(inc.iter().all(|i| i.severity == Severity::Critical));
        let by_rule: Vec<&Incident> = inc.iter().filter(|i| i.peak_score < 0.95).collect();
        assert!(!by_rule.is_empty(), "{inc:#?}");
        assert!(by_rule.iter().all(|i| i.severity_reason == "latency_ms"));
    }

    #[test]
    fn maintenance_windows_suppress_matching_series_only() {
        let mut v = novaml_testing::generators::seasonal(5, 3_000, 288, 0.5);
        for x in &mut v[2_500..2_510] {
            *x += 40.0;
        }
        let ts: Vec<i64> = (0..3_000).map(|i| i * 300_000).collect();
        let key = SeriesKey::new("vm_cpu_usage_percent")
            .and_then(|k| k.with_label("host", "h1"))
            .expect("valid");
        let window = |sel: &str| Suppression {
            selector: sel.parse().expect("selector"),
            start: ts[2_400],
            end: ts[2_600],
            reason: "kernel upgrade".into(),
        };
        let mut cfg = DetectConfig::new(StreamingParams::default().check().expect("valid"));
        cfg.suppressions = vec![window(r#"{host="h2"}"#)];
        let inc = detect(&key, &ts, &v, &cfg);
        assert_eq!(inc.len(), 1);
        assert_eq!(inc[0].suppressed, None);
        assert_eq!(inc[0].contributors.len(), 1);
        assert!(inc[0].contributors[0].z > 3.0, "{:?}", inc[0].contributors);
        assert_eq!(inc[0].detectors[0].member, "level");
        cfg.suppressions = vec![window(r#"{host="h1"}"#)];
        let inc = detect(&key, &ts, &v, &cfg);
        assert_eq!(inc[0].suppressed.as_deref(), Some("kernel upgrade"));
        // A window that ended before the incident does not cover it.
        let mut early = window(r#"{host="h1"}"#);
        early.end = ts[2_000];
        cfg.suppressions = vec![early];
        assert_eq!(detect(&key, &ts, &v, &cfg)[0].suppressed, None);
    }
}
