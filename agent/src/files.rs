//! Small file operations several modules share: replacing a file atomically, appending to a
//! capped JSON-lines file that Vector tails, reading a secret file (the config refuses secrets
//! inline and names files instead), and finding a program the way spawning it would.

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
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

/// A JSON-lines file that Vector tails (heartbeats, anomaly documents), capped in size: when the
/// next line would pass the cap, the file is renamed to `rotated` and a new one begun. Vector's
/// file source finishes the old file, then reads the new one from its start.
#[derive(Debug, Clone)]
pub struct CappedLines {
    path: PathBuf,
    rotated: PathBuf,
    max_bytes: u64,
}

impl CappedLines {
    /// Lines appended to `path`, rotated to `rotated` at `max_bytes`.
    pub fn new(path: PathBuf, rotated: PathBuf, max_bytes: u64) -> Self {
        Self {
            path,
            rotated,
            max_bytes,
        }
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends whole lines (each ending in a newline) from the front of `lines`, removing each
    /// once written; rotates first when a line would pass the cap (a line longer than the cap
    /// gets a file of its own). On error the unwritten lines stay in `lines`, and the file ends
    /// after the last whole line.
    pub fn append(&self, lines: &mut VecDeque<Vec<u8>>) -> io::Result<()> {
        while !lines.is_empty() {
            let mut size = match fs::metadata(&self.path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e),
            };
            if size > 0 && size + lines[0].len() as u64 > self.max_bytes {
                fs::rename(&self.path, &self.rotated)?;
                size = 0;
            }
            // One write per line on an O_APPEND file: a reader never sees half a line.
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            while let Some(line) = lines.front() {
                if size > 0 && size + line.len() as u64 > self.max_bytes {
                    break;
                }
                if let Err(e) = file.write_all(line) {
                    // A short write (the tmpfs full) leaves part of the line. Cut it off: the
                    // line is written whole later, and a fragment glued to it would make Vector
                    // refuse both.
                    let _ = file.set_len(size);
                    return Err(e);
                }
                size += line.len() as u64;
                lines.pop_front();
            }
        }
        Ok(())
    }
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

    /// Set for the child of [`a_failed_write_leaves_no_fragment`]: the file it appends to.
    const SHORT_WRITE_CHILD: &str = "IDS2_TEST_SHORT_WRITE_FILE";

    /// A write that fails part-way (here the file size limit, as a full tmpfs would) leaves the
    /// file ending in its last whole line and the line queued. The limit is per process, so the
    /// test runs the append in a child: this test binary again, for this test alone.
    #[test]
    fn a_failed_write_leaves_no_fragment() {
        if let Some(path) = std::env::var_os(SHORT_WRITE_CHILD) {
            let path = PathBuf::from(path);
            // SAFETY: setrlimit and signal take plain values; nothing else runs here.
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit {
                    rlim_cur: 100,
                    rlim_max: libc::RLIM_INFINITY,
                };
                assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
            }
            let w = CappedLines::new(path.clone(), path.with_extension("1"), 1 << 20);
            let mut lines: VecDeque<Vec<u8>> = [b"a".repeat(59), b"b".repeat(59)]
                .map(|mut l| {
                    l.push(b'\n');
                    l
                })
                .into();
            assert!(
                w.append(&mut lines).is_err(),
                "the second line passes the limit"
            );
            assert_eq!(lines.len(), 1, "the failed line stays queued");
            std::process::exit(0);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heartbeat.json");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "files::tests::a_failed_write_leaves_no_fragment"])
            .env(SHORT_WRITE_CHILD, &path)
            .status()
            .unwrap();
        assert!(status.success(), "the child failed: {status}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("{}\n", "a".repeat(59)),
            "no fragment of the second line"
        );
    }

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
