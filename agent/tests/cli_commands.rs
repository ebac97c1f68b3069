//! The sensor's binary holds the sensor's commands and nothing else: the lab and the adversary
//! emulator live in `ids2-lab`, which the NixOS image does not contain.

use assert_cmd::Command;
use predicates::str::contains;

const AGENT: &str = env!("CARGO_BIN_EXE_ids2-agent");

/// The subcommands `--help` lists, in order.
fn subcommands() -> Vec<String> {
    let out = Command::new(AGENT).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let commands = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands section")
        .split("\n\n")
        .next()
        .unwrap();
    commands
        .lines()
        // Entries start two spaces in; continuation lines of a long description are deeper.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn the_agent_offers_exactly_the_sensor_commands() {
    assert_eq!(
        subcommands(),
        [
            "check-config",
            "ecs",
            "run",
            "vector-args",
            "net",
            "render",
            "apply",
            "ramdisk",
            "unit",
            "rules",
            "policy",
            "intel",
            "anomaly",
            "pcap",
            "help"
        ]
    );
}

#[test]
fn lab_and_emulate_are_not_sensor_commands() {
    for command in ["lab", "emulate"] {
        Command::new(AGENT)
            .arg(command)
            .assert()
            .code(2)
            .stderr(contains(format!("unrecognized subcommand '{command}'")));
    }
}

#[test]
fn the_lab_scenarios_are_not_linked_into_the_agent() {
    // The lab embeds its built-in scenario file whole (`ids2_lab::DEFAULT_SCENARIOS`); finding
    // that text in the binary would mean the lab crate was linked in after all.
    let scenarios = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../templates/scenarios/default.json"
    ))
    .unwrap();
    assert!(scenarios.len() > 1000, "the scenario file is there");
    let binary = std::fs::read(AGENT).unwrap();
    assert!(
        !binary
            .windows(scenarios.len())
            .any(|w| w == scenarios.as_slice()),
        "{AGENT} embeds templates/scenarios/default.json"
    );
}

/// What vector.service's start script adds to Vector's command line: the Redis copy's part only
/// when the current generation has one and Redis answers PING (a loopback listener answers
/// for it here), else nothing and the reason on stderr.
#[test]
fn vector_args_names_the_redis_copy_only_while_redis_answers() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join("current");
    std::fs::create_dir(&current).unwrap();
    let args = || {
        Command::new(AGENT)
            .args(["vector-args", "--rendered-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = args();
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");

    let redis = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = redis.local_addr().unwrap();
    let part = current.join("vector-redis.toml");
    std::fs::write(
        &part,
        format!("[sinks.redis]\ntype = \"redis\"\nendpoint = \"redis://{addr}/0\"\n"),
    )
    .unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = redis.accept().unwrap();
        let mut ping = [0u8; 6];
        c.read_exact(&mut ping).unwrap();
        assert_eq!(&ping, b"PING\r\n");
        c.write_all(b"+PONG\r\n").unwrap();
    });
    let out = args();
    server.join().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("--config\n{}\n", part.display())
    );

    // The listener is gone: refused.
    let out = args();
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "{out:?}");
    let why = String::from_utf8(out.stderr).unwrap();
    assert!(
        why.contains("without the Redis copy") && why.contains(&addr.to_string()),
        "{why}"
    );
}
