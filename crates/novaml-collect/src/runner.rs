//! The runner owns time: it calls each [`Source`] on its interval, bounds every call by a timeout,
//! retries transient failures with exponential backoff and jitter, passes batches through a
//! bounded buffer (a full buffer makes sources wait: backpressure, not loss) to one writer that
//! owns the store, and on shutdown stops the sources and flushes the buffer.
//!
//! No data loss: a source's cursor is written in the same transaction as its samples, and is
//! restored at start, so a killed process loses at most the batches not yet committed, and those
//! are collected again after a restart.

use std::time::Duration;

use novaml_core::time::now_ms;
use novaml_core::{Batch, CollectContext, MetricStore, Source, SourceError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use serde::Deserialize;

use crate::sources::config_duration;
use crate::{CollectError, CollectMetrics};

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt before the collection is given up until the next tick.
    pub max_retries: u32,
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Upper bound of any wait.
    pub max_backoff: Duration,
    /// Share of each wait that is random, in `[0, 1]`: `wait = base·(1 − jitter·u)`, `u ~ U(0,1)`.
    /// Spreads retries of many collectors so they do not hit a recovering server together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            jitter: 0.5,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let base = self.initial_backoff.as_secs_f64()
            * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let base = base.min(self.max_backoff.as_secs_f64());
        let u: f64 = rng.random();
        Duration::from_secs_f64(base * (1.0 - self.jitter.clamp(0.0, 1.0) * u))
    }
}

/// When and how patiently a source is collected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Time between collections.
    pub interval: Duration,
    /// Upper bound of one collection attempt; a hanging server costs at most this.
    pub timeout: Duration,
    /// Retries of failed attempts.
    pub retry: RetryPolicy,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// The scheduling fields of every source in the configuration file (`interval`, `timeout`,
/// `retries`, `backoff`, `max_backoff`), flattened into each source's section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSection {
    /// Time between collections.
    pub interval: String,
    /// Upper bound of one collection attempt.
    pub timeout: String,
    /// Retries of a failed attempt.
    pub retries: u32,
    /// Wait before the first retry.
    pub backoff: String,
    /// Upper bound of any wait.
    pub max_backoff: String,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            interval: "15s".into(),
            timeout: "10s".into(),
            retries: 3,
            backoff: "500ms".into(),
            max_backoff: "30s".into(),
        }
    }
}

impl ScheduleSection {
    /// The section with another interval.
    pub fn every(interval: &str) -> Self {
        Self {
            interval: interval.into(),
            ..Self::default()
        }
    }

    /// Checks and resolves the section of the source at `field` (e.g. `sources.host`).
    pub fn resolve(&self, field: &str) -> Result<Schedule, CollectError> {
        let interval = config_duration(&format!("{field}.interval"), &self.interval)?;
        if interval.is_zero() {
            return Err(CollectError::Config {
                field: format!("{field}.interval"),
                reason: "must be positive".into(),
            });
        }
        let timeout = config_duration(&format!("{field}.timeout"), &self.timeout)?;
        if timeout.is_zero() {
            return Err(CollectError::Config {
                field: format!("{field}.timeout"),
                reason: "must be positive".into(),
            });
        }
        Ok(Schedule {
            interval,
            timeout,
            retry: RetryPolicy {
                max_retries: self.retries,
                initial_backoff: config_duration(&format!("{field}.backoff"), &self.backoff)?,
                max_backoff: config_duration(&format!("{field}.max_backoff"), &self.max_backoff)?,
                ..RetryPolicy::default()
            },
        })
    }
}

/// What a run did, per source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Points written to the store.
    pub written: u64,
    /// Batches the writer could not write before shutdown gave up on them (normally 0).
    pub lost_batches: u64,
    /// Batches the store refused for good ([`MetricStore::refuses`]) and that were dropped.
    pub refused_batches: u64,
}

/// Runs sources into a store until shutdown.
pub struct Runner {
    sources: Vec<(Box<dyn Source>, Schedule)>,
    buffer: usize,
    metrics: CollectMetrics,
    seed: u64,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sources.iter().map(|(s, _)| s.name()).collect();
        f.debug_struct("Runner")
            .field("sources", &names)
            .field("buffer", &self.buffer)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner with a buffer of `buffer` batches (at least 1), reporting into `metrics`.
    pub fn new(buffer: usize, metrics: CollectMetrics) -> Self {
        Self {
            sources: Vec::new(),
            buffer: buffer.max(1),
            metrics,
            seed: 0,
        }
    }

    /// Seeds the jitter of retry backoff (each source derives its own stream from it).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Adds a source with its schedule.
    pub fn add(&mut self, source: Box<dyn Source>, schedule: Schedule) {
        self.sources.push((source, schedule));
    }

    /// Runs until `shutdown` turns true, then stops the sources, flushes the buffer and returns
    /// the store with a report.
    pub async fn run<S>(
        self,
        mut store: S,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(S, RunReport), S::Error>
    where
        S: MetricStore + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Batch>(self.buffer);
        let mut tasks = Vec::new();
        for (i, (mut source, schedule)) in self.sources.into_iter().enumerate() {
            if let Some(cursor) = store.cursor(source.name())? {
                info!(
                    source = source.name(),
                    cursor, "Resuming from the stored cursor."
                );
                source.restore(cursor);
            }
            let rng = ChaCha8Rng::seed_from_u64(
                self.seed
                    .wrapping_add(i as u64)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let task = SourceTask {
                source,
                schedule,
                tx: tx.clone(),
                metrics: self.metrics.clone(),
                rng,
                capacity: self.buffer,
            };
            tasks.push(tokio::spawn(task.run(shutdown.clone())));
        }
        drop(tx);

        let metrics = self.metrics.clone();
        let capacity = self.buffer;
        let writer_shutdown = shutdown.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut report = RunReport::default();
            while let Some(batch) = rx.blocking_recv() {
                metrics.set_buffer(rx.len() as f64 / capacity as f64);
                let mut attempt = 0u32;
                loop {
                    match store.write(&batch) {
                        Ok(n) => {
                            metrics.add_samples(&batch.source, n as u64);
                            report.written += n as u64;
                            break;
                        }
                        Err(e) if S::refuses(&e) => {
                            // Retrying cannot help, and waiting for it would stop every source
                            // (backpressure): the batch is dropped, loudly. Its cursor was not
                            // saved.
                            metrics.add_error(&batch.source, "store");
                            error!(source = %batch.source, points = batch.len(), error = %e, "The store refuses this batch for good; it is dropped (retrying cannot help).");
                            report.refused_batches += 1;
                            break;
                        }
                        Err(e) => {
                            attempt += 1;
                            metrics.add_error(&batch.source, "store");
                            // Keep the batch and retry: the sources wait (backpressure) and the
                            // history-reading ones fall behind, to catch up later. Only at
                            // shutdown do we give up, after a bounded number of tries.
                            if *writer_shutdown.borrow() && attempt >= 5 {
                                error!(source = %batch.source, points = batch.len(), error = %e, "Giving up on a batch at shutdown; its cursor was not saved, so a restart collects it again.");
                                report.lost_batches += 1;
                                break;
                            }
                            let wait = Duration::from_millis(100 * 2u64.pow(attempt.min(8)))
                                .min(Duration::from_secs(30));
                            warn!(source = %batch.source, points = batch.len(), attempt, error = %e, "Store write failed; retrying.");
                            std::thread::sleep(wait);
                        }
                    }
                }
            }
            metrics.set_buffer(0.0);
            (store, report)
        });
        for t in tasks {
            if let Err(e) = t.await {
                error!(error = %e, "A source task panicked.");
            }
        }
        match writer.await {
            Ok((store, report)) => Ok((store, report)),
            // The writer only panics on a bug; surface it rather than hide lost data.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

struct SourceTask {
    source: Box<dyn Source>,
    schedule: Schedule,
    tx: mpsc::Sender<Batch>,
    metrics: CollectMetrics,
    rng: ChaCha8Rng,
    capacity: usize,
}

impl SourceTask {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let name = self.source.name().to_owned();
        let mut next = Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                _ = shutdown.changed() => break,
            }
            let started = Instant::now();
            let Some(collected) = self.attempt(&name, &mut shutdown).await else {
                // A fatal error (the source is stopped; the others go on) or shutdown.
                break;
            };
            let Some(collected) = collected else {
                next = started + self.schedule.interval;
                continue;
            };
            self.metrics
                .observe_duration(&name, started.elapsed().as_secs_f64());
            self.metrics
                .set_last_success(&name, now_ms() as f64 / 1000.0);
            for (reason, n) in &collected.skipped {
                self.metrics.add_skipped(&name, reason, *n);
            }
            let batch = Batch {
                source: name.clone(),
                series: collected.series,
                cursor: self.source.cursor(),
            };
            if !batch.is_empty() || batch.cursor.is_some() {
                debug!(source = %name, points = batch.len(), "Collected.");
                if self.tx.send(batch).await.is_err() {
                    break; // writer gone
                }
                let used = self.capacity - self.tx.capacity();
                self.metrics.set_buffer(used as f64 / self.capacity as f64);
            }
            // Catching up: go again at once. Otherwise keep the cadence, skipping missed ticks.
            next = if collected.more {
                Instant::now()
            } else {
                (started + self.schedule.interval).max(Instant::now())
            };
        }
        debug!(source = %name, "Source stopped.");
    }

    /// One collection with timeout and retries. `None`: stop the source. `Some(None)`: give up
    /// until the next tick.
    async fn attempt(
        &mut self,
        name: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Option<novaml_core::Collected>> {
        let mut attempt = 0u32;
        loop {
            let ctx = CollectContext { now: now_ms() };
            let t0 = Instant::now();
            let result =
                tokio::time::timeout(self.schedule.timeout, self.source.collect(ctx)).await;
            let (kind, err): (&'static str, String) = match result {
                Ok(Ok(c)) => return Some(Some(c)),
                Ok(Err(SourceError::Fatal(e))) => {
                    self.metrics.add_error(name, "fatal");
                    error!(source = name, error = %e, "Source failed permanently; stopping it.");
                    return None;
                }
                Ok(Err(e)) => ("transient", e.to_string()),
                Err(_) => (
                    "timeout",
                    format!("no answer within {:?}", self.schedule.timeout),
                ),
            };
            self.metrics
                .observe_duration(name, t0.elapsed().as_secs_f64());
            self.metrics.add_error(name, kind);
            attempt += 1;
            if attempt > self.schedule.retry.max_retries {
                warn!(source = name, attempts = attempt, error = %err, "Collection failed; will try again next interval.");
                return Some(None);
            }
            let wait = self.schedule.retry.backoff(attempt, &mut self.rng);
            warn!(source = name, attempt, error = %err, wait_ms = wait.as_millis() as u64, "Collection failed; retrying.");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_is_capped_and_jittered_down_only() {
        let p = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            jitter: 0.5,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (attempt, base) in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (20, 1.0)] {
            for _ in 0..50 {
                let w = p.backoff(attempt, &mut rng).as_secs_f64();
                assert!(
                    w <= base + 1e-9 && w >= base * 0.5 - 1e-9,
                    "attempt {attempt}: {w} not in [{}, {base}]",
                    base * 0.5
                );
            }
        }
        let none = RetryPolicy { jitter: 0.0, ..p };
        assert_eq!(none.backoff(2, &mut rng), Duration::from_millis(200));
    }
}
