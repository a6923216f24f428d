//! A short-lived cache of the API's read responses.
//!
//! Dashboards poll the same few endpoints from many browsers; each answer reads SQLite, the
//! registry's files or the audit log and serialises JSON. A successful `GET /api/…` answer is
//! kept for `ttl` (1 s by default) per URI, so N clients cost one computation per second, and
//! concurrent misses of one URI wait for a single computation instead of all computing it. Any
//! successful write through the API (POST) invalidates everything at once, so a client always
//! reads its own writes; what background jobs change shows up within `ttl`.
//!
//! The cache is bounded by bytes, not only by entries: answers larger than [`MAX_CACHED_BODY`]
//! are passed through, and past [`MAX_BYTES`] in all, expired answers are dropped first and new
//! ones are not kept. (It was bounded by entries alone: 1,000 unique 2 MB queries held 2 GB
//! for as long as no new URI came.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Most URIs kept.
const MAX_ENTRIES: usize = 1_000;
/// Largest answer kept, bytes; larger ones pass through.
pub const MAX_CACHED_BODY: usize = 1 << 20;
/// Most bytes kept in all.
pub const MAX_BYTES: usize = 32 << 20;

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    /// Sum of the bodies' lengths.
    bytes: usize,
}

struct Entry {
    at: Instant,
    generation: u64,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

/// The cache.
pub struct ResponseCache {
    ttl: Duration,
    generation: AtomicU64,
    entries: Mutex<Entries>,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for ResponseCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl ResponseCache {
    /// Keeps answers for `ttl` (zero: no caching).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            entries: Mutex::new(Entries::default()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets every answer.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn get(&self, key: &str) -> Option<Response> {
        let g = self.generation.load(Ordering::SeqCst);
        let entries = self.entries.lock().ok()?;
        let e = entries.map.get(key)?;
        (e.generation == g && e.at.elapsed() < self.ttl).then(|| {
            let mut r = Body::from(e.body.clone()).into_response();
            if let Some(ct) = &e.content_type {
                r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            r
        })
    }

    fn put(&self, key: String, generation: u64, content_type: Option<HeaderValue>, body: Bytes) {
        if body.len() > MAX_CACHED_BODY {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let e = &mut *entries;
        let fits = |e: &Entries| {
            let old = e.map.get(&key).map_or(0, |v| v.body.len());
            e.map.len() < MAX_ENTRIES && e.bytes - old + body.len() <= MAX_BYTES
        };
        if !fits(e) {
            let g = self.generation.load(Ordering::SeqCst);
            e.map
                .retain(|_, v| v.generation == g && v.at.elapsed() < self.ttl);
            e.bytes = e.map.values().map(|v| v.body.len()).sum();
            if !fits(e) {
                return;
            }
        }
        e.bytes += body.len();
        if let Some(old) = e.map.insert(
            key,
            Entry {
                at: Instant::now(),
                generation,
                content_type,
                body,
            },
        ) {
            e.bytes -= old.body.len();
        }
    }

    /// Bytes kept now.
    pub fn bytes(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.bytes)
    }

    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut f) = self.flights.lock() else {
            return Arc::new(tokio::sync::Mutex::new(()));
        };
        if f.len() >= MAX_ENTRIES {
            f.retain(|_, m| Arc::strong_count(m) > 1);
        }
        f.entry(key.to_owned()).or_default().clone()
    }
}

/// The middleware.
pub(crate) async fn cache(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let c = state.cache.clone();
    if req.method() != Method::GET {
        let write = !matches!(*req.method(), Method::HEAD | Method::OPTIONS);
        let resp = next.run(req).await;
        if write && (resp.status().is_success() || resp.status() == StatusCode::ACCEPTED) {
            c.invalidate();
        }
        return resp;
    }
    if c.ttl.is_zero() || !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let key = req.uri().to_string();
    if let Some(r) = c.get(&key) {
        return r;
    }
    let flight = c.flight(&key);
    let _turn = flight.lock().await;
    if let Some(r) = c.get(&key) {
        return r;
    }
    let generation = c.generation.load(Ordering::SeqCst);
    let resp = next.run(req).await;
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let size = axum::body::HttpBody::size_hint(&body);
    if size.lower() > MAX_CACHED_BODY as u64 {
        // Too large to keep: pass it through untouched.
        return Response::from_parts(parts, body);
    }
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            c.put(
                key,
                generation,
                parts.headers.get(header::CONTENT_TYPE).cloned(),
                bytes.clone(),
            );
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(e) => crate::ApiError::Internal(format!("reading a response: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_by_bytes_and_keeps_no_large_answer() {
        let c = ResponseCache::new(Duration::from_secs(60));
        // 1,000 unique 2 MB answers (an uncached query flood) keep nothing.
        for i in 0..1_000 {
            c.put(format!("/q{i}"), 0, None, Bytes::from(vec![b'x'; 2 << 20]));
        }
        assert_eq!(c.bytes(), 0);
        // Answers under the size limit fill the budget, then are not kept.
        let each = MAX_CACHED_BODY;
        for i in 0..(2 * MAX_BYTES / each) {
            c.put(format!("/s{i}"), 0, None, Bytes::from(vec![b'y'; each]));
        }
        assert!(
            c.bytes() <= MAX_BYTES && c.bytes() >= MAX_BYTES - each,
            "{}",
            c.bytes()
        );
        assert!(c.get("/s0").is_some(), "kept while fresh");
        // Replacing an entry does not count it twice.
        let before = c.bytes();
        c.put("/s0".into(), 0, None, Bytes::from(vec![b'z'; 10]));
        assert_eq!(c.bytes(), before - each + 10);
    }

    #[test]
    fn expired_answers_make_room() {
        let c = ResponseCache::new(Duration::from_millis(1));
        for i in 0..(MAX_BYTES / MAX_CACHED_BODY) {
            c.put(
                format!("/a{i}"),
                0,
                None,
                Bytes::from(vec![0; MAX_CACHED_BODY]),
            );
        }
        std::thread::sleep(Duration::from_millis(5));
        c.put("/new".into(), 0, None, Bytes::from(vec![0; 100]));
        assert_eq!(
            c.bytes(),
            100,
            "the expired ones were dropped for the new one"
        );
    }
}
