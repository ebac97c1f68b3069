//! A real `moto_server` (the AWS emulator) on a free loopback port, with request recording
//! on so tests can count exactly which API calls reached it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds `moto_server`: `$IDS2_MOTO_SERVER`, then `/opt/ids2-venv/bin/moto_server`, then PATH.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("IDS2_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new("/opt/ids2-venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    })
}

/// A running moto_server, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    recording: PathBuf,
    _dir: tempfile::TempDir,
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path (and query) of the URL.
    pub path: String,
}

impl Moto {
    /// Starts moto; `None` (after printing why) when it is not installed.
    /// `enforce_auth` makes moto check signatures and IAM from the first request.
    pub fn start(enforce_auth: bool) -> Option<Moto> {
        let Some(bin) = find() else {
            eprintln!(
                "SKIP: needs moto_server (set IDS2_MOTO_SERVER, or run .ci/install-deps to \
                 create /opt/ids2-venv with moto[server])"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let recording = dir.path().join("recording.jsonl");
        // Ephemeral port: bind 0, read it back, release it for moto. Retried because another
        // process may take the port in between.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("bind an ephemeral port")
                .port();
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", &recording)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if enforce_auth {
                cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
            }
            let mut child = cmd.spawn().expect("spawn moto_server");
            if wait_ready(&mut child, SocketAddr::from(([127, 0, 0, 1], port))) {
                return Some(Moto {
                    child,
                    url: format!("http://127.0.0.1:{port}"),
                    recording,
                    _dir: dir,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start on any of 5 ports");
    }

    /// Every request moto received so far (moto's own API excluded).
    pub fn requests(&self) -> Vec<Recorded> {
        let text = std::fs::read_to_string(&self.recording).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                let url = v["url"].as_str().unwrap_or_default();
                let path = url
                    .split_once("://")
                    .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
                    .unwrap_or_default();
                Recorded {
                    method: v["method"].as_str().unwrap_or_default().to_string(),
                    path,
                }
            })
            .filter(|r| !r.path.starts_with("/moto-api/"))
            .collect()
    }

    /// How many CreateDomain calls moto received.
    pub fn create_calls(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/2021-01-01/opensearch/domain")
            .count()
    }
}

fn wait_ready(child: &mut Child, addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            let _ = s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut buf = [0u8; 12];
            if s.read(&mut buf).is_ok_and(|n| n > 0) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
