//! Heartbeats: one ECS document ([`ids2_core::heartbeat`]) every `fleet.heartbeat_secs`, appended to
//! `<logs.path>/heartbeat.json`, which Vector tails and ships (through its disk buffer) to
//! `<prefix>-heartbeat-YYYY.MM.DD`.
//!
//! The document is built from what the agent already knows: the metrics registry (throttle
//! level, CPU/RAM, capture counters and the drop ratio since the last beat, EVE counts,
//! connectivity), Vector's events buffer (read from its exporter), the evidence ring's reach (from
//! its file names), the history repository's head,
//! the rule-set state file and the intel feeds' state file. The file is capped at [`MAX_FILE_BYTES`]: when a line would
//! pass the cap, the file is renamed to `heartbeat.json.1` (replacing the older one) and a new
//! one started, the rename-and-create rotation Vector's file source follows.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;

use crate::config::Settings;
use crate::files::CappedLines;
use crate::gitops::{Author, History};
use crate::metrics::Metrics;
use crate::supervisor::{Shutdown, TaskError};

/// The document and its fields are the portable core's, shared with `ids2-provision`.
pub use ids2_core::heartbeat::{
    connectivity_state, document, timestamp, RuleSetState, Snapshot, DATASET, FIELDS,
};

/// The heartbeat file inside `logs.path` (Vector's heartbeat source reads it).
pub use crate::render::HEARTBEAT_FILE;
/// The previous heartbeat file, kept until the next rotation so Vector can finish it.
pub use crate::render::HEARTBEAT_ROTATED_FILE as ROTATED_FILE;
/// Largest heartbeat file; about 1500 heartbeats (6 hours at the default period).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Appends heartbeat lines to a capped file.
#[derive(Debug, Clone)]
pub struct HeartbeatWriter(CappedLines);

impl HeartbeatWriter {
    /// A writer into `dir` (normally `logs.path`) with the [`MAX_FILE_BYTES`] cap.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::with_cap(dir, MAX_FILE_BYTES)
    }

    /// A writer with another cap (tests).
    pub fn with_cap(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        let dir = dir.into();
        Self(CappedLines::new(
            dir.join(HEARTBEAT_FILE),
            dir.join(ROTATED_FILE),
            max_bytes,
        ))
    }

    /// The file written to.
    pub fn path(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }

    /// Appends one document as a line, rotating first when the line would pass the cap.
    pub fn write(&self, doc: &Value) -> io::Result<()> {
        let mut line = serde_json::to_vec(doc).expect("JSON values always serialise");
        line.push(b'\n');
        self.0.append(&mut VecDeque::from([line]))
    }
}

/// The supervised heartbeat task.
pub struct Heartbeat {
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    writer: HeartbeatWriter,
    started: Instant,
    previous: Option<(Instant, f64)>,
    /// Capture counters (packets, drops) at the previous heartbeat.
    previous_capture: Option<(u64, u64)>,
    /// Vector's events buffer (bytes, size) as last read; `None` while Vector is not reachable.
    shipping_buffer: Option<(u64, u64)>,
    alerts_seen: f64,
    /// `ids2_eve_events_total{event_type="oversized"}` at the previous heartbeat.
    oversized_seen: f64,
    last_alert: Option<OffsetDateTime>,
}

impl Heartbeat {
    /// A heartbeat for the agent that started at `started`, writing into `logs.path`.
    pub fn new(settings: Arc<Settings>, metrics: Arc<Metrics>, started: Instant) -> Self {
        let writer = HeartbeatWriter::new(&settings.config.logs.path);
        Self {
            settings,
            metrics,
            writer,
            started,
            previous: None,
            previous_capture: None,
            shipping_buffer: None,
            alerts_seen: 0.0,
            oversized_seen: 0.0,
            last_alert: None,
        }
    }

    /// Takes a snapshot now from the metrics, the history and the rule-set state.
    pub fn snapshot(&mut self) -> Snapshot {
        let c = &self.settings.config;
        let m = &self.metrics;
        let now = Instant::now();
        let at = OffsetDateTime::now_utc();
        let events: f64 = m.eve_events.snapshot().iter().map(|(_, v)| v).sum();
        let alerts = m.eve_events.get(&["alert"]).unwrap_or(0.0);
        if alerts > self.alerts_seen {
            self.last_alert = Some(at);
            self.alerts_seen = alerts;
        }
        // The EVE counters start with the agent, so the first rate is over its whole uptime.
        let (since, before) = self.previous.unwrap_or((self.started, 0.0));
        let elapsed = now.duration_since(since).as_secs_f64();
        let eve_per_second = (elapsed > 0.0).then(|| (events - before).max(0.0) / elapsed);
        self.previous = Some((now, events));
        let oversized = m.eve_events.get(&[crate::eve::OVERSIZED]).unwrap_or(0.0);
        let eve_oversized = Some((oversized - self.oversized_seen).max(0.0) as u64);
        self.oversized_seen = oversized;
        let packets = m.capture_packets.get(&[]).map(|v| v as u64);
        let kernel_drops = m.capture_drops.get(&[]).map(|v| v as u64);
        let drop_ratio = packets.zip(kernel_drops).and_then(|(p, d)| {
            // Counters that went back mean Suricata restarted: count from zero.
            let (p0, d0) = match self.previous_capture {
                Some((p0, d0)) if p0 <= p && d0 <= d => (p0, d0),
                _ => (0, 0),
            };
            self.previous_capture = Some((p, d));
            (p > p0).then(|| ((d - d0) as f64 / (p - p0) as f64).min(1.0))
        });
        let checks = m.connectivity_up.snapshot();
        let up = checks.iter().filter(|(_, v)| *v >= 1.0).count() as u32;
        let evidence_ring_age_secs = c.evidence.enabled().then(|| {
            let files =
                crate::evidence::ring::list(Path::new(c.evidence.ring_dir(&c.logs))).ok()?;
            let now_us = i64::try_from(at.unix_timestamp_nanos() / 1000).ok()?;
            crate::evidence::ring::wrap_age_secs(&files, now_us)
        });
        Snapshot {
            at: Some(at),
            sensor_id: c.sensor.id.clone(),
            sensor_name: c.sensor.name.clone().unwrap_or_else(|| c.sensor.id.clone()),
            version: env!("CARGO_PKG_VERSION").to_string(),
            hostname: sysinfo::System::host_name().ok(),
            host_uptime_secs: sysinfo::System::uptime().unwrap_or(0),
            interval_secs: c.fleet.heartbeat_secs,
            agent_uptime_secs: now.duration_since(self.started).as_secs(),
            config_commit: config_commit(&self.settings),
            throttle_level: m.throttle_level.get(&[]).map(|v| v as u8),
            cpu_ratio: m.host_cpu.get(&[]),
            memory_ratio: m.host_memory.get(&[]),
            logs_used_ratio: m.logs_used.get(&[]),
            packets,
            kernel_drops,
            drop_ratio,
            shipping_buffer: self.shipping_buffer,
            evidence_ring_age_secs: evidence_ring_age_secs.flatten(),
            eve_per_second,
            eve_oversized,
            last_alert: self.last_alert,
            connectivity: (!checks.is_empty()).then_some((up, checks.len() as u32)),
            rules: RuleSetState::read(Path::new(&c.suricata.rules_dir)),
            policy: ids2_core::heartbeat::PolicyState::read(Path::new(&c.suricata.rules_dir)),
            intel: c.intel.enabled().then(|| {
                crate::intel::feeds::report::summary(
                    &c.intel.all_feeds(),
                    &ids2_core::heartbeat::IntelFeedState::read_all(Path::new(&c.intel.dir)),
                    at,
                )
            }),
        }
    }

    /// Writes one heartbeat now and counts it.
    pub fn beat(&mut self) -> io::Result<Value> {
        let doc = document(&self.snapshot());
        self.writer.write(&doc)?;
        self.metrics.heartbeats.inc(&[]);
        Ok(doc)
    }

    /// Beats every `fleet.heartbeat_secs` until shutdown. A failed write (the tmpfs full or
    /// not mounted yet) is logged and retried at the next beat rather than restarting the task.
    pub async fn run(&mut self, mut shutdown: Shutdown) -> Result<(), TaskError> {
        let period = Duration::from_secs(self.settings.config.fleet.heartbeat_secs.into());
        let vector = self.settings.config.shipping.vector_metrics_listen.clone();
        loop {
            self.shipping_buffer =
                match crate::vector::buffer_use(&vector, crate::vector::EVENTS_SINK).await {
                    Ok(b) => Some(b),
                    Err(e) => {
                        tracing::debug!("shipping backlog unknown: {e}");
                        None
                    }
                };
            if let Err(e) = self.beat() {
                tracing::warn!(path = %self.writer.path().display(), "heartbeat not written: {e}");
            }
            if !shutdown.sleep(period).await {
                return Ok(());
            }
        }
    }
}

/// The history branch head, when the repository exists (reading never creates it).
fn config_commit(settings: &Settings) -> Option<String> {
    let h = &settings.config.history;
    let repo = Path::new(&h.repo);
    // An absent or empty directory has no history yet.
    fs::read_dir(repo).ok()?.next()?.ok()?;
    let author = Author {
        name: h.author_name.clone(),
        email: h.author_email.clone(),
    };
    History::open_or_init(repo, &h.branch, author)
        .and_then(|history| history.head())
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_rotates_at_the_cap_and_keeps_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let w = HeartbeatWriter::with_cap(dir.path(), 4096);
        let doc = document(&Snapshot {
            at: Some(time::macros::datetime!(2026-11-21 10:00:00.5 UTC)),
            sensor_id: "lab-1".into(),
            hostname: Some("pi5".into()),
            connectivity: Some((2, 3)),
            ..Default::default()
        });
        let line_len = serde_json::to_vec(&doc).unwrap().len() as u64 + 1;
        let n = 40;
        for _ in 0..n {
            w.write(&doc).unwrap();
        }
        let current = fs::read_to_string(dir.path().join(HEARTBEAT_FILE)).unwrap();
        let rotated = fs::read_to_string(dir.path().join(ROTATED_FILE)).unwrap();
        for text in [&current, &rotated] {
            assert!(text.len() as u64 <= 4096, "{} bytes", text.len());
            for line in text.lines() {
                assert_eq!(serde_json::from_str::<Value>(line).unwrap(), doc);
            }
        }
        let per_file = 4096 / line_len;
        assert_eq!(rotated.lines().count() as u64, per_file);
        assert_eq!(
            current.lines().count() as u64,
            n % per_file + if n % per_file == 0 { per_file } else { 0 }
        );
    }

    #[test]
    fn beat_reads_metrics_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "sensor: {{id: lab-1}}\nopensearch: {{domain: ids2, region: eu-west-1}}\n\
             logs: {{path: {0}}}\nsuricata: {{rules_dir: {0}/rules}}\nhistory: {{repo: {0}/h.git}}\n",
            dir.path().display()
        );
        let settings = crate::config::from_str(&text, Path::new("t.yaml")).unwrap();
        let metrics = Arc::new(Metrics::new("t"));
        metrics.throttle_level.set(&[], 2.0);
        metrics.capture_drops.set(&[], 9.0);
        metrics.connectivity_up.set(&["dns", "a"], 1.0);
        metrics.connectivity_up.set(&["tls", "a"], 0.0);
        let mut hb = Heartbeat::new(Arc::new(settings), metrics.clone(), Instant::now());
        let first = hb.beat().unwrap();
        assert!(first["ids2"]["alert"].get("last_seen").is_none());
        metrics.eve_events.inc_by(&["alert"], 2.0);
        let second = hb.beat().unwrap();
        assert_eq!(metrics.heartbeats.get(&[]), Some(2.0));
        assert_eq!(second["ids2"]["throttle"]["level"], 2);
        assert_eq!(second["ids2"]["capture"]["kernel_drops"], 9);
        assert_eq!(second["ids2"]["connectivity"]["state"], "degraded");
        assert_eq!(second["ids2"]["alert"]["last_seen"], second["@timestamp"]);
        assert_eq!(second["ids2"]["eve"]["oversized_lines"], 0);
        // Lines skipped as too long are counted per heartbeat, like the drops.
        metrics.eve_events.inc_by(&[crate::eve::OVERSIZED], 2.0);
        assert_eq!(hb.beat().unwrap()["ids2"]["eve"]["oversized_lines"], 2);
        assert_eq!(hb.beat().unwrap()["ids2"]["eve"]["oversized_lines"], 0);
        // No repository yet: none is created just to read its head.
        assert!(second["ids2"].get("config").is_none());
        assert!(!dir.path().join("h.git").exists());
        let lines = fs::read_to_string(dir.path().join(HEARTBEAT_FILE)).unwrap();
        assert_eq!(lines.lines().count(), 4);

        // The drop ratio is over the packets since the previous heartbeat, from zero after a
        // Suricata restart; without Vector's exporter the backlog is left out, not made up.
        metrics.capture_packets.set(&[], 1000.0);
        metrics.capture_drops.set(&[], 10.0);
        assert_eq!(hb.beat().unwrap()["ids2"]["capture"]["drop_ratio"], 0.01);
        metrics.capture_packets.set(&[], 2000.0);
        metrics.capture_drops.set(&[], 510.0);
        let busy = hb.beat().unwrap();
        assert_eq!(busy["ids2"]["capture"]["drop_ratio"], 0.5);
        assert!(busy["ids2"].get("shipping").is_none());
        metrics.capture_packets.set(&[], 100.0);
        metrics.capture_drops.set(&[], 0.0);
        let last = hb.beat().unwrap();
        assert_eq!(last["ids2"]["capture"]["drop_ratio"], 0.0);
        // Evidence is on by default with its ring in logs.path, empty so far: no reach to report.
        assert!(last["ids2"].get("evidence").is_none(), "{last}");
        // The ring's oldest file, named by Suricata after its first packet, started 300 s ago.
        let start = OffsetDateTime::now_utc().unix_timestamp() - 300;
        fs::write(dir.path().join(format!("ring.1.{start}.pcap")), b"").unwrap();
        fs::write(dir.path().join(format!("ring.1.{}.pcap", start + 100)), b"").unwrap();
        let age = hb.beat().unwrap()["ids2"]["evidence"]["ring_age_secs"]
            .as_f64()
            .unwrap();
        assert!((300.0..302.0).contains(&age), "{age}");
    }
}
