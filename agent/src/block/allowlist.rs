//! Addresses that are never blocked. The allowlist is checked before anything else and no
//! policy setting can override it.

use std::net::IpAddr;

use ipnet::IpNet;

/// Why an address may not be blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// Loopback, unspecified, multicast or broadcast: blocking them is never meaningful.
    Special,
    /// Inside HOME_NET and not in `blocking.allow_home_net`.
    HomeNet(IpNet),
    /// Listed for a reason (`blocking.allowlist`, a management target, the gateway, …).
    Listed(IpNet, String),
}

impl std::fmt::Display for Allowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Allowed::Special => f.write_str("loopback/multicast/unspecified address"),
            Allowed::HomeNet(n) => write!(f, "inside HOME_NET {n} (see blocking.allow_home_net)"),
            Allowed::Listed(n, why) => write!(f, "{n} is allowlisted: {why}"),
        }
    }
}

/// The allowlist: fixed entries from the config plus entries found on the host at run time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    home_net: Vec<IpNet>,
    allow_home_net: Vec<IpNet>,
    fixed: Vec<(IpNet, String)>,
    discovered: Vec<(IpNet, String)>,
}

/// Parses `a.b.c.d`, `a.b.c.d/n` or the IPv6 forms.
pub fn ip_or_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

impl Allowlist {
    /// An allowlist protecting `home_net` except `allow_home_net`, plus `fixed` entries.
    pub fn new(
        home_net: Vec<IpNet>,
        allow_home_net: Vec<IpNet>,
        fixed: Vec<(IpNet, String)>,
    ) -> Self {
        Self {
            home_net,
            allow_home_net,
            fixed,
            discovered: Vec::new(),
        }
    }

    /// Replaces the entries found on the host (gateway, own addresses, resolved names).
    pub fn set_discovered(&mut self, discovered: Vec<(IpNet, String)>) {
        self.discovered = discovered;
    }

    /// The entries found on the host.
    pub fn discovered(&self) -> &[(IpNet, String)] {
        &self.discovered
    }

    /// `Ok` when `ip` may be blocked, else why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), Allowed> {
        let ip = ip.to_canonical();
        let special = ip.is_loopback()
            || ip.is_unspecified()
            || ip.is_multicast()
            || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        if special {
            return Err(Allowed::Special);
        }
        if let Some((net, why)) = self
            .fixed
            .iter()
            .chain(&self.discovered)
            .find(|(net, _)| net.contains(&ip))
        {
            return Err(Allowed::Listed(*net, why.clone()));
        }
        if let Some(home) = self.home_net.iter().find(|n| n.contains(&ip)) {
            if !self.allow_home_net.iter().any(|n| n.contains(&ip)) {
                return Err(Allowed::HomeNet(*home));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        ip_or_cidr(s).unwrap()
    }

    #[test]
    fn home_net_protected_unless_excepted_and_listed_always_wins() {
        let mut a = Allowlist::new(
            vec![net("192.168.0.0/16")],
            vec![net("192.168.50.0/24")],
            vec![(net("192.168.50.7"), "management target".into())],
        );
        a.set_discovered(vec![(net("203.0.113.1"), "default gateway".into())]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(matches!(
            a.check(ip("192.168.1.1")),
            Err(Allowed::HomeNet(_))
        ));
        assert_eq!(a.check(ip("192.168.50.8")), Ok(()));
        assert!(matches!(
            a.check(ip("192.168.50.7")),
            Err(Allowed::Listed(..))
        ));
        assert!(matches!(
            a.check(ip("203.0.113.1")),
            Err(Allowed::Listed(..))
        ));
        assert_eq!(a.check(ip("203.0.113.2")), Ok(()));
        for special in [
            "127.0.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "ff02::1",
        ] {
            assert_eq!(a.check(ip(special)), Err(Allowed::Special), "{special}");
        }
        // An IPv4-mapped IPv6 address is the IPv4 address.
        assert!(matches!(
            a.check(ip("::ffff:192.168.1.1")),
            Err(Allowed::HomeNet(_))
        ));
    }
}
