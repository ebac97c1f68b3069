//! The lifecycle policy and the OpenSearch Dashboards saved objects `setup` installs.
//!
//! Daily indices named by event date replace rollover: a rollover alias writes to whatever
//! index is current, so a replayed event would land in a new index and its deterministic
//! `_id` would no longer collide with the first copy. With the date in the name, a replay hits
//! the same index and the bulk `create` is a no-op. The policy therefore only deletes.

use serde_json::{json, Value};

/// One saved object: type, id, attributes and references.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedObject {
    /// Saved object type (`index-pattern`, `visualization`, `search`, `dashboard`).
    pub kind: &'static str,
    /// Stable id, so re-runs find and compare the same object.
    pub id: String,
    /// `attributes`.
    pub attributes: Value,
    /// `references`.
    pub references: Value,
}

impl SavedObject {
    /// The body Dashboards' saved objects API takes and returns.
    pub fn body(&self) -> Value {
        json!({"attributes": self.attributes, "references": self.references})
    }
}

/// Id of the ISM policy.
pub fn policy_id(prefix: &str) -> String {
    format!("{prefix}-retention")
}

/// The ISM policy: indices stay `hot` and are deleted `retention_days` after creation.
/// `ism_template` attaches it to every new suricata, heartbeat and anomaly index.
pub fn ism_policy(prefix: &str, retention_days: u32) -> Value {
    json!({"policy": {
        "description": format!(
            "ids2: daily {prefix} indices are deleted {retention_days} days after creation"
        ),
        "default_state": "hot",
        "states": [
            {"name": "hot", "actions": [], "transitions": [
                {"state_name": "delete", "conditions": {"min_index_age": format!("{retention_days}d")}}
            ]},
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []}
        ],
        "ism_template": [{
            "index_patterns": [
                format!("{prefix}-suricata.*"),
                format!("{prefix}-heartbeat-*"),
                format!("{prefix}-ids2.anomaly-*")
            ],
            "priority": 100
        }]
    }})
}

fn search_source(query: &str) -> String {
    json!({
        "query": {"query": query, "language": "kuery"},
        "filter": [],
        "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"
    })
    .to_string()
}

fn index_ref(pattern_id: &str) -> Value {
    json!([{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": pattern_id}])
}

fn visualization(
    id: String,
    title: &str,
    vis: Value,
    pattern_id: &str,
    query: &str,
) -> SavedObject {
    let mut vis_state = vis;
    vis_state["title"] = json!(title);
    SavedObject {
        kind: "visualization",
        id,
        attributes: json!({
            "title": title,
            "visState": vis_state.to_string(),
            "uiStateJSON": "{}",
            "description": "",
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)}
        }),
        references: index_ref(pattern_id),
    }
}

fn terms_table(field: &str, label: &str) -> Value {
    json!({
        "type": "table",
        "params": {"perPage": 10, "showPartialRows": false, "showMetricsAtAllLevels": false},
        "aggs": [
            {"id": "1", "enabled": true, "type": "count", "schema": "metric", "params": {}},
            {"id": "2", "enabled": true, "type": "terms", "schema": "bucket", "params": {
                "field": field, "size": 10, "order": "desc", "orderBy": "1",
                "otherBucket": false, "missingBucket": false, "customLabel": label
            }}
        ]
    })
}

/// Index patterns, the alert visualizations, the alert search and the overview dashboard, and
/// the fleet health dashboard.
pub fn saved_objects(prefix: &str) -> Vec<SavedObject> {
    let suricata = format!("{prefix}-suricata");
    let heartbeat = format!("{prefix}-heartbeat");
    let mut objects = vec![
        SavedObject {
            kind: "index-pattern",
            id: suricata.clone(),
            attributes: json!({"title": format!("{prefix}-suricata.*"), "timeFieldName": "@timestamp"}),
            references: json!([]),
        },
        SavedObject {
            kind: "index-pattern",
            id: heartbeat.clone(),
            attributes: json!({"title": format!("{prefix}-heartbeat-*"), "timeFieldName": "@timestamp"}),
            references: json!([]),
        },
        SavedObject {
            kind: "index-pattern",
            id: format!("{prefix}-anomaly"),
            attributes: json!({"title": format!("{prefix}-ids2.anomaly-*"), "timeFieldName": "@timestamp"}),
            references: json!([]),
        },
    ];
    let over_time = json!({
        "type": "histogram",
        "params": {"addLegend": true, "addTooltip": true, "legendPosition": "right"},
        "aggs": [
            {"id": "1", "enabled": true, "type": "count", "schema": "metric", "params": {}},
            {"id": "2", "enabled": true, "type": "date_histogram", "schema": "segment", "params": {
                "field": "@timestamp", "interval": "auto", "min_doc_count": 1,
                "extended_bounds": {}
            }},
            {"id": "3", "enabled": true, "type": "terms", "schema": "group", "params": {
                "field": "event.severity", "size": 5, "order": "desc", "orderBy": "1"
            }}
        ]
    });
    let visualizations = [
        (
            "alerts-over-time",
            "ids2 alerts over time (by severity)",
            over_time,
        ),
        (
            "top-signatures",
            "ids2 top alert signatures",
            terms_table("rule.name", "Signature"),
        ),
        (
            "top-sources",
            "ids2 top alert sources",
            terms_table("source.ip", "Source IP"),
        ),
        (
            "top-destinations",
            "ids2 top alert destinations",
            terms_table("destination.ip", "Destination IP"),
        ),
        (
            "top-sensors",
            "ids2 alerts per sensor",
            terms_table("observer.name", "Sensor"),
        ),
    ];
    let mut panels = Vec::new();
    let mut references = Vec::new();
    let charts = visualizations.len();
    for (i, (slug, title, vis)) in visualizations.into_iter().enumerate() {
        let id = format!("{prefix}-{slug}");
        objects.push(visualization(
            id.clone(),
            title,
            vis,
            &suricata,
            "event.kind:alert",
        ));
        panels.push(panel(i, "visualization", charts));
        references.push(json!({"name": format!("panel_{i}"), "type": "visualization", "id": id}));
    }
    let search_id = format!("{prefix}-alerts");
    objects.push(SavedObject {
        kind: "search",
        id: search_id.clone(),
        attributes: json!({
            "title": "ids2 alerts",
            "description": "",
            "columns": ["observer.name", "rule.name", "event.severity", "source.ip",
                        "destination.ip", "destination.port", "network.protocol"],
            "sort": [["@timestamp", "desc"]],
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": search_source("event.kind:alert")}
        }),
        references: index_ref(&suricata),
    });
    // Alerts whose packets the sensor keeps, with what `pcap get` takes.
    let evidence_id = format!("{prefix}-alerts-with-evidence");
    objects.push(SavedObject {
        kind: "search",
        id: evidence_id.clone(),
        attributes: json!({
            "title": "ids2 alerts with packet evidence",
            "description": "Get an alert's packets on its sensor: ids2-agent pcap get \
                            --community-id <network.community_id> > flow.pcap",
            "columns": ["observer.name", "rule.name", "network.community_id", "source.ip",
                        "destination.ip", "destination.port", "event.id"],
            "sort": [["@timestamp", "desc"]],
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(&format!(
                "event.kind:alert and tags:\"{}\"",
                ids2_core::ecs::EVIDENCE_TAG
            ))}
        }),
        references: index_ref(&suricata),
    });
    let n = references.len();
    panels.push(panel(n, "search", charts));
    references.push(json!({"name": format!("panel_{n}"), "type": "search", "id": search_id}));
    let n = references.len();
    panels.push(panel(n, "search", charts));
    references.push(json!({"name": format!("panel_{n}"), "type": "search", "id": evidence_id}));
    objects.push(SavedObject {
        kind: "dashboard",
        id: format!("{prefix}-alerts-overview"),
        attributes: json!({
            "title": "ids2 alerts overview",
            "description": "Suricata alerts from every ids2 sensor",
            "panelsJSON": Value::Array(panels).to_string(),
            "optionsJSON": json!({"hidePanelTitles": false, "useMargins": true}).to_string(),
            "timeRestore": true,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "refreshInterval": {"pause": false, "value": 60000},
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": json!({
                "query": {"query": "", "language": "kuery"}, "filter": []
            }).to_string()}
        }),
        references: Value::Array(references),
    });
    objects.extend(fleet_objects(prefix, &heartbeat, &suricata));
    objects
}

/// The unmapped lines' columns: what `vector.toml`'s `ecs_unmapped` writes.
const UNMAPPED_COLUMNS: [&str; 3] = ["observer.hostname", "log.file.path", "message"];

/// The latest value of `field` in each sensor's bucket (a top hit by `@timestamp`).
fn latest(id: &str, field: &str, label: &str) -> Value {
    json!({"id": id, "enabled": true, "type": "top_hits", "schema": "metric", "params": {
        "field": field, "aggregate": "concat", "size": 1,
        "sortField": "@timestamp", "sortOrder": "desc", "customLabel": label
    }})
}

/// The fleet health dashboard over the heartbeats: a table with each sensor's latest state
/// (what the health monitors read) and the event rate per sensor over time; below them the
/// lines the sensors shipped unmapped, from the event indices.
fn fleet_objects(prefix: &str, heartbeat: &str, suricata: &str) -> Vec<SavedObject> {
    let table = json!({
        "type": "table",
        "params": {"perPage": 20, "showPartialRows": false, "showMetricsAtAllLevels": false},
        "aggs": [
            {"id": "1", "enabled": true, "type": "max", "schema": "metric", "params": {
                "field": "@timestamp", "customLabel": "Last heartbeat"
            }},
            latest("2", "ids2.connectivity.state", "Connectivity"),
            latest("3", "ids2.eve.events_per_second", "Events/s"),
            latest("4", "ids2.capture.drop_ratio", "Drop ratio"),
            latest("5", "ids2.throttle.level", "Throttle"),
            latest("6", "ids2.rules.updated", "Rules updated"),
            latest("7", "ids2.policy.updated", "Policy fetched"),
            latest("8", "ids2.policy.version", "Policy version"),
            latest("9", "ids2.logs.used_ratio", "Log tmpfs used"),
            latest("10", "ids2.shipping.buffer_ratio", "Vector buffer used"),
            // Summed over the time picked: each heartbeat counts the lines since the last.
            {"id": "12", "enabled": true, "type": "sum", "schema": "metric", "params": {
                "field": "ids2.eve.oversized_lines", "customLabel": "EVE lines not shipped"
            }},
            {"id": "11", "enabled": true, "type": "terms", "schema": "bucket", "params": {
                "field": "observer.hostname", "size": 500, "order": "asc", "orderBy": "_key",
                "otherBucket": false, "missingBucket": false, "customLabel": "Sensor"
            }}
        ]
    });
    let rate = json!({
        "type": "line",
        "params": {"addLegend": true, "addTooltip": true, "legendPosition": "right"},
        "aggs": [
            {"id": "1", "enabled": true, "type": "avg", "schema": "metric", "params": {
                "field": "ids2.eve.events_per_second", "customLabel": "Events/s"
            }},
            {"id": "2", "enabled": true, "type": "date_histogram", "schema": "segment", "params": {
                "field": "@timestamp", "interval": "auto", "min_doc_count": 1,
                "extended_bounds": {}
            }},
            {"id": "3", "enabled": true, "type": "terms", "schema": "group", "params": {
                "field": "observer.hostname", "size": 20, "order": "desc", "orderBy": "1"
            }}
        ]
    });
    let mut objects = Vec::new();
    let mut panels = Vec::new();
    let mut references = Vec::new();
    for (i, (slug, title, vis)) in [
        ("fleet-sensors", "ids2 sensors (latest heartbeat)", table),
        (
            "fleet-event-rate",
            "ids2 events per second per sensor",
            rate,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("{prefix}-{slug}");
        objects.push(visualization(
            id.clone(),
            title,
            vis,
            heartbeat,
            "event.dataset:ids2.heartbeat",
        ));
        panels.push(panel_at(i, (0, i as u32 * 18, 48, 18)));
        references.push(json!({"name": format!("panel_{i}"), "type": "visualization", "id": id}));
    }
    // What the "lines shipped unmapped" monitor pages on, line by line.
    let unmapped_id = format!("{prefix}-fleet-unmapped");
    objects.push(SavedObject {
        kind: "search",
        id: unmapped_id.clone(),
        attributes: json!({
            "title": "ids2 lines shipped unmapped",
            "description": "Lines the ECS program could not map (cut short, not JSON, no event \
                            type, an unreadable timestamp), shipped whole in `message`",
            "columns": UNMAPPED_COLUMNS,
            "sort": [["@timestamp", "desc"]],
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(&format!(
                "event.dataset:\"{}\"",
                ids2_core::ecs::UNMAPPED_DATASET
            ))}
        }),
        references: index_ref(suricata),
    });
    let i = references.len();
    panels.push(panel_at(i, (0, i as u32 * 18, 48, 18)));
    references.push(json!({"name": format!("panel_{i}"), "type": "search", "id": unmapped_id}));
    objects.push(SavedObject {
        kind: "dashboard",
        id: format!("{prefix}-fleet-health"),
        attributes: json!({
            "title": "ids2 fleet health",
            "description": "Each sensor's latest heartbeat: what the health monitors page on",
            "panelsJSON": Value::Array(panels).to_string(),
            "optionsJSON": json!({"hidePanelTitles": false, "useMargins": true}).to_string(),
            "timeRestore": true,
            "timeFrom": "now-1h",
            "timeTo": "now",
            "refreshInterval": {"pause": false, "value": 60000},
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": json!({
                "query": {"query": "", "language": "kuery"}, "filter": []
            }).to_string()}
        }),
        references: Value::Array(references),
    });
    objects
}

/// Layout: the histogram spans the top, tables sit two per row, then the alert lists, one per
/// row; `charts` is the number of visualizations before the lists.
fn panel(i: usize, kind: &str, charts: usize) -> Value {
    let lists_from = 15 + 15 * (charts - 1).div_ceil(2) as u32;
    let place = match (i, kind) {
        (_, "search") => (0, lists_from + 20 * (i - charts) as u32, 48, 20),
        (0, _) => (0, 0, 48, 15),
        (i, _) => (
            ((i - 1) % 2) as u32 * 24,
            15 + ((i - 1) / 2) as u32 * 15,
            24,
            15,
        ),
    };
    panel_at(i, place)
}

/// Dashboard panel `i`, showing the object its `panel_{i}` reference names, at `(x, y, w, h)`.
fn panel_at(i: usize, (x, y, w, h): (u32, u32, u32, u32)) -> Value {
    let index = (i + 1).to_string();
    json!({
        "panelIndex": index,
        "gridData": {"x": x, "y": y, "w": w, "h": h, "i": index},
        "embeddableConfig": {},
        "panelRefName": format!("panel_{i}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_deletes_after_the_retention() {
        let p = ism_policy("ids2", 30);
        assert_eq!(
            p["policy"]["states"][0]["transitions"][0]["conditions"]["min_index_age"],
            "30d"
        );
        assert_eq!(
            p["policy"]["states"][1]["actions"][0],
            json!({"delete": {}})
        );
    }

    #[test]
    fn dashboard_panels_all_resolve_to_references() {
        let objects = saved_objects("ids2");
        let dashboards: Vec<_> = objects.iter().filter(|o| o.kind == "dashboard").collect();
        assert_eq!(dashboards.len(), 2);
        for dash in dashboards {
            let panels: Vec<Value> =
                serde_json::from_str(dash.attributes["panelsJSON"].as_str().unwrap()).unwrap();
            let refs = dash.references.as_array().unwrap();
            assert_eq!(panels.len(), refs.len());
            // No panel covers another.
            let rect = |p: &Value| {
                let g = &p["gridData"];
                let n = |k: &str| g[k].as_u64().unwrap();
                (n("x"), n("y"), n("x") + n("w"), n("y") + n("h"))
            };
            for (i, a) in panels.iter().enumerate() {
                for b in &panels[i + 1..] {
                    let (a, b) = (rect(a), rect(b));
                    assert!(
                        a.2 <= b.0 || b.2 <= a.0 || a.3 <= b.1 || b.3 <= a.1,
                        "{} panels {a:?} and {b:?} overlap",
                        dash.id
                    );
                }
            }
            for p in &panels {
                let name = p["panelRefName"].as_str().unwrap();
                let r = refs.iter().find(|r| r["name"] == name).unwrap();
                assert!(
                    objects
                        .iter()
                        .any(|o| o.id == r["id"] && o.kind == r["type"]),
                    "{r}"
                );
            }
        }
        let ids: std::collections::HashSet<_> = objects.iter().map(|o| (o.kind, &o.id)).collect();
        assert_eq!(ids.len(), objects.len(), "duplicate saved object ids");
    }

    /// The fleet dashboard reads only what heartbeats carry, so it cannot drift from them.
    #[test]
    fn fleet_dashboard_fields_are_heartbeat_fields() {
        let objects = saved_objects("ids2");
        let mut read = 0;
        for o in objects.iter().filter(|o| o.id.starts_with("ids2-fleet-")) {
            if o.kind != "visualization" {
                continue;
            }
            let vis: Value =
                serde_json::from_str(o.attributes["visState"].as_str().unwrap()).unwrap();
            for agg in vis["aggs"].as_array().unwrap() {
                let field = agg["params"]["field"].as_str().unwrap();
                assert!(
                    ids2_core::heartbeat::FIELDS.iter().any(|f| f.name == field),
                    "{field} is no heartbeat field"
                );
                read += 1;
            }
        }
        assert!(read >= 12, "{read} fields");
    }

    /// The unmapped lines' search shows fields the index maps.
    #[test]
    fn unmapped_search_columns_are_mapped_fields() {
        let fields = ids2_core::ecs::emitted_fields();
        for column in UNMAPPED_COLUMNS {
            assert!(
                fields.iter().any(|f| f.name == column),
                "{column} is not in templates/ecs_fields.tsv"
            );
        }
        let objects = saved_objects("ids2");
        let search = objects
            .iter()
            .find(|o| o.id == "ids2-fleet-unmapped")
            .expect("the unmapped lines' search");
        assert_eq!(search.references[0]["id"], "ids2-suricata");
    }
}
