//! The fleet policy: alert tuning an analyst writes once, in OpenSearch, and every sensor in
//! its scope applies.
//!
//! Each entry is one small document in the `<index_prefix>-policy` index, written by
//! `ids2-provision tune` and read by the agent on every sensor. One document per entry, not per
//! scope, so two analysts tuning at once never overwrite each other's work. Entries are
//! checked one by one: a bad entry is named with what is wrong and skipped, the rest apply —
//! one typo must not switch off a fleet's whole tuning. What a sensor applies is
//! [`resolve`]d from the entries whose scope covers it and that have not expired, and
//! [`render`]ed as Suricata's `threshold.config`; the [`Resolved::version`] is a hash of that
//! text, so the heartbeat can say which policy a sensor runs.
//!
//! Pure: parsing, validation and rendering only; fetching and applying live in the agent, and
//! writing in `ids2-provision`.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The index holding the policy, under the sensors' index prefix.
pub fn index(prefix: &str) -> String {
    format!("{prefix}-policy")
}

/// Whether `name` is a valid sensor id or group name: 1–63 characters of `a-z`, `0-9` and
/// `-`, not starting with `-`.
pub fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
}

/// What an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// No alert of the rule, for the given source or destination addresses (or for all).
    Suppress,
    /// Alerts of the rule counted and limited (Suricata's `threshold`).
    Threshold,
    /// No alert of the rule anywhere in the scope (a suppression without addresses: the rule
    /// still runs, its alerts are dropped).
    Disable,
    /// The rule enabled although its source ships it disabled, at the next rule update.
    Enable,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Suppress => "suppress",
            Action::Threshold => "threshold",
            Action::Disable => "disable",
            Action::Enable => "enable",
        })
    }
}

/// Which addresses an entry tracks (Suricata's `track`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    /// The alert's source address.
    BySrc,
    /// The alert's destination address.
    ByDst,
    /// Either address (suppressions only).
    ByEither,
    /// The rule as a whole (thresholds only).
    ByRule,
    /// The source and destination pair (thresholds only).
    ByBoth,
}

impl Track {
    fn as_str(self) -> &'static str {
        match self {
            Track::BySrc => "by_src",
            Track::ByDst => "by_dst",
            Track::ByEither => "by_either",
            Track::ByRule => "by_rule",
            Track::ByBoth => "by_both",
        }
    }
}

/// How a threshold counts (Suricata's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdType {
    /// At most `count` alerts per `seconds`.
    Limit,
    /// One alert every `count` matches within `seconds`.
    Threshold,
    /// One alert once `count` matches are seen within `seconds`, then none for the rest of it.
    Both,
}

impl ThresholdType {
    fn as_str(self) -> &'static str {
        match self {
            ThresholdType::Limit => "limit",
            ThresholdType::Threshold => "threshold",
            ThresholdType::Both => "both",
        }
    }
}

/// One policy document as stored in OpenSearch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `suppress`, `threshold`, `disable` or `enable`.
    pub action: Action,
    /// `fleet`, `group:<name>` or `sensor:<id>`.
    pub scope: String,
    /// The rule's signature id.
    pub sid: u32,
    /// The rule's generator id; 1 for every ordinary rule.
    #[serde(default = "default_gid")]
    pub gid: u32,
    /// suppress: `by_src`, `by_dst` or `by_either` (with `ip`); threshold: `by_src`, `by_dst`,
    /// `by_rule` or `by_both`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<Track>,
    /// suppress: the address or CIDR whose alerts are dropped; without it, all are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// threshold: `limit`, `threshold` or `both`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ThresholdType>,
    /// threshold: matches counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// threshold: length of the counting window in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u32>,
    /// When the entry stops applying (RFC 3339); never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Why (shown in `tune list` and written into the sensor's threshold.config).
    pub reason: String,
    /// Who wrote it.
    pub author: String,
    /// When it was written (RFC 3339).
    pub created: String,
}

fn default_gid() -> u32 {
    1
}

/// Where an entry applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every sensor.
    Fleet,
    /// Sensors listing the group in `fleet.policy.groups`.
    Group(String),
    /// One sensor, by `sensor.id`.
    Sensor(String),
}

impl Scope {
    /// Whether the scope covers a sensor with this id and these groups.
    pub fn covers(&self, sensor: &str, groups: &[String]) -> bool {
        match self {
            Scope::Fleet => true,
            Scope::Group(g) => groups.iter().any(|x| x == g),
            Scope::Sensor(s) => s == sensor,
        }
    }

    /// How specific the scope is: a sensor's own entry beats its group's, which beats the
    /// fleet's.
    fn rank(&self) -> u8 {
        match self {
            Scope::Fleet => 0,
            Scope::Group(_) => 1,
            Scope::Sensor(_) => 2,
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "scope {s:?}: expected fleet, group:<name> or sensor:<id> (names: 1–63 \
                 characters of a-z, 0-9 and '-')"
            )
        };
        if s == "fleet" {
            return Ok(Scope::Fleet);
        }
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        if !valid_name(name) {
            return Err(bad());
        }
        match kind {
            "group" => Ok(Scope::Group(name.to_string())),
            "sensor" => Ok(Scope::Sensor(name.to_string())),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Fleet => f.write_str("fleet"),
            Scope::Group(g) => write!(f, "group:{g}"),
            Scope::Sensor(s) => write!(f, "sensor:{s}"),
        }
    }
}

/// What a valid entry makes Suricata do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tuning {
    /// `suppress`, for these addresses or (`None`) for all.
    Suppress(Option<(Track, IpNet)>),
    /// `threshold`.
    Threshold {
        /// How it counts.
        kind: ThresholdType,
        /// What it counts per.
        track: Track,
        /// Matches counted.
        count: u32,
        /// Window in seconds.
        seconds: u32,
    },
    /// Enable at the next rule update.
    Enable,
}

/// An entry that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    /// The document id.
    pub id: String,
    /// What the document said it was (`disable` becomes an unconditional suppression).
    pub action: Action,
    /// Where it applies.
    pub scope: Scope,
    /// Generator id.
    pub gid: u32,
    /// Signature id.
    pub sid: u32,
    /// What it does.
    pub tuning: Tuning,
    /// When it stops applying.
    pub expires: Option<OffsetDateTime>,
    /// Why.
    pub reason: String,
    /// Who.
    pub author: String,
}

/// An entry that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The document id.
    pub id: String,
    /// Every problem found, each naming the field, its value and what is accepted.
    pub problems: Vec<String>,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy entry {}: {}", self.id, self.problems.join("; "))
    }
}

/// Longest reason kept, in bytes; the reason is written into threshold.config as a comment.
pub const MAX_REASON_BYTES: usize = 500;

impl Entry {
    /// Checks the entry as a whole, reporting every problem at once.
    pub fn validate(&self, id: &str) -> Result<Valid, Skipped> {
        let mut p = Vec::new();
        let scope = self
            .scope
            .parse::<Scope>()
            .map_err(|e| p.push(e))
            .unwrap_or(Scope::Fleet);
        if self.sid == 0 {
            p.push("sid 0: expected a rule SID (1 or more)".to_string());
        }
        if self.gid == 0 {
            p.push("gid 0: expected a generator id (1 for ordinary rules)".to_string());
        }
        let reason = self.reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON_BYTES || reason.contains(['\n', '\r']) {
            p.push(format!(
                "reason {:?}: expected one line of 1–{MAX_REASON_BYTES} bytes saying why",
                self.reason
            ));
        }
        let expires = match &self.expires {
            None => None,
            Some(t) => match OffsetDateTime::parse(t, &Rfc3339) {
                Ok(t) => Some(t),
                Err(_) => {
                    p.push(format!(
                        "expires {t:?}: expected an RFC 3339 time such as 2026-12-31T00:00:00Z"
                    ));
                    None
                }
            },
        };
        let not_here = |p: &mut Vec<String>, key: &str, present: bool| {
            if present {
                p.push(format!("{key} is not used by action {}", self.action));
            }
        };
        let tuning = match self.action {
            Action::Suppress => {
                not_here(&mut p, "type", self.kind.is_some());
                not_here(&mut p, "count", self.count.is_some());
                not_here(&mut p, "seconds", self.seconds.is_some());
                match (&self.ip, self.track) {
                    (None, None) => Tuning::Suppress(None),
                    (Some(ip), Some(track @ (Track::BySrc | Track::ByDst | Track::ByEither))) => {
                        match parse_net(ip) {
                            Some(net) => Tuning::Suppress(Some((track, net))),
                            None => {
                                p.push(format!("ip {ip:?}: expected an IP address or CIDR"));
                                Tuning::Suppress(None)
                            }
                        }
                    }
                    (Some(_), None) => {
                        p.push("ip needs track: by_src, by_dst or by_either".to_string());
                        Tuning::Suppress(None)
                    }
                    (_, Some(t)) => {
                        p.push(format!(
                            "track {}: a suppression takes by_src, by_dst or by_either, with ip",
                            t.as_str()
                        ));
                        Tuning::Suppress(None)
                    }
                }
            }
            Action::Threshold => {
                not_here(&mut p, "ip", self.ip.is_some());
                let track = match self.track {
                    Some(t @ (Track::BySrc | Track::ByDst | Track::ByRule | Track::ByBoth)) => t,
                    other => {
                        p.push(format!(
                            "track {:?}: a threshold takes by_src, by_dst, by_rule or by_both",
                            other.map(Track::as_str).unwrap_or("(missing)")
                        ));
                        Track::BySrc
                    }
                };
                let kind = self.kind.unwrap_or_else(|| {
                    p.push("type missing: expected limit, threshold or both".to_string());
                    ThresholdType::Limit
                });
                let mut number = |key: &str, v: Option<u32>, max: u32| match v {
                    Some(n) if (1..=max).contains(&n) => n,
                    other => {
                        p.push(format!(
                            "{key} {}: expected 1 to {max}",
                            other.map_or("(missing)".to_string(), |n| n.to_string())
                        ));
                        1
                    }
                };
                let count = number("count", self.count, 1_000_000);
                let seconds = number("seconds", self.seconds, 86_400);
                Tuning::Threshold {
                    kind,
                    track,
                    count,
                    seconds,
                }
            }
            Action::Disable | Action::Enable => {
                for (key, present) in [
                    ("track", self.track.is_some()),
                    ("ip", self.ip.is_some()),
                    ("type", self.kind.is_some()),
                    ("count", self.count.is_some()),
                    ("seconds", self.seconds.is_some()),
                ] {
                    not_here(&mut p, key, present);
                }
                if self.action == Action::Enable {
                    Tuning::Enable
                } else {
                    Tuning::Suppress(None)
                }
            }
        };
        if !p.is_empty() {
            return Err(Skipped {
                id: id.to_string(),
                problems: p,
            });
        }
        Ok(Valid {
            id: id.to_string(),
            action: self.action,
            scope,
            gid: self.gid,
            sid: self.sid,
            tuning,
            expires,
            reason: reason.to_string(),
            author: self.author.trim().to_string(),
        })
    }
}

/// An address or a CIDR, normalised to its network (`10.1.2.3/8` is `10.0.0.0/8`).
fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<std::net::IpAddr>().ok().map(IpNet::from)
}

/// The entries of a `_search` response: valid ones, and those skipped with their problems.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Entries that passed validation.
    pub entries: Vec<Valid>,
    /// Entries that did not.
    pub skipped: Vec<Skipped>,
}

/// Why a policy response could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The response is not a search result.
    #[error("the policy search returned no hits.hits list: {0}")]
    NotASearchResult(String),
    /// More entries than one search returns; the sensor would apply only part of the policy.
    #[error(
        "the policy holds {total} entries, more than the {limit} one fetch reads: expire or \
         remove entries (ids2-provision tune list / expire)"
    )]
    TooMany {
        /// Entries in the index.
        total: u64,
        /// What one fetch reads.
        limit: usize,
    },
}

/// Most entries one fetch reads (one `_search` page).
pub const MAX_ENTRIES: usize = 10_000;

/// Reads a `_search` response of the policy index.
pub fn parse_search(body: &Value) -> Result<Parsed, PolicyError> {
    let hits = body
        .pointer("/hits/hits")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            let mut text = body.to_string();
            text.truncate(300);
            PolicyError::NotASearchResult(text)
        })?;
    let total = body
        .pointer("/hits/total/value")
        .and_then(Value::as_u64)
        .unwrap_or(hits.len() as u64);
    if total > MAX_ENTRIES as u64 {
        return Err(PolicyError::TooMany {
            total,
            limit: MAX_ENTRIES,
        });
    }
    let mut out = Parsed::default();
    for hit in hits {
        let id = hit
            .get("_id")
            .and_then(Value::as_str)
            .unwrap_or("(no id)")
            .to_string();
        let source = hit.get("_source").cloned().unwrap_or(Value::Null);
        match serde_json::from_value::<Entry>(source) {
            Ok(entry) => match entry.validate(&id) {
                Ok(v) => out.entries.push(v),
                Err(s) => out.skipped.push(s),
            },
            Err(e) => out.skipped.push(Skipped {
                id,
                problems: vec![e.to_string()],
            }),
        }
    }
    out.entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The policy one sensor applies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    /// The entries that apply, in the order written.
    pub applied: Vec<Valid>,
    /// Entries whose scope covers the sensor but that have expired.
    pub expired: Vec<String>,
    /// Thresholds replaced by a more specific one for the same rule: (loser, winner) ids.
    pub overridden: Vec<(String, String)>,
    /// `threshold.config` for Suricata.
    pub threshold_config: String,
    /// Rules to enable at the next rule update, as (gid, sid).
    pub enable: Vec<(u32, u32)>,
    /// Short hash of `threshold_config` and `enable`: the policy version a heartbeat reports.
    pub version: String,
}

/// The entries covering the sensor `sensor` in `groups`, at `now`, rendered.
pub fn resolve(
    entries: &[Valid],
    sensor: &str,
    groups: &[String],
    now: OffsetDateTime,
) -> Resolved {
    let mut out = Resolved::default();
    // Suricata takes one threshold per rule: the most specific scope wins, then the newest id.
    let mut thresholds: BTreeMap<(u32, u32), &Valid> = BTreeMap::new();
    let mut kept = Vec::new();
    for e in entries.iter().filter(|e| e.scope.covers(sensor, groups)) {
        if e.expires.is_some_and(|t| t <= now) {
            out.expired.push(e.id.clone());
            continue;
        }
        if let Tuning::Threshold { .. } = e.tuning {
            let key = (e.gid, e.sid);
            match thresholds.get(&key) {
                Some(old) if old.scope.rank() > e.scope.rank() => {
                    out.overridden.push((e.id.clone(), old.id.clone()));
                }
                Some(old) => {
                    out.overridden.push((old.id.clone(), e.id.clone()));
                    thresholds.insert(key, e);
                }
                None => {
                    thresholds.insert(key, e);
                }
            }
            continue;
        }
        kept.push(e);
    }
    kept.extend(thresholds.into_values());
    kept.sort_by(|a, b| (a.sid, &a.id).cmp(&(b.sid, &b.id)));
    let mut text = String::from(
        "# The ids2 fleet policy (ids2-provision tune), written by ids2-agent policy update.\n\
         # Do not edit: the next fetch replaces this file.\n",
    );
    for e in &kept {
        let line = match &e.tuning {
            Tuning::Suppress(None) => format!("suppress gen_id {}, sig_id {}", e.gid, e.sid),
            Tuning::Suppress(Some((track, net))) => format!(
                "suppress gen_id {}, sig_id {}, track {}, ip {net}",
                e.gid,
                e.sid,
                track.as_str()
            ),
            Tuning::Threshold {
                kind,
                track,
                count,
                seconds,
            } => format!(
                "threshold gen_id {}, sig_id {}, type {}, track {}, count {count}, seconds {seconds}",
                e.gid,
                e.sid,
                kind.as_str(),
                track.as_str()
            ),
            Tuning::Enable => {
                out.enable.push((e.gid, e.sid));
                out.applied.push((*e).clone());
                continue;
            }
        };
        let _ = writeln!(text, "# {} ({}, {}): {}", e.id, e.scope, e.author, e.reason);
        let _ = writeln!(text, "{line}");
        out.applied.push((*e).clone());
    }
    out.enable.sort_unstable();
    out.enable.dedup();
    let mut hash = Sha256::new();
    hash.update(text.as_bytes());
    for (gid, sid) in &out.enable {
        hash.update(format!("enable {gid}:{sid}\n").as_bytes());
    }
    out.version = hex::encode(&hash.finalize()[..6]);
    out.threshold_config = text;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn hit(id: &str, source: Value) -> Value {
        json!({"_id": id, "_source": source})
    }

    fn entry(action: &str, scope: &str, sid: u32) -> Value {
        json!({"action": action, "scope": scope, "sid": sid, "reason": "noisy printer",
               "author": "ana", "created": "2026-12-01T10:00:00Z"})
    }

    fn search(hits: Vec<Value>) -> Value {
        json!({"hits": {"total": {"value": hits.len()}, "hits": hits}})
    }

    #[test]
    fn bad_entries_are_named_and_skipped_the_rest_apply() {
        let mut bad_ip = entry("suppress", "fleet", 7);
        bad_ip["ip"] = json!("10.0.0.300");
        bad_ip["track"] = json!("by_src");
        let mut two_problems = entry("threshold", "group:Lab", 0);
        two_problems["count"] = json!(0);
        let mut unknown = entry("suppress", "fleet", 8);
        unknown["sids"] = json!([1]);
        let parsed = parse_search(&search(vec![
            hit("ok", entry("disable", "fleet", 2_100_498)),
            hit("bad-ip", bad_ip),
            hit("two", two_problems),
            hit("unknown", unknown),
        ]))
        .unwrap();
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(parsed.entries[0].id, "ok");
        let skipped: BTreeMap<_, _> = parsed
            .skipped
            .iter()
            .map(|s| (s.id.as_str(), s.problems.join(" | ")))
            .collect();
        assert!(
            skipped["bad-ip"].contains("ip \"10.0.0.300\""),
            "{skipped:?}"
        );
        let two = &skipped["two"];
        for needle in [
            "scope \"group:Lab\"",
            "sid 0",
            "track \"(missing)\"",
            "type missing",
            "count 0",
        ] {
            assert!(two.contains(needle), "{needle} not in {two}");
        }
        assert!(
            skipped["unknown"].contains("unknown field `sids`"),
            "{skipped:?}"
        );
    }

    #[test]
    fn scope_expiry_and_specificity_decide_what_a_sensor_applies() {
        let mut sup = entry("suppress", "group:lab", 9_200_010);
        sup["track"] = json!("by_src");
        sup["ip"] = json!("10.1.2.3/16");
        let mut fleet_thr = entry("threshold", "fleet", 9_200_020);
        fleet_thr.as_object_mut().unwrap().extend([
            ("type".to_string(), json!("limit")),
            ("track".to_string(), json!("by_src")),
            ("count".to_string(), json!(1)),
            ("seconds".to_string(), json!(60)),
        ]);
        let mut own_thr = fleet_thr.clone();
        own_thr["scope"] = json!("sensor:pi-1");
        own_thr["count"] = json!(5);
        let mut old = entry("disable", "fleet", 1);
        old["expires"] = json!("2026-12-01T00:00:00Z");
        let parsed = parse_search(&search(vec![
            hit("a-sup", sup),
            hit("b-own", own_thr),
            hit("c-fleet", fleet_thr),
            hit("d-old", old),
            hit("e-other", entry("disable", "sensor:pi-2", 3)),
            hit("f-enable", entry("enable", "fleet", 2_000_001)),
        ]))
        .unwrap();
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        let now = datetime!(2026-12-02 00:00 UTC);
        let r = resolve(&parsed.entries, "pi-1", &["lab".to_string()], now);
        let lines: Vec<&str> = r
            .threshold_config
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(
            lines,
            [
                "suppress gen_id 1, sig_id 9200010, track by_src, ip 10.1.0.0/16",
                "threshold gen_id 1, sig_id 9200020, type limit, track by_src, count 5, seconds 60",
            ]
        );
        assert_eq!(r.expired, ["d-old"]);
        assert_eq!(r.overridden, [("c-fleet".to_string(), "b-own".to_string())]);
        assert_eq!(r.enable, [(1, 2_000_001)]);
        // Another sensor, outside the group: the fleet threshold and its own disable.
        let other = resolve(&parsed.entries, "pi-2", &[], now);
        assert!(other.threshold_config.contains("count 1, seconds 60"));
        assert!(other
            .threshold_config
            .contains("suppress gen_id 1, sig_id 3\n"));
        assert!(!other.threshold_config.contains("9200010"));
        assert_ne!(r.version, other.version);
        assert_eq!(r.version.len(), 12);
    }

    #[test]
    fn the_reason_cannot_break_out_of_its_comment() {
        let mut e = entry("disable", "fleet", 5);
        e["reason"] = json!("fine\nsuppress gen_id 1, sig_id 9200010");
        let parsed = parse_search(&search(vec![hit("x", e)])).unwrap();
        assert!(parsed.entries.is_empty());
        assert!(parsed.skipped[0].problems[0].contains("one line"));
    }

    #[test]
    fn too_many_entries_are_refused_rather_than_half_applied() {
        let body = json!({"hits": {"total": {"value": 10_001}, "hits": []}});
        assert!(matches!(
            parse_search(&body),
            Err(PolicyError::TooMany { .. })
        ));
        assert!(matches!(
            parse_search(&json!({"error": "x"})),
            Err(PolicyError::NotASearchResult(_))
        ));
    }
}
