//! The one loop behind every scheduled job of the pipeline: wait for the next tick (the first
//! after `first_after`, then every `interval`; a tick missed while the job ran is delayed, not
//! bunched), run the job, log its outcome, until the stop signal turns true. A failed run is
//! logged and retried at the next tick: a job never stops the pipeline.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use crate::PipelineError;

/// When a job runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Every {
    /// Named in the log.
    pub(crate) job: &'static str,
    /// Delay of the first run.
    pub(crate) first_after: Duration,
    /// Between runs.
    pub(crate) interval: Duration,
}

/// Spawns the loop running `job` as `every` says until `stop` is true; `done` sees each
/// successful result and the run's seconds.
pub(crate) fn spawn<T, F, Fut>(
    every: Every,
    mut stop: watch::Receiver<bool>,
    mut job: F,
    mut done: impl FnMut(T, f64) + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    T: Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, PipelineError>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + every.first_after,
            every.interval,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let t0 = std::time::Instant::now();
            match job().await {
                Ok(v) => done(v, t0.elapsed().as_secs_f64()),
                Err(e) => warn!(
                    job = every.job,
                    error = %e,
                    "Scheduled job failed; retrying at the next interval."
                ),
            }
        }
    })
}

/// Runs `f` on a blocking thread (SQLite, model fitting, files).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PipelineError> + Send + 'static,
) -> Result<T, PipelineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PipelineError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn runs_on_schedule_survives_failures_and_stops() {
        let (tx, rx) = watch::channel(false);
        let calls = Arc::new(AtomicUsize::new(0));
        let oks = Arc::new(AtomicUsize::new(0));
        let (c, o) = (calls.clone(), oks.clone());
        let h = spawn(
            Every {
                job: "test",
                first_after: Duration::from_secs(5),
                interval: Duration::from_secs(10),
            },
            rx,
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 1 {
                        Err(PipelineError::Invalid("second run fails".into()))
                    } else {
                        Ok(n)
                    }
                }
            },
            move |_, _| {
                o.fetch_add(1, Ordering::SeqCst);
            },
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0, "not before first_after");
        // Runs at 5, 15, 25 and 35 s; the one at 15 s fails and the loop goes on.
        tokio::time::sleep(Duration::from_secs(32)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(oks.load(Ordering::SeqCst), 3);
        tx.send(true).expect("stop");
        h.await.expect("the loop ends on stop");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4, "no run after stop");
    }
}
