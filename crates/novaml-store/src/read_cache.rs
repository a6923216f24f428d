//! A decoded-points cache shared by the connections that answer range reads (the API's pool).
//!
//! Without it every range read re-reads and re-decodes the whole head and each chunk it touches:
//! a day of the demo's 81 VM series (~90,000 points) spent 37 % of its answer's time in SQLite
//! (page reads through `pread`, WAL lookups, blob copies; perf on a release `novaml demo`), because
//! each write by the collector resets every other connection's page cache.
//!
//! What makes it exact: the head only grows between compactions, and chunks only change in a
//! compaction or a retention pass. Triggers (in the schema) count every change to `chunk` and
//! every removal from `head` in `meta.epoch`, in the changing transaction. Within one epoch the
//! cache holds:
//!
//! - the head, decoded, per series (sorted, one point per timestamp, later writes winning),
//!   extended by the records written since the last read (`id > last`);
//! - per series, its chunk directory (`start_ts`, `end_ts`), read once;
//! - decoded chunks, up to [`ReadCache::new`]'s budget of points (past it, all are dropped and
//!   reloaded on demand).
//!
//! A read whose transaction sees a newer epoch starts a new cache; one that sees an older epoch
//! (it began before a compaction another reader has already seen) reads without it. Within an
//! epoch a read may see head records newer than its own transaction: the same answer as a read
//! a moment later, as chunks do not change within an epoch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use novaml_core::{Point, TimeRange};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::StoreError;
use crate::codec::{decode_chunk, merge};
use crate::sqlite::scan_head;

/// Decoded points shared by the reading connections of one database; see the module docs.
#[derive(Debug)]
pub struct ReadCache {
    inner: Mutex<Inner>,
    budget: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// `None` until the first read.
    epoch: Option<i64>,
    /// Highest head record decoded.
    head_last: i64,
    head: HashMap<i64, Vec<Point>>,
    dirs: HashMap<i64, Arc<[(i64, i64)]>>,
    chunks: HashMap<(i64, i64), Arc<[Point]>>,
    chunk_points: usize,
    hits: u64,
    misses: u64,
}

/// Counters of a [`ReadCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCacheStats {
    /// Chunks answered from the cache.
    pub hits: u64,
    /// Chunks read from the database.
    pub misses: u64,
    /// Decoded chunk points held now.
    pub chunk_points: usize,
}

impl ReadCache {
    /// A cache holding at most `budget_points` decoded chunk points (16 bytes each), besides the
    /// head (bounded by the compaction threshold) and the directories (two integers per chunk).
    pub fn new(budget_points: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            budget: budget_points,
        }
    }

    /// Its counters.
    pub fn stats(&self) -> ReadCacheStats {
        let inner = self.lock();
        ReadCacheStats {
            hits: inner.hits,
            misses: inner.misses,
            chunk_points: inner.chunk_points,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock can leave a half-updated cache: start over.
        self.inner.lock().unwrap_or_else(|poisoned| {
            let mut g = poisoned.into_inner();
            *g = Inner::default();
            g
        })
    }

    /// The points of each series in `ids` within `range`, read inside `tx`; `None` when this
    /// transaction is older than the cache (the caller reads without it).
    pub(crate) fn read(
        &self,
        tx: &Transaction<'_>,
        ids: &[i64],
        range: TimeRange,
    ) -> Result<Option<Vec<Vec<Point>>>, StoreError> {
        let epoch: i64 = tx
            .prepare_cached("SELECT value FROM meta WHERE key = 'epoch'")
            .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
            .map_err(StoreError::sqlite("reading epoch"))?
            .unwrap_or(0);
        let mut inner = self.lock();
        match inner.epoch {
            Some(e) if e > epoch => return Ok(None),
            Some(e) if e == epoch => {}
            _ => {
                *inner = Inner {
                    epoch: Some(epoch),
                    hits: inner.hits,
                    misses: inner.misses,
                    ..Inner::default()
                };
            }
        }
        inner.extend_head(tx)?;
        let mut out = Vec::with_capacity(ids.len());
        for &sid in ids {
            let dir = match inner.dirs.get(&sid) {
                Some(d) => d.clone(),
                None => {
                    let d = directory(tx, sid)?;
                    inner.dirs.insert(sid, d.clone());
                    d
                }
            };
            let mut points = Vec::new();
            // Chunks do not overlap and are sorted: those ending before the range go first.
            let first = dir.partition_point(|&(_, end)| end < range.start);
            for &(start, _) in dir[first..].iter().take_while(|&&(s, _)| s < range.end) {
                let chunk = inner.chunk(tx, sid, start, self.budget)?;
                let lo = chunk.partition_point(|p| p.ts < range.start);
                let hi = chunk.partition_point(|p| p.ts < range.end);
                points.extend_from_slice(&chunk[lo..hi]);
            }
            if let Some(h) = inner.head.get(&sid) {
                let lo = h.partition_point(|p| p.ts < range.start);
                let hi = h.partition_point(|p| p.ts < range.end);
                if lo < hi {
                    points = merge(points, h[lo..hi].to_vec());
                }
            }
            out.push(points);
        }
        Ok(Some(out))
    }
}

impl Inner {
    /// Decodes the head records written since the last read.
    fn extend_head(&mut self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let head = &mut self.head;
        self.head_last = scan_head(tx, self.head_last, |sid, ts, value| {
            let points = head.entry(sid).or_default();
            let p = Point::new(ts, value);
            match points.last() {
                Some(last) if last.ts < ts => points.push(p),
                None => points.push(p),
                Some(_) => match points.binary_search_by_key(&ts, |q| q.ts) {
                    Ok(i) => points[i] = p,
                    Err(i) => points.insert(i, p),
                },
            }
        })?;
        Ok(())
    }

    /// A decoded chunk, from the cache or the database.
    fn chunk(
        &mut self,
        tx: &Transaction<'_>,
        sid: i64,
        start: i64,
        budget: usize,
    ) -> Result<Arc<[Point]>, StoreError> {
        if let Some(c) = self.chunks.get(&(sid, start)) {
            self.hits += 1;
            return Ok(c.clone());
        }
        self.misses += 1;
        let mut points = Vec::new();
        let found = tx
            .prepare_cached("SELECT data FROM chunk WHERE series_id = ?1 AND start_ts = ?2")
            .and_then(|mut s| {
                s.query_row(params![sid, start], |r| {
                    let blob = r.get_ref(0)?.as_blob()?;
                    Ok(decode_chunk(blob, &mut points))
                })
            })
            .map_err(StoreError::sqlite("reading chunk"))?;
        if !found {
            return Err(StoreError::CorruptBlob {
                table: "chunk",
                series_id: sid,
                key: start,
            });
        }
        let chunk: Arc<[Point]> = points.into();
        if self.chunk_points + chunk.len() > budget {
            // Over the budget: start the chunks over (the head and directories stay).
            self.chunks.clear();
            self.chunk_points = 0;
        }
        if chunk.len() <= budget {
            self.chunk_points += chunk.len();
            self.chunks.insert((sid, start), chunk.clone());
        }
        Ok(chunk)
    }
}

/// A series' chunks as `(start_ts, end_ts)`, sorted.
fn directory(tx: &Transaction<'_>, sid: i64) -> Result<Arc<[(i64, i64)]>, StoreError> {
    let mut stmt = tx
        .prepare_cached("SELECT start_ts, end_ts FROM chunk WHERE series_id = ?1 ORDER BY start_ts")
        .map_err(StoreError::sqlite("reading chunk directory"))?;
    let rows = stmt
        .query_map([sid], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .map_err(StoreError::sqlite("reading chunk directory"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map(Into::into)
        .map_err(StoreError::sqlite("reading chunk directory"))
}
