//! [`MetricStore`](novaml_core::MetricStore) implementations.
//!
//! - [`SqliteStore`]: the embedded default, one SQLite file in WAL mode.
//! - [`RemoteStore`]: a Prometheus-compatible TSDB (VictoriaMetrics, Prometheus) the operator
//!   already runs, read by its query API and written by remote write.
//! - [`MetricsAt`] / [`AnyStore`]: either, as configured.
//! - [`ReadCache`]: decoded points shared by the connections that answer range reads.
//! - [`StateStore`]: incidents, feedback, delivery, checkpoints and shard leases;
//!   [`incidents::IncidentLog`] keeps them in the SQLite file, [`PgState`] in PostgreSQL;
//!   [`StateAt`] is either, as configured.

mod any;
mod codec;
mod error;
pub mod incidents;
mod postgres;
mod read_cache;
mod remote;
mod sqlite;
mod state;

pub use any::{AnyStore, MetricsAt};
pub use error::StoreError;
pub use postgres::PgState;
pub use state::{ShardState, SharedState, StateAt, StateStore};

/// Heap bytes SQLite holds in this process now, over every connection (page caches, schemas,
/// prepared statements): `sqlite3_status64(SQLITE_STATUS_MEMORY_USED)`. `None` when SQLite
/// does not count (built with memory statistics off).
pub fn sqlite_memory_used() -> Option<u64> {
    let (mut current, mut highwater) = (0_i64, 0_i64);
    // SAFETY: sqlite3_status64 writes two i64s through the pointers it is given, both valid
    // for the call; it is thread-safe (it takes SQLite's own mutex for the counters).
    #[allow(unsafe_code)]
    let rc = unsafe {
        rusqlite::ffi::sqlite3_status64(
            rusqlite::ffi::SQLITE_STATUS_MEMORY_USED,
            &raw mut current,
            &raw mut highwater,
            0,
        )
    };
    (rc == rusqlite::ffi::SQLITE_OK && current > 0).then_some(current as u64)
}
pub use read_cache::{ReadCache, ReadCacheStats};
pub use remote::{
    CURSOR_METRIC, Flavor, RemoteConfig, RemoteStore, encode_write_request, promql_selector,
};
pub use sqlite::{
    CHUNK_POINTS, COMPACT_POINTS, MAX_HEAD_POINTS, MIN_POINTS_PER_SERIES, SeriesInfo, SqliteStore,
};
