//! Files novaml keeps: private to the user who runs it (files 0600, directories 0700: the data
//! directory holds the API token, incidents and models) and rewritten atomically (a temporary
//! file in the same directory, synced, then renamed over the old one: a crash leaves the old or
//! the new document, never half of one).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Creates `dir` and its missing parents, each new one private (0700 on Unix).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Options that create a file private to its owner (0600 on Unix).
pub fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// Opens `path` for appending, creating it (0600) and its directory (0700).
pub fn append_private(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    private_options().create(true).append(true).open(path)
}

/// Writes `bytes` to `path` atomically, the file private (0600), its directory created (0700).
/// On failure the error names the file that failed (the temporary one or the target).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), (PathBuf, std::io::Error)> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        create_private_dir(d).map_err(|e| (d.to_owned(), e))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and call, so two writers of one file never share a temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let written = private_options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err((tmp, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err((path.to_owned(), e));
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn files_and_directories_are_private_and_replaced_whole() {
        let root = std::env::temp_dir().join(format!("novaml-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let path = root.join("a/b/doc.json");
        write_private(&path, b"first").expect("write");
        write_private(&path, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.join("a")), 0o700);
        assert_eq!(mode(&root.join("a/b")), 0o700);
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(root.join("a/b"))
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        let log = root.join("c/audit.jsonl");
        writeln!(append_private(&log).expect("append"), "x").expect("line");
        assert_eq!(mode(&log), 0o600);
        std::fs::remove_dir_all(&root).expect("clean up");
    }
}
