//! The anomaly detector inside the daemon: the real `ids2-agent run` binary trains on the flows
//! appended to its EVE file, saves the model, writes anomaly documents to `anomaly.json` and
//! counts them on `/metrics`, and loads the model when restarted; the in-process service counts
//! the flows it could not queue; the rendered `vector.toml` tails `anomaly.json` into the event
//! sink; and the documents, after Vector's remap (run with the `vrl` crate), are all in the
//! index template's field list and, where ECS has the field, of its ECS type.
//!
//! As in `tests/daemon.rs`, Suricata and Vector *processes* are shell stand-ins (the point is
//! the agent); the `suricata -T` check uses the real Suricata when installed.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use ids2_agent::anomaly::daemon::{AnomalyService, EventFile, ANOMALY_ROTATED_FILE};
use ids2_agent::anomaly::{DetectorOptions, TrainParams, DATASET, FIELDS};
use ids2_agent::config::{self, Settings};
use ids2_agent::ecs::Mapper;
use ids2_agent::metrics::Metrics;
use ids2_agent::render;
use ids2_agent::supervisor::Shutdown;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[path = "support/agent.rs"]
mod agent;
use agent::{wait_until, which};
#[path = "support/rendered.rs"]
mod rendered;
use rendered::{ecs_reference, strings, table, vector_toml, vector_toml_text};
#[path = "support/vector.rs"]
mod real_vector;
use serde_json::{json, Value};

/// An EVE flow record: ordinary TLS sessions from a handful of clients, or (`scan`) a SYN
/// answered by RST to an odd port.
fn flow(i: u64, secs: u64, scan: bool) -> String {
    let (pkts, bytes, port) = if scan {
        (1, 60, 1000 + i % 5000)
    } else {
        (8 + i % 5, 600 + 37 * (i % 11), 443)
    };
    let ts = |s: u64| format!("2026-01-01T00:{:02}:{:02}.000000+0000", s / 60, s % 60);
    json!({
        "timestamp": ts(secs), "flow_id": 1_000_000 + i, "event_type": "flow",
        "src_ip": format!("10.0.0.{}", if scan { 99 } else { 2 + i % 10 }),
        "src_port": 40000 + i, "dest_ip": "10.0.1.1", "dest_port": port, "proto": "TCP",
        "app_proto": if scan { Value::Null } else { "tls".into() },
        "community_id": format!("1:flow{i}="),
        "flow": {"pkts_toserver": pkts, "pkts_toclient": if scan { 1 } else { pkts + 2 },
                 "bytes_toserver": bytes, "bytes_toclient": if scan { 54 } else { bytes * 4 },
                 "start": ts(secs), "end": ts(secs + if scan { 0 } else { 2 }),
                 "age": 1, "state": if scan { "new" } else { "closed" }},
        "tcp": {"tcp_flags_ts": if scan { "02" } else { "1b" },
                "tcp_flags_tc": if scan { "14" } else { "1b"},
                "state": if scan { "new" } else { "closed" }}
    })
    .to_string()
}

/// 300 ordinary flows over 60 s of EVE time (the baseline: ≥ 200 flows and ≥ 60 s), then
/// `normal` more ordinary flows and 20 scan flows.
fn traffic(normal: u64) -> (String, String) {
    let mut baseline = String::new();
    for i in 0..300 {
        // The 300th flow reaches 60 s and completes the baseline.
        baseline.push_str(&flow(i, i * 60 / 299, false));
        baseline.push('\n');
    }
    let mut later = String::new();
    for i in 0..normal {
        later.push_str(&flow(300 + i, 80 + i / 4, false));
        later.push('\n');
    }
    for i in 0..20 {
        later.push_str(&flow(1000 + i, 100, true));
        later.push('\n');
    }
    (baseline, later)
}

const ANOMALY_CONFIG: &str = "anomaly: {enabled: true, baseline_secs: 60, min_baseline_flows: \
                              200, trees: 50, sample_size: 64, threshold: 0.6, model_path: ";

// ---------------------------------------------------------------------------------------------
// The real daemon.

struct Agent {
    child: Child,
    metrics: std::net::SocketAddr,
}

fn stand_in(bin: &Path, name: &str) {
    let script =
        "#!/bin/sh\n[ \"$1\" = -T ] && exit 0\ntrap 'exit 0' TERM\nwhile :; do sleep 0.05; done\n";
    let path = bin.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Starts `ids2-agent run` on `root` (config written on the first call, kept afterwards).
fn start_agent(root: &Path) -> Agent {
    let bin = root.join("bin");
    for d in ["bin", "logs", "rendered", "vector"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    stand_in(&bin, "suricata");
    stand_in(&bin, "vector");
    let config = root.join("config.yaml");
    if !config.exists() {
        let r = root.display();
        std::fs::write(
            &config,
            format!(
                "sensor: {{id: anomaly-test, name: Anomaly test}}\n\
                 opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://opensearch.invalid'}}\n\
                 logs: {{path: {r}/logs}}\n\
                 paths: {{rendered_dir: {r}/rendered, vector_data_dir: {r}/vector}}\n\
                 history: {{repo: {r}/history.git}}\n\
                 metrics: {{listen: '127.0.0.1:0'}}\n\
                 connectivity: {{dns_names: [ids2-test.invalid], interval_secs: 60, timeout_secs: 1}}\n\
                 {ANOMALY_CONFIG}{r}/model/anomaly-model.json}}\n"
            ),
        )
        .unwrap();
    }
    // An empty EVE file: the agent starts reading at its end, so what the test appends is read.
    std::fs::write(root.join("logs/eve.json"), "").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ids2-agent"));
    match which("suricata") {
        Some(s) => cmd.env("IDS2_SURICATA", s),
        None => cmd.env_remove("IDS2_SURICATA"),
    };
    cmd.env_remove("NOTIFY_SOCKET");
    let agent::Running { child, metrics, .. } = agent::run(cmd, &config, &bin);
    Agent { child, metrics }
}

fn scrape(addr: std::net::SocketAddr) -> String {
    agent::scrape(addr).1
}

/// The value of an unlabelled sample in a scrape.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::File::options().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn stop(mut agent: Agent) {
    kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(agent.child.wait().unwrap().success());
}

#[test]
fn daemon_trains_saves_writes_anomalies_counts_and_reloads_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let agent = start_agent(root);
    let (eve, anomalies) = (root.join("logs/eve.json"), root.join("logs/anomaly.json"));
    let model = root.join("model/anomaly-model.json");
    wait_until("the baseline begun", Duration::from_secs(20), || {
        sample(&scrape(agent.metrics), "ids2_anomaly_training") == Some(1.0)
    });
    // Let the EVE reader open the file first, so the lines land after its starting offset.
    std::thread::sleep(Duration::from_millis(1500));
    let (baseline, later) = traffic(40);
    append(&eve, &baseline);
    let mut body = String::new();
    wait_until("the model trained", Duration::from_secs(30), || {
        body = scrape(agent.metrics);
        sample(&body, "ids2_anomaly_training") == Some(0.0)
    });
    assert!(model.is_file(), "the model is saved to anomaly.model_path");
    assert_eq!(sample(&body, "ids2_anomaly_baseline_flows"), Some(300.0));
    assert_eq!(sample(&body, "ids2_anomaly_flows_scored_total"), Some(0.0));
    assert!(!anomalies.exists(), "nothing is written while training");

    append(&eve, &later);
    wait_until("the later flows scored", Duration::from_secs(30), || {
        body = scrape(agent.metrics);
        sample(&body, "ids2_anomaly_flows_scored_total") == Some(60.0)
    });
    let found = sample(&body, "ids2_anomalies_total").unwrap();
    eprintln!("anomalies among 40 ordinary and 20 scan flows: {found}");
    assert!(
        found >= 15.0,
        "most of the 20 scan flows are anomalies: {body}"
    );
    assert!(found <= 25.0, "few ordinary flows are: {body}");
    assert_eq!(sample(&body, "ids2_anomaly_flows_dropped_total"), Some(0.0));
    assert_eq!(
        sample(&body, "ids2_anomaly_events_dropped_total"),
        Some(0.0)
    );
    let docs: Vec<Value> = std::fs::read_to_string(&anomalies)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len() as f64, found, "one document per anomaly");
    let scans = docs
        .iter()
        .filter(|d| d["source"]["ip"] == "10.0.0.99")
        .count();
    assert!(scans >= 15, "{docs:#?}");
    for d in &docs {
        assert_eq!(d["event"]["dataset"], DATASET);
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["observer"]["hostname"], "anomaly-test");
        assert_eq!(d["observer"]["name"], "Anomaly test");
        assert!(d["ids2"]["anomaly"]["score"].as_f64().unwrap() >= 0.6);
        assert_eq!(d["ids2"]["anomaly"]["model_trained_flows"], 300);
    }
    stop(agent);

    // A restart loads the saved model: scoring from the first flow, no new baseline.
    let saved = std::fs::read(&model).unwrap();
    let agent = start_agent(root);
    let mut body = String::new();
    wait_until("the model loaded", Duration::from_secs(20), || {
        body = scrape(agent.metrics);
        sample(&body, "ids2_anomaly_training") == Some(0.0)
    });
    assert_eq!(sample(&body, "ids2_anomaly_baseline_flows"), Some(300.0));
    std::thread::sleep(Duration::from_millis(1500));
    let scans: String = (0..20).map(|i| flow(5000 + i, 200, true) + "\n").collect();
    append(&eve, &scans);
    wait_until("the scan flows scored", Duration::from_secs(20), || {
        body = scrape(agent.metrics);
        sample(&body, "ids2_anomaly_flows_scored_total") == Some(20.0)
    });
    let again = sample(&body, "ids2_anomalies_total").unwrap();
    assert!(again >= 15.0, "{body}");
    stop(agent);
    assert_eq!(
        std::fs::read(&model).unwrap(),
        saved,
        "the model is not retrained"
    );
    let lines = std::fs::read_to_string(&anomalies).unwrap().lines().count();
    assert_eq!(lines as f64, found + again, "appended to the same file");
}

// ---------------------------------------------------------------------------------------------
// The in-process service.

fn options(threshold: f64) -> DetectorOptions {
    DetectorOptions {
        threshold,
        baseline_secs: 60.0,
        min_baseline_flows: 200,
        params: TrainParams {
            trees: 50,
            sample_size: 64,
            seed: 3,
        },
        model_path: None,
    }
}

/// Runs the service over `lines` (offered through its sink like the EVE reader does) and
/// returns the documents written.
async fn run_service(service: &Arc<AnomalyService>, lines: &str, file: &EventFile) -> Vec<String> {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(service.clone().run(Shutdown::new(stop_rx)));
    // The task installs its queue first thing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sink = service.sink();
    for line in lines.lines() {
        sink(line.as_bytes());
        // Never more than the queue holds at once.
        tokio::task::yield_now().await;
    }
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    std::fs::read_to_string(file.path())
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn service_counts_flows_it_cannot_queue_and_rotates_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new("test");
    // A tiny cap: every document rotates the file.
    let file = EventFile::with_cap(dir.path(), 100);
    let service = AnomalyService::new(
        options(0.6),
        json!({"hostname": "t"}),
        file.clone(),
        &metrics,
    );
    // Before the task runs there is no queue: counted, not lost silently.
    let sink = service.sink();
    sink(flow(0, 0, false).as_bytes());
    sink(br#"{"event_type":"alert"}"#);
    assert_eq!(service.flows_dropped(), 1, "only flow lines are offered");
    let (baseline, later) = traffic(0);
    let docs = run_service(&service, &format!("{baseline}{later}"), &file).await;
    let stats = service.stats().expect("the detector started");
    assert_eq!(stats.baseline_flows, 300);
    assert_eq!(stats.flows_scored, 20);
    assert!(stats.anomalies >= 15, "{stats:?}");
    // Each document passes the cap alone: the current file holds the last one, the rotated
    // file the one before.
    assert_eq!(docs.len(), 1);
    let rotated = std::fs::read_to_string(dir.path().join(ANOMALY_ROTATED_FILE)).unwrap();
    assert_eq!(rotated.lines().count(), 1);
    assert_ne!(rotated.trim(), docs[0]);
    let text = metrics.render();
    assert!(
        text.contains("\nids2_anomaly_flows_dropped_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nids2_anomalies_total {}\n", stats.anomalies)),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Shipping: vector.toml and the documents after Vector's remap.

fn settings(logs: &Path) -> Settings {
    config::from_str(
        &format!(
            "sensor: {{id: lab-1}}\n\
             opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://os.example', index_prefix: corp}}\n\
             logs: {{path: {}}}\n\
             anomaly: {{enabled: true}}\n",
            logs.display()
        ),
        Path::new("t.yaml"),
    )
    .unwrap()
}

#[test]
fn rendered_vector_ships_the_anomaly_file_through_the_event_sink() {
    let logs = tempfile::tempdir().unwrap();
    real_vector::validate("anomaly on", &vector_toml_text(&settings(logs.path())));
    let doc = vector_toml(&settings(logs.path()));
    let (sources, transforms, sinks) = (
        table(&doc, "sources"),
        table(&doc, "transforms"),
        table(&doc, "sinks"),
    );
    let source = table(sources, "anomaly");
    assert_eq!(source["type"].as_str(), Some("file"));
    let written = EventFile::new(logs.path()).path();
    assert_eq!(
        strings(&source["include"]),
        [
            written.display().to_string(),
            logs.path().join(ANOMALY_ROTATED_FILE).display().to_string()
        ],
        "Vector reads where the agent writes"
    );
    let remap = table(transforms, "anomaly_ecs");
    assert_eq!(strings(&remap["inputs"]), ["anomaly"]);
    assert_eq!(remap["reroute_dropped"].as_bool(), Some(true));
    assert!(
        strings(&table(transforms, "ecs_unmapped")["inputs"])
            .contains(&"anomaly_ecs.dropped".to_string()),
        "a line the remap cannot handle is shipped unmapped, not dropped"
    );
    let sink = table(sinks, "opensearch");
    assert!(strings(&sink["inputs"]).contains(&"anomaly_ecs".to_string()));
    assert_eq!(sink["id_key"].as_str(), Some(render::DOC_ID_FIELD));
    let bulk = table(sink, "bulk");
    assert_eq!(bulk["action"].as_str(), Some("index"));
    // event.dataset is ids2.anomaly: corp-ids2.anomaly-YYYY.MM.DD, what provision's template
    // for corp-ids2.anomaly-* maps.
    assert_eq!(
        bulk["index"].as_str(),
        Some("corp-{{ event.dataset }}-%Y.%m.%d")
    );
    let buffer = table(sink, "buffer");
    assert_eq!(buffer["type"].as_str(), Some("disk"));
    assert_eq!(buffer["when_full"].as_str(), Some("block"));
}

fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&name, v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| leaves(prefix, v, out)),
        _ => out.push((prefix.to_string(), value.clone())),
    }
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "keyword" | "match_only_text" | "text" => v.is_string(),
        "ip" => v
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "long" => v.is_i64() || v.is_u64(),
        "float" | "scaled_float" => v.is_number(),
        "date" => v.as_str().is_some_and(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
        }),
        _ => false,
    }
}

#[tokio::test]
async fn shipped_anomaly_documents_fit_the_index_template_and_ecs() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let program = table(table(&vector_toml(&s), "transforms"), "anomaly_ecs")["source"]
        .as_str()
        .unwrap()
        .to_string();
    let mut mapper = Mapper::from_source(&program).expect("the anomaly remap compiles");
    let metrics = Metrics::new("test");
    let file = EventFile::new(dir.path());
    let service = AnomalyService::new(
        options(0.6),
        json!({"hostname": "lab-1", "name": "lab-1", "type": "ids", "vendor": "ids2",
               "product": "ids2", "version": "0"}),
        file.clone(),
        &metrics,
    );
    let (baseline, later) = traffic(0);
    let lines = run_service(&service, &format!("{baseline}{later}"), &file).await;
    assert!(lines.len() >= 15, "{lines:?}");
    let listed: BTreeMap<&str, &str> = FIELDS.iter().map(|f| (f.name, f.ecs_type)).collect();
    let reference = ecs_reference();
    if reference.is_none() {
        eprintln!(
            "note: ../shared/corpus/ecs/fields.csv is absent: checking against \
             ids2_agent::anomaly::FIELDS only, not the ECS reference"
        );
    }
    for line in &lines {
        let doc = mapper
            .map_line(line)
            .expect("the remap maps every document");
        let mut out = Vec::new();
        leaves("", &doc, &mut out);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        for needed in [
            "@timestamp",
            "event.id",
            "event.dataset",
            "ids2.anomaly.score",
        ] {
            assert!(names.contains(&needed), "{needed} in {doc}");
        }
        for (name, value) in &out {
            if name == "event.id" {
                continue; // Vector moves it to the bulk _id.
            }
            let ty = listed
                .get(name.as_str())
                .unwrap_or_else(|| panic!("{name} is not in ids2_agent::anomaly::FIELDS"));
            assert!(type_ok(ty, value), "{name} = {value} is not a {ty}");
            if let (Some(reference), false) = (&reference, name.starts_with("ids2.")) {
                assert_eq!(
                    reference.get(name).map(String::as_str),
                    Some(*ty),
                    "{name}: FIELDS and the ECS reference disagree"
                );
            }
        }
    }
    // Every listed field is a real ECS one outside ids2.*.
    if let Some(reference) = &reference {
        for f in FIELDS.iter().filter(|f| !f.name.starts_with("ids2.")) {
            assert_eq!(
                reference.get(f.name).map(String::as_str),
                Some(f.ecs_type),
                "{}",
                f.name
            );
        }
    }
}
