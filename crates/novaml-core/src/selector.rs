//! Series selectors: label matchers with PromQL semantics (`=`, `!=`, `=~`, `!~`).

use std::fmt;
use std::str::FromStr;

use regex::Regex;

use crate::{CoreError, SeriesKey};

/// How a matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`: equal.
    Eq,
    /// `!=`: not equal.
    Ne,
    /// `=~`: the whole value matches the regex.
    Re,
    /// `!~`: the whole value does not match the regex.
    Nre,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Re => "=~",
            Self::Nre => "!~",
        }
    }
}

/// One label matcher. As in Prometheus, a missing label has the value `""`, and regexes are
/// anchored at both ends.
#[derive(Debug, Clone)]
pub struct LabelMatcher {
    /// Label name; `__name__` matches the metric name.
    pub label: String,
    /// Comparison.
    pub op: MatchOp,
    /// The value or pattern as written.
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for LabelMatcher {
    fn eq(&self, other: &Self) -> bool {
        self.label == other.label && self.op == other.op && self.value == other.value
    }
}

impl LabelMatcher {
    /// A matcher; compiles the regex for `=~` and `!~`.
    pub fn new(
        label: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, CoreError> {
        let label = label.into();
        let value = value.into();
        let regex = match op {
            MatchOp::Re | MatchOp::Nre => {
                Some(Regex::new(&format!("^(?:{value})$")).map_err(|source| {
                    CoreError::InvalidRegex {
                        label: label.clone(),
                        pattern: value.clone(),
                        source,
                    }
                })?)
            }
            MatchOp::Eq | MatchOp::Ne => None,
        };
        Ok(Self {
            label,
            op,
            value,
            regex,
        })
    }

    /// Whether a label value (`""` when absent) satisfies the matcher.
    pub fn matches_value(&self, v: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Ne, _) => v != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(v),
            (MatchOp::Nre, Some(re)) => !re.is_match(v),
            // `new` always compiles a regex for the regex operators.
            (MatchOp::Re | MatchOp::Nre, None) => false,
        }
    }

    /// Whether `key` satisfies the matcher.
    pub fn matches(&self, key: &SeriesKey) -> bool {
        self.matches_value(key.label(&self.label).unwrap_or(""))
    }
}

/// A set of matchers; a series is selected when it satisfies all of them.
///
/// Parses from PromQL's instant-vector selector syntax: `name`, `name{a="x",b=~"y.*"}` or
/// `{__name__=~"node_.*"}`. An empty selector (`{}`) selects every series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selector {
    /// The matchers, all of which must hold.
    pub matchers: Vec<LabelMatcher>,
}

impl Selector {
    /// The selector that picks every series.
    pub fn all() -> Self {
        Self::default()
    }

    /// Selects exactly one series: its name and every label by equality, and no other labels.
    pub fn exact(key: &SeriesKey) -> Self {
        // Label sets differ in extra labels too; exact lookups therefore go by key in stores,
        // this selector is for display and for stores without a key index.
        let mut matchers = vec![LabelMatcher {
            label: "__name__".into(),
            op: MatchOp::Eq,
            value: key.name.clone(),
            regex: None,
        }];
        matchers.extend(key.labels.iter().map(|(k, v)| LabelMatcher {
            label: k.clone(),
            op: MatchOp::Eq,
            value: v.clone(),
            regex: None,
        }));
        Self { matchers }
    }

    /// Adds a matcher.
    pub fn with(mut self, m: LabelMatcher) -> Self {
        self.matchers.push(m);
        self
    }

    /// Whether `key` satisfies every matcher.
    pub fn matches(&self, key: &SeriesKey) -> bool {
        self.matchers.iter().all(|m| m.matches(key))
    }

    /// The metric name, when the selector fixes it by equality.
    pub fn metric_name(&self) -> Option<&str> {
        self.matchers
            .iter()
            .find(|m| m.label == "__name__" && m.op == MatchOp::Eq)
            .map(|m| m.value.as_str())
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}{}{:?}", m.label, m.op.as_str(), m.value)?;
        }
        f.write_str("}")
    }
}

impl FromStr for Selector {
    type Err = CoreError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Parser { input, pos: 0 }.selector()
    }
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, reason: &'static str) -> CoreError {
        CoreError::SelectorSyntax {
            input: self.input.to_owned(),
            position: self.pos,
            reason,
        }
    }

    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.input.len() - trimmed.len();
    }

    fn ident(&mut self, metric: bool) -> &str {
        let start = self.pos;
        let len = self
            .rest()
            .bytes()
            .take_while(|&b| b.is_ascii_alphanumeric() || b == b'_' || (metric && b == b':'))
            .count();
        self.pos += len;
        &self.input[start..self.pos]
    }

    fn selector(mut self) -> Result<Selector, CoreError> {
        let mut sel = Selector::default();
        self.skip_ws();
        let name = self.ident(true).to_owned();
        if !name.is_empty() {
            if !crate::is_valid_metric_name(&name) {
                return Err(CoreError::InvalidMetricName { name });
            }
            sel.matchers
                .push(LabelMatcher::new("__name__", MatchOp::Eq, name.as_str())?);
        }
        self.skip_ws();
        if self.rest().starts_with('{') {
            self.pos += 1;
            loop {
                self.skip_ws();
                if self.rest().starts_with('}') {
                    self.pos += 1;
                    break;
                }
                let label = self.ident(false).to_owned();
                if label.is_empty() {
                    return Err(self.err("expected a label name"));
                }
                self.skip_ws();
                let op = if let Some(op) = ["=~", "!~", "!=", "="]
                    .iter()
                    .find(|op| self.rest().starts_with(**op))
                {
                    self.pos += op.len();
                    match *op {
                        "=~" => MatchOp::Re,
                        "!~" => MatchOp::Nre,
                        "!=" => MatchOp::Ne,
                        _ => MatchOp::Eq,
                    }
                } else {
                    return Err(self.err("expected one of = != =~ !~"));
                };
                self.skip_ws();
                let value = self.string()?;
                sel.matchers.push(LabelMatcher::new(label, op, value)?);
                self.skip_ws();
                if self.rest().starts_with(',') {
                    self.pos += 1;
                } else if !self.rest().starts_with('}') {
                    return Err(self.err("expected , or }"));
                }
            }
        } else if name.is_empty() && !self.rest().is_empty() {
            return Err(self.err("expected a metric name or {"));
        }
        self.skip_ws();
        if !self.rest().is_empty() {
            return Err(self.err("unexpected text after selector"));
        }
        Ok(sel)
    }

    fn string(&mut self) -> Result<String, CoreError> {
        let quote = match self.rest().chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err(self.err("expected a quoted string")),
        };
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, c)) => out.push(c),
                    None => break,
                },
                c if c == quote => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(self.err("unterminated string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, labels: &[(&str, &str)]) -> SeriesKey {
        labels
            .iter()
            .try_fold(SeriesKey::new(name).expect("name"), |k, (a, b)| {
                k.with_label(*a, *b)
            })
            .expect("labels")
    }

    #[test]
    fn matchers_follow_promql_semantics() {
        let k = key("node_cpu", &[("mode", "idle"), ("cpu", "0")]);
        let cases = [
            ("node_cpu", true),
            ("node_mem", false),
            (r#"node_cpu{mode="idle"}"#, true),
            (r#"node_cpu{mode!="idle"}"#, false),
            (r#"{__name__=~"node_.*"}"#, true),
            (r#"{__name__=~"node"}"#, false), // anchored
            (r#"node_cpu{mode=~"id.*",cpu!~"1|2"}"#, true),
            (r#"node_cpu{missing=""}"#, true), // absent label equals ""
            (r#"node_cpu{missing!=""}"#, false),
            ("{}", true),
            ("  node_cpu { mode = 'idle' , } ", true),
        ];
        for (text, want) in cases {
            let sel: Selector = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(sel.matches(&k), want, "{text}");
        }
    }

    #[test]
    fn bad_selectors_are_rejected_with_position() {
        for text in [
            "node{",
            "node{a}",
            r#"node{a="x"} junk"#,
            r#"{a=~"("}"#,
            r#"{a="x}"#,
            "1bad",
        ] {
            assert!(text.parse::<Selector>().is_err(), "{text} should not parse");
        }
    }

    #[test]
    fn display_round_trips() {
        let sel: Selector = r#"up{job=~"a.*",x!="q\"r"}"#.parse().expect("parses");
        let again: Selector = sel.to_string().parse().expect("round trip parses");
        assert_eq!(sel, again);
    }
}
