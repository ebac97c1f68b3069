//! A sensor for the shipping tests and the cut-off benchmark: the real agent
//! (`ids2-agent run --backend process`) in a directory of its own, running the real Vector on
//! the `vector.toml` it renders, pointed by its config alone at a local OpenSearch-API server
//! (the osmem-server emulator, `ids2_lab::ship`); the corpus EVE as the sensor's rendered
//! `suricata.yaml` makes it with the real Suricata; `ids2-provision opensearch setup` against
//! the server. Used by `tests/shipping.rs` and `examples/ship_cutoff.rs`.
// Each binary that includes this uses a different part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ids2_lab::osmem::{self, Osmem};
use ids2_lab::ship;

pub const SENSOR: &str = "e2e-ship";
pub const PREFIX: &str = "ids2";
/// A disk buffer's bytes: Vector 0.58's metric name, then the older one.
pub const BUFFER_BYTES: &[&str] = &["vector_buffer_size_bytes", "vector_buffer_byte_size"];
/// Suricata gets this long for the whole corpus (it needs a few seconds).
const SURICATA_TIMEOUT: Duration = Duration::from_secs(180);
/// How long shipping may take to settle after the last append (Vector retries with a backoff
/// of up to 30 s after an outage).
pub const SETTLE: Duration = Duration::from_secs(180);

/// The tools this test runs, or `None` after printing why it skips.
pub struct Tools {
    pub corpus: PathBuf,
    pub vector: PathBuf,
    pub osmem: PathBuf,
    pub agent: PathBuf,
    pub provision: PathBuf,
}

/// The tools, or `None` after printing what is missing. `bin_dir` holds the workspace's
/// binaries (`target/debug`).
pub fn tools(bin_dir: &Path) -> Option<Tools> {
    let corpus = std::env::var_os("IDS2_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let mut missing = Vec::new();
    if !corpus.join("pcaps").is_dir() {
        missing.push(format!(
            "the test corpus ({}; set IDS2_CORPUS or check out ../shared/corpus)",
            corpus.display()
        ));
    }
    if Command::new("suricata").arg("-V").output().is_err() {
        missing.push("Suricata 7 (`suricata` on PATH)".into());
    }
    let vector = ids2_agent::vector::locate()
        .map_err(|e| missing.push(e))
        .ok();
    let osmem = osmem::locate().map_err(|e| missing.push(e)).ok();
    if !missing.is_empty() {
        eprintln!(
            "SKIP: needs {}; .ci/install-deps installs them",
            missing.join(", ")
        );
        return None;
    }
    let bin = |name: &str| {
        let p = bin_dir.join(name);
        assert!(
            p.is_file(),
            "{} is not built: run `cargo build -p ids2-agent -p ids2-provision` (the test command \
             builds the workspace)",
            p.display()
        );
        p
    };
    Some(Tools {
        corpus,
        vector: vector?,
        osmem: osmem?,
        agent: bin("ids2-agent"),
        provision: bin("ids2-provision"),
    })
}

/// The sensor's config: every path under `root` (logs in `logs`, with `logs_extra` keys),
/// shipping to `endpoint`, heartbeats every 5 s, `shipping` as given (a YAML flow mapping), the
/// agent's metrics on `metrics`.
pub fn config_yaml(
    root: &Path,
    endpoint: &str,
    logs: &Path,
    logs_extra: &str,
    shipping: &str,
    metrics: &str,
) -> String {
    format!(
        "sensor: {{id: {SENSOR}}}\n\
         capture: {{interface: eth0, home_net: [192.168.0.0/16, 10.0.0.0/8, 172.16.0.0/12]}}\n\
         logs: {{path: {l}{logs_extra}}}\n\
         suricata: {{rules_dir: {r}/rules, socket_path: {r}/suricata.socket}}\n\
         paths: {{rendered_dir: {r}/rendered, vector_data_dir: {r}/vector}}\n\
         history: {{repo: {r}/history.git}}\n\
         metrics: {{listen: '{metrics}'}}\n\
         resources: {{sample_secs: 1}}\n\
         connectivity: {{dns_names: [ids2-test.invalid], interval_secs: 5, timeout_secs: 1}}\n\
         fleet: {{heartbeat_secs: 5, rules: {{scheduled: false}}}}\n\
         evidence: {{store_dir: {r}/evidence}}\n\
         shipping: {shipping}\n\
         {}\n",
        ship::opensearch_yaml(endpoint, PREFIX, root).unwrap(),
        r = root.display(),
        l = logs.display(),
    )
}

/// Suricata's own event rules shipped with the package, as suricata-update installs them.
/// `dnp3-events` makes the corpus's longest EVE line, a 2.4 MB DNP3 alert.
const STOCK_RULES: &[&str] = &[
    "app-layer-events",
    "dnp3-events",
    "decoder-events",
    "stream-events",
    "http-events",
    "dns-events",
    "tls-events",
    "files",
];

pub fn rule_set() -> String {
    STOCK_RULES
        .iter()
        .filter_map(|n| std::fs::read_to_string(format!("/etc/suricata/rules/{n}.rules")).ok())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The corpus EVE as the sensor's rendered `suricata.yaml` makes it, one string per line; made
/// once per process and cached on disk across processes (nextest runs each test in its own
/// process): `<tmp>/shipping-corpus/eve.json`.
pub fn corpus_eve(t: &Tools, tmp: &Path) -> &'static [String] {
    static EVE: OnceLock<Vec<String>> = OnceLock::new();
    EVE.get_or_init(|| {
        let cache = tmp.join("shipping-corpus");
        let eve = cache.join("eve.json");
        let work = tempfile::tempdir().unwrap();
        let root = work.path();
        let settings = ids2_agent::config::from_str(
            &config_yaml(
                root,
                "http://127.0.0.1:9",
                &root.join("logs"),
                "",
                "{}",
                "127.0.0.1:0",
            ),
            Path::new("config.yaml"),
        )
        .unwrap();
        let set = ids2_agent::render::render(&settings, &Default::default()).unwrap();
        let yaml = set.get(ids2_agent::render::SURICATA_YAML).unwrap();
        let local = set.get(ids2_agent::render::LOCAL_RULES).unwrap();
        let stamp = format!(
            "{:x}",
            fnv(&[
                yaml,
                local,
                rule_set().as_bytes(),
                pcap_names(&t.corpus).as_bytes()
            ]
            .concat())
        );
        if std::fs::read_to_string(cache.join("stamp")).is_ok_and(|s| s == stamp) {
            return read_lines(&eve);
        }
        let generation = root.join("rendered/generations/1");
        std::fs::create_dir_all(generation.join("rules")).unwrap();
        std::fs::write(generation.join(ids2_agent::render::SURICATA_YAML), yaml).unwrap();
        std::fs::write(generation.join(ids2_agent::render::LOCAL_RULES), local).unwrap();
        std::os::unix::fs::symlink("generations/1", root.join("rendered/current")).unwrap();
        std::fs::create_dir_all(root.join("rules")).unwrap();
        std::fs::write(root.join("rules/suricata.rules"), rule_set()).unwrap();
        let out = root.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let mut child = Command::new("suricata")
            .arg("-r")
            .arg(t.corpus.join("pcaps"))
            .arg("-c")
            .arg(
                root.join("rendered/current")
                    .join(ids2_agent::render::SURICATA_YAML),
            )
            .arg("-l")
            .arg(&out)
            // Offline: one thread, no CPU pinning, no unix socket, no checksum checks.
            .args(["-k", "none", "--runmode", "single"])
            .args(["--set", "threading.set-cpu-affinity=no"])
            .args(["--set", "unix-command.enabled=no"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(out.join("suricata.stderr")).unwrap())
            .spawn()
            .expect("start suricata");
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > SURICATA_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("suricata did not finish within {SURICATA_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = std::fs::read_to_string(out.join("suricata.stderr")).unwrap_or_default();
        assert!(status.success(), "suricata failed ({status}):\n{log}");
        // Build beside the cache, then rename into place: concurrent processes never see a
        // half-written cache.
        let tmp = cache.with_file_name(format!("shipping-corpus.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::copy(out.join("eve.json"), tmp.join("eve.json")).unwrap();
        std::fs::write(tmp.join("stamp"), &stamp).unwrap();
        let _ = std::fs::remove_dir_all(&cache);
        if std::fs::rename(&tmp, &cache).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        let lines = read_lines(&out.join("eve.json"));
        assert!(
            lines.len() > 1000,
            "suricata wrote {} EVE lines:\n{log}",
            lines.len()
        );
        lines
    })
}

/// The first `per_type` lines of each event type, in file order: every type the corpus has,
/// without its 20k stream-event alerts. The emulator indexes the ECS documents at a few hundred
/// per second (about 120/s on a loaded 2-core machine), so the whole corpus would take minutes
/// per test; `IDS2_SHIP_FULL_CORPUS=1` sends it all.
///
/// Every line holding an integer past `i64::MAX` is kept too (the corpus's SMB session ids, deep
/// in its fileinfo events): Vector's JSON parser reads it as a rounded float, which the field
/// the index mapped as `long` from an earlier, smaller id would refuse, so these lines are the
/// ones that prove such an id arrives exact and its event whole.
pub fn sample(lines: &[String], per_type: usize) -> Vec<String> {
    if std::env::var_os("IDS2_SHIP_FULL_CORPUS").is_some_and(|v| v == "1") {
        return lines.to_vec();
    }
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    lines
        .iter()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            let n = seen
                .entry(v["event_type"].as_str().unwrap_or_default().to_string())
                .or_default();
            *n += 1;
            *n <= per_type || past_i64(&v)
        })
        .cloned()
        .collect()
}

/// Whether `v` holds an integer that only fits an unsigned 64-bit one.
pub fn past_i64(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.is_u64() && !n.is_i64(),
        serde_json::Value::Array(a) => a.iter().any(past_i64),
        serde_json::Value::Object(o) => o.values().any(past_i64),
        _ => false,
    }
}

/// `lines` dated today (UTC), their time of day kept. A sensor's events are of the last seconds,
/// so each dataset goes to one daily index, where the values of all its events must fit one
/// mapping; with the pcaps' own dates the corpus spreads over ~600 indices and two events whose
/// values conflict (as the SMB session ids `bench/vector-ecs.py` found) never meet in one.
pub fn dated_today(lines: &[String]) -> Vec<String> {
    const HEAD: &str = r#"{"timestamp":""#;
    let d = time::OffsetDateTime::now_utc().date();
    let today = format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    lines
        .iter()
        .map(|l| match l.strip_prefix(HEAD) {
            Some(rest) if rest.len() > 10 => format!("{HEAD}{today}{}", &rest[10..]),
            _ => l.clone(),
        })
        .collect()
}

pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn pcap_names(corpus: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(corpus.join("pcaps"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            format!("{}:{len}", e.file_name().to_string_lossy())
        })
        .collect();
    names.sort();
    names.join("\n")
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// Runs `ids2-provision <command>` against the server as the sensor in `root` reaches it (basic
/// auth with its password file, the test's index prefix).
pub fn run_provision(t: &Tools, os: &Osmem, root: &Path, command: &[&str]) -> std::process::Output {
    Command::new(&t.provision)
        .args(command)
        .args(["--endpoint", os.url(), "--auth", "basic"])
        .args(["--username", "ids2", "--password-file"])
        .arg(root.join("opensearch-password"))
        .args(["--index-prefix", PREFIX, "--timeout-secs", "10"])
        .output()
        .unwrap()
}

/// `ids2-provision opensearch setup --templates-only` against the server: the index templates
/// go in first (the emulator has no ISM, Alerting or Dashboards API for the rest).
pub fn provision(t: &Tools, os: &Osmem, root: &Path) {
    let out = run_provision(t, os, root, &["opensearch", "setup", "--templates-only"]);
    assert!(
        out.status.success(),
        "ids2-provision opensearch setup:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One sensor: a directory, the agent running in it, the server behind a proxy.
pub struct Sensor {
    pub root: PathBuf,
    pub logs: PathBuf,
    _dir: tempfile::TempDir,
    agent: Option<Child>,
    agent_log: PathBuf,
    pub vector_metrics: std::net::SocketAddr,
    /// The agent's own metrics (`metrics.listen`).
    pub agent_metrics: std::net::SocketAddr,
    tools_agent: PathBuf,
    tools_vector: PathBuf,
    config: PathBuf,
    pub appended: Vec<String>,
    /// Lines appended that are not EVE events: each must arrive unmapped
    /// (`<prefix>-suricata.unmapped-*`), under the id of its line.
    pub unmapped: Vec<String>,
}

impl Sensor {
    /// Prepares the directory and the config (batches closed after a second: the default 5 s
    /// only slows a test); the agent is not started yet.
    pub fn new(t: &Tools, endpoint: &str, logs_extra: &str) -> Self {
        Self::with(t, endpoint, None, logs_extra, "{batch_timeout_secs: 1}")
    }

    /// Like [`Sensor::new`], with the logs in `logs` (else `<root>/logs`) and `shipping` as the
    /// config's `shipping:` value.
    pub fn with(
        t: &Tools,
        endpoint: &str,
        logs: Option<&Path>,
        logs_extra: &str,
        shipping: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let logs = logs
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.join("logs"));
        std::fs::create_dir_all(&logs).unwrap();
        for d in ["bin", "rules", "rendered", "vector"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("rules/suricata.rules"), rule_set()).unwrap();
        // The stand-in for the live Suricata child: it idles until stopped (`-T` checks go to
        // the real Suricata through IDS2_SURICATA); the EVE it would write is appended by the
        // test from the real Suricata's offline run.
        let stand_in = root.join("bin/suricata");
        std::fs::write(
            &stand_in,
            "#!/bin/sh\n[ \"$1\" = -T ] && exit 0\ntrap 'exit 0' TERM\nwhile :; do sleep 0.2; done\n",
        )
        .unwrap();
        std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Vector's exporter on a port of its own, so sensors run side by side.
        let vector_metrics = ship::free_addr();
        let agent_metrics = ship::free_addr();
        // One brace each side: the mapping may nest others (shipping.redis).
        let shipping = shipping.trim();
        let body = shipping
            .strip_prefix('{')
            .and_then(|b| b.strip_suffix('}'))
            .unwrap_or(shipping)
            .trim();
        let shipping = format!(
            "{{{body}{}vector_metrics_listen: '{vector_metrics}'}}",
            if body.is_empty() { "" } else { ", " }
        );
        let config = root.join("config.yaml");
        std::fs::write(
            &config,
            config_yaml(
                &root,
                endpoint,
                &logs,
                logs_extra,
                &shipping,
                &agent_metrics.to_string(),
            ),
        )
        .unwrap();
        std::fs::write(logs.join("eve.json"), "").unwrap();
        Self {
            logs,
            agent_log: root.join("agent.log"),
            root,
            _dir: dir,
            agent: None,
            vector_metrics,
            agent_metrics,
            tools_agent: t.agent.clone(),
            tools_vector: t.vector.clone(),
            config,
            appended: Vec::new(),
            unmapped: Vec::new(),
        }
    }

    /// Starts `ids2-agent run --backend process`; it renders, checks with the real
    /// `suricata -T`, and starts its children: the Suricata stand-in and the real Vector.
    pub fn start_agent(&mut self) {
        let real_suricata = which("suricata").expect("suricata on PATH");
        let path = format!(
            "{}:{}",
            self.root.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.agent_log)
            .unwrap();
        let mut child = Command::new(&self.tools_agent)
            .args(["run", "--backend", "process", "--config"])
            .arg(&self.config)
            .env("PATH", path)
            .env("IDS2_SURICATA", real_suricata)
            .env(ids2_agent::vector::PROGRAM_ENV, &self.tools_vector)
            .envs(ship::vector_env())
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The agent's log and its children's (they inherit its stdout and stderr) go to one
        // file, read on failure.
        let stderr = child.stderr.take().unwrap();
        let mut log2 = log;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log2, "{line}");
            }
        });
        self.agent = Some(child);
        // Up when Vector serves its metrics (after the agent's apply and start).
        let (up, _) = ship::wait_for(Duration::from_secs(60), || {
            (ship::scrape(self.vector_metrics).is_ok(), ())
        });
        assert!(
            up,
            "Vector did not come up under the agent:\n{}",
            self.logs()
        );
    }

    /// SIGTERM to the agent, which stops Suricata, then Vector (draining), then itself.
    pub fn stop_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("the agent did not stop within 60 s:\n{}", self.logs());
        }
    }

    /// The pid of the agent's Vector child.
    pub fn vector_pid(&self) -> Option<i32> {
        let agent = self.agent.as_ref()?.id();
        // A child is listed under the thread that spawned it.
        let mut children = String::new();
        for task in std::fs::read_dir(format!("/proc/{agent}/task"))
            .ok()?
            .flatten()
        {
            children += &std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            children.push(' ');
        }
        let vector = self.tools_vector.canonicalize().unwrap_or_default();
        children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .find(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|exe| exe == vector))
    }

    /// The sum of Vector's metrics `names` carrying `labels`, as its exporter shows them now
    /// (several names: a metric Vector renamed, either is there); NaN when it does not answer.
    pub fn vector_metric(&self, names: &[&str], labels: &[(&str, &str)]) -> f64 {
        ship::scrape(self.vector_metrics)
            .map(|text| {
                names
                    .iter()
                    .map(|n| ship::metric_sum(&text, n, labels))
                    .sum()
            })
            .unwrap_or(f64::NAN)
    }

    /// SIGKILLs the agent's Vector child and waits for the agent's supervisor to start it again.
    pub fn kill_vector(&self) {
        let pid = self.vector_pid().expect("the agent's Vector child");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let (again, _) = ship::wait_for(Duration::from_secs(20), || {
            (self.vector_pid().is_some_and(|p| p != pid), ())
        });
        assert!(again, "the agent did not restart Vector:\n{}", self.logs());
    }

    /// Appends `lines` to `eve.json` as Suricata would (one write per line, O_APPEND; a
    /// rotated-away file is replaced by a new one, as after Suricata's reopen).
    pub fn append(&mut self, lines: &[String]) {
        self.write_eve(lines);
        self.appended.extend_from_slice(lines);
    }

    /// Appends `lines` that are not EVE events: each must be shipped unmapped, the line kept.
    pub fn append_unmapped(&mut self, lines: &[String]) {
        self.write_eve(lines);
        self.unmapped.extend_from_slice(lines);
    }

    /// Appends `lines` without expecting documents of them (lines the sensor must not ship).
    pub fn write_eve(&self, lines: &[String]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join("eve.json"))
            .unwrap();
        let mut buf = String::new();
        for l in lines {
            buf.push_str(l);
            buf.push('\n');
            if buf.len() > 64 << 10 {
                f.write_all(buf.as_bytes()).unwrap();
                buf.clear();
            }
        }
        f.write_all(buf.as_bytes()).unwrap();
    }

    /// Appends `lines` in `parts` parts, `pause` apart.
    pub fn append_in_parts(&mut self, lines: &[String], parts: usize, pause: Duration) {
        for chunk in lines.chunks(lines.len().div_ceil(parts).max(1)) {
            self.append(chunk);
            std::thread::sleep(pause);
        }
    }

    pub fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let tail = |t: String| {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        let log = read(&self.agent_log);
        // Errors and Vector's warnings may sit far above the tail: the first of each kind.
        let mut seen = BTreeSet::new();
        let problems: Vec<String> = log
            .lines()
            .filter(|l| l.contains(" ERROR ") || (l.contains(" WARN ") && l.contains("vector")))
            .filter(|l| seen.insert(l.split_whitespace().skip(2).take(4).collect::<String>()))
            .take(20)
            .map(|l| l.chars().take(600).collect())
            .collect();
        format!(
            "agent and Vector, errors and Vector's warnings (first of each kind):\n{}\n\
             agent and Vector (last 60 lines):\n{}",
            problems.join("\n"),
            tail(log)
        )
    }

    /// Waits until the server holds every appended line exactly once; the documents-per-line
    /// figure (documents / distinct lines) when it does, else a failure naming the difference.
    /// The unmapped lines' daily indices count as one (their date is the day Vector read them).
    pub fn settle(&self, os: &Osmem, what: &str) -> f64 {
        let mut want =
            ship::expected_documents(SENSOR, PREFIX, self.appended.iter().map(String::as_str))
                .unwrap();
        let pattern = format!("{PREFIX}-suricata.*");
        let unmapped = format!("{PREFIX}-suricata.unmapped-*");
        if !self.unmapped.is_empty() {
            let ids = self.unmapped.iter().map(|l| ship::document_id(SENSOR, l));
            want.insert(unmapped.clone(), ids.collect());
        }
        let indexed = || {
            ship::indexed_ids(os, &pattern).map(|mut got| {
                let days: Vec<String> = got
                    .keys()
                    .filter(|i| i.starts_with(unmapped.trim_end_matches('*')))
                    .cloned()
                    .collect();
                for day in days {
                    let ids = got.remove(&day).unwrap();
                    got.entry(unmapped.clone()).or_default().extend(ids);
                }
                got
            })
        };
        let distinct: usize = want.values().map(BTreeSet::len).sum();
        let started = Instant::now();
        let mut last_report = started;
        // The cheap count first, the ids only once it is reached: listing every id at each
        // poll would load the server Vector is shipping to. A request that times out while the
        // server is busy indexing is a poll that saw nothing yet.
        let (ok, got) = ship::wait_for(SETTLE, || {
            let count: u64 = os.indices(&pattern).map(|m| m.values().sum()).unwrap_or(0);
            if last_report.elapsed() > Duration::from_secs(10) {
                last_report = Instant::now();
                eprintln!(
                    "{what}: {count} of {distinct} documents after {:.0?}",
                    started.elapsed()
                );
            }
            if (count as usize) < distinct {
                std::thread::sleep(Duration::from_millis(800));
                return (false, None);
            }
            match indexed() {
                Ok(got) => (ship::exactly_once(&want, &got).is_ok(), Some(got)),
                Err(_) => (false, None),
            }
        });
        let got = match got {
            Some(got) => got,
            None => indexed().unwrap(),
        };
        if !ok {
            panic!(
                "{what}: not every EVE line indexed exactly once within {SETTLE:?}:\n{}\n{}",
                ship::exactly_once(&want, &got).unwrap_err(),
                self.logs()
            );
        }
        let docs: usize = got.values().map(Vec::len).sum();
        let figure = docs as f64 / distinct as f64;
        eprintln!(
            "{what}: {} EVE lines ({distinct} distinct) -> {docs} documents: {figure:.3} per distinct line",
            self.appended.len() + self.unmapped.len()
        );
        figure
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn inode(path: &Path) -> Option<u64> {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).ok()?).into()
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// An EVE timestamp `ms` milliseconds after `base` (unix seconds), in Suricata's format.
pub fn eve_time(base: i64, ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(base).unwrap() + Duration::from_millis(ms);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+0000"
    );
    t.format(f).unwrap()
}

/// `line` with its first `"timestamp":"…"` value replaced by `ts`.
pub fn with_time(line: &str, ts: &str) -> String {
    const KEY: &str = "\"timestamp\":\"";
    let Some(start) = line.find(KEY).map(|i| i + KEY.len()) else {
        return line.to_string();
    };
    let end = start + line[start..].find('"').unwrap_or(0);
    format!("{}{ts}{}", &line[..start], &line[end..])
}

/// A STAND-IN for OpenSearch, where the osmem-server emulator cannot hold the volume (it keeps
/// ~90 KB of memory per ECS document and indexes fewer than 1,000 a second here): it answers
/// `GET /_cluster/health` (Vector's health check) and `POST /_bulk`, accepting every action
/// and recording each document's `_index` and `_id`; anything else gets 404. What arrives is
/// checked against the emulator by the shipping tests; this only says which documents did.
pub struct BulkStandIn {
    pub addr: SocketAddr,
    /// Index → ids received.
    docs: Arc<Mutex<BTreeMap<String, HashSet<String>>>>,
}

impl BulkStandIn {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        let docs = Arc::new(Mutex::new(BTreeMap::new()));
        let shared = docs.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let docs = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &docs);
                });
            }
        });
        Self { addr, docs }
    }

    /// Distinct ids received in the indices whose name starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        let docs = self.docs.lock().unwrap();
        docs.iter()
            .filter(|(i, _)| i.starts_with(prefix))
            .map(|(_, ids)| ids.len())
            .sum()
    }

    /// Index → the distinct ids it received, of the indices whose name starts with `prefix`,
    /// as `ship::exactly_once` reads them (one document per id, as `index` on a real server).
    pub fn indexed(&self, prefix: &str) -> BTreeMap<String, Vec<String>> {
        let docs = self.docs.lock().unwrap();
        docs.iter()
            .filter(|(i, _)| i.starts_with(prefix))
            .map(|(i, ids)| {
                let mut ids: Vec<String> = ids.iter().cloned().collect();
                ids.sort();
                (i.clone(), ids)
            })
            .collect()
    }

    pub fn ids(&self, prefix: &str) -> HashSet<String> {
        let docs = self.docs.lock().unwrap();
        docs.iter()
            .filter(|(i, _)| i.starts_with(prefix))
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect()
    }
}

/// One keep-alive connection: requests with a `Content-Length` or chunked body.
fn serve(conn: TcpStream, docs: &Mutex<BTreeMap<String, HashSet<String>>>) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                r.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(length, 0);
            r.read_exact(&mut body)?;
        }
        let (status, answer) = if method == "POST" && path.split('?').next() == Some("/_bulk") {
            ("200 OK", bulk(&body, docs))
        } else if method == "GET" && path.starts_with("/_cluster/health") {
            ("200 OK", r#"{"status":"green"}"#.to_string())
        } else {
            (
                "404 Not Found",
                r#"{"error":"not in the stand-in"}"#.to_string(),
            )
        };
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        )?;
    }
}

/// Records a bulk body's actions; the answer, every item accepted.
fn bulk(body: &[u8], docs: &Mutex<BTreeMap<String, HashSet<String>>>) -> String {
    let text = String::from_utf8_lossy(body);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut items = Vec::new();
    let mut docs = docs.lock().unwrap();
    while let Some(action) = lines.next() {
        let v: serde_json::Value = serde_json::from_str(action).unwrap_or_default();
        let Some((op, meta)) = v.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        if op != "delete" {
            lines.next();
        }
        let index = meta["_index"].as_str().unwrap_or("").to_string();
        let id = meta["_id"].as_str().unwrap_or("").to_string();
        items.push(serde_json::json!({op: {"_index": index, "_id": id, "status": 201}}));
        docs.entry(index).or_default().insert(id);
    }
    serde_json::json!({"took": 1, "errors": false, "items": items}).to_string()
}
