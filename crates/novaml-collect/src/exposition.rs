//! Parser of the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text.
//!
//! Written here rather than taken from a crate: the crates on offer (`prometheus-parse`,
//! `openmetrics-parser`) either stop at the first bad line or allocate per token, and we must skip
//! and count a bad line (non-UTF-8 bytes, a broken label, an oversized label set) while keeping
//! every good one. The grammar is small: one sample per line, `name{labels} value [timestamp]`,
//! with `# HELP`, `# TYPE`, `# UNIT` and `# EOF` comments and, in OpenMetrics, ` # {…} v [t]`
//! exemplars after the value.
//!
//! Histograms and summaries need no special casing: each `_bucket{le=…}`, `_sum`, `_count` and
//! `{quantile=…}` line is a series of its own, as Prometheus stores them. OpenMetrics `_created`
//! lines are creation timestamps, not measurements, and are skipped (as Prometheus does by
//! default).

use std::collections::{BTreeMap, HashMap};

use novaml_core::{Point, Series, SeriesKey, is_valid_label_name, is_valid_metric_name};

/// Which dialect a payload is in; decides the unit of explicit timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Prometheus text 0.0.4: timestamps are integer milliseconds.
    Prometheus,
    /// OpenMetrics 1.0 text: timestamps are (possibly fractional) seconds.
    OpenMetrics,
}

impl Dialect {
    /// The dialect a `Content-Type` header announces (`application/openmetrics-text` or not).
    pub fn from_content_type(ct: Option<&str>) -> Self {
        match ct {
            Some(ct) if ct.starts_with("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Prometheus,
        }
    }
}

/// Limits that protect the collector from pathological targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most labels one series may have; longer label sets are skipped and counted.
    pub max_labels: usize,
    /// Longest label value in bytes.
    pub max_label_value_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Prometheus' own defaults are unlimited; these are far above anything sane exporters
        // emit (node_exporter's widest series has 9 labels) and stop runaway cardinality.
        Self {
            max_labels: 64,
            max_label_value_len: 4096,
        }
    }
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// Not valid UTF-8.
    NonUtf8,
    /// Does not follow the grammar.
    Syntax,
    /// A value of NaN or ±Inf (valid exposition, but not storable as a measurement).
    NonFinite,
    /// Over [`Limits`].
    Limit,
}

impl SkipReason {
    /// A short, stable name for metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NonUtf8 => "non_utf8",
            Self::Syntax => "syntax",
            Self::NonFinite => "non_finite",
            Self::Limit => "limit",
        }
    }
}

/// One skipped line, for logging with context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number.
    pub line: usize,
    /// Why.
    pub reason: SkipReason,
}

/// What a payload parsed into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// One series per distinct key, in first-seen order; a key repeated in the payload keeps its
    /// last value.
    pub series: Vec<Series>,
    /// `# TYPE` declarations, by family name.
    pub types: HashMap<String, String>,
    /// Lines skipped.
    pub skipped: Vec<Skipped>,
    /// Sample lines accepted.
    pub samples: usize,
}

/// Parses an exposition payload. Samples without an explicit timestamp get `default_ts` (ms).
pub fn parse(body: &[u8], dialect: Dialect, default_ts: i64, limits: Limits) -> Parsed {
    let mut out = Parsed::default();
    let mut index: HashMap<SeriesKey, usize> = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    for (n, raw) in body.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line_no = n + 1;
        let Ok(line) = std::str::from_utf8(raw) else {
            out.skipped.push(Skipped {
                line: line_no,
                reason: SkipReason::NonUtf8,
            });
            continue;
        };
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, [' ', '\t']);
            if parts.next() == Some("TYPE")
                && let (Some(name), Some(kind)) = (parts.next(), parts.next())
            {
                types.insert(name.to_owned(), kind.trim().to_owned());
            }
            continue;
        }
        match parse_sample(line, dialect, default_ts, limits, &types) {
            Ok(Some((key, point))) => {
                out.samples += 1;
                match index.get(&key) {
                    Some(&i) => out.series[i].points[0] = point,
                    None => {
                        index.insert(key.clone(), out.series.len());
                        out.series.push(Series::new(key, vec![point]));
                    }
                }
            }
            Ok(None) => {}
            Err(reason) => out.skipped.push(Skipped {
                line: line_no,
                reason,
            }),
        }
    }
    out.types = types;
    out
}

fn parse_sample(
    line: &str,
    dialect: Dialect,
    default_ts: i64,
    limits: Limits,
    types: &HashMap<String, String>,
) -> Result<Option<(SeriesKey, Point)>, SkipReason> {
    let name_len = line
        .bytes()
        .take_while(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        .count();
    let name = &line[..name_len];
    if !is_valid_metric_name(name) {
        return Err(SkipReason::Syntax);
    }
    if dialect == Dialect::OpenMetrics
        && let Some(family) = name.strip_suffix("_created")
        && matches!(
            types.get(family).map(String::as_str),
            Some("counter" | "histogram" | "summary" | "gaugehistogram")
        )
    {
        return Ok(None);
    }
    let mut rest = &line[name_len..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.trim_start_matches([' ', '\t']).strip_prefix('{') {
        rest = parse_labels(after, &mut labels, limits)?;
    }
    // Value: after at least one blank.
    if !rest.starts_with([' ', '\t']) {
        return Err(SkipReason::Syntax);
    }
    let mut fields = rest.split([' ', '\t']).filter(|s| !s.is_empty());
    let value = parse_value(fields.next().ok_or(SkipReason::Syntax)?)?;
    let ts = match fields.next() {
        None | Some("#") => default_ts,
        Some(t) => {
            let ts = parse_timestamp(t, dialect)?;
            // After a timestamp only an OpenMetrics exemplar may follow.
            if fields.next().is_some_and(|f| f != "#") {
                return Err(SkipReason::Syntax);
            }
            ts
        }
    };
    if !value.is_finite() {
        return Err(SkipReason::NonFinite);
    }
    Ok(Some((
        SeriesKey {
            name: name.to_owned(),
            labels,
        },
        Point::new(ts, value),
    )))
}

/// Parses `a="x",b="y"}` (after the opening brace) and returns the text after `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
    limits: Limits,
) -> Result<&'a str, SkipReason> {
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let n = s
            .bytes()
            .take_while(|&b| b.is_ascii_alphanumeric() || b == b'_')
            .count();
        let label = &s[..n];
        if !is_valid_label_name(label) || label == "__name__" {
            return Err(SkipReason::Syntax);
        }
        s = s[n..].trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix('=')
            .ok_or(SkipReason::Syntax)?
            .trim_start_matches([' ', '\t']);
        s = s.strip_prefix('"').ok_or(SkipReason::Syntax)?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    // 0.0.4 says other escapes are invalid; Prometheus keeps them literally.
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err(SkipReason::Syntax),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(SkipReason::Syntax),
            }
        };
        s = &s[end + 1..];
        if value.len() > limits.max_label_value_len {
            return Err(SkipReason::Limit);
        }
        if labels.insert(label.to_owned(), value).is_some() {
            return Err(SkipReason::Syntax); // duplicate label name
        }
        if labels.len() > limits.max_labels {
            return Err(SkipReason::Limit);
        }
        s = s.trim_start_matches([' ', '\t']);
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err(SkipReason::Syntax);
        }
    }
}

fn parse_value(s: &str) -> Result<f64, SkipReason> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        // Rust's parser accepts "inf"/"nan"/"infinity" in any case, which the format does not.
        s if s
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && !matches!(b, b'e' | b'E')) =>
        {
            Err(SkipReason::Syntax)
        }
        s => s.parse().map_err(|_| SkipReason::Syntax),
    }
}

fn parse_timestamp(s: &str, dialect: Dialect) -> Result<i64, SkipReason> {
    match dialect {
        Dialect::Prometheus => s.parse::<i64>().map_err(|_| SkipReason::Syntax),
        Dialect::OpenMetrics => {
            let secs: f64 = parse_value(s)?;
            if !secs.is_finite() {
                return Err(SkipReason::Syntax);
            }
            Ok((secs * 1000.0).round() as i64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<Option<(SeriesKey, Point)>, SkipReason> {
        parse_sample(
            line,
            Dialect::Prometheus,
            7,
            Limits::default(),
            &HashMap::new(),
        )
    }

    #[test]
    fn sample_lines_parse_or_are_rejected() {
        let ok = [
            ("up 1", "up", 1.0, 7),
            ("up 1 1700000000000", "up", 1.0, 1_700_000_000_000),
            (r#"a{b="c"} 2.5e3"#, r#"a{b="c"}"#, 2500.0, 7),
            (
                r#"a{b="x\"y\\z\n",c="d",} -3"#,
                r#"a{b="x\"y\\z\n",c="d"}"#,
                -3.0,
                7,
            ),
            ("a { b = \"c\" }\t4", r#"a{b="c"}"#, 4.0, 7),
            (
                r#"h_bucket{le="+Inf"} 10"#,
                r#"h_bucket{le="+Inf"}"#,
                10.0,
                7,
            ),
            ("ns:rule 0x10", "", 0.0, 0),
        ];
        for (line, key, v, ts) in ok {
            let got = one(line);
            if key.is_empty() {
                assert!(got.is_err(), "{line} should be rejected");
                continue;
            }
            let (k, p) = got
                .unwrap_or_else(|e| panic!("{line}: {e:?}"))
                .expect("a sample");
            assert_eq!(
                (k.to_string().as_str(), p.value, p.ts),
                (key, v, ts),
                "{line}"
            );
        }
        for line in [
            "1up 1",
            "up",
            "up one",
            "up{a=b} 1",
            r#"up{a="b} 1"#,
            r#"up{a="1",a="2"} 1"#,
            r#"up{__name__="x"} 1"#,
            "up 1 notatime",
            "up 1 2 3",
            "up inf",
            "up{} 1 1.5",
        ] {
            assert_eq!(one(line), Err(SkipReason::Syntax), "{line}");
        }
        for line in ["up NaN", "up +Inf", "up -Inf"] {
            assert_eq!(one(line), Err(SkipReason::NonFinite), "{line}");
        }
    }

    #[test]
    fn payload_with_bad_lines_keeps_the_good_ones() {
        let mut body = b"# HELP up Whether up.\n# TYPE up gauge\nup 1\nbad line\n".to_vec();
        body.extend_from_slice(b"x{a=\"\xff\xfe\"} 1\n");
        body.extend_from_slice(b"down 0\r\nup 2\nq NaN\n");
        let p = parse(&body, Dialect::Prometheus, 5, Limits::default());
        let got: Vec<(String, f64)> = p
            .series
            .iter()
            .map(|s| (s.key.to_string(), s.points[0].value))
            .collect();
        assert_eq!(
            got,
            vec![("up".into(), 2.0), ("down".into(), 0.0)],
            "duplicate keeps the last value"
        );
        let reasons: Vec<(usize, SkipReason)> =
            p.skipped.iter().map(|s| (s.line, s.reason)).collect();
        assert_eq!(
            reasons,
            vec![
                (4, SkipReason::Syntax),
                (5, SkipReason::NonUtf8),
                (8, SkipReason::NonFinite)
            ]
        );
        assert_eq!(p.types.get("up").map(String::as_str), Some("gauge"));
    }

    #[test]
    fn openmetrics_timestamps_exemplars_and_created() {
        let body = b"# TYPE c counter\nc_total 3 1700000000.5 # {trace_id=\"x\"} 1 1700000000\nc_created 1700000000\n# TYPE g gauge\ng 1 # {a=\"b\"} 2\n# EOF\n";
        let p = parse(body, Dialect::OpenMetrics, 9, Limits::default());
        let got: Vec<(String, f64, i64)> = p
            .series
            .iter()
            .map(|s| (s.key.to_string(), s.points[0].value, s.points[0].ts))
            .collect();
        assert_eq!(
            got,
            vec![
                ("c_total".into(), 3.0, 1_700_000_000_500),
                ("g".into(), 1.0, 9)
            ]
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
    }

    #[test]
    fn label_limits_are_enforced() {
        let limits = Limits {
            max_labels: 2,
            max_label_value_len: 3,
        };
        let types = HashMap::new();
        assert!(
            parse_sample(
                r#"a{x="1",y="2"} 1"#,
                Dialect::Prometheus,
                0,
                limits,
                &types
            )
            .is_ok()
        );
        assert_eq!(
            parse_sample(
                r#"a{x="1",y="2",z="3"} 1"#,
                Dialect::Prometheus,
                0,
                limits,
                &types
            ),
            Err(SkipReason::Limit)
        );
        assert_eq!(
            parse_sample(r#"a{x="long"} 1"#, Dialect::Prometheus, 0, limits, &types),
            Err(SkipReason::Limit)
        );
    }
}
