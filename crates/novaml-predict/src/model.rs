//! The network: stacked (optionally bidirectional) LSTM layers, an optional attention head and a
//! dense layer with one output per (horizon, quantile).
//!
//! Why our own LSTM rather than burn: on this 2-core machine burn 0.22's fastest CPU backend
//! (`flex`) takes ~103 ms per batch for a 2 × 64 LSTM at sequence 60, batch 64
//! (shared/DEPENDENCIES.md), several times what a Keras 3 / JAX LSTM of the same shape takes
//! (bench/predict_vs_keras.sh measures that peer), and the target is twice as fast as
//! Keras. An LSTM step is two GEMMs and elementwise gates, so we do exactly that: all input
//! projections of a layer in one GEMM, one small GEMM per time step for the recurrence, explicit
//! backpropagation through time with the weight gradients again as one GEMM per layer, and the
//! batch split across cores. GEMMs go through `ndarray` (matrixmultiply, runtime AVX/FMA
//! dispatch; faer 0.24 was tried and was ~7 % slower on these shapes here); the per-step gate
//! arithmetic runs in [`crate::kernels`], compiled for AVX2 and AVX-512 and chosen at run time.
//! Tests check every gradient against finite differences.
//!
//! Layouts: sequences are time-major, `[T][B][features]`, row-major `f32`. All parameters live in
//! one flat vector, so the optimiser, clipping and checkpoints treat them as one.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::PredictError;
use crate::kernels;

/// The shape of the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Features per time step.
    pub inputs: usize,
    /// Hidden size of each LSTM layer, bottom first.
    pub layers: Vec<usize>,
    /// Every layer runs in both directions (outputs concatenated).
    pub bidirectional: bool,
    /// A dot-product attention over the top layer's outputs; its context is concatenated with the
    /// final state before the dense head.
    pub attention: bool,
    /// Dropout on each layer's output during training, in `[0, 1)`.
    pub dropout: f32,
    /// Outputs (horizons × quantiles).
    pub outputs: usize,
    /// The last `skip` input rows also go straight to the dense head (a linear autoregressive
    /// path beside the LSTM, as in LSTNet), so the network is never worse than a linear model on
    /// recent values; 0 = off.
    #[serde(default)]
    pub skip: usize,
}

impl NetConfig {
    /// Checks the shape.
    pub fn check(&self) -> Result<(), PredictError> {
        if self.inputs == 0 {
            return Err(PredictError::config("inputs", "need at least one feature"));
        }
        if self.layers.is_empty() || self.layers.contains(&0) {
            return Err(PredictError::config(
                "layers",
                "give at least one layer, each with hidden size ≥ 1",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(PredictError::config(
                "dropout",
                format!("{} is outside [0, 1)", self.dropout),
            ));
        }
        if self.outputs == 0 {
            return Err(PredictError::config("outputs", "need at least one output"));
        }
        Ok(())
    }

    /// Number of parameters a network of this shape has.
    pub fn param_count(&self) -> usize {
        Layout::new(self).total
    }

    fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// Width of the top layer's output.
    fn top_width(&self) -> usize {
        self.layers.last().copied().unwrap_or(0) * self.directions()
    }

    /// Width of the recurrent part of the head's input.
    fn rnn_width(&self) -> usize {
        self.top_width() * if self.attention { 2 } else { 1 }
    }

    /// Width of the vector the dense head reads.
    fn head_width(&self) -> usize {
        self.rnn_width() + self.skip * self.inputs
    }
}

/// Offsets of one direction's weights in the flat parameter vector.
#[derive(Debug, Clone, Copy)]
struct Dir {
    input: usize,
    hidden: usize,
    /// `input × 4·hidden`, gate order i, f, g, o.
    wx: usize,
    /// `hidden × 4·hidden`.
    wh: usize,
    /// `4·hidden`.
    b: usize,
}

#[derive(Debug, Clone)]
struct Layout {
    layers: Vec<Vec<Dir>>,
    query: usize,
    head_w: usize,
    head_b: usize,
    total: usize,
}

impl Layout {
    fn new(c: &NetConfig) -> Self {
        let mut at = 0;
        let mut take = |n: usize| {
            let o = at;
            at += n;
            o
        };
        let mut layers = Vec::new();
        let mut input = c.inputs;
        for &h in &c.layers {
            let dirs = (0..c.directions())
                .map(|_| Dir {
                    input,
                    hidden: h,
                    wx: take(input * 4 * h),
                    wh: take(h * 4 * h),
                    b: take(4 * h),
                })
                .collect();
            layers.push(dirs);
            input = h * c.directions();
        }
        let query = take(if c.attention { c.top_width() } else { 0 });
        let head_w = take(c.head_width() * c.outputs);
        let head_b = take(c.outputs);
        Self {
            layers,
            query,
            head_w,
            head_b,
            total: at,
        }
    }
}

/// The network's weights and shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// The shape.
    pub config: NetConfig,
    /// All parameters, flat (see the module docs).
    pub params: Vec<f32>,
}

/// `c = a · b + beta · c` on row-major slices, with optional transposes of `a` and `b`.
/// `a` is `m × k` after its transpose, `b` is `k × n`, `c` is `m × n`.
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
) {
    if m == 1 && !ta && !tb {
        // One row (serving one series): a plain loop beats packing `b` for the GEMM kernel.
        let c = &mut c[..n];
        if beta == 0.0 {
            c.iter_mut().for_each(|v| *v = 0.0);
        } else if beta != 1.0 {
            c.iter_mut().for_each(|v| *v *= beta);
        }
        for (kk, av) in a[..k].iter().enumerate() {
            for (cv, bv) in c.iter_mut().zip(&b[kk * n..(kk + 1) * n]) {
                *cv += av * bv;
            }
        }
        return;
    }
    let (a_rows, a_cols) = if ta { (k, m) } else { (m, k) };
    let (b_rows, b_cols) = if tb { (n, k) } else { (k, n) };
    // The shapes come from the layout, so a mismatch is a bug here, not bad input.
    let av = ArrayView2::from_shape((a_rows, a_cols), &a[..a_rows * a_cols]).expect("gemm a");
    let bv = ArrayView2::from_shape((b_rows, b_cols), &b[..b_rows * b_cols]).expect("gemm b");
    let mut cv = ArrayViewMut2::from_shape((m, n), &mut c[..m * n]).expect("gemm c");
    let av = if ta { av.reversed_axes() } else { av };
    let bv = if tb { bv.reversed_axes() } else { bv };
    general_mat_mul(1.0, &av, &bv, beta, &mut cv);
}

/// What one direction of one layer keeps from the forward pass.
#[derive(Debug, Default, Clone)]
struct DirCache {
    /// Activated gates `[T][B][4H]`.
    gates: Vec<f32>,
    /// Cell states `[T][B][H]`.
    c: Vec<f32>,
    /// `tanh` of the cell states `[T][B][H]`.
    tc: Vec<f32>,
    /// Hidden states `[T][B][H]`.
    h: Vec<f32>,
}

/// What the forward pass keeps for the backward pass.
#[derive(Debug, Default, Clone)]
pub struct Cache {
    steps: usize,
    batch: usize,
    /// Input of each layer `[T][B][in]`; `inputs[l+1]` is layer `l`'s output after dropout.
    inputs: Vec<Vec<f32>>,
    dirs: Vec<Vec<DirCache>>,
    /// Dropout masks of each layer's output (empty when off).
    masks: Vec<Vec<f32>>,
    /// Attention weights `[T][B]`.
    alpha: Vec<f32>,
    /// The head's input `[B][head_width]`.
    feat: Vec<f32>,
    /// The outputs `[B][outputs]`.
    pub out: Vec<f32>,
}

impl Network {
    /// A freshly initialised network (seeded): LSTM weights uniform in ±1/√H, forget-gate bias 1,
    /// the head zero.
    pub fn new(config: NetConfig, seed: u64) -> Result<Self, PredictError> {
        config.check()?;
        let layout = Layout::new(&config);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = vec![0.0f32; layout.total];
        for dirs in &layout.layers {
            for d in dirs {
                let r = 1.0 / (d.hidden as f32).sqrt();
                for p in &mut params[d.wx..d.b] {
                    *p = rng.random_range(-r..r);
                }
                for p in &mut params[d.b + d.hidden..d.b + 2 * d.hidden] {
                    *p = 1.0;
                }
            }
        }
        let w = config.top_width();
        for p in &mut params[layout.query..layout.query + if config.attention { w } else { 0 }] {
            *p = rng.random_range(-0.1..0.1);
        }
        // The head starts at zero: the first prediction is the base forecast (no change, or the
        // residual model's base), and training moves away from it only as far as it helps.
        Ok(Self { config, params })
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the network has no parameters (never, for a checked config).
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Checks that the parameter vector fits the shape (after loading).
    pub fn check(&self) -> Result<(), PredictError> {
        self.config.check()?;
        let want = Layout::new(&self.config).total;
        if self.params.len() != want {
            return Err(PredictError::Data(format!(
                "the weights hold {} values but this shape needs {want}",
                self.params.len()
            )));
        }
        if self.params.iter().any(|p| !p.is_finite()) {
            return Err(PredictError::Data("the weights contain NaN or ∞".into()));
        }
        Ok(())
    }

    /// Runs the network on `x` (`[T][B][inputs]`) and returns the cache, whose `out` holds
    /// `[B][outputs]`. With `dropout_seed` the training-time dropout is applied.
    pub fn forward(
        &self,
        x: &[f32],
        steps: usize,
        batch: usize,
        dropout_seed: Option<u64>,
    ) -> Cache {
        let c = &self.config;
        let layout = Layout::new(c);
        let p = &self.params;
        let (t_n, b_n) = (steps, batch);
        let mut cache = Cache {
            steps,
            batch,
            inputs: vec![x[..t_n * b_n * c.inputs].to_vec()],
            ..Cache::default()
        };
        let mut rng = dropout_seed.map(ChaCha8Rng::seed_from_u64);
        for (l, dirs) in layout.layers.iter().enumerate() {
            let h_n = dirs[0].hidden;
            let width = h_n * dirs.len();
            let mut dcs = Vec::with_capacity(dirs.len());
            for (k, d) in dirs.iter().enumerate() {
                dcs.push(dir_forward(p, d, &cache.inputs[l], t_n, b_n, k == 1));
            }
            // Concatenate the directions: [T][B][H | H].
            let mut out = if dcs.len() == 1 {
                dcs[0].h.clone()
            } else {
                let mut out = vec![0.0f32; t_n * b_n * width];
                for (k, dc) in dcs.iter().enumerate() {
                    for (row, src) in dc.h.chunks_exact(h_n).enumerate() {
                        out[row * width + k * h_n..row * width + (k + 1) * h_n]
                            .copy_from_slice(src);
                    }
                }
                out
            };
            let mut mask = Vec::new();
            if let Some(rng) = rng.as_mut().filter(|_| c.dropout > 0.0) {
                let keep = 1.0 / (1.0 - c.dropout);
                mask = (0..out.len())
                    .map(|_| {
                        if rng.random::<f32>() < c.dropout {
                            0.0
                        } else {
                            keep
                        }
                    })
                    .collect();
                for (o, m) in out.iter_mut().zip(&mask) {
                    *o *= m;
                }
            }
            cache.masks.push(mask);
            cache.dirs.push(dcs);
            cache.inputs.push(out);
        }
        // The final state of each direction: forward at t = T−1, backward at t = 0.
        let top = &cache.inputs[layout.layers.len()];
        let w = c.top_width();
        let hw = c.head_width();
        let h_top = c.layers.last().copied().unwrap_or(0);
        let mut feat = vec![0.0f32; b_n * hw];
        for b in 0..b_n {
            for k in 0..c.directions() {
                let t = if k == 0 { t_n - 1 } else { 0 };
                let src = &top[(t * b_n + b) * w + k * h_top..(t * b_n + b) * w + (k + 1) * h_top];
                feat[b * hw + k * h_top..b * hw + (k + 1) * h_top].copy_from_slice(src);
            }
        }
        // The linear path: the last `skip` input rows, oldest first (missing rows stay 0).
        let rw = c.rnn_width();
        for s in 0..c.skip.min(t_n) {
            let t = t_n - c.skip.min(t_n) + s;
            for b in 0..b_n {
                let src = &x[(t * b_n + b) * c.inputs..(t * b_n + b + 1) * c.inputs];
                let at = b * hw + rw + s * c.inputs;
                feat[at..at + c.inputs].copy_from_slice(src);
            }
        }
        if c.attention {
            let q = &p[layout.query..layout.query + w];
            let scale = 1.0 / (w as f32).sqrt();
            let mut alpha = vec![0.0f32; t_n * b_n];
            for b in 0..b_n {
                let mut mx = f32::NEG_INFINITY;
                for t in 0..t_n {
                    let o = &top[(t * b_n + b) * w..(t * b_n + b + 1) * w];
                    let e = o.iter().zip(q).map(|(a, b)| a * b).sum::<f32>() * scale;
                    alpha[t * b_n + b] = e;
                    mx = mx.max(e);
                }
                let mut z = 0.0;
                for t in 0..t_n {
                    let a = (alpha[t * b_n + b] - mx).exp();
                    alpha[t * b_n + b] = a;
                    z += a;
                }
                let ctx = &mut feat[b * hw + w..b * hw + 2 * w];
                for t in 0..t_n {
                    let a = alpha[t * b_n + b] / z;
                    alpha[t * b_n + b] = a;
                    let o = &top[(t * b_n + b) * w..(t * b_n + b + 1) * w];
                    for (cx, ov) in ctx.iter_mut().zip(o) {
                        *cx += a * ov;
                    }
                }
            }
            cache.alpha = alpha;
        }
        let mut out = vec![0.0f32; b_n * c.outputs];
        for row in out.chunks_exact_mut(c.outputs) {
            row.copy_from_slice(&p[layout.head_b..layout.head_b + c.outputs]);
        }
        gemm(
            b_n,
            hw,
            c.outputs,
            &feat,
            false,
            &p[layout.head_w..layout.head_b],
            false,
            1.0,
            &mut out,
        );
        cache.feat = feat;
        cache.out = out;
        cache
    }

    /// Backpropagates `d_out` (`[B][outputs]`, the loss gradient w.r.t. the outputs) through the
    /// pass that made `cache`, adding the parameter gradients to `grad`.
    pub fn backward(&self, cache: &Cache, d_out: &[f32], grad: &mut [f32]) {
        let c = &self.config;
        let layout = Layout::new(c);
        let p = &self.params;
        let (t_n, b_n) = (cache.steps, cache.batch);
        let w = c.top_width();
        let hw = c.head_width();
        // Head.
        gemm(
            hw,
            b_n,
            c.outputs,
            &cache.feat,
            true,
            d_out,
            false,
            1.0,
            &mut grad[layout.head_w..layout.head_b],
        );
        for row in d_out.chunks_exact(c.outputs) {
            for (g, d) in grad[layout.head_b..layout.head_b + c.outputs]
                .iter_mut()
                .zip(row)
            {
                *g += d;
            }
        }
        let mut d_feat = vec![0.0f32; b_n * hw];
        gemm(
            b_n,
            c.outputs,
            hw,
            d_out,
            false,
            &p[layout.head_w..layout.head_b],
            true,
            0.0,
            &mut d_feat,
        );
        // Into the top layer's (post-dropout) outputs.
        let top = &cache.inputs[layout.layers.len()];
        let mut d_top = vec![0.0f32; t_n * b_n * w];
        let h_top = c.layers.last().copied().unwrap_or(0);
        for b in 0..b_n {
            for k in 0..c.directions() {
                let t = if k == 0 { t_n - 1 } else { 0 };
                let dst = (t * b_n + b) * w + k * h_top;
                for j in 0..h_top {
                    d_top[dst + j] += d_feat[b * hw + k * h_top + j];
                }
            }
        }
        if c.attention {
            let q = &p[layout.query..layout.query + w];
            let scale = 1.0 / (w as f32).sqrt();
            let mut dq = vec![0.0f32; w];
            let mut da = vec![0.0f32; t_n];
            for b in 0..b_n {
                let dctx = &d_feat[b * hw + w..b * hw + 2 * w];
                let mut s = 0.0;
                for (t, dat) in da.iter_mut().enumerate() {
                    let o = &top[(t * b_n + b) * w..(t * b_n + b + 1) * w];
                    *dat = o.iter().zip(dctx).map(|(a, b)| a * b).sum::<f32>();
                    s += cache.alpha[t * b_n + b] * *dat;
                }
                for (t, dat) in da.iter().enumerate() {
                    let a = cache.alpha[t * b_n + b];
                    let de = a * (dat - s) * scale;
                    let o = &top[(t * b_n + b) * w..(t * b_n + b + 1) * w];
                    let dt = &mut d_top[(t * b_n + b) * w..(t * b_n + b + 1) * w];
                    for j in 0..w {
                        dt[j] += a * dctx[j] + de * q[j];
                        dq[j] += de * o[j];
                    }
                }
            }
            for (g, d) in grad[layout.query..layout.query + w].iter_mut().zip(&dq) {
                *g += d;
            }
        }
        // Down through the layers.
        let mut d_out_layer = d_top;
        for (l, dirs) in layout.layers.iter().enumerate().rev() {
            if !cache.masks[l].is_empty() {
                for (d, m) in d_out_layer.iter_mut().zip(&cache.masks[l]) {
                    *d *= m;
                }
            }
            let h_n = dirs[0].hidden;
            let width = h_n * dirs.len();
            let input = &cache.inputs[l];
            let mut d_in = vec![0.0f32; t_n * b_n * dirs[0].input];
            for (k, d) in dirs.iter().enumerate() {
                // One direction's share of the output gradient (all of it when unidirectional).
                let dh = if dirs.len() == 1 {
                    std::borrow::Cow::Borrowed(&d_out_layer[..])
                } else {
                    let mut dh = vec![0.0f32; t_n * b_n * h_n];
                    for (row, dst) in dh.chunks_exact_mut(h_n).enumerate() {
                        dst.copy_from_slice(
                            &d_out_layer[row * width + k * h_n..row * width + (k + 1) * h_n],
                        );
                    }
                    std::borrow::Cow::Owned(dh)
                };
                dir_backward(
                    p,
                    grad,
                    d,
                    input,
                    t_n,
                    b_n,
                    k == 1,
                    &cache.dirs[l][k],
                    &dh,
                    (l > 0).then_some(&mut d_in),
                );
            }
            d_out_layer = d_in;
        }
    }
}

fn dir_forward(p: &[f32], d: &Dir, u: &[f32], t_n: usize, b_n: usize, reverse: bool) -> DirCache {
    let h_n = d.hidden;
    let g_n = 4 * h_n;
    // Start from the bias (no separate zeroing pass).
    let mut gates = p[d.b..d.b + g_n].repeat(t_n * b_n);
    gemm(
        t_n * b_n,
        d.input,
        g_n,
        u,
        false,
        &p[d.wx..d.wh],
        false,
        1.0,
        &mut gates,
    );
    let mut cs = vec![0.0f32; t_n * b_n * h_n];
    let mut hs = vec![0.0f32; t_n * b_n * h_n];
    let mut tcs = vec![0.0f32; t_n * b_n * h_n];
    let mut h_prev = vec![0.0f32; b_n * h_n];
    let mut c_prev = vec![0.0f32; b_n * h_n];
    for step in 0..t_n {
        let t = if reverse { t_n - 1 - step } else { step };
        let g = &mut gates[t * b_n * g_n..(t + 1) * b_n * g_n];
        if step > 0 {
            gemm(b_n, h_n, g_n, &h_prev, false, &p[d.wh..d.b], false, 1.0, g);
        }
        let c_t = &mut cs[t * b_n * h_n..(t + 1) * b_n * h_n];
        let h_t = &mut hs[t * b_n * h_n..(t + 1) * b_n * h_n];
        let tc_t = &mut tcs[t * b_n * h_n..(t + 1) * b_n * h_n];
        kernels::cell_forward(g, &c_prev, c_t, tc_t, h_t, h_n);
        h_prev.copy_from_slice(h_t);
        c_prev.copy_from_slice(c_t);
    }
    DirCache {
        gates,
        c: cs,
        tc: tcs,
        h: hs,
    }
}

#[allow(clippy::too_many_arguments)]
fn dir_backward(
    p: &[f32],
    grad: &mut [f32],
    d: &Dir,
    u: &[f32],
    t_n: usize,
    b_n: usize,
    reverse: bool,
    cache: &DirCache,
    dh_out: &[f32],
    d_in: Option<&mut Vec<f32>>,
) {
    let h_n = d.hidden;
    let g_n = 4 * h_n;
    let bh = b_n * h_n;
    let mut dg = vec![0.0f32; t_n * b_n * g_n];
    let mut dh_next = vec![0.0f32; bh];
    let mut dc_next = vec![0.0f32; bh];
    let zeros = vec![0.0f32; bh];
    // `Whᵀ` once, contiguous: the per-step `dg · Whᵀ` then packs its right operand from rows
    // instead of gathering a strided transpose at every step.
    let wht = transpose(&p[d.wh..d.b], h_n, g_n);
    for step in (0..t_n).rev() {
        let t = if reverse { t_n - 1 - step } else { step };
        let t_prev = if reverse { t + 1 } else { t.wrapping_sub(1) };
        let gates = &cache.gates[t * b_n * g_n..(t + 1) * b_n * g_n];
        let tc_t = &cache.tc[t * bh..(t + 1) * bh];
        let dg_t = &mut dg[t * b_n * g_n..(t + 1) * b_n * g_n];
        let c_prev_t = if step > 0 {
            &cache.c[t_prev * bh..(t_prev + 1) * bh]
        } else {
            &zeros[..]
        };
        let dh_out_t = &dh_out[t * bh..(t + 1) * bh];
        kernels::cell_backward(
            gates,
            tc_t,
            c_prev_t,
            dh_out_t,
            &dh_next,
            &mut dc_next,
            dg_t,
            h_n,
        );
        if step > 0 {
            gemm(b_n, g_n, h_n, dg_t, false, &wht, false, 0.0, &mut dh_next);
        }
    }
    // dWh = Σ_t h_prev(t)ᵀ · dg(t): the previous states are one contiguous block shifted by one
    // step against the gate gradients.
    if t_n > 1 {
        let rows = (t_n - 1) * b_n;
        let (h_prev, dg_rows) = if reverse {
            (&cache.h[bh..], &dg[..rows * g_n])
        } else {
            (&cache.h[..rows * h_n], &dg[b_n * g_n..])
        };
        gemm(
            h_n,
            rows,
            g_n,
            h_prev,
            true,
            dg_rows,
            false,
            1.0,
            &mut grad[d.wh..d.b],
        );
    }
    for row in dg.chunks_exact(g_n) {
        for (gb, v) in grad[d.b..d.b + g_n].iter_mut().zip(row) {
            *gb += v;
        }
    }
    gemm(
        d.input,
        t_n * b_n,
        g_n,
        u,
        true,
        &dg,
        false,
        1.0,
        &mut grad[d.wx..d.wh],
    );
    if let Some(d_in) = d_in {
        let wxt = transpose(&p[d.wx..d.wh], d.input, g_n);
        gemm(t_n * b_n, g_n, d.input, &dg, false, &wxt, false, 1.0, d_in);
    }
}

/// The transpose of a row-major `rows × cols` matrix.
fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; rows * cols];
    for (r, row) in a[..rows * cols].chunks_exact(cols).enumerate() {
        for (c, v) in row.iter().enumerate() {
            t[c * rows + r] = *v;
        }
    }
    t
}

/// Pinball (quantile) loss of `out` (`[B][H·Q]`, horizon-major) against `y` (`[B][H]`), averaged
/// over all outputs, and its gradient w.r.t. `out`, scaled by `1 / norm` (the full batch's
/// output count when a batch is split across threads).
pub fn pinball(out: &[f32], y: &[f32], quantiles: &[f32], norm: f32, d_out: &mut [f32]) -> f64 {
    let q_n = quantiles.len();
    let mut loss = 0.0f64;
    for (k, (o, d)) in out.iter().zip(d_out.iter_mut()).enumerate() {
        let q = quantiles[k % q_n];
        let r = y[k / q_n] - o;
        if r > 0.0 {
            loss += f64::from(q * r);
            *d = -q / norm;
        } else {
            loss += f64::from((q - 1.0) * r);
            *d = (1.0 - q) / norm;
        }
    }
    loss / f64::from(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth loss for the gradient check: ½Σ out², whose gradient is `out`.
    fn loss_of(net: &Network, x: &[f32], t: usize, b: usize) -> f64 {
        let c = net.forward(x, t, b, None);
        c.out
            .iter()
            .map(|v| 0.5 * f64::from(*v) * f64::from(*v))
            .sum()
    }

    fn check_gradients(config: NetConfig) {
        let (t, b) = (5, 3);
        let mut net = Network::new(config.clone(), 7).expect("net");
        // Larger random weights than the default make every gate matter.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for p in &mut net.params {
            *p = rng.random_range(-0.6..0.6);
        }
        let x: Vec<f32> = (0..t * b * config.inputs)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let cache = net.forward(&x, t, b, None);
        let mut grad = vec![0.0f32; net.len()];
        net.backward(&cache, &cache.out.clone(), &mut grad);
        let eps = 1e-2f32;
        let mut worst = 0.0f64;
        #[allow(clippy::needless_range_loop)]
        for i in 0..net.len() {
            let orig = net.params[i];
            net.params[i] = orig + eps;
            let up = loss_of(&net, &x, t, b);
            net.params[i] = orig - eps;
            let down = loss_of(&net, &x, t, b);
            net.params[i] = orig;
            let num = (up - down) / (2.0 * f64::from(eps));
            let err = (num - f64::from(grad[i])).abs() / (1e-2 + num.abs());
            worst = worst.max(err);
            assert!(
                err < 2e-2,
                "{config:?}: parameter {i}: analytic {} vs numeric {num}",
                grad[i]
            );
        }
        assert!(worst.is_finite());
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (layers, bidirectional, attention) in [
            (vec![4], false, false),
            (vec![4, 3], false, false),
            (vec![3, 4], true, false),
            (vec![4], false, true),
            (vec![3, 2], true, true),
        ] {
            check_gradients(NetConfig {
                inputs: 3,
                layers,
                bidirectional,
                attention,
                dropout: 0.0,
                outputs: 4,
                skip: if attention { 2 } else { 0 },
            });
        }
    }

    #[test]
    fn input_gradients_flow_to_the_first_step() {
        // A change in the oldest step must reach the output (the recurrence is wired).
        let net = Network::new(
            NetConfig {
                inputs: 2,
                layers: vec![8],
                bidirectional: false,
                attention: false,
                dropout: 0.0,
                outputs: 1,
                skip: 0,
            },
            1,
        )
        .expect("net");
        // The head starts at zero (constant output); give it weights.
        let mut net = net;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for p in &mut net.params {
            *p = rng.random_range(-0.5..0.5);
        }
        let mut x = vec![0.5f32; 10 * 2];
        let a = net.forward(&x, 10, 1, None).out[0];
        x[0] = -0.5;
        let b = net.forward(&x, 10, 1, None).out[0];
        assert!((a - b).abs() > 1e-6, "{a} vs {b}");
    }

    #[test]
    fn pinball_gradient_signs() {
        let mut d = vec![0.0; 2];
        let loss = pinball(&[0.0, 0.0], &[1.0], &[0.1, 0.9], 2.0, &mut d);
        assert!((loss - 0.5).abs() < 1e-6, "{loss}");
        assert!(d[0] < 0.0 && d[1] < 0.0);
        assert!((d[1] + 0.45).abs() < 1e-6);
    }

    #[test]
    fn bad_shapes_are_refused() {
        let mut c = NetConfig {
            inputs: 0,
            layers: vec![4],
            bidirectional: false,
            attention: false,
            dropout: 0.0,
            outputs: 1,
            skip: 0,
        };
        assert!(Network::new(c.clone(), 1).is_err());
        c.inputs = 2;
        c.dropout = 1.0;
        assert!(Network::new(c.clone(), 1).is_err());
        c.dropout = 0.1;
        let mut n = Network::new(c, 1).expect("ok");
        n.params.pop();
        assert!(n.check().is_err());
    }
}
