//! Baselines that share the LSTM's windows and harness: naive (last value), seasonal naive (one
//! season earlier) and a ridge regression on lag features (one per horizon).
//!
//! All work in the windows' scaled units and predict the change from the last value.

use novaml_core::linalg::{cholesky, solve_cholesky};
use serde::{Deserialize, Serialize};

use crate::PredictError;
use novaml_features::dataset::{DataConfig, Windows};

/// Recent lags (rows before the origin) the ridge model reads.
const RIDGE_LAGS: usize = 12;

/// Change from the last value that seasonal naive predicts for each horizon of window `k`
/// (`None` without the seasonal input).
pub fn seasonal_deltas(w: &Windows, cfg: &DataConfig, k: usize) -> Option<Vec<f32>> {
    if cfg.season == 0 {
        return None;
    }
    let (t_n, f_n, h_n) = (w.steps, w.features, w.horizon);
    let x = &w.x[k * t_n * f_n..(k + 1) * t_n * f_n];
    let last = x[(t_n - 1) * f_n];
    // Row t_n − H + h − 1 holds y[o + h − P] in column 1.
    Some(
        (1..=h_n)
            .map(|h| x[(t_n - h_n + h - 1) * f_n + 1] - last)
            .collect(),
    )
}

/// The ridge model's features of window `k`: recent changes, seasonal changes, the other inputs
/// at the origin, and an intercept.
fn ridge_features(w: &Windows, cfg: &DataConfig, k: usize) -> Vec<f64> {
    let (t_n, f_n) = (w.steps, w.features);
    let x = &w.x[k * t_n * f_n..(k + 1) * t_n * f_n];
    let last = x[(t_n - 1) * f_n];
    let mut v: Vec<f64> = (1..=RIDGE_LAGS.min(t_n - 1))
        .map(|l| f64::from(x[(t_n - 1 - l) * f_n] - last))
        .collect();
    if let Some(s) = seasonal_deltas(w, cfg, k) {
        v.extend(s.iter().map(|d| f64::from(*d)));
    }
    let first_other = if cfg.season > 0 { 2 } else { 1 };
    v.extend(
        x[(t_n - 1) * f_n + first_other..t_n * f_n]
            .iter()
            .map(|d| f64::from(*d)),
    );
    v.push(f64::from(last));
    v.push(1.0);
    v
}

/// A ridge regression per horizon on [`ridge_features`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ridge {
    /// Coefficients, one vector per horizon.
    pub coef: Vec<Vec<f64>>,
}

impl Ridge {
    /// Fits on the windows with penalty `lambda` (per window) on every coefficient but the
    /// intercept.
    pub fn fit(w: &Windows, cfg: &DataConfig, lambda: f64) -> Result<Self, PredictError> {
        if w.is_empty() {
            return Err(PredictError::Data(
                "no training windows for the ridge model".into(),
            ));
        }
        let feats: Vec<Vec<f64>> = (0..w.len()).map(|k| ridge_features(w, cfg, k)).collect();
        let p = feats[0].len();
        let mut gram = vec![0.0; p * p];
        let mut xty = vec![vec![0.0; p]; w.horizon];
        for (k, f) in feats.iter().enumerate() {
            for i in 0..p {
                for j in 0..=i {
                    gram[i * p + j] += f[i] * f[j];
                }
                for (h, row) in xty.iter_mut().enumerate() {
                    row[i] += f[i] * f64::from(w.y[k * w.horizon + h]);
                }
            }
        }
        for i in 0..p {
            for j in 0..i {
                gram[j * p + i] = gram[i * p + j];
            }
            if i + 1 < p {
                gram[i * p + i] += lambda * w.len() as f64;
            }
        }
        let l = cholesky(&gram, p).ok_or_else(|| {
            PredictError::Data("the ridge model's features are degenerate".into())
        })?;
        Ok(Self {
            coef: xty.iter().map(|b| solve_cholesky(&l, p, b)).collect(),
        })
    }

    /// Predicted changes (scaled) of window `k`.
    pub fn predict(&self, w: &Windows, cfg: &DataConfig, k: usize) -> Vec<f32> {
        let f = ridge_features(w, cfg, k);
        self.coef
            .iter()
            .map(|c| c.iter().zip(&f).map(|(a, b)| a * b).sum::<f64>() as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use novaml_features::dataset::{Scalers, SeriesFrame, inputs, windows};

    #[test]
    fn ridge_recovers_a_linear_rule() {
        // y follows an AR(1) (φ = 0.5) around 50: the best linear rule has ~0.8 of naive's error.
        let mut y = vec![50.0];
        let mut s = 1u64;
        for _ in 1..3000 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let e = ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
            let prev = *y.last().unwrap_or(&50.0);
            y.push(50.0 + 0.5 * (prev - 50.0) + 4.0 * e);
        }
        let f = SeriesFrame {
            start_ms: 0,
            step_ms: 300_000,
            target: y,
            covariates: vec![],
        };
        let cfg = DataConfig {
            lookback: 16,
            horizon: 3,
            season: 0,
            calendar: false,
            covariates: vec![],
        };
        let sc = Scalers::fit(&f, &cfg, 2000).expect("fit");
        let t = inputs(&f, &cfg, &sc).expect("inputs");
        let tr = windows(&f, &cfg, &sc, &t, 0..2000, true);
        let te = windows(&f, &cfg, &sc, &t, 2000..2990, true);
        let r = Ridge::fit(&tr, &cfg, 1e-4).expect("ridge");
        let (mut e_r, mut e_n) = (0.0, 0.0);
        for k in 0..te.len() {
            let p = r.predict(&te, &cfg, k);
            for (h, ph) in p.iter().enumerate() {
                e_r += f64::from((te.y[k * 3 + h] - ph).abs());
                e_n += f64::from(te.y[k * 3 + h].abs());
            }
        }
        assert!(e_r < 0.88 * e_n, "ridge {e_r} vs naive {e_n}");
    }
}
