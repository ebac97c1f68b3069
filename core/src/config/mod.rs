//! `config.yaml`: parse → validate (pure) → typed [`Settings`].
//!
//! Nothing here touches the host. Every problem in a file is reported at once, each with
//! its key path, the bad value and what would be accepted.
//!
//! One module per section of the file, like Vector's per-component config: each holds the
//! section's types, their defaults and its validation rules side by side (`sensor`, `capture`,
//! `logs`, `suricata`, `resources`, `opensearch`, `shipping`, `metrics`, `history`, `network`,
//! `connectivity`, `paths`, `anomaly`, `notifications`, `blocking`, `fleet`, `enrichment`, `intel`,
//! `evidence`).
//! [`Config`] (`schema.rs`) puts the sections together; `parse.rs` collects every structural
//! problem (unknown keys, wrong types, inline secrets); `validate.rs` runs each section's rules
//! in file order and builds the [`Settings`].

mod error;
mod parse;
mod schema;
mod validate;

mod anomaly;
mod blocking;
mod capture;
mod connectivity;
mod enrichment;
mod evidence;
mod fleet;
mod history;
mod intel;
mod logs;
mod metrics;
mod network;
mod notifications;
mod opensearch;
mod paths;
mod resources;
mod sensor;
mod shipping;
mod suricata;

#[cfg(test)]
mod testing;

use std::path::{Path, PathBuf};

pub use anomaly::*;
pub use blocking::*;
pub use capture::*;
pub use connectivity::*;
pub use enrichment::*;
pub use error::{ConfigError, Problem};
pub use evidence::*;
pub use fleet::*;
pub use history::*;
pub use intel::*;
pub use logs::*;
pub use metrics::*;
pub use network::*;
pub use notifications::*;
pub use opensearch::*;
pub use paths::*;
pub use resources::*;
pub use schema::{Config, Severity};
pub use sensor::*;
pub use shipping::*;
pub use suricata::*;
pub use validate::Settings;

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(&bytes, path)
}

/// Parses and validates config bytes as read from a file: text that is not UTF-8 is bad input
/// (the operator fixes the file), reported with where the first bad byte is.
pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Settings, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => from_str(text, origin),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            Err(ConfigError::Encoding {
                origin: origin.to_path_buf(),
                line,
                column: e.valid_up_to() - line_start + 1,
                byte: bytes[e.valid_up_to()],
            })
        }
    }
}

/// Deepest nesting of flow collections (`[` and `{`) a config may have. A real config needs
/// three or four; the YAML scanner's cost grows with depth × tokens, so 100 000 nested `[` kept
/// the loader busy for a minute and a half before this bound (found by `core/tests/fuzz_config.rs`).
const MAX_FLOW_DEPTH: usize = 64;

/// Parses and validates config text; `origin` names it in messages.
pub fn from_str(text: &str, origin: &Path) -> Result<Settings, ConfigError> {
    if let Some((line, column)) = too_deep(text, MAX_FLOW_DEPTH) {
        return Err(ConfigError::Syntax {
            origin: origin.to_path_buf(),
            line,
            column,
            message: format!(
                "`[` and `{{` nested deeper than {MAX_FLOW_DEPTH} levels (a config needs a few)"
            ),
        });
    }
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| syntax(e, origin))?;
    let value = match value {
        // An empty file parses as null; report the missing sections rather than a type error.
        serde_yaml_ng::Value::Null => serde_yaml_ng::Value::Mapping(Default::default()),
        v => v,
    };
    let parsed = parse::structural(value);
    let invalid = |problems| ConfigError::Invalid {
        origin: origin.to_path_buf(),
        problems,
    };
    let mut problems = parsed.problems;
    let Some(config) = parsed.config else {
        return Err(invalid(problems));
    };
    match validate::validate(config) {
        Ok(settings) if problems.is_empty() => Ok(settings),
        Ok(_) => Err(invalid(problems)),
        Err(more) => {
            problems.extend(more);
            Err(invalid(problems))
        }
    }
}

/// Where flow collections first nest deeper than `limit`, as 1-based line and column; quoted
/// text and comments are skipped, so it can only under-count (a bracket in a plain scalar).
fn too_deep(text: &str, limit: usize) -> Option<(usize, usize)> {
    #[derive(PartialEq)]
    enum In {
        Plain,
        Single,
        Double,
        Comment,
    }
    let (mut state, mut depth, mut escaped) = (In::Plain, 0usize, false);
    let (mut line, mut column, mut prev) = (1, 0, '\n');
    for c in text.chars() {
        column += 1;
        match state {
            In::Plain => match c {
                '[' | '{' => {
                    depth += 1;
                    if depth > limit {
                        return Some((line, column));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                '\'' => state = In::Single,
                '"' => state = In::Double,
                '#' if prev.is_whitespace() => state = In::Comment,
                _ => {}
            },
            In::Single if c == '\'' => state = In::Plain,
            In::Double if escaped => escaped = false,
            In::Double if c == '\\' => escaped = true,
            In::Double if c == '"' => state = In::Plain,
            In::Comment if c == '\n' => state = In::Plain,
            _ => {}
        }
        if c == '\n' {
            (line, column) = (line + 1, 0);
        }
        prev = c;
    }
    None
}

fn syntax(e: serde_yaml_ng::Error, origin: &Path) -> ConfigError {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let message = e.to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    ConfigError::Syntax {
        origin: PathBuf::from(origin),
        line,
        column,
        message,
    }
}

/// Serialises settings back to YAML (used to write a config, e.g. by `ids2-provision`).
pub fn to_yaml(config: &Config) -> String {
    serde_yaml_ng::to_string(config).expect("config types always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n";

    fn problems(text: &str) -> Vec<Problem> {
        match from_str(text, Path::new("t.yaml")) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let s = from_str(MINIMAL, Path::new("t.yaml")).unwrap();
        assert_eq!(s.config.capture.interface, "eth0");
        assert_eq!(s.config.capture.workers, 2);
        assert_eq!(s.config.capture.cpu_cores, vec![2, 3]);
        assert_eq!(s.config.logs.path, "/mnt/ram_logs");
        assert_eq!(s.config.suricata.memory_mb, 512);
        assert_eq!(s.config.resources.cpu_max_percent, 70);
        assert_eq!(s.config.shipping.buffer_max_mb, 256);
        assert_eq!(s.config.history.branch, "dev");
        assert_eq!(s.metrics_listen.to_string(), "0.0.0.0:9100");
        assert_eq!(s.config.sensor.name.as_deref(), Some("lab-1"));
        assert!(matches!(s.auth, AuthSettings::AwsSigv4 { .. }));
    }

    #[test]
    fn text_that_is_not_utf8_is_bad_input_named_where() {
        let err = from_bytes(
            b"sensor: {id: lab-1}\nopensearch: {domain: \xff}\n",
            Path::new("t.yaml"),
        )
        .unwrap_err();
        assert!(err.is_bad_input());
        assert!(
            matches!(
                err,
                ConfigError::Encoding {
                    line: 2,
                    column: 22,
                    byte: 0xff,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("byte 0xff at line 2, column 22"),
            "{err}"
        );
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_the_yaml_parser_sees_it() {
        let deep = format!("sensor: {}", "[".repeat(100_000));
        let t = std::time::Instant::now();
        let err = from_str(&deep, Path::new("t.yaml")).unwrap_err();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
        assert!(
            matches!(
                err,
                ConfigError::Syntax {
                    line: 1,
                    column: 73,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("nested deeper than 64"), "{err}");
        // Brackets in quotes and comments do not count; real configs are far from the limit.
        let quoted = format!(
            "{MINIMAL}# {}\ncapture: {{interface: \"{}\", home_net: ['{}']}}\n",
            "[".repeat(100),
            "[".repeat(100),
            "{".repeat(100)
        );
        assert!(!matches!(
            from_str(&quoted, Path::new("t.yaml")),
            Err(ConfigError::Syntax { .. })
        ));
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let err = from_str("sensor:\n  id: [unclosed\n", Path::new("t.yaml")).unwrap_err();
        match err {
            ConfigError::Syntax { line, column, .. } => assert!(line >= 2 && column > 0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_keys_all_reported_with_hints() {
        let p = problems(&format!(
            "{MINIMAL}capture: {{interfce: eth1, wrokers: 3}}\nmetrix: {{}}\n"
        ));
        let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["capture.interfce", "capture.wrokers", "metrix"],
            "{p:#?}"
        );
        assert!(p[0].message.contains("did you mean `interface`"));
        assert!(p[1].message.contains("did you mean `workers`"));
        assert!(p[2].message.contains("did you mean `metrics`"));
    }

    #[test]
    fn type_and_value_errors_reported_together() {
        let p = problems(&format!(
            "{MINIMAL}capture: {{workers: two, home_net: [10.0.0.0/8, nope], interfce: eth0}}\n\
             resources: {{cpu_max_percent: 150}}\n"
        ));
        let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "capture.workers",
                "capture.interfce",
                "capture.home_net[1]",
                "resources.cpu_max_percent"
            ],
            "{p:#?}"
        );
        assert_eq!(p[0].value.as_deref(), Some("two"));
        assert!(p[0].message.contains("whole number"));
    }

    #[test]
    fn eve_rotation_must_leave_room_on_the_tmpfs() {
        let ok = from_str(
            // Evidence off: its default ring does not fit beside two 32 MiB EVE files in 96 MiB.
            &format!(
                "{MINIMAL}logs: {{size_mb: 96, eve_rotate_mb: 32}}\nevidence: {{mode: off}}\n"
            ),
            Path::new("t.yaml"),
        )
        .unwrap();
        assert_eq!(ok.config.logs.eve_rotate_mb, 32);
        assert_eq!(
            from_str(MINIMAL, Path::new("t.yaml"))
                .unwrap()
                .config
                .logs
                .eve_rotate_mb,
            64
        );
        for bad in [0, 33] {
            let p = problems(&format!(
                "{MINIMAL}logs: {{size_mb: 96, eve_rotate_mb: {bad}}}\nevidence: {{mode: off}}\n"
            ));
            assert_eq!(p.len(), 1, "{p:#?}");
            assert_eq!(p[0].path, "logs.eve_rotate_mb");
            assert_eq!(p[0].value.as_deref(), Some(bad.to_string().as_str()));
            assert!(p[0].message.contains("1 to 32 MiB"), "{}", p[0].message);
        }
    }

    #[test]
    fn semantic_errors_all_reported() {
        let p = problems(&format!(
            "{MINIMAL}capture: {{workers: 0, home_net: [10.0.0.0/8, nope]}}\n\
             resources: {{cpu_max_percent: 150}}\n"
        ));
        let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "capture.home_net[1]",
                "capture.workers",
                "resources.cpu_max_percent"
            ]
        );
        assert_eq!(p[0].value.as_deref(), Some("nope"));
    }

    #[test]
    fn list_element_paths_survive_pruning() {
        let p = problems(&format!("{MINIMAL}capture: {{cpu_cores: [1, x, 2, y]}}\n"));
        let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["capture.cpu_cores[1]", "capture.cpu_cores[3]"],
            "{p:#?}"
        );
    }

    #[test]
    fn inline_secrets_refused_without_echoing_them() {
        let text = "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1, \
                    auth: {method: basic, username: u, password: hunter2}}\n\
                    shipping: {redis: {url: 'redis://:s3cret@127.0.0.1:6379/0'}}\n";
        let p = problems(text);
        let all = format!("{p:?}");
        assert!(!all.contains("hunter2") && !all.contains("s3cret"), "{all}");
        let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"opensearch.auth.password"));
        assert!(paths.contains(&"shipping.redis.url"));
    }

    #[test]
    fn missing_required_section_named() {
        let p = problems("sensor: {id: lab-1}\n");
        assert_eq!(p[0].path, "opensearch");
    }
}
