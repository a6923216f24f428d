//! Scrapes an exposition endpoint (node_exporter, a service's `/metrics`), text format 0.0.4 or
//! OpenMetrics, as Prometheus would: adds `job` and `instance` labels, stamps samples without a
//! timestamp with the scrape time, skips and counts bad lines.

use std::time::Duration;

use novaml_core::{BoxFuture, CollectContext, Collected, Source, SourceError};
use serde::Deserialize;
use tracing::warn;

use crate::exposition::{self, Dialect, Limits};
use crate::sources::Configured;
use crate::sources::{classify_http, http_client};
use crate::{CollectError, ScheduleSection};

/// Configuration of one scrape target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeConfig {
    /// Unique source name.
    pub name: String,
    /// URL of the exposition endpoint, e.g. `http://127.0.0.1:9100/metrics`.
    pub url: String,
    /// Value of the `job` label; defaults to the source name.
    pub job: Option<String>,
    /// Most labels per series; longer label sets are skipped and counted.
    pub max_labels: usize,
}

const fn default_max_labels() -> usize {
    64
}

/// `[[sources.scrape]]` of the configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeSection {
    /// Unique source name.
    pub name: String,
    /// URL of the exposition endpoint.
    pub url: String,
    /// Value of the `job` label; defaults to the source name.
    #[serde(default)]
    pub job: Option<String>,
    /// Most labels per series.
    #[serde(default = "default_max_labels")]
    pub max_labels: usize,
    /// Interval, timeout, retries.
    #[serde(flatten)]
    pub schedule: ScheduleSection,
}

impl ScrapeSection {
    /// A section with the defaults.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            job: None,
            max_labels: default_max_labels(),
            schedule: ScheduleSection::default(),
        }
    }

    /// Checks the section at `field` and builds the source.
    pub fn resolve(&self, field: &str) -> Result<Configured, CollectError> {
        let schedule = self.schedule.resolve(field)?;
        let cfg = ScrapeConfig {
            name: self.name.clone(),
            url: self.url.clone(),
            job: self.job.clone(),
            max_labels: self.max_labels,
        };
        Ok(Configured {
            source: Box::new(PrometheusScrape::new(cfg, schedule.timeout)?),
            schedule,
            kind: "prometheus_scrape",
            simulated: false,
        })
    }
}

/// The scrape source.
#[derive(Debug)]
pub struct PrometheusScrape {
    config: ScrapeConfig,
    instance: String,
    client: reqwest::Client,
}

impl PrometheusScrape {
    /// A scrape source; fails when the URL is not an http(s) URL with a host.
    pub fn new(config: ScrapeConfig, timeout: Duration) -> Result<Self, CollectError> {
        let url = reqwest::Url::parse(&config.url).map_err(|e| CollectError::Config {
            field: format!("sources.scrape[{}].url", config.name),
            reason: e.to_string(),
        })?;
        let host = url.host_str().ok_or_else(|| CollectError::Config {
            field: format!("sources.scrape[{}].url", config.name),
            reason: "the URL has no host".into(),
        })?;
        let instance = match url.port_or_known_default() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Ok(Self {
            config,
            instance,
            client: http_client(timeout)?,
        })
    }

    async fn scrape(&self, ctx: CollectContext) -> Result<Collected, SourceError> {
        let url = &self.config.url;
        let resp = self
            .client
            .get(url)
            .header(
                reqwest::header::ACCEPT,
                "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
            )
            .send()
            .await
            .map_err(|source| classify_http(CollectError::Http { url: url.clone(), source }))?;
        let status = resp.status();
        let dialect = Dialect::from_content_type(
            resp.headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        let body = resp.bytes().await.map_err(|source| {
            classify_http(CollectError::Http {
                url: url.clone(),
                source,
            })
        })?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(classify_http(CollectError::Status {
                url: url.clone(),
                status: status.as_u16(),
                body,
            }));
        }
        let limits = Limits {
            max_labels: self.config.max_labels,
            ..Limits::default()
        };
        let parsed = exposition::parse(&body, dialect, ctx.now, limits);
        let job = self
            .config
            .job
            .clone()
            .unwrap_or_else(|| self.config.name.clone());
        let mut skipped: std::collections::BTreeMap<&'static str, u64> = Default::default();
        for s in &parsed.skipped {
            *skipped.entry(s.reason.as_str()).or_default() += 1;
        }
        if let Some(first) = parsed.skipped.first() {
            warn!(source = %self.config.name, url = %url, skipped = parsed.skipped.len(), first_line = first.line, first_reason = first.reason.as_str(), "Skipped exposition lines.");
        }
        let mut series = parsed.series;
        for s in &mut series {
            // As Prometheus with honor_labels = false: target labels win, clashing ones are kept
            // under `exported_`.
            for (label, value) in [("job", &job), ("instance", &self.instance)] {
                if let Some(old) = s.key.labels.insert(label.to_owned(), value.clone()) {
                    s.key.labels.insert(format!("exported_{label}"), old);
                }
            }
        }
        Ok(Collected {
            series,
            skipped: skipped.into_iter().collect(),
            more: false,
        })
    }
}

impl Source for PrometheusScrape {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn collect<'a>(
        &'a mut self,
        ctx: CollectContext,
    ) -> BoxFuture<'a, Result<Collected, SourceError>> {
        Box::pin(self.scrape(ctx))
    }
}
