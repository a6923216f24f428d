//! `novaml`: machine-learning operations for a private VM cloud. This binary is a thin front end
//! over the library crates; see `novaml --help`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Machine-learning operations for a private cloud of VMs: collect metrics, engineer features,
/// and (in later commands) predict, detect anomalies, forecast capacity and tune safely.
#[derive(Debug, Parser)]
#[command(
    name = "novaml",
    version,
    propagate_version = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Log filter, as in RUST_LOG (e.g. `info`, `novaml_collect=debug`).
    #[arg(long, global = true, env = "NOVAML_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the main job on embedded defaults: collect, detect, predict, plan and tune, with the
    /// dashboards, the API and /metrics.
    ///
    /// Collects this host (every 5 s) and a simulated cluster (3 hosts × 4 VMs and the platform's
    /// transfer metrics, with injected incidents; 3 days of history on the first run) into SQLite
    /// under --data-dir; detects anomalies every --detect-every seconds, trains and predicts every
    /// --train-every minutes, plans capacity every 5 minutes and tunes the transfer engine every
    /// --tune-every minutes. Serves the dashboards (/dashboards/pipeline, …), the JSON API
    /// (/api/openapi.json) and /metrics on --listen, and prints the link with the API token. Stop
    /// with Ctrl-C; a restart continues where the stored data ends.
    Demo(commands::demo::Args),
    /// Collect metrics once (a range, to CSV/JSON lines or the store), or keep going (--follow).
    ///
    /// Sources come from --config and/or the quick flags (--prometheus with --query, --scrape,
    /// --host, --file). Without --follow, each source is collected once: a Prometheus source fetches
    /// the range --from..--to, the others their current values. With --follow, collection runs into
    /// the store until Ctrl-C, resuming from the last stored point after a restart.
    ///
    /// Examples:
    ///   novaml collect --prometheus http://127.0.0.1:9090 --query up=up --from 2h --out up.csv
    ///   novaml collect --scrape http://127.0.0.1:9100/metrics --out node.jsonl
    ///   novaml collect --config novaml.toml --follow --listen 127.0.0.1:8601
    #[command(verbatim_doc_comment)]
    Collect(commands::collect::Args),
    /// Serve a real cluster from a configuration file: collect its sources, detect anomalies as
    /// configured, plan capacity (--plan), show a model registry (--models), with the API,
    /// the dashboards and /metrics.
    ///
    /// The same pipeline as `demo`, on your sources instead of the simulator.
    ///
    /// Example:
    ///   novaml serve --config novaml.toml --plan 'node_cpu_utilisation_percent' --models novaml-models
    Serve(commands::serve::Args),
    /// Compute features of one series from a file (CSV in, feature table CSV out).
    ///
    /// Reads one series from a CSV or JSON-lines file and writes its features as CSV: `timestamp`
    /// then one column per feature (calendar, rolling mean/std/min/max/quantiles, z-score, EWMA,
    /// differences, lags, FFT spectra, rows since the last spike). Every feature of a row uses only
    /// that row and earlier ones. Cells without enough history are empty.
    ///
    /// Example:
    ///   novaml features --in ../shared/data/vm-traces/bitbrains/vm_194.csv --column cpu_pct --out f.csv
    #[command(verbatim_doc_comment)]
    Features(commands::features::Args),
    /// Find the anomalies in a file and print them as incidents (JSON).
    ///
    /// Runs the streaming detector (each score uses only earlier rows) and merges anomalous rows
    /// into incidents with start, end, peak, type (from the metric name and direction), severity
    /// (from the score and absolute limits per metric kind), the metrics that deviated most
    /// (value, baseline mean, p95, z), the detectors' scores and recommended actions.
    /// A file with several value columns and no --column is one entity (e.g. a VM): all its
    /// metrics are scored together (multivariate). With --db the incidents are recorded (and
    /// labelled later with `novaml incidents`); --alertmanager / --webhook deliver new ones.
    ///
    /// Examples:
    ///   novaml detect --in ../shared/data/nab/data/realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv
    ///   novaml detect --in ../shared/data/vm-traces/bitbrains/vm_194.csv --db incidents.db
    ///   novaml detect --in latency.csv --alertmanager http://127.0.0.1:9093 \
    ///     --maintenance '{host="h1"};2026-11-27T10:00:00Z;2026-11-27T12:00:00Z;kernel upgrade'
    #[command(verbatim_doc_comment)]
    Detect(commands::detect::Args),
    /// List incidents, label them true/false positive, and see the precision the labels give.
    ///
    /// Examples:
    ///   novaml incidents list --label none
    ///   novaml incidents label 12 fp --note "backup window"
    ///   novaml incidents stats
    #[command(verbatim_doc_comment)]
    Incidents(commands::incidents::Args),
    /// Forecast one series from a file with a calibrated interval (CSV out).
    ///
    /// Resamples --column to --freq by the mean, selects a model (seasonal naive, linear trend,
    /// AutoETS, MSTL, Prophet, ensemble) by a rolling-origin backtest, forecasts --horizon ahead
    /// and adds a conformal --level % interval from the winner's backtest errors. Writes
    /// timestamp,yhat,yhat_lower,yhat_upper; names the chosen model on stderr.
    ///
    /// Example:
    ///   novaml forecast --in ../shared/data/vm-traces/bitbrains/vm_192.csv --column cpu_pct \
    ///     --freq 1h --horizon 30d --level 80 --out forecast.csv
    #[command(verbatim_doc_comment)]
    Forecast(commands::forecast::Args),
    /// Plan capacity: runway per resource as P10/P50/P90, bottleneck, hosts to add, cost, what-if.
    ///
    /// Reads utilisation series (percent of each host's capacity, from files or the store) per
    /// host and resource, forecasts each host and the cluster mean (model chosen by backtest,
    /// 80 % conformal interval = P10..P90), and writes plan.json, summary.txt and one SVG chart
    /// per resource into the output directory. See config/plan.example.toml.
    ///
    /// Example:
    ///   novaml plan --config config/plan.example.toml --out plan
    #[command(verbatim_doc_comment)]
    Plan(commands::plan::Args),
    /// Train a performance predictor (LSTM or a baseline) on one series and register it.
    ///
    /// The series (--column, plus --covariates as extra inputs) is put on a --step grid; rows
    /// are split in time: training, validation (early stopping, interval calibration), and a
    /// final --holdout on which the new model is compared with the serving one (champion/
    /// challenger): it serves only if its MAE there is lower. Every version is kept in --models
    /// (config.json, weights.bin, scalers.json, meta.json). Training shows loss per epoch, writes
    /// a checkpoint after each, and --resume continues from it.
    ///
    /// Examples:
    ///   novaml train --in ../shared/data/vm-traces/bitbrains/vm_192.csv --column cpu_pct
    ///   novaml train --in vm.csv --column cpu_pct --layers 128,128,128 --bidirectional --attention
    #[command(verbatim_doc_comment)]
    Train(commands::predict::TrainArgs),
    /// Predict the next --horizon steps of a series with a registered model (JSON out).
    ///
    /// Uses the serving version (or --version), the file's most recent rows, and prints the
    /// forecast with its interval; with --slo, also the probability that the metric crosses
    /// the threshold within the horizon (degradation risk).
    ///
    /// Example:
    ///   novaml predict --in vm.csv --column cpu_pct --name vm_192.cpu_pct --slo 90
    #[command(verbatim_doc_comment)]
    Predict(commands::predict::PredictArgs),
    /// List registered models, show versions and metrics, promote or roll back.
    Models(commands::predict::ModelsArgs),
    /// Measure one run of a tuning environment and print it as JSON.
    ///
    /// The transfer environment sends a reproducible VM-memory-like payload over N parallel TCP
    /// streams on loopback through an emulated link (bandwidth, RTT, per-stream window), with
    /// chunking, compression (zstd 1-19 with optional long window, lz4, none) and optional delta
    /// encoding against the previous round; the receiver checks every byte. Reported: goodput,
    /// CPU seconds, compression ratio, bytes on the wire. External tools (e.g. Optuna) can drive
    /// the same environment through this command.
    ///
    /// Examples:
    ///   novaml env-eval --list
    ///   novaml env-eval --scenario wan-100m --params '{"algorithm":"zstd","level":6,"streams":8}'
    #[command(verbatim_doc_comment)]
    EnvEval(commands::tune::EnvEvalArgs),
    /// Tune a system's parameters: Bayesian optimisation, RL, random or grid search.
    ///
    /// Measures the default configuration, then --budget - 1 configurations proposed by
    /// --tuner, under --constraint bounds (a configuration predicted to break them is not
    /// tried). Then measures the default and the best --repeats times each, interleaved, and
    /// reports the improvement with its 95 % interval and, for the built-in transfer
    /// scenarios, the share of the exhaustive-grid optimum (its cached configuration measured
    /// in the same rounds). With --apply, the best is
    /// applied under guardrails: canary, then a sequential test that rolls back automatically
    /// on a regression; every change goes to STATE/audit.jsonl, and --revert undoes the last.
    ///
    /// Examples:
    ///   novaml tune --env transfer --scenario wan-100m --tuner bo --budget 30 --seed 1 --out result.json
    ///   novaml tune --scenario wan-1g --constraint 'cpu_seconds_per_gib<=3' --apply
    ///   novaml tune --env command --space space.json --command ./apply-and-measure.sh --objective p99_ms --minimize
    #[command(verbatim_doc_comment)]
    Tune(commands::tune::TuneArgs),
    /// Measure the transfer engine's whole grid in one scenario and cache its optimum.
    ///
    /// Runs every point of the grid (480 configurations: zstd levels 1/3/6/12/19 with and
    /// without long window, lz4, none; chunks 64-4096 KiB; 1-16 streams; delta on/off), then
    /// re-measures the best few; the best mean is the optimum that `novaml tune` reports its
    /// share of. Takes 10-20 minutes per scenario on two cores.
    ///
    /// Example:
    ///   novaml tune-grid --scenario wan-100m --out crates/novaml-tune/optimum/wan-100m.json
    #[command(verbatim_doc_comment)]
    TuneGrid(commands::tune::GridArgs),
    /// Evaluate on real data (NAB anomaly benchmark, …) and print the figures.
    Eval(commands::eval::Args),
}

/// Fixed glibc malloc thresholds: blocks of 1 MiB and more are mapped and unmapped on their own,
/// and free memory over 1 MiB at a heap's top goes back to the system. glibc's default raises
/// both thresholds as large blocks are freed (up to 32/64 MiB), after which freed answers, tuning
/// frames and training buffers stay in the heaps of the threads that freed them: `novaml demo`
/// grew from 383 to 547 MB over six tuning runs and never gave it back, and 260 to 354 MB over
/// the hour of bench/soak.sh. With these thresholds the same six runs end at 46 MB
/// (GLIBC_TUNABLES experiment, issue #23's closing note).
///
/// And one malloc arena per core, not glibc's eight per core: freed memory is kept per arena in partly
/// used pages that trimming cannot return, so each extra arena holds its own few MB. In the
/// hour's soak with 16 arenas (2 cores) RSS grew 42 → 62 MB while the heap in use grew 7.8 → 9.6
/// MB; with 2 (`MALLOC_ARENA_MAX=2 bash bench/soak.sh 20m 300`, 2026-12-07) 32 → 33 MB, against
/// 43 → 47 MB over the first 20 minutes of the hour with 16. An operator's own
/// `MALLOC_ARENA_MAX` wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_freed_memory_promptly() {
    const ONE_MIB: libc::c_int = 1 << 20;
    let arenas = std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(1, 64) as libc::c_int;
    let own_arenas = std::env::var_os("MALLOC_ARENA_MAX").is_some();
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts
    // (clap's parsing starts none).
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, ONE_MIB);
        libc::mallopt(libc::M_TRIM_THRESHOLD, ONE_MIB);
        if !own_arenas {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory_promptly() {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The long-running commands only: one-shot evaluations and training keep glibc's faster
    // defaults, and their memory goes back when they exit.
    let long_running = matches!(
        cli.command,
        Command::Demo(_) | Command::Serve(_) | Command::Collect(_)
    );
    if long_running {
        release_freed_memory_promptly();
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    if long_running {
        // Freed memory inside glibc's arenas, given back every 10 s (novaml_server::memory).
        novaml_server::memory::keep_releasing(std::time::Duration::from_secs(10));
    }
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Collect(args) => commands::collect::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Features(args) => commands::features::run(args),
        Command::Detect(args) => commands::detect::run(args),
        Command::Incidents(args) => commands::incidents::run(args),
        Command::Forecast(args) => commands::forecast::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Train(args) => commands::predict::train(args),
        Command::Predict(args) => commands::predict::predict(args),
        Command::Models(args) => commands::predict::models(args),
        Command::EnvEval(args) => commands::tune::env_eval(args),
        Command::Tune(args) => commands::tune::tune(args),
        Command::TuneGrid(args) => commands::tune::tune_grid(args),
        Command::Eval(args) => commands::eval::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`novaml … | head`) is the reader's choice, not a failure.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once: library errors often put their
/// cause's text in their own message too ("cannot read x: No such file or directory"), and
/// printing the chain would repeat it.
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(io).context("cannot read x.csv: No such file or directory");
        assert_eq!(
            super::report(&e),
            "cannot read x.csv: No such file or directory"
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::report(&e), "outer: inner");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        // clap checks names, ids and defaults of every subcommand here, not only when a user
        // happens to run the broken one.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
