//! Files of the registry and of training checkpoints: JSON documents written atomically (a
//! temporary file renamed over the old one, so a crash leaves the old or the new document, never
//! half of one) and read back with the path in every error.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PredictError;

/// Writes `value` as pretty JSON to `path` through a temporary file and a rename (0600).
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), PredictError> {
    let text = serde_json::to_vec_pretty(value).map_err(|source| PredictError::Json {
        path: path.to_owned(),
        source,
    })?;
    write_bytes(path, &text)
}

/// Writes `bytes` to `path` through a temporary file and a rename (0600).
pub(crate) fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), PredictError> {
    novaml_core::fs::write_private(path, bytes)
        .map_err(|(path, source)| PredictError::Io { path, source })
}

/// Reads a JSON document.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, PredictError> {
    let text = std::fs::read(path).map_err(|source| PredictError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| PredictError::Json {
        path: path.to_owned(),
        source,
    })
}
