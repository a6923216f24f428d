//! The artifact: what a fitted predictor is (model parameters, windowing, train-only scalers,
//! conformal calibration, the rows it saw) and what it answers (forecasts per origin). Saved and
//! loaded by the registry; checked before it serves.

use serde::{Deserialize, Serialize};

use novaml_features::dataset::{DataConfig, Scalers};

use crate::PredictError;
use crate::baselines::Ridge;
use crate::gbm::Gbm;
use crate::model::Network;

/// Version of the artifact format; artifacts of another version are refused.
pub const FORMAT_VERSION: u32 = 1;

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// The last value.
    Naive,
    /// The value one season earlier.
    SeasonalNaive,
    /// Ridge regression on lag features.
    Ridge,
    /// Gradient-boosted trees on lag features.
    Gbm,
    /// The LSTM.
    Lstm,
    /// A weighted mean of the others (the LSTM as several networks), weighted on the validation
    /// windows.
    Ensemble,
}

impl ModelKind {
    /// Every kind.
    pub const ALL: [Self; 6] = [
        Self::Naive,
        Self::SeasonalNaive,
        Self::Ridge,
        Self::Gbm,
        Self::Lstm,
        Self::Ensemble,
    ];

    /// The name used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Naive => "naive",
            Self::SeasonalNaive => "seasonal_naive",
            Self::Ridge => "ridge",
            Self::Gbm => "gbm",
            Self::Lstm => "lstm",
            Self::Ensemble => "ensemble",
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = PredictError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                PredictError::config(
                    "model",
                    format!(
                        "unknown model {s:?} (naive, seasonal_naive, ridge, gbm, lstm, ensemble)"
                    ),
                )
            })
    }
}

/// A fitted model's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Model {
    /// The last value.
    Naive,
    /// One season earlier.
    SeasonalNaive,
    /// Ridge.
    Ridge(Ridge),
    /// Gradient-boosted trees.
    Gbm(Gbm),
    /// The LSTM (weights stored beside the artifact's config), learning the residual of a ridge
    /// base model when `base` is set.
    Lstm {
        /// The network.
        net: Network,
        /// The linear base whose errors the network corrects.
        base: Option<Ridge>,
    },
    /// A global model: fitted on the windows of many series, each window scaled by its own
    /// spread (see [`super::global`]); it sees every window scaled that way and its predictions
    /// are scaled back.
    Pooled {
        /// The model fitted on the scaled windows (never an ensemble).
        inner: Box<Model>,
    },
    /// A weighted mean of other models' forecasts (median and interval bounds alike).
    Ensemble {
        /// The members.
        members: Vec<Model>,
        /// Weights `[horizon][member]`, each row non-negative and summing to 1.
        weights: Vec<Vec<f32>>,
    },
}

impl Model {
    /// Its kind.
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Naive => ModelKind::Naive,
            Self::SeasonalNaive => ModelKind::SeasonalNaive,
            Self::Ridge(_) => ModelKind::Ridge,
            Self::Gbm(_) => ModelKind::Gbm,
            Self::Lstm { .. } => ModelKind::Lstm,
            Self::Pooled { inner } => inner.kind(),
            Self::Ensemble { .. } => ModelKind::Ensemble,
        }
    }

    /// Checks that every ensemble in the model (nested ones included) has one weight row per
    /// horizon, one weight per member, non-negative and summing to 1.
    pub(super) fn check_weights(&self, horizon: usize) -> Result<(), PredictError> {
        if let Self::Pooled { inner } = self {
            return inner.check_weights(horizon);
        }
        let Self::Ensemble { members, weights } = self else {
            return Ok(());
        };
        let bad = weights.len() != horizon
            || weights.iter().any(|w| {
                w.len() != members.len()
                    || w.iter().any(|v| !v.is_finite() || *v < 0.0)
                    || (w.iter().sum::<f32>() - 1.0).abs() > 1e-3
            });
        if bad {
            return Err(PredictError::Data(format!(
                "the ensemble's weights do not fit its {} members and {horizon} horizons",
                members.len()
            )));
        }
        members.iter().try_for_each(|m| m.check_weights(horizon))
    }

    /// Every network in the model (an ensemble's members' included), in a fixed order.
    pub fn networks(&self) -> Vec<&Network> {
        match self {
            Self::Lstm { net, .. } => vec![net],
            Self::Pooled { inner } => inner.networks(),
            Self::Ensemble { members, .. } => members.iter().flat_map(Self::networks).collect(),
            _ => Vec::new(),
        }
    }

    /// Every boosted-tree model in the model (an ensemble's members' included), mutable, in a
    /// fixed order (the registry stores their trees apart).
    pub fn boosters_mut(&mut self) -> Vec<&mut Gbm> {
        match self {
            Self::Gbm(g) => vec![g],
            Self::Pooled { inner } => inner.boosters_mut(),
            Self::Ensemble { members, .. } => {
                members.iter_mut().flat_map(Self::boosters_mut).collect()
            }
            _ => Vec::new(),
        }
    }

    /// [`Model::networks`], mutable (the registry stores their weights apart).
    pub fn networks_mut(&mut self) -> Vec<&mut Network> {
        match self {
            Self::Lstm { net, .. } => vec![net],
            Self::Pooled { inner } => inner.networks_mut(),
            Self::Ensemble { members, .. } => {
                members.iter_mut().flat_map(Self::networks_mut).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// The guard's limit: a model whose recent error exceeds the last value's is not served. No
/// tuning: 1 is the break-even point; above it the last value is the better forecast on the
/// evidence at hand.
pub const GUARD_LIMIT: f64 = 1.0;

pub(crate) fn default_guard() -> f64 {
    GUARD_LIMIT
}

/// The rows a model was trained and calibrated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRange {
    /// First training row's timestamp, ms.
    pub start_ms: i64,
    /// Last validation row's timestamp, ms.
    pub end_ms: i64,
    /// Rows seen (training + validation).
    pub rows: usize,
}

/// A fitted, calibrated predictor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predictor {
    /// [`FORMAT_VERSION`] at save time.
    pub format: u32,
    /// The model.
    pub model: Model,
    /// Windowing.
    pub data: DataConfig,
    /// Scalers fit on the training rows.
    pub scalers: Scalers,
    /// Quantiles the LSTM predicts (the interval is the outermost pair).
    pub quantiles: Vec<f32>,
    /// Nominal interval coverage, e.g. 0.8.
    pub level: f64,
    /// Conformal adjustment per horizon, in scaled units, added to both sides.
    pub calibration: Vec<f64>,
    /// Rolling recalibration: at each origin the adjustment is recomputed from the scores of the
    /// last `recalibrate` origins whose outcomes are known by then, when the data holds at least
    /// half that many; `calibration` otherwise (0 = always; artifacts from before it).
    #[serde(default)]
    pub recalibrate: usize,
    /// The guard against a model worse than the last value: at each origin, where the model's
    /// mean absolute error over the rolling recalibration's known outcomes is more than `guard`
    /// times the last value's on the same outcomes, the forecast is the last value (with an
    /// interval from its own recent errors) and says so ([`Forecast::guard`]). 0 = off.
    #[serde(default = "default_guard")]
    pub guard: f64,
    /// Grid step, ms.
    pub step_ms: i64,
    /// What it saw.
    pub range: DataRange,
}

impl Predictor {
    /// Checks that the predictor can serve (format, shapes, finite values).
    pub fn check(&self) -> Result<(), PredictError> {
        if self.format != FORMAT_VERSION {
            return Err(PredictError::Data(format!(
                "artifact format {} but this novaml reads format {FORMAT_VERSION}; retrain",
                self.format
            )));
        }
        self.data.check()?;
        if self.calibration.len() != self.data.horizon {
            return Err(PredictError::Data(format!(
                "calibration has {} horizons, the model {}",
                self.calibration.len(),
                self.data.horizon
            )));
        }
        for net in self.model.networks() {
            net.check()?;
            if net.config.inputs != self.data.input_names().len()
                || net.config.outputs != self.data.horizon * self.quantiles.len()
            {
                return Err(PredictError::Data(format!(
                    "the network's shape ({} inputs, {} outputs) does not fit the data \
                     configuration ({} inputs, {} horizons × {} quantiles)",
                    net.config.inputs,
                    net.config.outputs,
                    self.data.input_names().len(),
                    self.data.horizon,
                    self.quantiles.len()
                )));
            }
        }
        self.model.check_weights(self.data.horizon)
    }
}

/// Predictions for one origin, in the metric's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// The origin row's timestamp, ms (the last observed value).
    pub origin_ms: i64,
    /// The last observed value.
    pub last: f64,
    /// Timestamps of the predicted steps, ms.
    pub timestamps: Vec<i64>,
    /// Point forecast (median) per step.
    pub predicted: Vec<f64>,
    /// Lower interval bound per step.
    pub lower: Vec<f64>,
    /// Upper interval bound per step.
    pub upper: Vec<f64>,
    /// Set where the guard served the last value instead of the model (see
    /// [`Predictor::guard`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guarded>,
}

/// Why a forecast is the last value rather than the model's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Guarded {
    /// The model's mean absolute error over the recent known outcomes (the rolling
    /// recalibration's origins) divided by the last value's on the same outcomes.
    pub ratio: f64,
}

/// One origin's prediction in metric units, with the truth where known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Origin row.
    pub origin: usize,
    /// Predicted, lower, upper per horizon.
    pub forecast: Forecast,
}
