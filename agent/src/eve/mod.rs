//! Reading Suricata's EVE output: follow `<logs.path>/eve.json` ([`tail`]) and turn each line
//! into counts by `event_type` and, from `stats` events, Suricata's capture and memcap counters
//! ([`EveCounter`]) for the metrics endpoint; every line is also handed to an optional
//! [`LineSink`] (notifications and blocking take the alerts from there). The reader also keeps
//! the file from filling the log tmpfs ([`Rotation`]).

pub mod tail;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::metrics::Metrics;
use crate::supervisor::{Shutdown, TaskError};

pub use tail::{Position, TailEvent, Tailer};

/// The label counted for a line that is not an EVE event: not a JSON object with a string
/// `event_type` and a `timestamp` [`time_us`] reads. Vector's mapping refuses the same lines and
/// ships them unmapped, so this count and the unmapped documents tell one story.
pub const UNPARSED: &str = "unparsed";

/// The label counted for a line longer than [`MAX_LINE_BYTES`]: skipped here, and discarded by
/// Vector's file source too, which has the same cap but only logs it.
pub const OVERSIZED: &str = "oversized";

/// The longest EVE line read here, as by Vector's file source: [`ids2_core::ecs::EVE_MAX_LINE_BYTES`].
pub const MAX_LINE_BYTES: usize = ids2_core::ecs::EVE_MAX_LINE_BYTES;

/// Suricata's capture and memcap counters from the latest `stats` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptureStats {
    /// `stats.capture.kernel_packets`.
    pub kernel_packets: u64,
    /// `stats.capture.kernel_drops`.
    pub kernel_drops: u64,
    /// Sum of every `*memcap*` counter except the `memcap_pressure` gauges.
    pub memcap_hits: u64,
}

/// Counts EVE lines by type and intel matches by feed, and keeps the latest capture counters.
#[derive(Debug, Default)]
pub struct EveCounter {
    counts: HashMap<String, u64>,
    intel_matches: HashMap<String, u64>,
    stats: Option<CaptureStats>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    event_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<std::borrow::Cow<'a, str>>,
    /// Only alerts have it; of it only `metadata.ids2_intel_feed`, the feed the intel rules
    /// (`crate::intel::feeds::compile`) name, is read. A value, so that any shape of a rule's
    /// metadata still counts the line by its type.
    alert: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StatsEvent {
    stats: serde_json::Map<String, serde_json::Value>,
}

impl EveCounter {
    /// Accounts for one line (without its newline).
    pub fn line(&mut self, line: &[u8]) {
        let (event_type, alert) = match serde_json::from_slice::<Head>(line) {
            Ok(Head {
                event_type: Some(t),
                timestamp: Some(ts),
                alert,
            }) if time_us(&ts).is_some() => (t, alert),
            _ => {
                self.bump(UNPARSED);
                return;
            }
        };
        let feeds = alert
            .as_ref()
            .and_then(|a| a.pointer("/metadata/ids2_intel_feed"))
            .and_then(serde_json::Value::as_array);
        for feed in feeds.into_iter().flatten().filter_map(|f| f.as_str()) {
            match self.intel_matches.get_mut(feed) {
                Some(n) => *n += 1,
                None => {
                    self.intel_matches.insert(feed.to_string(), 1);
                }
            }
        }
        if event_type == "stats" {
            if let Ok(ev) = serde_json::from_slice::<StatsEvent>(line) {
                self.stats = Some(capture_stats(&ev.stats));
            }
        }
        self.bump(&event_type);
    }

    /// Accounts for a line that was too long to read; it is skipped, not silently lost.
    pub fn oversized(&mut self) {
        self.bump(OVERSIZED);
    }

    fn bump(&mut self, event_type: &str) {
        match self.counts.get_mut(event_type) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(event_type.to_string(), 1);
            }
        }
    }

    /// Counts so far.
    pub fn counts(&self) -> &HashMap<String, u64> {
        &self.counts
    }

    /// The latest capture counters, if a `stats` event was seen.
    pub fn stats(&self) -> Option<CaptureStats> {
        self.stats
    }

    /// Moves the counts into `metrics` and resets them; sets the capture counters.
    pub fn flush(&mut self, metrics: &Metrics) {
        for (event_type, n) in self.counts.drain() {
            metrics.eve_events.inc_by(&[&event_type], n as f64);
        }
        for (feed, n) in self.intel_matches.drain() {
            metrics.intel_matches.inc_by(&[&feed], n as f64);
        }
        if let Some(s) = self.stats.take() {
            // Suricata's counters are cumulative since its start; exported as they are, a
            // Suricata restart shows as a counter reset, which Prometheus handles.
            metrics.capture_packets.set(&[], s.kernel_packets as f64);
            metrics.capture_drops.set(&[], s.kernel_drops as f64);
            metrics.memcap_hits.set(&[], s.memcap_hits as f64);
        }
    }
}

/// EVE's `2009-02-23T13:23:33.331321+0000` as microseconds since the epoch; also without the
/// fraction or with a colon in the offset, as the `%Y-%m-%dT%H:%M:%S%.f%z` Vector's mapping
/// parses it with accepts.
pub fn time_us(s: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory][optional [:]][offset_minute]"
    );
    let t = time::OffsetDateTime::parse(s, format).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

/// Extracts the capture and memcap counters from a `stats` object.
pub fn capture_stats(stats: &serde_json::Map<String, serde_json::Value>) -> CaptureStats {
    let capture = stats.get("capture");
    let get = |key: &str| {
        capture
            .and_then(|c| c.get(key))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    CaptureStats {
        kernel_packets: get("kernel_packets"),
        kernel_drops: get("kernel_drops"),
        memcap_hits: memcap_sum(stats),
    }
}

fn memcap_sum(map: &serde_json::Map<String, serde_json::Value>) -> u64 {
    map.iter()
        .map(|(k, v)| match v {
            serde_json::Value::Object(inner) => memcap_sum(inner),
            // memcap_pressure(_max) are percentages of use, not hits.
            serde_json::Value::Number(n) if k.contains("memcap") && !k.contains("pressure") => {
                n.as_u64().unwrap_or(0)
            }
            _ => 0,
        })
        .sum()
}

/// Receives every EVE line read (without its newline). Called on the reader's task, so it must
/// not wait: the responders queue with `try_send` and count what does not fit.
pub type LineSink = std::sync::Arc<dyn Fn(&[u8]) + Send + Sync>;

/// One sink handing each line to every given sink in turn; `None` when none is given.
pub fn fan_out(sinks: impl IntoIterator<Item = LineSink>) -> Option<LineSink> {
    let mut sinks: Vec<LineSink> = sinks.into_iter().collect();
    match sinks.len() {
        0 => None,
        1 => sinks.pop(),
        _ => Some(std::sync::Arc::new(move |line: &[u8]| {
            for sink in &sinks {
                sink(line);
            }
        })),
    }
}

/// Asks the EVE writer to reopen its log files; the error says why it could not.
pub type Reopen = std::sync::Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Size-based rotation of the EVE file. Suricata only rotates by time, and a tmpfs that fills
/// up stops the EVE output. When `eve.json` reaches `max_bytes` it is renamed to `eve.json.1`
/// (replacing the previous one) and Suricata is asked to reopen its logs: it opens a new
/// `eve.json` at its next write. Suricata writes whole lines to its open descriptor, so nothing
/// falls between the two files; Vector and this reader both read `eve.json.1` to its end before
/// moving on.
pub struct Rotation {
    /// Size at which the file is rotated (`logs.eve_rotate_mb`).
    pub max_bytes: u64,
    /// Suricata's `reopen-log-files`; a blocking call, run off the runtime's threads.
    pub reopen: Reopen,
}

impl Rotation {
    /// The rotated file beside `path`: `eve.json` -> `eve.json.1`.
    pub fn rotated_path(path: &std::path::Path) -> PathBuf {
        let mut p = path.as_os_str().to_owned();
        p.push(".1");
        PathBuf::from(p)
    }

    /// One rotation step. Between a rename and Suricata's reopen (`pending`), Suricata still
    /// writes into the renamed file, so no second rename happens and the reopen is retried at
    /// every poll (counted and logged once per rotation). A new `eve.json` appearing meanwhile
    /// (Suricata restarted) ends the wait too.
    async fn step(&self, path: &std::path::Path, pending: &mut Pending, metrics: &Metrics) {
        match pending {
            Pending::No => {
                match std::fs::metadata(path) {
                    Ok(m) if m.len() >= self.max_bytes => {}
                    _ => return,
                }
                if let Err(e) = std::fs::rename(path, Self::rotated_path(path)) {
                    metrics.eve_rotation_failures.inc(&[]);
                    tracing::warn!(file = %path.display(), error = %e, "cannot rotate the EVE file");
                    return;
                }
                metrics.eve_rotations.inc(&[]);
                *pending = Pending::Reopen { failed: false };
            }
            Pending::Reopen { .. } if path.exists() => {
                *pending = Pending::No;
                return;
            }
            Pending::Reopen { .. } => {}
        }
        let reopen = self.reopen.clone();
        let result = tokio::task::spawn_blocking(move || reopen())
            .await
            .unwrap_or_else(|e| Err(format!("the reopen task failed: {e}")));
        match (result, &*pending) {
            (Ok(()), _) => {
                *pending = Pending::No;
                tracing::info!(file = %path.display(), "EVE file rotated");
            }
            (Err(e), Pending::Reopen { failed: false }) => {
                metrics.eve_rotation_failures.inc(&[]);
                tracing::warn!(
                    error = %e,
                    "EVE file renamed but Suricata did not reopen its logs; retrying every poll"
                );
                *pending = Pending::Reopen { failed: true };
            }
            (Err(_), _) => {}
        }
    }
}

/// How full the file system holding `dir` is; `None` when it cannot be read.
fn used_ratio(dir: &std::path::Path) -> Option<f64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let blocks = s.blocks() as f64;
    (blocks > 0.0).then(|| (blocks - s.blocks_free() as f64) / blocks)
}

/// How full the log file system is, as the operator is told: it fills only while Vector does
/// not read (OpenSearch away and Vector's disk buffer full, or Vector down), and once it is
/// full Suricata's EVE writes fail and events are lost. Changes are logged once each, with a
/// gap between the levels so a file system hovering at one does not flood the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Under [`Fill::FILLING`], or back under [`Fill::EASED`].
    Room,
    /// At or over [`Fill::FILLING`].
    Filling,
    /// At or over [`Fill::FULL`]: EVE is being lost.
    Full,
}

impl Fill {
    const FILLING: f64 = 0.9;
    const FULL: f64 = 0.99;
    const EASED: f64 = 0.8;

    /// The level after a reading of `used` (0–1): it rises at each threshold and falls back
    /// to [`Fill::Room`] only under [`Fill::EASED`].
    fn next(self, used: f64) -> Self {
        if used >= Self::FULL {
            Fill::Full
        } else if used < Self::EASED {
            Fill::Room
        } else if used >= Self::FILLING && self == Fill::Room {
            Fill::Filling
        } else {
            self
        }
    }

    fn report(self, used: f64, eve: &std::path::Path) {
        let percent = (used * 100.0).round();
        match self {
            Fill::Full => tracing::error!(
                percent,
                file = %eve.display(),
                "the log file system is full: Suricata cannot write EVE and events are lost \
                 until Vector reads again (is OpenSearch reachable? Vector's disk buffer full?)"
            ),
            Fill::Filling => tracing::warn!(
                percent,
                file = %eve.display(),
                "the log file system is filling: Vector is not reading EVE (is OpenSearch \
                 reachable? Vector's disk buffer full?); events are lost once it is full"
            ),
            Fill::Room => tracing::info!(percent, "the log file system has room again"),
        }
    }
}

/// Where a rotation stands between polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Nothing to finish.
    No,
    /// Renamed; Suricata has not reopened its logs yet (`failed`: a reopen was refused).
    Reopen { failed: bool },
}

/// Follows `<logs.path>/eve.json` and exports what it reads, as a supervised task.
pub struct EveReader {
    /// The EVE file.
    pub path: PathBuf,
    /// Time between polls of the file; stats reach the metrics within one poll of being written.
    pub poll: Duration,
    /// Longest line accepted, in bytes.
    pub max_line_bytes: usize,
    /// Where lines go besides the counters.
    pub sink: Option<LineSink>,
    /// A file keeping the reader's [`Position`] after each poll, so that after a restart the
    /// reader resumes there and the sink gets what was written meanwhile. Without it a
    /// restarted reader starts at the end of the file.
    pub checkpoint: Option<PathBuf>,
    /// Keeps the file under a size; without it the file grows as Suricata writes.
    pub rotation: Option<Rotation>,
}

impl EveReader {
    /// The reader for `<logs_dir>/eve.json` with the agent's defaults (1 s poll, lines up to
    /// [`MAX_LINE_BYTES`], as Vector reads them).
    pub fn new(logs_dir: &str) -> Self {
        Self {
            path: PathBuf::from(logs_dir).join("eve.json"),
            poll: Duration::from_secs(1),
            max_line_bytes: MAX_LINE_BYTES,
            sink: None,
            checkpoint: None,
            rotation: None,
        }
    }

    /// Reads until shutdown, then once more to the end of the file (the daemon stops the reader
    /// after Suricata, so what Suricata writes while stopping is read too). Starts at the
    /// checkpoint when there is one, else at the end of an existing file (the counters are the
    /// agent's, from its start); a rotated or truncated file is read from its beginning.
    pub async fn run(
        self,
        metrics: std::sync::Arc<Metrics>,
        mut shutdown: Shutdown,
    ) -> Result<(), TaskError> {
        let mut tailer = Tailer::new(self.path.clone(), self.max_line_bytes, true);
        let mut saved = None;
        if let Some(cp) = &self.checkpoint {
            saved = std::fs::read_to_string(cp)
                .ok()
                .and_then(|t| Position::parse(&t));
            match saved {
                Some(pos) => {
                    tracing::info!(checkpoint = %cp.display(), offset = pos.offset, "EVE reader resumes");
                    tailer.resume_at(pos);
                }
                None => tracing::info!(
                    checkpoint = %cp.display(),
                    "no EVE checkpoint yet: reading from the end of {}",
                    self.path.display()
                ),
            }
        }
        let mut counter = EveCounter::default();
        let mut stopping = false;
        let mut rotation_pending = Pending::No;
        let mut fill = Fill::Room;
        loop {
            // Bounded batches keep one poll from holding the runtime for long after a backlog.
            loop {
                let more = tailer.poll(4 << 20, |ev| match ev {
                    TailEvent::Line(l) => {
                        counter.line(l);
                        if let Some(sink) = &self.sink {
                            sink(l);
                        }
                    }
                    TailEvent::Oversized => {
                        counter.oversized();
                        // Each is megabytes of EVE, so they cannot come fast enough to flood
                        // the journal; Vector says the same once per 30 s at most.
                        tracing::warn!(
                            path = %self.path.display(),
                            max_line_bytes = self.max_line_bytes,
                            "an EVE line longer than max_line_bytes was skipped here and by \
                             Vector (not shipped); counted in ids2_eve_events_total{{event_type=\"oversized\"}}"
                        );
                    }
                })?;
                counter.flush(&metrics);
                if let Some(cp) = &self.checkpoint {
                    if let Some(now) = tailer.position().filter(|p| Some(*p) != saved) {
                        // The sinks have taken every line up to here (they are called inline).
                        crate::files::write_atomic(cp, now.to_line().as_bytes())?;
                        saved = Some(now);
                    }
                }
                if !more {
                    break;
                }
                tokio::task::yield_now().await;
            }
            if stopping {
                return Ok(());
            }
            if let Some(rotation) = &self.rotation {
                rotation
                    .step(&self.path, &mut rotation_pending, &metrics)
                    .await;
            }
            if let Some(used) = self.path.parent().and_then(used_ratio) {
                metrics.logs_used.set(&[], used);
                let next = fill.next(used);
                if next != fill {
                    next.report(used, &self.path);
                    fill = next;
                }
            }
            stopping = !shutdown.sleep(self.poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const ALERT: &str = r#"{"timestamp":"2026-03-01T10:00:00.000000+0000","event_type":"alert"}"#;

    /// A reader of `dir/eve.json` polling every `poll`, and the lines its sink receives.
    fn recording_reader(
        dir: &std::path::Path,
        poll: Duration,
    ) -> (EveReader, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let got = seen.clone();
        let mut reader = EveReader::new(&dir.display().to_string());
        reader.poll = poll;
        reader.sink = Some(Arc::new(move |l: &[u8]| {
            got.lock()
                .unwrap()
                .push(String::from_utf8_lossy(l).into_owned())
        }));
        (reader, seen)
    }

    /// With a checkpoint, a reader started after another one stopped gets exactly the lines
    /// written while none ran: nothing twice, nothing lost.
    #[tokio::test]
    async fn a_restarted_reader_resumes_at_its_checkpoint() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let eve = dir.path().join("eve.json");
        let cp = dir.path().join("eve.position");
        std::fs::write(&eve, "{\"event_type\":\"before\"}\n").unwrap();
        let append = |s: &str| {
            let mut f = std::fs::OpenOptions::new().append(true).open(&eve).unwrap();
            writeln!(f, "{s}").unwrap();
        };
        let run_once = |extra: Option<&'static str>| {
            let (mut reader, seen) = recording_reader(dir.path(), Duration::from_millis(50));
            reader.checkpoint = Some(cp.clone());
            let eve = eve.clone();
            async move {
                let (stop, stopped) = tokio::sync::watch::channel(false);
                let metrics = Arc::new(Metrics::new("t"));
                let task = tokio::spawn(reader.run(metrics, Shutdown::new(stopped)));
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(line) = extra {
                    let mut f = std::fs::OpenOptions::new().append(true).open(&eve).unwrap();
                    writeln!(f, "{line}").unwrap();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                stop.send(true).unwrap();
                task.await.unwrap().unwrap();
                let lines = seen.lock().unwrap().clone();
                lines
            }
        };
        // First start: no checkpoint, so the reader begins at the end ("before" is not read).
        let first = run_once(Some("{\"event_type\":\"live\"}")).await;
        assert_eq!(first, ["{\"event_type\":\"live\"}"]);
        assert!(cp.exists(), "the reader keeps its position");
        append("{\"event_type\":\"while_down_1\"}");
        append("{\"event_type\":\"while_down_2\"}");
        let second = run_once(None).await;
        assert_eq!(
            second,
            [
                "{\"event_type\":\"while_down_1\"}",
                "{\"event_type\":\"while_down_2\"}"
            ]
        );
        assert!(run_once(None).await.is_empty(), "nothing is read twice");
    }

    /// What the writer adds after shutdown was requested (Suricata stopping) is still read and
    /// handed to the sink, even with a poll interval far longer than the test.
    #[tokio::test]
    async fn reads_to_the_end_once_more_after_shutdown() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let eve = dir.path().join("eve.json");
        std::fs::write(&eve, "{\"event_type\":\"old\"}\n").unwrap();
        let (reader, seen) = recording_reader(dir.path(), Duration::from_secs(3600));
        let metrics = std::sync::Arc::new(Metrics::new("t"));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(reader.run(metrics.clone(), Shutdown::new(stopped)));
        // The first poll has positioned the reader at the end of the existing file.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut f = std::fs::OpenOptions::new().append(true).open(&eve).unwrap();
        writeln!(f, "{ALERT}").unwrap();
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the reader stops at once")
            .unwrap()
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), [ALERT]);
        assert_eq!(metrics.eve_events.get(&["alert"]), Some(1.0));
        assert_eq!(metrics.eve_events.get(&["old"]), None);
    }

    /// A line at the cap is read whole; one past it is skipped (as Vector's file source skips
    /// it), counted as `oversized` and never handed to the sink, and the lines around it are.
    #[tokio::test]
    async fn a_line_over_the_cap_is_counted_as_oversized_and_the_next_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let eve = dir.path().join("eve.json");
        std::fs::write(&eve, "").unwrap();
        let (reader, seen) = recording_reader(dir.path(), Duration::from_millis(20));
        let metrics = Arc::new(Metrics::new("t"));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(reader.run(metrics.clone(), Shutdown::new(stopped)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let line = |len: usize| {
            let head = "{\"timestamp\":\"2026-03-01T10:00:00.000000+0000\",\"event_type\":\"alert\",\"pad\":\"";
            format!("{head}{}\"}}", "x".repeat(len - head.len() - 2))
        };
        let (at_cap, over) = (line(MAX_LINE_BYTES), line(MAX_LINE_BYTES + 1));
        let ts = "\"timestamp\":\"2026-03-01T10:00:00.000000+0000\"";
        let text = format!(
            "{{{ts},\"event_type\":\"dns\"}}\n{over}\n{at_cap}\n{{{ts},\"event_type\":\"flow\"}}\n"
        );
        std::fs::write(&eve, text).unwrap();
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the reader stops")
            .unwrap()
            .unwrap();
        let got = seen.lock().unwrap().clone();
        assert_eq!(
            got.len(),
            3,
            "{:?}",
            got.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(got[1].len(), MAX_LINE_BYTES);
        assert_eq!(metrics.eve_events.get(&[OVERSIZED]), Some(1.0));
        assert_eq!(metrics.eve_events.get(&["alert"]), Some(1.0));
        assert_eq!(metrics.eve_events.get(&[UNPARSED]), None);
    }

    /// Rotation against a stand-in for Suricata (a writer holding an append descriptor, which
    /// reopens `eve.json` when asked): the file is renamed once it reaches the limit, no second
    /// rename happens while the reopen is refused, and the sink gets every line once, in order,
    /// across both files. The real Suricata's reopen is checked in tests/rules_update.rs.
    #[tokio::test]
    async fn rotates_at_the_limit_and_loses_no_line() {
        use std::io::Write as _;
        use std::sync::atomic::{AtomicU32, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let eve = dir.path().join("eve.json");
        let open = |p: &std::path::Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap()
        };
        let writer = Arc::new(Mutex::new(open(&eve)));
        let refusals = Arc::new(AtomicU32::new(3));
        let reopen: Reopen = {
            let (writer, refusals, eve) = (writer.clone(), refusals.clone(), eve.clone());
            Arc::new(move || {
                if refusals.load(Ordering::SeqCst) > 0 {
                    refusals.fetch_sub(1, Ordering::SeqCst);
                    return Err("socket not there yet".into());
                }
                *writer.lock().unwrap() = open(&eve);
                Ok(())
            })
        };
        let write =
            |n: u32| writeln!(writer.lock().unwrap(), "{{\"event_type\":\"e{n}\"}}").unwrap();
        let (mut reader, seen) = recording_reader(dir.path(), Duration::from_millis(20));
        reader.rotation = Some(Rotation {
            max_bytes: 100,
            reopen,
        });
        let metrics = Arc::new(Metrics::new("t"));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(reader.run(metrics.clone(), Shutdown::new(stopped)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // 8 lines of 19 bytes: over the limit. The first three reopens are refused (one failure
        // counted), so the writer keeps writing into the renamed file until a retry succeeds.
        for n in 0..8 {
            write(n);
        }
        let rotated = dir.path().join("eve.json.1");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while metrics.eve_rotation_failures.get(&[]) != Some(1.0)
            || refusals.load(Ordering::SeqCst) > 0
            || !eve.exists()
        {
            assert!(std::time::Instant::now() < deadline, "no rotation");
            write(100);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for n in 200..203 {
            write(n);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();

        assert_eq!(metrics.eve_rotations.get(&[]), Some(1.0));
        assert_eq!(metrics.eve_rotation_failures.get(&[]), Some(1.0));
        let used = metrics
            .logs_used
            .get(&[])
            .expect("the file system's use is exported");
        assert!(used > 0.0 && used <= 1.0, "{used}");
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&eve).unwrap();
        assert!(old.starts_with("{\"event_type\":\"e0\"}\n"), "{old}");
        assert!(new.ends_with("{\"event_type\":\"e202\"}\n"), "{new}");
        let written: Vec<String> = format!("{old}{new}").lines().map(String::from).collect();
        assert_eq!(*seen.lock().unwrap(), written, "every line once, in order");
    }

    #[test]
    fn fill_levels_change_with_a_gap_between_them() {
        let mut f = Fill::Room;
        for (used, want) in [
            (0.5, Fill::Room),
            (0.85, Fill::Room),
            (0.9, Fill::Filling),
            (0.85, Fill::Filling),
            (0.995, Fill::Full),
            (0.95, Fill::Full),
            (0.85, Fill::Full),
            (0.79, Fill::Room),
            (1.0, Fill::Full),
            (0.5, Fill::Room),
        ] {
            f = f.next(used);
            assert_eq!(f, want, "at {used}");
        }
    }

    #[test]
    fn counts_by_type_and_reads_stats() {
        let mut c = EveCounter::default();
        c.line(br#"{"timestamp":"2026-03-01T10:00:00.000000+0000","event_type":"alert","alert":{"signature_id":1}}"#);
        c.line(br#"{"timestamp":"2026-03-01T10:00:00+00:00","event_type":"alert"}"#);
        // Intel rules' alerts count per feed; other metadata, of any shape, changes nothing.
        let intel = br#"{"timestamp":"2026-03-01T10:00:00.5+0100","event_type":"alert","alert":{"signature_id":9202001,"metadata":{"ids2_intel_feed":["feodo-tracker"],"ids2_intel_kind":["ip"]}}}"#;
        c.line(intel);
        c.line(intel);
        c.line(br#"{"timestamp":"2026-03-01T10:00:00.000000+0000","event_type":"alert","alert":{"metadata":{"policy":["balanced"]}}}"#);
        c.line(br#"{"timestamp":"2026-03-01T10:00:00.000000+0000","event_type":"alert","alert":{"metadata":"odd"}}"#);
        c.line(br#"{"timestamp":"2026-03-01T10:00:00.000000-0500","event_type":"dns","dns":{}}"#);
        c.line(b"not json");
        c.line(br#"{"no_type":1}"#);
        // What Vector's mapping refuses too: no timestamp, one it cannot read, one not a string,
        // an event type not a string.
        c.line(br#"{"event_type":"alert"}"#);
        c.line(br#"{"timestamp":"x","event_type":"alert","alert":{"signature_id":1}}"#);
        c.line(br#"{"timestamp":1764892800,"event_type":"alert"}"#);
        c.line(br#"{"timestamp":"2026-03-01T10:00:00.000000+0000","event_type":7}"#);
        c.line(
            br#"{"timestamp":"2026-03-01T10:00:00.000000+0000","event_type":"stats","stats":{"uptime":9,"capture":{"kernel_packets":120,"kernel_drops":7},
            "tcp":{"ssn_memcap_drop":2,"segment_memcap_drop":3},"flow":{"memcap":4},
            "memcap_pressure":55,"memcap_pressure_max":60,"http":{"memcap":1,"memuse":999}}}"#,
        );
        assert_eq!(c.counts()["alert"], 6);
        assert_eq!(c.counts()["dns"], 1);
        assert_eq!(c.counts()["stats"], 1);
        assert_eq!(c.counts()[UNPARSED], 6);
        assert_eq!(
            c.stats(),
            Some(CaptureStats {
                kernel_packets: 120,
                kernel_drops: 7,
                memcap_hits: 10
            })
        );
        let m = Metrics::new("t");
        c.flush(&m);
        assert_eq!(m.eve_events.get(&["alert"]), Some(6.0));
        assert_eq!(m.intel_matches.get(&["feodo-tracker"]), Some(2.0));
        assert_eq!(m.intel_matches.snapshot().len(), 1);
        assert_eq!(m.capture_drops.get(&[]), Some(7.0));
        assert_eq!(m.memcap_hits.get(&[]), Some(10.0));
        assert!(c.counts().is_empty());
    }
}
