//! Packet evidence (config `evidence`): Suricata's `pcap-log` writes every packet into a short
//! ring ([`ring`]); on each alert the agent copies that flow's packets, both directions and from
//! the flow's first packet, out of the ring into a per-flow pcap kept on persistent storage
//! ([`store`]). The pcap format is read and written by hand ([`pcap`]): no libpcap on the sensor.
//!
//! The copy waits `extract_delay_secs` after an alert, so the packets that follow it (and those
//! Suricata still buffers) are in the ring; alerts of one flow that arrive meanwhile share one
//! copy. A later alert of a kept flow copies it again, keeping the longer of the two.

pub mod pcap;
pub mod ring;
pub mod store;

use std::collections::{HashMap, VecDeque};
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::eve::LineSink;
use crate::supervisor::{Shutdown, Supervisor, TaskError};
use pcap::{Tuple, Writer};
use store::{AlertNote, Entry, Store, StoreError};

/// Flows waiting for their copy at most; alerts of further flows are counted and not kept.
const MAX_PENDING: usize = 1024;

/// The flow an alert names, and the alert itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRef {
    /// The alert, as the store records it.
    pub note: AlertNote,
    /// Suricata's `flow_id`.
    pub flow_id: Option<u64>,
    /// `community_id`.
    pub community_id: Option<String>,
    /// `src_ip`.
    pub src_ip: IpAddr,
    /// `src_port` (0 where the protocol has none).
    pub src_port: u16,
    /// `dest_ip`.
    pub dest_ip: IpAddr,
    /// `dest_port`.
    pub dest_port: u16,
    /// EVE `proto` as written.
    pub proto: String,
    /// The IP protocol number `proto` names.
    pub proto_number: u8,
    /// `flow.start`: the flow's first packet, microseconds since the epoch.
    pub flow_start_us: Option<i64>,
}

#[derive(Deserialize)]
struct EveAlert {
    event_type: String,
    timestamp: String,
    flow_id: Option<u64>,
    community_id: Option<String>,
    src_ip: IpAddr,
    src_port: Option<u16>,
    dest_ip: IpAddr,
    dest_port: Option<u16>,
    proto: serde_json::Value,
    alert: EveAlertBody,
    flow: Option<EveFlow>,
}

#[derive(Deserialize)]
struct EveAlertBody {
    signature_id: u64,
    #[serde(default)]
    signature: String,
}

#[derive(Deserialize)]
struct EveFlow {
    start: Option<String>,
}

impl AlertRef {
    /// Reads an EVE line; `None` unless it is an alert with parseable addresses. `sensor_id`
    /// makes the alert's `event.id` as the ECS program does.
    pub fn from_line(sensor_id: &str, line: &[u8]) -> Option<Self> {
        let ev: EveAlert = serde_json::from_slice(line).ok()?;
        if ev.event_type != "alert" {
            return None;
        }
        let (proto, proto_number) = match &ev.proto {
            serde_json::Value::String(s) => (s.clone(), proto_number(s)?),
            serde_json::Value::Number(n) => (n.to_string(), u8::try_from(n.as_u64()?).ok()?),
            _ => return None,
        };
        let mut hash = Sha256::new();
        hash.update(sensor_id.as_bytes());
        hash.update(b"|");
        hash.update(line);
        Some(Self {
            note: AlertNote {
                event_id: hex::encode(hash.finalize()),
                timestamp: ev.timestamp,
                signature_id: ev.alert.signature_id,
                signature: ev.alert.signature,
            },
            flow_id: ev.flow_id,
            community_id: ev.community_id,
            src_ip: ev.src_ip,
            src_port: ev.src_port.unwrap_or(0),
            dest_ip: ev.dest_ip,
            dest_port: ev.dest_port.unwrap_or(0),
            proto,
            proto_number,
            flow_start_us: ev.flow.and_then(|f| parse_eve_time(f.start.as_deref()?)),
        })
    }

    /// The file stem of its evidence.
    pub fn stem(&self) -> String {
        match &self.community_id {
            Some(c) => store::stem_of(c),
            None => format!("flow-{}", self.flow_id.unwrap_or(0)),
        }
    }

    /// Whether a packet belongs to this flow, in either direction. ICMP alerts carry no ports
    /// and the decoder gives ICMP packets none, so both sides are 0 there.
    pub fn matches(&self, t: &Tuple) -> bool {
        if t.proto != self.proto_number {
            return false;
        }
        let portless = !matches!(self.proto_number, 6 | 17 | 132 | 136);
        let fwd = t.src == self.src_ip
            && t.dst == self.dest_ip
            && (portless || (t.sport == self.src_port && t.dport == self.dest_port));
        let rev = t.src == self.dest_ip
            && t.dst == self.src_ip
            && (portless || (t.sport == self.dest_port && t.dport == self.src_port));
        fwd || rev
    }
}

/// EVE's protocol names (Suricata's `proto` field); another protocol comes as its number.
fn proto_number(name: &str) -> Option<u8> {
    Some(match name {
        "TCP" => 6,
        "UDP" => 17,
        "ICMP" => 1,
        "IPv6-ICMP" => 58,
        "SCTP" => 132,
        "UDPLite" => 136,
        "GRE" => 47,
        "ESP" => 50,
        other => other.parse().ok()?,
    })
}

/// EVE's `2009-02-23T13:23:33.331321+0000` as microseconds since the epoch.
fn parse_eve_time(s: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]"
    );
    let t = time::OffsetDateTime::parse(s, format).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

/// What one copy found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Copied {
    /// Packets written.
    pub packets: u64,
    /// Time of the first packet written.
    pub first_us: i64,
    /// Time of the last packet written.
    pub last_us: i64,
    /// Ring files read.
    pub files: u64,
    /// True when it stopped at `max_bytes`.
    pub truncated: bool,
}

/// Writes the packets of `alert`'s flow found in the ring files (oldest first) to `out` as a
/// pcap, from the flow's start on, stopping before `max_bytes`. Packets of another link type than
/// the first match are left out (one pcap has one link type). `None` when none was found.
pub fn copy_flow(
    files: &[ring::RingFile],
    alert: &AlertRef,
    out: impl Write,
    max_bytes: u64,
) -> std::io::Result<Option<Copied>> {
    // A packet time a little before the flow's own start is the same packet (Suricata prints
    // the start from the first packet, rounded the same way); a microsecond of slack.
    let from = alert.flow_start_us.map_or(i64::MIN, |s| s - 1);
    let mut writer: Option<(u32, Writer<BufWriter<_>>)> = None;
    let mut out = Some(out);
    let (mut c, mut written) = (Copied::default(), 24u64);
    'files: for f in files {
        // A file that vanished (Suricata wrapped the ring meanwhile) or is not a pcap yet (just
        // opened, header still buffered) has nothing to give.
        let Ok(mut reader) = f.open() else { continue };
        c.files += 1;
        let linktype = reader.header.linktype;
        while let Some(rec) = reader.next_record() {
            if rec.ts_us < from {
                continue;
            }
            let Some(t) = pcap::tuple(linktype, &rec.data) else {
                continue;
            };
            if !alert.matches(&t) {
                continue;
            }
            if writer.is_none() {
                let sink = BufWriter::new(out.take().expect("taken once"));
                writer = Some((linktype, Writer::new(sink, linktype)?));
                c.first_us = rec.ts_us;
            }
            let Some((lt, w)) = writer.as_mut() else {
                unreachable!("set above")
            };
            if *lt != linktype {
                continue;
            }
            let size = 16 + rec.data.len() as u64;
            if written + size > max_bytes {
                c.truncated = true;
                break 'files;
            }
            w.write(&rec)?;
            written += size;
            c.packets += 1;
            c.last_us = c.last_us.max(rec.ts_us);
        }
    }
    match writer {
        Some((_, w)) => {
            w.finish()?;
            Ok(Some(c))
        }
        None => Ok(None),
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct EvidenceStats {
    flows: AtomicU64,
    bytes: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
    copies: AtomicU64,
    empty: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// The ring's reach in milliseconds; `u64::MAX` while it has no file.
    wrap_age_ms: AtomicU64,
}

impl EvidenceStats {
    /// Appends the Prometheus families.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut one = |name: &str, kind: &str, help: &str, v: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        one(
            "ids2_evidence_flows",
            "gauge",
            "Alerted flows whose packets the evidence store keeps.",
            get(&self.flows).to_string(),
        );
        one(
            "ids2_evidence_bytes",
            "gauge",
            "Bytes the evidence store takes.",
            get(&self.bytes).to_string(),
        );
        one(
            "ids2_evidence_evictions_total",
            "counter",
            "Flows evicted from the evidence store to stay under evidence.store_max_mb.",
            get(&self.evictions).to_string(),
        );
        one(
            "ids2_evidence_expired_total",
            "counter",
            "Flows removed from the evidence store after evidence.retention_days.",
            get(&self.expired).to_string(),
        );
        one(
            "ids2_evidence_copies_total",
            "counter",
            "Alerted flows copied out of the ring into the evidence store.",
            get(&self.copies).to_string(),
        );
        one(
            "ids2_evidence_not_in_ring_total",
            "counter",
            "Alerted flows with no packet left in the ring (it wrapped before the copy).",
            get(&self.empty).to_string(),
        );
        one(
            "ids2_evidence_failures_total",
            "counter",
            "Copies that failed to read the ring or write the store.",
            get(&self.failed).to_string(),
        );
        one(
            "ids2_evidence_dropped_total",
            "counter",
            "Alerts whose flow was not copied because too many flows were waiting.",
            get(&self.dropped).to_string(),
        );
        let age = get(&self.wrap_age_ms);
        one(
            "ids2_evidence_ring_wrap_age_seconds",
            "gauge",
            "How far back the packet ring reaches: seconds since its oldest file's first packet \
             (NaN while the ring is empty).",
            if age == u64::MAX {
                "NaN".into()
            } else {
                format!("{:.3}", age as f64 / 1000.0)
            },
        );
    }

    /// The ring's reach in seconds, when it has a file.
    pub fn wrap_age_secs(&self) -> Option<f64> {
        match self.wrap_age_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(ms as f64 / 1000.0),
        }
    }
}

/// What `keep` did with one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// Copied (or copied again) into the store.
    Stored(Entry),
    /// The ring held none of its packets; a kept copy, if any, stays as it was.
    NotInRing,
}

/// Copies flows out of a ring directory into a store: the part the daemon and tests share.
#[derive(Debug, Clone)]
pub struct Keeper {
    /// Where Suricata writes the ring (the path-root seam).
    pub ring_dir: PathBuf,
    /// The store.
    pub store: Store,
    /// Counters.
    pub stats: Arc<EvidenceStats>,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The ring directory could not be listed.
    #[error("cannot list the packet ring in {}: {source}", dir.display())]
    Ring {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A copy could not be written.
    #[error("cannot write evidence for flow {stem}: {source}")]
    Write {
        /// The flow's file stem.
        stem: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Keeper {
    /// The keeper for validated settings; `None` with `evidence.mode: off`.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        let c = &settings.config;
        let e = &c.evidence;
        e.enabled().then(|| Self {
            ring_dir: PathBuf::from(e.ring_dir(&c.logs)),
            store: store_of(settings),
            stats: Arc::default(),
        })
    }

    /// Copies the flow of `alerts` (all of one flow, the first naming it) into the store, then
    /// keeps the store within its limits. Blocking file I/O.
    pub fn keep(&self, alerts: &[AlertRef], now_unix: u64) -> Result<Kept, EvidenceError> {
        let first = alerts.first().expect("at least one alert");
        let stem = first.stem();
        let files = ring::list(&self.ring_dir).map_err(|source| EvidenceError::Ring {
            dir: self.ring_dir.clone(),
            source,
        })?;
        self.note_ring(&files, now_unix);
        let write = |source| EvidenceError::Write {
            stem: stem.clone(),
            source,
        };
        let tmp = self.store.temp()?;
        let copied =
            copy_flow(&files, first, tmp.as_file(), self.store.max_bytes).map_err(write)?;
        let old = self.store.get_stem(&stem);
        let Some(copied) = copied else {
            self.stats.empty.fetch_add(1, Ordering::Relaxed);
            if let Some(mut old) = old {
                // The packets are gone from the ring but the alert still points at the copy.
                add_alerts(&mut old, alerts);
                old.updated_unix = now_unix;
                self.store.write_entry(&old)?;
            }
            return Ok(Kept::NotInRing);
        };
        let bytes = tmp.as_file().metadata().map_err(write)?.len();
        let fresh = Entry {
            community_id: first.community_id.clone(),
            flow_ids: Vec::new(),
            src_ip: first.src_ip,
            src_port: first.src_port,
            dest_ip: first.dest_ip,
            dest_port: first.dest_port,
            proto: first.proto.clone(),
            first_us: copied.first_us,
            last_us: copied.last_us,
            packets: copied.packets,
            bytes,
            truncated: copied.truncated,
            alerts: Vec::new(),
            updated_unix: now_unix,
        };
        let entry = match old {
            // The ring has wrapped past part of the flow since the first copy: keep that one.
            Some(mut old) if old.packets > fresh.packets => {
                add_alerts(&mut old, alerts);
                old.updated_unix = now_unix;
                self.store.write_entry(&old)?;
                old
            }
            old => {
                let mut entry = fresh;
                if let Some(old) = old {
                    entry.flow_ids = old.flow_ids;
                    entry.alerts = old.alerts;
                }
                add_alerts(&mut entry, alerts);
                self.store.commit(tmp, &entry)?;
                entry
            }
        };
        self.stats.copies.fetch_add(1, Ordering::Relaxed);
        self.enforce(now_unix)?;
        Ok(Kept::Stored(entry))
    }

    /// Applies retention and the cap, and refreshes the store's gauges.
    pub fn enforce(&self, now_unix: u64) -> Result<(), EvidenceError> {
        let evicted = self.store.enforce(now_unix)?;
        self.stats
            .evictions
            .fetch_add(evicted.over_cap, Ordering::Relaxed);
        self.stats
            .expired
            .fetch_add(evicted.expired, Ordering::Relaxed);
        let entries = self.store.list()?;
        self.stats
            .flows
            .store(entries.len() as u64, Ordering::Relaxed);
        self.stats
            .bytes
            .store(self.store.total_bytes()?, Ordering::Relaxed);
        Ok(())
    }

    /// Reads the ring's reach into the stats.
    pub fn refresh_ring(&self, now_unix: u64) {
        if let Ok(files) = ring::list(&self.ring_dir) {
            self.note_ring(&files, now_unix);
        }
    }

    fn note_ring(&self, files: &[ring::RingFile], now_unix: u64) {
        let now_us = i64::try_from(now_unix).unwrap_or(i64::MAX) * 1_000_000;
        let ms = ring::wrap_age_secs(files, now_us).map_or(u64::MAX, |s| (s * 1000.0) as u64);
        self.stats.wrap_age_ms.store(ms, Ordering::Relaxed);
    }
}

fn add_alerts(entry: &mut Entry, alerts: &[AlertRef]) {
    for a in alerts {
        if let Some(f) = a.flow_id {
            if !entry.flow_ids.contains(&f) {
                entry.flow_ids.push(f);
            }
        }
        if !entry.alerts.iter().any(|n| n.event_id == a.note.event_id) {
            entry.alerts.push(a.note.clone());
        }
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Alerts waiting for their copy, by flow, in the order their flows were first alerted.
#[derive(Default)]
struct Pending {
    by_stem: HashMap<String, Vec<AlertRef>>,
    due: VecDeque<(Instant, String)>,
}

/// The daemon side: an EVE sink that queues alerts and a supervised task that copies each flow
/// `extract_delay_secs` after its first alert.
pub struct EvidenceService {
    keeper: Keeper,
    sensor_id: String,
    delay: Duration,
    pending: Mutex<Pending>,
    wake: tokio::sync::Notify,
}

impl EvidenceService {
    /// The service for validated settings; `None` with `evidence.mode: off`. Adds the metrics.
    pub fn from_settings(
        settings: &Settings,
        metrics: &crate::metrics::Metrics,
    ) -> Option<Arc<Self>> {
        let keeper = Keeper::from_settings(settings)?;
        let stats = keeper.stats.clone();
        metrics.add_renderer(Box::new(move |out| stats.render(out)));
        Some(Arc::new(Self {
            keeper,
            sensor_id: settings.config.sensor.id.clone(),
            delay: Duration::from_secs(settings.config.evidence.extract_delay_secs.into()),
            pending: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }))
    }

    /// Counters (the heartbeat reads the ring's reach here).
    pub fn stats(&self) -> Arc<EvidenceStats> {
        self.keeper.stats.clone()
    }

    /// The EVE reader's sink: alert lines are queued, never waited on.
    pub fn sink(self: &Arc<Self>) -> LineSink {
        let me = self.clone();
        Arc::new(move |line: &[u8]| me.offer(line))
    }

    fn offer(&self, line: &[u8]) {
        // Most lines are not alerts; skip them before parsing.
        if !contains(line, b"\"event_type\":\"alert\"") {
            return;
        }
        let Some(alert) = AlertRef::from_line(&self.sensor_id, line) else {
            return;
        };
        let stem = alert.stem();
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = p.by_stem.get_mut(&stem) {
            list.push(alert);
            return;
        }
        if p.by_stem.len() >= MAX_PENDING {
            self.keeper.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        p.by_stem.insert(stem.clone(), vec![alert]);
        p.due.push_back((Instant::now() + self.delay, stem));
        drop(p);
        self.wake.notify_one();
    }

    /// Starts the supervised `evidence` task.
    pub fn spawn(self: &Arc<Self>, sup: &mut Supervisor) {
        let me = self.clone();
        sup.spawn(
            "evidence",
            Box::new(move |shutdown| Box::pin(me.clone().run(shutdown))),
        );
    }

    /// Copies each flow when it is due, and applies retention every minute meanwhile, until
    /// shutdown. What is still waiting at shutdown is not copied: the ring stays on the tmpfs
    /// until reboot, but the alerts are not read again.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) -> Result<(), TaskError> {
        loop {
            let next = {
                let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                p.due.front().map(|(at, _)| *at)
            };
            let wait = next.map_or(Duration::from_secs(60), |at| {
                at.saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(60))
            });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => continue,
                _ = shutdown.requested() => return Ok(()),
            }
            let batch = self.take_due();
            let me = self.clone();
            tokio::task::spawn_blocking(move || {
                let now = now_unix();
                for alerts in batch {
                    match me.keeper.keep(&alerts, now) {
                        Ok(_) => {}
                        Err(e) => {
                            me.keeper.stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!("evidence: {e}");
                        }
                    }
                }
                if let Err(e) = me.keeper.enforce(now) {
                    tracing::warn!("evidence: {e}");
                }
                me.keeper.refresh_ring(now);
            })
            .await?;
        }
    }

    fn take_due(&self) -> Vec<Vec<AlertRef>> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut out = Vec::new();
        while p.due.front().is_some_and(|(at, _)| *at <= now) {
            let (_, stem) = p.due.pop_front().expect("checked");
            if let Some(alerts) = p.by_stem.remove(&stem) {
                out.push(alerts);
            }
        }
        out
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The store of validated settings (the CLI reads it whatever the mode: a store kept before
/// `mode: off` is still there).
pub fn store_of(settings: &Settings) -> Store {
    let e = &settings.config.evidence;
    Store {
        dir: PathBuf::from(&e.store_dir),
        max_bytes: u64::from(e.store_max_mb) << 20,
        retention_secs: u64::from(e.retention_days) * 86_400,
    }
}

/// `pcap list`: a table (or JSON lines) of the kept flows, oldest first.
pub fn write_list(entries: &[Entry], json: bool, out: &mut impl Write) -> std::io::Result<()> {
    if json {
        for e in entries {
            serde_json::to_writer(&mut *out, e)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<32} {:<5} {:<47} {:<27} {:<27} {:>8} {:>10} ALERTS (sid: signature)",
        "COMMUNITY ID", "PROTO", "FLOW", "FIRST PACKET", "LAST PACKET", "PACKETS", "BYTES"
    )?;
    for e in entries {
        let flow = format!(
            "{} -> {}",
            endpoint(e.src_ip, e.src_port),
            endpoint(e.dest_ip, e.dest_port)
        );
        let alerts: Vec<String> = e
            .alerts
            .iter()
            .map(|a| format!("{}: {}", a.signature_id, a.signature))
            .collect();
        writeln!(
            out,
            "{:<32} {:<5} {:<47} {:<27} {:<27} {:>8} {:>10} {}{}",
            e.community_id.as_deref().unwrap_or("-"),
            e.proto,
            flow,
            time_text(e.first_us),
            time_text(e.last_us),
            e.packets,
            e.bytes,
            alerts.join("; "),
            if e.truncated {
                " (cut at the size cap)"
            } else {
                ""
            },
        )?;
    }
    Ok(())
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

fn time_text(us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| us.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERT: &str = r#"{"timestamp":"2009-02-23T13:23:33.514058+0000","flow_id":1423014466585533,"event_type":"alert","src_ip":"10.100.0.8","src_port":44270,"dest_ip":"162.2.41.200","dest_port":80,"proto":"TCP","community_id":"1:yBIY+nE1S/8m+3Mlaqj2Ds78GvA=","alert":{"signature_id":1,"signature":"t http","severity":3},"flow":{"start":"2009-02-23T13:23:33.331321+0000"}}"#;

    #[test]
    fn alerts_are_read_with_the_ecs_event_id() {
        let a = AlertRef::from_line("lab-1", ALERT.as_bytes()).unwrap();
        assert_eq!(a.proto_number, 6);
        assert_eq!(a.flow_start_us, Some(1_235_395_413_331_321));
        let mut h = Sha256::new();
        h.update(format!("lab-1|{ALERT}"));
        assert_eq!(a.note.event_id, hex::encode(h.finalize()));
        assert_eq!(a.stem(), "1_yBIY-nE1S_8m-3Mlaqj2Ds78GvA");
        let flow = ALERT.replace("\"alert\",", "\"flow\",");
        assert!(AlertRef::from_line("lab-1", flow.as_bytes()).is_none());
        let t = |src: &str, sport, dst: &str, dport| Tuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: 6,
            sport,
            dport,
        };
        assert!(a.matches(&t("10.100.0.8", 44270, "162.2.41.200", 80)));
        assert!(a.matches(&t("162.2.41.200", 80, "10.100.0.8", 44270)));
        assert!(!a.matches(&t("10.100.0.8", 44271, "162.2.41.200", 80)));
        assert!(!a.matches(&t("162.2.41.200", 44270, "10.100.0.8", 80)));
    }
}
