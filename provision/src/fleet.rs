//! The fleet as its heartbeats show it: `fleet status` and the "sensor offline" monitor.
//!
//! `fleet status` asks the heartbeat indices for each sensor's latest heartbeat (a `terms`
//! aggregation on `observer.hostname` with a `top_hits` of one, newest first) and classifies
//! it by age: online while the last heartbeat is at most two of the sensor's heartbeat
//! intervals old, late after that, offline once it is older than `offline_after` (60 s by
//! default). The monitor is an OpenSearch Alerting bucket-level monitor over the same indices
//! that raises "sensor offline" for each sensor seen in the last day that sent no heartbeat in
//! the last `offline_after` seconds, optionally notifying a webhook channel.

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::rest::{Rest, RestError};

/// Most sensors one status query returns.
pub const MAX_SENSORS: u32 = 1000;
/// Heartbeat period assumed for a heartbeat that does not state its own.
const DEFAULT_INTERVAL_SECS: u64 = 15;
/// Name of the offline monitor (setup finds it by this name to stay idempotent).
pub const MONITOR_NAME: &str = "ids2 sensor offline";

/// A sensor's state from the age of its last heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The last heartbeat is at most two heartbeat intervals old.
    Online,
    /// Heartbeats are overdue but the offline threshold is not reached.
    Late,
    /// No heartbeat for longer than the offline threshold.
    Offline,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Online => "online",
            State::Late => "late",
            State::Offline => "offline",
        })
    }
}

/// Classifies a heartbeat `age` for a sensor beating every `interval`.
pub fn classify(age: Duration, interval: Duration, offline_after: Duration) -> State {
    if age > offline_after {
        State::Offline
    } else if age > interval * 2 {
        State::Late
    } else {
        State::Online
    }
}

/// One sensor's line in the fleet view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorStatus {
    /// `observer.hostname`: the sensor id.
    pub id: String,
    /// `observer.name`.
    pub name: Option<String>,
    /// The last heartbeat's `@timestamp`.
    pub last_seen: String,
    /// Seconds since then.
    pub age_secs: u64,
    /// Online, late or offline.
    pub state: State,
    /// Throttle level 0–3.
    pub throttle_level: Option<u64>,
    /// Suricata's kernel drops since it started.
    pub kernel_drops: Option<u64>,
    /// The rule set's version.
    pub rules_version: Option<String>,
    /// Seconds since the rule set was last updated successfully.
    pub rules_age_secs: Option<u64>,
    /// The agent's version.
    pub version: Option<String>,
    /// The fleet policy version the sensor applied (`-unloaded`: Suricata has not reloaded it).
    pub policy_version: Option<String>,
    /// When the sensor last fetched the policy successfully.
    pub policy_updated: Option<String>,
    /// Intel feeds without a successful update within twice their interval; `None` when the
    /// sensor has no feed configured.
    pub intel_stale: Option<Vec<String>>,
    /// `name:version` of each intel feed.
    pub intel_versions: Vec<String>,
}

/// Why the fleet view could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// No HTTP answer.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The server refused the query.
    #[error("{url} returned HTTP {status}: {body}")]
    Http {
        /// URL.
        url: String,
        /// Status.
        status: u16,
        /// Body, shortened.
        body: String,
    },
    /// The answer is not a search response we can read.
    #[error("{url} answered with an unexpected shape: {what}")]
    Shape {
        /// URL.
        url: String,
        /// What was wrong.
        what: String,
    },
}

/// The search body: the newest heartbeat of each sensor.
pub fn status_query() -> Value {
    json!({
        "size": 0,
        "aggs": {"sensors": {
            "terms": {"field": "observer.hostname", "size": MAX_SENSORS},
            "aggs": {"latest": {"top_hits": {
                "size": 1,
                "sort": [{"@timestamp": {"order": "desc"}}]
            }}}
        }}
    })
}

/// Reads each sensor's status from a search response, as of `now`.
pub fn parse_status(
    response: &Value,
    now: OffsetDateTime,
    offline_after: Duration,
) -> Result<Vec<SensorStatus>, String> {
    // With no heartbeat index yet, OpenSearch answers without any aggregations.
    let Some(aggs) = response.get("aggregations") else {
        return Ok(Vec::new());
    };
    let buckets = aggs["sensors"]["buckets"]
        .as_array()
        .ok_or("aggregations.sensors.buckets is not an array")?;
    let mut out = Vec::new();
    for b in buckets {
        let id = b["key"].as_str().ok_or("a bucket without a string key")?;
        let src = &b["latest"]["hits"]["hits"][0]["_source"];
        let last_seen = src["@timestamp"]
            .as_str()
            .ok_or_else(|| format!("the latest heartbeat of {id} has no @timestamp"))?;
        let seen = OffsetDateTime::parse(last_seen, &Rfc3339)
            .map_err(|e| format!("@timestamp {last_seen:?} of {id}: {e}"))?;
        let age = secs_since(now, seen);
        let interval = src["ids2"]["heartbeat"]["interval_secs"]
            .as_u64()
            .unwrap_or(DEFAULT_INTERVAL_SECS);
        let rules = &src["ids2"]["rules"];
        let rules_age_secs = rules["updated"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .map(|t| secs_since(now, t).as_secs());
        out.push(SensorStatus {
            id: id.to_string(),
            name: src["observer"]["name"].as_str().map(str::to_string),
            last_seen: last_seen.to_string(),
            age_secs: age.as_secs(),
            state: classify(age, Duration::from_secs(interval), offline_after),
            throttle_level: src["ids2"]["throttle"]["level"].as_u64(),
            kernel_drops: src["ids2"]["capture"]["kernel_drops"].as_u64(),
            rules_version: rules["version"].as_str().map(str::to_string),
            rules_age_secs,
            version: src["observer"]["version"].as_str().map(str::to_string),
            policy_version: src["ids2"]["policy"]["version"]
                .as_str()
                .map(str::to_string),
            policy_updated: src["ids2"]["policy"]["updated"]
                .as_str()
                .map(str::to_string),
            // A heartbeat that reports feeds always lists `stale`, empty when none is.
            intel_stale: strings(&src["ids2"]["intel"]["stale"]),
            intel_versions: strings(&src["ids2"]["intel"]["versions"]).unwrap_or_default(),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// A keyword field as a list: OpenSearch hands back one value or an array as it was indexed.
fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        _ => None,
    }
}

fn secs_since(now: OffsetDateTime, then: OffsetDateTime) -> Duration {
    Duration::try_from(now - then).unwrap_or(Duration::ZERO)
}

/// Queries `<endpoint>/<prefix>-heartbeat-*/_search` and classifies every sensor found.
pub async fn status(
    rest: &Rest,
    endpoint: &str,
    prefix: &str,
    offline_after: Duration,
) -> Result<Vec<SensorStatus>, FleetError> {
    let url = format!(
        "{}/{prefix}-heartbeat-*/_search",
        endpoint.trim_end_matches('/')
    );
    let r = rest
        .send(Method::POST, &url, Some(&status_query()), &[])
        .await?;
    if !(200..300).contains(&r.status) {
        return Err(FleetError::Http {
            url,
            status: r.status,
            body: r.text.chars().take(500).collect(),
        });
    }
    parse_status(&r.json, OffsetDateTime::now_utc(), offline_after)
        .map_err(|what| FleetError::Shape { url, what })
}

/// The fleet as a table, one sensor per line.
pub fn table(sensors: &[SensorStatus]) -> String {
    if sensors.is_empty() {
        return "no sensor has sent a heartbeat yet".into();
    }
    let age = |s: Option<u64>| s.map_or("-".to_string(), human);
    let mut out = format!(
        "{:<24} {:<8} {:>10} {:>8} {:>12} {:>10}  {:<16}  {}\n",
        "SENSOR", "STATE", "LAST SEEN", "THROTTLE", "KERNEL DROPS", "RULES AGE", "RULES", "INTEL"
    );
    for s in sensors {
        let intel = match &s.intel_stale {
            None => "-".to_string(),
            Some(stale) if stale.is_empty() => "ok".to_string(),
            Some(stale) => format!("stale: {}", stale.join(",")),
        };
        out.push_str(&format!(
            "{:<24} {:<8} {:>10} {:>8} {:>12} {:>10}  {:<16}  {}\n",
            s.id,
            s.state,
            format!("{} ago", human(s.age_secs)),
            s.throttle_level.map_or("-".into(), |l| l.to_string()),
            s.kernel_drops.map_or("-".into(), |d| d.to_string()),
            age(s.rules_age_secs),
            s.rules_version.as_deref().unwrap_or("-"),
            intel,
        ));
    }
    let stale = sensors
        .iter()
        .filter(|s| s.intel_stale.as_ref().is_some_and(|v| !v.is_empty()))
        .count();
    let count = |st: State| sensors.iter().filter(|s| s.state == st).count();
    out.push_str(&format!(
        "{} sensors: {} online, {} late, {} offline",
        sensors.len(),
        count(State::Online),
        count(State::Late),
        count(State::Offline)
    ));
    if stale > 0 {
        out.push_str(&format!("; {stale} with stale intel feeds"));
    }
    out
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The id of the webhook channel the monitor notifies.
pub fn channel_id(prefix: &str) -> String {
    format!("{prefix}-sensor-offline")
}

/// The Notifications channel (a webhook) for offline alerts.
pub fn webhook_channel(prefix: &str, url: &str) -> Value {
    json!({
        "name": format!("{prefix} sensor offline"),
        "description": "ids2: sensors that stopped sending heartbeats (installed by ids2-provision)",
        "config_type": "webhook",
        "is_enabled": true,
        "webhook": {"url": url}
    })
}

/// A bucket-level monitor's actions: none without a channel, else one that notifies it of each
/// new alert, its message `lead` followed by the sensors (bucket keys), the monitor and the
/// time.
pub fn webhook_actions(channel: Option<&str>, subject: &str, lead: &str) -> Vec<Value> {
    channel
        .map(|id| {
            json!({
                "name": "notify the webhook",
                "destination_id": id,
                "subject_template": {"source": subject, "lang": "mustache"},
                "message_template": {
                    "source": format!(
                        "{lead}: {{{{#ctx.newAlerts}}}}{{{{bucket_keys}}}} {{{{/ctx.newAlerts}}}}(monitor {{{{ctx.monitor.name}}}}, {{{{ctx.periodEnd}}}})"
                    ),
                    "lang": "mustache"
                },
                "throttle_enabled": false,
                "action_execution_policy": {"action_execution_scope": {"per_alert": {
                    "actionable_alerts": ["NEW"]
                }}}
            })
        })
        .into_iter()
        .collect()
}

/// The bucket-level monitor that raises "sensor offline", run every minute: each sensor with a
/// heartbeat in the last day but none in the last `offline_after_secs` is one alert.
pub fn offline_monitor(prefix: &str, offline_after_secs: u32, channel: Option<&str>) -> Value {
    let actions = webhook_actions(
        channel,
        "ids2 sensor offline",
        &format!("No heartbeat for {offline_after_secs} s from"),
    );
    json!({
        "type": "monitor",
        "monitor_type": "bucket_level_monitor",
        "name": format!("{MONITOR_NAME} ({prefix})"),
        "enabled": true,
        "schedule": {"period": {"interval": 1, "unit": "MINUTES"}},
        "inputs": [{"search": {
            "indices": [format!("{prefix}-heartbeat-*")],
            "query": {
                "size": 0,
                "query": {"range": {"@timestamp": {
                    "gte": "{{period_end}}||-1d",
                    "lte": "{{period_end}}",
                    "format": "epoch_millis"
                }}},
                "aggregations": {"sensors": {
                    "composite": {
                        "size": MAX_SENSORS,
                        "sources": [{"sensor": {"terms": {"field": "observer.hostname"}}}]
                    },
                    "aggs": {
                        "recent": {"filter": {"range": {"@timestamp": {
                            "gte": format!("{{{{period_end}}}}||-{offline_after_secs}s"),
                            "format": "epoch_millis"
                        }}}},
                        "last_seen": {"max": {"field": "@timestamp"}}
                    }
                }}
            }
        }}],
        "triggers": [{"bucket_level_trigger": {
            "name": "sensor offline",
            "severity": "1",
            "condition": {
                "buckets_path": {"recent": "recent._count"},
                "parent_bucket_path": "sensors",
                "script": {"source": "params.recent == 0", "lang": "painless"}
            },
            "actions": actions
        }}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_by_age() {
        let (i, off) = (Duration::from_secs(15), Duration::from_secs(60));
        assert_eq!(classify(Duration::from_secs(0), i, off), State::Online);
        assert_eq!(classify(Duration::from_secs(30), i, off), State::Online);
        assert_eq!(classify(Duration::from_secs(31), i, off), State::Late);
        assert_eq!(classify(Duration::from_secs(60), i, off), State::Late);
        assert_eq!(classify(Duration::from_secs(61), i, off), State::Offline);
    }

    #[test]
    fn missing_aggregations_mean_no_sensors() {
        let r = json!({"hits": {"total": {"value": 0}, "hits": []}});
        assert!(
            parse_status(&r, OffsetDateTime::now_utc(), Duration::from_secs(60))
                .unwrap()
                .is_empty()
        );
        let bad = json!({"aggregations": {"sensors": {}}});
        assert!(parse_status(&bad, OffsetDateTime::now_utc(), Duration::from_secs(60)).is_err());
    }

    #[test]
    fn monitor_shape() {
        let m = offline_monitor("ids2", 60, Some("ids2-sensor-offline"));
        assert_eq!(m["monitor_type"], "bucket_level_monitor");
        assert_eq!(m["schedule"]["period"]["unit"], "MINUTES");
        let q = &m["inputs"][0]["search"]["query"];
        assert_eq!(m["inputs"][0]["search"]["indices"][0], "ids2-heartbeat-*");
        assert_eq!(
            q["aggregations"]["sensors"]["composite"]["sources"][0]["sensor"]["terms"]["field"],
            "observer.hostname"
        );
        assert_eq!(
            q["aggregations"]["sensors"]["aggs"]["recent"]["filter"]["range"]["@timestamp"]["gte"],
            "{{period_end}}||-60s"
        );
        let t = &m["triggers"][0]["bucket_level_trigger"];
        assert_eq!(t["condition"]["parent_bucket_path"], "sensors");
        assert_eq!(t["condition"]["buckets_path"]["recent"], "recent._count");
        assert_eq!(t["actions"][0]["destination_id"], "ids2-sensor-offline");
        let msg = t["actions"][0]["message_template"]["source"]
            .as_str()
            .unwrap();
        assert!(msg.contains("{{#ctx.newAlerts}}{{bucket_keys}}"), "{msg}");
        let silent = offline_monitor("ids2", 90, None);
        assert!(silent["triggers"][0]["bucket_level_trigger"]["actions"]
            .as_array()
            .unwrap()
            .is_empty());
    }
}
