//! Serving: a predictor's forecasts for any origins of a frame, with conformal intervals that
//! roll with the last two days of known outcomes, and the degradation risk of a forecast.
//!
//! Intervals are conformalised quantile regression (Romano et al. 2019): the network predicts the
//! interval's quantiles; on the validation windows the score `max(lo − y, y − hi)` of each
//! horizon is collected, and its `level` quantile (with the finite-sample correction) widens (or
//! narrows) the interval. The baselines predict a point, so their score is `|y − ŷ|`.

use std::ops::Range;

use novaml_core::stats::{normal_cdf, normal_quantile};
use novaml_features::dataset::{DataConfig, Inputs, SeriesFrame, Windows, inputs, windows};

use super::{Forecast, Guarded, Model, Prediction, Predictor};
use crate::PredictError;
use crate::baselines::seasonal_deltas;
use crate::training::predict_windows;

impl Forecast {
    /// Probability that the metric exceeds `threshold` within the horizon: the largest of the
    /// per-step exceedance probabilities, each from a two-piece normal through the step's
    /// median and interval bounds. It is exact when the steps move together and a lower bound
    /// otherwise.
    pub fn risk_above(&self, threshold: f64, level: f64) -> f64 {
        let z = normal_quantile(0.5 + level / 2.0);
        self.predicted
            .iter()
            .zip(&self.lower)
            .zip(&self.upper)
            .map(|((m, lo), hi)| {
                let sd = if threshold >= *m {
                    (hi - m) / z
                } else {
                    (m - lo) / z
                };
                if sd <= 0.0 {
                    if *m > threshold { 1.0 } else { 0.0 }
                } else {
                    1.0 - normal_cdf((threshold - m) / sd)
                }
            })
            .fold(0.0, f64::max)
    }
}

/// What the rolling pass over the known outcomes decides per served window.
struct Rolling {
    /// The conformal adjustment `[window][horizon]`, scaled units.
    adjust: Vec<f64>,
    /// Per window: `Some` where the guard falls back to the last value.
    fallback: Vec<Option<Fallback>>,
}

/// A fallback to the last value.
#[derive(Debug, Clone)]
struct Fallback {
    /// The model's recent mean absolute error over the last value's.
    ratio: f64,
    /// The last value's interval half-width per horizon (scaled units): the level-quantile of
    /// its recent absolute errors.
    naive: Vec<f64>,
}

/// Raw (uncalibrated) predictions of windows in scaled change units: `[N][H]` median, lower,
/// upper.
pub(super) struct Raw {
    pub(super) median: Vec<f32>,
    pub(super) lower: Vec<f32>,
    pub(super) upper: Vec<f32>,
}

/// The conformal nonconformity score of window `k`'s step `h`: how far the truth lies outside
/// the raw interval (negative inside it).
pub(super) fn score(r: &Raw, w: &Windows, k: usize, h: usize) -> f64 {
    let at = k * w.horizon + h;
    let y = f64::from(w.y[at]);
    (f64::from(r.lower[at]) - y).max(y - f64::from(r.upper[at]))
}

/// The split-conformal quantile of `scores` for coverage `level` (reorders `scores`); `None`
/// when empty.
pub(super) fn conformal_quantile(scores: &mut [f64], level: f64) -> Option<f64> {
    let n = scores.len();
    if n == 0 {
        return None;
    }
    let rank = (((n + 1) as f64 * level).ceil() as usize).clamp(1, n);
    let (_, q, _) = scores.select_nth_unstable_by(rank - 1, f64::total_cmp);
    Some(*q)
}

pub(super) fn raw(model: &Model, data: &DataConfig, quantiles: &[f32], w: &Windows) -> Raw {
    let (n, h_n) = (w.len(), w.horizon);
    let mut r = Raw {
        median: Vec::with_capacity(n * h_n),
        lower: Vec::with_capacity(n * h_n),
        upper: Vec::with_capacity(n * h_n),
    };
    match model {
        Model::Pooled { inner } => {
            let (scaled, scales) = super::global::scale_windows(w, data);
            let mut r = raw(inner, data, quantiles, &scaled);
            for (k, s) in scales.iter().enumerate() {
                for v in [&mut r.median, &mut r.lower, &mut r.upper] {
                    v[k * h_n..(k + 1) * h_n].iter_mut().for_each(|x| *x *= s);
                }
            }
            return r;
        }
        Model::Ensemble { members, weights } => {
            let parts: Vec<Raw> = members.iter().map(|m| raw(m, data, quantiles, w)).collect();
            for k in 0..n {
                for (h, wh) in weights.iter().enumerate() {
                    let at = k * h_n + h;
                    let mix = |f: fn(&Raw) -> &Vec<f32>| {
                        parts
                            .iter()
                            .zip(wh)
                            .map(|(p, wt)| wt * f(p)[at])
                            .sum::<f32>()
                    };
                    r.median.push(mix(|p| &p.median));
                    r.lower.push(mix(|p| &p.lower));
                    r.upper.push(mix(|p| &p.upper));
                }
            }
        }
        Model::Lstm { net, base } => {
            let out = predict_windows(net, w);
            let q_n = quantiles.len();
            let mid = crate::training::median_index(quantiles);
            for (k, rows) in out.chunks_exact(q_n * h_n).enumerate() {
                let b = base.as_ref().map(|r| r.predict(w, data, k));
                for (h, row) in rows.chunks_exact(q_n).enumerate() {
                    // Quantile outputs can cross; sorting them is the usual repair.
                    let mut q = row.to_vec();
                    q.sort_by(f32::total_cmp);
                    let off = b.as_ref().map_or(0.0, |b| b[h]);
                    r.median.push(q[mid] + off);
                    r.lower.push(q[0] + off);
                    r.upper.push(q[q_n - 1] + off);
                }
            }
        }
        _ => {
            for k in 0..n {
                let d = match model {
                    Model::SeasonalNaive => {
                        seasonal_deltas(w, data, k).unwrap_or_else(|| vec![0.0; h_n])
                    }
                    Model::Ridge(m) => m.predict(w, data, k),
                    Model::Gbm(m) => m.predict(w, data, k),
                    _ => vec![0.0; h_n],
                };
                r.median.extend_from_slice(&d);
                r.lower.extend_from_slice(&d);
                r.upper.extend_from_slice(&d);
            }
        }
    }
    r
}

impl Predictor {
    /// Predictions for every origin in `origins` that has a complete window (and, with
    /// `labels`, a complete future), in metric units.
    pub fn predict_range(
        &self,
        frame: &SeriesFrame,
        origins: Range<usize>,
        labels: bool,
    ) -> Result<Vec<Prediction>, PredictError> {
        self.check()?;
        if frame.step_ms != self.step_ms {
            return Err(PredictError::Data(format!(
                "the data's step is {} ms, the model was trained on {} ms",
                frame.step_ms, self.step_ms
            )));
        }
        let table = inputs(frame, &self.data, &self.scalers)?;
        let w = windows(frame, &self.data, &self.scalers, &table, origins, labels);
        let r = raw(&self.model, &self.data, &self.quantiles, &w);
        let Rolling { adjust, fallback } = self.rolling_calibration(frame, &table, &w);
        let h_n = self.data.horizon;
        let sd = self.scalers.target.std;
        Ok(w.origins
            .iter()
            .enumerate()
            .map(|(k, &o)| {
                let last = frame.target[o];
                let timestamps = (1..=h_n).map(|h| frame.ts(o + h)).collect();
                if let Some(f) = &fallback[k] {
                    // The guard: the last value, with the interval of naive's own recent errors.
                    return Prediction {
                        origin: o,
                        forecast: Forecast {
                            origin_ms: frame.ts(o),
                            last,
                            timestamps,
                            predicted: vec![last; h_n],
                            lower: f.naive.iter().map(|q| last - q * sd).collect(),
                            upper: f.naive.iter().map(|q| last + q * sd).collect(),
                            guard: Some(Guarded { ratio: f.ratio }),
                        },
                    };
                }
                let at = |v: &[f32], h: usize| last + f64::from(v[k * h_n + h]) * sd;
                let cal = |h: usize| adjust[k * h_n + h] * sd;
                let predicted: Vec<f64> = (0..h_n).map(|h| at(&r.median, h)).collect();
                let lower = (0..h_n)
                    .map(|h| (at(&r.lower, h) - cal(h)).min(predicted[h]))
                    .collect();
                let upper = (0..h_n)
                    .map(|h| (at(&r.upper, h) + cal(h)).max(predicted[h]))
                    .collect();
                Prediction {
                    origin: o,
                    forecast: Forecast {
                        origin_ms: frame.ts(o),
                        last,
                        timestamps,
                        predicted,
                        lower,
                        upper,
                        guard: None,
                    },
                }
            })
            .collect())
    }

    /// The conformal adjustment `[window][horizon]` (scaled units) for the windows `w`: for
    /// each origin, the level-quantile of the nonconformity scores of the last
    /// [`Predictor::recalibrate`] origins whose outcomes are all known by then (origin `o'` with
    /// `o' + H ≤ o`), so it follows a series whose spread has changed since validation while
    /// using no future value; the fixed calibration where fewer than half that many are known.
    ///
    /// The same known origins feed the guard: where the model's mean absolute error over them
    /// exceeds [`Predictor::guard`] × the last value's, the origin falls back to the last value
    /// (see [`Rolling::fallback`]).
    fn rolling_calibration(&self, frame: &SeriesFrame, table: &Inputs, w: &Windows) -> Rolling {
        let h_n = self.data.horizon;
        let mut out = Rolling {
            adjust: (0..w.len())
                .flat_map(|_| self.calibration.iter().copied())
                .collect(),
            fallback: vec![None; w.len()],
        };
        let span = self.recalibrate;
        let (Some(&first), Some(&last)) = (w.origins.first(), w.origins.last()) else {
            return out;
        };
        if span == 0 {
            return out;
        }
        let lo = first.saturating_sub(span + h_n);
        let past = windows(frame, &self.data, &self.scalers, table, lo..last, true);
        if past.len() < span / 2 {
            return out;
        }
        let r = raw(&self.model, &self.data, &self.quantiles, &past);
        // Known at `o`: origins whose whole future is observed (`o' + H ≤ o`), the newest `span`
        // of them; exactly the windows a server holding rows `..=o` can score.
        let known: Vec<Option<Range<usize>>> = w
            .origins
            .iter()
            .map(|&o| {
                let end = past.origins.partition_point(|&p| p + h_n <= o);
                let start = past
                    .origins
                    .partition_point(|&p| p + span + h_n <= o)
                    .min(end);
                (end - start >= span / 2).then_some(start..end)
            })
            .collect();
        let mut buf = Vec::with_capacity(span);
        for h in 0..h_n {
            let scores: Vec<f64> = (0..past.len()).map(|j| score(&r, &past, j, h)).collect();
            for (k, range) in known.iter().enumerate() {
                let Some(range) = range else { continue };
                buf.clear();
                buf.extend_from_slice(&scores[range.clone()]);
                if let Some(q) = conformal_quantile(&mut buf, self.level) {
                    out.adjust[k * h_n + h] = q;
                }
            }
        }
        if self.guard > 0.0 {
            // Per past window: the model's and the last value's absolute errors over the horizons
            // (labels are changes from the last value, so naive's error is |y|).
            let err = |j: usize, naive: bool| -> f64 {
                (0..h_n)
                    .map(|h| {
                        let at = j * h_n + h;
                        let y = f64::from(past.y[at]);
                        if naive {
                            y.abs()
                        } else {
                            (y - f64::from(r.median[at])).abs()
                        }
                    })
                    .sum()
            };
            let prefix = |naive: bool| -> Vec<f64> {
                std::iter::once(0.0)
                    .chain((0..past.len()).scan(0.0, |acc, j| {
                        *acc += err(j, naive);
                        Some(*acc)
                    }))
                    .collect()
            };
            let (model, naive) = (prefix(false), prefix(true));
            for (k, range) in known.iter().enumerate() {
                let Some(range) = range else { continue };
                let m = model[range.end] - model[range.start];
                let n = naive[range.end] - naive[range.start];
                if n > 0.0 && m > self.guard * n {
                    let q = (0..h_n)
                        .map(|h| {
                            buf.clear();
                            buf.extend(range.clone().map(|j| f64::from(past.y[j * h_n + h]).abs()));
                            conformal_quantile(&mut buf, self.level).unwrap_or(0.0)
                        })
                        .collect();
                    out.fallback[k] = Some(Fallback {
                        ratio: m / n,
                        naive: q,
                    });
                }
            }
        }
        out
    }

    /// The forecast from the frame's last row.
    pub fn predict(&self, frame: &SeriesFrame) -> Result<Forecast, PredictError> {
        let n = frame.len();
        if n < self.data.history() {
            return Err(PredictError::Data(format!(
                "{n} rows of history, the model needs {} (lookback {} + season {} − horizon {})",
                self.data.history(),
                self.data.lookback,
                self.data.season,
                self.data.horizon
            )));
        }
        self.predict_range(frame, n.saturating_sub(1)..n, false)?
            .pop()
            .map(|p| p.forecast)
            .ok_or_else(|| {
                PredictError::Data(format!(
                    "the last {} rows (and the seasonal rows one season earlier) contain gaps; \
                     the model needs them complete",
                    self.data.lookback
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_follows_the_interval() {
        let f = Forecast {
            origin_ms: 0,
            last: 50.0,
            timestamps: vec![1, 2],
            predicted: vec![50.0, 60.0],
            lower: vec![45.0, 50.0],
            upper: vec![55.0, 70.0],
            guard: None,
        };
        // At step 2 the upper bound (the 90th percentile) is 70.
        assert!((f.risk_above(70.0, 0.8) - 0.1).abs() < 1e-3);
        assert!((f.risk_above(60.0, 0.8) - 0.5).abs() < 1e-3);
        assert!(f.risk_above(200.0, 0.8) < 1e-6);
        assert!(f.risk_above(0.0, 0.8) > 0.999);
    }
}
