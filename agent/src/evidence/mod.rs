//! Packet evidence (config `evidence`): Suricata's `pcap-log` writes every packet into a short
//! ring ([`ring`]); on each alert the agent copies that flow's packets, both directions and from
//! the flow's first packet, out of the ring into a per-flow pcap kept on persistent storage
//! ([`store`]). The pcap format is read and written by hand ([`pcap`]): no libpcap on the sensor.
//!
//! The copy waits `extract_delay_secs` after an alert, so the packets that follow it are in the
//! ring; alerts of one flow that arrive meanwhile share one copy. A later alert of a kept flow
//! copies it again, keeping the longer of the two. Suricata writes the ring through a buffer
//! (with lz4, whole compressed blocks), so on a quiet network the alert's own packet can still
//! be in its memory: a copy is only taken once the ring on disk reaches past the alert, tried
//! again every [`RETRY_INTERVAL`] for up to [`RETRY_WINDOW`], and what is pending when the agent
//! stops is copied once Suricata has stopped and closed its files.

pub mod pcap;
pub mod ring;
pub mod store;

use std::collections::{BTreeSet, HashMap};
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
/// Flows copied in one pass over the ring at most (each holds an open file meanwhile).
pub const FLOWS_PER_PASS: usize = 64;
/// How soon a copy that found the ring not yet written past its alert is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(10);
/// How long after its first try a copy waits for the ring to reach its alert; then what the
/// ring holds of the flow is kept, counted as incomplete.
pub const RETRY_WINDOW: Duration = Duration::from_secs(600);

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
    /// `icmp_type`, for ICMP alerts.
    pub icmp_type: Option<u8>,
    /// `capture_file`: the ring file Suricata wrote the alert's packet to.
    pub capture_file: Option<PathBuf>,
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
    icmp_type: Option<u8>,
    capture_file: Option<PathBuf>,
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
            flow_start_us: ev
                .flow
                .and_then(|f| crate::eve::time_us(f.start.as_deref()?)),
            icmp_type: ev.icmp_type,
            capture_file: ev.capture_file,
        })
    }

    /// The file stem of its evidence.
    pub fn stem(&self) -> String {
        store::stem_for(
            self.community_id.as_deref(),
            self.flow_id,
            &self.note.event_id,
        )
    }

    /// Whether a packet belongs to this flow, in either direction, as Suricata files packets
    /// into flows: a TCP or UDP flow also holds the ICMP unreachables quoting its packets; a
    /// flow of a protocol without ports (ICMP echo, GRE) is its two addresses.
    pub fn matches(&self, t: &Tuple) -> bool {
        let ends = |src: IpAddr, sport: u16, dst: IpAddr, dport: u16| {
            (src == self.src_ip
                && dst == self.dest_ip
                && sport == self.src_port
                && dport == self.dest_port)
                || (src == self.dest_ip
                    && dst == self.src_ip
                    && sport == self.dest_port
                    && dport == self.src_port)
        };
        if has_ports(self.proto_number) {
            (t.proto == self.proto_number && ends(t.src, t.sport, t.dst, t.dport))
                || t.quoted.is_some_and(|q| {
                    q.proto == self.proto_number && ends(q.src, q.sport, q.dst, q.dport)
                })
        } else {
            t.proto == self.proto_number && t.quoted.is_none() && ends(t.src, 0, t.dst, 0)
        }
    }

    /// Whether the alert is on an ICMP unreachable quoting a TCP or UDP packet: Suricata files
    /// it under that packet's flow, whose ports the alert does not carry.
    fn on_quoting_error(&self) -> bool {
        matches!(
            (self.proto_number, self.icmp_type),
            (1, Some(3)) | (58, Some(1))
        )
    }

    /// The alert as the flow it belongs to: for an alert on an ICMP unreachable, the quoted
    /// TCP or UDP flow, read from the alert's packet in the ring (in `capture_file` when
    /// Suricata names it); otherwise, or while that packet is not on disk, itself.
    pub fn resolve(&self, files: &[ring::RingFile]) -> AlertRef {
        if !self.on_quoting_error() {
            return self.clone();
        }
        let at = crate::eve::time_us(&self.note.timestamp);
        let named: Vec<&ring::RingFile> = files
            .iter()
            .filter(|f| self.capture_file.as_ref() == Some(&f.path))
            .collect();
        let search = if named.is_empty() {
            files.iter().collect()
        } else {
            named
        };
        for f in search {
            let Ok(mut reader) = f.open() else { continue };
            let linktype = reader.header.linktype;
            while let Some(rec) = reader.next_record() {
                if at.is_some_and(|at| (rec.ts_us - at).abs() > 1) {
                    continue;
                }
                let Some(t) = pcap::tuple(linktype, &rec.data) else {
                    continue;
                };
                let between = (t.src == self.src_ip && t.dst == self.dest_ip)
                    || (t.src == self.dest_ip && t.dst == self.src_ip);
                if let (true, true, Some(q)) = (t.proto == self.proto_number, between, t.quoted) {
                    return AlertRef {
                        src_ip: q.src,
                        src_port: q.sport,
                        dest_ip: q.dst,
                        dest_port: q.dport,
                        proto: if q.proto == 6 { "TCP" } else { "UDP" }.into(),
                        proto_number: q.proto,
                        icmp_type: None,
                        ..self.clone()
                    };
                }
            }
        }
        self.clone()
    }
}

/// Protocols whose flows Suricata keys by ports.
fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132 | 136)
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

/// What one pass over the ring found for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy {
    /// The flow's packets written; `None` when the ring held none.
    pub copied: Option<Copied>,
    /// The time up to which the ring is on disk for this flow: the newest packet in the files of
    /// the worker that wrote the flow's packets or, when none was found, the oldest of every
    /// worker's newest packet (`i64::MIN` while a worker's file holds no packet yet). Suricata
    /// buffers what it writes, so the flow's packets after this time may still be in its memory.
    pub written_through_us: i64,
}

impl Copy {
    /// Whether the ring on disk reaches `alert_us` for the flow, or the copy stopped at the cap
    /// anyway: nothing a later try could add.
    pub fn reaches(&self, alert_us: i64) -> bool {
        self.copied.is_some_and(|c| c.truncated) || self.written_through_us >= alert_us
    }
}

/// A flow's endpoints in a fixed order, so both directions give one key (ports 0 where the
/// protocol has none, as [`AlertRef::matches`] compares them).
type FlowKey = (u8, (IpAddr, u16), (IpAddr, u16));

fn flow_key(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> FlowKey {
    let (a, b) = if has_ports(proto) {
        (a, b)
    } else {
        ((a.0, 0), (b.0, 0))
    };
    (proto, a.min(b), a.max(b))
}

/// One flow's copy in progress.
struct Copying<'a, W: Write> {
    alert: &'a AlertRef,
    from: i64,
    out: Option<W>,
    writer: Option<(u32, Writer<BufWriter<W>>)>,
    copied: Copied,
    written: u64,
    holding: Vec<u32>,
}

/// Writes the packets of `alert`'s flow found in the ring files (oldest first) to `out` as a
/// pcap, from the flow's start on, stopping before `max_bytes`. Packets of another link type than
/// the first match are left out (one pcap has one link type).
pub fn copy_flow(
    files: &[ring::RingFile],
    alert: &AlertRef,
    out: impl Write,
    max_bytes: u64,
) -> std::io::Result<Copy> {
    let mut copies = copy_flows(files, vec![(alert, out)], max_bytes)?;
    Ok(copies.pop().expect("one flow in, one copy out"))
}

/// [`copy_flow`] for many flows in one pass over the ring: each packet is decoded once and looked
/// up by its flow key, so the cost is the ring's size, not the ring's size times the flows.
pub fn copy_flows<W: Write>(
    files: &[ring::RingFile],
    flows: Vec<(&AlertRef, W)>,
    max_bytes: u64,
) -> std::io::Result<Vec<Copy>> {
    let mut index: HashMap<FlowKey, Vec<usize>> = HashMap::new();
    let mut copying: Vec<Copying<'_, W>> = Vec::with_capacity(flows.len());
    for (i, (alert, out)) in flows.into_iter().enumerate() {
        let key = flow_key(
            alert.proto_number,
            (alert.src_ip, alert.src_port),
            (alert.dest_ip, alert.dest_port),
        );
        index.entry(key).or_default().push(i);
        copying.push(Copying {
            alert,
            // A packet time a little before the flow's own start is the same packet (Suricata
            // prints the start from the first packet, rounded the same way); a microsecond of
            // slack.
            from: alert.flow_start_us.map_or(i64::MIN, |s| s - 1),
            out: Some(out),
            writer: None,
            copied: Copied::default(),
            written: 24,
            holding: Vec::new(),
        });
    }
    // Per worker, the newest packet on disk.
    let mut newest: HashMap<u32, i64> = files.iter().map(|f| (f.thread, i64::MIN)).collect();
    let mut packets = ring::Packets::new(files);
    for (thread, linktype, rec) in packets.by_ref() {
        if let Some(seen) = newest.get_mut(&thread) {
            *seen = (*seen).max(rec.ts_us);
        }
        let Some(t) = pcap::tuple(linktype, &rec.data) else {
            continue;
        };
        let own = index.get(&flow_key(t.proto, (t.src, t.sport), (t.dst, t.dport)));
        let quoting = t
            .quoted
            .and_then(|q| index.get(&flow_key(q.proto, (q.src, q.sport), (q.dst, q.dport))));
        for &i in own.into_iter().chain(quoting).flatten() {
            let c = &mut copying[i];
            if rec.ts_us < c.from || c.copied.truncated || !c.alert.matches(&t) {
                continue;
            }
            if !c.holding.contains(&thread) {
                c.holding.push(thread);
            }
            if c.writer.is_none() {
                let sink = BufWriter::new(c.out.take().expect("taken once"));
                c.writer = Some((linktype, Writer::new(sink, linktype)?));
                c.copied.first_us = rec.ts_us;
            }
            let Some((lt, w)) = c.writer.as_mut() else {
                unreachable!("set above")
            };
            if *lt != linktype {
                continue;
            }
            let size = 16 + rec.data.len() as u64;
            if c.written + size > max_bytes {
                c.copied.truncated = true;
                continue;
            }
            w.write(&rec)?;
            c.written += size;
            c.copied.packets += 1;
            c.copied.last_us = c.copied.last_us.max(rec.ts_us);
        }
    }
    let files_read = packets.files_read;
    let oldest_newest = newest.values().copied().min().unwrap_or(i64::MIN);
    copying
        .into_iter()
        .map(|c| {
            let written_through_us = c
                .holding
                .iter()
                .map(|t| newest[t])
                .min()
                .unwrap_or(oldest_newest);
            let copied = match c.writer {
                Some((_, w)) => {
                    w.finish()?;
                    Some(Copied {
                        files: files_read,
                        ..c.copied
                    })
                }
                None => None,
            };
            Ok(Copy {
                copied,
                written_through_us,
            })
        })
        .collect()
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
    retries: AtomicU64,
    incomplete: AtomicU64,
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
        one(
            "ids2_evidence_retries_total",
            "counter",
            "Copies put off because Suricata had not yet written the ring past the alert.",
            get(&self.retries).to_string(),
        );
        one(
            "ids2_evidence_incomplete_total",
            "counter",
            "Flows kept without the packets up to their alert: the ring on disk had not reached \
             it within the retry window.",
            get(&self.incomplete).to_string(),
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
    /// The ring on disk does not reach the alert yet (Suricata still buffers it): nothing
    /// written, try again.
    NotYetWritten,
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
    /// The ring could not be read, or the copies written, in one pass.
    #[error("cannot copy alerted flows out of the packet ring in {}: {source}", dir.display())]
    Copy {
        /// The ring directory.
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
    /// keeps the store within its limits. Unless `last_try`, a ring on disk that does not reach
    /// the latest alert yet gives [`Kept::NotYetWritten`] and changes nothing; on the last try
    /// what it holds is kept (counted incomplete). Blocking file I/O.
    pub fn keep(
        &self,
        alerts: &[AlertRef],
        now_unix: u64,
        last_try: bool,
    ) -> Result<Kept, EvidenceError> {
        self.keep_all(&[(alerts, last_try)], now_unix)?
            .pop()
            .expect("one flow in, one result out")
    }

    /// [`Self::keep`] for many flows (each its alerts and whether this is its last try), reading
    /// the ring once per [`FLOWS_PER_PASS`]; one result per flow, in order. The error is the
    /// ring's or the store's as a whole.
    pub fn keep_all(
        &self,
        flows: &[(&[AlertRef], bool)],
        now_unix: u64,
    ) -> Result<Vec<Result<Kept, EvidenceError>>, EvidenceError> {
        let files = ring::list(&self.ring_dir).map_err(|source| EvidenceError::Ring {
            dir: self.ring_dir.clone(),
            source,
        })?;
        self.note_ring(&files, now_unix);
        let mut results = Vec::with_capacity(flows.len());
        for chunk in flows.chunks(FLOWS_PER_PASS) {
            let resolved: Vec<AlertRef> = chunk.iter().map(|(a, _)| a[0].resolve(&files)).collect();
            let tmps = chunk
                .iter()
                .map(|_| self.store.temp())
                .collect::<Result<Vec<_>, _>>()?;
            let copies = copy_flows(
                &files,
                resolved
                    .iter()
                    .zip(&tmps)
                    .map(|(flow, tmp)| (flow, tmp.as_file()))
                    .collect(),
                self.store.max_bytes,
            )
            .map_err(|source| EvidenceError::Copy {
                dir: self.ring_dir.clone(),
                source,
            })?;
            for (((alerts, last_try), flow), (copy, tmp)) in chunk
                .iter()
                .zip(&resolved)
                .zip(copies.into_iter().zip(tmps))
            {
                results.push(self.settle(alerts, flow, *last_try, copy, tmp, now_unix));
            }
        }
        if results.iter().any(|r| matches!(r, Ok(Kept::Stored(_)))) {
            self.enforce(now_unix)?;
        }
        Ok(results)
    }

    /// What one flow's copy becomes: put off, nothing, or the store's entry (for `flow`, the
    /// first alert resolved to its flow).
    fn settle(
        &self,
        alerts: &[AlertRef],
        flow: &AlertRef,
        last_try: bool,
        copy: Copy,
        tmp: tempfile::NamedTempFile,
        now_unix: u64,
    ) -> Result<Kept, EvidenceError> {
        let first = &alerts[0];
        let stem = first.stem();
        let alert_us = alerts
            .iter()
            .filter_map(|a| crate::eve::time_us(&a.note.timestamp))
            .max()
            .unwrap_or(i64::MIN);
        if !copy.reaches(alert_us) {
            if !last_try {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                return Ok(Kept::NotYetWritten);
            }
            if copy.copied.is_some() {
                self.stats.incomplete.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    flow = %stem,
                    "evidence: the ring on disk never reached the alert; keeping the flow's \
                     packets up to where it did"
                );
            }
        }
        let old = self.store.get_stem(&stem);
        let Some(copied) = copy.copied else {
            self.stats.empty.fetch_add(1, Ordering::Relaxed);
            if let Some(mut old) = old {
                // The packets are gone from the ring but the alert still points at the copy.
                add_alerts(&mut old, alerts);
                old.updated_unix = now_unix;
                self.store.write_entry(&old)?;
            }
            return Ok(Kept::NotInRing);
        };
        let bytes = tmp
            .as_file()
            .metadata()
            .map_err(|source| EvidenceError::Write {
                stem: stem.clone(),
                source,
            })?
            .len();
        let fresh = Entry {
            community_id: first.community_id.clone(),
            flow_ids: Vec::new(),
            src_ip: flow.src_ip,
            src_port: flow.src_port,
            dest_ip: flow.dest_ip,
            dest_port: flow.dest_port,
            proto: flow.proto.clone(),
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

/// One flow waiting for its copy.
struct Waiting {
    /// Its alerts, the first naming the flow.
    alerts: Vec<AlertRef>,
    /// When its retries end (set at its first try).
    give_up: Option<Instant>,
}

/// Flows waiting for their copy, by stem, and when each is due (a sequence number keeps
/// entries of one instant apart).
#[derive(Default)]
struct Pending {
    by_stem: HashMap<String, Waiting>,
    due: BTreeSet<(Instant, u64, String)>,
    seq: u64,
}

impl Pending {
    fn schedule(&mut self, at: Instant, stem: String) {
        self.seq += 1;
        self.due.insert((at, self.seq, stem));
    }
}

/// What a shutdown's last copies did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Flows copied into the store.
    pub kept: u64,
    /// Flows left uncopied (out of time, or the ring not reaching them while Suricata runs).
    pub left: u64,
}

/// The daemon side: an EVE sink that queues alerts and a supervised task that copies each flow
/// `extract_delay_secs` after its first alert, retrying while the ring lags.
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
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
        let mut p = self.lock();
        if let Some(w) = p.by_stem.get_mut(&stem) {
            w.alerts.push(alert);
            return;
        }
        if p.by_stem.len() >= MAX_PENDING {
            self.keeper.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        p.by_stem.insert(
            stem.clone(),
            Waiting {
                alerts: vec![alert],
                give_up: None,
            },
        );
        p.schedule(Instant::now() + self.delay, stem);
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

    /// Copies each flow when it is due (again later while the ring lags), and applies retention
    /// every minute meanwhile, until shutdown. What is still waiting then stays queued for
    /// [`Self::drain`].
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) -> Result<(), TaskError> {
        loop {
            let next = self.lock().due.first().map(|(at, _, _)| *at);
            let wait = next.map_or(Duration::from_secs(60), |at| {
                at.saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(60))
            });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => continue,
                _ = shutdown.requested() => return Ok(()),
            }
            let batch = self.take(Some(Instant::now()));
            let me = self.clone();
            tokio::task::spawn_blocking(move || {
                let now = now_unix();
                // A batch that stored a flow has had the store's limits applied; an idle wake
                // applies retention.
                if batch.is_empty() {
                    if let Err(e) = me.keeper.enforce(now) {
                        tracing::warn!("evidence: {e}");
                    }
                    me.keeper.refresh_ring(now);
                } else {
                    me.try_copies(batch, now);
                }
            })
            .await?;
        }
    }

    /// The shutdown's last copies, once Suricata has stopped and closed its ring files
    /// (`suricata_stopped`; otherwise only copies whose ring already reaches the alert are
    /// taken): every waiting flow, oldest first, [`FLOWS_PER_PASS`] per pass over the ring,
    /// until `budget` runs out. Blocking file I/O.
    pub fn drain(&self, budget: Duration, suricata_stopped: bool) -> Drained {
        let end = Instant::now() + budget;
        let batch = self.take(None);
        let now = now_unix();
        let mut d = Drained::default();
        for chunk in batch.chunks(FLOWS_PER_PASS) {
            if Instant::now() >= end {
                d.left += chunk.len() as u64;
                continue;
            }
            let flows: Vec<(&[AlertRef], bool)> = chunk
                .iter()
                .map(|(_, w)| (w.alerts.as_slice(), suricata_stopped))
                .collect();
            match self.keeper.keep_all(&flows, now) {
                Ok(results) => {
                    for r in results {
                        match r {
                            Ok(Kept::Stored(_)) => d.kept += 1,
                            Ok(Kept::NotInRing) => {}
                            Ok(Kept::NotYetWritten) => d.left += 1,
                            Err(e) => self.failed(&e),
                        }
                    }
                }
                Err(e) => {
                    d.left += chunk.len() as u64;
                    self.failed(&e);
                }
            }
        }
        d
    }

    fn failed(&self, e: &EvidenceError) {
        self.keeper.stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("evidence: {e}");
    }

    /// One try at each flow's copy; a flow whose ring lags is put back, due again after
    /// [`RETRY_INTERVAL`], until [`RETRY_WINDOW`] after its first try.
    fn try_copies(&self, mut batch: Vec<(String, Waiting)>, now_unix: u64) {
        let now = Instant::now();
        let flows: Vec<(&[AlertRef], bool)> = batch
            .iter_mut()
            .map(|(_, w)| {
                let give_up = *w.give_up.get_or_insert(now + RETRY_WINDOW);
                (w.alerts.as_slice(), now >= give_up)
            })
            .collect();
        let results = match self.keeper.keep_all(&flows, now_unix) {
            Ok(r) => r,
            Err(e) => return self.failed(&e),
        };
        for ((stem, mut waiting), result) in batch.into_iter().zip(results) {
            match result {
                Ok(Kept::NotYetWritten) => {
                    let mut p = self.lock();
                    // Alerts of the flow that came in since it was taken were queued afresh:
                    // they join this one, which keeps its window.
                    if let Some(newer) = p.by_stem.remove(&stem) {
                        waiting.alerts.extend(newer.alerts);
                        p.due.retain(|(_, _, s)| *s != stem);
                    }
                    p.by_stem.insert(stem.clone(), waiting);
                    p.schedule(Instant::now() + RETRY_INTERVAL, stem);
                }
                Ok(_) => {}
                Err(e) => self.failed(&e),
            }
        }
    }

    /// Takes the flows due by `now` (all of them with `None`), oldest due first.
    fn take(&self, now: Option<Instant>) -> Vec<(String, Waiting)> {
        let mut p = self.lock();
        let mut out = Vec::new();
        while let Some(first) = p.due.first() {
            if now.is_some_and(|now| first.0 > now) {
                break;
            }
            let (_, _, stem) = p.due.pop_first().expect("checked");
            if let Some(w) = p.by_stem.remove(&stem) {
                out.push((stem, w));
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
            quoted: None,
        };
        assert!(a.matches(&t("10.100.0.8", 44270, "162.2.41.200", 80)));
        assert!(a.matches(&t("162.2.41.200", 80, "10.100.0.8", 44270)));
        assert!(!a.matches(&t("10.100.0.8", 44271, "162.2.41.200", 80)));
        assert!(!a.matches(&t("162.2.41.200", 44270, "10.100.0.8", 80)));
        // An unreachable quoting the flow's packet is the flow's; ICMP between the same hosts
        // is another flow, and the alert of an ICMP flow takes no unreachable quoting TCP.
        let unreachable = |sport| Tuple {
            proto: 1,
            sport: 0,
            dport: 0,
            quoted: Some(pcap::Quoted {
                src: "10.100.0.8".parse().unwrap(),
                dst: "162.2.41.200".parse().unwrap(),
                proto: 6,
                sport,
                dport: 80,
            }),
            ..t("162.2.41.200", 0, "10.100.0.8", 0)
        };
        assert!(a.matches(&unreachable(44270)));
        assert!(!a.matches(&unreachable(44271)));
        let echo = Tuple {
            proto: 1,
            ..t("162.2.41.200", 0, "10.100.0.8", 0)
        };
        assert!(!a.matches(&echo));
        let icmp_line = ALERT
            .replace("\"proto\":\"TCP\"", "\"proto\":\"ICMP\"")
            .replace(",\"src_port\":44270", "")
            .replace(",\"dest_port\":80", "");
        let icmp = AlertRef::from_line("lab-1", icmp_line.as_bytes()).unwrap();
        assert!(icmp.matches(&echo));
        assert!(!icmp.matches(&unreachable(44270)));
    }
}
