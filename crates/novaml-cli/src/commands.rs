//! One module per subcommand.

pub(crate) mod collect;
pub(crate) mod demo;
pub(crate) mod detect;
pub(crate) mod eval;
pub(crate) mod features;
pub(crate) mod forecast;
pub(crate) mod incidents;
pub(crate) mod plan;
pub(crate) mod predict;
pub(crate) mod serve;
pub(crate) mod tune;

use std::future::Future;
use std::time::Duration;

/// A duration flag: `300ms`, `15s`, `5m`, `2h`, `7d`, `1w` (a bare number is seconds).
pub(crate) fn duration_arg(s: &str) -> Result<Duration, String> {
    novaml_core::time::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration like 30s, 5m, 2h, 7d"))
}

/// A duration flag that must be above zero.
pub(crate) fn positive_duration_arg(s: &str) -> Result<Duration, String> {
    match duration_arg(s)? {
        d if d.is_zero() => Err(format!("{s:?}: the duration must be positive")),
        d => Ok(d),
    }
}

/// A progress bar for `len` steps of long work.
pub(crate) fn bar(len: u64) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// A file's name without directory and extension (names series in reports).
pub(crate) fn name_of(p: &std::path::Path) -> String {
    p.file_stem().map_or_else(
        || p.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
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
