//! One module per subcommand.

pub(crate) mod collect;
pub(crate) mod demo;
pub(crate) mod detect;
pub(crate) mod detection;
pub(crate) mod eval;
pub(crate) mod features;
pub(crate) mod forecast;
pub(crate) mod incidents;
pub(crate) mod pipeline;
pub(crate) mod plan;
pub(crate) mod planning;
pub(crate) mod predict;
pub(crate) mod serve;
pub(crate) mod training;
pub(crate) mod tune;

use std::future::Future;

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn termination() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The input of the single-series commands (`features`, `detect`): a file and, when it holds
/// several series, which one.
#[derive(Debug, clap::Args)]
pub(crate) struct SeriesInput {
    /// Input file (CSV or JSON lines; see `novaml collect --file`).
    #[arg(long = "in", value_name = "FILE")]
    pub(crate) input: std::path::PathBuf,
    /// The value column (metric name after import); required when the file has several.
    #[arg(long)]
    pub(crate) column: Option<String>,
}

impl SeriesInput {
    /// Imports the file and returns its one series (the one named `--column` when given) and
    /// the number of rows or cells skipped on import.
    pub(crate) fn load(&self) -> anyhow::Result<(novaml_core::Series, u64)> {
        use novaml_collect::sources::file::{FileConfig, import};
        let (input, column) = (&self.input, self.column.as_deref());
        let columns = column.iter().map(|c| (*c).to_owned()).collect();
        let mut imported = import(&FileConfig {
            path: input.clone(),
            columns,
            ..FileConfig::default()
        })?;
        match imported.series.len() {
            0 => anyhow::bail!(
                "{} has no series{}",
                input.display(),
                column.map(|c| format!(" named {c:?}")).unwrap_or_default()
            ),
            1 => Ok((imported.series.remove(0), imported.skipped.values().sum())),
            _ => {
                let names: Vec<&str> = imported
                    .series
                    .iter()
                    .map(|s| s.key.name.as_str())
                    .collect();
                anyhow::bail!(
                    "{} has several columns ({}); pick one with --column",
                    input.display(),
                    names.join(", ")
                )
            }
        }
    }
}

impl SeriesInput {
    /// Imports every series of the file (at least one).
    pub(crate) fn load_all(&self) -> anyhow::Result<Vec<novaml_core::Series>> {
        use novaml_collect::sources::file::{FileConfig, import};
        let imported = import(&FileConfig {
            path: self.input.clone(),
            ..FileConfig::default()
        })?;
        if imported.series.is_empty() {
            anyhow::bail!("{} has no series", self.input.display());
        }
        Ok(imported.series)
    }
}

/// A multi-threaded runtime sized for this small machine.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs `fut` to completion on a fresh runtime.
pub(crate) fn block_on<T>(fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    runtime()?.block_on(fut)
}
