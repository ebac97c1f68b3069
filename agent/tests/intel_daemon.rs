//! Threat intelligence in the running daemon: `ids2-agent run` with Suricata and Vector
//! stand-ins (shell scripts that record their signals), an AbuseIPDB stand-in on loopback (the
//! real service cannot be reached here), and alerts appended to EVE. The agent must create the
//! reputation table before starting Vector, check only the alert's public address, write the
//! result to the table, reload Vector (SIGHUP) for it, and count it on `/metrics`; an alert of
//! an intel feed's rule is counted per feed (`ids2_intel_matches_total`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[path = "support/agent.rs"]
mod agent;
use agent::{scrape, wait_until};

/// A Suricata/Vector stand-in: records its start and its SIGHUP, exits on SIGTERM.
fn stand_in(bin: &Path, name: &str, events: &Path) {
    let script = format!(
        "#!/bin/sh\n\
         [ \"$1\" = -T ] && exit 0\n\
         echo \"{name} start $$\" >> {ev}\n\
         trap 'exit 0' TERM\n\
         trap 'echo \"{name} hup $$\" >> {ev}' HUP\n\
         trap 'echo \"{name} usr2 $$\" >> {ev}' USR2\n\
         while :; do sleep 0.05; done\n",
        ev = events.display(),
    );
    let path = bin.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Stand-in for AbuseIPDB's `GET /api/v2/check`: answers every request with a documented
/// 200 (score 91) and the rate-limit headers, and records the request heads.
fn abuseipdb_stand_in() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(32) {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 2048];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
                if head.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let ip = head
                .split("ipAddress=")
                .nth(1)
                .and_then(|r| r.split('&').next())
                .unwrap_or("")
                .to_string();
            s.lock().unwrap().push(head);
            let body = format!(
                r#"{{"data":{{"ipAddress":"{ip}","isPublic":true,"ipVersion":4,"isWhitelisted":false,"abuseConfidenceScore":91,"countryCode":"RU","usageType":"Data Center/Web Hosting/Transit","isp":"Example","domain":"example.net","hostnames":[],"isTor":false,"totalReports":57,"numDistinctUsers":9,"lastReportedAt":"2026-11-20T23:00:00+00:00"}}}}"#
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-RateLimit-Limit: 1000\r\n\
                 X-RateLimit-Remaining: 999\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, seen)
}

fn hups(events: &Path) -> usize {
    std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("vector hup"))
        .count()
}

const PRIVATE_ALERT: &str = r#"{"timestamp":"2026-11-21T04:00:00.000000+0000","event_type":"alert","src_ip":"203.0.113.9","src_port":4444,"dest_ip":"10.1.2.3","dest_port":80,"proto":"TCP","alert":{"signature_id":9200001,"signature":"ids2 intel test","category":"Misc","severity":1}}"#;
const PUBLIC_ALERT: &str = r#"{"timestamp":"2026-11-21T04:00:01.000000+0000","event_type":"alert","src_ip":"45.83.64.1","src_port":4444,"dest_ip":"10.1.2.3","dest_port":22,"proto":"TCP","alert":{"signature_id":9200002,"signature":"ids2 intel test","category":"Misc","severity":1}}"#;
/// An alert of a feed's rule, as Suricata writes the metadata `intel::feeds::compile` gives it
/// (addresses not public, so nothing is looked up).
const FEED_ALERT: &str = r#"{"timestamp":"2026-11-21T04:00:02.000000+0000","event_type":"alert","src_ip":"10.1.2.3","src_port":50000,"dest_ip":"203.0.113.9","dest_port":443,"proto":"TCP","alert":{"signature_id":9202001,"signature":"ids2 intel feodo-tracker ip","category":"Misc","severity":1,"metadata":{"ids2_intel_feed":["feodo-tracker"],"ids2_intel_kind":["ip"],"ids2_intel_field":["dest_ip"]}}}"#;

#[test]
fn alert_addresses_are_checked_tabled_and_vector_reloaded() {
    let (api, requests) = abuseipdb_stand_in();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bin = root.join("bin");
    for d in ["bin", "logs", "rendered", "vector"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let events = root.join("events.log");
    stand_in(&bin, "suricata", &events);
    stand_in(&bin, "vector", &events);
    std::fs::write(root.join("abuseipdb.key"), "stand-in-key\n").unwrap();
    std::fs::write(root.join("logs/eve.json"), "").unwrap();
    let table = root.join("state/reputation.csv");
    let config = root.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "sensor: {{id: intel-agent}}\n\
             opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://opensearch.invalid'}}\n\
             logs: {{path: {r}/logs}}\n\
             paths: {{rendered_dir: {r}/rendered, vector_data_dir: {r}/vector}}\n\
             history: {{repo: {r}/history.git}}\n\
             metrics: {{listen: '127.0.0.1:0'}}\n\
             connectivity: {{dns_names: [ids2-test.invalid], interval_secs: 60, timeout_secs: 1}}\n\
             enrichment:\n  abuseipdb:\n    api_key_file: {r}/abuseipdb.key\n    \
             base_url: 'http://{api}/api/v2'\n    table_path: {t}\n    reload_min_interval_secs: 1\n",
            r = root.display(),
            t = table.display(),
        ),
    )
    .unwrap();
    // The stand-in Suricata accepts every config (`-T` exits 0): this test is about intel.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ids2-agent"));
    cmd.env("IDS2_SURICATA", bin.join("suricata"))
        .env_remove("NOTIFY_SOCKET");
    let agent::Running {
        mut child, metrics, ..
    } = agent::run(cmd, &config, &bin);
    wait_until("Vector started", Duration::from_secs(20), || {
        std::fs::read_to_string(&events).is_ok_and(|e| e.contains("vector start"))
    });
    let header = std::fs::read_to_string(&table).expect("the table exists before Vector starts");
    assert_eq!(header.lines().count(), 1, "header only: {header}");
    let rendered = std::fs::read_to_string(root.join("rendered/current/vector.toml")).unwrap();
    assert!(rendered.contains("[enrichment_tables.ids2_reputation]"));

    // The agent reads EVE from its end once it has opened it; append after a pause.
    std::thread::sleep(Duration::from_millis(1500));
    let before = hups(&events);
    let mut f = std::fs::File::options()
        .append(true)
        .open(root.join("logs/eve.json"))
        .unwrap();
    writeln!(f, "{PRIVATE_ALERT}\n{PUBLIC_ALERT}\n{FEED_ALERT}").unwrap();
    drop(f);

    wait_until(
        "the table holds the checked address",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(&table)
                .is_ok_and(|t| t.contains("45.83.64.1,ipv4-addr,91,57,RU"))
        },
    );
    wait_until(
        "Vector reloaded for the table",
        Duration::from_secs(20),
        || hups(&events) > before,
    );
    wait_until("the check is counted", Duration::from_secs(20), || {
        scrape(metrics)
            .1
            .contains("ids2_intel_checks_total{result=\"ok\"} 1")
    });
    wait_until(
        "the feed's match is counted",
        Duration::from_secs(20),
        || {
            scrape(metrics)
                .1
                .contains("ids2_intel_matches_total{feed=\"feodo-tracker\"} 1\n")
        },
    );
    let requests = requests.lock().unwrap().clone();
    assert_eq!(
        requests.len(),
        1,
        "only the public address is sent: {requests:#?}"
    );
    assert!(requests[0].starts_with("GET /api/v2/check?ipAddress=45.83.64.1&maxAgeInDays=30 "));
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains("key: stand-in-key"),
        "{}",
        requests[0]
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
}
