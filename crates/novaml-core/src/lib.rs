//! Types and traits shared by every novaml crate, and the small numerics several of them need:
//! dense solvers ([`linalg`]), the normal distribution and quantiles ([`stats`]), the clock and
//! durations ([`time`]), private files written atomically ([`fs`]).
//!
//! Data flows one way: a [`Source`] collects [`Series`], a [`MetricStore`] keeps them, feature
//! engineering and models read them back with a [`Selector`]. See `ARCHITECTURE.md`.

mod error;
mod selector;
mod series;
pub mod shard;
mod source;
mod store;

pub mod fs;
pub mod linalg;
pub mod prom_api;
pub mod stats;
pub mod time;

pub use error::{BoxError, CoreError};
pub use selector::{LabelMatcher, MatchOp, Selector};
pub use series::{
    Batch, Point, Series, SeriesKey, Timestamp, is_valid_label_name, is_valid_metric_name,
};
pub use shard::{Shard, ShardError};
pub use source::{BoxFuture, CollectContext, Collected, Source, SourceError};
pub use store::{Aggregation, MetricStore, StepSpec, TimeRange};
