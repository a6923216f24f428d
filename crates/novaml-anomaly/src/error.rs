//! Errors of anomaly detection.

/// Errors of anomaly detection.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum AnomalyError {
    /// The data cannot be used (wrong shape, NaN).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// A hyperparameter is out of its domain.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}
