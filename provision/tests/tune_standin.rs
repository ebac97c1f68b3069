//! `tune` against the osmem-server EMULATOR of the OpenSearch API (not OpenSearch), reached
//! through the stand-in that checks SigV4 (`support/standin.rs`), which the emulator ignores:
//! entries written, refused with every problem named and nothing written, listed with each
//! sensor's applied policy version from its heartbeat, and expired. What a sensor would apply
//! is read back from the emulator with the agent's own parser and resolver
//! (`ids2_core::policy`). Skips, saying so, without osmem-server.

#[path = "support/osmem.rs"]
#[allow(dead_code)]
mod osmem;
#[path = "support/standin.rs"]
#[allow(dead_code)]
mod standin;

use ids2_core::heartbeat::{self, PolicyState, Snapshot};
use ids2_core::policy;
use predicates::prelude::*;
use standin::{cli, Expect, StandIn};
use time::OffsetDateTime;

fn tune(s: &StandIn, args: &[&str]) -> assert_cmd::assert::Assert {
    cli()
        .args(["tune"])
        .args(args)
        .args(["--endpoint", &s.url, "--region", standin::REGION])
        .env("USER", "ana")
        .assert()
}

/// What sensor `pi-1` of group `lab` would apply now, read as the agent reads it.
fn applied(s: &StandIn) -> policy::Resolved {
    let (status, body) = s.emulator("GET", "/ids2-policy/_search?size=10000", None);
    assert_eq!(status, 200, "{body}");
    let parsed = policy::parse_search(&body).unwrap();
    assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    policy::resolve(
        &parsed.entries,
        "pi-1",
        &["lab".to_string()],
        OffsetDateTime::now_utc(),
    )
}

fn entry_count(s: &StandIn) -> u64 {
    match s.emulator("GET", "/ids2-policy/_count", None) {
        (200, v) => v["count"].as_u64().unwrap(),
        (404, _) => 0,
        (status, v) => panic!("_count: {status} {v}"),
    }
}

#[test]
fn entries_are_written_refused_listed_and_expired() {
    let Some(s) = StandIn::start_or_skip(Expect::SigV4) else {
        return;
    };
    // Bad input: every problem at once, exit 2, nothing written.
    tune(
        &s,
        &[
            "threshold",
            "--sid",
            "9200020",
            "--fleet",
            "--reason",
            "noisy",
        ],
    )
    .code(2);
    tune(
        &s,
        &[
            "threshold",
            "--sid",
            "9200020",
            "--fleet",
            "--reason",
            "noisy",
            "--type",
            "sometimes",
            "--track",
            "by_src",
            "--count",
            "1",
            "--seconds",
            "60",
        ],
    )
    .code(2)
    .stderr(predicate::str::contains("unknown variant `sometimes`"))
    .stderr(predicate::str::contains("nothing written"));
    tune(
        &s,
        &[
            "suppress",
            "--sid",
            "0",
            "--group",
            "Lab",
            "--reason",
            "x",
            "--track",
            "by_src",
            "--ip",
            "10.0.0.300",
        ],
    )
    .code(2)
    .stderr(predicate::str::contains("sid 0"))
    .stderr(predicate::str::contains("scope \"group:Lab\""))
    .stderr(predicate::str::contains("ip \"10.0.0.300\""));
    assert_eq!(entry_count(&s), 0);

    let out = tune(
        &s,
        &[
            "suppress",
            "--sid",
            "9200010",
            "--group",
            "lab",
            "--reason",
            "the IT team's scanner",
            "--track",
            "by_src",
            "--ip",
            "10.9.0.0/16",
            "--for-hours",
            "24",
        ],
    )
    .success()
    .get_output()
    .stdout
    .clone();
    let out = String::from_utf8(out).unwrap();
    let suppress_id = out
        .split_whitespace()
        .nth(1)
        .expect("wrote <id>")
        .to_string();
    assert!(
        suppress_id.starts_with("suppress-9200010-group-lab-"),
        "{out}"
    );
    tune(
        &s,
        &[
            "threshold",
            "--sid",
            "9200020",
            "--sensor",
            "pi-1",
            "--reason",
            "brute-force noise",
            "--type",
            "limit",
            "--track",
            "by_src",
            "--count",
            "1",
            "--seconds",
            "300",
        ],
    )
    .success();
    tune(
        &s,
        &[
            "disable", "--sid", "9200030", "--sensor", "pi-2", "--reason", "not ours",
        ],
    )
    .success();
    assert_eq!(entry_count(&s), 3);

    let r = applied(&s);
    let lines: Vec<&str> = r
        .threshold_config
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert_eq!(
        lines,
        [
            "suppress gen_id 1, sig_id 9200010, track by_src, ip 10.9.0.0/16",
            "threshold gen_id 1, sig_id 9200020, type limit, track by_src, count 1, seconds 300",
        ]
    );
    assert!(r.threshold_config.contains("the IT team's scanner"));

    // A sensor's heartbeat says which version it applied; list shows entries and sensors.
    let now = OffsetDateTime::now_utc();
    let beat = heartbeat::document(&Snapshot {
        at: Some(now),
        sensor_id: "pi-1".into(),
        interval_secs: 15,
        policy: Some(PolicyState {
            version: r.version.clone(),
            applied: 2,
            skipped: 0,
            updated: heartbeat::timestamp(now),
        }),
        ..Default::default()
    });
    s.seed_heartbeats(vec![beat]);
    tune(&s, &["list"])
        .success()
        .stdout(predicate::str::contains(&suppress_id))
        .stdout(predicate::str::contains("until "))
        .stdout(predicate::str::contains("brute-force noise (ana)"))
        .stdout(predicate::str::contains(format!("policy {}", r.version)));

    // Expiry: the suppression stops applying, and stays as a record.
    tune(&s, &["expire", "--id", &suppress_id]).success();
    let after = applied(&s);
    assert!(!after.threshold_config.contains("9200010"));
    assert_ne!(after.version, r.version);
    assert_eq!(entry_count(&s), 3);
    tune(&s, &["list"])
        .success()
        .stdout(predicate::str::contains("expired"));
    tune(&s, &["expire", "--id", "no-such-entry"])
        .code(2)
        .stderr(predicate::str::contains("no policy entry no-such-entry"));
    s.assert_clean();
}
