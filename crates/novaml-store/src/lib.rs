//! [`MetricStore`](novaml_core::MetricStore) implementations.
//!
//! - [`SqliteStore`]: the embedded default, one SQLite file in WAL mode.
//! - [`ReadCache`]: decoded points shared by the connections that answer range reads.
//! - [`incidents::IncidentLog`]: detected incidents with operator feedback, in the same file.

mod codec;
mod error;
pub mod incidents;
mod read_cache;
mod sqlite;

pub use error::StoreError;
pub use read_cache::{ReadCache, ReadCacheStats};
pub use sqlite::{
    CHUNK_POINTS, COMPACT_POINTS, MAX_HEAD_POINTS, MIN_POINTS_PER_SERIES, SeriesInfo, SqliteStore,
};
