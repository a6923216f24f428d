//! The long-running pipeline shared by `demo` and `collect --follow`: sources → runner → SQLite,
//! with /metrics and the status page served alongside, retention applied hourly, and a graceful
//! shutdown that flushes the buffer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use novaml_anomaly::metrics::AnomalyMetrics;
use novaml_collect::{CollectMetrics, Runner};
use novaml_core::MetricStore;
use novaml_server::{AppState, PipelineStatus, SourceStatus, StatusProvider};
use novaml_store::SqliteStore;
use novaml_store::incidents::IncidentLog;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{info, warn};

use super::detection::Detection;
use crate::config::Resolved;

/// What to run.
pub(crate) struct Pipeline {
    pub(crate) store_path: PathBuf,
    pub(crate) sources: Vec<Resolved>,
    pub(crate) buffer: usize,
    pub(crate) seed: u64,
    pub(crate) retention: Option<Duration>,
    pub(crate) listen: Option<SocketAddr>,
    /// Stop on its own after this long (for scripted runs); otherwise on Ctrl-C / SIGTERM.
    pub(crate) stop_after: Option<Duration>,
    /// Printed once the server listens (`{url}` is replaced).
    pub(crate) banner: Option<String>,
    /// Live anomaly detection over the store, when set.
    pub(crate) detection: Option<crate::config::ResolvedDetect>,
    /// Bearer token for the API's mutating endpoints.
    pub(crate) token: Option<String>,
    /// Capacity planning over the store, when set.
    pub(crate) planning: Option<PlanningSettings>,
    /// Scheduled training and prediction, when set.
    pub(crate) training: Option<TrainingSettings>,
    /// Tuning of the transfer engine (API, and a scheduled run), when set.
    pub(crate) tuning: Option<TuningSettings>,
    /// Prometheus remote write of our own metrics: URL and interval.
    pub(crate) remote_write: Option<(String, Duration)>,
}

/// What the pipeline trains.
pub(crate) struct TrainingSettings {
    /// The model registry.
    pub(crate) models_dir: PathBuf,
    /// Series to predict.
    pub(crate) targets: Vec<super::training::Target>,
    /// Delay of the first pass.
    pub(crate) first_after: Duration,
    /// Between passes.
    pub(crate) interval: Duration,
}

/// What the pipeline tunes.
pub(crate) struct TuningSettings {
    /// Transfer-engine scenario.
    pub(crate) scenario: String,
    /// Runs, audit log and experience.
    pub(crate) state_dir: PathBuf,
    /// Delay of the first scheduled run.
    pub(crate) first_after: Duration,
    /// Between scheduled runs.
    pub(crate) interval: Duration,
    /// What each scheduled run asks for.
    pub(crate) request: novaml_server::tuning::RunRequest,
}

/// The API token: `NOVAML_TOKEN`, else the one saved under the data directory, else a new random
/// one saved there (mode 0600).
pub(crate) fn api_token(data_dir: &std::path::Path) -> Result<String> {
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
        .context("cannot read /dev/urandom for a new API token; set NOVAML_TOKEN")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(
        &mut options
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?,
        token.as_bytes(),
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

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

/// What the pipeline plans.
pub(crate) struct PlanningSettings {
    /// Between refreshes.
    pub(crate) interval: Duration,
    /// Utilisation series (percent), one per host.
    pub(crate) selector: novaml_core::Selector,
    /// Which resource they measure.
    pub(crate) resource: novaml_forecast::capacity::Resource,
}

/// Samples of the counters kept for the pipeline dashboard (one per 5 s: 30 min).
const HISTORY: usize = 360;

struct Status {
    started: Instant,
    history: Mutex<std::collections::VecDeque<novaml_server::StatusSample>>,
    store_path: PathBuf,
    reader: Mutex<Option<SqliteStore>>,
    metrics: CollectMetrics,
    sources: Vec<(String, &'static str, f64, bool)>,
}

impl Status {
    fn record(&self) {
        let sample = novaml_server::StatusSample {
            t: novaml_collect::now_ms() as f64 / 1000.0,
            samples: self
                .sources
                .iter()
                .map(|(n, ..)| (n.clone(), self.metrics.samples(n)))
                .collect(),
            errors_total: self.sources.iter().map(|(n, ..)| self.errors(n)).sum(),
            buffer_utilization: self.metrics.buffer_utilization(),
        };
        if let Ok(mut h) = self.history.lock() {
            if h.len() >= HISTORY {
                h.pop_front();
            }
            h.push_back(sample);
        }
    }

    fn errors(&self, name: &str) -> u64 {
        ["transient", "timeout", "fatal", "store"]
            .iter()
            .map(|k| self.metrics.errors(name, k))
            .sum()
    }
}

impl StatusProvider for Status {
    fn status(&self) -> Result<PipelineStatus, String> {
        let mut guard = self
            .reader
            .lock()
            .map_err(|_| "status reader lock poisoned".to_owned())?;
        if guard.is_none() {
            *guard = Some(SqliteStore::open(&self.store_path).map_err(|e| e.to_string())?);
        }
        let store = guard.as_ref().ok_or("store not open")?;
        let series = store.series_count().map_err(|e| e.to_string())?;
        let points = store.count_points().map_err(|e| e.to_string())?;
        let now = novaml_collect::now_ms() as f64 / 1000.0;
        let sources = self
            .sources
            .iter()
            .map(|(name, kind, interval, simulated)| {
                let last = self.metrics.last_success(name);
                SourceStatus {
                    name: name.clone(),
                    kind: (*kind).to_owned(),
                    interval_seconds: *interval,
                    samples_total: self.metrics.samples(name),
                    errors_total: self.errors(name),
                    last_success: last,
                    lag_seconds: last.map(|t| (now - t).max(0.0)),
                    simulated: *simulated,
                }
            })
            .collect();
        let history = self
            .history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default();
        Ok(PipelineStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            store: self.store_path.display().to_string(),
            series,
            points,
            buffer_utilization: self.metrics.buffer_utilization(),
            sources,
            history,
        })
    }
}

fn open_store(path: &Path) -> Result<SqliteStore> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    SqliteStore::open(path).with_context(|| format!("cannot open the store {}", path.display()))
}

impl Pipeline {
    pub(crate) async fn run(self) -> Result<()> {
        let store = open_store(&self.store_path)?;
        let mut registry = Registry::default();
        let metrics = CollectMetrics::register(&mut registry);
        let anomaly_metrics = AnomalyMetrics::register(&mut registry);
        let capacity_metrics = novaml_forecast::metrics::CapacityMetrics::register(&mut registry);
        let capacity_doc = self
            .planning
            .as_ref()
            .map(|_| Arc::new(std::sync::RwLock::new(None)));
        let incident_log = match &self.detection {
            Some(_) => Some(Arc::new(Mutex::new(
                IncidentLog::open(&self.store_path).with_context(|| {
                    format!(
                        "cannot open the incident log in {}",
                        self.store_path.display()
                    )
                })?,
            ))),
            None => None,
        };
        let hub = self.training.as_ref().map(|t| {
            Arc::new(novaml_server::models::ModelHub::new(
                &t.models_dir,
                &mut registry,
            ))
        });
        if let Some(h) = &hub
            && let Err(e) = h.refresh_metrics()
        {
            warn!(error = %e, "Cannot read the model registry yet.");
        }
        let tuning = match &self.tuning {
            Some(t) => Some(
                novaml_server::tuning::TuningService::start(
                    &t.scenario,
                    &t.state_dir,
                    &mut registry,
                )
                .map_err(|e| anyhow::anyhow!("cannot start tuning: {e}"))?,
            ),
            None => None,
        };
        let mut runner = Runner::new(self.buffer, metrics.clone()).with_seed(self.seed);
        let mut described = Vec::new();
        for r in self.sources {
            described.push((
                r.source.name().to_owned(),
                r.kind,
                r.schedule.interval.as_secs_f64(),
                r.simulated,
            ));
            runner.add(r.source, r.schedule);
        }
        let (stop_tx, stop_rx) = watch::channel(false);

        let mut base_url = None;
        let server = match self.listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                let local = listener.local_addr()?;
                let status = Arc::new(Status {
                    started: Instant::now(),
                    history: Mutex::new(std::collections::VecDeque::new()),
                    store_path: self.store_path.clone(),
                    reader: Mutex::new(None),
                    metrics,
                    sources: described,
                });
                let registry = Arc::new(registry);
                if let Some((url, every)) = &self.remote_write {
                    info!(%url, "Remote write of novaml's metrics.");
                    tokio::spawn(
                        novaml_server::remote_write::RemoteWriter::new(url, registry.clone())
                            .run(*every, stop_rx.clone()),
                    );
                }
                let mut state = AppState::new(registry, status.clone());
                state.incidents = incident_log.clone();
                state.token = self.token.clone();
                state.capacity = capacity_doc.clone();
                state.store = Some(novaml_server::StoreReader::new(&self.store_path));
                state.models = hub.clone();
                state.tuning = tuning.clone();
                {
                    let mut rx = stop_rx.clone();
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(Duration::from_secs(5));
                        loop {
                            tokio::select! {
                                _ = tick.tick() => status.record(),
                                _ = rx.wait_for(|s| *s) => break,
                            }
                        }
                    });
                }
                let mut rx = stop_rx.clone();
                let handle = tokio::spawn(novaml_server::serve(listener, state, async move {
                    let _ = rx.wait_for(|s| *s).await;
                }));
                let url = format!("http://{local}/");
                base_url = Some(format!("http://{local}"));
                if let Some(b) = &self.banner {
                    println!("{}", b.replace("{url}", &url));
                }
                info!(%url, "Serving /metrics and the status page.");
                Some(handle)
            }
            None => None,
        };

        if let Some(retention) = self.retention {
            let path = self.store_path.clone();
            let mut rx = stop_rx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = rx.wait_for(|s| *s) => break,
                    }
                    let path = path.clone();
                    let cutoff = novaml_collect::now_ms() - retention.as_millis() as i64;
                    let result = tokio::task::spawn_blocking(move || {
                        SqliteStore::open(&path).and_then(|mut s| s.delete_before(cutoff))
                    })
                    .await;
                    match result {
                        Ok(Ok(n)) if n > 0 => info!(deleted = n, "Applied retention."),
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => warn!(error = %e, "Retention failed; will retry in an hour."),
                        Err(e) => warn!(error = %e, "Retention task failed."),
                    }
                }
            });
        }

        if let (Some(settings), Some(log)) = (self.detection, incident_log) {
            let notifier = if settings.webhooks.is_empty() {
                None
            } else {
                Some(novaml_server::alerts::Notifier::new(
                    settings.webhooks,
                    4,
                    Duration::from_secs(1),
                    Duration::from_secs(10),
                )?)
            };
            let detection = Detection {
                store_path: self.store_path.clone(),
                log,
                metrics: anomaly_metrics,
                notifier,
                interval: settings.interval,
                lookback: settings.lookback,
                max_rows: settings.max_rows,
                exclude: settings.exclude,
                config: settings.config,
                base_url: base_url.clone().unwrap_or_default(),
            };
            tokio::spawn(detection.run(stop_rx.clone()));
        }

        if let (Some(settings), Some(latest)) = (self.planning, capacity_doc) {
            let planning = super::planning::Planning {
                store_path: self.store_path.clone(),
                metrics: capacity_metrics,
                latest,
                interval: settings.interval,
                selector: settings.selector,
                resource: settings.resource,
                policy: novaml_forecast::capacity::Policy::default(),
            };
            tokio::spawn(planning.run(stop_rx.clone()));
        }

        if let (Some(settings), Some(hub)) = (self.training, hub)
            && !settings.targets.is_empty()
        {
            let training = super::training::Training {
                store_path: self.store_path.clone(),
                hub,
                targets: settings.targets,
                first_after: settings.first_after,
                interval: settings.interval,
                lookback: Duration::from_secs(7 * 86_400),
            };
            tokio::spawn(training.run(stop_rx.clone()));
        }

        if let (Some(settings), Some(service)) = (self.tuning, tuning) {
            let mut rx = stop_rx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(
                    tokio::time::Instant::now() + settings.first_after,
                    settings.interval,
                );
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = rx.wait_for(|s| *s) => break,
                    }
                    match service.submit(settings.request.clone()) {
                        Ok(id) => info!(run = id, "Scheduled tuning run queued."),
                        Err(e) => warn!(error = %e, "Scheduled tuning run not queued."),
                    }
                }
            });
        }

        let stop_after = self.stop_after;
        tokio::spawn(async move {
            match stop_after {
                Some(d) => tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = super::termination() => {}
                },
                None => super::termination().await,
            }
            info!("Shutting down: stopping sources and flushing the buffer.");
            let _ = stop_tx.send(true);
        });

        let (_store, report) = runner
            .run(store, stop_rx)
            .await
            .context("the collector failed")?;
        if let Some(h) = server {
            h.await
                .context("server task failed")?
                .context("server failed")?;
        }
        info!(
            written = report.written,
            lost_batches = report.lost_batches,
            "Stopped."
        );
        if report.lost_batches > 0 {
            anyhow::bail!(
                "{} batches could not be written before shutdown (they will be collected again on restart)",
                report.lost_batches
            );
        }
        Ok(())
    }
}
