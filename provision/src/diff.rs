//! "Does the server already hold what we want?" for JSON objects read back from OpenSearch.
//!
//! Servers add to what they store (ISM adds `last_updated_time` and retry defaults,
//! Dashboards adds `updated_at`, index settings come back as strings under `index`), so an
//! exact comparison would rewrite everything on every run. Instead every value we want must be
//! present and equal, scalars compare by their text (`1` equals `"1"`), and arrays match
//! element by element. Mapping `properties` are the exception: a field the server has and we
//! no longer want is a difference, so a shrunken field list is written back.

use serde_json::Value;

/// The first place where `actual` does not hold `desired`, as a readable path, or `None`.
pub fn first_difference(desired: &Value, actual: &Value) -> Option<String> {
    walk(desired, actual, "", false)
}

fn walk(desired: &Value, actual: &Value, path: &str, exact_keys: bool) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "(root)".to_string()
        } else {
            path.to_string()
        }
    };
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => {
            for (k, dv) in d {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    Some(av) => {
                        if let Some(diff) = walk(dv, av, &p, k == "properties") {
                            return Some(diff);
                        }
                    }
                    None if dv.is_null() => {}
                    None => return Some(format!("{p} is missing")),
                }
            }
            if exact_keys {
                if let Some(extra) = a.keys().find(|k| !d.contains_key(*k)) {
                    return Some(format!("{path}.{extra} is not wanted"));
                }
            }
            None
        }
        (Value::Array(d), Value::Array(a)) => {
            if d.len() != a.len() {
                return Some(format!(
                    "{} has {} entries, want {}",
                    here(),
                    a.len(),
                    d.len()
                ));
            }
            d.iter()
                .zip(a)
                .enumerate()
                .find_map(|(i, (dv, av))| walk(dv, av, &format!("{path}[{i}]"), false))
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => {
            Some(format!("{} has another shape", here()))
        }
        (d, a) if scalar_text(d) == scalar_text(a) => None,
        (d, a) => Some(format!("{} is {a}, want {d}", here())),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_additions_and_stringified_settings_are_not_differences() {
        let want = json!({"settings": {"index": {"number_of_shards": 1, "hidden": false}},
                          "policy": {"states": [{"name": "hot", "actions": []}]}});
        let have = json!({"settings": {"index": {"number_of_shards": "1", "hidden": "false"}},
                          "policy": {"states": [{"name": "hot", "actions": []}],
                                     "last_updated_time": 1}});
        assert_eq!(first_difference(&want, &have), None);
    }

    #[test]
    fn changed_missing_and_extra_mapped_fields_are_differences() {
        let want = json!({"mappings": {"properties": {"a": {"type": "keyword"}}}});
        let changed = json!({"mappings": {"properties": {"a": {"type": "text"}}}});
        assert_eq!(
            first_difference(&want, &changed).unwrap(),
            "mappings.properties.a.type is \"text\", want \"keyword\""
        );
        let extra = json!({"mappings": {"properties": {"a": {"type": "keyword"}, "b": {}}}});
        assert!(first_difference(&want, &extra)
            .unwrap()
            .contains("b is not wanted"));
        assert!(first_difference(&want, &json!({}))
            .unwrap()
            .contains("missing"));
        let arr = json!({"x": [1, 2]});
        assert!(first_difference(&arr, &json!({"x": [1]})).is_some());
        assert!(first_difference(&arr, &json!({"x": "1,2"})).is_some());
    }
}
