//! The shipping harness on its own (`ids2_lab::ship`): the real Vector on the rendered
//! `vector.toml`, pointed at the osmem-server emulator by `opensearch.endpoint` alone, indexes
//! each EVE line once under its deterministic id; the same lines again (a replay) change
//! nothing and raise no error; an event the server refuses does raise one, in Vector's log and
//! its metrics; a heartbeat lands in the heartbeat index. Vector sends gzip bodies here
//! (`shipping.compression: gzip`), so that setting is proven against the emulator too. Skips
//! (saying what it needs) without Vector or the emulator; CI has both.

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
         shipping: {{batch_timeout_secs: 1, compression: gzip, vector_metrics_listen: '{m}'}}\n{}\n",
        ship::opensearch_yaml(os.url(), "ids2", root).unwrap(),
        r = root.display(),
        m = ship::free_addr(),
    );
    let config = ship::render_vector_toml(&yaml, root).unwrap();
    let rendered = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        rendered.matches("compression = \"gzip\"").count(),
        2,
        "{rendered}"
    );
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
    // Each wait ends on the last lines appended, with nothing to follow them: the disk buffer
    // may hold them (vectordotdev/vector#22946), which `wait_releasing` handles.
    let settle = |v: &mut Vector, read: u64| {
        ship::wait_releasing(v, "eve", read, Duration::from_secs(60), || {
            let got = ship::indexed_ids(&os, "ids2-suricata.*").unwrap();
            (ship::exactly_once(&want, &got).is_ok(), got)
        });
        let got = ship::indexed_ids(&os, "ids2-suricata.*").unwrap();
        if let Err(why) = ship::exactly_once(&want, &got) {
            panic!("{why}\nVector's log:\n{}", v.log());
        }
    };
    settle(&mut v, 3);
    // Vector's counters start again when `wait_releasing` restarts it: the counts below are
    // taken from this process on, and the sent count is only checked while it runs.
    let eve_source = [("component_id", "eve")];
    let sink = [("component_id", "opensearch")];
    let count = |v: &Vector, name: &str, labels: &[(&str, &str)]| {
        v.metric(name, labels).unwrap_or_default()
    };
    let (pid, read_before, sent_before) = (
        v.pid(),
        count(&v, "vector_component_received_events_total", &eve_source),
        count(&v, "vector_component_sent_events_total", &sink),
    );
    // The same bytes again (a replay) keep one document each.
    append(&root.join("logs/eve.json"), &lines);
    let (read, _) = ship::wait_for(Duration::from_secs(30), || {
        let n = count(&v, "vector_component_received_events_total", &eve_source);
        (n >= read_before + 3.0, n)
    });
    assert!(read, "Vector did not read the repeated lines");
    std::thread::sleep(Duration::from_secs(3));
    settle(&mut v, read_before as u64 + 3);
    // A replay is not an error: nothing in the log, nothing counted as discarded.
    let discarded = |v: &Vector| count(v, "vector_component_discarded_events_total", &sink);
    assert!(
        !v.log().contains("Response contained errors"),
        "{}",
        v.log()
    );
    assert_eq!(discarded(&v), 0.0, "{}", v.log());
    // Every replayed event was sent, or waits in the disk buffer for one to follow it
    // (vectordotdev/vector#22946, see `ship::wait_releasing`).
    if v.pid() == pid {
        let (all_sent, counted) = ship::wait_for(Duration::from_secs(10), || {
            let sent = count(&v, "vector_component_sent_events_total", &sink) - sent_before;
            let held = count(
                &v,
                "vector_buffer_size_events",
                &[("buffer_id", "opensearch")],
            );
            (sent + held >= 3.0, (sent, held))
        });
        assert!(
            all_sent,
            "the replayed events were sent (sent, still buffered): {counted:?}"
        );
    } else {
        eprintln!("Vector was restarted meanwhile: its sent count started again; the documents show the replay");
    }
    // An event the server refuses (its field's type contradicts what the index holds) is told
    // apart: Vector's ERROR names the reason and the discarded counter rises.
    let refused = eve(
        "2025-03-01T12:00:00.000000+0000",
        "flow",
        ",\"ids2_probe\":\"text\"",
    );
    append(&root.join("logs/eve.json"), std::slice::from_ref(&refused));
    // Read by address and file: the probe runs while `wait_releasing` may restart Vector. A
    // held event is sent while the old process drains on SIGTERM, so then its refusal is in the
    // log only (the new process's counter starts at 0).
    let (exporter, log_path, pid) = (v.metrics_addr(), root.join("vector.log"), v.pid());
    let read_before = count(&v, "vector_component_received_events_total", &eve_source);
    let (seen, _) = ship::wait_releasing(
        &mut v,
        "eve",
        read_before as u64 + 1,
        Duration::from_secs(30),
        || {
            let text = ship::scrape(exporter).unwrap_or_default();
            let n = ship::metric_sum(&text, "vector_component_discarded_events_total", &sink);
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let logged = log.contains("mapper_parsing_exception") && log.contains("Events dropped");
            (n > 0.0 || logged, ())
        },
    );
    assert!(seen, "the refusal is not told apart:\n{}", v.log());
    let log = v.log();
    assert!(
        log.contains("Response contained errors") && log.contains("mapper_parsing_exception"),
        "{log}"
    );
    if v.pid() == pid {
        let (ok, _) = ship::wait_for(Duration::from_secs(5), || (discarded(&v) > 0.0, ()));
        assert!(ok, "the refusal is not counted:\n{log}");
    } else {
        eprintln!("Vector was restarted to release the refused event: the old process logged it");
    }
    // Every line has been read by now (whichever process read it): restart if need be.
    settle(&mut v, 0);
    // The heartbeat: its own index, its deterministic id.
    let (ok, hb) = ship::wait_releasing(&mut v, "heartbeat", 1, Duration::from_secs(15), || {
        let hb = ship::indexed_ids(&os, "ids2-heartbeat-*").unwrap();
        (hb.values().map(Vec::len).sum::<usize>() == 1, hb)
    });
    assert!(ok, "heartbeat index: {hb:?}\n{}", v.log());
    assert_eq!(hb.keys().collect::<Vec<_>>(), ["ids2-heartbeat-2025.03.01"]);
    // Vector serves its metrics where the config said, not on the sensor's default port.
    assert!(v.metrics_addr().port() != 9598);
    v.stop();
}
