//! Parameter spaces: named parameters with bounds, and configurations checked against them.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::TuneError;

/// The values one parameter may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Domain {
    /// Integers in `[lo, hi]`.
    Int {
        /// Lowest value.
        lo: i64,
        /// Highest value.
        hi: i64,
        /// Searched on a log scale (sizes, counts).
        log: bool,
        /// Allowed values are `lo + k·step`.
        #[serde(default = "one")]
        step: i64,
    },
    /// One of the names.
    Choice {
        /// The names.
        values: Vec<String>,
    },
    /// True or false.
    Bool,
}

fn one() -> i64 {
    1
}

/// One parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// Name.
    pub name: String,
    /// Allowed values.
    pub domain: Domain,
    /// The value of the default configuration.
    pub default: Value,
    /// What it does.
    pub help: String,
    /// The parameter matters only when another parameter has one of some values (e.g. a
    /// compression level only for the algorithms that have levels); otherwise it is held at its
    /// default, so tuners neither vary nor distinguish it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_if: Option<Condition>,
}

/// When a parameter is active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// The parameter it depends on.
    pub param: String,
    /// The values of that parameter under which it is active.
    pub values: Vec<Value>,
}

/// A configuration: parameter name → value.
pub type Config = BTreeMap<String, Value>;

/// An ordered set of parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Space {
    /// The parameters.
    pub params: Vec<Param>,
}

impl Space {
    /// The default configuration.
    pub fn default_config(&self) -> Config {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.default.clone()))
            .collect()
    }

    /// Checks `given` (a JSON object, possibly partial) and fills the missing parameters from the
    /// defaults. Unknown names and values out of bounds are errors.
    pub fn validate(&self, given: &Value) -> Result<Config, TuneError> {
        let obj = given
            .as_object()
            .ok_or_else(|| TuneError::param("(all)", "give the parameters as a JSON object"))?;
        let mut out = self.default_config();
        for (k, v) in obj {
            let p = self.params.iter().find(|p| &p.name == k).ok_or_else(|| {
                let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                TuneError::param(k, format!("unknown (known: {})", names.join(", ")))
            })?;
            check(p, v)?;
            out.insert(k.clone(), v.clone());
        }
        Ok(self.canonical(out))
    }

    /// Whether `p` matters under `c` (see [`Param::active_if`]).
    pub fn is_active(&self, p: &Param, c: &Config) -> bool {
        p.active_if
            .as_ref()
            .is_none_or(|cond| c.get(&cond.param).is_some_and(|v| cond.values.contains(v)))
    }

    /// `c` with every inactive parameter at its default: configurations that behave alike
    /// compare equal.
    pub fn canonical(&self, mut c: Config) -> Config {
        for p in &self.params {
            if !self.is_active(p, &c) {
                c.insert(p.name.clone(), p.default.clone());
            }
        }
        c
    }
}

fn check(p: &Param, v: &Value) -> Result<(), TuneError> {
    match &p.domain {
        Domain::Int { lo, hi, step, .. } => match v.as_i64() {
            Some(x) if (*lo..=*hi).contains(&x) && (x - lo).rem_euclid((*step).max(1)) == 0 => {
                Ok(())
            }
            Some(x) if (*lo..=*hi).contains(&x) => Err(TuneError::param(
                &p.name,
                format!("{x} is not {lo} plus a multiple of {step}"),
            )),
            Some(x) => Err(TuneError::param(
                &p.name,
                format!("{x} is outside [{lo}, {hi}]"),
            )),
            None => Err(TuneError::param(&p.name, format!("{v} is not an integer"))),
        },
        Domain::Choice { values } => match v.as_str() {
            Some(s) if values.iter().any(|c| c == s) => Ok(()),
            _ => Err(TuneError::param(
                &p.name,
                format!("{v} is not one of {}", values.join(", ")),
            )),
        },
        Domain::Bool => {
            if v.is_boolean() {
                Ok(())
            } else {
                Err(TuneError::param(&p.name, format!("{v} is not true/false")))
            }
        }
    }
}

impl Space {
    /// The parameter named `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// A configuration drawn uniformly (log-uniformly for log-scale integers).
    pub fn sample(&self, rng: &mut impl Rng) -> Config {
        self.canonical(
            self.params
                .iter()
                .map(|p| (p.name.clone(), sample_one(&p.domain, rng)))
                .collect(),
        )
    }

    /// `c` with one parameter changed: for integers mostly a nearby value (sometimes any),
    /// otherwise any value.
    pub fn neighbour(&self, c: &Config, rng: &mut impl Rng) -> Config {
        let mut out = c.clone();
        let active: Vec<&Param> = self
            .params
            .iter()
            .filter(|p| self.is_active(p, c))
            .collect();
        if active.is_empty() {
            return out;
        }
        let p = active[rng.random_range(0..active.len())];
        let v = match (&p.domain, c.get(&p.name).and_then(Value::as_i64)) {
            // Mostly a local move; one time in four a jump anywhere (a parameter that mattered
            // little under one choice, like a level under another algorithm, may matter now).
            (Domain::Int { lo, hi, log, step }, Some(x)) if rng.random_bool(0.75) => {
                let u = to_unit(x as f64, *lo, *hi, *log) + rng.random_range(-0.25..0.25);
                Value::from(from_unit(u.clamp(0.0, 1.0), *lo, *hi, *log, *step))
            }
            (d, _) => sample_one(d, rng),
        };
        out.insert(p.name.clone(), v);
        self.canonical(out)
    }

    /// `c` as numbers in `[0, 1]` for surrogate models: integers on their (log) scale, choices
    /// one-hot, booleans 0/1. Missing or invalid values encode as the domain's middle.
    pub fn encode(&self, c: &Config) -> Vec<f64> {
        let mut out = Vec::new();
        for p in &self.params {
            let v = c.get(&p.name);
            match &p.domain {
                Domain::Int { lo, hi, log, .. } => out.push(
                    v.and_then(Value::as_i64)
                        .map_or(0.5, |x| to_unit(x as f64, *lo, *hi, *log)),
                ),
                Domain::Choice { values } => {
                    let s = v.and_then(Value::as_str);
                    out.extend(values.iter().map(|c| f64::from(Some(c.as_str()) == s)));
                }
                Domain::Bool => out.push(v.and_then(Value::as_bool).map_or(0.5, f64::from)),
            }
        }
        out
    }

    /// The full grid: every choice and boolean, and `levels` values per integer (evenly spaced
    /// on its scale, ends included, deduplicated after rounding to the step), inactive
    /// parameters at their defaults, without duplicates.
    pub fn grid(&self, levels: usize) -> Vec<Config> {
        let mut out = vec![Config::new()];
        for p in &self.params {
            let values: Vec<Value> = match &p.domain {
                Domain::Int { lo, hi, log, step } => {
                    let n = levels.max(2);
                    let mut v: Vec<i64> = (0..n)
                        .map(|i| from_unit(i as f64 / (n - 1) as f64, *lo, *hi, *log, *step))
                        .collect();
                    v.dedup();
                    v.into_iter().map(Value::from).collect()
                }
                Domain::Choice { values } => {
                    values.iter().map(|s| Value::from(s.as_str())).collect()
                }
                Domain::Bool => vec![Value::from(false), Value::from(true)],
            };
            out = out
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(p.name.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
        let mut seen = std::collections::BTreeSet::new();
        out.into_iter()
            .map(|c| self.canonical(c))
            .filter(|c| seen.insert(serde_json::to_string(c).unwrap_or_default()))
            .collect()
    }
}

fn to_unit(x: f64, lo: i64, hi: i64, log: bool) -> f64 {
    if hi <= lo {
        return 0.5;
    }
    if log && lo > 0 {
        (x.max(lo as f64).ln() - (lo as f64).ln()) / ((hi as f64).ln() - (lo as f64).ln())
    } else {
        (x - lo as f64) / (hi - lo) as f64
    }
}

fn from_unit(u: f64, lo: i64, hi: i64, log: bool, step: i64) -> i64 {
    let x = if log && lo > 0 {
        ((lo as f64).ln() + u * ((hi as f64).ln() - (lo as f64).ln())).exp()
    } else {
        lo as f64 + u * (hi - lo) as f64
    };
    let step = step.max(1);
    let k = ((x - lo as f64) / step as f64).round() as i64;
    let top = (hi - lo) / step;
    lo + k.clamp(0, top) * step
}

fn sample_one(d: &Domain, rng: &mut impl Rng) -> Value {
    match d {
        Domain::Int { lo, hi, log, step } => {
            Value::from(from_unit(rng.random::<f64>(), *lo, *hi, *log, *step))
        }
        Domain::Choice { values } if !values.is_empty() => {
            Value::from(values[rng.random_range(0..values.len())].as_str())
        }
        Domain::Choice { .. } => Value::Null,
        Domain::Bool => Value::from(rng.random::<bool>()),
    }
}

/// Reads an integer parameter of a validated configuration.
pub fn int(c: &Config, name: &str) -> Result<i64, TuneError> {
    c.get(name)
        .and_then(Value::as_i64)
        .ok_or_else(|| TuneError::param(name, "missing"))
}

/// Reads a choice parameter of a validated configuration.
pub fn choice<'a>(c: &'a Config, name: &str) -> Result<&'a str, TuneError> {
    c.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| TuneError::param(name, "missing"))
}

/// Reads a boolean parameter of a validated configuration.
pub fn boolean(c: &Config, name: &str) -> Result<bool, TuneError> {
    c.get(name)
        .and_then(Value::as_bool)
        .ok_or_else(|| TuneError::param(name, "missing"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn space() -> Space {
        Space {
            params: vec![
                Param {
                    name: "level".into(),
                    domain: Domain::Int {
                        lo: 1,
                        hi: 19,
                        log: false,
                        step: 1,
                    },
                    default: json!(3),
                    help: String::new(),
                    active_if: None,
                },
                Param {
                    name: "algorithm".into(),
                    domain: Domain::Choice {
                        values: vec!["zstd".into(), "none".into()],
                    },
                    default: json!("zstd"),
                    help: String::new(),
                    active_if: None,
                },
            ],
        }
    }

    #[test]
    fn validation_fills_defaults_and_names_errors() {
        let s = space();
        let c = s.validate(&json!({"level": 7})).expect("ok");
        assert_eq!(int(&c, "level").expect("level"), 7);
        assert_eq!(choice(&c, "algorithm").expect("alg"), "zstd");
        let e = s.validate(&json!({"levl": 7})).expect_err("unknown");
        assert!(
            e.to_string().contains("levl") && e.to_string().contains("level"),
            "{e}"
        );
        let e = s.validate(&json!({"level": 20})).expect_err("bounds");
        assert!(e.to_string().contains("outside [1, 19]"), "{e}");
        let e = s
            .validate(&json!({"algorithm": "gzip"}))
            .expect_err("choice");
        assert!(e.to_string().contains("gzip"), "{e}");
        assert!(s.validate(&json!([1])).is_err());
    }

    #[test]
    fn samples_neighbours_and_grids_are_valid() {
        use rand::SeedableRng;
        let mut s = space();
        s.params.push(Param {
            name: "chunk".into(),
            domain: Domain::Int {
                lo: 64,
                hi: 8192,
                log: true,
                step: 4,
            },
            default: json!(1024),
            help: String::new(),
            active_if: None,
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..200 {
            let c = s.sample(&mut rng);
            let v = serde_json::to_value(&c).expect("json");
            s.validate(&v).expect("sample is valid");
            let n = s.neighbour(&c, &mut rng);
            s.validate(&serde_json::to_value(&n).expect("json"))
                .expect("neighbour is valid");
            let e = s.encode(&c);
            assert_eq!(e.len(), 4);
            assert!(e.iter().all(|x| (0.0..=1.0).contains(x)), "{e:?}");
        }
        let g = s.grid(3);
        // level: 1, 10, 19; algorithm: 2; chunk: 64, 724, 8192.
        assert_eq!(g.len(), 3 * 2 * 3);
        for c in &g {
            s.validate(&serde_json::to_value(c).expect("json"))
                .expect("grid point is valid");
        }
        let e = s.validate(&json!({"chunk": 66})).expect_err("off step");
        assert!(e.to_string().contains("multiple of 4"), "{e}");
    }

    #[test]
    fn inactive_parameters_are_held_at_their_defaults() {
        let mut s = space();
        s.params[0].active_if = Some(Condition {
            param: "algorithm".into(),
            values: vec![json!("zstd")],
        });
        let c = s
            .validate(&json!({"algorithm": "none", "level": 12}))
            .expect("valid");
        assert_eq!(
            int(&c, "level").expect("level"),
            3,
            "level means nothing without zstd"
        );
        let c = s
            .validate(&json!({"algorithm": "zstd", "level": 12}))
            .expect("valid");
        assert_eq!(int(&c, "level").expect("level"), 12);
        // The grid does not repeat "none" for every level: 3 levels × zstd + none.
        assert_eq!(s.grid(3).len(), 4);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        for _ in 0..50 {
            let c = s.sample(&mut rng);
            if choice(&c, "algorithm").expect("alg") == "none" {
                assert_eq!(int(&c, "level").expect("level"), 3);
            }
        }
    }
}
