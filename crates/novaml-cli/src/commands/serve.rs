//! `novaml serve`: the demo's pipeline for a real cluster, from a configuration file: its sources
//! into the store, detection as configured, capacity planning of a utilisation selector, the
//! model registry on the models dashboard, and the API, dashboards and /metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use super::pipeline::{Pipeline, PlanningSettings, RemoteWriteArgs, TrainingSettings};
use crate::config::Config;

/// Arguments of `novaml serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    remote_write: RemoteWriteArgs,
    /// Configuration file: sources, store, detection (see config/novaml.example.toml).
    #[arg(long, short)]
    config: PathBuf,
    /// Address of the HTTP server (API, dashboards, /metrics).
    #[arg(long, default_value = "127.0.0.1:8600")]
    listen: SocketAddr,
    /// Plan the capacity of these utilisation series (percent, one per host, label `host`),
    /// every 5 minutes, e.g. 'host_cpu_usage_percent'.
    #[arg(long, value_name = "SELECTOR")]
    plan: Option<String>,
    /// The model registry shown on the models dashboard (models trained with `novaml train`).
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let cfg = Config::load(Some(&args.config))?;
    let sources = cfg.resolve_sources()?;
    if sources.is_empty() {
        bail!("{} configures no sources", args.config.display());
    }
    let retention = cfg.retention()?;
    let data_dir = cfg
        .store
        .path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let token = super::pipeline::api_token(&data_dir)?;
    let planning = match &args.plan {
        Some(sel) => Some(PlanningSettings {
            interval: Duration::from_secs(300),
            selector: sel.parse().map_err(|e| anyhow!("--plan {sel:?}: {e}"))?,
            resource: novaml_forecast::capacity::Resource::Cpu,
        }),
        None => None,
    };
    let pipeline = Pipeline {
        store_path: cfg.store.path.clone(),
        sources,
        buffer: cfg.collect.buffer,
        seed: cfg.collect.seed,
        retention,
        listen: Some(args.listen),
        stop_after: None,
        banner: Some(format!(
            "novaml serve: collecting {} into {}\n  dashboards: {{url}}dashboards/pipeline#token={token}\n  API:        {{url}}api/openapi.json\n  API token:  {token}",
            args.config.display(),
            cfg.store.path.display()
        )),
        detection: cfg.detection()?,
        token: Some(token.clone()),
        planning,
        training: args.models.map(|models_dir| TrainingSettings {
            models_dir,
            targets: Vec::new(),
            first_after: Duration::from_secs(60),
            interval: Duration::from_secs(600),
        }),
        tuning: None,
        remote_write: args.remote_write.resolve(),
    };
    super::block_on(pipeline.run())
}
