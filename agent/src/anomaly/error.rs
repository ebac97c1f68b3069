//! Errors of the anomaly detector, each naming the file or value at fault and the fix.

use std::path::PathBuf;

/// Why a model could not be trained, read, written or applied.
#[derive(Debug, thiserror::Error)]
pub enum AnomalyError {
    /// The model file could not be read.
    #[error("cannot read anomaly model {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The model file is not the JSON a model is written as.
    #[error("anomaly model {} is not valid model JSON; delete it to retrain, or run \
             `ids2-agent anomaly train`", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The model file was written by another version of ids2.
    #[error("anomaly model {} has version {}, this agent reads version {expected}; delete it \
             to retrain, or run `ids2-agent anomaly train`", path.display(),
             found.map_or("(none)".to_string(), |v| v.to_string()))]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version, if it has one.
        found: Option<u32>,
        /// The version this build reads.
        expected: u32,
    },
    /// The model was trained on a different feature list.
    #[error("anomaly model {} was trained on features [{}], not this agent's; delete it to \
             retrain, or run `ids2-agent anomaly train`", path.display(), found.join(", "))]
    Features {
        /// The file.
        path: PathBuf,
        /// Its feature list.
        found: Vec<String>,
    },
    /// The model file is JSON of the right version but its content is inconsistent.
    #[error("anomaly model {} is damaged: {reason}; delete it to retrain", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model could not be written.
    #[error("cannot write anomaly model {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An EVE file could not be read.
    #[error("cannot read EVE file {}", path.display())]
    EveRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of an EVE file is not JSON.
    #[error("{}:{line}: not an EVE JSON record", path.display())]
    EveLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Output could not be written.
    #[error("cannot write output")]
    Output(#[source] std::io::Error),
    /// Too few flows to train on.
    #[error(
        "{found} flow records to train on, at least {needed} needed; give a longer EVE \
             file with `flow` records (Suricata's `flow` EVE type)"
    )]
    TooFewFlows {
        /// Flows found.
        found: usize,
        /// Flows needed.
        needed: usize,
    },
}

impl AnomalyError {
    /// True when the operator's input (a file they named, its content) is at fault.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            AnomalyError::Write { .. }
                | AnomalyError::Output(_)
                | AnomalyError::Read { .. }
                | AnomalyError::EveRead { .. }
        ) || matches!(
            self,
            AnomalyError::Read { source, .. } | AnomalyError::EveRead { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound
        )
    }
}
