//! What a notification says: one alert or a digest, rendered as generic JSON, Slack-compatible
//! JSON (`{"text": …}`) or an e-mail subject and plain-text body.

use serde_json::{json, Value};

use super::alert::Alert;
use super::limit::Digest;

/// Signatures listed in a digest; the rest are summed up in one line.
const DIGEST_TOP: usize = 10;

/// The sensor a notification comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensor {
    /// `sensor.id`.
    pub id: String,
    /// `sensor.name`.
    pub name: String,
}

/// One notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A single alert.
    Alert(Alert),
    /// The alerts the rate limit held back.
    Digest(Digest),
}

impl Message {
    /// A one-line summary (e-mail subject).
    pub fn subject(&self, sensor: &Sensor) -> String {
        match self {
            Message::Alert(a) => format!(
                "[ids2 {}] {} alert: {}",
                sensor.name,
                a.level().name(),
                a.signature
            ),
            Message::Digest(d) => format!(
                "[ids2 {}] digest: {} alerts held back by the rate limit",
                sensor.name, d.count
            ),
        }
    }

    /// Plain text: the Slack `text` and the e-mail body.
    pub fn text(&self, sensor: &Sensor) -> String {
        match self {
            Message::Alert(a) => {
                let mut t = format!(
                    "{} alert on sensor {} ({}): {} (sid {})\n{} → {} {}\nat {}",
                    a.level().name().to_uppercase(),
                    sensor.name,
                    sensor.id,
                    a.signature,
                    a.signature_id,
                    Alert::endpoint(a.src_ip, a.src_port),
                    Alert::endpoint(a.dest_ip, a.dest_port),
                    a.proto,
                    a.timestamp
                );
                if !a.category.is_empty() {
                    t.push_str(&format!("\ncategory: {}", a.category));
                }
                t
            }
            Message::Digest(d) => {
                let mut t = format!(
                    "Sensor {} ({}): {} alerts between {} and {} were over the notification \
                     rate limit and are summarised here ({} distinct sources).",
                    sensor.name,
                    sensor.id,
                    d.count,
                    d.first_timestamp,
                    d.last_timestamp,
                    d.distinct_sources
                );
                for (sid, sig, n) in d.signatures.iter().take(DIGEST_TOP) {
                    t.push_str(&format!("\n{n} × {sig} (sid {sid})"));
                }
                if d.signatures.len() > DIGEST_TOP {
                    let rest: u64 = d.signatures[DIGEST_TOP..].iter().map(|s| s.2).sum();
                    t.push_str(&format!(
                        "\n{rest} more from {} other signatures",
                        d.signatures.len() - DIGEST_TOP
                    ));
                }
                t
            }
        }
    }

    /// The generic webhook payload.
    pub fn generic_json(&self, sensor: &Sensor) -> Value {
        let sensor_json = json!({"id": sensor.id, "name": sensor.name});
        match self {
            Message::Alert(a) => json!({
                "type": "alert",
                "sensor": sensor_json,
                "timestamp": a.timestamp,
                "severity": a.level().name(),
                "alert": {
                    "signature_id": a.signature_id,
                    "signature": a.signature,
                    "category": a.category,
                    "severity": a.severity,
                },
                "source": {"ip": a.src_ip.to_string(), "port": a.src_port},
                "destination": {"ip": a.dest_ip.to_string(), "port": a.dest_port},
                "protocol": a.proto,
                "flow_id": a.event.get("flow_id"),
            }),
            Message::Digest(d) => json!({
                "type": "digest",
                "sensor": sensor_json,
                "count": d.count,
                "first_timestamp": d.first_timestamp,
                "last_timestamp": d.last_timestamp,
                "distinct_sources": d.distinct_sources,
                "signatures": d.signatures.iter().map(|(sid, sig, n)| json!({
                    "signature_id": sid, "signature": sig, "count": n,
                })).collect::<Vec<_>>(),
            }),
        }
    }

    /// The Slack-compatible webhook payload.
    pub fn slack_json(&self, sensor: &Sensor) -> Value {
        json!({ "text": self.text(sensor) })
    }
}
