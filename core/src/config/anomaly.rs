//! `anomaly`: Isolation Forest anomaly detection on EVE flow records. Off by default.

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::validate::check_abs_path;

/// Anomaly detection on flows: an Isolation Forest trained on a baseline window of the
/// sensor's own flows, then scoring every flow.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Anomaly {
    /// Score flows and ship anomalies; off until an operator opts in.
    #[serde(default)]
    pub enabled: bool,
    /// Length of the training window in seconds of flow time (EVE timestamps), counted from
    /// the first flow seen when no model exists yet.
    #[serde(default = "default_anomaly_baseline_secs")]
    pub baseline_secs: u32,
    /// Where the trained model is written and, on later starts, loaded from (absolute path).
    #[serde(default = "default_anomaly_model_path")]
    pub model_path: String,
    /// Flows scoring at or above this (0.5 to 1, exclusive) become anomaly events.
    #[serde(default = "default_anomaly_threshold")]
    pub threshold: f64,
    /// Trees in the forest.
    #[serde(default = "default_anomaly_trees")]
    pub trees: u32,
    /// Flows sampled (without replacement) to grow each tree.
    #[serde(default = "default_anomaly_sample_size")]
    pub sample_size: u32,
    /// Fewest baseline flows to train on; the window is extended until this many are seen.
    #[serde(default = "default_anomaly_min_baseline_flows")]
    pub min_baseline_flows: u32,
}

super::schema::default_from_fns! {
    Anomaly {
        enabled: bool::default, baseline_secs: default_anomaly_baseline_secs,
        model_path: default_anomaly_model_path, threshold: default_anomaly_threshold,
        trees: default_anomaly_trees, sample_size: default_anomaly_sample_size,
        min_baseline_flows: default_anomaly_min_baseline_flows,
    }
}

/// Default anomaly training window: one week of flows, so weekly rhythms are in the baseline.
pub fn default_anomaly_baseline_secs() -> u32 {
    7 * 86_400
}

/// Default anomaly model file.
pub fn default_anomaly_model_path() -> String {
    "/var/lib/ids2/anomaly-model.json".into()
}

/// Default anomaly threshold, chosen on the labelled lab flows (README, "Anomaly detection").
pub fn default_anomaly_threshold() -> f64 {
    0.6
}

/// Default forest size (Liu et al.: path lengths converge well before 100 trees).
pub fn default_anomaly_trees() -> u32 {
    100
}

/// Default per-tree sample (Liu et al.'s 256, also scikit-learn's `max_samples="auto"` cap).
pub fn default_anomaly_sample_size() -> u32 {
    256
}

/// Default least baseline size.
pub fn default_anomaly_min_baseline_flows() -> u32 {
    1000
}

impl Anomaly {
    /// Checks the model path and the forest's parameters; when enabled, `suricata.eve_types`
    /// must include `flow`.
    pub(super) fn validate(&self, eve_types: &[String], p: &mut Vec<Problem>) {
        let a = self;
        check_abs_path("anomaly.model_path", &a.model_path, p);
        // The detector scores EVE `flow` records; without them it would wait for a baseline forever.
        if a.enabled && !eve_types.iter().any(|t| t == "flow") {
            p.push(Problem::new(
                "anomaly.enabled",
                a.enabled,
                "anomaly detection scores EVE flow records: add `flow` to suricata.eve_types, or \
                 turn anomaly.enabled off",
            ));
        }
        if !(60..=31 * 86_400).contains(&a.baseline_secs) {
            p.push(Problem::new(
                "anomaly.baseline_secs",
                a.baseline_secs,
                "expected 60 to 2678400 seconds (one minute to 31 days; default one week)",
            ));
        }
        // Scores under 0.5 are ordinary by construction (average path longer than expected).
        if !(a.threshold >= 0.5 && a.threshold < 1.0) {
            p.push(Problem::new(
                "anomaly.threshold",
                a.threshold,
                "expected a score from 0.5 up to (not including) 1; higher flags fewer flows",
            ));
        }
        if !(1..=1000).contains(&a.trees) {
            p.push(Problem::new(
                "anomaly.trees",
                a.trees,
                "expected 1 to 1000 trees (default 100)",
            ));
        }
        if !(2..=65_536).contains(&a.sample_size) {
            p.push(Problem::new(
                "anomaly.sample_size",
                a.sample_size,
                "expected 2 to 65536 flows per tree (default 256)",
            ));
        }
        if a.min_baseline_flows < a.sample_size || a.min_baseline_flows > 10_000_000 {
            p.push(Problem::new(
                "anomaly.min_baseline_flows",
                a.min_baseline_flows,
                format!(
                    "expected at least anomaly.sample_size ({}) and at most 10000000 flows, so \
                     every tree grows from a full sample",
                    a.sample_size
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{base, problems_after};

    #[test]
    fn anomaly_defaults_are_off_and_valid() {
        let c = base();
        assert!(!c.anomaly.enabled);
        assert_eq!(c.anomaly.model_path, "/var/lib/ids2/anomaly-model.json");
        assert_eq!((c.anomaly.trees, c.anomaly.sample_size), (100, 256));
        assert!(problems_after(|_| {}).is_empty());
    }

    #[test]
    fn anomaly_bad_values_named_by_key() {
        let p = problems_after(|c| {
            c.anomaly.baseline_secs = 5;
            c.anomaly.threshold = 1.0;
            c.anomaly.trees = 0;
            c.anomaly.model_path = "models/a.json".into();
        });
        assert_eq!(
            p,
            [
                "anomaly.model_path",
                "anomaly.baseline_secs",
                "anomaly.threshold",
                "anomaly.trees"
            ]
        );
        assert_eq!(
            problems_after(|c| c.anomaly.threshold = f64::NAN),
            ["anomaly.threshold"]
        );
        assert_eq!(
            problems_after(|c| c.anomaly.threshold = 0.3),
            ["anomaly.threshold"]
        );
    }

    #[test]
    fn anomaly_needs_flow_records() {
        assert!(problems_after(|c| c.anomaly.enabled = true).is_empty());
        assert_eq!(
            problems_after(|c| {
                c.anomaly.enabled = true;
                c.suricata.eve_types.retain(|t| t != "flow");
            }),
            ["anomaly.enabled"]
        );
        assert!(problems_after(|c| c.suricata.eve_types.retain(|t| t != "flow")).is_empty());
    }

    #[test]
    fn anomaly_baseline_must_fill_a_tree_sample() {
        assert_eq!(
            problems_after(|c| c.anomaly.min_baseline_flows = 100),
            ["anomaly.min_baseline_flows"]
        );
        assert!(problems_after(|c| {
            c.anomaly.sample_size = 64;
            c.anomaly.min_baseline_flows = 100;
        })
        .is_empty());
        assert_eq!(
            problems_after(|c| c.anomaly.sample_size = 1),
            ["anomaly.sample_size"]
        );
    }
}
