//! The embedded store: SQLite in WAL mode, in two tiers, as time-series databases do.
//!
//! - `head (ts, series_id, value)`, keyed by time first: new points are appended (a scrape of 10k
//!   series at one timestamp fills a few consecutive pages instead of touching 10k pages).
//! - `sample (series_id, ts, value)`, keyed by series first: a series' points are contiguous, so
//!   reading one series is a range scan.
//!
//! When the head holds [`COMPACT_ROWS`] points it is compacted: moved into `sample` in
//! `(series_id, ts)` order in one transaction, which touches each series' pages once per
//! compaction rather than once per write. Reads merge both tiers (the head wins on equal keys, as
//! it holds the later write), inside one read transaction so a concurrent compaction is never
//! seen half-done.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use novaml_core::{
    Batch, MetricStore, Point, Selector, Series, SeriesKey, StepSpec, TimeRange, Timestamp,
};
use rusqlite::{Connection, OptionalExtension, params};
use tracing::warn;

use crate::StoreError;

/// Schema version written to `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// Head size that triggers a compaction. 256k points ≈ 6 MB of head pages: big enough that each
/// series gets many points per compaction, small enough that head scans stay cheap.
pub const COMPACT_ROWS: u64 = 262_144;

/// Rows per multi-row `INSERT`: amortises statement execution over many samples. 3 parameters per
/// row keeps this under SQLite's default limit of 32,766 host parameters.
const ROWS_PER_INSERT: usize = 256;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS series (
    id     INTEGER PRIMARY KEY AUTOINCREMENT, -- never reuse ids: caches key on them
    name   TEXT NOT NULL,
    labels TEXT NOT NULL,          -- canonical JSON object, keys sorted
    UNIQUE (name, labels)
);
CREATE TABLE IF NOT EXISTS sample (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,    -- ms since the Unix epoch
    value     REAL NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS head (
    ts        INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    value     REAL NOT NULL,
    PRIMARY KEY (ts, series_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursor (
    source TEXT PRIMARY KEY,
    ts     INTEGER NOT NULL
);
";

/// A series known to the store, with summary statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    /// Identity.
    pub key: SeriesKey,
    /// Number of points.
    pub points: u64,
    /// First timestamp, if any point.
    pub first: Option<Timestamp>,
    /// Last timestamp, if any point.
    pub last: Option<Timestamp>,
}

#[derive(Default)]
struct SeriesCache {
    ids: HashMap<SeriesKey, i64>,
    keys: Vec<(i64, SeriesKey)>,
    max_id: i64,
}

/// The SQLite metric store.
///
/// One writer at a time (SQLite's rule); readers in other processes see committed batches. In WAL
/// mode with `synchronous = NORMAL` a committed batch survives a killed process; a power loss may
/// lose the last transactions, never corrupt the file.
pub struct SqliteStore {
    conn: Connection,
    cache: RefCell<SeriesCache>,
    /// Points written to the head since the last compaction (an upper bound: upserts count).
    head_rows: u64,
    compact_rows: u64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.conn.path())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::init(conn)
    }

    /// An in-memory database, for tests and one-shot pipelines.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(
            Connection::open_in_memory()
                .map_err(StoreError::sqlite("opening in-memory database"))?,
        )
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(StoreError::sqlite("setting busy timeout"))?;
        // WAL: readers do not block the writer. NORMAL: fsync at checkpoints only, which is
        // durable against a killed process (the failure we promise to survive).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::sqlite("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(StoreError::sqlite("setting synchronous"))?;
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(StoreError::sqlite("setting temp_store"))?;
        conn.pragma_update(None, "cache_size", -65_536)
            .map_err(StoreError::sqlite("setting cache_size"))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(StoreError::sqlite("reading schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        conn.execute_batch(SCHEMA)
            .map_err(StoreError::sqlite("creating schema"))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(StoreError::sqlite("writing schema version"))?;
        let head_rows: i64 = conn
            .query_row("SELECT count(*) FROM head", [], |r| r.get(0))
            .map_err(StoreError::sqlite("counting head"))?;
        let store = Self {
            conn,
            cache: RefCell::new(SeriesCache::default()),
            head_rows: head_rows.max(0) as u64,
            compact_rows: COMPACT_ROWS,
        };
        store.refresh_cache()?;
        Ok(store)
    }

    /// Loads series created since the cache was last filled (possibly by another process).
    fn refresh_cache(&self) -> Result<(), StoreError> {
        let mut cache = self.cache.borrow_mut();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, name, labels FROM series WHERE id > ?1 ORDER BY id")
            .map_err(StoreError::sqlite("loading series"))?;
        let rows = stmt
            .query_map([cache.max_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(StoreError::sqlite("loading series"))?;
        for row in rows {
            let (id, name, labels) = row.map_err(StoreError::sqlite("loading series"))?;
            let labels: BTreeMap<String, String> =
                serde_json::from_str(&labels).map_err(|source| StoreError::CorruptLabels {
                    id,
                    labels: labels.clone(),
                    source,
                })?;
            let key = SeriesKey { name, labels };
            cache.ids.insert(key.clone(), id);
            cache.keys.push((id, key));
            cache.max_id = cache.max_id.max(id);
        }
        Ok(())
    }

    fn series_id(&self, key: &SeriesKey) -> Result<i64, StoreError> {
        if let Some(&id) = self.cache.borrow().ids.get(key) {
            return Ok(id);
        }
        // serde_json writes a BTreeMap with sorted keys: a canonical form, so UNIQUE works.
        let labels = serde_json::to_string(&key.labels).unwrap_or_else(|_| "{}".into());
        self.conn
            .prepare_cached(
                "INSERT INTO series (name, labels) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![key.name, labels]))
            .map_err(StoreError::sqlite("creating series"))?;
        let id: i64 = self
            .conn
            .prepare_cached("SELECT id FROM series WHERE name = ?1 AND labels = ?2")
            .and_then(|mut s| s.query_row(params![key.name, labels], |r| r.get(0)))
            .map_err(StoreError::sqlite("looking up series"))?;
        let mut cache = self.cache.borrow_mut();
        cache.ids.insert(key.clone(), id);
        cache.keys.push((id, key.clone()));
        cache.max_id = cache.max_id.max(id);
        Ok(id)
    }

    fn insert_rows(&self, rows: &[(i64, i64, f64)]) -> Result<(), StoreError> {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql(chunk.len());
            let mut stmt = self
                .conn
                .prepare_cached(&sql)
                .map_err(StoreError::sqlite("preparing insert"))?;
            let mut i = 1;
            for (id, ts, v) in chunk {
                stmt.raw_bind_parameter(i, id)
                    .map_err(StoreError::sqlite("binding insert"))?;
                stmt.raw_bind_parameter(i + 1, ts)
                    .map_err(StoreError::sqlite("binding insert"))?;
                stmt.raw_bind_parameter(i + 2, v)
                    .map_err(StoreError::sqlite("binding insert"))?;
                i += 3;
            }
            stmt.raw_execute()
                .map_err(StoreError::sqlite("inserting samples"))?;
        }
        Ok(())
    }

    /// Every series matching `selector`, with point counts and time bounds.
    pub fn series(&self, selector: &Selector) -> Result<Vec<SeriesInfo>, StoreError> {
        self.refresh_cache()?;
        let ids: Vec<(i64, SeriesKey)> = self
            .cache
            .borrow()
            .keys
            .iter()
            .filter(|(_, k)| selector.matches(k))
            .cloned()
            .collect();
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning read"))?;
        let mut main = tx
            .prepare_cached("SELECT count(*), min(ts), max(ts) FROM sample WHERE series_id = ?1")
            .map_err(StoreError::sqlite("summarising series"))?;
        // Head points not shadowing a compacted one (a re-written old point is in both tiers).
        let mut head = tx
            .prepare_cached(
                "SELECT count(*), min(ts), max(ts) FROM head h WHERE h.series_id = ?1 \
                 AND NOT EXISTS (SELECT 1 FROM sample s WHERE s.series_id = h.series_id AND s.ts = h.ts)",
            )
            .map_err(StoreError::sqlite("summarising series"))?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, key) in ids {
            let (n1, f1, l1): (i64, Option<i64>, Option<i64>) = main
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(StoreError::sqlite("summarising series"))?;
            let (n2, f2, l2): (i64, Option<i64>, Option<i64>) = head
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(StoreError::sqlite("summarising series"))?;
            let first = [f1, f2].into_iter().flatten().min();
            let last = [l1, l2].into_iter().flatten().max();
            out.push(SeriesInfo {
                key,
                points: (n1 + n2).max(0) as u64,
                first,
                last,
            });
        }
        Ok(out)
    }

    /// The latest timestamp of one series, if it has points.
    pub fn last_timestamp(&self, key: &SeriesKey) -> Result<Option<Timestamp>, StoreError> {
        self.refresh_cache()?;
        let Some(&id) = self.cache.borrow().ids.get(key) else {
            return Ok(None);
        };
        self.conn
            .prepare_cached("SELECT max(t) FROM (SELECT max(ts) AS t FROM sample WHERE series_id = ?1 UNION ALL SELECT max(ts) FROM head WHERE series_id = ?1)")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)))
            .map_err(StoreError::sqlite("reading last timestamp"))
    }

    /// Total number of distinct points in the store.
    pub fn count_points(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM sample) + (SELECT count(*) FROM head h WHERE NOT EXISTS \
                 (SELECT 1 FROM sample s WHERE s.series_id = h.series_id AND s.ts = h.ts))",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(StoreError::sqlite("counting points"))
    }

    /// Caps the database at `pages` pages (of 4 KiB by default) for this connection: writes past
    /// it fail with `SQLITE_FULL`, as on a full disk. For quotas, and to test that path.
    pub fn set_max_page_count(&self, pages: u32) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "max_page_count", pages)
            .map_err(StoreError::sqlite("setting max_page_count"))
    }

    /// Sets the head size that triggers compaction (default [`COMPACT_ROWS`]; at least 1).
    pub fn set_compact_rows(&mut self, rows: u64) {
        self.compact_rows = rows.max(1);
    }

    /// Moves every head point into the series-ordered table, in one transaction.
    pub fn compact(&mut self) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning compaction"))?;
        // `WHERE true` resolves SQLite's parsing ambiguity between a join and ON CONFLICT.
        let moved = tx
            .execute(
                "INSERT INTO sample (series_id, ts, value) SELECT series_id, ts, value FROM head WHERE true \
                 ORDER BY series_id, ts ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value",
                [],
            )
            .map_err(StoreError::sqlite("compacting"))?;
        tx.execute("DELETE FROM head", [])
            .map_err(StoreError::sqlite("compacting"))?;
        tx.commit()
            .map_err(StoreError::sqlite("committing compaction"))?;
        self.head_rows = 0;
        Ok(moved as u64)
    }
}

fn read_points(
    stmt: &mut rusqlite::CachedStatement<'_>,
    id: i64,
    range: TimeRange,
) -> Result<Vec<Point>, StoreError> {
    let mut rows = stmt
        .query(params![id, range.start, range.end])
        .map_err(StoreError::sqlite("querying"))?;
    let mut points = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite("reading rows"))? {
        let ts: i64 = row.get(0).map_err(StoreError::sqlite("reading ts"))?;
        let value: f64 = row.get(1).map_err(StoreError::sqlite("reading value"))?;
        points.push(Point::new(ts, value));
    }
    Ok(points)
}

/// Merges two sorted point lists; on equal timestamps the head's (later) value wins.
fn merge(main: Vec<Point>, head: Vec<Point>) -> Vec<Point> {
    if main.is_empty() {
        return head;
    }
    let mut out = Vec::with_capacity(main.len() + head.len());
    let (mut a, mut b) = (main.into_iter().peekable(), head.into_iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.ts < y.ts => out.extend(a.next()),
            (Some(x), Some(y)) if x.ts == y.ts => {
                a.next();
                out.extend(b.next());
            }
            (_, Some(_)) => out.extend(b.next()),
            (Some(_), None) => out.extend(a.next()),
            (None, None) => return out,
        }
    }
}

fn insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(64 + rows * 10);
    sql.push_str("INSERT INTO head (series_id, ts, value) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?)");
    }
    sql.push_str(" ON CONFLICT (ts, series_id) DO UPDATE SET value = excluded.value");
    sql
}

impl MetricStore for SqliteStore {
    type Error = StoreError;

    fn write(&mut self, batch: &Batch) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning write"))?;
        let mut rows = Vec::with_capacity(batch.len());
        let mut non_finite = 0usize;
        for series in &batch.series {
            if series.points.is_empty() {
                continue;
            }
            let id = self.series_id(&series.key)?;
            for p in &series.points {
                // SQLite stores NaN as NULL; sources filter non-finite values and count them, this
                // is the last line of defence.
                if p.value.is_finite() {
                    rows.push((id, p.ts, p.value));
                } else {
                    non_finite += 1;
                }
            }
        }
        if non_finite > 0 {
            warn!(source = %batch.source, non_finite, "Skipped non-finite values at the store.");
        }
        // Within a multi-row insert, two rows with the same key are both applied in order, so the
        // last one wins, as in the trait's contract.
        self.insert_rows(&rows)?;
        if let Some(cursor) = batch.cursor {
            tx.execute(
                "INSERT INTO cursor (source, ts) VALUES (?1, ?2) ON CONFLICT (source) DO UPDATE SET ts = excluded.ts",
                params![batch.source, cursor],
            )
            .map_err(StoreError::sqlite("saving cursor"))?;
        }
        tx.commit()
            .map_err(StoreError::sqlite("committing write"))?;
        self.head_rows += rows.len() as u64;
        if self.head_rows >= self.compact_rows {
            // The batch is committed whatever happens here; a failed compaction is retried at
            // the next write.
            if let Err(error) = self.compact() {
                warn!(%error, "Compaction failed; will retry.");
            }
        }
        Ok(rows.len())
    }

    fn query(
        &self,
        selector: &Selector,
        range: TimeRange,
        step: Option<StepSpec>,
    ) -> Result<Vec<Series>, StoreError> {
        self.refresh_cache()?;
        let matching: Vec<(i64, SeriesKey)> = self
            .cache
            .borrow()
            .keys
            .iter()
            .filter(|(_, k)| selector.matches(k))
            .cloned()
            .collect();
        // One read transaction: a compaction by another connection is seen entirely or not at all.
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning read"))?;
        let mut main = tx
            .prepare_cached("SELECT ts, value FROM sample WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts")
            .map_err(StoreError::sqlite("preparing query"))?;
        let mut head = tx
            .prepare_cached("SELECT ts, value FROM head WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts")
            .map_err(StoreError::sqlite("preparing query"))?;
        let mut out = Vec::with_capacity(matching.len());
        for (id, key) in matching {
            let mut points = read_points(&mut main, id, range)?;
            let recent = read_points(&mut head, id, range)?;
            if !recent.is_empty() {
                points = merge(points, recent);
            }
            if points.is_empty() {
                continue;
            }
            if let Some(step) = step {
                let origin = if range.start == Timestamp::MIN {
                    points[0].ts
                } else {
                    range.start
                };
                points = step.apply(origin, &points);
            }
            out.push(Series::new(key, points));
        }
        Ok(out)
    }

    fn cursor(&self, source: &str) -> Result<Option<Timestamp>, StoreError> {
        self.conn
            .query_row("SELECT ts FROM cursor WHERE source = ?1", [source], |r| {
                r.get(0)
            })
            .optional()
            .map_err(StoreError::sqlite("reading cursor"))
    }

    fn delete_before(&mut self, cutoff: Timestamp) -> Result<usize, StoreError> {
        self.refresh_cache()?;
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning retention"))?;
        let ids: Vec<i64> = self.cache.borrow().keys.iter().map(|(id, _)| *id).collect();
        let mut deleted = 0;
        {
            // Per series, so each delete is a primary-key range scan, not a full-table scan.
            let mut stmt = tx
                .prepare_cached("DELETE FROM sample WHERE series_id = ?1 AND ts < ?2")
                .map_err(StoreError::sqlite("applying retention"))?;
            for id in &ids {
                deleted += stmt
                    .execute(params![id, cutoff])
                    .map_err(StoreError::sqlite("applying retention"))?;
            }
        }
        deleted += tx
            .execute("DELETE FROM head WHERE ts < ?1", [cutoff])
            .map_err(StoreError::sqlite("applying retention"))?;
        // The head subquery is not correlated: SQLite materialises it once.
        let emptied = tx
            .execute(
                "DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM sample WHERE series_id = series.id) \
                 AND id NOT IN (SELECT series_id FROM head)",
                [],
            )
            .map_err(StoreError::sqlite("removing empty series"))?;
        tx.commit()
            .map_err(StoreError::sqlite("committing retention"))?;
        if emptied > 0 {
            // Ids are never reused (AUTOINCREMENT), so a full reload is
            // enough to forget them.
            *self.cache.borrow_mut() = SeriesCache::default();
            self.refresh_cache()?;
        }
        Ok(deleted)
    }
}
