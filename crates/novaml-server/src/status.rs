//! Pipeline status: `GET /api/status` (JSON), `GET /` (the status page) and `GET /healthz`.

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::error::blocking;
use crate::{ApiError, AppState};

/// One source as the status page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceStatus {
    /// Source name.
    pub name: String,
    /// Kind (`host`, `simulator`, `prometheus_api`, …).
    pub kind: String,
    /// Seconds between collections.
    pub interval_seconds: f64,
    /// Samples written so far.
    pub samples_total: u64,
    /// Failed attempts so far (all kinds).
    pub errors_total: u64,
    /// Unix time of the last successful collection.
    pub last_success: Option<f64>,
    /// Seconds since then.
    pub lag_seconds: Option<f64>,
    /// Whether its data is simulated.
    pub simulated: bool,
}

/// One shard of a sharded fleet, as the shared state records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardStatus {
    /// `K/N`.
    pub shard: String,
    /// The worker that claimed it last (`host:pid`).
    pub holder: String,
    /// Whether a running worker holds it now.
    pub held: bool,
    /// Unix time of its worker's last pass.
    pub heartbeat: f64,
    /// Unix time of the newest point its detection scored.
    pub scored_until: Option<f64>,
    /// Seconds from then to now: grows while the shard's worker is down.
    pub lag_seconds: Option<f64>,
}

/// The pipeline at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineStatus {
    /// novaml version.
    pub version: String,
    /// Seconds since the process started.
    pub uptime_seconds: f64,
    /// Where the store lives.
    pub store: String,
    /// Series in the store.
    pub series: u64,
    /// Points in the store.
    pub points: u64,
    /// Share of the buffer in use.
    pub buffer_utilization: f64,
    /// Sources.
    pub sources: Vec<SourceStatus>,
    /// Recent samples of the counters, oldest first (for rates over time).
    pub history: Vec<StatusSample>,
    /// Where the state is (incidents, checkpoints, leases), when this process keeps any.
    pub state: Option<String>,
    /// The fleet's shards, as of the last detection pass (empty before it, or without one).
    pub shards: Vec<ShardStatus>,
}

/// The pipeline's counters at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusSample {
    /// Unix seconds.
    pub t: f64,
    /// Samples written so far, by source.
    pub samples: std::collections::BTreeMap<String, u64>,
    /// Failed attempts so far, all sources.
    pub errors_total: u64,
    /// Share of the buffer in use.
    pub buffer_utilization: f64,
}

/// Produces the status on demand (reads counters and the store).
pub trait StatusProvider: Send + Sync + 'static {
    /// The current status, or an error message for the log.
    fn status(&self) -> Result<PipelineStatus, String>;
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/api/status", get(status))
        .route("/healthz", get(|| async { "ok" }))
}

async fn status(State(state): State<AppState>) -> Result<Json<PipelineStatus>, ApiError> {
    let provider = state.status.clone();
    // The provider reads SQLite: keep it off the async workers.
    blocking(move || provider.status().map_err(ApiError::Internal))
        .await
        .map(Json)
}

async fn page() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(include_str!("assets/status.html")),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::registry::Registry;
    use tower::ServiceExt;

    use super::*;

    struct Fixed(Result<PipelineStatus, String>);

    impl StatusProvider for Fixed {
        fn status(&self) -> Result<PipelineStatus, String> {
            self.0.clone()
        }
    }

    fn state(status: Result<PipelineStatus, String>) -> AppState {
        let mut registry = Registry::default();
        let c: Counter = Counter::default();
        c.inc_by(3);
        registry.register("novaml_collect_samples", "Samples.", c);
        AppState::new(Arc::new(registry), Arc::new(Fixed(status)))
    }

    async fn get(app: axum::Router, uri: &str) -> (StatusCode, String) {
        let resp = app
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn sample() -> PipelineStatus {
        PipelineStatus {
            version: "0".into(),
            uptime_seconds: 1.0,
            store: "mem".into(),
            series: 2,
            points: 10,
            buffer_utilization: 0.0,
            sources: vec![SourceStatus {
                name: "sim".into(),
                kind: "simulator".into(),
                interval_seconds: 10.0,
                samples_total: 10,
                errors_total: 0,
                last_success: Some(1.0),
                lag_seconds: Some(0.5),
                simulated: true,
            }],
            history: Vec::new(),
            state: None,
            shards: Vec::new(),
        }
    }

    #[tokio::test]
    async fn metrics_status_and_page() {
        let app = crate::app(state(Ok(sample())));
        let (code, body) = get(app.clone(), "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("novaml_collect_samples_total 3"), "{body}");
        let (code, body) = get(app.clone(), "/api/status").await;
        assert_eq!(code, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["sources"][0]["simulated"], true);
        let (code, body) = get(app, "/").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("/api/status"));
    }

    #[tokio::test]
    async fn internal_errors_do_not_leak() {
        let app = crate::app(state(Err("disk /secret/path exploded".into())));
        let (code, body) = get(app, "/api/status").await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("secret"), "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["kind"], "internal");
    }
}
