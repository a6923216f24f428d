//! A contextual reinforcement-learning tuner: a contextual bandit (one-step RL, since a
//! configuration's reward does not depend on the previous one) with Thompson sampling over a
//! Bayesian linear model of state × action features.
//!
//! The state is the environment's context (for the transfer engine: bandwidth, RTT, window,
//! the payload's compressibility, the dirty share); the action is the encoded configuration;
//! the reward is the log of the objective relative to the default configuration's in the same
//! session, so that experience from one scenario carries over to another: the model learns,
//! e.g., that more streams pay on long links and compression on slow ones. Experience persists
//! across sessions as JSON lines ([`Experience`]).

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TuneError;
use crate::executor::best_index;
use crate::space::{Config, Space};
use crate::tuner::{Problem, Trial, TrialStatus};
use crate::tuner::{Tuner, fresh_sample, key, seen};

/// One remembered step: state, action, reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experience {
    /// The context.
    pub context: Vec<f64>,
    /// The configuration.
    pub config: Config,
    /// Log of the objective over the session's default objective.
    pub reward: f64,
}

/// The experience a session adds: every measured trial, rewarded against the default (trial
/// 0); empty when the default was not measured or objectives are not positive.
pub fn experience_of(context: &[f64], trials: &[Trial]) -> Vec<Experience> {
    let Some(base) = trials
        .first()
        .and_then(|t| t.objective)
        .filter(|v| *v > 0.0)
    else {
        return Vec::new();
    };
    trials
        .iter()
        .filter_map(|t| {
            let v = t.objective.filter(|v| *v > 0.0)?;
            Some(Experience {
                context: context.to_vec(),
                config: t.config.clone(),
                reward: (v / base).ln(),
            })
        })
        .collect()
}

/// Reads experience (JSON lines); a missing file is no experience.
pub fn load_experience(path: &Path) -> Result<Vec<Experience>, TuneError> {
    crate::jsonl::read(path)
}

/// Appends experience (JSON lines).
pub fn save_experience(path: &Path, xs: &[Experience]) -> Result<(), TuneError> {
    crate::jsonl::append(path, xs)
}

/// Features of (state, action): bias, action, action², and state × action.
fn features(space: &Space, context: &[f64], config: &Config) -> Vec<f64> {
    let a = space.encode(config);
    let mut f = Vec::with_capacity(1 + 2 * a.len() + context.len() * a.len());
    f.push(1.0);
    f.extend(&a);
    f.extend(a.iter().map(|x| x * x));
    for s in context {
        f.extend(a.iter().map(|x| s * x));
    }
    f
}

/// The contextual Thompson-sampling tuner.
pub struct RlTuner {
    rng: ChaCha8Rng,
    prior: Vec<Experience>,
    /// Random candidates scored per proposal.
    pub candidates: usize,
}

impl RlTuner {
    /// Seeded, starting from `experience` of earlier sessions (possibly other scenarios).
    pub fn new(seed: u64, experience: Vec<Experience>) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            prior: experience,
            candidates: 1500,
        }
    }

    fn normal(&mut self) -> f64 {
        let u1: f64 = self.rng.random::<f64>().max(1e-300);
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Draws weights from the posterior of a Bayesian ridge regression of rewards on features.
    fn sample_weights(&mut self, rows: &[(Vec<f64>, f64)]) -> Option<Vec<f64>> {
        let p = rows.first()?.0.len();
        let lambda = 1.0;
        let mut a = vec![0.0; p * p];
        let mut b = vec![0.0; p];
        for (f, r) in rows {
            for i in 0..p {
                b[i] += f[i] * r;
                for j in 0..p {
                    a[i * p + j] += f[i] * f[j];
                }
            }
        }
        for i in 0..p {
            a[i * p + i] += lambda;
        }
        let l = novaml_core::linalg::cholesky(&a, p)?;
        let mu = novaml_core::linalg::solve_cholesky(&l, p, &b);
        let resid: f64 = rows
            .iter()
            .map(|(f, r)| (r - f.iter().zip(&mu).map(|(x, w)| x * w).sum::<f64>()).powi(2))
            .sum();
        let sigma = (resid / rows.len().max(1) as f64).sqrt().clamp(0.02, 1.0);
        // w = μ + σ·L⁻ᵀz has covariance σ²·A⁻¹.
        let z: Vec<f64> = (0..p).map(|_| self.normal()).collect();
        let x = novaml_core::linalg::solve_lower_transposed(&l, p, &z);
        Some(mu.iter().zip(&x).map(|(m, e)| m + sigma * e).collect())
    }
}

impl Tuner for RlTuner {
    fn name(&self) -> &'static str {
        "rl"
    }

    fn ask(&mut self, problem: &Problem, history: &[Trial]) -> Result<Config, TuneError> {
        let space = &problem.space;
        let seen = seen(history);
        let mut xs: Vec<Experience> = self.prior.clone();
        xs.extend(experience_of(&problem.context, history));
        // Failed runs: the worst reward seen in this session, so the policy learns to avoid them.
        let worst = xs.iter().map(|x| x.reward).fold(0.0f64, f64::min) - 0.5;
        xs.extend(
            history
                .iter()
                .filter(|t| t.status == TrialStatus::Failed)
                .map(|t| Experience {
                    context: problem.context.clone(),
                    config: t.config.clone(),
                    reward: worst,
                }),
        );
        let rows: Vec<(Vec<f64>, f64)> = xs
            .iter()
            .filter(|x| x.context.len() == problem.context.len())
            .map(|x| (features(space, &x.context, &x.config), x.reward))
            .collect();
        let Some(w) = (rows.len() >= 2)
            .then(|| self.sample_weights(&rows))
            .flatten()
        else {
            return Ok(fresh_sample(space, &seen, &mut self.rng, 100));
        };
        let best_tried = best_index(history).map(|i| history[i].config.clone());
        let mut candidates: Vec<Config> = (0..self.candidates)
            .map(|_| space.sample(&mut self.rng))
            .collect();
        if let Some(b) = best_tried {
            for _ in 0..200 {
                candidates.push(space.neighbour(&b, &mut self.rng));
            }
        }
        let best = candidates
            .into_iter()
            .filter(|c| !seen.contains(&key(c)))
            .map(|c| {
                let f = features(space, &problem.context, &c);
                (f.iter().zip(&w).map(|(x, w)| x * w).sum::<f64>(), c)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        Ok(best.map_or_else(|| fresh_sample(space, &seen, &mut self.rng, 100), |b| b.1))
    }
}
