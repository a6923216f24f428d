//! A gradient-boosted lag model: one ensemble of regression trees per horizon on features of the
//! input window, trained with the absolute-error loss (LAD-TreeBoost: trees fit the gradient's
//! sign, leaves take the median residual) and early-stopped on the validation windows.
//!
//! Why our own: no crate did the job on stable Rust here. perpetual 1.9 (the maintained pure-Rust
//! GBM) needs nightly (`#![feature(array_ptr_get)]`); its predecessor forust-ml is unmaintained
//! and unlicensed; gbdt-rs has had no release since 2020; the LightGBM and XGBoost bindings build
//! C++ with CMake. What a lag model needs is small: histogram splits on pre-binned features,
//! best-first growth to a leaf budget, shrinkage, and the loss the evaluation scores.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PredictError;
use crate::baselines::seasonal_deltas;
use novaml_features::dataset::{DataConfig, Windows};

/// Bins per feature.
const BINS: usize = 64;
/// Leaves per tree.
const MAX_LEAVES: usize = 31;
/// Training windows per leaf, at least.
const MIN_LEAF: usize = 20;
/// Shrinkage.
const LEARNING_RATE: f32 = 0.1;
/// Most trees per horizon.
const MAX_ROUNDS: usize = 300;
/// Stop after this many trees without a better validation MAE.
const PATIENCE: usize = 25;

/// The features of window `k`: the target's change from the origin at every lag, its means and
/// spreads over recent spans, the seasonal changes per horizon, the other inputs at the origin,
/// and the level.
pub(crate) fn features(w: &Windows, cfg: &DataConfig, k: usize) -> Vec<f32> {
    let (t_n, f_n) = (w.steps, w.features);
    let x = &w.x[k * t_n * f_n..(k + 1) * t_n * f_n];
    let last = x[(t_n - 1) * f_n];
    let lags: Vec<f32> = (1..t_n).map(|l| x[(t_n - 1 - l) * f_n] - last).collect();
    let mut v = lags.clone();
    for span in [3usize, 6, 12, 24, 48] {
        let s = &lags[..span.min(lags.len())];
        if s.is_empty() {
            continue;
        }
        let mean = s.iter().sum::<f32>() / s.len() as f32;
        v.push(mean);
        if span >= 6 {
            let var = s.iter().map(|d| (d - mean) * (d - mean)).sum::<f32>() / s.len() as f32;
            v.push(var.sqrt());
        }
    }
    if let Some(s) = seasonal_deltas(w, cfg, k) {
        v.extend(s);
    }
    let first_other = if cfg.season > 0 { 2 } else { 1 };
    v.extend_from_slice(&x[(t_n - 1) * f_n + first_other..t_n * f_n]);
    v.push(last);
    v
}

/// One node: a split (`feature`, go left when the value ≤ `threshold`) or a leaf (`value`).
/// Stored as a 5-element array `[feature, threshold, left, right, value]` (a model holds tens of
/// thousands of nodes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "NodeRepr", into = "NodeRepr")]
pub struct Node {
    /// Feature index, or `u32::MAX` for a leaf.
    pub feature: u32,
    /// Split threshold.
    pub threshold: f32,
    /// Left and right children.
    pub children: [u32; 2],
    /// The leaf's value.
    pub value: f32,
}

type NodeRepr = (u32, f32, u32, u32, f32);

impl From<NodeRepr> for Node {
    fn from((feature, threshold, l, r, value): NodeRepr) -> Self {
        Self {
            feature,
            threshold,
            children: [l, r],
            value,
        }
    }
}

impl From<Node> for NodeRepr {
    fn from(n: Node) -> Self {
        (
            n.feature,
            n.threshold,
            n.children[0],
            n.children[1],
            n.value,
        )
    }
}

fn eval_tree(nodes: &[Node], x: &[f32]) -> f32 {
    let mut i = 0usize;
    loop {
        let n = &nodes[i];
        if n.feature == u32::MAX {
            return n.value;
        }
        // A feature the window lacks (a damaged artifact) reads as NaN and goes left.
        let v = x.get(n.feature as usize).copied().unwrap_or(f32::NAN);
        let go = usize::from(v > n.threshold);
        i = n.children[go] as usize;
    }
}

/// The fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gbm {
    /// Starting value per horizon (the training labels' median).
    pub init: Vec<f32>,
    /// Shrinkage (already applied to the leaf values).
    pub learning_rate: f32,
    /// Trees per horizon.
    pub trees: Vec<Vec<Vec<Node>>>,
}

/// Features binned by training quantiles, row-major.
struct Binned {
    n: usize,
    f: usize,
    bins: Vec<u8>,
    /// Upper edge of each bin but the last, per feature.
    edges: Vec<Vec<f32>>,
}

impl Binned {
    fn new(feats: &[Vec<f32>]) -> Self {
        let (n, f) = (feats.len(), feats[0].len());
        let mut edges = Vec::with_capacity(f);
        for j in 0..f {
            let mut col: Vec<f32> = feats.iter().map(|r| r[j]).collect();
            col.sort_by(f32::total_cmp);
            let mut e: Vec<f32> = (1..BINS).map(|b| col[(b * (n - 1)) / BINS]).collect();
            e.dedup();
            // The top value would put everything left of the last edge: not a split.
            if e.last() == col.last() {
                e.pop();
            }
            edges.push(e);
        }
        let mut bins = vec![0u8; n * f];
        for (i, r) in feats.iter().enumerate() {
            for j in 0..f {
                bins[i * f + j] = edges[j].partition_point(|e| *e < r[j]) as u8;
            }
        }
        Self { n, f, bins, edges }
    }
}

struct Leaf {
    node: usize,
    rows: Vec<u32>,
    /// Best split: gain, feature, bin.
    split: Option<(f64, usize, usize)>,
}

fn best_split(d: &Binned, rows: &[u32], g: &[f32]) -> Option<(f64, usize, usize)> {
    if rows.len() < 2 * MIN_LEAF {
        return None;
    }
    let mut hist = vec![(0.0f64, 0u32); d.f * BINS];
    for &i in rows {
        let i = i as usize;
        let gi = f64::from(g[i]);
        for (j, b) in d.bins[i * d.f..(i + 1) * d.f].iter().enumerate() {
            let h = &mut hist[j * BINS + *b as usize];
            h.0 += gi;
            h.1 += 1;
        }
    }
    let (gt, nt) = hist[..BINS]
        .iter()
        .fold((0.0, 0u32), |a, h| (a.0 + h.0, a.1 + h.1));
    let base = gt * gt / f64::from(nt);
    let mut best: Option<(f64, usize, usize)> = None;
    for j in 0..d.f {
        let (mut gl, mut nl) = (0.0f64, 0u32);
        for b in 0..d.edges[j].len() {
            let h = hist[j * BINS + b];
            gl += h.0;
            nl += h.1;
            let nr = nt - nl;
            if (nl as usize) < MIN_LEAF {
                continue;
            }
            if (nr as usize) < MIN_LEAF {
                break;
            }
            let gr = gt - gl;
            let gain = gl * gl / f64::from(nl) + gr * gr / f64::from(nr) - base;
            if gain > 1e-12 && best.is_none_or(|(bg, _, _)| gain > bg) {
                best = Some((gain, j, b));
            }
        }
    }
    best
}

fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    *m
}

/// One tree on the sign of the residuals `r`, best-first to [`MAX_LEAVES`]; leaves take the
/// median residual of their rows.
fn grow(d: &Binned, r: &[f32]) -> Vec<Node> {
    let g: Vec<f32> = r.iter().map(|v| v.signum()).collect();
    let leaf = |value| Node {
        feature: u32::MAX,
        threshold: 0.0,
        children: [0, 0],
        value,
    };
    let mut nodes = vec![leaf(0.0)];
    let rows: Vec<u32> = (0..d.n as u32).collect();
    let split = best_split(d, &rows, &g);
    let mut leaves = vec![Leaf {
        node: 0,
        rows,
        split,
    }];
    while leaves.len() < MAX_LEAVES {
        let Some((k, _)) = leaves
            .iter()
            .enumerate()
            .filter_map(|(k, l)| l.split.map(|s| (k, s.0)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
        else {
            break;
        };
        let l = leaves.swap_remove(k);
        let Some((_, j, b)) = l.split else { break };
        let (left, right): (Vec<u32>, Vec<u32>) = l
            .rows
            .iter()
            .partition(|&&i| (d.bins[i as usize * d.f + j] as usize) <= b);
        let (li, ri) = (nodes.len(), nodes.len() + 1);
        nodes.push(leaf(0.0));
        nodes.push(leaf(0.0));
        nodes[l.node] = Node {
            feature: j as u32,
            threshold: d.edges[j][b],
            children: [li as u32, ri as u32],
            value: 0.0,
        };
        for (node, rows) in [(li, left), (ri, right)] {
            let split = best_split(d, &rows, &g);
            leaves.push(Leaf { node, rows, split });
        }
    }
    for l in leaves {
        let mut v: Vec<f32> = l.rows.iter().map(|&i| r[i as usize]).collect();
        nodes[l.node].value = median(&mut v);
    }
    nodes
}

impl Gbm {
    /// Fits one tree ensemble per horizon on `train`, keeping the tree count that scores best on
    /// `val` (mean absolute error). Horizons train in parallel; the result does not depend on the
    /// thread count.
    pub fn fit(train: &Windows, val: &Windows, cfg: &DataConfig) -> Result<Self, PredictError> {
        if train.len() < 2 * MIN_LEAF || val.is_empty() {
            return Err(PredictError::Data(format!(
                "too few windows for the boosted model (training {}, validation {})",
                train.len(),
                val.len()
            )));
        }
        let tf: Vec<Vec<f32>> = (0..train.len()).map(|k| features(train, cfg, k)).collect();
        let vf: Vec<Vec<f32>> = (0..val.len()).map(|k| features(val, cfg, k)).collect();
        let d = Binned::new(&tf);
        let h_n = train.horizon;
        let fitted: Vec<(f32, Vec<Vec<Node>>)> = (0..h_n)
            .into_par_iter()
            .map(|h| {
                let y: Vec<f32> = (0..train.len()).map(|k| train.y[k * h_n + h]).collect();
                let yv: Vec<f32> = (0..val.len()).map(|k| val.y[k * h_n + h]).collect();
                let init = median(&mut y.clone());
                let mut pred = vec![init; y.len()];
                let mut pv = vec![init; yv.len()];
                let mae = |p: &[f32]| {
                    p.iter()
                        .zip(&yv)
                        .map(|(a, b)| f64::from((a - b).abs()))
                        .sum::<f64>()
                };
                let (mut best, mut best_n) = (mae(&pv), 0usize);
                let mut trees = Vec::new();
                while trees.len() < MAX_ROUNDS && trees.len() < best_n + PATIENCE {
                    let r: Vec<f32> = y.iter().zip(&pred).map(|(a, b)| a - b).collect();
                    let mut t = grow(&d, &r);
                    t.iter_mut().for_each(|n| n.value *= LEARNING_RATE);
                    for (p, row) in pred.iter_mut().zip(&tf) {
                        *p += eval_tree(&t, row);
                    }
                    for (p, row) in pv.iter_mut().zip(&vf) {
                        *p += eval_tree(&t, row);
                    }
                    trees.push(t);
                    let e = mae(&pv);
                    if e < best {
                        (best, best_n) = (e, trees.len());
                    }
                }
                trees.truncate(best_n);
                (init, trees)
            })
            .collect();
        Ok(Self {
            init: fitted.iter().map(|f| f.0).collect(),
            learning_rate: LEARNING_RATE,
            trees: fitted.into_iter().map(|f| f.1).collect(),
        })
    }

    /// Predicted changes (scaled) of window `k`.
    pub fn predict(&self, w: &Windows, cfg: &DataConfig, k: usize) -> Vec<f32> {
        let x = features(w, cfg, k);
        self.init
            .iter()
            .zip(&self.trees)
            .map(|(i, trees)| i + trees.iter().map(|t| eval_tree(t, &x)).sum::<f32>())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_finds_a_threshold_and_leaves_take_the_median() {
        // 400 rows, 3 features; the residual steps at feature 1 = 0.3 (an interaction no linear
        // model has), feature 0 and 2 are noise.
        let feats: Vec<Vec<f32>> = (0..400)
            .map(|i| {
                let u = |m: usize| ((i * m + 17) % 400) as f32 / 400.0;
                vec![u(7), u(13), u(29)]
            })
            .collect();
        let r: Vec<f32> = feats
            .iter()
            .enumerate()
            .map(|(i, f)| if f[1] > 0.3 { 2.0 } else { -1.0 } + (i % 3) as f32 * 0.01)
            .collect();
        let d = Binned::new(&feats);
        let t = grow(&d, &r);
        assert_eq!(t[0].feature, 1, "{:?}", t[0]);
        assert!((t[0].threshold - 0.3).abs() < 0.02, "{}", t[0].threshold);
        // Right but for the rows in the bin that straddles the step (1/64 of them).
        let wrong = feats
            .iter()
            .zip(&r)
            .filter(|(f, want)| (eval_tree(&t, f) - *want).abs() > 0.02)
            .count();
        assert!(wrong <= 400 / BINS + 1, "{wrong} rows off");
        // Every leaf holds at least MIN_LEAF rows, so the split stops there.
        assert!(t.len() < 2 * MAX_LEAVES);
    }

    #[test]
    fn median_of_odd_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut []), 0.0);
    }
}
