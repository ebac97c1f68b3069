//! The detector inside `ids2-agent run`.
//!
//! The EVE reader offers every line to [`AnomalyService::sink`], which never waits: a `flow`
//! line goes into a bounded queue, and a full queue (or a detector that is restarting) counts
//! the flow in `ids2_anomaly_flows_dropped_total` instead. The supervised `anomaly` task takes
//! the queue in batches and runs the detector on a blocking thread (parsing, features, scoring
//! and training are CPU work, and the daemon's runtime has one thread). The detector — training
//! on the baseline, saving the model to `anomaly.model_path`, loading it on the next start —
//! lives outside the task, so a restarted task carries on where it stopped.
//!
//! Anomaly documents ([`AnomalyEvent::document`](super::AnomalyEvent::document) plus the
//! sensor's `observer.*`) are appended as JSON lines to `<logs.path>/anomaly.json`, which the
//! rendered `vector.toml` tails and ships through the event sink's disk buffer to
//! `<prefix>-ids2.anomaly-YYYY.MM.DD`. The file is capped at [`MAX_FILE_BYTES`] and rotated to
//! `anomaly.json.1` like the heartbeat file. Documents that cannot be written are kept and
//! retried (the task restarts with backoff); past [`PENDING_LIMIT`] the oldest are counted in
//! `ids2_anomaly_events_dropped_total`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{AnomalyDetector, AnomalyStats, DetectorOptions};
use crate::config::Settings;
use crate::eve::LineSink;
use crate::files::CappedLines;
use crate::metrics::Metrics;
pub use crate::render::{ANOMALY_FILE, ANOMALY_ROTATED_FILE};
use crate::supervisor::{Shutdown, Supervisor, TaskError};

/// Flows waiting for the detector; about 4 MiB of EVE lines at their usual size.
pub const QUEUE_FLOWS: usize = 8192;
/// Most flows handed to the blocking thread at once.
pub const BATCH_FLOWS: usize = 1024;
/// Largest anomaly file before it is rotated (two files at most live on the log tmpfs).
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Most documents kept while the anomaly file cannot be written.
pub const PENDING_LIMIT: usize = 16_384;

/// Counter of flows the detector never saw (queue full, or the task restarting).
pub const METRIC_FLOWS_DROPPED: &str = "ids2_anomaly_flows_dropped_total";
/// Counter of anomaly documents discarded because the file stayed unwritable.
pub const METRIC_EVENTS_DROPPED: &str = "ids2_anomaly_events_dropped_total";
/// Gauge: baseline flows collected (or the model was trained on).
pub const METRIC_BASELINE: &str = "ids2_anomaly_baseline_flows";

/// What the EVE reader's sink and the metrics share with the task.
#[derive(Default)]
struct Shared {
    /// The current task's queue; replaced when the task restarts.
    tx: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    flows_dropped: AtomicU64,
    events_dropped: AtomicU64,
    /// `None` until the detector has started (model loaded or baseline begun).
    stats: Mutex<Option<AnomalyStats>>,
}

/// What survives a task restart.
#[derive(Default)]
struct State {
    detector: Option<AnomalyDetector>,
    pending: VecDeque<Vec<u8>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// True for an EVE `flow` line as Suricata writes it (compact JSON).
fn is_flow(line: &[u8]) -> bool {
    const MARK: &[u8] = br#""event_type":"flow""#;
    line.windows(MARK.len()).any(|w| w == MARK)
}

impl Shared {
    fn offer(&self, line: &[u8]) {
        if !is_flow(line) {
            return;
        }
        let sent = match locked(&self.tx).as_ref() {
            Some(tx) => tx.try_send(line.to_vec()).is_ok(),
            None => false,
        };
        if !sent {
            let n = self.flows_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Logged at powers of two so a flood cannot flood the journal too.
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped_total = n,
                    "anomaly queue full or detector restarting: flow not scored \
                     (see {METRIC_FLOWS_DROPPED})"
                );
            }
        }
    }

    fn render(&self, out: &mut String) {
        let stats = *locked(&self.stats);
        if let Some(stats) = &stats {
            out.push_str(&stats.render());
        }
        let mut family = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        if let Some(stats) = stats {
            family(
                METRIC_BASELINE,
                "gauge",
                "Baseline flows collected for the anomaly model, or that it was trained on.",
                stats.baseline_flows,
            );
        }
        family(
            METRIC_FLOWS_DROPPED,
            "counter",
            "Flow records not scored because the anomaly queue was full or the detector restarting.",
            self.flows_dropped.load(Ordering::Relaxed),
        );
        family(
            METRIC_EVENTS_DROPPED,
            "counter",
            "Anomaly documents discarded because the anomaly file stayed unwritable.",
            self.events_dropped.load(Ordering::Relaxed),
        );
    }
}

/// Appends anomaly documents to `<dir>/anomaly.json`, rotating at a size cap.
#[derive(Debug, Clone)]
pub struct EventFile(CappedLines);

impl EventFile {
    /// A writer into `dir` (normally `logs.path`) with the [`MAX_FILE_BYTES`] cap.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::with_cap(dir, MAX_FILE_BYTES)
    }

    /// A writer with another cap (tests).
    pub fn with_cap(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        let dir = dir.into();
        Self(CappedLines::new(
            dir.join(ANOMALY_FILE),
            dir.join(ANOMALY_ROTATED_FILE),
            max_bytes,
        ))
    }

    /// The file written to (Vector's `anomaly` source reads it).
    pub fn path(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }

    /// Appends whole lines from the front of `lines`; on error the unwritten ones stay there.
    fn write(&self, lines: &mut VecDeque<Vec<u8>>) -> io::Result<()> {
        self.0.append(lines)
    }
}

/// The anomaly detector as a daemon task, when `anomaly.enabled`.
pub struct AnomalyService {
    options: DetectorOptions,
    observer: Value,
    file: EventFile,
    shared: Arc<Shared>,
    state: Arc<Mutex<State>>,
}

impl AnomalyService {
    /// The service for these settings, its counters added to `/metrics`; `None` when
    /// `anomaly.enabled` is off.
    pub fn from_settings(settings: &Settings, metrics: &Metrics) -> Option<Arc<Self>> {
        let c = &settings.config;
        if !c.anomaly.enabled {
            return None;
        }
        let observer = json!({
            "hostname": c.sensor.id,
            "name": c.sensor.name.as_deref().unwrap_or(&c.sensor.id),
            "type": "ids",
            "vendor": "ids2",
            "product": "ids2",
            "version": env!("CARGO_PKG_VERSION"),
        });
        Some(Self::new(
            DetectorOptions::from_config(&c.anomaly),
            observer,
            EventFile::new(&c.logs.path),
            metrics,
        ))
    }

    /// A service with explicit parts (tests).
    pub fn new(
        options: DetectorOptions,
        observer: Value,
        file: EventFile,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        metrics.add_renderer(Box::new(move |out| s.render(out)));
        Arc::new(Self {
            options,
            observer,
            file,
            shared,
            state: Arc::default(),
        })
    }

    /// The EVE reader's sink: queues `flow` lines, never waits.
    pub fn sink(&self) -> LineSink {
        let shared = self.shared.clone();
        Arc::new(move |line: &[u8]| shared.offer(line))
    }

    /// The detector's counters, once it has started.
    pub fn stats(&self) -> Option<AnomalyStats> {
        *locked(&self.shared.stats)
    }

    /// Flows dropped before the detector saw them.
    pub fn flows_dropped(&self) -> u64 {
        self.shared.flows_dropped.load(Ordering::Relaxed)
    }

    /// Starts the supervised `anomaly` task.
    pub fn spawn(self: &Arc<Self>, sup: &mut Supervisor) {
        let me = self.clone();
        sup.spawn(
            "anomaly",
            Box::new(move |shutdown| Box::pin(me.clone().run(shutdown))),
        );
    }

    /// Takes queued flows in batches until shutdown; what is queued at shutdown is still scored.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) -> Result<(), TaskError> {
        let (tx, mut rx) = mpsc::channel(QUEUE_FLOWS);
        *locked(&self.shared.tx) = Some(tx);
        // An empty first batch loads the model (or starts the baseline) and writes what an
        // earlier run of the task left pending.
        let mut batch = Vec::with_capacity(BATCH_FLOWS);
        loop {
            batch = self.clone().process_blocking(batch).await?;
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH_FLOWS) => if n == 0 { break },
                _ = shutdown.requested() => {
                    rx.close();
                    while let Ok(line) = rx.try_recv() {
                        batch.push(line);
                    }
                    self.process_blocking(batch).await?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Runs [`Self::process`] on a blocking thread; hands the emptied batch back for reuse.
    async fn process_blocking(
        self: Arc<Self>,
        batch: Vec<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, TaskError> {
        tokio::task::spawn_blocking(move || {
            let mut batch = batch;
            self.process(&batch)?;
            batch.clear();
            Ok(batch)
        })
        .await
        .map_err(|e| -> TaskError { format!("the anomaly thread panicked: {e}").into() })?
    }

    fn process(&self, lines: &[Vec<u8>]) -> Result<(), TaskError> {
        let mut state = locked(&self.state);
        let State { detector, pending } = &mut *state;
        let detector = match detector {
            Some(d) => d,
            None => detector.insert(AnomalyDetector::start(self.options.clone())?),
        };
        for line in lines {
            // A line that is not JSON is already counted by the EVE reader as unparsed.
            let Ok(eve) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let Some(event) = detector.observe(&eve) else {
                continue;
            };
            let mut doc = event.document();
            doc["observer"] = self.observer.clone();
            let mut line = serde_json::to_vec(&doc).expect("JSON values always serialise");
            line.push(b'\n');
            if pending.len() == PENDING_LIMIT {
                pending.pop_front();
                self.shared.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
            pending.push_back(line);
        }
        if let Some(e) = detector.take_save_error() {
            let cause = std::error::Error::source(&e).map(ToString::to_string);
            tracing::error!(
                cause = cause.unwrap_or_default(),
                "anomaly: {e}; the model is used from memory and retrained at the next start"
            );
        }
        // The documents go out before the counters move, so whoever sees a count can read the
        // documents behind it.
        let written = self.file.write(pending);
        *locked(&self.shared.stats) = Some(detector.stats());
        written.map_err(|e| -> TaskError {
            format!("cannot write {}: {e}", self.file.path().display()).into()
        })
    }
}
