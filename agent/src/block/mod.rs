//! Blocking (off by default): a policy turns alerts into time-limited block decisions,
//! published as an HTTP feed and, on inline sensors, enforced with an nftables set.
//!
//! The allowlist always wins: the default gateway, the sensor's own addresses, the management
//! targets, the OpenSearch endpoint's addresses, `blocking.allowlist`, and HOME_NET (except
//! `blocking.allow_home_net`) are never blocked; loopback and multicast neither. Every decision
//! is logged with the alert that caused it and ends after `blocking.ttl_secs`.
//!
//! Like notifications, the EVE reader offers alerts through a bounded queue that never waits
//! ([`BlockHandle::offer`]); [`Blocker::run`] owns the decisions.

mod allowlist;
mod feed;
mod nft;
mod policy;
mod table;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use allowlist::{ip_or_cidr, Allowed, Allowlist};
pub use nft::{Nft, NftError, SET_V4, SET_V6, TABLE};
pub use policy::{NoReputation, Policy, PolicyConfig, Reputation, Verdict};
pub use table::{Decision, Table};

use crate::config::{ManagementTarget, Settings};
use crate::listen::Limits;
use crate::notify::Alert;

/// How often expired decisions are swept (the feed hides them at once regardless).
const SWEEP: Duration = Duration::from_secs(1);
/// How often the allowlist entries found on the host are looked up again.
const REDISCOVER: Duration = Duration::from_secs(60);

/// Why blocking could not run.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The feed address is taken or not ours.
    #[error("cannot listen for the block feed on {addr} (set blocking.feed_listen to a free address:port)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The nftables table could not be installed.
    #[error("cannot install the nftables table inet {TABLE}")]
    Nft(#[source] NftError),
    /// A config value did not parse (settings not from validation).
    #[error("blocking.{key}: {value:?} is not valid; run check-config")]
    Invalid {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
    },
}

/// Counters behind the blocking metrics.
#[derive(Debug, Default)]
pub struct BlockStats {
    decisions: AtomicU64,
    blocked: AtomicU64,
    allowlisted: AtomicU64,
    dropped: AtomicU64,
    refused_full: AtomicU64,
    rate_limited: AtomicU64,
    nft_failures: AtomicU64,
}

impl BlockStats {
    /// Decisions made.
    pub fn decisions(&self) -> u64 {
        self.decisions.load(Ordering::Relaxed)
    }
    /// Addresses blocked now.
    pub fn blocked(&self) -> u64 {
        self.blocked.load(Ordering::Relaxed)
    }
    /// Qualifying alerts whose address was allowlisted.
    pub fn allowlisted(&self) -> u64 {
        self.allowlisted.load(Ordering::Relaxed)
    }
    /// Alerts dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// Decisions refused because `blocking.max_entries` addresses were blocked.
    pub fn refused_full(&self) -> u64 {
        self.refused_full.load(Ordering::Relaxed)
    }
    /// Decisions refused by `blocking.max_decisions_per_minute`.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// The families in Prometheus text format 0.0.4, for the agent's `/metrics`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        for (name, kind, help, v) in [
            (
                "ids2_block_decisions_total",
                "counter",
                "Block decisions made.",
                self.decisions(),
            ),
            (
                "ids2_blocked_addresses",
                "gauge",
                "Addresses currently blocked.",
                self.blocked(),
            ),
            (
                "ids2_block_allowlisted_total",
                "counter",
                "Qualifying alerts not acted on because their address is allowlisted.",
                self.allowlisted(),
            ),
            (
                "ids2_block_alerts_dropped_total",
                "counter",
                "Alerts not considered for blocking because the queue was full.",
                self.dropped(),
            ),
            (
                "ids2_block_refused_full_total",
                "counter",
                "Decisions refused because blocking.max_entries addresses were already blocked.",
                self.refused_full(),
            ),
            (
                "ids2_block_rate_limited_total",
                "counter",
                "Decisions refused because blocking.max_decisions_per_minute were already made.",
                self.rate_limited(),
            ),
            (
                "ids2_block_nft_failures_total",
                "counter",
                "nft runs that failed (the decision stays in the feed).",
                self.nft_failures.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

/// Everything the blocker needs, resolved from the settings.
#[derive(Debug, Clone)]
pub struct BlockConfig {
    /// The policy.
    pub policy: PolicyConfig,
    /// Fixed allowlist (HOME_NET, configured CIDRs, management target addresses).
    pub allowlist: Allowlist,
    /// Decision lifetime.
    pub ttl: Duration,
    /// Most addresses blocked at once.
    pub max_entries: usize,
    /// Feed address.
    pub feed_listen: SocketAddr,
    /// Who may fetch the feed, and the feed's connection limits.
    pub feed_limits: Limits,
    /// Most new decisions per minute (a token bucket holding a minute's worth).
    pub max_decisions_per_minute: u32,
    /// Local enforcement, when on.
    pub nft: Option<Nft>,
    /// Look up the default gateway and own addresses (rtnetlink) for the allowlist.
    pub discover_host: bool,
    /// Host names whose addresses are allowlisted (the OpenSearch endpoint).
    pub allow_hosts: Vec<String>,
    /// Alert queue length.
    pub queue_capacity: usize,
}

impl BlockConfig {
    /// Resolves `blocking` from validated settings; `None` when blocking is off.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, BlockError> {
        let b = &settings.config.blocking;
        if !b.enabled {
            return Ok(None);
        }
        let nets = |key: &'static str, list: &[String]| {
            list.iter()
                .map(|s| {
                    ip_or_cidr(s).ok_or_else(|| BlockError::Invalid {
                        key,
                        value: s.clone(),
                    })
                })
                .collect::<Result<Vec<IpNet>, _>>()
        };
        let mut fixed: Vec<(IpNet, String)> = nets("allowlist", &b.allowlist)?
            .into_iter()
            .map(|n| (n, "blocking.allowlist".to_string()))
            .collect();
        for t in &settings.management_targets {
            let ip = match t {
                ManagementTarget::Host(ip) => *ip,
                ManagementTarget::Tcp(sa) => sa.ip(),
                // Found on the host at run time with the other discovered entries.
                ManagementTarget::Gateway => continue,
            };
            fixed.push((IpNet::from(ip), "network.management_targets".into()));
        }
        let feed_listen = b.feed_listen.parse().map_err(|_| BlockError::Invalid {
            key: "feed_listen",
            value: b.feed_listen.clone(),
        })?;
        Ok(Some(Self {
            policy: PolicyConfig {
                min_severity: b.min_severity,
                categories: b.categories.clone(),
                repeat: b
                    .repeat_offenders
                    .as_ref()
                    .map(|r| (r.alerts, Duration::from_secs(r.window_secs.into()))),
                reputation_min_score: b.reputation_min_score,
                home_net: settings.home_net.clone(),
            },
            allowlist: Allowlist::new(
                settings.home_net.clone(),
                nets("allow_home_net", &b.allow_home_net)?,
                fixed,
            ),
            ttl: Duration::from_secs(b.ttl_secs.into()),
            max_entries: b.max_entries as usize,
            feed_listen,
            feed_limits: Limits::new(settings.feed_allow_from.clone()),
            max_decisions_per_minute: b.max_decisions_per_minute,
            nft: b.nftables.then(Nft::default),
            discover_host: true,
            allow_hosts: settings.opensearch_host.iter().cloned().collect(),
            queue_capacity: 1024,
        }))
    }
}

/// The EVE reader's side: cheap to clone, never waits.
#[derive(Clone)]
pub struct BlockHandle {
    tx: mpsc::Sender<Alert>,
    stats: Arc<BlockStats>,
}

impl BlockHandle {
    /// Offers an EVE event (any type; only alerts are queued).
    pub fn offer(&self, event: &Value) -> bool {
        Alert::from_eve(event).is_some_and(|a| self.offer_alert(a))
    }

    /// Offers a raw EVE line (any type).
    pub fn offer_line(&self, line: &[u8]) -> bool {
        Alert::from_line(line).is_some_and(|a| self.offer_alert(a))
    }

    /// Offers a parsed alert; false when it was dropped (queue full: counted and logged).
    pub fn offer_alert(&self, alert: Alert) -> bool {
        match self.tx.try_send(alert) {
            Ok(()) => true,
            Err(_) => {
                let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped_total = n,
                        "block queue full: alert not considered (see ids2_block_alerts_dropped_total)");
                }
                false
            }
        }
    }
}

/// The blocking task.
pub struct Blocker {
    config: BlockConfig,
    policy: Policy,
    allowlist: Allowlist,
    reputation: Arc<dyn Reputation>,
    table: Arc<Mutex<Table>>,
    rx: mpsc::Receiver<Alert>,
    listener: Option<TcpListener>,
    stats: Arc<BlockStats>,
    bucket: Bucket,
}

/// The decision rate limit: a token bucket holding a minute's worth of decisions, refilled
/// continuously.
#[derive(Debug)]
struct Bucket {
    per_minute: f64,
    tokens: f64,
    at: std::time::Instant,
}

impl Bucket {
    fn new(per_minute: u32, now: std::time::Instant) -> Self {
        let per_minute = f64::from(per_minute.max(1));
        Self {
            per_minute,
            tokens: per_minute,
            at: now,
        }
    }

    fn take(&mut self, now: std::time::Instant) -> bool {
        let minutes = now.saturating_duration_since(self.at).as_secs_f64() / 60.0;
        self.tokens = (self.tokens + minutes * self.per_minute).min(self.per_minute);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Blocker {
    /// The handle for the EVE reader and the task; `reputation` is the threat-intel seam
    /// ([`NoReputation`] until one exists).
    pub fn new(
        config: BlockConfig,
        reputation: Arc<dyn Reputation>,
        stats: Arc<BlockStats>,
    ) -> (BlockHandle, Blocker) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let handle = BlockHandle {
            tx,
            stats: stats.clone(),
        };
        let blocker = Blocker {
            bucket: Bucket::new(config.max_decisions_per_minute, Instant::now().into_std()),
            policy: Policy::new(config.policy.clone()),
            allowlist: config.allowlist.clone(),
            config,
            reputation,
            table: Arc::new(Mutex::new(Table::default())),
            rx,
            listener: None,
            stats,
        };
        (handle, blocker)
    }

    /// Binds the feed address now (rather than in [`Blocker::run`]); returns the bound
    /// address, which tells a caller listening on port 0 where the feed is.
    pub async fn bind_feed(&mut self) -> Result<SocketAddr, BlockError> {
        let addr = self.config.feed_listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BlockError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| BlockError::Bind { addr, source })?;
        self.listener = Some(listener);
        Ok(local)
    }

    /// Serves the feed, installs the nftables table when configured, and turns alerts into
    /// decisions until `shutdown` resolves or every handle is dropped. Decisions live in
    /// memory: a restart starts with an empty feed (and a fresh nftables table).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), BlockError> {
        let listener = match self.listener.take() {
            Some(l) => l,
            None => {
                self.bind_feed().await?;
                self.listener.take().expect("bound just now")
            }
        };
        if let Some(nft) = &self.config.nft {
            nft.install().await.map_err(BlockError::Nft)?;
            tracing::info!(table = TABLE, "nftables block table installed");
        }
        self.rediscover().await;
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(feed::serve(
            listener,
            self.config.feed_limits.clone(),
            self.table.clone(),
            stop_rx,
        ));
        let mut sweep = tokio::time::interval(SWEEP);
        let mut rediscover = tokio::time::interval_at(Instant::now() + REDISCOVER, REDISCOVER);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                alert = self.rx.recv() => match alert {
                    Some(a) => self.consider(a).await,
                    None => break,
                },
                _ = sweep.tick() => self.sweep(),
                _ = rediscover.tick() => self.rediscover().await,
                _ = &mut shutdown => break,
            }
        }
        let _ = stop_tx.send(true);
        let _ = server.await;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn consider(&mut self, alert: Alert) {
        let now = Instant::now().into_std();
        let (address, reason) = match self.policy.consider(
            &alert,
            &self.allowlist,
            self.reputation.as_ref(),
            now,
        ) {
            Verdict::NotCounted | Verdict::Counted { .. } => return,
            Verdict::Allowlisted(address, why) => {
                let n = self.stats.allowlisted.fetch_add(1, Ordering::Relaxed) + 1;
                // At powers of two: spoofed sources inside HOME_NET cannot flood the journal.
                if n.is_power_of_two() {
                    tracing::info!(%address, signature_id = alert.signature_id, allowed = %why,
                        allowlisted_total = n,
                        "alert matches the block policy but the address is allowlisted: not blocked");
                }
                return;
            }
            Verdict::Block { address, reason } => (address, reason),
        };
        {
            // The table's own lock, not `self.lock()`: the rate limit below needs `self.bucket`.
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            if table.is_blocked(address, now) {
                return;
            }
            if table.len(now) >= self.config.max_entries {
                drop(table);
                let n = self.stats.refused_full.fetch_add(1, Ordering::Relaxed) + 1;
                // Logged at powers of two: a flood of spoofed sources cannot flood the journal.
                if n.is_power_of_two() {
                    tracing::warn!(%address, max_entries = self.config.max_entries, refused_total = n,
                        "block decision refused: blocking.max_entries addresses already blocked \
                         (see ids2_block_refused_full_total)");
                }
                return;
            }
            if !self.bucket.take(now) {
                drop(table);
                let n = self.stats.rate_limited.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(%address, max_decisions_per_minute = self.config.max_decisions_per_minute,
                        refused_total = n,
                        "block decision refused: blocking.max_decisions_per_minute reached \
                         (see ids2_block_rate_limited_total)");
                }
                return;
            }
            let d = table.insert(
                address,
                reason.clone(),
                alert.event.clone(),
                self.config.ttl,
                now,
            );
            tracing::warn!(
                target: "ids2::block",
                %address,
                reason = %reason,
                ttl_secs = self.config.ttl.as_secs(),
                expires_at = %d.expires_at,
                alert = %d.alert,
                "block decision"
            );
            self.stats.decisions.fetch_add(1, Ordering::Relaxed);
            self.stats
                .blocked
                .store(table.len(now) as u64, Ordering::Relaxed);
        }
        if let Some(nft) = &self.config.nft {
            if let Err(e) = nft.add(address, self.config.ttl).await {
                self.stats.nft_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%address, error = %e, "cannot add the address to the nftables set; \
                    it stays in the feed");
            }
        }
    }

    fn sweep(&self) {
        let now = Instant::now().into_std();
        let mut table = self.lock();
        for d in table.expire(now) {
            tracing::info!(target: "ids2::block", address = %d.address, reason = %d.reason,
                "block decision expired");
        }
        self.stats
            .blocked
            .store(table.len(now) as u64, Ordering::Relaxed);
    }

    /// Looks up the host's gateway, own addresses and the allowlisted host names again, and
    /// lifts decisions that the new allowlist covers. A lookup that fails keeps the entries
    /// it found last time.
    async fn rediscover(&mut self) {
        let mut found = self.allowlist.discovered().to_vec();
        if self.config.discover_host {
            match discover_host().await {
                Ok(entries) => {
                    found.retain(|(_, why)| !why.starts_with("host:"));
                    found.extend(entries);
                }
                Err(e) => tracing::warn!(error = %e,
                    "cannot read the gateway and own addresses for the block allowlist; \
                     keeping the last known ones"),
            }
        }
        for host in &self.config.allow_hosts {
            match tokio::net::lookup_host((host.as_str(), 443)).await {
                Ok(addrs) => {
                    let why = format!("name: {host}");
                    found.retain(|(_, w)| w != &why);
                    found.extend(addrs.map(|a| (IpNet::from(a.ip()), why.clone())));
                }
                Err(e) => tracing::warn!(%host, error = %e,
                    "cannot resolve an allowlisted host name; keeping its last known addresses"),
            }
        }
        found.sort();
        found.dedup();
        self.allowlist.set_discovered(found);
        let lifted: Vec<IpAddr> = {
            let mut table = self.lock();
            let now = Instant::now().into_std();
            let lifted: Vec<IpAddr> = table
                .addresses()
                .into_iter()
                .filter(|ip| self.allowlist.check(*ip).is_err())
                .collect();
            for ip in &lifted {
                table.remove(*ip);
            }
            self.stats
                .blocked
                .store(table.len(now) as u64, Ordering::Relaxed);
            lifted
        };
        for ip in lifted {
            tracing::warn!(address = %ip, "block lifted: the address is now allowlisted");
            if let Some(nft) = &self.config.nft {
                if let Err(e) = nft.remove(ip).await {
                    tracing::warn!(address = %ip, error = %e, "cannot remove the address from the nftables set");
                }
            }
        }
    }
}

/// The default gateway and this host's own addresses, over rtnetlink.
async fn discover_host() -> Result<Vec<(IpNet, String)>, crate::net::NetError> {
    let netlink = crate::net::Netlink::connect()?;
    let state = netlink.host_state().await?;
    let mut out = Vec::new();
    if let Some(g) = state.gateway {
        out.push((IpNet::from(g.address), "host: default gateway".to_string()));
    }
    for a in state.addresses {
        out.push((IpNet::from(a.address), "host: own address".to_string()));
    }
    Ok(out)
}
