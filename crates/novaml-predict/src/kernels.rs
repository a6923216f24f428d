//! The LSTM's per-time-step work, compiled for the widest vector unit the CPU has.
//!
//! Why this module exists: a training step spends most of its time in the recurrence, one small
//! GEMM (`[B × H] · [H × 4H]`, B = 32 rows per thread) and the gate arithmetic per time step.
//! A portable build targets SSE2 only, so that arithmetic ran 4 lanes wide on machines with
//! 8- or 16-lane units, and matrixmultiply re-packs the same weight matrix at every step. Here
//! the same plain-Rust loops are compiled three times (baseline, AVX2 + FMA, AVX-512) and one is
//! chosen once at run time, so the binary still runs on any x86-64 (and any other architecture).
//! The GEMM is register-blocked over the right operand's row-major layout, so it needs no
//! packing. It is used for the backward recurrence (`[B × 4H] · [4H × H]`), where it beats
//! matrixmultiply (criterion `lstm/recurrent_gemm_*`: ~30 % less time here with AVX-512); on the
//! forward recurrence (`[B × H] · [H × 4H]`) and on the large per-layer GEMMs it did not, so those
//! stay with matrixmultiply. Measured on this 2-core machine: a training step of the benchmark
//! shape took a median 17.9 ms against 19.8 ms before (12 interleaved runs of 150 steps each).
//!
//! The only `unsafe` is the call into a `#[target_feature]` function, made after
//! `is_x86_feature_detected!` has confirmed those features on this CPU (the calls' safety
//! condition). Results are deterministic per machine; with FMA the products round once instead
//! of twice, as they already did inside matrixmultiply's FMA kernels.

use std::sync::OnceLock;

use crate::model::{sigmoid, tanh_fast};

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

/// Defines `$name` dispatching to `$body` compiled for each [`Isa`]. `$body` must be
/// `#[inline(always)]` and generic over `const FMA: bool` (whether `mul_add` is one instruction).
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident => $body:ident ($($arg:ident : $ty:ty),* $(,)?)) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) {
                    $body::<true, 8>($($arg),*)
                }
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) {
                    $body::<true, 16>($($arg),*)
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
            $body::<false, 4>($($arg),*)
        }
    };
}

/// `c += a · b` (row-major `m × k`, `k × n`, `m × n`), for benchmarks.
#[doc(hidden)]
pub fn bench_gemm_acc(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm_acc(m, k, n, a, b, c);
}

#[inline(always)]
fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    // Without a hardware FMA, `mul_add` is a slow library call: multiply and add instead.
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

dispatch!(
    /// `c += a · b` for row-major `a` (`m × k`), `b` (`k × n`) and `c` (`m × n`).
    gemm_acc => gemm_acc_body(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32])
);

/// Columns per block: four vector registers' worth of lanes (`LANES` f32 per register).
#[inline(always)]
fn gemm_acc_body<const FMA: bool, const LANES: usize>(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    match LANES {
        16 => blocked::<FMA, 64, 4>(m, k, n, a, b, c),
        8 => blocked::<FMA, 32, 3>(m, k, n, a, b, c),
        _ => blocked::<FMA, 16, 3>(m, k, n, a, b, c),
    }
}

/// Register blocking: `R` rows × `NC` columns of `c` stay in registers while `k` runs, each step
/// loading one `NC`-wide row slice of `b` and broadcasting `R` values of `a`.
#[inline(always)]
fn blocked<const FMA: bool, const NC: usize, const R: usize>(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    let (a, b, c) = (&a[..m * k], &b[..k * n], &mut c[..m * n]);
    let mut j0 = 0;
    while j0 + NC <= n {
        let mut i0 = 0;
        while i0 + R <= m {
            tile::<FMA, NC, R>(i0, j0, k, n, a, b, c);
            i0 += R;
        }
        while i0 < m {
            tile::<FMA, NC, 1>(i0, j0, k, n, a, b, c);
            i0 += 1;
        }
        j0 += NC;
    }
    if j0 < n {
        // Leftover columns (n not a multiple of NC): plain loops.
        for i in 0..m {
            for kk in 0..k {
                let av = a[i * k + kk];
                let brow = &b[kk * n + j0..(kk + 1) * n];
                let crow = &mut c[i * n + j0..(i + 1) * n];
                for (cv, bv) in crow.iter_mut().zip(brow) {
                    *cv = fma::<FMA>(av, *bv, *cv);
                }
            }
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<const FMA: bool, const NC: usize, const R: usize>(
    i0: usize,
    j0: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    let mut acc = [[0.0f32; NC]; R];
    for (r, row) in acc.iter_mut().enumerate() {
        row.copy_from_slice(&c[(i0 + r) * n + j0..][..NC]);
    }
    for kk in 0..k {
        let brow = &b[kk * n + j0..][..NC];
        for (r, row) in acc.iter_mut().enumerate() {
            let av = a[(i0 + r) * k + kk];
            for (cv, bv) in row.iter_mut().zip(brow) {
                *cv = fma::<FMA>(av, *bv, *cv);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        c[(i0 + r) * n + j0..][..NC].copy_from_slice(row);
    }
}

dispatch!(
    /// One forward time step's gates for every batch row: `g` (`[B][4H]`, gate pre-activations
    /// i, f, g, o) is activated in place, and the cell state `c`, `tanh(c)` and the output `h`
    /// (`[B][H]` each) are written from the previous cell state `c_prev`.
    cell_forward => cell_forward_body(
        g: &mut [f32],
        c_prev: &[f32],
        c: &mut [f32],
        tc: &mut [f32],
        h: &mut [f32],
        h_n: usize,
    )
);

#[inline(always)]
fn cell_forward_body<const FMA: bool, const LANES: usize>(
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

dispatch!(
    /// One backward time step's gate gradients for every batch row, from the activated `gates`
    /// (`[B][4H]`), `tanh(c)`, the previous cell state, the gradient reaching `h` from above
    /// (`dh_out`) and from the next step (`dh_next`); `dc` carries the cell-state gradient to the
    /// previous step and `dg` (`[B][4H]`) receives the pre-activation gradients.
    cell_backward => cell_backward_body(
        gates: &[f32],
        tc: &[f32],
        c_prev: &[f32],
        dh_out: &[f32],
        dh_next: &[f32],
        dc: &mut [f32],
        dg: &mut [f32],
        h_n: usize,
    )
);

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_backward_body<const FMA: bool, const LANES: usize>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        for i in 0..m {
            for j in 0..n {
                let mut s = f64::from(c[i * n + j]);
                for kk in 0..k {
                    s += f64::from(a[i * k + kk]) * f64::from(b[kk * n + j]);
                }
                c[i * n + j] = s as f32;
            }
        }
    }

    #[test]
    fn gemm_matches_the_definition_on_every_isa_and_odd_shapes() {
        for &(m, k, n) in &[
            (32, 64, 256),
            (32, 256, 64),
            (7, 5, 70),
            (1, 3, 16),
            (5, 9, 3),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37) % 23) as f32 / 11.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53) % 29) as f32 / 13.0 - 1.0)
                .collect();
            let c0: Vec<f32> = (0..m * n).map(|i| (i % 7) as f32 * 0.25).collect();
            let mut want = c0.clone();
            naive(m, k, n, &a, &b, &mut want);
            let mut variants = vec![];
            let mut c = c0.clone();
            gemm_acc_body::<false, 4>(m, k, n, &a, &b, &mut c);
            variants.push(c);
            let mut c = c0.clone();
            gemm_acc_body::<false, 8>(m, k, n, &a, &b, &mut c);
            variants.push(c);
            let mut c = c0.clone();
            gemm_acc_body::<false, 16>(m, k, n, &a, &b, &mut c);
            variants.push(c);
            let mut c = c0.clone();
            gemm_acc(m, k, n, &a, &b, &mut c);
            variants.push(c);
            for got in variants {
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{m}×{k}×{n}: {g} vs {w}"
                    );
                }
            }
        }
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
                cell_forward_body::<false, 4>(&mut g, &cp, &mut c, &mut tc, &mut h, h_n);
            }
            let dh: Vec<f32> = (0..b_n * h_n).map(|i| val(i, 13)).collect();
            let (mut dc, mut dg) = (vec![0.5; b_n * h_n], vec![0.0; b_n * 4 * h_n]);
            if fast {
                cell_backward(&g, &tc, &cp, &dh, &dh, &mut dc, &mut dg, h_n);
            } else {
                cell_backward_body::<false, 4>(&g, &tc, &cp, &dh, &dh, &mut dc, &mut dg, h_n);
            }
            [g, c, tc, h, dc, dg].concat()
        };
        let (portable, dispatched) = (run(false), run(true));
        assert!(portable.iter().any(|v| v.abs() > 0.1));
        for (p, d) in portable.iter().zip(&dispatched) {
            assert!((p - d).abs() <= 1e-5 * (1.0 + p.abs()), "{p} vs {d}");
        }
    }
}
