//! Errors of the stores.

use std::path::PathBuf;

/// Errors of the metric stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The database path.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A statement failed (including `SQLITE_FULL` on a full disk: the batch is not written and
    /// may be retried).
    #[error("sqlite error while {context}: {source}")]
    Sqlite {
        /// What the store was doing.
        context: &'static str,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A row in the series table holds labels that are not a JSON object of strings.
    #[error("series {id} has corrupt labels {labels:?}: {source}")]
    CorruptLabels {
        /// Series id.
        id: i64,
        /// The stored text.
        labels: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A stored blob does not decode (the file was damaged or written by something else).
    #[error("corrupt {table} blob (series {series_id}, key {key})")]
    CorruptBlob {
        /// `head` or `chunk`.
        table: &'static str,
        /// Series id, where known (0 for head records).
        series_id: i64,
        /// Row key (head record id or chunk start).
        key: i64,
    },
    /// A stored incident's JSON body does not parse.
    #[error("incident {id} has a corrupt body: {source}")]
    CorruptIncident {
        /// Incident id.
        id: i64,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A caller passed a value the store cannot accept.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A remote store could not be reached, or its answer could not be read.
    #[error("remote store {url}: {detail}")]
    Remote {
        /// The URL asked.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A remote store answered with an error status.
    #[error("remote store {url} answered {status}: {body}")]
    RemoteRefused {
        /// The URL asked.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of its answer.
        body: String,
    },
    /// A remote store's answer exceeded the configured limit (narrow the selector or the range,
    /// or raise `max_response_bytes`).
    #[error("remote store {url}: answer larger than {limit} bytes")]
    RemoteTooLarge {
        /// The URL asked.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// A remote store's answer does not parse (cut short, or not the expected API).
    #[error("remote store {url}: malformed answer: {detail}")]
    RemoteMalformed {
        /// The URL asked.
        url: String,
        /// What does not parse.
        detail: String,
    },
    /// A PostgreSQL state database could not be reached, or a statement failed.
    #[error("PostgreSQL {url} while {context}: {source}")]
    Postgres {
        /// The URL (without its password).
        url: String,
        /// What the store was doing.
        context: &'static str,
        /// The client's error.
        source: postgres::Error,
    },
    /// Another running worker holds this shard's lease.
    #[error(
        "shard {shard} is held by {holder}, which is running; two workers on one shard would \
         score its series twice (start this one with another --shard, or stop the other)"
    )]
    ShardTaken {
        /// The shard asked for.
        shard: novaml_core::Shard,
        /// Who holds it (`host:pid`).
        holder: String,
    },
    /// Running workers split the series into another number of shards.
    #[error(
        "shard {shard} does not fit the running workers: {holder} runs shard {theirs}; every \
         worker of a fleet must use the same shard count"
    )]
    ShardCountMismatch {
        /// The shard asked for.
        shard: novaml_core::Shard,
        /// A running worker's shard.
        theirs: String,
        /// That worker.
        holder: String,
    },
    /// The database was written by a newer novaml with an unknown schema.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
}

impl StoreError {
    pub(crate) fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Self {
        move |source| Self::Sqlite { context, source }
    }

    /// Whether the error is worth retrying later (busy, locked, full disk, I/O; a remote store
    /// or PostgreSQL unreachable, overloaded or failing).
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull, SystemIoFailure};
        match self {
            Self::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => {
                matches!(
                    e.code,
                    DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure
                )
            }
            Self::Remote { .. } => true,
            // Connection lost or refused (no SQLSTATE), or the server said to retry:
            // connection exceptions (08), rollbacks (40: serialization, deadlock), resources
            // (53), shutdowns (57P).
            Self::Postgres { source, .. } => {
                source.is_closed()
                    || source.code().is_none_or(|c| {
                        let c = c.code();
                        ["08", "40", "53", "57P"].iter().any(|p| c.starts_with(p))
                    })
            }
            Self::RemoteRefused { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
