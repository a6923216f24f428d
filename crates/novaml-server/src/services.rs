//! The services the API reaches, as traits this crate owns: the running system (the
//! `novaml-pipeline` crate) implements them, and the routes see only these methods. Documents
//! cross this seam as JSON values, the API's wire format; requests arrive as the JSON the client
//! sent, which the service checks.

use serde_json::Value;

use crate::ApiError;

/// Why a service refused or failed a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The request is invalid (answered 400).
    #[error("{0}")]
    Invalid(String),
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the resource's state (409).
    #[error("{0}")]
    Conflict(String),
    /// Something failed inside (500; the detail goes to the log only).
    #[error("{0}")]
    Internal(String),
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => Self::BadRequest(m),
            ServiceError::NotFound(m) => Self::NotFound(m),
            ServiceError::Conflict(m) => Self::Conflict(m),
            ServiceError::Internal(m) => Self::Internal(m),
        }
    }
}

/// The model registry and the latest predictions.
pub trait Models: Send + Sync + 'static {
    /// Every model with its versions and which one serves.
    fn list(&self) -> Result<Vec<Value>, ServiceError>;
    /// One model, with each version's training curve and the promotion log.
    fn describe(&self, name: &str) -> Result<Value, ServiceError>;
    /// Makes `version` serve (an operator's decision, logged with `reason`); the model after.
    fn promote(
        &self,
        name: &str,
        version: u32,
        reason: Option<&str>,
    ) -> Result<Value, ServiceError>;
    /// Goes back to `version`; the model after.
    fn rollback(&self, name: &str, version: u32) -> Result<Value, ServiceError>;
    /// The latest prediction of every served model.
    fn predictions(&self) -> Result<Vec<Value>, ServiceError>;
}

/// Tuning of a live system: runs, guarded applies, roll back, the change log.
pub trait Tuning: Send + Sync + 'static {
    /// The scenario, the configuration in effect, what runs or waits, the runs, the changes.
    fn overview(&self) -> Result<Value, ServiceError>;
    /// Queues a run as asked in `request` (the client's JSON); its id.
    fn submit(&self, request: Value) -> Result<u64, ServiceError>;
    /// One run with every trial.
    fn run(&self, id: u64) -> Result<Value, ServiceError>;
    /// Queues the guarded deployment of run `id`'s best configuration.
    fn apply(&self, id: u64) -> Result<(), ServiceError>;
    /// Queues a revert of the last change.
    fn rollback(&self) -> Result<(), ServiceError>;
    /// The audit log of changes.
    fn changes(&self) -> Result<Vec<Value>, ServiceError>;
}

/// Capacity plans.
pub trait Capacity: Send + Sync + 'static {
    /// The latest plan; `None` until the first is computed.
    fn latest(&self) -> Result<Option<Value>, ServiceError>;
}

/// Reads a request body into `T`, with an error for people: the field's path, and JSON's words
/// for what was expected instead of Rust's type names ("a whole number", not "u64").
pub fn from_body<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = readable(&e.into_inner().to_string());
        if path == "." {
            format!("invalid body: {inner}")
        } else {
            format!("invalid body: {path}: {inner}")
        }
    })
}

/// serde's message with Rust's type names in JSON's words.
fn readable(message: &str) -> String {
    let mut m = message.to_owned();
    for (rust, json) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        if let Some(rest) = m.strip_suffix(rust) {
            m = format!("{rest}{json}");
        }
    }
    m
}
