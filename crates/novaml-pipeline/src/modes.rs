//! The ready-made pipelines of the binary: `demo` (embedded defaults: this host and a simulated
//! cluster, every job on) and `serve` (a configuration file's sources and detection, with the
//! jobs its flags turn on). Both build a [`Pipeline`] from a [`Config`] and run the same code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use novaml_collect::ScheduleSection;
use novaml_collect::sources::host::HostSection;
use novaml_collect::sources::simulator::SimSection;
use novaml_core::Selector;
use novaml_forecast::capacity::Resource;

use crate::PipelineError;
use crate::config::Config;
use crate::notify::Webhook;
use crate::pipeline::{Pipeline, PlanningSettings, TrainingSettings, TuningSettings, api_token};
use crate::training::Target;
use crate::tuning::RunRequest;

/// Capacity plans are refreshed this often.
const PLAN_EVERY: Duration = Duration::from_secs(300);

/// What `novaml demo` runs.
#[derive(Debug, Clone)]
pub struct Demo {
    /// The SQLite store, the models, the tuning state and the API token live here.
    pub data_dir: PathBuf,
    /// Where the API, the dashboards and /metrics listen.
    pub listen: SocketAddr,
    /// Seed of the simulated cluster and of the scheduled tuning runs.
    pub seed: u64,
    /// Between detection passes.
    pub detect_every: Duration,
    /// Between training passes.
    pub train_every: Duration,
    /// Between scheduled tuning runs.
    pub tune_every: Duration,
    /// The transfer-engine scenario tuned.
    pub tune_scenario: String,
    /// Alert receivers of new incidents.
    pub webhooks: Vec<Webhook>,
    /// Remote write of novaml's own metrics: URL and interval.
    pub remote_write: Option<(String, Duration)>,
}

/// The series the demo predicts: registry name and selector.
const DEMO_TARGETS: [(&str, &str); 3] = [
    ("sim.transfer_latency_ms", "dwcp_transfer_latency_ms"),
    (
        "sim.transfer_throughput_mbps",
        "dwcp_transfer_throughput_mbps",
    ),
    (
        "sim.host0_cpu_percent",
        "host_cpu_usage_percent{host=\"sim-host-0\"}",
    ),
];

fn selector(s: &str) -> Result<Selector, PipelineError> {
    Ok(s.parse()?)
}

impl Demo {
    /// The demo's configuration: this host every 5 s, the simulated cluster (3 hosts × 4 VMs,
    /// 3 days of history) every 10 s, detection on, everything under the data directory.
    pub fn config(&self) -> Config {
        let mut cfg = Config::default();
        cfg.store.path = self.data_dir.join("novaml.db");
        cfg.sources.host = Some(HostSection::every("5s"));
        cfg.sources.simulator = Some(SimSection {
            seed: self.seed,
            schedule: ScheduleSection::every("10s"),
            ..SimSection::default()
        });
        cfg.detect.enabled = true;
        cfg.detect.interval = format!("{}s", self.detect_every.as_secs().max(1));
        cfg.detect.webhooks.extend(self.webhooks.iter().cloned());
        cfg
    }

    /// The demo's pipeline.
    pub fn pipeline(&self) -> Result<Pipeline, PipelineError> {
        let cfg = self.config();
        cfg.check()?;
        let token = api_token(&self.data_dir)?;
        let mut p = Pipeline::from_config(&cfg)?;
        p.retention = Some(Duration::from_secs(30 * 86_400));
        p.listen = Some(self.listen);
        p.banner = Some(format!(
            "novaml demo: collecting this host and a SIMULATED cluster into {}\n  dashboards:  {{url}}dashboards/pipeline#token={token}\n  status page: {{url}}\n  metrics:     {{url}}metrics\n  API:         {{url}}api/openapi.json\n  API token:   {token} (for POST requests: Authorization: Bearer <token>)\nPress Ctrl-C to stop.",
            cfg.store.path.display()
        ));
        p.token = Some(token);
        p.planning = Some(PlanningSettings {
            interval: PLAN_EVERY,
            selector: selector("host_cpu_usage_percent")?,
            resource: Resource::Cpu,
        });
        p.training = Some(TrainingSettings {
            models_dir: self.data_dir.join("models"),
            targets: DEMO_TARGETS
                .iter()
                .map(|(name, sel)| {
                    Ok(Target {
                        name: (*name).into(),
                        selector: selector(sel)?,
                    })
                })
                .collect::<Result<_, PipelineError>>()?,
            first_after: Duration::from_secs(20),
            interval: self.train_every,
        });
        p.tuning = Some(TuningSettings {
            scenario: self.tune_scenario.clone(),
            state_dir: self.data_dir.join("tuning"),
            first_after: Duration::from_secs(10),
            interval: self.tune_every,
            request: RunRequest {
                tuner: "bo".into(),
                budget: 12,
                seed: self.seed,
                repeats: 3,
            },
        });
        p.remote_write = self.remote_write.clone();
        Ok(p)
    }
}

/// What `novaml serve` runs.
#[derive(Debug, Clone)]
pub struct Serve {
    /// The configuration file.
    pub config_path: PathBuf,
    /// Where the API, the dashboards and /metrics listen.
    pub listen: SocketAddr,
    /// Plan the capacity of these utilisation series (percent, one per host).
    pub plan: Option<Selector>,
    /// The model registry shown on the models dashboard.
    pub models: Option<PathBuf>,
    /// Remote write of novaml's own metrics: URL and interval.
    pub remote_write: Option<(String, Duration)>,
    /// The series this worker owns.
    pub shard: novaml_core::Shard,
}

impl Serve {
    /// The pipeline of the configuration file with the jobs the flags turn on.
    pub fn pipeline(&self) -> Result<Pipeline, PipelineError> {
        let cfg = Config::load(Some(&self.config_path))?;
        let mut p = Pipeline::from_config(&cfg)?;
        p.shard = self.shard;
        // With a remote store the metrics may come from elsewhere (vmagent, Prometheus).
        if p.sources.is_empty() && !p.metrics.keeps_own_retention() {
            return Err(PipelineError::config(
                "sources",
                format!(
                    "{} configures no sources (only a remote store may be filled by others)",
                    self.config_path.display()
                ),
            ));
        }
        let token = api_token(&cfg.data_dir())?;
        p.listen = Some(self.listen);
        p.banner = Some(format!(
            "novaml serve: collecting {} into {}\n  dashboards: {{url}}dashboards/pipeline#token={token}\n  API:        {{url}}api/openapi.json\n  API token:  {token}",
            self.config_path.display(),
            p.metrics.describe()
        ));
        p.token = Some(token);
        p.planning = self.plan.clone().map(|selector| PlanningSettings {
            interval: PLAN_EVERY,
            selector,
            resource: Resource::Cpu,
        });
        p.training = self.models.clone().map(|models_dir| TrainingSettings {
            models_dir,
            targets: Vec::new(),
            first_after: Duration::from_secs(60),
            interval: Duration::from_secs(600),
        });
        p.remote_write = self.remote_write.clone();
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_collects_this_host_and_the_simulator_with_detection_on() {
        let demo = Demo {
            data_dir: PathBuf::from("/tmp/novaml-demo-test"),
            listen: "127.0.0.1:0".parse().expect("addr"),
            seed: 7,
            detect_every: Duration::from_secs(30),
            train_every: Duration::from_secs(600),
            tune_every: Duration::from_secs(1800),
            tune_scenario: "wan-1g".into(),
            webhooks: Vec::new(),
            remote_write: None,
        };
        let cfg = demo.config();
        cfg.check().expect("valid");
        let kinds: Vec<&str> = cfg
            .resolve_sources()
            .expect("sources")
            .iter()
            .map(|c| c.kind)
            .collect();
        assert_eq!(kinds, ["host", "simulator"]);
        let sim = cfg.sources.simulator.as_ref().expect("simulator");
        assert_eq!((sim.seed, sim.hosts, sim.vms_per_host), (7, 3, 4));
        assert_eq!(
            cfg.detection().expect("detect").map(|d| d.interval),
            Some(Duration::from_secs(30))
        );
    }
}
