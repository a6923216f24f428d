//! The HTTP front of novaml: `fn app(state) -> Router` with the JSON API (documented at
//! `/api/openapi.json`), the five dashboards under `/dashboards/`, Prometheus `/metrics` and the
//! status page. Each resource is a module with its own `router()`; the features a server does not
//! run (no registry, no tuning) answer 404 with a JSON error saying so.
//!
//! This crate routes, authorises, limits and caches; the work behind the routes belongs to the
//! running system (`novaml-pipeline`), reached through the traits of [`services`] and
//! [`StatusProvider`]. The incident log and the metric store are read directly.
//!
//! Every error is JSON `{"kind", "message"}`; mutating endpoints need the bearer token, are rate
//! limited per client ([`limit`]) and take bodies of at most [`MAX_BODY`] bytes.

mod auth;
pub mod cache;
pub mod checks;
mod conn;
mod dashboards;
mod error;
mod incidents;
pub mod limit;
pub mod memory;
mod metrics;
mod models;
mod series;
pub mod services;
mod status;
mod tuning;

use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;

pub use conn::{ConnLimits, ConnMetrics};
pub use error::ApiError;
pub use series::{StoreReader, points_json};
pub use status::{PipelineStatus, ShardStatus, SourceStatus, StatusProvider, StatusSample};

/// Largest request body accepted, bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// Every Prometheus metric novaml exports.
    pub registry: Arc<Registry>,
    /// Produces the current pipeline status on demand.
    pub status: Arc<dyn StatusProvider>,
    /// The incident log, when detection runs (the incident endpoints answer 404 otherwise).
    pub incidents: Option<novaml_store::SharedState>,
    /// Bearer token required by mutating endpoints (none: they are open, for local use only).
    pub token: Option<String>,
    /// Capacity plans, when planning runs.
    pub capacity: Option<Arc<dyn services::Capacity>>,
    /// Read access to the metric store (the series endpoints answer 404 without it).
    pub store: Option<StoreReader>,
    /// The model registry and latest predictions.
    pub models: Option<Arc<dyn services::Models>>,
    /// Tuning of a live system.
    pub tuning: Option<Arc<dyn services::Tuning>>,
    /// Rate limits of mutating requests.
    pub limiter: Arc<limit::RateLimiter>,
    /// Read responses kept for a second.
    pub cache: Arc<cache::ResponseCache>,
    /// The `Host` values this server answers to (`None`: any); see [`checks`].
    pub allowed_hosts: Option<Vec<String>>,
}

impl AppState {
    /// A state with the given metrics and status and nothing else enabled.
    pub fn new(registry: Arc<Registry>, status: Arc<dyn StatusProvider>) -> Self {
        Self {
            registry,
            status,
            incidents: None,
            token: None,
            capacity: None,
            store: None,
            models: None,
            tuning: None,
            limiter: Arc::new(limit::RateLimiter::default()),
            cache: Arc::new(cache::ResponseCache::default()),
            allowed_hosts: None,
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The application router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(metrics::router())
        .merge(incidents::router())
        .merge(series::router())
        .merge(models::router())
        .merge(tuning::router())
        .merge(dashboards::router())
        .route("/api/capacity", axum::routing::get(capacity))
        .route("/api/openapi.json", axum::routing::get(openapi))
        .merge(status::router())
        .fallback(no_route)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cache::cache,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            checks::check,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The OpenAPI 3.1 document of the API.
pub const OPENAPI: &str = include_str!("assets/openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().chars().take(200).collect())
}

/// `GET /api/capacity`: the latest capacity plan.
async fn capacity(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let service = state
        .capacity
        .clone()
        .ok_or_else(|| ApiError::NotFound("capacity planning is not enabled".into()))?;
    let plan = error::blocking(move || Ok(service.latest()?)).await?;
    plan.map(axum::Json).ok_or_else(|| {
        ApiError::NotFound("no capacity plan yet: the first one is being computed".into())
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, under the connection `limits`
/// ([`ConnLimits`]: a cap on open connections, header-read and idle timeouts); then lets open
/// requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: ConnLimits,
    metrics: ConnMetrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    conn::run(listener, app(state), limits, metrics, rx).await
}
