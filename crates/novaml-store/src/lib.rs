//! [`MetricStore`](novaml_core::MetricStore) implementations.
//!
//! - [`SqliteStore`]: the embedded default, one SQLite file in WAL mode.
//! - [`incidents::IncidentLog`]: detected incidents with operator feedback, in the same file.

mod codec;
mod error;
pub mod incidents;
mod sqlite;

pub use error::StoreError;
pub use sqlite::{
    CHUNK_POINTS, COMPACT_POINTS, MAX_HEAD_POINTS, MIN_POINTS_PER_SERIES, SeriesInfo, SqliteStore,
};
