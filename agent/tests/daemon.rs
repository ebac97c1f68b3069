//! The real `ids2-agent run` binary: SIGTERM stops it and its children, in order, within
//! 10 s; what its live metrics endpoint serves passes `promtool check metrics` (with
//! notifications and blocking on); SIGHUP and a changed file apply a new generation (real
//! render, real `suricata -T`, git history checked with the git CLI) and restart or reload
//! what changed, while a bad config changes nothing.
//!
//! The Suricata and Vector *processes* are stand-ins here (shell scripts named `suricata` and
//! `vector` put first on PATH) because the point is the agent's process handling, and Vector
//! is not installable on the test machine; `tests/pipeline.rs` restarts the real Suricata. The
//! agent's `suricata -T` check uses the real Suricata through `IDS2_SURICATA`; only where
//! Suricata is not installed does the stand-in answer `-T` itself (accepting everything), and
//! the tests that need the real check skip there.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};

#[path = "support/agent.rs"]
mod agent;
use agent::{http_get, scrape, wait_until, which};
use nix::unistd::Pid;

struct Agent {
    child: Child,
    metrics: std::net::SocketAddr,
    _dir: tempfile::TempDir,
    events: PathBuf,
    stderr: mpsc::Receiver<String>,
}

/// A stand-in that records its start, its reload signal and its SIGTERM (with a timestamp)
/// and, for Vector, takes a moment to "drain" before exiting.
fn stand_in(bin: &Path, name: &str, events: &Path, drain_ms: u32) {
    let script = format!(
        "#!/bin/sh\n\
         [ \"$1\" = -T ] && exit 0\n\
         echo \"{name} start $$\" >> {ev}\n\
         trap 'echo \"{name} term $(date +%s%N)\" >> {ev}; sleep {drain}; exit 0' TERM\n\
         trap 'echo \"{name} hup $$\" >> {ev}' HUP\n\
         trap 'echo \"{name} usr2 $$\" >> {ev}' USR2\n\
         while :; do sleep 0.05; done\n",
        ev = events.display(),
        drain = f64::from(drain_ms) / 1000.0,
    );
    let path = bin.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The real Suricata, if installed (looked up before the stand-ins shadow it on PATH).
fn real_suricata() -> Option<PathBuf> {
    which("suricata")
}

/// The config the tests start with; `extra` is appended (further top-level sections).
fn config_text(root: &Path, extra: &str) -> String {
    format!(
        "sensor: {{id: test-agent}}\n\
         opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://opensearch.invalid'}}\n\
         logs: {{path: {r}/logs}}\n\
         paths: {{rendered_dir: {r}/rendered, vector_data_dir: {r}/vector}}\n\
         history: {{repo: {r}/history.git}}\n\
         metrics: {{listen: '127.0.0.1:0'}}\n\
         resources: {{sample_secs: 1}}\n\
         connectivity: {{dns_names: [ids2-test.invalid], interval_secs: 5, timeout_secs: 1}}\n{extra}",
        r = root.display()
    )
}

fn start_agent() -> Agent {
    start_agent_with("")
}

fn start_agent_with(extra: &str) -> Agent {
    start_agent_in(tempfile::tempdir().unwrap(), extra, None)
}

/// Starts the agent in `dir` (reused across runs by the restart test); with `notify`, systemd's
/// notification socket is that path.
fn start_agent_in(dir: tempfile::TempDir, extra: &str, notify: Option<&Path>) -> Agent {
    let root = dir.path();
    let bin = root.join("bin");
    for d in ["bin", "logs", "rendered", "vector"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let events = root.join("events.log");
    stand_in(&bin, "suricata", &events, 0);
    stand_in(&bin, "vector", &events, 300);
    let config = root.join("config.yaml");
    if !config.exists() {
        std::fs::write(&config, config_text(root, extra)).unwrap();
    }
    // An empty EVE file: the agent starts reading at its end, so what a test appends is read.
    std::fs::write(root.join("logs/eve.json"), "").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ids2-agent"));
    match real_suricata() {
        Some(s) => cmd.env("IDS2_SURICATA", s),
        None => cmd.env_remove("IDS2_SURICATA"),
    };
    match notify {
        Some(socket) => cmd.env("NOTIFY_SOCKET", socket),
        None => cmd.env_remove("NOTIFY_SOCKET"),
    };
    let agent::Running {
        child,
        stderr: rx,
        metrics,
    } = agent::run(cmd, &config, &bin);
    Agent {
        child,
        metrics,
        _dir: dir,
        events,
        stderr: rx,
    }
}

fn pids_of(events: &Path, name: &str) -> Vec<u32> {
    std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{name} start ")))
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

fn term_time(events: &Path, name: &str) -> Option<u128> {
    std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} term "))?
                .trim()
                .parse()
                .ok()
        })
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn sigterm_stops_agent_and_children_in_order_within_10s() {
    let mut agent = start_agent();
    let events = agent.events.clone();
    wait_until("both stand-ins started", Duration::from_secs(10), || {
        !pids_of(&events, "suricata").is_empty() && !pids_of(&events, "vector").is_empty()
    });
    let children: Vec<u32> = [pids_of(&events, "suricata"), pids_of(&events, "vector")].concat();

    let t = Instant::now();
    kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGTERM).unwrap();
    let status = loop {
        if let Some(s) = agent.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "agent still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    for pid in children {
        assert!(!alive(pid), "child {pid} outlived the agent");
    }
    let (s, v) = (term_time(&events, "suricata"), term_time(&events, "vector"));
    let (s, v) = (
        s.expect("suricata got no SIGTERM"),
        v.expect("vector got no SIGTERM"),
    );
    assert!(
        s < v,
        "Vector was stopped before Suricata (suricata {s}, vector {v})"
    );
    let logs: Vec<String> = agent.stderr.try_iter().collect();
    assert!(logs.iter().any(|l| l.contains("stopped ms=")), "{logs:#?}");
}

/// A webhook receiver on loopback that answers 200 to every request and counts them.
fn webhook_receiver() -> (std::net::SocketAddr, mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then the body by Content-Length.
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send(String::from_utf8_lossy(&req).into_owned()).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

const ALERT: &str = r#"{"timestamp":"2026-11-21T04:00:00.000000+0000","event_type":"alert","src_ip":"203.0.113.9","src_port":4444,"dest_ip":"10.1.2.3","dest_port":80,"proto":"TCP","alert":{"signature_id":9200001,"signature":"ids2 daemon test","category":"Attempted Administrator Privilege Gain","severity":1}}"#;

/// With notifications and blocking on, an alert read from EVE reaches the webhook and the
/// block feed, and the whole endpoint, the responders' families included, passes promtool.
#[test]
fn live_endpoint_passes_promtool() {
    let Some(promtool) = which("promtool") else {
        eprintln!("SKIP live_endpoint_passes_promtool: needs promtool (Debian package prometheus; .ci/install-deps installs it)");
        return;
    };
    let (hook, hook_requests) = webhook_receiver();
    let mut agent = start_agent_with(&format!(
        "notifications: {{min_severity: high, webhook: {{url: 'http://{hook}/hook'}}, retry_initial_ms: 100}}\n\
         blocking: {{enabled: true, feed_listen: '127.0.0.2:0'}}\n"
    ));
    // Let every task report at least once: resources sample each second, connectivity the
    // .invalid name, EVE the lines written below.
    let logs = agent._dir.path().join("logs/eve.json");
    // The agent may not have opened the file yet; appending after a pause keeps the lines
    // after its starting offset either way.
    std::thread::sleep(Duration::from_millis(1500));
    append(
        &logs,
        &format!("{ALERT}\n{{\"timestamp\":\"2026-11-21T04:00:01.000000+0000\",\"event_type\":\"stats\",\"stats\":{{\"capture\":{{\"kernel_packets\":5,\"kernel_drops\":1}}}}}}\n"),
    );
    let addr = agent.metrics;
    let mut body = String::new();
    wait_until("all families populated", Duration::from_secs(20), || {
        body = scrape(addr).1;
        body.contains("ids2_host_cpu_ratio ")
            && body.contains("ids2_connectivity_up{check=\"dns\",target=\"ids2-test.invalid\"} 0")
            && body.contains("ids2_eve_events_total{event_type=\"alert\"} 1")
            && body.contains("ids2_suricata_capture_kernel_drops_total 1")
            && body.contains("ids2_last_apply_success 1")
            && body.contains("ids2_notifications_sent_total{channel=\"webhook\"} 1")
            && body.contains("ids2_block_decisions_total 1")
            && body.contains("ids2_blocked_addresses 1")
    });
    let request = hook_requests
        .recv_timeout(Duration::from_secs(5))
        .expect("the webhook got the alert");
    assert!(request.starts_with("POST /hook "), "{request}");
    assert!(request.contains("ids2 daemon test"), "{request}");
    let feed: std::net::SocketAddr = agent
        .stderr
        .try_iter()
        .find_map(|l| {
            Some(
                l.split("block feed up addr=")
                    .nth(1)?
                    .trim()
                    .parse()
                    .unwrap(),
            )
        })
        .expect("the agent logged the block feed address");
    let list = http_get(feed, "/blocklist.txt");
    assert!(list.contains("203.0.113.9"), "{list}");

    let (head, body) = scrape(addr);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), body.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n--- served:\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGTERM).unwrap();
    agent.child.wait().unwrap();
}

/// Waits for a log line containing `needle`, keeping what was read in `seen`.
fn wait_log(agent: &Agent, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = agent
            .stderr
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line with {needle:?}; saw {seen:#?}"));
        let hit = line.contains(needle);
        seen.push(line);
        if hit {
            return;
        }
    }
}

fn generations(root: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(root.join("rendered/generations"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn git(root: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(root.join("history.git"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn lines_with(events: &Path, prefix: &str) -> usize {
    std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .count()
}

/// SIGHUP after a change to suricata.yaml's inputs: a new generation, one git commit, Suricata
/// restarted. An invalid config and one that cannot be rendered: nothing changes. A change
/// noticed by the file watcher that only touches vector.toml: Vector reloaded, Suricata not.
#[test]
fn reload_applies_a_new_generation_and_restarts_only_what_changed() {
    if which("git").is_none() {
        eprintln!("SKIP: needs the git CLI to verify the history; CI installs it");
        return;
    }
    let mut agent = start_agent();
    let root = agent._dir.path().to_path_buf();
    let (config, events) = (root.join("config.yaml"), agent.events.clone());
    let mut seen = Vec::new();
    wait_log(&agent, "ids2-agent running", &mut seen);
    assert_eq!(generations(&root), [1]);
    assert_eq!(git(&root, &["rev-list", "--count", "dev"]), "1");
    assert_eq!(
        git(&root, &["log", "-1", "--format=%s", "dev"]),
        "apply generation 1 on test-agent"
    );
    wait_until("Suricata started", Duration::from_secs(10), || {
        pids_of(&events, "suricata").len() == 1 && pids_of(&events, "vector").len() == 1
    });
    let first_suricata = pids_of(&events, "suricata")[0];
    let hup = || kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGHUP).unwrap();

    // suricata.yaml changes: new generation, commit, restart.
    let bigger = config_text(&root, "suricata: {memory_mb: 384}\n");
    std::fs::write(&config, &bigger).unwrap();
    hup();
    wait_until("Suricata restarted", Duration::from_secs(20), || {
        pids_of(&events, "suricata").len() == 2
    });
    assert!(!alive(first_suricata), "the old Suricata still runs");
    assert_eq!(generations(&root), [1, 2]);
    assert_eq!(
        std::fs::read_link(root.join("rendered/current")).unwrap(),
        Path::new("generations/2")
    );
    assert_eq!(git(&root, &["rev-list", "--count", "dev"]), "2");
    assert_eq!(
        git(&root, &["log", "-1", "--format=%s", "dev"]),
        "apply generation 2 on test-agent"
    );
    assert!(git(&root, &["show", "dev:suricata.yaml"]).contains("memory_mb = 384"));
    assert_eq!(
        lines_with(&events, "vector start"),
        1,
        "Vector was restarted"
    );
    assert_eq!(lines_with(&events, "vector hup"), 0, "Vector was reloaded");

    // Invalid: rejected by validation, nothing touched.
    std::fs::write(&config, bigger.replace("sample_secs: 1", "sample_secs: 0")).unwrap();
    hup();
    wait_log(&agent, "config rejected, nothing changed", &mut seen);
    wait_log(&agent, "resources.sample_secs", &mut seen);
    assert!(scrape(agent.metrics)
        .1
        .contains("ids2_last_apply_success 0"));
    // Valid but not renderable (no endpoint for Vector): the apply fails, nothing touched.
    std::fs::write(
        &config,
        bigger.replace(", endpoint: 'https://opensearch.invalid'", ""),
    )
    .unwrap();
    hup();
    wait_log(&agent, "opensearch.endpoint is not set", &mut seen);
    assert!(scrape(agent.metrics)
        .1
        .contains("ids2_last_apply_success 0"));
    assert_eq!(generations(&root), [1, 2]);
    assert_eq!(git(&root, &["rev-list", "--count", "dev"]), "2");
    assert_eq!(pids_of(&events, "suricata").len(), 2);

    // Only the ECS program in vector.toml changes (the sensor name), noticed without a signal.
    let renamed = bigger.replace("{id: test-agent}", "{id: test-agent, name: renamed}");
    std::fs::write(&config, &renamed).unwrap();
    wait_until("Vector reloaded", Duration::from_secs(20), || {
        lines_with(&events, "vector hup") == 1
    });
    assert_eq!(generations(&root), [1, 2, 3]);
    assert_eq!(git(&root, &["rev-list", "--count", "dev"]), "3");
    assert!(git(&root, &["show", "dev:vector.toml"]).contains("renamed"));
    assert_eq!(
        pids_of(&events, "suricata").len(),
        2,
        "Suricata was restarted"
    );
    assert_eq!(
        lines_with(&events, "suricata usr2"),
        0,
        "the rules did not change"
    );
    assert!(scrape(agent.metrics)
        .1
        .contains("ids2_last_apply_success 1"));

    kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(agent.child.wait().unwrap().success());
}

/// The command lines of the agent's child processes.
fn children_cmdlines(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace() {
            if let Ok(cmd) = std::fs::read(format!("/proc/{child}/cmdline")) {
                out.push(String::from_utf8_lossy(&cmd).replace('\0', " "));
            }
        }
    }
    out
}

/// READY reaches systemd's socket only once the first apply made a generation and Suricata
/// and Vector run on it. A config that cannot be applied stops a first start (nothing to run)
/// but not a later one, which runs the last good generation and reports the failed apply.
#[test]
fn ready_follows_the_first_apply_and_the_pipeline_start() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let root = dir.path().to_path_buf();

    // Cannot apply and nothing applied before: the agent exits 2 (bad input) without READY.
    std::fs::write(
        root.join("config.yaml"),
        config_text(&root, "").replace(", endpoint: 'https://opensearch.invalid'", ""),
    )
    .unwrap();
    let mut agent = start_agent_in(dir, "", Some(&socket));
    let status = agent.child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{status:?}");
    let logs: Vec<String> = agent.stderr.iter().collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("the first apply failed and no generation is active")),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("opensearch.endpoint is not set")),
        "{logs:#?}"
    );
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    assert!(
        sock.recv(&mut buf).is_err(),
        "READY sent by an agent that could not start"
    );
    sock.set_nonblocking(false).unwrap();
    assert!(generations(&root).is_empty());

    // A good config: READY once generation 1 is current and both children run.
    std::fs::write(root.join("config.yaml"), config_text(&root, "")).unwrap();
    let dir = agent._dir;
    agent = start_agent_in(dir, "", Some(&socket));
    let n = sock.recv(&mut buf).expect("READY within 20 s");
    assert_eq!(&buf[..n], b"READY=1\n");
    assert_eq!(generations(&root), [1]);
    let children = children_cmdlines(agent.child.id());
    assert!(
        children.iter().any(|c| c.contains("bin/suricata -c"))
            && children.iter().any(|c| c.contains("bin/vector --config")),
        "{children:#?}"
    );
    kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(agent.child.wait().unwrap().success());
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1\n");

    // The config breaks while the agent is down: it starts on generation 1 and says so.
    std::fs::write(
        root.join("config.yaml"),
        config_text(&root, "").replace(", endpoint: 'https://opensearch.invalid'", ""),
    )
    .unwrap();
    let dir = agent._dir;
    agent = start_agent_in(dir, "", Some(&socket));
    let n = sock
        .recv(&mut buf)
        .expect("READY on the last good generation");
    assert_eq!(&buf[..n], b"READY=1\n");
    assert_eq!(generations(&root), [1]);
    let body = scrape(agent.metrics).1;
    assert!(body.contains("ids2_last_apply_success 0"), "{body}");
    let mut seen = Vec::new();
    wait_log(&agent, "starting on the last good generation", &mut seen);
    kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(agent.child.wait().unwrap().success());
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::File::options().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}
