//! `novaml env-eval`: one measured run of a tuning environment, as JSON, so other tools (Optuna,
//! scripts) can drive the same environment the tuners use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use novaml_tune::env::{Apply, CommandEnv, PrometheusEnv, TransferEnv};
use novaml_tune::guard::{Deployment, Guard};
use novaml_tune::space::Space;
use novaml_tune::study::{Study, TunerKind};
use novaml_tune::transfer::{self, TransferParams};
use novaml_tune::tuner::{Constraint, Trial, TrialStatus};
use novaml_tune::{Environment, TuneError, optimum, payload};
use serde_json::json;

use super::{bar, duration_arg};

/// Arguments of `novaml env-eval`.
#[derive(Debug, clap::Args)]
pub(crate) struct EnvEvalArgs {
    /// The environment (transfer: the HDE/AMST transfer engine over an emulated link).
    #[arg(long, default_value = "transfer")]
    env: String,
    /// The scenario: lan-10g, wan-1g or wan-100m.
    #[arg(long, default_value = "wan-100m")]
    scenario: String,
    /// Parameters as a JSON object; missing ones take their defaults (see --list).
    #[arg(long, default_value = "{}")]
    params: String,
    /// Measure this many times (the report gives each run and the mean).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Seed of the payload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give up on a run after this long.
    #[arg(long, default_value = "60s", value_parser = duration_arg)]
    timeout: Duration,
    /// Print the parameters (bounds, defaults) and scenarios, then exit.
    #[arg(long)]
    list: bool,
    /// Also write the JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(crate) fn env_eval(a: EnvEvalArgs) -> Result<()> {
    if a.env != "transfer" {
        bail!("unknown environment {:?} (known: transfer)", a.env);
    }
    let space = transfer::space();
    if a.list {
        let doc = serde_json::json!({
            "params": space.params,
            "default": space.default_config(),
            "scenarios": transfer::scenarios(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if a.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let scenario = transfer::scenario(&a.scenario)?;
    let given: serde_json::Value =
        serde_json::from_str(&a.params).context("--params is not valid JSON")?;
    let config = space.validate(&given)?;
    let params = TransferParams::from_config(&config)?;
    let data = payload::generate(&scenario.payload, scenario.bytes, a.seed)?;
    let base = params
        .delta
        .then(|| payload::dirty(&data, scenario.dirty_share, a.seed));
    let mut runs = Vec::with_capacity(a.repeat);
    for _ in 0..a.repeat {
        let m = transfer::run(&scenario.link, &params, &data, base.as_deref(), a.timeout).map_err(
            |e| match e {
                TuneError::Timeout(_) => {
                    anyhow::anyhow!("{e}: raise --timeout or pick faster parameters")
                }
                other => other.into(),
            },
        )?;
        runs.push(m);
    }
    let mean =
        |f: fn(&transfer::Measurement) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
    let doc = serde_json::json!({
        "env": a.env,
        "scenario": scenario.name,
        "config": config,
        "goodput_bps": mean(|m| m.goodput_bps),
        "goodput_mbps": mean(|m| m.goodput_bps) / 1e6,
        "seconds": mean(|m| m.seconds),
        "cpu_seconds": mean(|m| m.cpu_seconds),
        "compression_ratio": mean(|m| m.compression_ratio),
        "wire_bytes": runs[0].wire_bytes,
        "payload_bytes": runs[0].payload_bytes,
        "runs": runs,
    });
    let text = serde_json::to_string_pretty(&doc)?;
    println!("{text}");
    if let Some(out) = &a.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// Arguments of `novaml tune-grid`.
#[derive(Debug, clap::Args)]
pub(crate) struct GridArgs {
    /// The scenario: lan-10g, wan-1g or wan-100m.
    #[arg(long)]
    scenario: String,
    /// Seed of the payload (the tuners' sessions use 1 by default).
    #[arg(long, default_value_t = 1)]
    payload_seed: u64,
    /// Give up on a grid point after this long (slower points cannot be the optimum).
    #[arg(long, default_value = "6s", value_parser = duration_arg)]
    timeout: Duration,
    /// Re-measure this many of the best grid points.
    #[arg(long, default_value_t = 5)]
    finalists: usize,
    /// Measurements of each finalist.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Where to write the optimum (the cache is crates/novaml-tune/optimum/SCENARIO.json).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn tune_grid(a: GridArgs) -> Result<()> {
    let scenario = transfer::scenario(&a.scenario)?;
    let mut env = TransferEnv::new(scenario.clone(), a.payload_seed, a.timeout)?;
    let points = optimum::transfer_grid();
    let bar = bar((points.len() + a.finalists * a.repeats) as u64);
    bar.set_message(format!("grid of {}", scenario.name));
    let optimum::Sweep {
        config,
        objective,
        finalists,
        points,
    } = optimum::sweep(&mut env, points, a.finalists, a.repeats, |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let o = optimum::Optimum {
        scenario: scenario.name.clone(),
        machine: optimum::machine(),
        computed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        command: format!(
            "novaml tune-grid --scenario {} --payload-seed {} --timeout {}s --finalists {} --repeats {} --out {}",
            scenario.name,
            a.payload_seed,
            a.timeout.as_secs_f64(),
            a.finalists,
            a.repeats,
            a.out.display()
        ),
        config,
        objective,
        finalists,
        points,
    };
    let failed = o.points.iter().filter(|p| p.objective.is_none()).count();
    std::fs::write(&a.out, serde_json::to_string_pretty(&o)?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "{}: optimum {:.1} Mbit/s with {} ({} of {} points failed or timed out); written to {}",
        o.scenario,
        o.objective / 1e6,
        serde_json::to_string(&o.config)?,
        failed,
        o.points.len(),
        a.out.display()
    );
    Ok(())
}

/// Arguments of `novaml tune`.
#[derive(Debug, clap::Args)]
pub(crate) struct TuneArgs {
    /// The environment: transfer (the built-in transfer engine), command (--command applies a
    /// configuration and prints metrics as JSON) or prometheus (--apply-command/--apply-url
    /// applies, --query measures).
    #[arg(long, default_value = "transfer")]
    env: String,
    /// transfer: the scenario (lan-10g, wan-1g, wan-100m).
    #[arg(long, default_value = "wan-100m")]
    scenario: String,
    /// The tuner: bo (Bayesian optimisation), rl (contextual bandit that learns across
    /// scenarios from --state), random, grid.
    #[arg(long, default_value = "bo", value_parser = parse_tuner)]
    tuner: TunerKind,
    /// Measured trials, the default configuration's included.
    #[arg(long, default_value_t = 30)]
    budget: usize,
    /// Seed of the tuner.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// transfer: seed of the payload (the cached optima use 1).
    #[arg(long, default_value_t = 1)]
    payload_seed: u64,
    /// After the session, measure the default and the best configuration (and, for the
    /// built-in scenarios, the grid optimum's) this many times each, interleaved, for the
    /// improvement, its 95 % interval and the share of the optimum (0: skip).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// A bound on a measured metric, METRIC<=X or METRIC>=X (repeatable), e.g.
    /// cpu_seconds_per_gib<=4.
    #[arg(long = "constraint")]
    constraints: Vec<String>,
    /// Refuse to try a configuration whose predicted probability of meeting the constraints is
    /// below this.
    #[arg(long, default_value_t = 0.5)]
    safety: f64,
    /// Give up on one run after this long.
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    timeout: Duration,
    /// Apply the best configuration to the system under the guardrails (canary, sequential
    /// test with automatic rollback, change budget), recorded in STATE/audit.jsonl.
    #[arg(long)]
    apply: bool,
    /// Undo the last change recorded in STATE/audit.jsonl (re-applies the one before) and exit.
    #[arg(long)]
    revert: bool,
    /// Where the audit log and the rl tuner's experience live.
    #[arg(long, default_value = "novaml-tune-state")]
    state: PathBuf,
    /// command/prometheus: the parameters, a JSON file with a list of
    /// {"name", "domain": {"type": "int", "lo", "hi", "log"} | {"type": "choice", "values"} |
    /// {"type": "bool"}, "default", "help"}.
    #[arg(long)]
    space: Option<PathBuf>,
    /// command: the command that applies the configuration (JSON on stdin and in NOVAML_CONFIG,
    /// each parameter in NOVAML_PARAM_<NAME>) and prints a JSON object of metrics last.
    #[arg(long)]
    command: Option<String>,
    /// command/prometheus: the metric to optimise.
    #[arg(long)]
    objective: Option<String>,
    /// command/prometheus: minimise the objective (default: maximise).
    #[arg(long)]
    minimize: bool,
    /// prometheus: the server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    prometheus: String,
    /// prometheus: apply a configuration by running this command.
    #[arg(long)]
    apply_command: Option<String>,
    /// prometheus: apply a configuration by POSTing it as JSON here.
    #[arg(long)]
    apply_url: Option<String>,
    /// prometheus: NAME=PROMQL measured after each change ($window is the window), repeatable.
    #[arg(long = "query")]
    queries: Vec<String>,
    /// prometheus: wait this long after applying before the window starts.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    settle: Duration,
    /// prometheus: the measurement window.
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    window: Duration,
    /// Write the result (best configuration, trials, improvement, share of optimum) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_tuner(s: &str) -> Result<TunerKind, String> {
    s.parse().map_err(|e: TuneError| e.to_string())
}

fn make_env(a: &TuneArgs) -> Result<Box<dyn Environment>> {
    let space = || -> Result<Space> {
        let p = a
            .space
            .as_ref()
            .context("--space FILE is required for this environment")?;
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let params: Vec<novaml_tune::space::Param> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a list of parameters", p.display()))?;
        let space = Space { params };
        let d = serde_json::to_value(space.default_config())?;
        space
            .validate(&d)
            .with_context(|| format!("the defaults in {}", p.display()))?;
        Ok(space)
    };
    let objective = || a.objective.clone().context("--objective NAME is required");
    Ok(match a.env.as_str() {
        "transfer" => Box::new(TransferEnv::new(
            transfer::scenario(&a.scenario)?,
            a.payload_seed,
            a.timeout,
        )?),
        "command" => Box::new(CommandEnv::new(
            a.command
                .clone()
                .context("--command is required with --env command")?,
            space()?,
            objective()?,
            a.minimize,
            a.timeout,
        )),
        "prometheus" => {
            let apply = match (&a.apply_command, &a.apply_url) {
                (Some(c), None) => Apply::Command(c.clone()),
                (None, Some(u)) => Apply::Http(u.clone()),
                _ => bail!("give one of --apply-command or --apply-url with --env prometheus"),
            };
            let queries = a
                .queries
                .iter()
                .map(|q| {
                    q.split_once('=')
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .with_context(|| format!("--query {q:?} is not NAME=PROMQL"))
                })
                .collect::<Result<BTreeMap<_, _>>>()?;
            Box::new(PrometheusEnv::new(
                a.prometheus.clone(),
                apply,
                space()?,
                queries,
                objective()?,
                a.minimize,
                a.settle,
                a.window,
                a.timeout,
            )?)
        }
        other => bail!("unknown environment {other:?} (known: transfer, command, prometheus)"),
    })
}

pub(crate) fn tune(a: TuneArgs) -> Result<()> {
    let mut env = make_env(&a)?;
    let audit = a.state.join("audit.jsonl");
    let constraints = a
        .constraints
        .iter()
        .map(|c| Constraint::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    let guard = Guard {
        constraints: constraints.clone(),
        ..Guard::default()
    };
    if a.revert {
        let mut dep = Deployment::open(&audit, env.space().default_config(), guard)?;
        let back = dep.revert(env.as_mut())?;
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"reverted_to": back, "audit_log": audit}))?
        );
        return Ok(());
    }
    let transfer = a.env == "transfer";
    let mut study = Study::new(a.tuner, a.budget, a.seed);
    study.repeats = a.repeats;
    study.constraints = constraints;
    study.safety = a.safety;
    study.experience = Some(a.state.join("experience.jsonl"));
    // Every transfer session teaches the rl tuner, whichever tuner ran it.
    study.learn = a.tuner == TunerKind::Rl || transfer;
    if a.tuner == TunerKind::Grid {
        study.grid = if transfer {
            optimum::transfer_grid()
        } else {
            env.space().grid(4)
        };
    }
    study.optimum = transfer.then(|| optimum::cached(&a.scenario)).flatten();
    let pb = bar(a.budget as u64);
    pb.set_message(format!("{} on {}", a.tuner.as_str(), env.describe()));
    let objective_name = env.objective_name().to_owned();
    let mut best = f64::NEG_INFINITY;
    let mut done = 0;
    let b = pb.clone();
    let outcome = study.run(env.as_mut(), move |t: &Trial| {
        if t.status != TrialStatus::Refused {
            done += 1;
        }
        if let Some(v) = t.objective.filter(|_| t.feasible) {
            best = best.max(v);
        }
        b.set_position(done);
        b.set_message(format!("best {objective_name} {best:.4e}"));
    })?;
    pb.finish_and_clear();
    let (improvement, ci) = outcome.improvement();
    let best_value = outcome.best_objective().map(|v| {
        if outcome.comparison.is_some() {
            v
        } else {
            v.abs()
        }
    });
    let share = outcome.share_of_optimum();
    let (session, best, default, comparison, opt) = (
        &outcome.session,
        &outcome.best,
        &outcome.default,
        &outcome.comparison,
        &outcome.optimum,
    );
    let applied = if a.apply {
        let mut dep = Deployment::open(&audit, env.space().default_config(), guard)?;
        Some(dep.apply(env.as_mut(), &best.config, &session.trials)?)
    } else {
        None
    };
    let doc = json!({
        "env": a.env,
        "scenario": (a.env == "transfer").then_some(&a.scenario),
        "tuner": session.tuner,
        "budget": a.budget,
        "seed": a.seed,
        "objective": env.objective_name(),
        "best": {"config": best.config, "objective": best.objective, "metrics": best.metrics},
        "default": {"config": default.config, "objective": default.objective},
        "improvement": improvement,
        "improvement_ci95": ci,
        "comparison": comparison,
        "share_of_optimum": share,
        "optimum": opt.as_ref().map(|o| json!({
            "objective": o.objective, "config": o.config, "machine": o.machine,
            "computed_at": o.computed_at, "command": o.command,
        })),
        "applied": applied,
        "stopped": session.stopped,
        "trials": session.trials,
    });
    let text = serde_json::to_string_pretty(&doc)?;
    if let Some(out) = &a.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    let pct = |v: f64| format!("{:+.1} %", v * 100.0);
    eprintln!(
        "{}: best {} = {:.4e} with {}",
        session.tuner,
        env.objective_name(),
        best_value.unwrap_or(f64::NAN),
        serde_json::to_string(&best.config)?
    );
    if let Some(i) = improvement {
        let ci = ci.map_or(String::new(), |[l, h]| {
            format!(" (95 % CI {} .. {})", pct(l), pct(h))
        });
        eprintln!("improvement over the default: {}{ci}", pct(i));
    }
    if let Some(s) = share {
        eprintln!("share of the grid optimum: {:.1} %", s * 100.0);
    }
    if a.out.is_none() {
        println!("{text}");
    }
    Ok(())
}
