//! The running system: what `novaml demo`, `novaml serve` and `novaml collect --follow` run,
//! as a library.
//!
//! - [`config`]: the configuration file, resolved into sources and settings;
//! - [`Pipeline`]: collection (sources → runner → store) with the HTTP server and the scheduled
//!   jobs, built by [`modes`] for the demo and for `serve`; every job runs on one periodic loop;
//! - [`detection`]: live anomaly detection over the store, and the incident and alert steps the
//!   one-shot `novaml detect` shares; [`notify`]: alert delivery;
//! - [`training`]: scheduled training and prediction into the registry; [`models`]: the model
//!   hub behind `/api/models` and `/api/predictions`;
//! - [`planning`]: scheduled capacity plans behind `/api/capacity`;
//! - [`tuning`]: the tuning service (queued sessions, guarded applies, reverts) behind
//!   `/api/tuning`;
//! - [`remote_write`]: Prometheus remote write of novaml's own metrics;
//! - [`lock`]: one running system per data directory.
//!
//! The HTTP crate reaches these services through the traits it owns
//! (`novaml_server::services`); this crate implements them.

pub mod config;
pub mod detection;
mod error;
pub mod lock;
pub mod models;
pub mod modes;
pub mod notify;
mod periodic;
mod pipeline;
pub mod planning;
pub mod remote_write;
mod status;
pub mod training;
pub mod tuning;

pub use config::Config;
pub use error::PipelineError;
pub use pipeline::{
    Pipeline, PlanningSettings, TrainingSettings, TuningSettings, api_token, shutdown_signal,
};
