//! `ids2-lab emulate` from the outside: bad scenario files and refused targets exit 2 and send
//! nothing; against real loopback servers the traffic arrives as described.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use predicates::str::contains;

fn lab() -> Command {
    Command::cargo_bin("ids2-lab").unwrap()
}

fn scenario_file(json: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(json.as_bytes()).unwrap();
    f
}

/// A loopback HTTP server on an ephemeral port recording each request head.
fn http_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            record
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).into_owned());
            let _ = conn.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, seen)
}

#[test]
fn invalid_entry_exits_2_naming_the_entry_and_sends_nothing() {
    let (port, seen) = http_server();
    let f = scenario_file(&format!(
        r#"[{{"technique_id":"T1190","technique_name":"ok","exploit":"jndi","port":{port},"expect":{{"sid":9200052}}}},
            {{"technique_id":"T1110","technique_name":"bad","service":"http_basic","attempts":100000,"expect":{{"sid":9200020}}}}]"#
    ));
    lab()
        .args(["emulate"])
        .arg(f.path())
        .args(["--target", "127.0.0.1"])
        .assert()
        .code(2)
        .stderr(contains("entry 1 (T1110)"))
        .stderr(contains("attempts is 100000; expected 1 to 100"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing may be sent when an entry is bad"
    );
}

#[test]
fn target_outside_loopback_and_lab_is_refused() {
    let f = scenario_file(
        r#"[{"technique_id":"T1046","technique_name":"scan","ports":[80],"expect":{"sid":9200010}}]"#,
    );
    lab()
        .arg("emulate")
        .arg(f.path())
        .args(["--target", "192.0.2.1"])
        .assert()
        .code(2)
        .stderr(contains("192.0.2.1 is outside the allowed networks"))
        .stderr(contains("--allow-target"));
}

#[test]
fn exploits_brute_force_and_scanner_probes_arrive_at_a_loopback_server() {
    let (port, seen) = http_server();
    let f = scenario_file(&format!(
        r#"[{{"technique_id":"T1190","technique_name":"sqli","exploit":"sql_injection","port":{port},"expect":{{"sid":9200050}}}},
            {{"technique_id":"T1190","technique_name":"jndi","exploit":"jndi","port":{port},"expect":{{"sid":9200052}}}},
            {{"technique_id":"T1110","technique_name":"brute","service":"http_basic","port":{port},"attempts":3,"rate_per_sec":50,"expect":{{"sid":9200020}}}},
            {{"technique_id":"T1595","technique_name":"probe","port":{port},"paths":["/.env"],"expect":{{"sid":9200081}}}}]"#
    ));
    lab()
        .arg("emulate")
        .arg(f.path())
        .args(["--target", "127.0.0.1"])
        .assert()
        .success()
        .stdout(contains("3 requests"));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 6, "{seen:#?}");
    assert!(seen[0].contains("UNION%20SELECT"), "{}", seen[0]);
    assert!(
        seen[1].contains("User-Agent: ${jndi:ldap://"),
        "{}",
        seen[1]
    );
    let auths: Vec<&String> = seen[2..5].iter().collect();
    assert!(auths
        .iter()
        .all(|r| r.starts_with("GET /admin ") && r.contains("Authorization: Basic ")));
    assert!(
        seen[5].starts_with("GET /.env ") && seen[5].contains("Nikto"),
        "{}",
        seen[5]
    );
}

#[test]
fn tcp_scan_counts_every_port_and_finds_the_open_one() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let first = port.saturating_sub(5).max(1);
    let f = scenario_file(&format!(
        r#"[{{"technique_id":"T1046","technique_name":"scan","ports":["{first}-{port}"],"rate_per_sec":500,"expect":{{"sid":9200010}}}}]"#
    ));
    lab()
        .arg("emulate")
        .arg(f.path())
        .args(["--target", "127.0.0.1"])
        .assert()
        .success()
        .stdout(contains(format!("{} connects", port - first + 1)));
    open.set_nonblocking(true).unwrap();
    assert!(open.accept().is_ok(), "the scan connected to the open port");
}
