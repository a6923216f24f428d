//! Forecasting models behind one interface: point forecasts of a regular series (intervals come
//! from [`crate::select`]'s conformal calibration, the same way for every model).

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_mstl::MSTLModel;
use augurs_prophet::{Prophet, ProphetOptions, TrainingData};
use serde::{Deserialize, Serialize};

use crate::ForecastError;
use crate::prophet::LbfgsOptimizer;

/// A model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// The value one season ago (the peer that is hardest to beat on VM CPU).
    SeasonalNaive,
    /// The mean of the same phase over the last seven seasons (a week of days): seasonal naive
    /// without its noise.
    SeasonalMean,
    /// Least-squares line over the last four seasons, extrapolated.
    LinearTrend,
    /// AutoETS (augurs), non-seasonal: augurs' seasonal ETS is not implemented.
    Ets,
    /// MSTL (augurs): daily (and weekly, with two weeks of history) seasonal components by STL,
    /// the trend by non-seasonal AutoETS.
    Mstl,
    /// Prophet (augurs) with our L-BFGS optimizer: changepoints, daily/weekly/yearly
    /// seasonality as the history allows.
    Prophet,
    /// The mean of seasonal mean, MSTL and Prophet: combinations are robust where each model
    /// fails differently.
    Ensemble,
}

impl ModelKind {
    /// Every model, in a stable order.
    pub const ALL: [Self; 7] = [
        Self::SeasonalNaive,
        Self::SeasonalMean,
        Self::LinearTrend,
        Self::Ets,
        Self::Mstl,
        Self::Prophet,
        Self::Ensemble,
    ];

    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SeasonalNaive => "seasonal_naive",
            Self::SeasonalMean => "seasonal_mean",
            Self::LinearTrend => "linear_trend",
            Self::Ets => "ets",
            Self::Mstl => "mstl",
            Self::Prophet => "prophet",
            Self::Ensemble => "ensemble",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A regular series: values at `start + i·step` seconds.
#[derive(Debug, Clone, Copy)]
pub struct Regular<'a> {
    /// Timestamp of the first value (Unix seconds).
    pub start: i64,
    /// Spacing (seconds).
    pub step: i64,
    /// Values (finite).
    pub y: &'a [f64],
}

/// Options of the models that take them (Prophet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelOptions {
    /// Logistic growth whose trend saturates at this capacity (e.g. 100 for a utilisation in
    /// percent; seasonality still adds on top, as in Prophet); linear growth when unset.
    pub cap: Option<f64>,
    /// Multiplicative seasonality (the daily swing grows with the level).
    pub multiplicative: bool,
    /// Calendar events (holidays, maintenance windows): name and `[start, end]` in Unix seconds.
    /// Occurrences of one name share one effect, so a recurring window in the history informs
    /// its future occurrences.
    pub events: Vec<(String, i64, i64)>,
}

/// Rows per season for the step: one day.
pub fn season_of(step: i64) -> usize {
    ((86_400 / step.max(1)) as usize).max(1)
}

fn model_err(model: &'static str) -> impl Fn(String) -> ForecastError {
    move |reason| ForecastError::Model { model, reason }
}

/// Point forecast of `horizon` steps after the series, default options.
pub fn forecast(
    kind: ModelKind,
    s: Regular<'_>,
    horizon: usize,
) -> Result<Vec<f64>, ForecastError> {
    forecast_with(kind, s, horizon, &ModelOptions::default())
}

/// Point forecast of `horizon` steps after the series.
pub fn forecast_with(
    kind: ModelKind,
    s: Regular<'_>,
    horizon: usize,
    o: &ModelOptions,
) -> Result<Vec<f64>, ForecastError> {
    let y = s.y;
    let m = season_of(s.step);
    if y.len() < 2 * m {
        return Err(ForecastError::InvalidInput(format!(
            "{} rows: fewer than two seasons of {m}",
            y.len()
        )));
    }
    match kind {
        ModelKind::SeasonalNaive => Ok((0..horizon).map(|h| y[y.len() - m + h % m]).collect()),
        ModelKind::SeasonalMean => {
            let k = (y.len() / m).min(7);
            Ok((0..horizon)
                .map(|h| (1..=k).map(|j| y[y.len() - j * m + h % m]).sum::<f64>() / k as f64)
                .collect())
        }
        ModelKind::LinearTrend => {
            let w = &y[y.len().saturating_sub(4 * m)..];
            let n = w.len() as f64;
            let mx = (n - 1.0) / 2.0;
            let my = w.iter().sum::<f64>() / n;
            let (mut sxy, mut sxx) = (0.0, 0.0);
            for (i, v) in w.iter().enumerate() {
                let dx = i as f64 - mx;
                sxy += dx * (v - my);
                sxx += dx * dx;
            }
            let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
            Ok((0..horizon).map(|h| my + b * (n + h as f64 - mx)).collect())
        }
        ModelKind::Ets => {
            let fitted = AutoETS::non_seasonal()
                .fit(y)
                .map_err(|e| model_err("ets")(e.to_string()))?;
            fitted
                .predict(horizon, None)
                .map(|f| f.point)
                .map_err(|e| model_err("ets")(e.to_string()))
        }
        ModelKind::Mstl => {
            let mut periods = vec![m];
            if y.len() >= 2 * 7 * m {
                periods.push(7 * m);
            }
            let model = MSTLModel::new(periods, AutoETS::non_seasonal().into_trend_model());
            let fitted = model.fit(y).map_err(|e| model_err("mstl")(e.to_string()))?;
            fitted
                .predict(horizon, None)
                .map(|f| f.point)
                .map_err(|e| model_err("mstl")(e.to_string()))
        }
        ModelKind::Prophet => {
            let perr = model_err("prophet");
            let ds: Vec<i64> = (0..y.len() as i64).map(|i| s.start + i * s.step).collect();
            let mut data = TrainingData::new(ds, y.to_vec()).map_err(|e| perr(e.to_string()))?;
            let mut opts = ProphetOptions {
                // Intervals come from the conformal calibration, not Prophet's sampling.
                uncertainty_samples: 0,
                ..ProphetOptions::default()
            };
            if let Some(cap) = o.cap {
                if !(cap.is_finite() && y.iter().all(|v| *v < cap)) {
                    return Err(ForecastError::InvalidInput(format!(
                        "the capacity {cap} is not above every value of the history"
                    )));
                }
                opts.growth = augurs_prophet::GrowthType::Logistic;
                data = data
                    .with_cap(vec![cap; y.len()])
                    .map_err(|e| perr(e.to_string()))?;
            }
            if o.multiplicative {
                opts.seasonality_mode = augurs_prophet::FeatureMode::Multiplicative;
            }
            let mut events: std::collections::HashMap<
                String,
                Vec<augurs_prophet::HolidayOccurrence>,
            > = std::collections::HashMap::new();
            for (name, a, b) in &o.events {
                events
                    .entry(name.clone())
                    .or_default()
                    .push(augurs_prophet::HolidayOccurrence::new(*a, *b));
            }
            opts.holidays = events
                .into_iter()
                .map(|(k, v)| (k, augurs_prophet::Holiday::new(v)))
                .collect();
            let mut p = Prophet::new(opts, LbfgsOptimizer::default());
            p.fit(data, Default::default())
                .map_err(|e| perr(e.to_string()))?;
            let last = s.start + (y.len() as i64 - 1) * s.step;
            let future: Vec<i64> = (1..=horizon as i64).map(|h| last + h * s.step).collect();
            let mut pd = augurs_prophet::PredictionData::new(future);
            if let Some(cap) = o.cap {
                pd = pd
                    .with_cap(vec![cap; horizon])
                    .map_err(|e| perr(e.to_string()))?;
            }
            let pred = p.predict(pd).map_err(|e| perr(e.to_string()))?;
            Ok(pred.yhat.point)
        }
        ModelKind::Ensemble => {
            let parts = [ModelKind::SeasonalMean, ModelKind::Mstl, ModelKind::Prophet]
                .into_iter()
                .map(|k| forecast_with(k, s, horizon, o))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((0..horizon)
                .map(|h| parts.iter().map(|p| p[h]).sum::<f64>() / parts.len() as f64)
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daily_shape(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                50.0 + 0.01 * i as f64
                    + 10.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin()
                    + ((i * 7_919) % 11) as f64 * 0.05
            })
            .collect()
    }

    #[test]
    fn every_model_forecasts_a_seasonal_series() {
        let y = daily_shape(24 * 30);
        let s = Regular {
            start: 1_700_000_000,
            step: 3_600,
            y: &y,
        };
        let truth = daily_shape(24 * 30 + 48);
        for kind in ModelKind::ALL {
            let f = forecast(kind, s, 48).expect("forecasts");
            assert_eq!(f.len(), 48);
            let mae = f
                .iter()
                .zip(&truth[24 * 30..])
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>()
                / 48.0;
            // The seasonal models track the daily shape; the non-seasonal ones stay near the
            // mean (amplitude 10 → MAE about 6.4).
            let limit = match kind {
                ModelKind::LinearTrend | ModelKind::Ets => 8.0,
                // A week's mean lags the 0.24-a-day trend by 3.5 days (≈ 0.84).
                ModelKind::SeasonalMean => 1.5,
                _ => 1.0,
            };
            assert!(mae < limit, "{kind:?}: MAE {mae}");
        }
        assert_eq!(ModelKind::parse("mstl"), Some(ModelKind::Mstl));
    }

    #[test]
    fn too_short_is_an_error() {
        let y = daily_shape(30);
        let s = Regular {
            start: 0,
            step: 3_600,
            y: &y,
        };
        assert!(matches!(
            forecast(ModelKind::Mstl, s, 5),
            Err(ForecastError::InvalidInput(_))
        ));
    }

    #[test]
    fn prophet_learns_a_maintenance_calendar_and_respects_a_cap() {
        // 40 days hourly; every 7th day 02:00–06:00 a maintenance window drops the value by 30.
        let start = 1_700_006_400; // a midnight (UTC)
        let n = 24 * 40;
        let in_window = |i: usize| (i / 24) % 7 == 3 && (2..6).contains(&(i % 24));
        let value = |i: usize| {
            60.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin()
                - if in_window(i) { 30.0 } else { 0.0 }
        };
        let y: Vec<f64> = (0..n).map(value).collect();
        let s = Regular {
            start,
            step: 3_600,
            y: &y,
        };
        let events: Vec<(String, i64, i64)> = (0..8)
            .map(|w| {
                let day = start + (3 + 7 * w) * 86_400;
                ("maintenance".to_owned(), day + 2 * 3_600, day + 5 * 3_600)
            })
            .collect();
        let with = ModelOptions {
            events,
            ..ModelOptions::default()
        };
        let h = 24 * 7;
        let a = forecast_with(ModelKind::Prophet, s, h, &with).expect("forecasts");
        let b = forecast(ModelKind::Prophet, s, h).expect("forecasts");
        // The next window is day 45 (3 + 7·6), hours 2..5; the forecast starts at day 40.
        let at = (45 - 40) * 24 + 3;
        assert!(
            a[at] < value(at + n + 24) - 20.0 + 5.0 && b[at] > a[at] + 15.0,
            "with calendar {} vs without {} (normal {})",
            a[at],
            b[at],
            60.0 + 10.0 * ((at + n) as f64 * std::f64::consts::TAU / 24.0).sin()
        );

        // Logistic growth towards a cap: a climbing series levels off under it.
        let climb: Vec<f64> = (0..n)
            .map(|i| 50.0 + 0.04 * i as f64 + 3.0 * ((i % 24) as f64 / 24.0))
            .collect();
        let c = Regular { y: &climb, ..s };
        let capped = ModelOptions {
            cap: Some(100.0),
            ..ModelOptions::default()
        };
        let f = forecast_with(ModelKind::Prophet, c, 24 * 60, &capped).expect("forecasts");
        // The trend saturates at the cap; the daily swing (0..3) rides on top, as in Prophet.
        let max = f.iter().copied().fold(0.0, f64::max);
        assert!(max < 103.0, "max {max}");
        let linear = forecast(ModelKind::Prophet, c, 24 * 60).expect("forecasts");
        assert!(linear[24 * 60 - 1] > 120.0, "linear growth keeps climbing");
        let low = ModelOptions {
            cap: Some(80.0),
            ..ModelOptions::default()
        };
        assert!(matches!(
            forecast_with(ModelKind::Prophet, c, 24, &low),
            Err(ForecastError::InvalidInput(_))
        ));
    }
}
