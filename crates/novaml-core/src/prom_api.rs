//! The answers of the Prometheus HTTP API (`/api/v1/…`) that novaml reads: the collector's
//! `prometheus_api` source and the remote store parse them with these types. VictoriaMetrics,
//! Mimir and Thanos answer in the same shapes.

use std::collections::BTreeMap;

use serde::Deserialize;

/// An answer: `status`, and `data` or `error`.
#[derive(Debug, Deserialize)]
pub struct ApiAnswer<T> {
    /// `success` or `error`.
    pub status: String,
    // Missing `Option` fields are `None` without `#[serde(default)]` (which would bound T).
    /// The payload, on success.
    pub data: Option<T>,
    /// Why, on error.
    pub error: Option<String>,
}

/// The `data` of a query answer whose result should be a range vector.
#[derive(Debug, Deserialize)]
pub struct MatrixData {
    /// `matrix` for a range vector (anything else is not raw samples).
    #[serde(rename = "resultType")]
    pub result_type: String,
    /// One entry per series.
    pub result: Vec<MatrixSeries>,
}

/// One series of a range vector: its labels and `[unix seconds, "value"]` samples.
#[derive(Debug, Deserialize)]
pub struct MatrixSeries {
    /// Labels, `__name__` included.
    pub metric: BTreeMap<String, String>,
    /// Samples.
    #[serde(default)]
    pub values: Vec<(f64, String)>,
}
