//! Errors of anomaly detection.

/// Errors of anomaly detection.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum AnomalyError {
    /// A hyperparameter is out of its domain.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}
