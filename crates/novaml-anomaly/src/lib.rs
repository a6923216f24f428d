//! Anomaly detection.
//!
//! - [`streaming`]: a per-series streaming ensemble with no look-ahead: the robust deviation of
//!   the value, its change and its seasonal change from a trailing baseline (the `level`
//!   member), a CUSUM change-point member and a Holt forecast-residual member, each turned into a
//!   tail probability by an anomaly likelihood and combined by Bonferroni into one calibrated
//!   score in `[0, 1]`.
//! - [`multivariate`]: per entity (VM, host), all its metrics at once: the univariate members
//!   plus an extended isolation forest over the metrics' robust z-scores.
//! - [`incident`]: rows into incidents with type, severity (score and absolute rules per metric
//!   kind), top contributing metrics, actions, de-duplication and maintenance windows.
//! - [`feedback`]: operator labels → precision, false-alarm share, adapted thresholds.
//! - [`alert`]: Alertmanager and generic webhook payloads; [`metrics`]: `/metrics` families.
//! - [`isolation_forest`]: isolation forest and extended isolation forest, scikit-learn's
//!   parameters and score definitions, seeded, parallel.

pub mod alert;
mod error;
pub mod feedback;
pub mod incident;
pub mod isolation_forest;
pub mod metrics;
pub mod multivariate;
pub mod streaming;

pub use error::AnomalyError;
