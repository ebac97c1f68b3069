//! The sensor side of the lab: Suricata on the sensor namespace's `eth0`, and a tail of its
//! EVE file.
//!
//! Suricata is started with `ip netns exec` (which execs it, so the child's pid is Suricata's)
//! and stopped by the Drop guard: SIGTERM, then SIGKILL if it has not exited in time.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::netns::IFACE;
use super::LabError;
use crate::suricata::Suricata;

/// How long Suricata may take to load the rules and open the capture.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long Suricata may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Stats period in the lab: kernel drops are reported within a second.
pub const STATS_INTERVAL_SECS: u32 = 1;

/// A running Suricata; dropping it stops it.
pub struct Sensor {
    child: Option<Child>,
    output: PathBuf,
}

impl Sensor {
    /// Starts Suricata in `ns` with `config` and the rules it names, logging EVE into
    /// `log_dir`, and waits until its engine has started.
    pub fn start(
        suricata: &Suricata,
        ns: &str,
        config: &Path,
        log_dir: &Path,
    ) -> Result<Self, LabError> {
        let output = log_dir.join("suricata.out");
        let out = File::create(&output).map_err(|source| LabError::Io {
            action: "create",
            path: output.clone(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| LabError::Io {
            action: "open",
            path: output.clone(),
            source,
        })?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(suricata.binary())
            .arg("-c")
            .arg(config)
            .arg(format!("--af-packet={IFACE}"))
            .arg("-l")
            .arg(log_dir)
            // The lab shares this machine's CPUs with the attacker and the victim: pinning
            // workers to exclusive cores (as on the Pi) would starve them.
            .args(["--set", "threading.set-cpu-affinity=no"])
            .args(["--set", &format!("stats.interval={STATS_INTERVAL_SECS}")])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| LabError::Spawn {
                program: "ip netns exec … suricata".into(),
                source,
            })?;
        let mut sensor = Sensor {
            child: Some(child),
            output,
        };
        sensor.wait_started()?;
        Ok(sensor)
    }

    fn wait_started(&mut self) -> Result<(), LabError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&self.output).unwrap_or_default();
            if text.contains("Engine started") {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let tail: Vec<&str> = text.lines().rev().take(12).collect();
                return Err(LabError::SuricataStart {
                    reason: if exited.is_some() {
                        format!(
                            "it exited ({})",
                            exited.map_or(String::new(), |s| s.to_string())
                        )
                    } else {
                        format!("no \"Engine started\" within {}s", START_TIMEOUT.as_secs())
                    },
                    output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Suricata's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops Suricata and returns the capture totals it prints on exit
    /// (`device: eth0: packets: N, drops: D …`): exact, unlike the periodic stats, which trail
    /// af-packet's kernel counters.
    pub fn stop(mut self) -> Option<(u64, u64)> {
        self.terminate();
        let text = std::fs::read_to_string(&self.output).ok()?;
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
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Parses `… device: eth0: packets: 2495, drops: 0 (0.00%), invalid chksum: 0`.
fn exit_totals(line: &str) -> Option<(u64, u64)> {
    let rest = line.split(&format!("{IFACE}: packets: ")).nth(1)?;
    let (packets, rest) = rest.split_once(", drops: ")?;
    let drops = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    Some((packets.trim().parse().ok()?, drops.parse().ok()?))
}

/// Reads complete lines appended to a file since the last call.
pub struct EveTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl EveTail {
    /// Tails `path` from its start (it may not exist yet).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The complete lines written since the last call; a line still being written waits.
    pub fn poll(&mut self) -> Result<Vec<String>, LabError> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(LabError::Io {
                    action: "open",
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let io = |source| LabError::Io {
            action: "read",
            path: self.path.clone(),
            source,
        };
        file.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let mut buf = Vec::new();
        let n = file.read_to_end(&mut buf).map_err(io)?;
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let rest = self.partial.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        Ok(String::from_utf8_lossy(&complete)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
    fn tail_returns_only_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let mut tail = EveTail::new(path.clone());
        assert!(tail.poll().unwrap().is_empty(), "absent file");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"{\"a\":1}\n{\"b\":").unwrap();
        assert_eq!(tail.poll().unwrap(), vec!["{\"a\":1}"]);
        assert!(tail.poll().unwrap().is_empty());
        f.write_all(b"2}\n\n{\"c\":3}\n").unwrap();
        assert_eq!(tail.poll().unwrap(), vec!["{\"b\":2}", "{\"c\":3}"]);
    }
}
