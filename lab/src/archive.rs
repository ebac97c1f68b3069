//! The lab's view of the agent's ECS archive (the embedded default sink the agent's EVE reader
//! writes): the alert documents as they are appended, followed with the agent's own
//! [`Tailer`]. The lab never reads `eve.json`: what it reports is what the agent produced.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Alert, LabError};
use ids2_agent::eve::{TailEvent, Tailer};

/// Longest archive line accepted, in bytes: a document of the longest EVE line the agent reads,
/// with room for the ECS fields the mapping adds (a usual alert document is a few KiB).
const MAX_LINE: usize = 2 * ids2_agent::eve::MAX_LINE_BYTES;

/// Follows the archive file from its start.
pub struct ArchiveFollower {
    tailer: Tailer,
    path: PathBuf,
    documents: u64,
}

impl ArchiveFollower {
    /// Follows `path` (it may not exist yet).
    pub fn new(path: &Path) -> Self {
        Self {
            tailer: Tailer::new(path.to_path_buf(), MAX_LINE, false),
            path: path.to_path_buf(),
            documents: 0,
        }
    }

    /// The alert documents appended since the last call, stamped with the time they were read.
    pub fn poll(&mut self) -> Result<Vec<Alert>, LabError> {
        let mut alerts = Vec::new();
        let mut bad = None;
        let now = Instant::now();
        self.tailer
            .poll(usize::MAX, |ev| {
                self.documents += 1;
                match ev {
                    TailEvent::Line(line) => match alert_of(line, now) {
                        Some(a) => alerts.push(a),
                        None if serde_json::from_slice::<serde_json::Value>(line).is_err() => {
                            bad = Some(String::from_utf8_lossy(line).into_owned());
                        }
                        None => {}
                    },
                    TailEvent::Oversized => bad = Some("a line over 1 MiB".into()),
                }
            })
            .map_err(|source| LabError::Io {
                action: "read",
                path: self.path.clone(),
                source,
            })?;
        match bad {
            Some(line) => Err(LabError::Archive(format!(
                "{} holds a line that is not a JSON document: {}",
                self.path.display(),
                line.chars().take(200).collect::<String>()
            ))),
            None => Ok(alerts),
        }
    }

    /// Documents read so far.
    pub fn documents(&self) -> u64 {
        self.documents
    }
}

/// The alert in one ECS document (`event.kind: alert`, `rule.id`, `rule.name`, `event.id`).
fn alert_of(line: &[u8], seen: Instant) -> Option<Alert> {
    let doc: serde_json::Value = serde_json::from_slice(line).ok()?;
    if doc["event"]["kind"] != "alert" {
        return None;
    }
    Some(Alert {
        sid: doc["rule"]["id"].as_str()?.parse().ok()?,
        signature: doc["rule"]["name"].as_str().unwrap_or("").to_string(),
        seen,
        ecs_id: doc["event"]["id"].as_str().map(String::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_alert_documents_as_they_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecs.jsonl");
        let mut f = ArchiveFollower::new(&path);
        assert!(f.poll().unwrap().is_empty(), "absent file");
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(
            file,
            r#"{{"event":{{"kind":"alert","id":"abc"}},"rule":{{"id":"9200001","name":"ids2 x"}}}}"#
        )
        .unwrap();
        write!(file, r#"{{"event":{{"kind":"event"}}}}"#).unwrap();
        let got = f.poll().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].sid,
                got[0].signature.as_str(),
                got[0].ecs_id.as_deref()
            ),
            (9_200_001, "ids2 x", Some("abc"))
        );
        assert_eq!(f.documents(), 1, "a document still being written waits");
        writeln!(file).unwrap();
        assert!(f.poll().unwrap().is_empty(), "not an alert");
        assert_eq!(f.documents(), 2);
        writeln!(file, "garbage").unwrap();
        assert!(matches!(f.poll(), Err(LabError::Archive(_))));
    }
}
