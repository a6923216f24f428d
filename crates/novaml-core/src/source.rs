//! The [`Source`] seam: something that collects series when asked. Sources only collect; the
//! runner in `novaml-collect` owns the interval, timeouts, retries, buffering and shutdown.

use std::future::Future;
use std::pin::Pin;

use crate::{BoxError, Series, Timestamp};

/// A boxed, sendable future, so that [`Source`] stays object-safe without an async runtime in
/// this crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the runner tells a source at each collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectContext {
    /// The runner's clock at the start of this collection, ms since the Unix epoch. Sources use it
    /// instead of reading the clock, so tests can drive time.
    pub now: Timestamp,
}

/// Why a collection failed. The runner retries [`SourceError::Transient`] with backoff and
/// stops the source on [`SourceError::Fatal`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Worth retrying: a timeout, a refused connection, a 5xx answer.
    #[error("transient failure: {0}")]
    Transient(#[source] BoxError),
    /// Not worth retrying: bad configuration, an answer that cannot be parsed at all.
    #[error("fatal failure: {0}")]
    Fatal(#[source] BoxError),
}

/// A metric source.
///
/// Each call to [`Source::collect`] returns what is new since the previous call. A source that can
/// resume (it reads history, like a Prometheus range query) reports its progress through
/// [`Source::cursor`] and accepts the persisted value back through [`Source::restore`]; the runner
/// stores the cursor in the same transaction as the samples it belongs to.
pub trait Source: Send {
    /// A stable, unique name (used in logs, metrics and as the cursor key).
    fn name(&self) -> &str;

    /// Collects what is new. Points with non-finite values are dropped by the source and counted
    /// in `skipped`, never silently.
    fn collect<'a>(
        &'a mut self,
        ctx: CollectContext,
    ) -> BoxFuture<'a, Result<Collected, SourceError>>;

    /// Progress after the last successful collection, if this source can resume.
    fn cursor(&self) -> Option<Timestamp> {
        None
    }

    /// Resumes from a persisted cursor (called once, before the first collection).
    fn restore(&mut self, cursor: Timestamp) {
        let _ = cursor;
    }
}

/// The result of one collection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    /// The series collected.
    pub series: Vec<Series>,
    /// Points or lines that were skipped, with the reason (`"nan"`, `"parse"`, …) and count.
    pub skipped: Vec<(&'static str, u64)>,
    /// The source has more ready now (it is catching up on history in chunks): the runner
    /// collects again at once instead of waiting for the next interval.
    pub more: bool,
}
