//! `novaml plan --config plan.toml`: capacity plans from utilisation series (files or the store):
//! per host and for the cluster, per resource, runway to warning/critical as P10/P50/P90, the
//! bottleneck, hosts to add, cost, what-if scenarios; `plan.json`, `summary.txt` and one SVG chart
//! per resource.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use novaml_core::{MetricStore, Selector, Series, TimeRange};
use novaml_forecast::capacity::{
    ClusterPlan, Grid, Policy, Resource, ResourcePlan, Scenario, apply_scenario, bottleneck,
    plan_cluster, plan_host, plan_resource,
};
use novaml_forecast::chart::{ChartInput, svg};
use serde::Deserialize;

/// Arguments of `novaml plan`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The plan's configuration (TOML; see config/plan.example.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Output directory (overrides the file's `out`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only check the configuration and load the series; forecast nothing.
    #[arg(long)]
    check: bool,
}

/// The plan file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanConfig {
    #[serde(default = "d_horizon")]
    horizon: String,
    #[serde(default = "d_freq")]
    freq: String,
    #[serde(default = "d_out")]
    out: PathBuf,
    #[serde(default)]
    policy: Policy,
    series: Vec<SeriesEntry>,
    #[serde(default)]
    scenarios: Vec<Scenario>,
}

fn d_horizon() -> String {
    "30d".into()
}
fn d_freq() -> String {
    "1h".into()
}
fn d_out() -> PathBuf {
    PathBuf::from("plan")
}

/// `[[series]]`: one host's utilisation of one resource, in percent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesEntry {
    host: String,
    resource: Resource,
    /// A file (with `column`)…
    file: Option<PathBuf>,
    column: Option<String>,
    /// …or a selector over a novaml store (one series).
    store: Option<PathBuf>,
    selector: Option<String>,
}

fn duration(field: &str, v: &str) -> Result<Duration> {
    novaml_core::time::parse_duration(v)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow!("invalid plan `{field}`: {v:?} is not a positive duration"))
}

fn load(i: usize, e: &SeriesEntry) -> Result<Series> {
    match (&e.file, &e.store) {
        (Some(f), None) => {
            let input = super::SeriesInput {
                input: f.clone(),
                column: e.column.clone(),
            };
            Ok(input.load()?.0)
        }
        (None, Some(db)) => {
            let sel: Selector = e
                .selector
                .as_deref()
                .ok_or_else(|| anyhow!("invalid plan `series[{i}]`: `store` needs `selector`"))?
                .parse()
                .map_err(|err| anyhow!("invalid plan `series[{i}].selector`: {err}"))?;
            let store = novaml_store::SqliteStore::open(db)
                .with_context(|| format!("cannot open {}", db.display()))?;
            let mut found = store.query(&sel, TimeRange::all(), None)?;
            match found.len() {
                1 => Ok(found.remove(0)),
                n => bail!("invalid plan `series[{i}].selector`: matches {n} series, not one"),
            }
        }
        _ => bail!(
            "invalid plan `series[{i}]`: give either `file` (+ `column`) or `store` + `selector`"
        ),
    }
}

fn days(s: Option<f64>) -> String {
    s.map_or_else(
        || "beyond horizon".to_owned(),
        |v| format!("{:.1} d", v / 86_400.0),
    )
}

pub(crate) fn run(args: Args) -> Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let cfg: PlanConfig = toml::from_str(&text)
        .map_err(|e| anyhow!("invalid plan {}: {e}", args.config.display()))?;
    cfg.policy
        .check()
        .map_err(|e| anyhow!("invalid plan `policy`: {e}"))?;
    let horizon_d = duration("horizon", &cfg.horizon)?;
    let step = duration("freq", &cfg.freq)?.as_secs() as i64;
    let horizon = (horizon_d.as_secs() as i64 / step).max(1) as usize;
    if cfg.series.is_empty() {
        bail!("invalid plan: no [[series]]");
    }
    let out = args.out.clone().unwrap_or(cfg.out.clone());

    let bar = indicatif::ProgressBar::new(cfg.series.len() as u64 * 2);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // Load and resample.
    let mut grids: BTreeMap<Resource, Vec<(String, Grid)>> = BTreeMap::new();
    let mut warnings = Vec::new();
    for (i, e) in cfg.series.iter().enumerate() {
        bar.set_message(format!("loading {} {}", e.host, e.resource.as_str()));
        let s = load(i, e)?;
        let g = Grid::from_series(&s, step)
            .map_err(|err| anyhow!("series[{i}] ({} {}): {err}", e.host, e.resource.as_str()))?;
        if g.y.iter().any(|v| *v > 100.0) {
            warnings.push(format!(
                "{} {}: utilisation above 100 % in the history: its capacity is below its usage",
                e.host,
                e.resource.as_str()
            ));
        }
        grids
            .entry(e.resource)
            .or_default()
            .push((e.host.clone(), g));
        bar.inc(1);
    }
    if args.check {
        bar.finish_and_clear();
        println!(
            "{}: valid; {} series, {} resources",
            args.config.display(),
            cfg.series.len(),
            grids.len()
        );
        return Ok(());
    }

    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    // Per host, then the cluster per resource.
    let mut host_plans: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    let mut cluster: Vec<(ClusterPlan, Grid)> = Vec::new();
    for (res, hosts) in &grids {
        for (host, g) in hosts {
            bar.set_message(format!("forecasting {host} {}", res.as_str()));
            let p = plan_host(*res, host, g, horizon, &cfg.policy)
                .with_context(|| format!("{host} {}", res.as_str()))?;
            host_plans
                .entry(host.clone())
                .or_default()
                .push(serde_json::json!({ "plan": p.plan, "model": p.model }));
            bar.inc(1);
        }
        let refs: Vec<&Grid> = hosts.iter().map(|(_, g)| g).collect();
        cluster.push(
            plan_cluster(*res, &refs, horizon, &cfg.policy)
                .with_context(|| format!("cluster {}", res.as_str()))?,
        );
    }
    bar.finish_and_clear();

    let plans: Vec<ResourcePlan> = cluster.iter().map(|(c, _)| c.plan.clone()).collect();
    let neck = bottleneck(&plans);
    let add = plans.iter().map(|p| p.hosts_to_add).max().unwrap_or(0);
    let mut scenarios = Vec::new();
    for s in &cfg.scenarios {
        let mut sp = Vec::new();
        for (c, _) in &cluster {
            let p = &c.plan;
            let (hosts, g) = apply_scenario(s, p.resource, p.hosts, &c.forecast)?;
            sp.push(plan_resource(p.resource, hosts, p.current, &g, &cfg.policy));
        }
        let add = sp.iter().map(|p| p.hosts_to_add).max().unwrap_or(0);
        scenarios.push(serde_json::json!({
            "name": s.name,
            "resources": sp,
            "bottleneck": bottleneck(&sp),
            "hosts_to_add": add,
            "monthly_cost": add as f64 * cfg.policy.host_month_price,
        }));
    }

    // Charts.
    for (c, g) in &cluster {
        let (p, f) = (&c.plan, &c.forecast);
        let title = format!(
            "cluster {} utilisation (%), {} hosts, model {}",
            p.resource.as_str(),
            p.hosts,
            c.model.as_str()
        );
        let warn = format!("warning {} %", cfg.policy.warning);
        let crit = format!("critical {} %", cfg.policy.critical);
        let doc = svg(&ChartInput {
            title: &title,
            history: (&g.times(), &g.y),
            forecast: f,
            thresholds: &[(&warn, cfg.policy.warning), (&crit, cfg.policy.critical)],
        })?;
        let path = out.join(format!("{}.svg", p.resource.as_str()));
        std::fs::write(&path, doc).with_context(|| format!("cannot write {}", path.display()))?;
    }

    let generated = novaml_core::time::now_ms() / 1000;
    let json = serde_json::json!({
        "generated_at": generated,
        "horizon_seconds": horizon_d.as_secs(),
        "step_seconds": step,
        "policy": cfg.policy,
        "cluster": {
            "resources": cluster.iter().map(|(c, g)| serde_json::json!({
                "plan": c.plan,
                "model": c.model,
                "history_end": g.last(),
                "forecast": c.forecast,
            })).collect::<Vec<_>>(),
            "bottleneck": neck,
            "hosts_to_add": add,
            "monthly_cost": add as f64 * cfg.policy.host_month_price,
        },
        "hosts": host_plans,
        "scenarios": scenarios,
        "warnings": warnings,
    });
    std::fs::write(out.join("plan.json"), serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("cannot write {}", out.join("plan.json").display()))?;

    let mut summary = format!(
        "Capacity plan, {} ahead at {}s steps (warning {} %, critical {} %, headroom {} %)\n\n",
        cfg.horizon,
        step,
        cfg.policy.warning,
        cfg.policy.critical,
        100.0 * cfg.policy.headroom
    );
    summary.push_str(&format!(
        "{:<8} {:>5} {:>8} {:>8}  {:<44} {:<44} {:>6}\n",
        "resource",
        "hosts",
        "now %",
        "P90 max",
        "to warning (P90 / P50 / P10)",
        "to critical (P90 / P50 / P10)",
        "+hosts"
    ));
    for p in &plans {
        let r = |w: &novaml_forecast::capacity::Runway| {
            format!("{} / {} / {}", days(w.p90), days(w.p50), days(w.p10))
        };
        summary.push_str(&format!(
            "{:<8} {:>5} {:>8.1} {:>8.1}  {:<44} {:<44} {:>6}\n",
            p.resource.as_str(),
            p.hosts,
            p.current,
            p.peak_p90,
            r(&p.warning_runway),
            r(&p.critical_runway),
            p.hosts_to_add
        ));
    }
    summary.push_str(&format!(
        "\nBottleneck: {}. Hosts to add for {} % headroom: {add} (monthly cost {:.2}).\n",
        neck.map_or("none", Resource::as_str),
        100.0 * cfg.policy.headroom,
        add as f64 * cfg.policy.host_month_price
    ));
    for s in &scenarios {
        summary.push_str(&format!(
            "What if {}: bottleneck {}, hosts to add {}, monthly cost {:.2}\n",
            s["name"].as_str().unwrap_or(""),
            s["bottleneck"].as_str().unwrap_or("none"),
            s["hosts_to_add"],
            s["monthly_cost"].as_f64().unwrap_or(0.0)
        ));
    }
    for w in &warnings {
        summary.push_str(&format!("warning: {w}\n"));
    }
    std::fs::write(out.join("summary.txt"), &summary)
        .with_context(|| format!("cannot write {}", out.join("summary.txt").display()))?;
    print!("{summary}");
    eprintln!(
        "wrote {}/plan.json, summary.txt and one SVG per resource",
        out.display()
    );
    Ok(())
}
