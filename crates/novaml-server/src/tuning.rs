//! Tuning of the live system through the API:
//!
//! - `GET /api/tuning`: the scenario, the configuration in effect, what is running or queued, the
//!   runs (newest first, without their trials) and the change log;
//! - `POST /api/tuning/runs` `{"tuner": "bo", "budget": 16, "seed": 1}` (token): queues a
//!   session, answers 202 with its id;
//! - `GET /api/tuning/runs/{id}`: one run with every trial, live while it runs;
//! - `POST /api/tuning/runs/{id}/apply` (token): deploys the run's best configuration under the
//!   guardrails (canary, sequential test with automatic rollback, change budget), 202;
//! - `POST /api/tuning/rollback` (token): reverts the last change in effect, 202;
//! - `GET /api/tuning/changes`: the audit log.
//!
//! The runs, the queue and the engine are the [`Tuning`] service's.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{blocking, object_body};
use crate::services::Tuning;
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tuning", get(overview))
        .route("/api/tuning/runs", post(submit))
        .route("/api/tuning/runs/{id}", get(one))
        .route("/api/tuning/runs/{id}/apply", post(apply))
        .route("/api/tuning/rollback", post(rollback))
        .route("/api/tuning/changes", get(changes))
}

fn service(state: &AppState) -> Result<Arc<dyn Tuning>, ApiError> {
    state
        .tuning
        .clone()
        .ok_or_else(|| ApiError::NotFound("tuning is not enabled on this server".into()))
}

fn run_id(p: Result<Path<String>, PathRejection>) -> Result<u64, ApiError> {
    crate::error::path_id(p, "the run id")
}

async fn overview(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let s = service(&state)?;
    blocking(move || Ok(s.overview()?)).await.map(Json)
}

async fn submit(
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = service(&state)?;
    let req: Value = object_body(body, r#"{"tuner": "bo", "budget": 16}"#)?;
    let id = blocking(move || Ok(s.submit(req)?)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "status": "queued", "url": format!("/api/tuning/runs/{id}")})),
    ))
}

async fn one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let s = service(&state)?;
    let id = run_id(id)?;
    blocking(move || Ok(s.run(id)?)).await.map(Json)
}

async fn apply(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = service(&state)?;
    let id = run_id(id)?;
    blocking(move || Ok(s.apply(id)?)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "queued", "job": format!("apply the best of run {id}")})),
    ))
}

async fn rollback(State(state): State<AppState>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = service(&state)?;
    blocking(move || Ok(s.rollback()?)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "queued", "job": "roll back the last change"})),
    ))
}

async fn changes(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    let s = service(&state)?;
    blocking(move || Ok(s.changes()?)).await.map(Json)
}
