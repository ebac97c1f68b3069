//! End-to-end: the lab on real network namespaces with real Suricata, run by the real
//! `ids2-agent run --backend process` in the sensor namespace. Every default scenario must be
//! detected by its expected rule within its window (5 s from its start unless the scenario
//! says: the slow scan sends for 18 s and must not trip the 5-second scan rule; SSH brute
//! force goes against Debian's real sshd), the benign baseline must raise no ids2
//! alert, the kernel must drop nothing, every alert must be an ECS document in the agent's
//! archive, the agent's own `/metrics` (scraped over HTTP) must count exactly the alerts it had
//! archived, the scenarios reaching the lab's intel feeds must carry the matched indicator in
//! `threat.*`, and no namespace or process may outlive the run. Needs root and suricata; skips
//! otherwise.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use ids2_lab::{self as lab, emulate, LabOptions, DETECTION_WINDOW, IDS2_SIDS};

#[path = "../../agent/tests/support/sshd.rs"]
mod sshd;
mod support {
    pub mod needs;
    pub mod this_build;
}

use support::needs;
use support::this_build::agent_of_this_build;

#[test]
fn lab_detects_every_scenario_and_nothing_benign() {
    const NAME: &str = "lab_detects_every_scenario_and_nothing_benign";
    if !needs::root(NAME, "network namespaces, raw sockets") || needs::suricata(NAME).is_none() {
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

    check_evidence(&report, &docs);
    check_intel(&report, &docs);
    check_shipped(&report);
    fetch_evidence_over_ssh(&report, out.path());

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

/// Shipping: with the real Vector and the osmem-server emulator both found (CI has them), the
/// lab's sensor shipped through Vector, and every alert the lab had read from the archive by
/// the end of the run is a document of the emulator's alert index, under the same `event.id`;
/// flows and Suricata's stats went too. Without them the lab says why it kept the archive only.
fn check_shipped(report: &lab::Report) {
    let both = ids2_agent::vector::locate().and_then(|_| lab::osmem::locate());
    match (&report.shipped, both) {
        (Ok(s), Ok(_)) => {
            assert!(s.alerts_archived > 0);
            assert_eq!(
                s.alerts_indexed, s.alerts_archived,
                "archived alerts indexed by the emulator at {}: {:?}",
                s.url, s.indices
            );
            for kind in ["alert", "flow", "stats"] {
                assert!(
                    s.indices
                        .keys()
                        .any(|i| i.starts_with(&format!("ids2-suricata.{kind}-"))),
                    "no {kind} index: {:?}",
                    s.indices
                );
            }
        }
        (Err(why), Ok(_)) => panic!("Vector and the emulator are here, yet: {why}"),
        (Err(why), Err(missing)) => {
            eprintln!("shipping not checked (the lab kept the archive only: {why}); {missing}")
        }
        (Ok(_), Err(missing)) => panic!("shipped although {missing}"),
    }
}

/// Threat intel: the scenarios reaching the lab's feeds (the C2 address, the C2 domain in an
/// SNI, the emulator's JA3) were each detected by their feed's rule, and the alert's document
/// carries `threat.feed.name`, `threat.indicator.type` and the matched indicator — the JA3
/// Suricata computed equal to the one the emulator's hello was built to have.
fn check_intel(report: &lab::Report, docs: &[serde_json::Value]) {
    let feeds = lab::intel_feeds();
    let mut seen = Vec::new();
    for row in &report.rows {
        let Some(msg) = row.expect.signature.as_deref() else {
            continue;
        };
        let feed = feeds
            .iter()
            .find(|f| msg.starts_with(&format!("IDS2 INTEL {} ", f.name)))
            .unwrap_or_else(|| panic!("{}: {msg} is no lab feed's rule", row.name));
        let id = row.detected_by.as_deref().expect("detected");
        let doc = docs
            .iter()
            .find(|d| d["event"]["id"] == id)
            .expect("the alert's document");
        let threat = &doc["threat"];
        assert_eq!(threat["feed"]["name"], feed.name, "{}: {doc}", row.name);
        let matched = threat["indicator"]["name"].as_str().unwrap_or_else(|| {
            panic!("{}: no threat.indicator.name in {doc}", row.name);
        });
        assert!(
            feed.indicators.iter().any(|i| i == matched),
            "{}: matched {matched}, not on {} {:?}",
            row.name,
            feed.name,
            feed.indicators
        );
        let (kind, field) = match feed.kind {
            "ip" => ("ipv4-addr", &threat["indicator"]["ip"]),
            "domain" => ("domain-name", &threat["indicator"]["url"]["domain"]),
            "ja3" => ("software", &threat["indicator"]["name"]),
            other => panic!("a lab feed of kind {other}"),
        };
        assert_eq!(threat["indicator"]["type"], kind, "{}: {doc}", row.name);
        assert_eq!(field, matched, "{}: {doc}", row.name);
        seen.push(feed.kind);
    }
    seen.sort_unstable();
    assert_eq!(seen, ["domain", "ip", "ja3"], "one scenario per lab feed");
}

/// An ECS time (`@timestamp`, `event.start`) in microseconds since the epoch.
fn micros(v: &serde_json::Value) -> i64 {
    let text = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// Packet evidence: for every detected scenario the sensor kept the pcap of the alert's flow;
/// it reads back with tcpdump (an independent reader) as many packets as the store says, holds
/// that flow's 5-tuple only (in either direction), and begins at the flow's first packet (the
/// alert's `event.start`), at or before the packet that raised the alert.
fn check_evidence(report: &lab::Report, docs: &[serde_json::Value]) {
    use ids2_agent::evidence::pcap;
    for row in &report.rows {
        let id = row
            .detected_by
            .as_deref()
            .expect("the detecting alert's event.id");
        let ev = row.evidence.as_ref().unwrap_or_else(|| {
            panic!(
                "{}: no evidence kept for its alert {id} in {}",
                row.name,
                report.evidence_dir.display()
            )
        });
        assert!(
            ev.pcap.starts_with(&report.evidence_dir),
            "{}",
            ev.pcap.display()
        );
        let doc = docs
            .iter()
            .find(|d| d["event"]["id"] == id)
            .expect("the alert's document");
        let e = &ev.entry;
        let mut kept = [e.src_ip.to_string(), e.dest_ip.to_string()];
        let mut alerted = [&doc["source"]["ip"], &doc["destination"]["ip"]]
            .map(|v| v.as_str().expect("an address").to_string());
        kept.sort();
        alerted.sort();
        assert_eq!(kept, alerted, "{}: the alert's hosts", row.name);
        assert_eq!(
            e.community_id.as_deref(),
            doc["network"]["community_id"].as_str()
        );
        // An alert Suricata filed under no flow (an unreachable for a probe whose flow it did
        // not keep) counts no flow packets; it has at least its own.
        let counted = doc["network"]["packets"].as_u64().unwrap_or(1);
        assert!(
            e.packets >= counted,
            "{}: {} packets kept, Suricata had counted {counted} when it alerted",
            row.name,
            e.packets
        );
        assert!(e.alerts.iter().any(|a| a.event_id == id), "{}", row.name);

        let tcpdump = std::process::Command::new("tcpdump")
            .args(["-nn", "-r"])
            .arg(&ev.pcap)
            .output()
            .expect("tcpdump (.ci/install-deps installs it)");
        assert!(tcpdump.status.success(), "{}: {tcpdump:?}", row.name);
        let read_back = String::from_utf8_lossy(&tcpdump.stdout).lines().count() as u64;
        assert_eq!(
            read_back, e.packets,
            "{}: tcpdump reads every packet",
            row.name
        );

        let mut reader = pcap::Reader::new(std::fs::File::open(&ev.pcap).unwrap()).unwrap();
        let linktype = reader.header.linktype;
        // The flow as Suricata files packets: a TCP or UDP flow is its 5-tuple either way,
        // with the ICMP unreachables quoting its packets; an ICMP flow is ICMP between its
        // two hosts that quotes no TCP or UDP packet.
        let ends = |s, sp, d, dp| {
            (s, sp, d, dp) == (e.src_ip, e.src_port, e.dest_ip, e.dest_port)
                || (s, sp, d, dp) == (e.dest_ip, e.dest_port, e.src_ip, e.src_port)
        };
        let (mut first, mut n) = (None, 0u64);
        while let Some(rec) = reader.next_record() {
            let t = pcap::tuple(linktype, &rec.data).expect("an IP packet");
            let ours = match e.proto.as_str() {
                "TCP" | "UDP" => {
                    (t.proto == if e.proto == "TCP" { 6 } else { 17 }
                        && ends(t.src, t.sport, t.dst, t.dport))
                        || t.quoted
                            .is_some_and(|q| ends(q.src, q.sport, q.dst, q.dport))
                }
                "ICMP" => t.proto == 1 && t.quoted.is_none() && ends(t.src, 0, t.dst, 0),
                other => panic!("{}: a {other} flow in the lab", row.name),
            };
            assert!(
                ours,
                "{}: a packet of another flow in its evidence: {t:?}",
                row.name
            );
            first.get_or_insert(rec.ts_us);
            n += 1;
        }
        assert_eq!(n, e.packets, "{}", row.name);
        let first = first.expect("at least one packet");
        if !doc["event"]["start"].is_null() {
            assert_eq!(
                first,
                micros(&doc["event"]["start"]),
                "{}: the evidence begins at the flow's first packet",
                row.name
            );
        }
        assert!(
            first <= micros(&doc["@timestamp"]),
            "{}: the evidence begins at or before the alert",
            row.name
        );
    }
}

/// An analyst's laptop fetching a detected scenario's evidence from the lab's store: the
/// alert's `event.id` to `ids2-provision pcap get --sensor root@127.0.0.1 --alert ID` through a
/// real sshd on loopback (a throwaway key, a private mount namespace), which runs the sensor's
/// `ids2-agent pcap get` on a config naming that store: the same bytes as on the sensor.
fn fetch_evidence_over_ssh(report: &lab::Report, work: &Path) {
    let agent = agent_of_this_build();
    let provision = agent.with_file_name(format!("ids2-provision{}", std::env::consts::EXE_SUFFIX));
    assert!(
        provision.is_file(),
        "{} is missing: run the tests with --workspace",
        provision.display()
    );
    let sshd = match sshd::Sshd::start() {
        Ok(s) => s,
        Err(why) => {
            panic!("sshd for the evidence fetch: {why} (.ci/install-deps installs openssh-server)")
        }
    };
    let cfg = work.join("sensor-config.yaml");
    std::fs::write(
        &cfg,
        lab::lab_config(&work.join("sensor"), &report.archive, 2),
    )
    .unwrap();
    let row = report
        .rows
        .iter()
        .find(|r| r.evidence.is_some())
        .expect("a scenario with evidence");
    let ev = row.evidence.as_ref().unwrap();
    let id = row.detected_by.as_deref().unwrap();
    let out = work.join("over-ssh.pcap");
    let got = std::process::Command::new(&provision)
        .args(["pcap", "get", "--sensor", "root@127.0.0.1", "--alert", id])
        .args(["--ssh-port", &sshd.port.to_string(), "--identity"])
        .arg(&sshd.client_key)
        .args(["--ssh-option", "StrictHostKeyChecking=no", "--ssh-option"])
        .arg(format!("UserKnownHostsFile={}", sshd.known_hosts.display()))
        .arg("--agent")
        .arg(&agent)
        .arg("--agent-config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(got.status.success(), "{got:?}\nsshd's log:\n{}", sshd.log());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&ev.pcap).unwrap(),
        "{}: the same bytes over SSH",
        row.name
    );
}
