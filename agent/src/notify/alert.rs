//! The view of a Suricata EVE `alert` event that notifications and blocking work from.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use crate::config::Severity;

/// The fields of an EVE alert that responses use, plus the whole event for the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// EVE `timestamp` as Suricata wrote it.
    pub timestamp: String,
    /// `src_ip`.
    pub src_ip: IpAddr,
    /// `src_port`, absent for ICMP and the like.
    pub src_port: Option<u16>,
    /// `dest_ip`.
    pub dest_ip: IpAddr,
    /// `dest_port`.
    pub dest_port: Option<u16>,
    /// `proto` (e.g. `TCP`).
    pub proto: String,
    /// `alert.signature_id`.
    pub signature_id: u64,
    /// `alert.signature`.
    pub signature: String,
    /// `alert.category` (empty when the rule has no classtype).
    pub category: String,
    /// `alert.severity`: 1 is the most severe; 3 when Suricata had none.
    pub severity: u64,
    /// `alert.source.ip`: the attacker, when the rule names one with Suricata's `target` keyword.
    pub attacker: Option<IpAddr>,
    /// The whole EVE event.
    pub event: Arc<Value>,
}

impl Alert {
    /// Reads an EVE event; `None` unless it is an alert with parseable addresses.
    pub fn from_eve(event: &Value) -> Option<Self> {
        if event.get("event_type")?.as_str()? != "alert" {
            return None;
        }
        let alert = event.get("alert")?;
        let ip = |v: Option<&Value>| v?.as_str()?.parse::<IpAddr>().ok();
        let port = |key: &str| {
            event
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
        Some(Self {
            timestamp: text(event.get("timestamp")),
            src_ip: ip(event.get("src_ip"))?,
            src_port: port("src_port"),
            dest_ip: ip(event.get("dest_ip"))?,
            dest_port: port("dest_port"),
            proto: text(event.get("proto")),
            signature_id: alert
                .get("signature_id")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            signature: text(alert.get("signature")),
            category: text(alert.get("category")),
            severity: alert.get("severity").and_then(Value::as_u64).unwrap_or(3),
            attacker: ip(alert.get("source").and_then(|s| s.get("ip"))),
            event: Arc::new(event.clone()),
        })
    }

    /// Reads one EVE line; only lines that look like alerts are parsed in full, so the EVE
    /// reader can offer every line cheaply.
    pub fn from_line(line: &[u8]) -> Option<Self> {
        const MARK: &[u8] = br#""event_type":"alert""#;
        if !line.windows(MARK.len()).any(|w| w == MARK) {
            return None;
        }
        Self::from_eve(&serde_json::from_slice(line).ok()?)
    }

    /// The alert's level on the config's scale.
    pub fn level(&self) -> Severity {
        Severity::of_suricata(self.severity)
    }

    /// `ip:port`, or the bare address when there is no port.
    pub fn endpoint(ip: IpAddr, port: Option<u16>) -> String {
        match (ip, port) {
            (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
            (ip, Some(p)) => format!("{ip}:{p}"),
            (ip, None) => ip.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"timestamp":"2026-03-01T10:00:00.000000+0000","flow_id":7,"event_type":"alert","src_ip":"203.0.113.9","src_port":4444,"dest_ip":"192.168.1.5","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2001,"rev":1,"signature":"ET TEST","category":"Attempted Administrator Privilege Gain","severity":1,"source":{"ip":"203.0.113.9","port":4444}}}"#;

    #[test]
    fn reads_alert_fields() {
        let a = Alert::from_line(LINE.as_bytes()).unwrap();
        assert_eq!(a.src_ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(a.dest_port, Some(80));
        assert_eq!(a.signature_id, 2001);
        assert_eq!(a.level(), Severity::High);
        assert_eq!(a.attacker, Some(a.src_ip));
        assert_eq!(a.event["flow_id"], 7);
    }

    #[test]
    fn other_events_and_broken_alerts_are_not_alerts() {
        assert!(Alert::from_line(br#"{"event_type":"dns","src_ip":"1.2.3.4"}"#).is_none());
        assert!(Alert::from_line(
            br#"{"event_type":"alert","src_ip":"x","dest_ip":"1.1.1.1","alert":{}}"#
        )
        .is_none());
        assert!(Alert::from_line(b"not json \"event_type\":\"alert\"").is_none());
    }

    #[test]
    fn missing_severity_reads_as_suricata_default() {
        let a = Alert::from_line(
            br#"{"event_type":"alert","src_ip":"::1","dest_ip":"2001:db8::1","dest_port":22,"alert":{"signature_id":1}}"#,
        )
        .unwrap();
        assert_eq!(a.level(), Severity::Low);
        assert_eq!(Alert::endpoint(a.dest_ip, a.dest_port), "[2001:db8::1]:22");
    }
}
