//! Reachability of what the sensor ships to: DNS for the configured names and the OpenSearch
//! host ([`dns`]), a verified TLS handshake with certificate expiry ([`tls`]), and OpenSearch
//! `_cluster/health` signed as Vector signs its requests ([`opensearch`]). Each check's result
//! and latency go to the metrics; a failing target is re-checked with backoff; a change of
//! state is logged once, not every round.

pub mod dns;
pub mod opensearch;
pub mod tls;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::supervisor::{Shutdown, TaskError};

pub use dns::{DnsChecker, DnsReport};
pub use opensearch::{OpenSearchChecker, OpenSearchReport};
pub use tls::{TlsChecker, TlsFailure, TlsReport};

/// Why a checker could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectivityError {
    /// The resolver configuration (resolv.conf) could not be read.
    #[error("DNS resolver: {0}")]
    Dns(String),
    /// An extra CA certificate was unusable.
    #[error("extra CA certificate: {0} (expected PEM certificates)")]
    Ca(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
}

/// One thing to check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Resolve a name.
    Dns(String),
    /// Handshake with `host:port`.
    Tls(String, u16),
    /// Cluster health of the endpoint.
    OpenSearch(String),
}

impl Target {
    /// The `check` label.
    pub fn check(&self) -> &'static str {
        match self {
            Target::Dns(_) => "dns",
            Target::Tls(..) => "tls",
            Target::OpenSearch(_) => "opensearch",
        }
    }

    /// The `target` label.
    pub fn label(&self) -> String {
        match self {
            Target::Dns(n) => n.clone(),
            Target::Tls(h, p) => format!("{h}:{p}"),
            Target::OpenSearch(u) => u.clone(),
        }
    }
}

/// The targets the settings ask for: the OpenSearch host (DNS, TLS on 443, health) when an
/// endpoint is set, plus `connectivity.dns_names` and `connectivity.tls_targets`.
pub fn targets(settings: &Settings) -> Vec<Target> {
    let mut t = Vec::new();
    if let Some(host) = &settings.opensearch_host {
        t.push(Target::Dns(host.clone()));
    }
    for n in &settings.config.connectivity.dns_names {
        if !t.contains(&Target::Dns(n.clone())) {
            t.push(Target::Dns(n.clone()));
        }
    }
    if let (Some(host), Some(ep)) = (
        &settings.opensearch_host,
        &settings.config.opensearch.endpoint,
    ) {
        // A plain-http endpoint (validation allows it only to loopback) has no TLS to check.
        if let Some(rest) = ep.strip_prefix("https://") {
            let port = rest
                .split('/')
                .next()
                .and_then(|hp| hp.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(443);
            t.push(Target::Tls(host.clone(), port));
        }
        t.push(Target::OpenSearch(ep.clone()));
    }
    for hp in &settings.tls_targets {
        let tt = Target::Tls(hp.host.clone(), hp.port);
        if !t.contains(&tt) {
            t.push(tt);
        }
    }
    t
}

/// Outcome of one check, in the shape the loop needs.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Ok, or why not.
    pub result: Result<(), String>,
    /// Time taken.
    pub latency: Duration,
    /// For TLS: seconds until expiry.
    pub expires_in_secs: Option<i64>,
}

/// Runs the checks.
pub struct Checkers {
    /// DNS.
    pub dns: DnsChecker,
    /// TLS.
    pub tls: TlsChecker,
    /// OpenSearch health, when an endpoint is set.
    pub opensearch: Option<OpenSearchChecker>,
    /// Per-check timeout.
    pub timeout: Duration,
}

impl Checkers {
    /// The checkers for `settings`: the system resolver, webpki roots, the endpoint's auth.
    pub fn for_settings(settings: &Settings) -> Result<Self, ConnectivityError> {
        let timeout = Duration::from_secs(settings.config.connectivity.timeout_secs.into());
        let opensearch = match &settings.config.opensearch.endpoint {
            Some(ep) => Some(OpenSearchChecker::new(
                ep,
                &settings.config.opensearch.region,
                settings.auth.clone(),
                timeout,
                None,
            )?),
            None => None,
        };
        Ok(Self {
            dns: DnsChecker::system(timeout)?,
            tls: TlsChecker::new(None)?,
            opensearch,
            timeout,
        })
    }

    /// Runs one check.
    pub async fn run(&self, target: &Target) -> Outcome {
        let bounded = self.timeout + Duration::from_secs(1);
        let outcome = async {
            match target {
                Target::Dns(name) => {
                    let r = self.dns.check(name).await;
                    Outcome {
                        result: r.result.map(drop),
                        latency: r.latency,
                        expires_in_secs: None,
                    }
                }
                Target::Tls(host, port) => {
                    let r = self.tls.check(host, *port, None, self.timeout).await;
                    Outcome {
                        result: r.result.map_err(|e| e.to_string()),
                        latency: r.latency,
                        expires_in_secs: r.expires_in_secs,
                    }
                }
                Target::OpenSearch(_) => match &self.opensearch {
                    Some(os) => {
                        let r = os.check().await;
                        Outcome {
                            result: r.result.map(drop),
                            latency: r.latency,
                            expires_in_secs: None,
                        }
                    }
                    None => Outcome {
                        result: Err("no opensearch.endpoint configured".into()),
                        latency: Duration::ZERO,
                        expires_in_secs: None,
                    },
                },
            }
        };
        // Every check has its own timeout; this bounds anything that ignores it.
        tokio::time::timeout(bounded, outcome)
            .await
            .unwrap_or(Outcome {
                result: Err("timed out".into()),
                latency: bounded,
                expires_in_secs: None,
            })
    }
}

#[derive(Debug, Default)]
struct TargetState {
    up: Option<bool>,
    failures: u32,
    next_due: Option<Instant>,
}

/// The check loop, run as a supervised task.
pub struct Connectivity {
    /// What to check.
    pub targets: Vec<Target>,
    /// How.
    pub checkers: Checkers,
    /// Where results go.
    pub metrics: Arc<Metrics>,
    /// Time between rounds for healthy targets.
    pub interval: Duration,
    /// Longest time between checks of a failing target.
    pub max_backoff: Duration,
}

impl Connectivity {
    /// Checks until shutdown.
    pub async fn run(&self, mut shutdown: Shutdown) -> Result<(), TaskError> {
        let mut states: HashMap<Target, TargetState> = HashMap::new();
        let tick = self
            .interval
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(100));
        loop {
            let now = Instant::now();
            let due: Vec<&Target> = self
                .targets
                .iter()
                .filter(|t| {
                    states
                        .get(*t)
                        .and_then(|s| s.next_due)
                        .is_none_or(|d| d <= now)
                })
                .collect();
            let results = futures::future::join_all(due.iter().map(|t| self.checkers.run(t))).await;
            for (target, outcome) in due.into_iter().zip(results) {
                let state = states.entry(target.clone()).or_default();
                self.record(target, &outcome, state);
            }
            if !shutdown.sleep(tick).await {
                return Ok(());
            }
        }
    }

    fn record(&self, target: &Target, outcome: &Outcome, state: &mut TargetState) {
        let (check, label) = (target.check(), target.label());
        let labels = [check, label.as_str()];
        let up = outcome.result.is_ok();
        self.metrics
            .connectivity_up
            .set(&labels, if up { 1.0 } else { 0.0 });
        self.metrics
            .connectivity_latency
            .set(&labels, outcome.latency.as_secs_f64());
        if let Target::Tls(..) = target {
            match outcome.expires_in_secs {
                Some(s) => self.metrics.tls_expiry.set(&[&label], s as f64),
                None => self.metrics.tls_expiry.remove(&[&label]),
            }
        }
        if state.up != Some(up) {
            match &outcome.result {
                Ok(()) => tracing::info!(check, target = %label, "reachable"),
                Err(e) => tracing::warn!(check, target = %label, error = %e, "unreachable"),
            }
        }
        state.up = Some(up);
        state.failures = if up {
            0
        } else {
            state.failures.saturating_add(1)
        };
        state.next_due =
            Some(Instant::now() + next_delay(self.interval, self.max_backoff, state.failures));
    }
}

/// Delay before the next check: the interval while healthy; after `failures` consecutive
/// failures, interval × 2^(failures−1), capped at `max`.
pub fn next_delay(interval: Duration, max: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let factor = 1u32.checked_shl((failures - 1).min(16)).unwrap_or(u32::MAX);
    interval.saturating_mul(factor).min(max.max(interval))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn backoff_grows_for_failing_targets_only() {
        let i = Duration::from_secs(30);
        let m = Duration::from_secs(300);
        assert_eq!(next_delay(i, m, 0), i);
        assert_eq!(next_delay(i, m, 1), i);
        assert_eq!(next_delay(i, m, 2), Duration::from_secs(60));
        assert_eq!(next_delay(i, m, 3), Duration::from_secs(120));
        assert_eq!(next_delay(i, m, 10), m);
    }

    #[test]
    fn targets_from_settings() {
        let s = crate::config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1, \
             endpoint: 'https://search-x.eu-west-1.es.amazonaws.com'}\n\
             connectivity: {dns_names: [example.org], tls_targets: ['example.org:8443']}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let labels: Vec<_> = targets(&s).iter().map(|t| (t.check(), t.label())).collect();
        assert_eq!(
            labels,
            [
                ("dns", "search-x.eu-west-1.es.amazonaws.com".to_string()),
                ("dns", "example.org".to_string()),
                ("tls", "search-x.eu-west-1.es.amazonaws.com:443".to_string()),
                (
                    "opensearch",
                    "https://search-x.eu-west-1.es.amazonaws.com".to_string()
                ),
                ("tls", "example.org:8443".to_string()),
            ]
        );
        let local = crate::config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1, \
             endpoint: 'http://127.0.0.1:9200'}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let checks: Vec<_> = targets(&local).iter().map(|t| t.check()).collect();
        assert_eq!(
            checks,
            ["dns", "opensearch"],
            "no TLS to check on plain http"
        );
    }
}
