//! The shipping harness on its own (`ids2_lab::ship`): the real Vector on the rendered
//! `vector.toml`, pointed at the osmem-server emulator by `opensearch.endpoint` alone, indexes
//! each EVE line once under its deterministic id; the same lines again (a replay) change
//! nothing and raise no error; an event the server refuses does raise one, in Vector's log and
//! its metrics; a heartbeat lands in the heartbeat index. Skips (saying what it needs) without
//! Vector or the emulator; CI has both.

use std::time::Duration;

use ids2_lab::osmem::{self, Osmem};
use ids2_lab::ship::{self, Vector};

const SENSOR: &str = "ship-harness";

fn eve(ts: &str, etype: &str, extra: &str) -> String {
    format!(
        "{{\"timestamp\":\"{ts}\",\"flow_id\":1,\"event_type\":\"{etype}\",\"src_ip\":\"10.0.0.1\",\
         \"src_port\":1234,\"dest_ip\":\"10.0.0.2\",\"dest_port\":53,\"proto\":\"UDP\"{extra}}}"
    )
}

fn append(path: &std::path::Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

#[test]
fn real_vector_ships_each_eve_line_once_to_the_emulator() {
    let (vector, server) = match (ids2_agent::vector::locate(), osmem::locate()) {
        (Ok(v), Ok(s)) => (v, s),
        (v, s) => {
            eprintln!(
                "SKIP: needs Vector and osmem-server: {}",
                [v.err(), s.err()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            return;
        }
    };
    let os = Osmem::start(&server).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["logs", "vector"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let yaml = format!(
        "sensor: {{id: {SENSOR}}}\n\
         logs: {{path: {r}/logs}}\n\
         paths: {{rendered_dir: {r}/rendered, vector_data_dir: {r}/vector}}\n\
         history: {{repo: {r}/history.git}}\n\
         shipping: {{batch_timeout_secs: 1}}\n{}\n",
        ship::opensearch_yaml(os.url(), "ids2", root).unwrap(),
        r = root.display()
    );
    let config = ship::render_vector_toml(&yaml, root).unwrap();
    let lines = vec![
        eve(
            "2025-03-01T10:00:00.000001+0000",
            "dns",
            ",\"dns\":{\"type\":\"query\",\"rrname\":\"example.org\"}",
        ),
        eve(
            "2025-03-01T23:59:59.5+0000",
            "alert",
            ",\"alert\":{\"signature_id\":9200001,\"signature\":\"test\",\"severity\":2}",
        ),
        eve(
            "2025-03-02T00:30:00.000000+0100",
            "flow",
            ",\"ids2_probe\":1",
        ),
    ];
    append(&root.join("logs/eve.json"), &lines);
    let heartbeat = format!(
        "{{\"@timestamp\":\"2025-03-01T10:00:00Z\",\"observer\":{{\"hostname\":\"{SENSOR}\"}},\
         \"event\":{{\"dataset\":\"ids2.heartbeat\"}}}}"
    );
    append(
        &root.join("logs/heartbeat.json"),
        std::slice::from_ref(&heartbeat),
    );

    let mut v = Vector::start(&vector, &config, &root.join("vector.log")).unwrap();
    let want = ship::expected_documents(SENSOR, "ids2", lines.iter().map(String::as_str)).unwrap();
    let settle = |v: &Vector| {
        ship::wait_for(Duration::from_secs(60), || {
            let got = ship::indexed_ids(&os, "ids2-suricata.*").unwrap();
            (ship::exactly_once(&want, &got).is_ok(), got)
        });
        let got = ship::indexed_ids(&os, "ids2-suricata.*").unwrap();
        if let Err(why) = ship::exactly_once(&want, &got) {
            panic!("{why}\nVector's log:\n{}", v.log());
        }
    };
    settle(&v);
    // The same bytes again (a replay) keep one document each.
    append(&root.join("logs/eve.json"), &lines);
    let (sent, _) = ship::wait_for(Duration::from_secs(30), || {
        let n = v
            .metric(
                "vector_component_received_events_total",
                &[("component_id", "eve")],
            )
            .unwrap_or_default();
        (n >= 6.0, n)
    });
    assert!(sent, "Vector did not read the repeated lines");
    std::thread::sleep(Duration::from_secs(3));
    settle(&v);
    // A replay is not an error: nothing in the log, nothing counted as discarded.
    let sink = [("component_id", "opensearch")];
    let discarded = |v: &Vector| {
        v.metric("vector_component_discarded_events_total", &sink)
            .unwrap_or_default()
    };
    assert!(
        !v.log().contains("Response contained errors"),
        "{}",
        v.log()
    );
    assert_eq!(discarded(&v), 0.0, "{}", v.log());
    // Every replayed event was sent, or waits in the disk buffer for one to follow it
    // (vectordotdev/vector#22946, see `ship::wait_releasing`).
    let (all_sent, counted) = ship::wait_for(Duration::from_secs(10), || {
        let sent = v
            .metric("vector_component_sent_events_total", &sink)
            .unwrap_or_default();
        let held = v
            .metric("vector_buffer_size_events", &[("buffer_id", "opensearch")])
            .unwrap_or_default();
        (sent + held >= 6.0, (sent, held))
    });
    assert!(
        all_sent,
        "the replayed events were sent (sent, still buffered): {counted:?}"
    );
    // An event the server refuses (its field's type contradicts what the index holds) is told
    // apart: Vector's ERROR names the reason and the discarded counter rises.
    let refused = eve(
        "2025-03-01T12:00:00.000000+0000",
        "flow",
        ",\"ids2_probe\":\"text\"",
    );
    append(&root.join("logs/eve.json"), std::slice::from_ref(&refused));
    let (seen, _) = ship::wait_for(Duration::from_secs(30), || (discarded(&v) > 0.0, ()));
    assert!(seen, "the refusal is not counted:\n{}", v.log());
    let log = v.log();
    assert!(
        log.contains("Response contained errors") && log.contains("mapper_parsing_exception"),
        "{log}"
    );
    settle(&v);
    // The heartbeat: its own index, its deterministic id.
    let (ok, hb) = ship::wait_releasing(&mut v, "heartbeat", 1, Duration::from_secs(15), || {
        let hb = ship::indexed_ids(&os, "ids2-heartbeat-*").unwrap();
        (hb.values().map(Vec::len).sum::<usize>() == 1, hb)
    });
    assert!(ok, "heartbeat index: {hb:?}\n{}", v.log());
    assert_eq!(hb.keys().collect::<Vec<_>>(), ["ids2-heartbeat-2025.03.01"]);
    // Vector serves its metrics on the address the harness gave it, not the sensor's port.
    assert!(v.metrics_addr().port() != 9598);
    v.stop();
}
