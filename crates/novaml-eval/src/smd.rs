//! The Server Machine Dataset (SMD, Su et al., KDD 2019): real servers' 38 metrics per minute
//! with labelled incidents and the metrics that explain each (`../shared/data/smd`).
//!
//! - [`Machine::load`]/[`load_dir`]: the files as published there (`machine-X-Y.train.csv.gz`,
//!   `machine-X-Y.test.csv.gz` with `label`, `interpretation_label/machine-X-Y.txt`);
//! - [`score`]: the scoring rules of the data's `README.md`, ported from its `score.py` (the
//!   reference; a test checks that both give the same figures on the same files): event-wise F1
//!   at the detector's own alerts and at the oracle threshold (per machine and one for all),
//!   average precision (scikit-learn's definition), point-adjusted F1, HitRate@100/150 %;
//! - [`Scores`]: one machine's `score`, `alert`, `top` per test row, written and read as the CSV
//!   files `score.py` reads;
//! - [`run_machine`]: our multivariate detector per machine: fed the train half (learning only), then
//!   each test row in order (scores, own alerts, metrics ranked by deviation as `top`).

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use novaml_anomaly::multivariate::{Combine, EntityScorer, MultivariateParams};
use novaml_anomaly::streaming::Suppressor;
use novaml_anomaly::streaming::ValidStreamingParams;
use serde::Serialize;

/// Rows before and after a segment in which an alert is explained (neither detected nor false).
pub const TOL: usize = 60;
/// A run of false-alarm rows counts once per started window of this many rows.
pub const FA_WINDOW: usize = 60;

/// Errors of loading SMD files or score files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmdError {
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not in the expected layout.
    #[error("{path} line {line}: {reason}")]
    Format {
        /// The path.
        path: PathBuf,
        /// 1-based line (0: the file as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The detector refused its input.
    #[error("machine {machine}: {source}")]
    Detector {
        /// The machine.
        machine: String,
        /// Why.
        source: novaml_anomaly::AnomalyError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SmdError + '_ {
    move |source| SmdError::Io {
        path: path.to_owned(),
        source,
    }
}

fn format_err(path: &Path, line: usize, reason: impl Into<String>) -> SmdError {
    SmdError::Format {
        path: path.to_owned(),
        line,
        reason: reason.into(),
    }
}

/// A text file's lines, gunzipped when its name ends in `.gz`.
fn lines(path: &Path) -> Result<Vec<String>, SmdError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let reader: Box<dyn std::io::Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    BufReader::new(reader)
        .lines()
        .collect::<Result<Vec<_>, _>>()
        .map_err(io(path))
}

/// One machine's labels as the scorer needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// `machine-X-Y`.
    pub name: String,
    /// 1 for anomalous test rows.
    pub label: Vec<bool>,
    /// Interpretation entries: test rows `start..end` (end exclusive) and their 1-based metrics.
    pub interpretation: Vec<(usize, usize, Vec<usize>)>,
}

/// One machine: its train and test rows (38 metrics each) and its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// Train rows (unlabelled, treated as normal).
    pub train: Vec<Vec<f64>>,
    /// Test rows.
    pub test: Vec<Vec<f64>>,
    /// Labels of the test rows.
    pub labels: Labels,
}

/// Reads `t,m01..,mNN[,label]` rows: the metrics, and the labels when `labelled`.
fn read_rows(path: &Path, labelled: bool) -> Result<(Vec<Vec<f64>>, Vec<bool>), SmdError> {
    let text = lines(path)?;
    let header = text
        .first()
        .ok_or_else(|| format_err(path, 0, "the file is empty"))?;
    let cols: Vec<&str> = header.split(',').collect();
    let metrics = cols.iter().filter(|c| c.starts_with('m')).count();
    let want_cols = 1 + metrics + usize::from(labelled);
    if cols.first() != Some(&"t") || metrics == 0 || cols.len() != want_cols {
        return Err(format_err(
            path,
            1,
            format!(
                "expected the header t,m01,..{}, found {header:?}",
                if labelled { ",label" } else { "" }
            ),
        ));
    }
    let mut rows = Vec::with_capacity(text.len());
    let mut label = Vec::new();
    for (i, line) in text.iter().enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != want_cols {
            return Err(format_err(
                path,
                i + 1,
                format!("{} fields, expected {want_cols}", fields.len()),
            ));
        }
        let row = fields[1..=metrics]
            .iter()
            .map(|f| {
                f.trim()
                    .parse::<f64>()
                    .map_err(|_| format_err(path, i + 1, format!("{f:?} is not a number")))
            })
            .collect::<Result<Vec<f64>, _>>()?;
        rows.push(row);
        if labelled {
            match fields[want_cols - 1].trim() {
                "0" => label.push(false),
                "1" => label.push(true),
                other => {
                    return Err(format_err(
                        path,
                        i + 1,
                        format!("label {other:?} is not 0 or 1"),
                    ));
                }
            }
        }
    }
    Ok((rows, label))
}

/// Reads `start-end:d1,d2,..` lines.
fn read_interpretation(path: &Path) -> Result<Vec<(usize, usize, Vec<usize>)>, SmdError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (i, line) in lines(path)?.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = || format_err(path, i + 1, format!("{line:?} is not start-end:d1,d2,.."));
        let (range, dims) = line.split_once(':').ok_or_else(bad)?;
        let (a, b) = range.split_once('-').ok_or_else(bad)?;
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        let dims = dims
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.parse::<usize>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        out.push((a, b, dims));
    }
    Ok(out)
}

impl Machine {
    /// Loads machine `name` (e.g. `machine-1-2`) from `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<Self, SmdError> {
        let (train, _) = read_rows(&dir.join(format!("{name}.train.csv.gz")), false)?;
        let labels = Labels::load(dir, name)?;
        let test_path = dir.join(format!("{name}.test.csv.gz"));
        let (test, _) = read_rows(&test_path, true)?;
        if train.first().map(Vec::len) != test.first().map(Vec::len) {
            return Err(format_err(
                &test_path,
                0,
                "train and test have different metric counts",
            ));
        }
        Ok(Self {
            train,
            test,
            labels,
        })
    }
}

impl Labels {
    /// Loads the test labels and interpretation of machine `name` from `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<Self, SmdError> {
        let (_, label) = read_rows(&dir.join(format!("{name}.test.csv.gz")), true)?;
        let interpretation =
            read_interpretation(&dir.join("interpretation_label").join(format!("{name}.txt")))?;
        Ok(Self {
            name: name.to_owned(),
            label,
            interpretation,
        })
    }
}

/// The machines of `dir` (`machine-*.test.csv.gz`), ordered by group and index as `score.py`
/// orders them.
pub fn machine_names(dir: &Path) -> Result<Vec<String>, SmdError> {
    let mut names: Vec<(Vec<u32>, String)> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let f = e.file_name().to_str()?.to_owned();
            let name = f.strip_suffix(".test.csv.gz")?.to_owned();
            let key = name
                .strip_prefix("machine-")?
                .split('-')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((key, name))
        })
        .collect();
    names.sort();
    Ok(names.into_iter().map(|(_, n)| n).collect())
}

/// Every machine of `dir`.
pub fn load_dir(dir: &Path) -> Result<Vec<Machine>, SmdError> {
    machine_names(dir)?
        .iter()
        .map(|n| Machine::load(dir, n))
        .collect()
}

/// One machine's detector output, one entry per test row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scores {
    /// Higher is more anomalous; NaN for no score (scored as the lowest).
    pub score: Vec<f64>,
    /// The detector's own decisions.
    pub alert: Option<Vec<bool>>,
    /// 1-based metric numbers, most likely root cause first.
    pub top: Option<Vec<Vec<usize>>>,
}

impl Scores {
    /// Writes `score[,alert][,top]` as CSV (the format `score.py` reads).
    pub fn write_csv(&self, path: &Path) -> Result<(), SmdError> {
        let file = std::fs::File::create(path).map_err(io(path))?;
        let mut w = std::io::BufWriter::new(file);
        let mut header = String::from("score");
        if self.alert.is_some() {
            header.push_str(",alert");
        }
        if self.top.is_some() {
            header.push_str(",top");
        }
        writeln!(w, "{header}").map_err(io(path))?;
        for i in 0..self.score.len() {
            let s = self.score[i];
            if s.is_finite() {
                write!(w, "{s}").map_err(io(path))?;
            } else {
                write!(w, "nan").map_err(io(path))?;
            }
            if let Some(a) = &self.alert {
                write!(w, ",{}", u8::from(a.get(i).copied().unwrap_or(false))).map_err(io(path))?;
            }
            if let Some(t) = &self.top {
                let cell: Vec<String> = t
                    .get(i)
                    .map(|v| v.iter().map(ToString::to_string).collect())
                    .unwrap_or_default();
                write!(w, ",{}", cell.join(";")).map_err(io(path))?;
            }
            writeln!(w).map_err(io(path))?;
        }
        w.flush().map_err(io(path))
    }

    /// Reads a score file (`machine-X-Y.csv`): a `score` column, optional `alert` and `top`,
    /// read as `score.py` reads them (an unreadable score is NaN, an unreadable alert 0).
    pub fn read_csv(path: &Path) -> Result<Self, SmdError> {
        let text = lines(path)?;
        let header = text
            .first()
            .ok_or_else(|| format_err(path, 0, "the file is empty"))?;
        let cols: Vec<&str> = header.split(',').map(str::trim).collect();
        let at = |name: &str| cols.iter().position(|c| *c == name);
        let score_col = at("score").ok_or_else(|| format_err(path, 1, "no `score` column"))?;
        let (alert_col, top_col) = (at("alert"), at("top"));
        let mut out = Scores {
            score: Vec::new(),
            alert: alert_col.map(|_| Vec::new()),
            top: top_col.map(|_| Vec::new()),
        };
        for line in text.iter().skip(1) {
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').collect();
            let field = |c: usize| fields.get(c).map_or("", |f| f.trim());
            out.score
                .push(field(score_col).parse::<f64>().unwrap_or(f64::NAN));
            if let (Some(c), Some(a)) = (alert_col, out.alert.as_mut()) {
                a.push(field(c).parse::<f64>().is_ok_and(|v| v > 0.0));
            }
            if let (Some(c), Some(t)) = (top_col, out.top.as_mut()) {
                t.push(
                    field(c)
                        .split([';', ' '])
                        .filter_map(|x| x.trim().parse::<f64>().ok())
                        .map(|x| x as usize)
                        .collect(),
                );
            }
        }
        Ok(out)
    }
}

/// Maximal runs of `true`: `(start, end)` with `end` inclusive.
fn runs(mask: impl IntoIterator<Item = bool>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut n = 0;
    for (i, m) in mask.into_iter().enumerate() {
        match (m, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
        n = i + 1;
    }
    if let Some(s) = start {
        out.push((s, n - 1));
    }
    out
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// `(precision, recall, F1)` of `tp` detected out of `positives` with `fp` false ones.
fn prf(tp: f64, fp: f64, positives: f64) -> (f64, f64, f64) {
    let p = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let r = if positives > 0.0 { tp / positives } else { 0.0 };
    (p, r, f1(p, r))
}

/// Average precision as scikit-learn's `average_precision_score`: the sum over distinct score
/// thresholds (highest first) of the recall gained times the precision there.
pub fn average_precision(label: &[bool], score: &[f64]) -> f64 {
    let positives = label.iter().filter(|&&l| l).count();
    if positives == 0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let (mut tp, mut fp, mut ap, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let s = score[order[i]];
        while i < order.len() && score[order[i]] == s {
            if label[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let recall = tp as f64 / positives as f64;
        ap += (recall - last_recall) * tp as f64 / (tp + fp) as f64;
        last_recall = recall;
    }
    ap
}

/// One machine prepared for the threshold sweeps.
struct Prepared<'a> {
    s: Vec<f64>,
    segments: Vec<(usize, usize)>,
    explained: Vec<bool>,
    /// Highest score inside each segment.
    segmax: Vec<f64>,
    positives: usize,
    /// Scores of the label-0 rows, ascending.
    negatives: Vec<f64>,
    labels: &'a Labels,
}

impl<'a> Prepared<'a> {
    fn new(labels: &'a Labels, score: &[f64]) -> Self {
        let lowest = score
            .iter()
            .copied()
            .filter(|s| s.is_finite())
            .fold(f64::INFINITY, f64::min);
        let low = if lowest.is_finite() {
            lowest - 1.0
        } else {
            0.0
        };
        let s: Vec<f64> = score
            .iter()
            .map(|&x| if x.is_finite() { x } else { low })
            .collect();
        let n = labels.label.len();
        let segments = runs(labels.label.iter().copied());
        let mut explained = vec![false; n];
        for &(a, b) in &segments {
            for e in &mut explained[a.saturating_sub(TOL)..(b + TOL + 1).min(n)] {
                *e = true;
            }
        }
        let segmax = segments
            .iter()
            .map(|&(a, b)| s[a..=b].iter().copied().fold(f64::NEG_INFINITY, f64::max))
            .collect();
        let mut negatives: Vec<f64> = s
            .iter()
            .zip(&labels.label)
            .filter(|(_, l)| !**l)
            .map(|(x, _)| *x)
            .collect();
        negatives.sort_by(f64::total_cmp);
        Self {
            s,
            positives: labels.label.iter().filter(|&&l| l).count(),
            segments,
            explained,
            segmax,
            negatives,
            labels,
        }
    }

    /// False alarms of `alert`: each run of unexplained alert rows counts once per started hour.
    fn false_alarms(&self, alert: impl Fn(usize) -> bool) -> usize {
        runs((0..self.s.len()).map(|i| alert(i) && !self.explained[i]))
            .iter()
            .map(|&(a, b)| (b - a + 1).div_ceil(FA_WINDOW))
            .sum()
    }

    /// `(detected segments, false alarms)` at `alert = score >= thr`.
    fn event_counts(&self, thr: f64) -> (usize, usize) {
        let tp = self.segmax.iter().filter(|&&m| m >= thr).count();
        (tp, self.false_alarms(|i| self.s[i] >= thr))
    }

    /// `(detected segments, false alarms)` at the given alerts.
    fn alert_counts(&self, alert: &[bool]) -> (usize, usize) {
        let tp = self
            .segments
            .iter()
            .filter(|&&(a, b)| alert[a..=b].iter().any(|&x| x))
            .count();
        (tp, self.false_alarms(|i| alert[i]))
    }

    /// `(TP rows after point adjustment, FP rows)` at `alert = score >= thr`.
    fn pa_counts(&self, thr: f64) -> (usize, usize) {
        let tp = self
            .segments
            .iter()
            .zip(&self.segmax)
            .filter(|(_, m)| **m >= thr)
            .map(|(&(a, b), _)| b - a + 1)
            .sum();
        let fp = self.negatives.len() - self.negatives.partition_point(|&x| x < thr);
        (tp, fp)
    }

    /// HitRate sums at 100 and 150 % and the rows counted.
    fn hitrates(&self, top: &[Vec<usize>]) -> (f64, f64, usize) {
        let mut gt: HashMap<usize, BTreeSet<usize>> = HashMap::new();
        let n = self.labels.label.len();
        for (a, b, dims) in &self.labels.interpretation {
            for i in *a..(*b).min(n) {
                if self.labels.label[i] {
                    gt.entry(i).or_default().extend(dims.iter().copied());
                }
            }
        }
        let (mut h100, mut h150, mut rows) = (0.0, 0.0, 0);
        for (i, g) in &gt {
            if g.is_empty() {
                continue;
            }
            let ranked = top.get(*i).map_or(&[][..], Vec::as_slice);
            let size = g.len();
            let hit = |pct: usize| {
                let k = pct * size / 100;
                let found: BTreeSet<usize> = ranked.iter().take(k).copied().collect();
                g.intersection(&found).count() as f64 / size as f64
            };
            h100 += hit(100);
            h150 += hit(150);
            rows += 1;
        }
        (h100, h150, rows)
    }
}

/// The sorted distinct values of `v` followed by +∞ (the thresholds `score.py` sweeps).
fn thresholds(v: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut t: Vec<f64> = v.into_iter().collect();
    t.sort_by(f64::total_cmp);
    t.dedup();
    t.push(f64::INFINITY);
    t
}

/// The index of the first maximum (numpy's `argmax`).
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// One machine's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineReport {
    /// `machine-X-Y`.
    pub machine: String,
    /// Test rows.
    pub rows: usize,
    /// Labelled segments.
    pub segments: usize,
    /// Average precision (NaN without anomalies).
    pub auc_pr: f64,
    /// Best event F1 over thresholds, its precision, recall, threshold and false alarms.
    pub best_event_f1: f64,
    /// Precision there.
    pub best_event_p: f64,
    /// Recall there.
    pub best_event_r: f64,
    /// The threshold.
    pub best_event_thr: f64,
    /// False alarms there.
    pub best_event_false_alarms: usize,
    /// Best point-adjusted F1 (optimistic; for comparison with papers).
    pub pa_f1: f64,
    /// At the detector's own alerts (when its files have them).
    #[serde(flatten)]
    pub own: Option<OwnAlerts>,
    /// Root-cause ranking (when its files have `top`; NaN without interpreted rows).
    #[serde(flatten)]
    pub hitrates: Option<HitRates>,
}

/// Figures over all machines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overall {
    /// Machines.
    pub machines: usize,
    /// Labelled segments.
    pub segments: usize,
    /// Event F1 at one threshold for all machines (counts summed), with P, R, false alarms.
    pub event_f1_global: f64,
    /// Precision there.
    pub event_p_global: f64,
    /// Recall there.
    pub event_r_global: f64,
    /// False alarms there.
    pub event_false_alarms_global: usize,
    /// Mean over machines of their best event F1.
    pub event_f1_per_machine_mean: f64,
    /// Mean over machines of the average precision.
    pub auc_pr_mean: f64,
    /// Average precision of all rows pooled.
    pub auc_pr_pooled: f64,
    /// Point-adjusted F1 at one threshold for all machines.
    pub pa_f1_global: f64,
    /// At the own alerts, counts summed over machines (when every machine has alerts).
    #[serde(flatten)]
    pub own: Option<OwnAlerts>,
    /// Over every interpreted anomalous row (when every machine has `top`).
    #[serde(flatten)]
    pub hitrates: Option<HitRates>,
}

/// Event-wise figures at a detector's own alerts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OwnAlerts {
    /// Event F1.
    pub alert_event_f1: f64,
    /// Precision.
    pub alert_event_p: f64,
    /// Recall.
    pub alert_event_r: f64,
    /// False alarms.
    pub alert_false_alarms: usize,
}

impl OwnAlerts {
    fn of(detected: usize, false_alarms: usize, segments: usize) -> Self {
        let (p, r, f) = prf(detected as f64, false_alarms as f64, segments as f64);
        Self {
            alert_event_f1: f,
            alert_event_p: p,
            alert_event_r: r,
            alert_false_alarms: false_alarms,
        }
    }
}

/// The share of an incident's explaining metrics found in the first 100 % and 150 % of their
/// number in `top` (OmniAnomaly's HitRate@P %).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HitRates {
    /// HitRate@100 %.
    pub hitrate100: f64,
    /// HitRate@150 %.
    pub hitrate150: f64,
}

/// The figures of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Per machine.
    pub machines: Vec<MachineReport>,
    /// Over all.
    pub overall: Overall,
}

/// Scores `scores[k]` against `labels[k]` by the rules of the data's README (as `score.py`).
pub fn score(labels: &[Labels], scores: &[Scores]) -> Result<Report, SmdError> {
    if labels.len() != scores.len() || labels.is_empty() {
        return Err(SmdError::Format {
            path: PathBuf::new(),
            line: 0,
            reason: format!("{} machines but {} score sets", labels.len(), scores.len()),
        });
    }
    let mut prepared = Vec::with_capacity(labels.len());
    for (l, s) in labels.iter().zip(scores) {
        let n = l.label.len();
        let bad = |what: &str, len: usize| SmdError::Format {
            path: PathBuf::from(format!("{}.csv", l.name)),
            line: 0,
            reason: format!("{len} {what} rows but the test part has {n} rows"),
        };
        if s.score.len() != n {
            return Err(bad("score", s.score.len()));
        }
        if let Some(a) = &s.alert
            && a.len() != n
        {
            return Err(bad("alert", a.len()));
        }
        if let Some(t) = &s.top
            && t.len() != n
        {
            return Err(bad("top", t.len()));
        }
        prepared.push(Prepared::new(l, &s.score));
    }
    let have_alert = scores.iter().all(|s| s.alert.is_some());
    let have_top = scores.iter().all(|s| s.top.is_some());
    let mut machines = Vec::with_capacity(labels.len());
    let (mut alert_tp, mut alert_fa) = (0usize, 0usize);
    let (mut h100, mut h150, mut hrows) = (0.0, 0.0, 0usize);
    for (p, s) in prepared.iter().zip(scores) {
        let thr = thresholds(p.segmax.iter().copied());
        let f: Vec<(f64, f64, f64, usize)> = thr
            .iter()
            .map(|&t| {
                let (tp, fa) = p.event_counts(t);
                let (pr, rc, f) = prf(tp as f64, fa as f64, p.segments.len() as f64);
                (pr, rc, f, fa)
            })
            .collect();
        let k = argmax(&f.iter().map(|x| x.2).collect::<Vec<_>>());
        let athr = thresholds(p.s.iter().copied());
        let pa: Vec<f64> = athr
            .iter()
            .map(|&t| {
                let (tp, fp) = p.pa_counts(t);
                prf(tp as f64, fp as f64, p.positives as f64).2
            })
            .collect();
        let mut r = MachineReport {
            machine: p.labels.name.clone(),
            rows: p.s.len(),
            segments: p.segments.len(),
            auc_pr: average_precision(&p.labels.label, &p.s),
            best_event_f1: f[k].2,
            best_event_p: f[k].0,
            best_event_r: f[k].1,
            best_event_thr: thr[k],
            best_event_false_alarms: f[k].3,
            pa_f1: pa[argmax(&pa)],
            own: None,
            hitrates: None,
        };
        if let Some(a) = &s.alert {
            let (tp, fa) = p.alert_counts(a);
            r.own = Some(OwnAlerts::of(tp, fa, p.segments.len()));
            alert_tp += tp;
            alert_fa += fa;
        }
        if let Some(t) = &s.top {
            let (a, b, n) = p.hitrates(t);
            let per = |x: f64| if n > 0 { x / n as f64 } else { f64::NAN };
            r.hitrates = Some(HitRates {
                hitrate100: per(a),
                hitrate150: per(b),
            });
            h100 += a;
            h150 += b;
            hrows += n;
        }
        machines.push(r);
    }
    let segments: usize = prepared.iter().map(|p| p.segments.len()).sum();
    let positives: usize = prepared.iter().map(|p| p.positives).sum();
    let gthr = thresholds(prepared.iter().flat_map(|p| p.segmax.iter().copied()));
    let global: Vec<(f64, f64, f64, usize)> = gthr
        .iter()
        .map(|&t| {
            let (tp, fa) = prepared.iter().fold((0, 0), |(a, b), p| {
                let (x, y) = p.event_counts(t);
                (a + x, b + y)
            });
            let (pr, rc, f) = prf(tp as f64, fa as f64, segments as f64);
            (pr, rc, f, fa)
        })
        .collect();
    let kg = argmax(&global.iter().map(|x| x.2).collect::<Vec<_>>());
    let athr = thresholds(prepared.iter().flat_map(|p| p.s.iter().copied()));
    let pa: Vec<f64> = athr
        .iter()
        .map(|&t| {
            let (tp, fp) = prepared.iter().fold((0, 0), |(a, b), p| {
                let (x, y) = p.pa_counts(t);
                (a + x, b + y)
            });
            prf(tp as f64, fp as f64, positives as f64).2
        })
        .collect();
    let all_labels: Vec<bool> = prepared
        .iter()
        .flat_map(|p| p.labels.label.iter().copied())
        .collect();
    let all_scores: Vec<f64> = prepared.iter().flat_map(|p| p.s.iter().copied()).collect();
    let aps: Vec<f64> = machines
        .iter()
        .map(|m| m.auc_pr)
        .filter(|x| x.is_finite())
        .collect();
    let overall = Overall {
        machines: machines.len(),
        segments,
        event_f1_global: global[kg].2,
        event_p_global: global[kg].0,
        event_r_global: global[kg].1,
        event_false_alarms_global: global[kg].3,
        event_f1_per_machine_mean: machines.iter().map(|m| m.best_event_f1).sum::<f64>()
            / machines.len() as f64,
        auc_pr_mean: aps.iter().sum::<f64>() / aps.len() as f64,
        auc_pr_pooled: average_precision(&all_labels, &all_scores),
        pa_f1_global: pa[argmax(&pa)],
        own: have_alert.then(|| OwnAlerts::of(alert_tp, alert_fa, segments)),
        hitrates: (have_top && hrows > 0).then(|| HitRates {
            hitrate100: h100 / hrows as f64,
            hitrate150: h150 / hrows as f64,
        }),
    };
    Ok(Report { machines, overall })
}

/// Parameters of [`run_machine`].
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The per-metric streaming detector's parameters.
    pub params: ValidStreamingParams,
    /// The joint members' parameters.
    pub multivariate: MultivariateParams,
    /// Own alerts: rows whose reported score is at least this.
    pub threshold: f64,
    /// Metrics listed in `top`.
    pub top: usize,
}

/// One machine's run: what goes into its score file, and the reported (suppressed) score per
/// test row, from which alerts at any threshold follow.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineRun {
    /// `score` (the combined score before suppression), `alert` at the run's threshold, `top`.
    pub scores: Scores,
    /// The reported score: 0 where a higher one was reported within the suppression rows.
    pub reported: Vec<f64>,
    /// The reported score under each rule of [`Combine::ALL`] (in that order), for the
    /// cross-validation of the rule.
    pub reported_by_rule: Vec<Vec<f64>>,
}

/// Runs the multivariate detector over one machine: the train rows are fed first (learning
/// only), then each test row is scored in order.
pub fn run_machine(machine: &Machine, cfg: &RunConfig) -> Result<MachineRun, SmdError> {
    let err = |source| SmdError::Detector {
        machine: machine.labels.name.clone(),
        source,
    };
    let m = machine.test.first().map_or(0, Vec::len);
    let mut scorer = EntityScorer::new(m, &cfg.params, &cfg.multivariate).map_err(err)?;
    let n = machine.test.len();
    // Each rule's reported score, suppressed as the scorer suppresses its own (from the first
    // train row), so the configured rule's equals `reported`.
    let suppress = cfg.params.get().suppress_rows();
    let mut by_rule: Vec<(Suppressor, Vec<f64>)> = Combine::ALL
        .iter()
        .map(|_| (Suppressor::new(suppress), Vec::with_capacity(n)))
        .collect();
    for row in &machine.train {
        let r = scorer.push(row).map_err(err)?;
        for (rule, (s, _)) in Combine::ALL.iter().zip(&mut by_rule) {
            s.push(r.combined(*rule));
        }
    }
    let mut scores = Scores {
        score: Vec::with_capacity(n),
        alert: Some(Vec::with_capacity(n)),
        top: Some(Vec::with_capacity(n)),
    };
    let mut reported = Vec::with_capacity(n);
    for row in &machine.test {
        let r = scorer.push(row).map_err(err)?;
        scores.score.push(r.likelihood);
        reported.push(r.score);
        for (rule, (s, v)) in Combine::ALL.iter().zip(&mut by_rule) {
            v.push(s.push(r.combined(*rule)));
        }
        if let Some(a) = scores.alert.as_mut() {
            a.push(r.score >= cfg.threshold);
        }
        if let Some(t) = scores.top.as_mut() {
            t.push(
                scorer
                    .ranked(row)
                    .into_iter()
                    .take(cfg.top)
                    .map(|(j, _)| j + 1)
                    .collect(),
            );
        }
    }
    Ok(MachineRun {
        scores,
        reported,
        reported_by_rule: by_rule.into_iter().map(|(_, v)| v).collect(),
    })
}

/// Alert thresholds the cross-validation chooses among (reported scores are in `[0, 1]`;
/// 0.5 is the detector's default, a tail probability of 10⁻⁶).
pub const CV_THRESHOLDS: [f64; 12] = [
    0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0,
];

/// One held-out machine of [`cross_validate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CvFold {
    /// The held-out machine.
    pub machine: String,
    /// The candidate (scoring rule) chosen on the other machines.
    pub candidate: String,
    /// The threshold chosen on the other machines.
    pub threshold: f64,
    /// Segments detected and false alarms on the held-out machine at that threshold.
    pub detected: usize,
    /// Its labelled segments.
    pub segments: usize,
    /// False alarms there.
    pub false_alarms: usize,
    /// Event F1 there.
    pub f1: f64,
}

/// Leave-one-machine-out choice of the candidate and the alert threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CvReport {
    /// Per held-out machine.
    pub folds: Vec<CvFold>,
    /// Event F1, precision and recall of the held-out folds, counts summed (the honest figure).
    pub held_out_f1: f64,
    /// Precision of the held-out folds.
    pub held_out_p: f64,
    /// Recall of the held-out folds.
    pub held_out_r: f64,
    /// The candidate chosen on all machines (in-sample).
    pub in_sample_candidate: String,
    /// The threshold chosen on all machines (in-sample).
    pub in_sample_threshold: f64,
    /// In-sample event F1.
    pub in_sample_f1: f64,
}

/// A scoring to cross-validate: its name and the reported score of each machine (in the order
/// of the labels).
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Its name in the report.
    pub name: &'a str,
    /// Per machine, the reported score per test row.
    pub reported: &'a [Vec<f64>],
}

/// Chooses the candidate and the alert threshold (among [`CV_THRESHOLDS`]) that maximise the
/// event F1 (counts summed) of all machines but one, and scores that one with them, for each
/// machine in turn. Ties go to the first candidate, then the lowest threshold.
pub fn cross_validate(
    labels: &[Labels],
    candidates: &[Candidate<'_>],
) -> Result<CvReport, SmdError> {
    let bad = |reason: String| SmdError::Format {
        path: PathBuf::new(),
        line: 0,
        reason,
    };
    if labels.len() < 2 || candidates.is_empty() {
        return Err(bad(format!(
            "cross-validation needs at least 2 machines and one candidate ({} and {})",
            labels.len(),
            candidates.len()
        )));
    }
    if let Some(c) = candidates.iter().find(|c| c.reported.len() != labels.len()) {
        return Err(bad(format!(
            "candidate {} has scores of {} machines for {} labelled",
            c.name,
            c.reported.len(),
            labels.len()
        )));
    }
    // counts[c][k][t]: (detected, segments, false alarms) of machine k under candidate c at
    // threshold t.
    let counts: Vec<Vec<Vec<(usize, usize, usize)>>> = candidates
        .iter()
        .map(|c| {
            labels
                .iter()
                .zip(c.reported)
                .map(|(l, r)| {
                    let p = Prepared::new(l, r);
                    CV_THRESHOLDS
                        .iter()
                        .map(|&t| {
                            let (tp, fa) = p.event_counts(t);
                            (tp, p.segments.len(), fa)
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let best_on = |use_machine: &dyn Fn(usize) -> bool| {
        let mut best = (0, 0, f64::NEG_INFINITY);
        for (c, per_machine) in counts.iter().enumerate() {
            for t in 0..CV_THRESHOLDS.len() {
                let (tp, seg, fa) = (0..per_machine.len()).filter(|k| use_machine(*k)).fold(
                    (0, 0, 0),
                    |(a, b, d), k| {
                        let (x, y, z) = per_machine[k][t];
                        (a + x, b + y, d + z)
                    },
                );
                let f = prf(tp as f64, fa as f64, seg as f64).2;
                if f > best.2 {
                    best = (c, t, f);
                }
            }
        }
        best
    };
    let mut folds = Vec::with_capacity(labels.len());
    let (mut tp, mut seg, mut fa) = (0, 0, 0);
    for (k, l) in labels.iter().enumerate() {
        let (c, t, _) = best_on(&|j| j != k);
        let (x, y, z) = counts[c][k][t];
        folds.push(CvFold {
            machine: l.name.clone(),
            candidate: candidates[c].name.to_owned(),
            threshold: CV_THRESHOLDS[t],
            detected: x,
            segments: y,
            false_alarms: z,
            f1: prf(x as f64, z as f64, y as f64).2,
        });
        tp += x;
        seg += y;
        fa += z;
    }
    let (p, r, f) = prf(tp as f64, fa as f64, seg as f64);
    let (c_all, t_all, f_all) = best_on(&|_| true);
    Ok(CvReport {
        folds,
        held_out_f1: f,
        held_out_p: p,
        held_out_r: r,
        in_sample_candidate: candidates[c_all].name.to_owned(),
        in_sample_threshold: CV_THRESHOLDS[t_all],
        in_sample_f1: f_all,
    })
}
