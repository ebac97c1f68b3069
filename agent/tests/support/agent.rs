//! Running the real `ids2-agent run` in a test: spawn it with stand-ins first on PATH, follow
//! its log, find its metrics endpoint, and talk HTTP to what it serves.
// Each test binary that includes this uses a different part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A started agent: the process, its log lines as they come, and its metrics address.
pub struct Running {
    pub child: Child,
    pub stderr: mpsc::Receiver<String>,
    pub metrics: SocketAddr,
}

/// Runs `cmd` (the agent binary with any test-specific environment already set) as
/// `run --config CONFIG`, with `bin` first on PATH, and waits up to 20 s for the line that
/// reports the metrics endpoint's address.
pub fn run(mut cmd: Command, config: &Path, bin: &Path) -> Running {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = cmd
        .args(["run", "--config"])
        .arg(config)
        .env("PATH", path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens: a closed pipe would fail the agent's logging.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("agent: {line}");
            let _ = tx.send(line);
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
    Running {
        child,
        stderr: rx,
        metrics,
    }
}

/// The whole HTTP/1.1 response to `GET path`.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

/// `/metrics` split into the response head and the exposition body.
pub fn scrape(addr: SocketAddr) -> (String, String) {
    let resp = http_get(addr, "/metrics");
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

/// Polls `f` every 50 ms until it holds; fails the test naming `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}
