//! The agent's Prometheus metrics: a small registry of the families the Grafana dashboard
//! queries and the HTTP endpoint (hyper 1) that serves them in text format 0.0.4.
//!
//! The registry is hand-rolled rather than a client library: the family list is fixed by the
//! contract, the values are few, and rendering them is a page of code that keeps the agent small.

mod server;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

pub use server::{serve, MetricsServer, ServeError};

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic (resets only when the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One metric family: a name, help text, label names and a value per label set.
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, f64>>,
}

impl Family {
    const fn new(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            kind,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// The family's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn key(&self, labels: &[&str]) -> Vec<String> {
        // A wrong label count is a programming error in this crate, caught by the unit tests.
        assert_eq!(
            labels.len(),
            self.labels.len(),
            "{} takes labels {:?}",
            self.name,
            self.labels
        );
        labels.iter().map(|l| (*l).to_string()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<String>, f64>> {
        // A panic while holding this lock cannot leave a half-written f64; keep serving.
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the value for a label set (gauges, and counters mirrored from another counter).
    pub fn set(&self, labels: &[&str], value: f64) {
        let key = self.key(labels);
        self.lock().insert(key, value);
    }

    /// Adds to the value for a label set, starting from 0.
    pub fn inc_by(&self, labels: &[&str], delta: f64) {
        let key = self.key(labels);
        *self.lock().entry(key).or_insert(0.0) += delta;
    }

    /// Adds one.
    pub fn inc(&self, labels: &[&str]) {
        self.inc_by(labels, 1.0);
    }

    /// The current value for a label set, if it was ever set.
    pub fn get(&self, labels: &[&str]) -> Option<f64> {
        let key = self.key(labels);
        self.lock().get(&key).copied()
    }

    /// Every label set and its value, in label order.
    pub fn snapshot(&self) -> Vec<(Vec<String>, f64)> {
        self.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Forgets a label set (e.g. a TLS target that no longer presents a certificate).
    pub fn remove(&self, labels: &[&str]) {
        let key = self.key(labels);
        self.lock().remove(&key);
    }

    fn render(&self, out: &mut String) {
        let values = self.lock();
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        for (key, value) in values.iter() {
            out.push_str(self.name);
            if !key.is_empty() {
                out.push('{');
                for (i, (name, v)) in self.labels.iter().zip(key).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{name}=\"{}\"", escape_label(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", format_value(*value));
        }
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Process label values of the per-process families.
pub const PROCESSES: [&str; 3] = ["suricata", "vector", "agent"];

/// Every fixed family the agent exports. Names and labels are an interface: the Grafana
/// dashboard and the operators' alerts query them (`.ci/nix-checks` holds the dashboard to
/// these names), so a rename is a breaking change.
#[derive(Debug)]
pub struct Metrics {
    /// `ids2_build_info{version}`.
    pub build_info: Family,
    /// `ids2_throttle_level`.
    pub throttle_level: Family,
    /// `ids2_throttle_transitions_total{from,to}`.
    pub throttle_transitions: Family,
    /// `ids2_host_cpu_ratio`.
    pub host_cpu: Family,
    /// `ids2_host_memory_ratio`.
    pub host_memory: Family,
    /// `ids2_cpu_ceiling_ratio`.
    pub cpu_ceiling: Family,
    /// `ids2_memory_ceiling_ratio`.
    pub memory_ceiling: Family,
    /// `ids2_process_cpu_ratio{process}`.
    pub process_cpu: Family,
    /// `ids2_process_resident_memory_bytes{process}`.
    pub process_rss: Family,
    /// `ids2_pipeline_process_up{process}`.
    pub process_up: Family,
    /// `ids2_redis_copy_up`.
    pub redis_copy_up: Family,
    /// `ids2_connectivity_up{check,target}`.
    pub connectivity_up: Family,
    /// `ids2_connectivity_latency_seconds{check,target}`.
    pub connectivity_latency: Family,
    /// `ids2_tls_certificate_expiry_seconds{target}`.
    pub tls_expiry: Family,
    /// `ids2_suricata_capture_packets_total`.
    pub capture_packets: Family,
    /// `ids2_suricata_capture_kernel_drops_total`.
    pub capture_drops: Family,
    /// `ids2_suricata_memcap_hits_total`.
    pub memcap_hits: Family,
    /// `ids2_eve_events_total{event_type}`.
    pub eve_events: Family,
    /// `ids2_intel_matches_total{feed}`.
    pub intel_matches: Family,
    /// `ids2_eve_rotations_total`.
    pub eve_rotations: Family,
    /// `ids2_eve_rotation_failures_total`.
    pub eve_rotation_failures: Family,
    /// `ids2_logs_used_ratio`.
    pub logs_used: Family,
    /// `ids2_task_restarts_total{task}`.
    pub task_restarts: Family,
    /// `ids2_last_apply_success`.
    pub last_apply_success: Family,
    /// `ids2_last_apply_timestamp_seconds`.
    pub last_apply_timestamp: Family,
    /// `ids2_heartbeats_total`.
    pub heartbeats: Family,
    /// `ids2_rules_update_success`.
    pub rules_update_success: Family,
    /// `ids2_rules_last_update_timestamp_seconds`.
    pub rules_last_update: Family,
    /// `ids2_rules_loaded`.
    pub rules_loaded: Family,
    /// `ids2_policy_update_success`.
    pub policy_update_success: Family,
    /// `ids2_policy_entries{state}`.
    pub policy_entries: Family,
    /// Families rendered by other modules (notifications, blocking), appended to the fixed list.
    extra: Extra,
}

/// Appends whole metric families (HELP, TYPE and samples, text format 0.0.4) to the output.
pub type Renderer = Box<dyn Fn(&mut String) + Send + Sync>;

struct Extra(Mutex<Vec<Renderer>>);

impl Extra {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Renderer>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Extra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} added renderers", self.lock().len())
    }
}

impl Metrics {
    /// A registry with `ids2_build_info` set for `version` and the throttle level at 0.
    pub fn new(version: &str) -> Self {
        use Kind::{Counter, Gauge};
        let m = Self {
            build_info: Family::new(
                "ids2_build_info",
                "Always 1; the agent's version is in the label.",
                Gauge,
                &["version"],
            ),
            throttle_level: Family::new(
                "ids2_throttle_level",
                "Current throttle level: 0 normal, 1 limited units, 2 reduced EVE outputs, 3 alerts only.",
                Gauge,
                &[],
            ),
            throttle_transitions: Family::new(
                "ids2_throttle_transitions_total",
                "Throttle level changes, by level left and level entered.",
                Counter,
                &["from", "to"],
            ),
            host_cpu: Family::new(
                "ids2_host_cpu_ratio",
                "Host CPU use as a ratio of all cores (0 to 1).",
                Gauge,
                &[],
            ),
            host_memory: Family::new(
                "ids2_host_memory_ratio",
                "Host memory in use as a ratio of total memory (0 to 1).",
                Gauge,
                &[],
            ),
            cpu_ceiling: Family::new(
                "ids2_cpu_ceiling_ratio",
                "Configured host CPU ceiling the controller keeps under (0 to 1).",
                Gauge,
                &[],
            ),
            memory_ceiling: Family::new(
                "ids2_memory_ceiling_ratio",
                "Configured host memory ceiling the controller keeps under (0 to 1).",
                Gauge,
                &[],
            ),
            process_cpu: Family::new(
                "ids2_process_cpu_ratio",
                "CPU use of a pipeline process as a ratio of all host cores (0 to 1).",
                Gauge,
                &["process"],
            ),
            process_rss: Family::new(
                "ids2_process_resident_memory_bytes",
                "Resident memory of a pipeline process in bytes.",
                Gauge,
                &["process"],
            ),
            process_up: Family::new(
                "ids2_pipeline_process_up",
                "1 when the pipeline process is running, 0 when it is down or cannot be started.",
                Gauge,
                &["process"],
            ),
            redis_copy_up: Family::new(
                "ids2_redis_copy_up",
                "With shipping.redis: 1 while Vector runs the Redis copy, 0 while it runs without \
                 it because Redis did not answer (events meanwhile get no Redis copy).",
                Gauge,
                &[],
            ),
            connectivity_up: Family::new(
                "ids2_connectivity_up",
                "1 when the last check of the target succeeded, else 0.",
                Gauge,
                &["check", "target"],
            ),
            connectivity_latency: Family::new(
                "ids2_connectivity_latency_seconds",
                "Duration of the last check of the target in seconds.",
                Gauge,
                &["check", "target"],
            ),
            tls_expiry: Family::new(
                "ids2_tls_certificate_expiry_seconds",
                "Seconds until the target's certificate expires (negative once expired).",
                Gauge,
                &["target"],
            ),
            capture_packets: Family::new(
                "ids2_suricata_capture_packets_total",
                "Packets the kernel handed to Suricata (capture.kernel_packets).",
                Counter,
                &[],
            ),
            capture_drops: Family::new(
                "ids2_suricata_capture_kernel_drops_total",
                "Packets the kernel dropped before Suricata saw them (capture.kernel_drops).",
                Counter,
                &[],
            ),
            memcap_hits: Family::new(
                "ids2_suricata_memcap_hits_total",
                "Times a Suricata memcap was hit (sum of its *memcap* counters).",
                Counter,
                &[],
            ),
            eve_events: Family::new(
                "ids2_eve_events_total",
                "EVE lines read, by event_type (unparsed: not an EVE event, no string event_type or no readable timestamp, shipped unmapped; oversized: longer than eve::MAX_LINE_BYTES, 4 MiB, skipped and not shipped).",
                Counter,
                &["event_type"],
            ),
            intel_matches: Family::new(
                "ids2_intel_matches_total",
                "Alerts raised by an intel feed's rules, by feed (metadata ids2_intel_feed).",
                Counter,
                &["feed"],
            ),
            eve_rotations: Family::new(
                "ids2_eve_rotations_total",
                "Times eve.json reached logs.eve_rotate_mb and was rotated to eve.json.1.",
                Counter,
                &[],
            ),
            eve_rotation_failures: Family::new(
                "ids2_eve_rotation_failures_total",
                "EVE rotations whose rename failed, or whose first reopen Suricata refused (then retried each poll).",
                Counter,
                &[],
            ),
            logs_used: Family::new(
                "ids2_logs_used_ratio",
                "Share of the log file system (the tmpfs holding eve.json) in use, 0 to 1.",
                Gauge,
                &[],
            ),
            task_restarts: Family::new(
                "ids2_task_restarts_total",
                "Restarts of a supervised task or pipeline process after it failed or exited.",
                Counter,
                &["task"],
            ),
            last_apply_success: Family::new(
                "ids2_last_apply_success",
                "1 when the last apply of the configuration succeeded, 0 when it failed.",
                Gauge,
                &[],
            ),
            last_apply_timestamp: Family::new(
                "ids2_last_apply_timestamp_seconds",
                "Unix time of the last apply attempt in seconds.",
                Gauge,
                &[],
            ),
            heartbeats: Family::new(
                "ids2_heartbeats_total",
                "Heartbeat documents written for shipping to the fleet's heartbeat index.",
                Counter,
                &[],
            ),
            rules_update_success: Family::new(
                "ids2_rules_update_success",
                "1 when the last rule-set update succeeded (or found nothing new), 0 when it failed.",
                Gauge,
                &[],
            ),
            rules_last_update: Family::new(
                "ids2_rules_last_update_timestamp_seconds",
                "Unix time of the last rule-set update attempt in seconds.",
                Gauge,
                &[],
            ),
            rules_loaded: Family::new(
                "ids2_rules_loaded",
                "Rules in the active rule set (as Suricata reported after its last reload when known).",
                Gauge,
                &[],
            ),
            policy_update_success: Family::new(
                "ids2_policy_update_success",
                "1 when the last fleet policy fetch applied (or found nothing new), 0 when it \
                 failed and the last good policy stays.",
                Gauge,
                &[],
            ),
            policy_entries: Family::new(
                "ids2_policy_entries",
                "Fleet policy entries for this sensor at the last fetch: applied, or skipped as \
                 invalid.",
                Gauge,
                &["state"],
            ),
            extra: Extra(Mutex::new(Vec::new())),
        };
        m.build_info.set(&[version], 1.0);
        m.throttle_level.set(&[], 0.0);
        m.eve_rotations.set(&[], 0.0);
        m.eve_rotation_failures.set(&[], 0.0);
        m
    }

    fn families(&self) -> [&Family; 31] {
        [
            &self.build_info,
            &self.throttle_level,
            &self.throttle_transitions,
            &self.host_cpu,
            &self.host_memory,
            &self.cpu_ceiling,
            &self.memory_ceiling,
            &self.process_cpu,
            &self.process_rss,
            &self.process_up,
            &self.redis_copy_up,
            &self.connectivity_up,
            &self.connectivity_latency,
            &self.tls_expiry,
            &self.capture_packets,
            &self.capture_drops,
            &self.memcap_hits,
            &self.eve_events,
            &self.intel_matches,
            &self.eve_rotations,
            &self.eve_rotation_failures,
            &self.logs_used,
            &self.task_restarts,
            &self.last_apply_success,
            &self.last_apply_timestamp,
            &self.heartbeats,
            &self.rules_update_success,
            &self.rules_last_update,
            &self.rules_loaded,
            &self.policy_update_success,
            &self.policy_entries,
        ]
    }

    /// The whole registry in Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        for family in self.families() {
            family.render(&mut out);
        }
        for render in self.extra.lock().iter() {
            render(&mut out);
        }
        out
    }

    /// Adds families another module keeps (e.g. `NotifyStats::render`); their names must not
    /// clash with the fixed ones.
    pub fn add_renderer(&self, render: Renderer) {
        self.extra.lock().push(render);
    }

    /// Records the result of an apply attempt (success or failure) at `unix_secs`.
    pub fn record_apply(&self, success: bool, unix_secs: f64) {
        self.last_apply_success
            .set(&[], if success { 1.0 } else { 0.0 });
        self.last_apply_timestamp.set(&[], unix_secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_escaped_labels() {
        let m = Metrics::new("1.2.3");
        m.connectivity_up.set(&["tls", "a\"b\\c\nd"], 1.0);
        m.eve_events.inc(&["alert"]);
        m.eve_events.inc_by(&["alert"], 2.0);
        let text = m.render();
        assert!(text.contains("# HELP ids2_build_info "));
        assert!(text.contains("# TYPE ids2_eve_events_total counter\n"));
        assert!(text.contains("ids2_build_info{version=\"1.2.3\"} 1\n"));
        assert!(text.contains("ids2_eve_events_total{event_type=\"alert\"} 3\n"));
        assert!(text.contains(r#"ids2_connectivity_up{check="tls",target="a\"b\\c\nd"} 1"#));
        assert!(text.contains("ids2_throttle_level 0\n"));
    }

    #[test]
    fn special_floats_use_prometheus_spelling() {
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(0.25), "0.25");
    }

    #[test]
    fn every_contract_name_is_served() {
        let text = Metrics::new("x").render();
        for name in [
            "ids2_build_info",
            "ids2_throttle_level",
            "ids2_throttle_transitions_total",
            "ids2_host_cpu_ratio",
            "ids2_host_memory_ratio",
            "ids2_cpu_ceiling_ratio",
            "ids2_memory_ceiling_ratio",
            "ids2_process_cpu_ratio",
            "ids2_process_resident_memory_bytes",
            "ids2_connectivity_up",
            "ids2_connectivity_latency_seconds",
            "ids2_tls_certificate_expiry_seconds",
            "ids2_suricata_capture_packets_total",
            "ids2_suricata_capture_kernel_drops_total",
            "ids2_suricata_memcap_hits_total",
            "ids2_eve_events_total",
            "ids2_task_restarts_total",
            "ids2_last_apply_success",
            "ids2_last_apply_timestamp_seconds",
            "ids2_heartbeats_total",
            "ids2_rules_update_success",
            "ids2_rules_last_update_timestamp_seconds",
            "ids2_rules_loaded",
            "ids2_policy_update_success",
            "ids2_policy_entries",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
    }

    #[test]
    fn added_renderers_follow_the_fixed_families() {
        let m = Metrics::new("x");
        m.add_renderer(Box::new(|out| {
            out.push_str("# HELP ids2_extra_total Extra.\n# TYPE ids2_extra_total counter\nids2_extra_total 4\n")
        }));
        let text = m.render();
        let extra = text
            .find("ids2_extra_total 4\n")
            .expect("extra family rendered");
        assert!(
            text.find("# TYPE ids2_last_apply_timestamp_seconds")
                .unwrap()
                < extra
        );
    }

    #[test]
    #[should_panic(expected = "takes labels")]
    fn wrong_label_count_is_caught() {
        Metrics::new("x").eve_events.inc(&[]);
    }
}
