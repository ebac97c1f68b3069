//! The detection report (`ids2-lab eval`) on real captures, with the real Suricata and
//! the rendered config:
//! - every pcap of the shared corpus (`../shared/corpus/pcaps`, Suricata's verification
//!   captures: protocols, evasions, malformed traffic) raises no ids2 alert, Suricata's or the
//!   behavioural detector's (needs suricata and the corpus);
//! - captures are judged apart: one Suricata reads many captures in turn, and a threshold one
//!   capture nearly reached never counts the next capture's packets (needs suricata);
//! - the CI subset of the real-tool set, made here by `bench/realtools.sh --set ci` (nmap,
//!   hping3, hydra, iodine, curl against real services in namespaces), is detected capture by
//!   capture, and its benign captures (browsing, DNS, an SSH login, ping, a package download)
//!   raise nothing (needs root, suricata and the tools; `.ci/install-deps` installs them).

use std::path::Path;
use std::process::Command;

use ids2_lab::{self as lab, eval};

mod support {
    pub mod needs;
}

use support::needs;

fn lab_settings(work: &Path) -> ids2_agent::config::Settings {
    lab::lab_settings(work, &work.join("archive.jsonl"), 2).unwrap()
}

/// A pcap of `n` ICMP echo requests with 1000-byte payloads from 10.77.0.10 to 10.77.0.20,
/// 100 ms apart (the exfiltration rule 9200060 wants three within 10 s from one host).
fn echoes_pcap(path: &Path, n: u16) {
    use ids2_lab::emulate::packets;
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65_535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for seq in 0..n {
        let icmp = packets::icmp_echo(7, seq, &[b'x'; 1000]);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(20 + icmp.len() as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0, 0, 64, 1, 0, 0, 10, 77, 0, 10, 10, 77, 0, 20]);
        let sum = packets::checksum(&[&ip]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut frame = vec![2, 0, 0, 0, 0, 20, 2, 0, 0, 0, 0, 10, 8, 0];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&icmp);
        f.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        f.extend_from_slice(&(u32::from(seq) * 100_000).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&frame);
    }
    std::fs::write(path, f).unwrap();
}

#[test]
fn captures_are_judged_apart() {
    let Some(suricata) = needs::suricata("captures_are_judged_apart") else {
        return;
    };
    let set = tempfile::tempdir().unwrap();
    echoes_pcap(&set.path().join("two.pcap"), 2);
    echoes_pcap(&set.path().join("three.pcap"), 3);
    let manifest: String = [
        ("two-a", "benign", "two.pcap"),
        ("two-b", "benign", "two.pcap"),
        ("three", "attack", "three.pcap"),
        ("two-c", "benign", "two.pcap"),
    ]
    .iter()
    .map(|(name, expected, pcap)| {
        format!("{{\"name\":\"{name}\",\"expected\":\"{expected}\",\"pcap\":\"{pcap}\"}}\n")
    })
    .collect();
    std::fs::write(set.path().join(eval::MANIFEST), manifest).unwrap();
    let captures = eval::load_set(set.path()).unwrap();
    let work = tempfile::tempdir().unwrap();
    // One Suricata reads all four in turn: two echoes, then two more of the same time from the
    // same host would make four within the rule's 10 s if the runs shared their thresholds.
    let report = eval::evaluate(
        &suricata,
        &lab_settings(work.path()),
        &captures,
        work.path(),
        1,
    )
    .unwrap();
    println!("{}", report.table());
    assert!(report.passed(), "{}", report.table());
    let three = &report.outcomes[2];
    assert_eq!(three.packets, 3);
    assert!(
        three.ids2.keys().any(|h| h.sid == 9_200_060),
        "{:?}",
        three.ids2
    );
    assert!(report.outcomes.iter().all(|o| o.error.is_none()));
}

#[test]
fn corpus_pcaps_raise_no_ids2_alert() {
    let Some(suricata) = needs::suricata("corpus_pcaps_raise_no_ids2_alert") else {
        return;
    };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pcaps");
    if !corpus.is_dir() {
        eprintln!("SKIP corpus_pcaps_raise_no_ids2_alert: needs ../shared/corpus/pcaps beside the project");
        return;
    }
    let captures = eval::load_set(&corpus).unwrap();
    let work = tempfile::tempdir().unwrap();
    let report = eval::evaluate(
        &suricata,
        &lab_settings(work.path()),
        &captures,
        work.path(),
        2,
    )
    .unwrap();
    let alerted: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.detected())
        .map(|o| {
            format!(
                "{}: {:?}",
                o.capture.name,
                o.ids2.keys().collect::<Vec<_>>()
            )
        })
        .collect();
    assert!(
        alerted.is_empty(),
        "ids2 alerts on corpus pcaps:\n{}",
        alerted.join("\n")
    );
    // A damaged pcap or two is part of the corpus (fuzzing cases); the rest must be read, or
    // the assertion above would prove nothing.
    let unread = report.outcomes.iter().filter(|o| o.error.is_some()).count();
    let packets: u64 = report.outcomes.iter().map(|o| o.packets).sum();
    assert!(
        unread * 50 < captures.len() && packets > 20_000,
        "{unread} of {} corpus pcaps unread, {packets} packets read",
        captures.len()
    );
}

#[test]
fn real_tools_are_detected_and_benign_traffic_is_not() {
    let test = "real_tools_are_detected_and_benign_traffic_is_not";
    if !needs::root(test, "network namespaces for bench/realtools.sh") {
        return;
    }
    let Some(suricata) = needs::suricata(test) else {
        return;
    };
    let missing: Vec<&str> = [
        "nmap", "masscan", "hping3", "hydra", "iodine", "sqlmap", "sshpass", "tcpdump",
    ]
    .into_iter()
    .filter(|t| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .status()
            .is_ok_and(|s| s.success())
    })
    .collect();
    if !missing.is_empty() || !Path::new("/usr/sbin/sshd").exists() {
        eprintln!("SKIP {test}: needs {missing:?} and sshd (.ci/install-deps installs them)");
        return;
    }
    let set = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/realtools.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["--set", "ci", "--out"])
        .arg(set.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench/realtools.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let captures = eval::load_set(set.path()).unwrap();
    let names: Vec<&str> = captures.iter().map(|c| c.name.as_str()).collect();
    for want in [
        "benign-ssh-login",
        "nmap-connect-t2",
        "hydra-ssh",
        "iodine-null",
    ] {
        assert!(names.contains(&want), "the CI set lacks {want}: {names:?}");
    }
    let work = tempfile::tempdir().unwrap();
    let report = eval::evaluate(
        &suricata,
        &lab_settings(work.path()),
        &captures,
        work.path(),
        2,
    )
    .unwrap();
    println!("{}", report.table());
    assert!(report.passed(), "{}", report.table());
    // The variants the old rules missed are caught by what was built for them.
    let sids = |name: &str| -> Vec<u32> {
        let o = report
            .outcomes
            .iter()
            .find(|o| o.capture.name == name)
            .unwrap();
        o.ids2.keys().map(|h| h.sid).collect()
    };
    assert!(
        sids("nmap-connect-t2").contains(&9_200_012),
        "slow scan rule"
    );
    assert!(
        sids("hydra-ssh").contains(&9_200_022),
        "SSH brute force rule"
    );
    assert!(sids("iodine-null").contains(&9_200_041), "NULL record rule");
}
