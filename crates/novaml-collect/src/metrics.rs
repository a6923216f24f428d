//! The collector's self-metrics, exported on `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

fn histogram() -> Histogram {
    // 1 ms … ~33 s: a local /proc read takes microseconds, a backfill query tens of seconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Counters and gauges of the collection pipeline. Cheap to clone (shared handles).
#[derive(Debug, Clone)]
pub struct CollectMetrics {
    samples: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    skipped: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
    buffer: Gauge<f64, AtomicU64>,
    last_success: Family<Labels, Gauge<f64, AtomicU64>>,
}

impl Default for CollectMetrics {
    fn default() -> Self {
        Self {
            samples: Family::default(),
            errors: Family::default(),
            skipped: Family::default(),
            duration: Family::new_with_constructor(histogram),
            buffer: Gauge::default(),
            last_success: Family::default(),
        }
    }
}

impl CollectMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "novaml_collect_samples",
            "Samples written to the store, by source",
            m.samples.clone(),
        );
        registry.register(
            "novaml_collect_errors",
            "Collection and write failures, by source and kind (timeout, transient, fatal, store)",
            m.errors.clone(),
        );
        registry.register(
            "novaml_collect_skipped",
            "Lines or points skipped as invalid, by source and reason",
            m.skipped.clone(),
        );
        registry.register(
            "novaml_collect_duration_seconds",
            "Time of one collection attempt, by source",
            m.duration.clone(),
        );
        registry.register(
            "novaml_collect_buffer_utilization_ratio",
            "Share of the bounded buffer between sources and the store in use (0 to 1)",
            m.buffer.clone(),
        );
        registry.register(
            "novaml_collect_last_success_timestamp_seconds",
            "Unix time of the last successful collection, by source",
            m.last_success.clone(),
        );
        m
    }

    fn l(source: &str) -> Labels {
        vec![("source", source.to_owned())]
    }

    pub(crate) fn add_samples(&self, source: &str, n: u64) {
        self.samples.get_or_create(&Self::l(source)).inc_by(n);
    }

    pub(crate) fn add_error(&self, source: &str, kind: &'static str) {
        self.errors
            .get_or_create(&vec![
                ("source", source.to_owned()),
                ("kind", kind.to_owned()),
            ])
            .inc();
    }

    pub(crate) fn add_skipped(&self, source: &str, reason: &str, n: u64) {
        self.skipped
            .get_or_create(&vec![
                ("source", source.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc_by(n);
    }

    pub(crate) fn observe_duration(&self, source: &str, secs: f64) {
        self.duration.get_or_create(&Self::l(source)).observe(secs);
    }

    pub(crate) fn set_buffer(&self, ratio: f64) {
        self.buffer.set(ratio);
    }

    pub(crate) fn set_last_success(&self, source: &str, unix_secs: f64) {
        self.last_success
            .get_or_create(&Self::l(source))
            .set(unix_secs);
    }

    /// Unix time of `source`'s last successful collection (`None` before the first).
    pub fn last_success(&self, source: &str) -> Option<f64> {
        Some(self.last_success.get_or_create(&Self::l(source)).get()).filter(|t| *t > 0.0)
    }

    /// Samples written so far for `source`.
    pub fn samples(&self, source: &str) -> u64 {
        self.samples.get_or_create(&Self::l(source)).get()
    }

    /// Errors so far for `source` of `kind`.
    pub fn errors(&self, source: &str, kind: &'static str) -> u64 {
        self.errors
            .get_or_create(&vec![
                ("source", source.to_owned()),
                ("kind", kind.to_owned()),
            ])
            .get()
    }

    /// Current buffer utilisation (0 to 1).
    pub fn buffer_utilization(&self) -> f64 {
        self.buffer.get()
    }
}
