//! `evidence`: the packets behind every alert — Suricata's short full-capture ring (`pcap-log`)
//! and the store the agent copies each alerted flow into.

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::schema::none;
use super::validate::{check_abs_path, check_range};
use super::{Capture, Logs};

/// Packet evidence: Suricata writes every packet into a short ring of pcap files and, on each
/// alert, the agent copies that flow's packets (from its first one, before the alert) into a
/// per-flow pcap in `store_dir`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// `alerts` (a ring on the log tmpfs, alerted flows kept on persistent storage), `full`
    /// (the ring on `full_capture_dir`, an attached SSD, alerted flows kept too) or `off`.
    #[serde(default = "default_evidence_mode")]
    pub mode: EvidenceMode,
    /// Size in MiB of one ring file (Suricata `pcap-log.limit`), 4 (Suricata's smallest) to
    /// 1024.
    #[serde(default = "default_ring_file_mb")]
    pub ring_file_mb: u32,
    /// Ring files kept per capture worker (Suricata `pcap-log.max-files`), 2 to 100000. In
    /// `alerts` mode `capture.workers` × `ring_files` × `ring_file_mb` must fit in
    /// `logs.size_mb` beside two EVE files of `logs.eve_rotate_mb` and 16 MiB for the rest.
    #[serde(default = "default_ring_files")]
    pub ring_files: u32,
    /// How ring files are written: `lz4` (Suricata's lz4 frames, about half the bytes) or `none`.
    #[serde(default = "default_ring_compression")]
    pub compression: RingCompression,
    /// With `mode: full`: the directory full capture is written to, an absolute path off the
    /// log tmpfs (an attached SSD's mount point; it must exist, `suricata -T` checks it).
    #[serde(default)]
    pub full_capture_dir: Option<String>,
    /// Where the per-flow evidence pcaps are kept: an absolute path on persistent storage, not
    /// under `logs.path`.
    #[serde(default = "default_evidence_store_dir")]
    pub store_dir: String,
    /// Most MiB the evidence store may hold (1–1048576); the oldest flows are evicted first.
    #[serde(default = "default_evidence_store_max_mb")]
    pub store_max_mb: u32,
    /// Days an evidence pcap is kept after its last alert (1–3650).
    #[serde(default = "default_evidence_retention_days")]
    pub retention_days: u32,
    /// Seconds the agent waits after an alert before copying its flow (0–3600), so the packets
    /// that follow the alert, and those Suricata still buffers, are in the ring.
    #[serde(default = "default_extract_delay_secs")]
    pub extract_delay_secs: u32,
}

/// What evidence is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceMode {
    /// No capture and no evidence store.
    Off,
    /// A short full-capture ring on the log tmpfs; alerted flows are copied out of it.
    Alerts,
    /// Full capture kept on `full_capture_dir`; alerted flows are copied out of it too.
    Full,
}

/// Compression of the ring files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RingCompression {
    /// lz4 frames (`.pcap.lz4`).
    Lz4,
    /// Plain pcap.
    None,
}

super::schema::default_from_fns! {
    Evidence {
        mode: default_evidence_mode, ring_file_mb: default_ring_file_mb,
        ring_files: default_ring_files, compression: default_ring_compression,
        full_capture_dir: none, store_dir: default_evidence_store_dir,
        store_max_mb: default_evidence_store_max_mb,
        retention_days: default_evidence_retention_days,
        extract_delay_secs: default_extract_delay_secs,
    }
}

/// Default mode: evidence for alerts, on by default.
pub fn default_evidence_mode() -> EvidenceMode {
    EvidenceMode::Alerts
}

/// Default ring file size: 8 MiB.
pub fn default_ring_file_mb() -> u32 {
    8
}

/// Default ring files per worker: 4, so 2 workers keep 64 MiB, a quarter of the default tmpfs.
pub fn default_ring_files() -> u32 {
    4
}

/// Default ring compression: lz4.
pub fn default_ring_compression() -> RingCompression {
    RingCompression::Lz4
}

/// Default evidence store.
pub fn default_evidence_store_dir() -> String {
    "/var/lib/ids2/evidence".into()
}

/// Default store cap: 512 MiB, small beside an SD card and thousands of typical alerted flows.
pub fn default_evidence_store_max_mb() -> u32 {
    512
}

/// Default retention: two weeks.
pub fn default_evidence_retention_days() -> u32 {
    14
}

/// Default extraction delay: a minute after the alert.
pub fn default_extract_delay_secs() -> u32 {
    60
}

/// MiB of the log tmpfs kept for what is neither EVE nor the ring (heartbeats, anomaly and
/// behaviour documents).
pub const LOGS_RESERVED_MB: u64 = 16;

impl EvidenceMode {
    /// The mode's name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Alerts => "alerts",
            Self::Full => "full",
        }
    }
}

impl RingCompression {
    /// The value of Suricata's `pcap-log.compression`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lz4 => "lz4",
            Self::None => "none",
        }
    }
}

impl Evidence {
    /// True unless `mode: off`.
    pub fn enabled(&self) -> bool {
        self.mode != EvidenceMode::Off
    }

    /// Most bytes the ring may hold: every worker's files.
    pub fn ring_budget_mb(&self, workers: u32) -> u64 {
        u64::from(workers) * u64::from(self.ring_files) * u64::from(self.ring_file_mb)
    }

    /// Where Suricata writes the ring: the log tmpfs in `alerts` mode, `full_capture_dir` in
    /// `full` mode.
    pub fn ring_dir<'a>(&'a self, logs: &'a Logs) -> &'a str {
        match (self.mode, &self.full_capture_dir) {
            (EvidenceMode::Full, Some(dir)) => dir,
            _ => &logs.path,
        }
    }

    /// Checks sizes, paths and that the ring fits the log tmpfs.
    pub(super) fn validate(&self, logs: &Logs, capture: &Capture, p: &mut Vec<Problem>) {
        check_range(
            p,
            "evidence.ring_file_mb",
            self.ring_file_mb,
            4..=1024,
            "MiB",
        );
        check_range(
            p,
            "evidence.ring_files",
            self.ring_files,
            2..=100_000,
            "files",
        );
        check_range(
            p,
            "evidence.store_max_mb",
            self.store_max_mb,
            1..=1_048_576,
            "MiB",
        );
        check_range(
            p,
            "evidence.retention_days",
            self.retention_days,
            1..=3650,
            "days",
        );
        check_range(
            p,
            "evidence.extract_delay_secs",
            self.extract_delay_secs,
            0..=3600,
            "seconds",
        );
        check_abs_path("evidence.store_dir", &self.store_dir, p);
        if under(&self.store_dir, &logs.path) {
            p.push(Problem::new(
                "evidence.store_dir",
                &self.store_dir,
                format!(
                    "must be on persistent storage, not under logs.path ({}): the tmpfs is \
                     emptied at every boot; e.g. /var/lib/ids2/evidence",
                    logs.path
                ),
            ));
        }
        match (self.mode, &self.full_capture_dir) {
            (EvidenceMode::Full, None) => p.push(Problem::at(
                "evidence.full_capture_dir",
                "is required with evidence.mode: full (an attached SSD's directory, e.g. \
                 /mnt/ssd/capture)",
            )),
            (EvidenceMode::Full, Some(dir)) => {
                check_abs_path("evidence.full_capture_dir", dir, p);
                if under(dir, &logs.path) || dir == "/" {
                    p.push(Problem::new(
                        "evidence.full_capture_dir",
                        dir,
                        format!(
                            "full capture does not fit the log tmpfs ({}): use an attached \
                             SSD's directory, e.g. /mnt/ssd/capture, or evidence.mode: alerts",
                            logs.path
                        ),
                    ));
                }
            }
            (mode, Some(dir)) => p.push(Problem::new(
                "evidence.full_capture_dir",
                dir,
                format!(
                    "is only used with evidence.mode: full (the mode is {}); remove it or set \
                     the mode to full",
                    mode.name()
                ),
            )),
            (_, None) => {}
        }
        if self.mode == EvidenceMode::Alerts {
            let ring = self.ring_budget_mb(capture.workers);
            let eve = 2 * u64::from(logs.eve_rotate_mb);
            let room = u64::from(logs.size_mb).saturating_sub(eve + LOGS_RESERVED_MB);
            if ring > room {
                p.push(Problem::new(
                    "evidence.ring_files",
                    self.ring_files,
                    format!(
                        "the ring ({} workers × {} files × {} MiB = {ring} MiB) does not fit \
                         the log tmpfs: logs.size_mb {} leaves {room} MiB beside two EVE files \
                         of logs.eve_rotate_mb {} and {LOGS_RESERVED_MB} MiB for the rest; \
                         lower evidence.ring_files or evidence.ring_file_mb, or raise \
                         logs.size_mb",
                        capture.workers,
                        self.ring_files,
                        self.ring_file_mb,
                        logs.size_mb,
                        logs.eve_rotate_mb
                    ),
                ));
            }
        }
    }
}

/// Whether `path` is `dir` or below it (both absolute, compared by components).
fn under(path: &str, dir: &str) -> bool {
    std::path::Path::new(path).starts_with(dir)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{paths, problems_after, problems_with};
    use super::*;

    #[test]
    fn defaults_fit_the_default_tmpfs() {
        assert!(problems_after(|_| {}).is_empty());
        let c = super::super::testing::base();
        assert_eq!(c.evidence.mode, EvidenceMode::Alerts);
        assert_eq!(c.evidence.ring_budget_mb(c.capture.workers), 64);
        assert_eq!(c.evidence.ring_dir(&c.logs), "/mnt/ram_logs");
    }

    #[test]
    fn a_ring_larger_than_the_tmpfs_is_refused_naming_the_sizes() {
        let p = problems_with("evidence: {ring_files: 20}\n");
        assert_eq!(paths(&p), ["evidence.ring_files"]);
        let msg = &p[0].message;
        assert!(
            msg.contains("320 MiB") && msg.contains("logs.size_mb 256"),
            "{msg}"
        );
        // The same ring fits a bigger tmpfs.
        assert!(problems_with("logs: {size_mb: 512}\nevidence: {ring_files: 20}\n").is_empty());
        // Full capture is not on the tmpfs, so it is not budgeted against it.
        assert!(problems_with(
            "evidence: {mode: full, full_capture_dir: /mnt/ssd/cap, ring_files: 2000}\n"
        )
        .is_empty());
    }

    #[test]
    fn sizes_and_retention_must_be_positive() {
        let p = problems_with(
            "evidence: {ring_file_mb: 2, ring_files: 1, store_max_mb: 0, retention_days: 0, \
             extract_delay_secs: 4000}\n",
        );
        assert_eq!(
            paths(&p),
            [
                "evidence.ring_file_mb",
                "evidence.ring_files",
                "evidence.store_max_mb",
                "evidence.retention_days",
                "evidence.extract_delay_secs"
            ]
        );
        assert!(p[0].message.contains("4 to 1024 MiB"), "{}", p[0].message);
        assert_eq!(p[2].value.as_deref(), Some("0"));
    }

    #[test]
    fn full_capture_needs_a_directory_off_the_tmpfs() {
        assert_eq!(
            paths(&problems_with("evidence: {mode: full}\n")),
            ["evidence.full_capture_dir"]
        );
        let p = problems_with("evidence: {mode: full, full_capture_dir: /mnt/ram_logs/cap}\n");
        assert_eq!(paths(&p), ["evidence.full_capture_dir"]);
        assert!(p[0].message.contains("SSD"), "{}", p[0].message);
        let p = problems_with("evidence: {mode: alerts, full_capture_dir: /mnt/ssd}\n");
        assert!(p[0].message.contains("only used with evidence.mode: full"));
        assert_eq!(
            paths(&problems_with(
                "evidence: {mode: full, full_capture_dir: ssd}\n"
            )),
            ["evidence.full_capture_dir"]
        );
    }

    #[test]
    fn the_store_must_outlive_a_reboot() {
        let p = problems_with("evidence: {store_dir: /mnt/ram_logs/evidence}\n");
        assert_eq!(paths(&p), ["evidence.store_dir"]);
        // A sibling that only shares a prefix is fine.
        assert!(problems_with("evidence: {store_dir: /mnt/ram_logs2}\n").is_empty());
        assert_eq!(
            problems_after(|c| c.evidence.store_dir = "rel/dir".into()),
            ["evidence.store_dir"]
        );
    }

    #[test]
    fn unknown_keys_and_modes_are_refused() {
        let p = problems_with("evidence: {mode: ring, ring_size: 3}\n");
        let got = paths(&p);
        assert!(got.contains(&"evidence.mode"), "{p:?}");
        assert!(got.contains(&"evidence.ring_size"), "{p:?}");
        let mode = p.iter().find(|p| p.path == "evidence.mode").unwrap();
        assert!(
            mode.message.contains("off") && mode.message.contains("alerts"),
            "{}",
            mode.message
        );
    }
}
