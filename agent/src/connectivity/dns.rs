//! DNS resolution with hickory-resolver, using the system's resolv.conf or, as the seam,
//! one given name server.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use super::ConnectivityError;

/// The result of one lookup.
#[derive(Debug, Clone)]
pub struct DnsReport {
    /// The addresses, or why there are none.
    pub result: Result<Vec<IpAddr>, String>,
    /// Time taken.
    pub latency: Duration,
}

/// Resolves names.
#[derive(Clone)]
pub struct DnsChecker {
    resolver: TokioResolver,
}

impl DnsChecker {
    /// Uses `/etc/resolv.conf`.
    pub fn system(timeout: Duration) -> Result<Self, ConnectivityError> {
        let mut b =
            TokioResolver::builder_tokio().map_err(|e| ConnectivityError::Dns(e.to_string()))?;
        tune(b.options_mut(), timeout);
        Ok(Self {
            resolver: b
                .build()
                .map_err(|e| ConnectivityError::Dns(e.to_string()))?,
        })
    }

    /// Asks only `server` (UDP, then TCP for truncated answers).
    pub fn with_server(server: SocketAddr, timeout: Duration) -> Result<Self, ConnectivityError> {
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = server.port();
        let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
        let mut b = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        );
        tune(b.options_mut(), timeout);
        Ok(Self {
            resolver: b
                .build()
                .map_err(|e| ConnectivityError::Dns(e.to_string()))?,
        })
    }

    /// Resolves `name` to addresses.
    pub async fn check(&self, name: &str) -> DnsReport {
        let start = Instant::now();
        let result = match self.resolver.lookup_ip(name).await {
            Ok(l) => {
                let ips: Vec<IpAddr> = l.iter().collect();
                if ips.is_empty() {
                    Err(format!("{name}: no addresses"))
                } else {
                    Ok(ips)
                }
            }
            Err(e) if e.is_nx_domain() => Err(format!("{name}: no such domain (NXDOMAIN)")),
            Err(e) => Err(format!("{name}: {e}")),
        };
        DnsReport {
            result,
            latency: start.elapsed(),
        }
    }
}

fn tune(opts: &mut hickory_resolver::config::ResolverOpts, timeout: Duration) {
    opts.timeout = timeout;
    opts.attempts = 1;
    // A health check must ask the network each time, not answer from cache.
    opts.cache_size = 0;
}
