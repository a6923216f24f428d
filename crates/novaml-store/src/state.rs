//! The running system's shared state, behind one trait: incidents, operator feedback (labels,
//! acks), alert delivery, live detection's checkpoints and the shard leases of sharded workers.
//!
//! Two implementations:
//! - [`IncidentLog`]: SQLite, in the data directory's file (the embedded default);
//! - [`PgState`]: PostgreSQL (`[state] postgres = "postgres://…"`), shared by every worker of
//!   a fleet, so any worker's API and dashboards show the whole fleet's incidents.
//!
//! Both migrate their tables at open by numbered versions (a table `state_schema` records
//! which ran), and refuse a database written by a newer build.

use std::collections::HashMap;
use std::path::PathBuf;

use novaml_core::Shard;

use crate::StoreError;
use crate::incidents::{IncidentFilter, IncidentLog, IncidentRecord, NewIncident, Recorded};
use crate::postgres::PgState;

/// One shard's lease and progress, as the state store knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShardState {
    /// The shard (`K/N`).
    #[serde(serialize_with = "as_string")]
    pub shard: Shard,
    /// Who claimed it last (`host:pid`).
    pub holder: String,
    /// Whether a running worker holds it now.
    pub held: bool,
    /// When it was claimed (ms).
    pub claimed_at: i64,
    /// The holder's last report (ms).
    pub heartbeat: i64,
    /// The newest timestamp its detection scored (ms), once it has scored.
    pub scored_until: Option<i64>,
}

fn as_string<S: serde::Serializer>(shard: &Shard, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(shard)
}

/// Incidents, feedback, delivery, checkpoints and shard leases.
///
/// Methods take `&mut self` (a database connection is used by one caller at a time); callers
/// share one behind a mutex ([`SharedState`]).
pub trait StateStore: Send + std::fmt::Debug {
    /// Where it is, for banners and errors (no password).
    fn describe(&self) -> String;

    /// Records an incident at time `now` (ms). One of the same series and type that overlaps it
    /// or lies within `dedup_ms` of it is the same incident seen again (a re-run, a resumed
    /// worker, or the same trouble flapping): it is extended, and takes the new peak, severity
    /// and body when the new peak is higher. Labels and delivery state are kept.
    fn record(
        &mut self,
        inc: &NewIncident,
        dedup_ms: i64,
        now: i64,
    ) -> Result<Recorded, StoreError>;

    /// Live detection's checkpoints: per series (Prometheus notation), the newest timestamp
    /// whose score and incidents were reported.
    fn checkpoints(&mut self) -> Result<HashMap<String, i64>, StoreError>;

    /// Saves checkpoints, all or none; a checkpoint never moves back.
    fn save_checkpoints(&mut self, at: &[(String, i64)]) -> Result<(), StoreError>;

    /// One incident.
    fn get(&mut self, id: i64) -> Result<Option<IncidentRecord>, StoreError>;

    /// Incidents matching `f`, newest first (by start, then id).
    fn list(&mut self, f: &IncidentFilter) -> Result<Vec<IncidentRecord>, StoreError>;

    /// Labels an incident `tp` or `fp` (replacing an earlier label) at time `now`; `false` when
    /// no incident has that id. Any other label is an error.
    fn label(
        &mut self,
        id: i64,
        label: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Marks an incident acknowledged; `false` when no incident has that id.
    fn acknowledge(&mut self, id: i64) -> Result<bool, StoreError>;

    /// Marks that an alert was delivered for an incident.
    fn mark_notified(&mut self, id: i64) -> Result<(), StoreError>;

    /// Every labelled incident as `(series, kind, peak_score, label)`.
    fn labelled(&mut self) -> Result<Vec<(String, String, f64, String)>, StoreError>;

    /// Incidents recorded.
    fn count(&mut self) -> Result<usize, StoreError>;

    /// Claims `shard` for this worker (`holder`: `host:pid`) until the process ends. Refused
    /// ([`StoreError::ShardTaken`]) while another running worker holds it, or
    /// ([`StoreError::ShardCountMismatch`]) while running workers split the series into a
    /// different number of shards.
    fn claim_shard(&mut self, shard: Shard, holder: &str, now: i64) -> Result<(), StoreError>;

    /// Reports the claimed shard's progress: a pass ended at `now`, having scored up to
    /// `scored_until` (never moves back). Re-claims a lease lost with its connection.
    fn report_shard(&mut self, scored_until: Option<i64>, now: i64) -> Result<(), StoreError>;

    /// Every shard's lease and progress, by index.
    fn shards(&mut self) -> Result<Vec<ShardState>, StoreError>;
}

/// A state store shared by the services of one process.
pub type SharedState = std::sync::Arc<std::sync::Mutex<Box<dyn StateStore>>>;

/// The labels an operator can give.
pub(crate) fn check_label(label: &str) -> Result<(), StoreError> {
    if label == "tp" || label == "fp" {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "label must be tp or fp, not {label:?}"
        )))
    }
}

/// Where the state lives, from `[state]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateAt {
    /// The embedded SQLite file (the data directory's `novaml.db`).
    Embedded(PathBuf),
    /// A PostgreSQL database shared by the workers.
    Postgres(String),
}

impl StateAt {
    /// Opens it: creates or migrates the tables; a database that cannot be reached is an error
    /// naming it.
    pub fn open(&self) -> Result<Box<dyn StateStore>, StoreError> {
        Ok(match self {
            Self::Embedded(path) => Box::new(IncidentLog::open(path)?),
            Self::Postgres(url) => Box::new(PgState::connect(url)?),
        })
    }

    /// Where it is, for banners and errors (no password).
    pub fn describe(&self) -> String {
        match self {
            Self::Embedded(path) => format!("SQLite {}", path.display()),
            Self::Postgres(url) => format!("PostgreSQL {}", crate::postgres::redact(url)),
        }
    }
}
