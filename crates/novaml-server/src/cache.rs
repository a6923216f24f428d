//! A short-lived cache of the API's read responses.
//!
//! Dashboards poll the same few endpoints from many browsers; each answer reads SQLite, the
//! registry's files or the audit log and serialises JSON. A successful `GET /api/…` answer is
//! kept for `ttl` (1 s by default) per URI, so N clients cost one computation per second, and
//! concurrent misses of one URI wait for a single computation instead of all computing it. Any
//! successful write through the API (POST) invalidates everything at once, so a client always
//! reads its own writes; what background jobs change shows up within `ttl`.

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

/// Most URIs kept; beyond, the cache starts over.
const MAX_ENTRIES: usize = 1_000;
/// Largest response kept, bytes.
const MAX_BODY: usize = 16 << 20;

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
    entries: Mutex<HashMap<String, Entry>>,
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
            entries: Mutex::new(HashMap::new()),
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
        let e = entries.get(key)?;
        (e.generation == g && e.at.elapsed() < self.ttl).then(|| {
            let mut r = Body::from(e.body.clone()).into_response();
            if let Some(ct) = &e.content_type {
                r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            r
        })
    }

    fn put(&self, key: String, generation: u64, content_type: Option<HeaderValue>, body: Bytes) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(
                key,
                Entry {
                    at: Instant::now(),
                    generation,
                    content_type,
                    body,
                },
            );
        }
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
    match axum::body::to_bytes(body, MAX_BODY).await {
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
