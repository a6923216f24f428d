//! Capacity planning inside the pipeline (`novaml demo`): every `interval`, the hosts' CPU
//! utilisation in the store is resampled hourly, forecast 30 days ahead (model by backtest,
//! 80 % conformal interval), planned per host and for the cluster, exported on `/metrics`
//! (`novaml_forecast_yhat*`, `novaml_capacity_runway_seconds`, `novaml_capacity_hosts_to_add`)
//! and served as JSON at `/api/capacity`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use novaml_core::{MetricStore, Selector, TimeRange};
use novaml_forecast::capacity::{Policy, Resource, bottleneck, plan_resource};
use novaml_forecast::metrics::CapacityMetrics;
use novaml_store::SqliteStore;
use tokio::sync::watch;
use tracing::{info, warn};

use super::plan::{Grid, cluster_mean, forecast_grid};

/// The planning task.
pub(crate) struct Planning {
    pub(crate) store_path: PathBuf,
    pub(crate) metrics: CapacityMetrics,
    pub(crate) latest: Arc<RwLock<Option<serde_json::Value>>>,
    pub(crate) interval: Duration,
    /// Utilisation series (percent), one per host (label `host`).
    pub(crate) selector: Selector,
    pub(crate) resource: Resource,
    pub(crate) policy: Policy,
}

const STEP: i64 = 3_600;
const HORIZON: usize = 30 * 24;

impl Planning {
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        // The first plan once the first data are in, then every interval.
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(15),
            this.interval,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let t = this.clone();
            let t0 = std::time::Instant::now();
            match tokio::task::spawn_blocking(move || t.pass()).await {
                Ok(Ok(hosts)) => info!(
                    hosts,
                    seconds = t0.elapsed().as_secs_f64(),
                    "Capacity plan refreshed."
                ),
                Ok(Err(e)) => {
                    warn!(error = %format!("{e:#}"), "Capacity planning failed; retrying next interval.")
                }
                Err(e) => warn!(error = %e, "Capacity planning task failed."),
            }
        }
    }

    /// One refresh: per host and for the cluster (the hosts' mean series, forecast itself), as
    /// `novaml plan` does.
    fn pass(&self) -> Result<usize> {
        let store = SqliteStore::open(&self.store_path)
            .with_context(|| format!("cannot open {}", self.store_path.display()))?;
        let now = novaml_collect::now_ms();
        let range = TimeRange::new(now - 30 * 86_400_000, now + 60_000)?;
        let mut host_plans = Vec::new();
        let mut grids = Vec::new();
        for s in store.query(&self.selector, range, None)? {
            let host = s.key.label("host").unwrap_or("unknown").to_owned();
            let g = Grid::from_series(&s, STEP)?;
            let (f, model) = match forecast_grid(&g, HORIZON) {
                Ok(r) => r,
                // Too little history yet (a fresh demo): skip this host for now.
                Err(e) => {
                    warn!(%host, error = %format!("{e:#}"), "Not planned yet.");
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
            self.metrics.set_forecast(&labels, &f);
            let p = plan_resource(self.resource, 1, g.current(), &f, &self.policy);
            self.metrics.set_plan(&host, &p);
            host_plans.push(serde_json::json!({
                "host": host, "model": model, "plan": p, "forecast": f,
            }));
            grids.push(g);
        }
        let cluster = if grids.is_empty() {
            None
        } else {
            let refs: Vec<&Grid> = grids.iter().collect();
            let mean = cluster_mean(&refs)?;
            let (f, model) = forecast_grid(&mean, HORIZON)?;
            let p = plan_resource(self.resource, grids.len(), mean.current(), &f, &self.policy);
            self.metrics.set_plan("cluster", &p);
            Some(serde_json::json!({
                "plan": p,
                "model": model,
                "forecast": f,
                "bottleneck": bottleneck(std::slice::from_ref(&p)),
                "monthly_cost": p.hosts_to_add as f64 * self.policy.host_month_price,
            }))
        };
        let doc = serde_json::json!({
            "generated_at": now / 1000,
            "resource": self.resource,
            "policy": self.policy,
            "hosts": host_plans,
            "cluster": cluster,
        });
        if let Ok(mut w) = self.latest.write() {
            *w = Some(doc);
        }
        Ok(host_plans.len())
    }
}
