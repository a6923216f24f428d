//! Anomaly detection.
//!
//! - [`streaming`]: a per-series streaming detector with no look-ahead: robust deviation of the
//!   value and of its change from a trailing baseline, turned into a calibrated score in `[0, 1]`
//!   by an anomaly likelihood (how far the recent deviations sit in the tail of their own
//!   history).
//!
//! - [`isolation_forest`]: isolation forest and extended isolation forest, scikit-learn's
//!   parameters and score definitions, seeded, parallel.
//!
//! Incidents, feedback and alerting (issue #3) are not built yet.

mod error;
pub mod incident;
pub mod isolation_forest;
pub mod streaming;

pub use error::AnomalyError;
