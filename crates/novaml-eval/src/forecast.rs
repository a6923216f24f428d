//! Forecast accuracy: MASE, sMAPE, wMAPE and interval coverage of one multi-step forecast; and
//! the held-out evaluation behind `novaml eval forecast` ([`evaluate_origin`]): the model chosen
//! by backtest on a series' training part forecasts its whole tail in one go, and every candidate
//! forecasts the same tail directly for comparison.

use std::collections::BTreeMap;

use novaml_core::stats::{median, quantile};
use novaml_forecast::ForecastError;
use novaml_forecast::capacity::QuantileForecast;
use novaml_forecast::models::{ModelKind, Regular, forecast, season_of};
use novaml_forecast::select::{SelectConfig, select_and_forecast};
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

/// One series' held-out figures.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesReport {
    /// The file.
    pub file: String,
    /// Rows on the grid.
    pub rows: usize,
    /// Training rows.
    pub train: usize,
    /// Held-out rows (forecast from the origin after `train` rows).
    pub test: usize,
    /// Which origin: 0 forecasts the series' last `test` rows, 1 the `test` rows before them, …
    pub origin: usize,
    /// Empty buckets filled by interpolation.
    pub gaps_filled: usize,
    /// The selected model.
    pub model: ModelKind,
    /// Its accuracy on the held-out tail.
    pub accuracy: Accuracy,
    /// Coverage of the 50, 80 and 95 % intervals ([`LEVELS`]).
    pub coverage: [f64; 3],
    /// The capacity planner's runway read off this forecast, against what happened
    /// ([`RUNWAY_QUANTILES`]).
    pub runway: Vec<RunwayCheck>,
    /// Selection + fit + forecast time.
    pub fit_seconds: f64,
    /// Backtest MAE of every candidate that ran.
    pub backtest_mae: BTreeMap<ModelKind, f64>,
    /// Every candidate forecasting the same tail directly (no selection), for comparison.
    pub per_model: BTreeMap<ModelKind, Accuracy>,
}

/// Why a series could not be evaluated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForecastEvalError {
    /// Too short for a training part of two seasons.
    #[error("{file}: {rows} rows at {step}s leave {train} for training: need two seasons ({need})")]
    TooShort {
        /// The file.
        file: String,
        /// Rows.
        rows: usize,
        /// Step, seconds.
        step: i64,
        /// Training rows.
        train: usize,
        /// Needed.
        need: usize,
    },
    /// The training part is constant: MASE has no scale.
    #[error("{file}: the training part is constant")]
    Constant {
        /// The file.
        file: String,
    },
    /// Selection or forecasting failed.
    #[error("{file}: {source}")]
    Forecast {
        /// The file.
        file: String,
        /// Why.
        source: ForecastError,
    },
}

/// Interval levels whose coverage every report carries, next to the configured one.
pub const LEVELS: [f64; 3] = [0.5, 0.8, 0.95];

/// Thresholds of the runway check: these quantiles of the training part (1 = its maximum).
pub const RUNWAY_QUANTILES: [f64; 2] = [0.99, 1.0];

/// The runway to one threshold, as the capacity planner reads it off the 80 % interval
/// (`novaml_forecast::capacity::QuantileForecast::runway`), and the real first crossing.
/// Steps are 1-based counts from the origin; `None`: not within the forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunwayCheck {
    /// Quantile of the training part that sets the threshold.
    pub quantile: f64,
    /// The threshold.
    pub threshold: f64,
    /// First step the actual values reach it.
    pub actual: Option<usize>,
    /// First step the upper bound (P90) reaches it: the conservative runway.
    pub p90: Option<usize>,
    /// First step the point forecast reaches it.
    pub p50: Option<usize>,
    /// First step the lower bound (P10) reaches it: the aggressive runway.
    pub p10: Option<usize>,
    /// The real crossing fell inside the P10–P90 runway (no crossing within the forecast counts
    /// as inside when P10 did not cross either).
    pub inside: bool,
}

fn first_crossing(values: &[f64], threshold: f64) -> Option<usize> {
    values.iter().position(|v| *v >= threshold).map(|i| i + 1)
}

/// Runway checks of one forecast (`lower`/`yhat`/`upper` an 80 % interval) against `actual`,
/// the forecast read by the planner's own [`QuantileForecast::runway`].
fn runway_checks(
    train: &[f64],
    actual: &[f64],
    yhat: &[f64],
    lower: &[f64],
    upper: &[f64],
) -> Vec<RunwayCheck> {
    // One-second steps: the planner's runway in seconds is the 1-based step.
    let plan = QuantileForecast {
        step: 1,
        start: 1,
        p10: lower.to_vec(),
        p50: yhat.to_vec(),
        p90: upper.to_vec(),
    };
    let steps = |r: Option<f64>| r.map(|v| v as usize);
    RUNWAY_QUANTILES
        .iter()
        .filter_map(|&q| {
            let threshold = quantile(train, q)?;
            let runway = plan.runway(threshold);
            let (a, p90, p10) = (
                first_crossing(actual, threshold),
                steps(runway.p90),
                steps(runway.p10),
            );
            // Not before the conservative runway, and not after the aggressive one.
            let not_before_p90 = match (a, p90) {
                (_, None) => a.is_none(),
                (None, Some(_)) => true,
                (Some(a), Some(p)) => a >= p,
            };
            let not_after_p10 = match (a, p10) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(p)) => a <= p,
            };
            Some(RunwayCheck {
                quantile: q,
                threshold,
                actual: a,
                p90,
                p50: steps(runway.p50),
                p10,
                inside: not_before_p90 && not_after_p10,
            })
        })
        .collect()
}

/// Forecasts the regular series `s` (from `file`, with `filled` interpolated gaps) from one
/// origin and scores what followed. With `test` the rows of `test_fraction`, origin `k` fits on
/// the rows before the last `(k + 1)·test` (selecting with `cfg`) and forecasts the `test` rows
/// after them: origin 0 holds out the series' tail. Several origins of one series test the
/// intervals on more than one regime: a level that shifts after one origin is history for a
/// later one. MASE is scaled by the in-sample seasonal naive MAE (season: one day of steps).
pub fn evaluate_origin(
    file: &str,
    s: Regular<'_>,
    filled: usize,
    test_fraction: f64,
    origin: usize,
    cfg: &SelectConfig,
) -> Result<SeriesReport, ForecastEvalError> {
    let n = s.y.len();
    let test = ((n as f64) * test_fraction).round() as usize;
    let train = n.saturating_sub(test.saturating_mul(origin + 1));
    let m = season_of(s.step);
    if test == 0 || train < 2 * m {
        return Err(ForecastEvalError::TooShort {
            file: file.to_owned(),
            rows: n,
            step: s.step,
            train,
            need: 2 * m,
        });
    }
    let fit_part = Regular {
        start: s.start,
        step: s.step,
        y: &s.y[..train],
    };
    let t0 = std::time::Instant::now();
    let sel =
        select_and_forecast(fit_part, test, cfg).map_err(|source| ForecastEvalError::Forecast {
            file: file.to_owned(),
            source,
        })?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    let actual = &s.y[train..train + test];
    let acc =
        accuracy(&s.y[..train], m, actual, &sel.yhat, &sel.lower, &sel.upper).ok_or_else(|| {
            ForecastEvalError::Constant {
                file: file.to_owned(),
            }
        })?;
    let mut coverage = [0.0; 3];
    for (c, level) in coverage.iter_mut().zip(LEVELS) {
        let (lo, hi) = sel.interval(level);
        let inside = (0..test)
            .filter(|&i| lo[i] <= actual[i] && actual[i] <= hi[i])
            .count();
        *c = inside as f64 / test as f64;
    }
    let (lo80, hi80) = sel.interval(0.8);
    let runway = runway_checks(&s.y[..train], actual, &sel.yhat, &lo80, &hi80);
    let mut per_model = BTreeMap::new();
    for &k in &cfg.candidates {
        if let Ok(f) = forecast(k, fit_part, test)
            && let Some(acc) = accuracy(&s.y[..train], m, actual, &f, &f, &f)
        {
            per_model.insert(k, acc);
        }
    }
    Ok(SeriesReport {
        file: file.to_owned(),
        rows: n,
        train,
        test,
        origin,
        gaps_filled: filled,
        model: sel.model,
        accuracy: acc,
        coverage,
        runway,
        fit_seconds,
        backtest_mae: sel.backtest_mae,
        per_model,
    })
}

/// The figures over all series.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Median MASE of the selected models.
    pub median_mase: Option<f64>,
    /// Mean interval coverage.
    pub mean_coverage: f64,
    /// Mean coverage of the 50, 80 and 95 % intervals.
    pub mean_coverage_levels: [f64; 3],
    /// Runway checks whose real crossing fell inside the P10–P90 runway, and all checks.
    pub runway_inside: (usize, usize),
    /// The same, counting only checks whose threshold was reached within the forecast.
    pub runway_inside_crossed: (usize, usize),
    /// Median MASE of each candidate forecasting directly.
    pub median_mase_per_model: BTreeMap<&'static str, Option<f64>>,
}

fn count_inside(reports: &[SeriesReport], crossed_only: bool) -> (usize, usize) {
    reports
        .iter()
        .flat_map(|r| &r.runway)
        .filter(|c| !crossed_only || c.actual.is_some())
        .fold((0, 0), |(i, n), c| (i + usize::from(c.inside), n + 1))
}

/// Summarises `reports` of the candidates `candidates`.
pub fn summarize(reports: &[SeriesReport], candidates: &[ModelKind]) -> Summary {
    let col = |f: &dyn Fn(&SeriesReport) -> f64| reports.iter().map(f).collect::<Vec<f64>>();
    Summary {
        median_mase: median(&col(&|r| r.accuracy.mase)),
        mean_coverage: col(&|r| r.accuracy.coverage).iter().sum::<f64>() / reports.len() as f64,
        mean_coverage_levels: [0, 1, 2]
            .map(|k| col(&|r| r.coverage[k]).iter().sum::<f64>() / reports.len() as f64),
        runway_inside: count_inside(reports, false),
        runway_inside_crossed: count_inside(reports, true),
        median_mase_per_model: candidates
            .iter()
            .map(|k| {
                let v: Vec<f64> = reports
                    .iter()
                    .filter_map(|r| r.per_model.get(k).map(|a| a.mase))
                    .collect();
                (k.as_str(), median(&v))
            })
            .collect(),
    }
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
    }

    #[test]
    fn the_runway_check_reads_crossings_as_the_planner_does() {
        // Training max 10 (the 99th percentile 9.91); forecast bounds cross at chosen steps.
        let train: Vec<f64> = (1..=10).map(f64::from).collect();
        let yhat = [5.0, 6.0, 7.0, 8.0, 9.0, 9.5];
        let upper = [8.0, 9.0, 10.0, 11.0, 12.0, 13.0]; // reaches 10 at step 3
        let never = [0.0; 6];
        let check = |actual: &[f64], lower: &[f64]| {
            runway_checks(&train, actual, &yhat, lower, &upper)
                .into_iter()
                .find(|c| c.quantile == 1.0)
                .expect("the maximum's check")
        };
        // Crossing at step 5, P90 at 3, P10 never: inside.
        let c = check(&[0.0, 0.0, 0.0, 0.0, 10.0, 0.0], &never);
        assert_eq!(
            (c.actual, c.p90, c.p50, c.p10),
            (Some(5), Some(3), None, None)
        );
        assert!(c.inside);
        // Crossing at step 2, before the conservative runway: outside.
        assert!(!check(&[0.0, 10.0, 0.0, 0.0, 0.0, 0.0], &never).inside);
        // No crossing, but P10 crossed at step 4: outside; P10 never: inside.
        let lower = [0.0, 0.0, 0.0, 10.0, 0.0, 0.0];
        assert!(!check(&never, &lower).inside);
        assert!(check(&never, &never).inside);
        // Crossing at 4 with P10 at 4: inside (the bounds are inclusive).
        assert!(check(&[0.0, 0.0, 0.0, 10.0, 0.0, 0.0], &lower).inside);
        assert_eq!(
            runway_checks(&train, &never, &yhat, &never, &upper).len(),
            2
        );
    }

    #[test]
    fn earlier_origins_fit_on_less_and_score_the_stretch_before() {
        // 40 days hourly: a daily shape, and the level doubled in the last 10 days.
        let y: Vec<f64> = (0..24 * 40)
            .map(|i| {
                let level = if i >= 24 * 30 { 20.0 } else { 10.0 };
                level + (i as f64 * std::f64::consts::TAU / 24.0).sin() + (i % 7) as f64 * 0.1
            })
            .collect();
        let s = Regular {
            start: 1_700_000_000,
            step: 3_600,
            y: &y,
        };
        let cfg = SelectConfig {
            candidates: vec![ModelKind::SeasonalNaive],
            ..SelectConfig::default()
        };
        let last = evaluate_origin("x", s, 0, 0.25, 0, &cfg).expect("origin 0");
        let before = evaluate_origin("x", s, 0, 0.25, 1, &cfg).expect("origin 1");
        assert_eq!((last.train, last.test, last.origin), (720, 240, 0));
        assert_eq!((before.train, before.test, before.origin), (480, 240, 1));
        // Origin 1's stretch (days 20..30) has the old level: its forecast errs little; the
        // last one meets the doubled level.
        assert!(before.accuracy.mae < 0.5, "{}", before.accuracy.mae);
        assert!(last.accuracy.mae > 5.0, "{}", last.accuracy.mae);
        for r in [&last, &before] {
            assert!(r.coverage[0] <= r.coverage[1] && r.coverage[1] <= r.coverage[2]);
            assert_eq!(r.coverage[1], r.accuracy.coverage);
        }
        // An origin that leaves no training part is refused.
        assert!(evaluate_origin("x", s, 0, 0.25, 3, &cfg).is_err());
    }
}
