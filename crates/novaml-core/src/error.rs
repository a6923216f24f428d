//! Errors of the core types (selector parsing, key validation, configuration values).

/// A boxed error, used where a trait must carry errors of several implementations.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors raised while building or parsing core types.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {name:?}")]
    InvalidMetricName {
        /// The rejected name.
        name: String,
    },
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {name:?}")]
    InvalidLabelName {
        /// The rejected name.
        name: String,
    },
    /// A regular expression in a label matcher does not compile.
    #[error("invalid regex {pattern:?} for label {label:?}: {source}")]
    InvalidRegex {
        /// The label the matcher applies to.
        label: String,
        /// The rejected pattern.
        pattern: String,
        /// Why the regex engine rejected it.
        source: regex::Error,
    },
    /// A selector string could not be parsed.
    #[error("cannot parse selector {input:?} at byte {position}: {reason}")]
    SelectorSyntax {
        /// The whole selector text.
        input: String,
        /// Byte offset of the problem.
        position: usize,
        /// What was expected.
        reason: &'static str,
    },
    /// A time range whose end is before its start.
    #[error("time range end {end} is before start {start}")]
    EmptyRange {
        /// Start, ms since the Unix epoch.
        start: i64,
        /// End, ms since the Unix epoch.
        end: i64,
    },
    /// A configuration value is invalid; `field` names it as written in the file.
    #[error("invalid configuration `{field}`: {reason}")]
    Config {
        /// Dotted path of the field, e.g. `detect.interval`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A step of zero or less.
    #[error("step must be positive, got {step_ms} ms")]
    InvalidStep {
        /// The rejected step.
        step_ms: i64,
    },
}
