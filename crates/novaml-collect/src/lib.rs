//! Metric collection: sources, one file each under [`sources`], and the [`Runner`] that owns
//! time (intervals, timeouts, retries, the bounded buffer and shutdown).

mod error;
pub mod exposition;
mod metrics;
mod runner;
pub mod sources;
pub mod time;

pub use error::CollectError;
pub use metrics::CollectMetrics;
pub use runner::{RetryPolicy, RunReport, Runner, Schedule, ScheduleSection};
pub use sources::{Configured, SourcesSection};
