//! What an AWS OpenSearch endpoint URL tells us: its host, and for `*.es.amazonaws.com`
//! hosts the domain name and region, so operators need not repeat them.

/// The parts of an endpoint URL the commands use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` or `http`.
    pub scheme: String,
    /// Host name or address, without port.
    pub host: String,
    /// The URL without a trailing slash, e.g. `https://search-ids2-x.eu-west-1.es.amazonaws.com`.
    pub base: String,
}

impl Endpoint {
    /// Parses `scheme://host[:port][/]`; paths, queries and user info are refused.
    pub fn parse(url: &str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme != "https" && scheme != "http" {
            return None;
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '@', '?', '#', ' ']) {
            return None;
        }
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next()?.to_string()
        } else {
            authority.split(':').next()?.to_string()
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            scheme: scheme.to_string(),
            host,
            base: format!("{scheme}://{authority}"),
        })
    }

    /// True for hosts that only this machine can reach (tests, SSH tunnels).
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// For `search-<domain>-<id>.<region>.es.amazonaws.com` (or `vpc-…`): the domain and region.
    pub fn aws_domain_and_region(&self) -> Option<(String, String)> {
        let mut labels = self.host.split('.');
        let first = labels.next()?;
        let region = labels.next()?;
        let rest: Vec<&str> = labels.collect();
        if rest != ["es", "amazonaws", "com"] && rest != ["es", "amazonaws", "com", "cn"] {
            return None;
        }
        let named = first
            .strip_prefix("search-")
            .or_else(|| first.strip_prefix("vpc-"))?;
        let (domain, _id) = named.rsplit_once('-')?;
        (!domain.is_empty()).then(|| (domain.to_string(), region.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_endpoint_yields_domain_and_region() {
        let e = Endpoint::parse("https://search-ids2-lab-abc123def.eu-west-1.es.amazonaws.com/")
            .unwrap();
        assert_eq!(
            e.base,
            "https://search-ids2-lab-abc123def.eu-west-1.es.amazonaws.com"
        );
        assert_eq!(
            e.aws_domain_and_region(),
            Some(("ids2-lab".into(), "eu-west-1".into()))
        );
        assert!(!e.is_loopback());
    }

    #[test]
    fn other_hosts_and_bad_urls() {
        let e = Endpoint::parse("http://127.0.0.1:9200").unwrap();
        assert!(e.is_loopback());
        assert_eq!(e.aws_domain_and_region(), None);
        assert!(Endpoint::parse("https://[::1]:8443").unwrap().is_loopback());
        for bad in [
            "ftp://x",
            "https://",
            "https://u:p@host",
            "https://h/path",
            "host:9200",
        ] {
            assert_eq!(Endpoint::parse(bad), None, "{bad}");
        }
    }
}
