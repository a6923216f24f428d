//! `novaml train`, `novaml predict` and `novaml eval predict`: performance prediction with the
//! LSTM and its baselines (novaml-predict).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use novaml_eval::predict::{Backtest, PredRow, Progress, SeriesReport, overall};
use novaml_features::{SeriesFrame, Split};
use novaml_predict::inference::{FitConfig, ModelKind, fit};
use novaml_predict::registry::{Meta, ModelStore};

use super::{bar, name_of, positive_duration_arg};

/// A comma-separated list of model kinds.
#[derive(Debug, Clone)]
pub(crate) struct Kinds(Vec<ModelKind>);

fn parse_kinds(s: &str) -> Result<Kinds> {
    let v = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().parse::<ModelKind>().map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    // In a fixed order, duplicates dropped: the ensemble last, so it can weigh the others.
    let mut v = v;
    v.sort();
    v.dedup();
    Ok(Kinds(v))
}

/// The model and data options shared by `train`, `eval predict` (and read back by `predict`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ModelArgs {
    /// The metric to predict (a column of the file). Several comma-separated names: the first
    /// the file has (one kind of metric named differently by different sources, e.g.
    /// `cpu_pct,cpu_util_percent`).
    #[arg(long)]
    column: String,
    /// Other columns of the same file fed to the model as inputs (comma-separated).
    #[arg(long, value_delimiter = ',')]
    covariates: Vec<String>,
    /// Grid step: the data is bucketed to it by the mean; empty buckets are gaps.
    #[arg(long, default_value = "5m", value_parser = positive_duration_arg)]
    step: Duration,
    /// Steps to predict (12 = 1 h at 5 min).
    #[arg(long, default_value_t = 12)]
    horizon: usize,
    /// Rows per input window.
    #[arg(long, default_value_t = 48)]
    lookback: usize,
    /// Season in rows for the seasonal input and seasonal naive (288 = 1 day at 5 min; 0 = off).
    #[arg(long, default_value_t = 288)]
    season: usize,
    /// LSTM hidden sizes, bottom first (e.g. 128,128,128).
    #[arg(long, value_delimiter = ',', default_value = "64,64")]
    layers: Vec<usize>,
    /// Bidirectional LSTM layers.
    #[arg(long)]
    bidirectional: bool,
    /// Attention head over the top layer's outputs.
    #[arg(long)]
    attention: bool,
    /// Dropout between layers during training.
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
    /// Input rows that also feed the output layer linearly (0 = off).
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Learn the raw change instead of the residual of the lag-ridge base model (an ensemble's
    /// LSTM mixes both: every other of its four networks learns the other target).
    #[arg(long)]
    no_residual: bool,
    /// Most training epochs (early stopping usually ends sooner).
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Use every STRIDE-th training window (faster, for large histories).
    #[arg(long, default_value_t = 1)]
    stride: usize,
    /// Interval level in percent (the LSTM learns its quantiles; conformal calibration on the
    /// validation part fixes the coverage).
    #[arg(long, default_value_t = 80.0)]
    level: f64,
    /// Seed of weights, shuffling and dropout.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of the rows before the test part used for validation (early stopping, calibration,
    /// model selection).
    #[arg(long, default_value_t = 0.2)]
    validation: f64,
    /// Every setting as TOML (sections [data], [net], [train]; see novaml-predict's FitConfig);
    /// flags given here are ignored when it is set.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl ModelArgs {
    fn fit_config(&self) -> Result<FitConfig> {
        if let Some(p) = &self.config {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            return toml::from_str(&text).with_context(|| format!("parsing {}", p.display()));
        }
        if !(0.0 < self.level && self.level < 100.0) {
            bail!("--level {} is not in (0, 100)", self.level);
        }
        let a = (1.0 - self.level / 100.0) / 2.0;
        let mut cfg = FitConfig::default();
        cfg.data.lookback = self.lookback;
        cfg.data.horizon = self.horizon;
        cfg.data.season = self.season;
        cfg.data.covariates = self.covariates.clone();
        cfg.net.layers = self.layers.clone();
        cfg.net.bidirectional = self.bidirectional;
        cfg.net.attention = self.attention;
        cfg.net.dropout = self.dropout;
        cfg.net.skip = self.skip;
        cfg.net.residual = !self.no_residual;
        cfg.train.epochs = self.epochs;
        cfg.train.stride = self.stride;
        cfg.train.seed = self.seed;
        cfg.train.quantiles = vec![a as f32, 0.5, (1.0 - a) as f32];
        Ok(cfg)
    }
}

/// Loads `column` and the covariates of `path` onto a grid.
fn load_frame(
    path: &Path,
    column: &str,
    covariates: &[String],
    step: Duration,
) -> Result<SeriesFrame> {
    let input = super::SeriesInput {
        input: path.to_owned(),
        column: None,
    };
    let all = input.load_all()?;
    let points = |name: &str| -> Result<Vec<(i64, f64)>> {
        let s = all.iter().find(|s| s.key.name == name).with_context(|| {
            let names: Vec<&str> = all.iter().map(|s| s.key.name.as_str()).collect();
            format!(
                "{} has no column {name:?} (columns: {})",
                path.display(),
                names.join(", ")
            )
        })?;
        Ok(s.points.iter().map(|p| (p.ts, p.value)).collect())
    };
    let names: Vec<&str> = column.split(',').map(str::trim).collect();
    let column = names
        .iter()
        .find(|c| all.iter().any(|s| s.key.name == **c))
        .copied()
        .unwrap_or(names[0]);
    let target = points(column)?;
    let cov = covariates
        .iter()
        .map(|c| Ok((c.clone(), points(c)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(SeriesFrame::from_points(
        &target,
        &cov,
        step.as_millis() as i64,
    )?)
}

/// Arguments of `novaml train`.
#[derive(Debug, clap::Args)]
pub(crate) struct TrainArgs {
    /// Input file (CSV or JSON lines).
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Which model (naive, seasonal_naive, ridge, gbm, lstm, ensemble). The ensemble fits all
    /// the others (the LSTM as four networks from consecutive seeds) and weighs them on the
    /// validation rows, one set of weights for all horizons; it keeps the best of them alone
    /// unless the weighted mean is better by more than one standard error of the difference.
    #[arg(long, default_value = "ensemble")]
    kind: ModelKind,
    /// The model registry directory.
    #[arg(long, default_value = "novaml-models")]
    models: PathBuf,
    /// The model's name in the registry (default: FILE's stem + column).
    #[arg(long)]
    name: Option<String>,
    /// The last share of rows held out to compare the new model with the serving one.
    #[arg(long, default_value_t = 0.1)]
    holdout: f64,
    /// Continue an interrupted training from its checkpoint (MODELS/NAME/checkpoint.json).
    #[arg(long)]
    resume: bool,
}

pub(crate) fn train(a: TrainArgs) -> Result<()> {
    let cfg = a.model.fit_config()?;
    let frame = load_frame(
        &a.input,
        &a.model.column,
        &cfg.data.covariates,
        a.model.step,
    )?;
    let n = frame.len();
    let split = Split::new(n, a.model.validation, a.holdout, &cfg.data)?;
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("{}.{}", name_of(&a.input), a.model.column));
    let store = ModelStore::open(&a.models)?;
    let ck_dir = a.models.join(&name);
    std::fs::create_dir_all(&ck_dir).with_context(|| format!("creating {}", ck_dir.display()))?;
    let ck = ck_dir.join("checkpoint.json");
    let pb = bar(cfg.train.epochs as u64);
    let started = Instant::now();
    let fitted = fit(
        a.kind,
        &frame,
        split,
        &cfg,
        Some((&ck, a.resume)),
        &mut |r| {
            pb.set_position(r.epoch as u64);
            pb.set_message(format!(
                "train {:.4} val {:.4}{} lr {:.1e} ({:.1}s)",
                r.train_loss,
                r.val_loss,
                if r.best { " *" } else { "" },
                r.learning_rate,
                r.seconds
            ));
        },
    )?;
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    for r in &fitted.history {
        eprintln!(
            "epoch {:>3}  train {:.5}  val {:.5}{}  lr {:.1e}  {:.1}s",
            r.epoch,
            r.train_loss,
            r.val_loss,
            if r.best { " (best)" } else { "" },
            r.learning_rate,
            r.seconds
        );
    }
    let meta = Meta::of_fit(
        &fitted,
        format!("{} column {}", a.input.display(), a.model.column),
    );
    let d = store.submit(&name, &fitted.predictor, meta, &frame, (split.val_end, n))?;
    let _ = std::fs::remove_file(&ck);
    println!(
        "{name} v{}: {} in {secs:.1}s; holdout MAE {:.4}{}; {}",
        d.version,
        a.kind.as_str(),
        d.challenger_mae,
        d.champion_mae
            .map(|c| format!(" vs champion {c:.4}"))
            .unwrap_or_default(),
        if d.promoted {
            "promoted: now serving"
        } else {
            "kept the champion"
        }
    );
    Ok(())
}

/// Arguments of `novaml predict`.
#[derive(Debug, clap::Args)]
pub(crate) struct PredictArgs {
    /// Input file with the recent history (CSV or JSON lines).
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// The model registry directory.
    #[arg(long, default_value = "novaml-models")]
    models: PathBuf,
    /// The model's name in the registry.
    #[arg(long)]
    name: String,
    /// A registry version instead of the serving one.
    #[arg(long)]
    model_version: Option<u32>,
    /// The metric column.
    #[arg(long)]
    column: String,
    /// SLO threshold: also print the probability of crossing it within the horizon.
    #[arg(long)]
    slo: Option<f64>,
    /// Predict as of this time (RFC 3339 or Unix seconds/ms): rows after it are ignored.
    /// Default: the file's last row.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

pub(crate) fn predict(a: PredictArgs) -> Result<()> {
    let store = ModelStore::open(&a.models)?;
    let art = match a.model_version {
        Some(v) => store.load(&a.name, v)?,
        None => store.champion(&a.name)?.with_context(|| {
            format!(
                "no serving version of {:?} in {} (train one with novaml train)",
                a.name,
                a.models.display()
            )
        })?,
    };
    let p = &art.predictor;
    let frame = load_frame(
        &a.input,
        &a.column,
        &p.data.covariates,
        Duration::from_millis(p.step_ms as u64),
    )?;
    let frame = match &a.at {
        None => frame,
        Some(t) => {
            let at = novaml_collect::time::parse_timestamp(t)
                .with_context(|| format!("bad --at {t:?}: give RFC 3339 or Unix seconds/ms"))?;
            if at < frame.start_ms {
                bail!("--at {t} is before the file's first row");
            }
            let rows = ((at - frame.start_ms) / frame.step_ms + 1) as usize;
            frame.head(rows)
        }
    };
    let f = p.predict(&frame)?;
    let risk = a.slo.map(|t| f.risk_above(t, p.level));
    let out = serde_json::json!({
        "model": a.name,
        "version": art.meta.version,
        "kind": p.model.kind(),
        "level": p.level,
        "forecast": f,
        "slo": a.slo,
        "risk_of_crossing_slo": risk,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Arguments of `novaml eval predict`.
#[derive(Debug, clap::Args)]
pub(crate) struct EvalArgs {
    /// Input files (CSV or JSON lines), one series each.
    #[arg(long, num_args = 1.., required = true, value_name = "FILE")]
    data: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// The held-out tail's share of each series (rolling origins: every row is one).
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Models to compare (comma-separated); the one with the lowest validation MAE is
    /// "selected" per series (default: all six).
    #[arg(long, value_parser = parse_kinds)]
    models: Option<Kinds>,
    /// The boosted trees and the LSTM as global models, each fitted once on the training rows of
    /// every given series (windows scaled each by its own spread), serving each series' test
    /// rows; the other models fit per series and the ensemble weighs global and local members
    /// alike. Give all the series of one kind of metric (two at least).
    #[arg(long)]
    global: bool,
    /// Like --global, but each series is predicted by a global model fitted on the other series
    /// only (one fit per series): the accuracy on a series the fleet has never seen.
    #[arg(long)]
    cold_start: bool,
    /// Write the report (JSON) here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write every prediction here: DIR/<series>.csv for the selected model and
    /// DIR/<model>/<series>.csv for each model (origin,h,timestamp,actual,predicted,lower,upper).
    #[arg(long, value_name = "DIR")]
    predictions: Option<PathBuf>,
}

fn write_predictions(path: &Path, rows: &[PredRow]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record([
        "origin",
        "h",
        "timestamp",
        "actual",
        "predicted",
        "lower",
        "upper",
    ])?;
    for r in rows {
        w.write_record([
            r.origin.to_string(),
            r.h.to_string(),
            r.timestamp.to_string(),
            r.actual.to_string(),
            r.predicted.to_string(),
            r.lower.to_string(),
            r.upper.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

pub(crate) fn eval(a: EvalArgs) -> Result<()> {
    if !(0.0 < a.test_fraction && a.test_fraction < 1.0) {
        bail!("--test-fraction {} is not in (0, 1)", a.test_fraction);
    }
    let global = a.global || a.cold_start;
    let kinds = match &a.models {
        Some(k) => k.0.clone(),
        None if global => ModelKind::ALL.to_vec(),
        None => ModelKind::ALL.to_vec(),
    };
    if kinds.is_empty() {
        bail!("--models is empty");
    }
    // A cold start pools every series but the one served, so it needs one file more.
    let pool = novaml_predict::inference::global::MIN_POOLED_SERIES;
    if global && a.data.len() < pool + usize::from(a.cold_start) {
        bail!(
            "--global pools at least {pool} series and --cold-start {} (the series predicted is \
             left out): give more files, or drop the flag to fit each series alone",
            pool + 1
        );
    }
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let cfg = a.model.fit_config()?;
    let pb = bar((a.data.len() * kinds.len()) as u64);
    // Every file is read (and its columns checked) before any model is fitted, so a bad file
    // fails the run at once rather than after the others' training.
    let frames = a
        .data
        .iter()
        .map(|path| {
            load_frame(path, &a.model.column, &cfg.data.covariates, a.model.step)
                .with_context(|| format!("loading {}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let backtest = Backtest {
        kinds: &kinds,
        cfg: &cfg,
        validation: a.model.validation,
        test_fraction: a.test_fraction,
    };
    let mut on_progress = |p: Progress<'_>| match p {
        Progress::Pooling(k, n) => pb.set_message(format!("global {} on {n} series", k.as_str())),
        Progress::Fitting(k) => pb.set_message(k.as_str().to_owned()),
        Progress::Epoch(k, r) => pb.set_message(format!(
            "{} epoch {} val {:.4} ({:.1}s)",
            k.as_str(),
            r.epoch,
            r.val_loss,
            r.seconds
        )),
        Progress::Scored(_) => pb.inc(1),
    };
    let named: Vec<(String, String, SeriesFrame)> = a
        .data
        .iter()
        .zip(frames)
        .map(|(path, frame)| (name_of(path), path.display().to_string(), frame))
        .collect();
    let (results, global_fit_seconds) = if global {
        let run = backtest.global(&named, a.cold_start, &mut on_progress)?;
        (run.series, Some(run.global_fit_seconds))
    } else {
        let mut v = Vec::with_capacity(named.len());
        for (name, file, frame) in &named {
            v.push(backtest.series(name, file, frame, &mut on_progress)?);
        }
        (v, None)
    };
    let mut reports: Vec<SeriesReport> = Vec::new();
    for ((name, _, _), (report, all_rows)) in named.iter().zip(results) {
        if let Some(dir) = &a.predictions {
            for (kind, rows) in &all_rows {
                write_predictions(&dir.join(kind.as_str()).join(format!("{name}.csv")), rows)?;
            }
            write_predictions(
                &dir.join(format!("{name}.csv")),
                &all_rows[&report.selected],
            )?;
        }
        reports.push(report);
    }
    pb.finish_and_clear();
    let mut summary: BTreeMap<&str, novaml_eval::predict::Overall> = kinds
        .iter()
        .map(|&k| (k.as_str(), overall(&reports, Some(k))))
        .collect();
    summary.insert("selected", overall(&reports, None));
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}  selected",
        "series (median rel. MAE)",
        "naive",
        "s.naive",
        "ridge",
        "gbm",
        "lstm",
        "ensemble",
        "cover%",
        "worst wk",
        "guard%"
    );
    for r in &reports {
        let g = |k: ModelKind| {
            r.models.get(&k).map_or_else(
                || "-".to_owned(),
                |m| format!("{:.3}", m.summary.median_rel_mae),
            )
        };
        println!(
            "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9.1} {:>9} {:>7.1}  {} ({:.3})",
            name_of(Path::new(&r.file)),
            g(ModelKind::Naive),
            g(ModelKind::SeasonalNaive),
            g(ModelKind::Ridge),
            g(ModelKind::Gbm),
            g(ModelKind::Lstm),
            g(ModelKind::Ensemble),
            100.0 * r.selected_summary.coverage,
            r.selected_summary
                .worst_week_rel_mae
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}")),
            100.0 * r.selected_summary.guarded,
            r.selected.as_str(),
            r.selected_summary.median_rel_mae
        );
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
    let cpu = cpu_seconds() - cpu0;
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{} series in {wall:.1} s wall, {cpu:.1} s CPU{}",
        reports.len(),
        global_fit_seconds
            .map(|s| format!(
                " ({s:.1} s fitting the global model{})",
                if a.cold_start { "s" } else { "" }
            ))
            .unwrap_or_default()
    );
    if let Some(out) = &a.out {
        let doc = serde_json::json!({
            "column": a.model.column,
            "config": cfg,
            "mode": if a.cold_start { "cold_start" } else if a.global { "global" } else { "per_series" },
            "cpu_seconds": cpu,
            "wall_seconds": wall,
            "global_fit_seconds": global_fit_seconds,
            "test_fraction": a.test_fraction,
            "overall": summary,
            "series": reports,
        });
        std::fs::write(out, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// Arguments of `novaml models`.
#[derive(Debug, clap::Args)]
pub(crate) struct ModelsArgs {
    /// The model registry directory.
    #[arg(long, default_value = "novaml-models", global = true)]
    models: PathBuf,
    #[command(subcommand)]
    what: ModelsWhat,
}

#[derive(Debug, clap::Subcommand)]
enum ModelsWhat {
    /// List the models with their serving version.
    List,
    /// Show a model's versions (metrics, data range) and its promotion log.
    Show {
        /// Model name.
        name: String,
    },
    /// Make a version serve (an operator's override of champion/challenger).
    Promote {
        /// Model name.
        name: String,
        /// Version number.
        #[arg(value_name = "VERSION")]
        number: u32,
    },
    /// Go back to an earlier version.
    Rollback {
        /// Model name.
        name: String,
        /// Version number.
        #[arg(value_name = "VERSION")]
        number: u32,
    },
}

pub(crate) fn models(a: ModelsArgs) -> Result<()> {
    let store = ModelStore::open(&a.models)?;
    match a.what {
        ModelsWhat::List => {
            for name in store.names()? {
                let r = store.registry(&name)?;
                println!(
                    "{name}: serving {}, versions {:?}",
                    r.champion
                        .map_or_else(|| "none".to_owned(), |v| format!("v{v}")),
                    r.versions
                );
            }
        }
        ModelsWhat::Show { name } => {
            let r = store.registry(&name)?;
            if r.versions.is_empty() {
                bail!("no model named {name:?} in {}", a.models.display());
            }
            let mut versions = Vec::new();
            for &v in &r.versions {
                let art = store.load(&name, v)?;
                versions.push(serde_json::json!({
                    "version": v,
                    "serving": r.champion == Some(v),
                    "kind": art.predictor.model.kind(),
                    "range": art.meta.range,
                    "metrics": art.meta.metrics,
                    "mean_mae": art.meta.metrics.mean_mae(),
                    "epochs": art.meta.history.len(),
                    "created_ms": art.meta.created_ms,
                }));
            }
            let doc = serde_json::json!({"name": name, "champion": r.champion, "versions": versions, "log": r.log});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        ModelsWhat::Promote {
            name,
            number: version,
        } => {
            store.promote(&name, version, "operator")?;
            println!("{name}: v{version} now serves");
        }
        ModelsWhat::Rollback {
            name,
            number: version,
        } => {
            store.rollback(&name, version)?;
            println!("{name}: rolled back to v{version}");
        }
    }
    Ok(())
}

/// CPU seconds this process has used (user + system, all threads); NaN where /proc cannot say.
fn cpu_seconds() -> f64 {
    use procfs::process::Process;
    let tps = procfs::ticks_per_second() as f64;
    Process::myself()
        .and_then(|p| p.stat())
        .map_or(f64::NAN, |s| (s.utime + s.stime) as f64 / tps)
}

/// Arguments of `novaml eval fleet`.
#[derive(Debug, clap::Args)]
pub(crate) struct FleetArgs {
    /// Simulated VMs (one CPU series each), in hosts of 20.
    #[arg(long, default_value_t = 10_000)]
    vms: usize,
    /// Days of 5-minute history per series (the last 20 % validates and calibrates).
    #[arg(long, default_value_t = 4)]
    days: usize,
    /// The simulator's seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the figures (JSON) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The fleet's rounds: simulate, fit one global model, calibrate each series, forecast each.
pub(crate) fn fleet(a: FleetArgs) -> Result<()> {
    use novaml_collect::sources::simulator::{SimConfig, Simulator};
    use novaml_predict::inference::{fit_global, recalibrate_for, serve_global};
    const VMS_PER_HOST: usize = 20;
    const STEP_MS: i64 = 300_000;
    if a.vms < 2 || a.days < 2 {
        bail!("--vms must be at least 2 and --days at least 2 (a window needs a day of history)");
    }
    let sim = Simulator::new(SimConfig {
        seed: a.seed,
        hosts: a.vms.div_ceil(VMS_PER_HOST),
        vms_per_host: VMS_PER_HOST,
        step: Duration::from_millis(STEP_MS as u64),
        ..SimConfig::default()
    })?;
    let cpu: Vec<usize> = sim
        .keys()
        .enumerate()
        .filter(|(_, k)| k.name == "vm_cpu_usage_percent")
        .map(|(i, _)| i)
        .take(a.vms)
        .collect();
    let rows = a.days * 288;
    // 2026-11-01T00:00:00Z: a fixed start, so every run sees the same series.
    let start_ms: i64 = 1_793_491_200_000;
    let t0 = Instant::now();
    let frames: Vec<SeriesFrame> = cpu
        .iter()
        .map(|&i| SeriesFrame {
            start_ms,
            step_ms: STEP_MS,
            target: (0..rows)
                .map(|r| sim.value(i, start_ms + r as i64 * STEP_MS))
                .collect(),
            covariates: Vec::new(),
        })
        .collect();
    let simulate_s = t0.elapsed().as_secs_f64();
    let mut cfg = FitConfig::default();
    cfg.train.quantiles = vec![0.1, 0.5, 0.9];
    let split = Split::new(rows, 0.2, 0.0, &cfg.data)?;
    eprintln!(
        "{} simulated VM CPU series × {rows} rows in {simulate_s:.1} s; fitting the global trees",
        frames.len()
    );
    let cpu0 = cpu_seconds();
    let t1 = Instant::now();
    let members: Vec<(&SeriesFrame, Split)> = frames.iter().map(|f| (f, split)).collect();
    let g = fit_global(ModelKind::Gbm, &members, &cfg, &mut |_| {})?;
    let fit_s = t1.elapsed().as_secs_f64();
    if !g.skipped.is_empty() {
        eprintln!("{} series left out of the pool", g.skipped.len());
    }
    // Calibration: each series' scalers and conformal adjustment on its validation rows.
    let pb = bar(frames.len() as u64);
    let t2 = Instant::now();
    let mut template = serve_global(&g.model, &frames[0], split, &cfg)?.predictor;
    let mut served = Vec::with_capacity(frames.len());
    for f in &frames {
        recalibrate_for(&mut template, f, split, &cfg)?;
        served.push((template.scalers.clone(), template.calibration.clone()));
        pb.inc(1);
    }
    pb.finish_and_clear();
    let calibrate_s = t2.elapsed().as_secs_f64();
    // Prediction: one forecast per series from its last rows (what a server holds), with the
    // calibration of the training round (the rolling recalibration and the guard need the
    // scores of the past days' windows, which a server keeps as they arrive: timed apart below).
    let history = cfg.data.history();
    let tails: Vec<SeriesFrame> = frames
        .iter()
        .map(|f| SeriesFrame {
            start_ms: f.ts(rows - history),
            step_ms: STEP_MS,
            target: f.target[rows - history..].to_vec(),
            covariates: Vec::new(),
        })
        .collect();
    template.recalibrate = 0;
    let t3 = Instant::now();
    let mut width = 0.0;
    for (tail, (scalers, calibration)) in tails.iter().zip(&served) {
        template.scalers = scalers.clone();
        template.calibration.clone_from(calibration);
        let f = template.predict(tail)?;
        width += f.upper[11.min(f.upper.len() - 1)] - f.lower[11.min(f.lower.len() - 1)];
    }
    let predict_s = t3.elapsed().as_secs_f64();
    // The same with the rolling recalibration and the guard recomputed from two days of known
    // outcomes at every call (today's `predict`), on the first 200 series.
    template.recalibrate = 576;
    let sample = frames.len().min(200);
    let t4 = Instant::now();
    for (f, (scalers, calibration)) in frames.iter().zip(&served).take(sample) {
        template.scalers = scalers.clone();
        template.calibration.clone_from(calibration);
        template.predict(f)?;
    }
    let rolling_s = t4.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let n = frames.len() as f64;
    let doc = serde_json::json!({
        "series": frames.len(),
        "rows_per_series": rows,
        "pooled_series": g.series,
        "simulated": true,
        "training_round_seconds": fit_s + calibrate_s,
        "global_fit_seconds": fit_s,
        "calibration_seconds": calibrate_s,
        "prediction_round_seconds": predict_s,
        "prediction_us_per_series": 1e6 * predict_s / n,
        "prediction_with_rolling_recalibration_us_per_series": 1e6 * rolling_s / sample as f64,
        "mean_interval_width_at_step_12": width / n,
        "cpu_seconds": cpu,
    });
    println!(
        "{} series: training round {:.1} s (global fit {fit_s:.1} s, calibration {calibrate_s:.1} \
         s = {:.0} µs/series); prediction round {predict_s:.2} s = {:.1} µs/series (12 steps, \
         median + 80 % interval); with the rolling recalibration and guard recomputed per call \
         {:.0} µs/series; {cpu:.1} s CPU",
        frames.len(),
        fit_s + calibrate_s,
        1e6 * calibrate_s / n,
        1e6 * predict_s / n,
        1e6 * rolling_s / sample as f64
    );
    if let Some(out) = &a.out {
        std::fs::write(out, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
