//! [`Config`] → [`Settings`]: runs every section's checks, pure (no file system, no network).
//!
//! Each section's rules live beside its types (`capture.rs`, `opensearch.rs`, …); here they are
//! run in file order, each pushing a [`Problem`] and carrying on, so an operator sees
//! everything wrong with a file in one go. The helpers below are the rules several sections
//! share.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::Serialize;

use super::error::Problem;
use super::parse::authority;
use super::{AuthSettings, Config, HostPort, ManagementTarget, Memcaps};

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
    /// `metrics.allow_from`, parsed (empty: any source).
    pub metrics_allow_from: Vec<IpNet>,
    /// `blocking.feed_allow_from`, parsed (empty: any source).
    pub feed_allow_from: Vec<IpNet>,
    /// `network.management_targets`, parsed.
    pub management_targets: Vec<ManagementTarget>,
    /// `connectivity.tls_targets`, parsed.
    pub tls_targets: Vec<HostPort>,
    /// The OpenSearch endpoint's host name, when an endpoint is set.
    pub opensearch_host: Option<String>,
}

/// Runs every section's checks; returns settings or every problem found.
pub fn validate(mut config: Config) -> Result<Settings, Vec<Problem>> {
    let mut p = Vec::new();
    let c = &config;

    c.sensor.validate(&mut p);
    let home_net = c.capture.validate(&mut p);
    c.logs.validate(&mut p);
    let memcaps = c.suricata.validate(&mut p);
    c.resources.validate(&mut p);
    let (auth, opensearch_host) = c.opensearch.validate(&mut p);
    c.shipping.validate(&c.suricata.eve_types, &mut p);
    let (metrics_listen, metrics_allow_from) = c.metrics.validate(&mut p);
    c.history.validate(&mut p);
    let management_targets = c.network.validate(&mut p);
    let tls_targets = c.connectivity.validate(&mut p);
    c.paths.validate(&mut p);
    c.anomaly.validate(&c.suricata.eve_types, &mut p);
    c.notifications.validate(&mut p);
    let feed_allow_from = c.blocking.validate(&home_net, &c.metrics.listen, &mut p);
    c.fleet.validate(&mut p);
    c.enrichment.validate(&mut p);
    c.intel.validate(&mut p);

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
                metrics_allow_from,
                feed_allow_from,
                management_targets,
                tls_targets,
                opensearch_host,
            })
        }
        _ => Err(p),
    }
}

pub(super) fn check_abs_path(key: &str, value: &str, p: &mut Vec<Problem>) {
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

pub(super) fn check_range(
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

/// https with a host, or http to a loopback address (a relay on the sensor itself).
pub(super) fn webhook_url_problem(url: &str) -> Result<(), &'static str> {
    url_host(url).map(|_| ())
}

/// The host of an https URL, or of an http URL to a loopback address; alerts and secrets would
/// cross the network in clear text anywhere else.
pub(super) fn url_host(url: &str) -> Result<&str, &'static str> {
    let (secure, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return Err("expected an https:// URL"),
    };
    let authority = authority(rest);
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

pub(super) fn is_hostname(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
        || ((1..=253).contains(&s.len())
            && s.split('.').all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
}
