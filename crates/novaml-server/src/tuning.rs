//! Tuning of the live transfer engine through the API:
//!
//! - `GET /api/tuning`: the scenario, the configuration in effect, what is running or queued, the
//!   runs (newest first, without their trials) and the change log;
//! - `POST /api/tuning/runs` `{"tuner": "bo", "budget": 16, "seed": 1}` (token): queues a
//!   session, answers 202 with its id;
//! - `GET /api/tuning/runs/{id}`: one run with every trial, live while it runs;
//! - `POST /api/tuning/runs/{id}/apply` (token): deploys the run's best configuration under the
//!   guardrails (canary, sequential test with automatic rollback, change budget), 202;
//! - `POST /api/tuning/rollback` (token): reverts the last change in effect, 202;
//! - `GET /api/tuning/changes`: the audit log.
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

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use novaml_tune::bo::BoTuner;
use novaml_tune::env::TransferEnv;
use novaml_tune::executor::{Trial, TrialStatus};
use novaml_tune::guard::{Deployment, Guard};
use novaml_tune::rl::{self, RlTuner};
use novaml_tune::space::Config;
use novaml_tune::tuner::RandomTuner;
use novaml_tune::{Environment, Executor, Tuner, optimum, stats, transfer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::blocking;
use crate::incidents::authorize;
use crate::{ApiError, AppState};

type Labels = Vec<(&'static str, String)>;

/// Most jobs waiting behind the running one.
const MAX_QUEUE: usize = 4;

/// What a run asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

impl RunRequest {
    fn check(&self) -> Result<(), ApiError> {
        if !matches!(self.tuner.as_str(), "bo" | "rl" | "random") {
            return Err(ApiError::BadRequest(format!(
                "tuner must be bo, rl or random, not {:?}",
                self.tuner
            )));
        }
        if !(2..=200).contains(&self.budget) {
            return Err(ApiError::BadRequest(format!(
                "budget must be 2 to 200 trials, not {}",
                self.budget
            )));
        }
        if self.repeats == 1 || self.repeats > 20 {
            return Err(ApiError::BadRequest(format!(
                "repeats must be 0 or 2 to 20, not {}",
                self.repeats
            )));
        }
        Ok(())
    }
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
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// Unix seconds.
    pub queued_at: f64,
    /// Unix seconds.
    pub finished_at: Option<f64>,
    /// Trials so far.
    pub trials: Vec<Trial>,
    /// The best feasible trial's configuration and objective.
    pub best: Option<Value>,
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
    novaml_collect::now_ms() as f64 / 1000.0
}

impl TuningService {
    /// A service tuning the transfer engine on `scenario` (`lan-10g`, `wan-1g`, `wan-100m`), with
    /// its runs and audit log under `state_dir`, metrics registered in `registry`, and its worker
    /// thread started.
    pub fn start(
        scenario: &str,
        state_dir: impl Into<PathBuf>,
        registry: &mut Registry,
    ) -> Result<Arc<Self>, ApiError> {
        transfer::scenario(scenario).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let state_dir = state_dir.into();
        let runs_dir = state_dir.join("runs");
        std::fs::create_dir_all(&runs_dir)
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", runs_dir.display())))?;
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
            .find(|r| r.status == "done")
        {
            service.export(r);
        }
        let worker = Arc::downgrade(&service);
        std::thread::Builder::new()
            .name("novaml-tuning".into())
            .spawn(move || work(&worker))
            .map_err(ApiError::internal)?;
        Ok(service)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, ApiError> {
        self.inner
            .lock()
            .map_err(|_| ApiError::internal("tuning state lock poisoned"))
    }

    fn audit_path(&self) -> PathBuf {
        self.state_dir.join("audit.jsonl")
    }

    fn enqueue(&self, inner: &mut Inner, job: Job) -> Result<(), ApiError> {
        if inner.queue.len() >= MAX_QUEUE {
            return Err(ApiError::Conflict(format!(
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
    pub fn submit(&self, request: RunRequest) -> Result<u64, ApiError> {
        request.check()?;
        let mut inner = self.lock()?;
        let id = inner.next_id;
        self.enqueue(&mut inner, Job::Run(id))?;
        inner.next_id += 1;
        inner.runs.push(Run {
            id,
            request,
            scenario: self.scenario.clone(),
            status: "queued".into(),
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
    pub fn apply(&self, id: u64) -> Result<(), ApiError> {
        let mut inner = self.lock()?;
        let run = inner
            .runs
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| ApiError::NotFound(format!("no tuning run {id}")))?;
        if run.status != "done" || run.best.is_none() {
            return Err(ApiError::Conflict(format!(
                "run {id} is {} and has {} best configuration yet",
                run.status,
                if run.best.is_some() { "a" } else { "no" }
            )));
        }
        self.enqueue(&mut inner, Job::Apply(id))
    }

    /// Queues a one-step revert of the last change.
    pub fn rollback(&self) -> Result<(), ApiError> {
        let log = self.changes()?;
        if !log.iter().any(|e| e["action"] != "refuse") {
            return Err(ApiError::Conflict(
                "nothing to roll back: no change has been applied".into(),
            ));
        }
        let mut inner = self.lock()?;
        self.enqueue(&mut inner, Job::Revert)
    }

    /// The audit log.
    pub fn changes(&self) -> Result<Vec<Value>, ApiError> {
        let dep = self.deployment()?;
        dep.log()
            .iter()
            .map(|e| serde_json::to_value(e).map_err(ApiError::internal))
            .collect()
    }

    fn deployment(&self) -> Result<Deployment, ApiError> {
        Deployment::open(
            &self.audit_path(),
            transfer::space().default_config(),
            Guard::default(),
        )
        .map_err(ApiError::internal)
    }

    /// One run, trials included.
    pub fn run(&self, id: u64) -> Result<Run, ApiError> {
        self.lock()?
            .runs
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("no tuning run {id}")))
    }

    /// The overview served at `GET /api/tuning`.
    pub fn overview(&self) -> Result<Value, ApiError> {
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
        if let Some(b) = r.best.as_ref().and_then(|b| b["objective"].as_f64()) {
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
        self.update(id, |r| r.status = "running".into());
        let mut env = self.env()?;
        let experience_path = self.state_dir.join("experience.jsonl");
        let mut tuner: Box<dyn Tuner> = match request.tuner.as_str() {
            "bo" => Box::new(BoTuner::new(request.seed)),
            "rl" => Box::new(RlTuner::new(
                request.seed,
                rl::load_experience(&experience_path).map_err(|e| e.to_string())?,
            )),
            _ => Box::new(RandomTuner::new(request.seed)),
        };
        let scenario = self.scenario.clone();
        let mut exec = Executor::new(request.budget);
        exec.observe(move |t| {
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
        });
        let session = exec
            .run(&mut env, tuner.as_mut())
            .map_err(|e| e.to_string())?;
        drop(exec);
        rl::save_experience(
            &experience_path,
            &rl::experience_of(&env.context(), &session.trials),
        )
        .map_err(|e| e.to_string())?;
        let default = session.trials[0].clone();
        let best = session
            .best_trial()
            .cloned()
            .ok_or("no configuration was measured successfully")?;
        let opt = optimum::cached(&self.scenario);
        let comparison = if request.repeats >= 2 {
            Some(
                stats::compare(
                    &mut env,
                    &default.config,
                    &best.config,
                    opt.as_ref().map(|o| &o.config),
                    request.repeats,
                    request.seed,
                )
                .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        self.update(id, |r| {
            r.trials = session.trials.clone();
            r.default_objective = default.objective;
            r.best = Some(json!({
                "config": best.config,
                "objective": comparison.as_ref().map_or(best.objective, |c| Some(c.candidate_mean)),
                "trial": best.number,
                "metrics": best.metrics,
            }));
            r.improvement = comparison.as_ref().map(|c| c.improvement);
            r.improvement_ci95 = comparison.as_ref().map(|c| c.improvement_ci95);
            r.share_of_optimum = comparison.as_ref().and_then(|c| c.share_of_reference);
        });
        Ok(())
    }

    fn do_apply(&self, id: u64) -> Result<(), String> {
        let run = self.run(id).map_err(|e| e.to_string())?;
        let config: Config = run
            .best
            .as_ref()
            .and_then(|b| serde_json::from_value(b["config"].clone()).ok())
            .ok_or("the run has no best configuration")?;
        let mut env = self.env()?;
        let mut dep = self.deployment().map_err(|e| e.to_string())?;
        let applied = dep
            .apply(&mut env, &config, &run.trials)
            .map_err(|e| e.to_string())?;
        let action = match applied {
            novaml_tune::guard::Applied::Kept { .. } => "apply",
            novaml_tune::guard::Applied::RolledBack { .. } => "rollback",
            novaml_tune::guard::Applied::Refused { .. } => "refuse",
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
                .and_then(|b| std::fs::write(&path, b).map_err(|e| e.to_string()));
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "Cannot save the tuning run.");
            }
            if r.status == "done" {
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
                        Ok(()) => run.status = "done".into(),
                        Err(e) => {
                            run.status = "failed".into();
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

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tuning", get(overview))
        .route("/api/tuning/runs", post(submit))
        .route("/api/tuning/runs/{id}", get(one))
        .route("/api/tuning/runs/{id}/apply", post(apply))
        .route("/api/tuning/rollback", post(rollback))
        .route("/api/tuning/changes", get(changes))
}

fn service(state: &AppState) -> Result<Arc<TuningService>, ApiError> {
    state
        .tuning
        .clone()
        .ok_or_else(|| ApiError::NotFound("tuning is not enabled on this server".into()))
}

fn run_id(p: Result<Path<u64>, PathRejection>) -> Result<u64, ApiError> {
    p.map(|Path(id)| id)
        .map_err(|e| ApiError::BadRequest(format!("run id: {}", e.body_text())))
}

async fn overview(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let s = service(&state)?;
    blocking(move || s.overview()).await.map(Json)
}

async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<RunRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    let s = service(&state)?;
    let Json(req) = body.map_err(|e| ApiError::from_json(&e))?;
    let id = s.submit(req)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "status": "queued", "url": format!("/api/tuning/runs/{id}")})),
    ))
}

async fn one(
    State(state): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Run>, ApiError> {
    let s = service(&state)?;
    let id = run_id(id)?;
    s.run(id).map(Json)
}

async fn apply(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<u64>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    let s = service(&state)?;
    let id = run_id(id)?;
    s.apply(id)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "queued", "job": format!("apply the best of run {id}")})),
    ))
}

async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    let s = service(&state)?;
    blocking(move || s.rollback()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "queued", "job": "roll back the last change"})),
    ))
}

async fn changes(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    let s = service(&state)?;
    blocking(move || s.changes()).await.map(Json)
}
