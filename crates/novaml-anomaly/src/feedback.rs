//! Operator feedback: what the labels say about the detector, and the threshold they call for.
//!
//! Operators mark incidents true or false positives. From those labels (never from a constant)
//! come the precision and the false-alarm share of what was alerted, overall and per incident
//! type, and an adapted threshold: the lowest one at which the labelled incidents above it reach
//! the target precision. Until enough labels exist, the default threshold stays.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An operator's verdict on an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// A real problem.
    TruePositive,
    /// Not a problem.
    FalsePositive,
}

impl Label {
    /// `tp` / `fp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TruePositive => "tp",
            Self::FalsePositive => "fp",
        }
    }

    /// Parses `tp`, `true`, `true_positive` / `fp`, `false`, `false_positive`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "tp" | "true" | "true_positive" => Some(Self::TruePositive),
            "fp" | "false" | "false_positive" => Some(Self::FalsePositive),
            _ => None,
        }
    }
}

/// One labelled incident, as the statistics need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The incident's series (or entity).
    pub series: String,
    /// Its type (`latency_spike`, …).
    pub kind: String,
    /// Its peak score.
    pub peak_score: f64,
    /// The verdict.
    pub label: Label,
}

/// Counts and rates over labelled incidents.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Labelled true positives.
    pub true_positives: usize,
    /// Labelled false positives.
    pub false_positives: usize,
    /// TP / (TP + FP); `None` without labels.
    pub precision: Option<f64>,
    /// FP / (TP + FP): the share of labelled alerts that were false; `None` without labels.
    pub false_alarm_rate: Option<f64>,
}

impl Rates {
    fn add(&mut self, l: Label) {
        match l {
            Label::TruePositive => self.true_positives += 1,
            Label::FalsePositive => self.false_positives += 1,
        }
        let n = (self.true_positives + self.false_positives) as f64;
        self.precision = Some(self.true_positives as f64 / n);
        self.false_alarm_rate = Some(self.false_positives as f64 / n);
    }
}

/// What the feedback says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FeedbackStats {
    /// Over every labelled incident.
    pub overall: Rates,
    /// Per incident type.
    pub by_kind: BTreeMap<String, Rates>,
    /// Incidents recorded, labelled or not.
    pub incidents: usize,
    /// Incidents without a label.
    pub unlabelled: usize,
}

impl FeedbackStats {
    /// From the labelled incidents and the number of incidents recorded.
    pub fn new(labelled: &[Labelled], incidents: usize) -> Self {
        let mut s = Self {
            incidents,
            unlabelled: incidents.saturating_sub(labelled.len()),
            ..Self::default()
        };
        for l in labelled {
            s.overall.add(l.label);
            s.by_kind.entry(l.kind.clone()).or_default().add(l.label);
        }
        s
    }
}

/// How thresholds adapt to feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptPolicy {
    /// Precision the adapted threshold aims for among labelled incidents above it.
    pub target_precision: f64,
    /// Labels needed before a scope (one series, or all) adapts.
    pub min_labels: usize,
    /// The threshold never rises above this (so a flood of false positives cannot silence a
    /// series for good).
    pub max_threshold: f64,
}

impl Default for AdaptPolicy {
    fn default() -> Self {
        Self {
            target_precision: 0.8,
            min_labels: 5,
            max_threshold: 0.95,
        }
    }
}

/// The lowest threshold ≥ `base` at which the labelled incidents scoring at least it reach the
/// target precision, capped at `max_threshold`; `base` while fewer than `min_labels` labels
/// exist. Only false positives raise it: the candidates are `base` and just above each false
/// positive's peak, so a threshold never rises past a true positive without a false one below.
pub fn adapt_threshold(base: f64, labelled: &[&Labelled], policy: &AdaptPolicy) -> f64 {
    if labelled.len() < policy.min_labels {
        return base;
    }
    let precision_at = |t: f64| {
        let (tp, n) = labelled
            .iter()
            .filter(|l| l.peak_score >= t)
            .fold((0usize, 0usize), |(tp, n), l| {
                (tp + usize::from(l.label == Label::TruePositive), n + 1)
            });
        (n > 0).then(|| tp as f64 / n as f64)
    };
    let mut candidates: Vec<f64> = labelled
        .iter()
        .filter(|l| l.label == Label::FalsePositive && l.peak_score >= base)
        .map(|l| l.peak_score + 1e-9)
        .collect();
    candidates.push(base);
    candidates.sort_by(f64::total_cmp);
    for t in candidates {
        if t > policy.max_threshold {
            return policy.max_threshold;
        }
        match precision_at(t) {
            Some(p) if p >= policy.target_precision => return t,
            // Nothing labelled is left above t: every incident above the last FP was unlabelled.
            None => return t,
            _ => {}
        }
    }
    policy.max_threshold
}

/// Thresholds per series from the feedback: a series with `min_labels` of its own adapts on
/// them; the others on the labels of all series without their own, together (when there are
/// enough).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Thresholds {
    /// The threshold for series without their own.
    pub default: f64,
    /// Series with their own.
    pub per_series: BTreeMap<String, f64>,
}

impl Thresholds {
    /// Adapts `base` to the labels.
    pub fn adapt(base: f64, labelled: &[Labelled], policy: &AdaptPolicy) -> Self {
        let mut by_series: BTreeMap<&str, Vec<&Labelled>> = BTreeMap::new();
        for l in labelled {
            by_series.entry(l.series.as_str()).or_default().push(l);
        }
        let (own, pooled): (BTreeMap<_, _>, BTreeMap<_, _>) = by_series
            .into_iter()
            .partition(|(_, v)| v.len() >= policy.min_labels);
        let pooled: Vec<&Labelled> = pooled.into_values().flatten().collect();
        Self {
            default: adapt_threshold(base, &pooled, policy),
            per_series: own
                .into_iter()
                .map(|(s, v)| (s.to_owned(), adapt_threshold(base, &v, policy)))
                .collect(),
        }
    }

    /// The threshold for `series`.
    pub fn for_series(&self, series: &str) -> f64 {
        self.per_series.get(series).copied().unwrap_or(self.default)
    }
}

/// What the feedback says, and the thresholds it calls for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Precision and false-alarm share from the labels.
    #[serde(flatten)]
    pub feedback: FeedbackStats,
    /// Thresholds adapted to the labels (from [`crate::streaming::DEFAULT_THRESHOLD`]).
    pub thresholds: Thresholds,
}

impl Summary {
    /// From an incident log's labelled rows `(series, kind, peak score, "tp" | "fp")` and its
    /// number of incidents; rows with another label are ignored.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (String, String, f64, String)>,
        incidents: usize,
    ) -> Self {
        let labelled: Vec<Labelled> = rows
            .into_iter()
            .filter_map(|(series, kind, peak_score, label)| {
                Some(Labelled {
                    series,
                    kind,
                    peak_score,
                    label: Label::parse(&label)?,
                })
            })
            .collect();
        Self {
            feedback: FeedbackStats::new(&labelled, incidents),
            thresholds: Thresholds::adapt(
                crate::streaming::DEFAULT_THRESHOLD,
                &labelled,
                &AdaptPolicy::default(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(series: &str, kind: &str, peak: f64, tp: bool) -> Labelled {
        Labelled {
            series: series.into(),
            kind: kind.into(),
            peak_score: peak,
            label: if tp {
                Label::TruePositive
            } else {
                Label::FalsePositive
            },
        }
    }

    #[test]
    fn rates_come_from_the_labels() {
        let labels = [
            l("a", "latency_spike", 0.9, true),
            l("a", "latency_spike", 0.6, false),
            l("b", "error_burst", 0.7, true),
            l("b", "error_burst", 0.55, true),
        ];
        let s = FeedbackStats::new(&labels, 10);
        assert_eq!(s.overall.true_positives, 3);
        assert_eq!(s.overall.precision, Some(0.75));
        assert_eq!(s.overall.false_alarm_rate, Some(0.25));
        assert_eq!(s.by_kind["latency_spike"].precision, Some(0.5));
        assert_eq!(s.unlabelled, 6);
        assert_eq!(FeedbackStats::new(&[], 3).overall.precision, None);
    }

    #[test]
    fn false_positives_raise_the_threshold_just_past_them() {
        let p = AdaptPolicy::default();
        let labels = [
            l("a", "k", 0.52, false),
            l("a", "k", 0.55, false),
            l("a", "k", 0.58, false),
            l("a", "k", 0.7, true),
            l("a", "k", 0.9, true),
        ];
        let refs: Vec<&Labelled> = labels.iter().collect();
        let t = adapt_threshold(0.5, &refs, &p);
        assert!(t > 0.58 && t < 0.7, "{t}");
        // Too few labels: unchanged.
        assert_eq!(adapt_threshold(0.5, &refs[..4], &p), 0.5);
        // All true: unchanged.
        let good: Vec<Labelled> = (0..6)
            .map(|i| l("a", "k", 0.5 + 0.05 * i as f64, true))
            .collect();
        let refs: Vec<&Labelled> = good.iter().collect();
        assert_eq!(adapt_threshold(0.5, &refs, &p), 0.5);
        // All false: capped.
        let bad: Vec<Labelled> = (0..6)
            .map(|i| l("a", "k", 0.6 + 0.07 * i as f64, false))
            .collect();
        let refs: Vec<&Labelled> = bad.iter().collect();
        assert_eq!(adapt_threshold(0.5, &refs, &p), p.max_threshold);
    }

    #[test]
    fn a_noisy_series_adapts_on_its_own_labels() {
        let mut labels: Vec<Labelled> = (0..5)
            .map(|i| l("noisy", "k", 0.6 + 0.01 * i as f64, false))
            .collect();
        labels.push(l("quiet", "k", 0.7, true));
        let t = Thresholds::adapt(0.5, &labels, &AdaptPolicy::default());
        assert!(t.for_series("noisy") > 0.64, "{t:?}");
        assert!(t.for_series("quiet") < t.for_series("noisy"));
        assert_eq!(Label::parse("FP"), Some(Label::FalsePositive));
        assert_eq!(Label::parse("true-positive"), Some(Label::TruePositive));
        assert_eq!(Label::parse("maybe"), None);
    }
}
