//! The current block decisions, each with its expiry, and the two feed formats.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The blocked address.
    pub address: IpAddr,
    /// Why, in words.
    pub reason: String,
    /// The EVE alert that caused it.
    pub alert: Arc<Value>,
    /// Wall-clock time of the decision.
    pub decided_at: OffsetDateTime,
    /// Wall-clock expiry.
    pub expires_at: OffsetDateTime,
    /// Monotonic expiry (what actually ends it).
    pub expires: Instant,
}

/// Decisions by address.
#[derive(Debug, Default)]
pub struct Table {
    entries: BTreeMap<IpAddr, Decision>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl Table {
    /// True when `ip` is blocked at `now`.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.entries.get(&ip).is_some_and(|d| d.expires > now)
    }

    /// Records a decision lasting `ttl` from `now`.
    pub fn insert(
        &mut self,
        address: IpAddr,
        reason: String,
        alert: Arc<Value>,
        ttl: Duration,
        now: Instant,
    ) -> &Decision {
        let wall = OffsetDateTime::now_utc();
        let d = Decision {
            address,
            reason,
            alert,
            decided_at: wall,
            expires_at: wall + ttl,
            expires: now + ttl,
        };
        self.entries.insert(address, d);
        &self.entries[&address]
    }

    /// Removes and returns the decisions that ended at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Decision> {
        let gone: Vec<IpAddr> = self
            .entries
            .values()
            .filter(|d| d.expires <= now)
            .map(|d| d.address)
            .collect();
        gone.iter()
            .filter_map(|ip| self.entries.remove(ip))
            .collect()
    }

    /// Removes one decision.
    pub fn remove(&mut self, ip: IpAddr) -> Option<Decision> {
        self.entries.remove(&ip)
    }

    /// Addresses with a decision (expired ones included until the next [`Table::expire`]).
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.entries.keys().copied().collect()
    }

    /// Live decisions.
    pub fn len(&self, now: Instant) -> usize {
        self.entries.values().filter(|d| d.expires > now).count()
    }

    /// True when nothing is blocked at `now`.
    pub fn is_empty(&self, now: Instant) -> bool {
        self.len(now) == 0
    }

    /// `/blocklist.txt`: one address per line, the format pfSense and OPNsense URL tables read.
    pub fn text(&self, now: Instant) -> String {
        let mut out = String::new();
        for d in self.entries.values().filter(|d| d.expires > now) {
            out.push_str(&d.address.to_string());
            out.push('\n');
        }
        out
    }

    /// `/blocklist.json`: every live decision with its reason, alert and expiry.
    pub fn json(&self, now: Instant) -> Value {
        let decisions: Vec<Value> = self
            .entries
            .values()
            .filter(|d| d.expires > now)
            .map(|d| {
                json!({
                    "address": d.address.to_string(),
                    "reason": d.reason,
                    "decided_at": rfc3339(d.decided_at),
                    "expires_at": rfc3339(d.expires_at),
                    "expires_in_secs": d.expires.saturating_duration_since(now).as_secs(),
                    "alert": *d.alert,
                })
            })
            .collect();
        json!({
            "generated_at": rfc3339(OffsetDateTime::now_utc()),
            "count": decisions.len(),
            "decisions": decisions,
        })
    }
}
