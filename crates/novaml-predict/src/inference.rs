//! A trained predictor: any of the models behind one type, fit on a frame's training part,
//! calibrated on its validation part, serving forecasts with intervals and degradation risk.
//!
//! - [`artifact`]: the predictor and its parts as saved (model kinds and parameters, windowing,
//!   scalers, calibration), forecasts;
//! - [`serve`]: forecasts from any origin with rolling conformal intervals, degradation risk;
//! - [`fit`](mod@fit): fitting one model or the ensemble, calibration;
//! - [`global`]: one model fitted across many series, serving any of them or a new one.

pub mod artifact;
pub mod fit;
pub mod global;
pub mod serve;

pub use artifact::{
    DataRange, FORMAT_VERSION, Forecast, GUARD_LIMIT, Guarded, Model, ModelKind, Prediction,
    Predictor,
};
pub use fit::{FitConfig, Fitted, NetShape, combine, ensemble_of, fit};
pub use global::{Global, fit_global, recalibrate_for, serve_global};
