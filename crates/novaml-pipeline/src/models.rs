//! The model hub: the model registry and the latest predictions, shared by the training job
//! and the API ([`novaml_server::services::Models`]), with their metrics.
//!
//! On `/metrics`: `novaml_model_version`, `novaml_model_mae`, `novaml_model_relative_mae`,
//! `novaml_model_interval_coverage_ratio` per model, and `novaml_prediction_yhat` (`_lower`,
//! `_upper`) at the horizon's end and `novaml_prediction_slo_risk_ratio` per model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;

use novaml_predict::PredictError;
use novaml_predict::registry::{LogEntry, ModelStore};
use novaml_predict::training::EpochReport;
use novaml_server::services::{Models, ServiceError};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::Value;

use crate::PipelineError;

type Labels = Vec<(&'static str, String)>;
type F64Gauge = Family<Labels, Gauge<f64, AtomicU64>>;

/// The latest predictions, saved beside the registry's models (not a model: the registry lists
/// only directories with a `registry.json`).
const PREDICTIONS_FILE: &str = "predictions.json";

/// The saved latest predictions; none when there are none yet or the file is unreadable (the
/// next training pass writes it again).
fn restore(path: &std::path::Path) -> Vec<Prediction> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    match serde_json::from_slice::<BTreeMap<String, Prediction>>(&bytes) {
        Ok(m) => m.into_values().collect(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "Ignoring saved predictions.");
            Vec::new()
        }
    }
}

/// The model registry and the latest predictions, shared by the training job and the API.
pub struct ModelHub {
    root: PathBuf,
    predictions: RwLock<BTreeMap<String, Prediction>>,
    version: F64Gauge,
    mae: F64Gauge,
    relative_mae: F64Gauge,
    coverage: F64Gauge,
    yhat: F64Gauge,
    lower: F64Gauge,
    upper: F64Gauge,
    risk: F64Gauge,
    guarded: F64Gauge,
}

impl std::fmt::Debug for ModelHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHub")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The latest prediction of a served model, as the API and the models dashboard show it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Prediction {
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
    /// Set where the guard served the last value instead of the model: the model's recent
    /// mean absolute error over the last value's on the same known outcomes (above 1).
    #[serde(default)]
    pub guarded: Option<f64>,
    /// When it was made, Unix seconds.
    pub generated_at: f64,
}

impl ModelHub {
    /// A hub over the registry at `root`, its metrics registered in `registry`.
    pub fn new(root: impl Into<PathBuf>, registry: &mut Registry) -> Self {
        let root = root.into();
        let predictions = restore(&root.join(PREDICTIONS_FILE));
        let hub = Self {
            root,
            predictions: RwLock::new(BTreeMap::new()),
            version: F64Gauge::default(),
            mae: F64Gauge::default(),
            relative_mae: F64Gauge::default(),
            coverage: F64Gauge::default(),
            yhat: F64Gauge::default(),
            lower: F64Gauge::default(),
            upper: F64Gauge::default(),
            risk: F64Gauge::default(),
            guarded: F64Gauge::default(),
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
        registry.register(
            "novaml_prediction_guarded",
            "1 where the guard serves the last value because the model's recent error exceeds the \
             last value's on the same outcomes, else 0",
            hub.guarded.clone(),
        );
        for p in predictions {
            hub.show(p);
        }
        hub
    }

    /// The registry.
    pub fn store(&self) -> Result<ModelStore, PipelineError> {
        Ok(ModelStore::open(&self.root)?)
    }

    /// Where the registry lives.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Records the latest prediction of a model (and its metrics), and saves the latest ones
    /// so that a restarted server shows them at once.
    pub fn set_prediction(&self, p: Prediction) {
        self.show(p);
        let saved = self
            .predictions
            .read()
            .map_err(|_| "predictions lock poisoned".to_owned())
            .and_then(|w| serde_json::to_vec(&*w).map_err(|e| e.to_string()))
            .and_then(|bytes| {
                novaml_core::fs::write_private(&self.root.join(PREDICTIONS_FILE), &bytes)
                    .map_err(|(p, e)| format!("{}: {e}", p.display()))
            });
        if let Err(e) = saved {
            tracing::warn!(error = %e, "Cannot save the latest predictions.");
        }
    }

    /// Shows `p` on the API and /metrics.
    fn show(&self, p: Prediction) {
        let l: Labels = vec![("model", p.model.clone())];
        if let (Some(y), Some(lo), Some(hi)) = (p.predicted.last(), p.lower.last(), p.upper.last())
        {
            self.yhat.get_or_create(&l).set(*y);
            self.lower.get_or_create(&l).set(*lo);
            self.upper.get_or_create(&l).set(*hi);
        }
        self.risk.get_or_create(&l).set(p.risk);
        self.guarded
            .get_or_create(&l)
            .set(if p.guarded.is_some() { 1.0 } else { 0.0 });
        if p.guarded.is_some() {
            tracing::warn!(
                model = %p.model,
                ratio = p.guarded,
                "Guard: the model's recent error exceeds the last value's; serving the last value."
            );
        }
        if let Ok(mut w) = self.predictions.write() {
            w.insert(p.model.clone(), p);
        }
    }

    /// Re-reads every model's serving version into the metrics.
    pub fn refresh_metrics(&self) -> Result<(), PipelineError> {
        let store = self.store()?;
        for name in store.names()? {
            let Some(v) = store.registry(&name)?.champion else {
                continue;
            };
            let (meta, _) = store.summary(&name, v)?;
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

    /// A model with its versions (with each version's training curve when `with_history`).
    pub fn describe(&self, name: &str, with_history: bool) -> Result<ModelDoc, PipelineError> {
        let store = self.store()?;
        let reg = store.registry(name).map_err(|e| match e {
            PredictError::Config { .. } => PipelineError::Invalid(e.to_string()),
            other => other.into(),
        })?;
        if reg.versions.is_empty() {
            return Err(PipelineError::NotFound(format!("no model {name:?}")));
        }
        let mut versions = Vec::new();
        for &v in &reg.versions {
            let (meta, kind) = store.summary(name, v)?;
            let m = &meta.metrics;
            let naive: f64 = m.naive_mae.iter().sum();
            versions.push(VersionDoc {
                version: v,
                kind: kind.as_str(),
                champion: reg.champion == Some(v),
                created: meta.created_ms as f64 / 1000.0,
                mae: m.mean_mae(),
                relative_mae: (naive > 0.0).then(|| m.mae.iter().sum::<f64>() / naive),
                mae_per_step: m.mae.clone(),
                coverage: m.coverage,
                data: DataDoc {
                    start: meta.range.start_ms as f64 / 1000.0,
                    end: meta.range.end_ms as f64 / 1000.0,
                    rows: meta.range.rows,
                },
                source: meta.source.clone(),
                history: with_history.then(|| meta.history.clone()),
            });
        }
        Ok(ModelDoc {
            name: name.to_owned(),
            champion: reg.champion,
            versions,
            log: reg.log,
        })
    }

    /// An operator's champion decision: `version` serves (`rollback` logs it as a roll back).
    pub fn decide(
        &self,
        name: &str,
        version: u32,
        rollback: bool,
        reason: Option<&str>,
    ) -> Result<ModelDoc, PipelineError> {
        let store = self.store()?;
        let reg = store
            .registry(name)
            .map_err(|e| PipelineError::Invalid(e.to_string()))?;
        if reg.versions.is_empty() {
            return Err(PipelineError::NotFound(format!("no model {name:?}")));
        }
        if !reg.versions.contains(&version) {
            return Err(PipelineError::NotFound(format!(
                "{name} has no version {version} (versions: {:?})",
                reg.versions
            )));
        }
        if rollback {
            store.rollback(name, version)?;
        } else {
            store.promote(
                name,
                version,
                reason.unwrap_or("promoted by an operator through the API"),
            )?;
        }
        self.refresh_metrics()?;
        self.describe(name, false)
    }
}

/// A model in the registry, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelDoc {
    /// Its name.
    pub name: String,
    /// The serving version.
    pub champion: Option<u32>,
    /// Every version.
    pub versions: Vec<VersionDoc>,
    /// Promotions, rejections and roll backs.
    pub log: Vec<LogEntry>,
}

/// One version of a model.
#[derive(Debug, Clone, Serialize)]
pub struct VersionDoc {
    /// Its number.
    pub version: u32,
    /// `naive`, `ridge`, `ensemble`, …
    pub kind: &'static str,
    /// Whether it serves.
    pub champion: bool,
    /// When it was saved, Unix seconds.
    pub created: f64,
    /// Holdout MAE, mean over horizons.
    pub mae: f64,
    /// Holdout MAE over naive's.
    pub relative_mae: Option<f64>,
    /// Holdout MAE per horizon step.
    pub mae_per_step: Vec<f64>,
    /// Share of holdout values inside the interval.
    pub coverage: f64,
    /// The rows it was trained on.
    pub data: DataDoc,
    /// Where the data came from.
    pub source: String,
    /// The training curve (LSTM epochs), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<EpochReport>>,
}

/// The rows a version saw.
#[derive(Debug, Clone, Serialize)]
pub struct DataDoc {
    /// First row, Unix seconds.
    pub start: f64,
    /// Last row, Unix seconds.
    pub end: f64,
    /// Rows.
    pub rows: usize,
}

impl Models for ModelHub {
    fn list(&self) -> Result<Vec<Value>, ServiceError> {
        let names = self.store()?.names().map_err(PipelineError::from)?;
        names
            .iter()
            .map(|n| {
                Ok(serde_json::to_value(self.describe(n, false)?).map_err(PipelineError::from)?)
            })
            .collect()
    }

    fn describe(&self, name: &str) -> Result<Value, ServiceError> {
        Ok(serde_json::to_value(ModelHub::describe(self, name, true)?)
            .map_err(PipelineError::from)?)
    }

    fn promote(
        &self,
        name: &str,
        version: u32,
        reason: Option<&str>,
    ) -> Result<Value, ServiceError> {
        Ok(
            serde_json::to_value(self.decide(name, version, false, reason)?)
                .map_err(PipelineError::from)?,
        )
    }

    fn rollback(&self, name: &str, version: u32) -> Result<Value, ServiceError> {
        Ok(
            serde_json::to_value(self.decide(name, version, true, None)?)
                .map_err(PipelineError::from)?,
        )
    }

    fn predictions(&self) -> Result<Vec<Value>, ServiceError> {
        let p = self
            .predictions
            .read()
            .map_err(|_| ServiceError::Internal("predictions lock poisoned".into()))?;
        p.values()
            .map(|v| Ok(serde_json::to_value(v).map_err(PipelineError::from)?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use novaml_server::services::Models;

    use super::*;

    #[test]
    fn the_latest_predictions_outlive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Prediction {
            model: "cpu".into(),
            series: "vm_cpu_usage_percent".into(),
            labels: BTreeMap::from([("vm".into(), "vm-1".into())]),
            version: 2,
            kind: "ridge".into(),
            history: vec![(1.0, 40.0), (2.0, 41.5)],
            timestamps: vec![3.0],
            predicted: vec![42.0],
            lower: vec![40.0],
            upper: vec![44.0],
            level: 0.8,
            slo: 90.0,
            risk: 0.01,
            guarded: Some(1.4),
            generated_at: 2.5,
        };
        ModelHub::new(dir.path(), &mut Registry::default()).set_prediction(p.clone());
        let mut registry = Registry::default();
        let again = ModelHub::new(dir.path(), &mut registry);
        let served = again.predictions().expect("predictions");
        assert_eq!(served, vec![serde_json::to_value(&p).expect("json")]);
        // On /metrics at once, too.
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains("novaml_prediction_slo_risk_ratio{model=\"cpu\"} 0.01"),
            "{text}"
        );
        assert!(
            text.contains("novaml_prediction_guarded{model=\"cpu\"} 1"),
            "{text}"
        );
    }
}
