//! An anomalous flow as a document shaped like a shipped alert.
//!
//! The document is ECS where ECS has a field (`event.*`, `source.*`, `destination.*`,
//! `network.*`) and `ids2.anomaly.*` for the rest, so dashboards and the response features
//! that filter on `event.kind: alert` see anomalies beside Suricata's alerts, told apart by
//! `event.dataset: ids2.anomaly`. The agent's detector builds it; `ids2-provision` maps the
//! anomaly indices from [`FIELDS`].

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::ecs::EcsField;

/// `event.dataset` of anomaly events (index `<prefix>-ids2.anomaly-YYYY.MM.DD`).
pub const DATASET: &str = "ids2.anomaly";

/// `event.severity` of anomaly events: Suricata's lowest alert severity (3). An anomaly is a
/// weak, unexplained signal; severity-based notification and blocking policies should not
/// treat it like a signature hit unless an operator lowers their bar on purpose.
pub const SEVERITY: u64 = 3;

/// Every field a shipped anomaly document carries (with the daemon's `observer.*`), with its
/// type: ECS types from the ECS reference outside `ids2.*`. `ids2-provision` maps the
/// `<prefix>-ids2.anomaly-*` indices from exactly this list. `event.id` is not listed: Vector
/// moves it to the bulk `_id`.
pub const FIELDS: &[EcsField] = &[
    f("@timestamp", "date"),
    f("message", "match_only_text"),
    f("event.kind", "keyword"),
    f("event.category", "keyword"),
    f("event.type", "keyword"),
    f("event.dataset", "keyword"),
    f("event.module", "keyword"),
    f("event.severity", "long"),
    f("event.risk_score", "float"),
    f("source.ip", "ip"),
    f("source.port", "long"),
    f("source.bytes", "long"),
    f("source.packets", "long"),
    f("destination.ip", "ip"),
    f("destination.port", "long"),
    f("destination.bytes", "long"),
    f("destination.packets", "long"),
    f("network.transport", "keyword"),
    f("network.protocol", "keyword"),
    f("network.community_id", "keyword"),
    f("network.bytes", "long"),
    f("network.packets", "long"),
    f("observer.hostname", "keyword"),
    f("observer.name", "keyword"),
    f("observer.type", "keyword"),
    f("observer.vendor", "keyword"),
    f("observer.product", "keyword"),
    f("observer.version", "keyword"),
    f("ids2.anomaly.score", "float"),
    f("ids2.anomaly.threshold", "float"),
    f("ids2.anomaly.top_features", "keyword"),
    f("ids2.anomaly.flow_id", "long"),
    f("ids2.anomaly.model_trained_flows", "long"),
];

const fn f(name: &'static str, ecs_type: &'static str) -> EcsField {
    EcsField { name, ecs_type }
}

/// One flow that scored at or above the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyEvent {
    /// The score in (0, 1].
    pub score: f64,
    /// The threshold it met.
    pub threshold: f64,
    /// Feature names that most shortened the flow's isolation paths, strongest first.
    pub top_features: Vec<&'static str>,
    /// Baseline flows the model was trained on.
    pub model_trained_flows: u64,
    /// The flow record it was computed from (EVE `flow` event).
    pub flow: Value,
}

impl AnomalyEvent {
    /// The shipped document.
    pub fn document(&self) -> Value {
        let f = &self.flow;
        let flow = f.get("flow").cloned().unwrap_or(Value::Null);
        let n = |key: &str| flow.get(key).and_then(Value::as_u64);
        let timestamp = f.get("timestamp").cloned().unwrap_or(Value::Null);
        let community_id = f.get("community_id").and_then(Value::as_str);
        let flow_id = f.get("flow_id").and_then(Value::as_u64);
        let endpoint = |ip: &str, port: &str, bytes: &str, pkts: &str| {
            let mut m = Map::new();
            insert(&mut m, "ip", f.get(ip).cloned());
            insert(&mut m, "port", f.get(port).cloned());
            insert(&mut m, "bytes", n(bytes).map(Value::from));
            insert(&mut m, "packets", n(pkts).map(Value::from));
            Value::Object(m)
        };
        let mut network = Map::new();
        insert(
            &mut network,
            "transport",
            f.get("proto")
                .and_then(Value::as_str)
                .map(|p| Value::from(p.to_ascii_lowercase())),
        );
        insert(
            &mut network,
            "protocol",
            f.get("app_proto")
                .and_then(Value::as_str)
                .filter(|a| *a != "failed")
                .map(Value::from),
        );
        insert(&mut network, "community_id", community_id.map(Value::from));
        let total = |a: &str, b: &str| Some(n(a)? + n(b)?);
        insert(
            &mut network,
            "bytes",
            total("bytes_toserver", "bytes_toclient").map(Value::from),
        );
        insert(
            &mut network,
            "packets",
            total("pkts_toserver", "pkts_toclient").map(Value::from),
        );
        // Deterministic, so a replayed EVE file yields the same document id (no duplicates).
        let mut id = Sha256::new();
        id.update(DATASET.as_bytes());
        for part in [
            flow_id.map(|v| v.to_string()),
            community_id.map(str::to_string),
            flow.get("start")
                .and_then(Value::as_str)
                .map(str::to_string),
        ] {
            id.update(b"|");
            id.update(part.unwrap_or_default().as_bytes());
        }
        let id = hex::encode(&id.finalize()[..16]);
        let score = (self.score * 1e4).round() / 1e4;
        json!({
            "@timestamp": timestamp,
            "message": format!(
                "anomalous flow: score {score:.3} ≥ {} (most isolating: {})",
                self.threshold,
                self.top_features.join(", ")
            ),
            "event": {
                "kind": "alert",
                "category": ["network"],
                "type": ["info"],
                "dataset": DATASET,
                "module": "ids2",
                "severity": SEVERITY,
                "risk_score": (score * 100.0 * 100.0).round() / 100.0,
                "id": id,
            },
            "source": endpoint("src_ip", "src_port", "bytes_toserver", "pkts_toserver"),
            "destination": endpoint("dest_ip", "dest_port", "bytes_toclient", "pkts_toclient"),
            "network": network,
            "ids2": {"anomaly": {
                "score": score,
                "threshold": self.threshold,
                "top_features": self.top_features,
                "flow_id": flow_id,
                "model_trained_flows": self.model_trained_flows,
            }},
        })
    }
}

fn insert(m: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        m.insert(key.into(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_shaped_like_an_alert() {
        let flow = json!({
            "timestamp": "2024-04-03T13:17:03.662622+0000", "flow_id": 1234, "event_type": "flow",
            "src_ip": "10.0.0.2", "src_port": 40000, "dest_ip": "10.0.0.1", "dest_port": 22,
            "proto": "TCP", "community_id": "1:abc=",
            "flow": {"pkts_toserver": 1, "pkts_toclient": 1, "bytes_toserver": 60,
                     "bytes_toclient": 54, "start": "2024-04-03T13:17:03.000000+0000"}
        });
        let ev = AnomalyEvent {
            score: 0.734_56,
            threshold: 0.6,
            top_features: vec!["rst_tc", "syn_ts"],
            model_trained_flows: 900,
            flow,
        };
        let d = ev.document();
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["event"]["dataset"], DATASET);
        assert_eq!(d["ids2"]["anomaly"]["score"], 0.7346);
        assert_eq!(
            d["ids2"]["anomaly"]["top_features"],
            json!(["rst_tc", "syn_ts"])
        );
        assert_eq!(d["ids2"]["anomaly"]["flow_id"], 1234);
        assert_eq!(
            d["source"],
            json!({"ip": "10.0.0.2", "port": 40000, "bytes": 60, "packets": 1})
        );
        assert_eq!(d["destination"]["port"], 22);
        assert_eq!(d["network"]["transport"], "tcp");
        assert_eq!(d["network"]["community_id"], "1:abc=");
        assert_eq!(d["network"]["bytes"], 114);
        assert_eq!(d["@timestamp"], "2024-04-03T13:17:03.662622+0000");
        assert_eq!(
            d["event"]["id"],
            ev.document()["event"]["id"],
            "id is deterministic"
        );
        assert_eq!(d["event"]["id"].as_str().unwrap().len(), 32);
        assert!(d["network"].get("protocol").is_none());
    }
}
