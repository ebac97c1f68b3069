//! `ids2-lab eval`: the detection report over a set of captures.
//!
//! Each pcap is replayed on its own through the rendered config — the real Suricata with the
//! rendered `suricata.yaml` and the ids2 rules, so thresholds of one capture never count
//! packets of another — and its EVE output also goes through the agent's behavioural detector
//! ([`ids2_agent::behaviour`]), as on a sensor. A capture is *detected* when it raised an ids2 alert
//! (sid in [`IDS2_SIDS`], Suricata's or the detector's). The set comes with a manifest
//! (`manifest.jsonl`, written by `bench/realtools.sh`) naming each capture's tool, technique
//! and whether it is an attack or benign; a directory of pcaps without one (the shared corpus)
//! is taken as benign. The report passes when every attack was detected and no benign capture
//! raised an ids2 alert.
//!
//! Starting Suricata costs far more than reading one small capture (the shared corpus is 770
//! pcaps), so each Suricata is started once in its unix-socket mode and handed its share of the
//! captures with `pcap-file FILE OUTPUT-DIR`: Suricata runs each file in turn as a run of its
//! own — flows, hosts and their thresholds torn down and set up again between files, each
//! file's EVE in its own directory — which is what `suricata -r FILE` does, without the start.
//! A capture that yields no packets that way is replayed alone with `suricata -r`, whose exit
//! status and message say why it could not be read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use ids2_agent::behaviour::{self, BehaviourDetector};
use ids2_agent::config::{EvidenceMode, Settings};
use ids2_agent::render::{self, RenderOptions};
use ids2_agent::suricata::Suricata;

use crate::{LabError, IDS2_SIDS};

/// The manifest `bench/realtools.sh` writes beside the pcaps.
pub const MANIFEST: &str = "manifest.jsonl";
/// How long a Suricata in unix-socket mode may take to load its rules and open its socket.
const SOCKET_START: Duration = Duration::from_secs(60);
/// How long one capture may keep a Suricata busy before the evaluation gives up on it.
const PER_CAPTURE: Duration = Duration::from_secs(120);

/// What a capture should raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    /// An attack: at least one ids2 alert.
    Attack,
    /// Benign traffic: no ids2 alert.
    Benign,
}

/// One capture of the set (a manifest line; unknown keys are allowed, the script may add some).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Capture {
    /// Short name.
    pub name: String,
    /// The tool that made it.
    #[serde(default)]
    pub tool: String,
    /// Its version.
    #[serde(default)]
    pub version: String,
    /// The command that ran.
    #[serde(default)]
    pub command: String,
    /// The ATT&CK technique (`none` for benign traffic).
    #[serde(default)]
    pub technique: String,
    /// Attack or benign.
    pub expected: Expected,
    /// The pcap, relative to the manifest's directory.
    pub pcap: PathBuf,
}

/// One alert a capture raised.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    /// Rule sid.
    pub sid: u32,
    /// Rule msg.
    pub signature: String,
}

/// A capture's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The capture.
    pub capture: Capture,
    /// ids2 alerts (Suricata's and the behavioural detector's), distinct, with their counts.
    pub ids2: BTreeMap<Hit, u64>,
    /// Alerts of other rules (a downloaded set), distinct, with their counts.
    pub other: BTreeMap<Hit, u64>,
    /// Packets Suricata read.
    pub packets: u64,
    /// Why Suricata could not read the capture (a damaged pcap), if it could not.
    pub error: Option<String>,
}

impl Outcome {
    /// True when the capture raised an ids2 alert.
    pub fn detected(&self) -> bool {
        !self.ids2.is_empty()
    }

    /// True when the capture was read and the outcome is what it expects.
    pub fn as_expected(&self) -> bool {
        self.error.is_none() && self.detected() == (self.capture.expected == Expected::Attack)
    }
}

/// The whole report.
#[derive(Debug, Clone, Default)]
pub struct EvalReport {
    /// One outcome per capture, in manifest (or file name) order.
    pub outcomes: Vec<Outcome>,
}

impl EvalReport {
    /// Attack captures and how many of them were detected.
    pub fn attacks(&self) -> (usize, usize) {
        let attacks = self
            .outcomes
            .iter()
            .filter(|o| o.capture.expected == Expected::Attack);
        let total = attacks.clone().count();
        (attacks.filter(|o| o.detected()).count(), total)
    }

    /// Benign captures and how many of them raised an ids2 alert.
    pub fn false_positives(&self) -> (usize, usize) {
        let benign = self
            .outcomes
            .iter()
            .filter(|o| o.capture.expected == Expected::Benign);
        let total = benign.clone().count();
        (benign.filter(|o| o.detected()).count(), total)
    }

    /// True when every attack was detected and no benign capture alerted.
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(Outcome::as_expected)
    }

    /// The table printed by `ids2-lab eval`.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<24} {:<8} {:<10} {:<7} {:<9} {:>7}  alerts (sid ×count)",
            "capture", "tool", "technique", "expect", "result", "packets"
        );
        for o in &self.outcomes {
            let result = match (o.capture.expected, o.detected(), &o.error) {
                (_, _, Some(_)) => "UNREAD",
                (Expected::Attack, true, _) => "detected",
                (Expected::Attack, false, _) => "MISSED",
                (Expected::Benign, false, _) => "clean",
                (Expected::Benign, true, _) => "FALSE+",
            };
            let alerts: Vec<String> = o
                .ids2
                .iter()
                .map(|(h, n)| format!("{} ×{n}", h.sid))
                .chain(o.other.iter().map(|(h, n)| format!("({} ×{n})", h.sid)))
                .collect();
            let _ = writeln!(
                t,
                "{:<24} {:<8} {:<10} {:<7} {:<9} {:>7}  {}",
                o.capture.name,
                o.capture.tool,
                o.capture.technique,
                match o.capture.expected {
                    Expected::Attack => "attack",
                    Expected::Benign => "benign",
                },
                result,
                o.packets,
                match &o.error {
                    Some(e) => e.clone(),
                    None if alerts.is_empty() => "-".to_string(),
                    None => alerts.join(", "),
                }
            );
        }
        let (found, attacks) = self.attacks();
        let (fp, benign) = self.false_positives();
        let _ = writeln!(
            t,
            "{found} of {attacks} attack captures detected; {fp} of {benign} benign captures raised an ids2 alert"
        );
        t
    }
}

/// Reads the set in `dir`: its manifest, or every `*.pcap` in it as benign when it has none.
pub fn load_set(dir: &Path) -> Result<Vec<Capture>, LabError> {
    let manifest = dir.join(MANIFEST);
    let mut captures = Vec::new();
    if manifest.is_file() {
        let text = std::fs::read_to_string(&manifest).map_err(|source| LabError::Io {
            action: "read",
            path: manifest.clone(),
            source,
        })?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut c: Capture = serde_json::from_str(line).map_err(|e| LabError::Manifest {
                path: manifest.clone(),
                line: n + 1,
                reason: e.to_string(),
            })?;
            c.pcap = dir.join(&c.pcap);
            captures.push(c);
        }
    } else {
        let entries = std::fs::read_dir(dir).map_err(|source| LabError::Io {
            action: "list",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut pcaps: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .collect();
        pcaps.sort();
        captures.extend(pcaps.into_iter().map(|pcap| {
            Capture {
                name: pcap
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                tool: String::new(),
                version: String::new(),
                command: String::new(),
                technique: "none".into(),
                expected: Expected::Benign,
                pcap,
            }
        }));
    }
    if captures.is_empty() {
        return Err(LabError::Manifest {
            path: dir.to_path_buf(),
            line: 0,
            reason: format!("no captures: neither {MANIFEST} nor *.pcap files"),
        });
    }
    for c in &captures {
        if !c.pcap.is_file() {
            return Err(LabError::Manifest {
                path: manifest.clone(),
                line: 0,
                reason: format!(
                    "capture {} names {}, which is not a file",
                    c.name,
                    c.pcap.display()
                ),
            });
        }
    }
    Ok(captures)
}

/// Replays `captures` through `settings`' rendered config with `suricata`, `jobs` Suricata
/// processes at a time; `work` holds the rendered files and each capture's EVE output.
pub fn evaluate(
    suricata: &Suricata,
    settings: &Settings,
    captures: &[Capture],
    work: &Path,
    jobs: usize,
) -> Result<EvalReport, LabError> {
    // A detection replay keeps no packet evidence: Suricata's pcap-log would only add time
    // (offline it costs Suricata about as much CPU again, bench/evidence-cost.sh).
    let mut settings = settings.clone();
    settings.config.evidence.mode = EvidenceMode::Off;
    let set = render::render(&settings, &RenderOptions::default())?;
    let yaml = work.join("suricata.yaml");
    let rules = work.join("ids2.rules");
    for (path, name) in [
        (&yaml, render::SURICATA_YAML),
        (&rules, render::LOCAL_RULES),
    ] {
        let bytes = set.get(name).unwrap_or_default();
        std::fs::write(path, bytes).map_err(|source| LabError::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
    }
    let jobs = jobs.clamp(1, 16).min(captures.len().max(1));
    let logs_of = |i: usize| work.join(format!("eve-{i:04}"));
    for i in 0..captures.len() {
        let logs = logs_of(i);
        std::fs::create_dir_all(&logs).map_err(|source| LabError::Io {
            action: "create",
            path: logs.clone(),
            source,
        })?;
    }
    // Unix socket paths are short (108 bytes): they live in a temp dir of their own.
    let sockets = tempfile::Builder::new()
        .prefix("ids2-eval-")
        .tempdir()
        .map_err(|source| LabError::Io {
            action: "create a socket directory in",
            path: std::env::temp_dir(),
            source,
        })?;
    let batches: Vec<Result<(), LabError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|w| {
                let files: Vec<(PathBuf, PathBuf)> = (w..captures.len())
                    .step_by(jobs)
                    .map(|i| (captures[i].pcap.clone(), logs_of(i)))
                    .collect();
                let socket = sockets.path().join(format!("s{w}"));
                let (yaml, rules) = (&yaml, &rules);
                scope.spawn(move || batch(suricata, yaml, rules, &socket, &files))
            })
            .collect();
        workers
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(LabError::Manifest {
                        path: work.to_path_buf(),
                        line: 0,
                        reason: "an evaluation worker panicked".into(),
                    })
                })
            })
            .collect()
    });
    batches.into_iter().collect::<Result<Vec<()>, _>>()?;
    let mut outcomes = Vec::with_capacity(captures.len());
    for (i, capture) in captures.iter().enumerate() {
        let logs = logs_of(i);
        let mut o = outcome(capture.clone(), &logs.join("eve.json"));
        if o.packets == 0 {
            // Unread, or empty: `suricata -r` alone says which, and why.
            o = match replay(suricata, &yaml, &rules, &capture.pcap, &logs)? {
                Ok(eve) => outcome(capture.clone(), &eve),
                Err(error) => Outcome {
                    capture: capture.clone(),
                    ids2: BTreeMap::new(),
                    other: BTreeMap::new(),
                    packets: 0,
                    error: Some(error),
                },
            };
        }
        outcomes.push(o);
    }
    Ok(EvalReport { outcomes })
}

/// One Suricata in unix-socket mode runs `files` (pcap, its EVE directory) one after the other,
/// each as its own run; returns once all are done and Suricata has exited.
fn batch(
    suricata: &Suricata,
    yaml: &Path,
    rules: &Path,
    socket: &Path,
    files: &[(PathBuf, PathBuf)],
) -> Result<(), LabError> {
    if files.is_empty() {
        return Ok(());
    }
    let spawn_err = |source| LabError::Spawn {
        program: suricata.binary().display().to_string(),
        source,
    };
    // Its console output goes to a file: a pipe nobody reads would stall it.
    let log_path = socket.with_extension("log");
    let log = std::fs::File::create(&log_path).map_err(|source| LabError::Io {
        action: "create",
        path: log_path.clone(),
        source,
    })?;
    let log2 = log.try_clone().map_err(|source| LabError::Io {
        action: "open",
        path: log_path.clone(),
        source,
    })?;
    let child = Command::new(suricata.binary())
        .arg("-c")
        .arg(yaml)
        .arg("-S")
        .arg(rules)
        .arg(format!("--unix-socket={}", socket.display()))
        .arg("-l")
        .arg(&files[0].1)
        // As `replay`: no checksum checks, one thread (EVE in packet order).
        .args(["-k", "none", "--runmode", "single"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(spawn_err)?;
    let mut child = Reaped(child);
    let fail = |reason: String| {
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = output.lines().rev().take(5).collect();
        LabError::Command {
            command: format!(
                "{} --unix-socket={}",
                suricata.binary().display(),
                socket.display()
            ),
            stderr: format!(
                "{reason}; its last output:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        }
    };
    let started = Instant::now();
    let stream = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(_) if started.elapsed() < SOCKET_START => {
                if let Ok(Some(status)) = child.0.try_wait() {
                    return Err(fail(format!("exited ({status}) before its socket opened")));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(fail(format!("its socket never opened: {e}"))),
        }
    };
    stream
        .set_read_timeout(Some(PER_CAPTURE))
        .map_err(|e| fail(e.to_string()))?;
    let mut client = SocketClient {
        reader: serde_json::Deserializer::from_reader(
            stream.try_clone().map_err(|e| fail(e.to_string()))?,
        )
        .into_iter(),
        writer: stream,
    };
    client
        .call(&serde_json::json!({"version": "0.2"}))
        .map_err(&fail)?;
    for (pcap, logs) in files {
        client
            .call(&serde_json::json!({"command": "pcap-file", "arguments": {
                "filename": pcap, "output-dir": logs}}))
            .map_err(&fail)?;
    }
    // Done when the queue is empty and no file is being read; bounded by progress.
    let mut last = (usize::MAX, String::new());
    let mut progressed = Instant::now();
    loop {
        let queued = client
            .call(&serde_json::json!({"command": "pcap-file-number"}))
            .map_err(&fail)?
            .as_u64()
            .unwrap_or(0) as usize;
        let current = client
            .call(&serde_json::json!({"command": "pcap-current"}))
            .map_err(&fail)?
            .as_str()
            .unwrap_or("None")
            .to_string();
        if queued == 0 && current == "None" {
            break;
        }
        if (queued, &current) != (last.0, &last.1) {
            last = (queued, current);
            progressed = Instant::now();
        } else if progressed.elapsed() > PER_CAPTURE {
            return Err(fail(format!("stuck on {} for {PER_CAPTURE:?}", last.1)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = client.call(&serde_json::json!({"command": "shutdown"}));
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.0.try_wait() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(fail("did not exit after `shutdown`".into()))
}

/// Kills and reaps the child if it is still running when dropped (an error path).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Suricata's unix-socket protocol: one JSON object each way per command.
struct SocketClient {
    reader: serde_json::StreamDeserializer<'static, serde_json::de::IoRead<UnixStream>, Value>,
    writer: UnixStream,
}

impl SocketClient {
    /// Sends `request`; returns the answer's `message` when its `return` is `OK`.
    fn call(&mut self, request: &Value) -> Result<Value, String> {
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| format!("{request}: {e}"))?;
        let answer = match self.reader.next() {
            Some(Ok(a)) => a,
            Some(Err(e)) => return Err(format!("{request}: {e}")),
            None => return Err(format!("{request}: the socket closed")),
        };
        if answer["return"] == "OK" {
            Ok(answer["message"].clone())
        } else {
            Err(format!("{request}: {answer}"))
        }
    }
}

/// `suricata -r PCAP` with the rendered config and rules; returns the EVE file, or Suricata's
/// last words when it could not read the capture.
fn replay(
    suricata: &Suricata,
    yaml: &Path,
    rules: &Path,
    pcap: &Path,
    logs: &Path,
) -> Result<Result<PathBuf, String>, LabError> {
    let mut cmd = Command::new(suricata.binary());
    cmd.arg("-c")
        .arg(yaml)
        .arg("-S")
        .arg(rules)
        .arg("-r")
        .arg(pcap)
        .arg("-l")
        .arg(logs)
        // Offline: no checksum checks (captures from veths carry partial checksums), one
        // thread (alerts in packet order), no unix socket beside a live sensor's.
        .args(["-k", "none", "--runmode", "single"])
        .args(["--set", "unix-command.enabled=no"]);
    let out = cmd.output().map_err(|source| LabError::Spawn {
        program: suricata.binary().display().to_string(),
        source,
    })?;
    if !out.status.success() {
        // Suricata reports its errors on stdout or stderr depending on when they happen.
        let text = [out.stdout, out.stderr].concat();
        let text = String::from_utf8_lossy(&text);
        let last = text
            .lines()
            .rfind(|l| l.starts_with("E:"))
            .or_else(|| text.lines().last())
            .unwrap_or("no output");
        return Ok(Err(format!("suricata -r failed ({}): {last}", out.status)));
    }
    Ok(Ok(logs.join("eve.json")))
}

/// Reads a capture's EVE output: Suricata's alerts, and the detector's over its records.
fn outcome(capture: Capture, eve: &Path) -> Outcome {
    let mut o = Outcome {
        capture,
        ids2: BTreeMap::new(),
        other: BTreeMap::new(),
        packets: 0,
        error: None,
    };
    let text = std::fs::read_to_string(eve).unwrap_or_default();
    let mut detector = BehaviourDetector::new(behaviour::Options::default());
    let mut alerts: Vec<Value> = Vec::new();
    for line in text.lines() {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        match record["event_type"].as_str() {
            Some("alert") => alerts.push(record),
            Some("stats") => {
                if let Some(p) = record["stats"]["decoder"]["pkts"].as_u64() {
                    o.packets = o.packets.max(p);
                }
            }
            _ => alerts.extend(detector.observe(&record)),
        }
    }
    alerts.extend(detector.finish());
    for a in alerts {
        let sid = a["alert"]["signature_id"].as_u64().unwrap_or(0) as u32;
        let hit = Hit {
            sid,
            signature: a["alert"]["signature"].as_str().unwrap_or("").to_string(),
        };
        let bucket = if IDS2_SIDS.contains(&sid) {
            &mut o.ids2
        } else {
            &mut o.other
        };
        *bucket.entry(hit).or_default() += 1;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_lines_are_read_relative_to_the_set() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pcap"), b"").unwrap();
        std::fs::write(
            dir.path().join(MANIFEST),
            "{\"name\":\"a\",\"tool\":\"nmap\",\"technique\":\"T1046\",\"expected\":\"attack\",\"pcap\":\"a.pcap\",\"extra\":1}\n",
        )
        .unwrap();
        let set = load_set(dir.path()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].expected, Expected::Attack);
        assert_eq!(set[0].pcap, dir.path().join("a.pcap"));

        std::fs::write(
            dir.path().join(MANIFEST),
            "{\"name\":\"a\",\"expected\":\"maybe\",\"pcap\":\"a.pcap\"}\n",
        )
        .unwrap();
        let err = load_set(dir.path()).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("maybe"), "{err}");

        std::fs::write(
            dir.path().join(MANIFEST),
            "{\"name\":\"b\",\"expected\":\"benign\",\"pcap\":\"b.pcap\"}\n",
        )
        .unwrap();
        let err = load_set(dir.path()).unwrap_err().to_string();
        assert!(err.contains("b.pcap"), "{err}");
    }

    #[test]
    fn a_directory_without_manifest_is_benign() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.pcap", "a.pcap", "notes.txt"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let set = load_set(dir.path()).unwrap();
        let names: Vec<&str> = set.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(set.iter().all(|c| c.expected == Expected::Benign));
        let empty = tempfile::tempdir().unwrap();
        assert!(load_set(empty.path()).is_err());
    }

    #[test]
    fn outcomes_judge_attacks_and_benign_captures() {
        let dir = tempfile::tempdir().unwrap();
        let eve = dir.path().join("eve.json");
        std::fs::write(
            &eve,
            concat!(
                "{\"event_type\":\"alert\",\"alert\":{\"signature_id\":9200010,\"signature\":\"scan\"}}\n",
                "{\"event_type\":\"alert\",\"alert\":{\"signature_id\":9200010,\"signature\":\"scan\"}}\n",
                "{\"event_type\":\"alert\",\"alert\":{\"signature_id\":2100498,\"signature\":\"ET\"}}\n",
                "{\"event_type\":\"stats\",\"stats\":{\"decoder\":{\"pkts\":42}}}\n",
                "not json\n",
            ),
        )
        .unwrap();
        let capture = |expected| Capture {
            name: "x".into(),
            tool: "nmap".into(),
            version: String::new(),
            command: String::new(),
            technique: "T1046".into(),
            expected,
            pcap: PathBuf::from("x.pcap"),
        };
        let attack = outcome(capture(Expected::Attack), &eve);
        assert!(attack.detected() && attack.as_expected());
        assert_eq!(attack.packets, 42);
        assert_eq!(attack.ids2.values().sum::<u64>(), 2);
        assert_eq!(attack.other.len(), 1);
        let benign = outcome(capture(Expected::Benign), &eve);
        assert!(!benign.as_expected());
        let report = EvalReport {
            outcomes: vec![attack, benign],
        };
        assert!(!report.passed());
        assert_eq!(report.attacks(), (1, 1));
        assert_eq!(report.false_positives(), (1, 1));
        let table = report.table();
        assert!(
            table.contains("FALSE+") && table.contains("9200010 ×2"),
            "{table}"
        );
        assert!(table.contains("(2100498 ×1)"), "{table}");
    }
}
