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
    /// Raw score of detecting nothing (`S_null`).
    pub null: f64,
    /// Raw score of detecting every window at its start (`S_perfect`).
    pub perfect: f64,
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

/// Scores one detector over the corpus at its best threshold (NAB's rule: the threshold is chosen
/// on the scored corpus itself, so this is an in-sample figure; see [`cross_validate`]).
/// `scores[f]` are the per-row scores of `corpus.files[f]`.
pub fn score(corpus: &Corpus, scores: &[Vec<f64>], profile: Profile) -> Result<NabScore, NabError> {
    let (rows, n_windows) = scored_rows(corpus, scores)?;
    Ok(sweep(rows, n_windows, profile, None))
}

/// Scores one detector over the corpus at a threshold chosen elsewhere.
pub fn score_at(
    corpus: &Corpus,
    scores: &[Vec<f64>],
    profile: Profile,
    threshold: f64,
) -> Result<NabScore, NabError> {
    let (rows, n_windows) = scored_rows(corpus, scores)?;
    Ok(sweep(rows, n_windows, profile, Some(threshold)))
}

/// Every post-probation row with its score and worth; the number of windows.
fn scored_rows(corpus: &Corpus, scores: &[Vec<f64>]) -> Result<(Vec<Row>, usize), NabError> {
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
    Ok((rows, n_windows))
}

/// The score at the best threshold (`fixed: None`) or at `fixed`.
fn sweep(mut rows: Vec<Row>, n_windows: usize, profile: Profile, fixed: Option<f64>) -> NabScore {
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
        if fixed.is_some_and(|t| theta < t) {
            break;
        }
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
        if fixed.is_none() && total > best.0 {
            best = (total, theta, tp_count, fp_count);
        }
    }
    if let Some(t) = fixed {
        best = (total, t, tp_count, fp_count);
    }
    let normalized = if s_perfect > s_null {
        100.0 * (best.0 - s_null) / (s_perfect - s_null)
    } else {
        0.0
    };
    NabScore {
        profile: profile.name,
        threshold: best.1,
        raw: best.0,
        normalized,
        true_positives: best.2,
        false_negatives: n_windows - best.2,
        false_positives: best.3,
        null: s_null,
        perfect: s_perfect,
    }
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

/// The category of a corpus file: the first part of its name (`realAWSCloudwatch`).
pub fn category(file: &NabFile) -> &str {
    file.name.split('/').next().unwrap_or(&file.name)
}

/// One held-out category of a cross-validation.
#[derive(Debug, Clone, Serialize)]
pub struct CvFold {
    /// The category scored.
    pub held_out: String,
    /// Its files.
    pub files: usize,
    /// Index of the candidate chosen on the other categories.
    pub candidate: usize,
    /// Its normalised score on the other categories at their best threshold.
    pub train_score: f64,
    /// The held-out category at the candidate and threshold chosen on the others.
    pub score: NabScore,
}

/// Leave-one-category-out for one profile.
#[derive(Debug, Clone, Serialize)]
pub struct CvReport {
    /// Profile name.
    pub profile: &'static str,
    /// One fold per category, in name order.
    pub folds: Vec<CvFold>,
    /// All held-out rows together: `100·(ΣS − ΣS_null)/(ΣS_perfect − ΣS_null)` over the folds.
    pub pooled: f64,
    /// Mean of the folds' normalised scores, over the folds that have windows.
    pub mean: f64,
    /// The in-sample figure beside it: candidate and threshold chosen on the whole corpus.
    pub in_sample: NabScore,
    /// The candidate chosen on the whole corpus.
    pub in_sample_candidate: usize,
}

/// Leave-one-category-out cross-validation of a choice among `candidates` (each: one score list
/// per corpus file, e.g. the detector run with one parameter set). For each category, the
/// candidate and its threshold are chosen on the other categories (best normalised score) and
/// the category is scored at that threshold; nothing about the held-out category is used.
pub fn cross_validate(
    corpus: &Corpus,
    candidates: &[Vec<Vec<f64>>],
    profile: Profile,
) -> Result<CvReport, NabError> {
    if candidates.is_empty() {
        return Err(NabError::Scores {
            file: "(none)".into(),
            reason: "no candidate to choose from".into(),
        });
    }
    let mut categories: Vec<&str> = corpus.files.iter().map(category).collect();
    categories.sort_unstable();
    categories.dedup();
    if categories.len() < 2 {
        return Err(NabError::Scores {
            file: categories.first().copied().unwrap_or("(none)").into(),
            reason: "cross-validation needs at least two categories".into(),
        });
    }
    // The best candidate on the files `keep` selects: (index, its score at its best threshold).
    let choose = |keep: &dyn Fn(&NabFile) -> bool| -> Result<(usize, NabScore), NabError> {
        let sub = subset(corpus, keep);
        let mut best: Option<(usize, NabScore)> = None;
        for (k, c) in candidates.iter().enumerate() {
            let s = score(&sub, &pick(corpus, c, keep), profile)?;
            if best
                .as_ref()
                .is_none_or(|(_, b)| s.normalized > b.normalized)
            {
                best = Some((k, s));
            }
        }
        best.ok_or_else(|| NabError::Scores {
            file: "(none)".into(),
            reason: "no candidate to choose from".into(),
        })
    };
    let mut folds = Vec::new();
    for held in &categories {
        let (k, train) = choose(&|f| category(f) != *held)?;
        let is_held = |f: &NabFile| category(f) == *held;
        let sub = subset(corpus, &is_held);
        let s = score_at(
            &sub,
            &pick(corpus, &candidates[k], &is_held),
            profile,
            train.threshold,
        )?;
        folds.push(CvFold {
            held_out: (*held).to_owned(),
            files: sub.files.len(),
            candidate: k,
            train_score: train.normalized,
            score: s,
        });
    }
    let (raw, null, perfect) = folds.iter().fold((0.0, 0.0, 0.0), |(r, n, p), f| {
        (r + f.score.raw, n + f.score.null, p + f.score.perfect)
    });
    let pooled = if perfect > null {
        100.0 * (raw - null) / (perfect - null)
    } else {
        0.0
    };
    let with_windows: Vec<f64> = folds
        .iter()
        .filter(|f| f.score.perfect > f.score.null)
        .map(|f| f.score.normalized)
        .collect();
    let mean = if with_windows.is_empty() {
        0.0
    } else {
        with_windows.iter().sum::<f64>() / with_windows.len() as f64
    };
    let (in_sample_candidate, in_sample) = choose(&|_| true)?;
    Ok(CvReport {
        profile: profile.name,
        folds,
        pooled,
        mean,
        in_sample,
        in_sample_candidate,
    })
}

fn subset(corpus: &Corpus, keep: &dyn Fn(&NabFile) -> bool) -> Corpus {
    Corpus {
        files: corpus.files.iter().filter(|f| keep(f)).cloned().collect(),
    }
}

fn pick(corpus: &Corpus, scores: &[Vec<f64>], keep: &dyn Fn(&NabFile) -> bool) -> Vec<Vec<f64>> {
    corpus
        .files
        .iter()
        .zip(scores)
        .filter(|(f, _)| keep(f))
        .map(|(_, s)| s.clone())
        .collect()
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

    #[test]
    fn a_fixed_threshold_scores_what_the_sweep_found_there() {
        let corpus = Corpus {
            files: vec![file(200, vec![(50, 59), (150, 159)])],
        };
        let mut s = vec![0.1; 200];
        s[52] = 0.9;
        s[100] = 0.6;
        s[155] = 0.5;
        for p in PROFILES {
            let best = score(&corpus, std::slice::from_ref(&s), p).expect("score");
            let at = score_at(&corpus, std::slice::from_ref(&s), p, best.threshold).expect("at");
            assert_eq!(best, at);
            // Above every score nothing is detected: the null score.
            let none = score_at(&corpus, std::slice::from_ref(&s), p, 2.0).expect("none");
            assert_eq!((none.normalized, none.false_negatives), (0.0, 2));
        }
    }

    #[test]
    fn cross_validation_chooses_on_the_other_categories_only() {
        let named = |name: &str| NabFile {
            name: name.into(),
            ..file(100, vec![(50, 59)])
        };
        let corpus = Corpus {
            files: vec![named("a/1.csv"), named("b/1.csv")],
        };
        // In a, the window scores 0.9; in b only 0.3, below b's false alarms at 0.5.
        let mut a = vec![0.1; 100];
        a[50] = 0.9;
        let mut b = vec![0.1; 100];
        b[50] = 0.3;
        b[80] = 0.5;
        let r = cross_validate(&corpus, &[vec![a, b]], PROFILES[0]).expect("cv");
        assert_eq!(r.folds.len(), 2);
        let fb = &r.folds[1];
        assert_eq!(fb.held_out, "b");
        // b is scored at a's threshold (0.9): nothing detected there.
        assert_eq!(fb.score.threshold, 0.9);
        assert_eq!((fb.score.true_positives, fb.score.false_negatives), (0, 1));
        // a at b's best threshold (0.3) catches its window, with no false alarm.
        assert_eq!(r.folds[0].score.threshold, 0.3);
        assert!((r.folds[0].score.normalized - 100.0).abs() < 1e-9);
        // The in-sample figure chooses one threshold for both and is above the held-out one.
        assert!(r.in_sample.normalized > r.pooled, "{r:?}");
        assert!((r.mean - 50.0).abs() < 1e-9, "{r:?}");
        // One category is not enough, nor are zero candidates.
        let one = Corpus {
            files: vec![named("a/1.csv")],
        };
        assert!(cross_validate(&one, &[vec![vec![0.0; 100]]], PROFILES[0]).is_err());
        assert!(cross_validate(&corpus, &[], PROFILES[0]).is_err());
    }
}
