//! Errors of forecasting.

/// Errors of forecasting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForecastError {
    /// The data cannot be forecast (too short, not finite, out of order).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A model failed to fit or predict.
    #[error("{model} failed: {reason}")]
    Model {
        /// The model.
        model: &'static str,
        /// Why.
        reason: String,
    },
}
