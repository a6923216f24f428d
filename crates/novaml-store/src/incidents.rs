//! The incident log: detected incidents, operator feedback, delivery state, detector
//! checkpoints and shard leases; [`IncidentLog`] keeps them in the same SQLite file as the
//! metrics (its own tables; the metric schema is untouched), the embedded implementation of
//! [`StateStore`](crate::StateStore).
//!
//! The log knows incidents as rows with a JSON body; the detector's types live in
//! `novaml-anomaly`, which this crate does not depend on.

use std::collections::HashMap;
use std::path::Path;

use novaml_core::Shard;
use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;
use crate::sqlite::connect;
use crate::state::{ShardState, StateStore};

/// The state tables' migrations, oldest first; version `i + 1` is `MIGRATIONS[i]`. Version 1
/// is what files written before versioning hold (hence `IF NOT EXISTS`).
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    "CREATE TABLE shard_lease (
        shard INTEGER PRIMARY KEY,
        count INTEGER NOT NULL,
        holder TEXT NOT NULL,
        claimed_at INTEGER NOT NULL,
        heartbeat INTEGER NOT NULL,
        scored_until INTEGER
    );",
];

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS incident (
    id INTEGER PRIMARY KEY,
    series TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    start_ts INTEGER NOT NULL,
    end_ts INTEGER NOT NULL,
    peak_score REAL NOT NULL,
    suppressed INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    label TEXT CHECK (label IN ('tp', 'fp')),
    note TEXT,
    labelled_at INTEGER,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS incident_series ON incident (series, kind, start_ts);
CREATE INDEX IF NOT EXISTS incident_start ON incident (start_ts);
CREATE TABLE IF NOT EXISTS detector_checkpoint (
    series TEXT PRIMARY KEY,
    scored_until INTEGER NOT NULL
);
";

/// An incident to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    /// Series or entity (Prometheus notation).
    pub series: String,
    /// Type (`latency_spike`, …).
    pub kind: String,
    /// Severity (`low` … `critical`).
    pub severity: String,
    /// Start (ms).
    pub start: i64,
    /// End (ms).
    pub end: i64,
    /// Peak score.
    pub peak_score: f64,
    /// Covered by a suppression window.
    pub suppressed: bool,
    /// The whole incident as JSON.
    pub body: serde_json::Value,
}

/// A recorded incident with its feedback.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IncidentRecord {
    /// Stable id.
    pub id: i64,
    /// Series or entity.
    pub series: String,
    /// Type.
    pub kind: String,
    /// Severity.
    pub severity: String,
    /// Start (ms).
    pub start: i64,
    /// End (ms).
    pub end: i64,
    /// Peak score.
    pub peak_score: f64,
    /// Covered by a suppression window.
    pub suppressed: bool,
    /// The incident as JSON.
    pub body: serde_json::Value,
    /// When it was first recorded (ms).
    pub recorded_at: i64,
    /// `tp` or `fp` once an operator labelled it.
    pub label: Option<String>,
    /// The operator's note.
    pub note: Option<String>,
    /// When it was labelled (ms).
    pub labelled_at: Option<i64>,
    /// Acknowledged by an operator.
    pub acknowledged: bool,
    /// An alert was delivered for it.
    pub notified: bool,
}

/// Which incidents to list (all conditions must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentFilter {
    /// Exactly this series.
    pub series: Option<String>,
    /// Exactly this type.
    pub kind: Option<String>,
    /// Exactly this severity.
    pub severity: Option<String>,
    /// Ending at or after this (ms).
    pub since: Option<i64>,
    /// `tp`, `fp`, or `none` for unlabelled.
    pub label: Option<String>,
    /// At most this many, newest first (default 100).
    pub limit: Option<usize>,
}

/// Whether [`IncidentLog::record`] inserted or merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new incident with this id.
    New(i64),
    /// Merged into this existing incident (same series and type, overlapping or within the
    /// de-duplication window).
    Merged(i64),
}

impl Recorded {
    /// The incident's id.
    pub fn id(self) -> i64 {
        match self {
            Self::New(id) | Self::Merged(id) => id,
        }
    }
}

/// The incident log.
#[derive(Debug)]
pub struct IncidentLog {
    conn: Connection,
    /// The shard this process claimed.
    claimed: Option<Shard>,
}

pub(crate) const COLUMNS: &str = "id, series, kind, severity, start_ts, end_ts, peak_score, suppressed, \
                       body, recorded_at, label, note, labelled_at, acknowledged, notified";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(IncidentRecord, String)> {
    Ok((
        IncidentRecord {
            id: r.get(0)?,
            series: r.get(1)?,
            kind: r.get(2)?,
            severity: r.get(3)?,
            start: r.get(4)?,
            end: r.get(5)?,
            peak_score: r.get(6)?,
            suppressed: r.get(7)?,
            body: serde_json::Value::Null,
            recorded_at: r.get(9)?,
            label: r.get(10)?,
            note: r.get(11)?,
            labelled_at: r.get(12)?,
            acknowledged: r.get(13)?,
            notified: r.get(14)?,
        },
        r.get(8)?,
    ))
}

pub(crate) fn with_body(
    (mut rec, body): (IncidentRecord, String),
) -> Result<IncidentRecord, StoreError> {
    rec.body = serde_json::from_str(&body)
        .map_err(|source| StoreError::CorruptIncident { id: rec.id, source })?;
    Ok(rec)
}

impl IncidentLog {
    /// Opens (creating the tables if needed) the log in the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::init(connect(Some(path.as_ref()))?)
    }

    /// An in-memory log.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(connect(None)?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        migrate(&mut conn)?;
        Ok(Self {
            conn,
            claimed: None,
        })
    }
}

/// Brings the state tables to the newest version, in one transaction; refuses a file written by
/// a newer build.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite("starting the state migration"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS state_schema (
            version INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL
        );",
    )
    .map_err(StoreError::sqlite("creating the state schema table"))?;
    let found: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM state_schema",
            [],
            |r| r.get(0),
        )
        .map_err(StoreError::sqlite("reading the state schema version"))?;
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)
            .map_err(StoreError::sqlite("migrating the state tables"))?;
        tx.execute(
            "INSERT INTO state_schema (version, applied_at) VALUES (?1, ?2)",
            params![i as i64 + 1, novaml_core::time::now_ms()],
        )
        .map_err(StoreError::sqlite("migrating the state tables"))?;
    }
    tx.commit()
        .map_err(StoreError::sqlite("committing the state migration"))
}

impl StateStore for IncidentLog {
    fn describe(&self) -> String {
        match self.conn.path() {
            Some(p) if !p.is_empty() => format!("SQLite {p}"),
            _ => "SQLite (in memory)".into(),
        }
    }

    fn record(
        &mut self,
        inc: &NewIncident,
        dedup_ms: i64,
        now: i64,
    ) -> Result<Recorded, StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(StoreError::sqlite("starting a transaction"))?;
        let existing: Option<(i64, f64)> = tx
            .query_row(
                "SELECT id, peak_score FROM incident
                 WHERE series = ?1 AND kind = ?2 AND start_ts <= ?3 AND end_ts >= ?4
                 ORDER BY start_ts LIMIT 1",
                params![
                    inc.series,
                    inc.kind,
                    inc.end.saturating_add(dedup_ms),
                    inc.start.saturating_sub(dedup_ms)
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::sqlite("looking up an incident"))?;
        let body = inc.body.to_string();
        let out = match existing {
            Some((id, peak)) => {
                tx.execute(
                    "UPDATE incident SET start_ts = min(start_ts, ?2), end_ts = max(end_ts, ?3),
                     suppressed = ?4 WHERE id = ?1",
                    params![id, inc.start, inc.end, inc.suppressed],
                )
                .map_err(StoreError::sqlite("extending an incident"))?;
                if inc.peak_score > peak {
                    tx.execute(
                        "UPDATE incident SET peak_score = ?2, severity = ?3, body = ?4
                         WHERE id = ?1",
                        params![id, inc.peak_score, inc.severity, body],
                    )
                    .map_err(StoreError::sqlite("updating an incident's peak"))?;
                }
                Recorded::Merged(id)
            }
            None => {
                tx.execute(
                    "INSERT INTO incident (series, kind, severity, start_ts, end_ts, peak_score,
                     suppressed, body, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        inc.series,
                        inc.kind,
                        inc.severity,
                        inc.start,
                        inc.end,
                        inc.peak_score,
                        inc.suppressed,
                        body,
                        now
                    ],
                )
                .map_err(StoreError::sqlite("inserting an incident"))?;
                Recorded::New(tx.last_insert_rowid())
            }
        };
        tx.commit()
            .map_err(StoreError::sqlite("committing an incident"))?;
        Ok(out)
    }

    fn checkpoints(&mut self) -> Result<HashMap<String, i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT series, scored_until FROM detector_checkpoint")
            .map_err(StoreError::sqlite("reading checkpoints"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(StoreError::sqlite("reading checkpoints"))?;
        rows.collect::<Result<_, _>>()
            .map_err(StoreError::sqlite("reading checkpoints"))
    }

    fn save_checkpoints(&mut self, at: &[(String, i64)]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(StoreError::sqlite("starting a transaction"))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO detector_checkpoint (series, scored_until) VALUES (?1, ?2)
                     ON CONFLICT (series) DO UPDATE
                     SET scored_until = max(scored_until, excluded.scored_until)",
                )
                .map_err(StoreError::sqlite("saving checkpoints"))?;
            for (series, ts) in at {
                stmt.execute(params![series, ts])
                    .map_err(StoreError::sqlite("saving checkpoints"))?;
            }
        }
        tx.commit()
            .map_err(StoreError::sqlite("committing checkpoints"))
    }

    fn get(&mut self, id: i64) -> Result<Option<IncidentRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM incident WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()
            .map_err(StoreError::sqlite("reading an incident"))?
            .map(with_body)
            .transpose()
    }

    fn list(&mut self, f: &IncidentFilter) -> Result<Vec<IncidentRecord>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM incident WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut cond = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(s) = &f.series {
            cond(&mut sql, "series =", s.clone().into());
        }
        if let Some(k) = &f.kind {
            cond(&mut sql, "kind =", k.clone().into());
        }
        if let Some(s) = &f.severity {
            cond(&mut sql, "severity =", s.clone().into());
        }
        if let Some(t) = f.since {
            cond(&mut sql, "end_ts >=", t.into());
        }
        match f.label.as_deref() {
            Some("none") => sql.push_str(" AND label IS NULL"),
            Some(l) => cond(&mut sql, "label =", l.to_owned().into()),
            None => {}
        }
        sql.push_str(&format!(
            " ORDER BY start_ts DESC, id DESC LIMIT {}",
            f.limit.unwrap_or(100)
        ));
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(StoreError::sqlite("listing incidents"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), from_row)
            .map_err(StoreError::sqlite("listing incidents"))?;
        rows.map(|r| with_body(r.map_err(StoreError::sqlite("reading an incident"))?))
            .collect()
    }

    fn label(
        &mut self,
        id: i64,
        label: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        crate::state::check_label(label)?;
        let n = self
            .conn
            .execute(
                "UPDATE incident SET label = ?2, note = ?3, labelled_at = ?4 WHERE id = ?1",
                params![id, label, note, now],
            )
            .map_err(StoreError::sqlite("labelling an incident"))?;
        Ok(n == 1)
    }

    fn acknowledge(&mut self, id: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("UPDATE incident SET acknowledged = 1 WHERE id = ?1", [id])
            .map_err(StoreError::sqlite("acknowledging an incident"))?;
        Ok(n == 1)
    }

    fn mark_notified(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("UPDATE incident SET notified = 1 WHERE id = ?1", [id])
            .map_err(StoreError::sqlite("marking an incident notified"))?;
        Ok(())
    }

    fn labelled(&mut self) -> Result<Vec<(String, String, f64, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT series, kind, peak_score, label FROM incident WHERE label IS NOT NULL")
            .map_err(StoreError::sqlite("reading labels"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(StoreError::sqlite("reading labels"))?;
        rows.collect::<Result<_, _>>()
            .map_err(StoreError::sqlite("reading labels"))
    }

    fn count(&mut self) -> Result<usize, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM incident", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(StoreError::sqlite("counting incidents"))
    }

    /// One process holds a data directory (its lock file), so the embedded state's lease is
    /// this process's: the claim records the shard for the status pages.
    fn claim_shard(&mut self, shard: Shard, holder: &str, now: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO shard_lease (shard, count, holder, claimed_at, heartbeat)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (shard) DO UPDATE SET count = excluded.count,
                 holder = excluded.holder, claimed_at = excluded.claimed_at,
                 heartbeat = excluded.heartbeat",
                params![shard.index(), shard.count(), holder, now],
            )
            .map_err(StoreError::sqlite("claiming a shard"))?;
        self.conn
            .execute("DELETE FROM shard_lease WHERE count <> ?1", [shard.count()])
            .map_err(StoreError::sqlite("claiming a shard"))?;
        self.claimed = Some(shard);
        Ok(())
    }

    fn report_shard(&mut self, scored_until: Option<i64>, now: i64) -> Result<(), StoreError> {
        let Some(shard) = self.claimed else {
            return Err(StoreError::InvalidInput(
                "report_shard before claim_shard".into(),
            ));
        };
        self.conn
            .execute(
                "UPDATE shard_lease SET heartbeat = ?2,
                 scored_until = max(coalesce(scored_until, ?3), coalesce(?3, scored_until))
                 WHERE shard = ?1",
                params![shard.index(), now, scored_until],
            )
            .map_err(StoreError::sqlite("reporting a shard's progress"))?;
        Ok(())
    }

    fn shards(&mut self) -> Result<Vec<ShardState>, StoreError> {
        let claimed = self.claimed;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT shard, count, holder, claimed_at, heartbeat, scored_until
                 FROM shard_lease ORDER BY shard",
            )
            .map_err(StoreError::sqlite("reading shard leases"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .map_err(StoreError::sqlite("reading shard leases"))?;
        let mut out = Vec::new();
        for row in rows {
            let (index, count, holder, claimed_at, heartbeat, scored_until) =
                row.map_err(StoreError::sqlite("reading shard leases"))?;
            let Ok(shard) = Shard::new(index, count) else {
                continue;
            };
            out.push(ShardState {
                shard,
                holder,
                held: claimed == Some(shard),
                claimed_at,
                heartbeat,
                scored_until,
            });
        }
        Ok(out)
    }
}
