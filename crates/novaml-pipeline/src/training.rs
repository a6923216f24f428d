//! Performance prediction in the pipeline: every `interval`, each target
//! series' recent history is put on a 5-minute grid, a ridge model (first pass) and the ensemble
//! (naive, seasonal naive, ridge, GBM and four small LSTMs, weighed on validation) are fitted and
//! submitted to the registry (champion/challenger on the same holdout rows), and the serving
//! version predicts the next hour with its interval and the risk of crossing the SLO. The
//! predictions go to `/api/predictions` and `/metrics` through the [`ModelHub`].

use std::sync::Arc;
use std::time::Duration;

use novaml_core::stats::quantile;
use novaml_core::time::now_ms;
use novaml_core::{MetricStore, Selector, TimeRange};
use novaml_features::{SeriesFrame, Split};
use novaml_predict::inference::{FitConfig, ModelKind, fit};
use novaml_predict::registry::{Meta, ModelStore};
use novaml_store::{AnyStore, MetricsAt};
use tracing::{info, warn};

use crate::PipelineError;
use crate::models::{ModelHub, Prediction};

/// One series to predict.
#[derive(Debug, Clone)]
pub struct Target {
    /// Registry name.
    pub name: String,
    /// Selects exactly one series.
    pub selector: Selector,
}

/// The training job.
pub(crate) struct Training {
    /// Where the metrics are read.
    pub(crate) store: MetricsAt,
    /// The series this worker owns.
    pub(crate) shard: novaml_core::Shard,
    pub(crate) hub: Arc<ModelHub>,
    pub(crate) targets: Vec<Target>,
    /// History read per pass.
    pub(crate) lookback: Duration,
}

const STEP_MS: i64 = 300_000;
/// The SLO of each series in the demo: this quantile of its own history (no operator has set one).
const SLO_QUANTILE: f64 = 0.99;

impl Training {
    fn config(seed: u64) -> FitConfig {
        let mut cfg = FitConfig::default();
        cfg.data.lookback = 36;
        cfg.data.horizon = 12;
        cfg.data.season = 288;
        cfg.net.layers = vec![24];
        cfg.train.epochs = 12;
        cfg.train.seed = seed;
        cfg
    }

    /// One pass over the targets (blocking: the store and model fitting); returns how many were
    /// predicted.
    pub(crate) fn pass(&self, pass: u64) -> Result<usize, PipelineError> {
        let store = self.store.open()?;
        let registry = ModelStore::open(self.hub.root())?;
        let now = now_ms();
        let range = TimeRange::new(now - self.lookback.as_millis() as i64, now + 60_000)?;
        let mut done = 0;
        for t in &self.targets {
            match self.one(&store, &registry, t, range, pass) {
                Ok(()) => done += 1,
                Err(e) => warn!(model = %t.name, error = %e, "Not trained this pass."),
            }
        }
        self.hub.refresh_metrics()?;
        Ok(done)
    }

    fn one(
        &self,
        store: &AnyStore,
        registry: &ModelStore,
        t: &Target,
        range: TimeRange,
        pass: u64,
    ) -> Result<(), PipelineError> {
        let found = store.query(&t.selector, range, None)?;
        let series = found
            .first()
            .ok_or_else(|| PipelineError::NotFound(format!("no series matches {}", t.selector)))?;
        if !self.shard.owns(&series.key) {
            // Another worker's series.
            return Ok(());
        }
        let points: Vec<(i64, f64)> = series.points.iter().map(|p| (p.ts, p.value)).collect();
        let mut frame = SeriesFrame::from_points(&points, &[], STEP_MS)?;
        // The newest bucket is still filling: predict from the last complete one.
        if frame.len() > 1 {
            frame = frame.head(frame.len() - 1);
        }
        let cfg = Self::config(pass);
        let n = frame.len();
        let split = Split::new(n, 0.2, 0.1, &cfg.data)?;
        let kinds: &[ModelKind] = if pass == 1 {
            &[ModelKind::Ridge, ModelKind::Ensemble]
        } else {
            &[ModelKind::Ensemble]
        };
        for &kind in kinds {
            let fitted = fit(kind, &frame, split, &cfg, None, &mut |_| {})?;
            let meta = Meta::of_fit(
                &fitted,
                format!("store series {} (pass {pass})", series.key),
            );
            let d =
                registry.submit(&t.name, &fitted.predictor, meta, &frame, (split.val_end, n))?;
            info!(
                model = %t.name,
                kind = kind.as_str(),
                version = d.version,
                promoted = d.promoted,
                mae = d.challenger_mae,
                "Model submitted."
            );
        }
        let art = registry.champion(&t.name)?.ok_or_else(|| {
            PipelineError::NotFound(format!("{}: no serving version after training", t.name))
        })?;
        let f = art.predictor.predict(&frame)?;
        let slo = quantile(&frame.target, SLO_QUANTILE).unwrap_or(f64::NAN);
        let tail = frame.len().saturating_sub(288);
        let history = frame.target[tail..]
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| {
                (
                    (frame.start_ms + (tail + i) as i64 * frame.step_ms) as f64 / 1000.0,
                    *v,
                )
            })
            .collect();
        self.hub.set_prediction(Prediction {
            model: t.name.clone(),
            series: series.key.name.clone(),
            labels: series.key.labels.clone(),
            version: art.meta.version,
            kind: art.predictor.model.kind().as_str().to_owned(),
            history,
            timestamps: f.timestamps.iter().map(|t| *t as f64 / 1000.0).collect(),
            risk: f.risk_above(slo, art.predictor.level),
            guarded: f.guard.map(|g| g.ratio),
            predicted: f.predicted,
            lower: f.lower,
            upper: f.upper,
            level: art.predictor.level,
            slo,
            generated_at: now_ms() as f64 / 1000.0,
        });
        Ok(())
    }
}
