//! [`Config`] → [`Settings`]: every semantic rule, pure (no file system, no network).
//!
//! Each check pushes a [`Problem`] and carries on, so an operator sees everything wrong
//! with a file in one go.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Serialize;

use super::error::Problem;
use super::schema::{Config, EVE_ALL_TYPES, RULE_SOURCE_ET_OPEN};

/// A validated configuration, with derived values the renderers and host modules need.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// The config as written, with defaults filled in (and `sensor.name` defaulted to the id).
    pub config: Config,
    /// `capture.home_net`, parsed.
    pub home_net: Vec<IpNet>,
    /// Suricata's memcaps, split from `suricata.memory_mb`.
    pub memcaps: Memcaps,
    /// How the sensor authenticates to OpenSearch.
    pub auth: AuthSettings,
    /// `metrics.listen`, parsed.
    pub metrics_listen: SocketAddr,
    /// `network.management_targets`, parsed.
    pub management_targets: Vec<ManagementTarget>,
    /// `connectivity.tls_targets`, parsed.
    pub tls_targets: Vec<HostPort>,
    /// The OpenSearch endpoint's host name, when an endpoint is set.
    pub opensearch_host: Option<String>,
}

/// Suricata memcaps in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Memcaps {
    /// `flow.memcap`.
    pub flow_mb: u32,
    /// `stream.memcap`.
    pub stream_mb: u32,
    /// `stream.reassembly.memcap`.
    pub reassembly_mb: u32,
    /// `defrag.memcap`.
    pub defrag_mb: u32,
    /// `host.memcap`.
    pub host_mb: u32,
}

impl Memcaps {
    /// Splits a budget in Suricata's default proportions (128/64/256/32/32 of 512).
    pub fn split(total_mb: u32) -> Self {
        let part = |num: u32| total_mb * num / 16;
        let flow_mb = part(4);
        let stream_mb = part(2);
        let defrag_mb = part(1);
        let host_mb = part(1);
        Self {
            flow_mb,
            stream_mb,
            reassembly_mb: total_mb - flow_mb - stream_mb - defrag_mb - host_mb,
            defrag_mb,
            host_mb,
        }
    }
}

/// OpenSearch authentication, resolved from `opensearch.auth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum AuthSettings {
    /// Requests signed with SigV4.
    AwsSigv4 {
        /// Profile in the credentials file.
        profile: Option<String>,
        /// Shared credentials file.
        credentials_file: Option<PathBuf>,
        /// Role to assume.
        role_arn: Option<String>,
    },
    /// HTTP basic auth; the password is read from a file at run time.
    Basic {
        /// User name.
        username: String,
        /// File holding the password.
        password_file: PathBuf,
    },
}

/// A target that must stay reachable after a link change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "addr", rename_all = "snake_case")]
pub enum ManagementTarget {
    /// The default route's gateway (checked by ARP/neighbour resolution or ping).
    Gateway,
    /// A host checked with ICMP echo.
    Host(IpAddr),
    /// A TCP service checked with a connect.
    Tcp(SocketAddr),
}

/// A `host:port` pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPort {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Runs every semantic check; returns settings or every problem found.
pub fn validate(mut config: Config) -> Result<Settings, Vec<Problem>> {
    let mut p = Vec::new();

    check_sensor(&config, &mut p);
    let home_net = check_capture(&config, &mut p);
    check_logs_and_paths(&config, &mut p);
    let memcaps = check_suricata(&config, &mut p);
    check_resources(&config, &mut p);
    let (auth, opensearch_host) = check_opensearch(&config, &mut p);
    check_shipping(&config, &mut p);
    let metrics_listen = match config.metrics.listen.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.push(Problem::new(
                "metrics.listen",
                &config.metrics.listen,
                "expected address:port, e.g. 0.0.0.0:9100 or [::]:9100",
            ));
            None
        }
    };
    check_history(&config, &mut p);
    let management_targets = check_network(&config, &mut p);
    let tls_targets = check_connectivity(&config, &mut p);
    check_anomaly(&config, &mut p);
    check_notifications(&config, &mut p);
    check_blocking(&config, &home_net, &mut p);
    check_fleet(&config, &mut p);
    check_enrichment(&config, &mut p);

    match (p.is_empty(), auth, metrics_listen) {
        (true, Some(auth), Some(metrics_listen)) => {
            if config.sensor.name.is_none() {
                config.sensor.name = Some(config.sensor.id.clone());
            }
            Ok(Settings {
                config,
                home_net,
                memcaps,
                auth,
                metrics_listen,
                management_targets,
                tls_targets,
                opensearch_host,
            })
        }
        _ => Err(p),
    }
}

fn check_sensor(c: &Config, p: &mut Vec<Problem>) {
    let id = &c.sensor.id;
    let ok = (1..=63).contains(&id.len())
        && id
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && !id.starts_with('-');
    if !ok {
        p.push(Problem::new(
            "sensor.id",
            id,
            "expected 1–63 characters of a-z, 0-9 and '-', not starting with '-' \
             (it becomes part of document ids and index routing)",
        ));
    }
    if let Some(name) = &c.sensor.name {
        if name.trim().is_empty() || name.len() > 128 {
            p.push(Problem::new(
                "sensor.name",
                name,
                "expected 1–128 characters, or leave it out to use the id",
            ));
        }
    }
}

fn check_capture(c: &Config, p: &mut Vec<Problem>) -> Vec<IpNet> {
    let cap = &c.capture;
    if !is_interface_name(&cap.interface) {
        p.push(Problem::new(
            "capture.interface",
            &cap.interface,
            "expected a Linux interface name: 1–15 characters, no '/', ':' or spaces",
        ));
    }
    let mut nets = Vec::new();
    if cap.home_net.is_empty() {
        p.push(Problem::at(
            "capture.home_net",
            "must list at least one CIDR, e.g. [192.168.0.0/16]",
        ));
    }
    for (i, s) in cap.home_net.iter().enumerate() {
        match s.parse::<IpNet>() {
            Ok(n) => nets.push(n),
            Err(_) => p.push(Problem::new(
                format!("capture.home_net[{i}]"),
                s,
                "expected a CIDR such as 192.168.1.0/24 or fd00::/8",
            )),
        }
    }
    if !(1..=16).contains(&cap.workers) {
        p.push(Problem::new(
            "capture.workers",
            cap.workers,
            "expected 1 to 16 worker threads (the Pi 5 has 4 cores; 2 is the default)",
        ));
    }
    if cap.cpu_cores.is_empty() {
        p.push(Problem::at(
            "capture.cpu_cores",
            "must list at least one CPU core, e.g. [2, 3]",
        ));
    }
    for (i, core) in cap.cpu_cores.iter().enumerate() {
        if *core > 255 {
            p.push(Problem::new(
                format!("capture.cpu_cores[{i}]"),
                core,
                "expected a CPU core number from 0 to 255",
            ));
        }
        if cap.cpu_cores[..i].contains(core) {
            p.push(Problem::new(
                format!("capture.cpu_cores[{i}]"),
                core,
                "each core may be listed once",
            ));
        }
    }
    if !(64..=1_048_576).contains(&cap.ring_size) {
        p.push(Problem::new(
            "capture.ring_size",
            cap.ring_size,
            "expected 64 to 1048576 packets",
        ));
    }
    let bs = cap.block_size_bytes;
    if !(bs.is_power_of_two() && (16_384..=4_194_304).contains(&bs)) {
        p.push(Problem::new(
            "capture.block_size_bytes",
            bs,
            "expected a power of two from 16384 to 4194304 (a multiple of the Pi 5's \
             16 KiB page), e.g. 65536",
        ));
    }
    nets
}

fn check_logs_and_paths(c: &Config, p: &mut Vec<Problem>) {
    for (key, value) in [
        ("logs.path", &c.logs.path),
        ("suricata.rules_dir", &c.suricata.rules_dir),
        ("suricata.socket_path", &c.suricata.socket_path),
        ("history.repo", &c.history.repo),
        ("paths.rendered_dir", &c.paths.rendered_dir),
        ("paths.vector_data_dir", &c.paths.vector_data_dir),
        ("anomaly.model_path", &c.anomaly.model_path),
    ] {
        check_abs_path(key, value, p);
    }
    if c.logs.path == "/" {
        p.push(Problem::new(
            "logs.path",
            &c.logs.path,
            "a tmpfs cannot be mounted over /; use e.g. /mnt/ram_logs",
        ));
    }
    if !(16..=8192).contains(&c.logs.size_mb) {
        p.push(Problem::new(
            "logs.size_mb",
            c.logs.size_mb,
            "expected 16 to 8192 MiB",
        ));
    }
    // eve.json and eve.json.1 both live on the tmpfs, beside the heartbeat and anomaly files.
    let most = (c.logs.size_mb / 3).max(1);
    if !(1..=most).contains(&c.logs.eve_rotate_mb) {
        p.push(Problem::new(
            "logs.eve_rotate_mb",
            c.logs.eve_rotate_mb,
            format!(
                "expected 1 to {most} MiB (a third of logs.size_mb = {}): the live and the \
                 rotated EVE file share the tmpfs",
                c.logs.size_mb
            ),
        ));
    }
}

fn check_abs_path(key: &str, value: &str, p: &mut Vec<Problem>) {
    let ok = value.starts_with('/')
        && !value.split('/').any(|part| part == "..")
        && !value.contains('\0')
        && !value.chars().any(char::is_whitespace);
    if !ok {
        p.push(Problem::new(
            key,
            value,
            "expected an absolute path without '..' or spaces",
        ));
    }
}

fn check_suricata(c: &Config, p: &mut Vec<Problem>) -> Memcaps {
    let s = &c.suricata;
    if !(128..=16_384).contains(&s.memory_mb) {
        p.push(Problem::new(
            "suricata.memory_mb",
            s.memory_mb,
            "expected 128 to 16384 MiB (default 512)",
        ));
    }
    if s.eve_types.is_empty() {
        p.push(Problem::at(
            "suricata.eve_types",
            "must list at least `alert`",
        ));
    }
    for (i, t) in s.eve_types.iter().enumerate() {
        if !EVE_ALL_TYPES.contains(&t.as_str()) {
            let hint = super::parse::closest(t, EVE_ALL_TYPES)
                .map(|b| format!(" (did you mean `{b}`?)"))
                .unwrap_or_default();
            p.push(Problem::new(
                format!("suricata.eve_types[{i}]"),
                t,
                format!(
                    "unknown EVE type{hint}; accepted: {}",
                    EVE_ALL_TYPES.join(", ")
                ),
            ));
        } else if s.eve_types[..i].contains(t) {
            p.push(Problem::new(
                format!("suricata.eve_types[{i}]"),
                t,
                "each EVE type may be listed once",
            ));
        }
    }
    if !s.eve_types.iter().any(|t| t == "alert") && !s.eve_types.is_empty() {
        p.push(Problem::at(
            "suricata.eve_types",
            "must include `alert`: without it the sensor detects nothing",
        ));
    }
    Memcaps::split(s.memory_mb.max(128))
}

fn check_resources(c: &Config, p: &mut Vec<Problem>) {
    let r = &c.resources;
    for (key, v) in [
        ("resources.cpu_max_percent", r.cpu_max_percent),
        ("resources.ram_max_percent", r.ram_max_percent),
    ] {
        if !(10..=95).contains(&v) {
            p.push(Problem::new(
                key,
                v,
                "expected 10 to 95 percent (default 70)",
            ));
        }
    }
    if !(1..=300).contains(&r.sample_secs) {
        p.push(Problem::new(
            "resources.sample_secs",
            r.sample_secs,
            "expected 1 to 300 seconds",
        ));
    }
}

fn check_opensearch(c: &Config, p: &mut Vec<Problem>) -> (Option<AuthSettings>, Option<String>) {
    let o = &c.opensearch;
    let domain_ok = (3..=28).contains(&o.domain.len())
        && o.domain.starts_with(|ch: char| ch.is_ascii_lowercase())
        && o.domain
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
    if !domain_ok {
        p.push(Problem::new(
            "opensearch.domain",
            &o.domain,
            "expected an AWS OpenSearch domain name: 3–28 characters of a-z, 0-9 and '-', \
             starting with a letter",
        ));
    }
    if !is_region(&o.region) {
        p.push(Problem::new(
            "opensearch.region",
            &o.region,
            "expected an AWS region such as eu-west-1 or us-east-2",
        ));
    }
    let mut host = None;
    if let Some(ep) = &o.endpoint {
        match url_host(ep) {
            Ok(h) => host = Some(h.to_string()),
            Err(why) => p.push(Problem::new(
                "opensearch.endpoint",
                ep,
                // The loopback case is a tunnel or relay on the sensor itself (and the test seam).
                format!("{why}, e.g. https://search-ids2-abc.eu-west-1.es.amazonaws.com"),
            )),
        }
    }
    let prefix_ok = (1..=32).contains(&o.index_prefix.len())
        && o.index_prefix
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && !o.index_prefix.starts_with(['-', '_']);
    if !prefix_ok {
        p.push(Problem::new(
            "opensearch.index_prefix",
            &o.index_prefix,
            "expected 1–32 characters of a-z, 0-9 and '-' (OpenSearch index names are lower case)",
        ));
    }
    (check_auth(c, p), host)
}

fn check_auth(c: &Config, p: &mut Vec<Problem>) -> Option<AuthSettings> {
    let a = &c.opensearch.auth;
    let stray = |keys: &[(&str, bool)], method: &str, p: &mut Vec<Problem>| {
        for (k, set) in keys {
            if *set {
                p.push(Problem::at(
                    format!("opensearch.auth.{k}"),
                    format!("does not apply to method `{method}`; remove it"),
                ));
            }
        }
    };
    for (key, path) in [
        ("credentials_file", &a.credentials_file),
        ("password_file", &a.password_file),
    ] {
        if let Some(v) = path {
            check_abs_path(&format!("opensearch.auth.{key}"), v, p);
        }
    }
    match a.method.as_str() {
        "aws_sigv4" => {
            stray(
                &[
                    ("username", a.username.is_some()),
                    ("password_file", a.password_file.is_some()),
                ],
                "aws_sigv4",
                p,
            );
            if let Some(arn) = &a.role_arn {
                if !arn.starts_with("arn:aws") || !arn.contains(":role/") {
                    p.push(Problem::new(
                        "opensearch.auth.role_arn",
                        arn,
                        "expected an IAM role ARN such as arn:aws:iam::123456789012:role/ids2-sensor",
                    ));
                }
            }
            Some(AuthSettings::AwsSigv4 {
                profile: a.profile.clone(),
                credentials_file: a.credentials_file.as_ref().map(PathBuf::from),
                role_arn: a.role_arn.clone(),
            })
        }
        "basic" => {
            stray(
                &[
                    ("profile", a.profile.is_some()),
                    ("credentials_file", a.credentials_file.is_some()),
                    ("role_arn", a.role_arn.is_some()),
                ],
                "basic",
                p,
            );
            let user = a.username.clone().filter(|u| !u.is_empty());
            if user.is_none() {
                p.push(Problem::at(
                    "opensearch.auth.username",
                    "required when method is `basic`",
                ));
            }
            if a.password_file.is_none() {
                p.push(Problem::at(
                    "opensearch.auth.password_file",
                    "required when method is `basic`: the path of a file holding the password",
                ));
            }
            Some(AuthSettings::Basic {
                username: user?,
                password_file: PathBuf::from(a.password_file.clone()?),
            })
        }
        other => {
            p.push(Problem::new(
                "opensearch.auth.method",
                other,
                "expected `aws_sigv4` or `basic`",
            ));
            None
        }
    }
}

fn check_shipping(c: &Config, p: &mut Vec<Problem>) {
    let s = &c.shipping;
    if !(1..=100_000).contains(&s.batch_max_events) {
        p.push(Problem::new(
            "shipping.batch_max_events",
            s.batch_max_events,
            "expected 1 to 100000 events",
        ));
    }
    if !(1..=100).contains(&s.batch_max_mb) {
        p.push(Problem::new(
            "shipping.batch_max_mb",
            s.batch_max_mb,
            "expected 1 to 100 MiB (AWS OpenSearch rejects bulk bodies over 10–100 MiB by \
             instance size; 5–15 is the usual guidance)",
        ));
    }
    if !(1..=300).contains(&s.batch_timeout_secs) {
        p.push(Problem::new(
            "shipping.batch_timeout_secs",
            s.batch_timeout_secs,
            "expected 1 to 300 seconds",
        ));
    }
    // Vector refuses disk buffers under 256 MiB.
    if !(256..=65_536).contains(&s.buffer_max_mb) {
        p.push(Problem::new(
            "shipping.buffer_max_mb",
            s.buffer_max_mb,
            "expected 256 to 65536 MiB (Vector's disk buffer minimum is 256 MiB)",
        ));
    }
    if let Some(r) = &s.redis {
        if !r.url.starts_with("redis://") && !r.url.starts_with("rediss://") {
            p.push(Problem::new(
                "shipping.redis.url",
                &r.url,
                "expected redis://HOST:PORT/DB or rediss://…",
            ));
        }
        if r.key.is_empty() {
            p.push(Problem::at("shipping.redis.key", "must not be empty"));
        }
    }
    let a = &s.archive;
    check_abs_path("shipping.archive.path", &a.path, p);
    if a.event_types.is_empty() {
        p.push(Problem::at(
            "shipping.archive.event_types",
            "must name at least one EVE type, e.g. [alert]",
        ));
    }
    for (i, t) in a.event_types.iter().enumerate() {
        if !c.suricata.eve_types.contains(t) {
            p.push(Problem::new(
                format!("shipping.archive.event_types[{i}]"),
                t,
                "is not in suricata.eve_types, so Suricata never writes it; add it there or \
                 remove it here",
            ));
        }
    }
}

fn check_history(c: &Config, p: &mut Vec<Problem>) {
    let h = &c.history;
    let branch_ok = !h.branch.is_empty()
        && !h.branch.starts_with(['-', '/', '.'])
        && !h.branch.ends_with(['/', '.'])
        && !h.branch.contains("..")
        && !h.branch.contains("//")
        && !h.branch.ends_with(".lock")
        && h.branch
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_./".contains(ch));
    if !branch_ok {
        p.push(Problem::new(
            "history.branch",
            &h.branch,
            "expected a git branch name such as dev or sensors/lab-1",
        ));
    }
    if h.author_name.trim().is_empty() || h.author_name.contains(['<', '>', '\n']) {
        p.push(Problem::new(
            "history.author_name",
            &h.author_name,
            "expected a non-empty name without '<', '>' or newlines",
        ));
    }
    if !h.author_email.contains('@') || h.author_email.contains(['<', '>', ' ', '\n']) {
        p.push(Problem::new(
            "history.author_email",
            &h.author_email,
            "expected an e-mail address such as ids2@sensor.lan",
        ));
    }
    if let Some(remote) = &h.remote {
        if remote.trim().is_empty() {
            p.push(Problem::at(
                "history.remote",
                "must not be empty; leave it out for no remote",
            ));
        }
    }
}

fn check_network(c: &Config, p: &mut Vec<Problem>) -> Vec<ManagementTarget> {
    let n = &c.network;
    let mut targets = Vec::new();
    for (i, t) in n.management_targets.iter().enumerate() {
        let parsed = if t == "gateway" {
            Some(ManagementTarget::Gateway)
        } else if let Ok(sa) = t.parse::<SocketAddr>() {
            Some(ManagementTarget::Tcp(sa))
        } else if let Ok(ip) = t.parse::<IpAddr>() {
            Some(ManagementTarget::Host(ip))
        } else {
            None
        };
        match parsed {
            Some(target) => targets.push(target),
            None => p.push(Problem::new(
                format!("network.management_targets[{i}]"),
                t,
                "expected `gateway`, an IP address, or IP:PORT (e.g. 10.0.0.1:22)",
            )),
        }
    }
    if !(1..=300).contains(&n.rollback_timeout_secs) {
        p.push(Problem::new(
            "network.rollback_timeout_secs",
            n.rollback_timeout_secs,
            "expected 1 to 300 seconds",
        ));
    }
    targets
}

fn check_connectivity(c: &Config, p: &mut Vec<Problem>) -> Vec<HostPort> {
    let k = &c.connectivity;
    for (i, name) in k.dns_names.iter().enumerate() {
        if !is_hostname(name) {
            p.push(Problem::new(
                format!("connectivity.dns_names[{i}]"),
                name,
                "expected a DNS name such as example.org",
            ));
        }
    }
    let mut out = Vec::new();
    for (i, t) in k.tls_targets.iter().enumerate() {
        let parsed = t
            .rsplit_once(':')
            .and_then(|(h, port)| Some((h, port.parse::<u16>().ok()?)))
            .filter(|(h, port)| is_hostname(h) && *port > 0);
        match parsed {
            Some((host, port)) => out.push(HostPort {
                host: host.to_string(),
                port,
            }),
            None => p.push(Problem::new(
                format!("connectivity.tls_targets[{i}]"),
                t,
                "expected HOST:PORT such as example.org:443",
            )),
        }
    }
    if !(5..=3600).contains(&k.interval_secs) {
        p.push(Problem::new(
            "connectivity.interval_secs",
            k.interval_secs,
            "expected 5 to 3600 seconds",
        ));
    }
    if !(1..=60).contains(&k.timeout_secs) || k.timeout_secs >= k.interval_secs {
        p.push(Problem::new(
            "connectivity.timeout_secs",
            k.timeout_secs,
            "expected 1 to 60 seconds and less than connectivity.interval_secs",
        ));
    }
    out
}

fn check_anomaly(c: &Config, p: &mut Vec<Problem>) {
    let a = &c.anomaly;
    // The detector scores EVE `flow` records; without them it would wait for a baseline forever.
    if a.enabled && !c.suricata.eve_types.iter().any(|t| t == "flow") {
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

fn check_range(
    p: &mut Vec<Problem>,
    key: &str,
    v: u32,
    range: std::ops::RangeInclusive<u32>,
    unit: &str,
) {
    if !range.contains(&v) {
        p.push(Problem::new(
            key,
            v,
            format!("expected {} to {} {unit}", range.start(), range.end()),
        ));
    }
}

fn check_notifications(c: &Config, p: &mut Vec<Problem>) {
    let n = &c.notifications;
    check_range(
        p,
        "notifications.dedupe_window_secs",
        n.dedupe_window_secs,
        0..=86_400,
        "seconds",
    );
    check_range(p, "notifications.burst", n.burst, 1..=1000, "messages");
    check_range(
        p,
        "notifications.rate_per_minute",
        n.rate_per_minute,
        1..=600,
        "messages per minute",
    );
    check_range(
        p,
        "notifications.digest_interval_secs",
        n.digest_interval_secs,
        10..=86_400,
        "seconds",
    );
    check_range(
        p,
        "notifications.queue_capacity",
        n.queue_capacity,
        16..=65_536,
        "alerts",
    );
    check_range(
        p,
        "notifications.retry_attempts",
        n.retry_attempts,
        1..=20,
        "attempts",
    );
    check_range(
        p,
        "notifications.retry_initial_ms",
        n.retry_initial_ms,
        10..=60_000,
        "milliseconds",
    );
    check_range(
        p,
        "notifications.retry_max_secs",
        n.retry_max_secs,
        1..=3600,
        "seconds",
    );
    if n.retry_max_secs.saturating_mul(1000) < n.retry_initial_ms {
        p.push(Problem::new(
            "notifications.retry_max_secs",
            n.retry_max_secs,
            "must not be shorter than notifications.retry_initial_ms",
        ));
    }
    if let Some(w) = &n.webhook {
        if let Some(url) = &w.url {
            if let Err(why) = webhook_url_problem(url) {
                p.push(Problem::new("notifications.webhook.url", url, why));
            }
        }
        if let Some(file) = &w.url_file {
            check_abs_path("notifications.webhook.url_file", file, p);
        }
        match (&w.url, &w.url_file) {
            (Some(_), Some(_)) => p.push(Problem::at(
                "notifications.webhook",
                "set either `url` or `url_file`, not both",
            )),
            (None, None) => p.push(Problem::at(
                "notifications.webhook.url",
                "required: set `url`, or `url_file` when the URL is a secret (Slack)",
            )),
            _ => {}
        }
        if let Some(f) = &w.bearer_token_file {
            check_abs_path("notifications.webhook.bearer_token_file", f, p);
        }
        check_range(
            p,
            "notifications.webhook.timeout_secs",
            w.timeout_secs,
            1..=120,
            "seconds",
        );
    }
    if let Some(e) = &n.email {
        if !is_hostname(&e.smtp_host) {
            p.push(Problem::new(
                "notifications.email.smtp_host",
                &e.smtp_host,
                "expected a host name or address such as smtp.example.org",
            ));
        }
        if e.smtp_port == Some(0) {
            p.push(Problem::new(
                "notifications.email.smtp_port",
                0,
                "expected a TCP port from 1 to 65535 (587 for starttls, 465 for implicit)",
            ));
        }
        for (key, file) in [("ca_file", &e.ca_file), ("password_file", &e.password_file)] {
            if let Some(f) = file {
                check_abs_path(&format!("notifications.email.{key}"), f, p);
            }
        }
        match (&e.username, &e.password_file) {
            (Some(_), None) => p.push(Problem::at(
                "notifications.email.password_file",
                "required with `username`: the path of a file holding the SMTP password",
            )),
            (None, Some(_)) => p.push(Problem::at(
                "notifications.email.username",
                "required with `password_file`",
            )),
            _ => {}
        }
        if !is_mailbox(&e.from) {
            p.push(Problem::new(
                "notifications.email.from",
                &e.from,
                "expected an e-mail address such as ids2@example.org",
            ));
        }
        if e.to.is_empty() {
            p.push(Problem::at(
                "notifications.email.to",
                "must list at least one recipient",
            ));
        }
        for (i, to) in e.to.iter().enumerate() {
            if !is_mailbox(to) {
                p.push(Problem::new(
                    format!("notifications.email.to[{i}]"),
                    to,
                    "expected an e-mail address such as soc@example.org",
                ));
            }
        }
        check_range(
            p,
            "notifications.email.timeout_secs",
            e.timeout_secs,
            1..=300,
            "seconds",
        );
    }
}

/// https with a host, or http to a loopback address (a relay on the sensor itself).
fn webhook_url_problem(url: &str) -> Result<(), &'static str> {
    url_host(url).map(|_| ())
}

/// The host of an https URL, or of an http URL to a loopback address; alerts and secrets would
/// cross the network in clear text anywhere else.
fn url_host(url: &str) -> Result<&str, &'static str> {
    let (secure, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return Err("expected an https:// URL"),
    };
    let authority = super::parse::authority(rest);
    if authority.is_empty() || authority.contains('@') {
        return Err("expected https://HOST/PATH with no user info");
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if host.is_empty() {
        return Err("expected https://HOST/PATH with no user info");
    }
    if !secure && !loopback {
        return Err(
            "plain http:// is accepted only to a loopback address; use https:// \
                    (alerts and API keys would cross the network in clear text)",
        );
    }
    Ok(host)
}

fn is_mailbox(s: &str) -> bool {
    s.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && is_hostname(domain) && !s.contains(['<', '>', ' ', '\n', '\r', ','])
    })
}

fn ip_or_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn check_blocking(c: &Config, home_net: &[IpNet], p: &mut Vec<Problem>) {
    let b = &c.blocking;
    for (i, cat) in b.categories.iter().enumerate() {
        if cat.trim().is_empty() {
            p.push(Problem::at(
                format!("blocking.categories[{i}]"),
                "must not be empty; use a Suricata alert.category such as \
                 \"A Network Trojan was detected\"",
            ));
        } else if b.categories[..i].contains(cat) {
            p.push(Problem::new(
                format!("blocking.categories[{i}]"),
                cat,
                "each category may be listed once",
            ));
        }
    }
    if let Some(r) = &b.repeat_offenders {
        check_range(
            p,
            "blocking.repeat_offenders.alerts",
            r.alerts,
            2..=1000,
            "alerts",
        );
        check_range(
            p,
            "blocking.repeat_offenders.window_secs",
            r.window_secs,
            10..=86_400,
            "seconds",
        );
    }
    if let Some(score) = b.reputation_min_score {
        if !(1..=100).contains(&score) {
            p.push(Problem::new(
                "blocking.reputation_min_score",
                score,
                "expected a score from 1 to 100",
            ));
        }
        if b.repeat_offenders.is_none() {
            p.push(Problem::at(
                "blocking.reputation_min_score",
                "only applies with blocking.repeat_offenders (it lets a known-bad address skip \
                 the repeat count); set repeat_offenders or remove it",
            ));
        }
    }
    check_range(
        p,
        "blocking.ttl_secs",
        b.ttl_secs,
        60..=2_592_000,
        "seconds (1 minute to 30 days)",
    );
    check_range(
        p,
        "blocking.max_entries",
        b.max_entries,
        1..=1_000_000,
        "addresses",
    );
    for (i, s) in b.allowlist.iter().enumerate() {
        if ip_or_cidr(s).is_none() {
            p.push(Problem::new(
                format!("blocking.allowlist[{i}]"),
                s,
                "expected an IP address or a CIDR such as 203.0.113.0/24",
            ));
        }
    }
    for (i, s) in b.allow_home_net.iter().enumerate() {
        match ip_or_cidr(s) {
            None => p.push(Problem::new(
                format!("blocking.allow_home_net[{i}]"),
                s,
                "expected an IP address or a CIDR such as 192.168.50.0/24",
            )),
            Some(net) if !home_net.iter().any(|h| h.contains(&net)) => p.push(Problem::new(
                format!("blocking.allow_home_net[{i}]"),
                s,
                "is not inside capture.home_net; only HOME_NET needs this exception",
            )),
            Some(_) => {}
        }
    }
    match b.feed_listen.parse::<SocketAddr>() {
        Err(_) => p.push(Problem::new(
            "blocking.feed_listen",
            &b.feed_listen,
            "expected address:port, e.g. 0.0.0.0:9102",
        )),
        Ok(feed) => {
            let clash = c.metrics.listen.parse::<SocketAddr>().is_ok_and(|m| {
                m.port() == feed.port()
                    && (m.ip() == feed.ip()
                        || m.ip().is_unspecified()
                        || feed.ip().is_unspecified())
            });
            if b.enabled && clash {
                p.push(Problem::new(
                    "blocking.feed_listen",
                    &b.feed_listen,
                    "uses the same port as metrics.listen; pick another port",
                ));
            }
        }
    }
}

fn check_enrichment(c: &Config, p: &mut Vec<Problem>) {
    let e = &c.enrichment;
    for (key, path) in [
        ("enrichment.geoip_city_path", &e.geoip_city_path),
        ("enrichment.geoip_asn_path", &e.geoip_asn_path),
    ] {
        if let Some(path) = path {
            check_abs_path(key, path, p);
        }
    }
    let Some(a) = &e.abuseipdb else { return };
    check_abs_path("enrichment.abuseipdb.api_key_file", &a.api_key_file, p);
    check_abs_path("enrichment.abuseipdb.table_path", &a.table_path, p);
    if let Err(why) = webhook_url_problem(&a.base_url) {
        p.push(Problem::new(
            "enrichment.abuseipdb.base_url",
            &a.base_url,
            why,
        ));
    }
    // AbuseIPDB accepts maxAgeInDays from 1 to 365.
    check_range(
        p,
        "enrichment.abuseipdb.max_age_days",
        a.max_age_days,
        1..=365,
        "days",
    );
    check_range(
        p,
        "enrichment.abuseipdb.daily_quota",
        a.daily_quota,
        1..=1_000_000,
        "checks",
    );
    check_range(
        p,
        "enrichment.abuseipdb.cache_ttl_secs",
        a.cache_ttl_secs,
        60..=30 * 86_400,
        "seconds",
    );
    check_range(
        p,
        "enrichment.abuseipdb.reload_min_interval_secs",
        a.reload_min_interval_secs,
        1..=3600,
        "seconds",
    );
    check_range(
        p,
        "enrichment.abuseipdb.timeout_secs",
        a.timeout_secs,
        1..=120,
        "seconds",
    );
}

fn check_fleet(c: &Config, p: &mut Vec<Problem>) {
    let f = &c.fleet;
    check_range(
        p,
        "fleet.heartbeat_secs",
        f.heartbeat_secs,
        5..=3600,
        "seconds",
    );
    // Below two intervals a single delayed heartbeat would already read as offline.
    let least = f.heartbeat_secs.saturating_mul(2).max(10);
    if !(least..=86_400).contains(&f.offline_after_secs) {
        p.push(Problem::new(
            "fleet.offline_after_secs",
            f.offline_after_secs,
            format!(
                "expected {least} to 86400 seconds: at least two heartbeat intervals \
                 (fleet.heartbeat_secs = {})",
                f.heartbeat_secs
            ),
        ));
    }
    let r = &f.rules;
    check_range(
        p,
        "fleet.rules.interval_secs",
        r.interval_secs,
        300..=2_592_000,
        "seconds (5 minutes to 30 days)",
    );
    if !(10..=86_400).contains(&r.retry_initial_secs) || r.retry_initial_secs > r.interval_secs {
        p.push(Problem::new(
            "fleet.rules.retry_initial_secs",
            r.retry_initial_secs,
            "expected 10 to 86400 seconds, and no more than fleet.rules.interval_secs",
        ));
    }
    if r.sources.is_empty() {
        p.push(Problem::at(
            "fleet.rules.sources",
            "must list at least one source, e.g. [et/open] or [/var/lib/ids2/local-rules]",
        ));
    }
    for (i, s) in r.sources.iter().enumerate() {
        if let Err(why) = rule_source_problem(s) {
            p.push(Problem::new(format!("fleet.rules.sources[{i}]"), s, why));
        } else if r.sources[..i].contains(s) {
            p.push(Problem::new(
                format!("fleet.rules.sources[{i}]"),
                s,
                "each source may be listed once",
            ));
        }
    }
    for (key, sids) in [
        ("fleet.rules.enable_sids", &r.enable_sids),
        ("fleet.rules.disable_sids", &r.disable_sids),
    ] {
        for (i, sid) in sids.iter().enumerate() {
            if *sid == 0 {
                p.push(Problem::new(
                    format!("{key}[{i}]"),
                    sid,
                    "expected a rule SID (1 or more)",
                ));
            } else if sids[..i].contains(sid) {
                p.push(Problem::new(
                    format!("{key}[{i}]"),
                    sid,
                    "each SID may be listed once",
                ));
            }
        }
    }
    for (i, sid) in r.disable_sids.iter().enumerate() {
        if r.enable_sids.contains(sid) {
            p.push(Problem::new(
                format!("fleet.rules.disable_sids[{i}]"),
                sid,
                "is also in fleet.rules.enable_sids; keep it in one list",
            ));
        }
    }
    for (i, t) in r.thresholds.iter().enumerate() {
        let key = |k: &str| format!("fleet.rules.thresholds[{i}].{k}");
        if t.sid == 0 {
            p.push(Problem::new(
                key("sid"),
                t.sid,
                "expected a rule SID (1 or more)",
            ));
        } else if r.thresholds[..i].iter().any(|o| o.sid == t.sid) {
            p.push(Problem::new(
                key("sid"),
                t.sid,
                "each SID may have one threshold",
            ));
        }
        check_range(p, &key("count"), t.count, 1..=1_000_000, "matches");
        check_range(p, &key("seconds"), t.seconds, 1..=86_400, "seconds");
    }
    check_abs_path("fleet.rules.cache_dir", &r.cache_dir, p);
}

/// `et/open`, an https:// or file:// URL, or an absolute path.
fn rule_source_problem(s: &str) -> Result<(), &'static str> {
    if s == RULE_SOURCE_ET_OPEN {
        return Ok(());
    }
    let path = if let Some(rest) = s.strip_prefix("https://") {
        let host = super::parse::authority(rest);
        return if host.is_empty() || host.contains('@') || rest.len() == host.len() {
            Err("expected https://HOST/PATH of a rules file or .tar.gz, with no user info")
        } else {
            Ok(())
        };
    } else if let Some(rest) = s.strip_prefix("file://") {
        rest
    } else if s.contains("://") {
        return Err(
            "expected et/open, an https:// or file:// URL, or an absolute path \
             (plain http would let anyone on the path replace the rules)",
        );
    } else {
        s
    };
    let ok = path.starts_with('/')
        && path.len() > 1
        && !path.split('/').any(|part| part == "..")
        && !path.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err("expected et/open, an https:// URL, or an absolute path (file:///… or /…) without '..' or spaces")
    }
}

fn is_interface_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn is_hostname(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
        || ((1..=253).contains(&s.len())
            && s.split('.').all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcaps_split_matches_suricata_defaults_at_512() {
        let m = Memcaps::split(512);
        assert_eq!(
            (
                m.flow_mb,
                m.stream_mb,
                m.reassembly_mb,
                m.defrag_mb,
                m.host_mb
            ),
            (128, 64, 256, 32, 32)
        );
    }

    #[test]
    fn memcaps_split_never_exceeds_budget() {
        for total in [128, 300, 511, 777, 1024, 16_384] {
            let m = Memcaps::split(total);
            assert_eq!(
                m.flow_mb + m.stream_mb + m.reassembly_mb + m.defrag_mb + m.host_mb,
                total
            );
        }
    }

    fn base() -> Config {
        let text = "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n";
        serde_yaml_ng::from_str(text).unwrap()
    }

    fn anomaly_problems(edit: impl FnOnce(&mut Config)) -> Vec<String> {
        let mut c = base();
        edit(&mut c);
        match validate(c) {
            Ok(_) => Vec::new(),
            Err(p) => p.into_iter().map(|p| p.path).collect(),
        }
    }

    #[test]
    fn archive_defaults_are_valid_and_bad_values_named_by_key() {
        let c = base();
        assert_eq!(c.shipping.archive.mode, crate::config::ArchiveMode::Auto);
        assert_eq!(c.shipping.archive.event_types, ["alert"]);
        assert!(c.capture.pin_workers);
        assert!(anomaly_problems(|_| {}).is_empty());
        let p = anomaly_problems(|c| {
            c.shipping.archive.path = "archive.jsonl".into();
            c.shipping.archive.event_types = vec!["alert".into(), "smb".into()];
        });
        assert_eq!(
            p,
            ["shipping.archive.path", "shipping.archive.event_types[1]"]
        );
        assert_eq!(
            anomaly_problems(|c| c.shipping.archive.event_types.clear()),
            ["shipping.archive.event_types"]
        );
        let text = "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n\
                    shipping: {archive: {mode: sometimes}}\n";
        assert!(serde_yaml_ng::from_str::<Config>(text).is_err());
    }

    #[test]
    fn anomaly_defaults_are_off_and_valid() {
        let c = base();
        assert!(!c.anomaly.enabled);
        assert_eq!(c.anomaly.model_path, "/var/lib/ids2/anomaly-model.json");
        assert_eq!((c.anomaly.trees, c.anomaly.sample_size), (100, 256));
        assert!(anomaly_problems(|_| {}).is_empty());
    }

    #[test]
    fn anomaly_bad_values_named_by_key() {
        let p = anomaly_problems(|c| {
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
            anomaly_problems(|c| c.anomaly.threshold = f64::NAN),
            ["anomaly.threshold"]
        );
        assert_eq!(
            anomaly_problems(|c| c.anomaly.threshold = 0.3),
            ["anomaly.threshold"]
        );
    }

    #[test]
    fn anomaly_needs_flow_records() {
        assert!(anomaly_problems(|c| c.anomaly.enabled = true).is_empty());
        assert_eq!(
            anomaly_problems(|c| {
                c.anomaly.enabled = true;
                c.suricata.eve_types.retain(|t| t != "flow");
            }),
            ["anomaly.enabled"]
        );
        assert!(anomaly_problems(|c| c.suricata.eve_types.retain(|t| t != "flow")).is_empty());
    }

    #[test]
    fn anomaly_baseline_must_fill_a_tree_sample() {
        assert_eq!(
            anomaly_problems(|c| c.anomaly.min_baseline_flows = 100),
            ["anomaly.min_baseline_flows"]
        );
        assert!(anomaly_problems(|c| {
            c.anomaly.sample_size = 64;
            c.anomaly.min_baseline_flows = 100;
        })
        .is_empty());
        assert_eq!(
            anomaly_problems(|c| c.anomaly.sample_size = 1),
            ["anomaly.sample_size"]
        );
    }

    #[test]
    fn regions() {
        assert!(is_region("eu-west-1"));
        assert!(is_region("us-gov-west-1"));
        assert!(!is_region("europe"));
        assert!(!is_region("eu-west-"));
    }

    fn response_problems(extra: &str) -> Vec<Problem> {
        let text = format!(
            "sensor: {{id: lab-1}}\nopensearch: {{domain: ids2, region: eu-west-1}}\n{extra}"
        );
        match crate::config::from_str(&text, std::path::Path::new("t.yaml")) {
            Ok(_) => Vec::new(),
            Err(crate::config::ConfigError::Invalid { problems, .. }) => problems,
            Err(other) => panic!("{other}"),
        }
    }

    fn paths(p: &[Problem]) -> Vec<&str> {
        p.iter().map(|p| p.path.as_str()).collect()
    }

    #[test]
    fn enrichment_is_off_by_default_and_checked_by_key() {
        let s = crate::config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        assert_eq!(s.config.enrichment, crate::config::Enrichment::default());
        let ok = response_problems(
            "enrichment:\n  geoip_city_path: /var/lib/GeoIP/GeoLite2-City.mmdb\n  \
             abuseipdb: {api_key_file: /run/keys/abuseipdb}\n",
        );
        assert!(ok.is_empty(), "{ok:#?}");
        let p = response_problems(
            "enrichment:\n  geoip_asn_path: GeoLite2-ASN.mmdb\n  abuseipdb:\n    \
             api_key_file: key\n    base_url: http://api.example.org/v2\n    \
             max_age_days: 0\n    daily_quota: 0\n    cache_ttl_secs: 5\n",
        );
        assert_eq!(
            paths(&p),
            [
                "enrichment.geoip_asn_path",
                "enrichment.abuseipdb.api_key_file",
                "enrichment.abuseipdb.base_url",
                "enrichment.abuseipdb.max_age_days",
                "enrichment.abuseipdb.daily_quota",
                "enrichment.abuseipdb.cache_ttl_secs",
            ],
            "{p:#?}"
        );
        let p = response_problems("enrichment: {abuseipdb: {api_key: abc}}\n");
        assert!(!p.is_empty(), "an inline key is refused");
    }

    #[test]
    fn response_defaults_are_off_and_documented() {
        let s = crate::config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let n = &s.config.notifications;
        assert!(n.webhook.is_none() && n.email.is_none());
        assert_eq!(n.min_severity, crate::config::Severity::High);
        let b = &s.config.blocking;
        assert!(!b.enabled && !b.nftables);
        assert_eq!(b.ttl_secs, 3600);
        assert_eq!(b.feed_listen, "0.0.0.0:9102");
    }

    #[test]
    fn severity_levels_follow_suricata_priority() {
        use crate::config::Severity;
        assert!(Severity::High.admits(1));
        assert!(!Severity::High.admits(2));
        assert!(Severity::Medium.admits(2) && !Severity::Medium.admits(3));
        assert!(Severity::Low.admits(3) && !Severity::Low.admits(4));
        assert!(Severity::Info.admits(255));
        let p = response_problems("notifications: {min_severity: hihg}\n");
        assert_eq!(paths(&p), ["notifications.min_severity"], "{p:#?}");
        assert!(p[0].message.contains("high"), "{p:#?}");
    }

    #[test]
    fn opensearch_endpoint_needs_tls_except_to_loopback() {
        let with = |ep: &str| {
            format!(
                "sensor: {{id: s1}}\nopensearch: {{domain: ids2, region: eu-west-1, endpoint: '{ep}'}}\n"
            )
        };
        for (ep, host) in [
            (
                "https://search-x.eu-west-1.es.amazonaws.com",
                "search-x.eu-west-1.es.amazonaws.com",
            ),
            ("https://os.example:9200/", "os.example"),
            ("http://127.0.0.1:9200", "127.0.0.1"),
            ("http://localhost:9200", "localhost"),
        ] {
            let s = crate::config::from_str(&with(ep), std::path::Path::new("t.yaml")).unwrap();
            assert_eq!(s.opensearch_host.as_deref(), Some(host), "{ep}");
        }
        for bad in [
            "http://10.0.0.1:9200",
            "https://user@os.example",
            "os.example",
        ] {
            let err = crate::config::from_str(&with(bad), std::path::Path::new("t.yaml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("opensearch.endpoint"), "{bad}: {err}");
        }
    }

    #[test]
    fn webhook_urls_need_tls_except_to_loopback() {
        for ok in [
            "https://hooks.example.org/x",
            "http://127.0.0.1:8080/hook",
            "http://[::1]:9/x",
            "http://localhost/x",
        ] {
            assert!(webhook_url_problem(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://hooks.example.org/x",
            "ftp://x",
            "https://",
            "https://u@h/",
        ] {
            assert!(webhook_url_problem(bad).is_err(), "{bad}");
        }
        let p = response_problems(
            "notifications: {webhook: {url: 'http://10.0.0.9/h', url_file: /run/u}}\n",
        );
        assert_eq!(
            paths(&p),
            ["notifications.webhook.url", "notifications.webhook"],
            "{p:#?}"
        );
        let p = response_problems("notifications: {webhook: {format: slack}}\n");
        assert_eq!(paths(&p), ["notifications.webhook.url"], "{p:#?}");
    }

    #[test]
    fn email_problems_named_by_key() {
        let p = response_problems(
            "notifications:\n  retry_initial_ms: 5000\n  retry_max_secs: 2\n  email:\n    \
             smtp_host: 'smtp host'\n    smtp_port: 0\n    username: ids2\n    \
             from: nobody\n    to: [ok@example.org, 'a@b, c@d']\n    ca_file: rel/ca.pem\n",
        );
        assert_eq!(
            paths(&p),
            [
                "notifications.retry_max_secs",
                "notifications.email.smtp_host",
                "notifications.email.smtp_port",
                "notifications.email.ca_file",
                "notifications.email.password_file",
                "notifications.email.from",
                "notifications.email.to[1]",
            ],
            "{p:#?}"
        );
        let p = response_problems(
            "notifications: {email: {smtp_host: h, from: a@h, to: [b@h], tls: plain}}\n",
        );
        assert_eq!(paths(&p), ["notifications.email.tls"], "{p:#?}");
    }

    #[test]
    fn inline_smtp_password_refused() {
        let p = response_problems(
            "notifications: {email: {smtp_host: h, from: a@h, to: [b@h], username: u, password: pw}}\n",
        );
        assert!(
            paths(&p).contains(&"notifications.email.password"),
            "{p:#?}"
        );
        assert!(!format!("{p:?}").contains("pw}"));
    }

    #[test]
    fn blocking_problems_named_by_key() {
        let p = response_problems(
            "capture: {home_net: [192.168.0.0/16]}\nblocking:\n  enabled: true\n  \
             categories: [x, x, '']\n  reputation_min_score: 0\n  ttl_secs: 5\n  \
             allowlist: [10.0.0.0/8, nope]\n  allow_home_net: [192.168.7.0/24, 10.1.0.0/16]\n  \
             feed_listen: 0.0.0.0:9100\n  repeat_offenders: {alerts: 1, window_secs: 60}\n",
        );
        assert_eq!(
            paths(&p),
            [
                "blocking.categories[1]",
                "blocking.categories[2]",
                "blocking.repeat_offenders.alerts",
                "blocking.reputation_min_score",
                "blocking.ttl_secs",
                "blocking.allowlist[1]",
                "blocking.allow_home_net[1]",
                "blocking.feed_listen",
            ],
            "{p:#?}"
        );
        let p = response_problems("blocking: {reputation_min_score: 50}\n");
        assert_eq!(paths(&p), ["blocking.reputation_min_score"], "{p:#?}");
        assert!(p[0].message.contains("repeat_offenders"));
        let p = response_problems("blocking: {enabled: true, feed_listen: 9102}\n");
        assert_eq!(paths(&p), ["blocking.feed_listen"], "{p:#?}");
    }

    #[test]
    fn fleet_defaults_are_documented() {
        let s = crate::config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let f = &s.config.fleet;
        assert_eq!((f.heartbeat_secs, f.offline_after_secs), (15, 60));
        assert!(f.rules.scheduled);
        assert_eq!(f.rules.interval_secs, 86_400);
        assert_eq!(f.rules.sources, ["et/open"]);
        assert!(f.rules.enable_sids.is_empty() && f.rules.thresholds.is_empty());
    }

    #[test]
    fn fleet_problems_named_by_key() {
        let p = response_problems(
            "fleet:\n  heartbeat_secs: 30\n  offline_after_secs: 45\n  rules:\n    \
             interval_secs: 60\n    sources: [et/open, 'http://mirror.lan/r.tar.gz', \
             rules/local, 'file:///srv/../etc', et/open]\n    enable_sids: [1, 1, 0]\n    \
             disable_sids: [1]\n    thresholds:\n      - {sid: 5, type: limit, track: by_src, \
             count: 0, seconds: 60}\n      - {sid: 5, type: both, track: by_dst, count: 1, \
             seconds: 60}\n    cache_dir: var/cache\n",
        );
        assert_eq!(
            paths(&p),
            [
                "fleet.offline_after_secs",
                "fleet.rules.interval_secs",
                "fleet.rules.retry_initial_secs",
                "fleet.rules.sources[1]",
                "fleet.rules.sources[2]",
                "fleet.rules.sources[3]",
                "fleet.rules.sources[4]",
                "fleet.rules.enable_sids[1]",
                "fleet.rules.enable_sids[2]",
                "fleet.rules.disable_sids[0]",
                "fleet.rules.thresholds[0].count",
                "fleet.rules.thresholds[1].sid",
                "fleet.rules.cache_dir",
            ],
            "{p:#?}"
        );
        assert!(p[0].message.contains("60 to 86400"), "{p:#?}");
        let p = response_problems(
            "fleet: {rules: {thresholds: [{sid: 5, type: sometimes, track: by_src, count: 1, seconds: 1}]}}\n",
        );
        assert_eq!(paths(&p), ["fleet.rules.thresholds[0].type"], "{p:#?}");
    }

    #[test]
    fn offline_rule_sources_accepted() {
        let p = response_problems(
            "fleet:\n  heartbeat_secs: 5\n  offline_after_secs: 10\n  rules:\n    \
             sources: ['file:///srv/rules/emerging.rules.tar.gz', /srv/rules/local, \
             'https://rules.example.org/suricata.rules']\n    enable_sids: [2019401]\n    \
             disable_sids: [2100498]\n    thresholds: [{sid: 2019401, type: limit, \
             track: by_src, count: 1, seconds: 3600}]\n",
        );
        assert!(p.is_empty(), "{p:#?}");
    }

    #[test]
    fn full_response_config_accepted() {
        let p = response_problems(
            "notifications:\n  min_severity: medium\n  webhook: {url_file: /run/credentials/ids2-agent/slack, format: slack}\n  \
             email: {smtp_host: smtp.example.org, tls: implicit, username: ids2, \
             password_file: /run/credentials/ids2-agent/smtp, from: ids2@example.org, to: [soc@example.org]}\n\
             blocking:\n  enabled: true\n  nftables: true\n  categories: [A Network Trojan was detected]\n  \
             repeat_offenders: {alerts: 3, window_secs: 600}\n  reputation_min_score: 90\n  \
             allowlist: [203.0.113.7, 198.51.100.0/24]\n  allow_home_net: [192.168.99.0/24]\n",
        );
        assert!(p.is_empty(), "{p:#?}");
    }
}
