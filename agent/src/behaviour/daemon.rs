//! The detector inside `ids2-agent run`.
//!
//! [`sink`] wraps the EVE reader's sink: every line goes on downstream unchanged, and `flow`
//! and `dns` lines also go through the [`BehaviourDetector`] first-hand (a hash-map update per
//! record, cheap enough for the reader's thread; the other event types are not parsed). Each
//! alert it completes is an EVE alert line: it is appended to `<logs.path>/behaviour.json`,
//! which the rendered `vector.toml` reads with `eve.json` — the same ECS mapping, disk buffer
//! and index as Suricata's alerts — and handed to the downstream sinks like a Suricata alert
//! (the ECS archive, notifications, blocking). The file is rotated to `behaviour.json.1` at
//! [`MAX_FILE_BYTES`]; lines that cannot be written are kept (at most [`PENDING_LIMIT`], then
//! counted in `ids2_behaviour_alerts_dropped_total`) and written with the next alert.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{BehaviourDetector, Options};
use crate::eve::LineSink;
use crate::files::CappedLines;
use crate::metrics::Metrics;
use crate::render::{BEHAVIOUR_FILE, BEHAVIOUR_ROTATED_FILE};

/// Largest behaviour file before it is rotated.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Most alert lines kept while the file cannot be written.
pub const PENDING_LIMIT: usize = 4096;
/// Counter of behavioural alerts raised.
pub const METRIC_ALERTS: &str = "ids2_behaviour_alerts_total";
/// Counter of behavioural alerts discarded because the file stayed unwritable.
pub const METRIC_DROPPED: &str = "ids2_behaviour_alerts_dropped_total";

struct State {
    detector: BehaviourDetector,
    pending: VecDeque<Vec<u8>>,
}

struct Shared {
    state: Mutex<State>,
    file: CappedLines,
    alerts: AtomicU64,
    dropped: AtomicU64,
}

/// True for the EVE records the detector reads (Suricata writes compact JSON).
fn wanted(line: &[u8]) -> bool {
    const FLOW: &[u8] = br#""event_type":"flow""#;
    const DNS: &[u8] = br#""event_type":"dns""#;
    line.windows(FLOW.len()).any(|w| w == FLOW) || line.windows(DNS.len()).any(|w| w == DNS)
}

/// The reader's sink with the detector in front of `downstream`; alerts go to
/// `<logs_dir>/behaviour.json` and to `downstream`. Registers the detector's metrics.
pub fn sink(logs_dir: &str, downstream: Option<LineSink>, metrics: &Metrics) -> LineSink {
    let dir = Path::new(logs_dir);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            detector: BehaviourDetector::new(Options::default()),
            pending: VecDeque::new(),
        }),
        file: CappedLines::new(
            dir.join(BEHAVIOUR_FILE),
            dir.join(BEHAVIOUR_ROTATED_FILE),
            MAX_FILE_BYTES,
        ),
        alerts: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    });
    let for_metrics = shared.clone();
    metrics.add_renderer(Box::new(move |out: &mut String| {
        use std::fmt::Write as _;
        for (name, help, value) in [
            (
                METRIC_ALERTS,
                "Alerts raised by the behavioural detector (sids 9201000-9201999).",
                &for_metrics.alerts,
            ),
            (
                METRIC_DROPPED,
                "Behavioural alerts discarded because behaviour.json stayed unwritable.",
                &for_metrics.dropped,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
    }));
    Arc::new(move |line: &[u8]| {
        if let Some(d) = &downstream {
            d(line);
        }
        if !wanted(line) {
            return;
        }
        let Ok(record) = serde_json::from_slice(line) else {
            return;
        };
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let alerts = state.detector.observe(&record);
        if alerts.is_empty() {
            return;
        }
        let mut lines = Vec::with_capacity(alerts.len());
        for a in alerts {
            let mut l = serde_json::to_vec(&a).unwrap_or_default();
            l.push(b'\n');
            lines.push(l);
        }
        shared
            .alerts
            .fetch_add(lines.len() as u64, Ordering::Relaxed);
        state.pending.extend(lines.iter().cloned());
        if let Err(e) = shared.file.append(&mut state.pending) {
            tracing::warn!(
                "cannot write behavioural alerts to {}: {e}; kept for the next alert",
                shared.file.path().display()
            );
        }
        while state.pending.len() > PENDING_LIMIT {
            state.pending.pop_front();
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop(state);
        if let Some(d) = &downstream {
            for l in &lines {
                d(l.strip_suffix(b"\n").unwrap_or(l));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(i: u32) -> String {
        format!(
            r#"{{"timestamp":"2024-04-03T13:00:{i:02}.000000+0000","flow_id":{i},"event_type":"flow","src_ip":"10.0.0.9","src_port":40000,"dest_ip":"10.0.0.1","dest_port":{port},"proto":"TCP","flow":{{"pkts_toserver":1,"pkts_toclient":1,"bytes_toserver":60,"bytes_toclient":54,"start":"2024-04-03T13:00:{i:02}.000000+0000","end":"2024-04-03T13:00:{i:02}.000000+0000"}},"tcp":{{"tcp_flags_ts":"02","tcp_flags_tc":"14"}}}}"#,
            port = 1000 + i
        )
    }

    #[test]
    fn alerts_reach_the_file_and_the_downstream_sinks() {
        let dir = tempfile::tempdir().unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let rec = seen.clone();
        let downstream: LineSink = Arc::new(move |l: &[u8]| {
            rec.lock()
                .unwrap()
                .push(String::from_utf8_lossy(l).into_owned())
        });
        let metrics = Metrics::new("test");
        let s = sink(dir.path().to_str().unwrap(), Some(downstream), &metrics);
        s(br#"{"event_type":"stats","stats":{}}"#);
        let ports = super::super::Options::default().scan_ports;
        for i in 0..ports {
            s(probe(i as u32).as_bytes());
        }
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.len(),
            ports + 2,
            "the stats line and the probes passed on, and one alert: {seen:?}"
        );
        let alert: serde_json::Value = serde_json::from_str(&seen[ports + 1]).unwrap();
        assert_eq!(alert["alert"]["signature_id"], super::super::SID_PORT_SCAN);
        let file = std::fs::read_to_string(dir.path().join(BEHAVIOUR_FILE)).unwrap();
        assert_eq!(file.lines().count(), 1);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(file.trim()).unwrap(),
            alert
        );
        assert!(metrics.render().contains("ids2_behaviour_alerts_total 1\n"));
    }

    #[test]
    fn an_unwritable_file_keeps_the_alert_for_later() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not-yet");
        let metrics = Metrics::new("test");
        let s = sink(missing.to_str().unwrap(), None, &metrics);
        for i in 0..12 {
            s(probe(i).as_bytes());
        }
        assert!(!missing.join(BEHAVIOUR_FILE).exists());
        std::fs::create_dir(&missing).unwrap();
        // The next alert (another host's scan) writes both.
        for i in 0..12 {
            s(probe(i).replace("10.0.0.1", "10.0.0.2").as_bytes());
        }
        let file = std::fs::read_to_string(missing.join(BEHAVIOUR_FILE)).unwrap();
        assert_eq!(file.lines().count(), 2);
    }
}
