//! The long-running pipeline behind `novaml demo`, `novaml serve` and `novaml collect --follow`:
//! sources → runner → SQLite, with the API, the dashboards, /metrics and the status page served
//! alongside, and the scheduled jobs each configuration turns on (retention, detection,
//! training and prediction, capacity planning, tuning, remote write). Shutdown stops the sources
//! after their current collection and flushes the buffer.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use novaml_anomaly::metrics::AnomalyMetrics;
use novaml_collect::{CollectMetrics, Configured, Runner};
use novaml_core::MetricStore;
use novaml_core::Shard;
use novaml_core::time::now_ms;
use novaml_forecast::capacity::{Policy, Resource};
use novaml_forecast::metrics::CapacityMetrics;
use novaml_server::AppState;
use novaml_store::{AnyStore, MetricsAt, SharedState, SqliteStore, StateAt};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::PipelineError;
use crate::config::{Config, DetectSettings};
use crate::detection::Detection;
use crate::models::ModelHub;
use crate::notify::Notifier;
use crate::periodic::{Every, blocking, spawn};
use crate::planning::Planning;
use crate::remote_write::RemoteWriter;
use crate::status::Status;
use crate::training::{Target, Training};
use crate::tuning::{RunRequest, TuningService};

/// What to run.
pub struct Pipeline {
    /// The SQLite file: the metrics in embedded mode, and in every mode the state (incidents,
    /// feedback); the data directory (lock, models, plans) is its directory.
    pub store_path: PathBuf,
    /// Where the metrics are: the SQLite file above, or a remote TSDB.
    pub metrics: MetricsAt,
    /// Where the state is (incidents, feedback, checkpoints, shard leases): the SQLite file
    /// above, or a PostgreSQL database shared by the fleet's workers.
    pub state: StateAt,
    /// The series this worker owns (detection, training, per-host planning); shard 0 also
    /// runs the fleet-wide jobs (the cluster's capacity).
    pub shard: Shard,
    /// The sources.
    pub sources: Vec<Configured>,
    /// Batches held between sources and the store.
    pub buffer: usize,
    /// Seed of the retry jitter.
    pub seed: u64,
    /// Points older than this are deleted, checked hourly.
    pub retention: Option<Duration>,
    /// Where the API, the dashboards and /metrics listen (none: no server).
    pub listen: Option<SocketAddr>,
    /// Printed once the server listens (`{url}` is replaced by its base URL).
    pub banner: Option<String>,
    /// Live anomaly detection over the store, when set.
    pub detection: Option<DetectSettings>,
    /// Bearer token for the API's mutating endpoints.
    pub token: Option<String>,
    /// Capacity planning over the store, when set.
    pub planning: Option<PlanningSettings>,
    /// Scheduled training and prediction (and the registry on the API), when set.
    pub training: Option<TrainingSettings>,
    /// Tuning of the transfer engine (API, and scheduled runs), when set.
    pub tuning: Option<TuningSettings>,
    /// Prometheus remote write of our own metrics: URL and interval.
    pub remote_write: Option<(String, Duration)>,
    /// Limits of the HTTP server's connections.
    pub connections: novaml_server::ConnLimits,
    /// `Host` values the server answers to besides its loopback names.
    pub allowed_hosts: Vec<String>,
}

/// What the pipeline trains.
#[derive(Debug)]
pub struct TrainingSettings {
    /// The model registry.
    pub models_dir: PathBuf,
    /// Series to predict (none: the registry is only shown).
    pub targets: Vec<Target>,
    /// Delay of the first pass.
    pub first_after: Duration,
    /// Between passes.
    pub interval: Duration,
}

/// What the pipeline tunes.
#[derive(Debug, Clone)]
pub struct TuningSettings {
    /// Transfer-engine scenario.
    pub scenario: String,
    /// Runs, audit log and experience.
    pub state_dir: PathBuf,
    /// Delay of the first scheduled run.
    pub first_after: Duration,
    /// Between scheduled runs.
    pub interval: Duration,
    /// What each scheduled run asks for.
    pub request: RunRequest,
}

/// What the pipeline plans.
#[derive(Debug, Clone)]
pub struct PlanningSettings {
    /// Between refreshes.
    pub interval: Duration,
    /// Utilisation series (percent), one per host.
    pub selector: novaml_core::Selector,
    /// Which resource they measure.
    pub resource: Resource,
}

/// This worker, as shard leases name it: `host:pid`.
fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Creates the data directory, then opens the metric store (connecting to a remote one: a
/// clear error naming its URL when it does not answer).
fn open_store(path: &Path, metrics: &MetricsAt) -> Result<AnyStore, PipelineError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        novaml_core::fs::create_private_dir(dir)
            .map_err(PipelineError::io("cannot create", dir))?;
    }
    Ok(metrics.open()?)
}

impl Pipeline {
    /// The pipeline of a configuration file: its store, sources, retention and detection, no
    /// server; the caller adds the rest.
    pub fn from_config(cfg: &Config) -> Result<Self, PipelineError> {
        Ok(Self {
            store_path: cfg.store.path.clone(),
            metrics: cfg.metrics_at()?,
            state: cfg.state_at()?,
            shard: Shard::ALL,
            sources: cfg.resolve_sources()?,
            buffer: cfg.collect.buffer,
            seed: cfg.collect.seed,
            retention: cfg.retention()?,
            listen: None,
            banner: None,
            detection: cfg.detection()?,
            token: None,
            planning: None,
            training: None,
            tuning: None,
            remote_write: None,
            connections: novaml_server::ConnLimits::default(),
            allowed_hosts: cfg.server.allowed_hosts.clone(),
        })
    }

    /// Runs until `shutdown` resolves; then stops the sources and flushes the buffer. Fails
    /// when a batch could not be written before shutdown (it is collected again on restart).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), PipelineError> {
        let data_dir = self.store_path.parent().unwrap_or(Path::new(""));
        let _lock = crate::lock::DirLock::acquire(data_dir)?;
        let store = open_store(&self.store_path, &self.metrics)?;
        if self.shard != Shard::ALL {
            info!(shard = %self.shard, leads = self.shard.leads(), "This worker owns one shard of the series.");
        }
        if let MetricsAt::Remote(r) = &self.metrics {
            info!(url = %r.url, write_url = %r.write_url, "Metrics are kept in a remote TSDB; the state stays in {}.", self.store_path.display());
        }
        let mut registry = Registry::default();
        let metrics = CollectMetrics::register(&mut registry);
        let anomaly_metrics = AnomalyMetrics::register(&mut registry);
        let capacity_metrics = CapacityMetrics::register(&mut registry);
        // The state, and this worker's shard lease, before anything runs: a second worker
        // started on a running shard stops here. A process that neither detects nor owns a
        // shard (a collector feeding a fleet's TSDB) needs neither, even with `[state]` set.
        let incident_log: Option<SharedState> =
            if self.detection.is_some() || self.shard != Shard::ALL {
                let (at, shard) = (self.state.clone(), self.shard);
                let state = blocking(move || {
                    let mut state = at.open()?;
                    state.claim_shard(shard, &holder(), now_ms())?;
                    Ok(state)
                })
                .await?;
                info!(state = %state.describe(), shard = %self.shard, "State open, shard claimed.");
                Some(Arc::new(Mutex::new(state)))
            } else {
                None
            };
        let shard_view: Arc<RwLock<Vec<novaml_store::ShardState>>> = Arc::default();
        let hub = self
            .training
            .as_ref()
            .map(|t| Arc::new(ModelHub::new(&t.models_dir, &mut registry)));
        if let Some(h) = &hub
            && let Err(e) = h.refresh_metrics()
        {
            warn!(error = %e, "Cannot read the model registry yet.");
        }
        let tuning = match &self.tuning {
            Some(t) => Some(TuningService::start(
                &t.scenario,
                &t.state_dir,
                &mut registry,
            )?),
            None => None,
        };
        let planning = self.planning.as_ref().map(|p| {
            Arc::new(Planning {
                store: self.metrics.clone(),
                shard: self.shard,
                metrics: capacity_metrics,
                latest: RwLock::new(None),
                saved: data_dir.join(crate::planning::PLAN_FILE),
                restored: crate::planning::restore(&data_dir.join(crate::planning::PLAN_FILE)),
                selector: p.selector.clone(),
                resource: p.resource,
                policy: Policy::default(),
            })
        });
        let mut runner = Runner::new(self.buffer, metrics.clone()).with_seed(self.seed);
        let mut described = Vec::new();
        for c in self.sources {
            described.push((
                c.source.name().to_owned(),
                c.kind,
                c.schedule.interval.as_secs_f64(),
                c.simulated,
            ));
            runner.add(c.source, c.schedule);
        }
        let (stop_tx, stop_rx) = watch::channel(false);

        let mut base_url = String::new();
        let server = match self.listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(PipelineError::io("cannot listen on", addr.to_string()))?;
                let local = listener
                    .local_addr()
                    .map_err(PipelineError::io("cannot listen on", addr.to_string()))?;
                let mut status = Status::new(self.metrics.clone(), metrics, described);
                status.state = incident_log.as_ref().map(|_| self.state.describe());
                status.shards = shard_view.clone();
                let status = Arc::new(status);
                let conn_metrics = novaml_server::ConnMetrics::register(&mut registry);
                let registry = Arc::new(registry);
                if let Some((url, every)) = &self.remote_write {
                    info!(%url, "Remote write of novaml's metrics.");
                    let writer = RemoteWriter::new(url, registry.clone());
                    spawn(
                        Every {
                            job: "remote write",
                            first_after: Duration::ZERO,
                            interval: *every,
                        },
                        stop_rx.clone(),
                        move || {
                            let w = writer.clone();
                            async move { Ok(w.push().await?) }
                        },
                        |samples, _| tracing::debug!(samples, "Remote write."),
                    );
                }
                let mut state = AppState::new(registry, status.clone());
                state.incidents = incident_log.clone();
                state.token = self.token.clone();
                state.allowed_hosts =
                    novaml_server::checks::default_allowed_hosts(local, &self.allowed_hosts);
                state.capacity = planning
                    .clone()
                    .map(|p| p as Arc<dyn novaml_server::services::Capacity>);
                // The series API reads the embedded store; a remote TSDB answers its own API.
                if let MetricsAt::Embedded(path) = &self.metrics {
                    state.store = Some(novaml_server::StoreReader::new(path));
                }
                state.models = hub
                    .clone()
                    .map(|h| h as Arc<dyn novaml_server::services::Models>);
                state.tuning = tuning
                    .clone()
                    .map(|t| t as Arc<dyn novaml_server::services::Tuning>);
                spawn(
                    Every {
                        job: "status history",
                        first_after: Duration::ZERO,
                        interval: Duration::from_secs(5),
                    },
                    stop_rx.clone(),
                    move || {
                        status.record();
                        std::future::ready(Ok(()))
                    },
                    |(), _| {},
                );
                let mut rx = stop_rx.clone();
                let handle = tokio::spawn(novaml_server::serve(
                    listener,
                    state,
                    self.connections,
                    conn_metrics,
                    async move {
                        let _ = rx.wait_for(|s| *s).await;
                    },
                ));
                let url = format!("http://{local}/");
                base_url = format!("http://{local}");
                if let Some(b) = &self.banner {
                    println!("{}", b.replace("{url}", &url));
                }
                info!(%url, "Serving /metrics and the status page.");
                Some(handle)
            }
            None => None,
        };

        if self.retention.is_some() && self.metrics.keeps_own_retention() {
            info!("Retention is the remote TSDB's own: novaml deletes nothing there.");
        }
        if let Some(retention) = self
            .retention
            .filter(|_| !self.metrics.keeps_own_retention())
        {
            let path = self.store_path.clone();
            spawn(
                Every {
                    job: "retention",
                    first_after: Duration::ZERO,
                    interval: Duration::from_secs(3600),
                },
                stop_rx.clone(),
                move || {
                    let path = path.clone();
                    blocking(move || {
                        let cutoff = now_ms() - retention.as_millis() as i64;
                        Ok(SqliteStore::open(&path)?.delete_before(cutoff)?)
                    })
                },
                |n, _| {
                    if n > 0 {
                        info!(deleted = n, "Applied retention.");
                    }
                },
            );
        }

        if let (Some(settings), Some(log)) = (self.detection, incident_log) {
            let notifier = if settings.webhooks.is_empty() {
                None
            } else {
                Some(Notifier::new(
                    settings.webhooks,
                    4,
                    Duration::from_secs(1),
                    Duration::from_secs(10),
                )?)
            };
            let detection = Arc::new(Detection {
                store: self.metrics.clone(),
                shard: self.shard,
                log,
                shards: shard_view.clone(),
                metrics: anomaly_metrics,
                notifier,
                lookback: settings.lookback,
                max_rows: settings.max_rows,
                exclude: settings.exclude,
                config: settings.config,
                base_url: base_url.clone(),
                monitors: Default::default(),
            });
            spawn(
                Every {
                    job: "detection",
                    first_after: Duration::ZERO,
                    interval: settings.interval,
                },
                stop_rx.clone(),
                move || {
                    let d = detection.clone();
                    async move {
                        let t0 = std::time::Instant::now();
                        let pass = {
                            let d = d.clone();
                            blocking(move || d.pass()).await?
                        };
                        d.report(pass, t0.elapsed().as_secs_f64()).await;
                        Ok(())
                    }
                },
                |(), _| {},
            );
        }

        if let (Some(settings), Some(planning)) = (self.planning, planning) {
            spawn(
                Every {
                    job: "capacity planning",
                    // The first plan once the first data are in.
                    first_after: Duration::from_secs(15),
                    interval: settings.interval,
                },
                stop_rx.clone(),
                move || {
                    let p = planning.clone();
                    blocking(move || p.pass())
                },
                |hosts, seconds| info!(hosts, seconds, "Capacity plan refreshed."),
            );
        }

        if let (Some(settings), Some(hub)) = (self.training, hub)
            && !settings.targets.is_empty()
        {
            let training = Arc::new(Training {
                store: self.metrics.clone(),
                shard: self.shard,
                hub,
                targets: settings.targets,
                lookback: Duration::from_secs(7 * 86_400),
            });
            let mut pass = 0u64;
            spawn(
                Every {
                    job: "training",
                    first_after: settings.first_after,
                    interval: settings.interval,
                },
                stop_rx.clone(),
                move || {
                    pass += 1;
                    let (t, n) = (training.clone(), pass);
                    blocking(move || t.pass(n))
                },
                |models, seconds| {
                    info!(models, seconds, "Models trained and predictions refreshed.");
                },
            );
        }

        if let (Some(settings), Some(service)) = (self.tuning, tuning) {
            spawn(
                Every {
                    job: "scheduled tuning",
                    first_after: settings.first_after,
                    interval: settings.interval,
                },
                stop_rx.clone(),
                move || std::future::ready(service.submit(settings.request.clone())),
                |id, _| info!(run = id, "Scheduled tuning run queued."),
            );
        }

        tokio::spawn(async move {
            shutdown.await;
            info!("Shutting down: stopping sources and flushing the buffer.");
            let _ = stop_tx.send(true);
        });

        let (_store, report) = runner.run(store, stop_rx).await?;
        if let Some(h) = server {
            h.await
                .map_err(|e| PipelineError::Task(e.to_string()))?
                .map_err(PipelineError::io("the server failed on", base_url.clone()))?;
        }
        info!(
            written = report.written,
            lost_batches = report.lost_batches,
            refused_batches = report.refused_batches,
            "Stopped."
        );
        if report.lost_batches > 0 {
            return Err(PipelineError::Task(format!(
                "{} batches could not be written before shutdown (they will be collected again on restart)",
                report.lost_batches
            )));
        }
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM, or after `after` when given (for scripted runs).
pub async fn shutdown_signal(after: Option<Duration>) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    let timer = async {
        match after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
        () = timer => {}
    }
}

/// The API token: `NOVAML_TOKEN`, else the one saved under the data directory, else a new random
/// one saved there (mode 0600).
pub fn api_token(data_dir: &Path) -> Result<String, PipelineError> {
    use std::io::Read;
    if let Ok(t) = std::env::var("NOVAML_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_owned());
    }
    let path = data_dir.join("api-token");
    if let Ok(t) = std::fs::read_to_string(&path)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_owned());
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(PipelineError::io(
            "cannot read a new API token (set NOVAML_TOKEN) from",
            "/dev/urandom",
        ))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    novaml_core::fs::write_private(&path, token.as_bytes())
        .map_err(|(p, e)| PipelineError::io("cannot write", p)(e))?;
    Ok(token)
}
