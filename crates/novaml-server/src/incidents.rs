//! Incidents and operator feedback:
//!
//! - `GET /api/incidents?series=&type=&severity=&since=&label=&limit=`: newest first;
//! - `GET /api/incidents/{id}`;
//! - `POST /api/incidents/{id}/feedback` with `{"label": "tp" | "fp", "note": "…"}` (token);
//! - `POST /api/incidents/{id}/ack` (token);
//! - `GET /api/incidents/stats`: precision and false-alarm share from the labels, per type, and
//!   the thresholds the labels call for.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use novaml_anomaly::feedback::{Label, Summary};
use novaml_store::incidents::{IncidentFilter, IncidentRecord};
use novaml_store::{SharedState, StateStore};
use serde::Deserialize;

use crate::error::{blocking, object_body};
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/incidents", get(list))
        .route("/api/incidents/stats", get(stats))
        .route("/api/incidents/{id}", get(one))
        .route("/api/incidents/{id}/feedback", post(feedback))
        .route("/api/incidents/{id}/ack", post(ack))
}

async fn with_log<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&mut dyn StateStore) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let log: SharedState = state
        .incidents
        .clone()
        .ok_or_else(|| ApiError::NotFound("incident detection is not enabled".into()))?;
    blocking(move || {
        let mut guard = log
            .lock()
            .map_err(|_| ApiError::internal("incident log lock poisoned"))?;
        f(guard.as_mut())
    })
    .await
}

fn incident_id(p: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let id = crate::error::path_id(p, "the incident id")?;
    i64::try_from(id).map_err(|_| ApiError::NotFound(format!("no incident {id}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    series: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    severity: Option<String>,
    since: Option<i64>,
    label: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<IncidentRecord>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if let Some(l) = &q.label
        && !matches!(l.as_str(), "tp" | "fp" | "none")
    {
        return Err(ApiError::BadRequest(format!(
            "label must be tp, fp or none, not {l:?}"
        )));
    }
    let filter = IncidentFilter {
        series: q.series,
        kind: q.kind,
        severity: q.severity,
        since: q.since,
        label: q.label,
        limit: Some(q.limit.unwrap_or(100).min(1_000)),
    };
    with_log(&state, move |log| {
        log.list(&filter).map_err(ApiError::internal)
    })
    .await
    .map(Json)
}

async fn one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<IncidentRecord>, ApiError> {
    let id = incident_id(id)?;
    with_log(&state, move |log| {
        log.get(id)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))
    })
    .await
    .map(Json)
}

/// The feedback body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Feedback {
    label: String,
    #[serde(default, deserialize_with = "crate::checks::string_if_present")]
    note: Option<String>,
}

async fn feedback(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<IncidentRecord>, ApiError> {
    let id = incident_id(id)?;
    let fb: Feedback = object_body(body, r#"{"label": "tp", "note": "why"}"#)?;
    // Exactly the schema's values: the CLI is lenient with what people type, the API is not.
    let label = match fb.label.as_str() {
        "tp" => Label::TruePositive,
        "fp" => Label::FalsePositive,
        other => {
            return Err(ApiError::BadRequest(format!(
                "label must be \"tp\" (a real problem) or \"fp\" (a false alarm), not {:?}",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    if fb.note.as_ref().is_some_and(|n| n.chars().count() > 4_096) {
        return Err(ApiError::BadRequest(
            "note is longer than 4096 characters".into(),
        ));
    }
    let now = novaml_core::time::now_ms();
    with_log(&state, move |log| {
        if !log
            .label(id, label.as_str(), fb.note.as_deref(), now)
            .map_err(ApiError::internal)?
        {
            return Err(ApiError::NotFound(format!("no incident {id}")));
        }
        log.get(id)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))
    })
    .await
    .map(Json)
}

async fn ack(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<IncidentRecord>, ApiError> {
    let id = incident_id(id)?;
    with_log(&state, move |log| {
        if !log.acknowledge(id).map_err(ApiError::internal)? {
            return Err(ApiError::NotFound(format!("no incident {id}")));
        }
        log.get(id)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))
    })
    .await
    .map(Json)
}

async fn stats(State(state): State<AppState>) -> Result<Json<Summary>, ApiError> {
    with_log(&state, |log| {
        Ok(Summary::from_rows(
            log.labelled().map_err(ApiError::internal)?,
            log.count().map_err(ApiError::internal)?,
        ))
    })
    .await
    .map(Json)
}
