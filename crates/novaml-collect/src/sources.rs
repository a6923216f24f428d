//! The sources, one file each, with the section of the configuration file that configures
//! each (beside the source it builds). Sources only collect; [`crate::Runner`] owns time.

pub mod file;
pub mod host;
pub mod prometheus_api;
pub mod prometheus_scrape;
pub mod simulator;

use std::time::Duration;

use novaml_core::{Source, SourceError};
use serde::Deserialize;

use crate::{CollectError, Schedule};

/// `[sources]` of the configuration file: every source to collect.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesSection {
    /// `[[sources.prometheus_api]]`
    pub prometheus_api: Vec<prometheus_api::ApiSection>,
    /// `[[sources.scrape]]`
    pub scrape: Vec<prometheus_scrape::ScrapeSection>,
    /// `[sources.host]`
    pub host: Option<host::HostSection>,
    /// `[sources.simulator]`
    pub simulator: Option<simulator::SimSection>,
    /// `[[sources.file]]`
    pub file: Vec<file::FileSection>,
}

/// A source ready to run, with how the status page describes it.
pub struct Configured {
    /// The source.
    pub source: Box<dyn Source>,
    /// When and how patiently it is collected.
    pub schedule: Schedule,
    /// `prometheus_api`, `prometheus_scrape`, `host`, `simulator` or `file`.
    pub kind: &'static str,
    /// Whether its data is simulated.
    pub simulated: bool,
}

impl std::fmt::Debug for Configured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configured")
            .field("source", &self.source.name())
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl SourcesSection {
    /// Builds every configured source (a disabled host or simulator section builds none); the
    /// first invalid value fails, naming its field.
    pub fn resolve(&self) -> Result<Vec<Configured>, CollectError> {
        let mut names = std::collections::HashSet::new();
        for name in self
            .prometheus_api
            .iter()
            .map(|s| &s.name)
            .chain(self.scrape.iter().map(|s| &s.name))
            .chain(self.file.iter().map(|s| &s.name))
        {
            if name.is_empty() || !names.insert(name.clone()) {
                return Err(CollectError::Config {
                    field: "sources".into(),
                    reason: format!("source names must be unique and non-empty ({name:?})"),
                });
            }
        }
        let mut out = Vec::new();
        for (i, s) in self.prometheus_api.iter().enumerate() {
            out.push(s.resolve(&format!("sources.prometheus_api[{i}]"))?);
        }
        for (i, s) in self.scrape.iter().enumerate() {
            out.push(s.resolve(&format!("sources.scrape[{i}]"))?);
        }
        if let Some(h) = self.host.as_ref().filter(|h| h.enabled) {
            out.push(h.resolve("sources.host")?);
        }
        if let Some(s) = self.simulator.as_ref().filter(|s| s.enabled) {
            out.push(s.resolve("sources.simulator")?);
        }
        for (i, f) in self.file.iter().enumerate() {
            out.push(f.resolve(&format!("sources.file[{i}]"))?);
        }
        Ok(out)
    }
}

/// A duration field of a source's section; the error names the field.
pub(crate) fn config_duration(field: &str, value: &str) -> Result<Duration, CollectError> {
    novaml_core::time::config_duration(field, value).map_err(|e| CollectError::Config {
        field: field.to_owned(),
        reason: match e {
            novaml_core::CoreError::Config { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// `true`, the default of `enabled`.
pub(crate) const fn enabled() -> bool {
    true
}

/// An HTTP client. The runner's timeout bounds each collection and is the one that counts (as
/// `kind="timeout"`); the client's own, twice as long, is only a backstop for callers without
/// a runner.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, CollectError> {
    reqwest::Client::builder()
        .timeout(timeout * 2)
        .user_agent(concat!("novaml/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| CollectError::Http {
            url: String::new(),
            source,
        })
}

/// Transport failures, 5xx and 429 are worth retrying; other 4xx mean the request itself is
/// wrong (bad query, bad path) and retrying will not help.
pub(crate) fn classify_http(e: CollectError) -> SourceError {
    match &e {
        CollectError::Status { status, .. }
            if *status < 500 && *status != 429 && *status != 408 =>
        {
            SourceError::Fatal(Box::new(e))
        }
        _ => SourceError::Transient(Box::new(e)),
    }
}

/// Keeps finite points, counting the others under `skipped["non_finite"]`.
pub(crate) fn drop_non_finite(series: &mut [novaml_core::Series]) -> u64 {
    let mut dropped = 0u64;
    for s in series {
        let before = s.points.len();
        s.points.retain(|p| p.value.is_finite());
        dropped += (before - s.points.len()) as u64;
    }
    dropped
}
