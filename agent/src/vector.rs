//! Vector, the shipper: which program runs and the environment it needs to read the rendered
//! `vector.toml` the same way in every version a sensor may run.
//!
//! The sensor runs `$IDS2_VECTOR`, else `vector` on `PATH` ([`program`]). Tests, benchmarks and
//! the lab find it with [`locate`], which also accepts the shared build beside a checkout
//! (`<workspace>/../shared/vector/vector`): one lookup, one order, everywhere.
//!
//! The agent also reads Vector's Prometheus exporter ([`buffer_use`]) for the heartbeat's
//! shipping backlog: how much of the events sink's disk buffer waits for OpenSearch, and
//! whether the optional Redis copy runs ([`RedisCopy`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::metrics::Metrics;
use crate::pipeline::{Backend, Component};
use crate::supervisor::{Shutdown, TaskError};

/// Names the Vector program to run instead of `vector` on `PATH`.
pub const PROGRAM_ENV: &str = "IDS2_VECTOR";

/// Vector 0.57 stopped expanding `${VAR}` (and unescaping `$$`) in config files unless this is
/// set; older versions expand always and ignore it. The rendered `vector.toml` needs expansion
/// in all of them: the basic-auth password is only a reference to `IDS2_OPENSEARCH_PASSWORD`,
/// and a literal `$` in a value is written `$$`. The config is written by the agent alone and
/// Vector's environment is set by the agent or its unit, which is what keeps this safe.
pub const INTERPOLATION_ENV: (&str, &str) =
    ("VECTOR_DANGEROUSLY_ALLOW_ENV_VAR_INTERPOLATION", "true");

/// The sink (and buffer id) that ships events, whose disk buffer is the shipping backlog.
pub const EVENTS_SINK: &str = "opensearch";

/// Bytes waiting in `buffer_id`'s buffer and the buffer's size, from the exporter's text.
/// Vector 0.58 names them `vector_buffer_size_bytes` and `vector_buffer_max_size_bytes`; older
/// releases `vector_buffer_byte_size` and `vector_buffer_max_byte_size`. Either is read;
/// `None` when the exporter lists neither for `buffer_id`.
pub fn parse_buffer_use(text: &str, buffer_id: &str) -> Option<(u64, u64)> {
    let label = format!("buffer_id=\"{buffer_id}\"");
    let (mut bytes, mut max) = (None, None);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        if !labels.split(',').any(|l| l == label) {
            continue;
        }
        let slot = match name {
            "vector_buffer_size_bytes" | "vector_buffer_byte_size" => &mut bytes,
            "vector_buffer_max_size_bytes" | "vector_buffer_max_byte_size" => &mut max,
            _ => continue,
        };
        // The value, then an optional timestamp.
        if let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *slot = Some(v.max(0.0) as u64);
        }
    }
    // Vector reports the buffer's size from the start but its contents only once an event
    // has passed through it: a buffer that never held one is empty.
    match (bytes, max) {
        (None, None) => None,
        (bytes, max) => Some((bytes.unwrap_or(0), max.unwrap_or(0))),
    }
}

/// Reads [`parse_buffer_use`] for `buffer_id` from Vector's exporter at `addr`.
pub async fn buffer_use(addr: &str, buffer_id: &str) -> Result<(u64, u64), String> {
    let text = scrape(addr).await?;
    parse_buffer_use(&text, buffer_id)
        .ok_or_else(|| format!("http://{addr}/metrics: no buffer size for buffer_id {buffer_id:?}"))
}

/// The exporter's text at `addr` (`shipping.vector_metrics_listen`).
pub async fn scrape(addr: &str) -> Result<String, String> {
    let url = format!("http://{addr}/metrics");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| format!("{url}: {e}"))?;
    client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("{url}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("{url}: {e}"))
}

/// Whether the exporter's text lists component `id`: Vector registers a sink's metrics when it
/// builds the sink, before any event passes.
pub fn runs_component(text: &str, id: &str) -> bool {
    let label = format!("component_id=\"{id}\"");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .any(|l| l.contains(&label))
}

/// The optional Redis copy (`shipping.redis`): its part of Vector's config and the Redis it
/// needs. Vector's redis sink connects while Vector builds its pipeline, and with nothing
/// answering, Vector 0.58 waited 8 minutes before it gave up, shipping nothing to OpenSearch
/// meanwhile (docs/sensor.md, "The Redis copy"). So Vector gets the part only while Redis answers: the agent asks
/// [`RedisCopy::ready`] before each start, and restarts Vector once Redis is back. The rendered
/// part is the one source of truth: present in the current generation only with
/// `shipping.redis`, and naming the endpoint, so a reloaded config needs no other state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisCopy {
    /// `vector-redis.toml` of the current generation.
    pub config: PathBuf,
}

/// How long a Redis gets to accept the connection and answer PING.
const REDIS_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The component id of the Redis sink in `vector-redis.toml`.
pub const REDIS_SINK: &str = "redis";

impl RedisCopy {
    /// The copy's part in `rendered_dir`'s current generation.
    pub fn new(rendered_dir: &Path) -> Self {
        Self {
            config: rendered_dir
                .join("current")
                .join(crate::render::VECTOR_REDIS_TOML),
        }
    }

    /// Whether the current generation has a Redis copy (`shipping.redis` was set).
    pub fn configured(&self) -> bool {
        self.config.is_file()
    }

    /// The `--config` arguments Vector starts with beyond `vector.toml`: the part while Redis
    /// answers, none without a part; the error says why Vector starts without the copy.
    pub async fn start_args(&self) -> Result<Vec<OsString>, String> {
        if !self.configured() {
            return Ok(Vec::new());
        }
        match self.ready().await {
            Ok(()) => Ok(vec!["--config".into(), self.config.clone().into()]),
            Err(why) => Err(format!(
                "Vector starts without the Redis copy ({why}); the agent restarts it with the \
                 copy once Redis answers"
            )),
        }
    }

    /// `Ok` once Redis accepts a connection and answers PING with PONG (a `rediss://` endpoint:
    /// accepts the connection); the error says what it did instead.
    pub async fn ready(&self) -> Result<(), String> {
        let text = tokio::fs::read_to_string(&self.config)
            .await
            .map_err(|e| format!("{}: {e}", self.config.display()))?;
        let url = endpoint(&text)
            .ok_or_else(|| format!("{}: no endpoint line", self.config.display()))?;
        let (tls, rest) = match url.strip_prefix("rediss://") {
            Some(rest) => (true, rest),
            None => (false, url.strip_prefix("redis://").unwrap_or(&url)),
        };
        probe(&host_port(rest), tls).await
    }
}

/// How often the agent looks whether Vector runs the Redis copy it should.
const REDIS_COPY_CHECK: Duration = Duration::from_secs(10);

/// The least time between two restarts for the copy: should a Vector never list the sink
/// (a version that registers its metrics later, a sink that fails to build), the watch must
/// not restart it every check.
const REDIS_COPY_RESTART_SPACING: Duration = Duration::from_secs(300);

/// Brings the Redis copy back: Vector started without it while Redis did not answer, and only a
/// restart adds a `--config` (a reload re-reads the files Vector started with). Sets
/// `ids2_redis_copy_up`.
pub struct RedisCopyWatch {
    copy: RedisCopy,
    /// Vector's exporter (`shipping.vector_metrics_listen`), which lists the sinks it runs.
    exporter: String,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    period: Duration,
    spacing: Duration,
    last_restart: Mutex<Option<Instant>>,
}

impl RedisCopyWatch {
    /// Watches `copy` for the Vector that `backend` runs and whose exporter is at `exporter`.
    pub fn new(
        copy: RedisCopy,
        exporter: String,
        backend: Arc<dyn Backend>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            copy,
            exporter,
            backend,
            metrics,
            period: REDIS_COPY_CHECK,
            spacing: REDIS_COPY_RESTART_SPACING,
            last_restart: Mutex::new(None),
        }
    }

    /// Looks every `period` until shutdown.
    pub async fn run(&self, mut shutdown: Shutdown) -> Result<(), TaskError> {
        while shutdown.sleep(self.period).await {
            self.check().await;
        }
        Ok(())
    }

    async fn check(&self) {
        if !self.copy.configured() {
            self.metrics.redis_copy_up.remove(&[]);
            return;
        }
        // No exporter: Vector is starting, stopped or down, which its backend sees to.
        let Ok(text) = scrape(&self.exporter).await else {
            return;
        };
        if runs_component(&text, REDIS_SINK) {
            self.metrics.redis_copy_up.set(&[], 1.0);
            return;
        }
        self.metrics.redis_copy_up.set(&[], 0.0);
        let last = *self.last_restart.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < self.spacing) {
            return;
        }
        match self.copy.ready().await {
            Ok(()) => {
                tracing::info!("Redis answers: restarting Vector with the Redis copy");
                *self.last_restart.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                if let Err(e) = self.backend.restart(Component::Vector).await {
                    tracing::error!("restarting Vector with the Redis copy: {e}");
                }
            }
            Err(why) => tracing::debug!("the Redis copy waits: {why}"),
        }
    }
}

/// The sink's `endpoint` in the rendered part: a TOML basic string written by the `vstr`
/// filter, whose escapes are JSON's.
fn endpoint(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("endpoint = "))
        .and_then(|v| serde_json::from_str(v.trim()).ok())
}

async fn probe(addr: &str, tls: bool) -> Result<(), String> {
    let ping = async {
        let mut conn = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("Redis at {addr}: {e}"))?;
        if tls {
            return Ok(());
        }
        conn.write_all(b"PING\r\n")
            .await
            .map_err(|e| format!("Redis at {addr}: {e}"))?;
        let mut reply = [0u8; 64];
        let n = conn
            .read(&mut reply)
            .await
            .map_err(|e| format!("Redis at {addr}: {e}"))?;
        let reply = String::from_utf8_lossy(&reply[..n]);
        if reply.starts_with("+PONG") {
            Ok(())
        } else {
            Err(format!(
                "Redis at {addr} answered PING with {:?}",
                reply.trim_end()
            ))
        }
    };
    tokio::time::timeout(REDIS_PROBE_TIMEOUT, ping)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "Redis at {addr}: no answer within {} s",
                REDIS_PROBE_TIMEOUT.as_secs()
            ))
        })
}

/// `host:port` of a Redis URL's authority (after the scheme): no user info, 6379 by default.
fn host_port(rest: &str) -> String {
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let has_port = match host.rsplit_once(':') {
        Some((h, port)) => !port.is_empty() && (!h.contains(':') || h.ends_with(']')),
        None => false,
    };
    if has_port {
        host.to_string()
    } else {
        format!("{host}:6379")
    }
}

/// The shared Vector build beside a checkout of this workspace.
const SHARED_BUILD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vector/vector");

/// The program the agent runs: `$IDS2_VECTOR`, else `vector` (searched on `PATH`).
pub fn program() -> OsString {
    std::env::var_os(PROGRAM_ENV)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "vector".into())
}

/// Vector for tests, benchmarks and the lab: `$IDS2_VECTOR`, else `vector` on `PATH`, else the
/// shared build beside the workspace. The error says what was tried, for a skip message.
pub fn locate() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(PROGRAM_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{PROGRAM_ENV}={} is not a file", p.display()))
        };
    }
    if let Some(p) = crate::files::find_program("vector") {
        return Ok(p);
    }
    let shared = PathBuf::from(SHARED_BUILD);
    if shared.is_file() {
        return Ok(shared);
    }
    Err(format!(
        "no Vector: set {PROGRAM_ENV}, put `vector` on PATH, or place the shared build at {}",
        shared.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::recorder::Recorder;

    /// Lines as Vector 0.58's exporter writes them (read off the shared build), and the older
    /// names.
    #[test]
    fn buffer_use_is_read_by_either_name_for_its_buffer_only() {
        let text = "\
# TYPE vector_buffer_size_bytes gauge
vector_buffer_max_size_bytes{buffer_id=\"opensearch\",buffer_type=\"disk\",component_id=\"opensearch\",stage=\"0\"} 268435488 1796284603438
vector_buffer_size_bytes{buffer_id=\"opensearch_heartbeat\",buffer_type=\"disk\",stage=\"0\"} 5 1796284603438
vector_buffer_size_bytes{buffer_id=\"opensearch\",buffer_type=\"disk\",component_id=\"opensearch\",stage=\"0\"} 39780656 1796284603438
";
        assert_eq!(
            parse_buffer_use(text, "opensearch"),
            Some((39_780_656, 268_435_488))
        );
        let old = "vector_buffer_byte_size{buffer_id=\"opensearch\"} 1024\n\
                   vector_buffer_max_byte_size{buffer_id=\"opensearch\"} 4096\n";
        assert_eq!(parse_buffer_use(old, "opensearch"), Some((1024, 4096)));
        assert_eq!(parse_buffer_use(text, "redis"), None);
        let idle = "vector_buffer_max_size_bytes{buffer_id=\"opensearch\"} 268435488\n";
        assert_eq!(parse_buffer_use(idle, "opensearch"), Some((0, 268_435_488)));
    }

    #[test]
    fn redis_urls_give_the_address_to_probe() {
        assert_eq!(host_port("127.0.0.1:6380/0"), "127.0.0.1:6380");
        assert_eq!(host_port("localhost/2"), "localhost:6379");
        assert_eq!(host_port(":pw@redis.lan:7000/0?x=1"), "redis.lan:7000");
        assert_eq!(host_port("[::1]:6390/0"), "[::1]:6390");
        assert_eq!(host_port("[::1]/0"), "[::1]:6379");
    }

    #[test]
    fn a_component_runs_when_the_exporter_lists_it() {
        let text = "# HELP x\n\
            vector_buffer_max_size_events{buffer_id=\"redis\",component_id=\"redis\",component_kind=\"sink\"} 10000\n";
        assert!(runs_component(text, "redis"));
        assert!(!runs_component(text, "red"));
        assert!(!runs_component("# component_id=\"redis\"\n", "redis"));
    }

    #[test]
    fn the_endpoint_is_read_from_the_rendered_part() {
        let part = "[sinks.redis]\ntype = \"redis\"\nendpoint = \"redis://127.0.0.1:6380/0\"\n";
        assert_eq!(endpoint(part).as_deref(), Some("redis://127.0.0.1:6380/0"));
        assert_eq!(endpoint("[sinks.redis]\n"), None);
    }

    /// Answers every connection with `reply` (none when empty) after reading a request, then
    /// holds it open a while, as a silent server would; the address.
    async fn answering(reply: String) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = c.read(&mut buf).await;
                    if !reply.is_empty() {
                        let _ = c.write_all(reply.as_bytes()).await;
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        addr
    }

    /// A real listener on loopback stands for each answer: PONG, an error reply, silence, and
    /// a refused port.
    #[tokio::test]
    async fn redis_answers_only_with_pong() {
        assert_eq!(
            probe(&answering("+PONG\r\n".into()).await, false).await,
            Ok(())
        );
        let loading = probe(
            &answering("-LOADING Redis is loading\r\n".into()).await,
            false,
        )
        .await
        .unwrap_err();
        assert!(loading.contains("LOADING"), "{loading}");
        let silent = probe(&answering(String::new()).await, false)
            .await
            .unwrap_err();
        assert!(silent.contains("no answer within 2 s"), "{silent}");
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap().to_string();
        drop(free);
        let refused = probe(&addr, false).await.unwrap_err();
        assert!(
            refused.starts_with(&format!("Redis at {addr}:")),
            "{refused}"
        );
    }

    fn exporter_reply(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// Vector without the sink and Redis answering: one restart, then none within the spacing;
    /// Vector listing the sink: the gauge says so and nothing restarts; no part: no gauge.
    #[tokio::test]
    async fn the_watch_restarts_vector_for_the_copy_once_per_spacing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("current")).unwrap();
        let redis = answering("+PONG\r\n".into()).await;
        let part = dir.path().join("current/vector-redis.toml");
        std::fs::write(&part, format!("endpoint = \"redis://{redis}/0\"\n")).unwrap();
        let without = answering(exporter_reply(
            "vector_buffer_max_size_bytes{buffer_id=\"opensearch\",component_id=\"opensearch\"} 1\n",
        ))
        .await;
        let restarts = Arc::new(Recorder::default());
        let metrics = Arc::new(Metrics::new("test"));
        let watch = RedisCopyWatch::new(
            RedisCopy::new(dir.path()),
            without,
            restarts.clone(),
            metrics.clone(),
        );
        let count = || {
            let calls = restarts.calls();
            assert!(calls.iter().all(|c| c == "restart vector"), "{calls:?}");
            calls.len()
        };
        watch.check().await;
        assert_eq!(count(), 1);
        assert_eq!(metrics.redis_copy_up.get(&[]), Some(0.0));
        watch.check().await;
        assert_eq!(count(), 1, "restarted again within the spacing");

        let with = answering(exporter_reply(
            "vector_buffer_max_size_events{buffer_id=\"redis\",component_id=\"redis\"} 10000\n",
        ))
        .await;
        let watch = RedisCopyWatch::new(
            RedisCopy::new(dir.path()),
            with,
            restarts.clone(),
            metrics.clone(),
        );
        watch.check().await;
        assert_eq!(count(), 1);
        assert_eq!(metrics.redis_copy_up.get(&[]), Some(1.0));

        std::fs::remove_file(&part).unwrap();
        watch.check().await;
        assert_eq!(metrics.redis_copy_up.get(&[]), None);
    }

    /// The fallback assumes this crate sits one level below the workspace root.
    #[test]
    fn the_crate_sits_one_level_below_the_workspace_root() {
        let manifest =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
                .expect("the parent directory holds a Cargo.toml");
        assert!(manifest.contains("[workspace]"), "{manifest}");
    }
}
