//! `novaml env-eval`: one measured run of a tuning environment, as JSON, so other tools (Optuna,
//! scripts) can drive the same environment the tuners use.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use novaml_tune::transfer::{self, TransferParams};
use novaml_tune::{TuneError, payload};

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
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Print the parameters (bounds, defaults) and scenarios, then exit.
    #[arg(long)]
    list: bool,
    /// Also write the JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_timeout(s: &str) -> Result<Duration> {
    novaml_collect::time::parse_duration(s).with_context(|| format!("bad duration {s:?}"))
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
