//! `fleet status` against the osmem-server EMULATOR of the OpenSearch API (the heartbeats are
//! indexed in it and the status query's aggregations are its answers), and the offline
//! monitor against the stand-in for the Alerting and Notifications plugins it lacks
//! (`support/standin.rs`). Heartbeats are the agent's own documents
//! (`ids2_core::heartbeat::document`) bulk-indexed here; `tests/tests/fleet_vector.rs` ships
//! them through the real Vector instead. Skips, saying so, without osmem-server.

#[path = "support/osmem.rs"]
mod osmem;
#[path = "support/standin.rs"]
#[allow(dead_code)] // Shared with the setup tests; template() is theirs.
mod standin;

use std::time::{Duration, Instant};

use ids2_core::heartbeat::{self, Snapshot};
use ids2_core::heartbeat::{IntelSummary, RuleSetState};
use predicates::prelude::*;
use serde_json::Value;
use standin::{cli, setup, Expect, StandIn};
use time::OffsetDateTime;

fn status(s: &StandIn, extra: &[&str]) -> assert_cmd::assert::Assert {
    cli()
        .args([
            "fleet",
            "status",
            "--endpoint",
            &s.url,
            "--region",
            standin::REGION,
        ])
        .args(extra)
        .assert()
}

/// A heartbeat of `sensor` taken `age` ago, as the agent writes it.
fn beat(sensor: &str, age: Duration, drops: u64, throttle: u8) -> Value {
    heartbeat::document(&snapshot(sensor, age, drops, throttle))
}

/// The same with intel feeds, `stale` of them stale.
fn beat_with_intel(sensor: &str, age: Duration, drops: u64, throttle: u8, stale: &[&str]) -> Value {
    let mut s = snapshot(sensor, age, drops, throttle);
    s.intel = Some(IntelSummary {
        versions: vec!["feodo-tracker:0123456789abcdef".into(), "own:none".into()],
        updated: s
            .at
            .map(|at| heartbeat::timestamp(at - time::Duration::hours(1))),
        stale: stale.iter().map(|f| f.to_string()).collect(),
    });
    heartbeat::document(&s)
}

fn snapshot(sensor: &str, age: Duration, drops: u64, throttle: u8) -> Snapshot {
    let at = OffsetDateTime::now_utc() - age;
    Snapshot {
        at: Some(at),
        sensor_id: sensor.into(),
        sensor_name: format!("Sensor {sensor}"),
        version: "0.1.0".into(),
        interval_secs: 15,
        throttle_level: Some(throttle),
        kernel_drops: Some(drops),
        packets: Some(drops * 100),
        rules: Some(RuleSetState {
            version: "0123456789abcdef".into(),
            rules: 42,
            updated: heartbeat::timestamp(at - time::Duration::hours(5)),
            sources: vec!["et/open".into()],
        }),
        ..Default::default()
    }
}

#[test]
fn status_tells_online_late_and_offline_sensors_apart() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    s.seed_heartbeats(vec![
        beat("pi-a", Duration::from_secs(200), 1, 0),
        beat_with_intel("pi-a", Duration::from_secs(3), 7, 1, &["own"]),
        beat_with_intel("pi-b", Duration::from_secs(45), 0, 0, &[]),
        beat("pi-c", Duration::from_secs(300), 5, 3),
    ]);
    // Another prefix's heartbeats are not this fleet's.
    s.index(&[(
        "other-heartbeat-2026.11.21".into(),
        beat("stranger", Duration::ZERO, 0, 0),
    )]);

    let out = status(&s, &["--json"])
        .success()
        .get_output()
        .stdout
        .clone();
    s.assert_clean();
    let sensors: Vec<Value> = serde_json::from_slice(&out).unwrap();
    let by_id = |id: &str| sensors.iter().find(|x| x["id"] == id).unwrap().clone();
    assert_eq!(sensors.len(), 3, "{sensors:#?}");
    let a = by_id("pi-a");
    assert_eq!(a["state"], "online");
    assert_eq!(a["kernel_drops"], 7, "the newest heartbeat wins");
    assert_eq!(a["throttle_level"], 1);
    assert!(a["age_secs"].as_u64().unwrap() < 30);
    let rules_age = a["rules_age_secs"].as_u64().unwrap();
    assert!(
        (5 * 3600..5 * 3600 + 60).contains(&rules_age),
        "{rules_age}"
    );
    // The feeds' state, from the newest heartbeat: pi-c reports no feeds at all.
    assert_eq!(a["intel_stale"], serde_json::json!(["own"]));
    assert_eq!(
        a["intel_versions"],
        serde_json::json!(["feodo-tracker:0123456789abcdef", "own:none"])
    );
    assert_eq!(by_id("pi-b")["intel_stale"], serde_json::json!([]));
    assert_eq!(by_id("pi-c")["intel_stale"], Value::Null);
    assert_eq!(by_id("pi-b")["state"], "late");
    assert_eq!(by_id("pi-c")["state"], "offline");
    assert_eq!(by_id("pi-c")["throttle_level"], 3);

    // A longer threshold turns the offline sensor late.
    let out = status(&s, &["--json", "--offline-after-secs", "600"])
        .success()
        .get_output()
        .stdout
        .clone();
    let sensors: Vec<Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        sensors.iter().find(|x| x["id"] == "pi-c").unwrap()["state"],
        "late"
    );

    status(&s, &[])
        .success()
        .stdout(predicate::str::contains(
            "3 sensors: 1 online, 1 late, 1 offline; 1 with stale intel feeds",
        ))
        .stdout(predicate::str::contains("stale: own"))
        .stdout(predicate::str::contains("pi-b"));
}

#[test]
fn basic_auth_is_sent_and_a_denial_is_reported() {
    let Some(s) = StandIn::start_or_skip(Expect::Basic("admin".into(), "pw".into())) else {
        return;
    };
    s.seed_heartbeats(vec![beat("pi-a", Duration::from_secs(1), 0, 0)]);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "pw\n").unwrap();
    cli()
        .args(["fleet", "status", "--endpoint", &s.url, "--auth", "basic"])
        .args(["--username", "admin", "--password-file"])
        .arg(&pw)
        .assert()
        .success()
        .stdout(predicate::str::contains("1 sensors: 1 online"));
    s.assert_clean();

    let Some(denied) = StandIn::start_or_skip(Expect::DenyAll) else {
        return;
    };
    status(&denied, &[])
        .code(1)
        .stderr(predicate::str::contains("HTTP 403"));
}

#[test]
fn empty_index_means_no_sensors_yet() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    status(&s, &[])
        .success()
        .stdout("no sensor has sent a heartbeat yet\n");
    status(&s, &["--json"]).success().stdout("[]\n");
    s.assert_clean();
}

#[test]
fn unreachable_endpoint_fails_with_a_hint() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cli()
        .args([
            "fleet",
            "status",
            "--endpoint",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args(["--region", standin::REGION, "--timeout-secs", "5"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot reach"));
}

#[test]
fn bad_input_is_refused_before_any_request() {
    cli()
        .args([
            "fleet",
            "status",
            "--endpoint",
            "http://10.0.0.1:9200",
            "--region",
            "eu-west-1",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("plain http only to"));
}

/// The offline monitor among those setup installs.
fn offline(st: &standin::State) -> (&Value, &u64) {
    let (m, seq) = st
        .monitors
        .values()
        .find(|(m, _)| m["name"] == "ids2 sensor offline (ids2)")
        .expect("the offline monitor");
    (m, seq)
}

#[test]
fn setup_installs_the_offline_monitor_and_its_webhook_idempotently() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    let hook = "https://hooks.example.org/services/T0/B0/secret";
    let out = setup(&s, &["--alert-webhook-url", hook])
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    s.assert_clean();
    assert!(
        out.contains("created   notification channel ids2-sensor-offline"),
        "{out}"
    );
    assert!(
        out.contains("created   alerting monitor ids2 sensor offline (ids2)"),
        "{out}"
    );
    assert!(
        !out.contains("secret"),
        "the webhook URL is not printed: {out}"
    );
    {
        let st = s.state();
        assert_eq!(st.channels["ids2-sensor-offline"]["webhook"]["url"], hook);
        // The offline monitor and the health monitors (provision/tests/health_standin.rs).
        assert_eq!(
            st.monitors.len(),
            1 + ids2_provision::health::Check::ALL.len()
        );
        let (m, _) = offline(&st);
        let t = &m["triggers"][0]["bucket_level_trigger"];
        assert_eq!(t["actions"][0]["destination_id"], "ids2-sensor-offline");
        assert_eq!(m["inputs"][0]["search"]["indices"][0], "ids2-heartbeat-*");
        assert_eq!(
            m["inputs"][0]["search"]["query"]["aggregations"]["sensors"]["aggs"]["recent"]
                ["filter"]["range"]["@timestamp"]["gte"],
            "{{period_end}}||-60s"
        );
    }
    let writes = s.state().writes.len();
    setup(&s, &["--alert-webhook-url", hook])
        .success()
        .stdout(predicate::str::ends_with("no changes\n"));
    assert_eq!(
        s.state().writes.len(),
        writes,
        "a second run writes nothing"
    );

    // A new threshold rewrites the monitor in place (with its version), nothing else.
    setup(
        &s,
        &["--alert-webhook-url", hook, "--offline-after-secs", "120"],
    )
    .success()
    .stdout(predicate::str::contains("updated   alerting monitor"))
    .stdout(predicate::str::contains("1 change applied"));
    s.assert_clean();
    let st = s.state();
    assert_eq!(
        st.monitors.len(),
        1 + ids2_provision::health::Check::ALL.len(),
        "found by name, never duplicated"
    );
    let (m, seq) = offline(&st);
    assert_eq!(*seq, 1);
    assert_eq!(
        m["inputs"][0]["search"]["query"]["aggregations"]["sensors"]["aggs"]["recent"]["filter"]
            ["range"]["@timestamp"]["gte"],
        "{{period_end}}||-120s"
    );
    assert!(st
        .writes
        .last()
        .unwrap()
        .starts_with("PUT /_plugins/_alerting/monitors/"));
}

#[test]
fn setup_refuses_a_clear_text_webhook() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    setup(&s, &["--alert-webhook-url", "http://hooks.example.org/x"])
        .code(2)
        .stderr(predicate::str::contains("webhook URL"));
    assert_eq!(s.state().requests, 0, "nothing was sent");
}

/// Time from a sensor's last heartbeat to `fleet status` calling it offline. CI runs it with a
/// 4 s threshold and 1 s heartbeats (the same state machine, seconds instead of a minute);
/// `IDS2_FLEET_OFFLINE_SECS=60 cargo test -p ids2-provision --test fleet_standin
/// time_to_offline -- --nocapture` measures the production setting (15 s heartbeats, 60 s).
#[test]
fn time_to_offline_follows_the_threshold() {
    let offline_secs: u64 = std::env::var("IDS2_FLEET_OFFLINE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let interval_secs = (offline_secs / 4).max(1);
    let poll = Duration::from_millis(200);
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    let mut stopped = Instant::now();
    for i in 0..3 {
        if i > 0 {
            std::thread::sleep(Duration::from_secs(interval_secs));
        }
        // From the heartbeat's own time, not from when it was indexed: under load the seed
        // takes a while, and the sensor's age counts from its timestamp.
        let at = Instant::now();
        let mut doc = beat("pi-m", Duration::ZERO, 0, 0);
        doc["ids2"]["heartbeat"]["interval_secs"] = interval_secs.into();
        s.seed_heartbeats(vec![doc]);
        stopped = at;
    }
    let threshold = offline_secs.to_string();
    let mut states = Vec::new();
    let deadline = stopped + Duration::from_secs(offline_secs * 3);
    while Instant::now() < deadline {
        let out = status(&s, &["--json", "--offline-after-secs", &threshold])
            .success()
            .get_output()
            .stdout
            .clone();
        let sensors: Vec<Value> = serde_json::from_slice(&out).unwrap();
        let state = sensors[0]["state"].as_str().unwrap().to_string();
        if states.last() != Some(&state) {
            eprintln!(
                "{:>5.1} s after the last heartbeat: {state}",
                stopped.elapsed().as_secs_f64()
            );
            states.push(state.clone());
        }
        if state == "offline" {
            let after = stopped.elapsed();
            eprintln!(
                "reported offline {:.1} s after the last heartbeat (threshold {offline_secs} s, \
                 polled every {} ms)",
                after.as_secs_f64(),
                poll.as_millis()
            );
            assert_eq!(states, ["online", "late", "offline"]);
            assert!(
                after >= Duration::from_secs(offline_secs),
                "offline too early"
            );
            // One-second timestamps and the polling step: never much past the threshold.
            assert!(
                after <= Duration::from_secs(offline_secs + 2),
                "offline too late"
            );
            s.assert_clean();
            return;
        }
        std::thread::sleep(poll);
    }
    panic!("never reported offline: {states:?}");
}
