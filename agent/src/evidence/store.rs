//! The evidence store: one pcap per alerted flow, named after its community id, beside a JSON
//! entry saying what it holds and which alerts pinned it; kept under a size cap and for a number
//! of days, the least recently alerted flows evicted first.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One alert that pinned a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertNote {
    /// The alert document's `event.id` (SHA-256 of the sensor id and the EVE line, as the ECS
    /// program computes it).
    pub event_id: String,
    /// EVE `timestamp`.
    pub timestamp: String,
    /// `alert.signature_id`.
    pub signature_id: u64,
    /// `alert.signature`.
    pub signature: String,
}

/// What one evidence pcap holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The flow's community id, when Suricata wrote one.
    pub community_id: Option<String>,
    /// Suricata's `flow_id`s of the alerts (one per flow, several if the sensor restarted).
    pub flow_ids: Vec<u64>,
    /// The flow's addresses, ports and protocol as the first alert gave them.
    pub src_ip: IpAddr,
    /// Source port (0 where the protocol has none).
    pub src_port: u16,
    /// Destination address.
    pub dest_ip: IpAddr,
    /// Destination port.
    pub dest_port: u16,
    /// EVE `proto`.
    pub proto: String,
    /// Time of the first packet kept, microseconds since the epoch.
    pub first_us: i64,
    /// Time of the last packet kept.
    pub last_us: i64,
    /// Packets kept.
    pub packets: u64,
    /// Bytes of the pcap file.
    pub bytes: u64,
    /// True when the copy stopped at the store's size cap.
    pub truncated: bool,
    /// The alerts that pinned it, oldest first.
    pub alerts: Vec<AlertNote>,
    /// When it was last written, seconds since the epoch: retention and eviction count from it.
    pub updated_unix: u64,
}

impl Entry {
    /// The file stem both files share ([`stem_for`] of its first alert).
    pub fn stem(&self) -> String {
        stem_for(
            self.community_id.as_deref(),
            self.flow_ids.first().copied(),
            self.alerts.first().map_or("", |a| a.event_id.as_str()),
        )
    }
}

/// The file stem of a flow's evidence: the community id made safe for a file name (base64's
/// `+` and `/` as in its URL-safe alphabet, no padding); without one `flow-<Suricata flow id>`;
/// for an alert Suricata filed under no flow (an ICMP unreachable for a flow it never saw),
/// `alert-<its event id>`, each such alert its own.
pub fn stem_for(community_id: Option<&str>, flow_id: Option<u64>, event_id: &str) -> String {
    match (community_id, flow_id) {
        (Some(c), _) => stem_of(c),
        (None, Some(id)) => format!("flow-{id}"),
        (None, None) => format!("alert-{}", event_id.get(..32).unwrap_or(event_id)),
    }
}

/// The file stem for a community id.
pub fn stem_of(community_id: &str) -> String {
    community_id
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' | ':' => '_',
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => c,
            _ => '_',
        })
        .collect()
}

/// How an entry is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// By community id.
    CommunityId(String),
    /// By Suricata flow id.
    FlowId(u64),
    /// By an alert's `event.id`.
    Alert(String),
}

impl std::fmt::Display for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lookup::CommunityId(c) => write!(f, "community id {c}"),
            Lookup::FlowId(n) => write!(f, "flow id {n}"),
            Lookup::Alert(id) => write!(f, "alert {id}"),
        }
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file of the store could not be read or written.
    #[error("evidence store {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What one pass of [`Store::enforce`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evicted {
    /// Flows removed for being older than the retention.
    pub expired: u64,
    /// Flows removed to get under the size cap.
    pub over_cap: u64,
}

/// The store directory and its limits.
#[derive(Debug, Clone)]
pub struct Store {
    /// The directory (the path-root seam: tests point it at a temporary directory).
    pub dir: PathBuf,
    /// Most bytes the pcaps and entries may take.
    pub max_bytes: u64,
    /// Seconds an entry is kept after it was last written.
    pub retention_secs: u64,
}

impl Store {
    /// Every entry, oldest first (by last write), skipping files that are not entries.
    pub fn list(&self) -> Result<Vec<Entry>, StoreError> {
        let dir = match fs::read_dir(&self.dir) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&self.dir)(e)),
        };
        let mut entries: Vec<Entry> = dir
            .filter_map(|e| {
                let path = e.ok()?.path();
                if path.extension()? != "json" {
                    return None;
                }
                serde_json::from_slice(&fs::read(&path).ok()?).ok()
            })
            .collect();
        entries.sort_by_key(|e| (e.updated_unix, e.first_us));
        Ok(entries)
    }

    /// The entry a lookup names, if the store has it.
    pub fn find(&self, lookup: &Lookup) -> Result<Option<Entry>, StoreError> {
        Ok(self.list()?.into_iter().find(|e| match lookup {
            Lookup::CommunityId(c) => e.community_id.as_deref() == Some(c.as_str()),
            Lookup::FlowId(f) => e.flow_ids.contains(f),
            Lookup::Alert(id) => e.alerts.iter().any(|a| &a.event_id == id),
        }))
    }

    /// The existing entry for the same flow as `probe` (same stem).
    pub fn get_stem(&self, stem: &str) -> Option<Entry> {
        let bytes = fs::read(self.dir.join(format!("{stem}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Where an entry's pcap is.
    pub fn pcap_path(&self, entry: &Entry) -> PathBuf {
        self.dir.join(format!("{}.pcap", entry.stem()))
    }

    /// A temporary file in the store (same file system, so [`Store::commit`] is a rename).
    pub fn temp(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&self.dir)
            .map_err(io_at(&self.dir))
    }

    /// Puts a written pcap and its entry in place: the pcap first, so an entry never names a
    /// pcap that is not there.
    pub fn commit(&self, pcap: tempfile::NamedTempFile, entry: &Entry) -> Result<(), StoreError> {
        let target = self.pcap_path(entry);
        pcap.persist(&target).map_err(|e| io_at(&target)(e.error))?;
        self.write_entry(entry)
    }

    /// Rewrites an entry whose pcap is already in place.
    pub fn write_entry(&self, entry: &Entry) -> Result<(), StoreError> {
        let json = self.dir.join(format!("{}.json", entry.stem()));
        let mut tmp = self.temp()?;
        serde_json::to_writer_pretty(tmp.as_file_mut(), entry)
            .map_err(|e| io_at(&json)(e.into()))?;
        tmp.persist(&json).map_err(|e| io_at(&json)(e.error))?;
        Ok(())
    }

    /// Removes entries past the retention, then the least recently written until the store is
    /// under its cap. `now_unix` is the present, in seconds since the epoch.
    pub fn enforce(&self, now_unix: u64) -> Result<Evicted, StoreError> {
        let mut out = Evicted::default();
        let mut kept = Vec::new();
        for e in self.list()? {
            if now_unix.saturating_sub(e.updated_unix) > self.retention_secs {
                self.remove(&e)?;
                out.expired += 1;
            } else {
                kept.push(e);
            }
        }
        let mut total: u64 = kept.iter().map(|e| self.size(e)).sum();
        for e in &kept {
            if total <= self.max_bytes {
                break;
            }
            total -= self.size(e);
            self.remove(e)?;
            out.over_cap += 1;
        }
        Ok(out)
    }

    /// Bytes the store's entries take.
    pub fn total_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.list()?.iter().map(|e| self.size(e)).sum())
    }

    fn size(&self, e: &Entry) -> u64 {
        let json = self.dir.join(format!("{}.json", e.stem()));
        [self.pcap_path(e), json]
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    fn remove(&self, e: &Entry) -> Result<(), StoreError> {
        // The entry goes first: a pcap left without one is invisible and replaced by the next
        // copy of that flow.
        let json = self.dir.join(format!("{}.json", e.stem()));
        for path in [json, self.pcap_path(e)] {
            match fs::remove_file(&path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(io_at(&path)(err)),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_safe_file_names() {
        assert_eq!(
            stem_of("1:yBIY+nE1S/8m+3Mlaqj2Ds78GvA="),
            "1_yBIY-nE1S_8m-3Mlaqj2Ds78GvA"
        );
        assert_eq!(stem_of("../../etc/passwd"), "______etc_passwd");
        assert_eq!(stem_for(Some("1:ab/c="), Some(7), "e"), "1_ab_c");
        assert_eq!(stem_for(None, Some(7), "e"), "flow-7");
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(stem_for(None, None, &id), format!("alert-{}", &id[..32]));
    }
}
