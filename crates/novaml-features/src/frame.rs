//! The feature table of one series.

use std::collections::VecDeque;

use chrono::{Datelike, TimeZone, Timelike, Utc};
use novaml_core::stats::quantile_sorted;
use serde::{Deserialize, Serialize};

use crate::FeatureError;
use crate::spectral::Spectrum;
use crate::stats::mean_std;

/// Which features to compute. Windows and lags count rows.
///
/// Rows without enough history for a feature get `NaN` there (the feature table keeps them, so
/// that rows line up with the input; a consumer drops or fills them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureConfig {
    /// Calendar features (UTC): hour, day of week, weekend flag, sin/cos of hour and weekday.
    pub calendar: bool,
    /// Trailing windows for rolling mean, std, min, max and quantiles (each ≥ 2).
    pub windows: Vec<usize>,
    /// Quantiles in `[0, 1]` over each window.
    pub quantiles: Vec<f64>,
    /// Trailing window of the z-score baseline (the row itself is excluded from it).
    pub zscore_window: usize,
    /// EWMA smoothing factors in `(0, 1]`.
    pub ewma_alphas: Vec<f64>,
    /// Lags (≥ 1).
    pub lags: Vec<usize>,
    /// Window of the FFT features (≥ 8; 0 turns them off).
    pub fft_window: usize,
    /// |z| above which a row counts as a spike, for `rows_since_spike`.
    pub spike_z: f64,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        // Tuned for 5-minute data: 1 h, 6 h and 1 day windows, lags up to a day.
        Self {
            calendar: true,
            windows: vec![12, 72, 288],
            quantiles: vec![0.05, 0.5, 0.95],
            zscore_window: 288,
            ewma_alphas: vec![0.1, 0.5],
            lags: vec![1, 2, 3, 12, 288],
            fft_window: 64,
            spike_z: 3.0,
        }
    }
}

impl FeatureConfig {
    /// Checks every invariant; [`build`] calls it.
    pub fn check(&self) -> Result<(), FeatureError> {
        let bad = |field, reason: String| Err(FeatureError::Config { field, reason });
        if let Some(w) = self.windows.iter().find(|&&w| w < 2) {
            return bad(
                "windows",
                format!("each window must be at least 2 rows, got {w}"),
            );
        }
        if let Some(q) = self.quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return bad("quantiles", format!("{q} is outside [0, 1]"));
        }
        if self.zscore_window != 0 && self.zscore_window < 2 {
            return bad("zscore_window", "must be 0 (off) or at least 2".into());
        }
        if let Some(a) = self.ewma_alphas.iter().find(|a| !(**a > 0.0 && **a <= 1.0)) {
            return bad("ewma_alphas", format!("{a} is outside (0, 1]"));
        }
        if self.lags.contains(&0) {
            return bad("lags", "lags start at 1".into());
        }
        if self.fft_window != 0 && self.fft_window < 8 {
            return bad("fft_window", "must be 0 (off) or at least 8".into());
        }
        if self.spike_z.is_nan() || self.spike_z <= 0.0 {
            return bad("spike_z", "must be positive".into());
        }
        Ok(())
    }
}

/// A table of features: one row per input row, one named column per feature.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureFrame {
    /// Row timestamps, ms.
    pub timestamps: Vec<i64>,
    /// Column names.
    pub names: Vec<String>,
    /// Columns, each `timestamps.len()` long.
    pub columns: Vec<Vec<f64>>,
}

impl FeatureFrame {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.timestamps.len()
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.columns[i].as_slice())
    }

    /// Row `i` as a vector over columns.
    pub fn row(&self, i: usize) -> Vec<f64> {
        self.columns.iter().map(|c| c[i]).collect()
    }

    fn push(&mut self, name: String, col: Vec<f64>) {
        self.names.push(name);
        self.columns.push(col);
    }
}

/// Computes the features of one series. `timestamps` must be strictly increasing (ms).
pub fn build(
    timestamps: &[i64],
    values: &[f64],
    cfg: &FeatureConfig,
) -> Result<FeatureFrame, FeatureError> {
    cfg.check()?;
    if timestamps.len() != values.len() {
        return Err(FeatureError::LengthMismatch {
            timestamps: timestamps.len(),
            values: values.len(),
        });
    }
    if let Some(row) = (1..timestamps.len()).find(|&i| timestamps[i] <= timestamps[i - 1]) {
        return Err(FeatureError::NotIncreasing { row });
    }
    let n = values.len();
    let mut f = FeatureFrame {
        timestamps: timestamps.to_vec(),
        ..FeatureFrame::default()
    };
    f.push("value".into(), values.to_vec());

    if cfg.calendar {
        calendar(&mut f, timestamps);
    }
    for &w in &cfg.windows {
        rolling(&mut f, values, w, &cfg.quantiles);
    }
    let z = if cfg.zscore_window > 0 {
        let z = zscore(values, cfg.zscore_window);
        f.push(format!("zscore_{}", cfg.zscore_window), z.clone());
        Some(z)
    } else {
        None
    };
    for &a in &cfg.ewma_alphas {
        let mut col = Vec::with_capacity(n);
        let mut s = f64::NAN;
        for &x in values {
            s = if s.is_nan() { x } else { a * x + (1.0 - a) * s };
            col.push(s);
        }
        f.push(format!("ewma_{a}"), col);
    }
    f.push(
        "diff_1".into(),
        (0..n)
            .map(|i| {
                if i == 0 {
                    f64::NAN
                } else {
                    values[i] - values[i - 1]
                }
            })
            .collect(),
    );
    f.push(
        "pct_change_1".into(),
        (0..n)
            .map(|i| {
                if i == 0 || values[i - 1] == 0.0 {
                    f64::NAN
                } else {
                    values[i] / values[i - 1] - 1.0
                }
            })
            .collect(),
    );
    for &l in &cfg.lags {
        f.push(
            format!("lag_{l}"),
            (0..n)
                .map(|i| if i >= l { values[i - l] } else { f64::NAN })
                .collect(),
        );
    }
    if cfg.fft_window > 0 {
        spectral(&mut f, values, cfg.fft_window);
    }
    if let Some(z) = z {
        // Rows since the latest spike at or before this row; before the first spike, rows since
        // the first row (the longest run we have seen without one).
        let mut last: Option<usize> = None;
        let col = (0..n)
            .map(|i| {
                if z[i].abs() > cfg.spike_z {
                    last = Some(i);
                }
                (i - last.unwrap_or(0)) as f64
            })
            .collect();
        f.push("rows_since_spike".into(), col);
    }
    Ok(f)
}

fn calendar(f: &mut FeatureFrame, ts: &[i64]) {
    for (name, col) in calendar_columns(ts) {
        f.push(name.into(), col);
    }
}

/// The calendar columns of UTC timestamps (ms): `hour`, `day_of_week` (0 = Monday),
/// `is_weekend`, and the daily and weekly phases as `hour_sin`, `hour_cos`, `dow_sin`,
/// `dow_cos` (from the fractional hour, so sub-hourly data gets a smooth phase). `NaN` where a
/// timestamp is out of chrono's range.
pub fn calendar_columns(ts: &[i64]) -> [(&'static str, Vec<f64>); 7] {
    let (mut hour, mut dow, mut weekend, mut hs, mut hc, mut ds, mut dc) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for &t in ts {
        let Some(dt) = Utc.timestamp_millis_opt(t).single() else {
            for c in [
                &mut hour,
                &mut dow,
                &mut weekend,
                &mut hs,
                &mut hc,
                &mut ds,
                &mut dc,
            ] {
                c.push(f64::NAN);
            }
            continue;
        };
        // Fractional hour, so sub-hourly data gets a smooth daily phase.
        let h =
            f64::from(dt.hour()) + f64::from(dt.minute()) / 60.0 + f64::from(dt.second()) / 3600.0;
        let d = f64::from(dt.weekday().num_days_from_monday());
        hour.push(f64::from(dt.hour()));
        dow.push(d);
        weekend.push(if d >= 5.0 { 1.0 } else { 0.0 });
        let ph = std::f64::consts::TAU * h / 24.0;
        let pd = std::f64::consts::TAU * (d + h / 24.0) / 7.0;
        hs.push(ph.sin());
        hc.push(ph.cos());
        ds.push(pd.sin());
        dc.push(pd.cos());
    }
    [
        ("hour", hour),
        ("day_of_week", dow),
        ("is_weekend", weekend),
        ("hour_sin", hs),
        ("hour_cos", hc),
        ("dow_sin", ds),
        ("dow_cos", dc),
    ]
}

/// Rolling mean, sample std, min, max and quantiles over the trailing `w` rows including the
/// current one. The window is kept sorted (binary-search insert and remove): O(n·w) moves at
/// worst, exact, and quantiles come for free.
fn rolling(f: &mut FeatureFrame, values: &[f64], w: usize, quantiles: &[f64]) {
    let n = values.len();
    let mut mean = vec![f64::NAN; n];
    let mut std = vec![f64::NAN; n];
    let mut min = vec![f64::NAN; n];
    let mut max = vec![f64::NAN; n];
    let mut qs = vec![vec![f64::NAN; n]; quantiles.len()];
    let mut sorted: Vec<f64> = Vec::with_capacity(w + 1);
    let mut window: VecDeque<f64> = VecDeque::with_capacity(w + 1);
    for i in 0..n {
        let x = values[i];
        window.push_back(x);
        let pos = sorted.partition_point(|v| v.total_cmp(&x).is_lt());
        sorted.insert(pos, x);
        if window.len() > w
            && let Some(old) = window.pop_front()
        {
            let pos = sorted.partition_point(|v| v.total_cmp(&old).is_lt());
            sorted.remove(pos);
        }
        if window.len() == w {
            let (m, s) = mean_std(window.make_contiguous());
            mean[i] = m;
            std[i] = s;
            min[i] = sorted[0];
            max[i] = sorted[w - 1];
            for (col, &q) in qs.iter_mut().zip(quantiles) {
                col[i] = quantile_sorted(&sorted, q);
            }
        }
    }
    f.push(format!("mean_{w}"), mean);
    f.push(format!("std_{w}"), std);
    f.push(format!("min_{w}"), min);
    f.push(format!("max_{w}"), max);
    for (col, q) in qs.into_iter().zip(quantiles) {
        f.push(format!("q{}_{w}", (q * 100.0).round()), col);
    }
}

/// `(x_t − mean) / std` of the `w` rows before `t` (not including it, so a spike does not dilute
/// its own baseline). `NaN` until `w` rows of history exist; 0 when the baseline is flat and the
/// value equals it, ±∞ is avoided by a floor on std of 1e-9 × scale.
fn zscore(values: &[f64], w: usize) -> Vec<f64> {
    (0..values.len())
        .map(|i| {
            if i < w {
                return f64::NAN;
            }
            let (m, s) = mean_std(&values[i - w..i]);
            let floor = 1e-9 * m.abs().max(1.0);
            (values[i] - m) / s.max(floor)
        })
        .collect()
}

fn spectral(f: &mut FeatureFrame, values: &[f64], w: usize) {
    let n = values.len();
    let mut spectrum = Spectrum::new(w);
    let mut cols = vec![vec![f64::NAN; n]; 5];
    for i in (w - 1)..n {
        let s = spectrum.features(&values[i + 1 - w..=i]);
        for (c, v) in cols.iter_mut().zip([
            s.dominant_period,
            s.entropy,
            s.band_low,
            s.band_mid,
            s.band_high,
        ]) {
            c[i] = v;
        }
    }
    for (name, col) in [
        "fft_dominant_period",
        "fft_entropy",
        "fft_band_low",
        "fft_band_mid",
        "fft_band_high",
    ]
    .into_iter()
    .zip(cols)
    {
        f.push(format!("{name}_{w}"), col);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> FeatureConfig {
        FeatureConfig {
            calendar: true,
            windows: vec![3],
            quantiles: vec![0.5],
            zscore_window: 3,
            ewma_alphas: vec![0.5],
            lags: vec![1, 2],
            fft_window: 8,
            spike_z: 3.0,
        }
    }

    #[test]
    fn hand_computed_values() {
        // 2024-01-06 is a Saturday; rows every 6 hours from 00:00 UTC.
        let t0 = 1_704_499_200_000;
        let ts: Vec<i64> = (0..5).map(|i| t0 + i * 6 * 3_600_000).collect();
        let v = [1.0, 2.0, 4.0, 8.0, 100.0];
        let f = build(&ts, &v, &small()).expect("features");
        let col = |n: &str| f.column(n).unwrap_or_else(|| panic!("column {n}")).to_vec();
        let close = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x.is_nan() && y.is_nan()) || (x - y).abs() < 1e-9)
        };
        let nan = f64::NAN;
        assert!(close(
            &col("mean_3"),
            &[nan, nan, 7.0 / 3.0, 14.0 / 3.0, 112.0 / 3.0]
        ));
        // sample std of [1,2,4] = sqrt(((4/3)^2 + (1/3)^2 + (5/3)^2)/2) = sqrt(7/3)
        assert!(close(&col("std_3")[2..3], &[(7.0f64 / 3.0).sqrt()]));
        assert!(close(&col("min_3"), &[nan, nan, 1.0, 2.0, 4.0]));
        assert!(close(&col("max_3"), &[nan, nan, 4.0, 8.0, 100.0]));
        assert!(close(&col("q50_3"), &[nan, nan, 2.0, 4.0, 8.0]));
        assert!(close(&col("ewma_0.5"), &[1.0, 1.5, 2.75, 5.375, 52.6875]));
        assert!(close(&col("diff_1"), &[nan, 1.0, 2.0, 4.0, 92.0]));
        assert!(close(&col("pct_change_1"), &[nan, 1.0, 1.0, 1.0, 11.5]));
        assert!(close(&col("lag_2"), &[nan, nan, 1.0, 2.0, 4.0]));
        // z of 8 against [1,2,4]: (8 − 7/3)/sqrt(7/3)
        assert!(close(
            &col("zscore_3")[3..4],
            &[(8.0 - 7.0 / 3.0) / (7.0f64 / 3.0).sqrt()]
        ));
        assert!(close(&col("hour"), &[0.0, 6.0, 12.0, 18.0, 0.0]));
        assert!(close(&col("day_of_week"), &[5.0, 5.0, 5.0, 5.0, 6.0]));
        assert!(close(&col("is_weekend"), &[1.0; 5]));
        assert!(close(&col("hour_sin"), &[0.0, 1.0, 0.0, -1.0, 0.0]));
        // 8 is a spike against [1,2,4] (z ≈ 3.7) and 100 against [2,4,8] (z ≈ 31)
        assert_eq!(col("rows_since_spike"), vec![0.0, 1.0, 2.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_input_is_rejected() {
        assert_eq!(
            build(&[1, 2], &[1.0], &small()),
            Err(FeatureError::LengthMismatch {
                timestamps: 2,
                values: 1
            })
        );
        assert_eq!(
            build(&[1, 3, 2], &[1.0; 3], &small()),
            Err(FeatureError::NotIncreasing { row: 2 })
        );
        assert_eq!(
            build(&[1, 1], &[1.0; 2], &small()),
            Err(FeatureError::NotIncreasing { row: 1 })
        );
    }

    #[test]
    fn each_invariant_of_the_config_is_checked() {
        type Mutation = fn(&mut FeatureConfig);
        let cases: [(&str, Mutation); 7] = [
            ("windows", |c| c.windows = vec![1]),
            ("quantiles", |c| c.quantiles = vec![1.5]),
            ("zscore_window", |c| c.zscore_window = 1),
            ("ewma_alphas", |c| c.ewma_alphas = vec![0.0]),
            ("lags", |c| c.lags = vec![0]),
            ("fft_window", |c| c.fft_window = 4),
            ("spike_z", |c| c.spike_z = f64::NAN),
        ];
        for (field, mutate) in cases {
            let mut c = FeatureConfig::default();
            mutate(&mut c);
            match c.check() {
                Err(FeatureError::Config { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(FeatureConfig::default().check().is_ok());
    }

    #[test]
    fn constant_series_gives_finite_zscores() {
        let ts: Vec<i64> = (0..20).collect();
        let f = build(&ts, &[5.0; 20], &small()).expect("features");
        assert!(
            f.column("zscore_3").expect("z")[3..]
                .iter()
                .all(|z| *z == 0.0)
        );
    }
}
