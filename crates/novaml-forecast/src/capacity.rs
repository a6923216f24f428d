//! Capacity planning from forecasts: runway to the warning and critical thresholds as quantiles,
//! the bottleneck resource, hosts to add for a target headroom, cost, and what-if scenarios.
//!
//! Every series is a utilisation in percent of its host's capacity of that resource (CPU busy %,
//! memory used %, disk used %, network % of link). The cluster's utilisation of a resource is the
//! mean over its hosts (hosts of one size), so loads add up in "host-percent": a cluster of `N`
//! hosts at mean `U` % carries `N·U` host-percent, and `n` more hosts of relative size `s` bring it
//! to `N·U / (N + n·s)` %.
//!
//! Quantiles: the forecast's conformal interval at level 80 % gives P10 and P90 around the point
//! forecast (P50). P90 crosses a threshold first: its runway is the conservative one; P10's the
//! aggressive one.

use novaml_core::Series;
use serde::{Deserialize, Serialize};

use crate::ForecastError;
use crate::models::{ModelKind, Regular};
use crate::select::{SelectConfig, Selected, resample_mean, select_and_forecast};

/// A resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// CPU.
    Cpu,
    /// Memory.
    Memory,
    /// Disk.
    Disk,
    /// Network.
    Network,
}

impl Resource {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Disk => "disk",
            Self::Network => "network",
        }
    }
}

/// Thresholds and targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Warning threshold, percent.
    pub warning: f64,
    /// Critical threshold, percent.
    pub critical: f64,
    /// Headroom to keep: the P90 forecast's peak must stay at or below `100·(1 − headroom)` %.
    pub headroom: f64,
    /// Size of a host to add, relative to the existing ones.
    pub new_host_size: f64,
    /// Price of one host per month (for the cost of the hosts to add).
    pub host_month_price: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            warning: 85.0,
            critical: 95.0,
            headroom: 0.2,
            new_host_size: 1.0,
            host_month_price: 0.0,
        }
    }
}

impl Policy {
    /// Checks the invariants.
    pub fn check(&self) -> Result<(), ForecastError> {
        let bad = |m: &str| Err(ForecastError::InvalidInput(m.into()));
        if !(0.0 < self.warning && self.warning <= self.critical && self.critical <= 100.0) {
            return bad("thresholds must satisfy 0 < warning ≤ critical ≤ 100");
        }
        if !(0.0..1.0).contains(&self.headroom) {
            return bad("headroom must be in [0, 1)");
        }
        if !(self.new_host_size > 0.0 && self.new_host_size.is_finite()) {
            return bad("new_host_size must be positive");
        }
        if !(self.host_month_price >= 0.0 && self.host_month_price.is_finite()) {
            return bad("host_month_price must be ≥ 0");
        }
        Ok(())
    }
}

/// Time until a forecast first reaches a threshold, per quantile (seconds from the end of the
/// history; `None`: not within the horizon).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Runway {
    /// The aggressive estimate (P10 crossing).
    pub p10: Option<f64>,
    /// The median estimate.
    pub p50: Option<f64>,
    /// The conservative estimate (P90 crossing, the earliest).
    pub p90: Option<f64>,
}

/// A forecast in quantiles on a regular grid after the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantileForecast {
    /// Seconds between steps.
    pub step: i64,
    /// Timestamp of the first forecast step (Unix seconds).
    pub start: i64,
    /// P10.
    pub p10: Vec<f64>,
    /// P50.
    pub p50: Vec<f64>,
    /// P90.
    pub p90: Vec<f64>,
}

impl QuantileForecast {
    /// From an 80 % forecast starting `step` after `last` (the last history timestamp).
    pub fn from_selected(s: &Selected, last: i64, step: i64) -> Result<Self, ForecastError> {
        if (s.level - 0.8).abs() > 1e-9 {
            return Err(ForecastError::InvalidInput(format!(
                "capacity quantiles need an 80 % interval, not {} %",
                100.0 * s.level
            )));
        }
        Ok(Self {
            step,
            start: last + step,
            p10: s.lower.clone(),
            p50: s.yhat.clone(),
            p90: s.upper.clone(),
        })
    }

    fn crossing(&self, values: &[f64], threshold: f64) -> Option<f64> {
        values
            .iter()
            .position(|v| *v >= threshold)
            .map(|i| ((i as i64 + 1) * self.step) as f64)
    }

    /// Runway to `threshold` for each quantile.
    pub fn runway(&self, threshold: f64) -> Runway {
        Runway {
            p10: self.crossing(&self.p10, threshold),
            p50: self.crossing(&self.p50, threshold),
            p90: self.crossing(&self.p90, threshold),
        }
    }

    /// Adds `delta` percentage points (a what-if load) or scales by `factor` (a drained host).
    pub fn adjusted(&self, delta: f64, factor: f64) -> Self {
        let f = |v: &Vec<f64>| v.iter().map(|x| x * factor + delta).collect();
        Self {
            step: self.step,
            start: self.start,
            p10: f(&self.p10),
            p50: f(&self.p50),
            p90: f(&self.p90),
        }
    }

    fn peak_p90(&self) -> f64 {
        self.p90.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
}

/// The plan for one resource of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourcePlan {
    /// The resource.
    pub resource: Resource,
    /// Hosts it is measured on.
    pub hosts: usize,
    /// Current utilisation (mean of the last day of history), percent.
    pub current: f64,
    /// Peak of the P90 forecast, percent.
    pub peak_p90: f64,
    /// Runway to the warning threshold.
    pub warning_runway: Runway,
    /// Runway to the critical threshold.
    pub critical_runway: Runway,
    /// Hosts to add so the P90 peak stays within the headroom.
    pub hosts_to_add: u64,
}

/// Hosts to add so that `peak` % on `hosts` hosts falls to the target utilisation.
pub fn hosts_needed(peak: f64, hosts: usize, policy: &Policy) -> u64 {
    let target = 100.0 * (1.0 - policy.headroom);
    let load = peak.max(0.0) * hosts as f64;
    let extra = (load / target - hosts as f64) / policy.new_host_size;
    if extra <= 0.0 {
        0
    } else {
        // A hair below an integer is that integer (rounding noise is not a host).
        (extra - 1e-9).ceil() as u64
    }
}

/// Plans one resource from the cluster-mean forecast.
pub fn plan_resource(
    resource: Resource,
    hosts: usize,
    current: f64,
    f: &QuantileForecast,
    policy: &Policy,
) -> ResourcePlan {
    let peak = f.peak_p90();
    ResourcePlan {
        resource,
        hosts,
        current,
        peak_p90: peak,
        warning_runway: f.runway(policy.warning),
        critical_runway: f.runway(policy.critical),
        hosts_to_add: hosts_needed(peak, hosts, policy),
    }
}

/// The resource that runs out first: the shortest P50 runway to critical, then to warning, then
/// the highest P90 peak.
pub fn bottleneck(plans: &[ResourcePlan]) -> Option<Resource> {
    let key = |p: &ResourcePlan| {
        (
            p.critical_runway.p50.unwrap_or(f64::INFINITY),
            p.warning_runway.p50.unwrap_or(f64::INFINITY),
            -p.peak_p90,
        )
    };
    plans
        .iter()
        .min_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            ka.0.total_cmp(&kb.0)
                .then(ka.1.total_cmp(&kb.1))
                .then(ka.2.total_cmp(&kb.2))
        })
        .map(|p| p.resource)
}

/// A what-if scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in the plan.
    pub name: String,
    /// VMs to add.
    #[serde(default)]
    pub add_vms: u32,
    /// What one added VM uses, in percent of one host, per resource.
    #[serde(default)]
    pub vm_template: std::collections::BTreeMap<Resource, f64>,
    /// Hosts to drain (their load moves to the others).
    #[serde(default)]
    pub drain_hosts: u32,
}

/// A scenario's effect on one resource's forecast on `hosts` hosts: `(new hosts, adjusted
/// forecast)`.
pub fn apply_scenario(
    s: &Scenario,
    resource: Resource,
    hosts: usize,
    f: &QuantileForecast,
) -> Result<(usize, QuantileForecast), ForecastError> {
    let drained = s.drain_hosts as usize;
    if drained >= hosts {
        return Err(ForecastError::InvalidInput(format!(
            "scenario {:?} drains {drained} of {hosts} hosts: nothing would be left",
            s.name
        )));
    }
    let left = hosts - drained;
    let per_vm = s.vm_template.get(&resource).copied().unwrap_or(0.0);
    if !(per_vm >= 0.0 && per_vm.is_finite()) {
        return Err(ForecastError::InvalidInput(format!(
            "scenario {:?}: the VM template's {} must be ≥ 0",
            s.name,
            resource.as_str()
        )));
    }
    let factor = hosts as f64 / left as f64;
    let delta = f64::from(s.add_vms) * per_vm / left as f64;
    Ok((left, f.adjusted(delta, factor)))
}

/// A host's utilisation on a regular grid of `step` seconds: the series plans forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Unix seconds of the first value.
    pub start: i64,
    /// Seconds between values.
    pub step: i64,
    /// The values, percent.
    pub y: Vec<f64>,
}

impl Grid {
    /// A series (ms timestamps) resampled to `step` seconds by the mean, gaps interpolated.
    pub fn from_series(s: &Series, step: i64) -> Result<Self, ForecastError> {
        let pts: Vec<(i64, f64)> = s
            .points
            .iter()
            .map(|p| (p.ts.div_euclid(1000), p.value))
            .collect();
        let (start, y, _) = resample_mean(&pts, step)?;
        Ok(Self { start, step, y })
    }

    /// Unix seconds of the last value.
    pub fn last(&self) -> i64 {
        self.start + (self.y.len() as i64 - 1) * self.step
    }

    /// Unix seconds of every value.
    pub fn times(&self) -> Vec<i64> {
        (0..self.y.len() as i64)
            .map(|i| self.start + i * self.step)
            .collect()
    }

    /// Mean of the last day (the current utilisation of a plan).
    pub fn current(&self) -> f64 {
        let k = ((86_400 / self.step) as usize).clamp(1, self.y.len().max(1));
        self.y[self.y.len().saturating_sub(k)..].iter().sum::<f64>() / k as f64
    }

    /// The grid as a model's input.
    pub fn regular(&self) -> Regular<'_> {
        Regular {
            start: self.start,
            step: self.step,
            y: &self.y,
        }
    }
}

/// The mean over hosts at each step where all have a value (the overlap of their ranges): the
/// cluster's utilisation when its hosts have one size.
pub fn cluster_mean(grids: &[&Grid]) -> Result<Grid, ForecastError> {
    let Some(first) = grids.first() else {
        return Err(ForecastError::InvalidInput("no host series".into()));
    };
    let step = first.step;
    if grids.iter().any(|g| g.step != step || g.y.is_empty()) {
        return Err(ForecastError::InvalidInput(
            "the hosts' series are empty or on different steps".into(),
        ));
    }
    let start = grids.iter().map(|g| g.start).max().unwrap_or(0);
    let end = grids.iter().map(|g| g.last()).min().unwrap_or(0);
    if end < start {
        return Err(ForecastError::InvalidInput(
            "the hosts' series do not overlap in time".into(),
        ));
    }
    let n = ((end - start) / step + 1) as usize;
    let y = (0..n)
        .map(|i| {
            let t = start + i as i64 * step;
            grids
                .iter()
                .map(|g| g.y[((t - g.start) / step) as usize])
                .sum::<f64>()
                / grids.len() as f64
        })
        .collect();
    Ok(Grid { start, step, y })
}

/// Forecasts a utilisation `horizon` steps ahead: the model chosen by backtest, its 80 %
/// conformal interval as P10..P90, clipped to [0, 100] %.
pub fn forecast_utilisation(
    g: &Grid,
    horizon: usize,
) -> Result<(QuantileForecast, ModelKind), ForecastError> {
    let sel = select_and_forecast(g.regular(), horizon, &SelectConfig::default())?;
    let mut f = QuantileForecast::from_selected(&sel, g.last(), g.step)?;
    // Utilisation is a percentage: a trend extrapolated over 30 days can leave [0, 100], which
    // no host can reach. Clipping changes no runway (the thresholds are inside the range).
    for v in f.p10.iter_mut().chain(&mut f.p50).chain(&mut f.p90) {
        *v = v.clamp(0.0, 100.0);
    }
    Ok((f, sel.model))
}

/// One host's plan of one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostPlan {
    /// The host.
    pub host: String,
    /// The model the backtest chose.
    pub model: ModelKind,
    /// Runway, peak and hosts to add (for one host).
    pub plan: ResourcePlan,
    /// The forecast it comes from.
    pub forecast: QuantileForecast,
}

/// Plans one host's `resource` from its utilisation grid.
pub fn plan_host(
    resource: Resource,
    host: &str,
    g: &Grid,
    horizon: usize,
    policy: &Policy,
) -> Result<HostPlan, ForecastError> {
    let (forecast, model) = forecast_utilisation(g, horizon)?;
    Ok(HostPlan {
        host: host.to_owned(),
        model,
        plan: plan_resource(resource, 1, g.current(), &forecast, policy),
        forecast,
    })
}

/// The cluster's plan of one resource, from the mean of its hosts' grids.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterPlan {
    /// Runway, peak and hosts to add.
    pub plan: ResourcePlan,
    /// The model the backtest chose for the mean series.
    pub model: ModelKind,
    /// The forecast of the mean series.
    pub forecast: QuantileForecast,
}

/// Plans `resource` for a cluster of the hosts `grids` (their mean, forecast as one series);
/// returns the plan and the mean series.
pub fn plan_cluster(
    resource: Resource,
    grids: &[&Grid],
    horizon: usize,
    policy: &Policy,
) -> Result<(ClusterPlan, Grid), ForecastError> {
    let mean = cluster_mean(grids)?;
    let (forecast, model) = forecast_utilisation(&mean, horizon)?;
    let plan = plan_resource(resource, grids.len(), mean.current(), &forecast, policy);
    Ok((
        ClusterPlan {
            plan,
            model,
            forecast,
        },
        mean,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(from: f64, per_step: f64, n: usize) -> QuantileForecast {
        let p50: Vec<f64> = (0..n).map(|i| from + per_step * i as f64).collect();
        QuantileForecast {
            step: 3_600,
            start: 3_600,
            p10: p50.iter().map(|v| v - 5.0).collect(),
            p90: p50.iter().map(|v| v + 5.0).collect(),
            p50,
        }
    }

    #[test]
    fn runway_is_ordered_by_quantile() {
        let f = ramp(60.0, 0.1, 720);
        let r = f.runway(85.0);
        // P50 reaches 85 at step 250 (60 + 0.1·250), P90 at 200, P10 at 300.
        assert_eq!(r.p50, Some(251.0 * 3_600.0));
        assert_eq!(r.p90, Some(201.0 * 3_600.0));
        assert_eq!(r.p10, Some(301.0 * 3_600.0));
        assert_eq!(f.runway(200.0), Runway::default());
    }

    #[test]
    fn hosts_to_add_meet_the_headroom() {
        let p = Policy::default(); // target 80 %
        assert_eq!(hosts_needed(70.0, 10, &p), 0);
        assert_eq!(hosts_needed(80.0, 10, &p), 0);
        // 10 hosts at 96 % = 960 host-% → 12 hosts at 80 %.
        assert_eq!(hosts_needed(96.0, 10, &p), 2);
        let bigger = Policy {
            new_host_size: 2.0,
            ..Policy::default()
        };
        assert_eq!(hosts_needed(96.0, 10, &bigger), 1);
        assert!(
            Policy {
                warning: 99.0,
                critical: 90.0,
                ..Policy::default()
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn scenarios_add_load_and_drain_hosts() {
        let f = ramp(50.0, 0.0, 10);
        let s = Scenario {
            name: "10 VMs".into(),
            add_vms: 10,
            vm_template: [(Resource::Cpu, 4.0)].into_iter().collect(),
            drain_hosts: 0,
        };
        let (hosts, g) = apply_scenario(&s, Resource::Cpu, 4, &f).expect("applies");
        assert_eq!(hosts, 4);
        assert_eq!(g.p50[0], 60.0, "10 VMs × 4 host-% over 4 hosts");
        let drain = Scenario {
            name: "drain one".into(),
            add_vms: 0,
            vm_template: Default::default(),
            drain_hosts: 1,
        };
        let (hosts, g) = apply_scenario(&drain, Resource::Memory, 4, &f).expect("applies");
        assert_eq!(hosts, 3);
        assert!((g.p50[0] - 50.0 * 4.0 / 3.0).abs() < 1e-12);
        let all = Scenario {
            drain_hosts: 4,
            ..drain
        };
        assert!(apply_scenario(&all, Resource::Cpu, 4, &f).is_err());
        let plans = [
            plan_resource(
                Resource::Cpu,
                4,
                50.0,
                &ramp(50.0, 0.2, 720),
                &Policy::default(),
            ),
            plan_resource(
                Resource::Memory,
                4,
                70.0,
                &ramp(70.0, 0.05, 720),
                &Policy::default(),
            ),
        ];
        // CPU reaches 95 % at step 225 (P50), memory at step 500.
        assert_eq!(bottleneck(&plans), Some(Resource::Cpu));
    }

    #[test]
    fn the_cluster_mean_covers_the_overlap_of_the_hosts() {
        let a = Grid {
            start: 0,
            step: 10,
            y: vec![1.0, 2.0, 3.0, 4.0],
        };
        let b = Grid {
            start: 10,
            step: 10,
            y: vec![10.0, 20.0, 30.0, 40.0],
        };
        let m = cluster_mean(&[&a, &b]).expect("overlap");
        assert_eq!((m.start, m.y.clone()), (10, vec![6.0, 11.5, 17.0]));
        assert_eq!(m.last(), 30);
        assert_eq!(m.times(), vec![10, 20, 30]);
        let far = Grid {
            start: 1_000,
            step: 10,
            y: vec![1.0],
        };
        assert!(cluster_mean(&[&a, &far]).is_err());
        assert!(cluster_mean(&[]).is_err());
        let other_step = Grid {
            start: 0,
            step: 5,
            y: vec![1.0],
        };
        assert!(cluster_mean(&[&a, &other_step]).is_err());
        // The current utilisation is the last day's mean: here the whole (short) history.
        assert_eq!(a.current(), 2.5);
    }
}
