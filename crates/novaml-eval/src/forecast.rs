//! Forecast accuracy: MASE, sMAPE, wMAPE and interval coverage of one multi-step forecast.

use serde::Serialize;

/// Accuracy of one forecast against what happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracy {
    /// Mean absolute error.
    pub mae: f64,
    /// MAE divided by the in-sample MAE of the seasonal naive forecast (lag `m`) on the
    /// training part; below 1 beats seasonal naive's one-season-ahead in-sample error.
    pub mase: f64,
    /// Symmetric MAPE in percent: mean of `200·|a − f| / (|a| + |f|)` (0 where both are 0).
    pub smape: f64,
    /// Weighted MAPE in percent: `100·Σ|a − f| / Σ|a|`.
    pub wmape: f64,
    /// Share of actual values inside `[lower, upper]`, in `[0, 1]`.
    pub coverage: f64,
}

/// Scores `forecast` (with bounds) against `actual`, scaling MASE by the seasonal naive in-sample
/// error of `train` with season `m`. `None` when the lengths disagree, the training part is no
/// longer than `m`, or the scale is 0 (a constant training series).
pub fn accuracy(
    train: &[f64],
    m: usize,
    actual: &[f64],
    forecast: &[f64],
    lower: &[f64],
    upper: &[f64],
) -> Option<Accuracy> {
    let n = actual.len();
    if n == 0 || forecast.len() != n || lower.len() != n || upper.len() != n || train.len() <= m {
        return None;
    }
    let scale = train
        .windows(m + 1)
        .map(|w| (w[m] - w[0]).abs())
        .sum::<f64>()
        / (train.len() - m) as f64;
    if scale <= 0.0 {
        return None;
    }
    let abs_err: Vec<f64> = actual
        .iter()
        .zip(forecast)
        .map(|(a, f)| (a - f).abs())
        .collect();
    let mae = abs_err.iter().sum::<f64>() / n as f64;
    let smape = 100.0
        * actual
            .iter()
            .zip(forecast)
            .map(|(a, f)| {
                let d = a.abs() + f.abs();
                if d == 0.0 {
                    0.0
                } else {
                    2.0 * (a - f).abs() / d
                }
            })
            .sum::<f64>()
        / n as f64;
    let total: f64 = actual.iter().map(|a| a.abs()).sum();
    let wmape = if total > 0.0 {
        100.0 * abs_err.iter().sum::<f64>() / total
    } else {
        f64::NAN
    };
    let inside = (0..n)
        .filter(|&i| lower[i] <= actual[i] && actual[i] <= upper[i])
        .count();
    Some(Accuracy {
        mae,
        mase: mae / scale,
        smape,
        wmape,
        coverage: inside as f64 / n as f64,
    })
}

/// The median (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        // Training 1,2,3,4 with m = 1: seasonal naive errors all 1 → scale 1.
        let a = accuracy(
            &[1.0, 2.0, 3.0, 4.0],
            1,
            &[5.0, 6.0],
            &[4.0, 8.0],
            &[3.0, 7.0],
            &[6.0, 9.0],
        )
        .expect("scores");
        assert_eq!(a.mae, 1.5);
        assert_eq!(a.mase, 1.5);
        assert!((a.smape - 100.0 * (2.0 / 9.0 + 4.0 / 14.0) / 2.0).abs() < 1e-12);
        assert!((a.wmape - 100.0 * 3.0 / 11.0).abs() < 1e-12);
        assert_eq!(a.coverage, 0.5);
        assert!(accuracy(&[1.0; 5], 1, &[1.0], &[1.0], &[1.0], &[1.0]).is_none());
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
