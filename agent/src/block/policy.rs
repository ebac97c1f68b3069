//! The block policy: which alerts count, against which address, and when they add up to a
//! decision. Pure: time and reputation come in as arguments.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::allowlist::{Allowed, Allowlist};
use crate::config::Severity;
use crate::notify::Alert;

/// Most addresses whose recent alerts are remembered for the repeat-offender rule.
const OFFENDERS_CAP: usize = 65_536;

/// The seam for threat intelligence: a reputation score (0–100, higher is worse) per
/// address, when one is known. Lookups must be cheap (a cache); they run for each alert.
pub trait Reputation: Send + Sync {
    /// The address's score, if known.
    fn score(&self, ip: IpAddr) -> Option<u8>;
}

/// No reputation source (the default until threat intelligence is configured).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReputation;

impl Reputation for NoReputation {
    fn score(&self, _ip: IpAddr) -> Option<u8> {
        None
    }
}

/// The policy's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Least severe alert that counts.
    pub min_severity: Severity,
    /// Categories that count; empty means any.
    pub categories: Vec<String>,
    /// (alerts, window): block after this many counting alerts within the window.
    pub repeat: Option<(u32, Duration)>,
    /// With `repeat`, a score at or above this blocks on the first counting alert.
    pub reputation_min_score: Option<u8>,
    /// HOME_NET, to pick the outside end of an alert.
    pub home_net: Vec<IpNet>,
}

/// What the policy made of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Below the severity threshold or not in a listed category.
    NotCounted,
    /// The address is allowlisted.
    Allowlisted(IpAddr, Allowed),
    /// Counted towards the repeat-offender threshold, not there yet.
    Counted {
        /// The address.
        address: IpAddr,
        /// Alerts within the window so far.
        seen: u32,
    },
    /// Block `address`.
    Block {
        /// The address.
        address: IpAddr,
        /// Why, in words, for the log and the JSON feed.
        reason: String,
    },
}

/// The policy with its memory of recent offenders.
#[derive(Debug)]
pub struct Policy {
    config: PolicyConfig,
    offenders: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Policy {
    /// A policy with no history.
    pub fn new(config: PolicyConfig) -> Self {
        Self {
            config,
            offenders: HashMap::new(),
        }
    }

    /// The address an alert is about: the attacker Suricata names (`alert.source`, from the
    /// rule's `target` keyword), else the end outside HOME_NET (the source when both are).
    pub fn target(&self, a: &Alert) -> IpAddr {
        if let Some(attacker) = a.attacker {
            return attacker;
        }
        let inside = |ip: &IpAddr| self.config.home_net.iter().any(|n| n.contains(ip));
        if inside(&a.src_ip) && !inside(&a.dest_ip) {
            a.dest_ip
        } else {
            a.src_ip
        }
    }

    /// Judges one alert.
    pub fn consider(
        &mut self,
        a: &Alert,
        allowlist: &Allowlist,
        reputation: &dyn Reputation,
        now: Instant,
    ) -> Verdict {
        let c = &self.config;
        if !c.min_severity.admits(a.severity)
            || (!c.categories.is_empty() && !c.categories.contains(&a.category))
        {
            return Verdict::NotCounted;
        }
        let address = self.target(a).to_canonical();
        if let Err(why) = allowlist.check(address) {
            return Verdict::Allowlisted(address, why);
        }
        let what = format!(
            "{} alert \"{}\" (sid {})",
            a.level().name(),
            a.signature,
            a.signature_id
        );
        let Some((needed, window)) = c.repeat else {
            return Verdict::Block {
                address,
                reason: what,
            };
        };
        if let (Some(min), Some(score)) = (c.reputation_min_score, reputation.score(address)) {
            if score >= min {
                self.offenders.remove(&address);
                return Verdict::Block {
                    address,
                    reason: format!("{what}; reputation score {score} ≥ {min}"),
                };
            }
        }
        if self.offenders.len() >= OFFENDERS_CAP && !self.offenders.contains_key(&address) {
            self.offenders.retain(|_, seen| {
                seen.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
        }
        let seen = self.offenders.entry(address).or_default();
        while seen
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            seen.pop_front();
        }
        seen.push_back(now);
        let n = seen.len() as u32;
        if n >= needed {
            self.offenders.remove(&address);
            Verdict::Block {
                address,
                reason: format!("{what}; {n} qualifying alerts within {}s", window.as_secs()),
            }
        } else {
            Verdict::Counted { address, seen: n }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(src: &str, dst: &str, severity: u64, category: &str) -> Alert {
        Alert::from_eve(&json!({"event_type":"alert","src_ip":src,"dest_ip":dst,
            "alert":{"signature_id":9,"signature":"S","category":category,"severity":severity}}))
        .unwrap()
    }

    fn cfg() -> PolicyConfig {
        PolicyConfig {
            min_severity: Severity::Medium,
            categories: vec![],
            repeat: None,
            reputation_min_score: None,
            home_net: vec!["192.168.0.0/16".parse().unwrap()],
        }
    }

    struct Scores(IpAddr, u8);
    impl Reputation for Scores {
        fn score(&self, ip: IpAddr) -> Option<u8> {
            (ip == self.0).then_some(self.1)
        }
    }

    #[test]
    fn severity_category_and_outside_end() {
        let allow = Allowlist::new(cfg().home_net, vec![], vec![]);
        let now = Instant::now();
        let mut p = Policy::new(PolicyConfig {
            categories: vec!["Trojan".into()],
            ..cfg()
        });
        assert_eq!(
            p.consider(
                &alert("203.0.113.5", "192.168.1.2", 3, "Trojan"),
                &allow,
                &NoReputation,
                now
            ),
            Verdict::NotCounted
        );
        assert_eq!(
            p.consider(
                &alert("203.0.113.5", "192.168.1.2", 1, "Other"),
                &allow,
                &NoReputation,
                now
            ),
            Verdict::NotCounted
        );
        // An inside host talking out: the outside end is the one blocked.
        match p.consider(
            &alert("192.168.1.2", "203.0.113.5", 2, "Trojan"),
            &allow,
            &NoReputation,
            now,
        ) {
            Verdict::Block { address, .. } => {
                assert_eq!(address, "203.0.113.5".parse::<IpAddr>().unwrap())
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            p.consider(
                &alert("192.168.1.2", "192.168.1.3", 1, "Trojan"),
                &allow,
                &NoReputation,
                now
            ),
            Verdict::Allowlisted(_, Allowed::HomeNet(_))
        ));
    }

    #[test]
    fn repeat_offenders_within_window_and_reputation_shortcut() {
        let allow = Allowlist::new(cfg().home_net, vec![], vec![]);
        let t0 = Instant::now();
        let mut p = Policy::new(PolicyConfig {
            repeat: Some((3, Duration::from_secs(60))),
            reputation_min_score: Some(80),
            ..cfg()
        });
        let a = alert("203.0.113.5", "192.168.1.2", 1, "x");
        let s = |secs| t0 + Duration::from_secs(secs);
        assert!(matches!(
            p.consider(&a, &allow, &NoReputation, s(0)),
            Verdict::Counted { seen: 1, .. }
        ));
        assert!(matches!(
            p.consider(&a, &allow, &NoReputation, s(30)),
            Verdict::Counted { seen: 2, .. }
        ));
        // The first alert left the window.
        assert!(matches!(
            p.consider(&a, &allow, &NoReputation, s(61)),
            Verdict::Counted { seen: 2, .. }
        ));
        assert!(matches!(
            p.consider(&a, &allow, &NoReputation, s(62)),
            Verdict::Block { .. }
        ));
        let bad: IpAddr = "198.51.100.9".parse().unwrap();
        let b = alert("198.51.100.9", "192.168.1.2", 1, "x");
        assert!(matches!(
            p.consider(&b, &allow, &Scores(bad, 79), s(0)),
            Verdict::Counted { .. }
        ));
        match p.consider(&b, &allow, &Scores(bad, 80), s(1)) {
            Verdict::Block { reason, .. } => {
                assert!(reason.contains("reputation score 80"), "{reason}")
            }
            v => panic!("{v:?}"),
        }
    }
}
