//! Models and predictions:
//!
//! - `GET /api/models`: every model in the registry with its versions (kind, holdout MAE,
//!   relative MAE vs naive, interval coverage, data range) and which one serves;
//! - `GET /api/models/{name}`: one model, with each version's training curve and the promotion log;
//! - `POST /api/models/{name}/promote` `{"version": N}` and `POST /api/models/{name}/rollback`
//!   `{"version": N}` (token): an operator's champion decision, logged in the registry;
//! - `GET /api/predictions`: the latest prediction of every served model (median, interval, SLO
//!   risk), as the scheduled training job left it.
//!
//! On `/metrics`: `novaml_model_version`, `novaml_model_mae`, `novaml_model_relative_mae`,
//! `novaml_model_interval_coverage_ratio` per model, and `novaml_prediction_yhat` (`_lower`,
//! `_upper`) at the horizon's end and `novaml_prediction_slo_risk_ratio` per model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use novaml_predict::registry::ModelStore;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::blocking;
use crate::incidents::authorize;
use crate::{ApiError, AppState};

type Labels = Vec<(&'static str, String)>;
type F64Gauge = Family<Labels, Gauge<f64, AtomicU64>>;

/// The model registry and the latest predictions, shared by the training job and the API.
pub struct ModelHub {
    root: PathBuf,
    predictions: RwLock<BTreeMap<String, Value>>,
    version: F64Gauge,
    mae: F64Gauge,
    relative_mae: F64Gauge,
    coverage: F64Gauge,
    yhat: F64Gauge,
    lower: F64Gauge,
    upper: F64Gauge,
    risk: F64Gauge,
}

impl std::fmt::Debug for ModelHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHub")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// What the training job knows of one prediction.
#[derive(Debug, Clone, Serialize)]
pub struct PredictionDoc {
    /// Model name in the registry.
    pub model: String,
    /// The predicted series' name.
    pub series: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Serving version and kind.
    pub version: u32,
    /// `naive`, `ridge`, `lstm`, …
    pub kind: String,
    /// Recent history as `[unix_seconds, value]`.
    pub history: Vec<(f64, f64)>,
    /// Predicted step times, Unix seconds.
    pub timestamps: Vec<f64>,
    /// Median per step.
    pub predicted: Vec<f64>,
    /// Lower interval bound per step.
    pub lower: Vec<f64>,
    /// Upper interval bound per step.
    pub upper: Vec<f64>,
    /// Nominal interval coverage (e.g. 0.8).
    pub level: f64,
    /// The SLO threshold the risk refers to.
    pub slo: f64,
    /// Probability of crossing the SLO within the horizon.
    pub risk: f64,
    /// When it was made, Unix seconds.
    pub generated_at: f64,
}

impl ModelHub {
    /// A hub over the registry at `root`, its metrics registered in `registry`.
    pub fn new(root: impl Into<PathBuf>, registry: &mut Registry) -> Self {
        let hub = Self {
            root: root.into(),
            predictions: RwLock::new(BTreeMap::new()),
            version: F64Gauge::default(),
            mae: F64Gauge::default(),
            relative_mae: F64Gauge::default(),
            coverage: F64Gauge::default(),
            yhat: F64Gauge::default(),
            lower: F64Gauge::default(),
            upper: F64Gauge::default(),
            risk: F64Gauge::default(),
        };
        registry.register(
            "novaml_model_version",
            "Serving (champion) version, by model",
            hub.version.clone(),
        );
        registry.register(
            "novaml_model_mae",
            "Serving version's mean absolute error over the horizon on its holdout, metric units",
            hub.mae.clone(),
        );
        registry.register(
            "novaml_model_relative_mae",
            "Serving version's holdout MAE over naive's on the same rows (below 1: better than naive)",
            hub.relative_mae.clone(),
        );
        registry.register(
            "novaml_model_interval_coverage_ratio",
            "Share of holdout values inside the serving version's interval",
            hub.coverage.clone(),
        );
        registry.register(
            "novaml_prediction_yhat",
            "Latest prediction's median at the horizon's end, by model",
            hub.yhat.clone(),
        );
        registry.register(
            "novaml_prediction_yhat_lower",
            "Latest prediction's lower interval bound at the horizon's end",
            hub.lower.clone(),
        );
        registry.register(
            "novaml_prediction_yhat_upper",
            "Latest prediction's upper interval bound at the horizon's end",
            hub.upper.clone(),
        );
        registry.register(
            "novaml_prediction_slo_risk_ratio",
            "Probability that the metric crosses its SLO within the horizon",
            hub.risk.clone(),
        );
        hub
    }

    /// The registry.
    pub fn store(&self) -> Result<ModelStore, ApiError> {
        ModelStore::open(&self.root).map_err(ApiError::internal)
    }

    /// Where the registry lives.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Records the latest prediction of a model (and its metrics).
    pub fn set_prediction(&self, p: PredictionDoc) {
        let l: Labels = vec![("model", p.model.clone())];
        if let (Some(y), Some(lo), Some(hi)) = (p.predicted.last(), p.lower.last(), p.upper.last())
        {
            self.yhat.get_or_create(&l).set(*y);
            self.lower.get_or_create(&l).set(*lo);
            self.upper.get_or_create(&l).set(*hi);
        }
        self.risk.get_or_create(&l).set(p.risk);
        let name = p.model.clone();
        if let (Ok(v), Ok(mut w)) = (serde_json::to_value(p), self.predictions.write()) {
            w.insert(name, v);
        }
    }

    /// Re-reads every model's serving version into the metrics.
    pub fn refresh_metrics(&self) -> Result<(), ApiError> {
        let store = self.store()?;
        for name in store.names().map_err(ApiError::internal)? {
            let Some(v) = store.registry(&name).map_err(ApiError::internal)?.champion else {
                continue;
            };
            let (meta, _) = store.summary(&name, v).map_err(ApiError::internal)?;
            let l: Labels = vec![("model", name.clone())];
            self.version.get_or_create(&l).set(f64::from(v));
            let m = &meta.metrics;
            self.mae.get_or_create(&l).set(m.mean_mae());
            let naive = m.naive_mae.iter().sum::<f64>();
            if naive > 0.0 {
                self.relative_mae
                    .get_or_create(&l)
                    .set(m.mae.iter().sum::<f64>() / naive);
            }
            self.coverage.get_or_create(&l).set(m.coverage);
        }
        Ok(())
    }

    fn describe(&self, name: &str, with_history: bool) -> Result<Value, ApiError> {
        let store = self.store()?;
        let reg = store.registry(name).map_err(|e| match e {
            novaml_predict::PredictError::Config { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::internal(other),
        })?;
        if reg.versions.is_empty() {
            return Err(ApiError::NotFound(format!("no model {name:?}")));
        }
        let mut versions = Vec::new();
        for &v in &reg.versions {
            let (meta, kind) = store.summary(name, v).map_err(ApiError::internal)?;
            let m = &meta.metrics;
            let naive: f64 = m.naive_mae.iter().sum();
            let mut doc = json!({
                "version": v,
                "kind": kind.as_str(),
                "champion": reg.champion == Some(v),
                "created": meta.created_ms as f64 / 1000.0,
                "mae": m.mean_mae(),
                "relative_mae": (naive > 0.0).then(|| m.mae.iter().sum::<f64>() / naive),
                "mae_per_step": m.mae,
                "coverage": m.coverage,
                "data": {
                    "start": meta.range.start_ms as f64 / 1000.0,
                    "end": meta.range.end_ms as f64 / 1000.0,
                    "rows": meta.range.rows,
                },
                "source": meta.source,
            });
            if with_history {
                doc["history"] = serde_json::to_value(&meta.history).map_err(ApiError::internal)?;
            }
            versions.push(doc);
        }
        Ok(json!({
            "name": name,
            "champion": reg.champion,
            "versions": versions,
            "log": reg.log,
        }))
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/models", get(list))
        .route("/api/models/{name}", get(one))
        .route("/api/models/{name}/promote", post(promote))
        .route("/api/models/{name}/rollback", post(rollback))
        .route("/api/predictions", get(predictions))
}

fn hub(state: &AppState) -> Result<Arc<ModelHub>, ApiError> {
    state
        .models
        .clone()
        .ok_or_else(|| ApiError::NotFound("this server has no model registry".into()))
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    let hub = hub(&state)?;
    blocking(move || {
        let names = hub.store()?.names().map_err(ApiError::internal)?;
        names
            .iter()
            .map(|n| hub.describe(n, false))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map(Json)
}

fn name_of(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(n)| n)
        .map_err(|e| ApiError::BadRequest(format!("model name: {}", e.body_text())))
}

async fn one(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let hub = hub(&state)?;
    let name = name_of(name)?;
    blocking(move || hub.describe(&name, true)).await.map(Json)
}

/// The body of promote and rollback.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Choice {
    version: u32,
    reason: Option<String>,
}

async fn decide(
    state: AppState,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<Choice>, JsonRejection>,
    rollback: bool,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let hub = hub(&state)?;
    let name = name_of(name)?;
    let Json(c) = body.map_err(|e| ApiError::from_json(&e))?;
    if c.reason.as_ref().is_some_and(|r| r.len() > 1_024) {
        return Err(ApiError::BadRequest(
            "reason is longer than 1024 bytes".into(),
        ));
    }
    blocking(move || {
        let store = hub.store()?;
        let reg = store
            .registry(&name)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if reg.versions.is_empty() {
            return Err(ApiError::NotFound(format!("no model {name:?}")));
        }
        if !reg.versions.contains(&c.version) {
            return Err(ApiError::NotFound(format!(
                "{name} has no version {} (versions: {:?})",
                c.version, reg.versions
            )));
        }
        if rollback {
            store
                .rollback(&name, c.version)
                .map_err(ApiError::internal)?;
        } else {
            let reason = c
                .reason
                .unwrap_or_else(|| "promoted by an operator through the API".into());
            store
                .promote(&name, c.version, &reason)
                .map_err(ApiError::internal)?;
        }
        hub.refresh_metrics()?;
        hub.describe(&name, false)
    })
    .await
    .map(Json)
}

async fn promote(
    State(state): State<AppState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<Choice>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    decide(state, headers, name, body, false).await
}

async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<Choice>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    decide(state, headers, name, body, true).await
}

async fn predictions(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    let hub = hub(&state)?;
    let p = hub
        .predictions
        .read()
        .map_err(|_| ApiError::internal("predictions lock poisoned"))?;
    Ok(Json(p.values().cloned().collect()))
}
