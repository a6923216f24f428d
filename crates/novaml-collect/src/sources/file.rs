//! Imports series from files: CSV (`timestamp,value[,…]` with several timestamp formats, and the
//! layouts of the data we evaluate on: NAB, Bitbrains processed and raw GWA-T-12, the Alibaba
//! 2018 aggregate) and JSON lines.
//!
//! Every numeric column other than the timestamp becomes a series named after the column
//! (sanitised to a metric name, with an optional prefix) and labelled `file="<file stem>"` plus any
//! configured labels. Bad rows and cells are skipped and counted, never silently.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use novaml_core::{
    BoxFuture, CollectContext, Collected, Point, Series, SeriesKey, Source, SourceError, Timestamp,
};
use serde::Deserialize;
use tracing::warn;

use crate::sources::{Configured, config_duration};
use crate::time::parse_timestamp;
use crate::{CollectError, ScheduleSection};

/// Column names taken as the time column, after sanitising, in order of preference.
const TIME_COLUMNS: [&str; 7] = [
    "timestamp",
    "datetime_utc",
    "datetime",
    "time",
    "date",
    "ts",
    "timestamp_ms",
];

/// The raw GWA-T-12 (Bitbrains) headers and the names the processed files use for them.
const GWA_COLUMNS: [(&str, &str); 11] = [
    ("Timestamp [ms]", "timestamp"),
    ("CPU cores", "cpu_cores"),
    ("CPU capacity provisioned [MHZ]", "cpu_capacity_mhz"),
    ("CPU usage [MHZ]", "cpu_usage_mhz"),
    ("CPU usage [%]", "cpu_pct"),
    ("Memory capacity provisioned [KB]", "mem_capacity_kb"),
    ("Memory usage [KB]", "mem_usage_kb"),
    ("Disk read throughput [KB/s]", "disk_read_kbps"),
    ("Disk write throughput [KB/s]", "disk_write_kbps"),
    ("Network received throughput [KB/s]", "net_rx_kbps"),
    ("Network transmitted throughput [KB/s]", "net_tx_kbps"),
];

/// File format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// By extension: `.jsonl`/`.ndjson` are JSON lines, everything else CSV.
    #[default]
    Auto,
    /// Comma- or semicolon-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// How to import one file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileConfig {
    /// The file.
    pub path: PathBuf,
    /// Format.
    pub format: FileFormat,
    /// Prefix of every metric name (e.g. `vm_`).
    pub prefix: String,
    /// Extra labels on every series.
    pub labels: BTreeMap<String, String>,
    /// The time column; detected from the header when unset.
    pub timestamp_column: Option<String>,
    /// Only these value columns (sanitised names); all numeric columns when empty.
    pub columns: Vec<String>,
    /// For files without a time column: the spacing of rows. Detected from names like
    /// `…_grouped_300_seconds.csv` (the Alibaba aggregate) when unset.
    pub row_interval: Option<Duration>,
    /// For files without a time column: the time of the first row (ms; default 0).
    pub start: Timestamp,
}

/// What an import produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Imported {
    /// The series, points sorted, duplicates resolved (last row wins).
    pub series: Vec<Series>,
    /// Rows or cells skipped, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Data rows read.
    pub rows: u64,
    /// Rows whose timestamp was earlier than the row before (kept, sorted).
    pub out_of_order: u64,
}

/// Turns a column header into a metric-name fragment: `CPU usage [%]` → `cpu_usage`.
pub fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let without_units = name.split('[').next().unwrap_or(name);
    for c in without_units.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_owned();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        format!("_{out}")
    } else {
        out
    }
}

fn canonical_column(header: &str) -> String {
    let h = header.trim();
    GWA_COLUMNS
        .iter()
        .find(|(raw, _)| raw.eq_ignore_ascii_case(h))
        .map_or_else(|| sanitize(h), |(_, c)| (*c).to_owned())
}

fn interval_from_name(path: &Path) -> Option<Duration> {
    let stem = path.file_stem()?.to_str()?;
    let rest = &stem[stem.find("grouped_")? + "grouped_".len()..];
    let secs: u64 = rest.strip_suffix("_seconds")?.parse().ok()?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

struct Builder<'a> {
    cfg: &'a FileConfig,
    stem: String,
    series: HashMap<String, Vec<Point>>,
    order: Vec<String>,
    out: Imported,
    last_ts: Option<Timestamp>,
}

impl<'a> Builder<'a> {
    fn new(cfg: &'a FileConfig) -> Self {
        let stem = cfg
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("file")
            .to_owned();
        Self {
            cfg,
            stem,
            series: HashMap::new(),
            order: Vec::new(),
            out: Imported::default(),
            last_ts: None,
        }
    }

    fn skip(&mut self, reason: &'static str) {
        *self.out.skipped.entry(reason).or_default() += 1;
    }

    fn row_ts(&mut self, ts: Timestamp) {
        self.out.rows += 1;
        if self.last_ts.is_some_and(|l| ts < l) {
            self.out.out_of_order += 1;
        }
        self.last_ts = Some(ts);
    }

    fn push(&mut self, name: &str, ts: Timestamp, v: f64) {
        if !v.is_finite() {
            self.skip("non_finite");
            return;
        }
        if !self.series.contains_key(name) {
            self.order.push(name.to_owned());
        }
        self.series
            .entry(name.to_owned())
            .or_default()
            .push(Point::new(ts, v));
    }

    fn finish(mut self, labels_of: impl Fn(&str) -> BTreeMap<String, String>) -> Imported {
        for name in std::mem::take(&mut self.order) {
            let points = self.series.remove(&name).unwrap_or_default();
            let mut labels = labels_of(&name);
            labels
                .entry("file".into())
                .or_insert_with(|| self.stem.clone());
            for (k, v) in &self.cfg.labels {
                labels.insert(k.clone(), v.clone());
            }
            let metric = metric_part(&name);
            let mut s = Series::new(
                SeriesKey {
                    name: format!("{}{}", self.cfg.prefix, metric),
                    labels,
                },
                points,
            );
            let before = s.points.len();
            s.normalize();
            let dups = (before - s.points.len()) as u64;
            if dups > 0 {
                *self.out.skipped.entry("duplicate_timestamp").or_default() += dups;
            }
            self.out.series.push(s);
        }
        self.out
    }
}

/// JSON-lines series are keyed `name\u{0}labels-json` inside the builder.
fn metric_part(name: &str) -> &str {
    name.split('\u{0}').next().unwrap_or(name)
}

/// Reads a whole file.
pub fn import(cfg: &FileConfig) -> Result<Imported, CollectError> {
    let bytes = std::fs::read(&cfg.path).map_err(|source| CollectError::Io {
        path: cfg.path.clone(),
        source,
    })?;
    let ext = cfg
        .path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let format = match cfg.format {
        FileFormat::Auto if ext == "jsonl" || ext == "ndjson" => FileFormat::Jsonl,
        FileFormat::Auto => FileFormat::Csv,
        f => f,
    };
    if !cfg.prefix.is_empty() && !novaml_core::is_valid_metric_name(&cfg.prefix) {
        return Err(CollectError::Config {
            field: "prefix".into(),
            reason: format!("{:?} is not a valid metric name prefix", cfg.prefix),
        });
    }
    let imported = match format {
        FileFormat::Jsonl => import_jsonl(cfg, &bytes),
        _ => import_csv(cfg, &bytes)?,
    };
    if imported.skipped.values().any(|&n| n > 0) {
        warn!(path = %cfg.path.display(), skipped = ?imported.skipped, "Skipped rows or cells while importing.");
    }
    Ok(imported)
}

fn import_csv(cfg: &FileConfig, bytes: &[u8]) -> Result<Imported, CollectError> {
    let format_err = |reason: String| CollectError::Format {
        path: cfg.path.clone(),
        reason,
    };
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let delimiter = if first_line.contains(&b';') {
        b';'
    } else if first_line.contains(&b'\t') && !first_line.contains(&b',') {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .byte_headers()
        .map_err(|e| format_err(format!("cannot read the header: {e}")))?
        .iter()
        .map(|h| canonical_column(&String::from_utf8_lossy(h)))
        .collect();
    if headers.is_empty() || headers.iter().all(|h| h == "_") {
        return Err(format_err("the file has no header row".into()));
    }
    let time_idx = match &cfg.timestamp_column {
        Some(c) => {
            let want = sanitize(c);
            Some(headers.iter().position(|h| *h == want).ok_or_else(|| {
                format_err(format!("no column {c:?} (columns: {})", headers.join(", ")))
            })?)
        }
        None => TIME_COLUMNS
            .iter()
            .find_map(|t| headers.iter().position(|h| h == t)),
    };
    let interval = match time_idx {
        Some(_) => None,
        None => Some(cfg.row_interval.or_else(|| interval_from_name(&cfg.path)).ok_or_else(|| {
            format_err(format!("no timestamp column among [{}]; name it with timestamp_column or give row_interval", headers.join(", ")))
        })?),
    };
    let value_cols: Vec<usize> = headers
        .iter()
        .enumerate()
        .filter(|(i, h)| {
            Some(*i) != time_idx && !TIME_COLUMNS.contains(&h.as_str()) && h.as_str() != "_"
        })
        .filter(|(_, h)| cfg.columns.is_empty() || cfg.columns.iter().any(|c| sanitize(c) == **h))
        .map(|(i, _)| i)
        .collect();
    if value_cols.is_empty() {
        return Err(format_err("no value columns".into()));
    }
    let mut b = Builder::new(cfg);
    let mut record = csv::ByteRecord::new();
    let mut row = 0u64;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(_) => {
                b.skip("malformed_row");
                continue;
            }
        }
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        let ts = match (time_idx, interval) {
            (Some(i), _) => {
                let Some(ts) = record
                    .get(i)
                    .and_then(|f| std::str::from_utf8(f).ok())
                    .and_then(parse_timestamp)
                else {
                    b.skip("bad_timestamp");
                    continue;
                };
                ts
            }
            (None, Some(step)) => cfg.start + row as i64 * step.as_millis() as i64,
            (None, None) => unreachable!("interval is set when there is no time column"),
        };
        row += 1;
        b.row_ts(ts);
        for &c in &value_cols {
            let Some(field) = record.get(c) else {
                b.skip("missing_cell");
                continue;
            };
            match std::str::from_utf8(field) {
                Err(_) => b.skip("non_utf8"),
                Ok("") => b.skip("empty_cell"),
                Ok(f) => match f.parse::<f64>() {
                    Ok(v) => b.push(&headers[c], ts, v),
                    Err(_) => b.skip("bad_value"),
                },
            }
        }
    }
    Ok(b.finish(|_| BTreeMap::new()))
}

#[derive(Deserialize)]
struct JsonSample {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(alias = "ts", alias = "time")]
    timestamp: serde_json::Value,
    value: serde_json::Value,
}

fn json_ts(v: &serde_json::Value) -> Option<Timestamp> {
    match v {
        serde_json::Value::Number(n) => n.as_f64().and_then(|f| parse_timestamp(&f.to_string())),
        serde_json::Value::String(s) => parse_timestamp(s),
        _ => None,
    }
}

fn json_value(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// JSON lines: `{"name":…,"labels":{…},"timestamp":…,"value":…}` per line, or flat rows
/// `{"timestamp":…,"cpu":1.5,"mem":2}` where each numeric field is a series.
fn import_jsonl(cfg: &FileConfig, bytes: &[u8]) -> Imported {
    let mut b = Builder::new(cfg);
    let mut labels_by_key: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    for line in bytes.split(|&c| c == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            b.skip("non_utf8");
            continue;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Ok(obj) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line)
        else {
            b.skip("malformed_row");
            continue;
        };
        if obj.contains_key("name") && obj.contains_key("value") {
            let Ok(s) = serde_json::from_value::<JsonSample>(serde_json::Value::Object(obj)) else {
                b.skip("malformed_row");
                continue;
            };
            if !novaml_core::is_valid_metric_name(&s.name)
                || !s.labels.keys().all(|k| novaml_core::is_valid_label_name(k))
            {
                b.skip("invalid_name");
                continue;
            }
            let (Some(ts), Some(v)) = (json_ts(&s.timestamp), json_value(&s.value)) else {
                b.skip("bad_value");
                continue;
            };
            let key = format!(
                "{}\u{0}{}",
                s.name,
                serde_json::to_string(&s.labels).unwrap_or_default()
            );
            labels_by_key.entry(key.clone()).or_insert(s.labels);
            b.row_ts(ts);
            b.push(&key, ts, v);
        } else {
            let Some(ts) = ["timestamp", "ts", "time"]
                .iter()
                .find_map(|k| obj.get(*k))
                .and_then(json_ts)
            else {
                b.skip("bad_timestamp");
                continue;
            };
            b.row_ts(ts);
            for (k, v) in &obj {
                if ["timestamp", "ts", "time"].contains(&k.as_str()) {
                    continue;
                }
                if let Some(v) = json_value(v) {
                    b.push(&sanitize(k), ts, v);
                } else {
                    b.skip("bad_value");
                }
            }
        }
    }
    b.finish(|key| labels_by_key.get(key).cloned().unwrap_or_default())
}

/// `[[sources.file]]` of the configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSection {
    /// Unique source name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Format.
    #[serde(default)]
    pub format: FileFormat,
    /// Prefix of every metric name.
    #[serde(default)]
    pub prefix: String,
    /// Extra labels on every series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The time column.
    #[serde(default)]
    pub timestamp_column: Option<String>,
    /// Only these value columns.
    #[serde(default)]
    pub columns: Vec<String>,
    /// For files without a time column: the spacing of rows.
    #[serde(default)]
    pub row_interval: Option<String>,
    /// Interval, timeout, retries.
    #[serde(flatten)]
    pub schedule: ScheduleSection,
}

impl FileSection {
    /// The file at `path`, every column, format by extension.
    pub fn new(name: &str, path: &Path) -> Self {
        Self {
            name: name.into(),
            path: path.to_owned(),
            format: FileFormat::default(),
            prefix: String::new(),
            labels: BTreeMap::new(),
            timestamp_column: None,
            columns: Vec::new(),
            row_interval: None,
            schedule: ScheduleSection::default(),
        }
    }

    /// Checks the section at `field` and builds the source.
    pub fn resolve(&self, field: &str) -> Result<Configured, CollectError> {
        let row_interval = self
            .row_interval
            .as_deref()
            .map(|r| config_duration(&format!("{field}.row_interval"), r))
            .transpose()?;
        let cfg = FileConfig {
            path: self.path.clone(),
            format: self.format,
            prefix: self.prefix.clone(),
            labels: self.labels.clone(),
            timestamp_column: self.timestamp_column.clone(),
            columns: self.columns.clone(),
            row_interval,
            start: 0,
        };
        Ok(Configured {
            source: Box::new(FileSource::new(self.name.clone(), cfg)),
            schedule: self.schedule.resolve(field)?,
            kind: "file",
            simulated: false,
        })
    }
}

/// A source that imports one file on its first collection and nothing after.
#[derive(Debug)]
pub struct FileSource {
    name: String,
    config: FileConfig,
    done: bool,
}

impl FileSource {
    /// A file source named `name`.
    pub fn new(name: impl Into<String>, config: FileConfig) -> Self {
        Self {
            name: name.into(),
            config,
            done: false,
        }
    }
}

impl Source for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn collect<'a>(
        &'a mut self,
        _ctx: CollectContext,
    ) -> BoxFuture<'a, Result<Collected, SourceError>> {
        Box::pin(async move {
            if self.done {
                return Ok(Collected::default());
            }
            let config = self.config.clone();
            let imported = tokio::task::spawn_blocking(move || import(&config))
                .await
                .map_err(|e| SourceError::Fatal(Box::new(e)))?
                .map_err(|e| SourceError::Fatal(Box::new(e)))?;
            self.done = true;
            Ok(Collected {
                series: imported.series,
                skipped: imported.skipped.into_iter().collect(),
                more: false,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_for(path: &Path) -> FileConfig {
        FileConfig {
            path: path.to_owned(),
            ..FileConfig::default()
        }
    }

    fn write(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).expect("write fixture");
        p
    }

    #[test]
    fn sanitize_headers() {
        for (h, want) in [
            ("CPU usage [%]", "cpu_usage"),
            ("value", "value"),
            ("net-in (kB)", "net_in_kb"),
            ("1st", "_1st"),
            ("  ", "_"),
        ] {
            assert_eq!(sanitize(h), want, "{h}");
        }
    }

    #[test]
    fn csv_with_bad_rows_duplicates_and_disorder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = b"timestamp,value,other\n\
            2024-01-01 00:00:00,1,10\n\
            2024-01-01 00:10:00,3,x\n\
            2024-01-01 00:05:00,2,20\n\
            not a time,4,40\n\
            2024-01-01 00:10:00,33,30\n\
            2024-01-01 00:15:00,,50\n\
            2024-01-01 00:20:00,\xff,60\n";
        let p = write(dir.path(), "s.csv", body);
        let imp = import(&cfg_for(&p)).expect("import");
        let value = &imp.series[0];
        assert_eq!(value.key.to_string(), r#"value{file="s"}"#);
        let t0 = 1_704_067_200_000;
        let m = 60_000;
        assert_eq!(
            value.points,
            vec![
                Point::new(t0, 1.0),
                Point::new(t0 + 5 * m, 2.0),
                Point::new(t0 + 10 * m, 33.0)
            ]
        );
        assert_eq!(imp.series[1].values(), vec![10.0, 20.0, 30.0, 50.0, 60.0]);
        assert_eq!(imp.out_of_order, 1);
        let want: BTreeMap<&str, u64> = [
            ("bad_timestamp", 1),
            ("bad_value", 1),
            ("duplicate_timestamp", 1),
            ("empty_cell", 1),
            ("non_utf8", 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(imp.skipped, want);
    }

    #[test]
    fn gwa_raw_format_maps_to_processed_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = "Timestamp [ms];\tCPU cores;\tCPU usage [%];\tMemory usage [KB]\n1375308176;\t1;\t10.0;\t276821.6\n1375308476;\t1;\t10.5;\t307580.5\n";
        let p = write(dir.path(), "192.csv", body.as_bytes());
        let imp = import(&cfg_for(&p)).expect("import");
        let names: Vec<String> = imp.series.iter().map(|s| s.key.name.clone()).collect();
        assert_eq!(names, vec!["cpu_cores", "cpu_pct", "mem_usage_kb"]);
        assert_eq!(
            imp.series[1].points,
            vec![
                Point::new(1_375_308_176_000, 10.0),
                Point::new(1_375_308_476_000, 10.5)
            ]
        );
    }

    #[test]
    fn rows_without_time_use_the_interval_from_the_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            dir.path(),
            "m_grouped_300_seconds.csv",
            b"cpu_util_percent,mem_util_percent\n1,2\n3,4\n",
        );
        let imp = import(&cfg_for(&p)).expect("import");
        assert_eq!(
            imp.series[0].points,
            vec![Point::new(0, 1.0), Point::new(300_000, 3.0)]
        );
        let p = write(dir.path(), "plain.csv", b"a,b\n1,2\n");
        let err = import(&cfg_for(&p)).expect_err("no time, no interval");
        assert!(err.to_string().contains("row_interval"), "{err}");
    }

    #[test]
    fn jsonl_both_shapes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body =
            br#"{"name":"cpu","labels":{"vm":"a"},"timestamp":"2024-01-01T00:00:00Z","value":1.5}
{"name":"cpu","labels":{"vm":"a"},"ts":1704067260,"value":"2.5"}
{"timestamp":1704067200000,"mem":7,"note":"x"}
{broken
{"name":"bad-name","timestamp":1,"value":1}
"#;
        let p = write(dir.path(), "d.jsonl", body);
        let imp = import(&cfg_for(&p)).expect("import");
        let got: Vec<(String, Vec<f64>)> = imp
            .series
            .iter()
            .map(|s| (s.key.to_string(), s.values()))
            .collect();
        assert_eq!(
            got,
            vec![
                (r#"cpu{file="d",vm="a"}"#.into(), vec![1.5, 2.5]),
                (r#"mem{file="d"}"#.into(), vec![7.0])
            ]
        );
        let want: BTreeMap<&str, u64> =
            [("bad_value", 1), ("invalid_name", 1), ("malformed_row", 1)]
                .into_iter()
                .collect();
        assert_eq!(imp.skipped, want);
    }
}
