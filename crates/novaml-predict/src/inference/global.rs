//! Global models: one model fitted on the windows of many series of a kind (every VM's CPU, say),
//! serving any series of that kind, including one it never saw.
//!
//! A per-series model costs a fit per series and has nothing to say about a series with a short
//! history; a global model is fitted once, learns from every series' history at once (the M5
//! competition's winners, DeepAR and global LightGBM do the same), and serves a new series as
//! soon as it has one window. Every window is scaled by its own spread ([`window_scale`]): its
//! target and seasonal inputs become changes from the origin in units of the window's mean
//! one-step change, and so do its labels. Series of any units and spreads then share one model
//! ([`Model::Pooled`]), and serving needs nothing from the series but the window.
//!
//! Serving one series with a global model ([`serve_global`]) builds an ordinary [`Predictor`]:
//! the global model, the series' own scalers (fit on its training rows; the window scaling makes
//! the forecast independent of them) and the conformal calibration of its validation windows,
//! which then rolls with its known outcomes as for any model.
//!
use novaml_features::dataset::{SeriesFrame, Split};

use novaml_features::dataset::{DataConfig, Windows};

use super::fit::{calibration_of, finish, fit_model, prepare, scaled, val_windows};
use super::serve::raw;
use super::{DataRange, FitConfig, Fitted, Model, ModelKind, Predictor};
use crate::PredictError;
use crate::training::EpochReport;

/// Fewest series a global model pools: with fewer, fit per series.
pub const MIN_POOLED_SERIES: usize = 2;

/// The most training windows a global model fits on: beyond it every series' windows are
/// thinned by the same stride (so each contributes in proportion to its history). Neighbouring
/// windows share all but one row, so thinning loses little, and the fitting time grows with the
/// windows.
pub const MAX_POOLED_WINDOWS: usize = 60_000;

/// The smallest window scale (in the series' standard deviations): a flat window's changes are
/// measured against it rather than divided by zero.
const WINDOW_SCALE_FLOOR: f32 = 1e-3;

/// The scale of window `k`: the mean absolute one-step change of its first `cols` inputs (the
/// target, and the seasonal input where there is one), at least [`WINDOW_SCALE_FLOOR`].
///
/// The seasonal input counts because a periodic series' quiet hours before its daily peak would
/// otherwise make the peak hundreds of "scales" tall, a size that differs from series to series
/// and day to day. With it, the global trees' median relative MAE over steps 1..12 on the
/// periodic dev VMs went from 0.587 / 0.677 / 0.474 to 0.426 / 0.507 / 0.391 (vm_303 / vm_338 /
/// vm_410) and on vm_270 from 1.552 to 0.976, at 0.663 → 0.689 on vm_192 and 0.634 → 0.653 on
/// vm_340 (`novaml eval predict --global --models naive,gbm` over the 9 dev traces). Chosen on
/// those same traces: an in-sample choice between two definitions.
pub fn window_scale(w: &Windows, k: usize, cols: usize) -> f32 {
    let (t_n, f_n) = (w.steps, w.features);
    let x = &w.x[k * t_n * f_n..(k + 1) * t_n * f_n];
    let d = (0..cols)
        .map(|c| {
            (1..t_n)
                .map(|t| (x[t * f_n + c] - x[(t - 1) * f_n + c]).abs())
                .sum::<f32>()
        })
        .sum::<f32>()
        / ((t_n - 1).max(1) * cols) as f32;
    if d.is_finite() {
        d.max(WINDOW_SCALE_FLOOR)
    } else {
        WINDOW_SCALE_FLOOR
    }
}

/// Every `stride`-th window of `w`, scaled by its own [`window_scale`]: the target and seasonal
/// inputs as `(x − x_origin) / scale`, the labels (when `w` has them) divided by the scale; the
/// other inputs as they are. Returns the windows and their scales.
pub fn scale_windows_by(w: &Windows, data: &DataConfig, stride: usize) -> (Windows, Vec<f32>) {
    let (t_n, f_n, h_n) = (w.steps, w.features, w.horizon);
    let labels = w.y.len() == w.len() * h_n;
    let scaled_cols = if data.season > 0 { 2 } else { 1 };
    let mut out = Windows {
        steps: t_n,
        features: f_n,
        horizon: h_n,
        ..Windows::default()
    };
    let mut scales = Vec::new();
    for k in (0..w.len()).step_by(stride.max(1)) {
        let s = window_scale(w, k, scaled_cols);
        let x = &w.x[k * t_n * f_n..(k + 1) * t_n * f_n];
        let last = x[(t_n - 1) * f_n];
        for row in x.chunks_exact(f_n) {
            for (j, v) in row.iter().enumerate() {
                out.x
                    .push(if j < scaled_cols { (v - last) / s } else { *v });
            }
        }
        if labels {
            out.y
                .extend(w.y[k * h_n..(k + 1) * h_n].iter().map(|v| v / s));
        }
        out.origins.push(w.origins[k]);
        scales.push(s);
    }
    (out, scales)
}

/// [`scale_windows_by`] every window.
pub fn scale_windows(w: &Windows, data: &DataConfig) -> (Windows, Vec<f32>) {
    scale_windows_by(w, data, 1)
}

fn append(to: &mut Windows, w: Windows) {
    to.x.extend(w.x);
    to.y.extend(w.y);
    to.origins.extend(w.origins);
}

/// A fitted global model and what it was fitted on.
#[derive(Debug)]
pub struct Global {
    /// The model (serves any series of the kind through [`serve_global`]).
    pub model: Model,
    /// Series pooled.
    pub series: usize,
    /// Series left out, by index into the input, with why (too short, constant, …).
    pub skipped: Vec<(usize, PredictError)>,
}

/// Fits one `kind` model on the scaled training windows of every `(frame, split)`,
/// early-stopped on their scaled validation windows. A series that cannot give windows (too
/// short, constant, gappy) is left out and reported in [`Global::skipped`]; fewer than
/// [`MIN_POOLED_SERIES`] usable series is an error (fit per series instead). The naive models
/// have nothing to pool and an ensemble is weighed per series, so `kind` is ridge, gbm or lstm.
pub fn fit_global(
    kind: ModelKind,
    series: &[(&SeriesFrame, Split)],
    cfg: &FitConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Global, PredictError> {
    if !matches!(kind, ModelKind::Ridge | ModelKind::Gbm | ModelKind::Lstm) {
        return Err(PredictError::config(
            "model",
            format!(
                "a global model is ridge, gbm or lstm, not {} (nothing to pool)",
                kind.as_str()
            ),
        ));
    }
    // The stride from the most training windows each series can give (its training origins),
    // so that each series' windows are thinned as soon as they are built and the pool never
    // holds more than about MAX_POOLED_WINDOWS (10,000 series of two days would be gigabytes).
    let most: usize = series
        .iter()
        .map(|(_, split)| split.train_origins(&cfg.data).len())
        .sum();
    let stride = most.div_ceil(MAX_POOLED_WINDOWS).max(1);
    let mut tr = Windows::default();
    let mut va = Windows::default();
    let mut pooled = 0;
    let mut skipped = Vec::new();
    for (i, (frame, split)) in series.iter().enumerate() {
        match prepare(kind, frame, *split, cfg) {
            Ok((_, t, v)) => {
                let (t, _) = scale_windows_by(&t, &cfg.data, stride);
                let (v, _) = scale_windows_by(&v, &cfg.data, stride);
                (tr.steps, tr.features, tr.horizon) = (t.steps, t.features, t.horizon);
                (va.steps, va.features, va.horizon) = (v.steps, v.features, v.horizon);
                append(&mut tr, t);
                append(&mut va, v);
                pooled += 1;
            }
            Err(e) => skipped.push((i, e)),
        }
    }
    if pooled < MIN_POOLED_SERIES {
        return Err(PredictError::Data(format!(
            "{pooled} of {} series give windows; a global model pools at least \
             {MIN_POOLED_SERIES} (fit per series instead)",
            series.len()
        )));
    }
    let (inner, _) = fit_model(kind, &tr, &va, cfg, None, on_epoch)?;
    Ok(Global {
        model: Model::Pooled {
            inner: Box::new(inner),
        },
        series: pooled,
        skipped,
    })
}

/// A predictor of one series from a global `model`: the series' scalers from its rows
/// `..split.train_end`, the conformal calibration from its validation rows. The model is not
/// refitted; the series need not be one it was fitted on.
pub fn serve_global(
    model: &Model,
    frame: &SeriesFrame,
    split: Split,
    cfg: &FitConfig,
) -> Result<Fitted, PredictError> {
    let (scalers, _, va) = prepare(model.kind(), frame, split, cfg)?;
    Ok(finish(
        model.clone(),
        Vec::new(),
        frame,
        split,
        cfg,
        scalers,
        &va,
    ))
}

/// What makes `template` (a predictor holding a global model, e.g. from [`serve_global`]) serve
/// another series: its scalers, calibration and data range, computed as [`serve_global`] does,
/// set in place. A fleet holds one model and swaps these per series rather than a copy of the
/// model per series (the trees of one global model are about a megabyte).
pub fn recalibrate_for(
    template: &mut Predictor,
    frame: &SeriesFrame,
    split: Split,
    cfg: &FitConfig,
) -> Result<(), PredictError> {
    // Only the validation windows: the training windows (what `prepare` also builds) are not
    // needed to serve, and are most of the cost for a fleet.
    let (scalers, table) = scaled(frame, split, cfg)?;
    let va = val_windows(frame, split, cfg, &scalers, &table);
    if va.is_empty() {
        return Err(PredictError::Data(
            "no complete validation window to calibrate on: the data is too short or too gappy"
                .into(),
        ));
    }
    let r = raw(&template.model, &cfg.data, &template.quantiles, &va);
    template.calibration = calibration_of(&r, &va, template.level);
    template.scalers = scalers;
    template.range = DataRange {
        start_ms: frame.start_ms,
        end_ms: frame.ts(split.val_end.saturating_sub(1)),
        rows: split.val_end,
    };
    Ok(())
}
