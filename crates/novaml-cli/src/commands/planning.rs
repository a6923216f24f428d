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
use novaml_forecast::capacity::{Policy, QuantileForecast, Resource, bottleneck, plan_resource};
use novaml_forecast::metrics::CapacityMetrics;
use novaml_forecast::models::Regular;
use novaml_forecast::select::{SelectConfig, resample_mean, select_and_forecast};
use novaml_store::SqliteStore;
use tokio::sync::watch;
use tracing::{info, warn};

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

    fn pass(&self) -> Result<usize> {
        let store = SqliteStore::open(&self.store_path)
            .with_context(|| format!("cannot open {}", self.store_path.display()))?;
        let now = novaml_collect::now_ms();
        let range = TimeRange::new(now - 30 * 86_400_000, now + 60_000)?;
        let series = store.query(&self.selector, range, None)?;
        let cfg = SelectConfig::default();
        let mut host_plans = Vec::new();
        let mut grids = Vec::new();
        for s in &series {
            let host = s.key.label("host").unwrap_or("unknown").to_owned();
            let pts: Vec<(i64, f64)> = s
                .points
                .iter()
                .map(|p| (p.ts.div_euclid(1000), p.value))
                .collect();
            let (start, y, _) = resample_mean(&pts, STEP)?;
            let reg = Regular {
                start,
                step: STEP,
                y: &y,
            };
            let sel = match select_and_forecast(reg, HORIZON, &cfg) {
                Ok(sel) => sel,
                // Too little history yet (a fresh demo): skip this host for now.
                Err(e) => {
                    warn!(%host, error = %e, "Not planned yet.");
                    continue;
                }
            };
            let last = start + (y.len() as i64 - 1) * STEP;
            let f = QuantileForecast::from_selected(&sel, last, STEP)?;
            let mut labels: Vec<(String, String)> = s
                .key
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.push(("metric".into(), s.key.name.clone()));
            self.metrics.set_forecast(&labels, &f);
            let k = (24).min(y.len());
            let current = y[y.len() - k..].iter().sum::<f64>() / k as f64;
            let p = plan_resource(self.resource, 1, current, &f, &self.policy);
            self.metrics.set_plan(&host, &p);
            host_plans.push(serde_json::json!({
                "host": host, "model": sel.model, "plan": p, "forecast": f,
            }));
            grids.push((start, y, f));
        }
        // The cluster: the mean of the hosts' forecasts over their common history end.
        let cluster = if grids.is_empty() {
            None
        } else {
            let n = grids.len() as f64;
            let mean = |pick: &dyn Fn(&QuantileForecast) -> &Vec<f64>| -> Vec<f64> {
                (0..HORIZON)
                    .map(|h| grids.iter().map(|(_, _, f)| pick(f)[h]).sum::<f64>() / n)
                    .collect()
            };
            let f = QuantileForecast {
                step: STEP,
                start: grids.iter().map(|(_, _, f)| f.start).min().unwrap_or(0),
                p10: mean(&|f| &f.p10),
                p50: mean(&|f| &f.p50),
                p90: mean(&|f| &f.p90),
            };
            let current = grids
                .iter()
                .map(|(_, y, _)| {
                    y[y.len() - 24.min(y.len())..].iter().sum::<f64>() / 24.0f64.min(y.len() as f64)
                })
                .sum::<f64>()
                / n;
            let p = plan_resource(self.resource, grids.len(), current, &f, &self.policy);
            self.metrics.set_plan("cluster", &p);
            Some((p, f))
        };
        let plans: Vec<_> = cluster.iter().map(|(p, _)| p.clone()).collect();
        let doc = serde_json::json!({
            "generated_at": now / 1000,
            "resource": self.resource,
            "policy": self.policy,
            "hosts": host_plans,
            "cluster": cluster.as_ref().map(|(p, f)| serde_json::json!({
                "plan": p,
                "forecast": f,
                "bottleneck": bottleneck(&plans),
                "monthly_cost": p.hosts_to_add as f64 * self.policy.host_month_price,
            })),
            "note": "The cluster's quantiles are the means of the hosts' (a conservative band).",
        });
        if let Ok(mut w) = self.latest.write() {
            *w = Some(doc);
        }
        Ok(host_plans.len())
    }
}
