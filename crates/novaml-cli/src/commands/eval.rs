//! `novaml eval`: the evaluation commands that produce the figures we publish.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use novaml_anomaly::multivariate::{Combine, MultivariateParams};
use novaml_anomaly::streaming::{DEFAULT_THRESHOLD, StreamingParams};
use novaml_eval::nab::{Corpus, CvReport, PROFILES, cross_validate, run_streaming};

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
    ///
    /// NAB picks each detector's threshold on the corpus it then scores, so that figure is
    /// in-sample. --cv prints the honest one too: leave one category out, choose the threshold
    /// (and, with --candidates, the parameter set) on the other categories, score the held-out
    /// one at that choice; per fold, pooled over the folds, and the in-sample figure beside it.
    ///
    /// Example:
    ///   novaml eval nab --data ../shared/data/nab --cv --candidates a.toml b.toml
    #[command(verbatim_doc_comment)]
    Nab(NabArgs),
    /// Run the multivariate detector over SMD (real servers) and score it with the data's rules.
    ///
    /// Per machine of <DATA> (machine-X-Y.{train,test}.csv.gz, interpretation_label/): the
    /// detector learns from the train half, then scores each test row in order (streaming).
    /// Writes <OUT>/machine-X-Y.csv with `score`, `alert` (its own decision at --threshold) and
    /// `top` (1-based metrics ranked by deviation, e.g. `13;9;14`): the files
    /// ../shared/data/smd/score.py reads, which gives the same figures as printed here.
    /// Prints event-wise F1 at the own alerts and at the oracle threshold (one for all
    /// machines), average precision, point-adjusted F1 (optimistic, for papers) and
    /// HitRate@100/150 %.
    ///
    /// The oracle figure is chosen on the data it reports. --cv prints the honest one too:
    /// leave one machine out, choose the alert threshold on the others, score the held-out one
    /// at it; per fold, pooled, and the in-sample figure beside it.
    ///
    /// Example:
    ///   novaml eval smd --data ../shared/data/smd --out smd-scores --cv
    #[command(verbatim_doc_comment)]
    Smd(SmdArgs),
    /// Forecast the held-out tail of each series and score it (MASE, sMAPE, wMAPE, coverage).
    ///
    /// Each file's --column is resampled to --freq by the mean; the last --test-fraction is held
    /// out; the model is selected by a rolling-origin backtest on the rest and forecasts the whole
    /// tail in one go, with a conformal interval. MASE is scaled by the in-sample seasonal naive
    /// MAE (season: one day of steps, 24 at 1h). Every candidate's own direct forecast is scored
    /// too, so the peers' figures come from the same run. Coverage is reported at the --level
    /// and at 50/80/95 %. With --origins K each series is forecast K times: from the origin
    /// before its last --test-fraction, the one before the stretch before that, and so on, so
    /// the intervals meet level shifts that came after some origins and not others.
    ///
    /// Examples:
    ///   novaml eval forecast --data ../shared/data/vm-traces/bitbrains/*.csv --column cpu_pct \
    ///     --freq 1h --test-fraction 0.2 --out report.json
    ///   novaml eval forecast --data ../shared/data/vm-traces/bitbrains/*.csv --column cpu_pct \
    ///     --freq 1h --test-fraction 0.2 --origins 3
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
    /// A fleet's training round and prediction round with one global model: the simulator's VM
    /// CPU series (SIMULATED data, --vms of them), the global trees fitted once on all of them,
    /// each series calibrated, then one forecast of every series (12 steps, median and 80 %
    /// interval); prints the wall time of each round and the cost per series.
    ///
    /// Example:
    ///   novaml eval fleet --vms 10000 --days 4
    #[command(verbatim_doc_comment)]
    Fleet(super::predict::FleetArgs),
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
    /// Also cross-validate: leave one category out, choose on the others, score it.
    #[arg(long)]
    cv: bool,
    /// Parameter sets (TOML, like --params) that --cv chooses among, next to --params or the
    /// defaults.
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "cv")]
    candidates: Vec<PathBuf>,
    /// A grid of candidates for --cv: TOML whose keys take a list of values (a single value
    /// stays fixed), e.g. `suppress = [15, 30, 60]`; every combination is a candidate.
    #[arg(long, value_name = "FILE", requires = "cv")]
    grid: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SmdArgs {
    /// The SMD directory (machine-X-Y.train.csv.gz, machine-X-Y.test.csv.gz,
    /// interpretation_label/).
    #[arg(long, default_value = "../shared/data/smd")]
    data: PathBuf,
    /// Where to write one score file per machine.
    #[arg(long, default_value = "smd-scores")]
    out: PathBuf,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Per-metric detector parameters as TOML (keys of StreamingParams); the defaults otherwise.
    #[arg(long, value_name = "FILE")]
    params: Option<PathBuf>,
    /// The own alerts: rows whose reported score is at least this (in [0, 1]).
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f64,
    /// Metrics listed in `top` per row (0: all of them, which HitRate@150 % needs: it reads
    /// up to 1.5 times as many as an incident's explaining metrics).
    #[arg(long, default_value_t = 0)]
    top: usize,
    /// How the short-window members and the long-memory member combine: short, confirmed
    /// (both agree), long, mean. The default is the rule the leave-one-machine-out run chose
    /// (see --cv).
    #[arg(long, default_value_t = MultivariateParams::default().combine)]
    combine: Combine,
    /// Also cross-validate: leave one machine out, choose the rule and the alert threshold on
    /// the others, score it; then the threshold alone for --combine.
    #[arg(long)]
    cv: bool,
}

pub(crate) fn run(args: Args) -> Result<()> {
    match args.what {
        What::Nab(a) => nab(a),
        What::Smd(a) => smd(a),
        What::Forecast(a) => super::forecast::eval(a),
        What::Predict(a) => super::predict::eval(a),
        What::Fleet(a) => super::predict::fleet(a),
    }
}

fn nab(a: NabArgs) -> Result<()> {
    let params = match &a.params {
        Some(p) => read_params(p)?,
        None => StreamingParams::default().check()?,
    };
    // Read the candidates before the long run, so a bad file fails at once.
    let mut candidates = a
        .candidates
        .iter()
        .map(|p| read_params(p))
        .collect::<Result<Vec<_>>>()?;
    if let Some(g) = &a.grid {
        candidates.extend(read_grid(g)?);
    }
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
    let cv = if a.cv {
        Some(nab_cv(&corpus, run.scores.clone(), &candidates, &mut out)?)
    } else {
        None
    };
    if let Some(p) = a.json {
        let mut v = serde_json::to_value(&run)?;
        if let (Some(o), Some(cv)) = (v.as_object_mut(), cv) {
            o.insert("cross_validation".into(), serde_json::to_value(cv)?);
        }
        std::fs::write(&p, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

fn smd(a: SmdArgs) -> Result<()> {
    use novaml_eval::smd;
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.threshold),
        "--threshold must be in [0, 1] (scores are), not {}",
        a.threshold
    );
    let params = match &a.params {
        Some(p) => read_params(p)?,
        None => StreamingParams::default().check()?,
    };
    let names = smd::machine_names(&a.data)
        .with_context(|| format!("cannot list SMD machines in {}", a.data.display()))?;
    anyhow::ensure!(
        !names.is_empty(),
        "no machine-X-Y.test.csv.gz in {}",
        a.data.display()
    );
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let cfg = smd::RunConfig {
        params,
        multivariate: MultivariateParams {
            combine: a.combine,
            ..MultivariateParams::default()
        },
        threshold: a.threshold,
        top: if a.top == 0 { usize::MAX } else { a.top },
    };
    let bar = indicatif::ProgressBar::new(names.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} machines {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut labels = Vec::with_capacity(names.len());
    let mut runs = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        bar.set_message(name.clone());
        bar.set_position(i as u64);
        let machine = smd::Machine::load(&a.data, name)
            .with_context(|| format!("cannot load {name} from {}", a.data.display()))?;
        let run = smd::run_machine(&machine, &cfg)?;
        let path = a.out.join(format!("{name}.csv"));
        run.scores
            .write_csv(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        labels.push(machine.labels);
        runs.push(run);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let scores: Vec<smd::Scores> = runs.iter().map(|r| r.scores.clone()).collect();
    let report = smd::score(&labels, &scores)?;
    let mut out = std::io::stdout().lock();
    let o = &report.overall;
    writeln!(
        out,
        "SMD, {} machines, {} anomaly segments ({seconds:.0} s, {:.1} s per machine)",
        o.machines,
        o.segments,
        seconds / o.machines as f64
    )?;
    writeln!(
        out,
        "{:<13} {:>5} {:>7} {:>9} {:>11} {:>5} {:>9} {:>11} {:>5} {:>7} {:>7} {:>7}",
        "machine",
        "segs",
        "AUC-PR",
        "bestEvF1",
        "(P/R)",
        "FA",
        "alertF1",
        "(P/R)",
        "FA",
        "PA-F1*",
        "HR@100",
        "HR@150"
    )?;
    // Our run always writes alerts and rankings; NaN would mark their absence.
    let no_alerts = smd::OwnAlerts {
        alert_event_f1: f64::NAN,
        alert_event_p: f64::NAN,
        alert_event_r: f64::NAN,
        alert_false_alarms: 0,
    };
    let no_ranking = smd::HitRates {
        hitrate100: f64::NAN,
        hitrate150: f64::NAN,
    };
    for m in &report.machines {
        let (own, hr) = (m.own.unwrap_or(no_alerts), m.hitrates.unwrap_or(no_ranking));
        writeln!(
            out,
            "{:<13} {:>5} {:>7.3} {:>9.3} {:>5.2}/{:<5.2} {:>5} {:>9.3} {:>5.2}/{:<5.2} {:>5} {:>7.3} {:>7.3} {:>7.3}",
            m.machine,
            m.segments,
            m.auc_pr,
            m.best_event_f1,
            m.best_event_p,
            m.best_event_r,
            m.best_event_false_alarms,
            own.alert_event_f1,
            own.alert_event_p,
            own.alert_event_r,
            own.alert_false_alarms,
            m.pa_f1,
            hr.hitrate100,
            hr.hitrate150,
        )?;
    }
    let (own, hr) = (o.own.unwrap_or(no_alerts), o.hitrates.unwrap_or(no_ranking));
    writeln!(
        out,
        "event F1 at the own alerts (score >= {}): {:.3} (P {:.3} R {:.3}, {} false alarms)",
        a.threshold,
        own.alert_event_f1,
        own.alert_event_p,
        own.alert_event_r,
        own.alert_false_alarms
    )?;
    writeln!(
        out,
        "event F1 at the oracle threshold, one for all machines (in-sample): {:.3} (P {:.3} R {:.3}, {} false alarms); per-machine oracle mean {:.3}",
        o.event_f1_global,
        o.event_p_global,
        o.event_r_global,
        o.event_false_alarms_global,
        o.event_f1_per_machine_mean
    )?;
    writeln!(
        out,
        "AUC-PR mean {:.3}, pooled {:.3}; PA-F1* (point-adjusted, optimistic) {:.3}; HitRate@100 % {:.3}, @150 % {:.3}",
        o.auc_pr_mean, o.auc_pr_pooled, o.pa_f1_global, hr.hitrate100, hr.hitrate150
    )?;
    writeln!(
        out,
        "peers on the dev machines (../shared/data/README.md): robust z-score max event F1 0.545 \
         (own threshold 0.018), HitRate@150 % 0.679"
    )?;
    let cv = if a.cv {
        let by_rule: Vec<Vec<Vec<f64>>> = (0..Combine::ALL.len())
            .map(|i| runs.iter().map(|r| r.reported_by_rule[i].clone()).collect())
            .collect();
        let candidates: Vec<smd::Candidate<'_>> = Combine::ALL
            .iter()
            .zip(&by_rule)
            .map(|(c, r)| smd::Candidate {
                name: c.name(),
                reported: r,
            })
            .collect();
        let reported: Vec<Vec<f64>> = runs.iter().map(|r| r.reported.clone()).collect();
        let given = [smd::Candidate {
            name: a.combine.name(),
            reported: &reported,
        }];
        let mut both = Vec::with_capacity(2);
        for (title, cands) in [
            (
                "leave one machine out, rule and alert threshold chosen on the others:".to_owned(),
                &candidates[..],
            ),
            (
                format!(
                    "leave one machine out, alert threshold chosen on the others, rule {} fixed (in-sample where the run above chose it on all):",
                    a.combine
                ),
                &given[..],
            ),
        ] {
            let cv = smd::cross_validate(&labels, cands)?;
            writeln!(out, "{title}")?;
            for f in &cv.folds {
                writeln!(
                    out,
                    "  {:<13} {:<9} threshold {:<5} detected {:>2}/{:<2} false alarms {:>4}  F1 {:.3}",
                    f.machine,
                    f.candidate,
                    f.threshold,
                    f.detected,
                    f.segments,
                    f.false_alarms,
                    f.f1
                )?;
            }
            writeln!(
                out,
                "  held out: event F1 {:.3} (P {:.3} R {:.3}); in-sample ({} at {} chosen on all): {:.3}",
                cv.held_out_f1,
                cv.held_out_p,
                cv.held_out_r,
                cv.in_sample_candidate,
                cv.in_sample_threshold,
                cv.in_sample_f1
            )?;
            both.push(cv);
        }
        Some(both)
    } else {
        None
    };
    if let Some(p) = a.json {
        let mut v = serde_json::to_value(&report)?;
        if let (Some(o), Some([rule_and_threshold, threshold])) = (
            v.as_object_mut(),
            cv.and_then(|b| <[_; 2]>::try_from(b).ok()),
        ) {
            o.insert(
                "cross_validation".into(),
                serde_json::json!({
                    "rule_and_threshold": rule_and_threshold,
                    "threshold": threshold,
                }),
            );
        }
        std::fs::write(&p, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

fn read_params(p: &std::path::Path) -> Result<novaml_anomaly::streaming::ValidStreamingParams> {
    let text =
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    let params: StreamingParams = toml::from_str(&text)
        .with_context(|| format!("invalid detector parameters in {}", p.display()))?;
    params
        .check()
        .with_context(|| format!("invalid detector parameters in {}", p.display()))
}

/// Every combination of a grid file's values, checked.
fn read_grid(p: &std::path::Path) -> Result<Vec<novaml_anomaly::streaming::ValidStreamingParams>> {
    let text =
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("invalid grid in {}", p.display()))?;
    let mut combos = vec![toml::Table::new()];
    for (key, value) in table {
        let values = match value {
            toml::Value::Array(vs) if vs.is_empty() => {
                anyhow::bail!("{}: {key} has an empty list of values", p.display())
            }
            toml::Value::Array(vs) => vs,
            v => vec![v],
        };
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for c in &combos {
            for v in &values {
                let mut c = c.clone();
                c.insert(key.clone(), v.clone());
                next.push(c);
            }
        }
        combos = next;
        anyhow::ensure!(
            combos.len() <= 10_000,
            "{}: more than 10,000 combinations",
            p.display()
        );
    }
    combos
        .into_iter()
        .map(|c| {
            let what = toml::to_string(&c).unwrap_or_default().replace('\n', " ");
            let params: StreamingParams = toml::Value::Table(c)
                .try_into()
                .with_context(|| format!("{}: invalid combination {what}", p.display()))?;
            params
                .check()
                .with_context(|| format!("{}: invalid combination {what}", p.display()))
        })
        .collect()
}

/// Leave-one-category-out over the candidates (the run's own scores first), printed per profile.
fn nab_cv(
    corpus: &Corpus,
    first: Vec<Vec<f64>>,
    candidates: &[novaml_anomaly::streaming::ValidStreamingParams],
    out: &mut impl Write,
) -> Result<Vec<CvReport>> {
    let mut all = vec![first];
    if !candidates.is_empty() {
        let bar = indicatif::ProgressBar::new((candidates.len() * corpus.files.len()) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} candidate files {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        for (k, c) in candidates.iter().enumerate() {
            let run = run_streaming(corpus, c, DEFAULT_THRESHOLD, &mut |i| {
                bar.set_message(format!("candidate {}", k + 1));
                bar.set_position((k * corpus.files.len() + i) as u64);
            })?;
            all.push(run.scores);
        }
        bar.finish_and_clear();
    }
    writeln!(
        out,
        "\nleave one category out ({} candidate{}; threshold and candidate chosen on the other categories):",
        all.len(),
        if all.len() == 1 { "" } else { "s" }
    )?;
    let mut reports = Vec::new();
    for p in PROFILES {
        let r = cross_validate(corpus, &all, p)?;
        writeln!(
            out,
            "{:<20} held-out {:>6.2} pooled, {:>6.2} mean of folds; in-sample {:>6.2} (gap {:+.2})",
            r.profile,
            r.pooled,
            r.mean,
            r.in_sample.normalized,
            r.in_sample.normalized - r.pooled
        )?;
        for f in &r.folds {
            writeln!(
                out,
                "  {:<22} {:>3} files  score {:>7.2}  raw {:>7.2}  threshold {:>7.4}  TP {:>3} FN {:>3} FP {:>4}  candidate {}",
                f.held_out,
                f.files,
                f.score.normalized,
                f.score.raw,
                f.score.threshold,
                f.score.true_positives,
                f.score.false_negatives,
                f.score.false_positives,
                f.candidate
            )?;
        }
        reports.push(r);
    }
    Ok(reports)
}
