//! `novaml collect`: one-shot export of a time range, or continuous collection with --follow.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use novaml_collect::sources::file::FileSection;
use novaml_collect::sources::host::HostSection;
use novaml_collect::sources::prometheus_api::{ApiSection, QueryConfig};
use novaml_collect::sources::prometheus_scrape::ScrapeSection;
use novaml_collect::time::parse_timestamp;
use novaml_core::time::{now_ms, parse_duration};
use novaml_core::{Batch, CollectContext, MetricStore, Series};
use novaml_pipeline::{Config, Pipeline, shutdown_signal};
use novaml_store::SqliteStore;

/// Arguments of `novaml collect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Configuration file (see config/novaml.example.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Base URL of a Prometheus-compatible API.
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// A PromQL query as NAME=EXPR (repeatable); NAME names results without __name__.
    #[arg(long = "query", value_name = "NAME=EXPR", requires = "prometheus")]
    queries: Vec<String>,
    /// Resolution of Prometheus range queries.
    #[arg(long, default_value = "15s")]
    step: String,
    /// An exposition endpoint to scrape (repeatable).
    #[arg(long, value_name = "URL")]
    scrape: Vec<String>,
    /// Collect this host's /proc metrics.
    #[arg(long)]
    host: bool,
    /// A CSV or JSON-lines file to import (repeatable).
    #[arg(long, value_name = "PATH")]
    file: Vec<PathBuf>,
    /// Start of the range: a timestamp (RFC 3339, `YYYY-MM-DD HH:MM:SS`, Unix s/ms) or an age
    /// like 2h (meaning now − 2h).
    #[arg(long, default_value = "1h")]
    from: String,
    /// End of the range (same forms; default now).
    #[arg(long)]
    to: Option<String>,
    /// Write to this file instead of the store: `.csv` (series,timestamp,value) or `.jsonl`
    /// (name,labels,timestamp,value; re-importable with --file).
    #[arg(long, short, conflicts_with = "follow")]
    out: Option<PathBuf>,
    /// SQLite store to write to (default: the config's store.path).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Keep collecting into the store until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// With --follow: serve /metrics and the status page here.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

fn time_arg(field: &str, s: &str, now: i64) -> Result<i64> {
    if let Some(age) = parse_duration(s).filter(|_| s.ends_with(|c: char| c.is_ascii_alphabetic()))
    {
        return Ok(now - age.as_millis() as i64);
    }
    parse_timestamp(s)
        .ok_or_else(|| anyhow!("--{field} {s:?} is neither a timestamp nor an age like 2h"))
}

fn build_config(args: &Args) -> Result<Config> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(url) = &args.prometheus {
        if args.queries.is_empty() {
            bail!("--prometheus needs at least one --query NAME=EXPR");
        }
        let queries = args
            .queries
            .iter()
            .map(|q| {
                let (name, expr) = q
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--query {q:?} is not NAME=EXPR"))?;
                Ok(QueryConfig {
                    name: name.trim().into(),
                    expr: expr.trim().into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut api = ApiSection::new("prometheus", url, queries);
        api.step = args.step.clone();
        cfg.sources.prometheus_api.push(api);
    }
    for (i, url) in args.scrape.iter().enumerate() {
        cfg.sources
            .scrape
            .push(ScrapeSection::new(&format!("scrape{i}"), url));
    }
    if args.host {
        cfg.sources.host = Some(HostSection::every("5s"));
    }
    for (i, path) in args.file.iter().enumerate() {
        cfg.sources
            .file
            .push(FileSection::new(&format!("file{i}"), path));
    }
    if let Some(store) = &args.store {
        cfg.store.path = store.clone();
    }
    cfg.check()?;
    Ok(cfg)
}

pub(crate) fn run(args: Args) -> Result<()> {
    let cfg = build_config(&args)?;
    let sources = cfg.resolve_sources()?;
    if sources.is_empty() {
        bail!("no sources: give --config, --prometheus, --scrape, --host or --file");
    }
    if args.follow {
        let mut pipeline = Pipeline::from_config(&cfg)?;
        pipeline.listen = args.listen;
        pipeline.banner = Some("novaml collect: following; status at {url}".into());
        pipeline.token = std::env::var("NOVAML_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        return super::block_on(async move { Ok(pipeline.run(shutdown_signal(None)).await?) });
    }
    let now = now_ms();
    let from = time_arg("from", &args.from, now)?;
    let to = args
        .to
        .as_deref()
        .map(|t| time_arg("to", t, now))
        .transpose()?
        .unwrap_or(now);
    if to < from {
        bail!("--to is before --from");
    }
    let mut sink = Sink::open(args.out.as_deref(), &cfg.store.path)?;
    let delays: Vec<i64> = cfg
        .sources
        .prometheus_api
        .iter()
        .map(|p| parse_duration(&p.delay).map_or(0, |d| d.as_millis() as i64))
        .collect();
    super::block_on(async move {
        let mut api_index = 0;
        for mut r in sources {
            let name = r.source.name().to_owned();
            let ctx_now = if r.kind == "prometheus_api" {
                // Evaluate the grid from `from` to `to`: restore to just before `from`, and pretend
                // it is `to + delay` so the source's lag lands exactly on `to`.
                r.source.restore(from - 1);
                let d = delays.get(api_index).copied().unwrap_or(0);
                api_index += 1;
                to + d
            } else {
                now
            };
            let bar = ProgressBar::new_spinner().with_message(format!("collecting {name}"));
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}] {pos} points")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            let mut first = true;
            loop {
                let c = tokio::time::timeout(
                    r.schedule.timeout * 4,
                    r.source.collect(CollectContext { now: ctx_now }),
                )
                .await
                .map_err(|_| anyhow!("{name}: no answer within {:?}", r.schedule.timeout * 4))?
                .map_err(|e| anyhow!("{name}: {e}"))?;
                for (reason, n) in &c.skipped {
                    tracing::warn!(source = %name, reason, count = n, "Skipped invalid data.");
                }
                let points: usize = c.series.iter().map(|s| s.points.len()).sum();
                sink.write(&name, c.series, r.source.cursor())?;
                bar.inc(points as u64);
                // Host rates need a second reading.
                if r.kind == "host" && first {
                    first = false;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                if !c.more {
                    break;
                }
            }
            bar.finish_with_message(format!("collected {name}"));
        }
        sink.finish()
    })
}

enum Sink {
    Store(SqliteStore, u64),
    Csv(csv::Writer<std::io::BufWriter<std::fs::File>>, u64),
    Jsonl(std::io::BufWriter<std::fs::File>, u64),
}

impl Sink {
    fn open(out: Option<&Path>, store: &Path) -> Result<Self> {
        let Some(out) = out else {
            if let Some(dir) = store.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            return Ok(Self::Store(SqliteStore::open(store)?, 0));
        };
        let file = std::fs::File::create(out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let w = std::io::BufWriter::new(file);
        match out.extension().and_then(|e| e.to_str()) {
            Some("csv") => {
                let mut c = csv::Writer::from_writer(w);
                c.write_record(["series", "timestamp", "value"])?;
                Ok(Self::Csv(c, 0))
            }
            Some("jsonl" | "ndjson") => Ok(Self::Jsonl(w, 0)),
            _ => bail!("--out {}: use a .csv or .jsonl file", out.display()),
        }
    }

    fn write(&mut self, source: &str, series: Vec<Series>, cursor: Option<i64>) -> Result<()> {
        match self {
            Self::Store(s, n) => {
                *n += s.write(&Batch {
                    source: source.into(),
                    series,
                    cursor,
                })? as u64;
            }
            Self::Csv(w, n) => {
                for s in &series {
                    let key = s.key.to_string();
                    for p in &s.points {
                        w.write_record([key.as_str(), &rfc3339(p.ts), &p.value.to_string()])?;
                        *n += 1;
                    }
                }
            }
            Self::Jsonl(w, n) => {
                for s in &series {
                    for p in &s.points {
                        let line = serde_json::json!({"name": s.key.name, "labels": s.key.labels, "timestamp": p.ts, "value": p.value});
                        writeln!(w, "{line}")?;
                        *n += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let n = match self {
            Self::Store(_, n) => n,
            Self::Csv(mut w, n) => {
                w.flush()?;
                n
            }
            Self::Jsonl(mut w, n) => {
                w.flush()?;
                n
            }
        };
        eprintln!("wrote {n} points");
        Ok(())
    }
}

fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts).map_or_else(
        || ts.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}
