//! `novaml`: machine-learning operations for a private VM cloud. This binary is a thin front end
//! over the library crates; see `novaml --help`.

mod commands;
mod config;

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
    /// Run the main job on embedded defaults: collect this host and a simulated cluster into
    /// SQLite and serve /metrics and a status page.
    Demo(commands::demo::Args),
    /// Collect metrics once (a time range, exported to CSV/JSON lines or the store), or keep
    /// collecting with --follow.
    Collect(commands::collect::Args),
    /// Compute features of one series from a file (CSV in, feature table CSV out).
    Features(commands::features::Args),
    /// Evaluate on real data (NAB anomaly benchmark, …) and print the figures.
    Eval(commands::eval::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Collect(args) => commands::collect::run(args),
        Command::Features(args) => commands::features::run(args),
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
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
