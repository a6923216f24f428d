//! Tuning novaml's platform on a real, measured system.
//!
//! - [`space`]: parameters, bounds and validated configurations; sampling, grids, encoding.
//! - [`transfer`]: the HDE/AMST transfer engine: a payload sent over N parallel TCP streams on
//!   loopback through an emulated link (bandwidth, RTT, per-stream window), chunked,
//!   compressed (zstd with optional long window, lz4, none), optionally delta-encoded against a
//!   baseline, verified at the receiver; one run measures goodput, CPU seconds, compression
//!   ratio and bytes on the wire.
//! - [`env`]: the [`Environment`] trait and its implementations: the transfer engine, a user
//!   command, a Prometheus-measured system.
//! - [`tuner`]: the [`Tuner`] trait, random and grid search; [`bo`]: Bayesian optimisation
//!   (Gaussian process, expected improvement × probability of feasibility); [`rl`]: a
//!   contextual bandit (Thompson sampling) that carries experience across scenarios.
//! - [`executor`]: the [`Executor`] that runs a session (budget, constraints, safety check,
//!   observers); [`stats`]: improvement with a confidence interval; [`guard`]: applying a
//!   change to a live system with canary, sequential-test rollback, change budget and audit log;
//!   [`optimum`]: the cached exhaustive-grid optimum per scenario; [`study`]: a whole study
//!   (tuner, session, experience, re-measured verdict), as the CLI and the pipeline run it.

mod error;
mod jsonl;

pub mod bo;
pub mod env;
pub mod executor;
pub mod guard;
pub mod optimum;
pub mod payload;
pub mod rl;
pub mod space;
pub mod stats;
pub mod study;
pub mod transfer;
pub mod tuner;

pub use env::Environment;
pub use error::TuneError;
pub use executor::Executor;
pub use tuner::Tuner;
