//! YAML text → [`Config`], collecting every structural problem instead of stopping at one.
//!
//! serde stops at the first error, so each error is recorded with its key path, the
//! offending key is pruned from the YAML tree, and deserialisation runs again. Inline
//! secrets are looked for before serde sees the tree, so they get a targeted message
//! rather than a bare "unknown field".

use std::collections::HashMap;

use serde_path_to_error::Segment;
use serde_yaml_ng::{Mapping, Value};

use super::error::Problem;
use super::schema::Config;

/// Key names that hold secret values; config only ever names the file that holds one.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key_id",
    "secret_access_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "session_token",
];

/// Outcome of the structural pass: a config when one could be built, plus every problem.
pub(super) struct Parsed {
    pub config: Option<Config>,
    pub problems: Vec<Problem>,
}

/// Deserialises `root`, pruning and recording each bad key until serde accepts the rest.
pub(super) fn structural(mut root: Value) -> Parsed {
    let mut problems = Vec::new();
    find_inline_secrets(&mut root, &mut String::new(), &mut problems);
    let mut reported: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
    // Pruned list elements, by list path, as indices into the list as written, so later
    // problems in the same list keep the index the operator sees in the file.
    let mut pruned: HashMap<String, Vec<usize>> = HashMap::new();

    // Bounded: every round removes one key or stops.
    for _ in 0..256 {
        let result: Result<Config, _> = serde_path_to_error::deserialize(root.clone());
        let err = match result {
            Ok(config) => {
                return Parsed {
                    config: Some(config),
                    problems,
                }
            }
            Err(err) => err,
        };
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        let inner = err.inner().to_string();
        let original = to_original(&segments, &pruned);
        let (path, message) = describe(&original, &inner);

        if let Some(field) = missing_field(&inner) {
            let full = join(&path, &field);
            if !reported.iter().any(|r| r == &full) {
                problems.push(Problem::at(full, "required key is missing"));
            }
            // A missing key cannot be pruned away, so no config can be built past it.
            break;
        }
        let value = take(&mut root, &segments);
        if value.is_none() {
            problems.push(Problem::at(path, message));
            break;
        }
        if let Some((Segment::Seq { index }, parent)) = original.split_last() {
            let list = pruned.entry(render_path(parent)).or_default();
            list.push(*index);
            list.sort_unstable();
        }
        problems.push(match value.as_ref().and_then(scalar) {
            Some(v) if !message.starts_with("unknown key") => {
                Problem::new(path.clone(), v, message)
            }
            _ => Problem::at(path.clone(), message),
        });
        reported.push(path);
    }
    Parsed {
        config: None,
        problems,
    }
}

/// Maps indices in the pruned tree back to indices in the list as written.
fn to_original(segments: &[Segment], pruned: &HashMap<String, Vec<usize>>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for seg in segments {
        let seg = match seg {
            Segment::Seq { index } => {
                let mut original = *index;
                for removed in pruned.get(&render_path(&out)).into_iter().flatten() {
                    if *removed <= original {
                        original += 1;
                    }
                }
                Segment::Seq { index: original }
            }
            other => other.clone(),
        };
        out.push(seg);
    }
    out
}

/// Turns serde's message into ours: the path of the bad key and a hint where one helps.
fn describe(segments: &[Segment], inner: &str) -> (String, String) {
    let path = render_path(segments);
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let choices: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let mut message = format!("unknown key; accepted keys here: {}", choices.join(", "));
        if let Some(best) = closest(name, &choices) {
            message = format!(
                "unknown key (did you mean `{best}`?); accepted keys here: {}",
                choices.join(", ")
            );
        }
        return (path, message);
    }
    let message = inner
        .split(" at line ")
        .next()
        .unwrap_or(inner)
        .replace("u32", "a whole number (0 to 4294967295)")
        .replace("u8", "a whole number (0 to 255)");
    (path, message)
}

/// The nearest accepted key to a misspelt one, if it is near enough to be a likely typo.
pub fn closest<'a>(name: &str, choices: &[&'a str]) -> Option<&'a str> {
    choices
        .iter()
        .map(|c| (strsim::jaro_winkler(name, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn missing_field(inner: &str) -> Option<String> {
    let rest = inner.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

fn render_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    if out.is_empty() {
        "(top level)".into()
    } else {
        out
    }
}

fn join(path: &str, field: &str) -> String {
    if path == "(top level)" {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Removes and returns the value at `segments`.
fn take(root: &mut Value, segments: &[Segment]) -> Option<Value> {
    let (last, parents) = segments.split_last()?;
    let mut node = root;
    for seg in parents {
        node = match (seg, node) {
            (Segment::Map { key }, Value::Mapping(m)) => m.get_mut(key.as_str())?,
            (Segment::Seq { index }, Value::Sequence(s)) => s.get_mut(*index)?,
            _ => return None,
        };
    }
    match (last, node) {
        (Segment::Map { key }, Value::Mapping(m)) => m.remove(key.as_str()),
        (Segment::Seq { index }, Value::Sequence(s)) if *index < s.len() => Some(s.remove(*index)),
        _ => None,
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        other => serde_yaml_ng::to_string(other)
            .ok()
            .map(|s| s.trim().replace('\n', " ")),
    }
}

fn find_inline_secrets(node: &mut Value, path: &mut String, problems: &mut Vec<Problem>) {
    match node {
        Value::Mapping(map) => find_in_mapping(map, path, problems),
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                find_inline_secrets(item, path, problems);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn find_in_mapping(map: &mut Mapping, path: &mut String, problems: &mut Vec<Problem>) {
    let keys: Vec<String> = map
        .keys()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    for key in keys {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&key);
        if SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
            map.remove(key.as_str());
            problems.push(Problem::at(
                path.clone(),
                format!(
                    "inline secrets are refused (the value is not shown); put it in a file \
                     readable only by the agent and set `{key}_file` to that file's path"
                ),
            ));
        } else if let Some(Value::String(s)) = map.get(key.as_str()) {
            if url_has_password(s) {
                map.remove(key.as_str());
                problems.push(Problem::at(
                    path.clone(),
                    "inline secrets are refused: this URL carries a password (the value is \
                     not shown); remove the `user:password@` part",
                ));
            }
        } else if let Some(child) = map.get_mut(key.as_str()) {
            find_inline_secrets(child, path, problems);
        }
        path.truncate(len);
    }
}

/// The authority (`user@host:port`) of what follows `scheme://`.
pub(super) fn authority(after_scheme: &str) -> &str {
    after_scheme.split(['/', '?', '#']).next().unwrap_or("")
}

/// True for `scheme://user:password@host…`.
fn url_has_password(s: &str) -> bool {
    let Some((_, rest)) = s.split_once("://") else {
        return false;
    };
    authority(rest)
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_detection() {
        assert!(url_has_password("redis://:hunter2@127.0.0.1:6379/0"));
        assert!(url_has_password("https://admin:pw@search.example/"));
        assert!(!url_has_password("redis://127.0.0.1:6379/0"));
        assert!(!url_has_password("https://user@host/"));
        assert!(!url_has_password("not a url"));
    }

    #[test]
    fn closest_prefers_near_misses_only() {
        assert_eq!(
            closest("interfce", &["interface", "workers"]),
            Some("interface")
        );
        assert_eq!(closest("zzz", &["interface", "workers"]), None);
    }
}
