//! The shipping path, whole: real Suricata's EVE from the corpus pcaps, the real agent
//! (`ids2-agent run --backend process`) running the real Vector on the `vector.toml` it renders,
//! into a local OpenSearch-API server (the osmem-server emulator, an emulator and not
//! OpenSearch) whose index templates `ids2-provision opensearch setup` installed first.
//!
//! - Suricata reads every corpus pcap (`../shared/corpus/pcaps`) offline with the rendered
//!   `suricata.yaml` (live-capture settings overridden on the command line); the test appends
//!   that EVE to the sensor's `eve.json` in parts, as Suricata would over time. The tests send
//!   the first 300 (600 in the outages) lines of every event type, not the corpus's 20k
//!   stream-event alerts: the emulator indexes a few hundred documents per second
//!   (`IDS2_SHIP_FULL_CORPUS=1` sends them all). The agent's own Suricata child is a stand-in
//!   that only idles: live capture is not what is tested here.
//! - The sensor is pointed at the server by its config alone (`opensearch.endpoint:
//!   http://127.0.0.1:PORT`, accepted for loopback), see `ids2_lab::ship`.
//! - The corpus test dates its lines today, as a sensor's events are: each dataset goes to one
//!   daily index, so values of different events must agree with one mapping there.
//! - Every distinct EVE line must become one document (byte-identical lines share their id by
//!   design; counted per index) under the id computed here independently of the VRL program,
//!   the mapping the server holds after ingest must not contradict the template, and the
//!   agent's heartbeats must land in their index.
//! - EVE lines of megabytes are shipped whole; one over the cap is counted, not shipped.
//! - Lines that are not EVE events (cut short, not JSON, no event type) are shipped unmapped,
//!   whole, under the id of their line.
//! - Faults, each ending with every EVE line indexed exactly once: the server away for 30 s
//!   behind a proxy the test owns, alone, with Vector SIGKILLed meanwhile (the agent restarts
//!   it), and with the agent rotating `eve.json` meanwhile; and the agent restarted
//!   mid-stream. The three outages run side by side in one test so they cost 30 s, not 90.
//! - Vector SIGKILLed while the server is away and its disk buffer is full: against a bulk
//!   **stand-in** that records ids, since the emulator cannot hold the ~100,000 documents it
//!   takes to fill the buffer.
//!
//! Skips, saying what is missing, without the corpus, Suricata, Vector or the emulator; CI has
//! them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use ids2_lab::osmem::Osmem;
use ids2_lab::ship::{self, Proxy};
use serde_json::Value;

#[path = "support/shipping.rs"]
mod sensor;

use sensor::{
    corpus_eve, dated_today, eve_time, past_i64, provision, read_lines, run_provision, sample,
    with_time, BulkStandIn, Sensor, Tools, BUFFER_BYTES, PREFIX, SENSOR,
};

/// How long the server is away in the outage faults.
const OUTAGE: Duration = Duration::from_secs(30);

/// The tools, or `None` after saying what is missing; the workspace's binaries sit beside this
/// test's directory (`target/debug/`), which the test command builds.
fn tools() -> Option<Tools> {
    let exe = std::env::current_exe().unwrap();
    sensor::tools(exe.parent().unwrap().parent().unwrap())
}

fn corpus(t: &Tools) -> &'static [String] {
    corpus_eve(t, Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// Field path → type of a mapping's `properties`, recursively (`a.b.c` → `keyword`).
fn leaf_types(props: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Some(map) = props.as_object() else {
        return;
    };
    for (k, v) in map {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if let Some(t) = v["type"].as_str() {
            out.insert(name.clone(), t.to_string());
        }
        if v.get("properties").is_some() {
            leaf_types(&v["properties"], &name, out);
        }
    }
}

#[test]
fn corpus_eve_through_the_agent_and_real_vector_is_indexed_once_with_template_types() {
    let Some(t) = tools() else { return };
    let lines = &dated_today(&sample(corpus(&t), 300));
    let types: BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| l.split("\"event_type\":\"").nth(1)?.split('"').next())
        .collect();
    // The corpus's types, each in the test: alerts, flows, protocols, anomalies, stats.
    assert!(types.len() >= 8, "{types:?}");
    let indices: BTreeSet<String> =
        ship::expected_documents(SENSOR, PREFIX, lines.iter().map(String::as_str))
            .unwrap()
            .into_keys()
            .collect();
    assert_eq!(
        indices.len(),
        types.len(),
        "one index per dataset: {indices:?}"
    );
    let os = Osmem::start(&t.osmem).unwrap();
    let mut s = Sensor::new(&t, os.url(), "");
    provision(&t, &os, &s.root);
    s.start_agent();
    s.append_in_parts(lines, 8, Duration::from_millis(300));
    let figure = s.settle(&os, "corpus");
    assert_eq!(figure, 1.0);

    // Ids are the deterministic ones: spot-check the bodies too (event.id is the _id, which
    // Vector removes from the body; the dataset and the sensor are in it).
    let r = os
        .ok(
            "POST",
            &format!("/{PREFIX}-suricata.*/_search"),
            Some(br#"{"size": 5, "query": {"match_all": {}}}"#),
        )
        .unwrap();
    for hit in r["hits"]["hits"].as_array().unwrap() {
        assert_eq!(hit["_source"]["observer"]["hostname"], SENSOR, "{hit}");
        let index = hit["_index"].as_str().unwrap();
        let dataset = hit["_source"]["event"]["dataset"].as_str().unwrap();
        assert!(index.starts_with(&format!("{PREFIX}-{dataset}-")), "{hit}");
    }

    // The mapping after ingest: no field of a template has another type in an index.
    let templates = os.ok("GET", "/_index_template", None).unwrap();
    let mut template_types: Vec<(Vec<String>, BTreeMap<String, String>)> = Vec::new();
    for it in templates["index_templates"].as_array().unwrap() {
        let patterns: Vec<String> = it["index_template"]["index_patterns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        let mut types = BTreeMap::new();
        leaf_types(
            &it["index_template"]["template"]["mappings"]["properties"],
            "",
            &mut types,
        );
        template_types.push((patterns, types));
    }
    assert!(
        !template_types.is_empty(),
        "no index template installed: {templates}"
    );
    let mappings = os
        .ok("GET", &format!("/{PREFIX}-*/_mapping"), None)
        .unwrap();
    let mut conflicts = Vec::new();
    let mut checked = 0;
    for (index, m) in mappings.as_object().unwrap() {
        let mut actual = BTreeMap::new();
        leaf_types(&m["mappings"]["properties"], "", &mut actual);
        let matching: Vec<_> = template_types
            .iter()
            .filter(|(patterns, _)| patterns.iter().any(|p| glob(p, index)))
            .collect();
        assert!(!matching.is_empty(), "index {index} matches no template");
        for (_, types) in matching {
            for (field, want) in types {
                if let Some(got) = actual.get(field) {
                    checked += 1;
                    if got != want {
                        conflicts.push(format!("{index}: {field} is {got}, template says {want}"));
                    }
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} fields compared");
    assert!(conflicts.is_empty(), "{}", conflicts.join("\n"));

    // Integers past i64::MAX (the corpus's SMB session ids) arrive exact: the mapping carries
    // session ids as strings, read back from the line where the JSON parser made a rounded
    // float of one, so no document has a field refused (`_ignored`) or a session id rounded.
    let want: BTreeMap<String, String> = lines
        .iter()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            past_i64(&v).then(|| {
                (
                    ship::document_id(SENSOR, l),
                    v["smb"]["session_id"].to_string(),
                )
            })
        })
        .collect();
    assert!(
        !want.is_empty(),
        "the sample holds no integer past i64::MAX"
    );
    let search = |query: &[u8]| {
        os.ok("POST", &format!("/{PREFIX}-*/_search"), Some(query))
            .unwrap()
    };
    let ignored = search(br#"{"size": 100, "query": {"exists": {"field": "_ignored"}}}"#);
    assert_eq!(ignored["hits"]["total"]["value"], 0, "{ignored}");
    let r =
        search(br#"{"size": 1000, "query": {"exists": {"field": "suricata.eve.smb.session_id"}}}"#);
    let got: BTreeMap<String, Value> = r["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let id = h["_source"]["suricata"]["eve"]["smb"]["session_id"].clone();
            (h["_id"].as_str().unwrap().to_string(), id)
        })
        .collect();
    assert!(got.values().all(Value::is_string), "{got:?}");
    for (id, session) in &want {
        assert_eq!(
            got.get(id),
            Some(&Value::from(session.as_str())),
            "document {id}"
        );
    }

    // Heartbeats: in their index, under their deterministic ids.
    let beats = read_lines(&s.logs.join("heartbeat.json"));
    assert!(!beats.is_empty(), "the agent wrote no heartbeat");
    let want: BTreeSet<String> = beats
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            // The heartbeat transform's id: SHA-256 of `<hostname>|<@timestamp>`.
            ship::document_id(
                v["observer"]["hostname"].as_str().unwrap(),
                v["@timestamp"].as_str().unwrap(),
            )
        })
        .collect();
    let (ok, got) = ship::wait_for(Duration::from_secs(30), || {
        // A poll that times out while the server is busy saw nothing yet.
        let got: BTreeSet<String> = ship::indexed_ids(&os, &format!("{PREFIX}-heartbeat-*"))
            .unwrap_or_default()
            .into_values()
            .flatten()
            .collect();
        (want.is_subset(&got), got)
    });
    assert!(
        ok,
        "heartbeats {want:?} not all indexed: {got:?}\n{}",
        s.logs()
    );
    s.stop_agent();
}

/// Waits up to 30 s for the agent's `ids2_eve_events_total{event_type}` to read `want`.
fn assert_eve_count(s: &Sensor, event_type: &str, want: f64) {
    let (counted, text) = ship::wait_for(Duration::from_secs(30), || {
        let text = ship::scrape(s.agent_metrics).unwrap_or_default();
        let n = ship::metric_sum(
            &text,
            "ids2_eve_events_total",
            &[("event_type", event_type)],
        );
        (n == want, text)
    });
    assert!(
        counted,
        "ids2_eve_events_total{{event_type=\"{event_type}\"}} is not {want}:\n{}",
        text.lines()
            .filter(|l| l.starts_with("ids2_eve_events_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A line the ECS program cannot map (cut short, not JSON, not an object, no event type or
/// timestamp, a timestamp it cannot read) is not dropped: Vector's `ecs.dropped` route takes it
/// to `ecs_unmapped`, which ships it whole to `<prefix>-suricata.unmapped-*` under the id its
/// line would have had mapped, tagged so the operator finds it, among real EVE lines that map;
/// so does a heartbeat line cut short. Until 2026-12-05 the domain refused every such document
/// (the file source's bare `file` string against the template's `file` object).
#[test]
fn lines_that_are_not_eve_are_shipped_unmapped_and_whole() {
    let Some(t) = tools() else { return };
    let lines = dated_today(&sample(corpus(&t), 20));
    // What a full log tmpfs leaves: a line cut short.
    let cut: String = lines[0].chars().take(lines[0].len() / 2).collect();
    let bad: Vec<String> = [
        cut.as_str(),
        "not JSON at all",
        "[1, 2, 3]",
        r#"{"event_type": "alert", "alert": {"signature_id": 1}}"#,
        r#"{"timestamp": "yesterday", "event_type": "alert"}"#,
        r#"{"timestamp": "2026-12-05T00:00:00.000000+0000", "event_type": 7}"#,
    ]
    .map(str::to_string)
    .into();
    let os = Osmem::start(&t.osmem).unwrap();
    let mut s = Sensor::new(&t, os.url(), "");
    provision(&t, &os, &s.root);
    s.start_agent();
    let (before, after) = lines.split_at(lines.len() / 2);
    s.append(before);
    s.append_unmapped(&bad);
    s.append(after);
    // A heartbeat cut short takes the same way (its own index's template would refuse it).
    let beat = r#"{"@timestamp":"2026-12-05T01:00:00.000Z","observer":{"hostna"#;
    let mut heartbeats = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(s.logs.join("heartbeat.json"))
        .unwrap();
    std::io::Write::write_all(&mut heartbeats, format!("{beat}\n").as_bytes()).unwrap();
    s.unmapped.push(beat.to_string());
    assert_eq!(s.settle(&os, "lines that are not EVE"), 1.0);

    for line in &s.unmapped {
        let id = ship::document_id(SENSOR, line);
        let query = serde_json::json!({ "query": { "ids": { "values": [&id] } } }).to_string();
        let r = os
            .ok(
                "POST",
                &format!("/{PREFIX}-suricata.unmapped-*/_search"),
                Some(query.as_bytes()),
            )
            .unwrap();
        let doc = &r["hits"]["hits"][0]["_source"];
        assert_eq!(doc["message"], line.as_str(), "{r}");
        assert_eq!(doc["event"]["kind"], "pipeline_error", "{r}");
        assert_eq!(doc["event"]["dataset"], "suricata.unmapped", "{r}");
        assert_eq!(doc["observer"]["hostname"], SENSOR, "{r}");
        assert!(doc["log"]["file"]["path"].is_string(), "{r}");
    }
    // The line is searchable by its text.
    let query = br#"{"query": {"match": {"message": "JSON"}}}"#;
    let r = os
        .ok(
            "POST",
            &format!("/{PREFIX}-suricata.unmapped-*/_search"),
            Some(query),
        )
        .unwrap();
    assert_eq!(
        r["hits"]["hits"][0]["_source"]["message"], "not JSON at all",
        "{r}"
    );
    // The agent's own count of what it could not read as EVE is every line Vector shipped
    // unmapped: the cut-short line, the text, the array, the missing and the unreadable
    // timestamp and the numeric event type.
    assert_eve_count(&s, "unparsed", bad.len() as f64);
    // `fleet health` (and the monitor `opensearch setup` installs) pages on them.
    let out = run_provision(&t, &os, &s.root, &["fleet", "health", "--json"]);
    assert_eq!(
        paged(&out.stdout, "unmapped"),
        [SENSOR],
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    s.stop_agent();
}

/// The sensors `fleet health --json` names under `check`.
fn paged(stdout: &[u8], check: &str) -> Vec<String> {
    let findings: Value = serde_json::from_slice(stdout).unwrap_or_default();
    findings
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["check"] == check)
        .flat_map(|f| f["sensors"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// Suricata bounds no EVE line: the corpus's longest is a 2.4 MB DNP3 alert, most of it the
/// request's app-layer metadata. Lines up to the cap (`eve::MAX_LINE_BYTES`, 4 MiB) go through
/// the real Vector's file source, disk buffer and bulk request whole; a longer one is skipped by
/// Vector (which only logs it) and by the agent's reader alike, and the agent counts it, in its
/// metrics and its heartbeats, on which `ids2-provision fleet health` pages: never lost unseen.
#[test]
fn megabyte_eve_lines_are_shipped_whole_and_one_over_the_cap_is_counted() {
    let Some(t) = tools() else { return };
    let corpus = corpus(&t);
    let long: Vec<String> = corpus
        .iter()
        .filter(|l| l.len() > 1 << 20)
        .cloned()
        .collect();
    assert!(
        !long.is_empty(),
        "no EVE line over 1 MiB in the corpus (its DNP3 pcaps with dnp3-events.rules make one)"
    );
    let normal = sample(corpus, 5);
    let mut over: Value = serde_json::from_str(
        normal
            .iter()
            .find(|l| l.contains(r#""event_type":"alert""#))
            .unwrap(),
    )
    .unwrap();
    over["ids2_test_pad"] = "".into();
    let base = over.to_string().len();
    over["ids2_test_pad"] = "x"
        .repeat(ids2_agent::eve::MAX_LINE_BYTES + 1 - base)
        .into();
    let over = over.to_string();
    assert_eq!(over.len(), ids2_agent::eve::MAX_LINE_BYTES + 1);

    let os = Osmem::start(&t.osmem).unwrap();
    let mut s = Sensor::new(&t, os.url(), "");
    provision(&t, &os, &s.root);
    s.start_agent();
    let (before, after) = normal.split_at(normal.len() / 2);
    s.append(before);
    s.append(&long);
    s.write_eve(std::slice::from_ref(&over));
    s.append(after);
    // Every line but the one over the cap, once; the one over it nowhere.
    assert_eq!(s.settle(&os, "long lines"), 1.0);

    // The long documents whole: their app-layer metadata is in them.
    for line in &long {
        let want = ship::expected_documents(SENSOR, PREFIX, [line.as_str()]).unwrap();
        let (index, ids) = want.iter().next().unwrap();
        let id = ids.iter().next().unwrap();
        let doc = os.ok("GET", &format!("/{index}/_doc/{id}"), None).unwrap();
        let eve: Value = serde_json::from_str(line).unwrap();
        let size = |v: &Value| v.to_string().len();
        let source = &doc["_source"];
        assert!(
            size(source) > line.len() * 9 / 10,
            "{index}/{id}: a {} byte document for a {} byte line",
            size(source),
            line.len()
        );
        for proto in ["dnp3", "modbus"] {
            if eve.get(proto).is_some() {
                assert_eq!(source["suricata"]["eve"][proto], eve[proto], "{index}/{id}");
            }
        }
    }

    // The agent counted the line it and Vector skipped; Vector said so in its log.
    assert_eve_count(&s, "oversized", 1.0);
    let log = std::fs::read_to_string(s.root.join("agent.log")).unwrap();
    assert!(
        log.contains("exceeds max_line_bytes"),
        "Vector did not log the line it discarded:\n{}",
        s.logs()
    );

    // The heartbeat carries the count to the fleet, and `fleet health` pages on it.
    let (named, answer) = ship::wait_for(Duration::from_secs(60), || {
        let out = run_provision(&t, &os, &s.root, &["fleet", "health", "--json"]);
        (
            paged(&out.stdout, "unshipped").contains(&SENSOR.to_string())
                // A line over the cap is skipped, never shipped unmapped.
                && paged(&out.stdout, "unmapped").is_empty(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    });
    assert!(
        named,
        "fleet health did not name {SENSOR} under unshipped alone:\n{answer}"
    );
    s.stop_agent();
}

/// `ids2-*` style patterns: `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len()).any(|i| glob(rest, &name[head.len() + i..]))
        }
    }
}

/// What happens to the sensor while the server is away.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Nothing: the server is just away.
    Outage,
    /// Vector is SIGKILLed while the server is away; the agent restarts it.
    VectorKilled,
    /// The agent rotates `eve.json` while the server is away.
    Rotation,
}

/// One outage scenario on its own server and sensor; returns the documents-per-line figure.
fn outage(t: &Tools, lines: &[String], fault: Fault) -> f64 {
    let what = format!("{fault:?}");
    let os = Osmem::start(&t.osmem).unwrap();
    let proxy = Proxy::start(os.addr()).unwrap();
    // Rotation at 1 MiB, the least the config accepts: the outage's part is larger.
    let extra = match fault {
        Fault::Rotation => ", eve_rotate_mb: 1",
        _ => "",
    };
    let mut s = Sensor::new(t, &proxy.url(), extra);
    provision(t, &os, &s.root);
    s.start_agent();
    let third = lines.len() / 3;
    s.append_in_parts(&lines[..third], 2, Duration::from_millis(200));
    s.settle(&os, &format!("{what}: before the outage"));

    let rotated = s.logs.join("eve.json.1");
    let rotated_before = sensor::inode(&rotated);
    proxy.set_up(false);
    let away = Instant::now();
    s.append_in_parts(&lines[third..2 * third], 4, Duration::from_millis(500));
    match fault {
        Fault::Outage => {}
        Fault::VectorKilled => {
            std::thread::sleep(Duration::from_secs(5));
            // The agent's supervisor starts it again, while the server is still away.
            s.kill_vector();
        }
        Fault::Rotation => {
            let (done, _) = ship::wait_for(Duration::from_secs(15), || {
                (sensor::inode(&rotated) != rotated_before, ())
            });
            assert!(done, "the agent did not rotate eve.json:\n{}", s.logs());
            // Suricata (here the test) writes into a new eve.json after the rotation.
            s.append(&lines[2 * third..2 * third + third / 4]);
        }
    }
    std::thread::sleep(OUTAGE.saturating_sub(away.elapsed()));
    proxy.set_up(true);
    let start = s.appended.len();
    let rest: Vec<String> = lines[start.min(lines.len())..].to_vec();
    s.append_in_parts(&rest, 2, Duration::from_millis(200));
    let figure = s.settle(&os, &format!("{what}: after 30 s away"));
    s.stop_agent();
    figure
}

#[test]
fn server_away_30s_alone_with_vector_killed_and_with_a_rotation_loses_and_duplicates_nothing() {
    let Some(t) = tools() else { return };
    // Enough for the first two thirds to pass the 1 MiB rotation size (~1.9 MB in all).
    let lines = &sample(corpus(&t), 600);
    let figures: Vec<(Fault, f64)> = std::thread::scope(|scope| {
        [Fault::Outage, Fault::VectorKilled, Fault::Rotation]
            .map(|f| {
                let t = &t;
                scope.spawn(move || (f, outage(t, lines, f)))
            })
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    for (fault, figure) in figures {
        assert_eq!(figure, 1.0, "{fault:?}");
    }
}

#[test]
fn agent_restarted_mid_stream_loses_and_duplicates_nothing() {
    let Some(t) = tools() else { return };
    let lines = &sample(corpus(&t), 300);
    let os = Osmem::start(&t.osmem).unwrap();
    let mut s = Sensor::new(&t, os.url(), "");
    provision(&t, &os, &s.root);
    s.start_agent();
    let third = lines.len() / 3;
    s.append_in_parts(&lines[..third], 3, Duration::from_millis(100));
    // Stopped while Vector is still reading and shipping what was just appended.
    s.stop_agent();
    s.append(&lines[third..2 * third]);
    s.start_agent();
    s.append_in_parts(&lines[2 * third..], 3, Duration::from_millis(100));
    let figure = s.settle(&os, "agent restarted mid-stream");
    assert_eq!(figure, 1.0);
    s.stop_agent();
}

/// Vector SIGKILLed while the server is away and its disk buffer is full (`when_full: block`),
/// so that events sit read but unbuffered between the file source and the sink: every line is
/// indexed once the server is back. The file source's checkpoint moves only when the disk
/// buffer acknowledges an event (`acknowledgements.enabled` on the sink); without it the
/// checkpoint followed the reads and those events were lost (this test with it off, 2026-12-04:
/// 3,170 of 112,000 missing). The server is the bulk stand-in: filling the 256 MiB buffer takes
/// ~100,000 documents, more than the emulator holds.
#[test]
fn vector_killed_with_its_disk_buffer_full_loses_nothing() {
    let Some(t) = tools() else { return };
    let server = BulkStandIn::start();
    let proxy = Proxy::start(server.addr).unwrap();
    // The default sizes, but no rotation: a second rotation would delete a file the blocked
    // Vector had not finished, a loss this test is not about (docs/status.md names it).
    let mut s = Sensor::new(&t, &proxy.url(), ", size_mb: 768, eve_rotate_mb: 256");
    s.start_agent();
    let events = format!("{PREFIX}-suricata.");
    let base = time::OffsetDateTime::now_utc().unix_timestamp();
    // The corpus mix, every line given its own time so that every line is its own document.
    let mix: Vec<&String> = corpus(&t).iter().filter(|l| l.len() < 64 << 10).collect();
    let mut seq = 0u64;
    let mut next = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                seq += 1;
                with_time(mix[seq as usize % mix.len()], &eve_time(base, seq))
            })
            .collect()
    };
    s.append(&next(2_000));
    let (shipped, _) = ship::wait_for(Duration::from_secs(60), || {
        (server.count(&events) >= 2_000, ())
    });
    assert!(shipped, "the first lines were not shipped:\n{}", s.logs());

    proxy.set_up(false);
    let buffered_mib =
        |s: &Sensor| s.vector_metric(BUFFER_BYTES, &[("component_id", "opensearch")]) / 1048576.0;
    // Appended in parts until Vector stops reading: its buffer full, events held before it.
    let started = Instant::now();
    let mut last_read = -1.0;
    let mut still = 0;
    while still < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the disk buffer did not fill: {} lines appended, {} MiB buffered\n{}",
            s.appended.len(),
            buffered_mib(&s),
            s.logs()
        );
        let read = s.vector_metric(
            &["vector_component_received_events_total"],
            &[("component_id", "eve")],
        );
        if read == last_read && read > 0.0 {
            still += 1;
        } else {
            still = 0;
            // The buffer takes ~84,000 mix lines and Vector holds a few thousand before it;
            // 130,000 (~110 MB) stays under the 256 MiB rotation.
            if s.appended.len() < 130_000 {
                s.append(&next(10_000));
            }
        }
        last_read = read;
        std::thread::sleep(Duration::from_secs(2));
    }
    let buffered = buffered_mib(&s);
    let read = last_read as usize;
    eprintln!(
        "buffer full: {buffered:.0} MiB, {read} events read of {} appended, after {:.0?}",
        s.appended.len(),
        started.elapsed()
    );
    assert!(
        buffered > 100.0,
        "the buffer is not full: {buffered:.0} MiB"
    );
    // Vector writes its checkpoints periodically: give them time to follow whatever they follow.
    std::thread::sleep(Duration::from_secs(3));
    s.kill_vector();
    proxy.set_up(true);

    let want =
        ship::expected_documents(SENSOR, PREFIX, s.appended.iter().map(String::as_str)).unwrap();
    let distinct: usize = want.values().map(BTreeSet::len).sum();
    // Until every document is there, or none has come for a minute (what is lost stays lost).
    let mut last = (0, Instant::now());
    ship::wait_for(Duration::from_secs(400), || {
        std::thread::sleep(Duration::from_secs(1));
        let n = server.count(&events);
        if n != last.0 {
            last = (n, Instant::now());
        }
        (
            n >= distinct || last.1.elapsed() > Duration::from_secs(60),
            (),
        )
    });
    let got = server.indexed(&events);
    if let Err(e) = ship::exactly_once(&want, &got) {
        panic!(
            "after a SIGKILL with the buffer full, {} of {distinct} lines indexed:\n{e}\n{}",
            server.count(&events),
            s.logs()
        );
    }
    eprintln!(
        "Vector killed with its buffer full: {} lines, {distinct} documents, 1.000 per line",
        s.appended.len()
    );
    s.stop_agent();
}

/// A loopback `redis-server` the test owns (no persistence), stopped when dropped.
struct Redis {
    child: std::process::Child,
    port: u16,
}

impl Redis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        let r = Self { child, port };
        let (up, _) = ship::wait_for(Duration::from_secs(10), || (r.cli(&["PING"]) == "PONG", ()));
        assert!(up, "redis-server did not answer on port {port}");
        r
    }

    /// `redis-cli` against it; its output, trimmed.
    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `shipping.redis` set while nothing answers at its endpoint: Vector starts at once without
/// the Redis copy and every event reaches OpenSearch (Vector 0.58 with the copy's sink in its
/// config spent minutes retrying before it shipped anything); the agent says so
/// (`ids2_redis_copy_up 0`), and once Redis answers it restarts Vector with the copy, whose
/// events then land in the Redis list as ECS documents.
#[test]
fn redis_down_at_start_holds_back_nothing_and_the_copy_follows_once_it_answers() {
    let Some(t) = tools() else { return };
    if sensor::which("redis-server").is_none() || sensor::which("redis-cli").is_none() {
        eprintln!("SKIP: needs redis-server and redis-cli; .ci/install-deps installs them");
        return;
    }
    let lines = dated_today(&sample(corpus(&t), 40));
    let half = lines.len() / 2;
    let os = Osmem::start(&t.osmem).unwrap();
    let port = ship::free_addr().port();
    let mut s = Sensor::with(
        &t,
        os.url(),
        None,
        "",
        &format!(
            "{{batch_timeout_secs: 1, redis: {{url: 'redis://127.0.0.1:{port}/0', key: 'ids2:copy'}}}}"
        ),
    );
    provision(&t, &os, &s.root);
    let started = Instant::now();
    s.start_agent();
    eprintln!(
        "Vector up {:.1?} after the agent's start, Redis down",
        started.elapsed()
    );
    s.append(&lines[..half]);
    s.settle(&os, "Redis down");
    // The agent's gauge, as its exporter shows it now.
    let copy_up = || {
        let text = ship::scrape(s.agent_metrics).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("ids2_redis_copy_up "))
            .map(str::to_owned)
    };
    let (reported, seen) = ship::wait_for(Duration::from_secs(30), || {
        let v = copy_up();
        (v.as_deref() == Some("0"), v)
    });
    assert!(
        reported,
        "ids2_redis_copy_up is {seen:?} with Redis down, not 0"
    );
    assert!(
        !ship::scrape(s.vector_metrics)
            .unwrap()
            .contains("component_id=\"redis\""),
        "Vector runs the Redis sink with Redis down"
    );

    let redis = Redis::start(port);
    let (copying, _) = ship::wait_for(Duration::from_secs(60), || {
        (copy_up().as_deref() == Some("1"), ())
    });
    assert!(
        copying,
        "the agent did not bring the Redis copy back:\n{}",
        s.logs()
    );
    s.append(&lines[half..]);
    let want = lines.len() - half;
    let (copied, got) = ship::wait_for(Duration::from_secs(60), || {
        let n: usize = redis.cli(&["LLEN", "ids2:copy"]).parse().unwrap_or(0);
        (n >= want, n)
    });
    assert!(
        copied,
        "{got} of {want} events in the Redis list:\n{}",
        s.logs()
    );
    assert_eq!(
        got, want,
        "the Redis list holds events from before Redis was up"
    );
    let first: Value = serde_json::from_str(&redis.cli(&["LINDEX", "ids2:copy", "0"])).unwrap();
    assert!(
        first["event"]["dataset"]
            .as_str()
            .is_some_and(|d| d.starts_with("suricata.")),
        "not an ECS document: {first}"
    );
    assert_eq!(s.settle(&os, "Redis back"), 1.0);
    s.stop_agent();
}
