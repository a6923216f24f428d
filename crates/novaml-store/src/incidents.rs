//! The incident log: detected incidents, operator feedback and delivery state, in the same
//! SQLite file as the metrics (its own tables; the metric schema is untouched).
//!
//! The log knows incidents as rows with a JSON body; the detector's types live in
//! `novaml-anomaly`, which this crate does not depend on.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;
use crate::sqlite::connect;

const SCHEMA: &str = "
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
}

const COLUMNS: &str = "id, series, kind, severity, start_ts, end_ts, peak_score, suppressed, \
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

fn with_body((mut rec, body): (IncidentRecord, String)) -> Result<IncidentRecord, StoreError> {
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

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(SCHEMA)
            .map_err(StoreError::sqlite("creating the incident tables"))?;
        Ok(Self { conn })
    }

    /// Records an incident at time `now` (ms). One of the same series and type that overlaps it
    /// or lies within `dedup_ms` of it is the same incident seen again (a re-run, or the same
    /// trouble flapping): it is extended, and takes the new peak, severity and body when the new
    /// peak is higher. Labels and delivery state are kept.
    pub fn record(
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

    /// Live detection's checkpoints: per series (Prometheus notation), the newest timestamp
    /// whose score and incidents were reported.
    pub fn checkpoints(&self) -> Result<std::collections::HashMap<String, i64>, StoreError> {
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

    /// Saves checkpoints, all or none; a checkpoint never moves back.
    pub fn save_checkpoints(&mut self, at: &[(String, i64)]) -> Result<(), StoreError> {
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

    /// One incident.
    pub fn get(&self, id: i64) -> Result<Option<IncidentRecord>, StoreError> {
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

    /// Incidents matching `f`, newest first.
    pub fn list(&self, f: &IncidentFilter) -> Result<Vec<IncidentRecord>, StoreError> {
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

    /// Labels an incident `tp` or `fp` (replacing an earlier label) at time `now`; `false` when
    /// no incident has that id.
    pub fn label(
        &mut self,
        id: i64,
        label: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        if label != "tp" && label != "fp" {
            return Err(StoreError::InvalidInput(format!(
                "label must be tp or fp, not {label:?}"
            )));
        }
        let n = self
            .conn
            .execute(
                "UPDATE incident SET label = ?2, note = ?3, labelled_at = ?4 WHERE id = ?1",
                params![id, label, note, now],
            )
            .map_err(StoreError::sqlite("labelling an incident"))?;
        Ok(n == 1)
    }

    /// Marks an incident acknowledged; `false` when no incident has that id.
    pub fn acknowledge(&mut self, id: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("UPDATE incident SET acknowledged = 1 WHERE id = ?1", [id])
            .map_err(StoreError::sqlite("acknowledging an incident"))?;
        Ok(n == 1)
    }

    /// Marks that an alert was delivered for an incident.
    pub fn mark_notified(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("UPDATE incident SET notified = 1 WHERE id = ?1", [id])
            .map_err(StoreError::sqlite("marking an incident notified"))?;
        Ok(())
    }

    /// Every labelled incident as `(series, kind, peak_score, label)`.
    pub fn labelled(&self) -> Result<Vec<(String, String, f64, String)>, StoreError> {
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

    /// Incidents recorded.
    pub fn count(&self) -> Result<usize, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM incident", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(StoreError::sqlite("counting incidents"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(series: &str, start: i64, end: i64, peak: f64) -> NewIncident {
        NewIncident {
            series: series.into(),
            kind: "latency_spike".into(),
            severity: "high".into(),
            start,
            end,
            peak_score: peak,
            suppressed: false,
            body: serde_json::json!({ "peak_score": peak }),
        }
    }

    #[test]
    fn record_dedups_and_keeps_feedback() {
        let mut log = IncidentLog::in_memory().expect("opens");
        let a = log
            .record(&inc("s", 1_000, 2_000, 0.6), 500, 10)
            .expect("ok");
        assert!(matches!(a, Recorded::New(_)));
        assert!(log.label(a.id(), "fp", Some("deploy"), 20).expect("ok"));
        // Seen again, overlapping, with a higher peak: merged, label kept, peak updated.
        let b = log
            .record(&inc("s", 1_500, 3_000, 0.8), 500, 30)
            .expect("ok");
        assert_eq!(b, Recorded::Merged(a.id()));
        let r = log.get(a.id()).expect("ok").expect("exists");
        assert_eq!((r.start, r.end, r.peak_score), (1_000, 3_000, 0.8));
        assert_eq!(r.label.as_deref(), Some("fp"));
        assert_eq!(r.note.as_deref(), Some("deploy"));
        assert_eq!(r.body["peak_score"], 0.8);
        // Within the de-duplication window: merged; beyond it, or another series: new.
        assert!(matches!(
            log.record(&inc("s", 3_400, 3_600, 0.5), 500, 40),
            Ok(Recorded::Merged(_))
        ));
        assert!(matches!(
            log.record(&inc("s", 10_000, 11_000, 0.5), 500, 40),
            Ok(Recorded::New(_))
        ));
        assert!(matches!(
            log.record(&inc("t", 1_000, 2_000, 0.5), 500, 40),
            Ok(Recorded::New(_))
        ));
        assert_eq!(log.count().expect("ok"), 3);
        assert_eq!(log.labelled().expect("ok").len(), 1);
    }

    #[test]
    fn checkpoints_save_together_and_never_move_back() {
        let mut log = IncidentLog::in_memory().expect("opens");
        assert!(log.checkpoints().expect("ok").is_empty());
        log.save_checkpoints(&[("a".into(), 10), ("b".into(), 20)])
            .expect("ok");
        log.save_checkpoints(&[("a".into(), 30), ("b".into(), 5)])
            .expect("ok");
        let got = log.checkpoints().expect("ok");
        assert_eq!((got["a"], got["b"], got.len()), (30, 20, 2));
    }

    #[test]
    fn list_filters_and_bad_labels_are_errors() {
        let mut log = IncidentLog::in_memory().expect("opens");
        for i in 0..5 {
            log.record(&inc("s", i * 10_000, i * 10_000 + 10, 0.6), 0, 0)
                .expect("ok");
        }
        let all = log.list(&IncidentFilter::default()).expect("ok");
        assert_eq!(all.len(), 5);
        assert!(all[0].start > all[4].start, "newest first");
        log.label(all[0].id, "tp", None, 1).expect("ok");
        let f = |label: &str| IncidentFilter {
            label: Some(label.into()),
            ..IncidentFilter::default()
        };
        assert_eq!(log.list(&f("tp")).expect("ok").len(), 1);
        assert_eq!(log.list(&f("none")).expect("ok").len(), 4);
        let since = IncidentFilter {
            since: Some(30_000),
            limit: Some(1),
            ..IncidentFilter::default()
        };
        assert_eq!(log.list(&since).expect("ok").len(), 1);
        assert!(log.label(all[0].id, "maybe", None, 1).is_err());
        assert!(!log.label(999, "tp", None, 1).expect("ok"));
        assert!(log.acknowledge(all[1].id).expect("ok"));
        assert!(
            log.get(all[1].id)
                .expect("ok")
                .expect("exists")
                .acknowledged
        );
    }
}
