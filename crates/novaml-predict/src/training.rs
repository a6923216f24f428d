//! Training: Adam on the pinball loss, global-norm gradient clipping, learning-rate reduction on
//! a validation plateau, early stopping with the best weights kept, checkpoints to resume from.
//!
//! Deterministic on CPU for a seed: the shuffling and dropout come from seeded generators, and a
//! batch is split across threads at fixed points whose gradients are summed in a fixed order.

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::PredictError;
use crate::model::{Network, pinball};
use novaml_features::Windows;

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Most epochs.
    pub epochs: usize,
    /// Windows per batch.
    pub batch: usize,
    /// Adam's initial learning rate.
    pub learning_rate: f32,
    /// Clip the gradient's global L2 norm to this (0 = off).
    pub clip_norm: f32,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// Halve the learning rate after this many epochs without improvement.
    pub plateau_patience: usize,
    /// Multiply the learning rate by this on a plateau.
    pub plateau_factor: f32,
    /// Lowest learning rate.
    pub min_learning_rate: f32,
    /// Quantiles the outputs predict (each in (0, 1)), ascending.
    pub quantiles: Vec<f32>,
    /// Seed of the initial weights, shuffling and dropout.
    pub seed: u64,
    /// Use every `stride`-th training window (1 = all).
    pub stride: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch: 64,
            learning_rate: 2e-3,
            clip_norm: 1.0,
            patience: 5,
            plateau_patience: 2,
            plateau_factor: 0.5,
            min_learning_rate: 1e-5,
            quantiles: vec![0.1, 0.5, 0.9],
            seed: 1,
            stride: 1,
        }
    }
}

impl TrainConfig {
    /// Checks the values.
    pub fn check(&self) -> Result<(), PredictError> {
        let bad = |f, r: &str| Err(PredictError::config(f, r));
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.batch == 0 {
            return bad("batch", "must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("learning_rate", "must be positive");
        }
        if self.quantiles.is_empty()
            || self.quantiles.iter().any(|q| !(*q > 0.0 && *q < 1.0))
            || self.quantiles.windows(2).any(|w| w[0] >= w[1])
        {
            return bad("quantiles", "give ascending values in (0, 1)");
        }
        if !(self.plateau_factor > 0.0 && self.plateau_factor <= 1.0) {
            return bad("plateau_factor", "must be in (0, 1]");
        }
        if self.stride == 0 {
            return bad("stride", "must be at least 1");
        }
        Ok(())
    }

    /// Index of the median (or the quantile nearest 0.5).
    pub fn median_index(&self) -> usize {
        median_index(&self.quantiles)
    }
}

/// Index of the quantile nearest 0.5 in `quantiles`.
pub fn median_index(quantiles: &[f32]) -> usize {
    quantiles
        .iter()
        .enumerate()
        .min_by(|a, b| (a.1 - 0.5).abs().total_cmp(&(b.1 - 0.5).abs()))
        .map_or(0, |(i, _)| i)
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Mean training pinball loss.
    pub train_loss: f64,
    /// Mean validation pinball loss.
    pub val_loss: f64,
    /// Learning rate used.
    pub learning_rate: f32,
    /// Wall time of the epoch, s.
    pub seconds: f64,
    /// Whether this epoch's weights are the best so far.
    pub best: bool,
}

/// Everything needed to continue training where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Current weights.
    pub net: Network,
    /// The best weights so far (by validation loss).
    pub best_params: Vec<f32>,
    /// Best validation loss.
    pub best_val: f64,
    /// Adam first moments.
    pub m: Vec<f32>,
    /// Adam second moments.
    pub v: Vec<f32>,
    /// Adam steps taken.
    pub t: u64,
    /// Current learning rate.
    pub learning_rate: f32,
    /// Epochs since the last improvement.
    pub stale: usize,
    /// Epochs since the last improvement or learning-rate cut.
    pub plateau: usize,
    /// History so far.
    pub history: Vec<EpochReport>,
    /// Whether early stopping ended it.
    pub stopped: bool,
}

impl Checkpoint {
    /// A fresh start from `net`.
    pub fn start(net: Network, cfg: &TrainConfig) -> Self {
        let n = net.len();
        Self {
            best_params: net.params.clone(),
            net,
            best_val: f64::INFINITY,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
            learning_rate: cfg.learning_rate,
            stale: 0,
            plateau: 0,
            history: Vec::new(),
            stopped: false,
        }
    }

    /// Writes the checkpoint as JSON (atomically: temp file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), PredictError> {
        crate::io::write_json(path, self)
    }

    /// Reads a checkpoint and checks that it fits `net`'s shape.
    pub fn load(path: &Path, net: &Network) -> Result<Self, PredictError> {
        let c: Self = crate::io::read_json(path)?;
        let bad = |reason: String| PredictError::Artifact {
            path: path.to_owned(),
            reason,
        };
        if c.net.config != net.config {
            return Err(bad(format!(
                "the checkpoint's network {:?} differs from the configured {:?}",
                c.net.config, net.config
            )));
        }
        c.net.check().map_err(|e| bad(e.to_string()))?;
        let n = c.net.len();
        if c.m.len() != n || c.v.len() != n || c.best_params.len() != n {
            return Err(bad("the optimiser state does not fit the weights".into()));
        }
        Ok(c)
    }
}

/// Forward, loss and backward over a batch, split in two halves across threads.
#[allow(clippy::too_many_arguments)]
fn batch_grad(
    net: &Network,
    x: &[f32],
    y: &[f32],
    steps: usize,
    batch: usize,
    quantiles: &[f32],
    seed: Option<u64>,
    grad: &mut [f32],
) -> f64 {
    let f_n = net.config.inputs;
    let o_n = net.config.outputs;
    let norm = (batch * o_n) as f32;
    let half = |lo: usize, hi: usize, seed: Option<u64>| {
        let b = hi - lo;
        let mut xs = vec![0.0f32; steps * b * f_n];
        for t in 0..steps {
            xs[t * b * f_n..(t + 1) * b * f_n]
                .copy_from_slice(&x[(t * batch + lo) * f_n..(t * batch + hi) * f_n]);
        }
        let cache = net.forward(&xs, steps, b, seed);
        let mut d = vec![0.0f32; b * o_n];
        let h_n = o_n / quantiles.len();
        let loss = pinball(&cache.out, &y[lo * h_n..hi * h_n], quantiles, norm, &mut d);
        let mut g = vec![0.0f32; net.len()];
        net.backward(&cache, &d, &mut g);
        (loss, g)
    };
    let ((l1, g1), (l2, g2)) = if batch >= 16 {
        let mid = batch / 2;
        rayon::join(
            || half(0, mid, seed),
            || half(mid, batch, seed.map(|s| s ^ 0x9e37_79b9)),
        )
    } else {
        (half(0, batch, seed), (0.0, vec![0.0; net.len()]))
    };
    for ((g, a), b) in grad.iter_mut().zip(&g1).zip(&g2) {
        *g = a + b;
    }
    l1 + l2
}

/// One batch's forward, loss and backward exactly as training runs it (for benchmarks).
#[doc(hidden)]
pub fn bench_batch_grad(
    net: &Network,
    x: &[f32],
    y: &[f32],
    steps: usize,
    batch: usize,
    quantiles: &[f32],
    grad: &mut [f32],
) -> f64 {
    batch_grad(net, x, y, steps, batch, quantiles, None, grad)
}

/// Mean pinball loss of `net` over all of `w` (no dropout).
pub fn evaluate_loss(net: &Network, w: &Windows, quantiles: &[f32]) -> f64 {
    let out = predict_windows(net, w);
    let mut d = vec![0.0f32; out.len()];
    pinball(&out, &w.y, quantiles, 1.0, &mut d) / out.len().max(1) as f64
}

/// Raw network outputs `[N][outputs]` for every window of `w`, in chunks across threads.
pub fn predict_windows(net: &Network, w: &Windows) -> Vec<f32> {
    use rayon::prelude::*;
    let idx: Vec<usize> = (0..w.len()).collect();
    let parts: Vec<Vec<f32>> = idx
        .par_chunks(256)
        .map(|chunk| {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            crate::dataset::batch(w, chunk, &mut x, &mut y);
            net.forward(&x, w.steps, chunk.len(), None).out
        })
        .collect();
    parts.concat()
}

/// Trains from `state` (a fresh [`Checkpoint::start`] or a loaded one) until early stopping or
/// `cfg.epochs`, calling `on_epoch` after each epoch and saving the state to `checkpoint` when
/// given. Returns the final state; its `best_params` are the weights to keep.
pub fn train(
    mut state: Checkpoint,
    train: &Windows,
    val: &Windows,
    cfg: &TrainConfig,
    checkpoint: Option<&Path>,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Checkpoint, PredictError> {
    cfg.check()?;
    let q_n = cfg.quantiles.len();
    if state.net.config.outputs != train.horizon * q_n {
        return Err(PredictError::config(
            "outputs",
            format!(
                "the network has {} outputs but horizon {} × {q_n} quantiles need {}",
                state.net.config.outputs,
                train.horizon,
                train.horizon * q_n
            ),
        ));
    }
    if state.net.config.inputs != train.features {
        return Err(PredictError::config(
            "inputs",
            format!(
                "the network reads {} features per step, the data has {}",
                state.net.config.inputs, train.features
            ),
        ));
    }
    if train.is_empty() || val.is_empty() {
        return Err(PredictError::Data(format!(
            "no complete windows to learn from (training {}, validation {}): the data is too \
             short or too gappy for this lookback and horizon",
            train.len(),
            val.len()
        )));
    }
    let mut order: Vec<usize> = (0..train.len()).step_by(cfg.stride).collect();
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-7f32);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut grad = vec![0.0f32; state.net.len()];
    while state.history.len() < cfg.epochs && !state.stopped {
        let epoch = state.history.len() + 1;
        let started = std::time::Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003) ^ epoch as u64);
        order.sort_unstable();
        order.shuffle(&mut rng);
        let mut total = 0.0;
        let mut batches = 0usize;
        for (k, idx) in order.chunks(cfg.batch).enumerate() {
            crate::dataset::batch(train, idx, &mut x, &mut y);
            let seed = (state.net.config.dropout > 0.0)
                .then_some(cfg.seed ^ ((epoch as u64) << 32) ^ k as u64);
            let loss = batch_grad(
                &state.net,
                &x,
                &y,
                train.steps,
                idx.len(),
                &cfg.quantiles,
                seed,
                &mut grad,
            );
            if !loss.is_finite() {
                return Err(PredictError::Diverged { epoch, loss });
            }
            total += loss;
            batches += 1;
            if cfg.clip_norm > 0.0 {
                let norm = grad
                    .iter()
                    .map(|g| f64::from(*g) * f64::from(*g))
                    .sum::<f64>();
                let norm = norm.sqrt() as f32;
                if norm > cfg.clip_norm {
                    let s = cfg.clip_norm / norm;
                    grad.iter_mut().for_each(|g| *g *= s);
                }
            }
            state.t += 1;
            let t = state.t as i32;
            let lr = state.learning_rate * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
            for (((p, g), m), v) in state
                .net
                .params
                .iter_mut()
                .zip(&grad)
                .zip(&mut state.m)
                .zip(&mut state.v)
            {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= lr * *m / (v.sqrt() + eps);
            }
        }
        let train_loss = total / batches.max(1) as f64;
        let val_loss = evaluate_loss(&state.net, val, &cfg.quantiles);
        if !val_loss.is_finite() {
            return Err(PredictError::Diverged {
                epoch,
                loss: val_loss,
            });
        }
        let best = val_loss < state.best_val - 1e-6 * state.best_val.abs().min(1e6);
        if best {
            state.best_val = val_loss;
            state.best_params.clone_from(&state.net.params);
            state.stale = 0;
            state.plateau = 0;
        } else {
            state.stale += 1;
            state.plateau += 1;
        }
        let report = EpochReport {
            epoch,
            train_loss,
            val_loss,
            learning_rate: state.learning_rate,
            seconds: started.elapsed().as_secs_f64(),
            best,
        };
        if state.plateau >= cfg.plateau_patience && cfg.plateau_patience > 0 {
            state.learning_rate =
                (state.learning_rate * cfg.plateau_factor).max(cfg.min_learning_rate);
            state.plateau = 0;
        }
        if state.stale >= cfg.patience && cfg.patience > 0 {
            state.stopped = true;
        }
        state.history.push(report);
        if let Some(path) = checkpoint {
            state.save(path)?;
        }
        if let Some(r) = state.history.last() {
            on_epoch(r);
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NetConfig;
    use novaml_features::dataset::{DataConfig, Scalers, SeriesFrame, Split, inputs, windows};

    fn data() -> (Windows, Windows) {
        let n = 900;
        let f = SeriesFrame {
            start_ms: 0,
            step_ms: 300_000,
            target: (0..n)
                .map(|i| (i as f64 * std::f64::consts::TAU / 24.0).sin() * 10.0 + 50.0)
                .collect(),
            covariates: vec![],
        };
        let cfg = DataConfig {
            lookback: 24,
            horizon: 4,
            season: 0,
            calendar: false,
            covariates: vec![],
        };
        let split = Split::new(n, 0.2, 0.0, &cfg).expect("split");
        let s = Scalers::fit(&f, &cfg, split.train_end).expect("fit");
        let t = inputs(&f, &cfg, &s).expect("inputs");
        (
            windows(&f, &cfg, &s, &t, split.train_origins(&cfg), true),
            windows(&f, &cfg, &s, &t, split.val_origins(&cfg), true),
        )
    }

    fn net(seed: u64) -> Network {
        Network::new(
            NetConfig {
                inputs: 1,
                layers: vec![16],
                bidirectional: false,
                attention: false,
                dropout: 0.1,
                outputs: 12,
                skip: 0,
            },
            seed,
        )
        .expect("net")
    }

    #[test]
    fn learns_a_sine_and_is_deterministic() {
        let (tr, va) = data();
        let cfg = TrainConfig {
            epochs: 8,
            ..TrainConfig::default()
        };
        let run = || {
            train(
                Checkpoint::start(net(1), &cfg),
                &tr,
                &va,
                &cfg,
                None,
                &mut |_| {},
            )
            .expect("train")
        };
        let a = run();
        let b = run();
        assert_eq!(a.best_params, b.best_params, "same seed, same weights");
        let first = a.history[0].val_loss;
        assert!(
            a.best_val < 0.5 * first,
            "validation loss {first} → {}",
            a.best_val
        );
    }

    #[test]
    fn resuming_equals_running_through() {
        let (tr, va) = data();
        let dir = tempfile::tempdir().expect("tmp");
        let ck = dir.path().join("ck.json");
        let full = TrainConfig {
            epochs: 4,
            patience: 0,
            ..TrainConfig::default()
        };
        let half = TrainConfig {
            epochs: 2,
            ..full.clone()
        };
        let whole = train(
            Checkpoint::start(net(2), &full),
            &tr,
            &va,
            &full,
            None,
            &mut |_| {},
        )
        .expect("train");
        train(
            Checkpoint::start(net(2), &half),
            &tr,
            &va,
            &half,
            Some(&ck),
            &mut |_| {},
        )
        .expect("first half");
        let state = Checkpoint::load(&ck, &net(2)).expect("load");
        assert_eq!(state.history.len(), 2);
        let resumed = train(state, &tr, &va, &full, None, &mut |_| {}).expect("second half");
        assert_eq!(resumed.net.params, whole.net.params);
        assert_eq!(resumed.history.len(), 4);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let (tr, va) = data();
        let cfg = TrainConfig::default();
        let mut n = net(1);
        n.config.outputs = 5;
        let n = Network::new(n.config, 1).expect("net");
        let e = train(
            Checkpoint::start(n, &cfg),
            &tr,
            &va,
            &cfg,
            None,
            &mut |_| {},
        )
        .expect_err("outputs");
        assert!(e.to_string().contains("outputs"), "{e}");
    }
}
