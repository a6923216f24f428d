//! [`RemoteStore`]: a [`MetricStore`] over a Prometheus-compatible TSDB that the operator already
//! runs (VictoriaMetrics, Prometheus with its remote-write receiver; Mimir and Thanos speak the
//! same two protocols).
//!
//! - **Writes** go by Prometheus remote write 1.0 (a snappy-compressed protobuf `WriteRequest`),
//!   in requests of at most [`RemoteConfig::max_samples_per_request`] samples.
//! - **Reads** fetch raw samples: VictoriaMetrics' bulk `/api/v1/export` (JSON lines), or on
//!   Prometheus an instant query of the range selector `{…}[Nms]` (raw samples of the range).
//!   Step aggregation is done here with [`StepSpec::apply_in`], as the SQLite store does, so
//!   both stores give the same buckets.
//! - **Source cursors** are a series of their own, `novaml_source_cursor{source="…"}`, sent in
//!   the last request of the batch they belong to: the cursor advances only after every sample
//!   of its batch was accepted, so a failed write is retried from the old cursor (at least once;
//!   a retried sample rewrites the same value). Reads leave that series out.
//!
//! Where the semantics differ from the embedded store (the conformance suite checks each, with
//! `novaml_testing::conformance::Semantics`):
//! - **Rewriting a timestamp.** SQLite keeps the last write. VictoriaMetrics (1.79, run with
//!   `-dedup.minScrapeInterval=1ms`) keeps *one* of the written values, not necessarily the
//!   last; without deduplication it keeps all of them and reads here keep one. Prometheus refuses
//!   a second value for a timestamp ("duplicate sample") and any sample older than the newest
//!   of its series ("out of order"): the write fails with the TSDB's message. novaml itself
//!   only rewrites a timestamp when it retries a batch, with the same values.
//! - **Retention** is the TSDB's (`-retentionPeriod`, `--storage.tsdb.retention.time`):
//!   [`MetricStore::delete_before`] deletes nothing and returns 0.
//! - **Visibility.** VictoriaMetrics makes written samples searchable within about a second
//!   (at once after `/internal/force_flush`, see [`RemoteStore::flush`]); Prometheus at once.
//! - **Time range.** Timestamps before the Unix epoch are not read; reads over "all time" end two
//!   days after now (both TSDBs refuse samples further in the future).
//!
//! Why `ureq`: the [`MetricStore`] trait is synchronous (the pipeline calls stores from blocking
//! tasks), and ureq is a small, maintained, purely blocking client; reqwest's blocking client
//! runs a tokio runtime of its own and panics when dropped inside an async context.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use novaml_core::{
    Batch, MetricStore, Point, Selector, Series, SeriesKey, StepSpec, TimeRange, Timestamp,
};
use serde::Deserialize;

use crate::StoreError;
use novaml_core::prom_api::{ApiAnswer, MatrixData};

/// The metric name of the source cursors kept in the TSDB.
pub const CURSOR_METRIC: &str = "novaml_source_cursor";

/// Which read API the TSDB offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// Find out at connect: `/api/v1/export` answers on VictoriaMetrics only.
    Auto,
    /// VictoriaMetrics (single node, or `vmselect` with the tenant in `url`).
    #[serde(rename = "victoriametrics")]
    VictoriaMetrics,
    /// Prometheus (or anything that answers PromQL instant queries of range selectors).
    Prometheus,
}

/// How a remote store is reached.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Base URL of the read API, e.g. `http://127.0.0.1:8428` (`/api/v1/…` is appended).
    pub url: String,
    /// The remote-write endpoint, e.g. `http://127.0.0.1:8428/api/v1/write`.
    pub write_url: String,
    /// Which read API to use.
    pub flavor: Flavor,
    /// Limit on one request, connect to last byte.
    pub timeout: Duration,
    /// Answers larger than this are refused with [`StoreError::RemoteTooLarge`] rather than held
    /// in memory.
    pub max_response_bytes: u64,
    /// Samples per remote-write request (VictoriaMetrics and Prometheus take far more; smaller
    /// requests bound the memory of both sides).
    pub max_samples_per_request: usize,
}

impl RemoteConfig {
    /// Defaults for a TSDB at `url`, writing to `{url}/api/v1/write`.
    pub fn new(url: impl Into<String>) -> Self {
        let url: String = url.into();
        let url = url.trim_end_matches('/').to_owned();
        Self {
            write_url: format!("{url}/api/v1/write"),
            url,
            flavor: Flavor::Auto,
            timeout: Duration::from_secs(30),
            max_response_bytes: 512 << 20,
            max_samples_per_request: 50_000,
        }
    }
}

/// A [`MetricStore`] over a Prometheus-compatible TSDB. See the module documentation.
#[derive(Debug)]
pub struct RemoteStore {
    config: RemoteConfig,
    flavor: Flavor,
    agent: ureq::Agent,
    /// The stamp of the last cursor written: the next is later, so that Prometheus never sees
    /// two cursor values at one timestamp.
    last_cursor_stamp: Timestamp,
}

/// One line of VictoriaMetrics' `/api/v1/export`.
#[derive(Deserialize)]
struct ExportLine {
    metric: BTreeMap<String, String>,
    values: Vec<serde_json::Value>,
    timestamps: Vec<i64>,
}

/// A selector in PromQL: values quoted as Go string literals, and a `__name__` matcher added
/// where none fixes the name, since both TSDBs refuse a selector whose every matcher matches the
/// empty string (`{}`, `{a!="x"}`). Results are filtered by the selector again here.
pub fn promql_selector(selector: &Selector) -> String {
    let mut parts: Vec<String> = selector
        .matchers
        .iter()
        .map(|m| {
            let op = match m.op {
                novaml_core::MatchOp::Eq => "=",
                novaml_core::MatchOp::Ne => "!=",
                novaml_core::MatchOp::Re => "=~",
                novaml_core::MatchOp::Nre => "!~",
            };
            format!("{}{op}{}", m.label, go_quote(&m.value))
        })
        .collect();
    if selector.metric_name().is_none() {
        parts.push(r#"__name__=~".+""#.to_owned());
    }
    format!("{{{}}}", parts.join(","))
}

fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Milliseconds (≥ 0, see [`clamp`]) as the seconds the query APIs take (`1.001`).
fn seconds(ms: Timestamp) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// The readable part of `range`: from the epoch, to at most two days after now.
fn clamp(range: TimeRange) -> Option<(Timestamp, Timestamp)> {
    let start = range.start.max(0);
    let end = range
        .end
        .min(novaml_core::time::now_ms().saturating_add(2 * 86_400_000));
    (end > start).then_some((start, end))
}

fn key_of(mut labels: BTreeMap<String, String>, url: &str) -> Result<SeriesKey, StoreError> {
    let name = labels.remove("__name__").unwrap_or_default();
    SeriesKey::new(name)
        .and_then(|key| {
            labels
                .into_iter()
                .try_fold(key, |k, (a, b)| k.with_label(a, b))
        })
        .map_err(|e| StoreError::RemoteMalformed {
            url: url.to_owned(),
            detail: format!("a series key: {e}"),
        })
}

/// Points sorted by time, one per timestamp (the later in `points` wins), finite only.
fn normalise(mut points: Vec<Point>) -> Vec<Point> {
    points.retain(|p| p.value.is_finite());
    // A stable sort keeps the write order within a timestamp; the last of each run wins.
    points.sort_by_key(|p| p.ts);
    let mut out: Vec<Point> = Vec::with_capacity(points.len());
    for p in points {
        match out.last_mut() {
            Some(last) if last.ts == p.ts => *last = p,
            _ => out.push(p),
        }
    }
    out
}

impl RemoteStore {
    /// Connects: checks that the read API answers (a clear error naming the URL when it does
    /// not) and, for [`Flavor::Auto`], which flavour it is.
    pub fn connect(config: RemoteConfig) -> Result<Self, StoreError> {
        if config.max_samples_per_request == 0 {
            return Err(StoreError::InvalidInput(
                "max_samples_per_request must be at least 1".into(),
            ));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut store = Self {
            flavor: config.flavor,
            config,
            agent,
            last_cursor_stamp: Timestamp::MIN,
        };
        // Any PromQL API answers this; an unreachable or foreign URL fails here, at start.
        let probe = format!("{}/api/v1/query", store.config.url);
        let (status, body) = store.post_form(&probe, &[("query", "1".into())])?;
        if status != 200 {
            return Err(store.refused(&probe, status, &body));
        }
        if store.flavor == Flavor::Auto {
            let export = format!("{}/api/v1/export", store.config.url);
            let (status, _) = store.post_form(
                &export,
                &[
                    ("match[]", format!(r#"{{__name__="{CURSOR_METRIC}"}}"#)),
                    ("start", "0".into()),
                    ("end", "1".into()),
                ],
            )?;
            store.flavor = if status == 200 {
                Flavor::VictoriaMetrics
            } else {
                Flavor::Prometheus
            };
        }
        Ok(store)
    }

    /// The flavour in use (found at connect for [`Flavor::Auto`]).
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The read API's base URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// Makes every accepted sample searchable now (VictoriaMetrics' `/internal/force_flush`;
    /// nothing to do on Prometheus). For tests and for a read that must see a write just made.
    pub fn flush(&self) -> Result<(), StoreError> {
        if self.flavor != Flavor::VictoriaMetrics {
            return Ok(());
        }
        let url = format!("{}/internal/force_flush", self.config.url);
        let (status, body) = self.get(&url)?;
        if status != 200 {
            return Err(self.refused(&url, status, &body));
        }
        Ok(())
    }

    /// The keys of the series matching `selector` with a sample in `range` (cursors left out).
    pub fn series(
        &self,
        selector: &Selector,
        range: TimeRange,
    ) -> Result<Vec<SeriesKey>, StoreError> {
        let Some((start, end)) = clamp(range) else {
            return Ok(Vec::new());
        };
        let url = format!("{}/api/v1/series", self.config.url);
        let (status, body) = self.post_form(
            &url,
            &[
                ("match[]", promql_selector(selector)),
                // VictoriaMetrics reads `start=0` as "not given" (the last day): 1 ms instead,
                // the same day of its per-day index.
                ("start", seconds(start.max(1))),
                ("end", seconds(end - 1)),
            ],
        )?;
        if status != 200 {
            return Err(self.refused(&url, status, &body));
        }
        let answer: ApiAnswer<Vec<BTreeMap<String, String>>> = self.json(&url, &body)?;
        let mut keys = Vec::new();
        for labels in answer.data.unwrap_or_default() {
            let key = key_of(labels, &url)?;
            if key.name != CURSOR_METRIC && selector.matches(&key) {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn post_form(&self, url: &str, form: &[(&str, String)]) -> Result<(u16, Vec<u8>), StoreError> {
        let resp = self
            .agent
            .post(url)
            .send_form(form.iter().map(|(k, v)| (*k, v.as_str())))
            .map_err(|e| self.unreachable(url, e))?;
        self.body(url, resp)
    }

    fn get(&self, url: &str) -> Result<(u16, Vec<u8>), StoreError> {
        let resp = self
            .agent
            .get(url)
            .call()
            .map_err(|e| self.unreachable(url, e))?;
        self.body(url, resp)
    }

    fn body(
        &self,
        url: &str,
        resp: ureq::http::Response<ureq::Body>,
    ) -> Result<(u16, Vec<u8>), StoreError> {
        let status = resp.status().as_u16();
        let limit = self.config.max_response_bytes;
        let mut buf = Vec::new();
        // One byte past the limit tells "exactly at the limit" from "over it".
        resp.into_body()
            .into_reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| StoreError::Remote {
                url: url.to_owned(),
                detail: format!("reading the answer: {e}"),
            })?;
        if buf.len() as u64 > limit {
            return Err(StoreError::RemoteTooLarge {
                url: url.to_owned(),
                limit,
            });
        }
        Ok((status, buf))
    }

    fn unreachable(&self, url: &str, e: ureq::Error) -> StoreError {
        StoreError::Remote {
            url: url.to_owned(),
            detail: e.to_string(),
        }
    }

    fn refused(&self, url: &str, status: u16, body: &[u8]) -> StoreError {
        StoreError::RemoteRefused {
            url: url.to_owned(),
            status,
            body: String::from_utf8_lossy(body).chars().take(300).collect(),
        }
    }

    fn json<'a, T: Deserialize<'a>>(&self, url: &str, body: &'a [u8]) -> Result<T, StoreError> {
        serde_json::from_slice(body).map_err(|e| StoreError::RemoteMalformed {
            url: url.to_owned(),
            detail: e.to_string(),
        })
    }

    /// Raw samples of every matching series in `[start, end)`, cursors included.
    fn read_raw(
        &self,
        selector: &Selector,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<(SeriesKey, Vec<Point>)>, StoreError> {
        let selector_text = promql_selector(selector);
        let mut out = Vec::new();
        match self.flavor {
            Flavor::VictoriaMetrics | Flavor::Auto => {
                let url = format!("{}/api/v1/export", self.config.url);
                let (status, body) = self.post_form(
                    &url,
                    &[
                        ("match[]", selector_text),
                        ("start", seconds(start)),
                        ("end", seconds(end - 1)),
                    ],
                )?;
                if status != 200 {
                    return Err(self.refused(&url, status, &body));
                }
                for line in body.split(|&b| b == b'\n') {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    // A cut answer ends in a line that does not parse: an error, never a
                    // silently shorter series.
                    let line: ExportLine = self.json(&url, line)?;
                    if line.values.len() != line.timestamps.len() {
                        return Err(StoreError::RemoteMalformed {
                            url,
                            detail: "values and timestamps differ in length".into(),
                        });
                    }
                    let points = line
                        .timestamps
                        .iter()
                        .zip(&line.values)
                        .filter_map(|(&ts, v)| v.as_f64().map(|v| Point::new(ts, v)))
                        .collect();
                    out.push((key_of(line.metric, &url)?, points));
                }
            }
            Flavor::Prometheus => {
                let url = format!("{}/api/v1/query", self.config.url);
                // Prometheus 2 selects [t − N, t], both ends included: t = end − 1 ms.
                let (status, body) = self.post_form(
                    &url,
                    &[
                        (
                            "query",
                            format!("{selector_text}[{}ms]", (end - 1 - start).max(0)),
                        ),
                        ("time", seconds(end - 1)),
                    ],
                )?;
                let answer: ApiAnswer<MatrixData> = self.json(&url, &body)?;
                if status != 200 || answer.status != "success" {
                    let why = answer.error.unwrap_or_default();
                    return Err(self.refused(&url, status, why.as_bytes()));
                }
                let Some(data) = answer.data else {
                    return Ok(out);
                };
                if data.result_type != "matrix" {
                    return Err(StoreError::RemoteMalformed {
                        url,
                        detail: format!("expected a matrix, got {}", data.result_type),
                    });
                }
                for s in data.result {
                    let mut points = Vec::with_capacity(s.values.len());
                    for (t, v) in s.values {
                        let value: f64 = v.parse().map_err(|_| StoreError::RemoteMalformed {
                            url: url.clone(),
                            detail: format!("sample value {v:?}"),
                        })?;
                        points.push(Point::new((t * 1000.0).round() as Timestamp, value));
                    }
                    out.push((key_of(s.metric, &url)?, points));
                }
            }
        }
        Ok(out)
    }

    fn send(&self, series: &[Series]) -> Result<(), StoreError> {
        let url = &self.config.write_url;
        let body = snap::raw::Encoder::new()
            .compress_vec(&encode_write_request(series))
            .map_err(|e| StoreError::Remote {
                url: url.clone(),
                detail: format!("snappy: {e}"),
            })?;
        let resp = self
            .agent
            .post(url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .send(&body[..])
            .map_err(|e| self.unreachable(url, e))?;
        let (status, answer) = self.body(url, resp)?;
        if !(200..300).contains(&status) {
            return Err(self.refused(url, status, &answer));
        }
        Ok(())
    }
}

impl MetricStore for RemoteStore {
    type Error = StoreError;

    /// A 4xx other than 429: Prometheus answers 400 to samples older than its head or a
    /// timestamp rewritten, and will answer the same to every retry.
    fn refuses(err: &StoreError) -> bool {
        matches!(err, StoreError::RemoteRefused { status, .. } if (400..500).contains(status) && *status != 429)
    }

    fn write(&mut self, batch: &Batch) -> Result<usize, StoreError> {
        let mut requests: Vec<Vec<Series>> = vec![Vec::new()];
        let mut in_request = 0;
        let mut written = 0;
        let max = self.config.max_samples_per_request;
        for s in &batch.series {
            if s.key.name == CURSOR_METRIC {
                return Err(StoreError::InvalidInput(format!(
                    "{CURSOR_METRIC} is the name novaml keeps source cursors under"
                )));
            }
            let points = normalise(s.points.clone());
            written += points.len();
            for part in points.chunks(max) {
                if in_request + part.len() > max {
                    requests.push(Vec::new());
                    in_request = 0;
                }
                in_request += part.len();
                if let Some(last) = requests.last_mut() {
                    last.push(Series::new(s.key.clone(), part.to_vec()));
                }
            }
        }
        let mut cursor_stamp = None;
        if let Some(cursor) = batch.cursor {
            let key = SeriesKey::new(CURSOR_METRIC)
                .and_then(|k| k.with_label("source", batch.source.clone()))
                .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
            // Stamped now, so that it is in order for Prometheus; its value is the cursor
            // (milliseconds are exact in an f64 up to 2^53).
            let stamp = novaml_core::time::now_ms().max(self.last_cursor_stamp.saturating_add(1));
            cursor_stamp = Some(stamp);
            let point = Point::new(stamp, cursor as f64);
            if let Some(last) = requests.last_mut() {
                last.push(Series::new(key, vec![point]));
            }
        }
        for request in requests.iter().filter(|r| !r.is_empty()) {
            self.send(request)?;
        }
        if let Some(stamp) = cursor_stamp {
            self.last_cursor_stamp = stamp;
        }
        Ok(written)
    }

    fn query(
        &self,
        selector: &Selector,
        range: TimeRange,
        step: Option<StepSpec>,
    ) -> Result<Vec<Series>, StoreError> {
        let Some((start, end)) = clamp(range) else {
            return Ok(Vec::new());
        };
        let mut merged: BTreeMap<SeriesKey, Vec<Point>> = BTreeMap::new();
        for (key, points) in self.read_raw(selector, start, end)? {
            if key.name == CURSOR_METRIC || !selector.matches(&key) {
                continue;
            }
            merged.entry(key).or_default().extend(points);
        }
        let mut out = Vec::with_capacity(merged.len());
        for (key, points) in merged {
            let mut points = normalise(points);
            points.retain(|p| range.contains(p.ts));
            if points.is_empty() {
                continue;
            }
            if let Some(step) = step {
                points = step.apply_in(range, &points);
            }
            out.push(Series::new(key, points));
        }
        Ok(out)
    }

    fn cursor(&self, source: &str) -> Result<Option<Timestamp>, StoreError> {
        let key = SeriesKey::new(CURSOR_METRIC)
            .and_then(|k| k.with_label("source", source))
            .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        let Some((start, end)) = clamp(TimeRange::all()) else {
            return Ok(None);
        };
        let found = self.read_raw(&Selector::exact(&key), start, end)?;
        Ok(found
            .into_iter()
            .filter(|(k, _)| k == &key)
            .flat_map(|(_, p)| p)
            .max_by_key(|p| p.ts)
            .map(|p| p.value as Timestamp))
    }

    /// Retention belongs to the TSDB: nothing is deleted, 0 is returned.
    fn delete_before(&mut self, _cutoff: Timestamp) -> Result<usize, StoreError> {
        Ok(0)
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The protobuf `WriteRequest` (remote write 1.0) of `series`, labels sorted (`__name__` first
/// by sort order).
///
/// Written by hand: four messages of `prompb/types.proto` and `remote.proto` (WriteRequest,
/// TimeSeries, Label, Sample) are a few dozen lines, where prost would add a proc-macro build.
pub fn encode_write_request(series: &[Series]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ts_buf = Vec::new();
    let mut buf = Vec::new();
    for s in series {
        ts_buf.clear();
        let mut labels: Vec<(&str, &str)> = vec![("__name__", s.key.name.as_str())];
        labels.extend(s.key.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        labels.sort_unstable();
        for (name, value) in labels {
            buf.clear();
            bytes_field(&mut buf, 1, name.as_bytes());
            bytes_field(&mut buf, 2, value.as_bytes());
            bytes_field(&mut ts_buf, 1, &buf);
        }
        for p in &s.points {
            buf.clear();
            varint(&mut buf, (1 << 3) | 1); // value: double, fixed64
            buf.extend_from_slice(&p.value.to_le_bytes());
            varint(&mut buf, 2 << 3); // timestamp: int64, varint
            varint(&mut buf, p.ts as u64);
            bytes_field(&mut ts_buf, 2, &buf);
        }
        bytes_field(&mut out, 1, &ts_buf);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_request_bytes_match_the_protobuf_encoding() {
        let s = Series {
            key: SeriesKey::new("m")
                .and_then(|k| k.with_label("a", "b"))
                .expect("key"),
            points: vec![Point::new(300, 1.5)],
        };
        let got = encode_write_request(&[s]);
        // Hand-checked against protoc's encoding of
        // timeseries { labels { name: "__name__" value: "m" } labels { name: "a" value: "b" }
        //              samples { value: 1.5 timestamp: 300 } }
        let mut want = vec![0x0a, 0x25];
        want.extend([0x0a, 0x0d, 0x0a, 0x08]);
        want.extend(b"__name__");
        want.extend([0x12, 0x01, b'm']);
        want.extend([0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b']);
        want.extend([0x12, 0x0c, 0x09]);
        want.extend(1.5f64.to_le_bytes());
        want.extend([0x10, 0xac, 0x02]);
        assert_eq!(got, want);
    }

    #[test]
    fn selectors_become_promql_that_both_tsdbs_accept() {
        let cases = [
            ("cpu", r#"{__name__="cpu"}"#),
            ("{}", r#"{__name__=~".+"}"#),
            (
                r#"{host=~"a|b",mode!~"idle"}"#,
                r#"{host=~"a|b",mode!~"idle",__name__=~".+"}"#,
            ),
            (r#"x{a="q\"r\\s"}"#, r#"{__name__="x",a="q\"r\\s"}"#),
        ];
        for (text, want) in cases {
            let sel: Selector = text.parse().expect("selector");
            assert_eq!(promql_selector(&sel), want, "{text}");
        }
    }

    #[test]
    fn points_are_sorted_finite_and_one_per_timestamp_the_last_winning() {
        let got = normalise(vec![
            Point::new(3, 3.0),
            Point::new(1, 1.0),
            Point::new(3, 30.0),
            Point::new(2, f64::NAN),
        ]);
        assert_eq!(got, vec![Point::new(1, 1.0), Point::new(3, 30.0)]);
        assert_eq!(seconds(1_001), "1.001");
        assert_eq!(clamp(TimeRange::new(-5, 0).expect("range")), None);
    }
}
