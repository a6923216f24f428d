//! Errors of the running system.

use std::path::PathBuf;

/// What can go wrong building or running the pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A configuration value is invalid; `field` names it as written in the file.
    #[error("invalid configuration `{field}`: {reason}")]
    Config {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The configuration file does not match the schema.
    #[error("invalid configuration{}: {reason}", .path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Schema {
        /// The file, when one was read.
        path: Option<PathBuf>,
        /// What serde found.
        reason: String,
    },
    /// A file or directory could not be read, written or created.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done (`cannot read`, `cannot create`, …).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another running novaml holds the data directory.
    #[error(
        "the data directory {} is in use by another novaml ({holder}); stop that one, or give \
         this one another data directory (--data-dir, or store.path in the configuration)",
        .dir.display()
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// Who holds it (`PID n`).
        holder: String,
    },
    /// A request names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A request conflicts with the current state (a full queue, an unfinished run).
    #[error("{0}")]
    Conflict(String),
    /// A request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A background task panicked or was cancelled.
    #[error("task failed: {0}")]
    Task(String),
    /// Collection.
    #[error(transparent)]
    Collect(#[from] novaml_collect::CollectError),
    /// A core value (selector, range, duration).
    #[error(transparent)]
    Core(#[from] novaml_core::CoreError),
    /// The metric store or the incident log.
    #[error(transparent)]
    Store(#[from] novaml_store::StoreError),
    /// Anomaly detection.
    #[error(transparent)]
    Anomaly(#[from] novaml_anomaly::AnomalyError),
    /// Forecasting and capacity planning.
    #[error(transparent)]
    Forecast(#[from] novaml_forecast::ForecastError),
    /// Windows and datasets.
    #[error(transparent)]
    Feature(#[from] novaml_features::FeatureError),
    /// Prediction and the model registry.
    #[error(transparent)]
    Predict(#[from] novaml_predict::PredictError),
    /// Tuning.
    #[error(transparent)]
    Tune(#[from] novaml_tune::TuneError),
    /// Alert delivery.
    #[error(transparent)]
    Delivery(#[from] crate::notify::DeliveryError),
    /// A remote write.
    #[error(transparent)]
    RemoteWrite(#[from] crate::remote_write::RemoteWriteError),
    /// A JSON document.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl PipelineError {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}

impl From<PipelineError> for novaml_server::services::ServiceError {
    fn from(e: PipelineError) -> Self {
        use novaml_server::services::ServiceError;
        match e {
            PipelineError::NotFound(m) => ServiceError::NotFound(m),
            PipelineError::Conflict(m) => ServiceError::Conflict(m),
            PipelineError::Invalid(m) => ServiceError::Invalid(m),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}
