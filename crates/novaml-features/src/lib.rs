//! Feature engineering for time series, with no look-ahead: every feature of row `t` is computed
//! from rows `≤ t` only (tested by recomputing on every prefix).
//!
//! - [`FeatureConfig`] → [`build`]: a [`FeatureFrame`] of calendar, rolling, quantile, z-score,
//!   EWMA, difference, lag, FFT spectral and spike features.
//! - [`windowed`]: `(X, y)` rows whose `y` is the true value at `t + h·step` for each horizon,
//!   gap-aware; [`split`] chronologically with an embargo; [`StandardScaler`] fit on train only.

mod dataset;
mod error;
mod frame;
mod spectral;
mod stats;

pub use dataset::{Dataset, Split, StandardScaler, split, windowed};
pub use error::FeatureError;
pub use frame::{FeatureConfig, FeatureFrame, build};
pub use spectral::{SpectralFeatures, spectral_features};
pub use stats::quantile_sorted;
