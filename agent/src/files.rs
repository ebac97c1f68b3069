//! Small file operations several modules share: replacing a file atomically, reading a
//! secret file (the config refuses secrets inline and names files instead), and finding a
//! program the way spawning it would.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` atomically: a temp file in the same directory (created if
/// needed), fsync, rename. A crash leaves the old content or the new, never a torn file, and a
/// reader (Vector, the next start) never sees half of it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".ids2-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The secret in `path`: its first line, trimmed; `Ok(None)` when that is empty.
pub fn secret_first_line(path: &Path) -> std::io::Result<Option<String>> {
    let text = std::fs::read_to_string(path)?;
    let first = text.lines().next().unwrap_or("").trim();
    Ok((!first.is_empty()).then(|| first.to_string()))
}

/// Where `program` is found the way spawning it finds it: a path as given, a bare name on PATH.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state"]);
    }

    #[test]
    fn secret_is_the_trimmed_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  s3cret \nsecond\n").unwrap();
        assert_eq!(secret_first_line(&path).unwrap().as_deref(), Some("s3cret"));
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(secret_first_line(&path).unwrap(), None);
    }

    #[test]
    fn programs_are_found_on_path_or_as_given() {
        assert!(find_program("sh").is_some());
        assert!(find_program("ids2-no-such-program").is_none());
        assert!(find_program("/bin/sh").is_some());
        assert!(find_program("/nonexistent/sh").is_none());
    }
}
