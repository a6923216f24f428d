//! `novaml features`: a file in, a feature table out.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use novaml_features::{FeatureConfig, build};

/// Arguments of `novaml features`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    series: super::SeriesInput,
    /// Output CSV (stdout when unset).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Feature settings as TOML (keys of FeatureConfig: windows, quantiles, zscore_window,
    /// ewma_alphas, lags, fft_window, spike_z, calendar). Defaults suit 5-minute data.
    #[arg(long, value_name = "FILE")]
    features: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let cfg: FeatureConfig = match &args.features {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )
        .with_context(|| format!("invalid feature settings in {}", p.display()))?,
        None => FeatureConfig::default(),
    };
    let (series, skipped) = args.series.load()?;
    let frame = build(&series.timestamps(), &series.values(), &cfg)
        .map_err(|e| anyhow!("{}: {e}", args.series.input.display()))?;
    let out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["timestamp".to_owned()];
    header.extend(frame.names.iter().cloned());
    w.write_record(&header)?;
    let mut record: Vec<String> = Vec::with_capacity(header.len());
    for i in 0..frame.rows() {
        record.clear();
        record.push(
            chrono::DateTime::from_timestamp_millis(frame.timestamps[i]).map_or_else(
                || frame.timestamps[i].to_string(),
                |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ),
        );
        record.extend(frame.columns.iter().map(|c| {
            if c[i].is_finite() {
                format!("{}", c[i])
            } else {
                String::new()
            }
        }));
        w.write_record(&record)?;
    }
    w.flush()?;
    eprintln!(
        "{} rows × {} features from {} ({} rows skipped on import)",
        frame.rows(),
        frame.names.len(),
        args.series.input.display(),
        skipped
    );
    Ok(())
}
