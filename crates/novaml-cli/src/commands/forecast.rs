//! `novaml forecast` (one series → CSV with an interval) and `novaml eval forecast` (held-out
//! accuracy over many series → JSON report and a table).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use novaml_eval::forecast::{evaluate_origin, summarize};
use novaml_forecast::models::{ModelKind, ModelOptions, Regular};
use novaml_forecast::select::{SelectConfig, resample_mean, select_and_forecast};

use super::{bar, name_of, positive_duration_arg as parse_duration};

/// A comma-separated list of models.
#[derive(Debug, Clone)]
pub(crate) struct Models(Vec<ModelKind>);

fn parse_models(s: &str) -> Result<Models> {
    s.split(',')
        .map(|m| {
            ModelKind::parse(m.trim()).ok_or_else(|| {
                anyhow!(
                    "unknown model {m:?}; one of {}",
                    ModelKind::ALL.map(ModelKind::as_str).join(", ")
                )
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Models)
}

/// Arguments of `novaml forecast`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    series: super::SeriesInput,
    /// Resample to this step by the mean of each bucket (gaps inside are interpolated).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    freq: Duration,
    /// How far ahead.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    horizon: Duration,
    /// Interval level in percent.
    #[arg(long, default_value_t = 80.0)]
    level: f64,
    /// Candidate models, comma-separated (the backtest picks one).
    #[arg(long, default_value = "seasonal_naive,seasonal_mean,mstl,prophet,ensemble", value_parser = parse_models)]
    models: Models,
    /// Prophet: logistic growth whose trend saturates at this capacity (e.g. 100 for percent);
    /// must be above every value of the history.
    #[arg(long)]
    cap: Option<f64>,
    /// Prophet: multiplicative seasonality (the daily swing grows with the level).
    #[arg(long)]
    multiplicative: bool,
    /// Prophet: a calendar of events (holidays, maintenance windows) as CSV with a header and
    /// columns name,start,end (RFC 3339 or Unix seconds). Give past and future occurrences:
    /// those in the history teach the effect, those ahead apply it.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Output CSV: timestamp,yhat,yhat_lower,yhat_upper (stdout when unset).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

/// Reads an events CSV: `name,start,end`.
fn read_events(path: &Path) -> Result<Vec<(String, i64, i64)>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in r.records().enumerate() {
        let row = row.with_context(|| format!("{} row {}", path.display(), i + 2))?;
        let field = |k: usize| row.get(k).map(str::trim).unwrap_or("");
        let time = |k: usize| {
            novaml_collect::time::parse_timestamp(field(k))
                .map(|ms| ms.div_euclid(1000))
                .ok_or_else(|| {
                    anyhow!(
                        "{} row {}: {:?} is not a timestamp",
                        path.display(),
                        i + 2,
                        field(k)
                    )
                })
        };
        let (a, b) = (time(1)?, time(2)?);
        if field(0).is_empty() || b < a {
            bail!(
                "{} row {}: need a name and end ≥ start",
                path.display(),
                i + 2
            );
        }
        out.push((field(0).to_owned(), a, b));
    }
    Ok(out)
}

/// A file's series resampled to a regular grid.
struct Loaded {
    start: i64,
    step: i64,
    y: Vec<f64>,
    filled: usize,
}

fn load_regular(series: &novaml_core::Series, step: Duration) -> Result<Loaded> {
    let step = step.as_secs() as i64;
    if step <= 0 {
        bail!("--freq must be at least 1s");
    }
    let pts: Vec<(i64, f64)> = series
        .points
        .iter()
        .map(|p| (p.ts.div_euclid(1000), p.value))
        .collect();
    let (start, y, filled) = resample_mean(&pts, step)?;
    Ok(Loaded {
        start,
        step,
        y,
        filled,
    })
}

pub(crate) fn run(args: Args) -> Result<()> {
    if !(0.0 < args.level && args.level < 100.0) {
        bail!("--level {} is not in (0, 100)", args.level);
    }
    let (series, _) = args.series.load()?;
    let l = load_regular(&series, args.freq)?;
    let horizon = (args.horizon.as_secs() as i64 / l.step).max(1) as usize;
    if let Some(cap) = args.cap {
        let max = l.y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !(cap.is_finite() && cap > max) {
            bail!(
                "--cap {cap} is not above the history's maximum {max}: the capacity is below current usage"
            );
        }
    }
    let cfg = SelectConfig {
        candidates: args.models.0.clone(),
        level: args.level / 100.0,
        options: ModelOptions {
            cap: args.cap,
            multiplicative: args.multiplicative,
            events: args
                .events
                .as_deref()
                .map(read_events)
                .transpose()?
                .unwrap_or_default(),
        },
        ..SelectConfig::default()
    };
    let t0 = Instant::now();
    let s = Regular {
        start: l.start,
        step: l.step,
        y: &l.y,
    };
    let sel = select_and_forecast(s, horizon, &cfg)?;
    let last = l.start + (l.y.len() as i64 - 1) * l.step;
    let mut w: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    writeln!(w, "timestamp,yhat,yhat_lower,yhat_upper")?;
    for h in 0..horizon {
        let t = last + (h as i64 + 1) * l.step;
        let ts = chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| t.to_string());
        writeln!(w, "{ts},{},{},{}", sel.yhat[h], sel.lower[h], sel.upper[h])?;
    }
    w.flush()?;
    let maes: Vec<String> = sel
        .backtest_mae
        .iter()
        .map(|(k, v)| format!("{}={v:.4}", k.as_str()))
        .collect();
    eprintln!(
        "model: {} (backtest MAE {}); {} rows at {}s ({} gaps filled), {horizon} steps ahead, {}% conformal interval, {:.2}s",
        sel.model.as_str(),
        maes.join(" "),
        l.y.len(),
        l.step,
        l.filled,
        args.level,
        t0.elapsed().as_secs_f64()
    );
    for (k, why) in &sel.failed {
        eprintln!("  {} failed: {why}", k.as_str());
    }
    Ok(())
}

/// Arguments of `novaml eval forecast`.
#[derive(Debug, clap::Args)]
pub(crate) struct EvalArgs {
    /// Input files (CSV or JSON lines).
    #[arg(long, num_args = 1.., required_unless_present = "m4", value_name = "FILE")]
    data: Vec<PathBuf>,
    /// The value column; files that lack it are an error.
    #[arg(long, required_unless_present = "m4")]
    column: Option<String>,
    /// Instead of --data: the M4 Hourly benchmark as published (a directory holding
    /// Hourly-train.csv and Hourly-test.csv): every series forecast 48 hours ahead, scored with
    /// M4's sMAPE, MASE and OWA next to the official results, and coverage at 50/80/95 %.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["data", "column", "test_fraction", "origins"])]
    m4: Option<PathBuf>,
    /// Resample to this step by the mean.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    freq: Duration,
    /// The held-out tail's share of each series.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Forecast from this many origins per series: origin 1 holds out the last --test-fraction,
    /// origin 2 the same length before it (fitting on what precedes), and so on. Intervals meet
    /// level shifts after some origins and not others; one origin is the classic split.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    origins: u32,
    /// Interval level in percent.
    #[arg(long, default_value_t = 80.0)]
    level: f64,
    /// Candidate models (comma-separated).
    #[arg(long, default_value = "seasonal_naive,seasonal_mean,mstl,prophet,ensemble", value_parser = parse_models)]
    models: Models,
    /// Weight of the interval's seasonal-difference floor (0: none); the default was chosen by
    /// cross-validation (bench/forecast_intervals.sh).
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    interval_floor: Option<f64>,
    /// Weight of the history's excess spread over the backtest window (0: none; with a 0
    /// floor, the interval comes from the backtest residuals alone); the default was chosen by
    /// cross-validation (bench/forecast_intervals.sh).
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    interval_excess: Option<f64>,
    /// Write the report (JSON) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(crate) fn eval(a: EvalArgs) -> Result<()> {
    if let Some(dir) = &a.m4 {
        return eval_m4(dir, &a);
    }
    let column = a
        .column
        .clone()
        .context("--column names the value column (or give --m4)")?;
    if !(0.0 < a.test_fraction && a.test_fraction < 1.0) {
        bail!("--test-fraction {} is not in (0, 1)", a.test_fraction);
    }
    if !(0.0 < a.level && a.level < 100.0) {
        bail!("--level {} is not in (0, 100)", a.level);
    }
    let pb = bar(a.data.len() as u64 * u64::from(a.origins));
    let cfg = eval_config(&a);
    let mut reports = Vec::new();
    for path in &a.data {
        pb.set_message(name_of(path));
        let input = super::SeriesInput {
            input: path.clone(),
            column: Some(column.clone()),
        };
        let (series, _) = input.load()?;
        let l = load_regular(&series, a.freq)?;
        let s = Regular {
            start: l.start,
            step: l.step,
            y: &l.y,
        };
        for origin in 0..a.origins as usize {
            reports.push(evaluate_origin(
                &path.display().to_string(),
                s,
                l.filled,
                a.test_fraction,
                origin,
                &cfg,
            )?);
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    let summary = summarize(&reports, &cfg.candidates);
    println!(
        "{:<36} {:>7} {:>7} {:>15} {:>7} {:>7} {:>7} {:>6} {:>17} {:>7}",
        "series",
        "rows",
        "train",
        "model",
        "MASE",
        "sMAPE",
        "wMAPE",
        "cov",
        "cov 50/80/95",
        "fit s"
    );
    for r in &reports {
        println!(
            "{:<36} {:>7} {:>7} {:>15} {:>7.3} {:>7.2} {:>7.2} {:>6.2} {:>17} {:>7.2}",
            name_of(Path::new(&r.file)),
            r.rows,
            r.train,
            r.model.as_str(),
            r.accuracy.mase,
            r.accuracy.smape,
            r.accuracy.wmape,
            r.accuracy.coverage,
            format!(
                "{:.2}/{:.2}/{:.2}",
                r.coverage[0], r.coverage[1], r.coverage[2]
            ),
            r.fit_seconds
        );
    }
    println!(
        "median MASE (selected) {:.3}; mean {:.0} % interval coverage {:.1} % (50/80/95 %: {:.1} / {:.1} / {:.1} %) over {} forecasts",
        summary.median_mase.unwrap_or(f64::NAN),
        a.level,
        100.0 * summary.mean_coverage,
        100.0 * summary.mean_coverage_levels[0],
        100.0 * summary.mean_coverage_levels[1],
        100.0 * summary.mean_coverage_levels[2],
        reports.len()
    );
    let pct = |(i, n): (usize, usize)| {
        if n == 0 {
            "none".to_owned()
        } else {
            format!("{i} of {n} ({:.0} %)", 100.0 * i as f64 / n as f64)
        }
    };
    println!(
        "runway (first step at the training part's 99th percentile and maximum): the real crossing inside the P10-P90 runway of the 80 % interval in {}; where it was reached within the forecast, {}",
        pct(summary.runway_inside),
        pct(summary.runway_inside_crossed)
    );
    println!(
        "median MASE per model, each forecasting directly: {}",
        summary
            .median_mase_per_model
            .iter()
            .map(|(k, v)| format!("{k} {:.3}", v.unwrap_or(f64::NAN)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(out) = &a.out {
        let json = serde_json::json!({
            "column": column,
            "freq_seconds": a.freq.as_secs(),
            "test_fraction": a.test_fraction,
            "origins": a.origins,
            "level": a.level,
            "season": "1 day",
            "series": reports,
            "median_mase": summary.median_mase,
            "mean_coverage": summary.mean_coverage,
            "mean_coverage_levels": summary.mean_coverage_levels,
            "runway_inside": summary.runway_inside,
            "runway_inside_crossed": summary.runway_inside_crossed,
            "median_mase_per_model": summary.median_mase_per_model,
        });
        std::fs::write(out, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

/// The selection settings of `novaml eval forecast`.
fn eval_config(a: &EvalArgs) -> SelectConfig {
    let d = SelectConfig::default();
    SelectConfig {
        candidates: a.models.0.clone(),
        level: a.level / 100.0,
        floor: a.interval_floor.unwrap_or(d.floor),
        excess: a.interval_excess.unwrap_or(d.excess),
        ..d
    }
}

/// `novaml eval forecast --m4 DIR`.
fn eval_m4(dir: &Path, a: &EvalArgs) -> Result<()> {
    use novaml_eval::m4;
    let series = m4::load(dir)
        .with_context(|| format!("cannot read the M4 Hourly files in {}", dir.display()))?;
    let cfg = eval_config(a);
    let pb = bar(series.len() as u64);
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for s in &series {
        pb.set_message(s.id.clone());
        match m4::evaluate(s, &cfg) {
            Ok(r) => results.push(r),
            Err(e) => failed.push(e),
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    for e in &failed {
        eprintln!("not scored: {e}");
    }
    let sum = m4::summarize(&results).context("no series could be scored")?;
    println!(
        "M4 Hourly: {} of {} series, {} hours ahead; novaml's model chosen per series by backtest on the training values only, among {}",
        sum.series,
        series.len(),
        m4::HORIZON,
        a.models
            .0
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{:<28} {:>7} {:>7} {:>7}", "method", "sMAPE", "MASE", "OWA");
    let ours = "novaml".to_owned();
    let mut rows: Vec<(String, f64, f64, f64)> = m4::PEERS
        .iter()
        .map(|(n, s, m, o)| ((*n).to_owned(), *s, *m, *o))
        .collect();
    rows.push((ours.clone(), sum.smape, sum.mase, sum.owa));
    rows.sort_by(|x, y| x.3.total_cmp(&y.3));
    for (name, smape, mase, owa) in &rows {
        let mark = if *name == ours { " <" } else { "" };
        println!("{name:<28} {smape:>7.3} {mase:>7.3} {owa:>7.3}{mark}");
    }
    println!(
        "interval coverage (backtest residuals, widened by the history's spread): 50 % -> {:.1} %, 80 % -> {:.1} %, 95 % -> {:.1} %",
        100.0 * sum.coverage[0],
        100.0 * sum.coverage[1],
        100.0 * sum.coverage[2]
    );
    println!("time per series: {:.3} s (mean)", sum.seconds_per_series);
    if let Some(out) = &a.out {
        let json = serde_json::json!({
            "benchmark": "M4 Hourly",
            "horizon": m4::HORIZON,
            "models": a.models.0,
            "summary": sum,
            "failed": failed,
            "series": results,
        });
        std::fs::write(out, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}
