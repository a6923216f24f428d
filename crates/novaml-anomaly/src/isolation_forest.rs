//! Isolation forest (Liu, Ting & Zhou 2008) and its extended variant (Hariri, Kind & Brunner
//! 2019), with scikit-learn's parameters and score definitions.
//!
//! Our own implementation: no crate is fit to depend on (`extended-isolation-forest` fixes the
//! feature count at compile time and draws from an unseeded RNG; `isolation_forest` is another
//! algorithm and cannot load models). This one takes the dimension at run time, is seeded and
//! deterministic whatever the thread count (tree `k` draws from its own stream `seed + k`), fits
//! trees in parallel with rayon, and serialises with serde.
//!
//! Scores follow scikit-learn: the anomaly score of `x` is `s(x) = 2^(−E[h(x)] / c(ψ))` where
//! `h` is the path length (depth plus `c(n)` of the leaf's sample count `n`) and
//! `c(n) = 2(ln(n − 1) + γ) − 2(n − 1)/n`; [`IsolationForest::score_samples`] returns `−s(x)` as
//! scikit-learn does (lower = more abnormal), [`IsolationForest::anomaly_score`] returns `s(x)`.
//!
//! Complexity: fit O(t·ψ·log ψ), score O(n·t·log ψ) for `t` trees of `ψ` samples.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AnomalyError;

/// Euler–Mascheroni constant.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Average path length of an unsuccessful search in a binary search tree of `n` nodes: the
/// normaliser `c(n)` (scikit-learn's `_average_path_length`).
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        n => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// How many samples each tree draws.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MaxSamples {
    /// `min(256, n)`, as scikit-learn's `"auto"`.
    Auto,
    /// A count (capped at `n`).
    Count(usize),
    /// A share of `n` in `(0, 1]`.
    Fraction(f64),
}

/// The share of outliers assumed in the training data; sets the decision threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Contamination {
    /// Threshold at anomaly score 0.5 (`offset = −0.5`), as scikit-learn's `"auto"`.
    Auto,
    /// A share in `(0, 0.5]`: the threshold is that quantile of the training scores.
    Share(f64),
}

/// Unchecked hyperparameters, as scikit-learn's `IsolationForest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForestParams {
    n_estimators: usize,
    max_samples: MaxSamples,
    max_features: f64,
    bootstrap: bool,
    contamination: Contamination,
    extension_level: usize,
    seed: u64,
}

impl Default for IsolationForestParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            max_samples: MaxSamples::Auto,
            max_features: 1.0,
            bootstrap: false,
            contamination: Contamination::Auto,
            extension_level: 0,
            seed: 0,
        }
    }
}

/// Checked hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidIsolationForestParams(IsolationForestParams);

impl IsolationForestParams {
    /// Number of trees (≥ 1).
    pub fn n_estimators(mut self, n: usize) -> Self {
        self.n_estimators = n;
        self
    }
    /// Samples per tree.
    pub fn max_samples(mut self, m: MaxSamples) -> Self {
        self.max_samples = m;
        self
    }
    /// Share of the features each tree may split on, in `(0, 1]`.
    pub fn max_features(mut self, f: f64) -> Self {
        self.max_features = f;
        self
    }
    /// Draw each tree's samples with replacement.
    pub fn bootstrap(mut self, b: bool) -> Self {
        self.bootstrap = b;
        self
    }
    /// Expected share of outliers.
    pub fn contamination(mut self, c: Contamination) -> Self {
        self.contamination = c;
        self
    }
    /// 0: the classic forest (axis-parallel cuts). `k ≥ 1`: the extended forest, cutting with
    /// random hyperplanes through `k + 1` coordinates (at most `features − 1`).
    pub fn extension_level(mut self, k: usize) -> Self {
        self.extension_level = k;
        self
    }
    /// Seed of every random draw.
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }

    /// Checks every invariant.
    pub fn check(self) -> Result<ValidIsolationForestParams, AnomalyError> {
        let bad = |name, reason: String| Err(AnomalyError::InvalidParam { name, reason });
        if self.n_estimators == 0 {
            return bad("n_estimators", "must be at least 1".into());
        }
        match self.max_samples {
            MaxSamples::Count(0) => return bad("max_samples", "must be at least 1".into()),
            MaxSamples::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return bad("max_samples", format!("fraction {f} is outside (0, 1]"));
            }
            _ => {}
        }
        if !(self.max_features > 0.0 && self.max_features <= 1.0) {
            return bad(
                "max_features",
                format!("{} is outside (0, 1]", self.max_features),
            );
        }
        if let Contamination::Share(c) = self.contamination
            && !(c > 0.0 && c <= 0.5)
        {
            return bad("contamination", format!("{c} is outside (0, 0.5]"));
        }
        Ok(ValidIsolationForestParams(self))
    }
}

/// A node, 16 bytes, so a tree of 256 samples (≤ 511 nodes) fits in L1 cache while a block of
/// rows streams through it. Children are adjacent: `left` and `left + 1`. A leaf points to
/// itself with threshold +∞ (`kind` 0), so a walk of exactly `depth` steps, with no branch on
/// the node type, ends on the right leaf whatever the row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Node {
    /// Split threshold (+∞ in a leaf).
    #[serde(with = "threshold")]
    value: f64,
    /// Feature index (0 in a leaf), or `PLANE | k` for the `k`-th hyperplane of the tree.
    kind: u32,
    /// Index of the left child (itself in a leaf).
    left: u32,
}

const PLANE: u32 = 1 << 31;

/// JSON has no infinity: a leaf's +∞ threshold is written as the string `"inf"`.
mod threshold {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_infinite() {
            s.serialize_str("inf")
        } else {
            s.serialize_f64(*v)
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) if t == "inf" => Ok(f64::INFINITY),
            Repr::Text(t) => Err(serde::de::Error::custom(format!("invalid threshold {t:?}"))),
        }
    }
}

/// A hyperplane cut (extended forest): go left when `Σ normal_i·(x[features_i] − point_i) ≤ 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Plane {
    features: Vec<usize>,
    normal: Vec<f64>,
    point: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
    planes: Vec<Plane>,
    /// Path length `depth + c(size)` of each leaf (0 for inner nodes), by node index.
    leaf_path: Vec<f64>,
    /// Steps that reach a leaf from the root on every path.
    depth: u32,
}

/// Rows walked through a tree in lockstep: independent walks hide each other's load latency.
const LANES: usize = 16;

/// The values at float32 precision, as scikit-learn takes them (`IsolationForest` converts `X`
/// to `float32` in `fit` and `score_samples`): the same data gives the same cuts, and scoring
/// can compare 4-byte values (half the memory traffic of 8-byte ones).
fn to_f32_precision(data: &[f64]) -> Result<Vec<f64>, AnomalyError> {
    let out: Vec<f64> = data.iter().map(|&v| f64::from(v as f32)).collect();
    if out.iter().any(|v| !v.is_finite()) {
        return Err(AnomalyError::InvalidInput {
            reason: "the data holds NaN or infinite values, or values beyond float32's ±3.4e38"
                .into(),
        });
    }
    Ok(out)
}

/// A node for scoring float32 rows: `x ≥ value` (float32) exactly when `f64::from(x) ≥` the
/// node's float64 threshold, because `value` is the smallest float32 at or above it. 8 bytes,
/// so a tree of 256 samples (≤ 511 nodes) takes 4 KiB of L1; used when indices fit 16 bits
/// (`max_samples` ≤ 32,768 and < 65,536 features).
#[derive(Debug, Clone, Copy)]
struct Node32 {
    value: f32,
    kind: u16,
    left: u16,
}

impl Node32 {
    fn of(n: &Node) -> Self {
        let mut v = n.value as f32;
        if f64::from(v) < n.value {
            v = v.next_up();
        }
        Self {
            value: v,
            kind: n.kind as u16,
            left: n.left as u16,
        }
    }
}

impl Tree {
    /// The path length of one row.
    fn path_length(&self, x: &[f64]) -> f64 {
        let mut i = 0usize;
        for _ in 0..self.depth {
            let n = self.nodes[i];
            let right = if n.kind & PLANE == 0 {
                u32::from(x[n.kind as usize] >= n.value)
            } else {
                let p = &self.planes[(n.kind & !PLANE) as usize];
                let dot: f64 = p
                    .features
                    .iter()
                    .zip(&p.normal)
                    .zip(&p.point)
                    .map(|((&f, w), c)| w * (x[f] - c))
                    .sum();
                u32::from(dot > 0.0)
            };
            i = (n.left + right) as usize;
        }
        self.leaf_path[i]
    }

    /// [`Self::accumulate`] for an axis-parallel tree over float32 rows, with `nodes` its
    /// [`Node32`]s.
    fn accumulate32(&self, nodes: &[Node32], block: &[f32], d: usize, acc: &mut [f64]) {
        let mut rows = block.chunks_exact(d * LANES);
        let mut out = acc.chunks_exact_mut(LANES);
        for (group, a) in (&mut rows).zip(&mut out) {
            let mut idx = [0usize; LANES];
            for _ in 0..self.depth {
                for (lane, i) in idx.iter_mut().enumerate() {
                    let n = nodes[*i];
                    // Branch-free: half the comparisons go each way at random, which no branch
                    // predictor can learn.
                    *i =
                        n.left as usize + usize::from(group[lane * d + n.kind as usize] >= n.value);
                }
            }
            for (a, i) in a.iter_mut().zip(idx) {
                *a += self.leaf_path[i];
            }
        }
        for (a, x) in out
            .into_remainder()
            .iter_mut()
            .zip(rows.remainder().chunks_exact(d))
        {
            let mut i = 0usize;
            for _ in 0..self.depth {
                let n = nodes[i];
                i = n.left as usize + usize::from(x[n.kind as usize] >= n.value);
            }
            *a += self.leaf_path[i];
        }
    }

    /// Adds the path lengths of the rows of `block` (`d` features each) to `acc`.
    fn accumulate(&self, block: &[f64], d: usize, acc: &mut [f64]) {
        if !self.planes.is_empty() {
            for (a, x) in acc.iter_mut().zip(block.chunks_exact(d)) {
                *a += self.path_length(x);
            }
            return;
        }
        let mut rows = block.chunks_exact(d * LANES);
        let mut out = acc.chunks_exact_mut(LANES);
        for (group, a) in (&mut rows).zip(&mut out) {
            let mut idx = [0usize; LANES];
            for _ in 0..self.depth {
                for (lane, i) in idx.iter_mut().enumerate() {
                    let n = self.nodes[*i];
                    // Branch-free: half the comparisons go each way at random, which no branch
                    // predictor can learn.
                    *i =
                        (n.left + u32::from(group[lane * d + n.kind as usize] >= n.value)) as usize;
                }
            }
            for (a, i) in a.iter_mut().zip(idx) {
                *a += self.leaf_path[i];
            }
        }
        for (a, x) in out
            .into_remainder()
            .iter_mut()
            .zip(rows.remainder().chunks_exact(d))
        {
            *a += self.path_length(x);
        }
    }
}

/// A fitted isolation forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    trees: Vec<Tree>,
    n_features: usize,
    /// Samples each tree was built from (ψ).
    max_samples: usize,
    /// `score_samples` below this is an outlier (scikit-learn's `offset_`).
    pub offset: f64,
}

/// A cut of a node's samples.
enum Cut {
    Axis {
        feature: usize,
        threshold: f64,
    },
    Plane {
        features: Vec<usize>,
        normal: Vec<f64>,
        point: Vec<f64>,
    },
}

impl Cut {
    fn goes_left(&self, x: &[f64]) -> bool {
        match self {
            Self::Axis { feature, threshold } => x[*feature] < *threshold,
            Self::Plane {
                features,
                normal,
                point,
            } => {
                features
                    .iter()
                    .zip(normal)
                    .zip(point)
                    .map(|((&f, n), p)| n * (x[f] - p))
                    .sum::<f64>()
                    <= 0.0
            }
        }
    }
}

struct Builder<'a> {
    data: &'a [f64],
    d: usize,
    features: Vec<usize>,
    extension: usize,
    max_depth: usize,
    rng: ChaCha8Rng,
    nodes: Vec<Node>,
    planes: Vec<Plane>,
    leaf_path: Vec<f64>,
}

impl Builder<'_> {
    fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.d..(i + 1) * self.d]
    }

    fn range(&self, idx: &[usize], f: usize) -> (f64, f64) {
        idx.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &i| {
                let v = self.row(i)[f];
                (lo.min(v), hi.max(v))
            })
    }

    fn leaf(&mut self, slot: usize, size: usize, depth: usize) {
        self.nodes[slot] = Node {
            value: f64::INFINITY,
            kind: 0,
            left: slot as u32,
        };
        self.leaf_path[slot] = depth as f64 + average_path_length(size);
    }

    /// Builds the subtree over `idx` into `slot`; children go into two adjacent new slots.
    fn build(&mut self, idx: &mut [usize], depth: usize, slot: usize) {
        if idx.len() <= 1 || depth >= self.max_depth {
            return self.leaf(slot, idx.len(), depth);
        }
        let cut = if self.extension == 0 {
            self.axis_cut(idx)
        } else {
            self.plane_cut(idx)
        };
        let Some(cut) = cut else {
            return self.leaf(slot, idx.len(), depth);
        };
        let mut l = 0;
        for k in 0..idx.len() {
            if cut.goes_left(self.row(idx[k])) {
                idx.swap(l, k);
                l += 1;
            }
        }
        let left = self.nodes.len();
        let placeholder = Node {
            value: f64::INFINITY,
            kind: 0,
            left: 0,
        };
        self.nodes.extend([placeholder, placeholder]);
        self.leaf_path.extend([0.0, 0.0]);
        self.nodes[slot] = match cut {
            Cut::Axis { feature, threshold } => Node {
                value: threshold,
                kind: feature as u32,
                left: left as u32,
            },
            Cut::Plane {
                features,
                normal,
                point,
            } => {
                self.planes.push(Plane {
                    features,
                    normal,
                    point,
                });
                Node {
                    value: 0.0,
                    kind: PLANE | (self.planes.len() - 1) as u32,
                    left: left as u32,
                }
            }
        };
        let (left_idx, right_idx) = idx.split_at_mut(l);
        self.build(left_idx, depth + 1, left);
        self.build(right_idx, depth + 1, left + 1);
    }

    /// A random feature (redrawn while it is constant here, as scikit-learn's random splitter
    /// does) and a threshold uniform in its range.
    fn axis_cut(&mut self, idx: &[usize]) -> Option<Cut> {
        let mut candidates = self.features.clone();
        while !candidates.is_empty() {
            let k = self.rng.random_range(0..candidates.len());
            let feature = candidates.swap_remove(k);
            let (lo, hi) = self.range(idx, feature);
            if hi > lo {
                return Some(Cut::Axis {
                    feature,
                    threshold: lo + (hi - lo) * self.rng.random::<f64>(),
                });
            }
        }
        None
    }

    /// A random hyperplane through `extension + 1` coordinates: a normal with standard normal
    /// components (uniform direction) through a point uniform in the node's bounding box.
    fn plane_cut(&mut self, idx: &[usize]) -> Option<Cut> {
        let k = (self.extension + 1).min(self.features.len());
        let features: Vec<usize> = sample(&mut self.rng, self.features.len(), k)
            .into_iter()
            .map(|j| self.features[j])
            .collect();
        let (mut normal, mut point) = (Vec::with_capacity(k), Vec::with_capacity(k));
        let mut varies = false;
        for &f in &features {
            // Box–Muller.
            let (u1, u2): (f64, f64) = (
                self.rng.random::<f64>().max(f64::MIN_POSITIVE),
                self.rng.random(),
            );
            normal.push((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos());
            let (lo, hi) = self.range(idx, f);
            varies |= hi > lo;
            point.push(lo + (hi - lo) * self.rng.random::<f64>());
        }
        varies.then_some(Cut::Plane {
            features,
            normal,
            point,
        })
    }
}

impl ValidIsolationForestParams {
    /// Fits on `data`, `n` rows of `d` features in row-major order.
    pub fn fit(&self, data: &[f64], d: usize) -> Result<IsolationForest, AnomalyError> {
        let p = &self.0;
        if d == 0 || data.is_empty() || !data.len().is_multiple_of(d) {
            return Err(AnomalyError::InvalidInput {
                reason: format!("{} values do not form rows of {d} features", data.len()),
            });
        }
        let data = &to_f32_precision(data)?;
        if p.extension_level >= d.max(1) && p.extension_level > 0 {
            return Err(AnomalyError::InvalidParam {
                name: "extension_level",
                reason: format!("must be below the feature count {d}"),
            });
        }
        let n = data.len() / d;
        let psi = match p.max_samples {
            MaxSamples::Auto => n.min(256),
            MaxSamples::Count(c) => c.min(n),
            MaxSamples::Fraction(f) => ((f * n as f64) as usize).clamp(1, n),
        };
        let n_feat = ((p.max_features * d as f64) as usize).clamp(1, d);
        let max_depth = (psi.max(2) as f64).log2().ceil() as usize;
        let trees: Vec<Tree> = (0..p.n_estimators)
            .into_par_iter()
            .map(|t| {
                let mut rng = ChaCha8Rng::seed_from_u64(p.seed.wrapping_add(t as u64));
                let features: Vec<usize> = if n_feat == d {
                    (0..d).collect()
                } else {
                    sample(&mut rng, d, n_feat).into_vec()
                };
                let mut idx: Vec<usize> = if p.bootstrap {
                    (0..psi).map(|_| rng.random_range(0..n)).collect()
                } else {
                    sample(&mut rng, n, psi).into_vec()
                };
                let mut b = Builder {
                    data,
                    d,
                    features,
                    extension: p.extension_level,
                    max_depth,
                    rng,
                    nodes: vec![Node {
                        value: f64::INFINITY,
                        kind: 0,
                        left: 0,
                    }],
                    planes: Vec::new(),
                    leaf_path: vec![0.0],
                };
                b.build(&mut idx, 0, 0);
                Tree {
                    nodes: b.nodes,
                    planes: b.planes,
                    leaf_path: b.leaf_path,
                    depth: max_depth as u32,
                }
            })
            .collect();
        let mut forest = IsolationForest {
            trees,
            n_features: d,
            max_samples: psi,
            offset: -0.5,
        };
        if let Contamination::Share(c) = p.contamination {
            let mut s = forest.score_samples(data)?;
            s.sort_by(f64::total_cmp);
            // numpy.percentile(scores, 100·c) with linear interpolation, as scikit-learn.
            let pos = c * (s.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            forest.offset = s[lo] + (s[hi] - s[lo]) * (pos - lo as f64);
        }
        Ok(forest)
    }
}

impl IsolationForest {
    /// Number of features it was fitted on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    fn check_rows(&self, data: &[f64]) -> Result<usize, AnomalyError> {
        // A non-finite value would walk past a leaf (its threshold is +∞).
        if data.iter().any(|v| !v.is_finite()) {
            return Err(AnomalyError::InvalidInput {
                reason: "the data holds NaN or infinite values".into(),
            });
        }
        if !data.len().is_multiple_of(self.n_features) {
            return Err(AnomalyError::InvalidInput {
                reason: format!(
                    "{} values do not form rows of {} features",
                    data.len(),
                    self.n_features
                ),
            });
        }
        Ok(data.len() / self.n_features)
    }

    /// `s(x) = 2^(−E[h(x)]/c(ψ))` per row: near 1 for anomalies, below 0.5 for normal points.
    ///
    /// Rows are scored in blocks, each block passed through one tree at a time: the tree stays
    /// in cache while the block's rows stream through it. Blocks run in parallel.
    pub fn anomaly_score(&self, data: &[f64]) -> Result<Vec<f64>, AnomalyError> {
        const BLOCK: usize = 512;
        self.check_rows(data)?;
        let c = average_path_length(self.max_samples);
        let t = self.trees.len() as f64;
        let d = self.n_features;
        let score = |acc: Vec<f64>| -> Vec<f64> {
            acc.into_iter()
                .map(|sum| 2f64.powf(-(sum / t) / c))
                .collect()
        };
        let axis_only = d <= usize::from(u16::MAX)
            && self
                .trees
                .iter()
                .all(|t| t.planes.is_empty() && t.nodes.len() <= usize::from(u16::MAX));
        let blocks: Vec<Vec<f64>> = if axis_only {
            let nodes: Vec<Vec<Node32>> = self
                .trees
                .iter()
                .map(|t| t.nodes.iter().map(Node32::of).collect())
                .collect();
            data.par_chunks(BLOCK * d)
                .map(|block| {
                    let block32: Vec<f32> = block.iter().map(|&v| v as f32).collect();
                    let mut acc = vec![0.0; block.len() / d];
                    for (tree, nodes) in self.trees.iter().zip(&nodes) {
                        tree.accumulate32(nodes, &block32, d, &mut acc);
                    }
                    score(acc)
                })
                .collect()
        } else {
            let data = to_f32_precision(data)?;
            data.par_chunks(BLOCK * d)
                .map(|block| {
                    let mut acc = vec![0.0; block.len() / d];
                    for tree in &self.trees {
                        tree.accumulate(block, d, &mut acc);
                    }
                    score(acc)
                })
                .collect()
        };
        Ok(blocks.concat())
    }

    /// scikit-learn's `score_samples`: `−s(x)`, lower is more abnormal.
    pub fn score_samples(&self, data: &[f64]) -> Result<Vec<f64>, AnomalyError> {
        Ok(self.anomaly_score(data)?.into_iter().map(|s| -s).collect())
    }

    /// scikit-learn's `decision_function`: `score_samples − offset`, negative for outliers.
    pub fn decision_function(&self, data: &[f64]) -> Result<Vec<f64>, AnomalyError> {
        Ok(self
            .score_samples(data)?
            .into_iter()
            .map(|s| s - self.offset)
            .collect())
    }

    /// scikit-learn's `predict`: −1 for outliers, 1 for inliers.
    pub fn predict(&self, data: &[f64]) -> Result<Vec<i8>, AnomalyError> {
        Ok(self
            .decision_function(data)?
            .into_iter()
            .map(|d| if d < 0.0 { -1 } else { 1 })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float64 walk over the same float32-precision rows: the reference for the fast path.
    fn reference_scores(f: &IsolationForest, data: &[f64]) -> Vec<f64> {
        let data = to_f32_precision(data).expect("finite");
        let d = f.n_features;
        let mut acc = vec![0.0; data.len() / d];
        for tree in &f.trees {
            tree.accumulate(&data, d, &mut acc);
        }
        let (c, t) = (average_path_length(f.max_samples), f.trees.len() as f64);
        acc.into_iter()
            .map(|sum| 2f64.powf(-(sum / t) / c))
            .collect()
    }

    #[test]
    fn the_float32_walk_is_exactly_the_float64_walk() {
        // Thresholds between two float32 values round up; exact ones stay.
        let n = Node {
            value: 1.0 + 1e-9,
            kind: 0,
            left: 0,
        };
        let m = Node32::of(&n);
        assert!(f64::from(m.value) >= n.value && f64::from(m.value.next_down()) < n.value);
        assert_eq!(Node32::of(&Node { value: 0.5, ..n }).value, 0.5);
        assert_eq!(
            Node32::of(&Node {
                value: f64::INFINITY,
                ..n
            })
            .value,
            f32::INFINITY
        );
        let x = blob(9, 3_000, 4);
        let f = IsolationForestParams::default()
            .seed(4)
            .check()
            .expect("valid")
            .fit(&x, 4)
            .expect("fit");
        assert_eq!(
            f.anomaly_score(&x).expect("score"),
            reference_scores(&f, &x)
        );
        // Rows that are not the training rows, and a remainder shorter than a lane group.
        let y = blob(10, 1_003, 4);
        assert_eq!(
            f.anomaly_score(&y).expect("score"),
            reference_scores(&f, &y)
        );
    }

    fn blob(seed: u64, n: usize, d: usize) -> Vec<f64> {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d)
            .map(|_| r.random::<f64>() + r.random::<f64>() + r.random::<f64>() - 1.5)
            .collect()
    }

    #[test]
    fn average_path_length_matches_scikit_learn() {
        // c(n) = 2(ln(n − 1) + γ) − 2(n − 1)/n, as sklearn.ensemble._iforest._average_path_length
        for (n, want) in [
            (1, 0.0),
            (2, 1.0),
            (3, 1.207_392_357_589_623),
            (256, 10.244_770_920_119_917),
        ] {
            assert!(
                (average_path_length(n) - want).abs() < 1e-9,
                "c({n}) = {}",
                average_path_length(n)
            );
        }
    }

    #[test]
    fn each_invariant_is_checked() {
        let d = IsolationForestParams::default;
        let cases = [
            ("n_estimators", d().n_estimators(0)),
            ("max_samples", d().max_samples(MaxSamples::Count(0))),
            ("max_samples", d().max_samples(MaxSamples::Fraction(1.5))),
            ("max_features", d().max_features(0.0)),
            (
                "contamination",
                d().contamination(Contamination::Share(0.7)),
            ),
        ];
        for (name, p) in cases {
            match p.check() {
                Err(AnomalyError::InvalidParam { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        let ok = d().extension_level(3).check().expect("valid");
        assert!(matches!(
            ok.fit(&blob(1, 10, 2), 2),
            Err(AnomalyError::InvalidParam {
                name: "extension_level",
                ..
            })
        ));
        assert!(matches!(
            d().check().expect("valid").fit(&[1.0, f64::NAN], 1),
            Err(AnomalyError::InvalidInput { .. })
        ));
        assert!(matches!(
            d().check().expect("valid").fit(&[1.0, 2.0, 3.0], 2),
            Err(AnomalyError::InvalidInput { .. })
        ));
    }

    #[test]
    fn outliers_score_high_deterministically_in_both_variants() {
        let mut data = blob(7, 1_000, 3);
        data.extend_from_slice(&[6.0, 6.0, 6.0, -6.0, 5.0, 0.0]);
        for ext in [0, 2] {
            let p = IsolationForestParams::default()
                .extension_level(ext)
                .seed(3)
                .check()
                .expect("valid");
            let f = p.fit(&data, 3).expect("fit");
            let s = f.anomaly_score(&data).expect("score");
            let max_inlier = s[..1_000].iter().copied().fold(0.0, f64::max);
            assert!(
                s[1_000] > max_inlier && s[1_001] > max_inlier,
                "ext {ext}: {} {} vs {max_inlier}",
                s[1_000],
                s[1_001]
            );
            assert_eq!(f, p.fit(&data, 3).expect("refit"), "same seed, same forest");
            assert_eq!(f.predict(&data[3_000..]).expect("predict"), vec![-1, -1]);
        }
    }

    #[test]
    fn contamination_sets_the_share_of_outliers() {
        let data = blob(2, 2_000, 2);
        let f = IsolationForestParams::default()
            .contamination(Contamination::Share(0.1))
            .seed(1)
            .check()
            .expect("valid")
            .fit(&data, 2)
            .expect("fit");
        let out = f
            .predict(&data)
            .expect("predict")
            .iter()
            .filter(|&&p| p == -1)
            .count();
        assert!(
            (190..=210).contains(&out),
            "{out} of 2000 flagged at contamination 0.1"
        );
    }

    #[test]
    fn serde_round_trip_is_exact() {
        let data = blob(4, 300, 2);
        let f = IsolationForestParams::default()
            .extension_level(1)
            .check()
            .expect("valid")
            .fit(&data, 2)
            .expect("fit");
        let json = serde_json::to_string(&f).expect("serialise");
        let g: IsolationForest = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(
            f.anomaly_score(&data).expect("score"),
            g.anomaly_score(&data).expect("score")
        );
    }
}
