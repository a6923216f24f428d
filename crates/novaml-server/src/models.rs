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
//! The registry and the predictions are the [`Models`] service's.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{blocking, object_body};
use crate::services::Models;
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/models", get(list))
        .route("/api/models/{name}", get(one))
        .route("/api/models/{name}/promote", post(promote))
        .route("/api/models/{name}/rollback", post(rollback))
        .route("/api/predictions", get(predictions))
}

fn hub(state: &AppState) -> Result<Arc<dyn Models>, ApiError> {
    state
        .models
        .clone()
        .ok_or_else(|| ApiError::NotFound("this server has no model registry".into()))
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    let hub = hub(&state)?;
    blocking(move || Ok(hub.list()?)).await.map(Json)
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
    blocking(move || Ok(hub.describe(&name)?)).await.map(Json)
}

/// The body of promote and rollback.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Choice {
    version: u32,
    #[serde(default, deserialize_with = "crate::checks::string_if_present")]
    reason: Option<String>,
}

async fn decide(
    state: AppState,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
    rollback: bool,
) -> Result<Json<Value>, ApiError> {
    let hub = hub(&state)?;
    let name = name_of(name)?;
    let c: Choice = object_body(body, r#"{"version": 3, "reason": "why"}"#)?;
    if c.reason.as_ref().is_some_and(|r| r.chars().count() > 1_024) {
        return Err(ApiError::BadRequest(
            "reason is longer than 1024 characters".into(),
        ));
    }
    blocking(move || {
        Ok(if rollback {
            hub.rollback(&name, c.version)?
        } else {
            hub.promote(&name, c.version, c.reason.as_deref())?
        })
    })
    .await
    .map(Json)
}

async fn promote(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    decide(state, name, body, false).await
}

async fn rollback(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    decide(state, name, body, true).await
}

async fn predictions(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    let hub = hub(&state)?;
    blocking(move || Ok(hub.predictions()?)).await.map(Json)
}
