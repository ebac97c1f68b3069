//! Rendered files: snapshots, the Vector wiring read back as TOML, the ECS program run by the
//! real VRL runtime, and the real `suricata -T` on rendered configs (skipped, with a message,
//! when Suricata is not installed; CI installs it).

use std::fs;
use std::path::{Path, PathBuf};

use ids2_agent::apply::{self, ApplyError, Outcome, Validator};
use ids2_agent::config::{self, Settings};
use ids2_agent::render::{self, Profile, RenderOptions, RenderedSet};
use ids2_agent::suricata::{Suricata, SuricataError};
use toml::{Table, Value};

#[path = "support/vector.rs"]
mod real_vector;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml")
}

fn example() -> Settings {
    config::load(&example_path()).unwrap()
}

fn settings(text: &str) -> Settings {
    config::from_str(text, Path::new("test.yaml")).unwrap()
}

fn text(set: &RenderedSet, path: &str) -> String {
    String::from_utf8(set.get(path).unwrap().to_vec()).unwrap()
}

fn render_default(s: &Settings) -> RenderedSet {
    render::render(s, &RenderOptions::default()).unwrap()
}

fn snapshot_filters() -> Vec<(&'static str, &'static str)> {
    vec![(r"ids2-agent \d+\.\d+\.\d+\S*", "ids2-agent [version]")]
}

#[test]
fn example_suricata_yaml_snapshot() {
    let yaml = text(&render_default(&example()), render::SURICATA_YAML);
    insta::with_settings!({ filters => snapshot_filters() }, {
        insta::assert_snapshot!("example_suricata_yaml", yaml);
    });
}

#[test]
fn example_vector_toml_snapshot() {
    let toml = text(&render_default(&example()), render::VECTOR_TOML);
    insta::with_settings!({ filters => snapshot_filters() }, {
        insta::assert_snapshot!("example_vector_toml", toml);
    });
}

fn table<'a>(t: &'a Table, key: &str) -> &'a Table {
    t.get(key)
        .and_then(Value::as_table)
        .unwrap_or_else(|| panic!("missing table {key}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn vector_toml_wiring() {
    let s = example();
    let rendered = text(&render_default(&s), render::VECTOR_TOML);
    real_vector::validate("example config's", &rendered);
    let doc: Table = rendered.parse().unwrap();
    assert_eq!(doc["data_dir"].as_str(), Some("/var/lib/vector"));
    assert_eq!(
        table(&doc, "log_schema")["timestamp_key"].as_str(),
        Some("@timestamp")
    );

    let sources = table(&doc, "sources");
    let transforms = table(&doc, "transforms");
    let sinks = table(&doc, "sinks");

    let eve = table(sources, "eve");
    assert_eq!(eve["type"].as_str(), Some("file"));
    assert_eq!(
        strings(&eve["include"]),
        [
            "/mnt/ram_logs/eve.json",
            "/mnt/ram_logs/eve.json.1",
            "/mnt/ram_logs/behaviour.json",
            "/mnt/ram_logs/behaviour.json.1"
        ],
        "the file the agent rotates to is read to its end too, and the behavioural alerts \
         take the same mapping"
    );
    assert_eq!(eve["read_from"].as_str(), Some("beginning"));

    // sources → transforms → sinks, and every input names a real component (or its `.dropped`).
    let ecs = table(transforms, "ecs");
    assert_eq!(ecs["type"].as_str(), Some("remap"));
    assert_eq!(strings(&ecs["inputs"]), ["eve"]);
    assert_eq!(ecs["reroute_dropped"].as_bool(), Some(true));
    // The protocol sections follow as a remap that cannot fail, so nothing reroutes from it.
    let protocols = table(transforms, "ecs_protocols");
    assert_eq!(protocols["type"].as_str(), Some("remap"));
    assert_eq!(strings(&protocols["inputs"]), ["ecs"]);
    assert!(!protocols.contains_key("reroute_dropped") && !protocols.contains_key("drop_on_error"));
    let unmapped = strings(&table(transforms, "ecs_unmapped")["inputs"]);
    assert_eq!(
        unmapped,
        [
            "ecs.dropped",
            "anomaly_ecs.dropped",
            "heartbeat_ecs.dropped"
        ]
    );
    // Whatever a transform reroutes is shipped unmapped, never left unread (Vector drops it).
    for (name, t) in transforms {
        if t.get("reroute_dropped").and_then(Value::as_bool) == Some(true) {
            let dropped = format!("{name}.dropped");
            assert!(
                unmapped.contains(&dropped.as_str()),
                "{dropped} is read by nothing"
            );
        }
    }
    let known: Vec<&str> = sources
        .keys()
        .chain(transforms.keys())
        .map(String::as_str)
        .collect();
    for (name, component) in transforms.iter().chain(sinks.iter()) {
        for input in strings(&component["inputs"]) {
            let base = input.strip_suffix(".dropped").unwrap_or(input);
            assert!(known.contains(&base), "{name} reads unknown input {input}");
        }
    }
    // Nothing the file source reads bypasses the mapping, nor its second part.
    for (name, sink) in sinks {
        let inputs = strings(&sink["inputs"]);
        assert!(!inputs.contains(&"eve"), "sink {name} reads raw EVE");
        assert!(
            !inputs.contains(&"ecs"),
            "sink {name} reads half-mapped events"
        );
    }

    let os = table(sinks, "opensearch");
    assert_eq!(os["type"].as_str(), Some("elasticsearch"));
    assert_eq!(
        strings(&os["inputs"]),
        ["ecs_protocols", "ecs_unmapped", "anomaly_ecs"]
    );
    assert_eq!(
        strings(&os["endpoints"]),
        ["https://search-ids2-example.eu-west-1.es.amazonaws.com"]
    );
    assert_eq!(os["api_version"].as_str(), Some("v8"));
    assert_eq!(os["id_key"].as_str(), Some(render::DOC_ID_FIELD));
    // Items refused for back-pressure are sent again; with `index` and deterministic ids a
    // second send writes the same document over itself.
    assert_eq!(os["request_retry_partial"].as_bool(), Some(true));
    assert_eq!(os["compression"].as_str(), Some("none"));
    let bulk = table(os, "bulk");
    assert_eq!(bulk["action"].as_str(), Some("index"));
    assert_eq!(
        bulk["index"].as_str(),
        Some("ids2-{{ event.dataset }}-%Y.%m.%d")
    );
    let batch = table(os, "batch");
    assert_eq!(batch["max_bytes"].as_integer(), Some(1024 * 1024));
    assert_eq!(batch["max_events"].as_integer(), Some(10_000));
    assert_eq!(batch["timeout_secs"].as_integer(), Some(5));
    let buffer = table(os, "buffer");
    assert_eq!(buffer["type"].as_str(), Some("disk"));
    // 256 MiB is 32 bytes under the smallest disk buffer Vector accepts: rounded up to it.
    assert_eq!(
        buffer["max_size"].as_integer(),
        Some(256 * 1024 * 1024 + 32)
    );
    assert_eq!(buffer["when_full"].as_str(), Some("block"));
    // The file sources checkpoint only what both disk buffers acknowledged.
    for sink in ["opensearch", "opensearch_heartbeat"] {
        assert_eq!(
            table(table(sinks, sink), "acknowledgements")["enabled"].as_bool(),
            Some(true),
            "{sink}"
        );
    }
    let auth = table(os, "auth");
    assert_eq!(auth["strategy"].as_str(), Some("aws"));
    assert_eq!(auth["profile"].as_str(), Some("ids2-sensor"));
    assert_eq!(
        auth["credentials_file"].as_str(),
        Some("/run/credentials/ids2-agent/aws")
    );
    assert!(!auth.contains_key("password") && !auth.contains_key("secret_access_key"));
    assert_eq!(table(os, "aws")["region"].as_str(), Some("eu-west-1"));

    let metrics = table(sinks, "vector_prometheus");
    assert_eq!(metrics["type"].as_str(), Some("prometheus_exporter"));
    // shipping.vector_metrics_listen, as a literal: `vector validate` needs no environment.
    assert_eq!(metrics["address"].as_str(), Some("127.0.0.1:9598"));
    assert_eq!(strings(&metrics["inputs"]), ["vector_internal"]);
    assert_eq!(
        table(sources, "vector_internal")["type"].as_str(),
        Some("internal_metrics")
    );
    assert!(!sinks.contains_key("redis"), "redis is off by default");
    assert!(
        render_default(&example())
            .get(render::VECTOR_REDIS_TOML)
            .is_none(),
        "no Redis part without shipping.redis"
    );
}

#[test]
fn basic_auth_and_redis_reference_secrets_by_env_only() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    fs::write(&password_file, "hunter2-never-rendered\n").unwrap();
    let s = settings(&format!(
        "sensor: {{id: lab-2}}\nopensearch: {{domain: ids2, region: eu-west-1, \
         endpoint: 'https://os.example', index_prefix: lab, auth: {{method: basic, \
         username: shipper, password_file: {}}}}}\n\
         shipping: {{redis: {{key: 'ids2:copy'}}, buffer_max_mb: 512, compression: gzip}}\n",
        password_file.display()
    ));
    let set = render_default(&s);
    for (path, bytes) in &set.files {
        assert!(
            !String::from_utf8_lossy(bytes).contains("hunter2"),
            "{path} holds the password"
        );
    }
    let rendered = text(&set, render::VECTOR_TOML);
    let redis_part = text(&set, render::VECTOR_REDIS_TOML);
    // Vector runs the first alone while Redis is down and both merged while it answers.
    real_vector::validate("basic auth (Redis down)", &rendered);
    real_vector::validate_merged("basic auth + Redis", &[&rendered, &redis_part]);
    let doc: Table = rendered.parse().unwrap();
    let sinks = table(&doc, "sinks");
    assert!(
        !sinks.contains_key("redis"),
        "the Redis sink lives in {} only",
        render::VECTOR_REDIS_TOML
    );
    let os = table(sinks, "opensearch");
    let auth = table(os, "auth");
    assert_eq!(auth["strategy"].as_str(), Some("basic"));
    assert_eq!(auth["user"].as_str(), Some("shipper"));
    assert_eq!(
        auth["password"].as_str(),
        Some("${IDS2_OPENSEARCH_PASSWORD}")
    );
    assert!(!os.contains_key("aws"));
    // shipping.compression reaches both OpenSearch sinks.
    assert_eq!(os["compression"].as_str(), Some("gzip"));
    assert_eq!(
        table(sinks, "opensearch_heartbeat")["compression"].as_str(),
        Some("gzip")
    );
    assert_eq!(
        table(os, "bulk")["index"].as_str(),
        Some("lab-{{ event.dataset }}-%Y.%m.%d")
    );
    assert_eq!(
        table(os, "buffer")["max_size"].as_integer(),
        Some(512 * 1024 * 1024)
    );
    let redis_doc: Table = redis_part.parse().unwrap();
    assert_eq!(
        redis_doc.keys().collect::<Vec<_>>(),
        ["sinks"],
        "{redis_part}"
    );
    let redis_sinks = table(&redis_doc, "sinks");
    assert_eq!(redis_sinks.keys().collect::<Vec<_>>(), ["redis"]);
    let redis = table(redis_sinks, "redis");
    assert_eq!(redis["type"].as_str(), Some("redis"));
    assert_eq!(redis["endpoint"].as_str(), Some("redis://127.0.0.1:6379/0"));
    assert_eq!(redis["key"].as_str(), Some("ids2:copy"));
    assert_eq!(redis["data_type"].as_str(), Some("list"));
    assert_eq!(
        strings(&redis["inputs"]),
        ["ecs_protocols", "ecs_unmapped", "anomaly_ecs"]
    );
}

/// The throttle profiles change only Suricata's EVE types: every profile renders the same
/// `vector.toml`, and the real Vector accepts it.
#[test]
fn every_throttle_profile_renders_a_vector_toml_vector_accepts() {
    let s = example();
    let full = text(&render_default(&s), render::VECTOR_TOML);
    for profile in [Profile::Full, Profile::Reduced, Profile::AlertsOnly] {
        let opts = RenderOptions {
            profile,
            ..Default::default()
        };
        let set = render::render(&s, &opts).unwrap();
        assert_eq!(text(&set, render::VECTOR_TOML), full, "{profile:?}");
    }
    real_vector::validate("every profile's", &full);
}

/// The check bites: the component-name clash a real Vector refused (issue 15) fails it.
#[test]
fn vector_validate_refuses_a_config_vector_would_not_load() {
    let clash = text(&render_default(&example()), render::VECTOR_TOML)
        + "\n[sinks.vector_internal]\ntype = \"blackhole\"\ninputs = [\"ecs\"]\n";
    let Some((ok, output)) = real_vector::check(&clash) else {
        return;
    };
    assert!(!ok, "accepted:\n{output}");
    assert!(output.contains("vector_internal"), "{output}");
}

/// Compiles a VRL program with the real stdlib and runs it on one event.
fn run_vrl(program: &str, event: vrl::value::Value) -> Result<vrl::value::Value, String> {
    use vrl::compiler::{runtime::Runtime, TargetValue, TimeZone};
    let compiled = vrl::compiler::compile(program, &vrl::stdlib::all())
        .map_err(|d| vrl::diagnostic::Formatter::new(program, d).to_string())?;
    let mut target = TargetValue {
        value: event,
        metadata: vrl::value::Value::Object(Default::default()),
        secrets: Default::default(),
    };
    Runtime::default()
        .resolve(&mut target, &compiled.program, &TimeZone::default())
        .map_err(|e| format!("{e:?}"))?;
    Ok(target.value)
}

const EVE_ALERT: &str = r#"{"timestamp":"2026-11-21T10:15:02.123456+0000","flow_id":1234567,"in_iface":"eth0","event_type":"alert","src_ip":"10.0.0.5","src_port":51000,"dest_ip":"93.184.216.34","dest_port":80,"proto":"TCP","community_id":"1:abc=","tx_id":0,"alert":{"action":"allowed","signature_id":9000001,"rev":1,"signature":"IDS2 canary request","category":"Misc activity","severity":3}}"#;

fn message(line: &str) -> vrl::value::Value {
    let mut obj = vrl::value::ObjectMap::new();
    obj.insert("message".into(), vrl::value::Value::from(line));
    vrl::value::Value::Object(obj)
}

fn get<'a>(v: &'a vrl::value::Value, path: &[&str]) -> Option<&'a vrl::value::Value> {
    path.iter().try_fold(v, |v, key| v.as_object()?.get(*key))
}

fn str_at(v: &vrl::value::Value, path: &[&str]) -> Option<String> {
    get(v, path)?
        .as_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

#[test]
fn ecs_program_maps_eve_with_the_real_vrl_runtime() {
    let s = example();
    let program = render::ecs_program(&s).unwrap();
    let out = run_vrl(&program, message(EVE_ALERT)).unwrap();
    assert_eq!(
        str_at(&out, &["event", "dataset"]).as_deref(),
        Some("suricata.alert")
    );
    assert_eq!(
        str_at(&out, &["observer", "name"]).as_deref(),
        Some("Lab sensor 1")
    );
    let ts = get(&out, &["@timestamp"]).unwrap();
    assert_eq!(
        ts.as_timestamp().unwrap().to_rfc3339(),
        "2026-11-21T10:15:02.123456+00:00"
    );
    // The id is deterministic and distinguishes events.
    let id = get(&out, &["event", "id"]).unwrap().clone();
    assert_eq!(
        get(
            &run_vrl(&program, message(EVE_ALERT)).unwrap(),
            &["event", "id"]
        ),
        Some(&id)
    );
    let other = EVE_ALERT.replace("9000001", "9000002");
    assert_ne!(
        get(
            &run_vrl(&program, message(&other)).unwrap(),
            &["event", "id"]
        ),
        Some(&id)
    );

    // Non-JSON input fails the program, so Vector reroutes it to `ecs_unmapped`, whose program
    // must accept it.
    assert!(run_vrl(&program, message("not json")).is_err());
    let doc: Table = text(&render_default(&s), render::VECTOR_TOML)
        .parse()
        .unwrap();
    let unmapped = table(table(&doc, "transforms"), "ecs_unmapped")["source"]
        .as_str()
        .unwrap();
    let out = run_vrl(unmapped, message("not json")).unwrap();
    assert_eq!(
        str_at(&out, &["event", "dataset"]).as_deref(),
        Some(ids2_core::ecs::UNMAPPED_DATASET),
        "the dataset `fleet health` looks for"
    );
    // Mapped or not, a line's id is SHA-256 of `<sensor id>|<line>`.
    let sha256 = |text: String| -> String {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let sensor = &s.config.sensor.id;
    assert_eq!(
        str_at(&out, &["event", "id"]),
        Some(sha256(format!("{sensor}|not json")))
    );
    let mapped = run_vrl(&program, message(EVE_ALERT)).unwrap();
    assert_eq!(
        str_at(&mapped, &["event", "id"]),
        Some(sha256(format!("{sensor}|{EVE_ALERT}")))
    );
}

#[test]
fn awkward_sensor_names_survive_into_the_vrl_program() {
    let name = r#"Lab {{ 1 }} "east" \ wing $HOME"#;
    let s = settings(&format!(
        "sensor: {{id: lab-4, name: '{name}'}}\nopensearch: {{domain: ids2, region: eu-west-1, \
         endpoint: 'https://os.example'}}\n"
    ));
    let out = run_vrl(&render::ecs_program(&s).unwrap(), message(EVE_ALERT)).unwrap();
    assert_eq!(str_at(&out, &["observer", "name"]).as_deref(), Some(name));
    // In vector.toml the `$` is doubled so Vector's env interpolation gives it back unchanged.
    let toml = text(&render_default(&s), render::VECTOR_TOML);
    assert!(toml.contains("$$HOME"), "{toml}");
}

#[test]
fn embedded_program_matches_ecs_program() {
    let s = example();
    let doc: Table = text(&render_default(&s), render::VECTOR_TOML)
        .parse()
        .unwrap();
    let embedded = |name: &str| {
        table(table(&doc, "transforms"), name)["source"]
            .as_str()
            .unwrap()
            .trim()
            .to_string()
    };
    let program = render::ecs_program(&s).unwrap();
    let (core, protocols) = render::split_program(&program);
    assert!(
        !protocols.is_empty(),
        "the shipped program has its second part"
    );
    assert_eq!(
        (embedded("ecs"), embedded("ecs_protocols")),
        (core.trim().to_string(), protocols.trim().to_string()),
        "vector.toml must embed exactly the two programs the ecs module runs"
    );
}

fn suricata() -> Option<Suricata> {
    match Suricata::locate() {
        Ok(Some(s)) => Some(s),
        Ok(None) => {
            eprintln!(
                "SKIP: needs Suricata 7 (`suricata` on PATH or $IDS2_SURICATA); CI installs it"
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// A config with non-default workers, cores, interface and memory budget, whose rules_dir holds
/// a (tiny) downloaded rule set so the full rule-files list is checked.
fn custom(rules_dir: &Path) -> Settings {
    fs::write(
        rules_dir.join("suricata.rules"),
        "alert icmp any any -> any any (msg:\"test ping\"; itype:8; sid:1000001; rev:1;)\n",
    )
    .unwrap();
    settings(&format!(
        "sensor: {{id: lab-3}}\n\
         capture: {{interface: enp1s0, workers: 3, cpu_cores: [1, 2, 3], ring_size: 4096, \
         block_size_bytes: 131072, home_net: [10.20.0.0/16]}}\n\
         suricata: {{memory_mb: 1024, rules_dir: {}}}\n\
         opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://os.example'}}\n",
        rules_dir.display()
    ))
}

#[test]
fn suricata_accepts_rendered_example_config() {
    let Some(suricata) = suricata() else { return };
    let out = tempfile::tempdir().unwrap();
    let outcome = apply::render_to(
        &example(),
        &RenderOptions::default(),
        out.path(),
        &Validator::Suricata(suricata),
    )
    .unwrap();
    assert_eq!(outcome, Outcome::Changed { generation: 1 });
}

#[test]
fn suricata_accepts_rendered_custom_config() {
    let Some(suricata) = suricata() else { return };
    let rules = tempfile::tempdir().unwrap();
    let s = custom(rules.path());
    let out = tempfile::tempdir().unwrap();
    apply::render_to(
        &s,
        &RenderOptions::default(),
        out.path(),
        &Validator::Suricata(suricata.clone()),
    )
    .unwrap();
    let gen = out.path().join("current");
    let yaml = fs::read_to_string(gen.join(render::SURICATA_YAML)).unwrap();
    for expected in [
        "  - interface: \"enp1s0\"\n    threads: 3\n",
        "cpu: [ 1, 2, 3 ]",
        "cpu: [ 0 ]",
        "ring-size: 4096",
        "block-size: 131072",
        "memcap: 256mb",
        "memcap: 512mb",
        "HOME_NET: \"[10.20.0.0/16]\"",
    ] {
        assert!(yaml.contains(expected), "missing {expected:?} in\n{yaml}");
    }
    // The rule set is present here, so -T loaded it: a broken rule in it must be caught too.
    fs::write(rules.path().join("suricata.rules"), "alert nonsense\n").unwrap();
    let err = suricata
        .check(
            &gen.join(render::SURICATA_YAML),
            &gen.join(render::LOCAL_RULES),
            &rules.path().join("suricata.rules"),
        )
        .unwrap_err();
    assert!(
        matches!(&err, SuricataError::Rejected { reason, .. } if reason.contains("nonsense")),
        "{err}"
    );
}

#[test]
fn every_suricata_7_app_layer_parser_is_enabled() {
    let Some(suricata) = suricata() else { return };
    let out = tempfile::tempdir().unwrap();
    apply::render_to(
        &example(),
        &RenderOptions::default(),
        out.path(),
        &Validator::Skip,
    )
    .unwrap();
    let listed = std::process::Command::new(suricata.binary())
        .arg("-c")
        .arg(out.path().join("current").join(render::SURICATA_YAML))
        .arg("--list-app-layer-protos")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let enabled: Vec<&str> = listed.lines().map(str::trim).collect();
    // Suricata 7.0's parsers (`app-layer.protocols` in its stock suricata.yaml); the stock config
    // leaves pgsql, modbus, dnp3 and enip off.
    for proto in [
        "http",
        "ftp",
        "smtp",
        "tls",
        "ssh",
        "imap",
        "smb",
        "dcerpc",
        "dns",
        "nfs",
        "ntp",
        "ftp-data",
        "tftp",
        "ike",
        "krb5",
        "quic",
        "dhcp",
        "snmp",
        "sip",
        "rfb",
        "mqtt",
        "telnet",
        "rdp",
        "http2",
        "bittorrent-dht",
        "pgsql",
        "modbus",
        "dnp3",
        "enip",
    ] {
        assert!(enabled.contains(&proto), "{proto} not enabled:\n{listed}");
    }
}

#[test]
fn failed_suricata_check_keeps_previous_generation() {
    let Some(suricata) = suricata() else { return };
    let out = tempfile::tempdir().unwrap();
    let validator = Validator::Suricata(suricata);
    let s = example();
    apply::render_to(&s, &RenderOptions::default(), out.path(), &validator).unwrap();
    let before = fs::read(out.path().join("current/rules/ids2.rules")).unwrap();

    let templates = tempfile::tempdir().unwrap();
    fs::create_dir(templates.path().join("rules")).unwrap();
    fs::write(
        templates.path().join("rules/ids2.rules"),
        "alert tcp any any -> any any (msg:\"broken\"; no_such_keyword; sid:9000099; rev:1;)\n",
    )
    .unwrap();
    let opts = RenderOptions {
        templates_dir: Some(templates.path().to_path_buf()),
        ..Default::default()
    };
    let err = apply::render_to(&s, &opts, out.path(), &validator).unwrap_err();
    match &err {
        ApplyError::Check(SuricataError::Rejected { reason, .. }) => {
            assert!(reason.contains("no_such_keyword"), "{reason}")
        }
        other => panic!("expected a Suricata rejection, got {other:?}"),
    }
    assert!(!err.is_bad_input());
    assert_eq!(
        fs::read_link(out.path().join("current")).unwrap(),
        Path::new("generations/1")
    );
    assert_eq!(
        fs::read(out.path().join("current/rules/ids2.rules")).unwrap(),
        before
    );
    let left: Vec<_> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "staging left behind: {left:?}");
}
