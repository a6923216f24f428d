//! Accuracy of multi-step predictions per horizon step, against the actual values and the naive
//! (last value) forecast made at the same origin.

use serde::{Deserialize, Serialize};

/// One prediction: origin, step, what happened, what was predicted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PredRow {
    /// Origin timestamp, ms.
    pub origin: i64,
    /// Horizon step (1-based).
    pub h: usize,
    /// Timestamp of the predicted step, ms.
    pub timestamp: i64,
    /// Actual value.
    pub actual: f64,
    /// Point prediction.
    pub predicted: f64,
    /// Interval lower bound.
    pub lower: f64,
    /// Interval upper bound.
    pub upper: f64,
    /// The last value at the origin (the naive forecast).
    pub last: f64,
}

/// Accuracy at one horizon step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HorizonMetrics {
    /// Horizon step (1-based).
    pub h: usize,
    /// Predictions scored.
    pub n: usize,
    /// Mean absolute error.
    pub mae: f64,
    /// MAE divided by naive's MAE at the same origins and step (below 1 beats naive).
    pub rel_mae: f64,
    /// Symmetric MAPE, percent.
    pub smape: f64,
    /// MAE over the in-sample one-step naive MAE of the training part.
    pub mase: f64,
    /// Share of predictions within 5 % of the actual value.
    pub accuracy_5pct: f64,
    /// Share of actual values inside the interval.
    pub coverage: f64,
}

/// Scores `rows` per horizon step `1..=horizon`; `scale` is the training part's in-sample
/// one-step naive MAE (for MASE). Steps without rows are left out.
pub fn per_horizon(rows: &[PredRow], horizon: usize, scale: f64) -> Vec<HorizonMetrics> {
    (1..=horizon)
        .filter_map(|h| {
            let r: Vec<&PredRow> = rows.iter().filter(|r| r.h == h).collect();
            if r.is_empty() {
                return None;
            }
            let n = r.len() as f64;
            let mae = r
                .iter()
                .map(|x| (x.actual - x.predicted).abs())
                .sum::<f64>()
                / n;
            let naive = r.iter().map(|x| (x.actual - x.last).abs()).sum::<f64>() / n;
            let smape = 100.0
                * r.iter()
                    .map(|x| {
                        let d = x.actual.abs() + x.predicted.abs();
                        if d == 0.0 {
                            0.0
                        } else {
                            2.0 * (x.actual - x.predicted).abs() / d
                        }
                    })
                    .sum::<f64>()
                / n;
            let acc = r
                .iter()
                .filter(|x| (x.actual - x.predicted).abs() <= 0.05 * x.actual.abs())
                .count() as f64
                / n;
            let cov = r
                .iter()
                .filter(|x| x.lower <= x.actual && x.actual <= x.upper)
                .count() as f64
                / n;
            Some(HorizonMetrics {
                h,
                n: r.len(),
                mae,
                rel_mae: if naive > 0.0 { mae / naive } else { f64::NAN },
                smape,
                mase: if scale > 0.0 { mae / scale } else { f64::NAN },
                accuracy_5pct: acc,
                coverage: cov,
            })
        })
        .collect()
}

/// The in-sample one-step naive MAE of `train` (ignoring `NaN` pairs).
pub fn naive_scale(train: &[f64]) -> f64 {
    let d: Vec<f64> = train
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .filter(|v| v.is_finite())
        .collect();
    if d.is_empty() {
        f64::NAN
    } else {
        d.iter().sum::<f64>() / d.len() as f64
    }
}

/// Summary over the horizon steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredSummary {
    /// Median over steps of the relative MAE.
    pub median_rel_mae: f64,
    /// Relative MAE at the last step.
    pub last_rel_mae: f64,
    /// Mean MASE over steps.
    pub mean_mase: f64,
    /// Mean sMAPE over steps.
    pub mean_smape: f64,
    /// Mean accuracy@5 % over steps.
    pub accuracy_5pct: f64,
    /// Interval coverage over all predictions.
    pub coverage: f64,
}

/// Summarises per-step metrics (`None` when empty).
pub fn summarize(m: &[HorizonMetrics]) -> Option<PredSummary> {
    let last = m.last()?;
    let mean = |f: fn(&HorizonMetrics) -> f64| m.iter().map(f).sum::<f64>() / m.len() as f64;
    let n: usize = m.iter().map(|x| x.n).sum();
    Some(PredSummary {
        median_rel_mae: crate::forecast::median(&m.iter().map(|x| x.rel_mae).collect::<Vec<_>>())?,
        last_rel_mae: last.rel_mae,
        mean_mase: mean(|x| x.mase),
        mean_smape: mean(|x| x.smape),
        accuracy_5pct: mean(|x| x.accuracy_5pct),
        coverage: m.iter().map(|x| x.coverage * x.n as f64).sum::<f64>() / n.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(h: usize, actual: f64, predicted: f64, last: f64) -> PredRow {
        PredRow {
            origin: 0,
            h,
            timestamp: h as i64,
            actual,
            predicted,
            lower: predicted - 1.0,
            upper: predicted + 1.0,
            last,
        }
    }

    #[test]
    fn metrics_by_hand() {
        let rows = [
            row(1, 100.0, 101.0, 96.0),
            row(1, 100.0, 110.0, 104.0),
            row(2, 50.0, 50.0, 40.0),
        ];
        let m = per_horizon(&rows, 2, 2.0);
        assert_eq!(m.len(), 2);
        assert!((m[0].mae - 5.5).abs() < 1e-12);
        assert!((m[0].rel_mae - 5.5 / 4.0).abs() < 1e-12);
        assert!((m[0].mase - 2.75).abs() < 1e-12);
        assert!((m[0].accuracy_5pct - 0.5).abs() < 1e-12);
        assert!((m[0].coverage - 0.5).abs() < 1e-12);
        assert!((m[1].coverage - 1.0).abs() < 1e-12);
        assert!((m[1].rel_mae - 0.0).abs() < 1e-12);
        let s = summarize(&m).expect("some");
        assert!((s.coverage - 2.0 / 3.0).abs() < 1e-12);
        assert!((naive_scale(&[1.0, 3.0, f64::NAN, 4.0, 5.0]) - 1.5).abs() < 1e-12);
    }
}
