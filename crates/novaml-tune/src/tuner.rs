//! Tuners: what configuration to try next, given what was measured. Random and grid search
//! are the baselines; [`crate::bo`] and [`crate::rl`] hold the model-based tuners.

use std::collections::BTreeSet;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::TuneError;
use crate::executor::{Problem, Trial};
use crate::space::{Config, Space};

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
