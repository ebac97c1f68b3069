//! The whole file: [`Config`], one field per section, and what several sections share.
//!
//! Each section lives in its own module, its types, defaults and validation side by side
//! (`capture.rs`, `opensearch.rs`, …). Every struct denies unknown keys and every default is a
//! named function, so a default is written once and the reference (`docs/`) shows it. Values
//! are kept loose where a better error can be produced by validation (CIDRs and addresses are
//! strings here and parsed there).

use serde::{Deserialize, Serialize};

use super::{
    Anomaly, Blocking, Capture, Connectivity, Enrichment, Evidence, Fleet, History, Intel, Logs,
    Metrics, Network, Notifications, OpenSearch, Paths, Resources, Sensor, Shipping, Suricata,
};

/// The whole sensor configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who this sensor is in the fleet.
    pub sensor: Sensor,
    /// What Suricata listens on and how it spreads the work.
    #[serde(default)]
    pub capture: Capture,
    /// The RAM-backed log directory for Suricata's EVE output.
    #[serde(default)]
    pub logs: Logs,
    /// Suricata's memory budget, EVE outputs and file locations.
    #[serde(default)]
    pub suricata: Suricata,
    /// Ceilings the resource controller keeps the host under.
    #[serde(default)]
    pub resources: Resources,
    /// Where events are shipped.
    pub opensearch: OpenSearch,
    /// How events are batched and buffered on their way to OpenSearch.
    #[serde(default)]
    pub shipping: Shipping,
    /// The Prometheus endpoint the agent serves.
    #[serde(default)]
    pub metrics: Metrics,
    /// The git repository that records every applied change.
    #[serde(default)]
    pub history: History,
    /// Link policy and the management targets that must stay reachable.
    #[serde(default)]
    pub network: Network,
    /// Reachability checks the agent runs and exports.
    #[serde(default)]
    pub connectivity: Connectivity,
    /// Where the agent keeps rendered files and its state.
    #[serde(default)]
    pub paths: Paths,
    /// Isolation Forest anomaly detection on EVE flow records.
    #[serde(default)]
    pub anomaly: Anomaly,
    /// Alert notifications by webhook and/or e-mail; off until a channel is configured.
    #[serde(default)]
    pub notifications: Notifications,
    /// Time-limited block decisions from alerts, served as a feed; off by default.
    #[serde(default)]
    pub blocking: Blocking,
    /// Heartbeats, offline detection and rule-set updates.
    #[serde(default)]
    pub fleet: Fleet,
    /// GeoIP and threat-intelligence enrichment of shipped events; off until configured.
    #[serde(default)]
    pub enrichment: Enrichment,
    /// Threat-intelligence indicator feeds matched by Suricata and updated live; off until a
    /// preset or a feed is listed.
    #[serde(default)]
    pub intel: Intel,
    /// Packet evidence: a short full-capture ring and, per alerted flow, its packets kept; on
    /// by default (`mode: alerts`).
    #[serde(default)]
    pub evidence: Evidence,
}

/// An alert severity threshold. Suricata's `alert.severity` is a priority where 1 is the most
/// severe (from the rule's classtype, `classification.config`): 1 = `high`, 2 = `medium`,
/// 3 = `low` (also what Suricata gives rules without a classtype), 4 and above = `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Suricata severity 1.
    High,
    /// Suricata severity 2 or more severe.
    Medium,
    /// Suricata severity 3 or more severe.
    Low,
    /// Every alert.
    Info,
}

impl Severity {
    /// The level of a Suricata `alert.severity` value.
    pub fn of_suricata(severity: u64) -> Self {
        match severity {
            // 0 is not produced by Suricata; treat it like 1 rather than hide it.
            0 | 1 => Self::High,
            2 => Self::Medium,
            3 => Self::Low,
            _ => Self::Info,
        }
    }

    /// True when an alert of Suricata severity `severity` is at or above this threshold.
    pub fn admits(self, severity: u64) -> bool {
        Self::of_suricata(severity) <= self
    }

    /// The level's name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Info => "info",
        }
    }
}

/// `Default` from each field's named default function, so `#[serde(default)]` on a section and
/// a missing key agree.
macro_rules! default_from_fns {
    ($($ty:ty { $($field:ident: $f:path),* $(,)? })*) => {$(
        impl Default for $ty {
            fn default() -> Self { Self { $($field: $f()),* } }
        }
    )*};
}
pub(super) use default_from_fns;

/// The default of an optional key: unset.
pub(super) fn none<T>() -> Option<T> {
    None
}

/// The default of a switch that is on unless turned off.
pub(super) fn default_true() -> bool {
    true
}
