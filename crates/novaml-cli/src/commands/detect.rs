//! `novaml detect`: incidents of one series from a file.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use novaml_anomaly::incident::detect;
use novaml_anomaly::streaming::{DEFAULT_THRESHOLD, StreamingParams};

/// Arguments of `novaml detect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    series: super::SeriesInput,
    /// A row is anomalous when its score is at least this (scores are in [0, 1]).
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f64,
    /// Anomalies closer than this many rows to an open incident join it.
    #[arg(long, default_value_t = 12)]
    merge_gap: usize,
    /// Write the incidents here (JSON) instead of stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    if !(0.0..=1.0).contains(&args.threshold) {
        bail!("--threshold {} is outside [0, 1]", args.threshold);
    }
    let (series, _) = args.series.load()?;
    let params = StreamingParams::default()
        .check()
        .map_err(|e| anyhow!("{e}"))?;
    let incidents = detect(
        &series.key.name,
        &series.timestamps(),
        &series.values(),
        params,
        args.threshold,
        args.merge_gap,
    );
    let json = serde_json::json!({
        "series": series.key.to_string(),
        "rows": series.points.len(),
        "threshold": args.threshold,
        "incidents": incidents,
    });
    let text = serde_json::to_string_pretty(&json)?;
    match &args.out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => println!("{text}"),
    }
    eprintln!(
        "{} incidents in {} rows of {}",
        incidents.len(),
        series.points.len(),
        args.series.input.display()
    );
    Ok(())
}
