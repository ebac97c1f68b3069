//! `fleet`: heartbeats, offline detection and rule-set updates.

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::parse::authority;
use super::schema::default_true;
use super::validate::{check_abs_path, check_range};

/// Fleet membership: the heartbeat the sensor writes and the rule-set updates it runs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Seconds between heartbeats (5–3600), written to `<logs.path>/heartbeat.json` and shipped to
    /// the heartbeat index.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u32,
    /// Seconds without a heartbeat after which the sensor is reported offline (fleet status,
    /// the OpenSearch monitor); at least two heartbeat intervals.
    #[serde(default = "default_offline_after_secs")]
    pub offline_after_secs: u32,
    /// Rule-set updates with suricata-update.
    #[serde(default)]
    pub rules: RuleUpdates,
    /// The fleet policy: suppressions and thresholds analysts write in OpenSearch with
    /// `ids2-provision tune`, fetched and applied live by every sensor.
    #[serde(default)]
    pub policy: FleetPolicy,
}

/// Fetching the fleet policy from the `<index_prefix>-policy` index.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetPolicy {
    /// Whether the daemon fetches and applies the policy (`ids2-agent policy update` works
    /// either way). Needs `opensearch.endpoint`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds between fetches (10–3600): a suppression reaches the sensor within one interval.
    #[serde(default = "default_policy_interval_secs")]
    pub interval_secs: u32,
    /// Groups this sensor belongs to, for entries scoped `group:<name>`: each 1–63 characters
    /// of `a-z`, `0-9` and `-`.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Rule-set updates: download, check with `suricata -T`, swap, record, reload Suricata.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleUpdates {
    /// Whether the daemon runs updates on its own every `interval_secs`
    /// (`ids2-agent rules update` works either way).
    #[serde(default = "default_true")]
    pub scheduled: bool,
    /// Seconds between scheduled updates (300–2592000, five minutes to 30 days; default one day).
    #[serde(default = "default_rules_interval_secs")]
    pub interval_secs: u32,
    /// Seconds before the first retry of a failed update; doubled on each further failure, up
    /// to `interval_secs`.
    #[serde(default = "default_rules_retry_secs")]
    pub retry_initial_secs: u32,
    /// Where rules come from: `et/open` (Emerging Threats Open for the installed Suricata),
    /// `https://…` or `file:///…` URLs of a rules file or tarball, or absolute paths of local
    /// `.rules` files or directories (offline sites).
    #[serde(default = "default_rule_sources")]
    pub sources: Vec<String>,
    /// SIDs to enable although their source ships them disabled.
    #[serde(default)]
    pub enable_sids: Vec<u32>,
    /// SIDs to disable.
    #[serde(default)]
    pub disable_sids: Vec<u32>,
    /// Alert thresholds written into the named rules.
    #[serde(default)]
    pub thresholds: Vec<RuleThreshold>,
    /// suricata-update's working directory (download cache); kept off the log tmpfs.
    #[serde(default = "default_rules_cache_dir")]
    pub cache_dir: String,
}

/// How a threshold counts (Suricata's `threshold: type …`).
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

/// What a threshold counts per (Suricata's `track`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdTrack {
    /// Per source address.
    BySrc,
    /// Per destination address.
    ByDst,
}

/// One rule's threshold.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleThreshold {
    /// The rule's SID.
    pub sid: u32,
    /// `limit`, `threshold` or `both`.
    #[serde(rename = "type")]
    pub kind: ThresholdType,
    /// `by_src` or `by_dst`.
    pub track: ThresholdTrack,
    /// Matches counted.
    pub count: u32,
    /// Length of the counting window in seconds.
    pub seconds: u32,
}

super::schema::default_from_fns! {
    Fleet {
        heartbeat_secs: default_heartbeat_secs, offline_after_secs: default_offline_after_secs,
        rules: RuleUpdates::default, policy: FleetPolicy::default,
    }
    FleetPolicy {
        enabled: default_true, interval_secs: default_policy_interval_secs, groups: Vec::new,
    }
    RuleUpdates {
        scheduled: default_true, interval_secs: default_rules_interval_secs,
        retry_initial_secs: default_rules_retry_secs, sources: default_rule_sources,
        enable_sids: Vec::new, disable_sids: Vec::new, thresholds: Vec::new,
        cache_dir: default_rules_cache_dir,
    }
}

/// Default heartbeat period.
pub fn default_heartbeat_secs() -> u32 {
    15
}

/// Default offline threshold: four missed heartbeats.
pub fn default_offline_after_secs() -> u32 {
    60
}

/// Default rule update period: one day.
pub fn default_rules_interval_secs() -> u32 {
    86_400
}

/// Default first retry after a failed rule update: five minutes.
pub fn default_rules_retry_secs() -> u32 {
    300
}

/// Default rule source: Emerging Threats Open.
pub fn default_rule_sources() -> Vec<String> {
    vec![RULE_SOURCE_ET_OPEN.into()]
}

/// Default suricata-update working directory.
pub fn default_rules_cache_dir() -> String {
    "/var/lib/ids2/suricata-update".into()
}

/// The rule source name for Emerging Threats Open (suricata-update's built-in default).
pub const RULE_SOURCE_ET_OPEN: &str = "et/open";

impl Fleet {
    /// Checks the heartbeat timings and the rule updates.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) {
        let f = self;
        check_range(
            p,
            "fleet.heartbeat_secs",
            f.heartbeat_secs,
            5..=3600,
            "seconds",
        );
        // Below two intervals a single delayed heartbeat would already read as offline.
        let least = f.heartbeat_secs.saturating_mul(2).max(10);
        if !(least..=86_400).contains(&f.offline_after_secs) {
            p.push(Problem::new(
                "fleet.offline_after_secs",
                f.offline_after_secs,
                format!(
                    "expected {least} to 86400 seconds: at least two heartbeat intervals \
                     (fleet.heartbeat_secs = {})",
                    f.heartbeat_secs
                ),
            ));
        }
        let r = &f.rules;
        check_range(
            p,
            "fleet.rules.interval_secs",
            r.interval_secs,
            300..=2_592_000,
            "seconds (5 minutes to 30 days)",
        );
        if !(10..=86_400).contains(&r.retry_initial_secs) || r.retry_initial_secs > r.interval_secs
        {
            p.push(Problem::new(
                "fleet.rules.retry_initial_secs",
                r.retry_initial_secs,
                "expected 10 to 86400 seconds, and no more than fleet.rules.interval_secs",
            ));
        }
        if r.sources.is_empty() {
            p.push(Problem::at(
                "fleet.rules.sources",
                "must list at least one source, e.g. [et/open] or [/var/lib/ids2/local-rules]",
            ));
        }
        for (i, s) in r.sources.iter().enumerate() {
            if let Err(why) = rule_source_problem(s) {
                p.push(Problem::new(format!("fleet.rules.sources[{i}]"), s, why));
            } else if r.sources[..i].contains(s) {
                p.push(Problem::new(
                    format!("fleet.rules.sources[{i}]"),
                    s,
                    "each source may be listed once",
                ));
            }
        }
        for (key, sids) in [
            ("fleet.rules.enable_sids", &r.enable_sids),
            ("fleet.rules.disable_sids", &r.disable_sids),
        ] {
            for (i, sid) in sids.iter().enumerate() {
                if *sid == 0 {
                    p.push(Problem::new(
                        format!("{key}[{i}]"),
                        sid,
                        "expected a rule SID (1 or more)",
                    ));
                } else if sids[..i].contains(sid) {
                    p.push(Problem::new(
                        format!("{key}[{i}]"),
                        sid,
                        "each SID may be listed once",
                    ));
                }
            }
        }
        for (i, sid) in r.disable_sids.iter().enumerate() {
            if r.enable_sids.contains(sid) {
                p.push(Problem::new(
                    format!("fleet.rules.disable_sids[{i}]"),
                    sid,
                    "is also in fleet.rules.enable_sids; keep it in one list",
                ));
            }
        }
        for (i, t) in r.thresholds.iter().enumerate() {
            let key = |k: &str| format!("fleet.rules.thresholds[{i}].{k}");
            if t.sid == 0 {
                p.push(Problem::new(
                    key("sid"),
                    t.sid,
                    "expected a rule SID (1 or more)",
                ));
            } else if r.thresholds[..i].iter().any(|o| o.sid == t.sid) {
                p.push(Problem::new(
                    key("sid"),
                    t.sid,
                    "each SID may have one threshold",
                ));
            }
            check_range(p, &key("count"), t.count, 1..=1_000_000, "matches");
            check_range(p, &key("seconds"), t.seconds, 1..=86_400, "seconds");
        }
        check_abs_path("fleet.rules.cache_dir", &r.cache_dir, p);
        check_range(
            p,
            "fleet.policy.interval_secs",
            f.policy.interval_secs,
            10..=3600,
            "seconds",
        );
        for (i, g) in f.policy.groups.iter().enumerate() {
            if !crate::policy::valid_name(g) {
                p.push(Problem::new(
                    format!("fleet.policy.groups[{i}]"),
                    g,
                    "expected 1–63 characters of a-z, 0-9 and '-', not starting with '-' \
                     (entries name it as scope group:<name>)",
                ));
            } else if f.policy.groups[..i].contains(g) {
                p.push(Problem::new(
                    format!("fleet.policy.groups[{i}]"),
                    g,
                    "each group may be listed once",
                ));
            }
        }
    }
}

/// Default seconds between policy fetches: a minute.
pub fn default_policy_interval_secs() -> u32 {
    60
}

/// `et/open`, an https:// or file:// URL, or an absolute path.
fn rule_source_problem(s: &str) -> Result<(), &'static str> {
    if s == RULE_SOURCE_ET_OPEN {
        return Ok(());
    }
    let path = if let Some(rest) = s.strip_prefix("https://") {
        let host = authority(rest);
        return if host.is_empty() || host.contains('@') || rest.len() == host.len() {
            Err("expected https://HOST/PATH of a rules file or .tar.gz, with no user info")
        } else {
            Ok(())
        };
    } else if let Some(rest) = s.strip_prefix("file://") {
        rest
    } else if s.contains("://") {
        return Err(
            "expected et/open, an https:// or file:// URL, or an absolute path \
             (plain http would let anyone on the path replace the rules)",
        );
    } else {
        s
    };
    let ok = path.starts_with('/')
        && path.len() > 1
        && !path.split('/').any(|part| part == "..")
        && !path.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err("expected et/open, an https:// URL, or an absolute path (file:///… or /…) without '..' or spaces")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{paths, problems_with};

    #[test]
    fn fleet_defaults_are_documented() {
        let s = crate::config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let f = &s.config.fleet;
        assert_eq!((f.heartbeat_secs, f.offline_after_secs), (15, 60));
        assert!(f.rules.scheduled);
        assert_eq!(f.rules.interval_secs, 86_400);
        assert_eq!(f.rules.sources, ["et/open"]);
        assert!(f.rules.enable_sids.is_empty() && f.rules.thresholds.is_empty());
    }

    #[test]
    fn policy_problems_named_by_key() {
        let p =
            problems_with("fleet:\n  policy:\n    interval_secs: 5\n    groups: [lab, Lab, lab]\n");
        assert_eq!(
            paths(&p),
            [
                "fleet.policy.interval_secs",
                "fleet.policy.groups[1]",
                "fleet.policy.groups[2]",
            ],
            "{p:#?}"
        );
        assert!(p[0].message.contains("10 to 3600"), "{p:#?}");
        assert!(p[1].message.contains("group:<name>"), "{p:#?}");
    }

    #[test]
    fn fleet_problems_named_by_key() {
        let p = problems_with(
            "fleet:\n  heartbeat_secs: 30\n  offline_after_secs: 45\n  rules:\n    \
             interval_secs: 60\n    sources: [et/open, 'http://mirror.lan/r.tar.gz', \
             rules/local, 'file:///srv/../etc', et/open]\n    enable_sids: [1, 1, 0]\n    \
             disable_sids: [1]\n    thresholds:\n      - {sid: 5, type: limit, track: by_src, \
             count: 0, seconds: 60}\n      - {sid: 5, type: both, track: by_dst, count: 1, \
             seconds: 60}\n    cache_dir: var/cache\n",
        );
        assert_eq!(
            paths(&p),
            [
                "fleet.offline_after_secs",
                "fleet.rules.interval_secs",
                "fleet.rules.retry_initial_secs",
                "fleet.rules.sources[1]",
                "fleet.rules.sources[2]",
                "fleet.rules.sources[3]",
                "fleet.rules.sources[4]",
                "fleet.rules.enable_sids[1]",
                "fleet.rules.enable_sids[2]",
                "fleet.rules.disable_sids[0]",
                "fleet.rules.thresholds[0].count",
                "fleet.rules.thresholds[1].sid",
                "fleet.rules.cache_dir",
            ],
            "{p:#?}"
        );
        assert!(p[0].message.contains("60 to 86400"), "{p:#?}");
        let p = problems_with(
            "fleet: {rules: {thresholds: [{sid: 5, type: sometimes, track: by_src, count: 1, seconds: 1}]}}\n",
        );
        assert_eq!(paths(&p), ["fleet.rules.thresholds[0].type"], "{p:#?}");
    }

    #[test]
    fn offline_rule_sources_accepted() {
        let p = problems_with(
            "fleet:\n  heartbeat_secs: 5\n  offline_after_secs: 10\n  rules:\n    \
             sources: ['file:///srv/rules/emerging.rules.tar.gz', /srv/rules/local, \
             'https://rules.example.org/suricata.rules']\n    enable_sids: [2019401]\n    \
             disable_sids: [2100498]\n    thresholds: [{sid: 2019401, type: limit, \
             track: by_src, count: 1, seconds: 3600}]\n",
        );
        assert!(p.is_empty(), "{p:#?}");
    }
}
