//! osmem-server: an in-memory OpenSearch-API emulator (PyPI `osmem-server`), the local server
//! the lab ships to and the tests run the real Vector against. It answers index templates,
//! `_bulk`, `_search` with aggregations, `_count`, `_cat/indices` and mappings the way
//! OpenSearch does; it has no ISM, Alerting or Dashboards API and ignores authentication. It is
//! an emulator, not OpenSearch: what it lacks stays untested against it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// Names the osmem-server binary to run instead of the one in `/opt/ids2-venv`.
pub const BINARY_ENV: &str = "IDS2_OSMEM_SERVER";
/// The Python environment `.ci/install-deps` installs osmem-server into.
const VENV_PYTHON: &str = "/opt/ids2-venv/bin/python";
/// How long the emulator may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The osmem-server binary: `$IDS2_OSMEM_SERVER`, else the one the package in `/opt/ids2-venv`
/// bundles. The error says what was tried, for a skip message.
pub fn locate() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(BINARY_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{BINARY_ENV}={} is not a file", p.display()))
        };
    }
    let missing = || {
        format!(
            "no osmem-server (the OpenSearch-API emulator): run .ci/install-deps, which installs \
             it into /opt/ids2-venv, or set {BINARY_ENV}"
        )
    };
    let out = Command::new(VENV_PYTHON)
        .args([
            "-c",
            "import osmem_server; print(osmem_server.resolve_binary())",
        ])
        .stderr(Stdio::null())
        .output()
        .map_err(|_| missing())?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && path.is_file() {
        Ok(path)
    } else {
        Err(missing())
    }
}

/// Why a request to the emulator failed.
#[derive(Debug, thiserror::Error)]
pub enum OsmemError {
    /// The process could not be started or did not say where it listens.
    #[error("osmem-server did not start: {0}")]
    Start(String),
    /// No HTTP answer.
    #[error("{method} {path} on osmem-server: {source}")]
    Io {
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An answer that is not HTTP with a JSON body, or a refusal.
    #[error("{method} {path} on osmem-server answered {status}: {body}")]
    Answer {
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// HTTP status (0 when the status line was unreadable).
        status: u16,
        /// The body, shortened.
        body: String,
    },
}

/// A running emulator on a loopback port it picked, killed on drop.
pub struct Osmem {
    child: Child,
    addr: SocketAddr,
    url: String,
}

impl Osmem {
    /// Starts `bin` on `127.0.0.1:0`; it exits by itself if this process dies first.
    pub fn start(bin: &Path) -> Result<Self, OsmemError> {
        Self::start_with(Command::new(bin))
    }

    /// Starts the emulator with `cmd`, which runs the binary (possibly through a wrapper such
    /// as `ip netns exec`), adding the arguments that pick a port and tie it to this process.
    pub fn start_with(cmd: Command) -> Result<Self, OsmemError> {
        Self::start_on(cmd, "127.0.0.1:0")
    }

    /// [`Self::start_with`] on `addr` (`127.0.0.1:PORT`): for a network namespace of its own
    /// (`nsenter --net`), whose clients were told the port beforehand. Only a process in that
    /// namespace reaches it, so [`Self::request`] from outside does not.
    pub fn start_on(mut cmd: Command, addr: &str) -> Result<Self, OsmemError> {
        let mut child = cmd
            .args(["-addr", addr, "-no-stdin-watch", "-no-ja", "-parent-pid"])
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| OsmemError::Start(e.to_string()))?;
        // The first stdout line is {"url": "http://127.0.0.1:PORT", ...} once it listens.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let ready = rx
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| format!("no address within {START_TIMEOUT:?}"))
            .and_then(|line| {
                let v: Value = serde_json::from_str(&line)
                    .map_err(|e| format!("unreadable first line {line:?}: {e}"))?;
                let url = v["url"].as_str().ok_or(format!("no url in {line:?}"))?;
                let addr = url
                    .strip_prefix("http://")
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                    .ok_or(format!("unexpected url {url:?}"))?;
                Ok((url.to_string(), addr))
            });
        match ready {
            Ok((url, addr)) => Ok(Self { child, addr, url }),
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(OsmemError::Start(why))
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One request; the body is JSON (or NDJSON for `_bulk`). Any status is returned with the
    /// decoded body; only an unreadable answer is an error.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, Value), OsmemError> {
        let io = |source| OsmemError::Io {
            method: method.into(),
            path: path.into(),
            source,
        };
        let mut s = TcpStream::connect_timeout(&self.addr, REQUEST_TIMEOUT).map_err(io)?;
        s.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
        s.set_write_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
        let body = body.unwrap_or_default();
        let kind = if path.contains("_bulk") {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        // HTTP/1.0: the answer ends when the connection closes, never chunked.
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        s.write_all(head.as_bytes()).map_err(io)?;
        s.write_all(body).map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(io)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let json = if payload.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(payload).map_err(|_| OsmemError::Answer {
                method: method.into(),
                path: path.into(),
                status,
                body: payload.chars().take(500).collect(),
            })?
        };
        Ok((status, json))
    }

    /// Like [`Osmem::request`], but any status other than 2xx is an error.
    pub fn ok(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Value, OsmemError> {
        match self.request(method, path, body)? {
            (200..=299, v) => Ok(v),
            (status, v) => Err(OsmemError::Answer {
                method: method.into(),
                path: path.into(),
                status,
                body: v.to_string().chars().take(500).collect(),
            }),
        }
    }

    /// Documents per index among those `pattern` (e.g. `ids2-*`) matches, after a refresh so
    /// everything indexed so far is counted.
    pub fn indices(&self, pattern: &str) -> Result<BTreeMap<String, u64>, OsmemError> {
        self.ok("POST", &format!("/{pattern}/_refresh"), None)?;
        let list = self.ok("GET", &format!("/_cat/indices/{pattern}?format=json"), None)?;
        let mut out = BTreeMap::new();
        for row in list.as_array().into_iter().flatten() {
            let (Some(index), Some(count)) = (
                row["index"].as_str(),
                row["docs.count"].as_str().and_then(|c| c.parse().ok()),
            ) else {
                continue;
            };
            out.insert(index.to_string(), count);
        }
        Ok(out)
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The emulator starts on a port it picks, takes a bulk request and counts per index.
    #[test]
    fn starts_indexes_and_counts() {
        let bin = match locate() {
            Ok(b) => b,
            Err(why) => {
                eprintln!("SKIP: {why}");
                return;
            }
        };
        let os = Osmem::start(&bin).unwrap();
        assert!(os.url().starts_with("http://127.0.0.1:"));
        let bulk = b"{\"create\":{\"_index\":\"t-a\",\"_id\":\"1\"}}\n{\"x\":1}\n\
                     {\"create\":{\"_index\":\"t-a\",\"_id\":\"1\"}}\n{\"x\":1}\n\
                     {\"create\":{\"_index\":\"t-b\",\"_id\":\"2\"}}\n{\"x\":2}\n";
        let r = os.ok("POST", "/_bulk", Some(bulk)).unwrap();
        assert_eq!(r["items"][1]["create"]["status"], 409, "{r}");
        let counts = os.indices("t-*").unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([("t-a".to_string(), 1), ("t-b".to_string(), 1)])
        );
        let (status, _) = os.request("GET", "/no-such-index/_count", None).unwrap();
        assert_eq!(status, 404);
    }
}
