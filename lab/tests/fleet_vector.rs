//! The fleet side of the shipping path, whole: the agent's heartbeat task (the daemon's own
//! `fleet::heartbeat::Heartbeat`, on its own timer) writes heartbeats, the real Vector ships
//! them with the rendered `vector.toml` (`ids2_lab::ship`) to the osmem-server EMULATOR of the
//! OpenSearch API, whose heartbeat template `ids2-provision opensearch setup --templates-only`
//! installed, and `ids2-provision fleet status` reads them back: online while the agent
//! beats, late after two missed intervals, offline past `--offline-after-secs` once it stops.
//! The sensor beats every 5 s (the least `fleet.heartbeat_secs` accepts) and the threshold is
//! 15 s, so the whole run takes about half a minute. Skips, saying what it needs, without
//! Vector or the emulator; CI has both.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ids2_agent::fleet::heartbeat::{Heartbeat, HEARTBEAT_FILE};
use ids2_agent::metrics::Metrics;
use ids2_agent::supervisor::Shutdown;
use ids2_lab::osmem::{self, Osmem};
use ids2_lab::ship::{self, Vector};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const SENSOR: &str = "fleet-e2e";
/// `fleet.heartbeat_secs` of the test sensor.
const INTERVAL_SECS: u64 = 5;
/// `fleet status --offline-after-secs` (at least two intervals, as the config demands).
const OFFLINE_SECS: u64 = 15;
/// How often the test asks `fleet status`.
const POLL: Duration = Duration::from_millis(500);

/// `ids2-provision` of this very build: the workspace test run builds it beside `ids2-lab`
/// (cargo hands a test only its own package's binaries).
fn provision_of_this_build() -> PathBuf {
    let lab = Path::new(env!("CARGO_BIN_EXE_ids2-lab"));
    let p = lab.with_file_name(format!("ids2-provision{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.is_file(),
        "{} is missing: build it (`cargo build -p ids2-provision`, or run the tests with \
         --workspace)",
        p.display()
    );
    p
}

/// `ids2-provision fleet status --json` against the emulator: (state, age) of [`SENSOR`], or
/// `None` while it has no heartbeat there.
fn status(provision: &Path, url: &str, password: &Path) -> Option<(String, u64, Value)> {
    let out = std::process::Command::new(provision)
        .args(["fleet", "status", "--endpoint", url, "--json"])
        .args(["--offline-after-secs", &OFFLINE_SECS.to_string()])
        .args(["--auth", "basic", "--username", "ids2", "--password-file"])
        .arg(password)
        .output()
        .expect("run ids2-provision");
    assert!(
        out.status.success(),
        "fleet status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sensors: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    let s = sensors.into_iter().find(|s| s["id"] == SENSOR)?;
    Some((
        s["state"].as_str().unwrap_or("").to_string(),
        s["age_secs"].as_u64().unwrap_or(0),
        s,
    ))
}

/// The `@timestamp` of the last line of the heartbeat file.
fn last_beat(logs: &Path) -> OffsetDateTime {
    let text = std::fs::read_to_string(logs.join(ids2_agent::fleet::heartbeat::HEARTBEAT_FILE))
        .expect("the heartbeat file");
    let last: Value = serde_json::from_str(text.lines().last().expect("a heartbeat")).unwrap();
    OffsetDateTime::parse(last["@timestamp"].as_str().unwrap(), &Rfc3339).unwrap()
}

fn since(t: OffsetDateTime) -> f64 {
    (OffsetDateTime::now_utc() - t).as_seconds_f64()
}

#[test]
fn heartbeats_through_vector_make_the_sensor_online_then_late_then_offline() {
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
    let provision = provision_of_this_build();
    let os = Osmem::start(&server).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["logs", "vector", "rules"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let yaml = format!(
        "sensor: {{id: {SENSOR}, name: fleet end-to-end}}\n\
         logs: {{path: {r}/logs}}\n\
         suricata: {{rules_dir: {r}/rules}}\n\
         paths: {{rendered_dir: {r}/rendered, vector_data_dir: {r}/vector}}\n\
         history: {{repo: {r}/history.git}}\n\
         fleet: {{heartbeat_secs: {INTERVAL_SECS}, offline_after_secs: {OFFLINE_SECS}}}\n\
         shipping: {{vector_metrics_listen: '{m}'}}\n{}\n",
        ship::opensearch_yaml(os.url(), "ids2", root).unwrap(),
        r = root.display(),
        m = ship::free_addr(),
    );
    let password = root.join("opensearch-password");

    // The operator's side first: the heartbeat template (observer.hostname a keyword, which
    // the status query aggregates on).
    let setup = std::process::Command::new(&provision)
        .args([
            "opensearch",
            "setup",
            "--endpoint",
            os.url(),
            "--templates-only",
        ])
        .args(["--auth", "basic", "--username", "ids2", "--password-file"])
        .arg(&password)
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "setup --templates-only: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    assert_eq!(status(&provision, os.url(), &password), None);

    let config = ship::render_vector_toml(&yaml, root).unwrap();
    let mut v = Vector::start(&vector, &config, &root.join("vector.log")).unwrap();

    // The agent's heartbeat task, as the daemon runs it, reading the shipping backlog from
    // this Vector's exporter (at the config's shipping.vector_metrics_listen).
    let settings = Arc::new(
        ids2_agent::config::from_str(&yaml, Path::new("config.yaml")).expect("a valid config"),
    );
    let metrics = Arc::new(Metrics::new("fleet-e2e"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = {
        let settings = settings.clone();
        let metrics = metrics.clone();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                Heartbeat::new(settings, metrics, Instant::now())
                    .run(Shutdown::new(stop_rx))
                    .await
            })
        })
    };
    let started = Instant::now();

    // Online once the first heartbeat has gone through Vector.
    let first = loop {
        if let Some((state, _, doc)) = status(&provision, os.url(), &password) {
            break (state, started.elapsed(), doc);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no heartbeat reached the emulator in 30 s; Vector's log:\n{}",
            v.log()
        );
        std::thread::sleep(POLL);
    };
    eprintln!(
        "first heartbeat in fleet status {:.1} s after the agent's first beat",
        first.1.as_secs_f64()
    );
    assert_eq!(first.0, "online", "{:#}", first.2);
    assert_eq!(first.2["name"], "fleet end-to-end");
    assert_eq!(first.2["version"], env!("CARGO_PKG_VERSION"));

    // Three more beats, each shipped: the sensor stays online throughout, but for one known
    // flaw of Vector's: its disk buffer can hold its newest event until the next one arrives
    // (vectordotdev/vector#22946, open; seen here about once in seven runs), so a heartbeat may
    // reach the index one interval late and the sensor look late for that moment. Never more.
    let beats_wanted = 4.0;
    let mut late_polls = 0;
    while metrics.heartbeats.get(&[]).unwrap_or(0.0) < beats_wanted {
        let (state, age, _) = status(&provision, os.url(), &password).unwrap();
        if state == "late" && age <= 3 * INTERVAL_SECS {
            late_polls += 1;
        } else {
            assert_eq!(state, "online", "age {age} s while the agent beats");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the task stopped beating"
        );
        std::thread::sleep(POLL);
    }
    stop.send(true).unwrap();
    task.join()
        .unwrap()
        .expect("the heartbeat task ends cleanly");
    let beats = metrics.heartbeats.get(&[]).unwrap_or(0.0) as u64;
    if late_polls > 0 {
        eprintln!(
            "late for {late_polls} poll(s) while beating: a heartbeat held by Vector's buffer"
        );
    }
    let last = last_beat(&root.join("logs"));

    // Each heartbeat carries Vector's events buffer, read from the real exporter: its size
    // is the rendered one (256 MiB, Vector's smallest disk buffer), and it drains.
    let text = std::fs::read_to_string(root.join("logs").join(HEARTBEAT_FILE)).unwrap();
    for line in text.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        let shipping = &doc["ids2"]["shipping"];
        let (bytes, ratio) = (
            shipping["buffer_bytes"].as_u64(),
            shipping["buffer_ratio"].as_f64(),
        );
        assert!(
            bytes.is_some() && ratio.is_some_and(|r| (0.0..=1.0).contains(&r)),
            "no shipping backlog in {doc}"
        );
        assert!(bytes.unwrap() < 1 << 20, "{doc}");
    }

    // Every heartbeat written is one document, under its deterministic id.
    // Nothing follows the last one now: if Vector's buffer holds it (the flaw above), a
    // restart releases it, as the next heartbeat would. It is on disk, so it arrives, once.
    let written = Instant::now();
    let (all_in, counts) =
        ship::wait_releasing(&mut v, "heartbeat", beats, Duration::from_secs(3), || {
            let counts = os.indices("ids2-heartbeat-*").unwrap();
            (counts.values().sum::<u64>() == beats, counts)
        });
    eprintln!(
        "all {beats} heartbeats indexed {:.1} s after the task stopped",
        written.elapsed().as_secs_f64()
    );
    if !all_in {
        let indexed = os.ok(
            "POST",
            "/ids2-heartbeat-*/_search",
            Some(br#"{"size": 100, "_source": ["@timestamp"]}"#),
        );
        // Where the missing one stopped: read by the file source, or sent by the sink.
        let flow: Vec<String> = [
            ("vector_component_received_events_total", "heartbeat"),
            ("vector_component_sent_events_total", "heartbeat_ecs"),
            ("vector_component_sent_events_total", "opensearch_heartbeat"),
        ]
        .iter()
        .map(|(m, c)| format!("{m}{{{c}}} = {:?}", v.metric(m, &[("component_id", c)])))
        .collect();
        panic!(
            "{beats} heartbeats written, indexed: {counts:?}\nVector: {flow:?}\nwritten:\n{text}\nindexed: {indexed:?}\n{}",
            v.log()
        );
    }

    // Then late (older than two intervals), then offline (older than the threshold).
    let mut seen: Vec<(String, f64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(OFFLINE_SECS + 15);
    loop {
        let (state, age, _) = status(&provision, os.url(), &password).unwrap();
        let at = since(last);
        if seen.last().map(|(s, _)| s) != Some(&state) {
            eprintln!("{at:>5.1} s after the last heartbeat: {state} (age {age} s)");
            seen.push((state.clone(), at));
        }
        if state == "offline" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never offline: {seen:?}\nVector's log:\n{}",
            v.log()
        );
        std::thread::sleep(POLL);
    }
    let states: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["online", "late", "offline"], "{seen:?}");
    // fleet status counts whole seconds since @timestamp, so each state starts within a
    // second (plus one poll) of its threshold.
    let late_at = seen[1].1;
    let offline_at = seen[2].1;
    // Plus a second for `fleet status` itself to run on a loaded machine.
    let slack = 1.0 + POLL.as_secs_f64() + 1.0;
    let late_from = (2 * INTERVAL_SECS) as f64;
    assert!(
        late_at >= late_from && late_at <= late_from + slack,
        "late at {late_at:.1} s, expected just after {late_from} s"
    );
    assert!(
        offline_at >= OFFLINE_SECS as f64 && offline_at <= OFFLINE_SECS as f64 + slack,
        "offline at {offline_at:.1} s, expected just after {OFFLINE_SECS} s"
    );
    eprintln!(
        "{beats} heartbeats, {beats} documents; late {late_at:.1} s and offline {offline_at:.1} s \
         after the last one (thresholds {late_from} s and {OFFLINE_SECS} s)"
    );
    v.stop();
}
