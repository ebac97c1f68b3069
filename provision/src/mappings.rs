//! Index templates built from the ECS fields the sensor's mapping emits.
//!
//! The field list comes from `ids2_core::ecs::emitted_fields()` at run time, so the
//! templates follow the mapping as it grows. Dotted names become nested `properties`. Indices
//! are daily and named by the event's own date (docs/fleet.md), so the templates match
//! `<prefix>-suricata.*`, `<prefix>-heartbeat-*` and `<prefix>-ids2.anomaly-*`.

use ids2_core::ecs::EcsField;
use serde_json::{json, Map, Value};

/// Priority of our templates; above the 0–100 range stock and ad-hoc templates use.
pub const TEMPLATE_PRIORITY: u32 = 200;

/// Longest keyword value indexed; longer values stay in `_source` but are not searchable.
const IGNORE_ABOVE: u32 = 1024;

/// Why a mapping could not be built from the field list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// An ECS type with no OpenSearch equivalent known here.
    #[error(
        "field `{field}` has ECS type `{ecs_type}`, which ids2-provision cannot map to an \
         OpenSearch type: add it to provision/src/mappings.rs (opensearch_type) or fix \
         templates/ecs_fields.tsv"
    )]
    UnknownType {
        /// Dotted field name.
        field: String,
        /// Its ECS type.
        ecs_type: String,
    },
    /// A name is used both as a value and as a parent of other fields.
    #[error(
        "field `{field}` is both a {ecs_type} value and the parent of `{child}`: an index mapping \
         cannot hold both; fix templates/ecs_fields.tsv"
    )]
    Clash {
        /// The parent name.
        field: String,
        /// Its ECS type.
        ecs_type: String,
        /// A child name.
        child: String,
    },
}

/// The OpenSearch mapping for one ECS type. OpenSearch lacks some Elasticsearch-only types;
/// each falls back to the closest type that indexes the same values.
pub fn opensearch_type(field: &str, ecs_type: &str) -> Result<Value, MappingError> {
    Ok(match ecs_type {
        "keyword" | "constant_keyword" | "wildcard" => {
            json!({"type": "keyword", "ignore_above": IGNORE_ABOVE})
        }
        "text" | "match_only_text" => json!({"type": "text"}),
        "scaled_float" => json!({"type": "scaled_float", "scaling_factor": 1000}),
        "flattened" => json!({"type": "flat_object"}),
        "long" | "integer" | "short" | "byte" | "double" | "float" | "half_float"
        | "unsigned_long" | "boolean" | "date" | "date_nanos" | "ip" | "binary" | "geo_point"
        | "object" | "nested" => json!({"type": ecs_type}),
        other => {
            return Err(MappingError::UnknownType {
                field: field.to_string(),
                ecs_type: other.to_string(),
            })
        }
    })
}

/// Nested `properties` for the given fields.
pub fn properties(fields: &[EcsField]) -> Result<Map<String, Value>, MappingError> {
    let mut root = Map::new();
    // Parents first, so `a` (object) is seen before `a.b`.
    let mut sorted: Vec<&EcsField> = fields.iter().collect();
    sorted.sort_by_key(|f| f.name.matches('.').count());
    for f in sorted {
        insert(&mut root, f)?;
    }
    Ok(root)
}

fn insert(root: &mut Map<String, Value>, f: &EcsField) -> Result<(), MappingError> {
    let parts: Vec<&str> = f.name.split('.').collect();
    let (leaf, parents) = parts.split_last().expect("split yields at least one part");
    let mut props = root;
    for (i, parent) in parents.iter().enumerate() {
        let entry = props
            .entry(parent.to_string())
            .or_insert_with(|| json!({"properties": {}}));
        let parent_type = entry
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("object");
        if parent_type != "object" && parent_type != "nested" {
            return Err(MappingError::Clash {
                field: parts[..=i].join("."),
                ecs_type: parent_type.to_string(),
                child: f.name.to_string(),
            });
        }
        let obj = entry.as_object_mut().expect("entries are objects");
        props = obj
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("properties is an object");
    }
    let mapping = opensearch_type(f.name, f.ecs_type)?;
    match props.get_mut(*leaf) {
        None => {
            props.insert(leaf.to_string(), mapping);
        }
        Some(existing) if mapping["type"] == "object" || mapping["type"] == "nested" => {
            existing["type"] = mapping["type"].clone();
        }
        Some(existing) => {
            let child = existing["properties"]
                .as_object()
                .and_then(|p| p.keys().next().cloned())
                .unwrap_or_default();
            return Err(MappingError::Clash {
                field: f.name.to_string(),
                ecs_type: f.ecs_type.to_string(),
                child: format!("{}.{child}", f.name),
            });
        }
    }
    Ok(())
}

fn settings(replicas: u32) -> Value {
    json!({"index": {
        "number_of_shards": 1,
        "number_of_replicas": replicas,
        "refresh_interval": "5s",
        // A value a field's type cannot take (an EVE u64 past 2^63, which reaches Vector's
        // JSON parser as a float; a malformed date or address) is left unindexed, named in
        // `_ignored`, and kept in `_source`: otherwise the server refuses the whole document
        // and the event is lost.
        "mapping": {"total_fields": {"limit": 2000}, "ignore_malformed": true}
    }})
}

/// The template for `<prefix>-suricata.*`: the ECS fields, plus `suricata.eve` for the raw
/// EVE remainder. Unknown top-level fields are kept in `_source` but not indexed (`dynamic:
/// false`), so a stray field can neither reject a document nor grow the mapping; under
/// `suricata.eve` new fields are indexed, strings as keywords only (no text+keyword pair,
/// which would double the field count), inside the total-fields limit.
pub fn suricata_template(
    prefix: &str,
    fields: &[EcsField],
    replicas: u32,
) -> Result<Value, MappingError> {
    let mut props = properties(fields)?;
    let suricata = props
        .entry("suricata")
        .or_insert_with(|| json!({"properties": {}}));
    let suricata_type = suricata["type"].as_str().unwrap_or("object").to_string();
    let suricata_props = suricata["properties"]
        .as_object_mut()
        .ok_or(MappingError::Clash {
            field: "suricata".into(),
            ecs_type: suricata_type,
            child: "suricata.eve".into(),
        })?;
    suricata_props
        .entry("eve")
        .or_insert_with(|| json!({"type": "object", "dynamic": true}));
    Ok(json!({
        "index_patterns": [format!("{prefix}-suricata.*")],
        "priority": TEMPLATE_PRIORITY,
        "template": {
            "settings": settings(replicas),
            "mappings": {
                "dynamic": false,
                "dynamic_templates": [{
                    "eve_strings_as_keywords": {
                        "path_match": "suricata.eve.*",
                        "match_mapping_type": "string",
                        "mapping": {"type": "keyword", "ignore_above": IGNORE_ABOVE}
                    }
                }],
                "properties": props
            }
        },
        "_meta": {"managed_by": "ids2-provision", "source": "templates/ecs_fields.tsv"}
    }))
}

/// The template for `<prefix>-heartbeat-*`: exactly the fields a heartbeat carries
/// (`ids2_core::heartbeat::FIELDS`, the list the agent builds heartbeats from), with
/// anything else kept in `_source` but not indexed.
pub fn heartbeat_template(
    prefix: &str,
    fields: &[EcsField],
    replicas: u32,
) -> Result<Value, MappingError> {
    exact_template(
        format!("{prefix}-heartbeat-*"),
        fields,
        replicas,
        "ids2_core::heartbeat::FIELDS",
    )
}

/// The template for `<prefix>-ids2.anomaly-*` (the agent's anomaly events): exactly the fields
/// an anomaly document carries (`ids2_core::anomaly::FIELDS`).
pub fn anomaly_template(
    prefix: &str,
    fields: &[EcsField],
    replicas: u32,
) -> Result<Value, MappingError> {
    exact_template(
        format!("{prefix}-ids2.anomaly-*"),
        fields,
        replicas,
        "ids2_core::anomaly::FIELDS",
    )
}

fn exact_template(
    pattern: String,
    fields: &[EcsField],
    replicas: u32,
    source: &str,
) -> Result<Value, MappingError> {
    Ok(json!({
        "index_patterns": [pattern],
        "priority": TEMPLATE_PRIORITY,
        "template": {
            "settings": settings(replicas),
            "mappings": {
                "dynamic": false,
                "properties": properties(fields)?
            }
        },
        "_meta": {"managed_by": "ids2-provision", "source": source}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ids2_core::ecs::emitted_fields;

    fn f(name: &'static str, ecs_type: &'static str) -> EcsField {
        EcsField { name, ecs_type }
    }

    #[test]
    fn dotted_names_nest() {
        let p = properties(&[
            f("source.ip", "ip"),
            f("source.port", "long"),
            f("@timestamp", "date"),
        ])
        .unwrap();
        assert_eq!(p["source"]["properties"]["ip"]["type"], "ip");
        assert_eq!(p["source"]["properties"]["port"]["type"], "long");
        assert_eq!(p["@timestamp"]["type"], "date");
    }

    #[test]
    fn value_and_parent_clash_is_reported() {
        for fields in [
            vec![f("a", "keyword"), f("a.b", "long")],
            vec![f("a.b", "long"), f("a", "keyword")],
        ] {
            assert!(
                matches!(properties(&fields), Err(MappingError::Clash { .. })),
                "{fields:?}"
            );
        }
        assert!(properties(&[f("a", "object"), f("a.b", "long")]).is_ok());
    }

    #[test]
    fn unknown_type_is_reported() {
        let e = properties(&[f("x", "semantic_text")]).unwrap_err();
        assert!(e.to_string().contains("semantic_text"));
    }

    fn leaves(prefix: &str, props: &Map<String, Value>, out: &mut Vec<(String, String)>) {
        for (k, v) in props {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v.get("properties").and_then(Value::as_object) {
                Some(inner) => leaves(&name, inner, out),
                None => out.push((name, v["type"].as_str().unwrap_or("").to_string())),
            }
        }
    }

    /// The template is strict and maps exactly `fields`, each with its OpenSearch type; returns
    /// its properties.
    fn assert_maps_exactly<'a>(
        t: &'a Value,
        fields: &[ids2_core::ecs::EcsField],
    ) -> &'a serde_json::Map<String, Value> {
        assert_eq!(t["template"]["mappings"]["dynamic"], false);
        let props = t["template"]["mappings"]["properties"].as_object().unwrap();
        let mut mapped = Vec::new();
        leaves("", props, &mut mapped);
        mapped.sort();
        let mut wanted: Vec<(String, String)> = fields
            .iter()
            .map(|f| {
                let os = opensearch_type(f.name, f.ecs_type).unwrap();
                (f.name.to_string(), os["type"].as_str().unwrap().to_string())
            })
            .collect();
        wanted.sort();
        assert_eq!(mapped, wanted);
        props
    }

    #[test]
    fn heartbeat_template_maps_exactly_the_heartbeat_fields() {
        use ids2_core::heartbeat::FIELDS;
        let t = heartbeat_template("corp", FIELDS, 1).unwrap();
        assert_eq!(t["index_patterns"][0], "corp-heartbeat-*");
        let props = assert_maps_exactly(&t, FIELDS);
        assert_eq!(
            props["host"]["properties"]["cpu"]["properties"]["usage"]["scaling_factor"],
            1000
        );
    }

    #[test]
    fn anomaly_template_maps_exactly_the_anomaly_fields() {
        use ids2_core::anomaly::FIELDS;
        let t = anomaly_template("corp", FIELDS, 1).unwrap();
        assert_eq!(t["index_patterns"][0], "corp-ids2.anomaly-*");
        let props = assert_maps_exactly(&t, FIELDS);
        assert_eq!(
            props["ids2"]["properties"]["anomaly"]["properties"]["score"]["type"],
            "float"
        );
        assert_eq!(props["source"]["properties"]["ip"]["type"], "ip");
    }

    #[test]
    fn every_shipped_type_is_mapped() {
        let t = suricata_template("ids2", &emitted_fields(), 0).unwrap();
        assert_eq!(t["index_patterns"][0], "ids2-suricata.*");
        assert_eq!(
            t["template"]["mappings"]["properties"]["suricata"]["properties"]["eve"]["type"],
            "object"
        );
    }
}
