//! The configuration file (`novaml.toml`): documented serde structs, resolved into sources in one
//! step. Precedence: defaults < file < environment (`NOVAML__SECTION__KEY=value`) < flags.
//! Every error names the field, as written in the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use novaml_collect::sources::file::{FileConfig, FileFormat, FileSource};
use novaml_collect::sources::host::Host;
use novaml_collect::sources::prometheus_api::{ApiConfig, PrometheusApi, QueryConfig};
use novaml_collect::sources::prometheus_scrape::{PrometheusScrape, ScrapeConfig};
use novaml_collect::sources::simulator::{SimConfig, Simulator};
use novaml_collect::time::parse_duration;
use novaml_collect::{RetryPolicy, Schedule};
use novaml_core::Source;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    pub(crate) store: StoreConfig,
    pub(crate) collect: CollectConfig,
    pub(crate) server: ServerConfig,
    pub(crate) sources: SourcesConfig,
    pub(crate) detect: DetectSection,
}

/// `[detect]`: live anomaly detection over the store (always on in `novaml demo`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DetectSection {
    /// Run detection alongside `collect --follow`.
    pub(crate) enabled: bool,
    /// Between passes.
    pub(crate) interval: String,
    /// Scores at or above this open an incident.
    pub(crate) threshold: f64,
    /// Add the CUSUM change-point member.
    pub(crate) changepoint: bool,
    /// Add the Holt forecast-residual member.
    pub(crate) forecast: bool,
    /// How far back each pass reads.
    pub(crate) lookback: String,
    /// At most this many of the latest rows per series.
    pub(crate) max_rows: usize,
    /// Metric-name prefixes that are not scored.
    pub(crate) exclude: Vec<String>,
    /// Alert receivers.
    pub(crate) webhooks: Vec<novaml_server::alerts::Webhook>,
    /// Maintenance windows.
    pub(crate) maintenance: Vec<MaintenanceEntry>,
    /// Absolute severity rules, checked before the built-in ones (first match wins).
    pub(crate) severity: Vec<novaml_anomaly::incident::SeverityRule>,
}

impl Default for DetectSection {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: "30s".into(),
            threshold: novaml_anomaly::streaming::DEFAULT_THRESHOLD,
            changepoint: false,
            forecast: false,
            lookback: "3d".into(),
            max_rows: 3_000,
            exclude: vec!["novaml_".into()],
            webhooks: Vec::new(),
            maintenance: Vec::new(),
            severity: Vec::new(),
        }
    }
}

/// `[[detect.maintenance]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaintenanceEntry {
    /// Label matchers, e.g. `{host="h1"}`.
    pub(crate) selector: String,
    /// RFC 3339 or Unix seconds.
    pub(crate) start: String,
    /// RFC 3339 or Unix seconds.
    pub(crate) end: String,
    /// Shown on the suppressed incidents.
    #[serde(default = "d_reason")]
    pub(crate) reason: String,
}

fn d_reason() -> String {
    "maintenance".into()
}

/// `[detect]` resolved.
pub(crate) struct ResolvedDetect {
    pub(crate) interval: Duration,
    pub(crate) lookback: Duration,
    pub(crate) max_rows: usize,
    pub(crate) exclude: Vec<String>,
    pub(crate) config: novaml_anomaly::incident::DetectConfig,
    pub(crate) webhooks: Vec<novaml_server::alerts::Webhook>,
}

impl DetectSection {
    /// Checks and builds the detection settings.
    pub(crate) fn resolve(&self) -> Result<ResolvedDetect> {
        use novaml_anomaly::incident::{DetectConfig, SeverityRules, Suppression};
        let interval = duration("detect.interval", &self.interval)?;
        if interval.is_zero() {
            bail!("invalid configuration `detect.interval`: must be positive");
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            bail!("invalid configuration `detect.threshold`: must be in [0, 1]");
        }
        if self.max_rows < 300 {
            bail!("invalid configuration `detect.max_rows`: must be at least 300");
        }
        let params = novaml_anomaly::streaming::StreamingParams::default()
            .changepoint(self.changepoint)
            .forecast(self.forecast)
            .check()?;
        let mut config = DetectConfig::new(params);
        config.threshold = self.threshold;
        let mut rules = self.severity.clone();
        rules.extend(SeverityRules::defaults());
        config.severity = SeverityRules::new(rules)
            .map_err(|e| anyhow!("invalid configuration `detect.severity`: {e}"))?;
        for (i, m) in self.maintenance.iter().enumerate() {
            let field = format!("detect.maintenance[{i}]");
            let time = |k: &str, v: &str| {
                novaml_collect::time::parse_timestamp(v).ok_or_else(|| {
                    anyhow!("invalid configuration `{field}.{k}`: {v:?} is not a timestamp")
                })
            };
            let (start, end) = (time("start", &m.start)?, time("end", &m.end)?);
            if end < start {
                bail!("invalid configuration `{field}`: ends before it starts");
            }
            config.suppressions.push(Suppression {
                selector: m
                    .selector
                    .parse()
                    .map_err(|e| anyhow!("invalid configuration `{field}.selector`: {e}"))?,
                start,
                end,
                reason: m.reason.clone(),
            });
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                bail!("invalid configuration `detect.webhooks[{i}].url`: must be an http(s) URL");
            }
        }
        Ok(ResolvedDetect {
            interval,
            lookback: duration("detect.lookback", &self.lookback)?,
            max_rows: self.max_rows,
            exclude: self.exclude.clone(),
            config,
            webhooks: self.webhooks.clone(),
        })
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StoreConfig {
    /// SQLite file.
    pub(crate) path: PathBuf,
    /// Points older than this are deleted (checked hourly); empty keeps everything.
    pub(crate) retention: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("novaml-data/novaml.db"),
            retention: "30d".into(),
        }
    }
}

/// `[collect]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CollectConfig {
    /// Batches held between sources and the store before sources wait.
    pub(crate) buffer: usize,
    /// Seed of the retry jitter.
    pub(crate) seed: u64,
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            buffer: 64,
            seed: 1,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    /// Address to listen on.
    pub(crate) listen: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8600".into(),
        }
    }
}

/// `[sources]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SourcesConfig {
    pub(crate) prometheus_api: Vec<PromApiEntry>,
    pub(crate) scrape: Vec<ScrapeEntry>,
    pub(crate) host: Option<HostEntry>,
    pub(crate) simulator: Option<SimEntry>,
    pub(crate) file: Vec<FileEntry>,
}

/// Scheduling fields shared by every source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ScheduleEntry {
    pub(crate) interval: String,
    pub(crate) timeout: String,
    pub(crate) retries: u32,
    pub(crate) backoff: String,
    pub(crate) max_backoff: String,
}

impl Default for ScheduleEntry {
    fn default() -> Self {
        Self {
            interval: "15s".into(),
            timeout: "10s".into(),
            retries: 3,
            backoff: "500ms".into(),
            max_backoff: "30s".into(),
        }
    }
}

/// `[[sources.prometheus_api]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromApiEntry {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) queries: Vec<QueryConfig>,
    #[serde(default = "d_step")]
    pub(crate) step: String,
    #[serde(default = "d_backfill")]
    pub(crate) backfill: String,
    #[serde(default = "d_delay")]
    pub(crate) delay: String,
    #[serde(default = "d_chunk")]
    pub(crate) chunk_points: i64,
    #[serde(flatten)]
    pub(crate) schedule: ScheduleEntry,
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

/// `[[sources.scrape]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScrapeEntry {
    pub(crate) name: String,
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) job: Option<String>,
    #[serde(default = "d_labels")]
    pub(crate) max_labels: usize,
    #[serde(flatten)]
    pub(crate) schedule: ScheduleEntry,
}

const fn d_labels() -> usize {
    64
}

/// `[sources.host]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HostEntry {
    #[serde(default = "d_true")]
    pub(crate) enabled: bool,
    #[serde(flatten)]
    pub(crate) schedule: ScheduleEntry,
}

const fn d_true() -> bool {
    true
}

/// `[sources.simulator]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimEntry {
    #[serde(default = "d_true")]
    pub(crate) enabled: bool,
    #[serde(default = "d_seed")]
    pub(crate) seed: u64,
    #[serde(default = "d_hosts")]
    pub(crate) hosts: usize,
    #[serde(default = "d_vms")]
    pub(crate) vms_per_host: usize,
    #[serde(default = "d_sim_step")]
    pub(crate) step: String,
    #[serde(default = "d_history")]
    pub(crate) history: String,
    #[serde(default = "d_rate")]
    pub(crate) incident_rate: f64,
    #[serde(flatten)]
    pub(crate) schedule: ScheduleEntry,
}

const fn d_seed() -> u64 {
    42
}
const fn d_hosts() -> usize {
    3
}
const fn d_vms() -> usize {
    4
}
fn d_sim_step() -> String {
    "60s".into()
}
fn d_history() -> String {
    "3d".into()
}
const fn d_rate() -> f64 {
    0.35
}

/// `[[sources.file]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEntry {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    #[serde(default)]
    pub(crate) format: FileFormat,
    #[serde(default)]
    pub(crate) prefix: String,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) timestamp_column: Option<String>,
    #[serde(default)]
    pub(crate) columns: Vec<String>,
    #[serde(default)]
    pub(crate) row_interval: Option<String>,
    #[serde(flatten)]
    pub(crate) schedule: ScheduleEntry,
}

/// Parses a duration field, naming it on error.
pub(crate) fn duration(field: &str, value: &str) -> Result<Duration> {
    parse_duration(value).ok_or_else(|| {
        anyhow!("invalid configuration `{field}`: {value:?} is not a duration like 15s, 5m, 2h, 7d")
    })
}

impl ScheduleEntry {
    fn resolve(&self, field: &str) -> Result<Schedule> {
        let interval = duration(&format!("{field}.interval"), &self.interval)?;
        if interval.is_zero() {
            bail!("invalid configuration `{field}.interval`: must be positive");
        }
        let timeout = duration(&format!("{field}.timeout"), &self.timeout)?;
        if timeout.is_zero() {
            bail!("invalid configuration `{field}.timeout`: must be positive");
        }
        Ok(Schedule {
            interval,
            timeout,
            retry: RetryPolicy {
                max_retries: self.retries,
                initial_backoff: duration(&format!("{field}.backoff"), &self.backoff)?,
                max_backoff: duration(&format!("{field}.max_backoff"), &self.max_backoff)?,
                ..RetryPolicy::default()
            },
        })
    }
}

/// A source ready to run, with how the status page describes it.
pub(crate) struct Resolved {
    pub(crate) source: Box<dyn Source>,
    pub(crate) schedule: Schedule,
    pub(crate) kind: &'static str,
    pub(crate) simulated: bool,
}

impl Config {
    /// Reads `path` (if given) over the defaults, then applies `NOVAML__…` environment overrides.
    pub(crate) fn load(path: Option<&Path>) -> Result<Self> {
        let mut value = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config file {}", p.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("{} is not valid TOML", p.display()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut value, std::env::vars())?;
        let cfg: Self = Self::deserialize(toml::Value::Table(value)).map_err(|e| {
            anyhow!(
                "invalid configuration{}: {e}",
                path.map(|p| format!(" in {}", p.display()))
                    .unwrap_or_default()
            )
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The store's retention (`None`: keep everything).
    pub(crate) fn retention(&self) -> Result<Option<std::time::Duration>> {
        (!self.store.retention.is_empty())
            .then(|| duration("store.retention", &self.store.retention))
            .transpose()
    }

    /// Live detection's settings, when `[detect]` enables it.
    pub(crate) fn detection(&self) -> Result<Option<ResolvedDetect>> {
        self.detect
            .enabled
            .then(|| self.detect.resolve())
            .transpose()
    }

    /// Checks what serde cannot: durations, names, uniqueness.
    pub(crate) fn check(&self) -> Result<()> {
        if !self.store.retention.is_empty() {
            duration("store.retention", &self.store.retention)?;
        }
        if self.collect.buffer == 0 {
            bail!("invalid configuration `collect.buffer`: must be at least 1");
        }
        self.server
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| anyhow!("invalid configuration `server.listen`: {e}"))?;
        let mut names = std::collections::HashSet::new();
        for name in self
            .sources
            .prometheus_api
            .iter()
            .map(|s| &s.name)
            .chain(self.sources.scrape.iter().map(|s| &s.name))
            .chain(self.sources.file.iter().map(|s| &s.name))
        {
            if name.is_empty() || !names.insert(name.clone()) {
                bail!(
                    "invalid configuration `sources`: source names must be unique and non-empty ({name:?})"
                );
            }
        }
        self.detect.resolve()?;
        // Resolving builds every source, which validates the rest.
        self.resolve_sources().map(|_| ())
    }

    /// Builds every configured source.
    pub(crate) fn resolve_sources(&self) -> Result<Vec<Resolved>> {
        let mut out = Vec::new();
        for (i, s) in self.sources.prometheus_api.iter().enumerate() {
            let field = format!("sources.prometheus_api[{i}]");
            let schedule = s.schedule.resolve(&field)?;
            let cfg = ApiConfig {
                name: s.name.clone(),
                url: s.url.clone(),
                queries: s.queries.clone(),
                step: duration(&format!("{field}.step"), &s.step)?,
                backfill: duration(&format!("{field}.backfill"), &s.backfill)?,
                delay: duration(&format!("{field}.delay"), &s.delay)?,
                chunk_points: s.chunk_points,
            };
            out.push(Resolved {
                source: Box::new(PrometheusApi::new(cfg, schedule.timeout)?),
                schedule,
                kind: "prometheus_api",
                simulated: false,
            });
        }
        for (i, s) in self.sources.scrape.iter().enumerate() {
            let schedule = s.schedule.resolve(&format!("sources.scrape[{i}]"))?;
            let cfg = ScrapeConfig {
                name: s.name.clone(),
                url: s.url.clone(),
                job: s.job.clone(),
                max_labels: s.max_labels,
            };
            out.push(Resolved {
                source: Box::new(PrometheusScrape::new(cfg, schedule.timeout)?),
                schedule,
                kind: "prometheus_scrape",
                simulated: false,
            });
        }
        if let Some(h) = self.sources.host.as_ref().filter(|h| h.enabled) {
            let schedule = h.schedule.resolve("sources.host")?;
            out.push(Resolved {
                source: Box::new(Host::new("host")),
                schedule,
                kind: "host",
                simulated: false,
            });
        }
        if let Some(s) = self.sources.simulator.as_ref().filter(|s| s.enabled) {
            let schedule = s.schedule.resolve("sources.simulator")?;
            let cfg = SimConfig {
                name: "simulator".into(),
                seed: s.seed,
                hosts: s.hosts,
                vms_per_host: s.vms_per_host,
                step: duration("sources.simulator.step", &s.step)?,
                history: duration("sources.simulator.history", &s.history)?,
                incident_rate: s.incident_rate,
            };
            out.push(Resolved {
                source: Box::new(Simulator::new(cfg)?),
                schedule,
                kind: "simulator",
                simulated: true,
            });
        }
        for (i, f) in self.sources.file.iter().enumerate() {
            let field = format!("sources.file[{i}]");
            let schedule = f.schedule.resolve(&field)?;
            let row_interval = f
                .row_interval
                .as_deref()
                .map(|r| duration(&format!("{field}.row_interval"), r))
                .transpose()?;
            let cfg = FileConfig {
                path: f.path.clone(),
                format: f.format,
                prefix: f.prefix.clone(),
                labels: f.labels.clone(),
                timestamp_column: f.timestamp_column.clone(),
                columns: f.columns.clone(),
                row_interval,
                start: 0,
            };
            out.push(Resolved {
                source: Box::new(FileSource::new(f.name.clone(), cfg)),
                schedule,
                kind: "file",
                simulated: false,
            });
        }
        Ok(out)
    }
}

/// Applies `NOVAML__A__B=value` as `a.b = value` (lower-cased path; the value is read as a TOML
/// scalar when it parses as one, else as a string).
pub(crate) fn apply_env(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<()> {
    for (k, v) in vars {
        let Some(path) = k.strip_prefix("NOVAML__") else {
            continue;
        };
        let parts: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if parts.iter().any(String::is_empty) {
            bail!("environment variable {k}: empty path segment");
        }
        let value = format!("x = {v}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("x"))
            .unwrap_or(toml::Value::String(v));
        let mut cur = &mut *table;
        for p in &parts[..parts.len() - 1] {
            let entry = cur
                .entry(p.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cur = entry
                .as_table_mut()
                .ok_or_else(|| anyhow!("environment variable {k}: `{p}` is not a section"))?;
        }
        cur.insert(parts[parts.len() - 1].clone(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_resolves() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/novaml.example.toml");
        let text = std::fs::read_to_string(&path).expect("example config exists");
        let table: toml::Table = text.parse().expect("valid TOML");
        let cfg = Config::deserialize(toml::Value::Table(table)).expect("matches the schema");
        cfg.check().expect("valid");
        let kinds: Vec<&str> = cfg
            .resolve_sources()
            .expect("sources")
            .iter()
            .map(|r| r.kind)
            .collect();
        // The simulator is present but disabled in the example.
        assert_eq!(
            kinds,
            vec!["prometheus_api", "prometheus_scrape", "host", "file"]
        );
        assert!(cfg.sources.simulator.as_ref().is_some_and(|s| !s.enabled));
        let d = cfg.detect.resolve().expect("detect section");
        assert_eq!(d.webhooks.len(), 1);
        assert_eq!(d.config.suppressions.len(), 1);
        // The user's rule comes first, the built-in ones after it.
        assert_eq!(
            d.config
                .severity
                .severity("dwcp_acp_consensus_time_ms", 300.0)
                .map(|(s, n)| (s.as_str(), n.to_owned())),
            Some(("high", "consensus_ms".to_owned()))
        );
        assert!(
            d.config
                .severity
                .severity("vm_cpu_usage_percent", 99.5)
                .is_some()
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("[store]\nretention = \"forever\"", "store.retention"),
            ("[server]\nlisten = \"nowhere\"", "server.listen"),
            ("[collect]\nbufer = 3", "bufer"),
            (
                "[[sources.prometheus_api]]\nname = \"p\"\nurl = \"http://x\"\nqueries = [{ name = \"up\", expr = \"up\" }]\nstep = \"soon\"",
                "sources.prometheus_api[0].step",
            ),
            (
                "[[sources.prometheus_api]]\nname = \"p\"\nurl = \"not a url\"\nqueries = [{ name = \"up\", expr = \"up\" }]",
                "sources.prometheus_api[p].url",
            ),
            ("[sources.simulator]\nhosts = 0", "sources.simulator.hosts"),
            ("[sources.host]\ninterval = \"0s\"", "sources.host.interval"),
            ("[sources.host]\nbogus = 1", "bogus"),
            (
                "[[sources.scrape]]\nname = \"n\"\nurl = \"http://x/metrics\"\nintervall = \"1s\"",
                "intervall",
            ),
            ("[detect]\nthreshold = 2.0", "detect.threshold"),
            ("[detect]\ninterval = \"never\"", "detect.interval"),
            (
                "[[detect.maintenance]]\nselector = '{host=\"a\"}'\nstart = \"x\"\nend = \"1\"",
                "detect.maintenance[0].start",
            ),
            (
                "[[detect.maintenance]]\nselector = 'host=='\nstart = \"1\"\nend = \"2\"",
                "detect.maintenance[0].selector",
            ),
            (
                "[[detect.severity]]\nname = \"x\"\nmetric = \"(\"\ndirection = \"above\"\nthresholds = [1.0, 2.0, 3.0, 4.0]",
                "detect.severity",
            ),
            (
                "[[detect.webhooks]]\nurl = \"ftp://x\"\nformat = \"json\"",
                "detect.webhooks[0].url",
            ),
        ];
        for (text, field) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let p = dir.path().join("c.toml");
            std::fs::write(&p, text).expect("write");
            let err = format!("{:#}", Config::load(Some(&p)).expect_err(text));
            assert!(err.contains(field), "{text}: {err}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut t: toml::Table = "[server]\nlisten = \"127.0.0.1:1\"\n[collect]\nbuffer = 2"
            .parse()
            .expect("toml");
        let vars = [
            (
                "NOVAML__SERVER__LISTEN".to_owned(),
                "127.0.0.1:9".to_owned(),
            ),
            ("NOVAML__COLLECT__BUFFER".to_owned(), "7".to_owned()),
            ("OTHER".to_owned(), "x".to_owned()),
        ];
        apply_env(&mut t, vars.into_iter()).expect("apply");
        let cfg = Config::deserialize(toml::Value::Table(t)).expect("config");
        assert_eq!(
            (cfg.server.listen.as_str(), cfg.collect.buffer),
            ("127.0.0.1:9", 7)
        );
    }
}
