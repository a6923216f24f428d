//! Accuracy of multi-step predictions per horizon step, against the actual values and the naive
//! (last value) forecast made at the same origin; and the backtest behind `novaml eval predict`
//! ([`Backtest`]): every model fitted on a series' training rows, selected on its
//! validation rows, and scored from every origin of its test rows.

use std::collections::BTreeMap;

use novaml_core::stats::median;
use novaml_features::{SeriesFrame, Split};
use novaml_predict::PredictError;
use novaml_predict::inference::{
    FitConfig, Model, ModelKind, Prediction, ensemble_of, fit, fit_global, serve_global,
};
use novaml_predict::training::EpochReport;
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
    /// The worst week: the largest MAE relative to naive's (all steps together) over the weeks
    /// of origins, starting a day apart (see [`worst_week`]).
    #[serde(default)]
    pub worst_week_rel_mae: Option<f64>,
    /// Share of origins where the guard served the last value instead of the model.
    #[serde(default)]
    pub guarded: f64,
}

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// The largest relative MAE (the model's summed absolute error over naive's, every step of
/// every origin in the span) over the spans of 7 days of origins starting at the first origin
/// and every day after it that still leaves 7 days; the whole test when it is shorter than
/// that. `None` without rows or where naive made no error.
pub fn worst_week(rows: &[PredRow]) -> Option<f64> {
    let first = rows.iter().map(|r| r.origin).min()?;
    let last = rows.iter().map(|r| r.origin).max()?;
    let week = 7 * DAY_MS;
    let mut starts: Vec<i64> = (0..)
        .map(|d| first + d * DAY_MS)
        .take_while(|s| s + week <= last + 1)
        .collect();
    if starts.is_empty() {
        starts.push(first);
    }
    starts
        .iter()
        .filter_map(|&s| {
            let (m, n) = rows
                .iter()
                .filter(|r| r.origin >= s && r.origin < s + week)
                .fold((0.0, 0.0), |(m, n), r| {
                    (
                        m + (r.actual - r.predicted).abs(),
                        n + (r.actual - r.last).abs(),
                    )
                });
            (n > 0.0).then_some(m / n)
        })
        .reduce(f64::max)
}

/// Summarises per-step metrics (`None` when empty).
pub fn summarize(m: &[HorizonMetrics]) -> Option<PredSummary> {
    let last = m.last()?;
    let mean = |f: fn(&HorizonMetrics) -> f64| m.iter().map(f).sum::<f64>() / m.len() as f64;
    let n: usize = m.iter().map(|x| x.n).sum();
    Some(PredSummary {
        median_rel_mae: median(&m.iter().map(|x| x.rel_mae).collect::<Vec<_>>())?,
        last_rel_mae: last.rel_mae,
        mean_mase: mean(|x| x.mase),
        mean_smape: mean(|x| x.smape),
        accuracy_5pct: mean(|x| x.accuracy_5pct),
        coverage: m.iter().map(|x| x.coverage * x.n as f64).sum::<f64>() / n.max(1) as f64,
        worst_week_rel_mae: None,
        guarded: 0.0,
    })
}

/// One model's figures on one series.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// Over the horizon steps.
    pub summary: PredSummary,
    /// Mean validation MAE over the horizons (what selection compares).
    pub val_mae: f64,
    /// Fitting time, seconds.
    pub fit_seconds: f64,
    /// LSTM epochs (0 for the others).
    pub epochs: usize,
    /// Mean seconds per epoch.
    pub seconds_per_epoch: Option<f64>,
    /// Per horizon step.
    pub horizons: Vec<HorizonMetrics>,
}

/// Every model's figures on one series, and the one validation selects.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesReport {
    /// The series' file.
    pub file: String,
    /// Rows on the grid.
    pub rows: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Validation rows.
    pub validation_rows: usize,
    /// Test rows.
    pub test_rows: usize,
    /// Test origins with a complete window and future.
    pub test_origins: usize,
    /// The model with the lowest validation MAE.
    pub selected: ModelKind,
    /// Its figures.
    pub selected_summary: PredSummary,
    /// Every model's.
    pub models: BTreeMap<ModelKind, ModelReport>,
}

/// Why a series could not be evaluated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BacktestError {
    /// Fitting or predicting failed.
    #[error("{series}: {model}: {source}")]
    Model {
        /// The series.
        series: String,
        /// The model.
        model: &'static str,
        /// Why.
        source: PredictError,
    },
    /// The split does not fit the series.
    #[error("{series}: {source}")]
    Split {
        /// The series.
        series: String,
        /// Why.
        source: novaml_features::FeatureError,
    },
    /// No test origin has a complete window and future.
    #[error("{series}: no complete test windows")]
    NoTestWindows {
        /// The series.
        series: String,
    },
}

/// What the backtest reports while it runs.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A global model starts fitting on this many series.
    Pooling(ModelKind, usize),
    /// A model starts fitting.
    Fitting(ModelKind),
    /// An LSTM finished an epoch.
    Epoch(ModelKind, &'a EpochReport),
    /// A model is fitted and scored.
    Scored(ModelKind),
}

/// The rows of the predictions, for scoring and for the predictions CSV.
pub fn rows_of(preds: &[Prediction], frame: &SeriesFrame) -> Vec<PredRow> {
    let mut rows = Vec::new();
    for p in preds {
        let f = &p.forecast;
        for h in 0..f.predicted.len() {
            rows.push(PredRow {
                origin: f.origin_ms,
                h: h + 1,
                timestamp: f.timestamps[h],
                actual: frame.target[p.origin + h + 1],
                predicted: f.predicted[h],
                lower: f.lower[h],
                upper: f.upper[h],
                last: f.last,
            });
        }
    }
    rows
}

/// The protocol of `novaml eval predict`: which models, how they are configured, how each
/// series is split.
#[derive(Debug, Clone, Copy)]
pub struct Backtest<'a> {
    /// The models, in order (the ensemble weighs the models fitted before it).
    pub kinds: &'a [ModelKind],
    /// Windowing, network and training.
    pub cfg: &'a FitConfig,
    /// Share of the rows before the test part used for validation.
    pub validation: f64,
    /// The held-out tail's share of each series.
    pub test_fraction: f64,
}

impl Backtest<'_> {
    /// Backtests every model on `frame` (the series `name`, read from `file`): fitted on the
    /// rows before the test part, each predicts every test origin. Returns the report and
    /// every model's prediction rows.
    pub fn series(
        &self,
        name: &str,
        file: &str,
        frame: &SeriesFrame,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(SeriesReport, BTreeMap<ModelKind, Vec<PredRow>>), BacktestError> {
        evaluate_series(name, file, frame, self, &BTreeMap::new(), progress)
    }

    /// The backtest with the boosted trees and the LSTM (those of [`Backtest::kinds`]) as global
    /// models over all `series` (name, file, frame), each fitted once on every series' training
    /// rows and early-stopped on their validation rows; the other models fit per series, and
    /// the ensemble weighs global and local members alike. With `cold_start`, each series is
    /// predicted by global models fitted on the *others* only (one fit per series), as a series
    /// the fleet has never seen would be.
    pub fn global(
        &self,
        series: &[(String, String, SeriesFrame)],
        cold_start: bool,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<GlobalRun, BacktestError> {
        let cfg = self.cfg;
        let splits = series
            .iter()
            .map(|(name, _, frame)| {
                Split::new(frame.len(), self.validation, self.test_fraction, &cfg.data).map_err(
                    |source| BacktestError::Split {
                        series: name.clone(),
                        source,
                    },
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let global_kinds: Vec<ModelKind> = self
            .kinds
            .iter()
            .copied()
            .filter(|k| matches!(k, ModelKind::Gbm | ModelKind::Lstm))
            .collect();
        let pooled = |skip: Option<usize>,
                      progress: &mut dyn FnMut(Progress<'_>)|
         -> Result<(BTreeMap<ModelKind, Model>, f64), BacktestError> {
            let t0 = std::time::Instant::now();
            let members: Vec<(&SeriesFrame, Split)> = series
                .iter()
                .zip(&splits)
                .enumerate()
                .filter(|(i, _)| Some(*i) != skip)
                .map(|(_, ((_, _, f), s))| (f, *s))
                .collect();
            let mut models = BTreeMap::new();
            for &kind in &global_kinds {
                progress(Progress::Pooling(kind, members.len()));
                let mut on_epoch = |r: &EpochReport| progress(Progress::Epoch(kind, r));
                let g = fit_global(kind, &members, cfg, &mut on_epoch).map_err(|source| {
                    BacktestError::Model {
                        series: skip.map_or_else(
                            || "global".to_owned(),
                            |i| format!("global without {}", series[i].0),
                        ),
                        model: kind.as_str(),
                        source,
                    }
                })?;
                models.insert(kind, g.model);
            }
            Ok((models, t0.elapsed().as_secs_f64()))
        };
        let mut fit_seconds = 0.0;
        let mut shared = BTreeMap::new();
        if !cold_start {
            let (m, secs) = pooled(None, progress)?;
            fit_seconds += secs;
            shared = m;
        }
        let mut out = Vec::with_capacity(series.len());
        for (i, (name, file, frame)) in series.iter().enumerate() {
            let own;
            let models = if cold_start {
                let (m, secs) = pooled(Some(i), progress)?;
                fit_seconds += secs;
                own = m;
                &own
            } else {
                &shared
            };
            out.push(evaluate_series(name, file, frame, self, models, progress)?);
        }
        Ok(GlobalRun {
            series: out,
            global_fit_seconds: fit_seconds,
        })
    }
}

/// What [`Backtest::global`] returns.
#[derive(Debug)]
pub struct GlobalRun {
    /// Per series: the report and every model's prediction rows.
    pub series: Vec<(SeriesReport, BTreeMap<ModelKind, Vec<PredRow>>)>,
    /// Seconds spent fitting the global models.
    pub global_fit_seconds: f64,
}

/// The backtest of one series; a kind in `global` is that fitted global model rather than one
/// fitted here (its fit time is not counted in the series' `fit_seconds`).
fn evaluate_series(
    name: &str,
    file: &str,
    frame: &SeriesFrame,
    b: &Backtest<'_>,
    global: &BTreeMap<ModelKind, Model>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(SeriesReport, BTreeMap<ModelKind, Vec<PredRow>>), BacktestError> {
    let (kinds, cfg) = (b.kinds, b.cfg);
    let n = frame.len();
    let split = Split::new(n, b.validation, b.test_fraction, &cfg.data).map_err(|source| {
        BacktestError::Split {
            series: name.to_owned(),
            source,
        }
    })?;
    let scale = naive_scale(&frame.target[..split.train_end]);
    let mut models = BTreeMap::new();
    let mut all_rows = BTreeMap::new();
    let mut members = Vec::new();
    let mut origins = 0;
    for &kind in kinds {
        let failed = |source| BacktestError::Model {
            series: name.to_owned(),
            model: kind.as_str(),
            source,
        };
        progress(Progress::Fitting(kind));
        let t0 = std::time::Instant::now();
        let mut on_epoch = |r: &EpochReport| progress(Progress::Epoch(kind, r));
        // The ensemble weighs the models already fitted here rather than fitting them again.
        let fitted = if kind == ModelKind::Ensemble && !members.is_empty() {
            ensemble_of(members.clone(), frame, split, cfg, &mut on_epoch)
        } else if let Some(g) = global.get(&kind) {
            serve_global(g, frame, split, cfg)
        } else {
            fit(kind, frame, split, cfg, None, &mut on_epoch)
        }
        .map_err(failed)?;
        let fit_seconds = t0.elapsed().as_secs_f64();
        if kind != ModelKind::Ensemble {
            members.push(fitted.predictor.model.clone());
        }
        let preds = fitted
            .predictor
            .predict_range(frame, split.test_origins(n), true)
            .map_err(failed)?;
        origins = preds.len();
        let guarded = preds.iter().filter(|p| p.forecast.guard.is_some()).count();
        let rows = rows_of(&preds, frame);
        let horizons = per_horizon(&rows, cfg.data.horizon, scale);
        let mut summary = summarize(&horizons).ok_or_else(|| BacktestError::NoTestWindows {
            series: name.to_owned(),
        })?;
        summary.worst_week_rel_mae = worst_week(&rows);
        summary.guarded = guarded as f64 / origins.max(1) as f64;
        let epochs = fitted.history.len();
        models.insert(
            kind,
            ModelReport {
                summary,
                val_mae: fitted.val_mae.iter().sum::<f64>() / fitted.val_mae.len() as f64,
                fit_seconds,
                epochs,
                seconds_per_epoch: (epochs > 0)
                    .then(|| fitted.history.iter().map(|r| r.seconds).sum::<f64>() / epochs as f64),
                horizons,
            },
        );
        all_rows.insert(kind, rows);
        progress(Progress::Scored(kind));
    }
    let (&selected, best) = models
        .iter()
        .min_by(|x, y| x.1.val_mae.total_cmp(&y.1.val_mae))
        .ok_or_else(|| BacktestError::NoTestWindows {
            series: name.to_owned(),
        })?;
    let report = SeriesReport {
        file: file.to_owned(),
        rows: n,
        train_rows: split.train_end,
        validation_rows: split.val_end - split.train_end,
        test_rows: n - split.val_end,
        test_origins: origins,
        selected,
        selected_summary: best.summary.clone(),
        models,
    };
    Ok((report, all_rows))
}

/// The medians over series of one model's figures (`kind` `None`: the selected model's).
#[derive(Debug, Clone, Serialize)]
pub struct Overall {
    // Alphabetical, as the report has always printed them.
    /// Mean interval coverage.
    pub mean_coverage: f64,
    /// Median of the accuracy@5 %.
    pub median_accuracy_5pct: Option<f64>,
    /// Median of the last step's relative MAE.
    pub median_last_rel_mae: Option<f64>,
    /// Median of the mean MASE.
    pub median_mase: Option<f64>,
    /// Median over series of the median relative MAE over steps.
    pub median_rel_mae: Option<f64>,
}

/// [`Overall`] of `kind` (`None`: the selected model) over `reports`.
pub fn overall(reports: &[SeriesReport], kind: Option<ModelKind>) -> Overall {
    fn pick(r: &SeriesReport, kind: Option<ModelKind>) -> Option<&PredSummary> {
        match kind {
            Some(k) => r.models.get(&k).map(|m| &m.summary),
            None => Some(&r.selected_summary),
        }
    }
    let med = |f: fn(&PredSummary) -> f64| {
        median(
            &reports
                .iter()
                .filter_map(|r| pick(r, kind))
                .map(f)
                .collect::<Vec<_>>(),
        )
    };
    Overall {
        median_rel_mae: med(|s| s.median_rel_mae),
        median_last_rel_mae: med(|s| s.last_rel_mae),
        median_mase: med(|s| s.mean_mase),
        median_accuracy_5pct: med(|s| s.accuracy_5pct),
        mean_coverage: reports
            .iter()
            .filter_map(|r| pick(r, kind))
            .map(|s| s.coverage)
            .sum::<f64>()
            / reports.len() as f64,
    }
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
