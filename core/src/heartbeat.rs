//! The heartbeat document: what a sensor reports about itself every `fleet.heartbeat_secs`,
//! and the fields it carries. The agent builds and writes it; `ids2-provision` maps the
//! heartbeat index from [`FIELDS`] and reads the documents back for fleet status, so both
//! sides use these definitions and cannot drift apart.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::ecs::EcsField;

/// `event.dataset` of every heartbeat.
pub const DATASET: &str = "ids2.heartbeat";
/// What the agent knows about the active rule set, in `suricata.rules_dir` (written by the
/// agent's rule updater, read by the heartbeat).
pub const RULE_SET_STATE_FILE: &str = "ids2-ruleset.json";

/// Every field a heartbeat carries, with its type: ECS types from the ECS reference outside
/// `ids2.*`. `ids2-provision` maps the heartbeat index from exactly this list.
pub const FIELDS: &[EcsField] = &[
    f("@timestamp", "date"),
    f("event.kind", "keyword"),
    f("event.dataset", "keyword"),
    f("event.module", "keyword"),
    f("observer.hostname", "keyword"),
    f("observer.name", "keyword"),
    f("observer.type", "keyword"),
    f("observer.vendor", "keyword"),
    f("observer.product", "keyword"),
    f("observer.version", "keyword"),
    f("host.hostname", "keyword"),
    f("host.uptime", "long"),
    f("host.cpu.usage", "scaled_float"),
    f("ids2.heartbeat.interval_secs", "long"),
    f("ids2.agent.uptime_secs", "long"),
    f("ids2.config.commit", "keyword"),
    f("ids2.throttle.level", "long"),
    f("ids2.host.memory_ratio", "scaled_float"),
    f("ids2.logs.used_ratio", "scaled_float"),
    f("ids2.capture.packets", "long"),
    f("ids2.capture.kernel_drops", "long"),
    f("ids2.capture.drop_ratio", "float"),
    f("ids2.shipping.buffer_bytes", "long"),
    f("ids2.shipping.buffer_ratio", "scaled_float"),
    f("ids2.evidence.ring_age_secs", "float"),
    f("ids2.eve.events_per_second", "float"),
    f("ids2.eve.oversized_lines", "long"),
    f("ids2.alert.last_seen", "date"),
    f("ids2.connectivity.state", "keyword"),
    f("ids2.connectivity.checks_up", "long"),
    f("ids2.connectivity.checks_total", "long"),
    f("ids2.rules.version", "keyword"),
    f("ids2.rules.loaded", "long"),
    f("ids2.rules.updated", "date"),
    f("ids2.policy.version", "keyword"),
    f("ids2.policy.applied", "long"),
    f("ids2.policy.skipped", "long"),
    f("ids2.policy.updated", "date"),
    f("ids2.intel.versions", "keyword"),
    f("ids2.intel.updated", "date"),
    f("ids2.intel.stale", "keyword"),
];

const fn f(name: &'static str, ecs_type: &'static str) -> EcsField {
    EcsField { name, ecs_type }
}

/// Appended to a recorded version while the running Suricata has not reloaded it: the state
/// is written before the reload, so a failed reload leaves a version the next update retries.
pub const UNLOADED_SUFFIX: &str = "-unloaded";

/// The active rule set, as recorded in `<rules_dir>/ids2-ruleset.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSetState {
    /// First 16 hex digits of the SHA-256 of `suricata.rules`.
    pub version: String,
    /// Enabled rules in the set.
    pub rules: u64,
    /// When an update last succeeded (RFC 3339, UTC): the set is current as of then.
    pub updated: String,
    /// The sources it was built from.
    pub sources: Vec<String>,
}

impl RuleSetState {
    /// Reads the state file in `rules_dir`; `None` when there is none (no update ran yet).
    pub fn read(rules_dir: &Path) -> Option<Self> {
        let text = fs::read(rules_dir.join(RULE_SET_STATE_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// What the agent knows about the active fleet policy, in `suricata.rules_dir` (written by
/// the agent's policy updater, read by the heartbeat).
pub const POLICY_STATE_FILE: &str = "ids2-policy.json";

/// The active fleet policy, as recorded in `<rules_dir>/ids2-policy.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyState {
    /// [`crate::policy::Resolved::version`] of the applied policy (with [`UNLOADED_SUFFIX`]
    /// while Suricata has not reloaded it).
    pub version: String,
    /// Entries applied.
    pub applied: u64,
    /// Entries skipped as invalid.
    pub skipped: u64,
    /// When a fetch last succeeded (RFC 3339, UTC).
    pub updated: String,
}

impl PolicyState {
    /// Reads the state file in `rules_dir`; `None` when there is none (no fetch succeeded yet).
    pub fn read(rules_dir: &Path) -> Option<Self> {
        let text = fs::read(rules_dir.join(POLICY_STATE_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Whether the running Suricata (if any) has reloaded this policy.
    pub fn reloaded(&self) -> bool {
        !self.version.ends_with(UNLOADED_SUFFIX)
    }
}

/// The intel feeds' state file in `intel.dir` (written by the agent's feed updater, read by
/// the next update, the metrics and the heartbeat).
pub const INTEL_STATE_FILE: &str = "ids2-intel.json";

/// One intel feed as last updated, kept in `<intel.dir>/ids2-intel.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntelFeedState {
    /// The feed's name.
    pub name: String,
    /// Its indicator kind.
    pub kind: String,
    /// First 16 hex digits of the SHA-256 of its normalised list (`none` before the first good
    /// version).
    pub version: String,
    /// Indicators in the active version.
    pub indicators: u64,
    /// Entries of the last good download that were not valid indicators.
    pub invalid: u64,
    /// Entries of the last good download that the allowlist covered.
    pub allowlisted: u64,
    /// Entries of another kind (MISP, STIX) left out.
    pub other_kind: u64,
    /// When the feed last updated successfully (RFC 3339, UTC); empty if never.
    pub updated: String,
    /// When an update of the feed was last tried.
    pub attempted: String,
    /// Why the last try failed, when it did (the last good version stays active).
    pub error: Option<String>,
    /// Tries that failed since the feed was first updated (its download, format or size), each
    /// leaving the last good version active.
    pub failures: u64,
}

impl IntelFeedState {
    /// Every feed's state in `intel_dir` (empty when no update ran yet).
    pub fn read_all(intel_dir: &Path) -> std::collections::BTreeMap<String, Self> {
        fs::read(intel_dir.join(INTEL_STATE_FILE))
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
            .unwrap_or_default()
    }

    /// Replaces the state file in `intel_dir` (a temporary file renamed over it).
    pub fn write_all(
        intel_dir: &Path,
        states: &std::collections::BTreeMap<String, Self>,
    ) -> std::io::Result<()> {
        fs::create_dir_all(intel_dir)?;
        let path = intel_dir.join(INTEL_STATE_FILE);
        let tmp = intel_dir.join(format!(".{INTEL_STATE_FILE}.tmp"));
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(states).expect("state serialises"),
        )?;
        fs::rename(&tmp, &path)
    }
}

/// The intel feeds as a heartbeat reports them, so `fleet status` shows a sensor whose feeds
/// went stale.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntelSummary {
    /// `name:version` of every configured feed (`none` before its first good version).
    pub versions: Vec<String>,
    /// The oldest of the feeds' last successful updates (RFC 3339, UTC); `None` when none ever
    /// updated.
    pub updated: Option<String>,
    /// Feeds without a successful update within twice their `interval_secs` (or never).
    pub stale: Vec<String>,
}

/// What one heartbeat reports; `None` leaves the field out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// When the heartbeat was taken.
    pub at: Option<OffsetDateTime>,
    /// `sensor.id`.
    pub sensor_id: String,
    /// `sensor.name`.
    pub sensor_name: String,
    /// The agent's version.
    pub version: String,
    /// The host's name.
    pub hostname: Option<String>,
    /// Seconds since the host booted.
    pub host_uptime_secs: u64,
    /// `fleet.heartbeat_secs`.
    pub interval_secs: u32,
    /// Seconds since the agent started.
    pub agent_uptime_secs: u64,
    /// Head of the history branch: the configuration commit in force.
    pub config_commit: Option<String>,
    /// Throttle level 0–3.
    pub throttle_level: Option<u8>,
    /// Host CPU use, 0–1.
    pub cpu_ratio: Option<f64>,
    /// Host memory use, 0–1.
    pub memory_ratio: Option<f64>,
    /// How full the log tmpfs is, 0–1.
    pub logs_used_ratio: Option<f64>,
    /// Suricata's `capture.kernel_packets`.
    pub packets: Option<u64>,
    /// Suricata's `capture.kernel_drops`.
    pub kernel_drops: Option<u64>,
    /// Kernel drops as a share of the packets seen since the previous heartbeat, 0–1.
    pub drop_ratio: Option<f64>,
    /// Vector's disk buffer for events: bytes waiting for OpenSearch, and its size.
    pub shipping_buffer: Option<(u64, u64)>,
    /// How far back the packet-evidence ring reaches, in seconds (with evidence on).
    pub evidence_ring_age_secs: Option<f64>,
    /// EVE events per second since the previous heartbeat.
    pub eve_per_second: Option<f64>,
    /// EVE lines longer than [`crate::ecs::EVE_MAX_LINE_BYTES`] since the previous heartbeat:
    /// skipped by Vector and the agent alike, so not in OpenSearch.
    pub eve_oversized: Option<u64>,
    /// When an alert was last seen (to within one heartbeat period).
    pub last_alert: Option<OffsetDateTime>,
    /// Connectivity checks passing, and run.
    pub connectivity: Option<(u32, u32)>,
    /// The active rule set.
    pub rules: Option<RuleSetState>,
    /// The active fleet policy.
    pub policy: Option<PolicyState>,
    /// The intel feeds, when any is configured.
    pub intel: Option<IntelSummary>,
}

/// Formats a time as ECS/OpenSearch expect it: RFC 3339, UTC, milliseconds.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The connectivity summary: `up` when every check passes, `down` when none does,
/// `degraded` in between, `unknown` before the first round.
pub fn connectivity_state(up: u32, total: u32) -> &'static str {
    match (up, total) {
        (_, 0) => "unknown",
        (u, t) if u == t => "up",
        (0, _) => "down",
        _ => "degraded",
    }
}

/// The heartbeat document for a snapshot.
pub fn document(s: &Snapshot) -> Value {
    let at = s.at.unwrap_or_else(OffsetDateTime::now_utc);
    let mut ids2 = Map::new();
    let mut put = |path: &[&str], v: Value| {
        if v.is_null() {
            return;
        }
        let mut obj = &mut ids2;
        for p in &path[..path.len() - 1] {
            obj = obj
                .entry(p.to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("heartbeat sections are objects");
        }
        obj.insert(path[path.len() - 1].to_string(), v);
    };
    put(&["heartbeat", "interval_secs"], json!(s.interval_secs));
    put(&["agent", "uptime_secs"], json!(s.agent_uptime_secs));
    put(&["config", "commit"], json!(s.config_commit));
    put(&["throttle", "level"], json!(s.throttle_level));
    put(&["host", "memory_ratio"], json!(s.memory_ratio.map(round3)));
    put(
        &["logs", "used_ratio"],
        json!(s.logs_used_ratio.map(round3)),
    );
    put(&["capture", "packets"], json!(s.packets));
    put(&["capture", "kernel_drops"], json!(s.kernel_drops));
    // Six decimals: a drop ratio of 1e-4 already matters on a busy link.
    put(
        &["capture", "drop_ratio"],
        json!(s.drop_ratio.map(|r| (r * 1e6).round() / 1e6)),
    );
    put(
        &["evidence", "ring_age_secs"],
        json!(s.evidence_ring_age_secs.map(round3)),
    );
    if let Some((bytes, max)) = s.shipping_buffer {
        put(&["shipping", "buffer_bytes"], json!(bytes));
        if max > 0 {
            put(
                &["shipping", "buffer_ratio"],
                json!(round3(bytes as f64 / max as f64)),
            );
        }
    }
    put(
        &["eve", "events_per_second"],
        json!(s.eve_per_second.map(round3)),
    );
    put(&["eve", "oversized_lines"], json!(s.eve_oversized));
    put(&["alert", "last_seen"], json!(s.last_alert.map(timestamp)));
    let (up, total) = s.connectivity.unwrap_or((0, 0));
    put(
        &["connectivity", "state"],
        json!(connectivity_state(up, total)),
    );
    if s.connectivity.is_some() {
        put(&["connectivity", "checks_up"], json!(up));
        put(&["connectivity", "checks_total"], json!(total));
    }
    if let Some(r) = &s.rules {
        put(&["rules", "version"], json!(r.version));
        put(&["rules", "loaded"], json!(r.rules));
        put(&["rules", "updated"], json!(r.updated));
    }
    if let Some(p) = &s.policy {
        put(&["policy", "version"], json!(p.version));
        put(&["policy", "applied"], json!(p.applied));
        put(&["policy", "skipped"], json!(p.skipped));
        put(&["policy", "updated"], json!(p.updated));
    }
    if let Some(i) = &s.intel {
        put(&["intel", "versions"], json!(i.versions));
        put(&["intel", "updated"], json!(i.updated));
        put(&["intel", "stale"], json!(i.stale));
    }
    let mut host = Map::new();
    if let Some(h) = &s.hostname {
        host.insert("hostname".into(), json!(h));
    }
    host.insert("uptime".into(), json!(s.host_uptime_secs));
    if let Some(cpu) = s.cpu_ratio {
        host.insert("cpu".into(), json!({"usage": round3(cpu)}));
    }
    json!({
        "@timestamp": timestamp(at),
        "event": {"kind": "state", "dataset": DATASET, "module": "ids2"},
        "observer": {
            "hostname": s.sensor_id,
            "name": s.sensor_name,
            "type": "ids",
            "vendor": "ids2",
            "product": "ids2",
            "version": s.version,
        },
        "host": host,
        "ids2": ids2,
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Snapshot {
        Snapshot {
            at: Some(time::macros::datetime!(2026-11-21 10:00:00.5 UTC)),
            sensor_id: "lab-1".into(),
            sensor_name: "Lab 1".into(),
            version: "0.1.0".into(),
            hostname: Some("pi5".into()),
            host_uptime_secs: 3600,
            interval_secs: 15,
            agent_uptime_secs: 120,
            config_commit: Some("0123abcd".into()),
            throttle_level: Some(1),
            cpu_ratio: Some(0.41234),
            memory_ratio: Some(0.5),
            logs_used_ratio: Some(0.25),
            packets: Some(1000),
            kernel_drops: Some(3),
            drop_ratio: Some(0.0031234),
            shipping_buffer: Some((64 << 20, 256 << 20)),
            evidence_ring_age_secs: Some(512.25),
            eve_per_second: Some(12.5),
            eve_oversized: Some(1),
            last_alert: Some(time::macros::datetime!(2026-11-21 09:59:50 UTC)),
            connectivity: Some((2, 3)),
            rules: Some(RuleSetState {
                version: "abc123".into(),
                rules: 42,
                updated: "2026-11-21T00:00:00.000Z".into(),
                sources: vec!["et/open".into()],
            }),
            policy: Some(PolicyState {
                version: "0a1b2c3d4e5f".into(),
                applied: 3,
                skipped: 1,
                updated: "2026-11-21T09:59:00.000Z".into(),
            }),
            intel: Some(IntelSummary {
                versions: vec!["feodo-tracker:0123456789abcdef".into(), "own:none".into()],
                updated: Some("2026-11-21T09:00:00.000Z".into()),
                stale: vec!["own".into()],
            }),
        }
    }

    fn flatten(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&p, v, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }

    #[test]
    fn full_snapshot_emits_exactly_the_listed_fields() {
        let doc = document(&full());
        let mut emitted = Vec::new();
        flatten("", &doc, &mut emitted);
        emitted.sort();
        let mut listed: Vec<String> = FIELDS.iter().map(|f| f.name.to_string()).collect();
        listed.sort();
        assert_eq!(emitted, listed);
        assert_eq!(doc["@timestamp"], "2026-11-21T10:00:00.500Z");
        assert_eq!(doc["event"]["kind"], "state");
        assert_eq!(doc["host"]["cpu"]["usage"], 0.412);
        assert_eq!(doc["ids2"]["connectivity"]["state"], "degraded");
        assert_eq!(doc["ids2"]["capture"]["drop_ratio"], 0.003123);
        assert_eq!(
            doc["ids2"]["eve"],
            json!({"events_per_second": 12.5, "oversized_lines": 1})
        );
        assert_eq!(
            doc["ids2"]["shipping"],
            json!({"buffer_bytes": 64 << 20, "buffer_ratio": 0.25})
        );
        assert_eq!(
            doc["ids2"]["alert"]["last_seen"],
            "2026-11-21T09:59:50.000Z"
        );
        assert_eq!(
            doc["ids2"]["intel"],
            json!({
                "versions": ["feodo-tracker:0123456789abcdef", "own:none"],
                "updated": "2026-11-21T09:00:00.000Z",
                "stale": ["own"],
            })
        );
    }

    #[test]
    fn unknown_values_are_left_out() {
        let doc = document(&Snapshot {
            sensor_id: "lab-1".into(),
            ..Default::default()
        });
        assert!(doc["ids2"].get("rules").is_none());
        assert!(doc["ids2"].get("intel").is_none());
        assert!(doc["host"].get("cpu").is_none());
        assert_eq!(doc["ids2"]["connectivity"]["state"], "unknown");
        assert!(doc["ids2"]["connectivity"].get("checks_up").is_none());
    }

    #[test]
    fn connectivity_states() {
        assert_eq!(connectivity_state(0, 0), "unknown");
        assert_eq!(connectivity_state(3, 3), "up");
        assert_eq!(connectivity_state(0, 2), "down");
        assert_eq!(connectivity_state(1, 2), "degraded");
    }
}
