//! Anomaly detection on EVE `flow` records with an Isolation Forest.
//!
//! The daemon hands every EVE record to [`AnomalyDetector::observe`]. With no model on disk the
//! detector first collects a baseline: the features ([`features`]) of every flow for
//! `anomaly.baseline_secs` of flow time (EVE timestamps, so a replay trains the same way) and
//! at least `anomaly.min_baseline_flows` flows. It then grows the forest ([`forest`]), writes it
//! to `anomaly.model_path` ([`model`]) and scores every later flow; a flow scoring at or above
//! `anomaly.threshold` comes back as an [`AnomalyEvent`], shaped like an alert for shipping.
//! On the next start the saved model is loaded and scoring starts at once.
//!
//! The `ids2-agent anomaly train|score|features` commands run the same code over EVE files.

pub mod daemon;
mod error;
pub mod features;
pub mod forest;
mod model;

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use error::AnomalyError;
pub use features::{Extractor, FeatureVector, FEATURES, N_FEATURES};
/// The shipped document and its fields are the portable core's, shared with `ids2-provision`.
pub use ids2_core::anomaly::{AnomalyEvent, DATASET, FIELDS, SEVERITY};
pub use model::{Model, TrainParams, DEFAULT_SEED, MODEL_FORMAT, MODEL_VERSION};

use crate::config::Anomaly;
use forest::SplitMix64;

/// How many features an anomaly event names.
pub const TOP_FEATURES: usize = 3;

/// Most baseline flows kept in memory (about 4.5 MiB); beyond it a uniform reservoir sample is
/// kept, which is all a forest of 100 trees × 256 samples can use anyway.
pub const BASELINE_CAPACITY: usize = 65_536;

/// Counter of flows scored at or above the threshold.
pub const METRIC_ANOMALIES: &str = "ids2_anomalies_total";
/// Gauge: the score of the last flow scored.
pub const METRIC_SCORE: &str = "ids2_anomaly_score";
/// Counter of flows scored.
pub const METRIC_SCORED: &str = "ids2_anomaly_flows_scored_total";
/// Gauge: 1 while the baseline is being collected, 0 once a model scores.
pub const METRIC_TRAINING: &str = "ids2_anomaly_training";

/// What the detector is set up with (from the `anomaly:` config section).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorOptions {
    /// Score at or above which a flow is an anomaly.
    pub threshold: f64,
    /// Training window in seconds of flow time.
    pub baseline_secs: f64,
    /// Fewest flows to train on.
    pub min_baseline_flows: usize,
    /// Forest parameters.
    pub params: TrainParams,
    /// Where the model is loaded from and saved to; `None` keeps it in memory only.
    pub model_path: Option<PathBuf>,
}

impl DetectorOptions {
    /// Options from a validated `anomaly:` section.
    pub fn from_config(a: &Anomaly) -> Self {
        Self {
            threshold: a.threshold,
            baseline_secs: f64::from(a.baseline_secs),
            min_baseline_flows: a.min_baseline_flows as usize,
            params: TrainParams {
                trees: a.trees as usize,
                sample_size: a.sample_size as usize,
                seed: DEFAULT_SEED,
            },
            model_path: Some(PathBuf::from(&a.model_path)),
        }
    }
}

/// Counters for the metrics endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AnomalyStats {
    /// Flows collected into the baseline so far (or trained on, once scoring).
    pub baseline_flows: u64,
    /// Flows scored.
    pub flows_scored: u64,
    /// Flows scored at or above the threshold.
    pub anomalies: u64,
    /// The last score, once a flow has been scored.
    pub last_score: Option<f64>,
    /// True while collecting the baseline.
    pub training: bool,
}

impl AnomalyStats {
    /// The families in Prometheus text format 0.0.4, for the daemon's `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: Option<f64>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            if let Some(v) = value {
                let _ = writeln!(out, "{name} {v}");
            }
        };
        family(
            METRIC_ANOMALIES,
            "counter",
            "Flows whose anomaly score met anomaly.threshold.",
            Some(self.anomalies as f64),
        );
        family(
            METRIC_SCORE,
            "gauge",
            "Anomaly score (0 to 1) of the last flow scored.",
            self.last_score,
        );
        family(
            METRIC_SCORED,
            "counter",
            "Flows scored by the anomaly model.",
            Some(self.flows_scored as f64),
        );
        family(
            METRIC_TRAINING,
            "gauge",
            "1 while the anomaly baseline is being collected, 0 once a model scores flows.",
            Some(if self.training { 1.0 } else { 0.0 }),
        );
        out
    }
}

struct Baseline {
    rows: Vec<FeatureVector>,
    seen: u64,
    first: Option<(f64, String)>,
    last: Option<(f64, String)>,
    rng: SplitMix64,
}

enum Phase {
    Training(Baseline),
    Scoring(Model),
}

/// Trains on the first flows it sees (unless a model was saved), then scores every flow.
pub struct AnomalyDetector {
    options: DetectorOptions,
    extractor: Extractor,
    phase: Phase,
    stats: AnomalyStats,
    save_error: Option<AnomalyError>,
}

impl AnomalyDetector {
    /// Loads the model at `options.model_path` when there is one, else starts collecting a
    /// baseline. A model file that exists but cannot be used is an error (delete it to
    /// retrain), never silently replaced.
    pub fn start(options: DetectorOptions) -> Result<Self, AnomalyError> {
        let model = match &options.model_path {
            Some(path) => match Model::load(path) {
                Ok(m) => Some(m),
                Err(AnomalyError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        Ok(match model {
            Some(m) => Self::with_model(m, options),
            None => Self {
                phase: Phase::Training(Baseline {
                    rows: Vec::new(),
                    seen: 0,
                    first: None,
                    last: None,
                    rng: SplitMix64::new(options.params.seed),
                }),
                stats: AnomalyStats {
                    training: true,
                    ..AnomalyStats::default()
                },
                options,
                extractor: Extractor::new(),
                save_error: None,
            },
        })
    }

    /// A detector that scores with `model` from the first flow.
    pub fn with_model(model: Model, options: DetectorOptions) -> Self {
        Self {
            stats: AnomalyStats {
                baseline_flows: model.trained_flows,
                ..AnomalyStats::default()
            },
            phase: Phase::Scoring(model),
            options,
            extractor: Extractor::new(),
            save_error: None,
        }
    }

    /// Accounts for one EVE record: records other than `flow` are ignored; during training
    /// the flow joins the baseline (and may complete it); afterwards it is scored and, at or
    /// above the threshold, returned as an event.
    pub fn observe(&mut self, eve: &Value) -> Option<AnomalyEvent> {
        let x = self.extractor.extract(eve)?;
        match &mut self.phase {
            Phase::Training(b) => {
                let ts = eve
                    .get("timestamp")
                    .and_then(Value::as_str)
                    .and_then(|s| features::parse_ts(s).map(|t| (t, s.to_string())));
                b.add(x, ts);
                self.stats.baseline_flows = b.seen;
                if b.complete(self.options.baseline_secs, self.options.min_baseline_flows) {
                    self.finish_training();
                }
                None
            }
            Phase::Scoring(model) => {
                let score = model.score(&x);
                self.stats.flows_scored += 1;
                self.stats.last_score = Some(score);
                if score < self.options.threshold {
                    return None;
                }
                self.stats.anomalies += 1;
                let (_, top) = model.explain(&x, TOP_FEATURES);
                Some(AnomalyEvent {
                    score,
                    threshold: self.options.threshold,
                    top_features: top,
                    model_trained_flows: model.trained_flows,
                    flow: eve.clone(),
                })
            }
        }
    }

    fn finish_training(&mut self) {
        let Phase::Training(b) = &mut self.phase else {
            return;
        };
        let window = b.first.take().zip(b.last.take()).map(|(f, l)| (f.1, l.1));
        let rows = std::mem::take(&mut b.rows);
        let seen = b.seen;
        let mut model = match Model::train(&rows, self.options.params, window) {
            Ok(m) => m,
            // `complete` needs min_baseline_flows ≥ sample_size ≥ 2 rows, so this cannot
            // happen with validated options; keep collecting rather than lose the baseline.
            Err(e) => {
                tracing::warn!("anomaly: {e}");
                b.rows = rows;
                return;
            }
        };
        model.trained_flows = seen;
        if let Some(path) = &self.options.model_path {
            if let Err(e) = model.save(path) {
                tracing::warn!("anomaly: scoring with an unsaved model: {e}");
                self.save_error = Some(e);
            }
        }
        tracing::info!(
            flows = seen,
            trees = model.params.trees,
            "anomaly: baseline complete, scoring flows"
        );
        self.stats.training = false;
        self.phase = Phase::Scoring(model);
    }

    /// True while collecting the baseline.
    pub fn is_training(&self) -> bool {
        matches!(self.phase, Phase::Training(_))
    }

    /// The model, once trained or loaded.
    pub fn model(&self) -> Option<&Model> {
        match &self.phase {
            Phase::Scoring(m) => Some(m),
            Phase::Training(_) => None,
        }
    }

    /// Counters for the metrics endpoint.
    pub fn stats(&self) -> AnomalyStats {
        self.stats
    }

    /// The error from saving the freshly trained model, if saving failed (the detector keeps
    /// scoring with it in memory; the next start collects a new baseline).
    pub fn take_save_error(&mut self) -> Option<AnomalyError> {
        self.save_error.take()
    }
}

impl Baseline {
    fn add(&mut self, x: FeatureVector, ts: Option<(f64, String)>) {
        self.seen += 1;
        if self.rows.len() < BASELINE_CAPACITY {
            self.rows.push(x);
        } else {
            // Algorithm R: every flow seen so far stays in the sample with equal probability.
            let j = self.rng.below(self.seen as usize);
            if j < BASELINE_CAPACITY {
                self.rows[j] = x;
            }
        }
        // The window is from the earliest to the latest flow seen, not from the first one seen:
        // flow records come out as flows end, so their (start) timestamps are not in order, and
        // a first record with a late start would otherwise shrink the span and stall training.
        if let Some(ts) = ts {
            if self.first.as_ref().is_none_or(|f| ts.0 < f.0) {
                self.first = Some(ts.clone());
            }
            if self.last.as_ref().is_none_or(|l| ts.0 >= l.0) {
                self.last = Some(ts);
            }
        }
    }

    fn complete(&self, window_secs: f64, min_flows: usize) -> bool {
        let span = match (&self.first, &self.last) {
            (Some(f), Some(l)) => l.0 - f.0,
            _ => 0.0,
        };
        self.seen as usize >= min_flows.max(2) && span >= window_secs
    }
}

/// Calls `each` with every `flow` record of an EVE file and its features, in file order.
pub fn for_each_flow(
    eve: &Path,
    mut each: impl FnMut(&Value, &FeatureVector) -> Result<(), AnomalyError>,
) -> Result<usize, AnomalyError> {
    let read_err = |source| AnomalyError::EveRead {
        path: eve.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(eve).map_err(read_err)?;
    let mut flows = 0;
    let mut extractor = Extractor::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(read_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line).map_err(|source| AnomalyError::EveLine {
            path: eve.to_path_buf(),
            line: i + 1,
            source,
        })?;
        if let Some(x) = extractor.extract(&value) {
            flows += 1;
            each(&value, &x)?;
        }
    }
    Ok(flows)
}

/// `ids2-agent anomaly train`: trains on every flow of `eve` and writes the model to `out`.
pub fn train_file(eve: &Path, out: &Path, params: TrainParams) -> Result<Model, AnomalyError> {
    let mut rows = Vec::new();
    let mut first: Option<String> = None;
    let mut last: Option<String> = None;
    for_each_flow(eve, |v, x| {
        rows.push(*x);
        if let Some(ts) = v.get("timestamp").and_then(Value::as_str) {
            first.get_or_insert_with(|| ts.to_string());
            last = Some(ts.to_string());
        }
        Ok(())
    })?;
    let model = Model::train(&rows, params, first.zip(last))?;
    model.save(out)?;
    Ok(model)
}

/// What `score_file` saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreSummary {
    /// Flow records scored.
    pub flows: usize,
    /// Anomalies written.
    pub anomalies: usize,
}

/// `ids2-agent anomaly score`: writes each flow of `eve` scoring ≥ `threshold` to `out` as a
/// JSON line (the shipped document).
pub fn score_file(
    model: &Path,
    eve: &Path,
    threshold: f64,
    out: &mut impl Write,
) -> Result<ScoreSummary, AnomalyError> {
    let model = Model::load(model)?;
    let options = DetectorOptions {
        threshold,
        baseline_secs: 0.0,
        min_baseline_flows: 0,
        params: model.params,
        model_path: None,
    };
    let mut detector = AnomalyDetector::with_model(model, options);
    let mut anomalies = 0;
    let flows = for_each_flow(eve, |v, _| {
        if let Some(event) = detector.observe(v) {
            anomalies += 1;
            writeln!(out, "{}", event.document()).map_err(AnomalyError::Output)?;
        }
        Ok(())
    })?;
    Ok(ScoreSummary { flows, anomalies })
}

/// `ids2-agent anomaly features`: the feature matrix of `eve` as CSV (a header of feature
/// names, one row per flow), with a last `score` column when a model is given.
pub fn features_csv(
    eve: &Path,
    model: Option<&Path>,
    out: &mut impl Write,
) -> Result<usize, AnomalyError> {
    let model = model.map(Model::load).transpose()?;
    let mut header = FEATURES.join(",");
    if model.is_some() {
        header.push_str(",score");
    }
    writeln!(out, "{header}").map_err(AnomalyError::Output)?;
    let mut line = String::new();
    for_each_flow(eve, |_, x| {
        line.clear();
        for (i, v) in x.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            let _ = write!(line, "{v}");
        }
        if let Some(m) = &model {
            let _ = write!(line, ",{}", m.score(x));
        }
        writeln!(out, "{line}").map_err(AnomalyError::Output)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flow(i: u64, secs: u64, anomalous: bool) -> Value {
        let (ts, bytes, port) = if anomalous {
            (1, 60, 1 + i % 1000)
        } else {
            (8 + i % 5, 600 + 37 * (i % 11), 443)
        };
        json!({
            "timestamp": format!("2026-01-01T00:{:02}:{:02}.000000+0000", secs / 60, secs % 60),
            "flow_id": i, "event_type": "flow", "src_ip": "10.0.0.2", "src_port": 40000 + i,
            "dest_ip": "10.0.0.1", "dest_port": port, "proto": "TCP",
            "app_proto": if anomalous { Value::Null } else { "tls".into() },
            "flow": {"pkts_toserver": ts, "pkts_toclient": if anomalous { 1 } else { ts + 2 },
                     "bytes_toserver": bytes, "bytes_toclient": if anomalous { 54 } else { bytes * 4 },
                     "age": 1, "state": if anomalous { "new" } else { "closed" }},
            "tcp": {"tcp_flags_ts": if anomalous { "02" } else { "1b" },
                    "tcp_flags_tc": if anomalous { "14" } else { "1b" }}
        })
    }

    fn options(path: Option<PathBuf>) -> DetectorOptions {
        DetectorOptions {
            threshold: 0.6,
            baseline_secs: 60.0,
            min_baseline_flows: 100,
            params: TrainParams {
                trees: 50,
                sample_size: 64,
                seed: 1,
            },
            model_path: path,
        }
    }

    #[test]
    fn trains_after_window_and_count_then_scores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models/m.json");
        let mut d = AnomalyDetector::start(options(Some(path.clone()))).unwrap();
        assert!(d.is_training() && d.stats().training);
        // 200 flows within 50 s: count reached, window not yet.
        for i in 0..200 {
            assert!(d.observe(&flow(i, i / 4, false)).is_none());
        }
        assert!(d.is_training(), "window of 60 s not yet elapsed");
        assert!(d.observe(&json!({"event_type": "alert"})).is_none());
        assert!(
            d.observe(&flow(200, 61, false)).is_none(),
            "completing flow is baseline"
        );
        assert!(!d.is_training());
        assert_eq!(d.stats().baseline_flows, 201);
        assert!(path.is_file(), "model saved");
        assert!(d.take_save_error().is_none());

        assert!(d.observe(&flow(300, 70, false)).is_none());
        let ev = d
            .observe(&flow(301, 71, true))
            .expect("scan-like flow is anomalous");
        assert!(ev.score >= 0.6);
        assert_eq!(ev.top_features.len(), TOP_FEATURES);
        let s = d.stats();
        assert_eq!((s.flows_scored, s.anomalies), (2, 1));
        assert_eq!(s.last_score, Some(ev.score));

        // A restart loads the saved model and scores at once.
        let mut again = AnomalyDetector::start(options(Some(path))).unwrap();
        assert!(!again.is_training());
        assert_eq!(again.model(), d.model());
        assert!(again.observe(&flow(302, 72, true)).is_some());
    }

    /// Flow records come out as flows end, so their timestamps are out of order: the window is
    /// earliest to latest, whatever came first.
    #[test]
    fn window_spans_earliest_to_latest_flow_in_any_order() {
        let mut d = AnomalyDetector::start(options(None)).unwrap();
        // The first record seen is the latest flow; the rest started up to 59 s before it.
        assert!(d.observe(&flow(0, 61, false)).is_none());
        for i in 1..200 {
            assert!(d.observe(&flow(i, (i % 60) + 2, false)).is_none());
        }
        assert!(
            d.is_training(),
            "earliest so far starts 59 s before the latest"
        );
        assert!(d.observe(&flow(200, 0, false)).is_none());
        assert!(!d.is_training(), "61 s from earliest to latest");
    }

    #[test]
    fn bad_model_file_is_an_error_not_a_retrain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        std::fs::write(&path, "not json").unwrap();
        let err = AnomalyDetector::start(options(Some(path.clone())))
            .err()
            .unwrap();
        assert!(matches!(err, AnomalyError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("delete it to retrain"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
    }

    #[test]
    fn unsaveable_model_still_scores_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        std::fs::create_dir(&models).unwrap();
        let mut d = AnomalyDetector::start(options(Some(models.join("m.json")))).unwrap();
        // The model directory turns into a file while the baseline is collected.
        std::fs::remove_dir(&models).unwrap();
        std::fs::write(&models, "").unwrap();
        for i in 0..120 {
            d.observe(&flow(i, i, false));
        }
        assert!(!d.is_training());
        assert!(matches!(
            d.take_save_error(),
            Some(AnomalyError::Write { .. })
        ));
    }

    #[test]
    fn metrics_text() {
        let s = AnomalyStats {
            baseline_flows: 10,
            flows_scored: 7,
            anomalies: 2,
            last_score: Some(0.25),
            training: false,
        };
        let text = s.render();
        assert!(text.contains("\nids2_anomalies_total 2\n"), "{text}");
        assert!(text.contains("\nids2_anomaly_score 0.25\n"));
        assert!(text.contains("\nids2_anomaly_training 0\n"));
        let fresh = AnomalyStats::default().render();
        assert!(
            !fresh.contains("\nids2_anomaly_score "),
            "no score before the first flow"
        );
    }
}
