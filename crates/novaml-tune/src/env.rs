//! Environments: systems a tuner configures and measures.
//!
//! - [`TransferEnv`]: the HDE/AMST transfer engine over an emulated link (built in).
//! - [`CommandEnv`]: a user command applies a configuration and prints its metrics as JSON.
//! - [`PrometheusEnv`]: a command or an HTTP endpoint applies a configuration; PromQL over a
//!   window measures it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::TuneError;
use crate::payload;
use crate::space::{Config, Space};
use crate::transfer::{self, Scenario, TransferParams};

/// What one evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The objective, oriented so that higher is better.
    pub objective: f64,
    /// Every metric measured, by name (constraints refer to these).
    pub metrics: BTreeMap<String, f64>,
}

/// A system that can be configured and measured.
pub trait Environment {
    /// A short description (scenario, command).
    fn describe(&self) -> String;
    /// The parameters.
    fn space(&self) -> &Space;
    /// The name of the metric that is the objective.
    fn objective_name(&self) -> &str;
    /// Features of the situation (link, payload) for contextual tuners; empty when unknown.
    fn context(&self) -> Vec<f64> {
        Vec::new()
    }
    /// Applies `config` and measures it.
    fn evaluate(&mut self, config: &Config) -> Result<Outcome, TuneError>;
    /// Applies `config` and measures it on a small share of the work (a canary); environments
    /// without a smaller unit of work measure it whole.
    fn evaluate_canary(&mut self, config: &Config) -> Result<Outcome, TuneError> {
        self.evaluate(config)
    }
}

/// The transfer engine in one scenario, with its payload made once.
pub struct TransferEnv {
    scenario: Scenario,
    space: Space,
    data: Vec<u8>,
    baseline: Vec<u8>,
    timeout: Duration,
    canary_share: f64,
    context: Vec<f64>,
}

impl TransferEnv {
    /// Makes the scenario's payload (seeded) and its dirty baseline.
    pub fn new(scenario: Scenario, seed: u64, timeout: Duration) -> Result<Self, TuneError> {
        let data = payload::generate(&scenario.payload, scenario.bytes, seed)?;
        let baseline = payload::dirty(&data, scenario.dirty_share, seed);
        let sample = &data[..data.len().min(4 << 20)];
        let ratio = zstd::bulk::compress(sample, 1)
            .map(|c| sample.len() as f64 / c.len().max(1) as f64)
            .unwrap_or(1.0);
        let link = scenario.link;
        let context = vec![
            (link.bandwidth_bps / 1e9).log10(),
            (link.rtt_ms.max(0.01)).log10(),
            (link.window_bytes as f64 / 1_048_576.0).log10(),
            ratio.ln(),
            scenario.dirty_share,
        ];
        Ok(Self {
            scenario,
            space: transfer::space(),
            data,
            baseline,
            timeout,
            canary_share: 0.1,
            context,
        })
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    fn measure(&self, config: &Config, share: f64) -> Result<Outcome, TuneError> {
        let params = TransferParams::from_config(config)?;
        let n = ((self.data.len() as f64 * share) as usize)
            .div_ceil(payload::PAGE)
            .max(1)
            * payload::PAGE;
        let n = n.min(self.data.len());
        let base = params.delta.then(|| &self.baseline[..n]);
        let m = transfer::run(
            &self.scenario.link,
            &params,
            &self.data[..n],
            base,
            self.timeout,
        )?;
        if m.payload_bytes == 0 || !m.goodput_bps.is_finite() || m.goodput_bps <= 0.0 {
            return Err(TuneError::Run("the run delivered no bytes".into()));
        }
        let metrics = BTreeMap::from([
            ("goodput_bps".to_owned(), m.goodput_bps),
            ("goodput_mbps".to_owned(), m.goodput_bps / 1e6),
            ("seconds".to_owned(), m.seconds),
            ("cpu_seconds".to_owned(), m.cpu_seconds),
            (
                "cpu_seconds_per_gib".to_owned(),
                m.cpu_seconds / (m.payload_bytes as f64 / (1u64 << 30) as f64),
            ),
            ("compression_ratio".to_owned(), m.compression_ratio),
            ("wire_bytes".to_owned(), m.wire_bytes as f64),
        ]);
        Ok(Outcome {
            objective: m.goodput_bps,
            metrics,
        })
    }
}

impl Environment for TransferEnv {
    fn describe(&self) -> String {
        format!("transfer engine, scenario {}", self.scenario.name)
    }
    fn space(&self) -> &Space {
        &self.space
    }
    fn objective_name(&self) -> &str {
        "goodput_bps"
    }
    fn context(&self) -> Vec<f64> {
        self.context.clone()
    }
    fn evaluate(&mut self, config: &Config) -> Result<Outcome, TuneError> {
        self.measure(config, 1.0)
    }
    fn evaluate_canary(&mut self, config: &Config) -> Result<Outcome, TuneError> {
        self.measure(config, self.canary_share)
    }
}

/// Runs `sh -c command` with `config` as JSON on stdin and in `NOVAML_CONFIG`, and each
/// parameter in `NOVAML_PARAM_<NAME>`; returns its stdout. Killed after `timeout`.
fn run_command(command: &str, config: &Config, timeout: Duration) -> Result<String, TuneError> {
    let json = serde_json::to_string(config).map_err(|e| TuneError::Run(e.to_string()))?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .env("NOVAML_CONFIG", &json)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in config {
        let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        cmd.env(format!("NOVAML_PARAM_{}", k.to_uppercase()), v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| TuneError::Run(format!("cannot start {command:?}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin closes it early; that is not an error.
        let _ = stdin.write_all(json.as_bytes());
    }
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TuneError::Timeout(timeout.as_secs_f64()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(TuneError::Run(format!("waiting for {command:?}: {e}"))),
        }
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        let tail: String = stderr
            .lines()
            .last()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        return Err(TuneError::Run(format!(
            "{command:?} exited with {status}: {tail}"
        )));
    }
    Ok(stdout)
}

/// An environment defined by a command: it applies the configuration it is given (JSON on
/// stdin, `NOVAML_CONFIG`, `NOVAML_PARAM_<NAME>`) and prints a JSON object of numeric metrics
/// as the last line of its output.
pub struct CommandEnv {
    command: String,
    space: Space,
    objective: String,
    minimize: bool,
    timeout: Duration,
}

impl CommandEnv {
    /// A command environment; the objective is the metric `objective`, maximised unless
    /// `minimize`.
    pub fn new(
        command: impl Into<String>,
        space: Space,
        objective: impl Into<String>,
        minimize: bool,
        timeout: Duration,
    ) -> Self {
        Self {
            command: command.into(),
            space,
            objective: objective.into(),
            minimize,
            timeout,
        }
    }
}

/// Reads the metrics of a command's output: the last line that is a JSON object of numbers.
pub fn parse_metrics(stdout: &str) -> Result<BTreeMap<String, f64>, TuneError> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| TuneError::Run("the command printed no JSON object of metrics".into()))?;
    let v: Value = serde_json::from_str(line.trim())
        .map_err(|e| TuneError::Run(format!("its metrics are not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| TuneError::Run("its metrics are not a JSON object".into()))?;
    obj.iter()
        .map(|(k, v)| {
            v.as_f64()
                .filter(|x| x.is_finite())
                .map(|x| (k.clone(), x))
                .ok_or_else(|| TuneError::Run(format!("metric {k} is not a finite number: {v}")))
        })
        .collect()
}

fn outcome(
    metrics: BTreeMap<String, f64>,
    objective: &str,
    minimize: bool,
) -> Result<Outcome, TuneError> {
    let x = *metrics.get(objective).ok_or_else(|| {
        let names: Vec<&str> = metrics.keys().map(String::as_str).collect();
        TuneError::Run(format!(
            "the objective {objective} is not among the metrics ({})",
            names.join(", ")
        ))
    })?;
    Ok(Outcome {
        objective: if minimize { -x } else { x },
        metrics,
    })
}

impl Environment for CommandEnv {
    fn describe(&self) -> String {
        format!("command {:?}", self.command)
    }
    fn space(&self) -> &Space {
        &self.space
    }
    fn objective_name(&self) -> &str {
        &self.objective
    }
    fn evaluate(&mut self, config: &Config) -> Result<Outcome, TuneError> {
        let out = run_command(&self.command, config, self.timeout)?;
        outcome(parse_metrics(&out)?, &self.objective, self.minimize)
    }
}

/// How a [`PrometheusEnv`] applies a configuration.
#[derive(Debug, Clone)]
pub enum Apply {
    /// Runs this command (configuration as in [`CommandEnv`]).
    Command(String),
    /// POSTs the configuration as JSON to this URL.
    Http(String),
}

/// An environment measured by Prometheus: apply, wait `settle`, wait `window`, then evaluate
/// each PromQL query at the end of the window (`$window` in a query is replaced by the window,
/// e.g. `rate(bytes_total[$window])`); each query must return one number.
pub struct PrometheusEnv {
    url: String,
    apply: Apply,
    space: Space,
    queries: BTreeMap<String, String>,
    objective: String,
    minimize: bool,
    settle: Duration,
    window: Duration,
    timeout: Duration,
    client: reqwest::blocking::Client,
}

impl PrometheusEnv {
    /// A Prometheus-measured environment; `queries` maps metric names to PromQL and must hold
    /// `objective`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        url: impl Into<String>,
        apply: Apply,
        space: Space,
        queries: BTreeMap<String, String>,
        objective: impl Into<String>,
        minimize: bool,
        settle: Duration,
        window: Duration,
        timeout: Duration,
    ) -> Result<Self, TuneError> {
        let objective = objective.into();
        if !queries.contains_key(&objective) {
            return Err(TuneError::param(
                "objective",
                format!("no query named {objective}"),
            ));
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| TuneError::Run(e.to_string()))?;
        Ok(Self {
            url: url.into().trim_end_matches('/').to_owned(),
            apply,
            space,
            queries,
            objective,
            minimize,
            settle,
            window,
            timeout,
            client,
        })
    }

    fn query(&self, promql: &str) -> Result<f64, TuneError> {
        let window = format!("{}s", self.window.as_secs().max(1));
        let q = promql.replace("$window", &window);
        let resp: Value = self
            .client
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", q.as_str())])
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json())
            .map_err(|e| TuneError::Run(format!("querying {q:?}: {e}")))?;
        let data = &resp["data"];
        let value = match data["resultType"].as_str() {
            Some("scalar") => &data["result"][1],
            Some("vector") => {
                let r = data["result"].as_array().map_or(&[][..], Vec::as_slice);
                if r.len() != 1 {
                    return Err(TuneError::Run(format!(
                        "{q:?} returned {} series; it must return one (aggregate it)",
                        r.len()
                    )));
                }
                &r[0]["value"][1]
            }
            other => {
                return Err(TuneError::Run(format!(
                    "{q:?} returned {other:?}; use an instant query that gives one number"
                )));
            }
        };
        value
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|x| x.is_finite())
            .ok_or_else(|| TuneError::Run(format!("{q:?} returned no finite number: {value}")))
    }
}

impl Environment for PrometheusEnv {
    fn describe(&self) -> String {
        format!("Prometheus at {}", self.url)
    }
    fn space(&self) -> &Space {
        &self.space
    }
    fn objective_name(&self) -> &str {
        &self.objective
    }
    fn evaluate(&mut self, config: &Config) -> Result<Outcome, TuneError> {
        match &self.apply {
            Apply::Command(c) => {
                run_command(c, config, self.timeout)?;
            }
            Apply::Http(url) => {
                self.client
                    .post(url)
                    .json(config)
                    .send()
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| TuneError::Run(format!("applying at {url}: {e}")))?;
            }
        }
        std::thread::sleep(self.settle + self.window);
        let metrics = self
            .queries
            .iter()
            .map(|(k, q)| Ok((k.clone(), self.query(q)?)))
            .collect::<Result<BTreeMap<_, _>, TuneError>>()?;
        outcome(metrics, &self.objective, self.minimize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Domain, Param};
    use serde_json::json;

    fn space() -> Space {
        Space {
            params: vec![Param {
                name: "x".into(),
                domain: Domain::Int {
                    lo: 0,
                    hi: 10,
                    log: false,
                    step: 1,
                },
                default: json!(5),
                help: String::new(),
                active_if: None,
            }],
        }
    }

    #[test]
    fn a_command_env_passes_the_config_and_reads_metrics() {
        let mut env = CommandEnv::new(
            r#"echo progress; echo "{\"cost\": $((NOVAML_PARAM_X * 2)), \"other\": 1}""#,
            space(),
            "cost",
            true,
            Duration::from_secs(10),
        );
        let c = space().validate(&json!({"x": 3})).expect("valid");
        let o = env.evaluate(&c).expect("runs");
        assert_eq!(o.metrics["cost"], 6.0);
        assert_eq!(o.objective, -6.0, "minimised objectives are negated");
    }

    #[test]
    fn command_failures_are_clear_errors() {
        let c = space().default_config();
        let cases = [
            ("exit 3", "exited"),
            ("echo hello", "no JSON object"),
            (r#"echo '{"cost": "high"}'"#, "not a finite number"),
            (r#"echo '{"latency": 1}'"#, "objective cost is not among"),
            ("sleep 5", "timed out"),
        ];
        for (cmd, want) in cases {
            let mut env = CommandEnv::new(cmd, space(), "cost", false, Duration::from_millis(300));
            let e = env.evaluate(&c).expect_err(cmd);
            assert!(e.to_string().contains(want), "{cmd}: {e}");
        }
    }
}
