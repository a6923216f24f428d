//! The M4 competition's Hourly subset (414 series, 48 hours ahead) as the M4 organisers publish
//! it (`Hourly-train.csv`, `Hourly-test.csv`: one row per series, `V1` the id, then the values;
//! rows of different lengths), scored with the official metrics: sMAPE, MASE (season 24, scaled by
//! the in-sample seasonal naive error) and OWA against Naive2, plus interval coverage at 50, 80
//! and 95 % (not an official M4 figure). The data has no timestamps: the series start at
//! 2000-01-01 00:00 UTC on an hourly clock, as the data's README suggests.

use std::path::{Path, PathBuf};

use novaml_forecast::models::{ModelKind, Regular};
use novaml_forecast::select::{SelectConfig, select_and_forecast};
use serde::Serialize;

use crate::forecast::accuracy;

/// Forecast horizon of M4 Hourly.
pub const HORIZON: usize = 48;
/// Seasonality used by M4's MASE for hourly data.
pub const SEASON: usize = 24;
/// Naive2's official Hourly sMAPE, the OWA denominator.
pub const NAIVE2_SMAPE: f64 = 18.383;
/// Naive2's official Hourly MASE, the OWA denominator.
pub const NAIVE2_MASE: f64 = 2.395;
/// Interval levels whose coverage is reported.
pub const LEVELS: [f64; 3] = [0.5, 0.8, 0.95];
/// The official Hourly rows (name, sMAPE, MASE, OWA) from Makridakis et al. (2020), and the
/// statsforecast runs of `shared/data/m4/README.md` (OWA computed from their sMAPE and MASE).
pub const PEERS: [(&str, f64, f64, f64); 8] = [
    ("ES-RNN (Smyl, M4 winner)", 9.328, 0.893, 0.440),
    ("ProLogistica", 9.611, 0.873, 0.444),
    ("FFORMA", 11.506, 0.819, 0.484),
    ("AutoARIMA (statsforecast)", 13.396, 0.931, 0.559),
    ("MSTL (statsforecast)", 13.763, 1.102, 0.604),
    ("seasonal naive", 13.912, 1.193, 0.627),
    ("AutoETS (statsforecast)", 17.192, 1.606, 0.803),
    ("Naive2", 18.383, 2.395, 1.000),
];

/// Errors of loading the M4 files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum M4Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not in M4's layout.
    #[error("{path} line {line}: {reason}")]
    Format {
        /// The path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The train and test files disagree.
    #[error("{0}")]
    Mismatch(String),
}

/// One series: its id, the training values and the 48 values to forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct M4Series {
    /// M4's id (`H1` …).
    pub id: String,
    /// Training values.
    pub train: Vec<f64>,
    /// The held-out values.
    pub test: Vec<f64>,
}

fn read_rows(path: &Path) -> Result<Vec<(String, Vec<f64>)>, M4Error> {
    let text = std::fs::read_to_string(path).map_err(|source| M4Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let bad = |reason: String| M4Error::Format {
            path: path.to_owned(),
            line: i + 1,
            reason,
        };
        if line.trim().is_empty() {
            continue;
        }
        let mut cells = line.split(',').map(|c| c.trim().trim_matches('"'));
        let id = cells
            .next()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| bad("no series id".into()))?;
        let mut values = Vec::new();
        for c in cells {
            if c.is_empty() {
                // Shorter rows end in empty cells.
                continue;
            }
            let v: f64 = c
                .parse()
                .map_err(|_| bad(format!("{c:?} is not a number")))?;
            if !v.is_finite() {
                return Err(bad(format!("{c:?} is not finite")));
            }
            values.push(v);
        }
        rows.push((id.to_owned(), values));
    }
    Ok(rows)
}

/// Reads `Hourly-train.csv` and `Hourly-test.csv` from `dir`.
pub fn load(dir: &Path) -> Result<Vec<M4Series>, M4Error> {
    let train = read_rows(&dir.join("Hourly-train.csv"))?;
    let test = read_rows(&dir.join("Hourly-test.csv"))?;
    if train.len() != test.len() {
        return Err(M4Error::Mismatch(format!(
            "{} training rows but {} test rows",
            train.len(),
            test.len()
        )));
    }
    train
        .into_iter()
        .zip(test)
        .map(|((id, train), (tid, test))| {
            if id != tid {
                return Err(M4Error::Mismatch(format!(
                    "series {id} in the training file meets {tid} in the test file"
                )));
            }
            if test.len() != HORIZON {
                return Err(M4Error::Mismatch(format!(
                    "{id}: {} test values, not {HORIZON}",
                    test.len()
                )));
            }
            if train.len() <= 2 * SEASON {
                return Err(M4Error::Mismatch(format!(
                    "{id}: {} training values, fewer than two days",
                    train.len()
                )));
            }
            Ok(M4Series { id, train, test })
        })
        .collect()
}

/// One series' result.
#[derive(Debug, Clone, Serialize)]
pub struct M4Result {
    /// M4's id.
    pub id: String,
    /// The model the backtest chose.
    pub model: ModelKind,
    /// sMAPE, percent.
    pub smape: f64,
    /// MASE.
    pub mase: f64,
    /// Coverage of the 50, 80 and 95 % intervals.
    pub coverage: [f64; 3],
    /// Selection + fit + forecast time.
    pub seconds: f64,
}

/// The corpus figures: means over the series, as M4 reports them.
#[derive(Debug, Clone, Serialize)]
pub struct M4Summary {
    /// Series scored.
    pub series: usize,
    /// Mean sMAPE, percent.
    pub smape: f64,
    /// Mean MASE.
    pub mase: f64,
    /// `(sMAPE/18.383 + MASE/2.395)/2`.
    pub owa: f64,
    /// Mean coverage of the 50, 80 and 95 % intervals.
    pub coverage: [f64; 3],
    /// Mean time per series, seconds.
    pub seconds_per_series: f64,
}

/// Forecasts one series' 48 hours with the backtest's choice among `cfg.candidates` (chosen on
/// the training values only) and scores it.
pub fn evaluate(s: &M4Series, cfg: &SelectConfig) -> Result<M4Result, String> {
    let start = 946_684_800; // 2000-01-01 00:00 UTC
    let fit = Regular {
        start,
        step: 3_600,
        y: &s.train,
    };
    let t0 = std::time::Instant::now();
    let sel = select_and_forecast(fit, HORIZON, cfg).map_err(|e| format!("{}: {e}", s.id))?;
    let seconds = t0.elapsed().as_secs_f64();
    let mut coverage = [0.0; 3];
    let mut point = None;
    for (k, level) in LEVELS.iter().enumerate() {
        let (lo, hi) = sel.interval(*level);
        let acc = accuracy(&s.train, SEASON, &s.test, &sel.yhat, &lo, &hi)
            .ok_or_else(|| format!("{}: the training values are constant", s.id))?;
        coverage[k] = acc.coverage;
        point = Some(acc);
    }
    let acc = point.ok_or_else(|| format!("{}: nothing scored", s.id))?;
    Ok(M4Result {
        id: s.id.clone(),
        model: sel.model,
        smape: acc.smape,
        mase: acc.mase,
        coverage,
        seconds,
    })
}

/// The means over `results`; `None` when there are none.
pub fn summarize(results: &[M4Result]) -> Option<M4Summary> {
    if results.is_empty() {
        return None;
    }
    let n = results.len() as f64;
    let mean = |f: &dyn Fn(&M4Result) -> f64| results.iter().map(f).sum::<f64>() / n;
    let smape = mean(&|r| r.smape);
    let mase = mean(&|r| r.mase);
    Some(M4Summary {
        series: results.len(),
        smape,
        mase,
        owa: (smape / NAIVE2_SMAPE + mase / NAIVE2_MASE) / 2.0,
        coverage: [
            mean(&|r| r.coverage[0]),
            mean(&|r| r.coverage[1]),
            mean(&|r| r.coverage[2]),
        ],
        seconds_per_series: mean(&|r| r.seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    fn series_line(id: &str, values: &[f64], width: usize) -> String {
        let mut cells = vec![format!("\"{id}\"")];
        cells.extend(values.iter().map(|v| format!("\"{v}\"")));
        cells.resize(width + 1, String::new());
        cells.join(",")
    }

    #[test]
    fn loads_rows_of_different_lengths_and_refuses_mismatches() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A daily cycle on a trend of 0.1 an hour.
        let daily = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| {
                    100.0
                        + 0.1 * i as f64
                        + 10.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin()
                })
                .collect()
        };
        let header = |n: usize| {
            (1..=n + 1)
                .map(|i| format!("\"V{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        };
        let train = format!(
            "{}\n{}\n{}\n",
            header(120),
            series_line("H1", &daily(120), 120),
            series_line("H2", &daily(96), 120)
        );
        let test = format!(
            "{}\n{}\n{}\n",
            header(48),
            series_line("H1", &daily(48), 48),
            series_line("H2", &daily(48), 48)
        );
        write(dir.path(), "Hourly-train.csv", &train);
        write(dir.path(), "Hourly-test.csv", &test);
        let s = load(dir.path()).expect("loads");
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].train.len(), s[1].train.len()), (120, 96));
        assert_eq!(s[1].test.len(), HORIZON);
        // Seasonal naive repeats the last day: 2.4 off for the first 24 hours, 4.8 for the
        // next 24, against an in-sample error of 2.4: MASE 1.5.
        let cfg = SelectConfig {
            candidates: vec![ModelKind::SeasonalNaive],
            ..SelectConfig::default()
        };
        let mut s0 = s[0].clone();
        s0.test = daily(120 + HORIZON)[120..].to_vec();
        let r = evaluate(&s0, &cfg).expect("evaluates");
        assert!((r.mase - 1.5).abs() < 1e-9, "{r:?}");
        assert!(r.smape > 0.0 && r.smape < 10.0, "{r:?}");
        let sum = summarize(&[r.clone(), r]).expect("summary");
        assert!((sum.owa - (sum.smape / NAIVE2_SMAPE + 1.5 / NAIVE2_MASE) / 2.0).abs() < 1e-12);
        assert!(summarize(&[]).is_none());
        // Ids out of step, a short test row and a bad number are clear errors.
        let refused = |test: String, why: &str| {
            write(dir.path(), "Hourly-test.csv", &test);
            let e = load(dir.path()).expect_err("refused").to_string();
            assert!(e.contains(why), "{e}");
        };
        let two = |a: (&str, usize), b: (&str, usize)| {
            format!(
                "{}\n{}\n{}\n",
                header(48),
                series_line(a.0, &daily(a.1), 48),
                series_line(b.0, &daily(b.1), 48)
            )
        };
        refused(two(("H2", 48), ("H1", 48)), "meets");
        refused(two(("H1", 47), ("H2", 48)), "47 test values");
        refused("\"V1\"\n\"H1\",\"x\"\n".into(), "line 2");
    }
}
