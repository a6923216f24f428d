//! Series identity ([`SeriesKey`]), data points and the batches sources hand to the store.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Milliseconds since the Unix epoch, UTC. Every timestamp in novaml has this unit.
pub type Timestamp = i64;

/// Whether `name` is a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The identity of a series: a metric name and a set of labels, as in Prometheus.
///
/// Labels are kept sorted, so two keys with the same labels compare, hash and print equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Metric name, e.g. `node_cpu_seconds_total`.
    pub name: String,
    /// Label pairs, sorted by name. Never contains `__name__`.
    pub labels: BTreeMap<String, String>,
}

impl SeriesKey {
    /// A key with no labels. Fails if the name is not a valid metric name.
    pub fn new(name: impl Into<String>) -> Result<Self, CoreError> {
        let name = name.into();
        if !is_valid_metric_name(&name) {
            return Err(CoreError::InvalidMetricName { name });
        }
        Ok(Self {
            name,
            labels: BTreeMap::new(),
        })
    }

    /// Adds or replaces a label. Fails if the label name is invalid.
    pub fn with_label(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, CoreError> {
        let name = name.into();
        if !is_valid_label_name(&name) || name == "__name__" {
            return Err(CoreError::InvalidLabelName { name });
        }
        self.labels.insert(name, value.into());
        Ok(self)
    }

    /// The value of label `name`, where the key has it. `__name__` gives the metric name.
    pub fn label(&self, name: &str) -> Option<&str> {
        if name == "__name__" {
            return Some(&self.name);
        }
        self.labels.get(name).map(String::as_str)
    }
}

impl fmt::Display for SeriesKey {
    /// Prometheus notation: `name{a="x",b="y"}` with `\\`, `\"` and `\n` escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.labels.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}=\"")?;
            for c in v.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

/// One observation of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// When it was observed, ms since the Unix epoch.
    pub ts: Timestamp,
    /// The value. Stores keep only finite values; sources count and skip the rest.
    pub value: f64,
}

impl Point {
    /// A point at `ts` with `value`.
    pub const fn new(ts: Timestamp, value: f64) -> Self {
        Self { ts, value }
    }
}

/// A series: its key and points in ascending time order (as returned by queries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Identity.
    pub key: SeriesKey,
    /// Observations. Sources may hand them unsorted; stores return them sorted by `ts`.
    pub points: Vec<Point>,
}

impl Series {
    /// A series with the given key and points.
    pub fn new(key: SeriesKey, points: Vec<Point>) -> Self {
        Self { key, points }
    }

    /// Sorts points by timestamp and keeps the last value written for a duplicate timestamp,
    /// which is what the store's upsert does.
    pub fn normalize(&mut self) {
        // A stable sort keeps duplicates in arrival order, so the last one wins below.
        self.points.sort_by_key(|p| p.ts);
        let mut out: Vec<Point> = Vec::with_capacity(self.points.len());
        for p in self.points.drain(..) {
            match out.last_mut() {
                Some(last) if last.ts == p.ts => *last = p,
                _ => out.push(p),
            }
        }
        self.points = out;
    }

    /// The values, in point order.
    pub fn values(&self) -> Vec<f64> {
        self.points.iter().map(|p| p.value).collect()
    }

    /// The timestamps, in point order.
    pub fn timestamps(&self) -> Vec<Timestamp> {
        self.points.iter().map(|p| p.ts).collect()
    }
}

/// What one collection of one source produced, written to the store in one transaction.
///
/// `cursor`, when set, is the source's progress marker (the last timestamp it has fully
/// collected). The store saves it in the same transaction as the samples, so after a crash a
/// source resumes exactly after the last batch that was durably written: nothing is lost and
/// nothing is collected twice.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// Name of the source that collected it.
    pub source: String,
    /// The collected series.
    pub series: Vec<Series>,
    /// Progress marker to persist with the samples.
    pub cursor: Option<Timestamp>,
}

impl Batch {
    /// Number of points in the batch.
    pub fn len(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    /// Whether the batch holds no points.
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.points.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_and_label_names_follow_prometheus_rules() {
        for (name, ok) in [
            ("up", true),
            ("a:b_c1", true),
            ("_x", true),
            ("1a", false),
            ("", false),
            ("a-b", false),
        ] {
            assert_eq!(is_valid_metric_name(name), ok, "{name}");
        }
        for (name, ok) in [
            ("job", true),
            ("_x", true),
            ("a:b", false),
            ("9", false),
            ("", false),
        ] {
            assert_eq!(is_valid_label_name(name), ok, "{name}");
        }
        assert!(
            SeriesKey::new("up")
                .and_then(|k| k.with_label("__name__", "x"))
                .is_err()
        );
    }

    #[test]
    fn display_escapes_label_values_and_sorts_labels() {
        let key = SeriesKey::new("m")
            .and_then(|k| k.with_label("z", "a\"b\\c\nd"))
            .and_then(|k| k.with_label("a", "1"))
            .expect("valid key");
        assert_eq!(key.to_string(), r#"m{a="1",z="a\"b\\c\nd"}"#);
        assert_eq!(key.label("__name__"), Some("m"));
    }

    #[test]
    fn normalize_sorts_and_keeps_last_duplicate() {
        let key = SeriesKey::new("m").expect("valid");
        let mut s = Series::new(
            key,
            vec![
                Point::new(3, 3.0),
                Point::new(1, 1.0),
                Point::new(3, 30.0),
                Point::new(2, 2.0),
            ],
        );
        s.normalize();
        assert_eq!(s.timestamps(), vec![1, 2, 3]);
        assert_eq!(s.values(), vec![1.0, 2.0, 30.0]);
    }
}
