//! Feature engineering for time series, with no look-ahead: every feature of row `t` is computed
//! from rows `≤ t` only (tested by recomputing on every prefix).
//!
//! - [`FeatureConfig`] → [`build`]: a [`FeatureFrame`] of calendar, rolling, quantile, z-score,
//!   EWMA, difference, lag, FFT spectral and spike features; [`calendar_columns`] alone.
//! - [`grid`]: irregular points → a regular grid by bucket means; gap interpolation.
//! - [`dataset`]: the supervised datasets every prediction model learns from: a regular
//!   [`SeriesFrame`] → scaled input windows whose labels are the true future values, a
//!   chronological [`Split`], [`Scalers`] fit on the training rows only.

pub mod dataset;
mod error;
mod frame;
pub mod grid;
mod spectral;
mod stats;

pub use dataset::{
    DataConfig, Inputs, Scale, Scalers, SeriesFrame, Split, Windows, inputs, windows,
};
pub use error::FeatureError;
pub use frame::{FeatureConfig, FeatureFrame, build, calendar_columns};
pub use spectral::{SpectralFeatures, spectral_features};
