//! The [`Executor`] runs a tuning session: it owns the budget, the constraints, the safety
//! check before each trial, termination, and the observers (progress bars, logs).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::TuneError;
use crate::bo;
use crate::env::Environment;
use crate::space::{Config, Space};
use crate::tuner::{Tuner, key};

/// A bound on a measured metric, e.g. `cpu_seconds_per_gib <= 4`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    /// The metric (as the environment names it).
    pub metric: String,
    /// True: the metric must stay at or below `bound`; false: at or above.
    pub upper: bool,
    /// The bound.
    pub bound: f64,
}

impl Constraint {
    /// Parses `metric<=bound` or `metric>=bound`.
    pub fn parse(s: &str) -> Result<Self, TuneError> {
        let (metric, upper, bound) = if let Some((m, b)) = s.split_once("<=") {
            (m, true, b)
        } else if let Some((m, b)) = s.split_once(">=") {
            (m, false, b)
        } else {
            return Err(TuneError::param(
                "constraint",
                format!("{s:?} is not METRIC<=BOUND or METRIC>=BOUND"),
            ));
        };
        let bound: f64 = bound
            .trim()
            .parse()
            .ok()
            .filter(|b: &f64| b.is_finite())
            .ok_or_else(|| TuneError::param("constraint", format!("{s:?}: bad bound")))?;
        let metric = metric.trim();
        if metric.is_empty() {
            return Err(TuneError::param("constraint", format!("{s:?}: no metric")));
        }
        Ok(Self {
            metric: metric.into(),
            upper,
            bound,
        })
    }

    /// Whether the measured metrics satisfy it (a missing metric does not).
    pub fn holds(&self, metrics: &BTreeMap<String, f64>) -> bool {
        metrics.get(&self.metric).is_some_and(|&v| {
            if self.upper {
                v <= self.bound
            } else {
                v >= self.bound
            }
        })
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = if self.upper { "<=" } else { ">=" };
        write!(f, "{}{op}{}", self.metric, self.bound)
    }
}

/// What a tuner works on: the parameters and the constraints.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The parameters.
    pub space: Space,
    /// Bounds the measured metrics must respect.
    pub constraints: Vec<Constraint>,
    /// Features of the situation, for contextual tuners.
    pub context: Vec<f64>,
    /// Measured trials the session may spend (so a tuner can shift from exploring to
    /// exploiting); 0 when unknown.
    pub budget: usize,
}

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialStatus {
    /// Measured.
    Measured,
    /// The environment failed or timed out; the system stays on the last good configuration.
    Failed,
    /// Not applied: the safety check judged the constraints unlikely to hold.
    Refused,
}

/// One trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 0 is the default configuration.
    pub number: usize,
    /// The configuration.
    pub config: Config,
    /// How it ended.
    pub status: TrialStatus,
    /// The objective (higher is better), when measured.
    pub objective: Option<f64>,
    /// Every metric measured.
    pub metrics: BTreeMap<String, f64>,
    /// Whether the constraints held (false when not measured).
    pub feasible: bool,
    /// The safety check's probability that the constraints hold, when it ran.
    pub p_feasible: Option<f64>,
    /// Why it failed or was refused.
    pub error: Option<String>,
    /// Wall time of the trial, s.
    pub seconds: f64,
}

/// A finished session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The tuner.
    pub tuner: String,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
    /// Index of the best feasible measured trial.
    pub best: Option<usize>,
    /// Why the session stopped.
    pub stopped: String,
}

impl Session {
    /// The best feasible measured trial.
    pub fn best_trial(&self) -> Option<&Trial> {
        self.best.map(|i| &self.trials[i])
    }
}

/// Called after every trial.
type Observer<'a> = Box<dyn FnMut(&Trial) + 'a>;

/// Runs sessions.
pub struct Executor<'a> {
    /// Measured trials allowed, the default's included.
    pub budget: usize,
    /// Constraints on the metrics.
    pub constraints: Vec<Constraint>,
    /// Refuse a configuration whose predicted probability of meeting the constraints is below
    /// this (0 turns the check off).
    pub safety: f64,
    /// Stop after this many failures in a row.
    pub max_failures: usize,
    observers: Vec<Observer<'a>>,
}

impl<'a> Executor<'a> {
    /// A budget of `budget` measured trials, no constraints, safety check at 0.5.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            constraints: Vec::new(),
            safety: 0.5,
            max_failures: 5,
            observers: Vec::new(),
        }
    }

    /// Calls `f` after every trial.
    pub fn observe(&mut self, f: impl FnMut(&Trial) + 'a) {
        self.observers.push(Box::new(f));
    }

    /// Runs `tuner` on `env`: the default configuration first, then the tuner's proposals,
    /// until the budget is spent, the tuner runs out, or failures pile up.
    pub fn run(
        &mut self,
        env: &mut dyn Environment,
        tuner: &mut dyn Tuner,
    ) -> Result<Session, TuneError> {
        if self.budget == 0 {
            return Err(TuneError::param("budget", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.safety) {
            return Err(TuneError::param("safety", "must be in [0, 1]"));
        }
        let problem = Problem {
            space: env.space().clone(),
            constraints: self.constraints.clone(),
            context: env.context(),
            budget: self.budget,
        };
        let mut trials: Vec<Trial> = Vec::new();
        let mut measured = 0;
        let mut refused = 0;
        let mut failures = 0;
        let stopped;
        loop {
            if measured >= self.budget {
                stopped = "budget spent".to_owned();
                break;
            }
            let config = if trials.is_empty() {
                problem.space.default_config()
            } else {
                match tuner.ask(&problem, &trials) {
                    Ok(c) => c,
                    Err(TuneError::Exhausted) => {
                        stopped = "the tuner has nothing left to try".to_owned();
                        break;
                    }
                    Err(e) => return Err(e),
                }
            };
            let json = serde_json::to_value(&config).map_err(|e| TuneError::Run(e.to_string()))?;
            let config = problem.space.validate(&json)?;
            let number = trials.len();
            let p_feasible = (!trials.is_empty() && !self.constraints.is_empty())
                .then(|| bo::feasibility(&problem, &trials, &config));
            let started = Instant::now();
            let trial = if let Some(p) = p_feasible.filter(|&p| p < self.safety) {
                refused += 1;
                Trial {
                    number,
                    config,
                    status: TrialStatus::Refused,
                    objective: None,
                    metrics: BTreeMap::new(),
                    feasible: false,
                    p_feasible: Some(p),
                    error: Some(format!(
                        "safety check: P(constraints hold) = {p:.2} < {:.2}",
                        self.safety
                    )),
                    seconds: 0.0,
                }
            } else {
                measured += 1;
                match env.evaluate(&config) {
                    Ok(o) => {
                        failures = 0;
                        let feasible = self.constraints.iter().all(|c| c.holds(&o.metrics));
                        Trial {
                            number,
                            config,
                            status: TrialStatus::Measured,
                            objective: Some(o.objective),
                            metrics: o.metrics,
                            feasible,
                            p_feasible,
                            error: None,
                            seconds: started.elapsed().as_secs_f64(),
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        Trial {
                            number,
                            config,
                            status: TrialStatus::Failed,
                            objective: None,
                            metrics: BTreeMap::new(),
                            feasible: false,
                            p_feasible,
                            error: Some(e.to_string()),
                            seconds: started.elapsed().as_secs_f64(),
                        }
                    }
                }
            };
            for o in &mut self.observers {
                o(&trial);
            }
            trials.push(trial);
            if failures >= self.max_failures {
                stopped = format!("{failures} failures in a row");
                break;
            }
            if refused > 5 * self.budget {
                stopped = "the safety check refused too many proposals".to_owned();
                break;
            }
        }
        let best = best_index(&trials);
        Ok(Session {
            tuner: tuner.name().to_owned(),
            trials,
            best,
            stopped,
        })
    }
}

/// Index of the best feasible measured trial.
pub fn best_index(trials: &[Trial]) -> Option<usize> {
    trials
        .iter()
        .enumerate()
        .filter(|(_, t)| t.feasible && t.objective.is_some())
        .max_by(|a, b| {
            a.1.objective
                .partial_cmp(&b.1.objective)
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(i, _)| i)
}

/// Whether `config` was tried in `trials`.
pub fn tried(trials: &[Trial], config: &Config) -> bool {
    let k = key(config);
    trials.iter().any(|t| key(&t.config) == k)
}
