//! Parameter spaces: named parameters with bounds, and configurations checked against them.

use std::collections::BTreeMap;

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
    },
    /// One of the names.
    Choice {
        /// The names.
        values: Vec<String>,
    },
    /// True or false.
    Bool,
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
        Ok(out)
    }
}

fn check(p: &Param, v: &Value) -> Result<(), TuneError> {
    match &p.domain {
        Domain::Int { lo, hi, .. } => match v.as_i64() {
            Some(x) if (*lo..=*hi).contains(&x) => Ok(()),
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
                    },
                    default: json!(3),
                    help: String::new(),
                },
                Param {
                    name: "algorithm".into(),
                    domain: Domain::Choice {
                        values: vec!["zstd".into(), "none".into()],
                    },
                    default: json!("zstd"),
                    help: String::new(),
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
}
