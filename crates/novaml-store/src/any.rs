//! Where the metrics are: [`MetricsAt`] names the store (the embedded SQLite file or a remote
//! TSDB), [`AnyStore`] is either one opened, so that the pipeline has one path for both.

use std::path::PathBuf;

use novaml_core::{
    Batch, MetricStore, Selector, Series, SeriesKey, StepSpec, TimeRange, Timestamp,
};

use crate::{RemoteConfig, RemoteStore, SqliteStore, StoreError};

/// Where the metrics are kept.
#[derive(Debug, Clone)]
pub enum MetricsAt {
    /// The embedded SQLite file.
    Embedded(PathBuf),
    /// A Prometheus-compatible TSDB.
    Remote(RemoteConfig),
}

impl MetricsAt {
    /// Opens the store (for a remote one: connects and checks that it answers).
    pub fn open(&self) -> Result<AnyStore, StoreError> {
        Ok(match self {
            Self::Embedded(path) => AnyStore::Sqlite(SqliteStore::open(path)?),
            Self::Remote(config) => AnyStore::Remote(RemoteStore::connect(config.clone())?),
        })
    }

    /// For status pages and logs: the file, or `remote URL`.
    pub fn describe(&self) -> String {
        match self {
            Self::Embedded(path) => path.display().to_string(),
            Self::Remote(config) => format!("remote {}", config.url),
        }
    }

    /// Whether the store deletes old points itself (a remote TSDB does; novaml does not).
    pub fn keeps_own_retention(&self) -> bool {
        matches!(self, Self::Remote(_))
    }
}

/// An opened store of either kind.
#[derive(Debug)]
pub enum AnyStore {
    /// The embedded store.
    Sqlite(SqliteStore),
    /// A remote TSDB.
    Remote(RemoteStore),
}

impl AnyStore {
    /// Number of series (for a remote store: those with a sample in the last `lookback_ms`).
    pub fn series_count(&self, lookback_ms: i64) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.series_count(),
            Self::Remote(s) => {
                let now = novaml_core::time::now_ms();
                let range = TimeRange::new(now - lookback_ms, now + 60_000)
                    .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
                Ok(s.series(&Selector::all(), range)?.len() as u64)
            }
        }
    }

    /// The keys of the series in the store (a remote one: those with a sample in `range`).
    pub fn keys(&self, range: TimeRange) -> Result<Vec<SeriesKey>, StoreError> {
        match self {
            Self::Sqlite(s) => s.keys(),
            Self::Remote(s) => s.series(&Selector::all(), range),
        }
    }

    /// Number of points, where the store counts them cheaply (not a remote TSDB).
    pub fn count_points(&self) -> Result<Option<u64>, StoreError> {
        match self {
            Self::Sqlite(s) => s.count_points().map(Some),
            Self::Remote(_) => Ok(None),
        }
    }
}

impl MetricStore for AnyStore {
    type Error = StoreError;

    fn refuses(err: &StoreError) -> bool {
        <RemoteStore as MetricStore>::refuses(err)
    }

    fn write(&mut self, batch: &Batch) -> Result<usize, StoreError> {
        match self {
            Self::Sqlite(s) => s.write(batch),
            Self::Remote(s) => s.write(batch),
        }
    }

    fn query(
        &self,
        selector: &Selector,
        range: TimeRange,
        step: Option<StepSpec>,
    ) -> Result<Vec<Series>, StoreError> {
        match self {
            Self::Sqlite(s) => s.query(selector, range, step),
            Self::Remote(s) => s.query(selector, range, step),
        }
    }

    fn cursor(&self, source: &str) -> Result<Option<Timestamp>, StoreError> {
        match self {
            Self::Sqlite(s) => s.cursor(source),
            Self::Remote(s) => s.cursor(source),
        }
    }

    fn delete_before(&mut self, cutoff: Timestamp) -> Result<usize, StoreError> {
        match self {
            Self::Sqlite(s) => s.delete_before(cutoff),
            Self::Remote(s) => s.delete_before(cutoff),
        }
    }
}
