//! Heartbeats: one ECS document every `fleet.heartbeat_secs`, appended to
//! `<logs.path>/heartbeat.json`, which Vector tails and ships (through its disk buffer) to
//! `<prefix>-heartbeat-YYYY.MM.DD`.
//!
//! The document is built from what the agent already knows: the metrics registry (throttle
//! level, CPU/RAM, capture counters, EVE counts, connectivity), the history repository's head
//! and the rule-set state file. The file is capped at [`MAX_FILE_BYTES`]: when a line would
//! pass the cap, the file is renamed to `heartbeat.json.1` (replacing the older one) and a new
//! one started, the rename-and-create rotation Vector's file source follows.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::config::Settings;
use crate::ecs::fields::EcsField;
use crate::files::CappedLines;
use crate::gitops::{Author, History};
use crate::metrics::Metrics;
use crate::supervisor::{Shutdown, TaskError};

use super::rules::RuleSetState;

/// The heartbeat file inside `logs.path` (Vector's heartbeat source reads it).
pub use crate::render::HEARTBEAT_FILE;
/// The previous heartbeat file, kept until the next rotation so Vector can finish it.
pub use crate::render::HEARTBEAT_ROTATED_FILE as ROTATED_FILE;
/// Largest heartbeat file; about 1500 heartbeats (6 hours at the default period).
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// `event.dataset` of every heartbeat.
pub const DATASET: &str = "ids2.heartbeat";

/// Every field a heartbeat carries, with its type: ECS types from the ECS reference outside
/// `ids2.*`. `ids2-provision` maps the heartbeat index from exactly this list.
pub const FIELDS: &[EcsField] = &[
    f("@timestamp", "date"),
    f("event.kind", "keyword"),
    f("event.dataset", "keyword"),
    f("event.module", "keyword"),
    f("observer.hostname", "keyword"),
    f("observer.name", "keyword"),
    f("observer.type", "keyword"),
    f("observer.vendor", "keyword"),
    f("observer.product", "keyword"),
    f("observer.version", "keyword"),
    f("host.hostname", "keyword"),
    f("host.uptime", "long"),
    f("host.cpu.usage", "scaled_float"),
    f("ids2.heartbeat.interval_secs", "long"),
    f("ids2.agent.uptime_secs", "long"),
    f("ids2.config.commit", "keyword"),
    f("ids2.throttle.level", "long"),
    f("ids2.host.memory_ratio", "scaled_float"),
    f("ids2.logs.used_ratio", "scaled_float"),
    f("ids2.capture.packets", "long"),
    f("ids2.capture.kernel_drops", "long"),
    f("ids2.eve.events_per_second", "float"),
    f("ids2.alert.last_seen", "date"),
    f("ids2.connectivity.state", "keyword"),
    f("ids2.connectivity.checks_up", "long"),
    f("ids2.connectivity.checks_total", "long"),
    f("ids2.rules.version", "keyword"),
    f("ids2.rules.loaded", "long"),
    f("ids2.rules.updated", "date"),
];

const fn f(name: &'static str, ecs_type: &'static str) -> EcsField {
    EcsField { name, ecs_type }
}

/// What one heartbeat reports; `None` leaves the field out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// When the heartbeat was taken.
    pub at: Option<OffsetDateTime>,
    /// `sensor.id`.
    pub sensor_id: String,
    /// `sensor.name`.
    pub sensor_name: String,
    /// The agent's version.
    pub version: String,
    /// The host's name.
    pub hostname: Option<String>,
    /// Seconds since the host booted.
    pub host_uptime_secs: u64,
    /// `fleet.heartbeat_secs`.
    pub interval_secs: u32,
    /// Seconds since the agent started.
    pub agent_uptime_secs: u64,
    /// Head of the history branch: the configuration commit in force.
    pub config_commit: Option<String>,
    /// Throttle level 0–3.
    pub throttle_level: Option<u8>,
    /// Host CPU use, 0–1.
    pub cpu_ratio: Option<f64>,
    /// Host memory use, 0–1.
    pub memory_ratio: Option<f64>,
    /// How full the log tmpfs is, 0–1.
    pub logs_used_ratio: Option<f64>,
    /// Suricata's `capture.kernel_packets`.
    pub packets: Option<u64>,
    /// Suricata's `capture.kernel_drops`.
    pub kernel_drops: Option<u64>,
    /// EVE events per second since the previous heartbeat.
    pub eve_per_second: Option<f64>,
    /// When an alert was last seen (to within one heartbeat period).
    pub last_alert: Option<OffsetDateTime>,
    /// Connectivity checks passing, and run.
    pub connectivity: Option<(u32, u32)>,
    /// The active rule set.
    pub rules: Option<RuleSetState>,
}

/// Formats a time as ECS/OpenSearch expect it: RFC 3339, UTC, milliseconds.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The connectivity summary: `up` when every check passes, `down` when none does,
/// `degraded` in between, `unknown` before the first round.
pub fn connectivity_state(up: u32, total: u32) -> &'static str {
    match (up, total) {
        (_, 0) => "unknown",
        (u, t) if u == t => "up",
        (0, _) => "down",
        _ => "degraded",
    }
}

/// The heartbeat document for a snapshot.
pub fn document(s: &Snapshot) -> Value {
    let at = s.at.unwrap_or_else(OffsetDateTime::now_utc);
    let mut ids2 = Map::new();
    let mut put = |path: &[&str], v: Value| {
        if v.is_null() {
            return;
        }
        let mut obj = &mut ids2;
        for p in &path[..path.len() - 1] {
            obj = obj
                .entry(p.to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("heartbeat sections are objects");
        }
        obj.insert(path[path.len() - 1].to_string(), v);
    };
    put(&["heartbeat", "interval_secs"], json!(s.interval_secs));
    put(&["agent", "uptime_secs"], json!(s.agent_uptime_secs));
    put(&["config", "commit"], json!(s.config_commit));
    put(&["throttle", "level"], json!(s.throttle_level));
    put(&["host", "memory_ratio"], json!(s.memory_ratio.map(round3)));
    put(
        &["logs", "used_ratio"],
        json!(s.logs_used_ratio.map(round3)),
    );
    put(&["capture", "packets"], json!(s.packets));
    put(&["capture", "kernel_drops"], json!(s.kernel_drops));
    put(
        &["eve", "events_per_second"],
        json!(s.eve_per_second.map(round3)),
    );
    put(&["alert", "last_seen"], json!(s.last_alert.map(timestamp)));
    let (up, total) = s.connectivity.unwrap_or((0, 0));
    put(
        &["connectivity", "state"],
        json!(connectivity_state(up, total)),
    );
    if s.connectivity.is_some() {
        put(&["connectivity", "checks_up"], json!(up));
        put(&["connectivity", "checks_total"], json!(total));
    }
    if let Some(r) = &s.rules {
        put(&["rules", "version"], json!(r.version));
        put(&["rules", "loaded"], json!(r.rules));
        put(&["rules", "updated"], json!(r.updated));
    }
    let mut host = Map::new();
    if let Some(h) = &s.hostname {
        host.insert("hostname".into(), json!(h));
    }
    host.insert("uptime".into(), json!(s.host_uptime_secs));
    if let Some(cpu) = s.cpu_ratio {
        host.insert("cpu".into(), json!({"usage": round3(cpu)}));
    }
    json!({
        "@timestamp": timestamp(at),
        "event": {"kind": "state", "dataset": DATASET, "module": "ids2"},
        "observer": {
            "hostname": s.sensor_id,
            "name": s.sensor_name,
            "type": "ids",
            "vendor": "ids2",
            "product": "ids2",
            "version": s.version,
        },
        "host": host,
        "ids2": ids2,
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

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
    alerts_seen: f64,
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
            alerts_seen: 0.0,
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
        let checks = m.connectivity_up.snapshot();
        let up = checks.iter().filter(|(_, v)| *v >= 1.0).count() as u32;
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
            packets: m.capture_packets.get(&[]).map(|v| v as u64),
            kernel_drops: m.capture_drops.get(&[]).map(|v| v as u64),
            eve_per_second,
            last_alert: self.last_alert,
            connectivity: (!checks.is_empty()).then_some((up, checks.len() as u32)),
            rules: RuleSetState::read(Path::new(&c.suricata.rules_dir)),
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
        loop {
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

    fn full() -> Snapshot {
        Snapshot {
            at: Some(time::macros::datetime!(2026-11-21 10:00:00.5 UTC)),
            sensor_id: "lab-1".into(),
            sensor_name: "Lab 1".into(),
            version: "0.1.0".into(),
            hostname: Some("pi5".into()),
            host_uptime_secs: 3600,
            interval_secs: 15,
            agent_uptime_secs: 120,
            config_commit: Some("0123abcd".into()),
            throttle_level: Some(1),
            cpu_ratio: Some(0.41234),
            memory_ratio: Some(0.5),
            logs_used_ratio: Some(0.25),
            packets: Some(1000),
            kernel_drops: Some(3),
            eve_per_second: Some(12.5),
            last_alert: Some(time::macros::datetime!(2026-11-21 09:59:50 UTC)),
            connectivity: Some((2, 3)),
            rules: Some(RuleSetState {
                version: "abc123".into(),
                rules: 42,
                updated: "2026-11-21T00:00:00.000Z".into(),
                sources: vec!["et/open".into()],
            }),
        }
    }

    fn flatten(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&p, v, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }

    #[test]
    fn full_snapshot_emits_exactly_the_listed_fields() {
        let doc = document(&full());
        let mut emitted = Vec::new();
        flatten("", &doc, &mut emitted);
        emitted.sort();
        let mut listed: Vec<String> = FIELDS.iter().map(|f| f.name.to_string()).collect();
        listed.sort();
        assert_eq!(emitted, listed);
        assert_eq!(doc["@timestamp"], "2026-11-21T10:00:00.500Z");
        assert_eq!(doc["event"]["kind"], "state");
        assert_eq!(doc["host"]["cpu"]["usage"], 0.412);
        assert_eq!(doc["ids2"]["connectivity"]["state"], "degraded");
        assert_eq!(
            doc["ids2"]["alert"]["last_seen"],
            "2026-11-21T09:59:50.000Z"
        );
    }

    #[test]
    fn unknown_values_are_left_out() {
        let doc = document(&Snapshot {
            sensor_id: "lab-1".into(),
            ..Default::default()
        });
        assert!(doc["ids2"].get("rules").is_none());
        assert!(doc["host"].get("cpu").is_none());
        assert_eq!(doc["ids2"]["connectivity"]["state"], "unknown");
        assert!(doc["ids2"]["connectivity"].get("checks_up").is_none());
    }

    #[test]
    fn connectivity_states() {
        assert_eq!(connectivity_state(0, 0), "unknown");
        assert_eq!(connectivity_state(3, 3), "up");
        assert_eq!(connectivity_state(0, 2), "down");
        assert_eq!(connectivity_state(1, 2), "degraded");
    }

    #[test]
    fn writer_rotates_at_the_cap_and_keeps_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let w = HeartbeatWriter::with_cap(dir.path(), 4096);
        let doc = document(&full());
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
        // No repository yet: none is created just to read its head.
        assert!(second["ids2"].get("config").is_none());
        assert!(!dir.path().join("h.git").exists());
        let lines = fs::read_to_string(dir.path().join(HEARTBEAT_FILE)).unwrap();
        assert_eq!(lines.lines().count(), 2);
    }
}
