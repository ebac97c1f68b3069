//! The CLI surface: help for every command, `sensor config` output that the agent accepts,
//! and refusals that leave files untouched.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

const ENDPOINT: &str = "https://search-ids2-abc123def.eu-west-1.es.amazonaws.com";

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ids2-provision"))
}

#[test]
fn help_documents_every_command() {
    cli()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("domain"))
        .stdout(predicate::str::contains("opensearch"))
        .stdout(predicate::str::contains("sensor"));
    for (cmd, flags) in [
        (
            &["domain", "ensure"][..],
            &[
                "--name",
                "--region",
                "--engine-version",
                "--instance-type",
                "--instance-count",
                "--volume-gb",
                "--principal",
                "--timeout-secs",
                "--endpoint-url",
            ][..],
        ),
        (
            &["domain", "status"],
            &["--name", "--region", "--endpoint-url"],
        ),
        (&["domain", "delete"], &["--yes", "--name", "--region"]),
        (
            &["opensearch", "setup"],
            &[
                "--endpoint",
                "--auth",
                "--region",
                "--username",
                "--password-file",
                "--index-prefix",
                "--retention-days",
                "--dashboards-url",
            ],
        ),
        (
            &["sensor", "config"],
            &[
                "--endpoint",
                "--sensor-id",
                "--out",
                "--region",
                "--domain",
                "--force",
            ],
        ),
    ] {
        let mut a = cli().args(cmd).arg("--help").assert().success();
        for f in flags {
            a = a.stdout(predicate::str::contains(*f));
        }
    }
}

#[test]
fn sensor_config_writes_a_file_the_agent_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("config.yaml");
    cli()
        .args([
            "sensor",
            "config",
            "--endpoint",
            ENDPOINT,
            "--sensor-id",
            "pi5-lab-01",
        ])
        .args(["--home-net", "192.168.10.0/24", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("wrote"));
    let settings = ids2_core::config::load(&out).expect("the agent accepts the written config");
    let c = &settings.config;
    assert_eq!(c.sensor.id, "pi5-lab-01");
    assert_eq!(c.opensearch.endpoint.as_deref(), Some(ENDPOINT));
    assert_eq!(c.opensearch.region, "eu-west-1");
    assert_eq!(c.opensearch.domain, "ids2");
    assert_eq!(c.opensearch.index_prefix, "ids2");
    assert_eq!(c.capture.home_net, ["192.168.10.0/24"]);
    assert!(matches!(
        settings.auth,
        ids2_core::config::AuthSettings::AwsSigv4 { .. }
    ));
    assert_eq!(
        settings.opensearch_host.as_deref(),
        Some("search-ids2-abc123def.eu-west-1.es.amazonaws.com")
    );
}

#[test]
fn sensor_config_basic_auth_keeps_the_password_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("config.yaml");
    cli()
        .args([
            "sensor",
            "config",
            "--endpoint",
            ENDPOINT,
            "--sensor-id",
            "lab-2",
        ])
        .args(["--auth", "basic", "--username", "ids2-writer"])
        .args([
            "--password-file",
            "/run/credentials/ids2-agent/opensearch-password",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let settings = ids2_core::config::load(&out).unwrap();
    match settings.auth {
        ids2_core::config::AuthSettings::Basic {
            username,
            password_file,
        } => {
            assert_eq!(username, "ids2-writer");
            assert_eq!(
                password_file,
                Path::new("/run/credentials/ids2-agent/opensearch-password")
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Every command that talks to a domain takes the same connection flags, and refuses to run
/// without `--endpoint` (exit 2) before it loads credentials or sends anything.
#[test]
fn domain_commands_share_the_connection_flags() {
    let commands: [&[&str]; 5] = [
        &["opensearch", "setup"],
        &["fleet", "status"],
        &["fleet", "health"],
        &["tune", "list"],
        &["tune", "expire", "--id", "x"],
    ];
    for cmd in commands {
        let mut a = cli().args(cmd).arg("--help").assert().success();
        for flag in [
            "--endpoint",
            "--index-prefix",
            "--auth",
            "--region",
            "--profile",
            "--username",
            "--password-file",
            "--timeout-secs",
        ] {
            a = a.stdout(predicate::str::contains(flag));
        }
        cli()
            .args(cmd)
            .args(["--auth", "basic", "--username", "admin"])
            .env_remove("IDS2_OPENSEARCH_PASSWORD")
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--endpoint is required"))
            .stderr(predicate::str::contains("domain ensure` prints it"));
    }
}

#[test]
fn sensor_config_refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("config.yaml");
    std::fs::write(&out, "keep me\n").unwrap();
    cli()
        .args([
            "sensor",
            "config",
            "--endpoint",
            ENDPOINT,
            "--sensor-id",
            "lab-1",
            "--out",
        ])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists: pass --force"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me\n");

    let fresh = dir.path().join("new.yaml");
    cli()
        .args([
            "sensor",
            "config",
            "--endpoint",
            ENDPOINT,
            "--sensor-id",
            "Lab 1",
            "--out",
        ])
        .arg(&fresh)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("sensor.id"))
        .stderr(predicate::str::contains("caused by"));
    assert!(!fresh.exists());

    cli()
        .args([
            "sensor",
            "config",
            "--endpoint",
            "https://os.example.org",
            "--sensor-id",
            "lab-1",
            "--out",
        ])
        .arg(&fresh)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --region"));
    assert!(!fresh.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary files left"
    );

    cli()
        .args([
            "sensor",
            "config",
            "--endpoint",
            ENDPOINT,
            "--sensor-id",
            "lab-1",
            "--force",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    ids2_core::config::load(&out).unwrap();
}
