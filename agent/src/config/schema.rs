//! The raw `config.yaml` schema exactly as an operator writes it.
//!
//! Every struct denies unknown keys and every default is a named function, so the
//! defaults are documented in one place and the reference in the README can point here.
//! Values are kept loose where a better error can be produced by [`super::validate`]
//! (CIDRs and addresses are strings here and parsed there).

use serde::{Deserialize, Serialize};

/// The whole sensor configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who this sensor is in the fleet.
    pub sensor: Sensor,
    /// What Suricata listens on and how it spreads the work.
    #[serde(default)]
    pub capture: Capture,
    /// The RAM-backed log directory for Suricata's EVE output.
    #[serde(default)]
    pub logs: Logs,
    /// Suricata's memory budget, EVE outputs and file locations.
    #[serde(default)]
    pub suricata: Suricata,
    /// Ceilings the resource controller keeps the host under.
    #[serde(default)]
    pub resources: Resources,
    /// Where events are shipped.
    pub opensearch: OpenSearch,
    /// How events are batched and buffered on their way to OpenSearch.
    #[serde(default)]
    pub shipping: Shipping,
    /// The Prometheus endpoint the agent serves.
    #[serde(default)]
    pub metrics: Metrics,
    /// The git repository that records every applied change.
    #[serde(default)]
    pub history: History,
    /// Link policy and the management targets that must stay reachable.
    #[serde(default)]
    pub network: Network,
    /// Reachability checks the agent runs and exports.
    #[serde(default)]
    pub connectivity: Connectivity,
    /// Where the agent keeps rendered files and its state.
    #[serde(default)]
    pub paths: Paths,
    /// Isolation Forest anomaly detection on EVE flow records.
    #[serde(default)]
    pub anomaly: Anomaly,
}

/// Identity of the sensor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sensor {
    /// Stable id used in document ids, heartbeats and index routing: 1–63 characters of
    /// `a-z`, `0-9` and `-`, starting with a letter or digit.
    pub id: String,
    /// Human-readable name shown in dashboards; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
}

/// Packet capture settings (Suricata af-packet).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// The one interface left up and captured on.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// The protected networks (Suricata `HOME_NET`), as CIDRs.
    #[serde(default = "default_home_net")]
    pub home_net: Vec<String>,
    /// Suricata worker threads on the capture interface.
    #[serde(default = "default_workers")]
    pub workers: u32,
    /// CPU cores the workers are pinned to; the others are left to the agent and Vector.
    #[serde(default = "default_cpu_cores")]
    pub cpu_cores: Vec<u32>,
    /// af-packet ring size, in packets per worker.
    #[serde(default = "default_ring_size")]
    pub ring_size: u32,
    /// tpacket-v3 block size in bytes: a power of two and a multiple of the Pi 5's 16 KiB pages.
    #[serde(default = "default_block_size")]
    pub block_size_bytes: u32,
}

/// The tmpfs that holds Suricata's hot logs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    /// Mount point of the tmpfs (absolute path).
    #[serde(default = "default_logs_path")]
    pub path: String,
    /// Size of the tmpfs in MiB.
    #[serde(default = "default_logs_size_mb")]
    pub size_mb: u32,
}

/// Suricata's own settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Suricata {
    /// Total memory budget in MiB, split across the flow, stream, reassembly, defrag and
    /// host memcaps in Suricata's default proportions.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// EVE event types written to the log.
    #[serde(default = "default_eve_types")]
    pub eve_types: Vec<String>,
    /// Directory holding the downloaded rule set (`suricata.rules`), managed by suricata-update.
    #[serde(default = "default_rules_dir")]
    pub rules_dir: String,
    /// Path of Suricata's unix-command socket.
    #[serde(default = "default_socket_path")]
    pub socket_path: String,
}

/// Resource ceilings, in percent of the host.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Host CPU use the controller keeps at or under.
    #[serde(default = "default_ceiling_percent")]
    pub cpu_max_percent: u8,
    /// Host RAM use the controller keeps at or under.
    #[serde(default = "default_ceiling_percent")]
    pub ram_max_percent: u8,
    /// Seconds between resource samples.
    #[serde(default = "default_sample_secs")]
    pub sample_secs: u32,
}

/// The OpenSearch destination.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSearch {
    /// Name of the AWS OpenSearch domain.
    pub domain: String,
    /// AWS region of the domain, e.g. `eu-west-1`.
    pub region: String,
    /// HTTPS endpoint of the domain; `ids2-provision` fills it in. Optional until then.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Prefix of every index and data stream the sensor writes.
    #[serde(default = "default_index_prefix")]
    pub index_prefix: String,
    /// How requests are authenticated. Secrets are never written here, only file paths.
    #[serde(default)]
    pub auth: Auth,
}

/// Authentication to OpenSearch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// `aws_sigv4` (default) or `basic`.
    #[serde(default = "default_auth_method")]
    pub method: String,
    /// sigv4: AWS profile name in the credentials file.
    #[serde(default)]
    pub profile: Option<String>,
    /// sigv4: shared credentials file (e.g. `/run/credentials/ids2-agent/aws`).
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// sigv4: IAM role to assume.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// basic: user name.
    #[serde(default)]
    pub username: Option<String>,
    /// basic: file whose first line is the password.
    #[serde(default)]
    pub password_file: Option<String>,
}

/// Batching and buffering of shipped events.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Shipping {
    /// Most events in one bulk request.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: u32,
    /// Most bytes in one bulk request, in MiB (OpenSearch guidance: 5–15 MiB).
    #[serde(default = "default_batch_max_mb")]
    pub batch_max_mb: u32,
    /// Seconds a partial batch waits before it is sent.
    #[serde(default = "default_batch_timeout_secs")]
    pub batch_timeout_secs: u32,
    /// Size of Vector's disk buffer in MiB; events wait here while OpenSearch is away.
    #[serde(default = "default_buffer_max_mb")]
    pub buffer_max_mb: u32,
    /// An optional second copy of every event into a local Redis list.
    #[serde(default)]
    pub redis: Option<Redis>,
}

/// Optional Redis sink.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    /// `redis://host:port/db`; no password in the URL (the sensor's Redis listens on loopback).
    #[serde(default = "default_redis_url")]
    pub url: String,
    /// List key the events are pushed to.
    #[serde(default = "default_redis_key")]
    pub key: String,
}

/// The agent's metrics endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// `address:port` the Prometheus endpoint listens on.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

/// The git history of applied configurations.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Path of the (bare) repository that records every applied change.
    #[serde(default = "default_history_repo")]
    pub repo: String,
    /// Optional remote (URL or path) each commit is pushed to.
    #[serde(default)]
    pub remote: Option<String>,
    /// Branch commits land on.
    #[serde(default = "default_history_branch")]
    pub branch: String,
    /// Commit author name.
    #[serde(default = "default_author_name")]
    pub author_name: String,
    /// Commit author e-mail.
    #[serde(default = "default_author_email")]
    pub author_email: String,
}

/// Link policy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Targets that must stay reachable after a link change, else it is rolled back:
    /// `gateway` (the default route's gateway), an IP address, or `ip:port` (TCP connect).
    #[serde(default = "default_management_targets")]
    pub management_targets: Vec<String>,
    /// Seconds the rollback guard waits for the management targets.
    #[serde(default = "default_rollback_timeout_secs")]
    pub rollback_timeout_secs: u32,
}

/// Reachability checks.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Connectivity {
    /// Extra host names to resolve (the OpenSearch endpoint is always checked).
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// Extra `host:port` TLS endpoints to handshake with and watch for certificate expiry.
    #[serde(default)]
    pub tls_targets: Vec<String>,
    /// Seconds between rounds of checks.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u32,
    /// Seconds one check may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u32,
}

/// Where things live on the sensor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    /// Directory of rendered configuration generations (`current` points at the active one).
    #[serde(default = "default_rendered_dir")]
    pub rendered_dir: String,
    /// Vector's data directory: file-source checkpoints and the disk buffer.
    #[serde(default = "default_vector_data_dir")]
    pub vector_data_dir: String,
}

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

macro_rules! default_from_fns {
    ($($ty:ty { $($field:ident: $f:path),* $(,)? })*) => {$(
        impl Default for $ty {
            fn default() -> Self { Self { $($field: $f()),* } }
        }
    )*};
}

default_from_fns! {
    Capture {
        interface: default_interface, home_net: default_home_net, workers: default_workers,
        cpu_cores: default_cpu_cores, ring_size: default_ring_size,
        block_size_bytes: default_block_size,
    }
    Logs { path: default_logs_path, size_mb: default_logs_size_mb }
    Suricata {
        memory_mb: default_memory_mb, eve_types: default_eve_types,
        rules_dir: default_rules_dir, socket_path: default_socket_path,
    }
    Resources {
        cpu_max_percent: default_ceiling_percent, ram_max_percent: default_ceiling_percent,
        sample_secs: default_sample_secs,
    }
    Metrics { listen: default_metrics_listen }
    History {
        repo: default_history_repo, remote: none, branch: default_history_branch,
        author_name: default_author_name, author_email: default_author_email,
    }
    Network {
        management_targets: default_management_targets,
        rollback_timeout_secs: default_rollback_timeout_secs,
    }
    Connectivity {
        dns_names: Vec::new, tls_targets: Vec::new, interval_secs: default_interval_secs,
        timeout_secs: default_timeout_secs,
    }
    Paths { rendered_dir: default_rendered_dir, vector_data_dir: default_vector_data_dir }
    Anomaly {
        enabled: bool::default, baseline_secs: default_anomaly_baseline_secs,
        model_path: default_anomaly_model_path, threshold: default_anomaly_threshold,
        trees: default_anomaly_trees, sample_size: default_anomaly_sample_size,
        min_baseline_flows: default_anomaly_min_baseline_flows,
    }
    Shipping {
        batch_max_events: default_batch_max_events, batch_max_mb: default_batch_max_mb,
        batch_timeout_secs: default_batch_timeout_secs, buffer_max_mb: default_buffer_max_mb,
        redis: none,
    }
    Auth {
        method: default_auth_method, profile: none, credentials_file: none, role_arn: none,
        username: none, password_file: none,
    }
}

fn none<T>() -> Option<T> {
    None
}

/// Default capture interface.
pub fn default_interface() -> String {
    "eth0".into()
}
/// Default HOME_NET: the RFC 1918 ranges.
pub fn default_home_net() -> Vec<String> {
    ["192.168.0.0/16", "10.0.0.0/8", "172.16.0.0/12"]
        .map(String::from)
        .to_vec()
}
/// Default worker count: two of the Pi 5's four cores.
pub fn default_workers() -> u32 {
    2
}
/// Default worker cores: 2 and 3, leaving 0 and 1 to the agent, Vector and the OS.
pub fn default_cpu_cores() -> Vec<u32> {
    vec![2, 3]
}
/// Default af-packet ring size.
pub fn default_ring_size() -> u32 {
    2048
}
/// Default tpacket-v3 block size: 64 KiB, four 16 KiB pages.
pub fn default_block_size() -> u32 {
    65536
}
/// Default log tmpfs mount point.
pub fn default_logs_path() -> String {
    "/mnt/ram_logs".into()
}
/// Default log tmpfs size.
pub fn default_logs_size_mb() -> u32 {
    256
}
/// Default Suricata memory budget.
pub fn default_memory_mb() -> u32 {
    512
}
/// Default EVE types: the ones operators query.
pub fn default_eve_types() -> Vec<String> {
    EVE_DEFAULT_TYPES.iter().map(|s| s.to_string()).collect()
}
/// Default rule directory (suricata-update's output).
pub fn default_rules_dir() -> String {
    "/var/lib/suricata/rules".into()
}
/// Default unix-command socket.
pub fn default_socket_path() -> String {
    "/run/suricata/suricata-command.socket".into()
}
/// Default CPU and RAM ceiling.
pub fn default_ceiling_percent() -> u8 {
    70
}
/// Default resource sampling period.
pub fn default_sample_secs() -> u32 {
    5
}
/// Default index prefix.
pub fn default_index_prefix() -> String {
    "ids2".into()
}
/// Default auth method.
pub fn default_auth_method() -> String {
    "aws_sigv4".into()
}
/// Default bulk size cap in events; the byte cap is what normally closes a batch.
pub fn default_batch_max_events() -> u32 {
    10_000
}
/// Default bulk size: 5 MiB, the low end of OpenSearch's recommended 5–15 MiB.
pub fn default_batch_max_mb() -> u32 {
    5
}
/// Default batch timeout.
pub fn default_batch_timeout_secs() -> u32 {
    5
}
/// Default disk buffer size.
pub fn default_buffer_max_mb() -> u32 {
    256
}
/// Default Redis URL.
pub fn default_redis_url() -> String {
    "redis://127.0.0.1:6379/0".into()
}
/// Default Redis list key.
pub fn default_redis_key() -> String {
    "ids2:eve".into()
}
/// Default metrics address.
pub fn default_metrics_listen() -> String {
    "0.0.0.0:9100".into()
}
/// Default history repository.
pub fn default_history_repo() -> String {
    "/var/lib/ids2/history.git".into()
}
/// Default history branch.
pub fn default_history_branch() -> String {
    "dev".into()
}
/// Default commit author name.
pub fn default_author_name() -> String {
    "ids2-agent".into()
}
/// Default commit author e-mail.
pub fn default_author_email() -> String {
    "ids2-agent@localhost".into()
}
/// Default management target: the default route's gateway.
pub fn default_management_targets() -> Vec<String> {
    vec!["gateway".into()]
}
/// Default rollback guard timeout.
pub fn default_rollback_timeout_secs() -> u32 {
    10
}
/// Default connectivity check period.
pub fn default_interval_secs() -> u32 {
    30
}
/// Default connectivity check timeout.
pub fn default_timeout_secs() -> u32 {
    5
}
/// Default rendered-files directory.
pub fn default_rendered_dir() -> String {
    "/var/lib/ids2/rendered".into()
}
/// Default Vector data directory.
pub fn default_vector_data_dir() -> String {
    "/var/lib/vector".into()
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

/// EVE types on by default: what operators query, per DESIGN.md's cost notes.
pub const EVE_DEFAULT_TYPES: &[&str] = &[
    "alert", "anomaly", "flow", "dns", "http", "tls", "ssh", "smtp", "fileinfo", "stats",
];

/// Every EVE type the rendered Suricata 7 config can emit.
pub const EVE_ALL_TYPES: &[&str] = &[
    "alert",
    "anomaly",
    "flow",
    "netflow",
    "dns",
    "http",
    "tls",
    "ssh",
    "smtp",
    "fileinfo",
    "stats",
    "dhcp",
    "smb",
    "krb5",
    "ftp",
    "rdp",
    "quic",
    "mqtt",
    "nfs",
    "tftp",
    "snmp",
    "sip",
    "rfb",
    "dcerpc",
    "ike",
    "http2",
    "pgsql",
    "bittorrent-dht",
    "drop",
];
