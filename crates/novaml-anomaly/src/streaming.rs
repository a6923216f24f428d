//! A streaming detector for one series, with no look-ahead.
//!
//! At each row it measures how unusual the value and its change are against a trailing robust
//! baseline (median and MAD of the previous `baseline_window` rows, so one outlier does not move
//! it), averages that deviation over the last `short_window` rows, and scores the average by how
//! far it lies in the upper tail of its own history (`history_window` rows): the *anomaly
//! likelihood* of Numenta's detectors, applied to a deviation instead of an HTM prediction error.
//! The score is `−log10` of the tail probability scaled into `[0, 1]` (1 at 10⁻¹²), so scores
//! stay distinct far into the tail and one threshold means the same on every series.
//!
//! Complexity: O(`baseline_window`) per row. Memory: O(`baseline_window` + `history_window`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::AnomalyError;

/// The default operating point: a score at or above this is an anomaly. Scores are
/// `−log10(tail probability)/12`, so 0.5 means a deviation with a tail probability of 10⁻⁶ (or a
/// new extreme, which scores 1).
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// Hyperparameters (unchecked). Build with [`StreamingParams::default`] and the setters, then
/// [`StreamingParams::check`] into [`ValidStreamingParams`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingParams {
    baseline_window: usize,
    short_window: usize,
    history_window: usize,
    min_history: usize,
    suppress: usize,
    spatial_tolerance: f64,
    seasonal: bool,
}

impl Default for StreamingParams {
    fn default() -> Self {
        // Chosen by a small grid on NAB's dev corpus (`novaml eval nab --params`), the same for
        // every series, from the middle of a plateau (neighbours within 1 point): 1,000-row
        // robust baseline, 2-row average, 2,000-row likelihood history, 30-row suppression, new
        // extremes beyond 5 % of the seen range, seasonal differences.
        Self {
            baseline_window: 1_000,
            short_window: 2,
            history_window: 2_000,
            min_history: 40,
            suppress: 30,
            spatial_tolerance: 0.05,
            seasonal: true,
        }
    }
}

/// Checked hyperparameters; only these reach the detector.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidStreamingParams(StreamingParams);

impl StreamingParams {
    /// Rows of the robust baseline (≥ 8).
    pub fn baseline_window(mut self, n: usize) -> Self {
        self.baseline_window = n;
        self
    }

    /// Rows averaged before the likelihood (≥ 1).
    pub fn short_window(mut self, n: usize) -> Self {
        self.short_window = n;
        self
    }

    /// Rows of deviation history the likelihood compares against (≥ 10).
    pub fn history_window(mut self, n: usize) -> Self {
        self.history_window = n;
        self
    }

    /// Rows seen before any score above 0 (≥ 8 and ≤ `history_window`).
    pub fn min_history(mut self, n: usize) -> Self {
        self.min_history = n;
        self
    }

    /// Rows after a score during which only a higher score is reported (0: off). An anomaly
    /// usually lasts several rows; reporting its rising edge only keeps one event one alert.
    pub fn suppress(mut self, n: usize) -> Self {
        self.suppress = n;
        self
    }

    /// A value beyond everything seen so far by more than this share of the seen range scores 1
    /// (0: off). A new extreme is the plainest anomaly there is.
    pub fn spatial_tolerance(mut self, t: f64) -> Self {
        self.spatial_tolerance = t;
        self
    }

    /// Also score the change against one season ago (`x_t − x_{t−P}`), with the period `P`
    /// re-estimated from the autocorrelation of recent values: catches a changed daily shape
    /// that stays within the usual range.
    pub fn seasonal(mut self, on: bool) -> Self {
        self.seasonal = on;
        self
    }

    /// Checks every invariant.
    pub fn check(self) -> Result<ValidStreamingParams, AnomalyError> {
        let bad = |name, reason: &str| {
            Err(AnomalyError::InvalidParam {
                name,
                reason: reason.into(),
            })
        };
        if self.baseline_window < 8 {
            return bad("baseline_window", "must be at least 8");
        }
        if self.short_window == 0 {
            return bad("short_window", "must be at least 1");
        }
        if self.history_window < 10 {
            return bad("history_window", "must be at least 10");
        }
        if self.min_history < 8 || self.min_history > self.history_window {
            return bad("min_history", "must be in 8..=history_window");
        }
        if !(0.0..=10.0).contains(&self.spatial_tolerance) {
            return bad("spatial_tolerance", "must be in [0, 10]");
        }
        Ok(ValidStreamingParams(self))
    }
}

/// A sorted window supporting insert/remove and median/MAD.
#[derive(Debug, Clone, Default)]
struct SortedWindow {
    order: VecDeque<f64>,
    sorted: Vec<f64>,
    cap: usize,
}

impl SortedWindow {
    fn new(cap: usize) -> Self {
        Self {
            order: VecDeque::with_capacity(cap + 1),
            sorted: Vec::with_capacity(cap + 1),
            cap,
        }
    }

    fn push(&mut self, x: f64) {
        self.order.push_back(x);
        let i = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(i, x);
        if self.order.len() > self.cap
            && let Some(old) = self.order.pop_front()
        {
            let i = self.sorted.partition_point(|v| *v < old);
            self.sorted.remove(i);
        }
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }

    fn median(&self) -> f64 {
        let n = self.sorted.len();
        if n % 2 == 1 {
            self.sorted[n / 2]
        } else {
            0.5 * (self.sorted[n / 2 - 1] + self.sorted[n / 2])
        }
    }

    /// Median absolute deviation from the median `m`, without copying: the deviations left
    /// and right of `m` are two sorted runs, merged up to the middle one (the element at index
    /// `n/2` of the sorted deviations).
    fn mad(&self, m: f64) -> f64 {
        let s = &self.sorted;
        let n = s.len();
        let split = s.partition_point(|v| *v < m);
        // Left run: m − s[split−1], m − s[split−2], …; right run: s[split] − m, s[split+1] − m, …
        let (mut l, mut r) = (split, split);
        let mut current = 0.0;
        for _ in 0..=n / 2 {
            let take_left = match (l > 0, r < n) {
                (true, true) => m - s[l - 1] <= s[r] - m,
                (true, false) => true,
                (false, _) => false,
            };
            if take_left {
                l -= 1;
                current = m - s[l];
            } else {
                current = s[r] - m;
                r += 1;
            }
        }
        current
    }
}

/// The fitted streaming state of one series.
#[derive(Debug, Clone)]
pub struct StreamingDetector {
    p: StreamingParams,
    values: SortedWindow,
    diffs: SortedWindow,
    last: Option<f64>,
    recent: VecDeque<f64>,
    history: VecDeque<f64>,
    /// Running sums over `history` for its mean and variance.
    sum: f64,
    sum_sq: f64,
    seen: usize,
    /// Recent likelihood scores, for suppression.
    emitted: VecDeque<f64>,
    /// Range of every value seen.
    min: f64,
    max: f64,
    last_likelihood: f64,
    last_baseline: f64,
    /// Recent values (for the season), newest last.
    past: VecDeque<f64>,
    period: Option<usize>,
    seasonal_diffs: SortedWindow,
}

/// Longest season looked for, in rows (a week of hourly data, 3.5 days of 5-minute data).
const MAX_PERIOD: usize = 1_008;
/// Values kept for period estimation.
const PERIOD_HISTORY: usize = 2 * MAX_PERIOD + 16;
/// A row whose deviation `ln(1 + z)` exceeds this (z ≈ 20 robust deviations) is not
/// remembered as the seasonal reference.
const ANOMALOUS_RAW: f64 = 3.0;
/// Rows between period estimates.
const PERIOD_EVERY: usize = 512;

/// The lag in `2..=max_lag` with the highest autocorrelation, if it exceeds 0.3 and is a local
/// peak (so a slowly varying series does not report lag 2).
fn estimate_period(x: &VecDeque<f64>, max_lag: usize) -> Option<usize> {
    let n = x.len();
    if n < 64 {
        return None;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let v: Vec<f64> = x.iter().map(|a| a - mean).collect();
    let var: f64 = v.iter().map(|a| a * a).sum();
    if var <= 0.0 {
        return None;
    }
    let max_lag = max_lag.min(n / 2);
    let acf: Vec<f64> = (0..=max_lag)
        .map(|l| {
            v[..n - l]
                .iter()
                .zip(&v[l..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / var
        })
        .collect();
    (2..max_lag)
        .filter(|&l| acf[l] > acf[l - 1] && acf[l] >= acf[l + 1] && acf[l] > 0.3)
        .max_by(|&a, &b| acf[a].total_cmp(&acf[b]))
}

/// Robust z: deviation in MADs, with a floor so a flat baseline does not divide by zero (any
/// change from a constant is then a large, finite deviation).
fn robust_z(x: f64, w: &SortedWindow) -> f64 {
    let m = w.median();
    let mad = w.mad(m);
    let floor = 1e-3
        * (w.sorted[w.len() - 1] - w.sorted[0])
            .abs()
            .max(1e-6 * m.abs())
            .max(1e-9);
    (x - m).abs() / (1.4826 * mad).max(floor)
}

impl StreamingDetector {
    /// A detector with checked parameters.
    pub fn new(params: ValidStreamingParams) -> Self {
        let p = params.0;
        Self {
            values: SortedWindow::new(p.baseline_window),
            diffs: SortedWindow::new(p.baseline_window),
            last: None,
            recent: VecDeque::with_capacity(p.short_window + 1),
            history: VecDeque::with_capacity(p.history_window + 1),
            sum: 0.0,
            sum_sq: 0.0,
            seen: 0,
            emitted: VecDeque::new(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            last_likelihood: 0.0,
            last_baseline: 0.0,
            past: VecDeque::with_capacity(PERIOD_HISTORY + 1),
            period: None,
            seasonal_diffs: SortedWindow::new(p.baseline_window),
            p,
        }
    }

    /// Scores the next value (rows in time order) and learns from it. Non-finite values score
    /// 0 and are not learned (a gap is not evidence).
    pub fn update(&mut self, x: f64) -> f64 {
        if !x.is_finite() {
            return 0.0;
        }
        let diff = self.last.map(|l| x - l);
        let range = self.max - self.min;
        let tol = self.p.spatial_tolerance * range;
        let new_extreme = self.p.spatial_tolerance > 0.0
            // A young series reaches new extremes as a matter of course: wait for a quarter
            // of a baseline of history.
            && self.seen >= self.p.min_history.max(self.p.baseline_window / 4)
            && range > 0.0
            && (x > self.max + tol || x < self.min - tol);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        // Deviation of this row against the baseline of earlier rows only.
        self.last_baseline = if self.values.len() > 0 {
            self.values.median()
        } else {
            x
        };
        let raw = if self.values.len() >= 8 {
            let zv = robust_z(x, &self.values);
            let zd = match diff {
                Some(d) if self.diffs.len() >= 8 => robust_z(d, &self.diffs),
                _ => 0.0,
            };
            // With a known season the deviation from the same phase one season ago replaces both:
            // seasonal values are multi-modal (a median/MAD baseline calls every peak abnormal)
            // and a change at the usual phase is normal.
            match self.seasonal_diff(x) {
                Some(sd) if self.seasonal_diffs.len() >= 8 => robust_z(sd, &self.seasonal_diffs),
                _ => zv.max(zd),
            }
            .ln_1p()
        } else {
            0.0
        };
        if self.p.seasonal {
            if let Some(sd) = self.seasonal_diff(x) {
                self.seasonal_diffs.push(sd);
            }
            // An anomalous value would come back as an anomaly one season later (comparing
            // against it): remember the expected value instead.
            let remembered = match self.seasonal_diff(x) {
                Some(_) if raw > ANOMALOUS_RAW => {
                    self.past[self.past.len() - self.period.unwrap_or(1)]
                }
                _ => x,
            };
            self.past.push_back(remembered);
            if self.past.len() > PERIOD_HISTORY {
                self.past.pop_front();
            }
            if self.seen % PERIOD_EVERY == PERIOD_EVERY - 1 {
                let p = estimate_period(&self.past, MAX_PERIOD);
                if p != self.period {
                    // A new season makes old seasonal differences meaningless, and the deviations
                    // measured without it (every seasonal jump looked abnormal) a wrong history
                    // for the likelihood.
                    self.seasonal_diffs = SortedWindow::new(self.p.baseline_window);
                    self.period = p;
                    self.history.clear();
                    self.sum = 0.0;
                    self.sum_sq = 0.0;
                }
            }
        }
        self.values.push(x);
        if let Some(d) = diff {
            self.diffs.push(d);
        }
        self.last = Some(x);
        self.seen += 1;

        self.recent.push_back(raw);
        if self.recent.len() > self.p.short_window {
            self.recent.pop_front();
        }
        let avg = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        let score = if self.history.len() >= self.p.min_history {
            let n = self.history.len() as f64;
            let mean = self.sum / n;
            let var = (self.sum_sq / n - mean * mean).max(0.0);
            let sd = var.sqrt().max(1e-6);
            let z = (avg - mean) / sd;
            // Upper-tail probability Q(z) = erfc(z/√2)/2, scored as −log10 Q / 12 in [0, 1].
            let q = 0.5 * libm::erfc(z / std::f64::consts::SQRT_2);
            (-(q.max(1e-300)).log10() / 12.0).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let score = if new_extreme { 1.0 } else { score };
        self.last_likelihood = score;
        self.history.push_back(avg);
        self.sum += avg;
        self.sum_sq += avg * avg;
        if self.history.len() > self.p.history_window
            && let Some(old) = self.history.pop_front()
        {
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        if self.p.suppress == 0 {
            return score;
        }
        // Only a rise above everything scored in the last `suppress` rows is reported.
        let prior = self.emitted.iter().copied().fold(0.0, f64::max);
        self.emitted.push_back(score);
        if self.emitted.len() > self.p.suppress {
            self.emitted.pop_front();
        }
        if score > prior { score } else { 0.0 }
    }

    /// The score of the last row before suppression: how abnormal it is, even when it only
    /// continues an anomaly already reported.
    pub fn likelihood(&self) -> f64 {
        self.last_likelihood
    }

    /// The median of the trailing baseline the last row was compared with.
    pub fn baseline(&self) -> f64 {
        self.last_baseline
    }

    /// `x − (value one period ago)`, when a period is known and that far back is kept.
    fn seasonal_diff(&self, x: f64) -> Option<f64> {
        let p = self.period?;
        let n = self.past.len();
        (n >= p).then(|| x - self.past[n - p])
    }

    /// Scores a whole series in order (streaming, as [`Self::update`] row by row).
    pub fn score_series(params: ValidStreamingParams, values: &[f64]) -> Vec<f64> {
        let mut d = Self::new(params);
        values.iter().map(|&x| d.update(x)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_invariant_is_checked() {
        let cases: [(&str, StreamingParams); 5] = [
            (
                "baseline_window",
                StreamingParams::default().baseline_window(3),
            ),
            ("short_window", StreamingParams::default().short_window(0)),
            (
                "history_window",
                StreamingParams::default().history_window(5),
            ),
            ("min_history", StreamingParams::default().min_history(2)),
            (
                "min_history",
                StreamingParams::default()
                    .history_window(20)
                    .min_history(30),
            ),
        ];
        for (name, p) in cases {
            match p.check() {
                Err(AnomalyError::InvalidParam { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_spike_scores_high_noise_scores_low_and_nothing_looks_ahead() {
        let mut v = novaml_testing::generators::seasonal(3, 1_000, 100, 0.5);
        v[800] += 30.0;
        let params = || StreamingParams::default().check().expect("valid");
        let s = StreamingDetector::score_series(params(), &v);
        assert!(s.iter().all(|x| (0.0..=1.0).contains(x)));
        let max_normal = s[100..790].iter().copied().fold(0.0, f64::max);
        assert!(
            s[800] > 0.3 && s[800] > 3.0 * max_normal,
            "spike {} vs normal max {max_normal}",
            s[800]
        );
        // Streaming: the score of row 800 does not change when later rows are removed.
        let prefix = StreamingDetector::score_series(params(), &v[..=800]);
        assert_eq!(prefix[800], s[800]);
    }

    #[test]
    fn constant_and_gappy_series_are_neutral_not_errors() {
        let p = || StreamingParams::default().check().expect("valid");
        assert!(
            StreamingDetector::score_series(p(), &[5.0; 500])
                .iter()
                .all(|s| *s == 0.0 || s.is_finite())
        );
        let mut v = vec![1.0; 300];
        v[150] = f64::NAN;
        let s = StreamingDetector::score_series(p(), &v);
        assert_eq!(s[150], 0.0);
        assert!(s.iter().all(|x| x.is_finite()));
    }
}
