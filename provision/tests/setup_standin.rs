//! `opensearch setup` against the osmem-server EMULATOR of the OpenSearch API (index templates
//! are its to store and answer) behind a strict stand-in for what it lacks: SigV4 checking, ISM,
//! Alerting, Notifications and Dashboards saved objects (`support/standin.rs` says what each
//! enforces). Skips, saying so, without osmem-server (CI installs it).

#[path = "support/osmem.rs"]
mod osmem;
#[path = "support/standin.rs"]
#[allow(dead_code)] // Shared with the fleet tests.
mod standin;

use ids2_core::ecs::emitted_fields;
use predicates::prelude::*;
use serde_json::{json, Value};
use standin::{cli, setup, Expect, StandIn};

#[test]
fn first_setup_writes_everything_second_writes_nothing() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    let first = setup(&s, &[]).success();
    let out = String::from_utf8(first.get_output().stdout.clone()).unwrap();
    s.assert_clean();
    let writes = s.state().writes.clone();
    let objects = out.lines().filter(|l| l.starts_with("created ")).count();
    assert_eq!(
        writes.len(),
        objects,
        "one write per created object: {writes:#?}\n{out}"
    );
    for expected in [
        "PUT /_index_template/ids2-suricata",
        "PUT /_index_template/ids2-heartbeat",
        "PUT /_index_template/ids2-anomaly",
        "PUT /_plugins/_ism/policies/ids2-retention",
        "POST /_dashboards/api/saved_objects/index-pattern/ids2-suricata",
        "POST /_dashboards/api/saved_objects/index-pattern/ids2-heartbeat",
        "POST /_dashboards/api/saved_objects/index-pattern/ids2-anomaly",
        "POST /_dashboards/api/saved_objects/dashboard/ids2-alerts-overview",
        "POST /_dashboards/api/saved_objects/dashboard/ids2-fleet-health",
        "POST /_dashboards/api/saved_objects/search/ids2-alerts-with-evidence",
        "POST /_dashboards/api/saved_objects/search/ids2-fleet-unmapped",
        "POST /_plugins/_alerting/monitors",
    ] {
        assert!(
            writes.iter().any(|w| w == expected),
            "{expected} missing from {writes:#?}"
        );
    }
    assert!(
        out.trim_end()
            .ends_with(&format!("{} changes applied", writes.len())),
        "{out}"
    );

    let requests_before = s.state().requests;
    setup(&s, &[])
        .success()
        .stdout(predicate::str::ends_with("no changes\n"))
        .stdout(predicate::str::contains("created").not());
    s.assert_clean();
    let st = s.state();
    assert_eq!(
        st.writes.len(),
        writes.len(),
        "second run wrote: {:#?}",
        &st.writes[writes.len()..]
    );
    let monitors = st
        .writes
        .iter()
        .filter(|w| *w == "POST /_plugins/_alerting/monitors")
        .count();
    assert_eq!(
        monitors,
        1 + ids2_provision::health::Check::ALL.len(),
        "the offline monitor and the health monitors"
    );
    assert_eq!(
        st.requests - requests_before,
        writes.len() + monitors,
        "one read per object; two per monitor (found by name, then read)"
    );
}

#[test]
fn changed_retention_rewrites_only_the_policy() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    setup(&s, &[]).success();
    let before = s.state().writes.len();
    setup(&s, &["--retention-days", "7"])
        .success()
        .stdout(predicate::str::contains(
            "updated   ISM policy ids2-retention",
        ))
        .stdout(predicate::str::contains("1 change applied"));
    s.assert_clean();
    let st = s.state();
    assert_eq!(
        st.writes[before..],
        ["PUT /_plugins/_ism/policies/ids2-retention".to_string()]
    );
    let (policy, seq) = &st.policies["ids2-retention"];
    assert_eq!(
        *seq, 1,
        "the update replaced version 0 with its sequence number"
    );
    assert_eq!(
        policy.pointer("/policy/states/0/transitions/0/conditions/min_index_age"),
        Some(&Value::from("7d"))
    );
}

/// Follows `properties` along a dotted name.
fn mapping_of<'a>(template: &'a Value, dotted: &str) -> Option<&'a Value> {
    let mut node = template.pointer("/template/mappings")?;
    for part in dotted.split('.') {
        node = node.get("properties")?.get(part)?;
    }
    Some(node)
}

/// OpenSearch types that index an ECS type's values faithfully.
fn compatible(ecs_type: &str, os_type: &str) -> bool {
    match ecs_type {
        "keyword" | "constant_keyword" | "wildcard" => os_type == "keyword",
        "text" | "match_only_text" => os_type == "text",
        "flattened" => os_type == "flat_object",
        "long" => matches!(os_type, "long" | "unsigned_long"),
        other => other == os_type,
    }
}

/// A value the template cannot hold costs that field's indexing, never the event: a refused
/// document is an event lost. Suricata writes some identifiers as unsigned 64-bit integers, and
/// one past 2^63 (an SMB session id, seen in the corpus) reaches Vector's JSON parser as a
/// float, 1.12e19, which a `long` the index mapped from a smaller id cannot take.
#[test]
fn a_value_the_mapping_cannot_hold_is_kept_not_refused() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    setup(&s, &[]).success();
    s.assert_clean();
    let index = "ids2-suricata.smb-2026.12.03".to_string();
    let smb = |session_id: Value| json!({"event": {"dataset": "suricata.smb"}, "suricata": {"eve": {"smb": {"session_id": session_id}}}});
    // index() asserts that the emulator refused none.
    s.index(&[
        (index.clone(), smb(json!(4_503_599_627_370_496_u64))),
        (index.clone(), smb(json!(1.120_097_500_085_511_8e19))),
        (
            index.clone(),
            json!({"event": {"dataset": "suricata.smb"}, "source": {"port": "none"}}),
        ),
    ]);
    let (status, count) = s.emulator("GET", &format!("/{index}/_count"), None);
    assert_eq!((status, &count["count"]), (200, &json!(3)), "{count}");
}

#[test]
fn every_emitted_field_has_a_compatible_mapping_in_the_installed_template() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    setup(&s, &[]).success();
    s.assert_clean();
    // The template as the emulator stores and returns it, not as we sent it.
    let template = &s.template("ids2-suricata").expect("installed");
    let fields = emitted_fields();
    assert!(!fields.is_empty());
    for f in &fields {
        let m = mapping_of(template, f.name)
            .unwrap_or_else(|| panic!("{} has no mapping in the installed template", f.name));
        let os_type = m["type"].as_str().unwrap_or("object");
        assert!(
            compatible(f.ecs_type, os_type),
            "{} is ECS {} but mapped as {os_type}",
            f.name,
            f.ecs_type
        );
    }
    // The raw EVE remainder is an object with dynamic mapping, strings as keywords.
    let eve = mapping_of(template, "suricata.eve").expect("suricata.eve mapped");
    assert_eq!(eve["type"], "object");
    assert_eq!(
        template
            .pointer("/template/mappings/dynamic_templates/0/eve_strings_as_keywords/path_match"),
        Some(&Value::from("suricata.eve.*"))
    );
    assert_eq!(
        template["index_patterns"],
        serde_json::json!(["ids2-suricata.*"])
    );
    assert_eq!(
        s.template("ids2-heartbeat").expect("installed")["index_patterns"],
        serde_json::json!(["ids2-heartbeat-*"])
    );
    assert_eq!(
        s.template("ids2-anomaly").expect("installed")["index_patterns"],
        serde_json::json!(["ids2-ids2.anomaly-*"])
    );
}

#[test]
fn index_prefix_flows_into_every_object() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    setup(&s, &["--index-prefix", "lab"]).success();
    s.assert_clean();
    let template = s.template("lab-suricata").expect("installed");
    assert_eq!(template["index_patterns"][0], "lab-suricata.*");
    assert!(s.template("ids2-suricata").is_none());
    let st = s.state();
    let (policy, _) = &st.policies["lab-retention"];
    assert_eq!(
        policy.pointer("/policy/ism_template/0/index_patterns"),
        Some(&serde_json::json!([
            "lab-suricata.*",
            "lab-heartbeat-*",
            "lab-ids2.anomaly-*"
        ]))
    );
    let pattern = &st.saved[&("index-pattern".to_string(), "lab-suricata".to_string())];
    assert_eq!(pattern["attributes"]["title"], "lab-suricata.*");
}

#[test]
fn basic_auth_is_sent_and_checked() {
    let Some(s) = StandIn::start_or_skip(Expect::Basic("admin".into(), "s3cret pass".into()))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret pass\n").unwrap();
    cli()
        .args([
            "opensearch",
            "setup",
            "--endpoint",
            &s.url,
            "--auth",
            "basic",
        ])
        .args(["--username", "admin", "--password-file"])
        .arg(&pw)
        .assert()
        .success();
    s.assert_clean();
    assert!(!s.state().writes.is_empty());
    cli()
        .args([
            "opensearch",
            "setup",
            "--endpoint",
            &s.url,
            "--auth",
            "basic",
        ])
        .args(["--username", "admin"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--auth basic needs the password"));
    std::fs::write(&pw, "wrong\n").unwrap();
    cli()
        .args([
            "opensearch",
            "setup",
            "--endpoint",
            &s.url,
            "--auth",
            "basic",
        ])
        .args(["--username", "admin", "--password-file"])
        .arg(&pw)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unauthenticated (HTTP 401)"))
        .stderr(predicate::str::contains("--username and the password"));
}

#[test]
fn template_conflict_names_the_fix_and_writes_nothing_after_it() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    // Someone else's template over our indices at our priority, in the emulator.
    let (status, r) = s.emulator(
        "PUT",
        "/_index_template/legacy-ids",
        Some(r#"{"index_patterns": ["ids2-*"], "priority": 200}"#.into()),
    );
    assert_eq!(status, 200, "{r}");
    setup(&s, &[])
        .code(1)
        .stderr(predicate::str::contains(
            "conflicts with an existing template",
        ))
        .stderr(predicate::str::contains("legacy-ids"))
        .stderr(predicate::str::contains(
            "change its priority (ours is 200)",
        ));
    let st = s.state();
    assert!(
        st.policies.is_empty() && st.saved.is_empty(),
        "setup stopped at the conflict"
    );
    drop(st);
    assert!(s.template("ids2-heartbeat").is_none());
}

#[test]
fn access_denied_explains_the_access_policy() {
    let Some(s) = StandIn::start_or_skip(Expect::DenyAll) else {
        return;
    };
    setup(&s, &[])
        .code(1)
        .stderr(predicate::str::contains("was denied (HTTP 403"))
        .stderr(predicate::str::contains("--principal"))
        .stderr(predicate::str::contains("not authorized to perform"));
    assert!(s.state().writes.is_empty());
}

#[test]
fn unreachable_endpoint_and_bad_input() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cli()
        .args([
            "opensearch",
            "setup",
            "--region",
            "eu-west-1",
            "--timeout-secs",
            "5",
        ])
        .args(["--endpoint", &format!("http://127.0.0.1:{port}")])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot reach http://127.0.0.1:"))
        .stderr(predicate::str::contains("VPC"));
    // Credentials must never go to a remote host in clear text.
    cli()
        .args(["opensearch", "setup", "--region", "eu-west-1"])
        .args([
            "--endpoint",
            "http://search-ids2-abc.eu-west-1.es.amazonaws.com",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected https://HOST"));
    cli()
        .args([
            "opensearch",
            "setup",
            "--endpoint",
            "https://opensearch.example.org",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --region"));
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    setup(&s, &["--retention-days", "0"])
        .code(2)
        .stderr(predicate::str::contains(
            "--retention-days 0 is out of range",
        ));
    setup(&s, &["--index-prefix", "IDS"])
        .code(2)
        .stderr(predicate::str::contains("index prefix `IDS` is not valid"));
    assert_eq!(s.state().requests, 0, "bad input sends nothing");
}

#[test]
fn no_credentials_for_sigv4_is_explained() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    cli()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args([
            "opensearch",
            "setup",
            "--endpoint",
            &s.url,
            "--region",
            "eu-west-1",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no usable AWS credentials"));
    assert_eq!(s.state().requests, 0);
}

/// `--templates-only` against the emulator itself, nothing in front: what `ids2-lab` and the
/// end-to-end tests run before shipping to it. The second run reads the templates back from
/// the emulator and finds nothing to change.
#[test]
fn templates_only_against_the_emulator_itself() {
    let os = match osmem::Osmem::start() {
        Ok(os) => os,
        Err(why) => {
            eprintln!("SKIP: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    // The emulator ignores authentication; the CLI still wants a complete basic login.
    std::fs::write(&pw, "ignored\n").unwrap();
    let run = || {
        cli()
            .args([
                "opensearch",
                "setup",
                "--endpoint",
                &os.url,
                "--templates-only",
            ])
            .args(["--auth", "basic", "--username", "ids2", "--password-file"])
            .arg(&pw)
            .assert()
    };
    let out = run().success().get_output().stdout.clone();
    let out = String::from_utf8(out).unwrap();
    for name in ["ids2-suricata", "ids2-heartbeat", "ids2-anomaly"] {
        assert!(
            out.contains(&format!("created   index template {name}")),
            "{out}"
        );
    }
    assert!(out.trim_end().ends_with("3 changes applied"), "{out}");
    assert!(!out.contains("ISM") && !out.contains("monitor"), "{out}");
    run()
        .success()
        .stdout(predicate::str::ends_with("no changes\n"));
    cli()
        .args([
            "opensearch",
            "setup",
            "--endpoint",
            &os.url,
            "--templates-only",
        ])
        .args(["--alert-webhook-url", "https://hooks.example.org/x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}
