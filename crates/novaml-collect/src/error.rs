//! Errors of the collection crate.

use std::path::PathBuf;

/// Errors of sources, file import and the runner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// A configuration value is invalid; `field` names it as in the config file.
    #[error("invalid configuration `{field}`: {reason}")]
    Config {
        /// Dotted path of the field, e.g. `sources.prometheus_api.step`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// An HTTP request failed before an answer (refused, reset, timed out).
    #[error("request to {url} failed: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The client error.
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body, for context.
        body: String,
    },
    /// The Prometheus API answered something that is not a valid query result.
    #[error("unexpected answer from {url}: {reason}")]
    BadResponse {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file has no usable structure (no header, no timestamp column, no value column).
    #[error("cannot import {path}: {reason}")]
    Format {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading `/proc` failed.
    #[error("reading /proc failed: {0}")]
    Proc(#[from] procfs::ProcError),
}
