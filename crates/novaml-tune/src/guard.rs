//! Guardrails for changing a live system: bounds, a change budget, a safety check, a canary
//! before widening, a sequential test that rolls a change back automatically when the
//! objective regresses beyond measurement noise, and an audit log of every change with
//! one-step revert.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::TuneError;
use crate::bo::GpSafety;
use crate::env::Environment;
use crate::space::Config;
use crate::tuner::{Constraint, Problem, SafetyModel, Trial};

/// The guardrails' settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    /// Constraints every applied configuration must keep.
    pub constraints: Vec<Constraint>,
    /// Refuse when the predicted probability that the constraints hold is below this.
    pub safety: f64,
    /// Try the change on a canary (a small share of the work) first.
    pub canary: bool,
    /// The canary may be at most this much (relative) worse than the current configuration's.
    pub canary_tolerance: f64,
    /// The regression the sequential test is built to detect (relative, e.g. 0.05).
    pub regression: f64,
    /// False-alarm rate of the test.
    pub alpha: f64,
    /// Missed-regression rate of the test.
    pub beta: f64,
    /// Measurements of the current configuration that set the noise level.
    pub baseline_runs: usize,
    /// Most measurements of the new configuration before the test must decide.
    pub max_checks: usize,
    /// Most changes applied within `budget_window_s`.
    pub change_budget: usize,
    /// The change budget's window, seconds.
    pub budget_window_s: f64,
}

impl Default for Guard {
    fn default() -> Self {
        Self {
            constraints: Vec::new(),
            safety: 0.8,
            canary: true,
            canary_tolerance: 0.2,
            regression: 0.05,
            alpha: 0.05,
            beta: 0.1,
            baseline_runs: 3,
            max_checks: 8,
            change_budget: 5,
            budget_window_s: 3600.0,
        }
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// `apply`, `rollback`, `revert` or `refuse`.
    pub action: String,
    /// The configuration before.
    pub from: Config,
    /// The configuration asked for (for `refuse`, the one refused).
    pub to: Config,
    /// The configuration in effect afterwards.
    pub in_effect: Config,
    /// Why.
    pub reason: String,
    /// Measurements behind the decision.
    pub evidence: Value,
}

/// What [`Deployment::apply`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Applied {
    /// The change holds.
    Kept {
        /// Why it was kept.
        reason: String,
    },
    /// The change was applied, regressed, and was rolled back.
    RolledBack {
        /// The test's verdict.
        reason: String,
    },
    /// The change was not applied.
    Refused {
        /// Why.
        reason: String,
    },
}

/// A live system's configuration under guardrails, with its audit log.
pub struct Deployment {
    log_path: PathBuf,
    current: Config,
    log: Vec<AuditEntry>,
    /// The guardrails.
    pub guard: Guard,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

impl Deployment {
    /// Opens the audit log at `log_path` (JSON lines); the configuration in effect is the last
    /// entry's, or `initial` when the log is empty or missing.
    pub fn open(log_path: &Path, initial: Config, guard: Guard) -> Result<Self, TuneError> {
        let log: Vec<AuditEntry> = crate::jsonl::read(log_path)?;
        let current = log.last().map_or(initial, |e| e.in_effect.clone());
        Ok(Self {
            log_path: log_path.to_owned(),
            current,
            log,
            guard,
        })
    }

    /// The configuration in effect (the last good one).
    pub fn current(&self) -> &Config {
        &self.current
    }

    /// Every change so far.
    pub fn log(&self) -> &[AuditEntry] {
        &self.log
    }

    fn record(
        &mut self,
        action: &str,
        to: &Config,
        in_effect: Config,
        reason: &str,
        evidence: Value,
    ) -> Result<(), TuneError> {
        let e = AuditEntry {
            at: now(),
            action: action.into(),
            from: self.current.clone(),
            to: to.clone(),
            in_effect: in_effect.clone(),
            reason: reason.into(),
            evidence,
        };
        crate::jsonl::append(&self.log_path, std::slice::from_ref(&e))?;
        self.log.push(e);
        self.current = in_effect;
        Ok(())
    }

    fn refuse(
        &mut self,
        to: &Config,
        reason: String,
        evidence: Value,
    ) -> Result<Applied, TuneError> {
        let keep = self.current.clone();
        self.record("refuse", to, keep, &reason, evidence)?;
        Ok(Applied::Refused { reason })
    }

    /// Puts `config` back in effect on the system (a measured run applies it) after a failed
    /// change; an error here leaves the log saying what is in effect.
    fn restore(&mut self, env: &mut dyn Environment, config: &Config) -> Value {
        match env.evaluate(config) {
            Ok(o) => json!({"restored_objective": o.objective}),
            Err(e) => json!({"restore_error": e.to_string()}),
        }
    }

    /// Applies `candidate` under the guardrails: bounds, change budget, safety check (from
    /// `history`'s measurements, when constraints are set), canary, then the full change
    /// watched by a sequential probability ratio test on the log objective against the
    /// current configuration's runs. A regression, a constraint violation or a failure rolls
    /// back to the configuration in effect before.
    pub fn apply(
        &mut self,
        env: &mut dyn Environment,
        candidate: &Config,
        history: &[Trial],
    ) -> Result<Applied, TuneError> {
        let g = self.guard.clone();
        let json = serde_json::to_value(candidate).map_err(|e| TuneError::Run(e.to_string()))?;
        let candidate = match env.space().validate(&json) {
            Ok(c) => c,
            Err(e) => return self.refuse(candidate, format!("out of bounds: {e}"), Value::Null),
        };
        if candidate == self.current {
            return Ok(Applied::Kept {
                reason: "already in effect".into(),
            });
        }
        let since = now() - g.budget_window_s;
        let recent = self
            .log
            .iter()
            .filter(|e| e.action == "apply" && e.at >= since)
            .count();
        if recent >= g.change_budget {
            return self.refuse(
                &candidate,
                format!(
                    "change budget spent: {recent} changes in the last {:.0} s",
                    g.budget_window_s
                ),
                Value::Null,
            );
        }
        if !g.constraints.is_empty() && !history.is_empty() {
            let problem = Problem {
                space: env.space().clone(),
                constraints: g.constraints.clone(),
                context: env.context(),
                budget: 0,
            };
            let p = GpSafety.p_feasible(&problem, history, &candidate);
            if p < g.safety {
                return self.refuse(
                    &candidate,
                    format!(
                        "safety check: P(constraints hold) = {p:.2} < {:.2}",
                        g.safety
                    ),
                    json!({"p_feasible": p}),
                );
            }
        }
        let current = self.current.clone();
        if g.canary {
            let base = env.evaluate_canary(&current);
            let canary = env.evaluate_canary(&candidate);
            match (base, canary) {
                (_, Err(e)) => {
                    let ev = self.restore(env, &current);
                    return self.refuse(&candidate, format!("canary failed: {e}"), ev);
                }
                (Ok(b), Ok(c)) => {
                    let violated: Vec<String> = g
                        .constraints
                        .iter()
                        .filter(|k| !k.holds(&c.metrics))
                        .map(ToString::to_string)
                        .collect();
                    let ev =
                        json!({"canary_current": b.objective, "canary_candidate": c.objective});
                    if !violated.is_empty() {
                        self.restore(env, &current);
                        return self.refuse(
                            &candidate,
                            format!("canary broke {}", violated.join(", ")),
                            ev,
                        );
                    }
                    if c.objective < b.objective * (1.0 - g.canary_tolerance) {
                        self.restore(env, &current);
                        return self.refuse(
                            &candidate,
                            format!(
                                "canary regressed: {:.4e} vs {:.4e}",
                                c.objective, b.objective
                            ),
                            ev,
                        );
                    }
                }
                (Err(e), Ok(_)) => {
                    return Err(TuneError::Run(format!(
                        "the configuration in effect fails its canary ({e}); fix that first"
                    )));
                }
            }
        }
        // The noise level: runs of the configuration in effect.
        let mut base = Vec::new();
        for _ in 0..g.baseline_runs.max(2) {
            let o = env.evaluate(&current)?;
            if o.objective <= 0.0 {
                return Err(TuneError::Run(
                    "the sequential test needs a positive objective".into(),
                ));
            }
            base.push(o.objective.ln());
        }
        let mb = mean(&base);
        let sd = (base.iter().map(|v| (v - mb).powi(2)).sum::<f64>() / (base.len() - 1) as f64)
            .sqrt()
            .max(0.02);
        // SPRT of H0: mean log-ratio 0 against H1: ln(1 − regression).
        let mu1 = (1.0 - g.regression).ln();
        let (upper, lower) = (
            ((1.0 - g.beta) / g.alpha).ln(),
            (g.beta / (1.0 - g.alpha)).ln(),
        );
        let mut llr = 0.0;
        let mut runs = Vec::new();
        let mut verdict: Option<(bool, String)> = None;
        for _ in 0..g.max_checks.max(1) {
            let o = match env.evaluate(&candidate) {
                Ok(o) => o,
                Err(e) => {
                    verdict = Some((false, format!("the new configuration failed: {e}")));
                    break;
                }
            };
            let violated: Vec<String> = g
                .constraints
                .iter()
                .filter(|k| !k.holds(&o.metrics))
                .map(ToString::to_string)
                .collect();
            if !violated.is_empty() {
                verdict = Some((false, format!("broke {}", violated.join(", "))));
                break;
            }
            let x = o.objective.max(f64::MIN_POSITIVE).ln() - mb;
            runs.push(o.objective);
            llr += mu1 / (sd * sd) * (x - mu1 / 2.0);
            if llr >= upper {
                verdict = Some((
                    false,
                    format!(
                        "regression: the sequential test rejected 'no regression' after {} runs \
                         (mean {:+.1} % vs the previous configuration)",
                        runs.len(),
                        (mean(&runs) / mb.exp() - 1.0) * 100.0
                    ),
                ));
                break;
            }
            if llr <= lower {
                verdict = Some((
                    true,
                    format!(
                        "no regression after {} runs (mean {:+.1} % vs the previous configuration)",
                        runs.len(),
                        (mean(&runs) / mb.exp() - 1.0) * 100.0
                    ),
                ));
                break;
            }
        }
        let (keep, reason) = verdict.unwrap_or_else(|| {
            let m = mean(&runs.iter().map(|v| v.ln()).collect::<Vec<_>>()) - mb;
            (
                m > mu1 / 2.0,
                format!(
                    "undecided after {} runs; kept only if closer to no change than to the \
                     regression (mean {:+.1} %)",
                    runs.len(),
                    (m.exp() - 1.0) * 100.0
                ),
            )
        });
        let evidence = json!({
            "baseline": base.iter().map(|v| v.exp()).collect::<Vec<_>>(),
            "candidate": runs,
            "llr": llr,
            "thresholds": [lower, upper],
        });
        if keep {
            self.record("apply", &candidate, candidate.clone(), &reason, evidence)?;
            Ok(Applied::Kept { reason })
        } else {
            // Logged as an applied change, then its rollback.
            self.record(
                "apply",
                &candidate,
                candidate.clone(),
                "applied after the canary",
                Value::Null,
            )?;
            let mut ev = evidence;
            ev["restore"] = self.restore(env, &current);
            self.record("rollback", &candidate, current, &reason, ev)?;
            Ok(Applied::RolledBack { reason })
        }
    }

    /// Undoes the last change in effect (one step): re-applies the configuration before it.
    pub fn revert(&mut self, env: &mut dyn Environment) -> Result<Config, TuneError> {
        let Some(last) = self
            .log
            .iter()
            .rev()
            .find(|e| e.action != "refuse")
            .cloned()
        else {
            return Err(TuneError::Run(
                "nothing to revert: no change in the log".into(),
            ));
        };
        let target = last.from.clone();
        let o = env.evaluate(&target)?;
        let mut metrics: BTreeMap<String, f64> = o.metrics;
        metrics.insert("objective".into(), o.objective);
        let to = target.clone();
        self.record(
            "revert",
            &to,
            target.clone(),
            &format!("one-step revert of the {} at {:.0}", last.action, last.at),
            json!({ "measured": metrics }),
        )?;
        Ok(target)
    }
}
