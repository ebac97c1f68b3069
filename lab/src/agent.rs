//! The sensor of the lab is the real daemon: `ids2-agent run --backend process --config FILE`
//! started inside the sensor namespace with `ip netns exec` (which execs it, so the child's pid
//! is the agent's). The agent renders, checks with `suricata -T`, starts Suricata on `eth0`
//! through its process backend, reads EVE with its one reader (which feeds the ECS archive)
//! and serves `/metrics` on the namespace's loopback.
//!
//! A relay thread forwards the `--metrics-listen` address on the host to that endpoint, so the
//! host (an operator's browser, the lab's own scrapes) reads what a Prometheus would; another
//! ([`Relay::out_of`]) carries the sensor's shipping from its loopback to a server on the host's. Dropping
//! [`AgentProcess`] sends the agent SIGTERM — its ordered shutdown stops Suricata — and
//! SIGKILLs it if it has not exited in time; Suricata carries a parent-death signal, so it
//! never outlives the agent.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown as SockShutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::netns::{Lan, IFACE};
use super::LabError;

/// Where the agent's `/metrics` listens inside the sensor namespace. The namespace is the
/// lab's own and fresh, so no other server can hold the port.
pub const AGENT_METRICS: &str = "127.0.0.1:9100";
/// How long the agent may take to apply its config (`suricata -T` loads the rules) and bring
/// Suricata's engine up.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the agent's ordered shutdown may take (it bounds itself to 10 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the relay checks for its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// What the agent's `/metrics` reported.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scraped {
    /// `ids2_eve_events_total{event_type="alert"}` (0 when no alert was read).
    pub alerts: u64,
    /// `ids2_eve_events_total{event_type="stats"}`.
    pub stats_events: u64,
    /// `ids2_suricata_capture_packets_total`, absent until a `stats` event was read.
    pub capture_packets: Option<u64>,
    /// `ids2_suricata_capture_kernel_drops_total`, absent until a `stats` event was read.
    pub capture_drops: Option<u64>,
    /// `ids2_archive_documents_total`: ECS documents the agent appended to the archive.
    pub archive_documents: u64,
    /// `ids2_behaviour_alerts_total`: alerts of the agent's behavioural detector (archived
    /// beside Suricata's).
    pub behaviour_alerts: u64,
}

/// Runs `agent intel update --config config`: reads, checks (`suricata -T`) and installs the
/// config's feeds and loads them into the running Suricata; its report.
pub fn intel_update(agent: &Path, config: &Path) -> Result<String, LabError> {
    super::command_output(
        Command::new(agent)
            .args(["intel", "update", "--config"])
            .arg(config)
            .stdin(Stdio::null()),
    )
}

/// The agent running in the sensor namespace; dropping it stops it.
pub struct AgentProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl AgentProcess {
    /// Starts `agent run --backend process --config config` in namespace `ns`, its output in
    /// `log`, and waits until Suricata's engine runs and the metrics answer at `metrics_url`.
    /// `env` is added to the agent's environment, which its children (Suricata, Vector) inherit.
    pub fn start(
        agent: &Path,
        ns: &str,
        config: &Path,
        log: &Path,
        metrics_url: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<Self, LabError> {
        let out = File::create(log).map_err(|source| LabError::Io {
            action: "create",
            path: log.to_path_buf(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| LabError::Io {
            action: "open",
            path: log.to_path_buf(),
            source,
        })?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(agent)
            .args(["run", "--backend", "process", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Ctrl-C reaches the lab only; the lab then stops the agent in order.
            .process_group(0);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.envs(env.iter().copied());
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                // If the lab dies without its guards running, the agent still stops in order.
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            program: format!("ip netns exec {ns} {}", agent.display()),
            source,
        })?;
        let mut process = Self {
            child: Some(child),
            log: log.to_path_buf(),
        };
        process.wait_started(metrics_url)?;
        Ok(process)
    }

    fn wait_started(&mut self, metrics_url: &str) -> Result<(), LabError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            // Suricata's console log reaches the agent's output through the process backend.
            if text.contains("Engine started") && scrape(metrics_url).is_ok() {
                return Ok(());
            }
            if super::stopped() {
                return Err(LabError::Interrupted);
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                return Err(LabError::AgentStart {
                    reason: match exited {
                        Some(status) => format!("the agent exited ({status})"),
                        None => format!(
                            "Suricata's engine was not running within {}s",
                            START_TIMEOUT.as_secs()
                        ),
                    },
                    output: tail(&text, 15),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The agent's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The pid of the Suricata the agent runs, if any.
    pub fn suricata_pid(&self) -> Option<u32> {
        child_named(self.pid()?, "suricata")
    }

    /// Stops the agent (SIGTERM: its ordered shutdown) and returns the capture totals
    /// Suricata printed on exit (`device: eth0: packets: N, drops: D …`): exact, unlike the
    /// periodic stats, which trail af-packet's kernel counters. `None` when Suricata was
    /// killed before it could print them.
    pub fn stop(mut self) -> Option<(u64, u64)> {
        self.terminate();
        let text = std::fs::read_to_string(&self.log).ok()?;
        text.lines().rev().find_map(exit_totals)
    }

    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "warning: the lab's agent did not stop within {}s; killing it",
            STOP_TIMEOUT.as_secs()
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().rev().take(n).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// The first child of `parent` whose command name starts with `name` (from `/proc`).
fn child_named(parent: u32, name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let (_, rest) = stat.rsplit_once(") ")?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let program = cmdline.split(|&b| b == 0).next()?;
        let base = Path::new(std::str::from_utf8(program).ok()?).file_name()?;
        (ppid == parent && base.to_str()?.starts_with(name)).then_some(pid)
    })
}

/// Parses `… device: eth0: packets: 2495, drops: 0 (0.00%), invalid chksum: 0`.
fn exit_totals(line: &str) -> Option<(u64, u64)> {
    let rest = line.split(&format!("{IFACE}: packets: ")).nth(1)?;
    let (packets, rest) = rest.split_once(", drops: ")?;
    let drops = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    Some((packets.trim().parse().ok()?, drops.parse().ok()?))
}

/// Forwards connections between the host and the sensor namespace: a host address to the
/// agent's endpoint inside ([`Relay::start`]), or an address inside to a host server
/// ([`Relay::out_of`]).
pub struct Relay {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    url: String,
}

impl Relay {
    /// Binds `listen` on the host. Called before any namespace exists, so a taken address
    /// changes nothing.
    pub fn bind(listen: SocketAddr) -> Result<TcpListener, LabError> {
        TcpListener::bind(listen).map_err(LabError::MetricsListen)
    }

    /// Serves `listener`, connecting to [`AGENT_METRICS`] from inside namespace `ns`.
    pub fn start(listener: TcpListener, ns: &str) -> Result<Self, LabError> {
        let addr = listener
            .local_addr()
            .map_err(|e| LabError::Service("read the relay's address", e))?;
        let upstream = AGENT_METRICS.parse().expect("a valid socket address");
        let mut relay = Self::spawn(listener, upstream, Some(ns.to_string()))?;
        relay.url = format!("http://{addr}/metrics");
        Ok(relay)
    }

    /// Listens on `inside` in namespace `ns` and connects each client to `upstream` on the
    /// host: a socket belongs to the namespace it was made in, so a thread that entered `ns`
    /// makes the listener and this one, still on the host, serves it.
    pub fn out_of(ns: &str, inside: SocketAddr, upstream: SocketAddr) -> Result<Self, LabError> {
        let ns_owned = ns.to_string();
        let listener = std::thread::spawn(move || -> Result<TcpListener, LabError> {
            Lan::enter(&ns_owned)?;
            TcpListener::bind(inside)
                .map_err(|e| LabError::Service("listen inside the sensor namespace", e))
        })
        .join()
        .map_err(|_| LabError::Metrics("the relay's listener thread panicked".into()))??;
        Self::spawn(listener, upstream, None)
    }

    /// Serves `listener` on a thread that first enters `enter`, if given, so that its
    /// connections to `upstream` are made there.
    fn spawn(
        listener: TcpListener,
        upstream: SocketAddr,
        enter: Option<String>,
    ) -> Result<Self, LabError> {
        listener
            .set_nonblocking(true)
            .map_err(|e| LabError::Service("set up a relay", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lab-relay".into())
            .spawn(move || {
                let entered = enter.as_deref().map_or(Ok(()), Lan::enter);
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if ok {
                    relay(&listener, upstream, &flag);
                }
            })
            .map_err(|e| LabError::Service("start a relay", e))?;
        ready_rx
            .recv()
            .map_err(|_| LabError::Metrics("a relay stopped".into()))??;
        Ok(Self {
            stop,
            thread: Some(thread),
            url: format!("http://{upstream}"),
        })
    }

    /// The host URL of the agent's metrics ([`Relay::start`]), or the upstream's
    /// ([`Relay::out_of`]).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn relay(listener: &TcpListener, upstream: SocketAddr, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(_) => continue,
        };
        // Made in the namespace this thread is in.
        let Ok(server) = TcpStream::connect_timeout(&upstream, SCRAPE_TIMEOUT) else {
            continue;
        };
        let _ = client.set_nonblocking(false);
        let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        // Each direction ends when its reader sees EOF (the agent closes or exits).
        for (mut from, mut to) in [(client, server), (server2, client2)] {
            let _ = std::thread::Builder::new()
                .name("lab-relay-pipe".into())
                .spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(SockShutdown::Write);
                });
        }
    }
}

/// Scrapes `url` (`http://host:port/path`) over HTTP/1.1 and parses the samples.
pub fn scrape(url: &str) -> Result<Scraped, LabError> {
    let fail = |e: String| LabError::Metrics(format!("cannot scrape {url}: {e}"));
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| fail("not an http:// URL".into()))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr: SocketAddr = authority.parse().map_err(|e| fail(format!("{e}")))?;
    let mut sock =
        TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT).map_err(|e| fail(e.to_string()))?;
    sock.set_read_timeout(Some(SCRAPE_TIMEOUT))
        .map_err(|e| fail(e.to_string()))?;
    write!(
        sock,
        "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut response = String::new();
    sock.read_to_string(&mut response)
        .map_err(|e| fail(e.to_string()))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("no HTTP response".into()))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(fail(head.lines().next().unwrap_or("").to_string()));
    }
    let samples = parse_samples(body);
    let get = |series: &str| samples.get(series).map(|v| *v as u64);
    Ok(Scraped {
        alerts: get(r#"ids2_eve_events_total{event_type="alert"}"#).unwrap_or(0),
        stats_events: get(r#"ids2_eve_events_total{event_type="stats"}"#).unwrap_or(0),
        capture_packets: get("ids2_suricata_capture_packets_total"),
        capture_drops: get("ids2_suricata_capture_kernel_drops_total"),
        archive_documents: get("ids2_archive_documents_total").unwrap_or(0),
        behaviour_alerts: get(ids2_agent::behaviour::daemon::METRIC_ALERTS).unwrap_or(0),
    })
}

/// Series (name with its label set, as written) → value, from text format 0.0.4.
fn parse_samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ids2_agent::metrics::{self, Metrics};

    #[test]
    fn exit_totals_parse() {
        let line = "i: device: eth0: packets: 2495, drops: 7 (0.28%), invalid chksum: 0";
        assert_eq!(exit_totals(line), Some((2495, 7)));
        assert_eq!(
            exit_totals("i: suricata: Signal Received.  Stopping engine."),
            None
        );
    }

    #[test]
    fn parses_samples_by_series() {
        let text = "# HELP ids2_eve_events_total x\n# TYPE ids2_eve_events_total counter\n\
                    ids2_eve_events_total{event_type=\"alert\"} 7\n\
                    ids2_eve_events_total{event_type=\"stats\"} 2\n\
                    ids2_suricata_capture_packets_total 1234\n";
        let s = parse_samples(text);
        assert_eq!(s[r#"ids2_eve_events_total{event_type="alert"}"#], 7.0);
        assert_eq!(s["ids2_suricata_capture_packets_total"], 1234.0);
        assert_eq!(s.len(), 3);
    }

    /// The daemon's real endpoint, scraped over HTTP by the lab's scraper.
    #[test]
    fn scrapes_the_agents_endpoint() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let m = Arc::new(Metrics::new("t"));
        m.eve_events.inc_by(&["alert"], 3.0);
        m.capture_packets.set(&[], 42.0);
        let server = runtime
            .block_on(metrics::serve(
                "127.0.0.1:0".parse().unwrap(),
                ids2_agent::listen::Limits::default(),
                m,
            ))
            .unwrap();
        let url = format!("http://{}/metrics", server.local_addr());
        let serving = std::thread::spawn(move || {
            runtime.block_on(async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                server.shutdown(Duration::from_millis(200)).await;
            })
        });
        let s = scrape(&url).unwrap();
        assert_eq!(s.alerts, 3);
        assert_eq!(s.capture_packets, Some(42));
        assert_eq!(s.stats_events, 0);
        serving.join().unwrap();
        assert!(scrape(&url).is_err(), "nothing listens any more");
    }

    #[test]
    fn finds_a_child_by_program_name() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let me = std::process::id();
        // spawn() returns once the child execs, but the kernel sets the new command line a
        // moment later: under load /proc/<pid>/cmdline can still be empty at first.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut found = child_named(me, "sleep");
        while found.is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            found = child_named(me, "sleep");
        }
        assert_eq!(found, Some(child.id()));
        assert_eq!(child_named(me, "suricata"), None);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
