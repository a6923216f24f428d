//! Supervised datasets from a feature frame: fixed-length input windows and the true future
//! values as labels, a chronological split, and a scaler fit on the training part only.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{FeatureError, FeatureFrame};

/// `(X, y)` rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    /// One row per origin: `lookback` consecutive feature rows ending at the origin, flattened
    /// oldest first (`lookback × features` values).
    pub x: Vec<Vec<f64>>,
    /// One row per origin: the target at `origin + h·step` for each horizon `h`.
    pub y: Vec<Vec<f64>>,
    /// Timestamp of each origin.
    pub origins: Vec<i64>,
    /// Feature names (of one row of the window).
    pub features: Vec<String>,
    /// The horizons, in steps.
    pub horizons: Vec<usize>,
}

/// Builds windows: for each origin row `i`, `x` = feature rows `i−lookback+1 ..= i` and
/// `y[h]` = the target's value at exactly `timestamps[i] + h·step_ms`.
///
/// Gap-aware: an origin whose window spans missing timestamps, or whose future value is missing,
/// is left out rather than mislabelled. Origins with any `NaN` in `x` or `y` are left out.
pub fn windowed(
    frame: &FeatureFrame,
    target: &[f64],
    step_ms: i64,
    lookback: usize,
    horizons: &[usize],
) -> Result<Dataset, FeatureError> {
    if target.len() != frame.rows() {
        return Err(FeatureError::LengthMismatch {
            timestamps: frame.rows(),
            values: target.len(),
        });
    }
    if lookback == 0 {
        return Err(FeatureError::Config {
            field: "lookback",
            reason: "must be at least 1".into(),
        });
    }
    if horizons.is_empty() || horizons.contains(&0) {
        return Err(FeatureError::Config {
            field: "horizons",
            reason: "give at least one horizon, each ≥ 1".into(),
        });
    }
    if step_ms <= 0 {
        return Err(FeatureError::Config {
            field: "step",
            reason: "must be positive".into(),
        });
    }
    let max_h = horizons.iter().copied().max().unwrap_or(1);
    if frame.rows() < lookback + max_h {
        return Err(FeatureError::TooShort {
            rows: frame.rows(),
            needed: lookback + max_h,
        });
    }
    let index: HashMap<i64, usize> = frame
        .timestamps
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, i))
        .collect();
    let rows: Vec<Vec<f64>> = (0..frame.rows()).map(|i| frame.row(i)).collect();
    let mut ds = Dataset {
        features: frame.names.clone(),
        horizons: horizons.to_vec(),
        ..Dataset::default()
    };
    'origin: for i in (lookback - 1)..frame.rows() {
        let t = frame.timestamps[i];
        // The window must be contiguous in time.
        if frame.timestamps[i + 1 - lookback] != t - (lookback as i64 - 1) * step_ms {
            continue;
        }
        let mut y = Vec::with_capacity(horizons.len());
        for &h in horizons {
            match index.get(&(t + h as i64 * step_ms)) {
                Some(&j) if target[j].is_finite() => y.push(target[j]),
                _ => continue 'origin,
            }
        }
        let mut x = Vec::with_capacity(lookback * frame.names.len());
        for row in &rows[i + 1 - lookback..=i] {
            if row.iter().any(|v| !v.is_finite()) {
                continue 'origin;
            }
            x.extend_from_slice(row);
        }
        ds.x.push(x);
        ds.y.push(y);
        ds.origins.push(t);
    }
    Ok(ds)
}

/// Index ranges of a chronological split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training rows.
    pub train: std::ops::Range<usize>,
    /// Validation rows.
    pub validation: std::ops::Range<usize>,
    /// Test rows.
    pub test: std::ops::Range<usize>,
}

/// Splits `n` dataset rows in time order into train / validation / test by fractions, dropping
/// `embargo` rows before each boundary: a training row's labels reach `max horizon` steps ahead,
/// into the validation period, so without the gap training would see validation targets.
pub fn split(n: usize, validation: f64, test: f64, embargo: usize) -> Result<Split, FeatureError> {
    if !(0.0..1.0).contains(&validation) || !(0.0..1.0).contains(&test) || validation + test >= 1.0
    {
        return Err(FeatureError::Config {
            field: "split",
            reason: format!(
                "validation {validation} + test {test} must be fractions summing below 1"
            ),
        });
    }
    let test_start = n - (n as f64 * test).round() as usize;
    let val_start = test_start.saturating_sub((n as f64 * validation).round() as usize);
    let train_end = val_start.saturating_sub(if validation > 0.0 {
        embargo
    } else {
        embargo.min(val_start)
    });
    let val_end = if test > 0.0 {
        test_start.saturating_sub(embargo).max(val_start)
    } else {
        test_start
    };
    if train_end == 0 {
        return Err(FeatureError::TooShort {
            rows: n,
            needed: n + 1,
        });
    }
    Ok(Split {
        train: 0..train_end,
        validation: val_start..val_end,
        test: test_start..n,
    })
}

/// Per-column standardisation `(x − mean) / std`, fit on training rows only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandardScaler {
    /// Column means.
    pub mean: Vec<f64>,
    /// Column standard deviations (population); 1 where a column is constant.
    pub std: Vec<f64>,
}

impl StandardScaler {
    /// Fits on `rows` (all of equal length; at least one).
    pub fn fit(rows: &[Vec<f64>]) -> Result<Self, FeatureError> {
        let Some(first) = rows.first() else {
            return Err(FeatureError::TooShort { rows: 0, needed: 1 });
        };
        let d = first.len();
        let n = rows.len() as f64;
        let mut mean = vec![0.0; d];
        for r in rows {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / n;
            }
        }
        let mut var = vec![0.0; d];
        for r in rows {
            for ((s, v), m) in var.iter_mut().zip(r).zip(&mean) {
                *s += (v - m).powi(2) / n;
            }
        }
        let std = var
            .into_iter()
            .map(|v: f64| if v.sqrt() > 1e-12 { v.sqrt() } else { 1.0 })
            .collect();
        Ok(Self { mean, std })
    }

    /// Scales one row in place.
    pub fn transform(&self, row: &mut [f64]) {
        for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
            *v = (*v - m) / s;
        }
    }

    /// Undoes [`Self::transform`] on one row.
    pub fn inverse(&self, row: &mut [f64]) {
        for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
            *v = *v * s + m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FeatureConfig, build};

    fn frame(ts: &[i64], v: &[f64]) -> FeatureFrame {
        let cfg = FeatureConfig {
            calendar: false,
            windows: vec![],
            quantiles: vec![],
            zscore_window: 0,
            ewma_alphas: vec![],
            lags: vec![],
            fft_window: 0,
            spike_z: 3.0,
        };
        build(ts, v, &cfg).expect("frame")
    }

    #[test]
    fn labels_are_the_true_future_values_and_gaps_are_respected() {
        // Step 10, with t = 40 missing. Columns: value, diff_1, pct_change_1 (row 0 has NaNs).
        let ts = [0, 10, 20, 30, 50, 60, 70];
        let v = [1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0];
        let f = frame(&ts, &v);
        // (lookback, horizons, expected origins, expected labels)
        type Case = (usize, &'static [usize], Vec<i64>, Vec<Vec<f64>>);
        let cases: [Case; 3] = [
            // origin 20: y(30) = 4, y(40) missing; origin 50: y(60), y(70) present.
            (
                1,
                &[1, 2],
                vec![10, 50],
                vec![vec![3.0, 4.0], vec![7.0, 8.0]],
            ),
            // lookback 2: the window ending at 50 spans the gap, the one at 10 holds row 0's NaN.
            (2, &[1], vec![20, 60], vec![vec![4.0], vec![8.0]]),
            (2, &[1, 2], vec![], vec![]),
        ];
        for (lookback, horizons, origins, y) in cases {
            let ds = windowed(&f, &v, 10, lookback, horizons).expect("dataset");
            assert_eq!(
                (&ds.origins, &ds.y),
                (&origins, &y),
                "lookback {lookback} horizons {horizons:?}"
            );
            assert!(ds.x.iter().all(|x| x.len() == lookback * 3));
        }
        // x of origin 60 with lookback 2 is rows 50 and 60, oldest first.
        let ds = windowed(&f, &v, 10, 2, &[1]).expect("dataset");
        assert_eq!(ds.x[1], vec![6.0, 2.0, 0.5, 7.0, 1.0, 7.0 / 6.0 - 1.0]);
        assert_eq!(
            windowed(&f, &v, 10, 7, &[1]),
            Err(FeatureError::TooShort { rows: 7, needed: 8 })
        );
    }

    #[test]
    fn split_is_chronological_with_embargo() {
        let s = split(100, 0.1, 0.2, 3).expect("split");
        assert_eq!(
            s,
            Split {
                train: 0..67,
                validation: 70..77,
                test: 80..100
            }
        );
        assert!(split(10, 0.6, 0.5, 0).is_err());
    }

    #[test]
    fn scaler_fit_on_train_only_and_inverts() {
        let train = vec![vec![1.0, 5.0], vec![3.0, 5.0]];
        let s = StandardScaler::fit(&train).expect("fit");
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert_eq!(s.std, vec![1.0, 1.0], "constant column gets std 1");
        let mut later = vec![10.0, 6.0];
        s.transform(&mut later);
        assert_eq!(
            later,
            vec![8.0, 1.0],
            "test data scaled with train statistics"
        );
        s.inverse(&mut later);
        assert_eq!(later, vec![10.0, 6.0]);
    }
}
