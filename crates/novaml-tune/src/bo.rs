//! Bayesian optimisation: a Gaussian process over the encoded configuration, expected
//! improvement weighted by the probability that the constraints hold.
//!
//! Our own GP rather than `egobox`: the spaces here are small and mixed (choices one-hot,
//! booleans, log-scale integers), the data sets are tens of points, and what we need beyond a
//! plain GP (per-dimension length scales fitted by marginal likelihood, constraint models,
//! candidates drawn from the space's own sampler and neighbourhoods so every proposal is valid)
//! is a few hundred lines; egobox brings linfa/ndarray-linalg and continuous-box relaxations of
//! the choices for none of that.

use std::collections::BTreeSet;

use novaml_core::stats::{normal_cdf, normal_pdf};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::TuneError;
use crate::space::{Config, Space};
use crate::tuner::{Problem, SafetyModel, Trial, TrialStatus, Tuner, fresh_sample, key, seen};

/// A Gaussian process with a Matérn 5/2 kernel and per-dimension length scales.
#[derive(Debug, Clone)]
pub struct Gp {
    x: Vec<Vec<f64>>,
    alpha: Vec<f64>,
    chol: Vec<f64>,
    scales: Vec<f64>,
    noise: f64,
    mean: f64,
    sd: f64,
}

fn matern52(a: &[f64], b: &[f64], scales: &[f64]) -> f64 {
    let d2: f64 = a
        .iter()
        .zip(b)
        .zip(scales)
        .map(|((x, y), s)| ((x - y) / s).powi(2))
        .sum();
    let r = (5.0 * d2).sqrt();
    (1.0 + r + r * r / 3.0) * (-r).exp()
}

struct Fit {
    alpha: Vec<f64>,
    chol: Vec<f64>,
    log_ml: f64,
}

fn fit_with(x: &[Vec<f64>], y: &[f64], scales: &[f64], noise: f64) -> Option<Fit> {
    let n = x.len();
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = matern52(&x[i], &x[j], scales);
            k[i * n + j] = v;
            k[j * n + i] = v;
        }
        k[i * n + i] += noise + 1e-9;
    }
    let chol = novaml_core::linalg::cholesky(&k, n)?;
    let alpha = novaml_core::linalg::solve_cholesky(&chol, n, y);
    let log_det: f64 = (0..n).map(|i| chol[i * n + i].ln()).sum::<f64>() * 2.0;
    let fit: f64 = y.iter().zip(&alpha).map(|(a, b)| a * b).sum();
    Some(Fit {
        alpha,
        chol,
        log_ml: -0.5 * fit - 0.5 * log_det,
    })
}

impl Gp {
    /// Fits to `x` (rows of equal length, in `[0, 1]`) and `y`, choosing the noise and the
    /// length scales by marginal likelihood (a grid for a shared scale, then two passes of
    /// coordinate search per dimension). `None` with fewer than two points.
    pub fn fit(x: &[Vec<f64>], y: &[f64]) -> Option<Self> {
        let n = x.len();
        if n < 2 || y.len() != n {
            return None;
        }
        let dim = x[0].len();
        let mean = y.iter().sum::<f64>() / n as f64;
        let sd = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64)
            .sqrt()
            .max(1e-9);
        let ys: Vec<f64> = y.iter().map(|v| (v - mean) / sd).collect();
        let grid = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2];
        let noises = [1e-4, 1e-3, 1e-2, 0.05, 0.2];
        let mut best: Option<(f64, Vec<f64>, f64)> = None;
        for &s in &grid {
            for &noise in &noises {
                let scales = vec![s; dim];
                if let Some(f) = fit_with(x, &ys, &scales, noise)
                    && best.as_ref().is_none_or(|b| f.log_ml > b.0)
                {
                    best = Some((f.log_ml, scales, noise));
                }
            }
        }
        let (mut ml, mut scales, noise) = best?;
        for _ in 0..2 {
            for d in 0..dim {
                for &s in &grid {
                    let mut trial = scales.clone();
                    trial[d] = s;
                    if let Some(f) = fit_with(x, &ys, &trial, noise)
                        && f.log_ml > ml + 1e-9
                    {
                        ml = f.log_ml;
                        scales = trial;
                    }
                }
            }
        }
        let f = fit_with(x, &ys, &scales, noise)?;
        Some(Self {
            x: x.to_vec(),
            alpha: f.alpha,
            chol: f.chol,
            scales,
            noise,
            mean,
            sd,
        })
    }

    /// Mean and standard deviation of the latent function at `q`, in `y`'s units.
    pub fn predict(&self, q: &[f64]) -> (f64, f64) {
        let n = self.x.len();
        let k: Vec<f64> = self
            .x
            .iter()
            .map(|x| matern52(x, q, &self.scales))
            .collect();
        let mu: f64 = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        // v = L⁻¹k; var = k(q,q) − vᵀv.
        let v = novaml_core::linalg::solve_lower(&self.chol, n, &k);
        let var = (1.0 - v.iter().map(|a| a * a).sum::<f64>()).max(1e-12);
        (self.mean + self.sd * mu, self.sd * var.sqrt())
    }

    /// The fitted per-dimension length scales.
    pub fn length_scales(&self) -> &[f64] {
        &self.scales
    }

    /// The fitted noise variance (of the standardised targets).
    pub fn noise(&self) -> f64 {
        self.noise
    }
}

/// Expected improvement over `best` of a normal `(mu, sd)` belief, with margin `xi`.
pub fn expected_improvement(mu: f64, sd: f64, best: f64, xi: f64) -> f64 {
    if sd <= 1e-12 {
        return (mu - best - xi).max(0.0);
    }
    let z = (mu - best - xi) / sd;
    (mu - best - xi) * normal_cdf(z) + sd * normal_pdf(z)
}

/// The objective as the surrogate sees it: the log of positive objectives (rates, sizes span
/// orders of magnitude), the value itself otherwise.
fn transform(history: &[Trial]) -> impl Fn(f64) -> f64 + use<> {
    let positive = history.iter().filter_map(|t| t.objective).all(|v| v > 0.0);
    move |v: f64| if positive { v.ln() } else { v }
}

/// Surrogates of each constraint's metric, fitted to the measured trials.
fn constraint_models(problem: &Problem, history: &[Trial]) -> Vec<Option<Gp>> {
    problem
        .constraints
        .iter()
        .map(|c| {
            let (x, y): (Vec<_>, Vec<_>) = history
                .iter()
                .filter_map(|t| {
                    t.metrics
                        .get(&c.metric)
                        .map(|v| (problem.space.encode(&t.config), *v))
                })
                .unzip();
            Gp::fit(&x, &y)
        })
        .collect()
}

fn p_feasible(problem: &Problem, models: &[Option<Gp>], q: &[f64]) -> f64 {
    problem
        .constraints
        .iter()
        .zip(models)
        .map(|(c, m)| match m {
            // Without two measurements there is no model: unknown, neither safe nor unsafe.
            None => 0.5,
            Some(gp) => {
                let (mu, sd) = gp.predict(q);
                let z = (c.bound - mu) / sd.max(1e-12);
                if c.upper {
                    normal_cdf(z)
                } else {
                    1.0 - normal_cdf(z)
                }
            }
        })
        .product()
}

/// The safety check of the [`crate::Executor`] and of [`crate::guard`] by default: a Gaussian
/// process per constraint metric, fitted to the measured trials, and the probability under each
/// that its bound holds (their product; 0.5 for a metric with fewer than two measurements).
#[derive(Debug, Clone, Copy, Default)]
pub struct GpSafety;

impl SafetyModel for GpSafety {
    fn p_feasible(&self, problem: &Problem, history: &[Trial], config: &Config) -> f64 {
        if problem.constraints.is_empty() {
            return 1.0;
        }
        let models = constraint_models(problem, history);
        p_feasible(problem, &models, &problem.space.encode(config))
    }
}

/// Bayesian optimisation with expected improvement.
pub struct BoTuner {
    rng: ChaCha8Rng,
    /// Space-filling random trials before the model is used (the default's included).
    pub initial: usize,
    /// Random candidates scored per proposal.
    pub candidates: usize,
}

impl BoTuner {
    /// Seeded, with 6 initial trials and 2000 candidates.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            initial: 6,
            candidates: 2000,
        }
    }
}

/// The candidate among `n` random draws farthest from every point tried (maximin design).
fn space_filling(
    space: &Space,
    tried: &[Vec<f64>],
    seen: &BTreeSet<String>,
    rng: &mut ChaCha8Rng,
) -> Config {
    let mut best = (f64::NEG_INFINITY, space.sample(rng));
    for _ in 0..200 {
        let c = fresh_sample(space, seen, rng, 20);
        if seen.contains(&key(&c)) {
            continue;
        }
        let e = space.encode(&c);
        let d = tried
            .iter()
            .map(|t| t.iter().zip(&e).map(|(a, b)| (a - b).powi(2)).sum::<f64>())
            .fold(f64::INFINITY, f64::min);
        if d > best.0 {
            best = (d, c);
        }
    }
    best.1
}

impl Tuner for BoTuner {
    fn name(&self) -> &'static str {
        "bo"
    }

    fn ask(&mut self, problem: &Problem, history: &[Trial]) -> Result<Config, TuneError> {
        let space = &problem.space;
        let seen = seen(history);
        let measured: Vec<&Trial> = history
            .iter()
            .filter(|t| t.status != TrialStatus::Refused)
            .collect();
        let encoded: Vec<Vec<f64>> = measured.iter().map(|t| space.encode(&t.config)).collect();
        if measured.len() < self.initial
            || measured.iter().filter(|t| t.objective.is_some()).count() < 2
        {
            return Ok(space_filling(space, &encoded, &seen, &mut self.rng));
        }
        let f = transform(history);
        // Failed runs count as the worst measured value, so the model steers away from them.
        let worst = measured
            .iter()
            .filter_map(|t| t.objective)
            .map(&f)
            .fold(f64::INFINITY, f64::min);
        let y: Vec<f64> = measured
            .iter()
            .map(|t| t.objective.map_or(worst, &f))
            .collect();
        let Some(gp) = Gp::fit(&encoded, &y) else {
            return Ok(space_filling(space, &encoded, &seen, &mut self.rng));
        };
        let incumbent = measured
            .iter()
            .zip(&y)
            .filter(|(t, _)| t.feasible)
            .map(|(_, v)| *v)
            .fold(f64::NEG_INFINITY, f64::max);
        let incumbent = if incumbent.is_finite() {
            incumbent
        } else {
            worst
        };
        let models = constraint_models(problem, history);
        // Candidates: random draws, and neighbours (one and two steps) of the best five.
        let mut ranked: Vec<(f64, &Config)> = measured
            .iter()
            .zip(&y)
            .map(|(t, v)| (*v, &t.config))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        // Over the last third of the budget, refine: mostly neighbours of the best three, and no
        // exploration margin. Before that, more random draws, and neighbours of the best five.
        let refine = problem.budget > 0 && 3 * measured.len() >= 2 * problem.budget;
        let (random, parents, per_parent) = if refine {
            (self.candidates / 4, 3, 300)
        } else {
            (self.candidates, 5, 60)
        };
        let mut candidates: Vec<Config> =
            (0..random).map(|_| space.sample(&mut self.rng)).collect();
        for (_, c) in ranked.iter().take(parents) {
            for _ in 0..per_parent {
                let n = space.neighbour(c, &mut self.rng);
                let n2 = space.neighbour(&n, &mut self.rng);
                candidates.push(n);
                candidates.push(n2);
            }
        }
        let xi = if refine {
            0.0
        } else {
            0.01 * gp.predict(&encoded[0]).1.max(1e-3)
        };
        let mut best: Option<(f64, Config)> = None;
        for c in candidates {
            if seen.contains(&key(&c)) {
                continue;
            }
            let e = space.encode(&c);
            let (mu, sd) = gp.predict(&e);
            let score =
                expected_improvement(mu, sd, incumbent, xi) * p_feasible(problem, &models, &e);
            if best.as_ref().is_none_or(|b| score > b.0) {
                best = Some((score, c));
            }
        }
        Ok(best.map_or_else(|| fresh_sample(space, &seen, &mut self.rng, 100), |b| b.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gp_interpolates_and_is_uncertain_away_from_data() {
        let x: Vec<Vec<f64>> = (0..8).map(|i| vec![i as f64 / 7.0]).collect();
        let y: Vec<f64> = x.iter().map(|v| (6.0 * v[0]).sin()).collect();
        let gp = Gp::fit(&x, &y).expect("fits");
        for (xi, yi) in x.iter().zip(&y) {
            let (m, s) = gp.predict(xi);
            assert!((m - yi).abs() < 0.05, "{m} vs {yi}");
            assert!(s < 0.2, "{s}");
        }
        let (m, _) = gp.predict(&[0.5 / 7.0]);
        let truth = (6.0 * 0.5 / 7.0f64).sin();
        assert!((m - truth).abs() < 0.1, "between points: {m} vs {truth}");
        let (_, far) = gp.predict(&[3.0]);
        assert!(far > 0.5, "far from the data the GP must be unsure: {far}");
    }

    #[test]
    fn expected_improvement_is_right() {
        // EI of N(0, 1) over 0 is φ(0).
        assert!((expected_improvement(0.0, 1.0, 0.0, 0.0) - 0.398_942_28).abs() < 1e-6);
        assert!(expected_improvement(-10.0, 0.1, 0.0, 0.0) < 1e-12);
        assert_eq!(expected_improvement(2.0, 0.0, 1.0, 0.0), 1.0);
    }
}
