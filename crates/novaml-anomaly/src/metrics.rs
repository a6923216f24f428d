//! Detection's metrics, exported on `/metrics`: the current anomaly score per series and the
//! incidents detected by type and severity.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::incident::Incident;

type Labels = Vec<(String, String)>;

/// Anomaly metrics. Cheap to clone (shared handles).
#[derive(Debug, Clone, Default)]
pub struct AnomalyMetrics {
    score: Family<Labels, Gauge<f64, AtomicU64>>,
    incidents: Family<Labels, Counter>,
    detection_runs: Counter,
    shard_lag: Family<Labels, Gauge<f64, AtomicU64>>,
    shard_held: Family<Labels, Gauge>,
}

impl AnomalyMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "novaml_anomaly_score",
            "Anomaly score of the latest row of a series, in [0, 1] (-log10 of its tail probability / 12; 0.5 is the default alert threshold)",
            m.score.clone(),
        );
        registry.register(
            "novaml_anomaly_incidents",
            "Incidents detected (new ones, after de-duplication), by type and severity",
            m.incidents.clone(),
        );
        registry.register(
            "novaml_anomaly_detection_runs",
            "Detection passes over the store",
            m.detection_runs.clone(),
        );
        registry.register(
            "novaml_anomaly_shard_lag_seconds",
            "Seconds from the newest point a shard's detection scored to now, for every shard of the fleet as the shared state records it (grows while the shard's worker is down)",
            m.shard_lag.clone(),
        );
        registry.register(
            "novaml_anomaly_shard_held",
            "1 while a running worker holds the shard's lease, else 0",
            m.shard_held.clone(),
        );
        m
    }

    /// Sets a shard's lease and lag (`None`: it has scored nothing yet).
    pub fn set_shard(&self, shard: &str, held: bool, lag_seconds: Option<f64>) {
        let l: Labels = vec![("shard".into(), shard.into())];
        self.shard_held.get_or_create(&l).set(i64::from(held));
        if let Some(lag) = lag_seconds {
            self.shard_lag.get_or_create(&l).set(lag);
        }
    }

    /// Sets the score of a series: its metric name and labels (a label named `metric` is
    /// exported as `exported_metric`).
    pub fn set_score(
        &self,
        metric: &str,
        labels: &std::collections::BTreeMap<String, String>,
        score: f64,
    ) {
        let mut l: Labels = labels
            .iter()
            .map(|(k, v)| {
                let k = if k == "metric" {
                    "exported_metric".to_owned()
                } else {
                    k.clone()
                };
                (k, v.clone())
            })
            .collect();
        l.push(("metric".into(), metric.into()));
        l.sort();
        self.score.get_or_create(&l).set(score);
    }

    /// Counts a new incident.
    pub fn count_incident(&self, inc: &Incident) {
        self.incidents
            .get_or_create(&vec![
                ("severity".into(), inc.severity.as_str().into()),
                ("type".into(), inc.kind.as_str().into()),
            ])
            .inc();
    }

    /// Counts a detection pass.
    pub fn count_run(&self) {
        self.detection_runs.inc();
    }

    /// Incidents counted so far of a type and severity.
    pub fn incidents(&self, kind: &str, severity: &str) -> u64 {
        self.incidents
            .get_or_create(&vec![
                ("severity".into(), severity.into()),
                ("type".into(), kind.into()),
            ])
            .get()
    }
}
