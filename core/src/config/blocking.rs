//! `blocking`: time-limited block decisions from alerts, served as a feed. Off by default.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::schema::{none, Severity};
use super::validate::check_range;

/// Blocking, off by default: alerts matching the policy become block decisions that expire after
/// `ttl_secs`, served as a feed. The allowlist always wins: the default gateway, the sensor's own
/// addresses, management targets, the OpenSearch endpoint's addresses, `allowlist`, and every
/// HOME_NET address not in `allow_home_net` are never blocked.
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
    /// Seconds a decision lasts (60–2592000, one minute to 30 days).
    #[serde(default = "default_block_ttl_secs")]
    pub ttl_secs: u32,
    /// Most addresses blocked at once (1–1000000); further decisions are refused, counted in
    /// `ids2_block_refused_full_total` and logged (at 1, 2, 4, 8… refusals).
    #[serde(default = "default_block_max_entries")]
    pub max_entries: u32,
    /// Most new decisions per minute (1–10000), a token bucket with a minute's worth of burst:
    /// a flood of alerts from spoofed sources cannot fill the table faster. Decisions over it
    /// are refused and counted in `ids2_block_rate_limited_total`.
    #[serde(default = "default_block_max_decisions_per_minute")]
    pub max_decisions_per_minute: u32,
    /// Addresses and CIDRs that are never blocked.
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// CIDRs inside HOME_NET that may be blocked (HOME_NET is otherwise never blocked).
    #[serde(default)]
    pub allow_home_net: Vec<String>,
    /// `address:port` of the HTTP feed (`/blocklist.txt`, `/blocklist.json`).
    #[serde(default = "default_feed_listen")]
    pub feed_listen: String,
    /// Source addresses or CIDRs that may fetch the feed (e.g. the firewall's); empty means
    /// any. A connection from elsewhere is closed before a byte of it is read.
    #[serde(default)]
    pub feed_allow_from: Vec<String>,
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

super::schema::default_from_fns! {
    Blocking {
        enabled: bool::default, min_severity: default_block_severity, categories: Vec::new,
        repeat_offenders: none, reputation_min_score: none, ttl_secs: default_block_ttl_secs,
        max_entries: default_block_max_entries,
        max_decisions_per_minute: default_block_max_decisions_per_minute,
        allowlist: Vec::new, allow_home_net: Vec::new,
        feed_listen: default_feed_listen, feed_allow_from: Vec::new, nftables: bool::default,
    }
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

/// Default rate of new decisions: one a second on average.
pub fn default_block_max_decisions_per_minute() -> u32 {
    60
}

/// Default feed address (pfSense/OPNsense fetch it over the management network).
pub fn default_feed_listen() -> String {
    "0.0.0.0:9102".into()
}

impl Blocking {
    /// Checks the policy, the allowlists (HOME_NET exceptions must lie in `capture.home_net`)
    /// and the feed address (not `metrics.listen`'s port); returns `feed_allow_from` parsed.
    pub(super) fn validate(
        &self,
        home_net: &[IpNet],
        metrics_listen: &str,
        p: &mut Vec<Problem>,
    ) -> Vec<IpNet> {
        let b = self;
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
        check_range(
            p,
            "blocking.max_decisions_per_minute",
            b.max_decisions_per_minute,
            1..=10_000,
            "decisions per minute",
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
                let clash = metrics_listen.parse::<SocketAddr>().is_ok_and(|m| {
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
        super::metrics::source_nets("blocking.feed_allow_from", &b.feed_allow_from, p)
    }
}

fn ip_or_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{paths, problems_with};

    #[test]
    fn blocking_problems_named_by_key() {
        let p = problems_with(
            "capture: {home_net: [192.168.0.0/16]}\nblocking:\n  enabled: true\n  \
             categories: [x, x, '']\n  reputation_min_score: 0\n  ttl_secs: 5\n  \
             max_decisions_per_minute: 0\n  \
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
                "blocking.max_decisions_per_minute",
                "blocking.allowlist[1]",
                "blocking.allow_home_net[1]",
                "blocking.feed_listen",
            ],
            "{p:#?}"
        );
        let p = problems_with("blocking: {reputation_min_score: 50}\n");
        assert_eq!(paths(&p), ["blocking.reputation_min_score"], "{p:#?}");
        assert!(p[0].message.contains("repeat_offenders"));
        let p = problems_with("blocking: {enabled: true, feed_listen: 9102}\n");
        assert_eq!(paths(&p), ["blocking.feed_listen"], "{p:#?}");
    }
}
