//! osmem-server for provision's tests: an in-memory OpenSearch-API EMULATOR (PyPI
//! `osmem-server`), not OpenSearch. It answers index templates, `_bulk`, `_search` with
//! aggregations, `_count`, mappings and `_cluster/health`; it has no ISM, Alerting,
//! Notifications or Dashboards API and ignores authentication, which `standin.rs` plays.
//!
//! The lab has its own launcher (`lab/src/osmem.rs`, with a network-namespace wrapper and
//! request helpers), but `ids2-provision` may not depend on the lab, not even for tests
//! (docs/development.md), and a test launcher has no place in `ids2-core`, which the sensor and
//! the operator's tool ship. So this one is the few lines a test needs: the same lookup (the
//! same variable, the same venv), a start on a port the emulator picks, a kill on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// Names the osmem-server binary to run instead of the one in `/opt/ids2-venv` (as the lab's).
const BINARY_ENV: &str = "IDS2_OSMEM_SERVER";
/// The Python environment `.ci/install-deps` installs osmem-server into.
const VENV_PYTHON: &str = "/opt/ids2-venv/bin/python";
/// How long the emulator may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The osmem-server binary, or why there is none (for the skip message).
pub fn locate() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(BINARY_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{BINARY_ENV}={} is not a file", p.display()))
        };
    }
    let missing = format!(
        "needs osmem-server (the OpenSearch-API emulator): run .ci/install-deps, which installs \
         it into /opt/ids2-venv, or set {BINARY_ENV}"
    );
    let out = Command::new(VENV_PYTHON)
        .args([
            "-c",
            "import osmem_server; print(osmem_server.resolve_binary())",
        ])
        .stderr(Stdio::null())
        .output()
        .map_err(|_| missing.clone())?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && path.is_file() {
        Ok(path)
    } else {
        Err(missing)
    }
}

/// A running emulator on a loopback port it picked, killed on drop.
pub struct Osmem {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Osmem {
    /// Starts the emulator; it also exits by itself if this test process dies first.
    pub fn start() -> Result<Self, String> {
        let bin = locate()?;
        let mut child = Command::new(&bin)
            .args([
                "-addr",
                "127.0.0.1:0",
                "-no-stdin-watch",
                "-no-ja",
                "-parent-pid",
            ])
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        // The first stdout line is {"url": "http://127.0.0.1:PORT", ...} once it listens.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let url = rx
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| format!("osmem-server gave no address within {START_TIMEOUT:?}"))
            .and_then(|line| {
                serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v["url"].as_str().map(str::to_string))
                    .filter(|u| u.starts_with("http://127.0.0.1:"))
                    .ok_or(format!("osmem-server's first line has no url: {line:?}"))
            });
        match url {
            Ok(url) => Ok(Self { child, url }),
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(why)
            }
        }
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
