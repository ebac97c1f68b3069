//! The real `ids2-agent run` binary: SIGTERM stops it and its children, in order, within
//! 10 s; what its live metrics endpoint serves passes `promtool check metrics`.
//!
//! Suricata and Vector are stand-ins here (shell scripts named `suricata` and `vector` put
//! first on PATH) because the point is the agent's process handling, and Vector is not
//! installable on the test machine; `tests/pipeline.rs` restarts the real Suricata.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

struct Agent {
    child: Child,
    metrics: std::net::SocketAddr,
    _dir: tempfile::TempDir,
    events: PathBuf,
    stderr: mpsc::Receiver<String>,
}

/// A stand-in that records its start and its SIGTERM (with a timestamp) and, for Vector,
/// takes a moment to "drain" before exiting.
fn stand_in(bin: &Path, name: &str, events: &Path, drain_ms: u32) {
    let script = format!(
        "#!/bin/sh\n\
         echo \"{name} start $$\" >> {ev}\n\
         trap 'echo \"{name} term $(date +%s%N)\" >> {ev}; sleep {drain}; exit 0' TERM\n\
         while :; do sleep 0.05; done\n",
        ev = events.display(),
        drain = f64::from(drain_ms) / 1000.0,
    );
    let path = bin.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn start_agent() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bin = root.join("bin");
    for d in ["bin", "logs", "rendered", "vector"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let events = root.join("events.log");
    stand_in(&bin, "suricata", &events, 0);
    stand_in(&bin, "vector", &events, 300);
    let config = root.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "sensor: {{id: test-agent}}\n\
             opensearch: {{domain: ids2, region: eu-west-1}}\n\
             logs: {{path: {r}/logs}}\n\
             paths: {{rendered_dir: {r}/rendered, vector_data_dir: {r}/vector}}\n\
             metrics: {{listen: '127.0.0.1:0'}}\n\
             resources: {{sample_secs: 1}}\n\
             connectivity: {{dns_names: [ids2-test.invalid], interval_secs: 5, timeout_secs: 1}}\n",
            r = root.display()
        ),
    )
    .unwrap();
    // An empty EVE file: the agent starts reading at its end, so what a test appends is read.
    std::fs::write(root.join("logs/eve.json"), "").unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_ids2-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .env("PATH", path)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("agent: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("agent did not report its metrics address within 20 s");
        if let Some(addr) = line.split("addr=").nth(1) {
            break addr.trim().parse().unwrap();
        }
    };
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

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn scrape(addr: std::net::SocketAddr) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
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

#[test]
fn live_endpoint_passes_promtool() {
    let Some(promtool) = which("promtool") else {
        eprintln!("SKIP live_endpoint_passes_promtool: needs promtool (Debian package prometheus; .ci/install-deps installs it)");
        return;
    };
    let mut agent = start_agent();
    // Let every task report at least once: resources sample each second, connectivity the
    // .invalid name, EVE the lines written below.
    let logs = agent._dir.path().join("logs/eve.json");
    // The agent may not have opened the file yet; appending after a pause keeps the lines
    // after its starting offset either way.
    std::thread::sleep(Duration::from_millis(1500));
    append(
        &logs,
        "{\"event_type\":\"alert\"}\n{\"event_type\":\"stats\",\"stats\":{\"capture\":{\"kernel_packets\":5,\"kernel_drops\":1}}}\n",
    );
    let addr = agent.metrics;
    let mut body = String::new();
    wait_until("all families populated", Duration::from_secs(15), || {
        body = scrape(addr).1;
        body.contains("ids2_host_cpu_ratio ")
            && body.contains("ids2_connectivity_up{check=\"dns\",target=\"ids2-test.invalid\"} 0")
            && body.contains("ids2_eve_events_total{event_type=\"alert\"} 1")
            && body.contains("ids2_suricata_capture_kernel_drops_total 1")
    });
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

#[test]
fn sighup_and_a_changed_file_revalidate_the_config() {
    let mut agent = start_agent();
    let config = agent._dir.path().join("config.yaml");
    let good = std::fs::read_to_string(&config).unwrap();
    let mut seen = Vec::new();
    let wait_log = |needle: &str, seen: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(15);
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
    };
    wait_log("ids2-agent running", &mut seen);

    // An invalid config, announced by SIGHUP: rejected, recorded as a failed apply.
    std::fs::write(&config, good.replace("sample_secs: 1", "sample_secs: 0")).unwrap();
    kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGHUP).unwrap();
    wait_log("config rejected, nothing changed", &mut seen);
    // The error lists the bad key on the lines that follow.
    wait_log("resources.sample_secs", &mut seen);
    let body = scrape(agent.metrics).1;
    assert!(body.contains("ids2_last_apply_success 0"), "{body}");

    // A valid, different config, noticed by the file watcher without a signal. (Restoring
    // the original bytes would rightly be no change: the watcher compares content hashes.)
    let renamed = good.replace("{id: test-agent}", "{id: test-agent, name: renamed}");
    assert_ne!(renamed, good);
    std::fs::write(&config, &renamed).unwrap();
    wait_log("config file changed", &mut seen);
    wait_log("config is valid; no renderer is wired", &mut seen);

    kill(Pid::from_raw(agent.child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(agent.child.wait().unwrap().success());
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::File::options().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}
