//! The sources, one file each. Sources only collect; [`crate::Runner`] owns time.

pub mod file;
pub mod host;
pub mod prometheus_api;
pub mod prometheus_scrape;
pub mod simulator;

use std::time::Duration;

use novaml_core::SourceError;

use crate::CollectError;

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
