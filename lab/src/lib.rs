//! ids2-lab: the whole sensor on a virtual LAN, attacked by the adversary emulator, to prove
//! detection on any Linux box (`ids2-lab run`), and the emulator on its own
//! (`ids2-lab emulate`, [`emulate`]).
//!
//! This crate is for developers' and evaluators' machines, never the sensor: the NixOS image
//! does not contain it, and `ids2-agent` must never depend on it (the agent's tests assert
//! its subcommands, `tests/check-portable.sh` its dependency tree). It uses the agent's
//! library (config, Suricata, the EVE tailer) and runs the agent's binary as the sensor.
//!
//! Namespaces `att` (attacker), `vic` (victim with HTTP, HTTPS, DNS, FTP-style and SSH-like
//! services) and `sen` (sensor) hang off a bridge in `lan`; the sensor's `eth0` receives a
//! mirror of the LAN. The sensor is the product's daemon: the lab writes a `config.yaml`
//! (capture on `eth0`, cores fitted to this machine, the ECS archive on) and runs
//! `ids2-agent run --backend process` in the sensor namespace ([`agent`]), which renders,
//! checks with `suricata -T`, starts Suricata, archives each alert as an ECS document from its
//! one EVE reader and, when the real Vector and the OpenSearch-API emulator are both here,
//! ships every EVE event through Vector to the emulator ([`shipping`]). The lab sends a benign
//! baseline (HTTP, DNS, TLS) and then each scenario, and builds a row per scenario (expected
//! rule, detected, latency, what was sent, kernel drops) from the agent's archive and
//! `/metrics`. Everything is torn down (Drop guards: the agent gets SIGTERM and stops in
//! order) after `--duration` or on Ctrl-C/SIGTERM.

pub mod agent;
mod archive;
pub mod emulate;
pub mod eval;
pub mod netns;
pub mod osmem;
pub mod ship;
pub mod shipping;
mod victim;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use ids2_agent::config::{self, Settings};
use ids2_agent::suricata::{Suricata, SuricataError};

use crate::emulate::{packets, EmulateError, Scenario, Sent, TargetPolicy};

pub use agent::{Scraped, AGENT_METRICS};
pub use netns::{exists as namespace_exists, ATTACKER_IP, C2_IP, VICTIM_IP};

/// The C2 domain on the lab's domain feed ([`intel_feeds`]).
pub const C2_DOMAIN: &str = "update.c2-feed.lab";

/// One of the lab's threat-intel feeds: its name, `intel.feeds[].kind` and indicators.
pub struct LabFeed {
    /// `intel.feeds[].name`, as alerts carry it in `threat.feed.name`.
    pub name: &'static str,
    /// `intel.feeds[].kind`.
    pub kind: &'static str,
    /// The feed's lines.
    pub indicators: Vec<String>,
}

/// The lab's feeds: the C2 address the victim also answers at ([`C2_IP`]), the C2 domain
/// ([`C2_DOMAIN`]) and the JA3 of the emulator's TLS hello (T1573.002), with and without an
/// SNI. The benign baseline reaches none of them; the default scenarios reach each.
pub fn intel_feeds() -> Vec<LabFeed> {
    vec![
        LabFeed {
            name: "lab-c2-ip",
            kind: "ip",
            indicators: vec![C2_IP.to_string()],
        },
        LabFeed {
            name: "lab-c2-domain",
            kind: "domain",
            indicators: vec![C2_DOMAIN.to_string()],
        },
        LabFeed {
            name: "lab-ja3",
            kind: "ja3",
            indicators: vec![emulate::tls::ja3_hash(true), emulate::tls::ja3_hash(false)],
        },
    ]
}

/// Where [`lab_config`] points each lab feed's `file://` source.
fn feed_path(work: &Path, feed: &LabFeed) -> PathBuf {
    work.join("feeds").join(format!("{}.txt", feed.name))
}

/// Environment variable naming the `ids2-agent` binary the lab runs (`--agent`).
pub const AGENT_ENV: &str = "IDS2_AGENT";
/// The scenarios the lab runs unless `--scenarios` names others (`templates/scenarios/`).
pub const DEFAULT_SCENARIOS: &str = include_str!("../../templates/scenarios/default.json");
/// The ids2 sid range (`templates/rules/ids2.rules`).
pub const IDS2_SIDS: std::ops::RangeInclusive<u32> = 9_200_000..=9_299_999;
/// How long a scenario's expected alert may take, from the scenario's start, unless the entry
/// sets its own `detect_within_secs` (a slow scan sends for longer than this).
pub const DETECTION_WINDOW: Duration = Duration::from_secs(emulate::DEFAULT_DETECT_WITHIN_SECS);
/// Quiet time after the baseline so its alerts, if any, are in before scenarios start.
const SETTLE: Duration = Duration::from_millis(2_500);
/// How often the archive is read.
const POLL: Duration = Duration::from_millis(50);
/// How long the lab waits for the agent's metrics to agree with its archive at the end.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the lab could not run.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Namespaces and raw sockets need root.
    #[error("the lab needs root (network namespaces, raw sockets): run it as root, or as a user who can sudo")]
    NotRoot,
    /// The agent binary the lab runs as its sensor was not found.
    #[error(
        "cannot find ids2-agent, which the lab runs as its sensor: build it beside ids2-lab \
             (`cargo build -p ids2-agent -p ids2-lab`), put it on PATH, or set {AGENT_ENV}"
    )]
    NoAgent,
    /// A scenario brute-forces SSH and Debian's sshd is not installed.
    #[error(
        "scenario {index} brute-forces SSH, which needs Debian's OpenSSH server ({sshd}) and \
         client in the lab: install openssh-server (.ci/install-deps does), or leave the \
         scenario out with --scenarios"
    )]
    NoSshd {
        /// 0-based index of the scenario.
        index: usize,
        /// Where sshd was looked for.
        sshd: &'static str,
    },
    /// Suricata is not installed.
    #[error(
        "suricata is not installed (install it, e.g. with .ci/install-deps, or set IDS2_SURICATA)"
    )]
    NoSuricata,
    /// The scenario file is invalid.
    #[error("invalid scenarios")]
    Scenarios(#[from] EmulateError),
    /// The generated sensor config did not validate (a bug: the lab writes it).
    #[error("the lab's sensor config is invalid")]
    Config(#[from] config::ConfigError),
    /// Suricata could not be located.
    #[error("cannot locate suricata")]
    Locate(#[from] SuricataError),
    /// The agent did not bring the sensor up.
    #[error("the agent did not bring Suricata up on the sensor's eth0: {reason}; its last output:\n{output}")]
    AgentStart {
        /// Exit or timeout.
        reason: String,
        /// The last lines of its output (the agent's log and Suricata's console).
        output: String,
    },
    /// A helper program could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A helper command failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr.
        stderr: String,
    },
    /// Entering a namespace failed.
    #[error("cannot enter network namespace {ns}")]
    Setns {
        /// The namespace.
        ns: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A lab service failed.
    #[error("lab service: cannot {0}")]
    Service(&'static str, #[source] std::io::Error),
    /// The TLS identity or config failed.
    #[error("lab TLS: {0}")]
    Tls(String),
    /// The agent's archive holds something that is not an ECS document.
    #[error("ECS archive: {0}")]
    Archive(String),
    /// The sensor's evidence store could not be read after the run.
    #[error("cannot read the sensor's evidence store after the run")]
    Evidence(#[source] ids2_agent::evidence::store::StoreError),
    /// The host side of the agent's metrics endpoint could not listen.
    #[error("cannot serve the agent's metrics during the lab (pass --metrics-listen with a free address:port)")]
    MetricsListen(#[source] std::io::Error),
    /// The agent's metrics endpoint could not be read.
    #[error("agent metrics: {0}")]
    Metrics(String),
    /// Ctrl-C/SIGTERM arrived before the sensor was up.
    #[error("interrupted while the agent was starting; nothing is left running")]
    Interrupted,
    /// The attacker thread ended unexpectedly.
    #[error("the attacker thread stopped")]
    Attacker,
    /// An evaluation set's manifest is unusable.
    #[error("{}{}: {reason}", path.display(), if *line > 0 { format!(" line {line}") } else { String::new() })]
    Manifest {
        /// The manifest (or the set's directory).
        path: PathBuf,
        /// The line at fault (0: the file as a whole).
        line: usize,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The sensor's files could not be rendered.
    #[error("cannot render the sensor's config")]
    Render(#[from] ids2_agent::render::RenderError),
}

impl LabError {
    /// True when the operator's input is at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        match self {
            LabError::Scenarios(e) => e.is_bad_input(),
            LabError::Manifest { .. } => true,
            _ => false,
        }
    }
}

/// Lab options (`ids2-lab run`).
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Total run time; the lab stops earlier on Ctrl-C, and never before its scenarios finish.
    pub duration: Duration,
    /// A scenario file; `None` runs [`DEFAULT_SCENARIOS`].
    pub scenarios: Option<PathBuf>,
    /// Where the ECS archive goes (truncated first); `None` puts it in the system temp dir.
    pub archive: Option<PathBuf>,
    /// Print the table while running.
    pub print: bool,
    /// Where the agent's `/metrics` endpoint is reachable from the host (port 0: any free
    /// port).
    pub metrics_listen: SocketAddr,
    /// The `ids2-agent` executable run as the sensor ([`locate_agent`] finds the one installed
    /// beside `ids2-lab`).
    pub agent: PathBuf,
}

/// The `ids2-agent` the lab runs as its sensor: `explicit` (`--agent`, `$IDS2_AGENT`) when
/// given, else the one beside this executable (cargo's target directory, a package's `bin/`),
/// else the first on PATH. The lab runs the product's daemon, never a copy of it built here.
pub fn locate_agent(explicit: Option<PathBuf>) -> Result<PathBuf, LabError> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let name = format!("ids2-agent{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(&name))
        .filter(|p| p.is_file());
    beside
        .or_else(|| ids2_agent::files::find_program(&name))
        .ok_or(LabError::NoAgent)
}

/// One ids2 alert as the lab saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Rule sid.
    pub sid: u32,
    /// Rule msg.
    pub signature: String,
    /// When the lab read its document in the archive.
    pub seen: Instant,
    /// The ECS document's `event.id`.
    pub ecs_id: Option<String>,
}

/// A scenario's outcome.
#[derive(Debug, Clone)]
pub struct Row {
    /// Technique id.
    pub technique_id: String,
    /// Scenario name.
    pub name: String,
    /// The expected rule.
    pub expect: emulate::Expect,
    /// What was sent.
    pub sent: Sent,
    /// How long the lab waited for it, from the scenario's start.
    pub window: Duration,
    /// Time from the scenario's start to the expected alert.
    pub latency: Option<Duration>,
    /// Every ids2 sid seen from the scenario's start until the lab stopped waiting for it.
    pub sids: Vec<u32>,
    /// Kernel drops the agent's metrics reported when the row was made.
    pub kernel_drops: u64,
    /// The ECS `event.id` of the alert that detected it.
    pub detected_by: Option<String>,
    /// The packets the sensor kept for that alert's flow (read once the agent had stopped).
    pub evidence: Option<Evidence>,
}

/// A detected scenario's packet evidence, as the sensor's store keeps it.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The flow's pcap.
    pub pcap: PathBuf,
    /// The store's entry: the flow, its first and last packet, packets, the alerts that pinned it.
    pub entry: ids2_agent::evidence::store::Entry,
}

/// What a lab run observed.
#[derive(Debug, Clone)]
pub struct Report {
    /// One row per scenario, in order.
    pub rows: Vec<Row>,
    /// ids2 alerts raised while only benign traffic ran.
    pub baseline_alerts: Vec<Alert>,
    /// Requests/queries/handshakes of the benign baseline that got an answer.
    pub baseline_answered: u32,
    /// Every alert in the archive (ids2 or not).
    pub alerts: Vec<Alert>,
    /// The ECS archive (kept after the lab).
    pub archive: PathBuf,
    /// The sensor's evidence store (kept after the lab, beside the archive).
    pub evidence_dir: PathBuf,
    /// Documents in it once the agent had stopped.
    pub archived: u64,
    /// Documents in it when [`Report::metrics`] was scraped.
    pub archived_at_scrape: u64,
    /// Packets Suricata captured (its exit summary; the agent's last stats as the fallback).
    pub kernel_packets: u64,
    /// Kernel drops (the same sources).
    pub kernel_drops: u64,
    /// True when Ctrl-C/SIGTERM ended the run early.
    pub interrupted: bool,
    /// The namespaces the lab used (all deleted by the time this is returned).
    pub namespaces: Vec<String>,
    /// What answered SSH on the victim: `sshd` (Debian's OpenSSH) or `banner` (not installed).
    pub victim_ssh: &'static str,
    /// The pid the agent ran as (stopped by the time this is returned).
    pub agent_pid: Option<u32>,
    /// The pid the agent's Suricata ran as (stopped by the time this is returned).
    pub suricata_pid: Option<u32>,
    /// The agent's metrics URL on the host (served while the lab ran).
    pub metrics_url: String,
    /// What that endpoint reported at the end of the run, scraped over HTTP once the traffic
    /// had stopped and the agent's counts agreed with its archive.
    pub metrics: agent::Scraped,
    /// What the sensor's Vector delivered to the OpenSearch-API emulator, or why the lab kept
    /// the archive only ([`shipping`]).
    pub shipped: Result<shipping::Shipped, String>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the Ctrl-C/SIGTERM handler and restores the previous ones on drop.
struct SignalGuard {
    previous: Vec<(Signal, SigAction)>,
}

impl SignalGuard {
    fn install() -> Self {
        STOP.store(false, Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        let previous = [Signal::SIGINT, Signal::SIGTERM]
            .into_iter()
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            .filter_map(|s| unsafe { sigaction(s, &action) }.ok().map(|old| (s, old)))
            .collect();
        Self { previous }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: restores the handler that was installed before the lab.
            let _ = unsafe { sigaction(*signal, old) };
        }
    }
}

fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The sensor's config for the lab, as the agent reads it: capture on the sensor namespace's
/// eth0, logs (and the packet ring), rules, socket and rendered files in `work`, the ECS archive
/// at `archive` and the evidence store beside it ([`evidence_dir`]), workers and cores fitted
/// to this machine, and the lab's intel feeds ([`intel_feeds`]) read from `work/feeds`.
pub fn lab_config(work: &Path, archive: &Path, cpus: usize) -> String {
    config_text(work, archive, cpus, None)
}

/// [`lab_config`] with `opensearch`, when given, as its `opensearch:` line.
fn config_text(work: &Path, archive: &Path, cpus: usize, opensearch: Option<&str>) -> String {
    let workers = cpus.clamp(1, 2);
    let cores: Vec<String> = (0..workers).map(|c| c.to_string()).collect();
    let p = |sub: &str| work.join(sub).display().to_string();
    // The lab's hosts share this machine's cores, so the workers are not pinned (exclusive,
    // high priority, they would starve the attacker and the victim); and the throttle, which
    // judges the whole host, samples too rarely to act during a run: it would otherwise shed
    // the sensor's EVE because of the attacker's SYN flood. Rule updates would fetch from the
    // internet and restart Suricata mid-run. The lab loads its feeds once, before the agent
    // starts, so the daemon's schedule is off.
    let feeds: Vec<String> = intel_feeds()
        .iter()
        .map(|f| {
            format!(
                "{{name: {}, source: 'file://{}', format: plain, kind: {}, severity: high}}",
                f.name,
                feed_path(work, f).display(),
                f.kind
            )
        })
        .collect();
    format!(
        "sensor: {{id: lab-{pid}, name: ids2 lab sensor}}\n\
         capture: {{interface: eth0, home_net: [{subnet}], workers: {workers}, cpu_cores: [{cores}], pin_workers: false}}\n\
         logs: {{path: {logs:?}}}\n\
         suricata: {{memory_mb: 256, rules_dir: {rules:?}, socket_path: {socket:?}}}\n\
         resources: {{sample_secs: 300}}\n\
         {opensearch}\n\
         shipping: {{archive: {{mode: always, path: {archive:?}}}}}\n\
         metrics: {{listen: '{metrics}'}}\n\
         history: {{repo: {history:?}}}\n\
         paths: {{rendered_dir: {rendered:?}, vector_data_dir: {vector:?}}}\n\
         fleet: {{rules: {{scheduled: false}}}}\n\
         evidence: {{store_dir: {evidence:?}}}\n\
         intel: {{scheduled: false, dir: {intel:?}, feeds: [{feeds}]}}\n",
        pid = std::process::id(),
        subnet = emulate::LAB_SUBNET,
        cores = cores.join(", "),
        logs = p("logs"),
        rules = p("rules"),
        socket = p("suricata.socket"),
        archive = archive.display().to_string(),
        metrics = AGENT_METRICS,
        history = p("history.git"),
        rendered = p("rendered"),
        vector = p("vector"),
        evidence = evidence_dir(archive).display().to_string(),
        intel = p("intel"),
        feeds = feeds.join(", "),
        opensearch = opensearch.unwrap_or(
            "opensearch: {domain: ids2-lab, region: eu-west-1, endpoint: \
             'https://opensearch.lab.invalid'}"
        ),
    )
}

/// Where the lab's sensor keeps its evidence: beside the archive, named like it with the
/// extension `evidence` (`ids2-lab-PID.ecs.jsonl` → `ids2-lab-PID.ecs.evidence`), so it
/// outlives the run as the archive does.
pub fn evidence_dir(archive: &Path) -> PathBuf {
    archive.with_extension("evidence")
}

/// Empties the evidence store of an earlier run at `dir`, refusing a directory holding anything
/// an evidence store does not (`*.pcap`, `*.json` and the store's `.partial-*` files).
fn clear_evidence(dir: &Path) -> Result<(), LabError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("read", dir)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_error("read", dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ours = path.is_file()
            && (name.ends_with(".pcap")
                || name.ends_with(".json")
                || name.starts_with(".partial-"));
        if !ours {
            return Err(LabError::Io {
                action: "clear the evidence store of an earlier run (it holds other files)",
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!(
                        "{} is not an evidence file; choose another --archive",
                        path.display()
                    ),
                ),
            });
        }
        files.push(path);
    }
    for f in files {
        std::fs::remove_file(&f).map_err(io_error("remove", &f))?;
    }
    Ok(())
}

/// [`lab_config`], parsed and validated as the agent will.
pub fn lab_settings(
    work: &Path,
    archive: &Path,
    cpus: usize,
) -> Result<Settings, config::ConfigError> {
    config::from_str(&lab_config(work, archive, cpus), Path::new("<lab>"))
}

/// Work for the attacker thread.
enum Job {
    Baseline,
    Scenario(usize, Box<Scenario>, IpAddr),
}

enum Done {
    Baseline(u32),
    Scenario(Result<Sent, EmulateError>),
}

/// Runs `cmd` to its end: its standard output, or an error naming the command with its
/// standard error.
fn command_output(cmd: &mut std::process::Command) -> Result<String, LabError> {
    let out = cmd.output().map_err(|source| LabError::Spawn {
        program: format!("{:?}", cmd.get_program()),
        source,
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: format!("{cmd:?}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LabError {
    let path = path.to_path_buf();
    move |source| LabError::Io {
        action,
        path,
        source,
    }
}

/// Runs the lab; see the module doc.
pub fn run(opts: &LabOptions) -> Result<Report, LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    Suricata::locate()?.ok_or(LabError::NoSuricata)?;
    let scenarios = match &opts.scenarios {
        Some(path) => emulate::load(path)?,
        None => emulate::parse(DEFAULT_SCENARIOS, "templates/scenarios/default.json")?,
    };
    let targets = emulate::resolve_targets(
        &scenarios,
        Some(IpAddr::V4(VICTIM_IP)),
        &TargetPolicy::new(&[]),
    )?;
    if let Some(index) = scenarios.iter().position(|s| {
        matches!(&s.technique, emulate::Technique::BruteForce(b) if b.service == emulate::LoginService::Ssh)
    }) {
        if !Path::new(victim::SSHD).is_file() {
            return Err(LabError::NoSshd {
                index,
                sshd: victim::SSHD,
            });
        }
    }

    let work = tempfile::Builder::new()
        .prefix("ids2-lab-")
        .tempdir()
        .map_err(io_error(
            "create a work directory in",
            &std::env::temp_dir(),
        ))?;
    let archive_path = match &opts.archive {
        Some(p) if p.is_relative() => std::env::current_dir()
            .map_err(io_error("resolve", p))?
            .join(p),
        Some(p) => p.clone(),
        None => std::env::temp_dir().join(format!("ids2-lab-{}.ecs.jsonl", std::process::id())),
    };
    // The agent appends; this run's archive and evidence start empty.
    std::fs::File::create(&archive_path).map_err(io_error("create", &archive_path))?;
    clear_evidence(&evidence_dir(&archive_path))?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut shipping = shipping::Shipping::prepare(&opts.agent, work.path());
    let config_text = config_text(
        work.path(),
        &archive_path,
        cpus,
        shipping.as_ref().ok().map(|s| s.opensearch_yaml.as_str()),
    );
    let settings = config::from_str(&config_text, Path::new("<lab>"))?;
    let config_path = work.path().join("config.yaml");
    std::fs::write(&config_path, &config_text).map_err(io_error("write", &config_path))?;
    for dir in ["logs", "rules", "vector", "feeds"] {
        let d = work.path().join(dir);
        std::fs::create_dir_all(&d).map_err(io_error("create", &d))?;
    }
    for feed in intel_feeds() {
        let path = feed_path(work.path(), &feed);
        let text = format!(
            "# ids2 lab feed ({})\n{}\n",
            feed.kind,
            feed.indicators.join("\n")
        );
        std::fs::write(&path, text).map_err(io_error("write", &path))?;
    }

    // Before any namespace exists, so a taken --metrics-listen address changes nothing.
    let listener = agent::Relay::bind(opts.metrics_listen)?;
    let _signals = SignalGuard::install();
    let lan = netns::Lan::create()?;
    let namespaces = vec![
        lan.attacker.clone(),
        lan.victim.clone(),
        lan.sensor.clone(),
        lan.lan.clone(),
    ];
    let relay = agent::Relay::start(listener, &lan.sensor)?;
    let metrics_url = relay.url().to_string();
    if let Ok(s) = &mut shipping {
        s.connect(&lan.sensor)?;
    }
    let identity = victim::Identity::generate()?;
    let victim = victim::Victim::start(&lan.victim, &identity)?;
    let victim_ssh = victim.ssh_server();
    if opts.print {
        println!(
            "victim {VICTIM_IP}: HTTP, HTTPS, DNS, FTP-style login, SSH ({})",
            if victim_ssh == "sshd" {
                "Debian's sshd"
            } else {
                "a banner only: install openssh-server for SSH brute force"
            }
        );
        println!(
            "starting the agent in {} (render, suricata -T, Suricata)",
            lan.sensor
        );
    }
    if opts.print {
        match &shipping {
            Ok(s) => println!(
                "shipping: the agent's Vector to the osmem-server OpenSearch-API emulator at {} \
                 (relayed to {} in the sensor namespace); {}",
                s.url(),
                shipping::SENSOR_ENDPOINT,
                s.templates
            ),
            Err(why) => println!("shipping: the ECS archive only ({why})"),
        }
    }
    let sensor = agent::AgentProcess::start(
        &opts.agent,
        &lan.sensor,
        &config_path,
        &work.path().join("agent.log"),
        &metrics_url,
        &shipping.as_ref().map(|s| s.agent_env()).unwrap_or_default(),
    )?;
    let agent_pid = sensor.pid();
    let suricata_pid = sensor.suricata_pid();
    if opts.print {
        println!("agent metrics: {metrics_url}");
    }
    // The feeds go into the running Suricata (a rule reload), as on a sensor's first update.
    let intel = agent::intel_update(&opts.agent, &config_path)?;
    if opts.print {
        println!("intel feeds: {}", intel.trim_end().replace('\n', "; "));
    }
    let mut watch = Watch {
        archive: archive::ArchiveFollower::new(&archive_path),
        metrics_url: &metrics_url,
        alerts: Vec::new(),
        print: opts.print,
    };
    let attacker = Attacker::start(&lan.attacker, identity.cert_der.clone())?;
    let started = Instant::now();

    // Benign baseline first: any ids2 alert before the first scenario is a false positive.
    attacker.send(Job::Baseline)?;
    let baseline_answered = match watch.until_done(&attacker)? {
        Some(Done::Baseline(n)) => n,
        _ => 0,
    };
    watch.wait(SETTLE)?;
    let baseline_alerts: Vec<Alert> = watch
        .alerts
        .iter()
        .filter(|a| IDS2_SIDS.contains(&a.sid))
        .cloned()
        .collect();
    if opts.print {
        println!(
            "baseline: {baseline_answered} benign HTTP/DNS/TLS exchanges answered, {} ids2 alerts",
            baseline_alerts.len()
        );
        println!(
            "{:<10} {:<36} {:<30} {:<8} {:>9} {:>16} {:>6}",
            "technique", "scenario", "rule", "detected", "latency", "sent", "drops"
        );
    }

    let mut rows = Vec::new();
    for (index, (scenario, target)) in scenarios.iter().zip(&targets).enumerate() {
        if stopped() {
            break;
        }
        let begin = Instant::now();
        attacker.send(Job::Scenario(index, Box::new(scenario.clone()), *target))?;
        let sent = match watch.until_done(&attacker)? {
            Some(Done::Scenario(result)) => result?,
            _ => break,
        };
        let detected = |w: &Watch| {
            w.alerts
                .iter()
                .find(|a| a.seen >= begin && scenario.expect.matches(a.sid, &a.signature))
                .cloned()
        };
        while detected(&watch).is_none() && begin.elapsed() < scenario.detect_within && !stopped() {
            watch.wait(POLL)?;
        }
        let by = detected(&watch);
        let mut sids: Vec<u32> = watch
            .alerts
            .iter()
            .filter(|a| a.seen >= begin && IDS2_SIDS.contains(&a.sid))
            .map(|a| a.sid)
            .collect();
        sids.sort_unstable();
        sids.dedup();
        let row = Row {
            technique_id: scenario.technique_id.clone(),
            name: scenario.technique_name.clone(),
            expect: scenario.expect.clone(),
            sent,
            window: scenario.detect_within,
            latency: by.as_ref().map(|a| a.seen - begin),
            sids,
            kernel_drops: agent::scrape(&metrics_url)?.capture_drops.unwrap_or(0),
            detected_by: by.and_then(|a| a.ecs_id),
            evidence: None,
        };
        if opts.print {
            print_row(&row);
        }
        rows.push(row);
    }

    // Keep the sensor up for the rest of the run (operators may send their own traffic).
    while started.elapsed() < opts.duration && !stopped() {
        watch.wait(Duration::from_millis(200))?;
    }
    drop(attacker);
    let (metrics, archived_at_scrape) = watch.snapshot()?;
    // While Vector still runs: every alert archived so far, indexed too?
    let archived_ids: std::collections::BTreeSet<String> = watch
        .alerts
        .iter()
        .filter_map(|a| a.ecs_id.clone())
        .collect();
    let shipped = match &shipping {
        Ok(s) => Ok(s.delivered(&archived_ids)?),
        Err(why) => Err(why.clone()),
    };
    // The agent's ordered shutdown: its reader drains what Suricata writes while stopping into
    // the archive; Suricata's exit summary has the exact capture totals.
    let totals = sensor.stop();
    if totals.is_none() {
        eprintln!(
            "warning: Suricata's exit totals are not in the agent's log (killed before it printed \
             them?); the capture figures are from its last periodic stats record"
        );
    }
    watch.poll()?;
    // The agent copied every alerted flow still waiting once Suricata had closed its ring.
    let store = ids2_agent::evidence::store_of(&settings);
    for row in &mut rows {
        let Some(id) = &row.detected_by else { continue };
        let lookup = ids2_agent::evidence::store::Lookup::Alert(id.clone());
        row.evidence = store
            .find(&lookup)
            .map_err(LabError::Evidence)?
            .map(|entry| Evidence {
                pcap: store.pcap_path(&entry),
                entry,
            });
    }
    let (kernel_packets, kernel_drops) = totals.unwrap_or((
        metrics.capture_packets.unwrap_or(0),
        metrics.capture_drops.unwrap_or(0),
    ));
    drop(relay);
    let report = Report {
        rows,
        baseline_alerts,
        baseline_answered,
        alerts: watch.alerts.clone(),
        evidence_dir: evidence_dir(&archive_path),
        archive: archive_path,
        archived: watch.archive.documents(),
        archived_at_scrape,
        kernel_packets,
        kernel_drops,
        interrupted: stopped(),
        namespaces,
        victim_ssh,
        agent_pid,
        suricata_pid,
        metrics_url,
        metrics,
        shipped,
    };
    drop(victim);
    drop(lan);
    if opts.print {
        println!(
            "{} of {} scenarios detected; kernel packets {}, kernel drops {}; {} ECS documents in {}; \
             {} alerts counted by the agent's metrics{}",
            report.rows.iter().filter(|r| r.latency.is_some()).count(),
            report.rows.len(),
            report.kernel_packets,
            report.kernel_drops,
            report.archived,
            report.archive.display(),
            report.metrics.alerts + report.metrics.behaviour_alerts,
            if report.interrupted { " (interrupted)" } else { "" }
        );
        match &report.shipped {
            Ok(s) => {
                let total: u64 = s.indices.values().sum();
                let per: Vec<String> = s
                    .indices
                    .iter()
                    .map(|(index, n)| format!("{index} {n}"))
                    .collect();
                println!(
                    "shipped through Vector to the osmem-server emulator at {}: {total} documents \
                     ({}); {} of {} archived alerts indexed",
                    s.url,
                    per.join(", "),
                    s.alerts_indexed,
                    s.alerts_archived
                );
            }
            Err(why) => println!("shipped: nothing, the ECS archive only ({why})"),
        }
        println!(
            "packet evidence per detected scenario (in {}):",
            report.evidence_dir.display()
        );
        for row in report.rows.iter().filter(|r| r.latency.is_some()) {
            match &row.evidence {
                Some(e) => println!(
                    "  {:<10} {:<36} {:>5} packets  {}",
                    row.technique_id,
                    row.name.chars().take(36).collect::<String>(),
                    e.entry.packets,
                    e.pcap.display()
                ),
                None => println!(
                    "  {:<10} {:<36}  none kept (see ids2_evidence_* in the agent's metrics)",
                    row.technique_id,
                    row.name.chars().take(36).collect::<String>()
                ),
            }
        }
    }
    Ok(report)
}

fn print_row(row: &Row) {
    println!(
        "{:<10} {:<36} {:<30} {:<8} {:>9} {:>16} {:>6}",
        row.technique_id,
        row.name.chars().take(36).collect::<String>(),
        // An intel rule's message is long.
        emulate::truncate(&row.expect.to_string(), 30),
        if row.latency.is_some() { "yes" } else { "NO" },
        row.latency
            .map_or("-".into(), |l| format!("{}ms", l.as_millis())),
        format!("{} {}", row.sent.count, row.sent.unit),
        row.kernel_drops
    );
    let _ = std::io::stdout().flush();
}

/// Follows the agent's archive and records its alerts.
struct Watch<'a> {
    archive: archive::ArchiveFollower,
    metrics_url: &'a str,
    alerts: Vec<Alert>,
    print: bool,
}

impl Watch<'_> {
    fn poll(&mut self) -> Result<(), LabError> {
        for alert in self.archive.poll()? {
            if self.print && !IDS2_SIDS.contains(&alert.sid) {
                println!("  (other alert: {} {})", alert.sid, alert.signature);
            }
            self.alerts.push(alert);
        }
        Ok(())
    }

    fn wait(&mut self, d: Duration) -> Result<(), LabError> {
        let until = Instant::now() + d;
        loop {
            self.poll()?;
            if Instant::now() >= until {
                return Ok(());
            }
            std::thread::sleep(POLL.min(until - Instant::now()));
        }
    }

    /// Polls the archive until the attacker finishes its job; `None` if interrupted.
    fn until_done(&mut self, attacker: &Attacker) -> Result<Option<Done>, LabError> {
        loop {
            self.poll()?;
            match attacker.done.recv_timeout(POLL) {
                Ok(done) => return Ok(Some(done)),
                Err(mpsc::RecvTimeoutError::Timeout) if stopped() => return Ok(None),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(LabError::Attacker),
            }
        }
    }

    /// Scrapes the agent's metrics once they agree with the archive: the reader counts a
    /// batch of lines after handing them to the archive, so the two match whenever it is idle.
    /// Returns the scrape and the documents the archive held then.
    fn snapshot(&mut self) -> Result<(Scraped, u64), LabError> {
        let deadline = Instant::now() + SNAPSHOT_TIMEOUT;
        loop {
            let scraped = agent::scrape(self.metrics_url)?;
            self.poll()?;
            let documents = self.archive.documents();
            let agree = scraped.archive_documents == documents
                && scraped.alerts + scraped.behaviour_alerts == documents;
            if agree || Instant::now() > deadline {
                return Ok((scraped, documents));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A thread inside the attacker namespace that runs jobs one at a time.
struct Attacker {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Attacker {
    fn start(ns: &str, victim_cert: Vec<u8>) -> Result<Self, LabError> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let ns = ns.to_string();
        let thread = std::thread::Builder::new()
            .name("lab-attacker".into())
            .spawn(move || {
                let entered = netns::Lan::enter(&ns);
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if !ok {
                    return;
                }
                for job in jobs_rx {
                    let done = match job {
                        Job::Baseline => Done::Baseline(baseline(&victim_cert)),
                        Job::Scenario(index, s, target) => {
                            Done::Scenario(emulate::run(index, &s, target))
                        }
                    };
                    if done_tx.send(done).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| LabError::Service("start the attacker thread", e))?;
        ready_rx.recv().map_err(|_| LabError::Attacker)??;
        Ok(Self {
            jobs: Some(jobs_tx),
            done: done_rx,
            thread: Some(thread),
        })
    }

    fn send(&self, job: Job) -> Result<(), LabError> {
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or(LabError::Attacker)
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        // Closing the job channel ends the thread after its current job (each job is bounded).
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Benign traffic a LAN sees all day: page loads, name lookups, TLS sessions. Returns how many
/// exchanges were answered.
fn baseline(victim_cert: &[u8]) -> u32 {
    let victim = IpAddr::V4(VICTIM_IP);
    let timeout = Duration::from_secs(2);
    let browser = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let mut answered = 0;
    for path in ["/", "/?page=2", "/api/v1/status"] {
        if emulate::http_get(victim, 80, path, &[("User-Agent", browser)], timeout).is_ok() {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Ok(sock) = UdpSocket::bind("0.0.0.0:0") {
        let _ = sock.set_read_timeout(Some(timeout));
        let names = [
            ("www.example.lab", packets::QTYPE_A),
            ("updates.example.lab", packets::QTYPE_A),
            ("_dmarc.example.lab", packets::QTYPE_TXT),
            ("mail.example.lab", packets::QTYPE_A),
        ];
        for (i, (name, qtype)) in names.into_iter().enumerate() {
            let q = packets::dns_query(0x1000 + i as u16, name, qtype);
            let mut buf = [0u8; 512];
            if sock.send_to(&q, SocketAddr::new(victim, 53)).is_ok() && sock.recv(&mut buf).is_ok()
            {
                answered += 1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for _ in 0..3 {
        if tls_get(victim, victim_cert, timeout).is_ok() {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    answered
}

/// A full TLS handshake with the victim (trusting its certificate) and one request.
fn tls_get(victim: IpAddr, cert: &[u8], timeout: Duration) -> std::io::Result<()> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert.to_vec()))
        .map_err(std::io::Error::other)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::IpAddress(victim.into());
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let mut sock = TcpStream::connect_timeout(&SocketAddr::new(victim, 443), timeout)?;
    sock.set_read_timeout(Some(timeout))?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {victim}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // The server closes without close_notify; the response has arrived by then.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    if response.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(std::io::Error::other("unexpected TLS response"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_settings_fit_the_machine_and_render() {
        use ids2_agent::render::{self, RenderOptions};
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.jsonl");
        let one = lab_settings(dir.path(), &archive, 1).unwrap();
        assert_eq!(one.config.capture.workers, 1);
        assert_eq!(one.config.capture.cpu_cores, vec![0]);
        let many = lab_settings(dir.path(), &archive, 8).unwrap();
        assert_eq!(many.config.capture.workers, 2);
        assert_eq!(many.config.capture.cpu_cores, vec![0, 1]);
        assert_eq!(many.config.capture.interface, "eth0");
        assert!(!many.config.fleet.rules.scheduled);
        assert_eq!(
            many.config.shipping.archive.mode,
            config::ArchiveMode::Always
        );
        assert_eq!(
            many.config.shipping.archive.path,
            archive.display().to_string()
        );
        assert_eq!(many.metrics_listen, AGENT_METRICS.parse().unwrap());
        assert!(many
            .home_net
            .iter()
            .any(|n| n.contains(&IpAddr::V4(VICTIM_IP))));
        let set = render::render(&many, &RenderOptions::default()).unwrap();
        let yaml = String::from_utf8(set.get(render::SURICATA_YAML).unwrap().to_vec()).unwrap();
        assert!(yaml.contains(&dir.path().join("logs").display().to_string()));
        assert!(yaml.contains("set-cpu-affinity: no"), "{yaml}");
        let rules = String::from_utf8(set.get(render::LOCAL_RULES).unwrap().to_vec()).unwrap();
        // The rules `intel update` generates from the lab's feeds, one indicator each.
        let feeds: Vec<_> = many
            .config
            .intel
            .feeds
            .iter()
            .enumerate()
            .map(|(i, f)| (i, f, 1))
            .collect();
        assert_eq!(feeds.len(), intel_feeds().len());
        let intel = ids2_agent::intel::feeds::compile::rules(&feeds, dir.path());
        for s in emulate::parse(DEFAULT_SCENARIOS, "default").unwrap() {
            match (s.expect.sid, &s.expect.signature) {
                (Some(sid), _) => {
                    assert!(IDS2_SIDS.contains(&sid));
                    // A rule, or the agent's behavioural detector, raises it.
                    assert!(
                        rules.contains(&format!("sid:{sid};"))
                            || ids2_agent::behaviour::SIDS.contains(&sid),
                        "no rule {sid}"
                    );
                }
                (None, Some(msg)) => {
                    assert!(intel.contains(&format!("msg:\"{msg}\";")), "no rule {msg}")
                }
                (None, None) => unreachable!("parse refuses an entry without an expectation"),
            }
        }
    }
}
