//! Errors of feature engineering.

/// Errors of feature engineering.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum FeatureError {
    /// Timestamps and values differ in length.
    #[error("{timestamps} timestamps but {values} values")]
    LengthMismatch {
        /// Number of timestamps.
        timestamps: usize,
        /// Number of values.
        values: usize,
    },
    /// Timestamps are not strictly increasing.
    #[error("timestamps must be strictly increasing; row {row} is not after row {}", row - 1)]
    NotIncreasing {
        /// First offending row.
        row: usize,
    },
    /// A configuration value is invalid.
    #[error("invalid feature configuration `{field}`: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The input data cannot be used (constant, all gaps, a missing column, …).
    #[error("{0}")]
    Data(String),
    /// Not enough rows for any complete dataset row.
    #[error("{rows} rows are too few: a dataset row needs {needed}")]
    TooShort {
        /// Rows available.
        rows: usize,
        /// Rows needed.
        needed: usize,
    },
}

impl FeatureError {
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            field,
            reason: reason.into(),
        }
    }
}
