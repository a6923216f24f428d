//! Performance prediction for novaml: multi-step, multivariate forecasts of a metric (latency,
//! throughput, CPU) with intervals.
//!
//! - [`model`]: a stacked, optionally bidirectional LSTM with an optional attention head and one
//!   output per (horizon, quantile), with explicit backpropagation through time.
//! - [`dataset`]: windows (built by `novaml_features::dataset`: scaled, labels = true future
//!   values) → training batches.
//! - [`training`]: Adam, clipping, learning-rate reduction on plateau, early stopping, best
//!   checkpoint, resumable, deterministic.
//! - [`baselines`]: naive, seasonal naive and a lag-feature ridge model in the same harness.
//! - [`gbm`]: a gradient-boosted lag model (absolute-error loss), one tree ensemble per horizon.
//! - [`inference`]: a trained predictor: forecast with intervals, degradation risk.
//! - [`registry`]: versioned model artifacts with champion/challenger promotion and roll back.

mod error;
mod io;

pub mod baselines;
pub mod dataset;
pub mod gbm;
pub mod inference;
mod kernels;
pub mod model;
pub mod registry;
pub mod training;

pub use error::PredictError;
