//! Errors of the prediction crate.

use std::path::PathBuf;

/// What can go wrong building datasets, training, loading or serving a model.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// A configuration value is out of range.
    #[error("invalid configuration: {field}: {reason}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The data could not be made into windows (see `novaml-features`).
    #[error(transparent)]
    Feature(#[from] novaml_features::FeatureError),
    /// The input data cannot be used (too short, constant, all gaps, …).
    #[error("{0}")]
    Data(String),
    /// A model artifact does not fit this version of the code or the given input.
    #[error("model {path}: {reason}")]
    Artifact {
        /// The artifact's path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON document could not be read or written.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// Training diverged (a non-finite loss).
    #[error("training diverged at epoch {epoch}: loss is {loss}")]
    Diverged {
        /// The epoch (1-based).
        epoch: usize,
        /// The loss seen.
        loss: f64,
    },
}

impl PredictError {
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            field,
            reason: reason.into(),
        }
    }
}
