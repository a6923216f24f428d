//! Supervised datasets: from a regular series (target plus covariates) to scaled input windows
//! and labels, a chronological split, and scalers fit on the training rows only.
//!
//! Each time step of a window holds: the target; the target one season earlier shifted so that
//! the window's last `horizon` rows show the seasonal-naive values of the horizons to predict
//! (`y[r + H − P]`); the covariates; and the calendar phase (hour and weekday as sin/cos, from
//! [`calendar_columns`]). Labels are the true future values `y[o + h]`, stored as the change from
//! the last observed value `y[o]` in units of the target's training standard deviation, so a
//! model refines the naive forecast instead of re-learning the level. Missing values are `NaN`: a
//! window or label that touches one is left out. Every model of `novaml-predict` learns from
//! these windows.

use serde::{Deserialize, Serialize};

use crate::FeatureError;
use crate::frame::calendar_columns;
use crate::grid::{bucket_mean, bucket_mean_on};

/// A series on a regular grid: `target[i]` is at `start_ms + i·step_ms`; `NaN` marks a gap.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesFrame {
    /// Timestamp of row 0, ms.
    pub start_ms: i64,
    /// Grid step, ms.
    pub step_ms: i64,
    /// The metric to predict.
    pub target: Vec<f64>,
    /// Other metrics of the same entity, same length as `target`.
    pub covariates: Vec<(String, Vec<f64>)>,
}

impl SeriesFrame {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.target.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.target.is_empty()
    }

    /// Timestamp of row `i`, ms.
    pub fn ts(&self, i: usize) -> i64 {
        self.start_ms + i as i64 * self.step_ms
    }

    /// The first `n` rows.
    pub fn head(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self {
            start_ms: self.start_ms,
            step_ms: self.step_ms,
            target: self.target[..n].to_vec(),
            covariates: self
                .covariates
                .iter()
                .map(|(k, v)| (k.clone(), v[..n].to_vec()))
                .collect(),
        }
    }

    /// Puts irregular `(ms, value)` points on a grid of `step_ms` by the mean of each bucket;
    /// empty buckets stay `NaN`. Covariates are gridded onto the target's range.
    pub fn from_points(
        target: &[(i64, f64)],
        covariates: &[(String, Vec<(i64, f64)>)],
        step_ms: i64,
    ) -> Result<Self, FeatureError> {
        let (start, target) = bucket_mean(target, step_ms).map_err(|e| match e {
            FeatureError::Data(_) => FeatureError::Data("the target has no finite values".into()),
            other => other,
        })?;
        let n = target.len();
        Ok(Self {
            start_ms: start,
            step_ms,
            covariates: covariates
                .iter()
                .map(|(k, pts)| (k.clone(), bucket_mean_on(pts, start, step_ms, n)))
                .collect(),
            target,
        })
    }
}

/// How windows are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Rows per input window.
    pub lookback: usize,
    /// Steps to predict (direct multi-horizon: one output per step).
    pub horizon: usize,
    /// Season length in rows for the seasonal input (288 = one day of 5-minute rows; 0 = off).
    pub season: usize,
    /// Calendar phase inputs.
    pub calendar: bool,
    /// Covariate names to use as inputs (must be present in the frame).
    pub covariates: Vec<String>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            lookback: 48,
            horizon: 12,
            season: 288,
            calendar: true,
            covariates: Vec::new(),
        }
    }
}

impl DataConfig {
    /// Checks the values.
    pub fn check(&self) -> Result<(), FeatureError> {
        if self.lookback == 0 {
            return Err(FeatureError::config("lookback", "must be at least 1"));
        }
        if self.horizon == 0 {
            return Err(FeatureError::config("horizon", "must be at least 1"));
        }
        if self.season != 0 && self.season < self.horizon {
            return Err(FeatureError::config(
                "season",
                format!(
                    "{} is shorter than the horizon {} (0 turns it off)",
                    self.season, self.horizon
                ),
            ));
        }
        if self.horizon > self.lookback && self.season > 0 {
            return Err(FeatureError::config(
                "lookback",
                format!(
                    "{} must be at least the horizon {} for the seasonal input",
                    self.lookback, self.horizon
                ),
            ));
        }
        Ok(())
    }

    /// Rows of history the first window needs before its origin (inclusive).
    pub fn history(&self) -> usize {
        self.lookback + self.season.saturating_sub(self.horizon)
    }

    /// Names of the per-step inputs, in order.
    pub fn input_names(&self) -> Vec<String> {
        let mut v = vec!["target".to_owned()];
        if self.season > 0 {
            v.push(format!("target_lag{}", self.season - self.horizon));
        }
        v.extend(self.covariates.iter().cloned());
        if self.calendar {
            v.extend(["hour_sin", "hour_cos", "dow_sin", "dow_cos"].map(String::from));
        }
        v
    }
}

/// Mean and standard deviation of one input column, from the training rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    /// Mean.
    pub mean: f64,
    /// Standard deviation (1 where the column is constant).
    pub std: f64,
}

/// The scalers of every input, fit on the training rows only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scalers {
    /// The target's (also used for its seasonal input and the labels).
    pub target: Scale,
    /// One per covariate, in [`DataConfig::covariates`] order.
    pub covariates: Vec<Scale>,
}

fn scale_of(v: &[f64]) -> Option<Scale> {
    let (mut n, mut s, mut ss) = (0usize, 0.0, 0.0);
    for &x in v.iter().filter(|x| x.is_finite()) {
        n += 1;
        s += x;
        ss += x * x;
    }
    if n == 0 {
        return None;
    }
    let mean = s / n as f64;
    let var = (ss / n as f64 - mean * mean).max(0.0);
    Some(Scale {
        mean,
        std: var.sqrt(),
    })
}

impl Scalers {
    /// Fits on rows `..rows` of the frame. Errors when the target is constant or empty there.
    pub fn fit(frame: &SeriesFrame, cfg: &DataConfig, rows: usize) -> Result<Self, FeatureError> {
        let rows = rows.min(frame.len());
        let target = scale_of(&frame.target[..rows]).ok_or_else(|| {
            FeatureError::Data("the target has no finite values in the training part".into())
        })?;
        let spread = target.std / target.mean.abs().max(1e-12);
        if target.std == 0.0 || spread < 1e-9 {
            return Err(FeatureError::Data(format!(
                "the target is constant ({}) in the training part: nothing to learn",
                target.mean
            )));
        }
        let mut covariates = Vec::new();
        for name in &cfg.covariates {
            let col = covariate(frame, name)?;
            let mut s = scale_of(&col[..rows]).ok_or_else(|| {
                FeatureError::Data(format!(
                    "covariate {name:?} has no finite values in the training part"
                ))
            })?;
            if s.std == 0.0 {
                s.std = 1.0;
            }
            covariates.push(s);
        }
        Ok(Self { target, covariates })
    }
}

fn covariate<'a>(frame: &'a SeriesFrame, name: &str) -> Result<&'a [f64], FeatureError> {
    frame
        .covariates
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
        .ok_or_else(|| {
            let have: Vec<&str> = frame.covariates.iter().map(|(k, _)| k.as_str()).collect();
            FeatureError::Data(format!(
                "covariate {name:?} is not in the data (have: {})",
                if have.is_empty() {
                    "none".to_owned()
                } else {
                    have.join(", ")
                }
            ))
        })
}

/// The scaled per-row inputs of a frame: `[rows][features]`, `NaN` where unknown.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// Features per row.
    pub features: usize,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// Computes the scaled input table of the whole frame.
pub fn inputs(
    frame: &SeriesFrame,
    cfg: &DataConfig,
    scalers: &Scalers,
) -> Result<Inputs, FeatureError> {
    cfg.check()?;
    let n = frame.len();
    let f_n = cfg.input_names().len();
    let mut values = vec![f32::NAN; n * f_n];
    let t = scalers.target;
    let sc = |x: f64, s: Scale| ((x - s.mean) / s.std) as f32;
    let mut cols: Vec<Vec<f32>> = Vec::with_capacity(f_n);
    cols.push(frame.target.iter().map(|&x| sc(x, t)).collect());
    if cfg.season > 0 {
        let lag = cfg.season - cfg.horizon;
        cols.push(
            (0..n)
                .map(|i| {
                    if i >= lag {
                        sc(frame.target[i - lag], t)
                    } else {
                        f32::NAN
                    }
                })
                .collect(),
        );
    }
    for (name, s) in cfg.covariates.iter().zip(&scalers.covariates) {
        let col = covariate(frame, name)?;
        if col.len() != n {
            return Err(FeatureError::Data(format!(
                "covariate {name:?} has {} rows, the target {n}",
                col.len()
            )));
        }
        cols.push(col.iter().map(|&x| sc(x, *s)).collect());
    }
    if cfg.calendar {
        let ts: Vec<i64> = (0..n).map(|i| frame.ts(i)).collect();
        for (name, col) in calendar_columns(&ts) {
            if matches!(name, "hour_sin" | "hour_cos" | "dow_sin" | "dow_cos") {
                cols.push(col.iter().map(|&x| x as f32).collect());
            }
        }
    }
    for (j, col) in cols.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            values[i * f_n + j] = *v;
        }
    }
    Ok(Inputs {
        features: f_n,
        values,
    })
}

/// Supervised windows: sample-major inputs `[N][lookback][features]`, scaled labels `[N][H]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Windows {
    /// Rows per window.
    pub steps: usize,
    /// Features per row.
    pub features: usize,
    /// Horizons.
    pub horizon: usize,
    /// Inputs, `[N][steps][features]`.
    pub x: Vec<f32>,
    /// Labels: `(y[o+h] − y[o]) / σ_target`, `[N][horizon]`.
    pub y: Vec<f32>,
    /// The origin row of each window.
    pub origins: Vec<usize>,
}

impl Windows {
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }
}

/// The windows whose origin lies in `origins` (row indices), skipping any that touch a gap.
/// With `labels` false, windows need no future (inference) and `y` is empty.
pub fn windows(
    frame: &SeriesFrame,
    cfg: &DataConfig,
    scalers: &Scalers,
    table: &Inputs,
    origins: std::ops::Range<usize>,
    labels: bool,
) -> Windows {
    let (l, h, f_n) = (cfg.lookback, cfg.horizon, table.features);
    let n = frame.len();
    let mut w = Windows {
        steps: l,
        features: f_n,
        horizon: h,
        ..Windows::default()
    };
    let sd = scalers.target.std;
    for o in origins {
        if o + 1 < l || o >= n || (labels && o + h >= n) {
            continue;
        }
        let rows = &table.values[(o + 1 - l) * f_n..(o + 1) * f_n];
        if rows.iter().any(|v| !v.is_finite()) {
            continue;
        }
        let base = frame.target[o];
        if labels {
            let ys: Vec<f32> = (1..=h)
                .map(|k| ((frame.target[o + k] - base) / sd) as f32)
                .collect();
            if ys.iter().any(|v| !v.is_finite()) {
                continue;
            }
            w.y.extend(ys);
        }
        w.x.extend_from_slice(rows);
        w.origins.push(o);
    }
    w
}

/// The chronological split of a frame's rows: training rows `..train_end`, validation rows
/// `train_end..val_end`, test rows `val_end..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// End of the training rows.
    pub train_end: usize,
    /// End of the validation rows.
    pub val_end: usize,
}

impl Split {
    /// `test` share at the end, `validation` share of what remains before it.
    pub fn new(
        n: usize,
        validation: f64,
        test: f64,
        cfg: &DataConfig,
    ) -> Result<Self, FeatureError> {
        if !((0.0..1.0).contains(&test) && 0.0 < validation && validation < 1.0) {
            return Err(FeatureError::config(
                "split",
                "test share must be in [0, 1) and validation share in (0, 1)",
            ));
        }
        let val_end = n - (n as f64 * test).round() as usize;
        let train_end = val_end - (val_end as f64 * validation).round() as usize;
        let need = cfg.history() + cfg.horizon;
        if train_end < need + 10 * cfg.horizon || val_end - train_end < 2 * cfg.horizon {
            return Err(FeatureError::Data(format!(
                "{n} rows are too few: a window needs {} rows of history (lookback {} + season \
                 {} − horizon {}) plus the horizon, and the training part ({train_end} rows) \
                 and validation part ({} rows) need several windows each",
                cfg.history(),
                cfg.lookback,
                cfg.season,
                cfg.horizon,
                val_end - train_end
            )));
        }
        Ok(Self { train_end, val_end })
    }

    /// Origins whose windows and labels lie in the training rows.
    pub fn train_origins(&self, cfg: &DataConfig) -> std::ops::Range<usize> {
        0..self.train_end.saturating_sub(cfg.horizon)
    }

    /// Origins in the validation rows whose labels lie there too (inputs may reach back).
    pub fn val_origins(&self, cfg: &DataConfig) -> std::ops::Range<usize> {
        self.train_end.saturating_sub(1)..self.val_end.saturating_sub(cfg.horizon)
    }

    /// Origins whose labels lie in the test rows.
    pub fn test_origins(&self, n: usize) -> std::ops::Range<usize> {
        self.val_end.saturating_sub(1)..n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> SeriesFrame {
        SeriesFrame {
            start_ms: 0,
            step_ms: 300_000,
            target: (0..n)
                .map(|i| (i as f64 * 0.1).sin() * 10.0 + 50.0)
                .collect(),
            covariates: vec![("mem".into(), (0..n).map(|i| i as f64).collect())],
        }
    }

    #[test]
    fn labels_are_the_true_future_values() {
        let f = frame(600);
        let cfg = DataConfig {
            covariates: vec!["mem".into()],
            ..DataConfig::default()
        };
        let s = Scalers::fit(&f, &cfg, 400).expect("fit");
        let t = inputs(&f, &cfg, &s).expect("inputs");
        let w = windows(&f, &cfg, &s, &t, 0..600, true);
        assert!(!w.is_empty());
        // The first usable origin needs the seasonal input: row o + H − P ≥ 0 for o − L + 1.
        assert_eq!(w.origins[0], cfg.history() - 1);
        for (k, &o) in w.origins.iter().enumerate().step_by(37) {
            for h in 1..=cfg.horizon {
                let y = f64::from(w.y[k * cfg.horizon + h - 1]) * s.target.std + f.target[o];
                assert!((y - f.target[o + h]).abs() < 1e-3, "origin {o} h {h}");
            }
            // The window's last row is the origin; its first column is the scaled target.
            let last = &w.x[((k + 1) * w.steps - 1) * w.features..(k + 1) * w.steps * w.features];
            let v = f64::from(last[0]) * s.target.std + s.target.mean;
            assert!((v - f.target[o]).abs() < 1e-3);
            // The seasonal input at the row H−h before the end is y[o + h − P].
            let h = 3;
            let row = &w.x[((k + 1) * w.steps - 1 - (cfg.horizon - h)) * w.features..][..2];
            let v = f64::from(row[1]) * s.target.std + s.target.mean;
            assert!((v - f.target[o + h - cfg.season]).abs() < 1e-3);
        }
        assert_eq!(*w.origins.last().expect("some"), 600 - 1 - cfg.horizon);
    }

    #[test]
    fn gaps_drop_windows_not_rows() {
        let mut f = frame(600);
        f.target[450] = f64::NAN;
        let cfg = DataConfig::default();
        let s = Scalers::fit(&f, &cfg, 400).expect("fit");
        let t = inputs(&f, &cfg, &s).expect("inputs");
        let w = windows(&f, &cfg, &s, &t, 0..600, true);
        for &o in &w.origins {
            assert!(
                !(o..=o + cfg.horizon).contains(&450),
                "label touches the gap at {o}"
            );
            assert!(!(o + 1 - cfg.lookback..=o).contains(&450));
        }
        assert!(w.origins.contains(&(449 - cfg.horizon)));
    }

    #[test]
    fn bad_input_is_named() {
        let mut f = frame(600);
        f.target = vec![3.0; 600];
        let e = Scalers::fit(&f, &DataConfig::default(), 400).expect_err("constant");
        assert!(e.to_string().contains("constant"), "{e}");
        let e = Split::new(200, 0.2, 0.2, &DataConfig::default()).expect_err("short");
        assert!(e.to_string().contains("too few"), "{e}");
        let cfg = DataConfig {
            covariates: vec!["disk".into()],
            ..DataConfig::default()
        };
        let e = Scalers::fit(&frame(600), &cfg, 400).expect_err("missing");
        assert!(
            e.to_string().contains("disk") && e.to_string().contains("mem"),
            "{e}"
        );
    }

    #[test]
    fn scalers_see_only_the_training_rows() {
        let mut f = frame(600);
        for v in &mut f.target[400..] {
            *v += 1000.0;
        }
        let s = Scalers::fit(&f, &DataConfig::default(), 400).expect("fit");
        assert!(s.target.mean < 100.0);
    }

    #[test]
    fn gridding_keeps_gaps() {
        let pts = vec![(0, 1.0), (300_000, 2.0), (310_000, 4.0), (1_200_000, 5.0)];
        let f = SeriesFrame::from_points(&pts, &[], 300_000).expect("grid");
        assert_eq!(f.len(), 5);
        assert_eq!(f.target[1], 3.0);
        assert!(f.target[2].is_nan() && f.target[3].is_nan());
    }
}
