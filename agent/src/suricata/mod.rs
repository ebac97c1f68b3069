//! The Suricata binary as a config checker: `suricata -T` on a candidate generation.
//!
//! The binary is `$IDS2_SURICATA` or `suricata` on `PATH`. The check never touches the live
//! sensor: it needs no interface (test mode opens no capture) and its log directory is a
//! throw-away temp dir, not the log tmpfs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::render::LOCAL_RULES_INDEX;

/// Environment variable naming the Suricata binary (tests, NixOS store paths).
pub const BINARY_ENV: &str = "IDS2_SURICATA";

/// How many lines of Suricata's output an error carries.
const TAIL_LINES: usize = 12;

/// Why Suricata could not be found or run, or rejected a config.
#[derive(Debug, thiserror::Error)]
pub enum SuricataError {
    /// `$IDS2_SURICATA` names a file that is not there.
    #[error("{BINARY_ENV}={} does not exist or is not executable; point it at the suricata binary or unset it", path.display())]
    BadBinary {
        /// The configured path.
        path: PathBuf,
    },
    /// The binary could not be started.
    #[error("cannot run {}", binary.display())]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A temp dir for the check's logs could not be made.
    #[error("cannot create a temporary log directory for suricata -T")]
    TempDir(#[source] std::io::Error),
    /// Suricata rejected the config or the rules.
    #[error("suricata -T rejected {} ({status}):\n{reason}", config.display())]
    Rejected {
        /// The config checked.
        config: PathBuf,
        /// Exit status.
        status: String,
        /// Suricata's error lines, or the tail of its output when it printed none.
        reason: String,
    },
}

/// What a check looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// False when the downloaded rule set was absent and only the local rules were loaded.
    pub rule_set_checked: bool,
}

/// A located Suricata binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suricata {
    binary: PathBuf,
}

impl Suricata {
    /// Uses this binary.
    pub fn at(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
        }
    }

    /// Finds Suricata: `$IDS2_SURICATA` if set (it must exist), else `suricata` on `PATH`;
    /// `None` when it is not installed.
    pub fn locate() -> Result<Option<Self>, SuricataError> {
        if let Some(path) = std::env::var_os(BINARY_ENV).filter(|v| !v.is_empty()) {
            let path = PathBuf::from(path);
            return if is_executable(&path) {
                Ok(Some(Self::at(path)))
            } else {
                Err(SuricataError::BadBinary { path })
            };
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        Ok(std::env::split_paths(&path)
            .map(|dir| dir.join("suricata"))
            .find(|candidate| is_executable(candidate))
            .map(Self::at))
    }

    /// The binary's path.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Runs `suricata -T -c config` with `args` after it (`--set key=value`, `-S file`), its logs
    /// in a throw-away directory: how every candidate (a generation, a rule set, a threshold
    /// file, intel rules) is checked before it replaces what runs.
    pub fn test(&self, config: &Path, args: &[OsString]) -> std::io::Result<TestRun> {
        let logs = tempfile::Builder::new()
            .prefix("ids2-suricata-check-")
            .tempdir()?;
        let out = Command::new(&self.binary)
            .arg("-T")
            .arg("-c")
            .arg(config)
            .arg("-l")
            .arg(logs.path())
            .args(args)
            .output()?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok(TestRun {
            status: out.status,
            text,
        })
    }

    /// Runs `suricata -T` on `config`, loading `local_rules` in place of the file the config
    /// names at `rule-files[LOCAL_RULES_INDEX]`, so a candidate is checked with its own rules
    /// before it becomes current. When `rule_set` (the downloaded rules) is absent, only the
    /// local rules are loaded: Suricata runs without the set, but `-T` would fail on it.
    pub fn check(
        &self,
        config: &Path,
        local_rules: &Path,
        rule_set: &Path,
    ) -> Result<CheckReport, SuricataError> {
        let rule_set_checked = rule_set.is_file();
        let args = if rule_set_checked {
            let mut set = OsString::from(format!("rule-files.{LOCAL_RULES_INDEX}="));
            set.push(local_rules);
            ["--set".into(), set]
        } else {
            ["-S".into(), local_rules.into()]
        };
        let run = self
            .test(config, &args)
            .map_err(|source| SuricataError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        match run.refused() {
            None => Ok(CheckReport { rule_set_checked }),
            Some(reason) => Err(SuricataError::Rejected {
                config: config.to_path_buf(),
                status: run.status.to_string(),
                reason,
            }),
        }
    }
}

/// What `suricata -T` said of a candidate.
pub struct TestRun {
    status: ExitStatus,
    /// Its stdout and stderr.
    text: String,
}

impl TestRun {
    /// Why Suricata refused the candidate, or `None` when it exited 0.
    pub fn refused(&self) -> Option<String> {
        (!self.status.success()).then(|| reason(&self.text))
    }

    /// Like [`TestRun::refused`], and also refused when Suricata printed an `E: ` line: a bad
    /// threshold line or intel rule leaves only that behind and Suricata still exits 0. Not
    /// for whole rule sets, where a rule Suricata skips is no reason to keep the old set.
    pub fn refused_or_errored(&self) -> Option<String> {
        let error_line = self.text.lines().any(|l| l.starts_with("E: "));
        (!self.status.success() || error_line).then(|| reason(&self.text))
    }
}

/// Suricata's error lines (`E: …`, or `Error:` with -v), else the last lines of its output.
fn reason(output: &str) -> String {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("E: ") || l.contains("Error: "))
        .collect();
    let pick = if errors.is_empty() { &lines } else { &errors };
    let start = pick.len().saturating_sub(TAIL_LINES);
    let text = pick[start..].join("\n");
    if text.is_empty() {
        "(suricata printed nothing)".into()
    } else {
        text
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_prefers_error_lines() {
        let out =
            "i: suricata: version\nW: detect: warn\nE: detect: bad rule\nE: suricata: failed\n";
        assert_eq!(reason(out), "E: detect: bad rule\nE: suricata: failed");
    }

    #[test]
    fn reason_falls_back_to_the_tail() {
        let many: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let r = reason(&many);
        assert!(r.starts_with("line 18") && r.ends_with("line 29"), "{r}");
        assert_eq!(reason(""), "(suricata printed nothing)");
    }
}
