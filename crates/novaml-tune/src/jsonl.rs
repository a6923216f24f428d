//! JSON-lines files: the audit log and the rl tuner's experience.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::TuneError;

fn io(path: &Path) -> impl Fn(std::io::Error) -> TuneError + '_ {
    move |source| TuneError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Every record of `path`; a missing file has none. A bad line is an error naming it.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, TuneError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .map_err(|e| TuneError::Run(format!("{} line {}: {e}", path.display(), i + 1)))?,
        );
    }
    Ok(out)
}

/// Appends `records` to `path`, creating it (0600) and its directory (0700).
pub(crate) fn append<T: Serialize>(path: &Path, records: &[T]) -> Result<(), TuneError> {
    let mut f = novaml_core::fs::append_private(path).map_err(io(path))?;
    for r in records {
        let line = serde_json::to_string(r).map_err(|e| TuneError::Run(e.to_string()))?;
        writeln!(f, "{line}").map_err(io(path))?;
    }
    Ok(())
}
