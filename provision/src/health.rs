//! Fleet health that pages: one Alerting monitor per condition an operator must hear about,
//! read from the sensors' heartbeats, and `fleet health`, which runs the same searches.
//!
//! Each check is a search over the last few minutes of `<prefix>-heartbeat-*` (one, over the
//! lines the sensors shipped unmapped, reads `<prefix>-suricata.unmapped-*`): a composite
//! aggregation per sensor (`observer.hostname`) with a `breach` filter counting the documents
//! that cross the threshold. All of a check's logic is in that search; the trigger only
//! compares two counts ([`Condition`]), so running the search as a plain `_search` and applying
//! [`Condition::holds`] to its buckets gives exactly the sensors the monitor alerts on. That is
//! what `fleet health` does (for a cluster without Alerting, and for the tests, which run it on
//! heartbeat documents built by the agent's own code).

use std::fmt;

use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::fleet::MAX_SENSORS;
use crate::rest::{Rest, RestError};

/// What each check pages on; `ids2-provision opensearch setup` and `fleet health` take them as
/// flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Kernel drops between two heartbeats, in percent of the packets captured meanwhile.
    pub drop_percent: f64,
    /// Days since the last successful rule-set or intel-feed update.
    pub stale_days: u32,
    /// Share of the log tmpfs in use, in percent.
    pub tmpfs_percent: u32,
    /// Minutes the throttle has stayed at level 2 or more.
    pub throttle_minutes: u32,
    /// Share of Vector's disk buffer in use (events waiting for OpenSearch), in percent.
    pub backlog_percent: u32,
    /// Minutes since the sensor last fetched (and applied) the fleet policy.
    pub policy_minutes: u32,
}

/// Default [`Thresholds::drop_percent`]: 1 % of packets lost is already missed detections.
pub const DEFAULT_DROP_PERCENT: f64 = 1.0;
/// Default [`Thresholds::stale_days`]: a week behind ET Open's daily releases.
pub const DEFAULT_STALE_DAYS: u32 = 7;
/// Default [`Thresholds::tmpfs_percent`]: Suricata's EVE output stops when it is full.
pub const DEFAULT_TMPFS_PERCENT: u32 = 80;
/// Default [`Thresholds::throttle_minutes`].
pub const DEFAULT_THROTTLE_MINUTES: u32 = 10;
/// Default [`Thresholds::backlog_percent`]: half the buffer is hours of events at most rates.
pub const DEFAULT_BACKLOG_PERCENT: u32 = 50;
/// Default [`Thresholds::policy_minutes`].
pub const DEFAULT_POLICY_MINUTES: u32 = 15;

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            drop_percent: DEFAULT_DROP_PERCENT,
            stale_days: DEFAULT_STALE_DAYS,
            tmpfs_percent: DEFAULT_TMPFS_PERCENT,
            throttle_minutes: DEFAULT_THROTTLE_MINUTES,
            backlog_percent: DEFAULT_BACKLOG_PERCENT,
            policy_minutes: DEFAULT_POLICY_MINUTES,
        }
    }
}

impl Thresholds {
    /// Every out-of-range value, each naming its flag and what is accepted.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.drop_percent > 0.0 && self.drop_percent <= 100.0) {
            p.push(format!(
                "--drop-alert-percent {}: expected more than 0 and at most 100",
                self.drop_percent
            ));
        }
        let mut range = |flag: &str, v: u32, lo: u32, hi: u32| {
            if !(lo..=hi).contains(&v) {
                p.push(format!("{flag} {v}: expected {lo} to {hi}"));
            }
        };
        range("--stale-alert-days", self.stale_days, 1, 365);
        range("--tmpfs-alert-percent", self.tmpfs_percent, 1, 100);
        range("--throttle-alert-minutes", self.throttle_minutes, 1, 1440);
        range("--backlog-alert-percent", self.backlog_percent, 1, 100);
        range("--policy-alert-minutes", self.policy_minutes, 2, 1440);
        p
    }
}

/// How a sensor's bucket crosses: from its heartbeats in the window and those in breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Any heartbeat in the window is in breach.
    Any,
    /// Every heartbeat in the window is (a state that lasted the whole window).
    Every,
}

impl Condition {
    /// The trigger's Painless condition over `params.breach` and `params.beats`.
    pub fn painless(self) -> &'static str {
        match self {
            Condition::Any => "params.breach > 0",
            Condition::Every => "params.breach > 0 && params.breach == params.beats",
        }
    }

    /// The bucket values the Painless condition reads.
    pub fn buckets_path(self) -> Value {
        match self {
            Condition::Any => json!({"breach": "breach._count"}),
            Condition::Every => json!({"breach": "breach._count", "beats": "_count"}),
        }
    }

    /// The same condition, for a bucket of the plain search.
    pub fn holds(self, beats: u64, breach: u64) -> bool {
        match self {
            Condition::Any => breach > 0,
            Condition::Every => breach > 0 && breach == beats,
        }
    }
}

/// One health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Kernel drops above the percentage.
    Drops,
    /// Rules or intel feeds not updated for days.
    Stale,
    /// The log tmpfs nearly full.
    Tmpfs,
    /// Throttled at level 2 or more for minutes.
    Throttle,
    /// Events waiting in Vector's disk buffer.
    Backlog,
    /// The fleet policy not fetched for minutes.
    Policy,
    /// EVE lines too long to ship, skipped by the sensor.
    Unshipped,
    /// Lines the ECS program could not map, shipped whole as `event.kind: pipeline_error`.
    Unmapped,
}

impl Check {
    /// Every check, in the order they are installed and printed.
    pub const ALL: [Check; 8] = [
        Check::Drops,
        Check::Stale,
        Check::Tmpfs,
        Check::Throttle,
        Check::Backlog,
        Check::Policy,
        Check::Unshipped,
        Check::Unmapped,
    ];

    /// What the alert says, also the monitor's name (with the prefix).
    pub fn title(self) -> &'static str {
        match self {
            Check::Drops => "kernel drops",
            Check::Stale => "stale rules or feeds",
            Check::Tmpfs => "log tmpfs filling",
            Check::Throttle => "throttled",
            Check::Backlog => "shipping backlog",
            Check::Policy => "policy not applied",
            Check::Unshipped => "EVE lines not shipped",
            Check::Unmapped => "lines shipped unmapped",
        }
    }

    /// The monitor's name; setup finds it by this name to stay idempotent.
    pub fn monitor_name(self, prefix: &str) -> String {
        format!("ids2 {} ({prefix})", self.title())
    }

    /// The indices the check searches: the heartbeats, or for [`Check::Unmapped`] the
    /// documents themselves (no heartbeat carries their count; the agent's `unparsed` metric
    /// counts the EVE lines among them, not the heartbeat and anomaly lines shipped unmapped).
    pub fn indices(self, prefix: &str) -> String {
        match self {
            Check::Unmapped => format!("{prefix}-{}-*", ids2_core::ecs::UNMAPPED_DATASET),
            _ => format!("{prefix}-heartbeat-*"),
        }
    }

    /// Seconds of heartbeats the check reads: a few heartbeats, or the whole span a state must
    /// last.
    pub fn window_secs(self, t: &Thresholds) -> u32 {
        match self {
            Check::Throttle => t.throttle_minutes * 60,
            _ => 300,
        }
    }

    /// How the bucket's counts decide.
    pub fn condition(self) -> Condition {
        match self {
            Check::Throttle => Condition::Every,
            _ => Condition::Any,
        }
    }

    /// The threshold as the alert states it.
    pub fn threshold(self, t: &Thresholds) -> String {
        match self {
            Check::Drops => format!("kernel drops ≥ {} % of packets", t.drop_percent),
            Check::Stale => format!("rules or intel feeds not updated for {} days", t.stale_days),
            Check::Tmpfs => format!("log tmpfs ≥ {} % full", t.tmpfs_percent),
            Check::Throttle => format!("throttle level ≥ 2 for {} minutes", t.throttle_minutes),
            Check::Backlog => format!("Vector's disk buffer ≥ {} % full", t.backlog_percent),
            Check::Policy => format!("no policy fetch for {} minutes", t.policy_minutes),
            Check::Unshipped => format!(
                "an EVE line over {} MiB skipped, in the last 5 minutes",
                ids2_core::ecs::EVE_MAX_LINE_BYTES >> 20
            ),
            Check::Unmapped => format!(
                "a line the ECS program could not map shipped to {}, in the last 5 minutes",
                ids2_core::ecs::UNMAPPED_DATASET
            ),
        }
    }

    /// The filter matching a heartbeat in breach, relative to `period_end` (the monitor's
    /// `{{period_end}}`, or epoch milliseconds for a plain search).
    fn breach(self, t: &Thresholds, period_end: &str) -> Value {
        let at_least = |field: &str, v: f64| json!({"range": {field: {"gte": v}}});
        let older = |field: &str, ago: String| json!({"range": {field: {"lt": format!("{period_end}||-{ago}"), "format": "epoch_millis"}}});
        match self {
            Check::Drops => at_least("ids2.capture.drop_ratio", t.drop_percent / 100.0),
            Check::Stale => json!({"bool": {
                "should": [
                    older("ids2.rules.updated", format!("{}d", t.stale_days)),
                    older("ids2.intel.updated", format!("{}d", t.stale_days)),
                ],
                "minimum_should_match": 1
            }}),
            Check::Tmpfs => at_least("ids2.logs.used_ratio", f64::from(t.tmpfs_percent) / 100.0),
            Check::Throttle => at_least("ids2.throttle.level", 2.0),
            Check::Backlog => at_least(
                "ids2.shipping.buffer_ratio",
                f64::from(t.backlog_percent) / 100.0,
            ),
            Check::Policy => older("ids2.policy.updated", format!("{}m", t.policy_minutes)),
            Check::Unshipped => at_least("ids2.eve.oversized_lines", 1.0),
            // Every document there is one such line.
            Check::Unmapped => json!({"match_all": {}}),
        }
    }

    /// The search, per sensor: heartbeats in the window (`doc_count`) and those in breach.
    pub fn query(self, t: &Thresholds, period_end: &str) -> Value {
        json!({
            "size": 0,
            "query": {"range": {"@timestamp": {
                "gte": format!("{period_end}||-{}s", self.window_secs(t)),
                "lte": period_end,
                "format": "epoch_millis"
            }}},
            "aggregations": {"sensors": {
                "composite": {
                    "size": MAX_SENSORS,
                    "sources": [{"sensor": {"terms": {"field": "observer.hostname"}}}]
                },
                "aggs": {"breach": {"filter": self.breach(t, period_end)}}
            }}
        })
    }

    /// The bucket-level monitor, run every minute, notifying `channel` when given.
    pub fn monitor(self, prefix: &str, t: &Thresholds, channel: Option<&str>) -> Value {
        let actions = crate::fleet::webhook_actions(
            channel,
            &format!("ids2 {}", self.title()),
            &self.threshold(t),
        );
        json!({
            "type": "monitor",
            "monitor_type": "bucket_level_monitor",
            "name": self.monitor_name(prefix),
            "enabled": true,
            "schedule": {"period": {"interval": 1, "unit": "MINUTES"}},
            "inputs": [{"search": {
                "indices": [self.indices(prefix)],
                "query": self.query(t, "{{period_end}}")
            }}],
            "triggers": [{"bucket_level_trigger": {
                "name": self.title(),
                "severity": "2",
                "condition": {
                    "buckets_path": self.condition().buckets_path(),
                    "parent_bucket_path": "sensors",
                    "script": {"source": self.condition().painless(), "lang": "painless"}
                },
                "actions": actions
            }}]
        })
    }

    /// The sensors in breach, from the plain search's response.
    pub fn breaching(self, response: &Value) -> Result<Vec<String>, String> {
        // With no index yet (no heartbeat, no unmapped line), OpenSearch answers without any
        // aggregations.
        let Some(aggs) = response.get("aggregations") else {
            return Ok(Vec::new());
        };
        let buckets = aggs["sensors"]["buckets"]
            .as_array()
            .ok_or("aggregations.sensors.buckets is not an array")?;
        let mut out = Vec::new();
        for b in buckets {
            let sensor = b["key"]["sensor"]
                .as_str()
                .ok_or("a bucket without a string key.sensor")?;
            let count = |v: &Value| v.as_u64().ok_or(format!("{sensor}: a count is missing"));
            if self
                .condition()
                .holds(count(&b["doc_count"])?, count(&b["breach"]["doc_count"])?)
            {
                out.push(sensor.to_string());
            }
        }
        Ok(out)
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Which check.
    pub check: Check,
    /// Its threshold, as the alert states it.
    pub threshold: String,
    /// The sensors in breach (empty: all clear).
    pub sensors: Vec<String>,
}

/// A failed `fleet health`.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The request failed.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The server answered with an error status.
    #[error("{url} answered {status}: {body}")]
    Http {
        /// The search URL.
        url: String,
        /// Its status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// The answer was not the expected aggregation.
    #[error("{url}: unexpected answer: {what}")]
    Shape {
        /// The search URL.
        url: String,
        /// What was wrong.
        what: String,
    },
}

/// Runs every check as of `now_millis` (epoch milliseconds) as a plain search.
pub async fn check_all(
    rest: &Rest,
    endpoint: &str,
    prefix: &str,
    t: &Thresholds,
    now_millis: i64,
) -> Result<Vec<Finding>, HealthError> {
    let mut out = Vec::new();
    for check in Check::ALL {
        let url = format!(
            "{}/{}/_search",
            endpoint.trim_end_matches('/'),
            check.indices(prefix)
        );
        let query = check.query(t, &now_millis.to_string());
        let r = rest.send(Method::POST, &url, Some(&query), &[]).await?;
        if !(200..300).contains(&r.status) {
            return Err(HealthError::Http {
                url,
                status: r.status,
                body: r.text.chars().take(500).collect(),
            });
        }
        let sensors = check
            .breaching(&r.json)
            .map_err(|what| HealthError::Shape {
                url: url.clone(),
                what,
            })?;
        out.push(Finding {
            check,
            threshold: check.threshold(t),
            sensors,
        });
    }
    Ok(out)
}

/// The findings, a line each.
pub struct Report<'a>(pub &'a [Finding]);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in self.0 {
            let state = if x.sensors.is_empty() { "ok" } else { "ALERT" };
            write!(f, "{state:<6}{:<22}{}", x.check.title(), x.threshold)?;
            if !x.sensors.is_empty() {
                write!(f, ": {}", x.sensors.join(", "))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_agree_with_their_painless() {
        assert!(Condition::Any.holds(5, 1));
        assert!(!Condition::Any.holds(5, 0));
        assert!(Condition::Every.holds(3, 3));
        assert!(!Condition::Every.holds(3, 2));
        assert!(!Condition::Every.holds(0, 0));
        assert_eq!(Condition::Any.painless(), "params.breach > 0");
    }

    #[test]
    fn thresholds_name_every_bad_flag() {
        let t = Thresholds {
            drop_percent: 0.0,
            tmpfs_percent: 150,
            policy_minutes: 1,
            ..Thresholds::default()
        };
        let p = t.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("--drop-alert-percent 0"), "{p:?}");
        assert!(p[1].contains("--tmpfs-alert-percent 150: expected 1 to 100"));
        assert!(p[2].contains("--policy-alert-minutes 1: expected 2 to 1440"));
        assert!(Thresholds::default().problems().is_empty());
    }

    #[test]
    fn monitors_template_period_end_and_notify() {
        let t = Thresholds::default();
        for check in Check::ALL {
            let m = check.monitor("ids2", &t, Some("ids2-sensor-offline"));
            assert_eq!(m["name"], format!("ids2 {} (ids2)", check.title()));
            let text = m.to_string();
            assert!(!text.contains("||-") || text.contains("{{period_end}}||-"));
            let trig = &m["triggers"][0]["bucket_level_trigger"];
            assert_eq!(trig["condition"]["buckets_path"]["breach"], "breach._count");
            let action = &trig["actions"][0];
            assert_eq!(action["destination_id"], "ids2-sensor-offline");
            assert_eq!(
                action["subject_template"]["source"],
                format!("ids2 {}", check.title())
            );
            let message = action["message_template"]["source"].as_str().unwrap();
            assert!(
                message.starts_with(&format!("{}: {{{{#ctx.newAlerts}}}}", check.threshold(&t))),
                "{message}"
            );
        }
        for check in Check::ALL {
            let indices = &check.monitor("ids2", &t, None)["inputs"][0]["search"]["indices"];
            let want = if check == Check::Unmapped {
                "ids2-suricata.unmapped-*"
            } else {
                "ids2-heartbeat-*"
            };
            assert_eq!(indices, &serde_json::json!([want]), "{check:?}");
        }
        let throttle = Check::Throttle.monitor("ids2", &t, None);
        assert_eq!(
            throttle["inputs"][0]["search"]["query"]["query"]["range"]["@timestamp"]["gte"],
            "{{period_end}}||-600s"
        );
        assert!(throttle["triggers"][0]["bucket_level_trigger"]["actions"]
            .as_array()
            .unwrap()
            .is_empty());
    }
}
