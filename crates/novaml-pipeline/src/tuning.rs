//! The tuning service of the live transfer engine, behind `/api/tuning` (through
//! [`novaml_server::services::Tuning`]) and the pipeline's scheduled runs: a queue of sessions,
//! guarded applies and reverts, one worker thread, runs persisted.
//!
//! Sessions, applications and reverts run one at a time on a worker thread, in the order asked:
//! they all measure the same engine, and two at once would disturb each other's measurements.
//! Finished runs are saved under `STATE/runs/` and reloaded on restart; the audit log is
//! `STATE/audit.jsonl`, as for `novaml tune --apply`.
//!
//! On `/metrics`: `novaml_tuner_running`, `novaml_tuner_queue_length`, `novaml_tuner_trials`
//! (counter, by status), `novaml_tuner_best_objective`, `novaml_tuner_improvement_ratio`,
//! `novaml_tuner_share_of_optimum_ratio` and `novaml_tuner_changes` (counter, by action).

use std::collections::VecDeque;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use novaml_core::time::now_ms;
use novaml_server::services::{ServiceError, Tuning};
use novaml_tune::env::TransferEnv;
use novaml_tune::guard::{Applied, Deployment, Guard};
use novaml_tune::space::Config;
use novaml_tune::study::{Study, TunerKind};
use novaml_tune::tuner::{Trial, TrialStatus};
use novaml_tune::{optimum, transfer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::PipelineError;

type Labels = Vec<(&'static str, String)>;

/// Most jobs waiting behind the running one.
const MAX_QUEUE: usize = 4;

/// What a run asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(
    expecting = "an object like {\"tuner\": \"bo\", \"budget\": 16, \"seed\": 1, \"repeats\": 3} (every field optional)"
)]
pub struct RunRequest {
    /// `bo`, `rl` or `random`.
    #[serde(default = "default_tuner")]
    pub tuner: String,
    /// Measured trials, the default's included (2 to 200).
    #[serde(default = "default_budget")]
    pub budget: usize,
    /// Seed of the tuner.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Re-measurements of the default and the best for the improvement's interval (0: none).
    #[serde(default = "default_repeats")]
    pub repeats: usize,
}

fn default_tuner() -> String {
    "bo".into()
}
fn default_budget() -> usize {
    16
}
fn default_seed() -> u64 {
    1
}
fn default_repeats() -> usize {
    3
}

impl Default for RunRequest {
    fn default() -> Self {
        Self {
            tuner: default_tuner(),
            budget: default_budget(),
            seed: default_seed(),
            repeats: default_repeats(),
        }
    }
}

impl RunRequest {
    /// The tuner, checked (the service runs bo, rl and random; grid needs a grid).
    fn check(&self) -> Result<TunerKind, PipelineError> {
        let tuner = match self.tuner.parse::<TunerKind>() {
            Ok(k @ (TunerKind::Bo | TunerKind::Rl | TunerKind::Random)) => k,
            _ => {
                return Err(PipelineError::Invalid(format!(
                    "tuner must be bo, rl or random, not {:?}",
                    self.tuner
                )));
            }
        };
        if !(2..=200).contains(&self.budget) {
            return Err(PipelineError::Invalid(format!(
                "budget must be 2 to 200 trials, not {}",
                self.budget
            )));
        }
        if self.repeats == 1 || self.repeats > 20 {
            return Err(PipelineError::Invalid(format!(
                "repeats must be 0 or 2 to 20, not {}",
                self.repeats
            )));
        }
        Ok(tuner)
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting behind other jobs.
    Queued,
    /// Measuring.
    Running,
    /// Finished with a best configuration.
    Done,
    /// Stopped by an error (see [`Run::error`]).
    Failed,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// The best configuration of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// The configuration.
    pub config: Config,
    /// Its objective (goodput, bit/s): the mean of its re-measurements when the run repeated it.
    pub objective: Option<f64>,
    /// Its trial's number.
    pub trial: usize,
    /// Its trial's metrics.
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// One tuning run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// Its number.
    pub id: u64,
    /// What was asked.
    pub request: RunRequest,
    /// The scenario of the engine.
    pub scenario: String,
    /// Where it is.
    pub status: RunStatus,
    /// Unix seconds.
    pub queued_at: f64,
    /// Unix seconds.
    pub finished_at: Option<f64>,
    /// Trials so far.
    pub trials: Vec<Trial>,
    /// The best feasible trial.
    pub best: Option<Best>,
    /// The default's objective (trial 0).
    pub default_objective: Option<f64>,
    /// Re-measured improvement of the best over the default (ratio − 1).
    pub improvement: Option<f64>,
    /// Its 95 % bootstrap interval.
    pub improvement_ci95: Option<[f64; 2]>,
    /// The best's share of the cached grid optimum, re-measured in the same rounds.
    pub share_of_optimum: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Run(u64),
    Apply(u64),
    Revert,
}

impl Job {
    fn describe(&self) -> String {
        match self {
            Self::Run(id) => format!("run {id}"),
            Self::Apply(id) => format!("apply the best of run {id}"),
            Self::Revert => "roll back the last change".into(),
        }
    }
}

#[derive(Default)]
struct Inner {
    runs: Vec<Run>,
    queue: VecDeque<Job>,
    busy: Option<String>,
    /// The last apply or revert that failed, for the page.
    last_error: Option<String>,
    next_id: u64,
}

#[derive(Default)]
struct Metrics {
    running: Gauge<f64, AtomicU64>,
    queue: Gauge<f64, AtomicU64>,
    trials: Family<Labels, Counter>,
    best: Family<Labels, Gauge<f64, AtomicU64>>,
    improvement: Family<Labels, Gauge<f64, AtomicU64>>,
    share: Family<Labels, Gauge<f64, AtomicU64>>,
    changes: Family<Labels, Counter>,
}

/// The tuning service of one transfer-engine scenario.
pub struct TuningService {
    scenario: String,
    state_dir: PathBuf,
    payload_seed: u64,
    timeout: Duration,
    inner: Mutex<Inner>,
    wake: Condvar,
    metrics: Metrics,
}

impl std::fmt::Debug for TuningService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TuningService")
            .field("scenario", &self.scenario)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

fn now() -> f64 {
    now_ms() as f64 / 1000.0
}

impl TuningService {
    /// A service tuning the transfer engine on `scenario` (`lan-10g`, `wan-1g`, `wan-100m`), with
    /// its runs and audit log under `state_dir`, metrics registered in `registry`, and its worker
    /// thread started.
    pub fn start(
        scenario: &str,
        state_dir: impl Into<PathBuf>,
        registry: &mut Registry,
    ) -> Result<Arc<Self>, PipelineError> {
        transfer::scenario(scenario)?;
        let state_dir = state_dir.into();
        let runs_dir = state_dir.join("runs");
        novaml_core::fs::create_private_dir(&runs_dir)
            .map_err(PipelineError::io("cannot create", &runs_dir))?;
        let mut runs = load_runs(&runs_dir);
        runs.sort_by_key(|r| r.id);
        let next_id = runs.last().map_or(1, |r| r.id + 1);
        let m = Metrics::default();
        registry.register(
            "novaml_tuner_running",
            "1 while a tuning job (session, apply, roll back) runs",
            m.running.clone(),
        );
        registry.register(
            "novaml_tuner_queue_length",
            "Tuning jobs waiting",
            m.queue.clone(),
        );
        registry.register(
            "novaml_tuner_trials",
            "Tuning trials, by scenario and status (measured, failed, refused)",
            m.trials.clone(),
        );
        registry.register(
            "novaml_tuner_best_objective",
            "Best objective of the latest finished run (goodput, bit/s), by scenario",
            m.best.clone(),
        );
        registry.register(
            "novaml_tuner_improvement_ratio",
            "Latest run's re-measured improvement of its best over the default (ratio - 1)",
            m.improvement.clone(),
        );
        registry.register(
            "novaml_tuner_share_of_optimum_ratio",
            "Latest run's best over the grid optimum, re-measured in the same rounds",
            m.share.clone(),
        );
        registry.register(
            "novaml_tuner_changes",
            "Configuration changes of the live engine, by action (apply, rollback, refuse, revert)",
            m.changes.clone(),
        );
        let service = Arc::new(Self {
            scenario: scenario.to_owned(),
            state_dir,
            payload_seed: 1,
            timeout: Duration::from_secs(60),
            inner: Mutex::new(Inner {
                runs,
                next_id,
                ..Inner::default()
            }),
            wake: Condvar::new(),
            metrics: m,
        });
        if let Some(r) = service
            .lock()?
            .runs
            .iter()
            .rev()
            .find(|r| r.status == RunStatus::Done)
        {
            service.export(r);
        }
        let worker = Arc::downgrade(&service);
        std::thread::Builder::new()
            .name("novaml-tuning".into())
            .spawn(move || work(&worker))
            .map_err(PipelineError::io(
                "cannot start the tuning worker",
                "novaml-tuning",
            ))?;
        Ok(service)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, PipelineError> {
        self.inner
            .lock()
            .map_err(|_| PipelineError::Task("tuning state lock poisoned".into()))
    }

    fn audit_path(&self) -> PathBuf {
        self.state_dir.join("audit.jsonl")
    }

    fn enqueue(&self, inner: &mut Inner, job: Job) -> Result<(), PipelineError> {
        if inner.queue.len() >= MAX_QUEUE {
            return Err(PipelineError::Conflict(format!(
                "{} tuning jobs are already waiting; try again when one has finished",
                inner.queue.len()
            )));
        }
        inner.queue.push_back(job);
        self.metrics.queue.set(inner.queue.len() as f64);
        self.wake.notify_one();
        Ok(())
    }

    /// Queues a run; returns its id.
    pub fn submit(&self, request: RunRequest) -> Result<u64, PipelineError> {
        request.check()?;
        let mut inner = self.lock()?;
        let id = inner.next_id;
        self.enqueue(&mut inner, Job::Run(id))?;
        inner.next_id += 1;
        inner.runs.push(Run {
            id,
            request,
            scenario: self.scenario.clone(),
            status: RunStatus::Queued,
            queued_at: now(),
            finished_at: None,
            trials: Vec::new(),
            best: None,
            default_objective: None,
            improvement: None,
            improvement_ci95: None,
            share_of_optimum: None,
            error: None,
        });
        Ok(id)
    }

    /// Queues the deployment of run `id`'s best configuration.
    pub fn apply(&self, id: u64) -> Result<(), PipelineError> {
        let mut inner = self.lock()?;
        let run = inner
            .runs
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| PipelineError::NotFound(format!("no tuning run {id}")))?;
        if run.status != RunStatus::Done || run.best.is_none() {
            return Err(PipelineError::Conflict(format!(
                "run {id} is {} and has {} best configuration yet",
                run.status.as_str(),
                if run.best.is_some() { "a" } else { "no" }
            )));
        }
        // Idempotent: the same apply asked again while it waits or runs is the same job.
        let job = Job::Apply(id);
        if inner.queue.contains(&job) || inner.busy.as_deref() == Some(job.describe().as_str()) {
            return Ok(());
        }
        self.enqueue(&mut inner, job)
    }

    /// Queues a one-step revert of the last change.
    pub fn rollback(&self) -> Result<(), PipelineError> {
        let log = self.changes()?;
        if !log.iter().any(|e| e["action"] != "refuse") {
            return Err(PipelineError::Conflict(
                "nothing to roll back: no change has been applied".into(),
            ));
        }
        let mut inner = self.lock()?;
        self.enqueue(&mut inner, Job::Revert)
    }

    /// The audit log.
    pub fn changes(&self) -> Result<Vec<Value>, PipelineError> {
        let dep = self.deployment()?;
        Ok(dep
            .log()
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?)
    }

    fn deployment(&self) -> Result<Deployment, PipelineError> {
        Ok(Deployment::open(
            &self.audit_path(),
            transfer::space().default_config(),
            Guard::default(),
        )?)
    }

    /// One run, trials included.
    pub fn run(&self, id: u64) -> Result<Run, PipelineError> {
        self.lock()?
            .runs
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| PipelineError::NotFound(format!("no tuning run {id}")))
    }

    /// The overview served at `GET /api/tuning`.
    pub fn overview(&self) -> Result<Value, PipelineError> {
        let dep = self.deployment()?;
        let inner = self.lock()?;
        let runs: Vec<Value> = inner
            .runs
            .iter()
            .rev()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.remove("trials");
                    o.insert("trial_count".into(), json!(r.trials.len()));
                }
                v
            })
            .collect();
        Ok(json!({
            "scenario": self.scenario,
            "objective": "goodput_bps",
            "in_effect": dep.current(),
            "default": transfer::space().default_config(),
            "busy": inner.busy,
            "queued": inner.queue.iter().map(Job::describe).collect::<Vec<_>>(),
            "last_error": inner.last_error,
            "optimum": optimum::cached(&self.scenario).map(|o| json!({
                "objective": o.objective, "config": o.config,
            })),
            "runs": runs,
            "changes": dep.log(),
        }))
    }

    /// Waits until no job runs or waits (for tests and shutdown); false on timeout.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < timeout {
            if let Ok(i) = self.inner.lock()
                && i.busy.is_none()
                && i.queue.is_empty()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn export(&self, r: &Run) {
        let l: Labels = vec![("scenario", r.scenario.clone())];
        if let Some(b) = r.best.as_ref().and_then(|b| b.objective) {
            self.metrics.best.get_or_create(&l).set(b);
        }
        if let Some(i) = r.improvement {
            self.metrics.improvement.get_or_create(&l).set(i);
        }
        if let Some(s) = r.share_of_optimum {
            self.metrics.share.get_or_create(&l).set(s);
        }
    }

    fn env(&self) -> Result<TransferEnv, String> {
        let scenario = transfer::scenario(&self.scenario).map_err(|e| e.to_string())?;
        TransferEnv::new(scenario, self.payload_seed, self.timeout).map_err(|e| e.to_string())
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Run)) {
        if let Ok(mut i) = self.inner.lock()
            && let Some(r) = i.runs.iter_mut().find(|r| r.id == id)
        {
            f(r);
        }
    }

    fn do_run(&self, id: u64) -> Result<(), String> {
        let request = self.run(id).map_err(|e| e.to_string())?.request;
        let tuner = request.check().map_err(|e| e.to_string())?;
        self.update(id, |r| r.status = RunStatus::Running);
        let mut env = self.env()?;
        let mut study = Study::new(tuner, request.budget, request.seed);
        study.repeats = request.repeats;
        // Every session on the engine teaches the rl tuner, whichever tuner ran it.
        study.experience = Some(self.state_dir.join("experience.jsonl"));
        study.learn = true;
        study.optimum = optimum::cached(&self.scenario);
        let scenario = self.scenario.clone();
        let outcome = study
            .run(&mut env, |t: &Trial| {
                let status = match t.status {
                    TrialStatus::Measured => "measured",
                    TrialStatus::Failed => "failed",
                    TrialStatus::Refused => "refused",
                };
                self.metrics
                    .trials
                    .get_or_create(&vec![
                        ("scenario", scenario.clone()),
                        ("status", status.to_owned()),
                    ])
                    .inc();
                let t = t.clone();
                self.update(id, move |r| r.trials.push(t));
            })
            .map_err(|e| e.to_string())?;
        let (improvement, ci) = outcome.improvement();
        self.update(id, |r| {
            r.trials = outcome.session.trials.clone();
            r.default_objective = outcome.default.objective;
            r.best = Some(Best {
                config: outcome.best.config.clone(),
                objective: outcome.best_objective(),
                trial: outcome.best.number,
                metrics: outcome.best.metrics.clone(),
            });
            // Without re-measurement a run reports no improvement (single runs are too noisy).
            r.improvement = outcome.comparison.as_ref().and(improvement);
            r.improvement_ci95 = ci;
            r.share_of_optimum = outcome
                .comparison
                .as_ref()
                .and_then(|c| c.share_of_reference);
        });
        Ok(())
    }

    fn do_apply(&self, id: u64) -> Result<(), String> {
        let run = self.run(id).map_err(|e| e.to_string())?;
        let config: Config = run
            .best
            .as_ref()
            .map(|b| b.config.clone())
            .ok_or("the run has no best configuration")?;
        let mut env = self.env()?;
        let mut dep = self.deployment().map_err(|e| e.to_string())?;
        let applied = dep
            .apply(&mut env, &config, &run.trials)
            .map_err(|e| e.to_string())?;
        let action = match applied {
            Applied::Kept { .. } => "apply",
            Applied::RolledBack { .. } => "rollback",
            Applied::Refused { .. } => "refuse",
        };
        self.metrics
            .changes
            .get_or_create(&vec![("action", action.to_owned())])
            .inc();
        Ok(())
    }

    fn do_revert(&self) -> Result<(), String> {
        let mut env = self.env()?;
        let mut dep = self.deployment().map_err(|e| e.to_string())?;
        dep.revert(&mut env).map_err(|e| e.to_string())?;
        self.metrics
            .changes
            .get_or_create(&vec![("action", "revert".to_owned())])
            .inc();
        Ok(())
    }

    fn save(&self, id: u64) {
        if let Ok(r) = self.run(id) {
            let path = self.state_dir.join("runs").join(format!("{id:06}.json"));
            let written = serde_json::to_vec_pretty(&r)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    novaml_core::fs::write_private(&path, &b)
                        .map_err(|(p, e)| format!("{}: {e}", p.display()))
                });
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "Cannot save the tuning run.");
            }
            if r.status == RunStatus::Done {
                self.export(&r);
            }
        }
    }
}

fn load_runs(dir: &FsPath) -> Vec<Run> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let text = std::fs::read(e.path()).ok()?;
            match serde_json::from_slice::<Run>(&text) {
                Ok(r) => Some(r),
                Err(err) => {
                    tracing::warn!(path = %e.path().display(), error = %err, "Skipping an unreadable tuning run.");
                    None
                }
            }
        })
        .collect()
}

/// The worker: runs jobs in order until the service is dropped.
fn work(service: &std::sync::Weak<TuningService>) {
    loop {
        let Some(s) = service.upgrade() else { return };
        let job = {
            let Ok(mut inner) = s.inner.lock() else {
                return;
            };
            match inner.queue.pop_front() {
                Some(j) => {
                    inner.busy = Some(j.describe());
                    s.metrics.queue.set(inner.queue.len() as f64);
                    Some(j)
                }
                None => {
                    // Wake up now and then to notice that the service is gone.
                    let _ = s.wake.wait_timeout(inner, Duration::from_millis(500));
                    None
                }
            }
        };
        let Some(job) = job else { continue };
        s.metrics.running.set(1.0);
        let what = job.describe();
        let is_run = matches!(job, Job::Run(_));
        tracing::info!(job = %what, "Tuning job started.");
        let result = match job {
            Job::Run(id) => {
                let r = s.do_run(id);
                s.update(id, |run| {
                    run.finished_at = Some(now());
                    match &r {
                        Ok(()) => run.status = RunStatus::Done,
                        Err(e) => {
                            run.status = RunStatus::Failed;
                            run.error = Some(e.clone());
                        }
                    }
                });
                s.save(id);
                r
            }
            Job::Apply(id) => s.do_apply(id),
            Job::Revert => s.do_revert(),
        };
        if let Err(e) = &result {
            tracing::warn!(job = %what, error = %e, "Tuning job failed.");
        }
        s.metrics.running.set(0.0);
        if let Ok(mut inner) = s.inner.lock() {
            inner.busy = None;
            // A failed run keeps its error in the run; applies and reverts have only this.
            if !is_run {
                inner.last_error = result.err().map(|e| format!("{what}: {e}"));
            }
        }
    }
}

impl Tuning for TuningService {
    fn overview(&self) -> Result<Value, ServiceError> {
        Ok(TuningService::overview(self)?)
    }

    fn submit(&self, request: Value) -> Result<u64, ServiceError> {
        let request: RunRequest =
            novaml_server::services::from_body(request).map_err(ServiceError::Invalid)?;
        Ok(TuningService::submit(self, request)?)
    }

    fn run(&self, id: u64) -> Result<Value, ServiceError> {
        Ok(serde_json::to_value(TuningService::run(self, id)?).map_err(PipelineError::from)?)
    }

    fn apply(&self, id: u64) -> Result<(), ServiceError> {
        Ok(TuningService::apply(self, id)?)
    }

    fn rollback(&self) -> Result<(), ServiceError> {
        Ok(TuningService::rollback(self)?)
    }

    fn changes(&self) -> Result<Vec<Value>, ServiceError> {
        Ok(TuningService::changes(self)?)
    }
}
