//! A deterministic simulated cluster for the demo and for tests: hosts and VMs with daily and
//! weekly load, slow growth and noise, the platform's transfer metrics (DWCP: latency, throughput,
//! error ratio, HDE compression ratio, PBA bandwidth, ACP consensus time), and injected incidents
//! whose ground truth is written as the series `novaml_sim_incident{type=…}` (1 during the
//! incident, 0 otherwise).
//!
//! **Everything it emits is simulated** and labelled `simulated="true"`; never present it as real.
//!
//! Every value is a pure function of `(seed, series, timestamp)`, so a restarted simulator
//! continues exactly where the stored data ends and two runs with the same seed agree point for
//! point.

use std::collections::BTreeMap;
use std::f64::consts::TAU;
use std::time::Duration;

use novaml_core::{
    BoxFuture, CollectContext, Collected, Point, Series, SeriesKey, Source, SourceError, Timestamp,
};
use serde::Deserialize;

use crate::sources::{Configured, config_duration};
use crate::{CollectError, ScheduleSection};

const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;
/// Incidents are drawn per slot of this length: at most one per slot.
const SLOT_MS: i64 = 6 * 3_600_000;
/// Growth is measured from 2026-01-01T00:00:00Z so values do not depend on when a run starts.
const GROWTH_ORIGIN_MS: i64 = 1_767_225_600_000;
/// Points per series per collection when catching up on history.
const CHUNK_STEPS: i64 = 1_440;

/// Kinds of injected incident, as named in the ground-truth series.
pub const INCIDENT_TYPES: [&str; 8] = [
    "latency_spike",
    "throughput_drop",
    "error_burst",
    "resource_exhaustion",
    "memory_leak",
    "network_anomaly",
    "compression_failure",
    "consensus_delay",
];

/// `[sources.simulator]` of the configuration file; every field defaults to [`SimConfig`]'s.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSection {
    /// Run the simulator.
    pub enabled: bool,
    /// Seed of every random draw.
    pub seed: u64,
    /// Number of hosts.
    pub hosts: usize,
    /// VMs per host.
    pub vms_per_host: usize,
    /// Spacing of simulated points.
    pub step: String,
    /// History generated on the first run.
    pub history: String,
    /// Chance that a 6-hour slot holds an incident.
    pub incident_rate: f64,
    /// Interval, timeout, retries.
    #[serde(flatten)]
    pub schedule: ScheduleSection,
}

impl Default for SimSection {
    fn default() -> Self {
        let d = SimConfig::default();
        Self {
            enabled: true,
            seed: d.seed,
            hosts: d.hosts,
            vms_per_host: d.vms_per_host,
            step: format!("{}s", d.step.as_secs()),
            history: format!("{}s", d.history.as_secs()),
            incident_rate: d.incident_rate,
            schedule: ScheduleSection::default(),
        }
    }
}

impl SimSection {
    /// Checks the section at `field` and builds the source.
    pub fn resolve(&self, field: &str) -> Result<Configured, CollectError> {
        let cfg = SimConfig {
            name: "simulator".into(),
            seed: self.seed,
            hosts: self.hosts,
            vms_per_host: self.vms_per_host,
            step: config_duration(&format!("{field}.step"), &self.step)?,
            history: config_duration(&format!("{field}.history"), &self.history)?,
            incident_rate: self.incident_rate,
        };
        Ok(Configured {
            source: Box::new(Simulator::new(cfg)?),
            schedule: self.schedule.resolve(field)?,
            kind: "simulator",
            simulated: true,
        })
    }
}

/// Simulator settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Source name.
    pub name: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// Number of hosts.
    pub hosts: usize,
    /// VMs per host.
    pub vms_per_host: usize,
    /// Spacing of simulated points.
    pub step: Duration,
    /// History generated on the first run.
    pub history: Duration,
    /// Chance that a 6-hour slot holds an incident.
    pub incident_rate: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            name: "simulator".into(),
            seed: 42,
            hosts: 3,
            vms_per_host: 4,
            step: Duration::from_secs(60),
            history: Duration::from_secs(3 * 86_400),
            incident_rate: 0.35,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    VmCpu { host: usize, vm: usize },
    VmMem { host: usize, vm: usize },
    VmNetRx { host: usize, vm: usize },
    VmNetTx { host: usize, vm: usize },
    HostCpu { host: usize },
    Latency,
    Throughput,
    ErrorRatio,
    Compression,
    Bandwidth,
    Consensus,
    Truth { incident: usize },
}

/// One injected incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incident {
    /// Index into [`INCIDENT_TYPES`].
    pub kind: usize,
    /// Start, ms.
    pub start: Timestamp,
    /// End (exclusive), ms.
    pub end: Timestamp,
    /// Affected host.
    pub host: usize,
    /// Affected VM on that host.
    pub vm: usize,
}

/// The simulator source.
#[derive(Debug)]
pub struct Simulator {
    config: SimConfig,
    step_ms: i64,
    series: Vec<(SeriesKey, Kind)>,
    cursor: Option<Timestamp>,
}

/// SplitMix64: a stateless hash from which every draw is made (fast, well mixed, no state to
/// carry across restarts).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl Simulator {
    /// A simulator; fails when the config is unusable.
    pub fn new(config: SimConfig) -> Result<Self, crate::CollectError> {
        let bad = |field: &str, reason: &str| crate::CollectError::Config {
            field: format!("sources.simulator.{field}"),
            reason: reason.into(),
        };
        if config.hosts == 0 || config.vms_per_host == 0 {
            return Err(bad("hosts", "hosts and vms_per_host must be at least 1"));
        }
        let step_ms = config.step.as_millis() as i64;
        if step_ms < 1000 {
            return Err(bad("step", "must be at least 1s"));
        }
        if !(0.0..=1.0).contains(&config.incident_rate) {
            return Err(bad("incident_rate", "must be in [0, 1]"));
        }
        let mut series = Vec::new();
        let key = |name: &str, labels: &[(&str, String)]| {
            let mut l: BTreeMap<String, String> = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            l.insert("simulated".into(), "true".into());
            SeriesKey {
                name: name.into(),
                labels: l,
            }
        };
        for h in 0..config.hosts {
            let host = format!("sim-host-{h}");
            series.push((
                key("host_cpu_usage_percent", &[("host", host.clone())]),
                Kind::HostCpu { host: h },
            ));
            for v in 0..config.vms_per_host {
                let labels = [("host", host.clone()), ("vm", format!("sim-vm-{h}-{v}"))];
                series.push((
                    key("vm_cpu_usage_percent", &labels),
                    Kind::VmCpu { host: h, vm: v },
                ));
                series.push((
                    key("vm_memory_used_percent", &labels),
                    Kind::VmMem { host: h, vm: v },
                ));
                series.push((
                    key("vm_network_receive_bytes_per_second", &labels),
                    Kind::VmNetRx { host: h, vm: v },
                ));
                series.push((
                    key("vm_network_transmit_bytes_per_second", &labels),
                    Kind::VmNetTx { host: h, vm: v },
                ));
            }
        }
        let cluster = [("cluster", "sim".to_owned())];
        for (name, kind) in [
            ("dwcp_transfer_latency_ms", Kind::Latency),
            ("dwcp_transfer_throughput_mbps", Kind::Throughput),
            ("dwcp_transfer_error_ratio", Kind::ErrorRatio),
            ("dwcp_hde_compression_ratio", Kind::Compression),
            ("dwcp_pba_bandwidth_mbps", Kind::Bandwidth),
            ("dwcp_acp_consensus_time_ms", Kind::Consensus),
        ] {
            series.push((key(name, &cluster), kind));
        }
        for (i, t) in INCIDENT_TYPES.iter().enumerate() {
            series.push((
                key("novaml_sim_incident", &[("type", (*t).to_owned())]),
                Kind::Truth { incident: i },
            ));
        }
        Ok(Self {
            step_ms,
            config,
            series,
            cursor: None,
        })
    }

    /// The keys of every simulated series.
    pub fn keys(&self) -> impl Iterator<Item = &SeriesKey> {
        self.series.iter().map(|(k, _)| k)
    }

    fn h(&self, parts: &[u64]) -> u64 {
        parts
            .iter()
            .fold(mix(self.config.seed), |acc, &p| mix(acc ^ p))
    }

    /// The incident active at `ts`, if any.
    pub fn incident_at(&self, ts: Timestamp) -> Option<Incident> {
        let slot = ts.div_euclid(SLOT_MS);
        let r = self.h(&[1, slot as u64]);
        if unit(r) >= self.config.incident_rate {
            return None;
        }
        let duration = (10 + (mix(r ^ 2) % 50) as i64) * 60_000; // 10 to 59 minutes
        let start = slot * SLOT_MS + (mix(r ^ 3) % (SLOT_MS - duration) as u64) as i64;
        let inc = Incident {
            kind: (mix(r ^ 4) % INCIDENT_TYPES.len() as u64) as usize,
            start,
            end: start + duration,
            host: (mix(r ^ 5) % self.config.hosts as u64) as usize,
            vm: (mix(r ^ 6) % self.config.vms_per_host as u64) as usize,
        };
        (ts >= inc.start && ts < inc.end).then_some(inc)
    }

    /// Approximately standard normal noise for series `i` at `ts` (Irwin–Hall with 4 draws).
    fn noise(&self, i: usize, ts: Timestamp) -> f64 {
        let r = self.h(&[2, i as u64, ts as u64]);
        let s: f64 = (0..4).map(|k| unit(mix(r ^ k))).sum();
        (s - 2.0) * (3.0f64).sqrt()
    }

    /// Load shape in [0, 1]: business-hours peak, night trough, lighter weekends, slow growth.
    fn load(&self, phase: f64, ts: Timestamp) -> f64 {
        let day = (ts.rem_euclid(DAY_MS) as f64 / DAY_MS as f64 + phase).rem_euclid(1.0);
        let daily = 0.5 - 0.5 * (TAU * day).cos(); // 0 at midnight, 1 at noon
        let weekday = (ts.rem_euclid(WEEK_MS) / DAY_MS + 4) % 7; // 1970-01-01 was a Thursday
        let weekly = if weekday >= 5 { 0.6 } else { 1.0 };
        let days = (ts - GROWTH_ORIGIN_MS) as f64 / DAY_MS as f64;
        let growth = 1.0 + 0.002 * days.max(0.0);
        (daily * weekly * growth).clamp(0.0, 1.5)
    }

    /// The value of series `i` at `ts`.
    pub fn value(&self, i: usize, ts: Timestamp) -> f64 {
        let kind = self.series[i].1;
        let inc = self.incident_at(ts);
        let active = |k: &str| inc.filter(|x| INCIDENT_TYPES[x.kind] == k);
        let n = self.noise(i, ts);
        let vm_phase = |h: usize, v: usize| unit(self.h(&[3, h as u64, v as u64])) * 0.1;
        let v = match kind {
            Kind::VmCpu { host, vm } => {
                let base = 15.0 + 50.0 * self.load(vm_phase(host, vm), ts) + 3.0 * n;
                match active("resource_exhaustion") {
                    Some(x) if x.host == host && x.vm == vm => 96.0 + n.abs(),
                    _ => base,
                }
            }
            Kind::VmMem { host, vm } => {
                let base = 40.0 + 15.0 * self.load(vm_phase(host, vm) + 0.05, ts) + 1.0 * n;
                match active("memory_leak") {
                    Some(x) if x.host == host && x.vm == vm => {
                        let f = (ts - x.start) as f64 / (x.end - x.start) as f64;
                        base + (97.0 - base) * f
                    }
                    _ => base,
                }
            }
            Kind::VmNetRx { host, vm } | Kind::VmNetTx { host, vm } => {
                let scale = if matches!(kind, Kind::VmNetRx { .. }) {
                    2.0e6
                } else {
                    1.2e6
                };
                let base = scale * (0.2 + self.load(vm_phase(host, vm), ts)) * (1.0 + 0.1 * n);
                match active("network_anomaly") {
                    Some(x) if x.host == host && x.vm == vm => base * 6.0,
                    _ => base,
                }
            }
            Kind::HostCpu { host } => {
                let mean: f64 = (0..self.config.vms_per_host)
                    .map(|v| 15.0 + 50.0 * self.load(vm_phase(host, v), ts))
                    .sum::<f64>()
                    / self.config.vms_per_host as f64;
                let hot = active("resource_exhaustion").is_some_and(|x| x.host == host);
                0.8 * mean + 5.0 + 2.0 * n + if hot { 15.0 } else { 0.0 }
            }
            Kind::Latency => {
                let base = 20.0 + 30.0 * self.load(0.0, ts) + 3.0 * n;
                if active("latency_spike").is_some() {
                    base * 5.0
                } else {
                    base
                }
            }
            Kind::Throughput => {
                let base = 900.0 - 250.0 * self.load(0.0, ts) + 20.0 * n;
                if active("throughput_drop").is_some() {
                    base * 0.3
                } else {
                    base
                }
            }
            Kind::ErrorRatio => {
                let base = 0.002 + 0.001 * n.abs();
                if active("error_burst").is_some() {
                    0.05 + 0.01 * n.abs()
                } else {
                    base
                }
            }
            Kind::Compression => {
                let base = 2.8 + 0.1 * n;
                if active("compression_failure").is_some() {
                    1.0 + 0.02 * n.abs()
                } else {
                    base
                }
            }
            Kind::Bandwidth => 1000.0 - 300.0 * self.load(0.02, ts) + 15.0 * n,
            Kind::Consensus => {
                let base = 8.0 + 4.0 * self.load(0.0, ts) + 0.8 * n;
                if active("consensus_delay").is_some() {
                    base * 6.0
                } else {
                    base
                }
            }
            Kind::Truth { incident } => {
                f64::from(u8::from(inc.is_some_and(|x| x.kind == incident)))
            }
        };
        match kind {
            Kind::Truth { .. } | Kind::Compression => v,
            Kind::VmCpu { .. } | Kind::VmMem { .. } | Kind::HostCpu { .. } => v.clamp(0.0, 100.0),
            _ => v.max(0.0),
        }
    }

    fn align(&self, ts: Timestamp) -> Timestamp {
        ts.div_euclid(self.step_ms) * self.step_ms
    }

    /// Points for grid times in `[from, to]`.
    pub fn generate(&self, from: Timestamp, to: Timestamp) -> Vec<Series> {
        let from = self.align(from + self.step_ms - 1);
        self.series
            .iter()
            .enumerate()
            .map(|(i, (key, _))| {
                let points = (0..)
                    .map(|k| from + k * self.step_ms)
                    .take_while(|&t| t <= to)
                    .map(|t| Point::new(t, self.value(i, t)))
                    .collect();
                Series::new(key.clone(), points)
            })
            .collect()
    }
}

impl Source for Simulator {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn collect<'a>(
        &'a mut self,
        ctx: CollectContext,
    ) -> BoxFuture<'a, Result<Collected, SourceError>> {
        Box::pin(async move {
            let end_limit = self.align(ctx.now);
            let start = match self.cursor {
                Some(c) => c + self.step_ms,
                None => self.align(ctx.now - self.config.history.as_millis() as i64),
            };
            if start > end_limit {
                return Ok(Collected::default());
            }
            let end = end_limit.min(start + (CHUNK_STEPS - 1) * self.step_ms);
            let series = self.generate(start, end);
            self.cursor = Some(end);
            Ok(Collected {
                series,
                skipped: vec![],
                more: end < end_limit,
            })
        })
    }

    fn cursor(&self) -> Option<Timestamp> {
        self.cursor
    }

    fn restore(&mut self, cursor: Timestamp) {
        self.cursor = Some(self.align(cursor));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(seed: u64) -> Simulator {
        Simulator::new(SimConfig {
            seed,
            ..SimConfig::default()
        })
        .expect("valid config")
    }

    #[test]
    fn same_seed_same_values_other_seed_other_values() {
        let (a, b, c) = (sim(7), sim(7), sim(8));
        let t = GROWTH_ORIGIN_MS + 10 * DAY_MS;
        let ga = a.generate(t, t + 3_600_000);
        assert_eq!(ga, b.generate(t, t + 3_600_000));
        assert_ne!(ga, c.generate(t, t + 3_600_000));
        assert!(ga.iter().all(|s| s.key.label("simulated") == Some("true")));
    }

    #[test]
    fn daily_cycle_and_incident_ground_truth() {
        let s = sim(1);
        let i = s
            .series
            .iter()
            .position(|(_, k)| matches!(k, Kind::VmCpu { host: 0, vm: 0 }))
            .expect("vm cpu");
        let day = GROWTH_ORIGIN_MS + 5 * DAY_MS; // a weekday
        let mean = |h0: i64| {
            (0..60)
                .map(|m| s.value(i, day + h0 * 3_600_000 + m * 60_000))
                .sum::<f64>()
                / 60.0
        };
        assert!(
            mean(12) > mean(2) + 20.0,
            "noon {} vs night {}",
            mean(12),
            mean(2)
        );

        // Over 30 days, incidents happen, and the truth series is 1 exactly while one is active.
        let mut seen = std::collections::HashSet::new();
        for k in 0..(30 * 24 * 60) {
            let t = GROWTH_ORIGIN_MS + k * 60_000;
            if let Some(inc) = s.incident_at(t) {
                seen.insert(inc.kind);
                let truth = s
                    .series
                    .iter()
                    .position(|(_, kd)| *kd == Kind::Truth { incident: inc.kind })
                    .expect("truth");
                assert_eq!(s.value(truth, t), 1.0);
            }
        }
        assert!(
            seen.len() >= 6,
            "most incident types occur in 30 days: {seen:?}"
        );
    }

    #[tokio::test]
    async fn backfills_in_chunks_then_follows_and_resumes_without_gaps() {
        let mut s = Simulator::new(SimConfig {
            history: Duration::from_secs(2 * 86_400),
            ..SimConfig::default()
        })
        .expect("config");
        let now = GROWTH_ORIGIN_MS + 3 * DAY_MS + 30_000;
        let mut all: Vec<Timestamp> = Vec::new();
        loop {
            let c = s.collect(CollectContext { now }).await.expect("collect");
            all.extend(c.series[0].timestamps());
            if !c.more {
                break;
            }
        }
        assert_eq!(all.len(), 2 * 1440 + 1);
        assert!(all.windows(2).all(|w| w[1] - w[0] == 60_000));
        // A new simulator restored from the cursor continues on the grid.
        let mut r = Simulator::new(SimConfig::default()).expect("config");
        r.restore(s.cursor().expect("cursor"));
        let c = r
            .collect(CollectContext { now: now + 120_000 })
            .await
            .expect("collect");
        assert_eq!(
            c.series[0].timestamps(),
            vec![all[all.len() - 1] + 60_000, all[all.len() - 1] + 120_000]
        );
    }
}
