//! The evaluation harness: the source of every accuracy figure novaml publishes.
//!
//! - [`nab`]: the Numenta Anomaly Benchmark v1.1 scorer (corpus loading, row weights, the
//!   corpus-wide threshold sweep, normalised scores for the three cost profiles) and the run of
//!   the streaming detector over the corpus (`novaml eval nab`).
//! - [`forecast`]: forecast accuracy (MASE, sMAPE, wMAPE, interval coverage) and the held-out
//!   evaluation of forecasting (`novaml eval forecast`).
//! - [`m4`]: the M4 Hourly benchmark as published, scored with M4's sMAPE, MASE and OWA and
//!   interval coverage (`novaml eval forecast --m4`).
//! - [`smd`]: the Server Machine Dataset's scorer (event-wise F1 at own alerts and at the oracle
//!   threshold, average precision, point-adjusted F1, HitRate@P %, as the data's `score.py`),
//!   its score files, and the multivariate detector's run over it (`novaml eval smd`).
//! - [`predict`]: multi-step prediction accuracy per horizon step (MAE, relative MAE vs naive,
//!   sMAPE, MASE, accuracy@5 %, coverage) and the backtest of every prediction model
//!   (`novaml eval predict`).

pub mod forecast;
pub mod m4;
pub mod nab;
pub mod predict;
pub mod smd;
