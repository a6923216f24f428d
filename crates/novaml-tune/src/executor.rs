//! The [`Executor`] runs a tuning session: it owns the budget, the constraints, the safety
//! check before each trial (any [`SafetyModel`]), termination, and the observers (progress bars,
//! logs). The vocabulary it shares with the tuners ([`Problem`], [`Trial`]) is in [`crate::tuner`].

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::TuneError;
use crate::bo::GpSafety;
use crate::env::Environment;
use crate::space::Config;
use crate::tuner::{Constraint, Problem, SafetyModel, Trial, TrialStatus, Tuner, key};

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
    /// Predicts whether a configuration meets the constraints before it is tried (default: the
    /// Gaussian-process model of [`GpSafety`]).
    pub safety_model: Box<dyn SafetyModel + 'a>,
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
            safety_model: Box::new(GpSafety),
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
                .then(|| self.safety_model.p_feasible(&problem, &trials, &config));
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
