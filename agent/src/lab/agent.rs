//! The agent's own runtime pieces in the lab: the daemon's EVE reader and metrics registry over
//! the sensor's EVE file, served on the daemon's `/metrics` endpoint for the lab's duration.
//! The lab's final counts are scraped from that endpoint over HTTP, so the report shows what a
//! Prometheus would see, not what the lab believes it fed in.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::LabError;
use crate::eve::EveReader;
use crate::metrics::{self, Metrics, MetricsServer};
use crate::supervisor::Shutdown;

/// How often the reader polls EVE in the lab; the daemon's 1 s would only slow the final drain.
const READER_POLL: Duration = Duration::from_millis(100);
/// How many start markers are written before giving up on the reader.
const PROBES: u32 = 25;
/// The `event_type` of the lab's start marker in eve.json (counted by the agent like any line).
pub const START_MARKER: &str = "ids2_lab_start";
/// How long a scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agent's `/metrics` said at the end of the lab.
#[derive(Debug, Clone, PartialEq)]
pub struct Scraped {
    /// `ids2_eve_events_total{event_type="alert"}` (0 when no alert was read).
    pub alerts: u64,
    /// `ids2_eve_events_total{event_type="stats"}`.
    pub stats_events: u64,
    /// `ids2_suricata_capture_packets_total`, absent until a `stats` event was read.
    pub capture_packets: Option<u64>,
}

/// The EVE reader and metrics endpoint, on their own tokio runtime (the lab itself is
/// threads and blocking I/O); stopped by [`AgentSide::finish`] or when dropped.
pub struct AgentSide {
    runtime: tokio::runtime::Runtime,
    server: Option<MetricsServer>,
    reader: Option<tokio::task::JoinHandle<Result<(), crate::supervisor::TaskError>>>,
    stop: watch::Sender<bool>,
    url: String,
    eve: PathBuf,
}

impl AgentSide {
    /// Serves metrics on `listen` and follows `<logs_dir>/eve.json`: every line appended after
    /// this returns is counted.
    pub fn start(logs_dir: &Path, listen: SocketAddr) -> Result<Self, LabError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lab-agent")
            .enable_all()
            .build()
            .map_err(|e| LabError::Service("start the agent's runtime", e))?;
        let eve = logs_dir.join("eve.json");
        let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION")));
        let server = runtime
            .block_on(metrics::serve(listen, metrics.clone()))
            .map_err(LabError::MetricsListen)?;
        let url = format!("http://{}/metrics", server.local_addr());
        let (stop, stopped) = watch::channel(false);
        let mut reader = EveReader::new(&logs_dir.display().to_string());
        reader.poll = READER_POLL;
        let reader = runtime.spawn(reader.run(metrics.clone(), Shutdown::new(stopped)));
        let side = Self {
            runtime,
            server: Some(server),
            reader: Some(reader),
            stop,
            url,
            eve,
        };
        side.wait_reading(&metrics)?;
        Ok(side)
    }

    /// Waits until the reader follows the file. It skips what a file holds at its first poll
    /// (the daemon counts from its own start), so lines written before that poll would be lost:
    /// probe lines are appended until one is counted, and Suricata starts only after that.
    fn wait_reading(&self, metrics: &Metrics) -> Result<(), LabError> {
        let io = |source| LabError::Io {
            action: "write a start marker to",
            path: self.eve.clone(),
            source,
        };
        for _ in 0..PROBES {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.eve)
                .map_err(io)?;
            writeln!(f, "{{\"event_type\":\"{START_MARKER}\"}}").map_err(io)?;
            drop(f);
            std::thread::sleep(READER_POLL * 2);
            if metrics.eve_events.get(&[START_MARKER]).is_some() {
                return Ok(());
            }
        }
        Err(LabError::Metrics(format!(
            "the EVE reader did not pick up {} within {:?}",
            self.eve.display(),
            READER_POLL * 2 * PROBES
        )))
    }

    /// The metrics URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Lets the reader drain EVE (call it once Suricata has exited, so the file is final),
    /// stops it, scrapes `/metrics` over HTTP and stops the endpoint.
    pub fn finish(mut self) -> Result<Scraped, LabError> {
        // Two full polls after the writer is gone: the last one reads to the end of the file.
        std::thread::sleep(READER_POLL * 3);
        let _ = self.stop.send(true);
        if let Some(reader) = self.reader.take() {
            match self.runtime.block_on(reader) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(LabError::Metrics(format!(
                        "the EVE reader failed on {}: {e}",
                        self.eve.display()
                    )))
                }
                Err(e) => return Err(LabError::Metrics(format!("the EVE reader panicked: {e}"))),
            }
        }
        let body = self.runtime.block_on(scrape(&self.url));
        if let Some(server) = self.server.take() {
            self.runtime
                .block_on(server.shutdown(Duration::from_secs(1)));
        }
        let samples = parse_samples(&body?);
        let get = |series: &str| samples.get(series).map(|v| *v as u64);
        Ok(Scraped {
            alerts: get(r#"ids2_eve_events_total{event_type="alert"}"#).unwrap_or(0),
            stats_events: get(r#"ids2_eve_events_total{event_type="stats"}"#).unwrap_or(0),
            capture_packets: get("ids2_suricata_capture_packets_total"),
        })
    }
}

impl Drop for AgentSide {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            self.runtime
                .block_on(server.shutdown(Duration::from_secs(1)));
        }
    }
}

async fn scrape(url: &str) -> Result<String, LabError> {
    let fail = |e: reqwest::Error| LabError::Metrics(format!("cannot scrape {url}: {e}"));
    // The endpoint is on loopback: a proxy from the environment must not be asked for it.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(SCRAPE_TIMEOUT)
        .build()
        .map_err(fail)?;
    client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(fail)?
        .text()
        .await
        .map_err(fail)
}

/// Series (name with its label set, as written) → value, from text format 0.0.4.
fn parse_samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_by_series() {
        let text = "# HELP ids2_eve_events_total x\n# TYPE ids2_eve_events_total counter\n\
                    ids2_eve_events_total{event_type=\"alert\"} 7\n\
                    ids2_eve_events_total{event_type=\"stats\"} 2\n\
                    ids2_suricata_capture_packets_total 1234\n";
        let s = parse_samples(text);
        assert_eq!(s[r#"ids2_eve_events_total{event_type="alert"}"#], 7.0);
        assert_eq!(s["ids2_suricata_capture_packets_total"], 1234.0);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn counts_every_line_written_after_start_and_scrapes_them() {
        let dir = tempfile::tempdir().unwrap();
        let agent = AgentSide::start(dir.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(agent.url().starts_with("http://127.0.0.1:"));
        assert!(!agent.url().ends_with(":0/metrics"));
        // Written as soon as start returns: counted.
        let mut eve = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("eve.json"))
            .unwrap();
        for _ in 0..3 {
            writeln!(
                eve,
                r#"{{"event_type":"alert","alert":{{"signature_id":1}}}}"#
            )
            .unwrap();
        }
        writeln!(
            eve,
            r#"{{"event_type":"stats","stats":{{"capture":{{"kernel_packets":42,"kernel_drops":0}}}}}}"#
        )
        .unwrap();
        writeln!(eve, r#"{{"event_type":"dns"}}"#).unwrap();
        drop(eve);
        let scraped = agent.finish().unwrap();
        assert_eq!(
            scraped,
            Scraped {
                alerts: 3,
                stats_events: 1,
                capture_packets: Some(42)
            }
        );
    }
}
