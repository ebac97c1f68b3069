//! `ids2-agent ecs`: EVE lines on stdin, ECS lines on stdout, bad lines on stderr.

use assert_cmd::Command;
use predicates::prelude::*;

const CONFIG: &str = "sensor: {id: cli-1}\nopensearch: {domain: ids2, region: eu-west-1}\n";
const EVE: &str = r#"{"timestamp":"2024-05-01T10:00:00.000001+0000","flow_id":11,"event_type":"dns","src_ip":"192.168.1.2","src_port":5353,"dest_ip":"192.168.1.1","dest_port":53,"proto":"UDP","dns":{"type":"query","id":1,"rrname":"example.org","rrtype":"A","tx_id":0}}"#;

fn config_file() -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), CONFIG).unwrap();
    f
}

#[test]
fn malformed_lines_are_reported_skipped_and_fail_the_exit_code() {
    let cfg = config_file();
    let input = format!("{EVE}\nnot json at all\n\n{{\"no\":\"event_type\"}}\n{EVE}\n");
    let out = Command::cargo_bin("ids2-agent")
        .unwrap()
        .args(["ecs", "--config"])
        .arg(cfg.path())
        .write_stdin(input)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("line 2: not a valid EVE event"))
        .stderr(predicate::str::contains("line 4: not a valid EVE event"))
        .stderr(predicate::str::contains("2 of 4 lines"))
        .get_output()
        .stdout
        .clone();
    let docs: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 2, "the two good lines still map");
    assert_eq!(docs[0]["dns"]["question"]["name"], "example.org");
    assert_eq!(docs[0]["observer"]["hostname"], "cli-1");
}

#[test]
fn all_good_lines_exit_zero() {
    let cfg = config_file();
    Command::cargo_bin("ids2-agent")
        .unwrap()
        .args(["ecs", "--config"])
        .arg(cfg.path())
        .write_stdin(format!("{EVE}\n"))
        .assert()
        .success()
        .stdout(predicate::str::contains("\"dataset\":\"suricata.dns\""))
        .stderr("");
}

#[test]
fn a_bad_config_exits_two_and_maps_nothing() {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), "sensor: {id: BAD ID}\n").unwrap();
    Command::cargo_bin("ids2-agent")
        .unwrap()
        .args(["ecs", "--config"])
        .arg(f.path())
        .write_stdin(format!("{EVE}\n"))
        .assert()
        .code(2)
        .stdout("");
}
