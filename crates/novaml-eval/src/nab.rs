//! The NAB v1.1 scorer, implemented from the rules in `shared/data/README.md` and checked against
//! the published detectors' scores (`EXPECTED_SCORES.md`) to ±0.01.
//!
//! Rules, in short: the first `P = min(⌊0.15·N⌋, 750)` rows of a file are ignored; a row is a
//! detection when its score ≥ θ, one θ per detector and profile for the whole corpus, chosen by
//! sweeping the distinct scores for the highest total raw score (ties: the highest θ). A window's
//! earliest detection earns `A_TP·σ(p)/σ(−1)` with `p = −(R − i + 1)/W`; a window without one costs
//! `A_FN`; a detection outside windows costs `A_FP` before the first window, and `−A_FP·σ(p)` with
//! `p = (i − R′)/(W′ − 1)` after a window, where `σ(p) = 2/(1 + e^{5p}) − 1` (and −1 for `p > 3`).
//! Normalised: `100·(S − S_null)/(S_perfect − S_null)`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::Serialize;

/// Errors of loading a NAB corpus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NabError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The label file is not NAB's `combined_windows.json`.
    #[error("invalid labels {path}: {reason}")]
    Labels {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A data file does not have NAB's `timestamp,value` layout.
    #[error("invalid data file {path} at line {line}: {reason}")]
    Data {
        /// The path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Scores do not line up with the corpus.
    #[error("scores for {file}: {reason}")]
    Scores {
        /// The corpus file (relative name).
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// A cost profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Profile {
    /// NAB's name for it.
    pub name: &'static str,
    /// Reward of a true positive.
    pub a_tp: f64,
    /// Cost of a false positive.
    pub a_fp: f64,
    /// Cost of a missed window.
    pub a_fn: f64,
}

/// NAB's three profiles.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        a_tp: 1.0,
        a_fp: 0.11,
        a_fn: 1.0,
    },
    Profile {
        name: "reward_low_FP_rate",
        a_tp: 1.0,
        a_fp: 0.22,
        a_fn: 1.0,
    },
    Profile {
        name: "reward_low_FN_rate",
        a_tp: 1.0,
        a_fp: 0.11,
        a_fn: 2.0,
    },
];

/// One data file of the corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct NabFile {
    /// Name relative to the data directory, e.g. `realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv`.
    pub name: String,
    /// Row timestamps, ms (UTC).
    pub timestamps: Vec<i64>,
    /// Row values.
    pub values: Vec<f64>,
    /// Anomaly windows as inclusive row ranges.
    pub windows: Vec<(usize, usize)>,
}

impl NabFile {
    /// Rows ignored at the start.
    pub fn probation(&self) -> usize {
        probation(self.timestamps.len())
    }
}

/// `min(⌊0.15·N⌋, 750)`.
pub fn probation(n: usize) -> usize {
    ((0.15 * n as f64).floor() as usize).min(750)
}

/// The labelled corpus: every data file that has an entry in the labels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Corpus {
    /// Files, sorted by name.
    pub files: Vec<NabFile>,
}

fn parse_ts(s: &str) -> Option<i64> {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S"))
        .ok()
        .map(|d| d.and_utc().timestamp_millis())
}

impl Corpus {
    /// Checks that `scores` hold one list per file with one score per row.
    pub fn check_scores(&self, scores: &[Vec<f64>]) -> Result<(), NabError> {
        if scores.len() != self.files.len() {
            return Err(NabError::Scores {
                file: String::new(),
                reason: format!(
                    "{} score lists for {} files",
                    scores.len(),
                    self.files.len()
                ),
            });
        }
        for (file, s) in self.files.iter().zip(scores) {
            if s.len() != file.timestamps.len() {
                return Err(NabError::Scores {
                    file: file.name.clone(),
                    reason: format!("{} scores for {} rows", s.len(), file.timestamps.len()),
                });
            }
        }
        Ok(())
    }

    /// Loads `<dir>/data/**.csv` whose names appear in `<dir>/labels/combined_windows.json`.
    pub fn load(dir: &Path) -> Result<Self, NabError> {
        let labels_path = dir.join("labels/combined_windows.json");
        let text = std::fs::read_to_string(&labels_path).map_err(|source| NabError::Io {
            path: labels_path.clone(),
            source,
        })?;
        let labels: BTreeMap<String, Vec<Vec<String>>> =
            serde_json::from_str(&text).map_err(|e| NabError::Labels {
                path: labels_path.clone(),
                reason: e.to_string(),
            })?;
        let mut files = Vec::new();
        for (name, windows) in labels {
            let path = dir.join("data").join(&name);
            if !path.is_file() {
                continue; // labels cover the full benchmark; this corpus may hold part of it
            }
            let text = std::fs::read_to_string(&path).map_err(|source| NabError::Io {
                path: path.clone(),
                source,
            })?;
            let (mut timestamps, mut values) = (Vec::new(), Vec::new());
            for (i, line) in text.lines().enumerate().skip(1) {
                if line.trim().is_empty() {
                    continue;
                }
                let bad = |reason: &str| NabError::Data {
                    path: path.clone(),
                    line: i + 1,
                    reason: reason.into(),
                };
                let (t, v) = line
                    .split_once(',')
                    .ok_or_else(|| bad("expected timestamp,value"))?;
                timestamps.push(parse_ts(t).ok_or_else(|| bad("bad timestamp"))?);
                values.push(v.trim().parse().map_err(|_| bad("bad value"))?);
            }
            let mut rows = Vec::new();
            for w in windows {
                let [start, end] = w.as_slice() else {
                    return Err(NabError::Labels {
                        path: labels_path.clone(),
                        reason: format!("{name}: a window is not [start, end]"),
                    });
                };
                let (Some(s), Some(e)) = (parse_ts(start), parse_ts(end)) else {
                    return Err(NabError::Labels {
                        path: labels_path.clone(),
                        reason: format!("{name}: bad window time"),
                    });
                };
                // Windows are inclusive and start/end on row timestamps.
                let first = timestamps.partition_point(|&t| t < s);
                let last = timestamps.partition_point(|&t| t <= e);
                if last > first {
                    rows.push((first, last - 1));
                }
            }
            files.push(NabFile {
                name,
                timestamps,
                values,
                windows: rows,
            });
        }
        Ok(Self { files })
    }
}

/// `σ(p) = 2/(1 + e^{5p}) − 1`.
fn sigmoid(p: f64) -> f64 {
    2.0 / (1.0 + (5.0 * p).exp()) - 1.0
}

/// What scoring a detector gave, for one profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NabScore {
    /// Profile name.
    pub profile: &'static str,
    /// The chosen threshold (`+∞` when no threshold beats detecting nothing).
    pub threshold: f64,
    /// Total raw score at that threshold.
    pub raw: f64,
    /// `100·(S − S_null)/(S_perfect − S_null)`.
    pub normalized: f64,
    /// Windows with a detection.
    pub true_positives: usize,
    /// Windows without one.
    pub false_negatives: usize,
    /// Detections outside windows.
    pub false_positives: usize,
}

/// One scored row: its anomaly score and what detecting it is worth.
#[derive(Debug, Clone, Copy)]
struct Row {
    score: f64,
    /// Index of the window it lies in (corpus-wide), or none.
    window: Option<usize>,
    /// TP weight inside a window (unscaled by A_TP), FP weight factor outside (≤ 0, times A_FP).
    weight: f64,
}

/// Scores one detector over the corpus. `scores[f]` are the per-row scores of `corpus.files[f]`.
pub fn score(corpus: &Corpus, scores: &[Vec<f64>], profile: Profile) -> Result<NabScore, NabError> {
    corpus.check_scores(scores)?;
    let max_tp = sigmoid(-1.0);
    let mut rows: Vec<Row> = Vec::new();
    let mut n_windows = 0usize;
    for (file, s) in corpus.files.iter().zip(scores) {
        let p = file.probation();
        // `wi`: the first window not yet ended; `prev`: (end row, width) of the last one ended.
        let mut wi = 0usize;
        let mut prev: Option<(usize, usize)> = None;
        let mut counted: Vec<Option<usize>> = vec![None; file.windows.len()];
        for (i, &row_score) in s.iter().enumerate() {
            while wi < file.windows.len() && file.windows[wi].1 < i {
                let (s0, e0) = file.windows[wi];
                prev = Some((e0, e0 - s0 + 1));
                wi += 1;
            }
            let inside = file
                .windows
                .get(wi)
                .filter(|(s0, e0)| *s0 <= i && i <= *e0)
                .map(|&(s0, e0)| (wi, s0, e0));
            if i < p {
                continue;
            }
            let row = match inside {
                Some((k, s0, e0)) => {
                    let width = (e0 - s0 + 1) as f64;
                    let pos = -((e0 - i + 1) as f64) / width;
                    let id = *counted[k].get_or_insert_with(|| {
                        n_windows += 1;
                        n_windows - 1
                    });
                    Row {
                        score: row_score,
                        window: Some(id),
                        weight: sigmoid(pos) / max_tp,
                    }
                }
                None => {
                    let w = match prev {
                        None => -1.0,
                        Some((end, width)) => {
                            let pos = (i - end) as f64 / (width as f64 - 1.0);
                            if pos > 3.0 { -1.0 } else { sigmoid(pos) }
                        }
                    };
                    Row {
                        score: row_score,
                        window: None,
                        weight: w,
                    }
                }
            };
            rows.push(row);
        }
    }
    // Sweep thresholds from above the maximum down through the distinct scores.
    rows.sort_by(|a, b| b.score.total_cmp(&a.score));
    let s_null = -profile.a_fn * n_windows as f64;
    let s_perfect = profile.a_tp * n_windows as f64;
    let mut best_in_window: Vec<Option<f64>> = vec![None; n_windows];
    let mut total = s_null;
    let (mut fp_count, mut tp_count) = (0usize, 0usize);
    let mut best = (s_null, f64::INFINITY, 0usize, 0usize);
    let mut i = 0;
    while i < rows.len() {
        let theta = rows[i].score;
        while i < rows.len() && rows[i].score == theta {
            let r = rows[i];
            match r.window {
                Some(w) => {
                    let v = profile.a_tp * r.weight;
                    match best_in_window[w] {
                        None => {
                            total += v + profile.a_fn;
                            tp_count += 1;
                            best_in_window[w] = Some(v);
                        }
                        Some(old) if v > old => {
                            total += v - old;
                            best_in_window[w] = Some(v);
                        }
                        Some(_) => {}
                    }
                }
                None => {
                    total += profile.a_fp * r.weight;
                    fp_count += 1;
                }
            }
            i += 1;
        }
        // Ties go to the highest threshold: replace only when strictly better.
        if total > best.0 {
            best = (total, theta, tp_count, fp_count);
        }
    }
    let normalized = if s_perfect > s_null {
        100.0 * (best.0 - s_null) / (s_perfect - s_null)
    } else {
        0.0
    };
    Ok(NabScore {
        profile: profile.name,
        threshold: best.1,
        raw: best.0,
        normalized,
        true_positives: best.2,
        false_negatives: n_windows - best.2,
        false_positives: best.3,
    })
}

/// Point-wise rates at a fixed threshold, over post-probation rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointRates {
    /// The threshold: a row is flagged when its score ≥ this.
    pub threshold: f64,
    /// Flagged rows outside windows / rows outside windows.
    pub false_positive_rate: f64,
    /// Flagged rows inside windows / rows inside windows.
    pub point_recall: f64,
    /// Windows with at least one flagged row / windows.
    pub window_recall: f64,
}

/// Point-wise false-positive rate and recall of a detector at `threshold`.
pub fn point_rates(
    corpus: &Corpus,
    scores: &[Vec<f64>],
    threshold: f64,
) -> Result<PointRates, NabError> {
    corpus.check_scores(scores)?;
    let (mut out_rows, mut out_flag, mut in_rows, mut in_flag, mut windows, mut hit) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for (file, s) in corpus.files.iter().zip(scores) {
        let p = file.probation();
        let mut inside = vec![false; s.len()];
        for &(a, b) in &file.windows {
            if b < p {
                continue;
            }
            windows += 1;
            hit += u64::from((a.max(p)..=b).any(|i| s[i] >= threshold));
            for flag in &mut inside[a..=b] {
                *flag = true;
            }
        }
        for i in p..s.len() {
            let flagged = u64::from(s[i] >= threshold);
            if inside[i] {
                in_rows += 1;
                in_flag += flagged;
            } else {
                out_rows += 1;
                out_flag += flagged;
            }
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(PointRates {
        threshold,
        false_positive_rate: ratio(out_flag, out_rows),
        point_recall: ratio(in_flag, in_rows),
        window_recall: ratio(hit, windows),
    })
}

/// A detector's run over the corpus, scored.
#[derive(Debug, Clone, Serialize)]
pub struct NabRun {
    /// Each file's scores, in corpus order.
    #[serde(skip)]
    pub scores: Vec<Vec<f64>>,
    /// The normalised score for each profile.
    pub profiles: Vec<NabScore>,
    /// Point-wise rates at the detector's own threshold.
    pub default_operating_point: PointRates,
}

/// Runs the streaming detector with `params` over every file of the corpus (a fresh detector
/// per file; each score uses only earlier rows), then scores it with every profile of
/// [`PROFILES`] and at `threshold`. `on_file` sees each file's index before it is scored.
pub fn run_streaming(
    corpus: &Corpus,
    params: &novaml_anomaly::streaming::ValidStreamingParams,
    threshold: f64,
    on_file: &mut dyn FnMut(usize),
) -> Result<NabRun, NabError> {
    let scores: Vec<Vec<f64>> = corpus
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            on_file(i);
            novaml_anomaly::streaming::StreamingDetector::score_series(params.clone(), &f.values)
        })
        .collect();
    let profiles = PROFILES
        .iter()
        .map(|p| score(corpus, &scores, *p))
        .collect::<Result<_, _>>()?;
    let default_operating_point = point_rates(corpus, &scores, threshold)?;
    Ok(NabRun {
        scores,
        profiles,
        default_operating_point,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_rates_count_rows_and_windows() {
        // 100 rows, probation 15, window 50..=59; flags at 20 (outside), 55, 56 (inside).
        let corpus = Corpus {
            files: vec![file(100, vec![(50, 59)])],
        };
        let mut s = vec![0.0; 100];
        for i in [3, 20, 55, 56] {
            s[i] = 1.0;
        }
        let r = point_rates(&corpus, &[s], 0.5).expect("rates");
        assert!((r.false_positive_rate - 1.0 / 75.0).abs() < 1e-12, "{r:?}");
        assert!((r.point_recall - 0.2).abs() < 1e-12);
        assert_eq!(r.window_recall, 1.0);
    }

    fn file(n: usize, windows: Vec<(usize, usize)>) -> NabFile {
        NabFile {
            name: "f".into(),
            timestamps: (0..n as i64).collect(),
            values: vec![0.0; n],
            windows,
        }
    }

    #[test]
    fn sigmoid_and_probation() {
        assert!((sigmoid(0.0)).abs() < 1e-12);
        assert!((sigmoid(-1.0) - 0.986_614_298_151_430_3).abs() < 1e-12);
        assert_eq!(probation(100), 15);
        assert_eq!(probation(10_000), 750);
    }

    #[test]
    fn perfect_null_and_early_beats_late() {
        // 100 rows, probation 15, one window at rows 50..=59.
        let corpus = Corpus {
            files: vec![file(100, vec![(50, 59)])],
        };
        let std = PROFILES[0];
        let none = score(&corpus, &[vec![0.0; 100]], std).expect("score");
        assert_eq!((none.normalized, none.false_negatives), (0.0, 1));
        let mut first = vec![0.0; 100];
        first[50] = 1.0;
        let s = score(&corpus, &[first], std).expect("score");
        assert!((s.normalized - 100.0).abs() < 1e-9, "{s:?}");
        let mut late = vec![0.0; 100];
        late[59] = 1.0;
        let l = score(&corpus, &[late], std).expect("score");
        assert!(l.normalized > 50.0 && l.normalized < 100.0, "{l:?}");
        // A false positive right after the window costs little, one long after costs A_FP.
        let mut fp = vec![0.0; 100];
        fp[50] = 1.0;
        fp[99] = 1.0;
        let f = score(&corpus, &[fp], std).expect("score");
        assert!((f.raw - (1.0 - 0.11)).abs() < 1e-9, "{f:?}");
        // Detections in probation are ignored.
        let mut prob = vec![0.0; 100];
        prob[3] = 1.0;
        prob[50] = 1.0;
        assert!((score(&corpus, &[prob], std).expect("score").normalized - 100.0).abs() < 1e-9);
    }
}
