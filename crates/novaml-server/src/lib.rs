//! The HTTP front of novaml: `fn app(state) -> Router` with Prometheus `/metrics`, a JSON pipeline
//! status and the status page. Later resources (predictions, incidents, plans, tuning) each add a
//! module with its own `router()`.

pub mod alerts;
mod error;
mod incidents;
mod metrics;
mod status;

use std::sync::{Arc, Mutex};

use axum::Router;
use prometheus_client::registry::Registry;

pub use error::ApiError;
pub use status::{PipelineStatus, SourceStatus, StatusProvider};

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// Every Prometheus metric novaml exports.
    pub registry: Arc<Registry>,
    /// Produces the current pipeline status on demand.
    pub status: Arc<dyn StatusProvider>,
    /// The incident log, when detection runs (the incident endpoints answer 404 otherwise).
    pub incidents: Option<Arc<Mutex<novaml_store::incidents::IncidentLog>>>,
    /// Bearer token required by mutating endpoints (none: they are open, for local use only).
    pub token: Option<String>,
    /// The latest capacity plan (JSON), when planning runs.
    pub capacity: Option<Arc<std::sync::RwLock<Option<serde_json::Value>>>>,
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
        .route("/api/capacity", axum::routing::get(capacity))
        .merge(status::router())
        .with_state(state)
}

/// `GET /api/capacity`: the latest capacity plan.
async fn capacity(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let plan = state
        .capacity
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("capacity planning is not enabled".into()))?
        .read()
        .map_err(|_| ApiError::Internal("capacity plan lock poisoned".into()))?
        .clone();
    plan.map(axum::Json).ok_or_else(|| {
        ApiError::NotFound("no capacity plan yet: the first one is being computed".into())
    })
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
