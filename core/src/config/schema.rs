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
    /// Alert notifications by webhook and/or e-mail; off until a channel is configured.
    #[serde(default)]
    pub notifications: Notifications,
    /// Time-limited block decisions from alerts, served as a feed; off by default.
    #[serde(default)]
    pub blocking: Blocking,
    /// Heartbeats, offline detection and rule-set updates.
    #[serde(default)]
    pub fleet: Fleet,
    /// GeoIP and threat-intelligence enrichment of shipped events; off until configured.
    #[serde(default)]
    pub enrichment: Enrichment,
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
    /// Pin the workers to `cpu_cores` exclusively at high priority (the Pi, whose cores are set
    /// aside for capture); off where the cores are shared with other work, such as the lab.
    #[serde(default = "default_true")]
    pub pin_workers: bool,
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
    /// Size in MiB at which the agent renames `eve.json` to `eve.json.1` (replacing it) and has
    /// Suricata reopen its logs, so EVE never fills the tmpfs. At most a third of `size_mb`.
    #[serde(default = "default_eve_rotate_mb")]
    pub eve_rotate_mb: u32,
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
    /// HTTPS endpoint of the domain; `ids2-provision` fills it in. Optional until then. Plain
    /// `http://` only to a loopback address (a tunnel or relay on the sensor, a local server).
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
    /// The local archive of ECS documents the agent writes itself (the embedded default sink).
    #[serde(default)]
    pub archive: Archive,
}

/// When the agent's own EVE reader maps events to ECS into a local file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveMode {
    /// Only when the `process` backend finds no `vector` on PATH, so events still land
    /// somewhere on a machine where Vector is not installed.
    Auto,
    /// Always, next to whatever Vector ships (the lab reads its detections from it).
    Always,
    /// Never.
    Never,
}

/// The local ECS archive: one JSON document per line, mapped by the program `vector.toml`
/// embeds, appended by the agent's EVE reader.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// `auto` (default), `always` or `never`.
    #[serde(default = "default_archive_mode")]
    pub mode: ArchiveMode,
    /// The JSON-lines file (absolute path); appended to, its directory created.
    #[serde(default = "default_archive_path")]
    pub path: String,
    /// EVE event types archived; each must be in `suricata.eve_types`.
    #[serde(default = "default_archive_event_types")]
    pub event_types: Vec<String>,
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

/// An alert severity threshold. Suricata's `alert.severity` is a priority where 1 is the most
/// severe (from the rule's classtype, `classification.config`): 1 = `high`, 2 = `medium`,
/// 3 = `low` (also what Suricata gives rules without a classtype), 4 and above = `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Suricata severity 1.
    High,
    /// Suricata severity 2 or more severe.
    Medium,
    /// Suricata severity 3 or more severe.
    Low,
    /// Every alert.
    Info,
}

impl Severity {
    /// The level of a Suricata `alert.severity` value.
    pub fn of_suricata(severity: u64) -> Self {
        match severity {
            // 0 is not produced by Suricata; treat it like 1 rather than hide it.
            0 | 1 => Self::High,
            2 => Self::Medium,
            3 => Self::Low,
            _ => Self::Info,
        }
    }

    /// True when an alert of Suricata severity `severity` is at or above this threshold.
    pub fn admits(self, severity: u64) -> bool {
        Self::of_suricata(severity) <= self
    }

    /// The level's name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Info => "info",
        }
    }
}

/// Alert notifications. Every alert at or above `min_severity` is sent to each configured
/// channel, once per signature, source and destination within `dedupe_window_secs`, at most
/// `burst` at once and `rate_per_minute` after that; alerts over the rate are summarised in
/// one digest every `digest_interval_secs`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    /// Least severe alert that is notified.
    #[serde(default = "default_notify_severity")]
    pub min_severity: Severity,
    /// Seconds during which the same signature between the same source and destination is
    /// notified only once.
    #[serde(default = "default_dedupe_window_secs")]
    pub dedupe_window_secs: u32,
    /// Notifications sent back to back before the rate limit applies (token-bucket size).
    #[serde(default = "default_notify_burst")]
    pub burst: u32,
    /// Sustained notifications per minute (token-bucket refill rate).
    #[serde(default = "default_rate_per_minute")]
    pub rate_per_minute: u32,
    /// Seconds between digests of the alerts the rate limit held back (sent only when some were).
    #[serde(default = "default_digest_interval_secs")]
    pub digest_interval_secs: u32,
    /// Alerts waiting to be processed; when full, further alerts are counted in
    /// `ids2_notifications_dropped_total` instead of slowing the EVE reader.
    #[serde(default = "default_notify_queue")]
    pub queue_capacity: u32,
    /// Delivery attempts per message and channel before it counts as failed.
    #[serde(default = "default_retry_attempts")]
    pub retry_attempts: u32,
    /// Wait before the first retry in milliseconds; doubled on each further retry.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u32,
    /// Longest wait between retries, in seconds.
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u32,
    /// HTTP webhook channel.
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// E-mail channel (SMTP over TLS).
    #[serde(default)]
    pub email: Option<Email>,
}

/// Payload shape of the webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// A JSON object with the alert's fields (`type`, `sensor`, `alert`, `source`, …).
    Generic,
    /// `{"text": "..."}`, accepted by Slack incoming webhooks and compatible chat tools.
    Slack,
}

/// The webhook channel. Exactly one of `url` and `url_file` is set; use `url_file` when the URL
/// itself is the secret (Slack incoming webhooks).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `https://…` URL posted to (plain `http://` only to a loopback address, e.g. a local relay).
    #[serde(default)]
    pub url: Option<String>,
    /// File whose first line is the URL.
    #[serde(default)]
    pub url_file: Option<String>,
    /// `generic` (default) or `slack`.
    #[serde(default = "default_webhook_format")]
    pub format: WebhookFormat,
    /// File whose first line is sent as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// Seconds one request may take.
    #[serde(default = "default_webhook_timeout_secs")]
    pub timeout_secs: u32,
}

/// How the SMTP connection is encrypted; there is no clear-text mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (submission, port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

/// The e-mail channel.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// SMTP server host name or address; the server's certificate must match it.
    pub smtp_host: String,
    /// SMTP port; defaults to 587 for `starttls` and 465 for `implicit`.
    #[serde(default)]
    pub smtp_port: Option<u16>,
    /// `starttls` (default) or `implicit`.
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    /// PEM file of an extra CA to trust for the server's certificate (a private relay);
    /// the public web roots are always trusted.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// SMTP user name; set together with `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// File whose first line is the SMTP password.
    #[serde(default)]
    pub password_file: Option<String>,
    /// Sender address.
    pub from: String,
    /// Recipient addresses.
    pub to: Vec<String>,
    /// Seconds one SMTP conversation may take.
    #[serde(default = "default_smtp_timeout_secs")]
    pub timeout_secs: u32,
}

/// Blocking: alerts matching the policy become block decisions that expire after `ttl_secs`.
/// The allowlist always wins: the default gateway, the sensor's own addresses, management
/// targets, the OpenSearch endpoint's addresses, `allowlist`, and every HOME_NET address not in
/// `allow_home_net` are never blocked.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Blocking {
    /// Turns blocking on.
    #[serde(default)]
    pub enabled: bool,
    /// Least severe alert that can lead to a block.
    #[serde(default = "default_block_severity")]
    pub min_severity: Severity,
    /// Suricata `alert.category` values that can lead to a block; empty means any category.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Block only after this many qualifying alerts from one address within a window; unset
    /// means the first qualifying alert blocks.
    #[serde(default)]
    pub repeat_offenders: Option<RepeatOffenders>,
    /// With `repeat_offenders`, an address whose reputation score (0–100, from threat
    /// intelligence) is at least this is blocked on its first qualifying alert.
    #[serde(default)]
    pub reputation_min_score: Option<u8>,
    /// Seconds a decision lasts.
    #[serde(default = "default_block_ttl_secs")]
    pub ttl_secs: u32,
    /// Most addresses blocked at once; further decisions are refused and logged.
    #[serde(default = "default_block_max_entries")]
    pub max_entries: u32,
    /// Addresses and CIDRs that are never blocked.
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// CIDRs inside HOME_NET that may be blocked (HOME_NET is otherwise never blocked).
    #[serde(default)]
    pub allow_home_net: Vec<String>,
    /// `address:port` of the HTTP feed (`/blocklist.txt`, `/blocklist.json`).
    #[serde(default = "default_feed_listen")]
    pub feed_listen: String,
    /// Also drop blocked addresses on this host with an nftables set (inline sensors).
    #[serde(default)]
    pub nftables: bool,
}

/// Repeat-offender rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatOffenders {
    /// Qualifying alerts from one address that lead to a block.
    pub alerts: u32,
    /// Seconds the alerts are counted over.
    pub window_secs: u32,
}

/// Enrichment of shipped events. GeoIP fills `source/destination.geo.*` and `.as.*` for public
/// addresses from MaxMind databases on the sensor (nothing leaves it); threat intelligence
/// checks the public addresses of alerts against AbuseIPDB and joins the results into
/// `threat.enrichments`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Enrichment {
    /// MaxMind GeoLite2-City (or GeoIP2-City) `.mmdb` file. A file that does not exist when the
    /// config is applied is left out (no geo fields), never an error.
    #[serde(default)]
    pub geoip_city_path: Option<String>,
    /// MaxMind GeoLite2-ASN `.mmdb` file; left out the same way when absent.
    #[serde(default)]
    pub geoip_asn_path: Option<String>,
    /// AbuseIPDB lookups of the public addresses of alerts.
    #[serde(default)]
    pub abuseipdb: Option<AbuseIpDb>,
}

/// AbuseIPDB threat intelligence. Only public addresses seen in alerts are sent, each at most
/// once per `cache_ttl_secs`, and never more than `daily_quota` checks per UTC day.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AbuseIpDb {
    /// File whose first line is the AbuseIPDB API key (sent as the `Key` header).
    pub api_key_file: String,
    /// API base URL; the `check` endpoint is `<base_url>/check`.
    #[serde(default = "default_abuseipdb_base_url")]
    pub base_url: String,
    /// Reports older than this many days are ignored by AbuseIPDB (`maxAgeInDays`).
    #[serde(default = "default_abuseipdb_max_age_days")]
    pub max_age_days: u32,
    /// Checks per UTC day (the free tier allows 1000).
    #[serde(default = "default_abuseipdb_daily_quota")]
    pub daily_quota: u32,
    /// Seconds a result is reused before the address is checked again.
    #[serde(default = "default_abuseipdb_cache_ttl_secs")]
    pub cache_ttl_secs: u32,
    /// The reputation table (CSV) Vector joins into shipped alerts.
    #[serde(default = "default_reputation_table_path")]
    pub table_path: String,
    /// Least seconds between two Vector reloads for a changed table.
    #[serde(default = "default_reputation_reload_secs")]
    pub reload_min_interval_secs: u32,
    /// Seconds one request may take.
    #[serde(default = "default_abuseipdb_timeout_secs")]
    pub timeout_secs: u32,
}

/// Fleet membership: the heartbeat the sensor writes and the rule-set updates it runs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Seconds between heartbeats (`<logs.path>/heartbeat.json`, shipped to the heartbeat index).
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u32,
    /// Seconds without a heartbeat after which the sensor is reported offline (fleet status,
    /// the OpenSearch monitor); at least two heartbeat intervals.
    #[serde(default = "default_offline_after_secs")]
    pub offline_after_secs: u32,
    /// Rule-set updates with suricata-update.
    #[serde(default)]
    pub rules: RuleUpdates,
}

/// Rule-set updates: download, check with `suricata -T`, swap, record, reload Suricata.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleUpdates {
    /// Whether the daemon runs updates on its own every `interval_secs`
    /// (`ids2-agent rules update` works either way).
    #[serde(default = "default_true")]
    pub scheduled: bool,
    /// Seconds between scheduled updates (default one day).
    #[serde(default = "default_rules_interval_secs")]
    pub interval_secs: u32,
    /// Seconds before the first retry of a failed update; doubled on each further failure, up
    /// to `interval_secs`.
    #[serde(default = "default_rules_retry_secs")]
    pub retry_initial_secs: u32,
    /// Where rules come from: `et/open` (Emerging Threats Open for the installed Suricata),
    /// `https://…` or `file:///…` URLs of a rules file or tarball, or absolute paths of local
    /// `.rules` files or directories (offline sites).
    #[serde(default = "default_rule_sources")]
    pub sources: Vec<String>,
    /// SIDs to enable although their source ships them disabled.
    #[serde(default)]
    pub enable_sids: Vec<u32>,
    /// SIDs to disable.
    #[serde(default)]
    pub disable_sids: Vec<u32>,
    /// Alert thresholds written into the named rules.
    #[serde(default)]
    pub thresholds: Vec<RuleThreshold>,
    /// suricata-update's working directory (download cache); kept off the log tmpfs.
    #[serde(default = "default_rules_cache_dir")]
    pub cache_dir: String,
}

/// How a threshold counts (Suricata's `threshold: type …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdType {
    /// At most `count` alerts per `seconds`.
    Limit,
    /// One alert every `count` matches within `seconds`.
    Threshold,
    /// One alert once `count` matches are seen within `seconds`, then none for the rest of it.
    Both,
}

/// What a threshold counts per (Suricata's `track`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdTrack {
    /// Per source address.
    BySrc,
    /// Per destination address.
    ByDst,
}

/// One rule's threshold.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleThreshold {
    /// The rule's SID.
    pub sid: u32,
    /// `limit`, `threshold` or `both`.
    #[serde(rename = "type")]
    pub kind: ThresholdType,
    /// `by_src` or `by_dst`.
    pub track: ThresholdTrack,
    /// Matches counted.
    pub count: u32,
    /// Length of the counting window in seconds.
    pub seconds: u32,
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
        block_size_bytes: default_block_size, pin_workers: default_true,
    }
    Logs { path: default_logs_path, size_mb: default_logs_size_mb, eve_rotate_mb: default_eve_rotate_mb }
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
    Notifications {
        min_severity: default_notify_severity, dedupe_window_secs: default_dedupe_window_secs,
        burst: default_notify_burst, rate_per_minute: default_rate_per_minute,
        digest_interval_secs: default_digest_interval_secs, queue_capacity: default_notify_queue,
        retry_attempts: default_retry_attempts, retry_initial_ms: default_retry_initial_ms,
        retry_max_secs: default_retry_max_secs, webhook: none, email: none,
    }
    Blocking {
        enabled: bool::default, min_severity: default_block_severity, categories: Vec::new,
        repeat_offenders: none, reputation_min_score: none, ttl_secs: default_block_ttl_secs,
        max_entries: default_block_max_entries, allowlist: Vec::new, allow_home_net: Vec::new,
        feed_listen: default_feed_listen, nftables: bool::default,
    }
    Fleet {
        heartbeat_secs: default_heartbeat_secs, offline_after_secs: default_offline_after_secs,
        rules: RuleUpdates::default,
    }
    RuleUpdates {
        scheduled: default_true, interval_secs: default_rules_interval_secs,
        retry_initial_secs: default_rules_retry_secs, sources: default_rule_sources,
        enable_sids: Vec::new, disable_sids: Vec::new, thresholds: Vec::new,
        cache_dir: default_rules_cache_dir,
    }
    Shipping {
        batch_max_events: default_batch_max_events, batch_max_mb: default_batch_max_mb,
        batch_timeout_secs: default_batch_timeout_secs, buffer_max_mb: default_buffer_max_mb,
        redis: none, archive: Archive::default,
    }
    Archive {
        mode: default_archive_mode, path: default_archive_path,
        event_types: default_archive_event_types,
    }
    Auth {
        method: default_auth_method, profile: none, credentials_file: none, role_arn: none,
        username: none, password_file: none,
    }
}

/// Default AbuseIPDB API base.
pub fn default_abuseipdb_base_url() -> String {
    "https://api.abuseipdb.com/api/v2".into()
}
/// Default report age considered: 30 days (AbuseIPDB's own default).
pub fn default_abuseipdb_max_age_days() -> u32 {
    30
}
/// Default daily checks: the free tier's 1000.
pub fn default_abuseipdb_daily_quota() -> u32 {
    1000
}
/// Default result lifetime: one day.
pub fn default_abuseipdb_cache_ttl_secs() -> u32 {
    86_400
}
/// Default reputation table, beside the agent's other state.
pub fn default_reputation_table_path() -> String {
    "/var/lib/ids2/reputation.csv".into()
}
/// Default least interval between Vector reloads for the table: one minute.
pub fn default_reputation_reload_secs() -> u32 {
    60
}
/// Default AbuseIPDB request timeout.
pub fn default_abuseipdb_timeout_secs() -> u32 {
    10
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
/// Default EVE rotation size: a quarter of the default tmpfs, so the live file, the rotated one
/// and the heartbeat and anomaly files fit with room to spare.
pub fn default_eve_rotate_mb() -> u32 {
    64
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
/// Default archive mode: only when Vector is not installed.
pub fn default_archive_mode() -> ArchiveMode {
    ArchiveMode::Auto
}
/// Default archive file.
pub fn default_archive_path() -> String {
    "/var/lib/ids2/archive/ecs.jsonl".into()
}
/// Default archived event types: the alerts (mapping costs CPU per event).
pub fn default_archive_event_types() -> Vec<String> {
    vec!["alert".into()]
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

/// Default notification threshold: Suricata severity 1 only.
pub fn default_notify_severity() -> Severity {
    Severity::High
}
/// Default dedupe window: 10 minutes.
pub fn default_dedupe_window_secs() -> u32 {
    600
}
/// Default notification burst.
pub fn default_notify_burst() -> u32 {
    10
}
/// Default sustained notification rate.
pub fn default_rate_per_minute() -> u32 {
    6
}
/// Default digest period: 5 minutes.
pub fn default_digest_interval_secs() -> u32 {
    300
}
/// Default notification queue length.
pub fn default_notify_queue() -> u32 {
    1024
}
/// Default delivery attempts.
pub fn default_retry_attempts() -> u32 {
    5
}
/// Default first retry delay.
pub fn default_retry_initial_ms() -> u32 {
    1000
}
/// Default longest retry delay.
pub fn default_retry_max_secs() -> u32 {
    60
}
/// Default webhook payload.
pub fn default_webhook_format() -> WebhookFormat {
    WebhookFormat::Generic
}
/// Default webhook request timeout.
pub fn default_webhook_timeout_secs() -> u32 {
    10
}
/// Default SMTP encryption.
pub fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}
/// Default SMTP conversation timeout.
pub fn default_smtp_timeout_secs() -> u32 {
    30
}
/// Default blocking threshold: Suricata severity 1 only.
pub fn default_block_severity() -> Severity {
    Severity::High
}
/// Default decision lifetime: one hour.
pub fn default_block_ttl_secs() -> u32 {
    3600
}
/// Default cap on blocked addresses.
pub fn default_block_max_entries() -> u32 {
    10_000
}
/// Default feed address (pfSense/OPNsense fetch it over the management network).
pub fn default_feed_listen() -> String {
    "0.0.0.0:9102".into()
}

/// Default heartbeat period.
pub fn default_heartbeat_secs() -> u32 {
    15
}
/// Default offline threshold: four missed heartbeats.
pub fn default_offline_after_secs() -> u32 {
    60
}
fn default_true() -> bool {
    true
}
/// Default rule update period: one day.
pub fn default_rules_interval_secs() -> u32 {
    86_400
}
/// Default first retry after a failed rule update: five minutes.
pub fn default_rules_retry_secs() -> u32 {
    300
}
/// Default rule source: Emerging Threats Open.
pub fn default_rule_sources() -> Vec<String> {
    vec![RULE_SOURCE_ET_OPEN.into()]
}
/// Default suricata-update working directory.
pub fn default_rules_cache_dir() -> String {
    "/var/lib/ids2/suricata-update".into()
}

/// The rule source name for Emerging Threats Open (suricata-update's built-in default).
pub const RULE_SOURCE_ET_OPEN: &str = "et/open";

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
