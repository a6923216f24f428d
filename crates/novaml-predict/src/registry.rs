//! The model registry (`ModelStore`): every trained model is a versioned artifact directory
//! `ROOT/NAME/vNNNN/` with
//!
//! - `config.json`: format version, model kind and shape, windowing, quantiles, step;
//! - `weights.bin`: every LSTM's parameters (magic, count, little-endian `f32`, the networks one
//!   after another), exact on reload;
//! - `trees.json`: every boosted model's trees, compact (`[feature, threshold, left, right,
//!   value]` per node);
//! - `scalers.json`: the scalers, the conformal calibration and the rolling recalibration span;
//! - `meta.json`: the data range it saw, its evaluation metrics and training history.
//!
//! `ROOT/NAME/registry.json` names the serving version (the champion) and logs every promotion
//! and roll back. A challenger replaces the champion only if its MAE on the same holdout rows is
//! lower ([`ModelStore::submit`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::PredictError;
use crate::inference::{Model, ModelKind, Predictor};
use crate::io::{read_json, write_bytes, write_json};
use crate::training::EpochReport;
use novaml_features::dataset::{Scalers, SeriesFrame};

const MAGIC: &[u8; 8] = b"NOVAMLW1";

/// Evaluation figures stored with an artifact.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean absolute error per horizon on the holdout (metric units).
    pub mae: Vec<f64>,
    /// Naive's MAE per horizon on the same rows.
    pub naive_mae: Vec<f64>,
    /// Share of actual values inside the interval.
    pub coverage: f64,
    /// Holdout rows `[start, end)` the figures come from.
    pub holdout: (usize, usize),
}

impl Metrics {
    /// Mean MAE over horizons.
    pub fn mean_mae(&self) -> f64 {
        self.mae.iter().sum::<f64>() / self.mae.len().max(1) as f64
    }
}

/// Evaluates `p` on the origins of rows `holdout` of `frame`.
pub fn holdout_metrics(
    p: &Predictor,
    frame: &SeriesFrame,
    holdout: (usize, usize),
) -> Result<Metrics, PredictError> {
    let h_n = p.data.horizon;
    let preds = p.predict_range(
        frame,
        holdout.0.saturating_sub(1)..holdout.1.saturating_sub(h_n),
        true,
    )?;
    if preds.is_empty() {
        return Err(PredictError::Data(format!(
            "no complete windows in the holdout rows {}..{}",
            holdout.0, holdout.1
        )));
    }
    let mut mae = vec![0.0; h_n];
    let mut naive = vec![0.0; h_n];
    let mut inside = 0usize;
    for pr in &preds {
        let f = &pr.forecast;
        for h in 0..h_n {
            let a = frame.target[pr.origin + h + 1];
            mae[h] += (a - f.predicted[h]).abs();
            naive[h] += (a - f.last).abs();
            inside += usize::from(f.lower[h] <= a && a <= f.upper[h]);
        }
    }
    let n = preds.len() as f64;
    Ok(Metrics {
        mae: mae.iter().map(|v| v / n).collect(),
        naive_mae: naive.iter().map(|v| v / n).collect(),
        coverage: inside as f64 / (n * h_n as f64),
        holdout,
    })
}

/// `config.json`: the predictor without its scalers and weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ConfigFile {
    format: u32,
    model: Model,
    data: novaml_features::DataConfig,
    quantiles: Vec<f32>,
    level: f64,
    step_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScalersFile {
    scalers: Scalers,
    calibration: Vec<f64>,
    #[serde(default)]
    recalibrate: usize,
    #[serde(default = "crate::inference::artifact::default_guard")]
    guard: f64,
}

/// `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The version number.
    pub version: u32,
    /// When it was saved (Unix ms).
    pub created_ms: i64,
    /// The data it saw.
    pub range: crate::inference::DataRange,
    /// Its evaluation.
    pub metrics: Metrics,
    /// Training history (LSTM).
    pub history: Vec<EpochReport>,
    /// Free text (where it came from).
    pub source: String,
}

impl Meta {
    /// The metadata of a freshly fitted model, to hand to [`ModelStore::submit`] (which sets the
    /// version and the holdout metrics).
    pub fn of_fit(fitted: &crate::inference::Fitted, source: impl Into<String>) -> Self {
        Self {
            version: 0,
            created_ms: novaml_core::time::now_ms(),
            range: fitted.predictor.range,
            metrics: Metrics::default(),
            history: fitted.history.clone(),
            source: source.into(),
        }
    }
}

/// One entry of the promotion log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When (Unix ms).
    pub at_ms: i64,
    /// `promote`, `reject` or `rollback`.
    pub action: String,
    /// The version concerned.
    pub version: u32,
    /// Why.
    pub reason: String,
}

/// `registry.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RegistryFile {
    /// The serving version.
    pub champion: Option<u32>,
    /// Every saved version.
    pub versions: Vec<u32>,
    /// Promotions, rejections and roll backs.
    pub log: Vec<LogEntry>,
}

/// The outcome of [`ModelStore::submit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The challenger's version.
    pub version: u32,
    /// Whether it now serves.
    pub promoted: bool,
    /// Challenger's mean holdout MAE.
    pub challenger_mae: f64,
    /// The champion's mean MAE on the same rows (`None` without a champion).
    pub champion_mae: Option<f64>,
}

/// A saved model.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// The predictor.
    pub predictor: Predictor,
    /// Its metadata.
    pub meta: Meta,
}

/// Which versions of a model [`ModelStore::submit`] keeps; the others are deleted from disk
/// and from the registry.
///
/// A scheduled pipeline submits a challenger every pass (the demo: 2 per 10 minutes, ~288 a
/// day per model at ~0.75 MB each), so keeping every version grows the disk without end and
/// makes each `/api/models/{name}` answer, which reads every version's metadata, slower and
/// larger over time (the soak of issue #23). What an operator rolls back to is the previous
/// serving versions, and what the models dashboard compares is the recent challengers: those
/// are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest versions kept, whatever their fate (at least 1: the newest number is never
    /// handed out twice).
    pub newest: usize,
    /// Versions that served before (most recent first) kept besides the serving one, so that
    /// roll back has somewhere to go.
    pub former_champions: usize,
    /// Promotion-log entries kept (the newest).
    pub log: usize,
}

impl Default for Retention {
    /// 20 newest (over three hours of the demo's passes), 5 former champions, 1,000 log
    /// entries (a week of the demo's decisions).
    fn default() -> Self {
        Self {
            newest: 20,
            former_champions: 5,
            log: 1_000,
        }
    }
}

impl Retention {
    /// Every version is kept.
    pub const ALL: Self = Self {
        newest: usize::MAX,
        former_champions: usize::MAX,
        log: usize::MAX,
    };

    /// The versions of `reg` to keep, in `reg.versions`' order.
    pub fn kept(&self, reg: &RegistryFile) -> Vec<u32> {
        let mut by_age = reg.versions.clone();
        by_age.sort_unstable_by(|a, b| b.cmp(a));
        let mut keep: std::collections::HashSet<u32> =
            by_age.iter().take(self.newest.max(1)).copied().collect();
        keep.extend(reg.champion);
        let mut former = 0;
        for e in reg.log.iter().rev() {
            if former >= self.former_champions {
                break;
            }
            if (e.action == "promote" || e.action == "rollback")
                && Some(e.version) != reg.champion
                && reg.versions.contains(&e.version)
                && keep.insert(e.version)
            {
                former += 1;
            }
        }
        reg.versions
            .iter()
            .copied()
            .filter(|v| keep.contains(v))
            .collect()
    }
}

/// Versioned artifacts on the filesystem.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
    retention: Retention,
}

impl ModelStore {
    /// A store under `root` (created when missing).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, PredictError> {
        let root = root.into();
        novaml_core::fs::create_private_dir(&root).map_err(|source| PredictError::Io {
            path: root.clone(),
            source,
        })?;
        Ok(Self {
            root,
            retention: Retention::default(),
        })
    }

    /// The same store, keeping `retention` from the next submission on.
    #[must_use]
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Applies the retention to `name`: the registry forgets the versions it does not keep
    /// (written first, so a crash leaves at worst an unlisted directory, which the next save
    /// of the same number overwrites), then their directories are removed. Returns the
    /// versions removed.
    pub fn prune(&self, name: &str) -> Result<Vec<u32>, PredictError> {
        let mut reg = self.registry(name)?;
        let kept = self.retention.kept(&reg);
        let removed: Vec<u32> = reg
            .versions
            .iter()
            .copied()
            .filter(|v| !kept.contains(v))
            .collect();
        let excess_log = reg.log.len().saturating_sub(self.retention.log);
        if !removed.is_empty() || excess_log > 0 {
            reg.versions = kept;
            reg.log.drain(..excess_log);
            self.write_registry(name, &reg)?;
        }
        for &v in &removed {
            let path = self.version_dir(name, v);
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(PredictError::Io { path, source }),
            }
        }
        Ok(removed)
    }

    fn check_name(name: &str) -> Result<(), PredictError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || name.starts_with('.')
        {
            return Err(PredictError::config(
                "name",
                format!("{name:?}: use letters, digits, '-', '_' and '.'"),
            ));
        }
        Ok(())
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The artifact directory of a version.
    pub fn version_dir(&self, name: &str, version: u32) -> PathBuf {
        self.dir(name).join(format!("v{version:04}"))
    }

    /// The registry of `name` (empty when nothing is saved yet).
    pub fn registry(&self, name: &str) -> Result<RegistryFile, PredictError> {
        Self::check_name(name)?;
        let path = self.dir(name).join("registry.json");
        if !path.exists() {
            return Ok(RegistryFile::default());
        }
        read_json(&path)
    }

    fn write_registry(&self, name: &str, r: &RegistryFile) -> Result<(), PredictError> {
        write_json(&self.dir(name).join("registry.json"), r)
    }

    /// Model names in the store.
    pub fn names(&self) -> Result<Vec<String>, PredictError> {
        let rd = std::fs::read_dir(&self.root).map_err(|source| PredictError::Io {
            path: self.root.clone(),
            source,
        })?;
        let mut v: Vec<String> = rd
            .filter_map(Result::ok)
            .filter(|e| e.path().join("registry.json").exists())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Saves a new version (not serving yet) and returns its number.
    pub fn save(
        &self,
        name: &str,
        predictor: &Predictor,
        mut meta: Meta,
    ) -> Result<u32, PredictError> {
        Self::check_name(name)?;
        predictor.check()?;
        let mut reg = self.registry(name)?;
        let version = reg.versions.iter().max().map_or(1, |v| v + 1);
        let dir = self.version_dir(name, version);
        novaml_core::fs::create_private_dir(&dir).map_err(|source| PredictError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut model = predictor.model.clone();
        let nets = model.networks_mut();
        if !nets.is_empty() {
            // Every network's weights, one after another in `Model::networks` order.
            let total: usize = nets.iter().map(|n| n.params.len()).sum();
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&(total as u64).to_le_bytes());
            for net in nets {
                for p in &net.params {
                    bytes.extend_from_slice(&p.to_le_bytes());
                }
                net.params.clear();
            }
            write_bytes(&dir.join("weights.bin"), &bytes)?;
        }
        let boosters = model.boosters_mut();
        if !boosters.is_empty() {
            // Trees apart and compact: tens of thousands of nodes would swell config.json.
            let trees: Vec<_> = boosters
                .into_iter()
                .map(|g| std::mem::take(&mut g.trees))
                .collect();
            let path = dir.join("trees.json");
            let bytes = serde_json::to_vec(&trees).map_err(|source| PredictError::Json {
                path: path.clone(),
                source,
            })?;
            write_bytes(&path, &bytes)?;
        }
        write_json(
            &dir.join("config.json"),
            &ConfigFile {
                format: predictor.format,
                model,
                data: predictor.data.clone(),
                quantiles: predictor.quantiles.clone(),
                level: predictor.level,
                step_ms: predictor.step_ms,
            },
        )?;
        write_json(
            &dir.join("scalers.json"),
            &ScalersFile {
                scalers: predictor.scalers.clone(),
                calibration: predictor.calibration.clone(),
                recalibrate: predictor.recalibrate,
                guard: predictor.guard,
            },
        )?;
        meta.version = version;
        meta.range = predictor.range;
        write_json(&dir.join("meta.json"), &meta)?;
        reg.versions.push(version);
        self.write_registry(name, &reg)?;
        Ok(version)
    }

    /// Loads a version, checking format and shapes.
    pub fn load(&self, name: &str, version: u32) -> Result<Artifact, PredictError> {
        Self::check_name(name)?;
        let dir = self.version_dir(name, version);
        if !dir.join("config.json").exists() {
            return Err(PredictError::Artifact {
                path: dir,
                reason: "no such version".into(),
            });
        }
        let bad = |reason: String| PredictError::Artifact {
            path: dir.clone(),
            reason,
        };
        let cfg: ConfigFile = read_json(&dir.join("config.json"))?;
        if cfg.format != crate::inference::FORMAT_VERSION {
            return Err(bad(format!(
                "format {} but this novaml reads format {}; retrain the model",
                cfg.format,
                crate::inference::FORMAT_VERSION
            )));
        }
        let sc: ScalersFile = read_json(&dir.join("scalers.json"))?;
        let meta: Meta = read_json(&dir.join("meta.json"))?;
        let mut model = cfg.model;
        let boosters = model.boosters_mut();
        if !boosters.is_empty() {
            let trees: Vec<Vec<Vec<Vec<crate::gbm::Node>>>> = read_json(&dir.join("trees.json"))?;
            if trees.len() != boosters.len() {
                return Err(bad(format!(
                    "trees.json holds {} boosted models, the configuration {}",
                    trees.len(),
                    boosters.len()
                )));
            }
            for (g, t) in boosters.into_iter().zip(trees) {
                // Children after their parent (as grown) and inside the tree: every walk ends.
                let nodes_ok = t.iter().flatten().all(|tree| {
                    !tree.is_empty()
                        && tree.iter().enumerate().all(|(i, n)| {
                            n.feature == u32::MAX
                                || (n
                                    .children
                                    .iter()
                                    .all(|&c| (c as usize) > i && (c as usize) < tree.len())
                                    && n.threshold.is_finite())
                        })
                });
                if t.len() != g.init.len() || !nodes_ok {
                    return Err(bad("trees.json does not fit the boosted model".into()));
                }
                g.trees = t;
            }
        }
        let mut nets = model.networks_mut();
        if !nets.is_empty() {
            let path = dir.join("weights.bin");
            let bytes = std::fs::read(&path).map_err(|source| PredictError::Io {
                path: path.clone(),
                source,
            })?;
            let all = decode_weights(&bytes).map_err(|r| bad(format!("weights.bin: {r}")))?;
            let want: usize = nets.iter().map(|n| n.config.param_count()).sum();
            if all.len() != want {
                return Err(bad(format!(
                    "weights.bin holds {} weights but the configured networks need {want}",
                    all.len()
                )));
            }
            let mut at = 0;
            for net in &mut nets {
                let n = net.config.param_count();
                net.params = all[at..at + n].to_vec();
                at += n;
            }
        }
        let predictor = Predictor {
            format: cfg.format,
            model,
            data: cfg.data,
            scalers: sc.scalers,
            quantiles: cfg.quantiles,
            level: cfg.level,
            calibration: sc.calibration,
            recalibrate: sc.recalibrate,
            guard: sc.guard,
            step_ms: cfg.step_ms,
            range: meta.range,
        };
        predictor.check().map_err(|e| bad(e.to_string()))?;
        Ok(Artifact { predictor, meta })
    }

    /// A version's metadata and model kind, without reading its weights (for listings).
    pub fn summary(&self, name: &str, version: u32) -> Result<(Meta, ModelKind), PredictError> {
        Self::check_name(name)?;
        let dir = self.version_dir(name, version);
        #[derive(Deserialize)]
        struct KindOnly {
            model: KindTag,
        }
        #[derive(Deserialize)]
        struct KindTag {
            kind: ModelKind,
        }
        let k: KindOnly = read_json(&dir.join("config.json"))?;
        let meta: Meta = read_json(&dir.join("meta.json"))?;
        Ok((meta, k.model.kind))
    }

    /// The serving artifact of `name`.
    pub fn champion(&self, name: &str) -> Result<Option<Artifact>, PredictError> {
        match self.registry(name)?.champion {
            Some(v) => self.load(name, v).map(Some),
            None => Ok(None),
        }
    }

    fn set_champion(
        &self,
        name: &str,
        version: u32,
        action: &str,
        reason: String,
    ) -> Result<(), PredictError> {
        let mut reg = self.registry(name)?;
        if !reg.versions.contains(&version) {
            return Err(PredictError::config(
                "version",
                format!("{name} has no version {version} (have {:?})", reg.versions),
            ));
        }
        // Loading checks the artifact is intact before it serves.
        self.load(name, version)?;
        reg.champion = Some(version);
        reg.log.push(LogEntry {
            at_ms: novaml_core::time::now_ms(),
            action: action.into(),
            version,
            reason,
        });
        self.write_registry(name, &reg)
    }

    /// Makes `version` serve, whatever its metrics (an operator's decision).
    pub fn promote(&self, name: &str, version: u32, reason: &str) -> Result<(), PredictError> {
        self.set_champion(name, version, "promote", reason.into())
    }

    /// Goes back to an earlier version.
    pub fn rollback(&self, name: &str, version: u32) -> Result<(), PredictError> {
        let from = self.registry(name)?.champion;
        self.set_champion(
            name,
            version,
            "rollback",
            match from {
                Some(v) => format!("roll back from v{v}"),
                None => "roll back (no version was serving)".into(),
            },
        )
    }

    /// Saves `predictor` as a challenger, evaluates it and the champion on the same holdout rows
    /// of `frame`, and promotes it if its mean MAE is lower (or there is no champion); then
    /// applies the store's [`Retention`] ([`ModelStore::prune`]).
    pub fn submit(
        &self,
        name: &str,
        predictor: &Predictor,
        mut meta: Meta,
        frame: &SeriesFrame,
        holdout: (usize, usize),
    ) -> Result<Decision, PredictError> {
        let metrics = holdout_metrics(predictor, frame, holdout)?;
        let challenger_mae = metrics.mean_mae();
        meta.metrics = metrics;
        let champion = self.champion(name)?;
        let version = self.save(name, predictor, meta)?;
        let champion_mae = match &champion {
            Some(c) => Some(holdout_metrics(&c.predictor, frame, holdout)?.mean_mae()),
            None => None,
        };
        let promoted = champion_mae.is_none_or(|c| challenger_mae < c);
        let reason = match champion_mae {
            None => format!("first version; holdout MAE {challenger_mae:.4}"),
            Some(c) => format!(
                "holdout rows {}..{}: challenger MAE {challenger_mae:.4} vs champion v{} {c:.4}",
                holdout.0,
                holdout.1,
                champion.as_ref().map_or(0, |a| a.meta.version)
            ),
        };
        if promoted {
            self.set_champion(name, version, "promote", reason)?;
        } else {
            let mut reg = self.registry(name)?;
            reg.log.push(LogEntry {
                at_ms: novaml_core::time::now_ms(),
                action: "reject".into(),
                version,
                reason,
            });
            self.write_registry(name, &reg)?;
        }
        self.prune(name)?;
        Ok(Decision {
            version,
            promoted,
            challenger_mae,
            champion_mae,
        })
    }
}

fn decode_weights(bytes: &[u8]) -> Result<Vec<f32>, String> {
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err("not a novaml weights file".into());
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[8..16]);
    let n = u64::from_le_bytes(n) as usize;
    let body = &bytes[16..];
    if body.len() != n.saturating_mul(4) {
        return Err(format!(
            "header says {n} weights but the file holds {} bytes of them",
            body.len()
        ));
    }
    Ok(body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}
