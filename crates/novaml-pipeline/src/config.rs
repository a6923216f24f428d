//! The configuration file (`novaml.toml`): documented serde structs, resolved in one step into
//! what the pipeline runs. Each source's section lives beside its source in `novaml-collect`.
//! Precedence: defaults < file < environment (`NOVAML__SECTION__KEY=value`) < flags. Every error
//! names the field, as written in the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use novaml_anomaly::incident::{DetectConfig, SeverityRule, SeverityRules, Suppression};
use novaml_anomaly::streaming::{DEFAULT_THRESHOLD, StreamingParams};
use novaml_collect::{Configured, SourcesSection};
use novaml_core::time::config_duration;
use novaml_store::{Flavor, MetricsAt, RemoteConfig, StateAt};
use serde::Deserialize;

use crate::PipelineError;
use crate::notify::Webhook;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[store]`
    pub store: StoreConfig,
    /// `[state]`
    pub state: StateConfig,
    /// `[collect]`
    pub collect: CollectConfig,
    /// `[server]`
    pub server: ServerConfig,
    /// `[sources]`
    pub sources: SourcesSection,
    /// `[detect]`
    pub detect: DetectSection,
}

/// `[detect]`: live anomaly detection over the store (always on in `novaml demo`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectSection {
    /// Run detection alongside `collect --follow`.
    pub enabled: bool,
    /// Between passes.
    pub interval: String,
    /// Scores at or above this open an incident.
    pub threshold: f64,
    /// Add the CUSUM change-point member.
    pub changepoint: bool,
    /// Add the Holt forecast-residual member.
    pub forecast: bool,
    /// How far back each pass reads.
    pub lookback: String,
    /// At most this many of the latest rows per series.
    pub max_rows: usize,
    /// Metric-name prefixes that are not scored.
    pub exclude: Vec<String>,
    /// Alert receivers.
    pub webhooks: Vec<Webhook>,
    /// Maintenance windows.
    pub maintenance: Vec<MaintenanceEntry>,
    /// Absolute severity rules, checked before the built-in ones (first match wins).
    pub severity: Vec<SeverityRule>,
}

impl Default for DetectSection {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: "30s".into(),
            threshold: DEFAULT_THRESHOLD,
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
pub struct MaintenanceEntry {
    /// Label matchers, e.g. `{host="h1"}`.
    pub selector: String,
    /// RFC 3339 or Unix seconds.
    pub start: String,
    /// RFC 3339 or Unix seconds.
    pub end: String,
    /// Shown on the suppressed incidents.
    #[serde(default = "d_reason")]
    pub reason: String,
}

fn d_reason() -> String {
    "maintenance".into()
}

/// `[detect]` resolved: what live detection runs with.
#[derive(Debug, Clone)]
pub struct DetectSettings {
    /// Between passes.
    pub interval: Duration,
    /// How far back each pass reads.
    pub lookback: Duration,
    /// At most this many of the latest rows per series.
    pub max_rows: usize,
    /// Metric-name prefixes not scored.
    pub exclude: Vec<String>,
    /// Threshold, members, severity rules, maintenance windows.
    pub config: DetectConfig,
    /// Alert receivers.
    pub webhooks: Vec<Webhook>,
}

impl DetectSection {
    /// Checks and builds the detection settings.
    pub fn resolve(&self) -> Result<DetectSettings, PipelineError> {
        let interval =
            novaml_core::time::config_positive_duration("detect.interval", &self.interval)?;
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(PipelineError::config(
                "detect.threshold",
                "must be in [0, 1]",
            ));
        }
        if self.max_rows < 300 {
            return Err(PipelineError::config(
                "detect.max_rows",
                "must be at least 300",
            ));
        }
        let params = StreamingParams::default()
            .changepoint(self.changepoint)
            .forecast(self.forecast)
            .check()?;
        let mut config = DetectConfig::new(params);
        config.threshold = self.threshold;
        let mut rules = self.severity.clone();
        rules.extend(SeverityRules::defaults());
        config.severity = SeverityRules::new(rules)
            .map_err(|e| PipelineError::config("detect.severity", e.to_string()))?;
        for (i, m) in self.maintenance.iter().enumerate() {
            let field = format!("detect.maintenance[{i}]");
            let time = |k: &str, v: &str| {
                novaml_collect::time::parse_timestamp(v).ok_or_else(|| {
                    PipelineError::config(
                        format!("{field}.{k}"),
                        format!("{v:?} is not a timestamp"),
                    )
                })
            };
            let (start, end) = (time("start", &m.start)?, time("end", &m.end)?);
            if end < start {
                return Err(PipelineError::config(&field, "ends before it starts"));
            }
            config.suppressions.push(Suppression {
                selector: m.selector.parse().map_err(|e: novaml_core::CoreError| {
                    PipelineError::config(format!("{field}.selector"), e.to_string())
                })?,
                start,
                end,
                reason: m.reason.clone(),
            });
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(PipelineError::config(
                    format!("detect.webhooks[{i}].url"),
                    "must be an http(s) URL",
                ));
            }
        }
        Ok(DetectSettings {
            interval,
            lookback: config_duration("detect.lookback", &self.lookback)?,
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
pub struct StoreConfig {
    /// Where the metrics are kept: `sqlite` (embedded, the default) or `remote`.
    pub kind: StoreKind,
    /// SQLite file: the metrics when embedded; the state (incidents, feedback) in every mode.
    pub path: PathBuf,
    /// Points older than this are deleted (checked hourly); empty keeps everything. Embedded
    /// only: a remote TSDB keeps its own retention.
    pub retention: String,
    /// Remote: the TSDB's read API, e.g. `http://127.0.0.1:8428` (VictoriaMetrics) or
    /// `http://127.0.0.1:9090` (Prometheus).
    pub url: String,
    /// Remote: its remote-write endpoint; empty means `{url}/api/v1/write`.
    pub write_url: String,
    /// Remote: `auto` (found at start), `victoriametrics` or `prometheus`.
    pub flavor: Flavor,
}

/// `[state]`: where incidents, feedback, delivery state, detection checkpoints and shard
/// leases are kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// A PostgreSQL database shared by every worker of a fleet, e.g.
    /// `postgres://novaml@db.internal/novaml` (plain TCP; a password may come from the
    /// environment as `NOVAML__STATE__POSTGRES`). Empty: the SQLite file in `store.path`.
    pub postgres: String,
}

/// `[store] kind`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded SQLite file.
    Sqlite,
    /// A Prometheus-compatible TSDB.
    Remote,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Sqlite,
            path: PathBuf::from("novaml-data/novaml.db"),
            retention: "30d".into(),
            url: String::new(),
            write_url: String::new(),
            flavor: Flavor::Auto,
        }
    }
}

/// `[collect]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// Batches held between sources and the store before sources wait.
    pub buffer: usize,
    /// Seed of the retry jitter.
    pub seed: u64,
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
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// More `Host` header values the server answers to (`name` or `name:port`), besides its
    /// loopback names; on a non-loopback address, the only ones (empty: any host).
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8600".into(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `path` (if given) over the defaults, then applies `NOVAML__…` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, PipelineError> {
        let mut value = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(PipelineError::io("cannot read config file", p))?;
                text.parse::<toml::Table>()
                    .map_err(|e| PipelineError::Schema {
                        path: Some(p.to_owned()),
                        reason: format!("not valid TOML: {e}"),
                    })?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut value, std::env::vars())?;
        let cfg: Self =
            Self::deserialize(toml::Value::Table(value)).map_err(|e| PipelineError::Schema {
                path: path.map(Path::to_owned),
                reason: e.to_string(),
            })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The store's retention (`None`: keep everything).
    pub fn retention(&self) -> Result<Option<Duration>, PipelineError> {
        Ok((!self.store.retention.is_empty())
            .then(|| config_duration("store.retention", &self.store.retention))
            .transpose()?)
    }

    /// Live detection's settings, when `[detect]` enables it.
    pub fn detection(&self) -> Result<Option<DetectSettings>, PipelineError> {
        self.detect
            .enabled
            .then(|| self.detect.resolve())
            .transpose()
    }

    /// Where the metrics are kept, as `[store]` says.
    pub fn metrics_at(&self) -> Result<MetricsAt, PipelineError> {
        let s = &self.store;
        match s.kind {
            StoreKind::Sqlite => {
                if !s.url.is_empty() || !s.write_url.is_empty() {
                    return Err(PipelineError::config(
                        "store.url",
                        "is for kind = \"remote\"; the sqlite store is the file in store.path",
                    ));
                }
                Ok(MetricsAt::Embedded(s.path.clone()))
            }
            StoreKind::Remote => {
                let http = |u: &str| u.starts_with("http://") || u.starts_with("https://");
                if !http(&s.url) {
                    return Err(PipelineError::config(
                        "store.url",
                        format!(
                            "{:?}: kind = \"remote\" needs the TSDB's http:// URL, e.g. http://127.0.0.1:8428",
                            s.url
                        ),
                    ));
                }
                let mut remote = RemoteConfig::new(&s.url);
                if !s.write_url.is_empty() {
                    if !http(&s.write_url) {
                        return Err(PipelineError::config(
                            "store.write_url",
                            format!("{:?} is not an http:// URL", s.write_url),
                        ));
                    }
                    remote.write_url = s.write_url.clone();
                }
                remote.flavor = s.flavor;
                Ok(MetricsAt::Remote(remote))
            }
        }
    }

    /// Where the state is kept, as `[state]` says.
    pub fn state_at(&self) -> Result<StateAt, PipelineError> {
        let url = self.state.postgres.trim();
        if url.is_empty() {
            return Ok(StateAt::Embedded(self.store.path.clone()));
        }
        let ok = url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.contains("host=");
        if !ok {
            return Err(PipelineError::config(
                "state.postgres",
                "needs a PostgreSQL URL, e.g. postgres://novaml@db.internal/novaml",
            ));
        }
        Ok(StateAt::Postgres(url.to_owned()))
    }

    /// Checks what serde cannot: durations, addresses, names, uniqueness.
    pub fn check(&self) -> Result<(), PipelineError> {
        self.metrics_at()?;
        self.state_at()?;
        if !self.store.retention.is_empty() {
            config_duration("store.retention", &self.store.retention)?;
        }
        if self.collect.buffer == 0 {
            return Err(PipelineError::config(
                "collect.buffer",
                "must be at least 1",
            ));
        }
        self.server
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| PipelineError::config("server.listen", e.to_string()))?;
        if let Some(bad) = self
            .server
            .allowed_hosts
            .iter()
            .find(|h| h.is_empty() || h.contains(|c: char| c.is_whitespace() || c == '/'))
        {
            return Err(PipelineError::config(
                "server.allowed_hosts",
                format!("{bad:?} is not a host name (write `name` or `name:port`)"),
            ));
        }
        self.detect.resolve()?;
        // Resolving builds every source, which validates the rest.
        self.resolve_sources().map(|_| ())
    }

    /// Builds every configured source.
    pub fn resolve_sources(&self) -> Result<Vec<Configured>, PipelineError> {
        Ok(self.sources.resolve()?)
    }

    /// The directory of the store file: where the API token, the models and the tuning state
    /// live beside it.
    pub fn data_dir(&self) -> PathBuf {
        self.store
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
    }
}

/// Applies `NOVAML__A__B=value` as `a.b = value` (lower-cased path; the value is read as a TOML
/// scalar when it parses as one, else as a string).
pub fn apply_env(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<(), PipelineError> {
    for (k, v) in vars {
        let Some(path) = k.strip_prefix("NOVAML__") else {
            continue;
        };
        let parts: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if parts.iter().any(String::is_empty) {
            return Err(PipelineError::config(k, "empty path segment"));
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
                .ok_or_else(|| PipelineError::config(&k, format!("`{p}` is not a section")))?;
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
