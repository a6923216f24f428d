//! Incidents, not points: consecutive anomalous rows of one series merge into one incident with
//! its start, end, peak, type, severity and recommended actions.
//!
//! An incident opens on a reported score ≥ the threshold, stays open while the unsuppressed
//! likelihood stays above half the threshold (hysteresis, so one event is one incident), and
//! absorbs a new opening within `merge_gap` rows of its end (de-duplication).

use serde::Serialize;

use crate::streaming::{StreamingDetector, ValidStreamingParams};

/// What kind of trouble an incident is, guessed from the metric name and the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// Severity, from the peak score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
}

/// One incident of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
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
    /// Value at the peak.
    pub peak_value: f64,
    /// Baseline median the peak was compared with.
    pub baseline: f64,
    /// Type.
    pub kind: IncidentType,
    /// Severity.
    pub severity: Severity,
    /// Recommended actions for the type.
    pub actions: Vec<&'static str>,
}

/// Runs the streaming detector over a series and groups its anomalies into incidents.
pub fn detect(
    metric: &str,
    timestamps: &[i64],
    values: &[f64],
    params: ValidStreamingParams,
    threshold: f64,
    merge_gap: usize,
) -> Vec<Incident> {
    let mut d = StreamingDetector::new(params);
    let mut out: Vec<Incident> = Vec::new();
    let mut open: Option<(Incident, usize)> = None; // incident and index of its last row
    for (i, (&t, &x)) in timestamps.iter().zip(values).enumerate() {
        let score = d.update(x);
        let likelihood = d.likelihood();
        let baseline = d.baseline();
        match open.as_mut() {
            Some((inc, last))
                if likelihood >= threshold / 2.0
                    || (score >= threshold && i - *last <= merge_gap) =>
            {
                inc.end = t;
                inc.rows += i - *last;
                *last = i;
                if likelihood > inc.peak_score {
                    inc.peak_score = likelihood;
                    inc.peak_at = t;
                    inc.peak_value = x;
                    inc.baseline = baseline;
                }
            }
            Some((_, last)) if i - *last > merge_gap => {
                if let Some((inc, _)) = open.take() {
                    out.push(inc);
                }
            }
            _ => {}
        }
        if open.is_none() && score >= threshold {
            open = Some((
                Incident {
                    start: t,
                    end: t,
                    rows: 1,
                    peak_score: likelihood.max(score),
                    peak_at: t,
                    peak_value: x,
                    baseline,
                    kind: IncidentType::Unknown,
                    severity: Severity::Low,
                    actions: vec![],
                },
                i,
            ));
        }
    }
    if let Some((inc, _)) = open {
        out.push(inc);
    }
    for inc in &mut out {
        inc.kind = IncidentType::classify(metric, inc.peak_value >= inc.baseline);
        inc.severity = Severity::from_score(inc.peak_score);
        inc.actions = inc.kind.actions().to_vec();
    }
    out
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
        let inc = detect("dwcp_transfer_latency_ms", &ts, &v, params, 0.5, 12);
        assert_eq!(inc.len(), 1, "{inc:#?}");
        let i = &inc[0];
        assert!(i.start >= ts[2_500] && i.start <= ts[2_502], "{i:?}");
        assert!(i.end >= ts[2_509], "the incident covers the anomaly: {i:?}");
        assert_eq!(i.kind, IncidentType::LatencySpike);
        assert_eq!(i.severity, Severity::Critical, "a new extreme");
        assert!(!i.actions.is_empty());
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
}
