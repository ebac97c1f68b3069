//! Heartbeats end to end on the sensor side: the agent writes them where the rendered
//! `vector.toml` reads them, the heartbeat remap embedded there (run by the real VRL runtime)
//! types and ids them, and every field outside `ids2.*` is an ECS field of a compatible type
//! (`../shared/corpus/ecs/fields.csv`; that part skips when the corpus is absent).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ids2_agent::config::{self, Settings};
use ids2_agent::ecs::Mapper;
use ids2_agent::fleet::heartbeat::{self, Heartbeat, FIELDS, HEARTBEAT_FILE, ROTATED_FILE};
use ids2_agent::metrics::Metrics;
use ids2_agent::render;
use ids2_core::heartbeat::IntelFeedState;
use vrl::value::Value as VrlValue;

#[path = "support/rendered.rs"]
mod rendered;
use rendered::{ecs_reference, strings, table, vector_toml};

/// Runs a remap program on one line as Vector's file source hands it over (in `message`).
fn run_vrl(program: &str, line: &str) -> Result<VrlValue, String> {
    Mapper::from_source(program)
        .map_err(|e| e.to_string())?
        .map_value(line)
        .map_err(|e| e.to_string())
}

fn settings(logs: &Path) -> Settings {
    config::from_str(
        &format!(
            "sensor: {{id: lab-7, name: Lab seven}}\n\
             opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://os.example', index_prefix: corp}}\n\
             logs: {{path: {logs:?}}}\nsuricata: {{rules_dir: {rules:?}}}\nhistory: {{repo: {repo:?}}}\n\
             fleet: {{heartbeat_secs: 5, offline_after_secs: 20}}\n\
             intel: {{dir: {intel:?}, scheduled: false, feeds: [\
               {{name: own-c2, source: 'file:///srv/c2.txt', format: plain, kind: ip, interval_secs: 3600}},\
               {{name: own-ja3, source: 'file:///srv/ja3.txt', format: plain, kind: ja3}}]}}\n",
            rules = logs.join("rules"),
            repo = logs.join("history.git"),
            intel = logs.join("intel"),
        ),
        Path::new("t.yaml"),
    )
    .unwrap()
}

fn flatten(prefix: &str, v: &VrlValue, out: &mut Vec<(String, VrlValue)>) {
    match v {
        VrlValue::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// Records `own-c2` as updated ten minutes ago and `own-ja3` as never updated, as
/// `ids2-agent intel update` does when the second feed's download fails.
fn record_intel_states(s: &Settings) {
    let updated = (time::OffsetDateTime::now_utc() - time::Duration::minutes(10))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let states = [
        IntelFeedState {
            name: "own-c2".into(),
            kind: "ip".into(),
            version: "0123456789abcdef".into(),
            indicators: 12,
            updated: updated.clone(),
            attempted: updated.clone(),
            ..Default::default()
        },
        IntelFeedState {
            name: "own-ja3".into(),
            kind: "ja3".into(),
            version: "none".into(),
            attempted: updated,
            error: Some("cannot read /srv/ja3.txt".into()),
            failures: 1,
            ..Default::default()
        },
    ]
    .map(|st| (st.name.clone(), st))
    .into();
    IntelFeedState::write_all(Path::new(&s.config.intel.dir), &states).unwrap();
}

/// Writes two real heartbeats with live-looking metrics and intel feed states; returns the
/// lines as written.
fn write_heartbeats(s: &Settings) -> Vec<String> {
    record_intel_states(s);
    let metrics = Arc::new(Metrics::new("t"));
    metrics.host_cpu.set(&[], 0.25);
    metrics.host_memory.set(&[], 0.5);
    metrics.capture_packets.set(&[], 1000.0);
    metrics.capture_drops.set(&[], 2.0);
    metrics.connectivity_up.set(&["dns", "os.example"], 1.0);
    let mut hb = Heartbeat::new(Arc::new(s.clone()), metrics.clone(), Instant::now());
    hb.beat().unwrap();
    metrics.eve_events.inc_by(&["alert"], 1.0);
    std::thread::sleep(std::time::Duration::from_millis(5));
    hb.beat().unwrap();
    let path = Path::new(&s.config.logs.path).join(HEARTBEAT_FILE);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn rendered_vector_wires_heartbeat_file_to_the_heartbeat_index() {
    let logs = tempfile::tempdir().unwrap();
    let s = settings(logs.path());
    let doc = vector_toml(&s);
    let (sources, transforms, sinks) = (
        table(&doc, "sources"),
        table(&doc, "transforms"),
        table(&doc, "sinks"),
    );
    let source = table(sources, "heartbeat");
    assert_eq!(source["type"].as_str(), Some("file"));
    let written = logs.path().join(HEARTBEAT_FILE);
    assert_eq!(
        strings(&source["include"]),
        [
            written.display().to_string(),
            logs.path().join(ROTATED_FILE).display().to_string()
        ]
    );
    assert_eq!(
        heartbeat::HeartbeatWriter::new(logs.path()).path(),
        written,
        "the agent writes where Vector reads"
    );
    let remap = table(transforms, "heartbeat_ecs");
    assert_eq!(strings(&remap["inputs"]), ["heartbeat"]);
    let sink = table(sinks, "opensearch_heartbeat");
    assert_eq!(sink["type"].as_str(), Some("elasticsearch"));
    assert_eq!(strings(&sink["inputs"]), ["heartbeat_ecs"]);
    assert_eq!(strings(&sink["endpoints"]), ["https://os.example"]);
    assert_eq!(sink["id_key"].as_str(), Some(render::DOC_ID_FIELD));
    let bulk = table(sink, "bulk");
    assert_eq!(bulk["action"].as_str(), Some("index"));
    assert_eq!(bulk["index"].as_str(), Some("corp-heartbeat-%Y.%m.%d"));
    let buffer = table(sink, "buffer");
    assert_eq!(buffer["type"].as_str(), Some("disk"));
    assert_eq!(buffer["when_full"].as_str(), Some("block"));
    assert!(buffer["max_size"].as_integer().unwrap() >= 268_435_488);
    assert_eq!(table(sink, "auth")["strategy"].as_str(), Some("aws"));
    // Heartbeats stay out of the event indices and events out of the heartbeat index.
    for (name, other) in sinks.iter().filter(|(n, _)| *n != "opensearch_heartbeat") {
        if let Some(inputs) = other.get("inputs") {
            let inputs = strings(inputs);
            assert!(
                !inputs.iter().any(|i| i.starts_with("heartbeat")),
                "{name} reads heartbeats"
            );
        }
    }
}

#[test]
fn heartbeat_remap_types_and_ids_real_heartbeats() {
    let logs = tempfile::tempdir().unwrap();
    let s = settings(logs.path());
    let doc = vector_toml(&s);
    let program = table(table(&doc, "transforms"), "heartbeat_ecs")["source"]
        .as_str()
        .unwrap()
        .to_string();
    let lines = write_heartbeats(&s);
    assert_eq!(lines.len(), 2);
    let outs: Vec<VrlValue> = lines
        .iter()
        .map(|l| run_vrl(&program, l).unwrap())
        .collect();
    for (line, out) in lines.iter().zip(&outs) {
        let written: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = out.as_object().unwrap().get("@timestamp").unwrap();
        let ts = ts.as_timestamp().expect("@timestamp is a timestamp");
        assert_eq!(
            ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            written["@timestamp"].as_str().unwrap()
        );
        let mut fields = Vec::new();
        flatten("", out, &mut fields);
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"event.id"));
        assert!(names.contains(&"observer.hostname"));
        for (name, _) in &fields {
            assert!(
                name == "event.id" || FIELDS.iter().any(|f| f.name == name),
                "{name} is not in fleet::heartbeat::FIELDS"
            );
        }
    }
    let id = |v: &VrlValue| {
        String::from_utf8_lossy(
            v.as_object().unwrap()["event"].as_object().unwrap()["id"]
                .as_bytes()
                .unwrap(),
        )
        .into_owned()
    };
    assert_eq!(
        id(&outs[0]),
        id(&run_vrl(&program, &lines[0]).unwrap()),
        "replay, same id"
    );
    assert_ne!(id(&outs[0]), id(&outs[1]), "another beat, another id");
    assert_eq!(id(&outs[0]).len(), 64);
}

#[test]
fn heartbeat_carries_the_intel_feed_versions_and_names_the_stale_ones() {
    let logs = tempfile::tempdir().unwrap();
    let s = settings(logs.path());
    let lines = write_heartbeats(&s);
    let doc: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    let intel = &doc["ids2"]["intel"];
    assert_eq!(
        intel["versions"],
        serde_json::json!(["own-c2:0123456789abcdef", "own-ja3:none"])
    );
    assert_eq!(intel["stale"], serde_json::json!(["own-ja3"]), "{doc}");
    let updated = intel["updated"].as_str().unwrap();
    let t = time::OffsetDateTime::parse(updated, &time::format_description::well_known::Rfc3339)
        .unwrap();
    let age = time::OffsetDateTime::now_utc() - t;
    assert!(
        age > time::Duration::minutes(9) && age < time::Duration::minutes(11),
        "{updated}"
    );
    // Without feeds configured the heartbeat has no intel section at all.
    let bare = config::from_str(
        &format!(
            "sensor: {{id: lab-7}}\nopensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://os.example'}}\n\
             logs: {{path: {:?}}}\n",
            logs.path()
        ),
        Path::new("t.yaml"),
    )
    .unwrap();
    let mut hb = Heartbeat::new(Arc::new(bare), Arc::new(Metrics::new("t")), Instant::now());
    let doc = heartbeat::document(&hb.snapshot());
    assert!(doc["ids2"].get("intel").is_none(), "{doc}");
}

/// Whether a value is what an index field of this ECS type accepts.
fn value_fits(ecs_type: &str, v: &VrlValue) -> bool {
    match ecs_type {
        "keyword" | "constant_keyword" | "wildcard" => v.as_bytes().is_some(),
        "date" => v.as_timestamp().is_some() || v.as_bytes().is_some(),
        "long" | "integer" => v.as_integer().is_some(),
        "scaled_float" | "float" | "double" => v.as_integer().is_some() || v.as_float().is_some(),
        _ => false,
    }
}

#[test]
fn heartbeat_documents_pass_the_ecs_field_check() {
    let Some(ecs) = ecs_reference() else {
        eprintln!(
            "skipped: needs ../shared/corpus/ecs/fields.csv (the shared corpus) beside the project"
        );
        return;
    };
    // The declared list: every field outside ids2.* is ECS with exactly its ECS type.
    for f in FIELDS.iter().filter(|f| !f.name.starts_with("ids2.")) {
        assert_eq!(
            ecs.get(f.name).map(String::as_str),
            Some(f.ecs_type),
            "{} is not an ECS {} field",
            f.name,
            f.ecs_type
        );
    }
    // What Vector ships: every field outside ids2.* exists with a type its value fits.
    let logs = tempfile::tempdir().unwrap();
    let s = settings(logs.path());
    let doc = vector_toml(&s);
    let program = table(table(&doc, "transforms"), "heartbeat_ecs")["source"]
        .as_str()
        .unwrap()
        .to_string();
    let mut checked = 0;
    for line in write_heartbeats(&s) {
        let mut fields = Vec::new();
        flatten("", &run_vrl(&program, &line).unwrap(), &mut fields);
        for (name, value) in fields.iter().filter(|(n, _)| !n.starts_with("ids2.")) {
            let ecs_type = ecs
                .get(name)
                .unwrap_or_else(|| panic!("{name} is not in the ECS reference"));
            assert!(
                value_fits(ecs_type, value),
                "{name}: {value:?} does not fit ECS type {ecs_type}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} fields checked");
}
