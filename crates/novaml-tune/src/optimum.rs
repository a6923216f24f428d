//! The exhaustive-grid optimum of each transfer scenario: computed once by `novaml tune-grid`
//! (every grid point measured, then the best few re-measured so that one lucky run does not
//! set the bar), cached as JSON in `crates/novaml-tune/optimum/` and embedded in the binary,
//! so that a tuning session can report the share of the optimum it reached.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::TuneError;
use crate::env::Environment;
use crate::space::Config;

/// One grid point's measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// The configuration.
    pub config: Config,
    /// Its objective, when the run succeeded.
    pub objective: Option<f64>,
    /// Why it failed (timeouts: too slow to matter).
    pub error: Option<String>,
}

/// A scenario's cached optimum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimum {
    /// The scenario.
    pub scenario: String,
    /// The machine it was measured on (CPU model and count): the CPU-bound scenarios' optimum
    /// depends on it.
    pub machine: String,
    /// When (UTC, RFC 3339).
    pub computed_at: String,
    /// The command that recomputes it.
    pub command: String,
    /// The best configuration after re-measurement.
    pub config: Config,
    /// Its objective, mean of the re-measurements.
    pub objective: f64,
    /// The re-measurements of the finalists: configuration, runs.
    pub finalists: Vec<(Config, Vec<f64>)>,
    /// Every grid point.
    pub points: Vec<GridPoint>,
}

/// The transfer engine's grid: zstd levels 1, 3, 6, 12, 19 with and without the long window;
/// lz4; none; each with chunks of 64, 256, 1024 and 4096 KiB, 1, 2, 4, 8 and 16 streams, and
/// delta encoding off and on (480 points; the level and window are not varied where the
/// algorithm ignores them).
pub fn transfer_grid() -> Vec<Config> {
    let mut algos: Vec<(String, i64, bool)> = Vec::new();
    for level in [1, 3, 6, 12, 19] {
        for long in [false, true] {
            algos.push(("zstd".into(), level, long));
        }
    }
    algos.push(("lz4".into(), 3, false));
    algos.push(("none".into(), 3, false));
    let mut out = Vec::new();
    for (a, level, long) in &algos {
        for chunk in [64, 256, 1024, 4096] {
            for streams in [1, 2, 4, 8, 16] {
                for delta in [false, true] {
                    let c: Config = [
                        ("algorithm", json!(a)),
                        ("level", json!(level)),
                        ("long_window", json!(long)),
                        ("chunk_kib", json!(chunk)),
                        ("streams", json!(streams)),
                        ("delta", json!(delta)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                    out.push(c);
                }
            }
        }
    }
    out
}

/// What a sweep found.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The best finalist.
    pub config: Config,
    /// Its mean objective.
    pub objective: f64,
    /// Each finalist's re-measurements.
    pub finalists: Vec<(Config, Vec<f64>)>,
    /// Every grid point.
    pub points: Vec<GridPoint>,
}

/// Measures every point, then re-measures the best `finalists` `repeats` times each; the
/// optimum is the finalist with the best mean. `progress` is called after each run.
pub fn sweep(
    env: &mut dyn Environment,
    points: Vec<Config>,
    finalists: usize,
    repeats: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Sweep, TuneError> {
    let total = points.len() + finalists * repeats;
    let mut done = 0;
    let mut measured = Vec::with_capacity(points.len());
    for config in points {
        let r = env.evaluate(&config);
        done += 1;
        progress(done, total);
        measured.push(match r {
            Ok(o) => GridPoint {
                config,
                objective: Some(o.objective),
                error: None,
            },
            Err(e) => GridPoint {
                config,
                objective: None,
                error: Some(e.to_string()),
            },
        });
    }
    let mut ranked: Vec<&GridPoint> = measured.iter().filter(|p| p.objective.is_some()).collect();
    ranked.sort_by(|a, b| {
        b.objective
            .partial_cmp(&a.objective)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut finals = Vec::new();
    for p in ranked.into_iter().take(finalists.max(1)) {
        let mut runs = Vec::new();
        for _ in 0..repeats.max(1) {
            if let Ok(o) = env.evaluate(&p.config) {
                runs.push(o.objective);
            }
            done += 1;
            progress(done, total);
        }
        if !runs.is_empty() {
            finals.push((p.config.clone(), runs));
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (config, objective) = finals
        .iter()
        .map(|(c, r)| (c.clone(), mean(r)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or_else(|| TuneError::Run("no grid point ran successfully".into()))?;
    Ok(Sweep {
        config,
        objective,
        finalists: finals,
        points: measured,
    })
}

const CACHED: [(&str, &str); 3] = [
    ("lan-10g", include_str!("../optimum/lan-10g.json")),
    ("wan-1g", include_str!("../optimum/wan-1g.json")),
    ("wan-100m", include_str!("../optimum/wan-100m.json")),
];

/// The cached optimum of a built-in scenario (`None` for other scenarios, or while the cache
/// file is a placeholder).
pub fn cached(scenario: &str) -> Option<Optimum> {
    CACHED
        .iter()
        .find(|(name, _)| *name == scenario)
        .and_then(|(_, text)| serde_json::from_str(text).ok())
}

/// A description of this machine for [`Optimum::machine`].
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map_or(1, usize::from);
    format!("{model} × {n}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer;

    #[test]
    fn the_grid_is_valid_and_has_no_duplicates() {
        let g = transfer_grid();
        assert_eq!(g.len(), 480);
        let space = transfer::space();
        let mut keys = std::collections::BTreeSet::new();
        for c in &g {
            let v = serde_json::to_value(c).expect("json");
            assert_eq!(&space.validate(&v).expect("valid"), c);
            keys.insert(crate::tuner::key(c));
        }
        assert_eq!(keys.len(), g.len());
    }
}
