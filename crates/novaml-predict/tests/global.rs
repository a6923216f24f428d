//! Global models across series (scale-free, serving series they never saw, bad input) and the
//! guard against a model worse than the last value.
#![allow(missing_docs)]

use novaml_features::{SeriesFrame, Split};
use novaml_predict::baselines::Ridge;
use novaml_predict::inference::{
    DataRange, FitConfig, Model, ModelKind, Predictor, fit, fit_global, recalibrate_for,
    serve_global,
};
use novaml_predict::registry::{Meta, ModelStore};

/// A VM-like series (daily cycle, AR(1) noise; seeded) as a 5-minute frame.
fn series(n: usize, seed: u64, level: f64, amp: f64) -> SeriesFrame {
    SeriesFrame {
        start_ms: 1_700_000_000_000,
        step_ms: 300_000,
        target: novaml_testing::generators::daily_cycle(seed, n, level, amp),
        covariates: vec![],
    }
}

fn meta() -> Meta {
    Meta {
        version: 0,
        created_ms: 0,
        range: DataRange {
            start_ms: 0,
            end_ms: 0,
            rows: 0,
        },
        metrics: Default::default(),
        history: vec![],
        source: "test".into(),
    }
}

fn cfg() -> FitConfig {
    FitConfig::default()
}

fn split(f: &SeriesFrame) -> Split {
    Split::new(f.len(), 0.2, 0.2, &cfg().data).expect("split")
}

#[test]
fn one_model_serves_series_of_any_scale_and_ones_it_never_saw() {
    let pool: Vec<SeriesFrame> = (0..4)
        .map(|i| series(2400, 11 + i, 40.0 + 10.0 * i as f64, 5.0 + 5.0 * i as f64))
        .collect();
    let members: Vec<(&SeriesFrame, Split)> = pool.iter().map(|f| (f, split(f))).collect();
    let g = fit_global(ModelKind::Gbm, &members, &cfg(), &mut |_| {}).expect("global fit");
    assert_eq!(g.series, 4);
    assert!(g.skipped.is_empty());
    assert!(matches!(&g.model, Model::Pooled { inner } if inner.kind() == ModelKind::Gbm));

    // A new series, and the same series in other units (× 1000, shifted): the forecast moves
    // with it exactly, since every window is scaled by its own spread.
    let new = series(2400, 99, 30.0, 12.0);
    let scaled = SeriesFrame {
        target: new.target.iter().map(|v| 1000.0 * v + 7.0).collect(),
        ..new.clone()
    };
    let p = serve_global(&g.model, &new, split(&new), &cfg()).expect("serve");
    let q = serve_global(&g.model, &scaled, split(&scaled), &cfg()).expect("serve");
    let a = p.predictor.predict(&new).expect("forecast");
    let b = q.predictor.predict(&scaled).expect("forecast");
    for h in 0..a.predicted.len() {
        let want = 1000.0 * a.predicted[h] + 7.0;
        assert!(
            (b.predicted[h] - want).abs() < 1e-3 * want.abs(),
            "step {h}: {} vs {want}",
            b.predicted[h]
        );
    }

    // A fleet swaps a series' scalers and calibration into one predictor rather than copying
    // the model: the same predictor as serving it on its own.
    let mut template = p.predictor.clone();
    recalibrate_for(&mut template, &scaled, split(&scaled), &cfg()).expect("recalibrate");
    assert_eq!(template, q.predictor);

    // The registry keeps a global model like any other: saved and reloaded exactly.
    let dir = tempfile::tempdir().expect("tmp");
    let store = ModelStore::open(dir.path()).expect("store");
    let s = split(&new);
    store
        .submit(
            "fleet.cpu",
            &p.predictor,
            meta(),
            &new,
            (s.val_end, new.len()),
        )
        .expect("submit");
    let back = store.load("fleet.cpu", 1).expect("load");
    assert_eq!(back.predictor, p.predictor);

    // It has learnt the cycle: on the new series' test part it beats the last value.
    let preds = p
        .predictor
        .predict_range(&new, s.test_origins(new.len()), true)
        .expect("backtest");
    let (mut model, mut naive) = (0.0, 0.0);
    for pr in &preds {
        let f = &pr.forecast;
        for h in 0..f.predicted.len() {
            let y = new.target[pr.origin + h + 1];
            model += (y - f.predicted[h]).abs();
            naive += (y - f.last).abs();
        }
    }
    assert!(model < 0.9 * naive, "global {model:.1} vs naive {naive:.1}");
}

#[test]
fn bad_input_is_reported_not_pooled() {
    let good = series(2400, 5, 50.0, 10.0);
    let flat = SeriesFrame {
        target: vec![3.0; 2400],
        ..good.clone()
    };
    // One usable series and a constant one: nothing to pool.
    let members = vec![(&good, split(&good)), (&flat, split(&flat))];
    let err = fit_global(ModelKind::Gbm, &members, &cfg(), &mut |_| {}).expect_err("too few");
    assert!(err.to_string().contains("pools at least 2"), "{err}");
    // With a second usable series the constant one is skipped and named.
    let other = series(2400, 6, 20.0, 4.0);
    let members = vec![
        (&good, split(&good)),
        (&flat, split(&flat)),
        (&other, split(&other)),
    ];
    let g = fit_global(ModelKind::Gbm, &members, &cfg(), &mut |_| {}).expect("fit");
    assert_eq!(g.series, 2);
    assert_eq!(g.skipped.len(), 1);
    assert_eq!(g.skipped[0].0, 1);
    assert!(
        g.skipped[0].1.to_string().contains("constant"),
        "{}",
        g.skipped[0].1
    );
    // Naive models have nothing to pool.
    let err = fit_global(ModelKind::Naive, &members, &cfg(), &mut |_| {}).expect_err("naive");
    assert!(err.to_string().contains("nothing to pool"), "{err}");
}

/// A ridge predictor of `f` whose coefficients are then made absurd (it forecasts large rises
/// whatever the data): a model that has gone bad.
fn broken(f: &SeriesFrame, s: Split) -> Predictor {
    let mut p = fit(ModelKind::Ridge, f, s, &cfg(), None, &mut |_| {})
        .expect("fit")
        .predictor;
    let Model::Ridge(Ridge { coef }) = &mut p.model else {
        panic!("a ridge model");
    };
    for c in coef.iter_mut() {
        if let Some(intercept) = c.last_mut() {
            *intercept += 3.0;
        }
    }
    p
}

#[test]
fn the_guard_serves_the_last_value_when_the_model_is_worse() {
    let f = series(2400, 21, 50.0, 10.0);
    let s = split(&f);
    let bad = broken(&f, s);
    let preds = bad
        .predict_range(&f, s.test_origins(f.len()), true)
        .expect("backtest");
    // Once two days' worth of outcomes… half of them (a day) are known, every origin falls
    // back, says why, and forecasts the last value with an interval around it.
    let guarded: Vec<_> = preds
        .iter()
        .filter(|p| p.forecast.guard.is_some())
        .collect();
    assert!(
        guarded.len() * 10 >= preds.len() * 9,
        "{} of {}",
        guarded.len(),
        preds.len()
    );
    for p in &guarded {
        let fc = &p.forecast;
        assert!(fc.guard.is_some_and(|g| g.ratio > 1.0));
        assert!(fc.predicted.iter().all(|v| *v == fc.last));
        assert!(
            fc.lower
                .iter()
                .zip(&fc.upper)
                .all(|(l, u)| *l < fc.last && fc.last < *u)
        );
    }
    // Off, the same model serves its own forecasts.
    let mut off = bad.clone();
    off.guard = 0.0;
    let preds = off
        .predict_range(&f, s.test_origins(f.len()), true)
        .expect("backtest");
    assert!(preds.iter().all(|p| p.forecast.guard.is_none()));
    // A sound model on the same series is not guarded.
    let good = fit(ModelKind::Ridge, &f, s, &cfg(), None, &mut |_| {})
        .expect("fit")
        .predictor;
    let preds = good
        .predict_range(&f, s.test_origins(f.len()), true)
        .expect("backtest");
    assert!(preds.iter().all(|p| p.forecast.guard.is_none()));
}
