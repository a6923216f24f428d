//! Honest statistics: an improvement is a ratio of means over repeated, interleaved
//! measurements, with a 95 % bootstrap confidence interval.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TuneError;
use crate::env::Environment;
use crate::space::Config;

/// Repeated measurements of a baseline and a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The baseline's objective, per run.
    pub baseline_runs: Vec<f64>,
    /// The candidate's objective, per run.
    pub candidate_runs: Vec<f64>,
    /// Mean of the baseline.
    pub baseline_mean: f64,
    /// Mean of the candidate.
    pub candidate_mean: f64,
    /// `candidate_mean / baseline_mean − 1` for a maximised objective; for a minimised one
    /// (latency, cost: the runs hold the metric itself), the reduction
    /// `1 − candidate_mean / baseline_mean`. Positive is better either way.
    pub improvement: f64,
    /// Whether the objective is minimised.
    pub minimize: bool,
    /// 95 % bootstrap interval of the improvement.
    pub improvement_ci95: [f64; 2],
    /// A reference configuration's runs (e.g. the grid optimum), measured in the same rounds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_runs: Vec<f64>,
    /// `candidate_mean / reference_mean` (for a minimised metric, the inverse), when a
    /// reference was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_of_reference: Option<f64>,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Compares two samples of a positive metric: the relative improvement of `candidate` over
/// `baseline` (see [`Comparison::improvement`]) with a 95 % percentile bootstrap interval (each
/// sample resampled with replacement, 4000 times, seeded).
pub fn compare_runs(
    baseline: Vec<f64>,
    candidate: Vec<f64>,
    minimize: bool,
    seed: u64,
) -> Comparison {
    let rel = |c: f64, b: f64| if minimize { 1.0 - c / b } else { c / b - 1.0 };
    let (mb, mc) = (mean(&baseline), mean(&candidate));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut boots: Vec<f64> = (0..4000)
        .map(|_| {
            let rb = (0..baseline.len())
                .map(|_| baseline[rng.random_range(0..baseline.len())])
                .sum::<f64>()
                / baseline.len() as f64;
            let rc = (0..candidate.len())
                .map(|_| candidate[rng.random_range(0..candidate.len())])
                .sum::<f64>()
                / candidate.len() as f64;
            rel(rc, rb)
        })
        .filter(|v| v.is_finite())
        .collect();
    boots.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if boots.is_empty() {
            f64::NAN
        } else {
            boots[((boots.len() - 1) as f64 * p).round() as usize]
        }
    };
    let [lo, hi] = [q(0.025), q(0.975)];
    Comparison {
        improvement: rel(mc, mb),
        improvement_ci95: [lo.min(hi), lo.max(hi)],
        reference_runs: Vec::new(),
        share_of_reference: None,
        minimize,
        baseline_mean: mb,
        candidate_mean: mc,
        baseline_runs: baseline,
        candidate_runs: candidate,
    }
}

/// Measures `baseline` and `candidate` `repeats` times each, interleaved (so drifts in the
/// machine's load hit both alike), and compares them. With a `reference` (e.g. the grid
/// optimum), it is measured in the same rounds too, and the candidate's share of it reported.
/// Objectives must be all positive (a maximised metric) or all negative (a minimised metric,
/// negated by the environment).
pub fn compare(
    env: &mut dyn Environment,
    baseline: &Config,
    candidate: &Config,
    reference: Option<&Config>,
    repeats: usize,
    seed: u64,
) -> Result<Comparison, TuneError> {
    if repeats < 2 {
        return Err(TuneError::param("repeats", "at least 2 for an interval"));
    }
    let (mut b, mut c, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats {
        b.push(env.evaluate(baseline)?.objective);
        c.push(env.evaluate(candidate)?.objective);
        if let Some(reference) = reference {
            r.push(env.evaluate(reference)?.objective);
        }
    }
    let all = || b.iter().chain(&c).chain(&r);
    let minimize = if all().all(|v| *v > 0.0) {
        false
    } else if all().all(|v| *v < 0.0) {
        true
    } else {
        return Err(TuneError::Run(
            "a relative improvement needs a metric of one sign (rates, latencies, costs)".into(),
        ));
    };
    let abs = |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(f64::abs).collect() };
    let mut out = compare_runs(abs(b), abs(c), minimize, seed);
    if !r.is_empty() {
        let r = abs(r);
        let mr = mean(&r);
        out.share_of_reference = Some(if minimize {
            mr / out.candidate_mean
        } else {
            out.candidate_mean / mr
        });
        out.reference_runs = r;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_brackets_the_ratio_and_shrinks_with_less_noise() {
        let b = vec![100.0, 104.0, 96.0, 101.0, 99.0];
        let c = vec![120.0, 126.0, 114.0, 121.0, 119.0];
        let r = compare_runs(b.clone(), c.clone(), false, 1);
        assert!((r.improvement - 0.2).abs() < 1e-12);
        let [lo, hi] = r.improvement_ci95;
        assert!(lo < 0.2 && 0.2 < hi && lo > 0.1 && hi < 0.3, "{lo} {hi}");
        let lower = compare_runs(c, b.clone(), true, 1);
        assert!(
            (lower.improvement - (1.0 - 100.0 / 120.0)).abs() < 1e-12,
            "a lower cost is better"
        );
        assert!(lower.improvement_ci95[0] > 0.0);
        let same = compare_runs(b.clone(), b, false, 1);
        let [lo, hi] = same.improvement_ci95;
        assert!(
            lo < 0.0 && hi > 0.0,
            "no difference must straddle 0: {lo} {hi}"
        );
    }
}
