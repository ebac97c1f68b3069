//! Fleet health against the osmem-server EMULATOR of the OpenSearch API (not OpenSearch): the
//! agent's own heartbeat documents (`ids2_core::heartbeat::document`), crafted to cross each
//! threshold or to stay just inside it, are indexed in the emulator; `fleet health` must name
//! exactly the sensors in breach. The monitors `opensearch setup` installs go to the stand-in
//! for the Alerting plugin the emulator lacks (`support/standin.rs`); each one's query is then
//! run, as Alerting would at `{{period_end}}`, as a plain search on the emulator, and its
//! trigger applied to the buckets, so the installed monitors' logic is tested, not only their
//! shape. Skips, saying so, without osmem-server.

#[path = "support/osmem.rs"]
mod osmem;
#[path = "support/standin.rs"]
#[allow(dead_code)]
mod standin;

use std::collections::BTreeMap;

use ids2_core::heartbeat::{self, IntelSummary, PolicyState, RuleSetState, Snapshot};
use ids2_provision::health::{Check, Condition};
use predicates::prelude::*;
use serde_json::Value;
use standin::{cli, setup, Expect, StandIn};
use time::{Duration, OffsetDateTime};

/// A healthy heartbeat of `sensor` taken `ago` before `now`.
fn healthy(sensor: &str, now: OffsetDateTime, ago: Duration) -> Snapshot {
    let at = now - ago;
    Snapshot {
        at: Some(at),
        sensor_id: sensor.into(),
        sensor_name: sensor.into(),
        version: "0.1.0".into(),
        interval_secs: 60,
        throttle_level: Some(0),
        logs_used_ratio: Some(0.4),
        packets: Some(100_000),
        kernel_drops: Some(10),
        drop_ratio: Some(0.0001),
        shipping_buffer: Some((1 << 20, 256 << 20)),
        rules: Some(RuleSetState {
            version: "0123456789abcdef".into(),
            rules: 42,
            updated: heartbeat::timestamp(at - Duration::days(1)),
            sources: vec!["et/open".into()],
        }),
        policy: Some(PolicyState {
            version: "0a1b2c3d4e5f".into(),
            applied: 1,
            skipped: 0,
            updated: heartbeat::timestamp(at - Duration::minutes(1)),
        }),
        intel: Some(IntelSummary {
            versions: vec!["feodo-tracker:0123456789abcdef".into()],
            updated: Some(heartbeat::timestamp(at - Duration::hours(2))),
            stale: Vec::new(),
        }),
        ..Default::default()
    }
}

/// A sensor's heartbeats over the last ten minutes, one a minute, each changed by `f` (given
/// the minutes ago).
fn ten_minutes(sensor: &str, now: OffsetDateTime, f: impl Fn(i64, &mut Snapshot)) -> Vec<Snapshot> {
    (0..10)
        .map(|m| {
            let mut s = healthy(sensor, now, Duration::minutes(m) + Duration::seconds(20));
            f(m, &mut s);
            s
        })
        .collect()
}

/// The fleet: one sensor per breach, one just inside each threshold, one healthy.
fn fleet(now: OffsetDateTime) -> Vec<Snapshot> {
    let mut out = Vec::new();
    out.extend(ten_minutes("pi-ok", now, |_, _| {}));
    out.extend(ten_minutes("pi-drops", now, |m, s| {
        if m == 0 {
            s.drop_ratio = Some(0.02);
        }
    }));
    // Dropped heavily, but 20 minutes ago: outside the window.
    out.extend(ten_minutes("pi-dropped-before", now, |_, _| {}));
    let mut old = healthy("pi-dropped-before", now, Duration::minutes(20));
    old.drop_ratio = Some(0.5);
    out.push(old);
    out.extend(ten_minutes("pi-drops-inside", now, |_, s| {
        s.drop_ratio = Some(0.009)
    }));
    out.extend(ten_minutes("pi-old-rules", now, |_, s| {
        if let Some(r) = s.rules.as_mut() {
            r.updated = heartbeat::timestamp(now - Duration::days(8));
        }
    }));
    out.extend(ten_minutes("pi-old-feeds", now, |_, s| {
        if let Some(i) = s.intel.as_mut() {
            i.updated = Some(heartbeat::timestamp(now - Duration::days(10)));
        }
    }));
    out.extend(ten_minutes("pi-tmpfs", now, |m, s| {
        s.logs_used_ratio = Some(if m < 2 { 0.85 } else { 0.7 });
    }));
    out.extend(ten_minutes("pi-throttled", now, |m, s| {
        s.throttle_level = Some(if m % 2 == 0 { 2 } else { 3 });
    }));
    // Throttled, but back at level 1 for one heartbeat within the ten minutes.
    out.extend(ten_minutes("pi-throttled-briefly", now, |m, s| {
        s.throttle_level = Some(if m == 6 { 1 } else { 2 });
    }));
    out.extend(ten_minutes("pi-backlog", now, |_, s| {
        s.shipping_buffer = Some((160 << 20, 256 << 20));
    }));
    out.extend(ten_minutes("pi-policy", now, |_, s| {
        if let Some(p) = s.policy.as_mut() {
            p.updated = heartbeat::timestamp(now - Duration::minutes(20));
        }
    }));
    out.extend(ten_minutes("pi-long-line", now, |m, s| {
        s.eve_oversized = Some(u64::from(m == 3));
    }));
    // Skipped a line, but 20 minutes ago: outside the window.
    let mut old = healthy("pi-long-line-before", now, Duration::minutes(20));
    old.eve_oversized = Some(4);
    out.push(old);
    // A sensor without a policy or intel feeds at all is not "stale" for lacking them.
    out.extend(ten_minutes("pi-bare", now, |_, s| {
        s.policy = None;
        s.intel = None;
        s.shipping_buffer = None;
    }));
    out
}

/// What each check must name over [`fleet`] with the default thresholds.
fn expected() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        ("drops", vec!["pi-drops"]),
        ("stale", vec!["pi-old-feeds", "pi-old-rules"]),
        ("tmpfs", vec!["pi-tmpfs"]),
        ("throttle", vec!["pi-throttled"]),
        ("backlog", vec!["pi-backlog"]),
        ("policy", vec!["pi-policy"]),
        ("unshipped", vec!["pi-long-line"]),
        ("unmapped", vec!["pi-cut-line"]),
    ])
}

fn seed(s: &StandIn, now: OffsetDateTime) {
    s.seed_heartbeats(fleet(now).iter().map(heartbeat::document).collect());
    // Lines shipped unmapped: two from one sensor in the last minutes, one from another 20
    // minutes ago (outside the window).
    let ago = |d: Duration| heartbeat::timestamp(now - d);
    let (a, b, c) = (
        ago(Duration::seconds(30)),
        ago(Duration::minutes(3)),
        ago(Duration::minutes(20)),
    );
    s.seed_unmapped(&[
        ("pi-cut-line", &a),
        ("pi-cut-line", &b),
        ("pi-cut-line-before", &c),
    ]);
}

fn health(s: &StandIn, extra: &[&str]) -> assert_cmd::assert::Assert {
    cli()
        .args([
            "fleet",
            "health",
            "--json",
            "--endpoint",
            &s.url,
            "--region",
            standin::REGION,
        ])
        .args(extra)
        .assert()
}

fn findings(out: &[u8]) -> BTreeMap<String, Vec<String>> {
    let v: Vec<Value> = serde_json::from_slice(out).unwrap();
    v.iter()
        .map(|f| {
            let mut sensors: Vec<String> = f["sensors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            sensors.sort();
            (f["check"].as_str().unwrap().to_string(), sensors)
        })
        .collect()
}

fn as_strings(m: BTreeMap<&str, Vec<&str>>) -> BTreeMap<String, Vec<String>> {
    m.into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect()
}

#[test]
fn fleet_health_names_exactly_the_sensors_in_breach() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    let now = OffsetDateTime::now_utc();
    seed(&s, now);
    let out = health(&s, &[]).code(3).get_output().clone();
    s.assert_clean();
    assert_eq!(findings(&out.stdout), as_strings(expected()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("8 health check(s) alerting"));

    // Thresholds move the line: at 90 % the tmpfs sensor is inside, at 0.5 % drops the
    // sensor just inside 1 % is out.
    let out = health(
        &s,
        &["--tmpfs-alert-percent", "90", "--drop-alert-percent", "0.5"],
    )
    .code(3)
    .get_output()
    .clone();
    let mut want = expected();
    want.insert("tmpfs", vec![]);
    want.insert("drops", vec!["pi-drops", "pi-drops-inside"]);
    assert_eq!(findings(&out.stdout), as_strings(want));

    // Bad thresholds: every one named, nothing sent.
    let before = s.state().requests;
    health(
        &s,
        &["--tmpfs-alert-percent", "0", "--policy-alert-minutes", "1"],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "--tmpfs-alert-percent 0: expected 1 to 100",
    ))
    .stderr(predicate::str::contains(
        "--policy-alert-minutes 1: expected 2 to 1440",
    ));
    assert_eq!(s.state().requests, before, "nothing was sent");
}

#[test]
fn an_empty_fleet_is_healthy() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    let out = health(&s, &[]).success().get_output().clone();
    assert!(findings(&out.stdout).values().all(Vec::is_empty));
}

#[test]
fn installed_monitors_alert_on_the_same_sensors_when_run_on_the_emulator() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    let hook = "https://hooks.example.org/services/T0/B0/x";
    setup(&s, &["--alert-webhook-url", hook]).success();
    s.assert_clean();
    let now = OffsetDateTime::now_utc();
    seed(&s, now);
    let monitors: Vec<Value> = s
        .state()
        .monitors
        .values()
        .map(|(m, _)| m.clone())
        .collect();
    assert_eq!(
        monitors.len(),
        1 + Check::ALL.len(),
        "offline + one per check"
    );
    let millis = (now.unix_timestamp_nanos() / 1_000_000).to_string();
    let mut alerting = BTreeMap::new();
    for check in Check::ALL {
        let name = check.monitor_name("ids2");
        let m = monitors
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no monitor {name}"));
        let trigger = &m["triggers"][0]["bucket_level_trigger"];
        assert_eq!(
            trigger["actions"][0]["destination_id"], "ids2-sensor-offline",
            "{name} notifies the channel"
        );
        // What Alerting does each minute: the query at period_end, then the trigger per bucket.
        let query = m["inputs"][0]["search"]["query"]
            .to_string()
            .replace("{{period_end}}", &millis);
        let indices = m["inputs"][0]["search"]["indices"][0].as_str().unwrap();
        let (status, r) = s.emulator("POST", &format!("/{indices}/_search"), Some(query));
        assert_eq!(status, 200, "{name}: {r}");
        let script = trigger["condition"]["script"]["source"].as_str().unwrap();
        let condition = [Condition::Any, Condition::Every]
            .into_iter()
            .find(|c| c.painless() == script)
            .unwrap_or_else(|| panic!("{name}: unknown trigger {script}"));
        let mut sensors = Vec::new();
        for b in r["aggregations"]["sensors"]["buckets"].as_array().unwrap() {
            let beats = b["doc_count"].as_u64().unwrap();
            let breach = b["breach"]["doc_count"].as_u64().unwrap();
            if condition.holds(beats, breach) {
                sensors.push(b["key"]["sensor"].as_str().unwrap().to_string());
            }
        }
        sensors.sort();
        let key = serde_json::to_value(check).unwrap();
        alerting.insert(key.as_str().unwrap().to_string(), sensors);
    }
    assert_eq!(alerting, as_strings(expected()));
}
