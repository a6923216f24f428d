//! Forecasting for capacity planning.
//!
//! - [`prophet`]: Prophet (`augurs-prophet`) fitted by our own L-BFGS on Prophet's MAP objective
//!   with an analytic gradient, so no Stan binary is needed.

mod error;
pub mod prophet;

pub use error::ForecastError;
