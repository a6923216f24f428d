//! Forecast and capacity metrics, exported on `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::capacity::{ResourcePlan, Runway};

type Labels = Vec<(String, String)>;
type G = Family<Labels, Gauge<f64, AtomicU64>>;

/// Forecast and capacity gauges. Cheap to clone (shared handles).
#[derive(Debug, Clone, Default)]
pub struct CapacityMetrics {
    yhat: G,
    lower: G,
    upper: G,
    runway: G,
    hosts_to_add: G,
}

/// Forecast points exported, by their distance from the end of the history.
pub const EXPORTED_HORIZONS: [(&str, i64); 4] = [
    ("1h", 3_600),
    ("1d", 86_400),
    ("7d", 7 * 86_400),
    ("30d", 30 * 86_400),
];

impl CapacityMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "novaml_forecast_yhat",
            "Forecast (P50) of a series at a horizon from the end of its history",
            m.yhat.clone(),
        );
        registry.register(
            "novaml_forecast_yhat_lower",
            "Lower bound (P10) of the forecast's 80 % conformal interval",
            m.lower.clone(),
        );
        registry.register(
            "novaml_forecast_yhat_upper",
            "Upper bound (P90) of the forecast's 80 % conformal interval",
            m.upper.clone(),
        );
        registry.register(
            "novaml_capacity_runway_seconds",
            "Time until the forecast quantile reaches the threshold (+Inf: not within the horizon)",
            m.runway.clone(),
        );
        registry.register(
            "novaml_capacity_hosts_to_add",
            "Hosts to add so the P90 forecast keeps the configured headroom, by resource",
            m.hosts_to_add.clone(),
        );
        m
    }

    /// Sets the forecast gauges of a series (`labels` include `metric`) from its quantile
    /// forecast, at [`EXPORTED_HORIZONS`] that fall within it.
    pub fn set_forecast(&self, labels: &[(String, String)], f: &crate::capacity::QuantileForecast) {
        for (name, secs) in EXPORTED_HORIZONS {
            let i = (secs / f.step.max(1)) as usize;
            if i == 0 || i > f.p50.len() {
                continue;
            }
            let mut l = labels.to_vec();
            l.push(("horizon".into(), name.into()));
            l.sort();
            self.yhat.get_or_create(&l).set(f.p50[i - 1]);
            self.lower.get_or_create(&l).set(f.p10[i - 1]);
            self.upper.get_or_create(&l).set(f.p90[i - 1]);
        }
    }

    /// Sets the runway and hosts-to-add gauges of a plan; `scope` is a host or `cluster`.
    pub fn set_plan(&self, scope: &str, p: &ResourcePlan) {
        let set = |threshold: &str, r: &Runway| {
            for (q, v) in [("0.1", r.p10), ("0.5", r.p50), ("0.9", r.p90)] {
                let l = vec![
                    ("quantile".into(), q.into()),
                    ("resource".into(), p.resource.as_str().into()),
                    ("scope".into(), scope.into()),
                    ("threshold".into(), threshold.into()),
                ];
                self.runway
                    .get_or_create(&l)
                    .set(v.unwrap_or(f64::INFINITY));
            }
        };
        set("warning", &p.warning_runway);
        set("critical", &p.critical_runway);
        if scope == "cluster" {
            self.hosts_to_add
                .get_or_create(&vec![("resource".into(), p.resource.as_str().into())])
                .set(p.hosts_to_add as f64);
        }
    }
}
