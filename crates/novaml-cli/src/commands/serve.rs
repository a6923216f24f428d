//! `novaml serve`: the demo's pipeline for a real cluster, from a configuration file (see
//! `novaml_pipeline::modes::Serve`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use novaml_pipeline::modes::Serve;
use novaml_pipeline::shutdown_signal;

use super::demo::RemoteWriteArgs;

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
    /// Own shard K of N of the series (detection, training, per-host planning): run N workers
    /// with 0/N .. N-1/N over one remote store; 0/N also plans the cluster. In a Kubernetes
    /// StatefulSet set NOVAML_SHARD to "$(POD_INDEX)/N", POD_INDEX from the pod's
    /// `apps.kubernetes.io/pod-index` label.
    #[arg(long, env = "NOVAML_SHARD", value_name = "K/N", default_value = "0/1")]
    shard: novaml_core::Shard,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let serve = Serve {
        config_path: args.config,
        listen: args.listen,
        plan: args
            .plan
            .as_deref()
            .map(|s| s.parse().map_err(|e| anyhow!("--plan {s:?}: {e}")))
            .transpose()?,
        models: args.models,
        remote_write: args.remote_write.resolve(),
        shard: args.shard,
    };
    let pipeline = serve.pipeline()?;
    super::block_on(async move { Ok(pipeline.run(shutdown_signal(None)).await?) })
}
