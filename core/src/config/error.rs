//! Config errors: one [`Problem`] per bad key, all of them reported together.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a config, pinned to its key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `capture.cpu_cores[1]`.
    pub path: String,
    /// The offending value as written, when there is one.
    pub value: Option<String>,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl Problem {
    /// A problem with a value at `path`.
    pub fn new(
        path: impl Into<String>,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            value: Some(value.to_string()),
            message: message.into(),
        }
    }

    /// A problem where no single value is at fault (a missing key, a conflict).
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            value: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}: {:?} — {}", self.path, v, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Why a config could not be turned into settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{}: YAML syntax error at line {line}, column {column}: {message}", origin.display())]
    Syntax {
        /// The file (or `<input>`).
        origin: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The file is not UTF-8 text (YAML must be): named where the first bad byte is.
    #[error("{}: not UTF-8 text: byte 0x{byte:02x} at line {line}, column {column} (save the file as UTF-8)", origin.display())]
    Encoding {
        /// The file.
        origin: PathBuf,
        /// 1-based line of the first byte that is not UTF-8.
        line: usize,
        /// 1-based byte column of that byte.
        column: usize,
        /// The byte.
        byte: u8,
    },
    /// The YAML parsed but some keys or values are wrong.
    #[error("{} has {} problem{}:\n{}", origin.display(), problems.len(),
        if problems.len() == 1 { "" } else { "s" }, list(problems))]
    Invalid {
        /// The file (or `<input>`).
        origin: PathBuf,
        /// Every problem found, in key order.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// True when the input, not the environment, is at fault (exit code 2 at the CLI).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, ConfigError::Read { source, .. } if source.kind() != std::io::ErrorKind::NotFound)
    }
}
