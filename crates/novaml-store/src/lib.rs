//! [`MetricStore`](novaml_core::MetricStore) implementations.
//!
//! - [`SqliteStore`]: the embedded default, one SQLite file in WAL mode.

mod codec;
mod error;
mod sqlite;

pub use error::StoreError;
pub use sqlite::{
    CHUNK_POINTS, COMPACT_POINTS, MAX_HEAD_POINTS, MIN_POINTS_PER_SERIES, SeriesInfo, SqliteStore,
};
