//! `metrics`: the Prometheus endpoint the agent serves.

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::error::Problem;

/// The Prometheus endpoint the agent serves.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// `address:port` the Prometheus endpoint listens on.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
    /// Source addresses or CIDRs that may connect (e.g. the Prometheus server's); empty means
    /// any. A connection from elsewhere is closed before a byte of it is read.
    #[serde(default)]
    pub allow_from: Vec<String>,
}

super::schema::default_from_fns! {
    Metrics {
        listen: default_metrics_listen, allow_from: Vec::new,
    }
}

/// Default metrics address.
pub fn default_metrics_listen() -> String {
    "0.0.0.0:9100".into()
}

impl Metrics {
    /// Checks the address and the source networks; returns both parsed.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) -> (Option<SocketAddr>, Vec<IpNet>) {
        let allow_from = source_nets("metrics.allow_from", &self.allow_from, p);
        match self.listen.parse::<SocketAddr>() {
            Ok(a) => (Some(a), allow_from),
            Err(_) => {
                p.push(Problem::new(
                    "metrics.listen",
                    &self.listen,
                    "expected address:port, e.g. 0.0.0.0:9100 or [::]:9100",
                ));
                (None, allow_from)
            }
        }
    }
}

/// A listener's `allow_from` list, parsed; each bad entry is a problem named by its index.
pub(super) fn source_nets(key: &str, list: &[String], p: &mut Vec<Problem>) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let parsed = s
            .parse::<IpNet>()
            .ok()
            .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from));
        match parsed {
            Some(n) => nets.push(n.trunc()),
            None => p.push(Problem::new(
                format!("{key}[{i}]"),
                s,
                "expected an IP address or a CIDR such as 192.168.1.0/24",
            )),
        }
    }
    nets
}

#[cfg(test)]
mod tests {
    use super::super::testing::{paths, problems_with};

    #[test]
    fn listener_source_networks_are_checked_by_index() {
        let p = problems_with(
            "metrics: {allow_from: [10.0.0.5, 192.168.1.0/24, 'prometheus.lan', 10.0.0.0/40]}\n\
             blocking: {feed_allow_from: ['::1', nope]}\n",
        );
        assert_eq!(
            paths(&p),
            [
                "metrics.allow_from[2]",
                "metrics.allow_from[3]",
                "blocking.feed_allow_from[1]"
            ],
            "{p:#?}"
        );
        assert!(p[0].message.contains("CIDR"), "{p:#?}");
    }
}
