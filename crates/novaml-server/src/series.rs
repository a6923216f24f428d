//! Stored series:
//!
//! - `GET /api/series?match=SELECTOR&limit=`: matching series with point counts and time bounds;
//! - `GET /api/series/query?match=SELECTOR&from=&to=&step=&agg=`: their points in a range,
//!   optionally aggregated per step (`avg`, `min`, `max`, `last`).
//!
//! Times are Unix seconds; `from`/`to` may also be negative offsets from now (`from=-3600`).
//! Reads go through a small pool of SQLite connections on the blocking threads, so concurrent
//! readers do not queue behind one connection, and share decoded points
//! ([`novaml_store::ReadCache`]), so a repeated range is not read and decoded again.
//!
//! Query work is bounded, whatever the number of clients: at most [`READ_SLOTS`] reads run at
//! once (the others wait their turn without holding a thread), and the answers being sent hold
//! at most [`ANSWER_BUDGET`] bytes together (a new answer waits for room; a request that waits
//! longer than [`WAIT`] is answered 503 with `Retry-After`). Memory under any load is about
//! `READ_SLOTS` answers being built plus the budget, instead of one answer per connection.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use novaml_core::{Aggregation, MetricStore, Selector, StepSpec, TimeRange};
use novaml_store::{ReadCache, SqliteStore};
use serde::{Deserialize, Serialize};

use crate::error::blocking;
use crate::{ApiError, AppState};

/// Most series one query returns.
const MAX_SERIES: usize = 500;
/// Most points one query returns, all series together.
const MAX_POINTS: usize = 200_000;
/// Store reads at once: the machine's cores are busy collecting and detecting too, and each
/// read holds a blocking thread and its allocations.
pub(crate) const READ_SLOTS: usize = 4;
/// Bytes of answers in flight at once, all clients together.
pub(crate) const ANSWER_BUDGET: usize = 64 << 20;
/// Decoded chunk points the readers keep (16 bytes each: 8 MiB), besides the head: five times
/// the demo's heaviest answer (a day of its 81 VM series), so that the dashboards' reads of the
/// last day stay decoded between compactions.
const CACHED_POINTS: usize = 1 << 19;
/// Longest a request waits for a read slot or for room in the budget.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Read-only access to the store for the API: a pool of connections opened on demand.
#[derive(Clone)]
pub struct StoreReader {
    path: PathBuf,
    pool: Arc<Mutex<Vec<SqliteStore>>>,
    slots: Arc<tokio::sync::Semaphore>,
    /// The answer budget in KiB permits.
    budget: Arc<tokio::sync::Semaphore>,
    /// Decoded points shared by the pool's connections.
    cache: Arc<ReadCache>,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StoreReader {
    /// Readers of the SQLite store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            pool: Arc::new(Mutex::new(Vec::new())),
            slots: Arc::new(tokio::sync::Semaphore::new(READ_SLOTS)),
            budget: Arc::new(tokio::sync::Semaphore::new(ANSWER_BUDGET >> 10)),
            cache: Arc::new(ReadCache::new(CACHED_POINTS)),
        }
    }

    /// Sends `json` as the answer once the budget has room for it; the room is given back when
    /// the answer has been sent (or the client has gone).
    async fn answer(&self, json: Vec<u8>) -> Result<Response, ApiError> {
        let kib = (json.len() >> 10).clamp(1, ANSWER_BUDGET >> 10) as u32;
        let permit = tokio::time::timeout(WAIT, self.budget.clone().acquire_many_owned(kib))
            .await
            .map_err(|_| busy())?
            .map_err(ApiError::internal)?;
        let once = Once(Some((Bytes::from(json), permit)));
        Ok((
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(once),
        )
            .into_response())
    }

    /// Runs `f` with a connection on a blocking thread.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let this = self.clone();
        let slot = tokio::time::timeout(WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(ApiError::internal)?;
        blocking(move || {
            let _slot = slot;
            let conn = this.pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match conn {
                Some(c) => c,
                None => {
                    let conn = SqliteStore::open(&this.path)
                        .map_err(|e| ApiError::Internal(format!("opening the store: {e}")))?
                        .with_read_cache(this.cache.clone());
                    // The shared cache holds the decoded points: SQLite's own page cache per
                    // connection (16 MiB each by default) would hold the same data again.
                    conn.set_page_cache_kib(2_048)
                        .map_err(|e| ApiError::Internal(format!("opening the store: {e}")))?;
                    conn
                }
            };
            let out = f(&conn);
            if let Ok(mut p) = this.pool.lock()
                && p.len() < 8
            {
                p.push(conn);
            }
            out
        })
        .await
    }
}

fn busy() -> ApiError {
    ApiError::Unavailable {
        message: "the store is busy answering other queries; retry in a second".into(),
        retry_after: 1,
    }
}

/// One chunk, then the end; holds its share of the answer budget until dropped.
struct Once(Option<(Bytes, tokio::sync::OwnedSemaphorePermit)>);

impl futures_core::Stream for Once {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // The permit stays in the stream (dropped with the body, after the last write).
        match self.0.as_mut() {
            Some((bytes, _)) if !bytes.is_empty() => Poll::Ready(Some(Ok(std::mem::take(bytes)))),
            _ => Poll::Ready(None),
        }
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/series", get(list))
        .route("/api/series/query", get(query))
}

fn reader(state: &AppState) -> Result<StoreReader, ApiError> {
    state
        .store
        .clone()
        .ok_or_else(|| ApiError::NotFound("this server has no store".into()))
}

fn selector(s: Option<&str>) -> Result<Selector, ApiError> {
    let s = s.unwrap_or("{}").trim();
    let s = if s.is_empty() { "{}" } else { s };
    s.parse::<Selector>()
        .map_err(|e| ApiError::BadRequest(format!("match: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(rename = "match")]
    selector: Option<String>,
    limit: Option<usize>,
}

/// One series in a listing.
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    points: u64,
    /// Unix seconds.
    first: Option<f64>,
    last: Option<f64>,
}

async fn list(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Listed>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let sel = selector(q.selector.as_deref())?;
    let limit = q.limit.unwrap_or(1_000).min(10_000);
    reader(&state)?
        .with(move |s| {
            let infos = s.series(&sel).map_err(ApiError::internal)?;
            Ok(infos
                .into_iter()
                .take(limit)
                .map(|i| Listed {
                    name: i.key.name,
                    labels: i.key.labels,
                    points: i.points,
                    first: i.first.map(|t| t as f64 / 1000.0),
                    last: i.last.map(|t| t as f64 / 1000.0),
                })
                .collect())
        })
        .await
        .map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    #[serde(rename = "match")]
    selector: Option<String>,
    from: Option<f64>,
    to: Option<f64>,
    step: Option<f64>,
    agg: Option<Aggregation>,
}

/// The answer of a range query: `[{"name", "labels", "points": [[unix_seconds, value], ..]}, ..]`,
/// written directly into a buffer sized for it. Heavy answers are ~90,000 points (2.3 MB) and
/// formatting them was half of their cost through serde's generic path (perf on a release
/// `novaml demo`); whole-second times are written as integers (no float formatting), values
/// with zmij (what serde_json itself uses), non-finite values as `null` as serde_json does.
///
/// `total` is the number of points (for the buffer's size).
pub fn points_json(
    found: &[novaml_core::Series],
    total: usize,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(2 + found.len() * 160 + total * 32);
    let mut int = itoa::Buffer::new();
    let mut float = zmij::Buffer::new();
    out.push(b'[');
    for (i, s) in found.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        serde_json::to_writer(&mut out, &s.key.name)?;
        out.extend_from_slice(b",\"labels\":");
        serde_json::to_writer(&mut out, &s.key.labels)?;
        out.extend_from_slice(b",\"points\":[");
        for (j, p) in s.points.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.push(b'[');
            if p.ts % 1000 == 0 {
                out.extend_from_slice(int.format(p.ts / 1000).as_bytes());
            } else {
                out.extend_from_slice(float.format_finite(p.ts as f64 / 1000.0).as_bytes());
            }
            out.push(b',');
            if p.value.is_finite() {
                out.extend_from_slice(float.format_finite(p.value).as_bytes());
            } else {
                out.extend_from_slice(b"null");
            }
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b']');
    Ok(out)
}

/// Latest time accepted: the end of year 9999, Unix seconds.
const MAX_TIME: f64 = 253_402_300_799.0;

/// A time parameter: Unix seconds, or an offset from now when negative or zero.
fn time(v: Option<f64>, default: f64, name: &str) -> Result<i64, ApiError> {
    let v = v.unwrap_or(default);
    if !(-MAX_TIME..=MAX_TIME).contains(&v) {
        return Err(ApiError::BadRequest(format!(
            "{name} must be Unix seconds (at most {MAX_TIME}, the end of year 9999) or a \
             negative offset from now in seconds, not {v}"
        )));
    }
    let abs = if v <= 0.0 {
        novaml_core::time::now_ms() as f64 / 1000.0 + v
    } else {
        v
    };
    Ok((abs * 1000.0).round() as i64)
}

async fn query(
    State(state): State<AppState>,
    q: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let sel = selector(q.selector.as_deref())?;
    let from = time(q.from, -3_600.0, "from")?;
    let to = time(q.to, 0.0, "to")?;
    let range = TimeRange::new(from, to + 1)
        .map_err(|_| ApiError::BadRequest("from must be before to".into()))?;
    let step = match q.step {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(
            StepSpec::new(
                (s * 1000.0).round() as i64,
                q.agg.unwrap_or(Aggregation::Avg),
            )
            .map_err(|e| ApiError::BadRequest(format!("step: {e}")))?,
        ),
        Some(_) => return Err(ApiError::BadRequest("step must be positive".into())),
    };
    if step.is_none() && q.agg.is_some() {
        return Err(ApiError::BadRequest("agg needs a step".into()));
    }
    let reader = reader(&state)?;
    let json = reader
        .with(move |s| {
            let found = s.query(&sel, range, step).map_err(ApiError::internal)?;
            if found.len() > MAX_SERIES {
                return Err(ApiError::BadRequest(format!(
                    "{} series match; narrow the selector (at most {MAX_SERIES})",
                    found.len()
                )));
            }
            let total: usize = found.iter().map(|s| s.points.len()).sum();
            if total > MAX_POINTS {
                return Err(ApiError::BadRequest(format!(
                    "{total} points in range; use a step or a shorter range (at most {MAX_POINTS})"
                )));
            }
            // Serialised here, on the read's thread and inside its slot.
            points_json(&found, total).map_err(ApiError::internal)
        })
        .await?;
    reader.answer(json).await
}

#[cfg(test)]
mod tests {
    use novaml_core::{Point, Series, SeriesKey};
    use serde_json::{Value, json};

    #[test]
    fn the_written_answer_is_the_json_of_its_points() {
        let key = SeriesKey::new("cpu")
            .and_then(|k| k.with_label("host", "a\"b\\c\u{1}é"))
            .expect("key");
        let pts = [
            Point::new(1_700_000_000_000, 0.1),
            Point::new(1_700_000_000_250, -2.5e-300),
            Point::new(-1_000, 1e300),
            Point::new(7, f64::NAN),
            Point::new(0, f64::INFINITY),
        ];
        let found = vec![
            Series::new(key, pts.to_vec()),
            Series::new(SeriesKey::new("empty").expect("key"), Vec::new()),
        ];
        let text = super::points_json(&found, pts.len()).expect("written");
        let got: Value = serde_json::from_slice(&text).expect("valid JSON");
        let want = json!([
            {"name": "cpu", "labels": {"host": "a\"b\\c\u{1}é"}, "points": [
                [1_700_000_000, 0.1], [1_700_000_000.25, -2.5e-300], [-1, 1e300],
                [0.007, null], [0, null]
            ]},
            {"name": "empty", "labels": {}, "points": []}
        ]);
        assert_eq!(got, want);
        // Numbers compare by value, whatever their spelling; each must round-trip exactly.
        let p = &got[0]["points"];
        assert_eq!(p[1][0].as_f64(), Some(1_700_000_000.25));
        assert_eq!(p[1][1].as_f64(), Some(-2.5e-300));
        assert_eq!(p[0][1].as_f64(), Some(0.1));
    }
}
