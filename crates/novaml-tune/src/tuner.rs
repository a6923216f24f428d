//! The tuning vocabulary — a [`Problem`] (space, constraints, context, budget), the [`Trial`]s
//! measured on it, the [`Tuner`] that proposes the next configuration and the [`SafetyModel`]
//! that judges one before it is tried — and the baseline tuners, random and grid search.
//! [`crate::bo`] and [`crate::rl`] hold the model-based tuners.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TuneError;
use crate::space::{Config, Space};

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

/// Predicts the probability that a configuration meets the problem's constraints, from the
/// trials so far: the safety check that refuses a configuration before it is applied.
pub trait SafetyModel {
    /// `P(every constraint holds | config)`, 1 without constraints.
    fn p_feasible(&self, problem: &Problem, history: &[Trial], config: &Config) -> f64;
}

/// Proposes configurations.
pub trait Tuner {
    /// The tuner's name.
    fn name(&self) -> &'static str;
    /// The next configuration to measure, given every trial so far (failed and refused ones
    /// included, so that a tuner does not propose them again).
    fn ask(&mut self, problem: &Problem, history: &[Trial]) -> Result<Config, TuneError>;
}

/// A key that identifies a configuration (for "already tried" checks).
pub fn key(c: &Config) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

/// Draws a configuration not in `seen`, trying `tries` times (then accepts a repeat).
pub(crate) fn fresh_sample(
    space: &Space,
    seen: &BTreeSet<String>,
    rng: &mut ChaCha8Rng,
    tries: usize,
) -> Config {
    let mut c = space.sample(rng);
    for _ in 0..tries {
        if !seen.contains(&key(&c)) {
            break;
        }
        c = space.sample(rng);
    }
    c
}

/// Keys of every configuration tried.
pub(crate) fn seen(history: &[Trial]) -> BTreeSet<String> {
    history.iter().map(|t| key(&t.config)).collect()
}

/// Random search: uniform draws (log-uniform for sizes), no repeats where avoidable.
pub struct RandomTuner {
    rng: ChaCha8Rng,
}

impl RandomTuner {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Tuner for RandomTuner {
    fn name(&self) -> &'static str {
        "random"
    }
    fn ask(&mut self, problem: &Problem, history: &[Trial]) -> Result<Config, TuneError> {
        Ok(fresh_sample(
            &problem.space,
            &seen(history),
            &mut self.rng,
            100,
        ))
    }
}

/// Grid search: the points of a grid in a seeded random order (so that a budget smaller than
/// the grid still spreads over it), skipping points already tried.
pub struct GridTuner {
    points: Vec<Config>,
    next: usize,
}

impl GridTuner {
    /// Over `points` (e.g. [`Space::grid`]), shuffled with `seed`.
    pub fn new(mut points: Vec<Config>, seed: u64) -> Self {
        points.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        Self { points, next: 0 }
    }
}

impl Tuner for GridTuner {
    fn name(&self) -> &'static str {
        "grid"
    }
    fn ask(&mut self, _problem: &Problem, history: &[Trial]) -> Result<Config, TuneError> {
        let seen = seen(history);
        while self.next < self.points.len() {
            let c = &self.points[self.next];
            self.next += 1;
            if !seen.contains(&key(c)) {
                return Ok(c.clone());
            }
        }
        Err(TuneError::Exhausted)
    }
}
