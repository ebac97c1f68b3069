//! The shipping path for real: the real Vector ([`ids2_agent::vector::locate`]) running a
//! rendered `vector.toml` against a local OpenSearch-API server (the osmem-server emulator,
//! [`crate::osmem`]), for the end-to-end tests (crate `ids2-e2e`), the benchmarks and the lab.
//!
//! The seam that points a sensor at the local server is the sensor's own config, nothing
//! else: `opensearch.endpoint: http://127.0.0.1:PORT` (plain http is accepted for loopback
//! only) with basic auth, which the emulator ignores ([`opensearch_yaml`]). The rendered file
//! is used as rendered; several Vectors run side by side because each config gives its
//! exporter a port of its own (`shipping.vector_metrics_listen`, [`free_addr`]), which
//! [`Vector::start`] reads back from the rendered file.
//!
//! Around it: a TCP [`Proxy`] a test switches off and on (the server "away"), the documents a
//! set of EVE lines must become ([`expected_documents`]: index and deterministic id, computed
//! here independently of the VRL program) and what the server holds ([`indexed_ids`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::osmem::{Osmem, OsmemError};

/// The password Vector is given for basic auth; the emulator ignores authentication.
pub const PLACEHOLDER_PASSWORD: &str = "emulator-ignores-auth";
/// How long Vector may take to serve its metrics after a start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Vector may take to drain and exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Documents fetched per search request by [`indexed_ids`].
const PAGE: usize = 5_000;

/// Why the harness failed.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// Vector could not be started or did not come up.
    #[error("Vector: {0}")]
    Vector(String),
    /// The config does not validate or render.
    #[error("config: {0}")]
    Config(String),
    /// A request to the server failed.
    #[error(transparent)]
    Server(#[from] OsmemError),
    /// A file of the harness could not be written or read.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The `opensearch:` section (a YAML flow mapping, for a `config.yaml` line) that points a
/// sensor at the server at `url` (`http://127.0.0.1:PORT`): basic auth with a password file
/// written into `dir`, since the emulator ignores authentication and Vector needs no AWS
/// credentials then.
pub fn opensearch_yaml(url: &str, index_prefix: &str, dir: &Path) -> Result<String, ShipError> {
    let password = dir.join("opensearch-password");
    std::fs::write(&password, PLACEHOLDER_PASSWORD).map_err(|source| ShipError::File {
        path: password.clone(),
        source,
    })?;
    Ok(format!(
        "opensearch: {{domain: ids2, region: eu-west-1, endpoint: '{url}', \
         index_prefix: {index_prefix}, auth: {{method: basic, username: ids2, \
         password_file: '{}'}}}}",
        password.display()
    ))
}

/// Renders the config text `yaml` (as `ids2-agent apply` would) and writes its `vector.toml`
/// into `dir`; the path of the file.
pub fn render_vector_toml(yaml: &str, dir: &Path) -> Result<PathBuf, ShipError> {
    let settings = ids2_agent::config::from_str(yaml, Path::new("config.yaml"))
        .map_err(|e| ShipError::Config(e.to_string()))?;
    let set = ids2_agent::render::render(&settings, &Default::default())
        .map_err(|e| ShipError::Config(e.to_string()))?;
    let text = set
        .get(ids2_agent::render::VECTOR_TOML)
        .ok_or_else(|| ShipError::Config("the render has no vector.toml".into()))?;
    let path = dir.join(ids2_agent::render::VECTOR_TOML);
    std::fs::write(&path, text).map_err(|source| ShipError::File {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// A loopback address free at the time of the call (for Vector's metrics exporter).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
}

/// The environment the agent (or its unit) gives Vector; for a test that runs the agent, which
/// starts Vector itself.
pub fn vector_env() -> Vec<(String, String)> {
    let (var, on) = ids2_agent::vector::INTERPOLATION_ENV;
    vec![
        (var.to_string(), on.to_string()),
        (
            "IDS2_OPENSEARCH_PASSWORD".to_string(),
            PLACEHOLDER_PASSWORD.to_string(),
        ),
    ]
}

/// The address a rendered `vector.toml` gives Vector's Prometheus exporter
/// (`shipping.vector_metrics_listen`).
pub fn exporter_addr(config: &Path) -> Result<SocketAddr, ShipError> {
    let text = std::fs::read_to_string(config).map_err(|source| ShipError::File {
        path: config.to_path_buf(),
        source,
    })?;
    let mut in_sink = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_sink = line == "[sinks.vector_prometheus]";
        } else if let Some(value) = line.strip_prefix("address = ").filter(|_| in_sink) {
            return value.trim_matches('"').parse().map_err(|_| {
                ShipError::Config(format!("{}: exporter address {value}", config.display()))
            });
        }
    }
    Err(ShipError::Config(format!(
        "{} has no [sinks.vector_prometheus] address",
        config.display()
    )))
}

/// The real Vector running one rendered config; killed on drop. Its output goes to a log file
/// (appended across restarts) that [`Vector::log`] reads.
pub struct Vector {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    metrics: SocketAddr,
    child: Option<Child>,
}

impl Vector {
    /// Starts `bin` on `config` (a rendered `vector.toml`), logging to `log`, and waits until
    /// its metrics are served, which is after every component has started.
    pub fn start(bin: &Path, config: &Path, log: &Path) -> Result<Self, ShipError> {
        let mut v = Self {
            bin: bin.to_path_buf(),
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            metrics: exporter_addr(config)?,
            child: None,
        };
        v.spawn()?;
        Ok(v)
    }

    fn spawn(&mut self) -> Result<(), ShipError> {
        let file = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| ShipError::File {
                    path: path.to_path_buf(),
                    source,
                })
        };
        let out = file(&self.log)?;
        let err = out.try_clone().map_err(|source| ShipError::File {
            path: self.log.clone(),
            source,
        })?;
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .envs(vector_env())
            .env_remove("VECTOR_LOG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| ShipError::Vector(format!("cannot run {}: {e}", self.bin.display())))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.metrics_text().is_ok() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(ShipError::Vector(format!(
                        "exited ({status}) at start:\n{}",
                        tail(&self.log())
                    )));
                }
            }
            if Instant::now() > deadline {
                return Err(ShipError::Vector(format!(
                    "no metrics within {START_TIMEOUT:?}:\n{}",
                    tail(&self.log())
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no drain, no checkpoint written beyond what Vector already flushed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for Vector to drain and exit (killed after 30 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts Vector again on the same config, data directory and metrics address.
    pub fn restart(&mut self) -> Result<(), ShipError> {
        self.stop();
        self.spawn()
    }

    /// Everything Vector has logged so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where its Prometheus exporter listens.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    /// Vector's metrics in the Prometheus text format.
    pub fn metrics_text(&self) -> Result<String, std::io::Error> {
        scrape(self.metrics)
    }

    /// The sum of the samples of `name` whose labels include every `key="value"` of `labels`
    /// (0 when there is none); `None` when Vector does not answer.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.metrics_text()
            .ok()
            .map(|text| metric_sum(&text, name, labels))
    }
}

impl Drop for Vector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last 40 lines of `text`, for error messages.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// GET /metrics from a Prometheus exporter at `addr`.
pub fn scrape(addr: SocketAddr) -> Result<String, std::io::Error> {
    use std::io::Write;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    match raw.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") =>
        {
            Ok(body.to_string())
        }
        _ => Err(std::io::Error::other(format!(
            "unexpected answer: {}",
            raw.lines().next().unwrap_or_default()
        ))),
    }
}

/// The sum of the samples of `name` in Prometheus text whose labels include all of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            // `name{labels} value [timestamp]`: Vector's exporter writes the timestamp.
            let (metric, rest, sample) = match l.split_once('{') {
                Some((m, r)) => {
                    let (labels, sample) = r.split_once('}')?;
                    (m, labels, sample)
                }
                None => {
                    let (m, sample) = l.split_once(' ')?;
                    (m, "", sample)
                }
            };
            let value = sample.split_whitespace().next()?;
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

/// A TCP proxy on loopback in front of `target`, owned by a test: while it is down, every open
/// connection is cut and new ones are closed as soon as they are accepted, as when a sensor
/// loses its uplink; [`Proxy::set_up`] brings it back.
pub struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `target`.
    pub fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (up2, conns2, stop2) = (up.clone(), conns.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if !up2.load(Ordering::Relaxed) {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        }
                        let Ok(server) = TcpStream::connect(target) else {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                            let mut list = conns2.lock().unwrap();
                            list.push(c2);
                            list.push(s2);
                        }
                        pipe(client.try_clone(), server.try_clone());
                        pipe(server.try_clone(), client.try_clone());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Self {
            addr,
            up,
            conns,
            stop,
        })
    }

    /// `http://127.0.0.1:PORT`, the endpoint to give the sensor.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Down: cuts every open connection and refuses new ones. Up: forwards again.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        if !up {
            for c in self.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.set_up(false);
    }
}

/// Copies `from` to `to` on a thread until either side closes.
fn pipe(from: std::io::Result<TcpStream>, to: std::io::Result<TcpStream>) {
    let (Ok(mut from), Ok(mut to)) = (from, to) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Index → ids: what the server holds, or what it must hold.
pub type Documents = BTreeMap<String, BTreeSet<String>>;

/// The documents the EVE `lines` of sensor `sensor_id` must become, computed without VRL:
/// index `<prefix>-suricata.<event_type>-YYYY.MM.DD` (the UTC date of the EVE timestamp) and
/// id SHA-256 of `<sensor_id>|<line>` in hex, as `templates/ecs.vrl.tera` documents it.
/// Byte-identical lines give one document by design. A line that is not an EVE event is an
/// error naming it.
pub fn expected_documents<'a>(
    sensor_id: &str,
    index_prefix: &str,
    lines: impl IntoIterator<Item = &'a str>,
) -> Result<Documents, String> {
    let mut out = Documents::new();
    for line in lines {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
        let etype = v["event_type"]
            .as_str()
            .ok_or_else(|| format!("no event_type: {line}"))?
            .to_lowercase();
        let ts = v["timestamp"]
            .as_str()
            .ok_or_else(|| format!("no timestamp: {line}"))?;
        let date = utc_date(ts).ok_or_else(|| format!("unreadable timestamp {ts:?}"))?;
        out.entry(format!("{index_prefix}-suricata.{etype}-{date}"))
            .or_default()
            .insert(document_id(sensor_id, line));
    }
    Ok(out)
}

/// SHA-256 of `<sensor_id>|<line>`, lower-case hex: the ECS program's `event.id`.
pub fn document_id(sensor_id: &str, line: &str) -> String {
    let digest = Sha256::digest(format!("{sensor_id}|{line}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYY.MM.DD` in UTC of an EVE timestamp (`2024-01-02T03:04:05.123456+0100`).
fn utc_date(ts: &str) -> Option<String> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]"
    );
    let t = time::OffsetDateTime::parse(ts, format)
        .ok()?
        .to_offset(time::UtcOffset::UTC);
    Some(format!(
        "{:04}.{:02}.{:02}",
        t.year(),
        u8::from(t.month()),
        t.day()
    ))
}

/// The ids of every document in the indices `pattern` matches, per index, with the number of
/// documents (a count above the number of distinct ids would mean duplicates).
pub fn indexed_ids(os: &Osmem, pattern: &str) -> Result<BTreeMap<String, Vec<String>>, ShipError> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for index in os.indices(pattern)?.keys() {
        let mut after: Option<Value> = None;
        loop {
            let mut q = json!({"size": PAGE, "_source": false, "sort": [{"_id": "asc"}]});
            if let Some(a) = &after {
                q["search_after"] = a.clone();
            }
            let body = serde_json::to_vec(&q).expect("a JSON value");
            let r = os.ok("POST", &format!("/{index}/_search"), Some(&body))?;
            let hits = r["hits"]["hits"].as_array().cloned().unwrap_or_default();
            for h in &hits {
                if let Some(id) = h["_id"].as_str() {
                    out.entry(index.clone()).or_default().push(id.to_string());
                }
            }
            match hits.last() {
                Some(last) if hits.len() == PAGE => after = Some(last["sort"].clone()),
                _ => break,
            }
        }
    }
    Ok(out)
}

/// Compares what the server holds with what it must hold: `Ok` when every expected document
/// is there exactly once and nothing else is; otherwise every difference, per index.
pub fn exactly_once(
    expected: &Documents,
    indexed: &BTreeMap<String, Vec<String>>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (index, want) in expected {
        let got = indexed.get(index).cloned().unwrap_or_default();
        let distinct: BTreeSet<String> = got.iter().cloned().collect();
        if distinct.len() != got.len() {
            problems.push(format!(
                "{index}: {} documents for {} ids",
                got.len(),
                distinct.len()
            ));
        }
        let missing = want.difference(&distinct).count();
        let extra = distinct.difference(want).count();
        if missing > 0 || extra > 0 {
            problems.push(format!(
                "{index}: {missing} of {} missing, {extra} unexpected",
                want.len()
            ));
        }
    }
    for index in indexed.keys().filter(|i| !expected.contains_key(*i)) {
        problems.push(format!(
            "{index}: {} documents, none expected",
            indexed[index].len()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Waits up to `timeout` for `done` to hold, polling every 200 ms; the last value it saw.
pub fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> (bool, T)) -> (bool, T) {
    let deadline = Instant::now() + timeout;
    loop {
        let (ok, v) = probe();
        if ok || Instant::now() > deadline {
            return (ok, v);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// [`wait_for`] on what Vector delivers of the last events a source read, with nothing to
/// follow them. Vector's disk buffer can hold its newest event until another arrives or Vector
/// restarts (vectordotdev/vector#22946, open in 0.58; here about once in seven such waits). So
/// when `probe` does not hold within `timeout` although Vector's `source` has read `read`
/// events, Vector is restarted, which releases what its disk buffer holds, and `probe` gets
/// `timeout` again. A shortfall Vector did not even read is returned as it is.
pub fn wait_releasing<T>(
    vector: &mut Vector,
    source: &str,
    read: u64,
    timeout: Duration,
    mut probe: impl FnMut() -> (bool, T),
) -> (bool, T) {
    let (ok, v) = wait_for(timeout, &mut probe);
    if ok {
        return (ok, v);
    }
    let seen = vector
        .metric(
            "vector_component_received_events_total",
            &[("component_id", source)],
        )
        .unwrap_or_default();
    if seen < read as f64 {
        return (ok, v);
    }
    eprintln!(
        "Vector read all {read} events of `{source}` but has not delivered them after {:?}: \
         restarting it to release what its disk buffer holds (vectordotdev/vector#22946)",
        timeout
    );
    if let Err(e) = vector.restart() {
        eprintln!("restarting Vector failed: {e}");
        return (ok, v);
    }
    wait_for(timeout, probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_indices_follow_the_ecs_program() {
        let a = r#"{"timestamp":"2024-01-01T00:30:00.000000+0100","event_type":"dns"}"#;
        let b = r#"{"timestamp":"2024-01-01T23:30:00.5+0000","event_type":"Alert"}"#;
        let docs = expected_documents("s1", "ids2", [a, b, a]).unwrap();
        // 00:30 at +01:00 is the previous day in UTC; the repeated line is one document.
        assert_eq!(
            docs.keys().collect::<Vec<_>>(),
            [
                "ids2-suricata.alert-2024.01.01",
                "ids2-suricata.dns-2023.12.31"
            ]
        );
        assert_eq!(docs["ids2-suricata.dns-2023.12.31"].len(), 1);
        assert_eq!(document_id("s1", a).len(), 64);
        assert_ne!(document_id("s1", a), document_id("s2", a));
        assert!(expected_documents("s1", "ids2", ["{}"]).is_err());
    }

    #[test]
    fn exactly_once_names_missing_duplicate_and_unexpected_documents() {
        let want = Documents::from([("i".into(), BTreeSet::from(["a".into(), "b".into()]))]);
        let ok = BTreeMap::from([("i".to_string(), vec!["b".into(), "a".into()])]);
        assert_eq!(exactly_once(&want, &ok), Ok(()));
        let bad = BTreeMap::from([
            ("i".to_string(), vec!["a".into(), "a".into()]),
            ("j".to_string(), vec!["c".into()]),
        ]);
        let err = exactly_once(&want, &bad).unwrap_err();
        assert!(err.contains("i: 2 documents for 1 ids"), "{err}");
        assert!(err.contains("i: 1 of 2 missing"), "{err}");
        assert!(err.contains("j: 1 documents, none expected"), "{err}");
    }

    #[test]
    fn metric_sum_matches_name_and_labels() {
        let text = "# TYPE x counter\nx{a=\"1\",b=\"2\"} 3\nx{a=\"1\",b=\"3\"} 4\nxy 9\nx 1\n";
        assert_eq!(metric_sum(text, "x", &[("a", "1")]), 7.0);
        assert_eq!(metric_sum(text, "x", &[("b", "3")]), 4.0);
        assert_eq!(metric_sum(text, "x", &[]), 8.0);
        // Vector 0.58 appends a timestamp to each sample; the value is the first number.
        let stamped = "x{a=\"1\"} 5 1796284603438\nx 2 1796284603438\n";
        assert_eq!(metric_sum(stamped, "x", &[]), 7.0);
    }
}
