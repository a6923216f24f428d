//! Connections: the accept loop behind [`crate::serve`], with the limits a server facing
//! untrusted local clients needs and `axum::serve` does not have.
//!
//! - **A cap on open connections** ([`ConnLimits::max_connections`], by default half the
//!   process's file-descriptor limit, at most 4,096): past it a new connection is answered
//!   `503` with a JSON error and closed at once, so a flood of sockets cannot starve the store,
//!   the sources and the detection job of file descriptors.
//! - **A header-read timeout** ([`ConnLimits::header_read_timeout`], hyper's): the clock starts
//!   when the connection opens and again whenever it waits for the next request, so it closes
//!   both a client that sends half a request line and a kept-alive connection left idle. A slow
//!   handler is never cut off: the clock does not run while a request is being answered.
//! - Accept errors (`EMFILE` and the like) are counted and retried after a pause instead of
//!   spinning.
//!
//! On `/metrics`: `novaml_http_connections` (open now), `novaml_http_connections_limit`,
//! `novaml_http_connections_refused_total{reason="limit"|"accept_error"}`,
//! `novaml_http_connections_timed_out_total`, and the descriptor budget
//! `process_open_fds` / `process_max_fds`, and the process's memory ([`crate::memory`]), all
//! refreshed every 5 s.
//!
//! Written on hyper directly rather than through `axum::serve`, which offers none of these
//! settings; the per-connection service is the same router.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Limits of the connection layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's whole header, from the connection's start or,
    /// on a kept-alive connection, from the end of the previous answer: also the longest a
    /// connection may sit idle.
    pub header_read_timeout: Duration,
}

impl Default for ConnLimits {
    /// Half the descriptor limit (at most 4,096) connections; 10 s to send a header (and
    /// idle between requests: dashboards poll every few seconds, a closed connection is
    /// reopened at the cost of one handshake on loopback).
    /// Browsers keep at most 6 connections per host open, Prometheus one per scrape target,
    /// so a few hundred is already generous; the other half of the descriptors stays for the
    /// store, the sources and the jobs.
    fn default() -> Self {
        let fds = max_fds().unwrap_or(1_024);
        Self {
            max_connections: (fds / 2).clamp(16, 4_096) as usize,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The connection layer's metrics.
#[derive(Debug, Clone, Default)]
pub struct ConnMetrics {
    open: Gauge,
    limit: Gauge,
    refused: Family<Reason, Counter>,
    timed_out: Counter,
    open_fds: Gauge,
    max_fds: Gauge,
    resident: Gauge,
    heap_in_use: Gauge,
    heap_free: Gauge,
    sqlite: Gauge,
}

impl ConnMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "novaml_http_connections",
            "HTTP connections open now",
            m.open.clone(),
        );
        registry.register(
            "novaml_http_connections_limit",
            "HTTP connections allowed at once; more are answered 503",
            m.limit.clone(),
        );
        registry.register(
            "novaml_http_connections_refused",
            "HTTP connections refused: over the limit, or failed to accept (e.g. out of file descriptors)",
            m.refused.clone(),
        );
        registry.register(
            "novaml_http_connections_timed_out",
            "HTTP connections closed for an incomplete header or idleness",
            m.timed_out.clone(),
        );
        registry.register(
            "process_open_fds",
            "Open file descriptors of the process",
            m.open_fds.clone(),
        );
        registry.register(
            "process_max_fds",
            "File-descriptor limit of the process (soft)",
            m.max_fds.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the process",
            m.resident.clone(),
        );
        registry.register(
            "novaml_sqlite_memory_bytes",
            "Heap bytes SQLite holds in this process (page caches, schemas, statements)",
            m.sqlite.clone(),
        );
        if crate::memory::HEAP_FIGURES {
            registry.register(
                "novaml_heap_in_use_bytes",
                "Heap bytes held by the program (glibc mallinfo2: in-use and mmapped blocks)",
                m.heap_in_use.clone(),
            );
            registry.register(
                "novaml_heap_free_bytes",
                "Heap bytes freed by the program and listed free by the allocator, resident or already given back",
                m.heap_free.clone(),
            );
            registry.register(
                "novaml_heap_released_bytes",
                "Resident bytes the allocator was made to give back (freed memory inside its arenas)",
                crate::memory::RELEASED.clone(),
            );
        }
        m
    }

    fn refresh_process(&self) {
        let mem = crate::memory::sample();
        for (gauge, value) in [
            (&self.resident, mem.resident),
            (&self.heap_in_use, mem.heap_in_use),
            (&self.heap_free, mem.heap_free),
            (&self.sqlite, novaml_store::sqlite_memory_used()),
        ] {
            if let Some(v) = value {
                gauge.set(i64::try_from(v).unwrap_or(i64::MAX));
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
        if let Some(max) = max_fds() {
            self.max_fds.set(max as i64);
        }
    }
}

/// The soft limit on open files, from `/proc/self/limits` (Linux).
fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The body of the answer to a connection over the limit.
const OVER_LIMIT: &str =
    "{\"kind\":\"unavailable\",\"message\":\"too many connections are open; retry in a second\"}";

/// Serves `router` on `listener` until `shutdown` turns true, then lets the connections finish
/// their requests (at most 10 s).
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    metrics: ConnMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    metrics.limit.set(limits.max_connections as i64);
    metrics.refresh_process();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut fd_tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        let (stream, addr) = tokio::select! {
            () = stopped(&mut shutdown) => break,
            _ = fd_tick.tick() => {
                metrics.refresh_process();
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    metrics.refused.get_or_create(&Reason { reason: "accept_error" }).inc();
                    tracing::warn!(error = %e, "Cannot accept a connection; retrying in 100 ms.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics
                .refused
                .get_or_create(&Reason { reason: "limit" })
                .inc();
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(ConnectInfo(addr));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            .serve_connection(io, service);
        let conn = graceful.watch(conn);
        let metrics = metrics.clone();
        metrics.open.inc();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                if is_timeout(&e) {
                    metrics.timed_out.inc();
                }
                tracing::debug!(error = %e, %addr, "Connection ended with an error.");
            }
            metrics.open.dec();
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("Connections still open after 10 s of shutdown; closing them.");
    }
    Ok(())
}

/// Resolves once `rx` is true (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Answers a connection over the limit with a 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{OVER_LIMIT}",
        OVER_LIMIT.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Whether a connection ended on a timeout.
fn is_timeout(e: &hyper::Error) -> bool {
    if e.is_timeout() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
}
