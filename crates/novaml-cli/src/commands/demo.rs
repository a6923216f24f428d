//! `novaml demo`: the main job on embedded defaults (see `novaml_pipeline::modes::Demo`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use novaml_pipeline::modes::Demo;
use novaml_pipeline::shutdown_signal;

use super::duration_arg;

/// Remote write of novaml's own metrics (`demo` and `serve`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RemoteWriteArgs {
    /// Send novaml's own metrics to this Prometheus remote-write endpoint (e.g.
    /// http://prometheus:9090/api/v1/write; Prometheus needs --web.enable-remote-write-receiver).
    #[arg(long, value_name = "URL")]
    remote_write: Option<String>,
    /// Seconds between remote writes.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    remote_write_every: u64,
}

impl RemoteWriteArgs {
    /// The URL and interval, when remote write is on.
    pub(crate) fn resolve(&self) -> Option<(String, Duration)> {
        self.remote_write
            .clone()
            .map(|u| (u, Duration::from_secs(self.remote_write_every)))
    }
}

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
    #[arg(long = "for", value_name = "DURATION", value_parser = duration_arg)]
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

pub(crate) fn run(args: Args) -> Result<()> {
    let demo = Demo {
        data_dir: args.data_dir,
        listen: args.listen,
        seed: args.seed,
        detect_every: Duration::from_secs(args.detect_every),
        train_every: Duration::from_secs(args.train_every * 60),
        tune_every: Duration::from_secs(args.tune_every * 60),
        tune_scenario: args.tune_scenario,
        webhooks: super::detect::webhooks(&args.alertmanager, &args.webhook),
        remote_write: args.remote_write.resolve(),
    };
    let pipeline = demo.pipeline()?;
    super::block_on(async move { Ok(pipeline.run(shutdown_signal(args.run_for)).await?) })
}
