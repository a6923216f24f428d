//! Reads a Prometheus-compatible HTTP API (Prometheus, VictoriaMetrics, Thanos, Mimir) with
//! PromQL range queries: backfills a historical range, then follows from its cursor.
//!
//! We call `/api/v1/query_range` with reqwest directly instead of `prometheus-http-query`: we need
//! our own timeout, retry and error classification per request, and the response is one small
//! JSON shape.
//!
//! The source evaluates its queries on a fixed grid (multiples of `step` since the epoch), so a
//! resumed run lands on the same timestamps as the run it continues: no duplicates, no gaps. It
//! stays `delay` behind now, because Prometheus may not have ingested the latest scrape yet and a
//! value computed too early would differ from the one computed later.

use std::collections::BTreeMap;
use std::time::Duration;

use novaml_core::prom_api::{ApiAnswer, MatrixData};
use novaml_core::{
    BoxFuture, CollectContext, Collected, Point, Series, SeriesKey, Source, SourceError, Timestamp,
};
use serde::Deserialize;
use tracing::{debug, info};

use crate::sources::{Configured, classify_http, config_duration, drop_non_finite, http_client};
use crate::{CollectError, ScheduleSection};

/// Prometheus refuses range queries of more than 11,000 points per series.
const MAX_POINTS_PER_QUERY: i64 = 11_000;

/// One PromQL query to collect.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// Metric name for results without `__name__` (e.g. `rate(...)`); must be a valid metric name.
    pub name: String,
    /// The PromQL expression.
    pub expr: String,
}

/// Configuration of a Prometheus API source (durations in ms, resolved from config strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Unique source name (also the cursor key).
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    /// Queries, all evaluated on the same grid.
    pub queries: Vec<QueryConfig>,
    /// Resolution of the grid.
    pub step: Duration,
    /// How far back the first run reaches.
    pub backfill: Duration,
    /// How far behind now collection stays.
    pub delay: Duration,
    /// Most grid points per query request (≤ 11,000).
    pub chunk_points: i64,
}

/// `[[sources.prometheus_api]]` of the configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Unique source name.
    pub name: String,
    /// Base URL.
    pub url: String,
    /// Queries.
    pub queries: Vec<QueryConfig>,
    /// Resolution of the grid.
    #[serde(default = "d_step")]
    pub step: String,
    /// How far back the first run reaches.
    #[serde(default = "d_backfill")]
    pub backfill: String,
    /// How far behind now collection stays.
    #[serde(default = "d_delay")]
    pub delay: String,
    /// Most grid points per query request.
    #[serde(default = "d_chunk")]
    pub chunk_points: i64,
    /// Interval, timeout, retries.
    #[serde(flatten)]
    pub schedule: ScheduleSection,
}

fn d_step() -> String {
    "15s".into()
}
fn d_backfill() -> String {
    "1h".into()
}
fn d_delay() -> String {
    "30s".into()
}
const fn d_chunk() -> i64 {
    2_000
}

impl ApiSection {
    /// A section with the defaults: `name` reading `queries` from `url` every 15 s.
    pub fn new(name: &str, url: &str, queries: Vec<QueryConfig>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            queries,
            step: d_step(),
            backfill: d_backfill(),
            delay: d_delay(),
            chunk_points: d_chunk(),
            schedule: ScheduleSection::default(),
        }
    }

    /// Checks the section at `field` and builds the source.
    pub fn resolve(&self, field: &str) -> Result<Configured, CollectError> {
        let schedule = self.schedule.resolve(field)?;
        let cfg = ApiConfig {
            name: self.name.clone(),
            url: self.url.clone(),
            queries: self.queries.clone(),
            step: config_duration(&format!("{field}.step"), &self.step)?,
            backfill: config_duration(&format!("{field}.backfill"), &self.backfill)?,
            delay: config_duration(&format!("{field}.delay"), &self.delay)?,
            chunk_points: self.chunk_points,
        };
        Ok(Configured {
            source: Box::new(PrometheusApi::new(cfg, schedule.timeout)?),
            schedule,
            kind: "prometheus_api",
            simulated: false,
        })
    }
}

/// The Prometheus API source.
#[derive(Debug)]
pub struct PrometheusApi {
    config: ApiConfig,
    step_ms: i64,
    client: reqwest::Client,
    /// Last grid timestamp fully collected.
    cursor: Option<Timestamp>,
}

/// The answer of a range query (the type the remote store reads too).
type Response = ApiAnswer<MatrixData>;

impl PrometheusApi {
    /// A source; validates the configuration (field names as in the config file).
    pub fn new(config: ApiConfig, timeout: Duration) -> Result<Self, CollectError> {
        let field = |f: &str| format!("sources.prometheus_api[{}].{f}", config.name);
        reqwest::Url::parse(&config.url).map_err(|e| CollectError::Config {
            field: field("url"),
            reason: e.to_string(),
        })?;
        let step_ms = config.step.as_millis() as i64;
        if step_ms < 1000 {
            return Err(CollectError::Config {
                field: field("step"),
                reason: "must be at least 1s".into(),
            });
        }
        if config.queries.is_empty() {
            return Err(CollectError::Config {
                field: field("queries"),
                reason: "at least one query is needed".into(),
            });
        }
        for q in &config.queries {
            if !novaml_core::is_valid_metric_name(&q.name) {
                return Err(CollectError::Config {
                    field: field("queries.name"),
                    reason: format!("{:?} is not a valid metric name", q.name),
                });
            }
        }
        if !(1..=MAX_POINTS_PER_QUERY).contains(&config.chunk_points) {
            return Err(CollectError::Config {
                field: field("chunk_points"),
                reason: format!("must be in 1..={MAX_POINTS_PER_QUERY}"),
            });
        }
        Ok(Self {
            client: http_client(timeout)?,
            step_ms,
            config,
            cursor: None,
        })
    }

    fn align(&self, ts: Timestamp) -> Timestamp {
        ts.div_euclid(self.step_ms) * self.step_ms
    }

    async fn query_range(
        &self,
        q: &QueryConfig,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Series>, SourceError> {
        let url = format!(
            "{}/api/v1/query_range",
            self.config.url.trim_end_matches('/')
        );
        let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
        let resp = self
            .client
            .get(&url)
            .query(&[
                ("query", q.expr.as_str()),
                ("start", &secs(start)),
                ("end", &secs(end)),
                ("step", &secs(self.step_ms)),
            ])
            .send()
            .await
            .map_err(|source| {
                classify_http(CollectError::Http {
                    url: url.clone(),
                    source,
                })
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|source| {
            classify_http(CollectError::Http {
                url: url.clone(),
                source,
            })
        })?;
        let parsed: Result<Response, _> = serde_json::from_slice(&body);
        if !status.is_success() {
            // Prometheus explains 4xx in the JSON `error` field.
            let body = match &parsed {
                Ok(Response { error: Some(e), .. }) => e.clone(),
                _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            };
            return Err(classify_http(CollectError::Status {
                url,
                status: status.as_u16(),
                body,
            }));
        }
        let bad = |reason: String| {
            SourceError::Transient(Box::new(CollectError::BadResponse {
                url: url.clone(),
                reason,
            }))
        };
        let resp = parsed.map_err(|e| bad(format!("invalid JSON: {e}")))?;
        if resp.status != "success" {
            return Err(bad(format!(
                "status {:?}: {}",
                resp.status,
                resp.error.unwrap_or_default()
            )));
        }
        let data = resp.data.ok_or_else(|| bad("no data".into()))?;
        if data.result_type != "matrix" {
            return Err(SourceError::Fatal(Box::new(CollectError::BadResponse {
                url: url.clone(),
                reason: format!(
                    "query {:?} gives a {}, not a range vector",
                    q.expr, data.result_type
                ),
            })));
        }
        let mut out = Vec::with_capacity(data.result.len());
        for mut m in data.result {
            let name = m
                .metric
                .remove("__name__")
                .unwrap_or_else(|| q.name.clone());
            let mut key = SeriesKey {
                name,
                labels: BTreeMap::new(),
            };
            key.labels = m.metric;
            let points = m
                .values
                .into_iter()
                .map(|(t, v)| {
                    let value = match v.as_str() {
                        "+Inf" => f64::INFINITY,
                        "-Inf" => f64::NEG_INFINITY,
                        v => v.parse().unwrap_or(f64::NAN),
                    };
                    Point::new((t * 1000.0).round() as i64, value)
                })
                .collect();
            out.push(Series::new(key, points));
        }
        Ok(out)
    }

    async fn collect_range(&mut self, ctx: CollectContext) -> Result<Collected, SourceError> {
        let end_limit = self.align(ctx.now - self.config.delay.as_millis() as i64);
        let start = match self.cursor {
            Some(c) => c + self.step_ms,
            None => {
                let s = self.align(ctx.now - self.config.backfill.as_millis() as i64);
                info!(source = %self.config.name, from = s, "No cursor: backfilling.");
                s
            }
        };
        if start > end_limit {
            return Ok(Collected::default());
        }
        let end = end_limit.min(start + (self.config.chunk_points - 1) * self.step_ms);
        let mut series = Vec::new();
        for q in &self.config.queries {
            series.extend(self.query_range(q, start, end).await?);
        }
        let non_finite = drop_non_finite(&mut series);
        debug!(source = %self.config.name, start, end, series = series.len(), "Range collected.");
        // Only now, with every query answered, does the cursor move.
        self.cursor = Some(end);
        let skipped = if non_finite > 0 {
            vec![("non_finite", non_finite)]
        } else {
            vec![]
        };
        Ok(Collected {
            series,
            skipped,
            more: end < end_limit,
        })
    }
}

impl Source for PrometheusApi {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn collect<'a>(
        &'a mut self,
        ctx: CollectContext,
    ) -> BoxFuture<'a, Result<Collected, SourceError>> {
        Box::pin(self.collect_range(ctx))
    }

    fn cursor(&self) -> Option<Timestamp> {
        self.cursor
    }

    fn restore(&mut self, cursor: Timestamp) {
        self.cursor = Some(self.align(cursor));
    }
}
