//! `novaml demo`: the main job on embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};

use novaml_server::tuning::RunRequest;

use super::pipeline::{
    Pipeline, PlanningSettings, RemoteWriteArgs, TrainingSettings, TuningSettings,
};
use super::training::Target;
use crate::config::{Config, HostEntry, ScheduleEntry, SimEntry};

/// Arguments of `novaml demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    remote_write: RemoteWriteArgs,
    /// Address of the HTTP server.
    #[arg(long, default_value = "127.0.0.1:8600")]
    listen: SocketAddr,
    /// Directory of the SQLite store (created if missing).
    #[arg(long, default_value = "novaml-data")]
    data_dir: PathBuf,
    /// Seed of the simulated cluster.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after this long (e.g. 30s, 5m); runs until Ctrl-C when unset.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    run_for: Option<Duration>,
    /// Seconds between anomaly-detection passes over the store.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    detect_every: u64,
    /// Minutes between training passes (ridge, then the ensemble with the LSTM inside, per predicted series, champion/challenger).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    train_every: u64,
    /// Minutes between scheduled tuning runs of the transfer engine (12 trials each).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    tune_every: u64,
    /// Transfer-engine scenario the demo tunes (lan-10g, wan-1g, wan-100m).
    #[arg(long, default_value = "wan-1g")]
    tune_scenario: String,
    /// Send new incidents to this Alertmanager (base URL). Repeatable.
    #[arg(long, value_name = "URL")]
    alertmanager: Vec<String>,
    /// Send new incidents to this URL as JSON. Repeatable.
    #[arg(long, value_name = "URL")]
    webhook: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration> {
    novaml_collect::time::parse_duration(s)
        .ok_or_else(|| anyhow!("{s:?} is not a duration like 30s, 5m, 2h"))
}

pub(crate) fn run(args: Args) -> Result<()> {
    let mut cfg = Config::default();
    let schedule = |interval: &str| ScheduleEntry {
        interval: interval.into(),
        ..ScheduleEntry::default()
    };
    cfg.sources.host = Some(HostEntry {
        enabled: true,
        schedule: schedule("5s"),
    });
    cfg.sources.simulator = Some(SimEntry {
        enabled: true,
        seed: args.seed,
        hosts: 3,
        vms_per_host: 4,
        step: "60s".into(),
        history: "3d".into(),
        incident_rate: 0.35,
        schedule: schedule("10s"),
    });
    cfg.check()?;
    let token = super::pipeline::api_token(&args.data_dir)?;
    cfg.detect.enabled = true;
    cfg.detect.interval = format!("{}s", args.detect_every);
    cfg.detect
        .webhooks
        .extend(super::detect::webhooks(&args.alertmanager, &args.webhook));
    let detection = cfg.detect.resolve()?;
    let pipeline = Pipeline {
        store_path: args.data_dir.join("novaml.db"),
        sources: cfg.resolve_sources()?,
        buffer: cfg.collect.buffer,
        seed: cfg.collect.seed,
        retention: Some(Duration::from_secs(30 * 86_400)),
        listen: Some(args.listen),
        stop_after: args.run_for,
        banner: Some(format!(
            "novaml demo: collecting this host and a SIMULATED cluster into {}\n  dashboards:  {{url}}dashboards/pipeline#token={token}\n  status page: {{url}}\n  metrics:     {{url}}metrics\n  API:         {{url}}api/openapi.json\n  API token:   {token} (for POST requests: Authorization: Bearer <token>)\nPress Ctrl-C to stop.",
            args.data_dir.join("novaml.db").display()
        )),
        detection: Some(detection),
        planning: Some(PlanningSettings {
            interval: Duration::from_secs(300),
            selector: "host_cpu_usage_percent"
                .parse()
                .map_err(|e| anyhow!("built-in selector: {e}"))?,
            resource: novaml_forecast::capacity::Resource::Cpu,
        }),
        token: Some(token.clone()),
        training: Some(TrainingSettings {
            models_dir: args.data_dir.join("models"),
            targets: [
                ("sim.transfer_latency_ms", "dwcp_transfer_latency_ms"),
                (
                    "sim.transfer_throughput_mbps",
                    "dwcp_transfer_throughput_mbps",
                ),
                (
                    "sim.host0_cpu_percent",
                    "host_cpu_usage_percent{host=\"sim-host-0\"}",
                ),
            ]
            .into_iter()
            .map(|(name, sel)| {
                Ok(Target {
                    name: name.into(),
                    selector: sel.parse().map_err(|e| anyhow!("built-in selector: {e}"))?,
                })
            })
            .collect::<Result<_>>()?,
            first_after: Duration::from_secs(20),
            interval: Duration::from_secs(args.train_every * 60),
        }),
        remote_write: args.remote_write.resolve(),
        tuning: Some(TuningSettings {
            scenario: args.tune_scenario.clone(),
            state_dir: args.data_dir.join("tuning"),
            first_after: Duration::from_secs(10),
            interval: Duration::from_secs(args.tune_every * 60),
            request: RunRequest {
                tuner: "bo".into(),
                budget: 12,
                seed: args.seed,
                repeats: 3,
            },
        }),
    };
    super::block_on(pipeline.run())
}
