//! `connectivity`: the reachability checks the agent runs and exports.

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::validate::is_hostname;

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

super::schema::default_from_fns! {
    Connectivity {
        dns_names: Vec::new, tls_targets: Vec::new, interval_secs: default_interval_secs,
        timeout_secs: default_timeout_secs,
    }
}

/// Default connectivity check period.
pub fn default_interval_secs() -> u32 {
    30
}

/// Default connectivity check timeout.
pub fn default_timeout_secs() -> u32 {
    5
}

/// A `host:port` pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPort {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Connectivity {
    /// Checks names, targets and timings; returns the TLS targets parsed.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) -> Vec<HostPort> {
        let k = self;
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
}
