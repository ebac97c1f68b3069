//! `network`: the link policy and the management targets that must stay reachable.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::error::Problem;

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

super::schema::default_from_fns! {
    Network {
        management_targets: default_management_targets,
        rollback_timeout_secs: default_rollback_timeout_secs,
    }
}

/// Default management target: the default route's gateway.
pub fn default_management_targets() -> Vec<String> {
    vec!["gateway".into()]
}

/// Default rollback guard timeout.
pub fn default_rollback_timeout_secs() -> u32 {
    10
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

impl Network {
    /// Checks the targets and the rollback timeout; returns the targets parsed.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) -> Vec<ManagementTarget> {
        let n = self;
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
}
