//! Errors of the tuning crate.

/// What can go wrong configuring or running an environment.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// A parameter is unknown, missing or out of bounds.
    #[error("invalid parameter {name}: {reason}")]
    Param {
        /// The parameter.
        name: String,
        /// Why.
        reason: String,
    },
    /// A scenario or payload name is unknown.
    #[error("unknown {what} {name:?} (known: {known})")]
    Unknown {
        /// What kind of name.
        what: &'static str,
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// The run failed (network, integrity, timeout).
    #[error("transfer failed: {0}")]
    Run(String),
    /// The tuner has no configuration left to propose.
    #[error("the tuner has no configuration left to try")]
    Exhausted,
    /// Reading or writing a file (audit log, cache).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A session ended without one feasible measured configuration.
    #[error(
        "no configuration was measured successfully ({trials} trials; first problem: {problem})"
    )]
    NothingMeasured {
        /// Trials made.
        trials: usize,
        /// The first error, or why none met the constraints.
        problem: String,
    },
    /// The run took longer than its timeout.
    #[error("transfer timed out after {0:.1} s")]
    Timeout(f64),
}

impl TuneError {
    pub(crate) fn param(name: &str, reason: impl Into<String>) -> Self {
        Self::Param {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
