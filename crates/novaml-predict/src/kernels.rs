//! The LSTM's per-time-step gate arithmetic, compiled for the widest vector unit the CPU has.
//!
//! Why this module exists: a portable build targets SSE2 only, so the gates' exponentials and
//! products ran 4 lanes wide on machines with 8- or 16-lane units (matrixmultiply already picks
//! AVX2/FMA kernels at run time for the GEMMs). Here the same plain-Rust loops are compiled three
//! times (baseline, AVX2 + FMA, AVX-512) and one is chosen once at run time, so the binary still
//! runs on any x86-64 (and any other architecture). Measured on this 2-core machine (10
//! interleaved runs of 150 training steps of the benchmark shape, `examples/train_steps.rs`): a
//! median 14.7 ms per step against 16.8 ms before. A register-blocked GEMM for the per-step
//! recurrence was tried here too and lost to matrixmultiply inside training, so it is not kept.
//!
//! The only `unsafe` is the call into a `#[target_feature]` function, made after
//! `is_x86_feature_detected!` has confirmed those features on this CPU (the calls' safety
//! condition). The arithmetic is the same IEEE operations on every path (no FMA contraction), so
//! the result does not depend on the instruction set.

use std::sync::OnceLock;

/// `e^x` to ~2e-7 relative error, written so that loops over slices vectorise (libm's `expf` and
/// `tanhf` do not, and were 40 % of a training step): round `x·log2 e` to `k` with the 1.5·2²³
/// trick, a degree-6 Taylor polynomial on the remainder, and `2^k` through the exponent bits.
#[inline(always)]
fn exp_fast(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let k = (x * std::f32::consts::LOG2_E + SHIFT) - SHIFT;
    let r = x - k * 0.693_145_75 - k * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // `k` is also the integer in the low mantissa bits of `x·log2 e + SHIFT`; taking it from
    // there (instead of `k as i32`, a saturating conversion that compiles to scalar code) keeps
    // the loop in SIMD registers.
    let t = x * std::f32::consts::LOG2_E + SHIFT;
    let bits = t.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(127) << 23;
    p * f32::from_bits(bits)
}

#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

#[inline(always)]
pub(crate) fn tanh_fast(x: f32) -> f32 {
    1.0 - 2.0 / (exp_fast(2.0 * x) + 1.0)
}

/// The instruction sets the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// The build's baseline (SSE2 on x86-64).
    Generic,
    /// AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 (F, VL) with AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// The best instruction set this CPU supports; `NOVAML_ISA=generic|avx2` lowers it (to compare
/// or to rule the kernels out).
pub(crate) fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = std::env::var("NOVAML_ISA").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let avx512 =
                avx2 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl");
            match cap.as_str() {
                "generic" => Isa::Generic,
                "avx2" if avx2 => Isa::Avx2,
                _ if avx512 => Isa::Avx512,
                _ if avx2 => Isa::Avx2,
                _ => Isa::Generic,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = cap;
            Isa::Generic
        }
    })
}

/// Defines the portable function `$body` (inlined always, so each variant gets its own copy
/// compiled with its features) and `$name`, which runs it compiled for the best [`Isa`].
macro_rules! dispatch {
    (
        $(#[$doc:meta])*
        fn $name:ident / $body:ident ($($arg:ident : $ty:ty),* $(,)?) $code:block
    ) => {
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        fn $body($($arg: $ty),*) $code

        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                match isa() {
                    // SAFETY: `isa()` returned this variant only after `is_x86_feature_detected!`
                    // confirmed every feature the called function is compiled with.
                    #[allow(unsafe_code)]
                    Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above, for AVX2 and FMA.
                    #[allow(unsafe_code)]
                    Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    Isa::Generic => {}
                }
            }
            $body($($arg),*)
        }
    };
}

dispatch! {
    /// One forward time step's gates for every batch row: `g` (`[B][4H]`, gate pre-activations
    /// i, f, g, o) is activated in place, and the cell state `c`, `tanh(c)` and the output `h`
    /// (`[B][H]` each) are written from the previous cell state `c_prev`.
    fn cell_forward / cell_forward_body(
        g: &mut [f32],
        c_prev: &[f32],
        c: &mut [f32],
        tc: &mut [f32],
        h: &mut [f32],
        h_n: usize,
    ) {
        let g_n = 4 * h_n;
        for ((((gr, cp), cr), tr), hr) in g
            .chunks_exact_mut(g_n)
            .zip(c_prev.chunks_exact(h_n))
            .zip(c.chunks_exact_mut(h_n))
            .zip(tc.chunks_exact_mut(h_n))
            .zip(h.chunks_exact_mut(h_n))
        {
            let (ifg, o) = gr.split_at_mut(3 * h_n);
            let (if_, gg) = ifg.split_at_mut(2 * h_n);
            if_.iter_mut().for_each(|v| *v = sigmoid(*v));
            gg.iter_mut().for_each(|v| *v = tanh_fast(*v));
            o.iter_mut().for_each(|v| *v = sigmoid(*v));
            let (i, f) = if_.split_at(h_n);
            for j in 0..h_n {
                let cv = f[j] * cp[j] + i[j] * gg[j];
                cr[j] = cv;
                let t = tanh_fast(cv);
                tr[j] = t;
                hr[j] = o[j] * t;
            }
        }
    }
}

dispatch! {
    /// One backward time step's gate gradients for every batch row, from the activated `gates`
    /// (`[B][4H]`), `tanh(c)`, the previous cell state, the gradient reaching `h` from above
    /// (`dh_out`) and from the next step (`dh_next`); `dc` carries the cell-state gradient to the
    /// previous step and `dg` (`[B][4H]`) receives the pre-activation gradients.
    fn cell_backward / cell_backward_body(
        gates: &[f32],
        tc: &[f32],
        c_prev: &[f32],
        dh_out: &[f32],
        dh_next: &[f32],
        dc: &mut [f32],
        dg: &mut [f32],
        h_n: usize,
    ) {
        let g_n = 4 * h_n;
        let rows = gates
            .chunks_exact(g_n)
            .zip(dg.chunks_exact_mut(g_n))
            .zip(tc.chunks_exact(h_n))
            .zip(c_prev.chunks_exact(h_n))
            .zip(dh_out.chunks_exact(h_n))
            .zip(dh_next.chunks_exact(h_n))
            .zip(dc.chunks_exact_mut(h_n));
        for ((((((gr, dgr), tcs), cps), dho), dhn), dcn) in rows {
            // Per-gate slices, zipped, so the loop vectorises.
            let (gi, rest) = gr.split_at(h_n);
            let (gf, rest) = rest.split_at(h_n);
            let (gg, go) = rest.split_at(h_n);
            let (di, rest) = dgr.split_at_mut(h_n);
            let (df, rest) = rest.split_at_mut(h_n);
            let (dgg, dgo) = rest.split_at_mut(h_n);
            for j in 0..h_n {
                let (i, f, g, o) = (gi[j], gf[j], gg[j], go[j]);
                let dh = dho[j] + dhn[j];
                let t = tcs[j];
                let d = dcn[j] + dh * o * (1.0 - t * t);
                di[j] = d * g * i * (1.0 - i);
                df[j] = d * cps[j] * f * (1.0 - f);
                dgg[j] = d * i * (1.0 - g * g);
                dgo[j] = dh * t * o * (1.0 - o);
                dcn[j] = d * f;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_functions_are_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            let e = (f64::from(exp_fast(x)) - f64::from(x).exp()).abs() / f64::from(x).exp();
            assert!(e < 5e-7, "exp({x}): relative error {e}");
            assert!((tanh_fast(x) - x.tanh()).abs() < 2e-7, "tanh({x})");
            assert!(
                (sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 2e-7,
                "sigmoid({x})"
            );
        }
        assert!(sigmoid(-200.0) >= 0.0 && sigmoid(200.0) <= 1.0);
        assert_eq!(tanh_fast(100.0), 1.0);
        assert_eq!(tanh_fast(-100.0), -1.0);
    }

    #[test]
    fn the_dispatched_cells_match_the_portable_ones() {
        let (b_n, h_n) = (3, 20);
        let val = |i: usize, m: usize| ((i * m) % 41) as f32 / 10.0 - 2.0;
        let g0: Vec<f32> = (0..b_n * 4 * h_n).map(|i| val(i, 7)).collect();
        let cp: Vec<f32> = (0..b_n * h_n).map(|i| val(i, 11)).collect();
        let run = |fast: bool| {
            let (mut g, mut c, mut tc, mut h) = (
                g0.clone(),
                vec![0.0; b_n * h_n],
                vec![0.0; b_n * h_n],
                vec![0.0; b_n * h_n],
            );
            if fast {
                cell_forward(&mut g, &cp, &mut c, &mut tc, &mut h, h_n);
            } else {
                cell_forward_body(&mut g, &cp, &mut c, &mut tc, &mut h, h_n);
            }
            let dh: Vec<f32> = (0..b_n * h_n).map(|i| val(i, 13)).collect();
            let (mut dc, mut dg) = (vec![0.5; b_n * h_n], vec![0.0; b_n * 4 * h_n]);
            if fast {
                cell_backward(&g, &tc, &cp, &dh, &dh, &mut dc, &mut dg, h_n);
            } else {
                cell_backward_body(&g, &tc, &cp, &dh, &dh, &mut dc, &mut dg, h_n);
            }
            [g, c, tc, h, dc, dg].concat()
        };
        let (portable, dispatched) = (run(false), run(true));
        assert!(portable.iter().any(|v| v.abs() > 0.1));
        // The same IEEE operations on every path: bit for bit the same results.
        assert_eq!(portable, dispatched, "{:?}", isa());
    }
}
