//! Conformance of the ECS mapping (`templates/ecs.vrl.tera`) on real data.
//!
//! - Real Suricata 7 reads every corpus pcap (`../shared/corpus/pcaps`) with OUR suricata.yaml,
//!   rendered by `ids2_agent::render` from a config enabling every EVE type the config accepts
//!   (only live-capture settings are overridden on the command line); every EVE line is mapped
//!   with the `vrl` crate and each field outside `suricata.*` is checked against the ECS reference
//!   (`corpus/ecs/fields.csv`) and `templates/ecs_fields.tsv`.
//! - Elastic's own pipeline output for its sample EVE (`corpus/elastic-suricata`) is compared
//!   with ours on the core fields the corpus README lists.
//! - Document ids are stable and unique.
//! - The real Vector maps every corpus line to the document the `vrl` crate makes of it.
//!
//! Tests skip, saying why, when the corpus, Suricata or (for the last) Vector is absent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ids2_agent::config::EVE_ALL_TYPES;
use ids2_agent::ecs::{fields::emitted_fields, Mapper, ProgramVars};
use ids2_agent::render::{render, Profile, RenderOptions, RenderedSet, SURICATA_YAML, VECTOR_TOML};
use serde_json::Value;

#[path = "../../agent/tests/support/vector.rs"]
mod real_vector;

/// Suricata gets this long for the whole corpus (it needs well under a second).
const SURICATA_TIMEOUT: Duration = Duration::from_secs(180);

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("IDS2_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    if dir.join("pcaps").is_dir() && dir.join("ecs/fields.csv").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: the test corpus is absent ({}); set IDS2_CORPUS or check out ../shared/corpus",
            dir.display()
        );
        None
    }
}

fn vars() -> ProgramVars {
    ProgramVars {
        sensor_id: "conformance-1".into(),
        sensor_name: "Conformance sensor".into(),
        interface: "eth0".into(),
        home_net: ["192.168.0.0/16", "10.0.0.0/8", "172.16.0.0/12"]
            .map(String::from)
            .to_vec(),
        evidence: true,
    }
}

fn mapper() -> Mapper {
    Mapper::from_vars(&vars()).expect("the shipped ECS program compiles")
}

/// Rules that make alerts carry app-layer metadata (http, dns, tls, ssh) besides Suricata's
/// own event rules, so alert mapping is exercised with every kind of payload.
const TEST_RULES: &str = r#"alert http any any -> any any (msg:"ids2 conformance: HTTP request"; flow:established,to_server; http.method; content:"GET"; sid:9000001; rev:1;)
alert dns any any -> any any (msg:"ids2 conformance: DNS query"; dns.query; content:"."; sid:9000002; rev:1;)
alert tls any any -> any any (msg:"ids2 conformance: TLS SNI"; tls.sni; content:"."; sid:9000003; rev:1;)
alert ssh any any -> any any (msg:"ids2 conformance: SSH"; ssh.proto; content:"2.0"; sid:9000004; rev:1;)
alert smb any any -> any any (msg:"ids2 conformance: SMB"; smb.share; content:"$"; sid:9000006; rev:1;)
alert ip any any -> any any (msg:"ids2 conformance: first packet per source"; threshold: type limit, track by_src, count 1, seconds 3600; sid:9000005; rev:1;)
"#;

/// Suricata's own event rules shipped with the package (decoder, stream and app-layer anomalies,
/// file events): in production suricata-update puts them into `suricata.rules` too.
const STOCK_RULES: &[&str] = &[
    "app-layer-events",
    "decoder-events",
    "stream-events",
    "http-events",
    "dns-events",
    "tls-events",
    "smtp-events",
    "smb-events",
    "files",
];

/// The rule set the rendered config loads as `<rules_dir>/suricata.rules`: the stock event rules
/// that are installed plus [`TEST_RULES`].
fn rule_set() -> String {
    let mut rules = String::new();
    for name in STOCK_RULES {
        if let Ok(text) = std::fs::read_to_string(format!("/etc/suricata/rules/{name}.rules")) {
            rules.push_str(&text);
            rules.push('\n');
        }
    }
    rules + TEST_RULES
}

/// OUR suricata.yaml, rendered by `ids2_agent::render` (profile Full) from a config whose
/// `suricata.eve_types` lists every EVE type the config module accepts, with every path inside
/// `work`.
fn rendered_config(work: &Path) -> RenderedSet {
    let q = |p: PathBuf| format!("'{}'", p.display());
    let yaml = format!(
        "sensor: {{id: conformance-1, name: Conformance sensor}}\n\
         capture: {{interface: eth0, home_net: [192.168.0.0/16, 10.0.0.0/8, 172.16.0.0/12]}}\n\
         opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://os.example'}}\n\
         logs: {{path: {logs}}}\n\
         suricata: {{rules_dir: {rules}, socket_path: {socket}, eve_types: [{types}]}}\n\
         paths: {{rendered_dir: {rendered}}}\n",
        logs = q(work.join("logs")),
        rules = q(work.join("rules")),
        socket = q(work.join("suricata.socket")),
        types = EVE_ALL_TYPES.join(", "),
        rendered = q(work.join("rendered")),
    );
    let settings = ids2_agent::config::from_str(&yaml, &work.join("config.yaml"))
        .unwrap_or_else(|e| panic!("the conformance config is valid: {e}\n{yaml}"));
    let opts = RenderOptions {
        profile: Profile::Full,
        rendered_dir: Some(work.join("rendered")),
        ..RenderOptions::default()
    };
    render(&settings, &opts).expect("the conformance config renders")
}

/// Writes the rendered generation as the agent lays it out (`rendered/generations/1`, `current`
/// pointing at it) and the rule set; returns the `suricata.yaml` to run.
fn install_rendered(work: &Path) -> PathBuf {
    let generation = work.join("rendered/generations/1");
    for (path, bytes) in &rendered_config(work).files {
        let file = generation.join(path);
        std::fs::create_dir_all(file.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(&file, bytes).expect("write rendered file");
    }
    std::os::unix::fs::symlink("generations/1", work.join("rendered/current"))
        .expect("link current generation");
    std::fs::create_dir_all(work.join("rules")).expect("mkdir rules");
    std::fs::write(work.join("rules/suricata.rules"), rule_set()).expect("write rule set");
    let config = work.join("rendered/current").join(SURICATA_YAML);
    let text = std::fs::read_to_string(&config).expect("read rendered suricata.yaml");
    for t in EVE_ALL_TYPES {
        // The template names fileinfo's output `files`.
        let output = if *t == "fileinfo" { "files" } else { t };
        let entry = format!("- {output}");
        assert!(
            text.lines()
                .any(|l| l.trim() == entry || l.trim() == format!("{entry}:")),
            "the rendered suricata.yaml does not enable EVE type {t}"
        );
    }
    config
}

/// The corpus EVE, made once per test process and cached on disk across processes (nextest
/// runs each test in its own process): `target/tmp/ecs-conformance/eve.json`.
fn corpus_eve() -> Option<&'static Vec<String>> {
    static EVE: OnceLock<Option<Vec<String>>> = OnceLock::new();
    EVE.get_or_init(|| {
        let corpus = corpus()?;
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ecs-conformance");
        let eve = cache.join("eve.json");
        let stamp = cache.join("stamp");
        let fingerprint = fingerprint(&corpus);
        let fresh = std::fs::read_to_string(&stamp).is_ok_and(|s| s == fingerprint);
        if !fresh {
            if Command::new("suricata").arg("-V").output().is_err() {
                eprintln!(
                    "SKIP: needs Suricata 7 (`suricata` on PATH; .ci/install-deps installs it)"
                );
                return None;
            }
            // Build in a private directory, then rename it into place: concurrent test
            // processes never see a half-written cache.
            let work = cache.with_file_name(format!("ecs-conformance.{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work).expect("create work dir");
            let config = install_rendered(&work);
            run_suricata(&corpus.join("pcaps"), &config, &work);
            std::fs::write(work.join("stamp"), &fingerprint).expect("write stamp");
            let _ = std::fs::remove_dir_all(&cache);
            if std::fs::rename(&work, &cache).is_err() {
                // Another process won the race with the same inputs; use its output.
                let _ = std::fs::remove_dir_all(&work);
            }
        }
        let text = std::fs::read_to_string(&eve).expect("read cached eve.json");
        Some(text.lines().map(str::to_string).collect())
    })
    .as_ref()
}

/// Identifies the inputs of the cached run: the pcap names and sizes, config and program.
fn fingerprint(corpus: &Path) -> String {
    let mut entries: Vec<_> = std::fs::read_dir(corpus.join("pcaps"))
        .expect("read pcaps dir")
        .filter_map(Result::ok)
        .map(|e| {
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            format!("{}:{len}", e.file_name().to_string_lossy())
        })
        .collect();
    entries.sort();
    entries.push(rule_set());
    for (path, bytes) in rendered_config(Path::new("/fingerprint")).files {
        entries.push(path);
        entries.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    format!("{:x}", fnv(entries.join("\n").as_bytes()))
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// `suricata -r <pcap dir>` reads every capture in the directory in one run (Suricata 7 reads a
/// directory's files in order and stops at the end unless `--pcap-file-continuous`). Offline,
/// the live-capture settings of the rendered config are overridden: one thread instead of
/// af-packet workers, no CPU pinning (the sensor's cores may not exist here), no unix socket,
/// the EVE directory under `dir` (`-l`). Everything else (EVE types, parsers, memcaps) is ours.
fn run_suricata(pcaps: &Path, config: &Path, dir: &Path) {
    let mut child = Command::new("suricata")
        .arg("-r")
        .arg(pcaps)
        .arg("-c")
        .arg(config)
        .arg("-l")
        .arg(dir)
        .args(["-k", "none", "--runmode", "single"])
        .args(["--set", "threading.set-cpu-affinity=no"])
        .args(["--set", "unix-command.enabled=no"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("suricata.stderr")).expect("stderr file"))
        .spawn()
        .expect("start suricata");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for suricata") {
            break status;
        }
        if started.elapsed() > SURICATA_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("suricata did not finish within {SURICATA_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.join("suricata.stderr")).unwrap_or_default();
    assert!(status.success(), "suricata failed ({status}):\n{log}");
    let eve = std::fs::metadata(dir.join("eve.json"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(eve > 0, "suricata wrote no EVE:\n{log}");
}

/// Maps every line on two threads (the machine has two cores); results keep input order.
fn map_all(lines: &[String]) -> Vec<Result<Value, String>> {
    let half = lines.len().div_ceil(2).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(half)
            .map(|chunk| {
                s.spawn(move || {
                    let mut m = mapper();
                    chunk
                        .iter()
                        .map(|l| m.map_line(l).map_err(|e| e.to_string()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("mapping thread"))
            .collect()
    })
}

/// ECS reference: field name → type.
fn ecs_reference(corpus: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(corpus.join("ecs/fields.csv")).expect("read fields.csv");
    let mut fields = HashMap::new();
    for line in text.lines().skip(1) {
        // ECS_Version,Indexed,Field_Set,Field,Type,...: the first five columns are never quoted.
        let cols: Vec<&str> = line.splitn(6, ',').collect();
        if cols.len() == 6 && cols[0].chars().next().is_some_and(|c| c.is_ascii_digit()) {
            fields.insert(cols[3].to_string(), cols[4].to_string());
        }
    }
    assert!(
        fields.len() > 1000,
        "fields.csv parsed to only {} fields",
        fields.len()
    );
    fields
}

/// Every leaf of a document outside `suricata.*`: (dotted name, value). Arrays of scalars
/// yield one entry per element; arrays of objects contribute their members' leaves.
fn leaves<'a>(prefix: &str, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
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
        Value::Array(items) => {
            for item in items {
                leaves(prefix, item, out);
            }
        }
        _ => out.push((prefix.to_string(), value)),
    }
}

/// Whether a JSON value can be indexed as this ECS type.
fn type_ok(ecs_type: &str, v: &Value) -> bool {
    match ecs_type {
        "keyword" | "wildcard" | "match_only_text" | "text" | "constant_keyword" => v.is_string(),
        "ip" => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        "long" | "integer" | "short" | "byte" | "unsigned_long" => v.is_i64() || v.is_u64(),
        "float" | "double" | "scaled_float" | "half_float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "date" => v.as_str().is_some_and(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
        }),
        _ => false,
    }
}

#[test]
fn corpus_eve_maps_without_errors_into_the_ecs_schema() {
    let Some(corpus) = corpus() else { return };
    let Some(lines) = corpus_eve() else { return };
    let reference = ecs_reference(&corpus);
    let listed: BTreeMap<&str, &str> = emitted_fields()
        .iter()
        .map(|f| (f.name, f.ecs_type))
        .collect();
    for (name, ty) in &listed {
        assert_eq!(
            reference.get(*name).map(String::as_str),
            Some(*ty),
            "ecs_fields.tsv lists {name} as {ty}; the ECS reference disagrees"
        );
    }

    let mapped = map_all(lines);
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut problems: BTreeMap<String, String> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (line, result) in lines.iter().zip(&mapped) {
        let doc = match result {
            Ok(doc) => doc,
            Err(e) => {
                errors.push(format!("{e}\n    {line}"));
                continue;
            }
        };
        let dataset = doc["event"]["dataset"].as_str().unwrap_or("?").to_string();
        *types.entry(dataset).or_default() += 1;
        let mut out = Vec::new();
        leaves("", doc, &mut out);
        for (name, value) in out {
            seen.insert(name.clone());
            let problem = match (reference.get(&name), listed.get(name.as_str())) {
                (None, _) => Some("not an ECS field".to_string()),
                (Some(ty), _) if !type_ok(ty, value) => {
                    Some(format!("{value} is not a valid {ty}"))
                }
                (Some(_), None) => Some("missing from templates/ecs_fields.tsv".to_string()),
                _ => None,
            };
            if let Some(p) = problem {
                problems.entry(name).or_insert(p);
            }
        }
    }
    eprintln!(
        "mapped {} EVE lines from the corpus pcaps; by event.dataset:",
        lines.len()
    );
    for (t, n) in &types {
        eprintln!("  {t:32} {n}");
    }
    let unseen: Vec<_> = listed.keys().filter(|f| !seen.contains(**f)).collect();
    eprintln!("listed fields the corpus did not produce: {unseen:?}");
    assert!(
        errors.is_empty(),
        "{} VRL errors, first: {:#?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(problems.is_empty(), "out-of-schema fields: {problems:#?}");
    assert!(types.len() >= 15, "too few event types covered: {types:?}");
}

/// The EVE lines of Elastic's samples with Elastic's expected documents, in order.
fn elastic_pairs(corpus: &Path) -> Vec<(String, Value)> {
    let dir = corpus.join("elastic-suricata");
    let mut pairs = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("read elastic-suricata")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with("-expected.json"))
        .collect();
    names.sort();
    for name in names {
        let read = |p: PathBuf| -> Value {
            serde_json::from_str(&std::fs::read_to_string(&p).expect("read sample"))
                .expect("sample is JSON")
        };
        let expected = read(dir.join(format!("{name}-expected.json")));
        let expected = expected["expected"].as_array().expect("`expected` array");
        let lines: Vec<String> = if name.ends_with(".json") {
            // Filebeat-shaped input: the EVE line is in event.original.
            read(dir.join(&name))["events"]
                .as_array()
                .expect("`events` array")
                .iter()
                .map(|e| {
                    e["event"]["original"]
                        .as_str()
                        .expect("event.original")
                        .to_string()
                })
                .collect()
        } else {
            std::fs::read_to_string(dir.join(&name))
                .expect("read sample")
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            lines.len(),
            expected.len(),
            "{name}: inputs and expected differ in count"
        );
        pairs.extend(lines.into_iter().zip(expected.iter().cloned()));
    }
    pairs
}

/// Core fields per the corpus README.
fn is_core(path: &str) -> bool {
    // What Elastic's user_agent processor derives from the header (browser and OS names and
    // versions, device) is deliberately not made on the sensor: it cost an HTTP event ~300 µs
    // and Vector ~150 MB (docs/ecs.md). The header itself, user_agent.original, is compared.
    if path.starts_with("user_agent.") && path != "user_agent.original" {
        return false;
    }
    const PREFIXES: &[&str] = &[
        "source.",
        "destination.",
        "network.",
        "rule.",
        "dns.",
        "http.",
        "url.",
        "tls.",
        "user_agent.",
    ];
    PREFIXES.iter().any(|p| path.starts_with(p))
        || ["event.kind", "event.category", "event.type", "@timestamp"].contains(&path)
}

/// Leaves with array indices kept for arrays of objects (`dns.answers[0].data`).
fn indexed_leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                indexed_leaves(&name, v, out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for (i, item) in items.iter().enumerate() {
                indexed_leaves(&format!("{prefix}[{i}]"), item, out);
            }
        }
        _ => out.push((prefix.to_string(), value.clone())),
    }
}

/// Values compared as meaning, not spelling: IPs canonical, dates at Elastic's millisecond
/// precision, arrays of scalars as sets, whole floats as integers.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let set: BTreeSet<String> = items.iter().map(|i| normalise(i).to_string()).collect();
            Value::from(set.into_iter().collect::<Vec<_>>())
        }
        Value::String(s) => {
            if let Ok(ip) = s.parse::<IpAddr>() {
                return Value::from(ip.to_string());
            }
            if let Ok(t) =
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            {
                let ms = t.unix_timestamp_nanos() / 1_000_000;
                return Value::from(format!("date:{ms}"));
            }
            v.clone()
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && !n.is_f64() => v.clone(),
            Some(f) if f.fract() == 0.0 => Value::from(f as i64),
            _ => v.clone(),
        },
        _ => v.clone(),
    }
}

#[test]
fn agrees_with_elastic_on_core_fields() {
    let Some(corpus) = corpus() else { return };
    let pairs = elastic_pairs(&corpus);
    let mut m = mapper();
    let mut per_field: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut examples: BTreeMap<String, String> = BTreeMap::new();
    for (line, expected) in &pairs {
        let ours = m.map_line(line).unwrap_or_else(|e| panic!("{e}\n{line}"));
        let mut ours_flat = Vec::new();
        indexed_leaves("", &ours, &mut ours_flat);
        let ours_flat: HashMap<String, Value> = ours_flat.into_iter().collect();
        let mut theirs = Vec::new();
        indexed_leaves("", expected, &mut theirs);
        for (path, want) in theirs {
            let field = path.split('[').next().unwrap_or(&path).to_string()
                + &path.split(']').skip(1).collect::<Vec<_>>().join("");
            if !is_core(&path) {
                continue;
            }
            let got = ours_flat.get(&path);
            let same = got.is_some_and(|g| normalise(g) == normalise(&want));
            let entry = per_field.entry(field.clone()).or_default();
            entry.1 += 1;
            if same {
                entry.0 += 1;
            } else {
                examples
                    .entry(field)
                    .or_insert_with(|| format!("Elastic {want}, ids2 {got:?}"));
            }
        }
    }
    let (agree, total) = per_field
        .values()
        .fold((0, 0), |(a, t), (fa, ft)| (a + fa, t + ft));
    eprintln!("agreement with Elastic's pipeline per core field (agreeing/compared):");
    for (field, (a, t)) in &per_field {
        let note = examples
            .get(field)
            .map(|e| format!("  e.g. {e}"))
            .unwrap_or_default();
        eprintln!("  {field:45} {a:>4}/{t:<4}{note}");
    }
    let ratio = agree as f64 / total as f64;
    eprintln!("overall: {agree}/{total} = {:.1}%", ratio * 100.0);
    assert!(
        total > 500,
        "too few values compared ({total}); is the corpus complete?"
    );
    assert!(ratio >= 0.95, "agreement {:.1}% < 95%", ratio * 100.0);
}

#[test]
fn document_ids_are_stable_and_unique() {
    let Some(corpus) = corpus() else { return };
    let mut lines: Vec<String> = corpus_eve().cloned().unwrap_or_default();
    lines.extend(elastic_pairs(&corpus).into_iter().map(|(l, _)| l));
    let first = map_all(&lines);
    let second = map_all(&lines);
    let id = |r: &Result<Value, String>| -> String {
        let doc = r.as_ref().expect("corpus EVE maps");
        doc["event"]["id"]
            .as_str()
            .expect("event.id is a string")
            .to_string()
    };
    let mut owner: HashMap<String, &str> = HashMap::new();
    let mut collisions = Vec::new();
    for ((line, a), b) in lines.iter().zip(&first).zip(&second) {
        let (ia, ib) = (id(a), id(b));
        assert_eq!(ia, ib, "same EVE, different ids: {line}");
        assert_eq!(ia.len(), 64, "id is a SHA-256 hex digest");
        if let Some(prev) = owner.insert(ia.clone(), line) {
            // Byte-identical EVE lines are the same event (the samples repeat some).
            let same_event = serde_json::from_str::<Value>(prev).ok()
                == serde_json::from_str::<Value>(line).ok();
            if !same_event {
                collisions.push(format!("{ia}:\n  {prev}\n  {line}"));
            }
        }
    }
    eprintln!("{} events, {} distinct ids", lines.len(), owner.len());
    assert!(
        collisions.is_empty(),
        "{} different events share an id, first: {}",
        collisions.len(),
        collisions[0]
    );
}

/// The one program in its two VRL implementations: the real Vector (0.58, the VRL it pins) runs
/// the rendered `vector.toml`'s remaps over every corpus line, and each document must equal the
/// one `Mapper` (the `vrl` crate, what `ids2-agent ecs`, the notifications and the lab's archive
/// use) makes of the line. A function that behaves otherwise in one of them shows here.
#[test]
fn the_real_vector_maps_every_line_as_the_mapper_does() {
    let Some(lines) = corpus_eve() else { return };
    let work = tempfile::tempdir().unwrap();
    let set = rendered_config(work.path());
    let text = String::from_utf8(set.get(VECTOR_TOML).unwrap().to_vec()).unwrap();
    let Some(shipped) = real_vector::run_mapping(&text, lines) else {
        return;
    };
    let by_id: HashMap<&str, &Value> = shipped
        .iter()
        .map(|d| (d["event"]["id"].as_str().expect("event.id"), d))
        .collect();
    let mut differ = Vec::new();
    for (line, mapped) in lines.iter().zip(map_all(lines)) {
        let mapped = mapped.unwrap_or_else(|e| panic!("{e}: {line}"));
        let doc = by_id.get(mapped["event"]["id"].as_str().unwrap()).copied();
        if Some(&mapped) != doc {
            differ.push(format!(
                "{line}\n  vrl crate: {mapped}\n  Vector:    {doc:?}"
            ));
        }
    }
    eprintln!("{} lines, {} documents differ", lines.len(), differ.len());
    assert!(
        differ.is_empty(),
        "{} of {} documents differ, the first: {}",
        differ.len(),
        lines.len(),
        differ[0]
    );
}
