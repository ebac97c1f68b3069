//! `suricata`: Suricata's memory budget, EVE outputs and file locations.

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::parse::closest;
use super::validate::check_abs_path;

/// Suricata's own settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Suricata {
    /// Total memory budget in MiB, split across the flow, stream, reassembly, defrag and
    /// host memcaps in Suricata's default proportions.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// EVE event types written to the log.
    #[serde(default = "default_eve_types")]
    pub eve_types: Vec<String>,
    /// Directory holding the downloaded rule set (`suricata.rules`), managed by suricata-update.
    #[serde(default = "default_rules_dir")]
    pub rules_dir: String,
    /// Path of Suricata's unix-command socket.
    #[serde(default = "default_socket_path")]
    pub socket_path: String,
}

super::schema::default_from_fns! {
    Suricata {
        memory_mb: default_memory_mb, eve_types: default_eve_types, rules_dir: default_rules_dir,
        socket_path: default_socket_path,
    }
}

/// Default Suricata memory budget.
pub fn default_memory_mb() -> u32 {
    512
}

/// Default EVE types: the ones operators query.
pub fn default_eve_types() -> Vec<String> {
    EVE_DEFAULT_TYPES.iter().map(|s| s.to_string()).collect()
}

/// Default rule directory (suricata-update's output).
pub fn default_rules_dir() -> String {
    "/var/lib/suricata/rules".into()
}

/// Default unix-command socket.
pub fn default_socket_path() -> String {
    "/run/suricata/suricata-command.socket".into()
}

/// EVE types on by default: what operators query, per DESIGN.md's cost notes.
pub const EVE_DEFAULT_TYPES: &[&str] = &[
    "alert", "anomaly", "flow", "dns", "http", "tls", "ssh", "smtp", "fileinfo", "stats",
];

/// Every EVE type the rendered Suricata 7 config can emit.
pub const EVE_ALL_TYPES: &[&str] = &[
    "alert",
    "anomaly",
    "flow",
    "netflow",
    "dns",
    "http",
    "tls",
    "ssh",
    "smtp",
    "fileinfo",
    "stats",
    "dhcp",
    "smb",
    "krb5",
    "ftp",
    "rdp",
    "quic",
    "mqtt",
    "nfs",
    "tftp",
    "snmp",
    "sip",
    "rfb",
    "dcerpc",
    "ike",
    "http2",
    "pgsql",
    "bittorrent-dht",
    "drop",
];

/// Suricata memcaps in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Memcaps {
    /// `flow.memcap`.
    pub flow_mb: u32,
    /// `stream.memcap`.
    pub stream_mb: u32,
    /// `stream.reassembly.memcap`.
    pub reassembly_mb: u32,
    /// `defrag.memcap`.
    pub defrag_mb: u32,
    /// `host.memcap`.
    pub host_mb: u32,
}

impl Memcaps {
    /// Splits a budget in Suricata's default proportions (128/64/256/32/32 of 512).
    pub fn split(total_mb: u32) -> Self {
        let part = |num: u32| total_mb * num / 16;
        let flow_mb = part(4);
        let stream_mb = part(2);
        let defrag_mb = part(1);
        let host_mb = part(1);
        Self {
            flow_mb,
            stream_mb,
            reassembly_mb: total_mb - flow_mb - stream_mb - defrag_mb - host_mb,
            defrag_mb,
            host_mb,
        }
    }
}

impl Suricata {
    /// Checks every key; returns the memcaps split from `memory_mb`.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) -> Memcaps {
        let s = self;
        check_abs_path("suricata.rules_dir", &s.rules_dir, p);
        check_abs_path("suricata.socket_path", &s.socket_path, p);
        if !(128..=16_384).contains(&s.memory_mb) {
            p.push(Problem::new(
                "suricata.memory_mb",
                s.memory_mb,
                "expected 128 to 16384 MiB (default 512)",
            ));
        }
        if s.eve_types.is_empty() {
            p.push(Problem::at(
                "suricata.eve_types",
                "must list at least `alert`",
            ));
        }
        for (i, t) in s.eve_types.iter().enumerate() {
            if !EVE_ALL_TYPES.contains(&t.as_str()) {
                let hint = closest(t, EVE_ALL_TYPES)
                    .map(|b| format!(" (did you mean `{b}`?)"))
                    .unwrap_or_default();
                p.push(Problem::new(
                    format!("suricata.eve_types[{i}]"),
                    t,
                    format!(
                        "unknown EVE type{hint}; accepted: {}",
                        EVE_ALL_TYPES.join(", ")
                    ),
                ));
            } else if s.eve_types[..i].contains(t) {
                p.push(Problem::new(
                    format!("suricata.eve_types[{i}]"),
                    t,
                    "each EVE type may be listed once",
                ));
            }
        }
        if !s.eve_types.iter().any(|t| t == "alert") && !s.eve_types.is_empty() {
            p.push(Problem::at(
                "suricata.eve_types",
                "must include `alert`: without it the sensor detects nothing",
            ));
        }
        Memcaps::split(s.memory_mb.max(128))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcaps_split_matches_suricata_defaults_at_512() {
        let m = Memcaps::split(512);
        assert_eq!(
            (
                m.flow_mb,
                m.stream_mb,
                m.reassembly_mb,
                m.defrag_mb,
                m.host_mb
            ),
            (128, 64, 256, 32, 32)
        );
    }

    #[test]
    fn memcaps_split_never_exceeds_budget() {
        for total in [128, 300, 511, 777, 1024, 16_384] {
            let m = Memcaps::split(total);
            assert_eq!(
                m.flow_mb + m.stream_mb + m.reassembly_mb + m.defrag_mb + m.host_mb,
                total
            );
        }
    }
}
