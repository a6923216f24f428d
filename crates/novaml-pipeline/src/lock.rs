//! One running system per data directory: an exclusive lock (`flock`) on `novaml.lock` beside
//! the store, held while the pipeline runs and released by the kernel when the process ends
//! (even on `kill -9`, so a stale file never blocks a restart). Two pipelines on one directory
//! would overwrite each other's tuning runs and models and answer different things on their
//! APIs; the second one stops at start, naming the holder's PID.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::PipelineError;

/// The lock file's name.
pub const LOCK_FILE: &str = "novaml.lock";

/// A held lock on a data directory; released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir` (created private when missing), or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, PipelineError> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        novaml_core::fs::create_private_dir(dir)
            .map_err(PipelineError::io("cannot create", dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = novaml_core::fs::private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(PipelineError::io("cannot open", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(PipelineError::Locked {
                    dir: dir.to_owned(),
                    holder: if pid.is_empty() {
                        "another process".into()
                    } else {
                        format!("PID {pid}")
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(PipelineError::io("cannot lock", &path)(e));
            }
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_all());
        written.map_err(PipelineError::io("cannot write", &path))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = DirLock::acquire(&data).expect("first");
        let err = DirLock::acquire(&data).expect_err("second");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("PID {}", std::process::id())) && msg.contains("in use"),
            "{msg}"
        );
        assert_eq!(first.path(), data.join(LOCK_FILE));
        drop(first);
        DirLock::acquire(&data).expect("free again once the first is dropped");
    }
}
