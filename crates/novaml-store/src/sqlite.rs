//! The embedded store: SQLite in WAL mode, in two tiers, as time-series databases do.
//!
//! - `head (id, n, data)`: each write appends **one row** holding all its points as a blob
//!   (`(series_id, ts, value)` × n). Writing a scrape of 10,000 series is one small sequential
//!   append, not 10,000 B-tree insertions scattered over the file.
//! - `chunk (series_id, start_ts, end_ts, n, data)`, keyed `(series_id, start_ts)`: a series'
//!   points, sorted, in blobs of up to [`CHUNK_POINTS`]. Chunks of one series never overlap, so a
//!   time-range read is one primary-key range scan plus a copy.
//!
//! When the head holds [`COMPACT_POINTS`] points it is compacted in one transaction: its points
//! are sorted by series and time (a later write wins over an earlier one at the same timestamp)
//! and merged into chunks (appended when newer than the series' last chunk, merged into the
//! overlapping chunks otherwise). Reads merge chunks with the head, inside one read transaction,
//! so a compaction by another connection is seen whole or not at all.
//!
//! We store blobs in SQLite rather than writing our own file format: SQLite gives atomic
//! transactions across the head, chunks, series and cursors, crash safety, and concurrent readers
//! for free; the blob layout only removes its per-row cost from the hot path.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use novaml_core::{
    Batch, MetricStore, Point, Selector, Series, SeriesKey, StepSpec, TimeRange, Timestamp,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tracing::warn;

use crate::StoreError;
use crate::codec::{decode_chunk, decode_head, encode_chunk, encode_head, merge};
use crate::read_cache::ReadCache;

/// Schema version written to `PRAGMA user_version`.
/// 3: `meta.epoch` and its triggers, which the shared read cache relies on (an older binary,
/// which has no such triggers, must not change the file).
const SCHEMA_VERSION: i64 = 3;

/// Head size that triggers a compaction: 256k points ≈ 6 MB of head blobs, small enough that
/// reads decode the head quickly. With many series the threshold grows to
/// [`MIN_POINTS_PER_SERIES`] points per series in the head (capped at [`MAX_HEAD_POINTS`]), so each
/// compaction writes chunks of useful size and its per-series cost is spread over many points.
pub const COMPACT_POINTS: u64 = 262_144;

/// Points per series in the head aimed for before compacting.
pub const MIN_POINTS_PER_SERIES: u64 = 32;

/// Most points the head may hold before a compaction, whatever the series count (≈ 96 MB).
pub const MAX_HEAD_POINTS: u64 = 4_194_304;

/// Most points in one chunk (32 KiB blobs).
pub const CHUNK_POINTS: usize = 2_048;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS series (
    id     INTEGER PRIMARY KEY AUTOINCREMENT, -- never reuse ids: caches key on them
    name   TEXT NOT NULL,
    labels TEXT NOT NULL,          -- canonical JSON object, keys sorted
    UNIQUE (name, labels)
);
CREATE TABLE IF NOT EXISTS head (
    id   INTEGER PRIMARY KEY,      -- write order: a later record wins
    n    INTEGER NOT NULL,
    data BLOB NOT NULL             -- (series_id i64, ts i64, value f64) × n, little-endian
);
CREATE TABLE IF NOT EXISTS chunk (
    series_id INTEGER NOT NULL,
    start_ts  INTEGER NOT NULL,    -- ms since the Unix epoch, first point
    end_ts    INTEGER NOT NULL,    -- last point
    n         INTEGER NOT NULL,
    data      BLOB NOT NULL,       -- (ts i64, value f64) × n, sorted, little-endian
    PRIMARY KEY (series_id, start_ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursor (
    source TEXT PRIMARY KEY,
    ts     INTEGER NOT NULL
);
-- `epoch` counts every change to chunks and every removal from the head, in the changing
-- transaction: within one epoch the head only grows and chunks stay as they are, which is what
-- lets readers keep decoded points (read_cache.rs). No row means 0.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS chunk_inserted AFTER INSERT ON chunk BEGIN
    INSERT INTO meta (key, value) VALUES ('epoch', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER IF NOT EXISTS chunk_updated AFTER UPDATE ON chunk BEGIN
    INSERT INTO meta (key, value) VALUES ('epoch', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER IF NOT EXISTS chunk_deleted AFTER DELETE ON chunk BEGIN
    INSERT INTO meta (key, value) VALUES ('epoch', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER IF NOT EXISTS head_updated AFTER UPDATE ON head BEGIN
    INSERT INTO meta (key, value) VALUES ('epoch', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER IF NOT EXISTS head_deleted AFTER DELETE ON head BEGIN
    INSERT INTO meta (key, value) VALUES ('epoch', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1;
END;
";

/// A series known to the store, with summary statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    /// Identity.
    pub key: SeriesKey,
    /// Number of points (a re-written old point may count twice until the next compaction).
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
    /// Points in the head as this connection last knew it.
    head_points: u64,
    /// Series with points in the head written by this connection: a bitset over series ids
    /// (dense, from 1) and its population count. A hash set here cost a quarter of a write.
    head_seen: Vec<u64>,
    head_series: u64,
    compact_points: u64,
    /// Decoded points shared with other reading connections, if any.
    read_cache: Option<std::sync::Arc<ReadCache>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.conn.path())
            .finish_non_exhaustive()
    }
}

/// A connection to the database at `path` (in memory for `None`) as every table of a novaml
/// file wants it: waits up to 5 s for a lock held by another connection, and WAL, so readers do
/// not block the writer. The metric store and the incident log share the file.
pub(crate) fn connect(path: Option<&Path>) -> Result<Connection, StoreError> {
    let conn = match path {
        Some(path) => {
            // A new database is created private (0600); SQLite gives its WAL and shared-memory
            // files the database's mode. An existing one keeps its mode; other failures are
            // SQLite's to report.
            if !path.exists() {
                let _ = novaml_core::fs::private_options()
                    .write(true)
                    .create_new(true)
                    .open(path);
            }
            Connection::open(path).map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?
        }
        None => Connection::open_in_memory()
            .map_err(StoreError::sqlite("opening in-memory database"))?,
    };
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(StoreError::sqlite("setting busy timeout"))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(StoreError::sqlite("enabling WAL"))?;
    Ok(conn)
}

/// Calls `f(series, ts, value)` for every head entry of the records after record `after`, in
/// write order; returns the last record's id (`after` when there is none).
pub(crate) fn scan_head(
    tx: &Transaction<'_>,
    after: i64,
    mut f: impl FnMut(i64, i64, f64),
) -> Result<i64, StoreError> {
    let mut stmt = tx
        .prepare_cached("SELECT id, data FROM head WHERE id > ?1 ORDER BY id")
        .map_err(StoreError::sqlite("reading head"))?;
    let mut rows = stmt
        .query([after])
        .map_err(StoreError::sqlite("reading head"))?;
    let mut last = after;
    while let Some(row) = rows.next().map_err(StoreError::sqlite("reading head"))? {
        let id: i64 = row.get(0).map_err(StoreError::sqlite("reading head"))?;
        let blob = row
            .get_ref(1)
            .and_then(|v| v.as_blob().map_err(Into::into))
            .map_err(StoreError::sqlite("reading head"))?;
        let decoded = decode_head(blob).ok_or(StoreError::CorruptBlob {
            table: "head",
            series_id: 0,
            key: id,
        })?;
        for (sid, ts, v) in decoded {
            f(sid, ts, v);
        }
        last = id;
    }
    Ok(last)
}

/// Head points grouped by series, in `(ts)` order, later writes winning.
type HeadPoints = HashMap<i64, Vec<Point>>;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::init(connect(Some(path.as_ref()))?)
    }

    /// An in-memory database, for tests and one-shot pipelines.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(connect(None)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        // NORMAL: fsync at checkpoints only, which in WAL mode is durable against a killed
        // process (the failure we promise to survive).
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(StoreError::sqlite("setting synchronous"))?;
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(StoreError::sqlite("setting temp_store"))?;
        conn.pragma_update(None, "cache_size", -16_384)
            .map_err(StoreError::sqlite("setting cache_size"))?;
        // Checkpoint every 32 MB of WAL instead of 4 MB: fewer, larger copies into the database.
        conn.pragma_update(None, "wal_autocheckpoint", 8_192)
            .map_err(StoreError::sqlite("setting wal_autocheckpoint"))?;
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
        let head_points: i64 = conn
            .query_row("SELECT coalesce(sum(n), 0) FROM head", [], |r| r.get(0))
            .map_err(StoreError::sqlite("sizing head"))?;
        let store = Self {
            conn,
            cache: RefCell::new(SeriesCache::default()),
            head_points: head_points.max(0) as u64,
            head_seen: Vec::new(),
            head_series: 0,
            compact_points: COMPACT_POINTS,
            read_cache: None,
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

    fn matching(&self, selector: &Selector) -> Result<Vec<(i64, SeriesKey)>, StoreError> {
        self.refresh_cache()?;
        Ok(self
            .cache
            .borrow()
            .keys
            .iter()
            .filter(|(_, k)| selector.matches(k))
            .cloned()
            .collect())
    }

    /// Reads the head: points of the series in `wanted` (all when `None`) within `range`, as one
    /// vector sorted by `(series, ts)` with one point per key, later writes winning. Returns also
    /// the highest record id read. One flat vector and one sort: per-series maps cost more in
    /// allocation than the sort does.
    fn read_head_sorted(
        tx: &Transaction<'_>,
        wanted: Option<&HashSet<i64>>,
        range: TimeRange,
    ) -> Result<(Vec<(i64, Point)>, i64), StoreError> {
        // (series, ts, write sequence, value): sorting by the first three puts the last write of
        // a key last.
        let mut entries: Vec<(i64, i64, u64, f64)> = Vec::new();
        let mut seq = 0u64;
        let max_id = scan_head(tx, 0, |sid, ts, v| {
            seq += 1;
            if range.contains(ts) && wanted.is_none_or(|w| w.contains(&sid)) {
                entries.push((sid, ts, seq, v));
            }
        })?;
        entries.sort_unstable_by_key(|&(sid, ts, seq, _)| (sid, ts, seq));
        // Keep the last write of each key, in place (no second buffer: compaction of a large
        // head is the collector's peak memory).
        let mut kept = 0usize;
        for i in 0..entries.len() {
            if kept > 0
                && entries[kept - 1].0 == entries[i].0
                && entries[kept - 1].1 == entries[i].1
            {
                entries[kept - 1] = entries[i];
            } else {
                entries[kept] = entries[i];
                kept += 1;
            }
        }
        entries.truncate(kept);
        entries.shrink_to_fit();
        let out: Vec<(i64, Point)> = entries
            .into_iter()
            .map(|(sid, ts, _, v)| (sid, Point::new(ts, v)))
            .collect();
        Ok((out, max_id))
    }

    /// The head grouped by series (for reads of a few series).
    fn read_head(
        tx: &Transaction<'_>,
        wanted: Option<&HashSet<i64>>,
        range: TimeRange,
    ) -> Result<(HeadPoints, i64), StoreError> {
        let (sorted, max_id) = Self::read_head_sorted(tx, wanted, range)?;
        let mut out: HeadPoints = HashMap::new();
        for group in sorted.chunk_by(|a, b| a.0 == b.0) {
            out.insert(group[0].0, group.iter().map(|(_, p)| *p).collect());
        }
        Ok((out, max_id))
    }

    /// Reads one series' chunk points within `range`.
    fn read_chunks(
        tx: &Transaction<'_>,
        sid: i64,
        range: TimeRange,
    ) -> Result<Vec<Point>, StoreError> {
        // Chunks do not overlap: the first one that can hold `range.start` is the last starting
        // at or before it.
        let from: Option<i64> = tx
            .prepare_cached(
                "SELECT max(start_ts) FROM chunk WHERE series_id = ?1 AND start_ts <= ?2",
            )
            .and_then(|mut s| s.query_row(params![sid, range.start], |r| r.get(0)))
            .map_err(StoreError::sqlite("seeking chunks"))?;
        let mut stmt = tx
            .prepare_cached("SELECT start_ts, data FROM chunk WHERE series_id = ?1 AND start_ts >= ?2 AND start_ts < ?3 ORDER BY start_ts")
            .map_err(StoreError::sqlite("reading chunks"))?;
        let mut rows = stmt
            .query(params![sid, from.unwrap_or(range.start), range.end])
            .map_err(StoreError::sqlite("reading chunks"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(StoreError::sqlite("reading chunks"))? {
            let start: i64 = row.get(0).map_err(StoreError::sqlite("reading chunks"))?;
            let blob = row
                .get_ref(1)
                .and_then(|v| v.as_blob().map_err(Into::into))
                .map_err(StoreError::sqlite("reading chunks"))?;
            let before = out.len();
            if !decode_chunk(blob, &mut out) {
                return Err(StoreError::CorruptBlob {
                    table: "chunk",
                    series_id: sid,
                    key: start,
                });
            }
            // Trim the edges of the range (only the first and last chunk can stick out).
            if out[before..].first().is_some_and(|p| p.ts < range.start)
                || out.last().is_some_and(|p| p.ts >= range.end)
            {
                let tail: Vec<Point> = out
                    .drain(before..)
                    .filter(|p| range.contains(p.ts))
                    .collect();
                out.extend(tail);
            }
        }
        Ok(out)
    }

    /// Writes `points` (sorted, unique) of series `sid` into chunks, merging with any chunk they
    /// overlap (the new points win).
    fn merge_into_chunks(
        tx: &Transaction<'_>,
        sid: i64,
        points: Vec<Point>,
    ) -> Result<(), StoreError> {
        let (Some(first), Some(last)) = (points.first().map(|p| p.ts), points.last().map(|p| p.ts))
        else {
            return Ok(());
        };
        // Find the overlapping chunks by their bounds only; their blobs are read only when a
        // merge is needed (appends, the common case, read no blob at all).
        let mut overlapping: Vec<i64> = Vec::new();
        {
            let mut stmt = tx
                .prepare_cached("SELECT start_ts, end_ts FROM chunk WHERE series_id = ?1 AND start_ts <= ?2 ORDER BY start_ts DESC")
                .map_err(StoreError::sqlite("finding overlapping chunks"))?;
            let mut rows = stmt
                .query(params![sid, last])
                .map_err(StoreError::sqlite("finding overlapping chunks"))?;
            while let Some(row) = rows
                .next()
                .map_err(StoreError::sqlite("finding overlapping chunks"))?
            {
                let end: i64 = row
                    .get(1)
                    .map_err(StoreError::sqlite("finding overlapping chunks"))?;
                if end < first {
                    break; // chunks are disjoint and sorted: none further back overlaps
                }
                overlapping.push(
                    row.get(0)
                        .map_err(StoreError::sqlite("finding overlapping chunks"))?,
                );
            }
        }
        let merged = if overlapping.is_empty() {
            points
        } else {
            let mut old = Vec::new();
            let mut get = tx
                .prepare_cached("SELECT data FROM chunk WHERE series_id = ?1 AND start_ts = ?2")
                .map_err(StoreError::sqlite("rewriting chunks"))?;
            let mut del = tx
                .prepare_cached("DELETE FROM chunk WHERE series_id = ?1 AND start_ts = ?2")
                .map_err(StoreError::sqlite("rewriting chunks"))?;
            for start in overlapping.iter().rev() {
                let blob: Vec<u8> = get
                    .query_row(params![sid, start], |r| r.get(0))
                    .map_err(StoreError::sqlite("rewriting chunks"))?;
                if !decode_chunk(&blob, &mut old) {
                    return Err(StoreError::CorruptBlob {
                        table: "chunk",
                        series_id: sid,
                        key: *start,
                    });
                }
                del.execute(params![sid, start])
                    .map_err(StoreError::sqlite("rewriting chunks"))?;
            }
            merge(old, points)
        };
        let mut ins = tx
            .prepare_cached("INSERT INTO chunk (series_id, start_ts, end_ts, n, data) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(StoreError::sqlite("writing chunks"))?;
        for c in merged.chunks(CHUNK_POINTS) {
            ins.execute(params![
                sid,
                c[0].ts,
                c[c.len() - 1].ts,
                c.len() as i64,
                encode_chunk(c)
            ])
            .map_err(StoreError::sqlite("writing chunks"))?;
        }
        Ok(())
    }

    fn mark_in_head(&mut self, id: i64) {
        let id = id.max(0) as usize;
        let (word, bit) = (id / 64, 1u64 << (id % 64));
        if word >= self.head_seen.len() {
            self.head_seen.resize(word + 1, 0);
        }
        if self.head_seen[word] & bit == 0 {
            self.head_seen[word] |= bit;
            self.head_series += 1;
        }
    }

    /// Moves every head point into chunks, in one transaction. Returns the points moved.
    pub fn compact(&mut self) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning compaction"))?;
        let (head, max_id) = Self::read_head_sorted(&tx, None, TimeRange::all())?;
        // Groups come in series order: chunk writes land on consecutive pages.
        for group in head.chunk_by(|a, b| a.0 == b.0) {
            Self::merge_into_chunks(&tx, group[0].0, group.iter().map(|(_, p)| *p).collect())?;
        }
        let moved = head.len() as u64;
        tx.execute("DELETE FROM head WHERE id <= ?1", [max_id])
            .map_err(StoreError::sqlite("clearing head"))?;
        tx.commit()
            .map_err(StoreError::sqlite("committing compaction"))?;
        self.head_points = 0;
        self.head_seen.clear();
        self.head_series = 0;
        Ok(moved)
    }

    /// Range reads of this connection go through `cache`, shared with other connections to the
    /// same database (see [`ReadCache`]); for connections that mostly read.
    #[must_use]
    pub fn with_read_cache(mut self, cache: std::sync::Arc<ReadCache>) -> Self {
        self.read_cache = Some(cache);
        self
    }

    /// Sets the head size that triggers compaction (default [`COMPACT_POINTS`]; at least 1).
    pub fn set_compact_points(&mut self, points: u64) {
        self.compact_points = points.max(1);
    }

    /// Sets this connection's SQLite page cache to at most `kib` KiB (16 MiB by default): for
    /// connections whose reads a [`ReadCache`] serves.
    pub fn set_page_cache_kib(&self, kib: u32) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib))
            .map_err(StoreError::sqlite("setting cache_size"))
    }

    /// Caps the database at `pages` pages (of 4 KiB by default) for this connection: writes past
    /// it fail with `SQLITE_FULL`, as on a full disk. For quotas, and to test that path.
    pub fn set_max_page_count(&self, pages: u32) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "max_page_count", pages)
            .map_err(StoreError::sqlite("setting max_page_count"))
    }

    /// Every series matching `selector`, with point counts and time bounds.
    pub fn series(&self, selector: &Selector) -> Result<Vec<SeriesInfo>, StoreError> {
        let ids = self.matching(selector)?;
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning read"))?;
        let wanted: HashSet<i64> = ids.iter().map(|(id, _)| *id).collect();
        let (head, _) = Self::read_head(&tx, Some(&wanted), TimeRange::all())?;
        let mut stmt = tx
            .prepare_cached("SELECT coalesce(sum(n), 0), min(start_ts), max(end_ts) FROM chunk WHERE series_id = ?1")
            .map_err(StoreError::sqlite("summarising series"))?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, key) in ids {
            let (n, first, last): (i64, Option<i64>, Option<i64>) = stmt
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(StoreError::sqlite("summarising series"))?;
            let h = head.get(&id);
            let first = [first, h.and_then(|p| p.first()).map(|p| p.ts)]
                .into_iter()
                .flatten()
                .min();
            let last = [last, h.and_then(|p| p.last()).map(|p| p.ts)]
                .into_iter()
                .flatten()
                .max();
            out.push(SeriesInfo {
                key,
                points: n.max(0) as u64 + h.map_or(0, |p| p.len() as u64),
                first,
                last,
            });
        }
        Ok(out)
    }

    /// Every series' key (with or without points), in the order they were created.
    pub fn keys(&self) -> Result<Vec<SeriesKey>, StoreError> {
        self.refresh_cache()?;
        Ok(self
            .cache
            .borrow()
            .keys
            .iter()
            .map(|(_, k)| k.clone())
            .collect())
    }

    /// Number of series in the store.
    pub fn series_count(&self) -> Result<u64, StoreError> {
        self.refresh_cache()?;
        Ok(self.cache.borrow().keys.len() as u64)
    }

    /// The latest timestamp of one series, if it has points.
    pub fn last_timestamp(&self, key: &SeriesKey) -> Result<Option<Timestamp>, StoreError> {
        self.refresh_cache()?;
        let Some(&id) = self.cache.borrow().ids.get(key) else {
            return Ok(None);
        };
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning read"))?;
        let chunk_last: Option<i64> = tx
            .prepare_cached(
                "SELECT end_ts FROM chunk WHERE series_id = ?1 ORDER BY start_ts DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
            .map_err(StoreError::sqlite("reading last timestamp"))?;
        let (head, _) = Self::read_head(&tx, Some(&HashSet::from([id])), TimeRange::all())?;
        let head_last = head.get(&id).and_then(|p| p.last()).map(|p| p.ts);
        Ok(chunk_last.max(head_last))
    }

    /// Total number of points (a re-written old point may count twice until the next compaction).
    pub fn count_points(&self) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning read"))?;
        let chunks: i64 = tx
            .query_row("SELECT coalesce(sum(n), 0) FROM chunk", [], |r| r.get(0))
            .map_err(StoreError::sqlite("counting points"))?;
        let (head, _) = Self::read_head(&tx, None, TimeRange::all())?;
        Ok(chunks.max(0) as u64 + head.values().map(|p| p.len() as u64).sum::<u64>())
    }
}

impl MetricStore for SqliteStore {
    type Error = StoreError;

    fn write(&mut self, batch: &Batch) -> Result<usize, StoreError> {
        let written = self.write_head(batch);
        if written.is_err() {
            // Series created inside the failed transaction were rolled back (and their ids may be
            // handed out again): forget everything cached and reload what is committed.
            *self.cache.borrow_mut() = SeriesCache::default();
            self.refresh_cache()?;
        }
        let written = written?;
        let threshold = self
            .compact_points
            .max((self.head_series * MIN_POINTS_PER_SERIES).min(MAX_HEAD_POINTS));
        if self.head_points >= threshold {
            // The batch is committed whatever happens here; a failed compaction (a full disk) is
            // retried at the next write.
            if let Err(error) = self.compact() {
                warn!(%error, "Compaction failed; will retry.");
            }
        }
        Ok(written)
    }

    fn query(
        &self,
        selector: &Selector,
        range: TimeRange,
        step: Option<StepSpec>,
    ) -> Result<Vec<Series>, StoreError> {
        self.query_impl(selector, range, step)
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
        self.delete_before_impl(cutoff)
    }
}

impl SqliteStore {
    /// Appends a batch to the head with its cursor, in one transaction.
    fn write_head(&mut self, batch: &Batch) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning write"))?;
        let mut rows = Vec::with_capacity(batch.len());
        let mut ids = Vec::with_capacity(batch.series.len());
        let mut non_finite = 0usize;
        for series in &batch.series {
            if series.points.is_empty() {
                continue;
            }
            let id = self.series_id(&series.key)?;
            ids.push(id);
            for p in &series.points {
                // Sources filter non-finite values and count them; this is the last line of
                // defence, so models never read a NaN from the store.
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
        if !rows.is_empty() {
            tx.prepare_cached("INSERT INTO head (n, data) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![rows.len() as i64, encode_head(&rows)]))
                .map_err(StoreError::sqlite("appending to head"))?;
        }
        if let Some(cursor) = batch.cursor {
            tx.prepare_cached("INSERT INTO cursor (source, ts) VALUES (?1, ?2) ON CONFLICT (source) DO UPDATE SET ts = excluded.ts")
                .and_then(|mut s| s.execute(params![batch.source, cursor]))
                .map_err(StoreError::sqlite("saving cursor"))?;
        }
        tx.commit()
            .map_err(StoreError::sqlite("committing write"))?;
        self.head_points += rows.len() as u64;
        for id in ids {
            self.mark_in_head(id);
        }
        Ok(rows.len())
    }

    fn query_impl(
        &self,
        selector: &Selector,
        range: TimeRange,
        step: Option<StepSpec>,
    ) -> Result<Vec<Series>, StoreError> {
        let matching = self.matching(selector)?;
        if matching.is_empty() {
            return Ok(Vec::new());
        }
        // One read transaction: a compaction by another connection is seen whole or not at all.
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning read"))?;
        let ids: Vec<i64> = matching.iter().map(|(id, _)| *id).collect();
        let cached = match &self.read_cache {
            Some(cache) => cache.read(&tx, &ids, range)?,
            None => None,
        };
        let found: Vec<Vec<Point>> = match cached {
            Some(found) => found,
            None => {
                let wanted: HashSet<i64> = ids.iter().copied().collect();
                let (mut head, _) = Self::read_head(&tx, Some(&wanted), range)?;
                let mut found = Vec::with_capacity(ids.len());
                for &id in &ids {
                    let mut points = Self::read_chunks(&tx, id, range)?;
                    if let Some(recent) = head.remove(&id) {
                        points = merge(points, recent);
                    }
                    found.push(points);
                }
                found
            }
        };
        let mut out = Vec::with_capacity(matching.len());
        for ((_, key), mut points) in matching.into_iter().zip(found) {
            if points.is_empty() {
                continue;
            }
            if let Some(step) = step {
                points = step.apply_in(range, &points);
            }
            out.push(Series::new(key, points));
        }
        Ok(out)
    }

    fn delete_before_impl(&mut self, cutoff: Timestamp) -> Result<usize, StoreError> {
        // Retention works on chunks only: compact first.
        self.compact()?;
        self.refresh_cache()?;
        let ids: Vec<i64> = self.cache.borrow().keys.iter().map(|(id, _)| *id).collect();
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::sqlite("beginning retention"))?;
        let mut deleted = 0usize;
        for id in ids {
            // Whole chunks before the cutoff go by primary-key range; the one straddling it is
            // trimmed and rewritten.
            let (n, straddler): (i64, Option<i64>) = tx
                .prepare_cached("SELECT coalesce(sum(n) FILTER (WHERE end_ts < ?2), 0), max(start_ts) FILTER (WHERE end_ts >= ?2) FROM chunk WHERE series_id = ?1 AND start_ts < ?2")
                .and_then(|mut s| s.query_row(params![id, cutoff], |r| Ok((r.get(0)?, r.get(1)?))))
                .map_err(StoreError::sqlite("applying retention"))?;
            tx.prepare_cached(
                "DELETE FROM chunk WHERE series_id = ?1 AND start_ts < ?2 AND end_ts < ?2",
            )
            .and_then(|mut s| s.execute(params![id, cutoff]))
            .map_err(StoreError::sqlite("applying retention"))?;
            deleted += n.max(0) as usize;
            if let Some(start) = straddler {
                let blob: Vec<u8> = tx
                    .query_row(
                        "SELECT data FROM chunk WHERE series_id = ?1 AND start_ts = ?2",
                        params![id, start],
                        |r| r.get(0),
                    )
                    .map_err(StoreError::sqlite("applying retention"))?;
                let mut pts = Vec::new();
                if !decode_chunk(&blob, &mut pts) {
                    return Err(StoreError::CorruptBlob {
                        table: "chunk",
                        series_id: id,
                        key: start,
                    });
                }
                let before = pts.len();
                pts.retain(|p| p.ts >= cutoff);
                deleted += before - pts.len();
                tx.execute(
                    "DELETE FROM chunk WHERE series_id = ?1 AND start_ts = ?2",
                    params![id, start],
                )
                .map_err(StoreError::sqlite("applying retention"))?;
                if let (Some(f), Some(l)) = (pts.first(), pts.last()) {
                    tx.execute(
                        "INSERT INTO chunk (series_id, start_ts, end_ts, n, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, f.ts, l.ts, pts.len() as i64, encode_chunk(&pts)],
                    )
                    .map_err(StoreError::sqlite("applying retention"))?;
                }
            }
        }
        let emptied = tx
            .execute("DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM chunk WHERE series_id = series.id)", [])
            .map_err(StoreError::sqlite("removing empty series"))?;
        tx.commit()
            .map_err(StoreError::sqlite("committing retention"))?;
        if emptied > 0 {
            // Ids are never reused (AUTOINCREMENT), so a full reload forgets the removed ones.
            *self.cache.borrow_mut() = SeriesCache::default();
            self.refresh_cache()?;
        }
        Ok(deleted)
    }
}
