//! Reading what the agent renders in tests: the parsed `vector.toml` and its tables, and the
//! ECS reference (`../shared/corpus/ecs/fields.csv`) its documents are checked against.
// Each test binary that includes this uses a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use ids2_agent::config::Settings;
use ids2_agent::render::{self, RenderOptions};

/// `vector.toml` as rendered for `s`.
pub fn vector_toml_text(s: &Settings) -> String {
    let set = render::render(s, &RenderOptions::default()).unwrap();
    String::from_utf8(set.get(render::VECTOR_TOML).unwrap().to_vec()).unwrap()
}

/// `vector.toml` as rendered for `s`, parsed.
pub fn vector_toml(s: &Settings) -> toml::Table {
    vector_toml_text(s).parse().unwrap()
}

/// The sub-table `key`, failing the test when it is missing or not a table.
pub fn table<'a>(t: &'a toml::Table, key: &str) -> &'a toml::Table {
    t[key]
        .as_table()
        .unwrap_or_else(|| panic!("{key} is not a table"))
}

/// An array of strings.
pub fn strings(v: &toml::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// ECS reference: field name → type, when the shared corpus is present.
pub fn ecs_reference() -> Option<HashMap<String, String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/ecs/fields.csv");
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = HashMap::new();
    for line in text.lines().skip(1) {
        // ECS_Version,Indexed,Field_Set,Field,Type,...: the first five columns are never quoted.
        let cols: Vec<&str> = line.splitn(6, ',').collect();
        if cols.len() == 6 && cols[0].chars().next().is_some_and(|c| c.is_ascii_digit()) {
            fields.insert(cols[3].to_string(), cols[4].to_string());
        }
    }
    Some(fields)
}

/// ECS names of a document's leaves outside `suricata.*`, one per array element; a geo_point
/// (`*.geo.location`, an object of lat and lon) counts as one leaf.
pub fn ecs_leaf_names(doc: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    leaves("", doc, &mut out);
    out
}

fn leaves(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) if prefix.ends_with(".geo.location") => {
            assert!(map.contains_key("lat") && map.contains_key("lon"));
            out.push(prefix.to_string());
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if name != "suricata" {
                    leaves(&name, v, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| leaves(prefix, i, out)),
        _ => out.push(prefix.to_string()),
    }
}
