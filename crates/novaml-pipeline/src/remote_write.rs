//! Prometheus remote write of novaml's own metrics: every interval, the registry is encoded,
//! parsed back into samples, and sent as a snappy-compressed protobuf `WriteRequest` (remote
//! write 1.0) to a Prometheus-compatible store (Prometheus with
//! `--web.enable-remote-write-receiver`, VictoriaMetrics, Mimir, Thanos receive).
//!
//! Why through the text format: `prometheus-client` exposes a registry's values only through its
//! encoders (its metric and descriptor encoders are closed to other formats), and its protobuf
//! encoder needs `prost` and the `protobuf` feature. Encoding the text and reading it back with
//! our own exposition parser (the collector's, tested against real exporters) costs about a
//! millisecond per push of the demo's registry and no dependency.
//!
//! The protobuf is the remote store's ([`novaml_store::encode_write_request`]). Non-finite
//! values (a runway beyond the horizon is +Inf) are not sent: the exposition parser skips them.

use std::sync::Arc;
use std::time::Duration;

use novaml_collect::exposition::{Dialect, Limits, parse};
use novaml_store::encode_write_request;
use prometheus_client::registry::Registry;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteWriteError {
    /// The registry could not be encoded.
    #[error("encoding the metrics: {0}")]
    Encode(String),
    /// Compression failed.
    #[error("compressing: {0}")]
    Compress(#[from] snap::Error),
    /// The request did not reach the store.
    #[error("sending to {url}: {source}")]
    Send {
        /// Where.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The store refused the write.
    #[error("{url} answered {status}: {body}")]
    Refused {
        /// Where.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of its answer.
        body: String,
    },
}

/// Pushes a registry's metrics to a remote-write endpoint.
#[derive(Clone)]
pub struct RemoteWriter {
    url: String,
    registry: Arc<Registry>,
    client: reqwest::Client,
}

impl std::fmt::Debug for RemoteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWriter")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RemoteWriter {
    /// A writer of `registry` to `url` (e.g. `http://prometheus:9090/api/v1/write`).
    pub fn new(url: impl Into<String>, registry: Arc<Registry>) -> Self {
        Self {
            url: url.into(),
            registry,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// One push of every current sample, stamped now; returns how many samples were sent.
    pub async fn push(&self) -> Result<usize, RemoteWriteError> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| RemoteWriteError::Encode(e.to_string()))?;
        let parsed = parse(
            text.as_bytes(),
            Dialect::OpenMetrics,
            novaml_core::time::now_ms(),
            Limits::default(),
        );
        let body = snap::raw::Encoder::new().compress_vec(&encode_write_request(&parsed.series))?;
        let resp = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .map_err(|source| RemoteWriteError::Send {
                url: self.url.clone(),
                source,
            })?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(RemoteWriteError::Refused {
                url: self.url.clone(),
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        Ok(parsed.samples)
    }
}
