//! End-to-end: the lab on real network namespaces with real Suricata, run by the real
//! `ids2-agent run --backend process` in the sensor namespace. Every default scenario must be
//! detected by its expected rule within its window (5 s from its start unless the scenario
//! says: the slow scan sends for 18 s and must not trip the 5-second scan rule; SSH brute
//! force goes against Debian's real sshd), the benign baseline must raise no ids2
//! alert, the kernel must drop nothing, every alert must be an ECS document in the agent's
//! archive, the agent's own `/metrics` (scraped over HTTP) must count exactly the alerts it had
//! archived, and no namespace or process may outlive the run. Needs root and suricata; skips
//! otherwise.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ids2_lab::{self as lab, emulate, LabOptions, DETECTION_WINDOW, IDS2_SIDS};

/// The `ids2-agent` binary of this very build, never built here: cargo gives a test only its
/// own package's binaries (`CARGO_BIN_EXE_ids2-lab`), and the test command
/// (`cargo nextest run --workspace`) builds `ids2-agent` into the same directory with the same
/// features. (A `cargo build -p ids2-agent` inside the test once re-resolved features and
/// rebuilt half the tree, ~110 s of each clean CI run.) A missing or stale binary — one older
/// than a source of the agent, its core or its templates, as after
/// `cargo nextest run -p ids2-lab` alone — fails the test with the command that builds it,
/// rather than testing yesterday's agent.
fn agent_of_this_build() -> PathBuf {
    let lab = Path::new(env!("CARGO_BIN_EXE_ids2-lab"));
    let agent = lab.with_file_name(format!("ids2-agent{}", std::env::consts::EXE_SUFFIX));
    let built = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let Some(agent_built) = built(&agent) else {
        panic!(
            "{} is missing: build it with the lab (`cargo build -p ids2-agent`, or run the \
             tests with --workspace)",
            agent.display()
        );
    };
    // Sources rather than the agent's rlibs: `cargo nextest run -p ids2-agent` leaves a
    // second, newer rlib of other features beside the one a workspace build links.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = ["agent/src", "core/src", "templates"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    let mut newest_input = SystemTime::UNIX_EPOCH;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Some(t) = built(&path) {
                newest_input = newest_input.max(t);
            }
        }
    }
    assert!(
        agent_built >= newest_input,
        "{} is older than the agent's code: rebuild it (`cargo build -p ids2-agent`, or run the \
         tests with --workspace)",
        agent.display()
    );
    agent
}

#[test]
fn lab_detects_every_scenario_and_nothing_benign() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP lab_detects_every_scenario_and_nothing_benign: needs root (network namespaces, raw sockets)");
        return;
    }
    if ids2_agent::suricata::Suricata::locate()
        .ok()
        .flatten()
        .is_none()
    {
        eprintln!(
            "SKIP lab_detects_every_scenario_and_nothing_benign: needs suricata (.ci/install-deps)"
        );
        return;
    }
    if !Path::new("/usr/sbin/sshd").is_file() {
        eprintln!(
            "SKIP lab_detects_every_scenario_and_nothing_benign: needs Debian's openssh-server \
             (SSH brute force goes against a real sshd; .ci/install-deps installs it)"
        );
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("alerts.ecs.jsonl");
    let report = lab::run(&LabOptions {
        duration: Duration::ZERO,
        scenarios: None,
        archive: Some(archive.clone()),
        print: true,
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        agent: agent_of_this_build(),
    })
    .expect("the lab runs");

    assert!(!report.interrupted);
    let defaults = emulate::parse(lab::DEFAULT_SCENARIOS, "default.json").unwrap();
    assert_eq!(
        report.rows.len(),
        defaults.len(),
        "every default scenario ran"
    );
    for row in &report.rows {
        assert!(row.sent.count > 0, "{} sent nothing", row.name);
        assert_eq!(row.sent.failures, 0, "{}: {:?}", row.name, row.sent);
        let latency = row.latency.unwrap_or_else(|| {
            panic!(
                "{} ({}) not detected by {}; ids2 alerts meanwhile: {:?}",
                row.name, row.technique_id, row.expect, row.sids
            )
        });
        assert!(
            latency <= row.window,
            "{} detected after {latency:?}",
            row.name
        );
        assert!(row.window >= DETECTION_WINDOW);
    }
    // The slow scan is detected by the slow-scan rule alone: its pacing (at most 4 probes in
    // any 5 s) stays under the 5-second scan rule (9200010), which must not have fired.
    let slow = &report.rows[0];
    assert!(slow.name.starts_with("Slow TCP port scan"), "{}", slow.name);
    assert!(
        slow.sent.elapsed >= std::time::Duration::from_secs(15),
        "the slow scan took {:?}",
        slow.sent.elapsed
    );
    assert!(
        !slow.sids.contains(&9_200_010),
        "the slow scan tripped the fast-scan rule: {:?}",
        slow.sids
    );
    // SSH brute force went against Debian's sshd: OpenSSH refused the logins.
    assert_eq!(report.victim_ssh, "sshd");

    assert_eq!(
        report.baseline_answered, 10,
        "the benign HTTP, DNS and TLS exchanges all answered"
    );
    assert!(
        report.baseline_alerts.is_empty(),
        "ids2 alerts on benign traffic: {:?}",
        report.baseline_alerts
    );

    assert!(
        report.kernel_packets > 1_000,
        "Suricata saw the LAN: {}",
        report.kernel_packets
    );
    assert_eq!(report.kernel_drops, 0, "kernel drops at lab rates");

    // Each alert is an ECS document in the archive, found by its deterministic id.
    let docs: Vec<serde_json::Value> = std::fs::read_to_string(&archive)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len() as u64, report.archived);
    assert_eq!(docs.len(), report.alerts.len());
    let ids: HashSet<&str> = docs
        .iter()
        .map(|d| d["event"]["id"].as_str().expect("event.id"))
        .collect();
    for alert in report.alerts.iter().filter(|a| IDS2_SIDS.contains(&a.sid)) {
        let id = alert.ecs_id.as_deref().expect("mapped");
        assert!(
            ids.contains(id),
            "alert {} missing from the archive",
            alert.sid
        );
    }
    for doc in &docs {
        assert_eq!(doc["event"]["kind"], "alert");
        assert_eq!(doc["event"]["dataset"], "suricata.alert");
        assert_eq!(doc["observer"]["ingress"]["interface"]["name"], "eth0");
        assert!(doc["@timestamp"].is_string());
    }

    // The agent's metrics count the alerts. Its one EVE reader counts every line and hands the
    // alerts (Suricata's, and its behavioural detector's, counted apart) to the archive, so at the final scrape (traffic over, the reader idle) the alert
    // count, the archive's own document counter and the documents in the file are equal, not
    // merely >=; the shutdown drain may only add documents after that.
    assert!(
        report.metrics_url.starts_with("http://127.0.0.1:"),
        "{}",
        report.metrics_url
    );
    assert_eq!(
        report.metrics.alerts + report.metrics.behaviour_alerts,
        report.archived_at_scrape,
        "ids2_eve_events_total{{event_type=\"alert\"}} + ids2_behaviour_alerts_total scraped from {}",
        report.metrics_url
    );
    assert_eq!(
        report.metrics.archive_documents, report.archived_at_scrape,
        "ids2_archive_documents_total scraped from {}",
        report.metrics_url
    );
    assert!(report.archived >= report.archived_at_scrape);
    assert!(report.metrics.alerts >= report.rows.len() as u64);
    // Suricata writes stats every 8 s; once one was read, the capture counter is exported,
    // non-zero (the LAN was busy), and trails the exact totals Suricata prints.
    assert!(
        report.metrics.stats_events > 0,
        "no stats event reached the agent"
    );
    let packets = report
        .metrics
        .capture_packets
        .expect("ids2_suricata_capture_packets_total exported after a stats event");
    assert!(
        packets > 0 && packets <= report.kernel_packets,
        "capture packets {packets} vs Suricata's total {}",
        report.kernel_packets
    );

    // Nothing outlives the lab.
    for ns in &report.namespaces {
        assert!(!lab::namespace_exists(ns), "namespace {ns} left behind");
    }
    for (what, pid) in [
        ("ids2-agent", report.agent_pid.expect("the agent ran")),
        (
            "suricata",
            report.suricata_pid.expect("the agent ran suricata"),
        ),
    ] {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .map_or(true, |c| !c.contains(what)),
            "{what} (pid {pid}) still running"
        );
    }
}
