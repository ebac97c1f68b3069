//! `ids2-agent ramdisk ensure` and `ids2-agent unit status`: input errors and an unreachable
//! bus, which need neither root nor systemd. The commands against a real systemd are covered
//! through the library in `tests/tests/systemd_nspawn.rs`.

use assert_cmd::Command;
use predicates::str::contains;

fn agent() -> Command {
    Command::cargo_bin("ids2-agent").unwrap()
}

/// A bus address that cannot exist, so a command that wrongly connects fails differently.
fn dead_bus(dir: &tempfile::TempDir) -> String {
    format!("unix:path={}/no-such-bus", dir.path().display())
}

#[test]
fn ramdisk_ensure_refuses_an_unusable_path_before_touching_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n\
         logs: {path: /mnt/ram_logs/}\n",
    )
    .unwrap();
    agent()
        .args(["ramdisk", "ensure", "--config"])
        .arg(&config)
        .args(["--bus", &dead_bus(&dir)])
        .assert()
        .code(2)
        .stderr(contains("/mnt/ram_logs/"))
        .stderr(contains("remove the repeated or trailing `/`"));
}

#[test]
fn ramdisk_ensure_reports_an_invalid_config_as_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n\
         logs: {size_mb: 0}\n",
    )
    .unwrap();
    agent()
        .args(["ramdisk", "ensure", "--config"])
        .arg(&config)
        .args(["--bus", &dead_bus(&dir)])
        .assert()
        .code(2)
        .stderr(contains("logs.size_mb"));
}

#[test]
fn unit_status_names_the_unreachable_bus() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dead_bus(&dir);
    agent()
        .args(["unit", "status", "suricata.service", "--bus", &bus])
        .assert()
        .code(1)
        .stderr(contains("cannot connect to systemd over D-Bus"))
        .stderr(contains(bus.as_str()));
}
