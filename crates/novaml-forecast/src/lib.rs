//! Forecasting for capacity planning.
//!
//! - [`prophet`]: Prophet (`augurs-prophet`) fitted by our own L-BFGS on Prophet's MAP objective
//!   with an analytic gradient, so no Stan binary is needed.
//! - [`models`]: seasonal naive, linear trend, AutoETS, MSTL, Prophet and an ensemble behind one
//!   point-forecast function.
//! - [`select`]: model selection by rolling-origin backtest, conformal intervals, resampling.
//! - [`capacity`]: runway per quantile, bottleneck, hosts to add, cost, what-if scenarios;
//!   [`chart`]: SVG charts of history, forecast band and thresholds.

pub mod capacity;
pub mod chart;
mod error;
pub mod metrics;
pub mod models;
pub mod prophet;
pub mod select;

pub use error::ForecastError;
