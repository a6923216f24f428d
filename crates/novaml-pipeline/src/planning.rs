//! Capacity planning in the pipeline: every `interval`, the hosts' utilisation in the store is
//! resampled hourly, forecast 30 days ahead (model by backtest, 80 % conformal interval), planned
//! per host and for the cluster with the same functions as `novaml plan`, exported on `/metrics`
//! (`novaml_forecast_yhat*`, `novaml_capacity_runway_seconds`, `novaml_capacity_hosts_to_add`)
//! and served at `/api/capacity` as a [`CapacityPlan`].

use std::path::PathBuf;
use std::sync::RwLock;

use novaml_core::time::now_ms;
use novaml_core::{MetricStore, Selector, TimeRange};
use novaml_forecast::capacity::{
    ClusterPlan, Grid, HostPlan, Policy, Resource, bottleneck, plan_cluster, plan_host,
};
use novaml_forecast::metrics::CapacityMetrics;
use novaml_server::services::{Capacity, ServiceError};
use novaml_store::MetricsAt;
use serde::Serialize;
use serde_json::Value;
use tracing::warn;

use crate::PipelineError;

/// Hourly grid.
const STEP: i64 = 3_600;
/// 30 days ahead.
const HORIZON: usize = 30 * 24;

/// The latest plan of one resource, per host and for the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityPlan {
    /// When it was made, Unix seconds.
    pub generated_at: i64,
    /// The resource planned.
    pub resource: Resource,
    /// Thresholds, headroom, host size and price.
    pub policy: Policy,
    /// Each host that has enough history.
    pub hosts: Vec<HostPlan>,
    /// The cluster, when any host was planned.
    pub cluster: Option<ClusterSummary>,
}

/// The cluster's plan with its bottleneck and cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSummary {
    /// Runway, peak, hosts to add, forecast.
    #[serde(flatten)]
    pub plan: ClusterPlan,
    /// The resource that runs out first.
    pub bottleneck: Option<Resource>,
    /// Monthly price of the hosts to add.
    pub monthly_cost: f64,
}

/// The planning job, and the latest plan it made.
pub struct Planning {
    /// Where the metrics are read.
    pub(crate) store: MetricsAt,
    /// The series this worker owns.
    pub(crate) shard: novaml_core::Shard,
    pub(crate) metrics: CapacityMetrics,
    pub(crate) latest: RwLock<Option<CapacityPlan>>,
    /// Utilisation series (percent), one per host (label `host`).
    pub(crate) selector: Selector,
    pub(crate) resource: Resource,
    pub(crate) policy: Policy,
    /// Where the latest plan is saved, and the one saved by an earlier run, served until this
    /// run's first plan (a plan takes a while; the dashboard should not go blank on restart).
    pub(crate) saved: PathBuf,
    pub(crate) restored: Option<Value>,
}

/// The latest plan's file, beside the store.
pub(crate) const PLAN_FILE: &str = "capacity-plan.json";

/// The plan saved at `path`, if any.
pub(crate) fn restore(path: &std::path::Path) -> Option<Value> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "Ignoring the saved capacity plan.");
            None
        }
    }
}

impl std::fmt::Debug for Planning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planning")
            .field("selector", &self.selector.to_string())
            .finish_non_exhaustive()
    }
}

impl Planning {
    /// The latest plan.
    pub fn latest(&self) -> Option<CapacityPlan> {
        self.latest.read().ok().and_then(|p| p.clone())
    }

    /// One refresh (blocking): per host and for the cluster (the hosts' mean series, forecast
    /// itself), as `novaml plan` does; returns the hosts planned.
    pub(crate) fn pass(&self) -> Result<usize, PipelineError> {
        let store = self.store.open()?;
        let now = now_ms();
        let range = TimeRange::new(now - 30 * 86_400_000, now + 60_000)?;
        let mut hosts = Vec::new();
        let mut grids = Vec::new();
        for s in store.query(&self.selector, range, None)? {
            let owned = self.shard.owns(&s.key);
            // The leader reads every host for the cluster's plan; the others only their own.
            if !owned && !self.shard.leads() {
                continue;
            }
            let host = s.key.label("host").unwrap_or("unknown").to_owned();
            let g = Grid::from_series(&s, STEP)?;
            if !owned {
                grids.push(g);
                continue;
            }
            let p = match plan_host(self.resource, &host, &g, HORIZON, &self.policy) {
                Ok(p) => p,
                // Too little history yet (a fresh demo): skip this host for now.
                Err(e) => {
                    warn!(%host, error = %e, "Not planned yet.");
                    continue;
                }
            };
            let mut labels: Vec<(String, String)> = s
                .key
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.push(("metric".into(), s.key.name.clone()));
            self.metrics.set_forecast(&labels, &p.forecast);
            self.metrics.set_plan(&host, &p.plan);
            hosts.push(p);
            grids.push(g);
        }
        let cluster = if grids.is_empty() || !self.shard.leads() {
            None
        } else {
            let refs: Vec<&Grid> = grids.iter().collect();
            let (plan, _) = plan_cluster(self.resource, &refs, HORIZON, &self.policy)?;
            self.metrics.set_plan("cluster", &plan.plan);
            Some(ClusterSummary {
                bottleneck: bottleneck(std::slice::from_ref(&plan.plan)),
                monthly_cost: plan.plan.hosts_to_add as f64 * self.policy.host_month_price,
                plan,
            })
        };
        let n = hosts.len();
        let plan = CapacityPlan {
            generated_at: now / 1000,
            resource: self.resource,
            policy: self.policy.clone(),
            hosts,
            cluster,
        };
        let saved = serde_json::to_vec(&plan)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                novaml_core::fs::write_private(&self.saved, &b)
                    .map_err(|(p, e)| format!("{}: {e}", p.display()))
            });
        if let Err(e) = saved {
            warn!(error = %e, "Cannot save the capacity plan.");
        }
        if let Ok(mut w) = self.latest.write() {
            *w = Some(plan);
        }
        Ok(n)
    }
}

impl Capacity for Planning {
    fn latest(&self) -> Result<Option<Value>, ServiceError> {
        match Planning::latest(self) {
            Some(plan) => Ok(Some(
                serde_json::to_value(plan).map_err(PipelineError::from)?,
            )),
            None => Ok(self.restored.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_plan_is_served_until_the_first_new_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(PLAN_FILE);
        assert_eq!(restore(&path), None, "nothing saved yet");
        let plan = serde_json::json!({"generated_at": 1, "hosts": [], "cluster": null});
        novaml_core::fs::write_private(&path, plan.to_string().as_bytes()).expect("write");
        let planning = Planning {
            store: MetricsAt::Embedded(dir.path().join("novaml.db")),
            shard: novaml_core::Shard::ALL,
            metrics: CapacityMetrics::register(
                &mut prometheus_client::registry::Registry::default(),
            ),
            latest: RwLock::new(None),
            selector: "host_cpu_usage_percent".parse().expect("selector"),
            resource: Resource::Cpu,
            policy: Policy::default(),
            saved: path.clone(),
            restored: restore(&path),
        };
        assert_eq!(Capacity::latest(&planning).expect("latest"), Some(plan));
        std::fs::write(&path, "{not json").expect("write");
        assert_eq!(restore(&path), None, "a damaged file is ignored");
    }
}
