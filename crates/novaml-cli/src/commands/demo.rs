//! `novaml demo`: the main job on embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::pipeline::Pipeline;
use crate::config::{Config, HostEntry, ScheduleEntry, SimEntry};

/// Arguments of `novaml demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
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
    let pipeline = Pipeline {
        store_path: args.data_dir.join("novaml.db"),
        sources: cfg.resolve_sources()?,
        buffer: cfg.collect.buffer,
        seed: cfg.collect.seed,
        retention: Some(Duration::from_secs(30 * 86_400)),
        listen: Some(args.listen),
        stop_after: args.run_for,
        banner: Some(format!(
            "novaml demo: collecting this host and a SIMULATED cluster into {}\n  status page: {{url}}\n  metrics:     {{url}}metrics\nPress Ctrl-C to stop.",
            args.data_dir.join("novaml.db").display()
        )),
    };
    super::block_on(pipeline.run())
}
