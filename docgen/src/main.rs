//! `ids2-docgen`: reference documentation generated from the code, never copied by hand.
//!
//! `ids2-docgen config-reference` writes `docs/config-reference.md` from the config schema in
//! `core/src/config/`: the sections, keys and their doc comments from the source, each default
//! from the defaults the code really applies (a config holding only the required keys, parsed
//! by `ids2-core` and read back), and the accepted values of enumerations. `--check` compares
//! instead of writing and fails naming the first difference (`docgen/tests` runs it in CI).
//!
//! The source is read as text, not compiled against: the schema's doc comments exist only
//! there. The parser knows the shape rustfmt gives the schema (one `pub` field per line, serde
//! attributes on their own lines) and fails loudly on anything it does not recognise, so a
//! schema it cannot read stops the build of the docs rather than leaving a key out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_yaml_ng::{Mapping, Value};

/// How to regenerate the reference; named in the file and in every `--check` failure.
const COMMAND: &str = "cargo run -p ids2-docgen -- config-reference";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ids2-docgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    // The workspace this binary was built from (it is run with `cargo run` there).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("docgen/ is inside the workspace");
    let mut check = false;
    let mut docs = root.join("docs");
    let mut rest = args.iter();
    match rest.next().map(String::as_str) {
        Some("config-reference") => {}
        _ => return Err(format!("usage: {COMMAND} [--check] [--docs DIR]")),
    }
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--docs" => docs = PathBuf::from(rest.next().ok_or("--docs needs a directory")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let text = config_reference(&root.join("core/src/config"))?;
    let path = docs.join("config-reference.md");
    if check {
        let on_disk = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}; run `{COMMAND}`", path.display()))?;
        if let Some((line, want, have)) = first_difference(&text, &on_disk) {
            return Err(format!(
                "{} differs from the schema at line {line}:\n  generated: {want}\n  in docs:   {have}\n\
                 the reference is generated from core/src/config/: edit the doc comments or \
                 defaults there, then run `{COMMAND}`",
                path.display()
            ));
        }
        println!("{}: up to date", path.display());
    } else {
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The first line where `want` and `have` differ: (1-based line, generated, on disk).
fn first_difference(want: &str, have: &str) -> Option<(usize, String, String)> {
    let (mut w, mut h) = (want.lines(), have.lines());
    for n in 1.. {
        match (w.next(), h.next()) {
            (None, None) => return None,
            (a, b) if a == b => continue,
            (a, b) => {
                let show = |l: Option<&str>| l.map_or("(end of file)".into(), |l| format!("{l:?}"));
                return Some((n, show(a), show(b)));
            }
        }
    }
    unreachable!()
}

/// A struct or an enum of the schema, as written in the source.
#[derive(Debug, Clone)]
struct Item {
    doc: String,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Struct(Vec<Field>),
    /// Unit variants, by the name serde reads (`snake_case`), with their docs.
    Enum(Vec<(String, String)>),
}

#[derive(Debug, Clone)]
struct Field {
    /// The key as written in config.yaml.
    key: String,
    /// The Rust type as written, e.g. `Option<Vec<String>>`.
    ty: String,
    doc: String,
    /// No `#[serde(default…)]`: the key must be written.
    required: bool,
}

/// Every `pub struct` and `pub enum` in `dir/*.rs`, by name.
fn parse_schema(dir: &Path) -> Result<BTreeMap<String, Item>, String> {
    let mut items = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        parse_file(&text, &mut items).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(items)
}

fn parse_file(text: &str, items: &mut BTreeMap<String, Item>) -> Result<(), String> {
    let mut doc: Vec<&str> = Vec::new();
    let mut attrs: Vec<&str> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if let Some(d) = line.strip_prefix("///") {
            doc.push(d.strip_prefix(' ').unwrap_or(d));
            continue;
        }
        if line.starts_with("#[") {
            attrs.push(line);
            continue;
        }
        let header = line
            .strip_prefix("pub struct ")
            .map(|r| (true, r))
            .or_else(|| line.strip_prefix("pub enum ").map(|r| (false, r)));
        // Only what config.yaml is read into: errors and derived settings are not keys.
        let schema = attrs
            .iter()
            .any(|a| a.starts_with("#[derive(") && a.contains("Deserialize"));
        let (is_struct, name) = match header.and_then(|(s, r)| Some((s, r.strip_suffix(" {")?))) {
            Some(h) if schema => h,
            _ => {
                doc.clear();
                attrs.clear();
                continue;
            }
        };
        let snake = attrs
            .iter()
            .any(|a| a.contains("rename_all = \"snake_case\""));
        let item_doc = join_doc(&doc);
        doc.clear();
        attrs.clear();
        let mut fields = Vec::new();
        let mut variants = Vec::new();
        let mut field_doc: Vec<&str> = Vec::new();
        let mut field_attrs: Vec<&str> = Vec::new();
        loop {
            let Some((m, line)) = lines.next() else {
                return Err(format!("line {}: {name} never ends", n + 1));
            };
            let t = line.trim();
            if line == "}" {
                break;
            } else if let Some(d) = t.strip_prefix("///") {
                field_doc.push(d.strip_prefix(' ').unwrap_or(d));
            } else if t.starts_with("#[") {
                field_attrs.push(t);
            } else if is_struct {
                let (rust_name, ty) = t
                    .strip_prefix("pub ")
                    .and_then(|f| f.strip_suffix(','))
                    .and_then(|f| f.split_once(": "))
                    .ok_or_else(|| format!("line {}: not a `pub name: Type,` field: {t}", m + 1))?;
                let serde: String = field_attrs
                    .iter()
                    .filter(|a| a.starts_with("#[serde("))
                    .copied()
                    .collect();
                let key = serde
                    .split("rename = \"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or(rust_name);
                fields.push(Field {
                    key: key.to_string(),
                    ty: ty.to_string(),
                    doc: join_doc(&field_doc),
                    required: !serde.contains("default"),
                });
                field_doc.clear();
                field_attrs.clear();
            } else {
                let v = t
                    .strip_suffix(',')
                    .filter(|v| v.chars().all(|c| c.is_ascii_alphanumeric()))
                    .ok_or_else(|| format!("line {}: not a unit variant: {t}", m + 1))?;
                let v = if snake { snake_case(v) } else { v.to_string() };
                variants.push((v, join_doc(&field_doc)));
                field_doc.clear();
                field_attrs.clear();
            }
        }
        let body = if is_struct {
            Body::Struct(fields)
        } else {
            Body::Enum(variants)
        };
        items.insert(
            name.to_string(),
            Item {
                doc: item_doc,
                body,
            },
        );
    }
    Ok(())
}

/// Doc comment lines as one paragraph (blank lines become a sentence break).
fn join_doc(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn snake_case(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// How a field's type nests: `Option<T>`, `Vec<T>`, or `T`.
fn shape(ty: &str) -> (bool, bool, &str) {
    let (optional, ty) = match ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
        Some(inner) => (true, inner),
        None => (false, ty),
    };
    match ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
        Some(inner) => (optional, true, inner),
        None => (optional, false, ty),
    }
}

fn struct_fields<'a>(items: &'a BTreeMap<String, Item>, name: &str) -> Result<&'a [Field], String> {
    match items.get(name).map(|i| &i.body) {
        Some(Body::Struct(fields)) => Ok(fields),
        _ => Err(format!("the schema has no struct {name}")),
    }
}

/// The smallest config the parser accepts: each required key holds a placeholder of its type.
/// With `full`, every optional part is there too (each optional section with only its required
/// keys, each list of sections with one), so parsed it shows the defaults inside them as well.
fn sample(items: &BTreeMap<String, Item>, name: &str, full: bool) -> Result<Value, String> {
    let mut map = Mapping::new();
    for f in struct_fields(items, name)? {
        let (optional, list, base) = shape(&f.ty);
        let nested = match items.get(base).map(|i| &i.body) {
            Some(Body::Struct(_)) => Some(sample(items, base, full)?),
            _ => None,
        };
        let value = match (nested, list) {
            (Some(_), _) if !full && !f.required && (optional || list) => continue,
            (Some(v), true) => Value::Sequence(vec![v]),
            (Some(v), false) if optional || f.required => v,
            // A section that always exists gets its defaults without being written; it is
            // written only for the optional parts inside it.
            (Some(v), false) if v.as_mapping().is_some_and(Mapping::is_empty) => continue,
            (Some(v), false) => v,
            (None, _) if !f.required => continue,
            (None, true) => Value::Sequence(Vec::new()),
            (None, false) => placeholder(items, base)?,
        };
        map.insert(Value::from(f.key.as_str()), value);
    }
    Ok(Value::Mapping(map))
}

fn placeholder(items: &BTreeMap<String, Item>, ty: &str) -> Result<Value, String> {
    Ok(match ty {
        "String" => Value::from("x"),
        "bool" => Value::from(false),
        "u8" | "u16" | "u32" | "u64" => Value::from(1),
        "f64" => Value::from(1.0),
        other => match items.get(other).map(|i| &i.body) {
            Some(Body::Enum(variants)) => Value::from(variants[0].0.as_str()),
            _ => return Err(format!("no placeholder for required keys of type {other}")),
        },
    })
}

/// The defaults the code fills into a [`sample`].
fn applied_defaults(items: &BTreeMap<String, Item>, full: bool) -> Result<Value, String> {
    let sample = sample(items, "Config", full)?;
    let text = serde_yaml_ng::to_string(&sample).map_err(|e| e.to_string())?;
    let config: ids2_core::config::Config = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("the generated sample config does not parse ({e}):\n{text}"))?;
    serde_yaml_ng::to_value(&config).map_err(|e| e.to_string())
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| match (v, key.as_str()) {
        (Value::Sequence(s), "[]") => s.first(),
        (Value::Mapping(m), k) => m.get(k),
        _ => None,
    })
}

/// A default as a reader would write it in config.yaml.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "unset".into(),
        Value::Sequence(items) => format!(
            "`[{}]`",
            items
                .iter()
                .map(|i| show(i).trim_matches('`').to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!(
            "`{}`",
            serde_yaml_ng::to_string(other)
                .unwrap_or_default()
                .trim_end()
        ),
    }
}

/// One table row: key (dotted below the section), default, meaning.
struct Row {
    key: String,
    default: String,
    meaning: String,
}

fn rows(
    items: &BTreeMap<String, Item>,
    defaults: &[Value; 2],
    ty: &str,
    path: &mut Vec<String>,
    prefix: &str,
    out: &mut Vec<Row>,
) -> Result<(), String> {
    for f in struct_fields(items, ty)? {
        let (optional, list, base) = shape(&f.ty);
        path.push(f.key.clone());
        let key = format!("{prefix}{}", f.key);
        let mut meaning = f.doc.clone();
        if let Some(Body::Enum(variants)) = items.get(base).map(|i| &i.body) {
            let values: Vec<String> = variants
                .iter()
                .map(|(v, d)| format!("`{v}`: {d}"))
                .collect();
            let _ = write!(meaning, " Values: {}", values.join(" "));
        }
        if path.join(".") == "suricata.eve_types" {
            // The accepted list is a constant of the code, not prose.
            let all = ids2_core::config::EVE_ALL_TYPES.join(", ");
            let _ = write!(meaning, " Accepted: {all}.");
        }
        let nested = matches!(items.get(base).map(|i| &i.body), Some(Body::Struct(_)));
        let default = if f.required {
            "**required**".to_string()
        } else if nested && !optional && !list {
            "(section)".to_string()
        } else if optional && nested {
            "unset".to_string()
        } else {
            // The minimal config first: a list of sections is empty unless written.
            let found = lookup(&defaults[0], path)
                .or_else(|| lookup(&defaults[1], path))
                .ok_or_else(|| format!("no default found for {}", path.join(".")))?;
            show(found)
        };
        out.push(Row {
            key: key.clone(),
            default,
            meaning,
        });
        if nested {
            let sub = if list {
                format!("{key}[].")
            } else {
                format!("{key}.")
            };
            if list {
                path.push("[]".into());
            }
            rows(items, defaults, base, path, &sub, out)?;
            if list {
                path.pop();
            }
        }
        path.pop();
    }
    Ok(())
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The whole reference, in the order of the file.
fn config_reference(dir: &Path) -> Result<String, String> {
    let items = parse_schema(dir)?;
    let defaults = [
        applied_defaults(&items, false)?,
        applied_defaults(&items, true)?,
    ];
    let mut out = String::new();
    let _ = write!(
        out,
        "# Config reference\n\n\
         <!-- Generated by `{COMMAND}` from the doc comments and defaults in core/src/config/. \
         Do not edit: change the code and regenerate; a test fails when this file differs. -->\n\n\
         The sensor reads `/etc/ids2/config.yaml` (the example is `agent/config.example.yaml`; \
         `ids2-provision sensor config` writes one for a provisioned domain). Every key is \
         optional except those marked **required**, and an omitted key takes the default shown. \
         Unknown keys are errors (with a \"did you mean\" hint), secrets never appear inline \
         (only the paths of files that hold them), and every problem in a file is reported at \
         once with its key path, the bad value and what is accepted: \
         `ids2-agent check-config FILE` checks a file without touching anything. Ranges in \
         parentheses are the values validation accepts. Each section's types, defaults and \
         rules live in its own module of `core/src/config/`.\n"
    );
    for section in struct_fields(&items, "Config")? {
        let (_, _, ty) = shape(&section.ty);
        let required = if section.required { " (required)" } else { "" };
        let item_doc = &items.get(ty).ok_or(format!("no section type {ty}"))?.doc;
        let _ = write!(out, "\n## `{}`{required}\n\n{item_doc}", section.key);
        out.push_str("\n\n| key | default | meaning |\n|---|---|---|\n");
        let mut section_rows = Vec::new();
        rows(
            &items,
            &defaults,
            ty,
            &mut vec![section.key.clone()],
            "",
            &mut section_rows,
        )?;
        for r in section_rows {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                r.key,
                cell(&r.default),
                cell(&r.meaning)
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src/config")
    }

    #[test]
    fn every_key_of_the_example_config_is_in_the_reference() {
        let text = config_reference(&schema_dir()).unwrap();
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/config.example.yaml"),
        )
        .unwrap();
        let example: Value = serde_yaml_ng::from_str(&example).unwrap();
        let Value::Mapping(sections) = example else {
            panic!("a mapping")
        };
        for (section, keys) in sections {
            let section = section.as_str().unwrap();
            assert!(text.contains(&format!("## `{section}`")), "{section}");
            if let Value::Mapping(keys) = keys {
                for key in keys.keys() {
                    let key = key.as_str().unwrap();
                    assert!(text.contains(&format!("| `{key}`")), "{section}.{key}");
                }
            }
        }
    }

    #[test]
    fn defaults_are_the_ones_the_code_applies() {
        let text = config_reference(&schema_dir()).unwrap();
        let minimal = ids2_core::config::from_str(
            "sensor: {id: s}\nopensearch: {domain: ids2, region: eu-west-1}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let c = &minimal.config;
        for (row, value) in [
            ("| `interface` |", format!("`{}`", c.capture.interface)),
            ("| `workers` |", format!("`{}`", c.capture.workers)),
            ("| `memory_mb` |", format!("`{}`", c.suricata.memory_mb)),
            ("| `listen` |", format!("`{}`", c.metrics.listen)),
            (
                "| `heartbeat_secs` |",
                format!("`{}`", c.fleet.heartbeat_secs),
            ),
            ("| `threshold` |", format!("`{}`", c.anomaly.threshold)),
        ] {
            let line = text.lines().find(|l| l.starts_with(row)).unwrap();
            assert!(
                line.contains(&format!("| {value} |")),
                "{line} should show {value}"
            );
        }
        assert!(text.contains("| `id` | **required** |"));
        assert!(text.contains("| `rules.thresholds[].sid` | **required** |"));
        assert!(
            text.contains("| `webhook.timeout_secs` | `10` |"),
            "optional sections show their defaults"
        );
    }

    /// Every plain range a key's doc states — "(A–B)" or "(A–B unit)" — is the range
    /// validation accepts: A and B pass, A−1 and B+1 are refused at that key.
    #[test]
    fn documented_ranges_are_the_ones_validation_accepts() {
        let items = parse_schema(&schema_dir()).unwrap();
        let mut probed = 0;
        let mut stack = vec![(String::from("Config"), Vec::<String>::new())];
        while let Some((ty, path)) = stack.pop() {
            for f in struct_fields(&items, &ty).unwrap() {
                let (optional, list, base) = shape(&f.ty);
                let mut p = path.clone();
                p.push(f.key.clone());
                if matches!(items.get(base).map(|i| &i.body), Some(Body::Struct(_))) {
                    // Optional sections and lists of them need their required keys; their
                    // ranges are probed by the sections' own tests.
                    if !optional && !list {
                        stack.push((base.to_string(), p));
                    }
                    continue;
                }
                if optional || list || !matches!(base, "u8" | "u16" | "u32") {
                    continue;
                }
                let Some((lo, hi)) = documented_range(&f.doc) else {
                    continue;
                };
                for (v, ok) in [(lo, true), (hi, true), (hi + 1, false)]
                    .into_iter()
                    .chain((lo > 0).then(|| (lo - 1, false)))
                {
                    assert_eq!(
                        problem_at(&p, v),
                        !ok,
                        "{} = {v}: its doc says ({lo}–{hi})",
                        p.join(".")
                    );
                }
                probed += 1;
            }
        }
        assert!(probed >= 20, "only {probed} ranges probed");
    }

    fn documented_range(doc: &str) -> Option<(u64, u64)> {
        doc.split('(').skip(1).find_map(|part| {
            let inner = part.split(')').next()?;
            let (lo, rest) = inner.split_once('–')?;
            let mut words = rest.split(' ');
            let hi = words.next()?;
            // Only a bare range with at most a unit: "and", commas or other words mean the
            // accepted values depend on more than this key.
            if words.clone().count() > 1 || inner.contains(',') {
                return None;
            }
            Some((lo.parse().ok()?, hi.parse().ok()?))
        })
    }

    /// Whether validation reports a problem at `path` when it is set to `v` in a minimal
    /// config (the required sections hold no integer keys).
    fn problem_at(path: &[String], v: u64) -> bool {
        let mut value = format!("{v}");
        for key in path.iter().rev() {
            value = format!("{{{key}: {value}}}");
        }
        let yaml = format!(
            "sensor: {{id: s}}\nopensearch: {{domain: ids2, region: eu-west-1}}\n{}\n",
            &value[1..value.len() - 1]
        );
        match ids2_core::config::from_str(&yaml, Path::new("t.yaml")) {
            Ok(_) => false,
            Err(ids2_core::config::ConfigError::Invalid { problems, .. }) => {
                problems.iter().any(|p| p.path == path.join("."))
            }
            Err(e) => panic!("{yaml}: {e}"),
        }
    }
}
