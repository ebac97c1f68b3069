//! `tune`: the analyst's side of the fleet policy. Writes, lists and expires the entries of
//! the `<prefix>-policy` index that every sensor fetches and applies
//! ([`ids2_core::policy`]), and shows which policy version each sensor runs, from its
//! heartbeats.
//!
//! An entry is checked with the same validation the sensors apply before it is written, so a
//! bad one is refused here, with every problem named, and nothing is written. Entries are
//! never deleted: `expire` sets `expires` to now, so the record of who tuned what, and why,
//! stays in the index.

use std::time::Duration;

use ids2_core::policy::{self, Entry, Parsed, PolicyError, Skipped};
use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::fleet::{self, FleetError, SensorStatus};
use crate::rest::{Rest, RestError};

/// Why a tune command failed; nothing was written unless it says so.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The entry would be skipped by every sensor.
    #[error("refusing the entry, nothing written: {0}")]
    Invalid(Skipped),
    /// No entry with that id.
    #[error("no policy entry {id} in {index} (ids2-provision tune list shows the ids)")]
    UnknownId {
        /// The id asked for.
        id: String,
        /// The index searched.
        index: String,
    },
    /// No HTTP answer.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// OpenSearch refused the request.
    #[error("{url} answered HTTP {status}: {body}")]
    Http {
        /// URL.
        url: String,
        /// Status.
        status: u16,
        /// Body, shortened.
        body: String,
    },
    /// The policy index could not be read.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The heartbeats could not be read.
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

impl TuneError {
    /// Whether the operator can fix it in what they passed (exit 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, TuneError::Invalid(_) | TuneError::UnknownId { .. })
    }
}

/// A new entry's id: its action, rule and scope, and the time it was written (entries are
/// never overwritten, so two analysts' entries never collide).
pub fn new_id(entry: &Entry, now: OffsetDateTime) -> String {
    let scope: String = entry
        .scope
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "{}-{}-{scope}-{}",
        entry.action,
        entry.sid,
        now.unix_timestamp_nanos() / 1_000_000
    )
}

fn check(url: String, r: &crate::rest::Response) -> Result<(), TuneError> {
    if (200..300).contains(&r.status) {
        Ok(())
    } else {
        Err(TuneError::Http {
            url,
            status: r.status,
            body: r.text.chars().take(500).collect(),
        })
    }
}

/// Validates `entry` as the sensors will, then writes it; returns its id.
pub async fn write(
    rest: &Rest,
    endpoint: &str,
    prefix: &str,
    entry: &Entry,
    now: OffsetDateTime,
) -> Result<String, TuneError> {
    let id = new_id(entry, now);
    entry.validate(&id).map_err(TuneError::Invalid)?;
    let url = format!(
        "{}/{}/_doc/{id}?refresh=true",
        endpoint.trim_end_matches('/'),
        policy::index(prefix)
    );
    let body = serde_json::to_value(entry).expect("entries serialise");
    let r = rest.send(Method::PUT, &url, Some(&body), &[]).await?;
    check(url, &r)?;
    Ok(id)
}

/// Every entry in the index, valid or not (an index not created yet is an empty policy).
pub async fn entries(
    rest: &Rest,
    endpoint: &str,
    prefix: &str,
) -> Result<(Parsed, Value), TuneError> {
    let url = format!(
        "{}/{}/_search",
        endpoint.trim_end_matches('/'),
        policy::index(prefix)
    );
    let query = json!({"size": policy::MAX_ENTRIES, "track_total_hits": true});
    let r = rest.send(Method::POST, &url, Some(&query), &[]).await?;
    if r.status == 404 {
        return Ok((Parsed::default(), json!({"hits": {"hits": []}})));
    }
    check(url, &r)?;
    Ok((policy::parse_search(&r.json)?, r.json))
}

/// Sets an entry's `expires` to `now`: sensors drop it at their next fetch.
pub async fn expire(
    rest: &Rest,
    endpoint: &str,
    prefix: &str,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), TuneError> {
    let index = policy::index(prefix);
    let base = endpoint.trim_end_matches('/');
    let get = format!("{base}/{index}/_doc/{id}");
    let r = rest.send(Method::GET, &get, None, &[]).await?;
    if r.status == 404 || r.json.get("found") == Some(&Value::Bool(false)) {
        return Err(TuneError::UnknownId {
            id: id.to_string(),
            index,
        });
    }
    check(get, &r)?;
    let mut source = r.json.get("_source").cloned().unwrap_or(Value::Null);
    source["expires"] = json!(now.format(&Rfc3339).expect("UTC times format"));
    let url = format!("{base}/{index}/_doc/{id}?refresh=true");
    let r = rest.send(Method::PUT, &url, Some(&source), &[]).await?;
    check(url, &r)
}

/// `tune list`: the entries (valid, expired and skipped) and each sensor's applied version.
pub async fn list(
    rest: &Rest,
    endpoint: &str,
    prefix: &str,
    offline_after: Duration,
    now: OffsetDateTime,
) -> Result<String, TuneError> {
    let (parsed, _) = entries(rest, endpoint, prefix).await?;
    let sensors = fleet::status(rest, endpoint, prefix, offline_after).await?;
    Ok(table(&parsed, &sensors, now))
}

/// The list as text: one line per entry, then one per sensor.
pub fn table(parsed: &Parsed, sensors: &[SensorStatus], now: OffsetDateTime) -> String {
    let mut out = format!(
        "{:<44} {:<9} {:<18} {:>10} {:<8} {}\n",
        "ENTRY", "ACTION", "SCOPE", "SID", "STATE", "REASON (AUTHOR)"
    );
    for e in &parsed.entries {
        let state = match e.expires {
            Some(t) if t <= now => "expired",
            Some(_) => "until",
            None => "active",
        };
        let state = if state == "until" {
            format!(
                "until {}",
                e.expires
                    .and_then(|t| t.format(&Rfc3339).ok())
                    .unwrap_or_default()
            )
        } else {
            state.to_string()
        };
        out.push_str(&format!(
            "{:<44} {:<9} {:<18} {:>10} {:<8} {} ({})\n",
            e.id,
            e.action.to_string(),
            e.scope.to_string(),
            e.sid,
            state,
            e.reason,
            e.author
        ));
    }
    for s in &parsed.skipped {
        out.push_str(&format!("INVALID (every sensor skips it): {s}\n"));
    }
    if parsed.entries.is_empty() && parsed.skipped.is_empty() {
        out.push_str("(no policy entries)\n");
    }
    out.push('\n');
    if sensors.is_empty() {
        out.push_str("no sensor has sent a heartbeat yet\n");
    }
    for s in sensors {
        out.push_str(&format!(
            "sensor {:<24} {:<8} policy {} (fetched {})\n",
            s.id,
            s.state.to_string(),
            s.policy_version.as_deref().unwrap_or("none"),
            s.policy_updated.as_deref().unwrap_or("never"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ids2_core::policy::Action;
    use time::macros::datetime;

    fn entry(scope: &str) -> Entry {
        Entry {
            action: Action::Disable,
            scope: scope.to_string(),
            sid: 9_200_010,
            gid: 1,
            track: None,
            ip: None,
            kind: None,
            count: None,
            seconds: None,
            expires: None,
            reason: "scanner of the IT team".to_string(),
            author: "ana".to_string(),
            created: "2026-12-03T00:00:00Z".to_string(),
        }
    }

    #[test]
    fn ids_name_action_rule_and_scope() {
        let id = new_id(&entry("group:lab"), datetime!(2026-12-03 10:00 UTC));
        assert_eq!(id, "disable-9200010-group-lab-1796292000000");
    }
}
