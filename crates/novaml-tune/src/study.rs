//! A tuning study from start to verdict, the one orchestration behind `novaml tune` and the
//! pipeline's tuning service: build the tuner (the rl tuner with the experience of earlier
//! sessions), run the [`Executor`], record what the session taught, then re-measure the default,
//! the best and (for a built-in scenario) the grid optimum in the same interleaved rounds for the
//! improvement, its 95 % interval and the share of the optimum.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::bo::BoTuner;
use crate::executor::Session;
use crate::optimum::Optimum;
use crate::rl::{self, RlTuner};
use crate::space::Config;
use crate::stats::{self, Comparison};
use crate::tuner::{Constraint, GridTuner, RandomTuner, Trial};
use crate::{Environment, Executor, TuneError, Tuner};

/// Which tuner proposes the configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TunerKind {
    /// Bayesian optimisation ([`BoTuner`]).
    Bo,
    /// The contextual bandit that learns across sessions ([`RlTuner`]).
    Rl,
    /// Random search.
    Random,
    /// Grid search over [`Study::grid`].
    Grid,
}

impl TunerKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [Self::Bo, Self::Rl, Self::Random, Self::Grid];

    /// The name on the command line and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bo => "bo",
            Self::Rl => "rl",
            Self::Random => "random",
            Self::Grid => "grid",
        }
    }
}

impl std::str::FromStr for TunerKind {
    type Err = TuneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| TuneError::Unknown {
                what: "tuner",
                name: s.to_owned(),
                known: "bo, rl, random, grid".into(),
            })
    }
}

/// What a study does.
#[derive(Debug, Clone)]
pub struct Study {
    /// The tuner.
    pub tuner: TunerKind,
    /// Measured trials, the default's included.
    pub budget: usize,
    /// Seed of the tuner and of the comparison's bootstrap.
    pub seed: u64,
    /// Re-measurements of the default and the best for the improvement (below 2: none).
    pub repeats: usize,
    /// Bounds on measured metrics.
    pub constraints: Vec<Constraint>,
    /// The executor's safety threshold.
    pub safety: f64,
    /// The rl tuner's experience file (JSON lines): read by the rl tuner.
    pub experience: Option<PathBuf>,
    /// Append what this session taught to the experience file.
    pub learn: bool,
    /// The grid tuner's points.
    pub grid: Vec<Config>,
    /// A reference optimum whose configuration is re-measured with the default and the best.
    pub optimum: Option<Optimum>,
}

impl Study {
    /// A study with `tuner`, `budget` and `seed`, 5 repeats, no constraints, safety 0.5.
    pub fn new(tuner: TunerKind, budget: usize, seed: u64) -> Self {
        Self {
            tuner,
            budget,
            seed,
            repeats: 5,
            constraints: Vec::new(),
            safety: 0.5,
            experience: None,
            learn: false,
            grid: Vec::new(),
            optimum: None,
        }
    }

    fn make_tuner(&self) -> Result<Box<dyn Tuner>, TuneError> {
        Ok(match self.tuner {
            TunerKind::Bo => Box::new(BoTuner::new(self.seed)),
            TunerKind::Rl => Box::new(RlTuner::new(
                self.seed,
                match &self.experience {
                    Some(p) => rl::load_experience(p)?,
                    None => Vec::new(),
                },
            )),
            TunerKind::Random => Box::new(RandomTuner::new(self.seed)),
            TunerKind::Grid => Box::new(GridTuner::new(self.grid.clone(), self.seed)),
        })
    }

    /// Runs the study on `env`, calling `observe` after every trial.
    pub fn run(
        &self,
        env: &mut dyn Environment,
        observe: impl FnMut(&Trial),
    ) -> Result<Outcome, TuneError> {
        let mut tuner = self.make_tuner()?;
        let mut exec = Executor::new(self.budget);
        exec.constraints = self.constraints.clone();
        exec.safety = self.safety;
        exec.observe(observe);
        let session = exec.run(env, tuner.as_mut())?;
        drop(exec);
        if self.learn
            && let Some(path) = &self.experience
        {
            rl::save_experience(path, &rl::experience_of(&env.context(), &session.trials))?;
        }
        let default = session.trials[0].clone();
        let Some(best) = session.best_trial().cloned() else {
            let problem = session
                .trials
                .iter()
                .find_map(|t| t.error.clone())
                .unwrap_or_else(|| "no measured trial met the constraints".into());
            return Err(TuneError::NothingMeasured {
                trials: session.trials.len(),
                problem,
            });
        };
        // The optimum's configuration is re-measured in the same rounds as the default and the
        // best, so the share compares like with like (same machine state, same protocol).
        let comparison = if self.repeats >= 2 {
            Some(stats::compare(
                env,
                &default.config,
                &best.config,
                self.optimum.as_ref().map(|o| &o.config),
                self.repeats,
                self.seed,
            )?)
        } else {
            None
        };
        Ok(Outcome {
            session,
            default,
            best,
            comparison,
            optimum: self.optimum.clone(),
        })
    }
}

/// What a study found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every trial.
    pub session: Session,
    /// The default configuration's trial (the first).
    pub default: Trial,
    /// The best feasible measured trial.
    pub best: Trial,
    /// Default, best (and optimum) re-measured, when the study repeated them.
    pub comparison: Option<Comparison>,
    /// The reference optimum.
    pub optimum: Option<Optimum>,
}

impl Outcome {
    /// The best's improvement over the default (positive is better) and its 95 % interval: from
    /// the re-measurements, else from the session's single runs (no interval).
    pub fn improvement(&self) -> (Option<f64>, Option<[f64; 2]>) {
        match (&self.comparison, self.default.objective) {
            (Some(c), _) => (Some(c.improvement), Some(c.improvement_ci95)),
            (None, Some(d)) if d > 0.0 => (self.best.objective.map(|b| b / d - 1.0), None),
            (None, Some(d)) if d < 0.0 => (self.best.objective.map(|b| 1.0 - b / d), None),
            _ => (None, None),
        }
    }

    /// The best's objective: the mean of its re-measurements, else its session run.
    pub fn best_objective(&self) -> Option<f64> {
        self.comparison
            .as_ref()
            .map(|c| c.candidate_mean)
            .or(self.best.objective)
    }

    /// The best's share of the optimum: re-measured in the same rounds, else its single run
    /// against the optimum's cached value.
    pub fn share_of_optimum(&self) -> Option<f64> {
        self.comparison
            .as_ref()
            .and_then(|c| c.share_of_reference)
            .or_else(|| {
                self.optimum
                    .as_ref()
                    .zip(self.best.objective)
                    .map(|(o, b)| b / o.objective)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuner_names_round_trip() {
        for k in TunerKind::ALL {
            assert_eq!(k.as_str().parse::<TunerKind>().expect("known"), k);
        }
        let e = "annealing".parse::<TunerKind>().expect_err("unknown");
        assert!(e.to_string().contains("bo, rl, random, grid"), "{e}");
    }
}
