//! Rule-set updates with the real tools and offline sources (tarballs made by the test):
//! a good set is applied and recorded, an unchanged one is a no-op, a broken one is refused
//! and the previous set stays; and, as root, a live Suricata capturing in a network namespace
//! starts alerting on a rule the update added, with the same PID, and keeps detecting when a
//! broken update is refused. The same live Suricata then has its EVE file rotated by the agent's
//! [`EveReader`]: renamed, logs reopened over the socket, the next alert in a new `eve.json`;
//! and a fleet policy suppression, written with `ids2-provision tune` into the OpenSearch-API
//! emulator and fetched by the daemon's task, silences exactly its alerts, live, until it
//! expires.
//! Tests skip with a message when suricata or suricata-update (or, for the live test, root and
//! `ip`) are missing; CI provides them.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/netns.rs"]
mod netns;
// The OpenSearch-API emulator's launcher, shared with provision's tests (the agent may not
// depend on the lab's).
#[path = "../../provision/tests/support/osmem.rs"]
mod osmem;

use ids2_agent::apply::{self, Validator};
use ids2_agent::config::{self, Settings};
use ids2_agent::eve::{EveReader, Rotation};
use ids2_agent::fleet::policy::{run_schedule, PolicyUpdater};
use ids2_agent::fleet::rules::{self, Reload, RuleSetState, RuleUpdater, RulesError};
use ids2_agent::fleet::SuricataSocket;
use ids2_agent::metrics::Metrics;
use ids2_agent::render::RenderOptions;
use ids2_agent::supervisor::Shutdown;
use ids2_agent::suricata::Suricata;
use ids2_core::policy;
use netns::{End, Pair};

const ONE: &str =
    "alert udp any any -> any 5001 (msg:\"ids2 fleet one\"; content:\"IDS2-ONE\"; sid:9900001; rev:1;)\n";
const TWO: &str =
    "alert udp any any -> any 5002 (msg:\"ids2 fleet two\"; content:\"IDS2-TWO\"; sid:9900002; rev:1;)\n";
const BROKEN: &str =
    "alert udp any any -> any 5003 (msg:\"ids2 fleet broken\"; no_such_keyword:1; sid:9900003; rev:1;)\n";

fn tools() -> Option<Suricata> {
    let suricata = match Suricata::locate() {
        Ok(Some(s)) => s,
        _ => {
            eprintln!("skipped: needs suricata (set IDS2_SURICATA or add it to PATH)");
            return None;
        }
    };
    let has_update = std::env::var_os(rules::SURICATA_UPDATE_ENV).is_some()
        || Command::new("suricata-update")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !has_update {
        eprintln!("skipped: needs suricata-update (Debian package suricata-update)");
        return None;
    }
    Some(suricata)
}

/// A tarball `<work>/<name>.tar.gz` holding `rules/fleet.rules` with `text`.
fn tarball(work: &Path, name: &str, text: &str) -> PathBuf {
    let src = work.join(format!("src-{name}"));
    fs::create_dir_all(src.join("rules")).unwrap();
    fs::write(src.join("rules/fleet.rules"), text).unwrap();
    let out = work.join(format!("{name}.tar.gz"));
    let status = Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .arg("rules")
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// Settings whose rule source is `<work>/current.tar.gz` (the test swaps what it points at).
fn settings(work: &Path, interface: &str) -> Settings {
    settings_with(
        work,
        interface,
        "opensearch: {domain: ids2, region: eu-west-1, endpoint: 'https://os.example'}",
        "",
    )
}

/// The same with another `opensearch:` section and `fleet.policy` settings (`, policy: {…}`).
fn settings_with(work: &Path, interface: &str, opensearch: &str, policy: &str) -> Settings {
    let p = |s: &str| work.join(s).display().to_string();
    let yaml = format!(
        "sensor: {{id: fleet-{pid}}}\n\
         capture: {{interface: {interface}, home_net: [10.78.0.0/16], workers: 1, cpu_cores: [0]}}\n\
         {opensearch}\n\
         logs: {{path: {logs:?}}}\n\
         suricata: {{memory_mb: 128, rules_dir: {rules:?}, socket_path: {socket:?}}}\n\
         history: {{repo: {history:?}}}\n\
         paths: {{rendered_dir: {rendered:?}, vector_data_dir: {vector:?}}}\n\
         fleet: {{rules: {{sources: ['file://{source}'], cache_dir: {cache:?}}}{policy}}}\n",
        pid = std::process::id(),
        logs = p("logs"),
        rules = p("rules"),
        socket = p("suricata.socket"),
        history = p("history.git"),
        rendered = p("rendered"),
        vector = p("vector"),
        source = p("current.tar.gz"),
        cache = p("cache"),
    );
    config::from_str(&yaml, Path::new("<test>")).unwrap()
}

fn point_source_at(work: &Path, tarball: &Path) {
    fs::copy(tarball, work.join("current.tar.gz")).unwrap();
}

fn prepare(work: &Path, suricata: &Suricata, interface: &str) -> (Settings, RuleUpdater) {
    let s = settings(work, interface);
    fs::create_dir_all(work.join("logs")).unwrap();
    apply::render_to(
        &s,
        &RenderOptions::default(),
        Path::new(&s.config.paths.rendered_dir),
        &Validator::Suricata(suricata.clone()),
    )
    .unwrap();
    let updater = RuleUpdater::for_settings(&s).unwrap();
    (s, updater)
}

fn git_subjects(repo: &str, branch: &str) -> Vec<String> {
    let out = Command::new("git")
        .args(["--git-dir", repo, "log", "--format=%s", branch])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn good_update_applied_unchanged_is_noop_broken_refused() {
    let Some(suricata) = tools() else { return };
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (s, updater) = prepare(w, &suricata, "eth0");
    let metrics = Metrics::new("t");
    let rules_dir = PathBuf::from(&s.config.suricata.rules_dir);
    let active = rules_dir.join(rules::RULES_FILE);
    let branch = rules::rules_branch(&s.config.history.branch);

    point_source_at(w, &tarball(w, "v1", ONE));
    let first = updater.update_recorded(&metrics).unwrap();
    let v1 = fs::read_to_string(&active).unwrap();
    assert!(
        v1.contains("sid:9900001;"),
        "the source's rule is in the set"
    );
    let d = first.diff.unwrap();
    assert_eq!((d.removed, d.changed), (0, 0));
    assert_eq!(d.added as u64, first.state.rules);
    assert_eq!(first.reload, Reload::NotRunning);
    assert_eq!(
        RuleSetState::read(&rules_dir).unwrap().version,
        first.state.version
    );
    assert_eq!(metrics.rules_update_success.get(&[]), Some(1.0));
    assert_eq!(
        metrics.rules_loaded.get(&[]),
        Some(first.state.rules as f64)
    );

    // Same source again: nothing swapped, nothing recorded.
    let again = updater.update().unwrap();
    assert_eq!(again.diff, None);
    assert_eq!(again.commit, None);
    assert_eq!(again.state.version, first.state.version);

    // A new rule and a changed one.
    let one_v2 = ONE.replace("rev:1;", "rev:2;");
    point_source_at(w, &tarball(w, "v2", &format!("{one_v2}{TWO}")));
    let second = updater.update().unwrap();
    let d = second.diff.unwrap();
    assert_eq!((d.added, d.removed, d.changed), (1, 0, 1));
    assert_eq!(second.state.rules, first.state.rules + 1);
    let v2 = fs::read_to_string(&active).unwrap();
    assert!(v2.contains("sid:9900002;"));
    assert_eq!(
        fs::read_to_string(rules_dir.join(rules::PREVIOUS_FILE)).unwrap(),
        v1
    );

    let subjects = git_subjects(&s.config.history.repo, &branch);
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects[0].contains(&format!("{} rules (+1 -0 ~1)", second.state.rules)),
        "{subjects:?}"
    );
    assert!(
        subjects[1].contains("(+") && subjects[1].contains("-0 ~0)"),
        "{subjects:?}"
    );

    // A broken rule: refused by suricata -T, the active set and the record stay.
    point_source_at(w, &tarball(w, "v3", &format!("{one_v2}{TWO}{BROKEN}")));
    let err = updater.update_recorded(&metrics).unwrap_err();
    assert!(
        matches!(&err, RulesError::Rejected { reason } if reason.contains("no_such_keyword")),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&active).unwrap(), v2);
    assert_eq!(
        RuleSetState::read(&rules_dir).unwrap().version,
        second.state.version
    );
    assert_eq!(git_subjects(&s.config.history.repo, &branch).len(), 2);
    assert_eq!(metrics.rules_update_success.get(&[]), Some(0.0));
    // No staging directory is left behind.
    let leftovers: Vec<_> = fs::read_dir(&rules_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A source that cannot be fetched: the download fails, nothing changes.
    fs::remove_file(w.join("current.tar.gz")).unwrap();
    let err = updater.update().unwrap_err();
    assert!(matches!(err, RulesError::Download { .. }), "{err}");
    assert_eq!(fs::read_to_string(&active).unwrap(), v2);
}

#[test]
fn update_without_a_rendered_config_is_refused() {
    let Some(_) = tools() else { return };
    let work = tempfile::tempdir().unwrap();
    let s = settings(work.path(), "eth0");
    let err = RuleUpdater::for_settings(&s).unwrap().update().unwrap_err();
    assert!(matches!(err, RulesError::NoRenderedConfig { .. }), "{err}");
    assert!(err.to_string().contains("ids2-agent apply"));
    assert!(!Path::new(&s.config.suricata.rules_dir).exists());
}

// ---- live: Suricata in a network namespace -------------------------------------------------

/// Two namespaces joined by a veth pair: `sensor` (eth0 = 10.78.N.1, captured) and `peer`
/// (eth0 = 10.78.N.2, sends). Deleted on drop.
struct Net {
    pair: Pair,
    sensor_ip: String,
}

impl Net {
    fn create() -> Net {
        let n = Pair::next_number() % 250;
        let (sensor_ip, peer_ip) = (format!("10.78.{n}.1"), format!("10.78.{n}.2"));
        let pair = Pair::create(
            "ids2fl",
            n,
            End {
                link: "eth0",
                cidr: &format!("{sensor_ip}/24"),
            },
            End {
                link: "eth0",
                cidr: &format!("{peer_ip}/24"),
            },
        );
        Net { pair, sensor_ip }
    }

    /// Sends `payload` to the sensor's `port` from the peer namespace.
    fn send(&self, payload: &str, port: u16) {
        let (ns, to, payload) = (
            self.pair.peer.clone(),
            self.sensor_ip.clone(),
            payload.to_string(),
        );
        std::thread::spawn(move || {
            let f = fs::File::open(format!("/run/netns/{ns}")).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(payload.as_bytes(), (to.as_str(), port)).unwrap();
        })
        .join()
        .unwrap();
    }
}

/// Suricata running in the sensor namespace; killed on drop.
struct Live {
    child: Child,
    output: PathBuf,
}

impl Live {
    fn start(suricata: &Suricata, ns: &str, s: &Settings) -> Live {
        let logs = PathBuf::from(&s.config.logs.path);
        let output = logs.join("suricata.out");
        let out = fs::File::create(&output).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(suricata.binary())
            .arg("-c")
            .arg(Path::new(&s.config.paths.rendered_dir).join("current/suricata.yaml"))
            .arg("--af-packet")
            .arg("-l")
            .arg(&logs)
            // This machine's CPUs are shared with other tests: no exclusive pinning.
            .args(["--set", "threading.set-cpu-affinity=no"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let live = Live { child, output };
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let text = fs::read_to_string(&live.output).unwrap_or_default();
            if text.contains("Engine started") && Path::new(&s.config.suricata.socket_path).exists()
            {
                return live;
            }
            assert!(!text.contains("E: "), "Suricata failed to start:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "Suricata did not start within 90 s:\n{}",
            fs::read_to_string(&live.output).unwrap_or_default()
        );
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alerts_for(eve: &Path, sid: u64) -> usize {
    let Ok(f) = fs::File::open(eve) else { return 0 };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter(|v| v["event_type"] == "alert" && v["alert"]["signature_id"] == sid)
        .count()
}

/// Sends `payload` every 200 ms until a new alert for `sid` shows in EVE, or `limit` passes;
/// returns whether one did.
fn provoke(net: &Net, eve: &Path, payload: &str, port: u16, sid: u64, limit: Duration) -> bool {
    let before = alerts_for(eve, sid);
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        net.send(payload, port);
        std::thread::sleep(Duration::from_millis(200));
        if alerts_for(eve, sid) > before {
            return true;
        }
    }
    false
}

/// `ids2-provision` of this build (the workspace's tests build it beside this crate's binary).
fn provision_binary() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_ids2-agent"))
        .with_file_name(format!("ids2-provision{}", std::env::consts::EXE_SUFFIX));
    p.is_file().then_some(p)
}

/// One JSON `PUT` to the emulator at `url` (`http://127.0.0.1:PORT`); the status code.
fn emulator_put(url: &str, path: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Waits up to `limit` for a policy satisfying `done` to be applied and reloaded by the running
/// Suricata (the state names it before the reload, with the unloaded suffix); the time it took.
fn policy_applied(
    rules_dir: &Path,
    limit: Duration,
    done: impl Fn(&ids2_core::heartbeat::PolicyState) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ids2_core::heartbeat::PolicyState::read(rules_dir)
            .is_some_and(|p| p.reloaded() && done(&p))
        {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Seconds from `since` to the fetch of the applied policy (its state's `updated`).
fn fetched_after(rules_dir: &Path, since: time::OffsetDateTime) -> f64 {
    let state = ids2_core::heartbeat::PolicyState::read(rules_dir).expect("a policy state");
    let at = time::OffsetDateTime::parse(
        &state.updated,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    (at - since).as_seconds_f64()
}

/// The fleet policy end to end, on the live Suricata: an analyst's `ids2-provision tune
/// suppress` into the osmem-server EMULATOR of the OpenSearch API (not OpenSearch), fetched by
/// the daemon's own scheduled task (every 10 s here) over HTTP with basic auth, silences exactly
/// the peer's IDS2-TWO alerts within one interval while a bad entry written beside it is named
/// and skipped; OpenSearch unreachable keeps the last policy; `tune expire` brings the alerts
/// back at the next fetch. Skips this part, saying so, without osmem-server or ids2-provision.
fn fleet_policy_end_to_end(w: &Path, s: &Settings, net: &Net, eve: &Path) {
    let (os, provision) = match (osmem::Osmem::start(), provision_binary()) {
        (Ok(os), Some(p)) => (os, p),
        (os, p) => {
            eprintln!(
                "SKIP (the fleet policy part): needs osmem-server ({}) and ids2-provision built \
                 beside this test ({})",
                os.err().unwrap_or_else(|| "found".into()),
                if p.is_some() { "found" } else { "missing" }
            );
            return;
        }
    };
    const INTERVAL_SECS: u64 = 10;
    let password = w.join("opensearch-password");
    fs::write(&password, "placeholder\n").unwrap();
    let section = |url: &str| {
        format!(
            "opensearch: {{domain: ids2, region: eu-west-1, endpoint: '{url}', auth: {{method: \
             basic, username: ids2, password_file: '{}'}}}}",
            password.display()
        )
    };
    let ps = settings_with(
        w,
        "eth0",
        &section(&os.url),
        &format!(", policy: {{interval_secs: {INTERVAL_SECS}}}"),
    );
    let rules_dir = PathBuf::from(&ps.config.suricata.rules_dir);
    let peer = format!("{}.2", net.sensor_ip.rsplit_once('.').unwrap().0);

    // The daemon's task; its first fetch finds no policy index: an empty policy.
    let metrics = Arc::new(Metrics::new("policy"));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = {
        let updater = PolicyUpdater::for_settings(Arc::new(ps.clone())).unwrap();
        let metrics = metrics.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(run_schedule(updater, metrics, Shutdown::new(stop_rx)))
        })
    };
    assert!(
        policy_applied(&rules_dir, Duration::from_secs(15), |p| p.applied == 0).is_some(),
        "the first fetch (no policy index yet) did not complete"
    );

    let tune = |args: &[&str]| -> String {
        let out = Command::new(&provision)
            .arg("tune")
            .args(args)
            .args([
                "--endpoint",
                &os.url,
                "--auth",
                "basic",
                "--username",
                "ids2",
            ])
            .arg("--password-file")
            .arg(&password)
            .env("USER", "analyst")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ids2-provision tune {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let wrote = tune(&[
        "suppress",
        "--sid",
        "9900002",
        "--sensor",
        &s.config.sensor.id,
        "--track",
        "by_src",
        "--ip",
        &peer,
        "--reason",
        "the peer's test traffic",
    ]);
    let tuned_at = time::OffsetDateTime::now_utc();
    let id = wrote
        .strip_prefix("wrote ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no entry id in {wrote:?}"))
        .to_string();
    // An entry `tune` would refuse, as a hand-made document or an older tool could write it.
    let bad = serde_json::json!({"action": "suppress", "scope": "fleet", "sid": 9900001,
        "track": "by_src", "ip": "10.0.0.300", "reason": "typo", "author": "t",
        "created": "2026-12-03T00:00:00Z"});
    let index = policy::index(&ps.config.opensearch.index_prefix);
    let status = emulator_put(
        &os.url,
        &format!("/{index}/_doc/bad?refresh=true"),
        &bad.to_string(),
    );
    assert!(
        (200..300).contains(&status),
        "writing the bad entry: {status}"
    );

    // The fetch that found it came within one interval of `tune` (the schedule sleeps an
    // interval after each update; 3 s more for the request itself on a loaded machine);
    // checking and reloading take what they take, so the wait allows more.
    let took = policy_applied(&rules_dir, Duration::from_secs(INTERVAL_SECS + 30), |p| {
        p.applied == 1 && p.skipped == 1
    })
    .expect("the suppression was not applied");
    let fetched = fetched_after(&rules_dir, tuned_at);
    eprintln!(
        "suppression fetched {fetched:.1} s and applied {:.1} s after `tune suppress` \
         (interval {INTERVAL_SECS} s)",
        took.as_secs_f64()
    );
    assert!(
        fetched <= INTERVAL_SECS as f64 + 3.0,
        "fetched {fetched:.1} s after `tune`, more than one interval"
    );
    assert!(
        !provoke(net, eve, "IDS2-TWO", 5002, 9900002, Duration::from_secs(3)),
        "the suppressed alert no longer fires"
    );
    assert!(
        provoke(net, eve, "IDS2-ONE", 5001, 9900001, Duration::from_secs(20)),
        "other rules still alert (the bad entry for them was skipped)"
    );

    // OpenSearch unreachable: the fetch fails, counted, and the last policy stays.
    let threshold = fs::read(rules_dir.join(ids2_agent::fleet::policy::THRESHOLD_FILE)).unwrap();
    let away = settings_with(w, "eth0", &section("http://127.0.0.1:9"), "");
    let away_metrics = Metrics::new("away");
    let refused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(
            PolicyUpdater::for_settings(Arc::new(away))
                .unwrap()
                .update_recorded(&away_metrics),
        );
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(away_metrics.policy_update_success.get(&[]), Some(0.0));
    assert_eq!(
        fs::read(rules_dir.join(ids2_agent::fleet::policy::THRESHOLD_FILE)).unwrap(),
        threshold,
        "the last good policy stays"
    );
    assert!(
        !provoke(net, eve, "IDS2-TWO", 5002, 9900002, Duration::from_secs(3)),
        "still suppressed while OpenSearch is away"
    );

    tune(&["expire", "--id", &id]);
    let expired_at = time::OffsetDateTime::now_utc();
    let took = policy_applied(&rules_dir, Duration::from_secs(INTERVAL_SECS + 30), |p| {
        p.applied == 0
    })
    .expect("the expiry was not applied");
    let fetched = fetched_after(&rules_dir, expired_at);
    eprintln!(
        "expiry fetched {fetched:.1} s and applied {:.1} s after `tune expire`",
        took.as_secs_f64()
    );
    assert!(
        fetched <= INTERVAL_SECS as f64 + 3.0,
        "fetched {fetched:.1} s after `tune expire`, more than one interval"
    );
    assert!(
        provoke(net, eve, "IDS2-TWO", 5002, 9900002, Duration::from_secs(20)),
        "the expired suppression no longer applies"
    );
    stop.send(true).unwrap();
    task.join().unwrap().expect("the policy task ends cleanly");
    assert_eq!(metrics.policy_update_success.get(&[]), Some(1.0));
    let subjects = git_subjects(
        &s.config.history.repo,
        &ids2_agent::fleet::policy::policy_branch(&s.config.history.branch),
    );
    assert!(
        subjects[0].contains("0 entries applied, 1 skipped, 1 expired"),
        "{subjects:?}"
    );
}

#[test]
fn live_suricata_alerts_on_a_new_rule_without_restarting() {
    let Some(suricata) = tools() else { return };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (network namespaces and af-packet capture)");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: needs iproute2 (`ip`)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (s, updater) = prepare(w, &suricata, "eth0");
    let eve = Path::new(&s.config.logs.path).join("eve.json");
    let rules_dir = PathBuf::from(&s.config.suricata.rules_dir);

    point_source_at(w, &tarball(w, "v1", ONE));
    assert_eq!(updater.update().unwrap().reload, Reload::NotRunning);

    let net = Net::create();
    let two_alerts = || {
        provoke(
            &net,
            &eve,
            "IDS2-TWO",
            5002,
            9900002,
            Duration::from_secs(20),
        )
    };
    let mut live = Live::start(&suricata, &net.pair.sensor, &s);
    let pid = live.child.id();
    assert!(
        provoke(
            &net,
            &eve,
            "IDS2-ONE",
            5001,
            9900001,
            Duration::from_secs(20)
        ),
        "the capture works: the first set's rule alerts"
    );
    assert!(
        !provoke(
            &net,
            &eve,
            "IDS2-TWO",
            5002,
            9900002,
            Duration::from_secs(2)
        ),
        "no rule for IDS2-TWO yet"
    );

    point_source_at(w, &tarball(w, "v2", &format!("{ONE}{TWO}")));
    let report = updater.update().unwrap();
    match report.reload {
        Reload::Done { loaded, failed } => {
            assert_eq!(failed, 0);
            assert!(loaded >= 2, "{report}");
        }
        other => panic!("Suricata was not reloaded: {other:?}"),
    }
    assert!(two_alerts(), "the new rule alerts after the reload");
    assert!(live.running());
    assert_eq!(live.child.id(), pid, "same Suricata process");

    let v2 = fs::read(rules_dir.join(rules::RULES_FILE)).unwrap();
    point_source_at(w, &tarball(w, "v3", &format!("{ONE}{TWO}{BROKEN}")));
    let err = updater.update().unwrap_err();
    assert!(matches!(err, RulesError::Rejected { .. }), "{err}");
    assert_eq!(fs::read(rules_dir.join(rules::RULES_FILE)).unwrap(), v2);
    assert!(
        two_alerts(),
        "the old set keeps detecting after a refused update"
    );
    assert!(live.running());
    assert_eq!(live.child.id(), pid);
    let text = fs::read_to_string(&live.output).unwrap();
    assert!(
        !text.contains("Engine started") || text.matches("Engine started").count() == 1,
        "{text}"
    );

    fleet_policy_end_to_end(w, &s, &net, &eve);
    assert_eq!(
        live.child.id(),
        pid,
        "the policy is applied without a restart"
    );

    // EVE rotation: a limit of the file's present size makes the reader rotate at its first
    // poll, and the new file cannot reach it again before the reader is stopped.
    let limit = fs::metadata(&eve).unwrap().len();
    let socket = SuricataSocket::new(&s.config.suricata.socket_path, Duration::from_secs(10));
    let mut reader = EveReader::new(&s.config.logs.path);
    reader.poll = Duration::from_millis(50);
    reader.rotation = Some(Rotation {
        max_bytes: limit,
        reopen: std::sync::Arc::new(move || {
            socket
                .command("reopen-log-files", None)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
    });
    let metrics = std::sync::Arc::new(Metrics::new("t"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = rt.spawn(reader.run(
        metrics.clone(),
        ids2_agent::supervisor::Shutdown::new(stopped),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while metrics.eve_rotations.get(&[]) != Some(1.0) {
        assert!(Instant::now() < deadline, "the EVE file was not rotated");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The reader finishes its step (the reopen) before it stops.
    stop.send(true).unwrap();
    rt.block_on(task).unwrap().unwrap();
    assert_eq!(metrics.eve_rotations.get(&[]), Some(1.0));
    assert_eq!(metrics.eve_rotation_failures.get(&[]), Some(0.0));
    let rotated = Rotation::rotated_path(&eve);
    let in_rotated = alerts_for(&rotated, 9900002);
    assert!(
        in_rotated > 0,
        "the alerts so far moved with the renamed file"
    );
    assert!(
        two_alerts(),
        "after the reopen Suricata writes a new eve.json (it opens it at its next write)"
    );
    assert_eq!(
        alerts_for(&rotated, 9900002),
        in_rotated,
        "nothing more goes to eve.json.1"
    );
    assert_eq!(live.child.id(), pid, "no restart for a rotation");
}
