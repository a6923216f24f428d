//! `novaml eval`: the evaluation commands that produce the figures we publish.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use novaml_anomaly::streaming::{DEFAULT_THRESHOLD, StreamingParams};
use novaml_eval::nab::{Corpus, run_streaming};

/// Evaluations on real data.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Run the streaming anomaly detector over the NAB corpus and score it with NAB v1.1's rules.
    ///
    /// Reads every CSV under <DATA>/data that has windows in <DATA>/labels/combined_windows.json,
    /// writes <OUT>/<category>/<name>.csv (timestamp,value,anomaly_score) per file, and prints the
    /// normalised score for the three NAB profiles. The detector is streaming (each score uses
    /// only earlier rows) and uses the same parameters on every file.
    Nab(NabArgs),
    /// Forecast the held-out tail of each series and score it (MASE, sMAPE, wMAPE, coverage).
    ///
    /// Each file's --column is resampled to --freq by the mean; the last --test-fraction is held
    /// out; the model is selected by a rolling-origin backtest on the rest and forecasts the whole
    /// tail in one go, with a conformal interval. MASE is scaled by the in-sample seasonal naive
    /// MAE (season: one day of steps, 24 at 1h). Every candidate's own direct forecast is scored
    /// too, so the peers' figures come from the same run.
    ///
    /// Example:
    ///   novaml eval forecast --data ../shared/data/vm-traces/bitbrains/*.csv --column cpu_pct \
    ///     --freq 1h --test-fraction 0.2 --out report.json
    #[command(verbatim_doc_comment)]
    Forecast(super::forecast::EvalArgs),
    /// Predict the last --test-fraction of each series from every origin and score each step.
    ///
    /// Each file's --column is put on a --step grid; rows split in time into training,
    /// validation (early stopping, conformal interval calibration, model selection) and test.
    /// Every model predicts the next --horizon steps from every test origin; per step: MAE,
    /// MAE relative to naive (last value), sMAPE, MASE, accuracy@5 % and interval coverage.
    /// Models: naive, seasonal naive, ridge and gradient-boosted trees on lag features, the LSTM,
    /// and the ensemble, which weighs the others (the LSTM as four networks from consecutive
    /// seeds) on the validation rows, one set of weights for all steps (a weight of 0 drops a
    /// model, so the LSTM counts only where it helps), or keeps the best model alone unless the
    /// mix is better by more than one standard error. "selected" is the model with the lowest
    /// validation MAE per series.
    ///
    /// Example:
    ///   novaml eval predict --data ../shared/data/vm-traces/bitbrains/*.csv --column cpu_pct \
    ///     --horizon 12 --out report.json --predictions preds/
    #[command(verbatim_doc_comment)]
    Predict(super::predict::EvalArgs),
}

#[derive(Debug, clap::Args)]
struct NabArgs {
    /// The NAB directory (holding data/ and labels/).
    #[arg(long, default_value = "../shared/data/nab")]
    data: PathBuf,
    /// Where to write the per-file results.
    #[arg(long, default_value = "nab-results")]
    out: PathBuf,
    /// Write the scores as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Detector parameters as TOML (keys of StreamingParams); the defaults otherwise.
    #[arg(long, value_name = "FILE")]
    params: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    match args.what {
        What::Nab(a) => nab(a),
        What::Forecast(a) => super::forecast::eval(a),
        What::Predict(a) => super::predict::eval(a),
    }
}

fn nab(a: NabArgs) -> Result<()> {
    let corpus = Corpus::load(&a.data)
        .with_context(|| format!("cannot load the NAB corpus in {}", a.data.display()))?;
    anyhow::ensure!(
        !corpus.files.is_empty(),
        "no labelled data files under {}",
        a.data.display()
    );
    let bar = indicatif::ProgressBar::new(corpus.files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let params: StreamingParams = match &a.params {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )
        .with_context(|| format!("invalid detector parameters in {}", p.display()))?,
        None => StreamingParams::default(),
    };
    let params = params.check()?;
    let run = run_streaming(&corpus, &params, DEFAULT_THRESHOLD, &mut |i| {
        bar.set_message(corpus.files[i].name.clone());
        bar.set_position(i as u64);
    })?;
    bar.finish_and_clear();
    for (f, scores) in corpus.files.iter().zip(&run.scores) {
        let path = a.out.join(&f.name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        writeln!(w, "timestamp,value,anomaly_score")?;
        for ((t, v), s) in f.timestamps.iter().zip(&f.values).zip(scores) {
            let ts = chrono::DateTime::from_timestamp_millis(*t).map_or_else(
                || t.to_string(),
                |d| d.format("%Y-%m-%d %H:%M:%S").to_string(),
            );
            writeln!(w, "{ts},{v},{s}")?;
        }
        w.flush()?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "NAB v1.1, {} files, {} windows",
        corpus.files.len(),
        corpus.files.iter().map(|f| f.windows.len()).sum::<usize>()
    )?;
    writeln!(
        out,
        "{:<20} {:>8} {:>10} {:>4} {:>4} {:>5}",
        "profile", "score", "threshold", "TP", "FN", "FP"
    )?;
    for r in &run.profiles {
        writeln!(
            out,
            "{:<20} {:>8.2} {:>10.4} {:>4} {:>4} {:>5}",
            r.profile,
            r.normalized,
            r.threshold,
            r.true_positives,
            r.false_negatives,
            r.false_positives
        )?;
    }
    let rates = &run.default_operating_point;
    writeln!(
        out,
        "default operating point (score >= {}): point-wise FP rate {:.2} %, point recall {:.2} %, windows detected {:.1} %",
        rates.threshold,
        100.0 * rates.false_positive_rate,
        100.0 * rates.point_recall,
        100.0 * rates.window_recall
    )?;
    if let Some(p) = a.json {
        std::fs::write(&p, serde_json::to_string_pretty(&run)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}
