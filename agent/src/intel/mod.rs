//! Threat intelligence (off until `enrichment.abuseipdb` is set): the public source and
//! destination addresses of alerts are checked against AbuseIPDB, cached for
//! `cache_ttl_secs`, within `daily_quota` checks per UTC day and whatever AbuseIPDB's own
//! rate-limit headers allow. Results go to the reputation table (CSV, written atomically)
//! that Vector joins into shipped alerts as `threat.enrichments`; Vector reads a file table
//! when it reloads, so the agent reloads it after a change, at most once per
//! `reload_min_interval_secs`. The same cache is the blocking policy's [`Reputation`].
//!
//! Only globally routable addresses ([`crate::render::is_public`]) are ever sent.

mod client;
pub mod feeds;
mod quota;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

pub use client::{CheckError, Client, RateLimit, Report};
pub use quota::Quota;

use crate::block::Reputation;
use crate::config::Settings;
use crate::notify::Alert;
use crate::pipeline::BoxFuture;
use crate::render::{is_public, REPUTATION_COLUMNS};

/// Most addresses kept in the cache (and the table); the oldest checks go first.
const CACHE_CAP: usize = 50_000;
/// Addresses waiting to be checked; when full, further ones are counted and skipped (the next
/// alert from the same address offers it again).
const QUEUE: usize = 1024;
/// How often a pending table change is considered for a Vector reload.
const TICK: Duration = Duration::from_secs(1);

/// Why threat intelligence could not start.
#[derive(Debug, thiserror::Error)]
pub enum IntelError {
    /// The API key file could not be read.
    #[error("cannot read enrichment.abuseipdb.api_key_file {path}")]
    KeyFile {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The API key file is empty.
    #[error("enrichment.abuseipdb.api_key_file {path} is empty: its first line must be the key")]
    EmptyKey {
        /// The file.
        path: String,
    },
    /// The HTTP client could not be built (TLS roots).
    #[error("cannot set up the AbuseIPDB HTTP client")]
    Client(#[source] reqwest::Error),
    /// The reputation table could not be written.
    #[error("cannot write the reputation table {path} (enrichment.abuseipdb.table_path)")]
    Table {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Everything threat intelligence needs, resolved from the settings (key file read).
#[derive(Debug, Clone)]
pub struct IntelConfig {
    /// The API client.
    pub client: Client,
    /// `maxAgeInDays`.
    pub max_age_days: u32,
    /// Checks per UTC day.
    pub daily_quota: u32,
    /// How long a result is reused.
    pub cache_ttl: Duration,
    /// The reputation table.
    pub table_path: PathBuf,
    /// Least time between two Vector reloads.
    pub reload_min_interval: Duration,
}

impl IntelConfig {
    /// Resolves `enrichment.abuseipdb`; `None` when it is not configured.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, IntelError> {
        let Some(a) = &settings.config.enrichment.abuseipdb else {
            return Ok(None);
        };
        let key = crate::files::secret_first_line(Path::new(&a.api_key_file))
            .map_err(|source| IntelError::KeyFile {
                path: a.api_key_file.clone(),
                source,
            })?
            .ok_or_else(|| IntelError::EmptyKey {
                path: a.api_key_file.clone(),
            })?;
        let client = Client::new(&a.base_url, key, Duration::from_secs(a.timeout_secs.into()))
            .map_err(IntelError::Client)?;
        Ok(Some(Self {
            client,
            max_age_days: a.max_age_days,
            daily_quota: a.daily_quota,
            cache_ttl: Duration::from_secs(a.cache_ttl_secs.into()),
            table_path: PathBuf::from(&a.table_path),
            reload_min_interval: Duration::from_secs(a.reload_min_interval_secs.into()),
        }))
    }
}

/// Counters and gauges behind the threat-intelligence metrics.
#[derive(Debug, Default)]
pub struct IntelStats {
    checks_ok: AtomicU64,
    checks_failed: AtomicU64,
    rate_limited: AtomicU64,
    skipped_quota: AtomicU64,
    skipped_queue: AtomicU64,
    cache_hits: AtomicU64,
    reloads: AtomicU64,
    quota_remaining: AtomicU64,
    cached: AtomicU64,
}

impl IntelStats {
    /// Successful checks.
    pub fn checks_ok(&self) -> u64 {
        self.checks_ok.load(Ordering::Relaxed)
    }
    /// Checks that failed (transport, status, decode, key).
    pub fn checks_failed(&self) -> u64 {
        self.checks_failed.load(Ordering::Relaxed)
    }
    /// 429 answers.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }
    /// Addresses not checked because the quota (ours or AbuseIPDB's) was spent.
    pub fn skipped_quota(&self) -> u64 {
        self.skipped_quota.load(Ordering::Relaxed)
    }
    /// Vector reloads asked for after a table change.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Appends the Prometheus families.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP ids2_intel_checks_total AbuseIPDB checks, by result.\n\
             # TYPE ids2_intel_checks_total counter\n\
             ids2_intel_checks_total{{result=\"ok\"}} {}\n\
             ids2_intel_checks_total{{result=\"failed\"}} {}\n\
             ids2_intel_checks_total{{result=\"rate_limited\"}} {}",
            get(&self.checks_ok),
            get(&self.checks_failed),
            get(&self.rate_limited)
        );
        let _ = writeln!(
            out,
            "# HELP ids2_intel_skipped_total Addresses of alerts not checked, by reason.\n\
             # TYPE ids2_intel_skipped_total counter\n\
             ids2_intel_skipped_total{{reason=\"quota\"}} {}\n\
             ids2_intel_skipped_total{{reason=\"queue_full\"}} {}",
            get(&self.skipped_quota),
            get(&self.skipped_queue)
        );
        let _ = writeln!(
            out,
            "# HELP ids2_intel_cache_hits_total Alert addresses answered from the cache.\n\
             # TYPE ids2_intel_cache_hits_total counter\n\
             ids2_intel_cache_hits_total {}\n\
             # HELP ids2_intel_vector_reloads_total Vector reloads for a changed reputation table.\n\
             # TYPE ids2_intel_vector_reloads_total counter\n\
             ids2_intel_vector_reloads_total {}\n\
             # HELP ids2_intel_quota_remaining Checks left today (the lower of ours and AbuseIPDB's).\n\
             # TYPE ids2_intel_quota_remaining gauge\n\
             ids2_intel_quota_remaining {}\n\
             # HELP ids2_intel_cached_addresses Addresses in the reputation cache and table.\n\
             # TYPE ids2_intel_cached_addresses gauge\n\
             ids2_intel_cached_addresses {}",
            get(&self.cache_hits),
            get(&self.reloads),
            get(&self.quota_remaining),
            get(&self.cached)
        );
    }
}

#[derive(Debug, Clone)]
struct Entry {
    report: Report,
    checked: Instant,
    checked_at: SystemTime,
}

/// The results so far, shared by the checker, the EVE reader's handle and the blocker.
#[derive(Debug, Default)]
pub struct Cache {
    ttl: Duration,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl Cache {
    /// An empty cache whose results are fresh for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `ip` has a result younger than the TTL at `now`.
    pub fn is_fresh(&self, ip: IpAddr, now: Instant) -> bool {
        self.lock()
            .get(&ip)
            .is_some_and(|e| now.saturating_duration_since(e.checked) < self.ttl)
    }

    /// The last result for `ip`, fresh or not.
    pub fn get(&self, ip: IpAddr) -> Option<Report> {
        self.lock().get(&ip).map(|e| e.report.clone())
    }

    /// Records a result checked at `now`, evicting the oldest beyond the cap.
    pub fn insert(&self, report: Report, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= CACHE_CAP && !entries.contains_key(&report.ip) {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.checked)
                .map(|(ip, _)| *ip)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            report.ip,
            Entry {
                report,
                checked: now,
                checked_at: SystemTime::now(),
            },
        );
    }

    /// Number of addresses held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The table's CSV text: the header of [`REPUTATION_COLUMNS`], one row per address, sorted.
    pub fn to_csv(&self) -> Vec<u8> {
        let entries = self.lock();
        let mut rows: Vec<&Entry> = entries.values().collect();
        rows.sort_by_key(|e| e.report.ip);
        let mut w = csv::Writer::from_writer(Vec::new());
        let header: Vec<&str> = REPUTATION_COLUMNS.iter().map(|(c, _)| *c).collect();
        // Writing to a Vec cannot fail.
        let _ = w.write_record(&header);
        for e in rows {
            let r = &e.report;
            let kind = if r.ip.is_ipv4() {
                "ipv4-addr"
            } else {
                "ipv6-addr"
            };
            let checked_at = time::OffsetDateTime::from(e.checked_at)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let _ = w.write_record([
                r.ip.to_string().as_str(),
                kind,
                r.score.to_string().as_str(),
                r.total_reports.to_string().as_str(),
                r.country_code.as_deref().unwrap_or(""),
                r.isp.as_deref().unwrap_or(""),
                r.usage_type.as_deref().unwrap_or(""),
                r.last_reported_at.as_deref().unwrap_or(""),
                checked_at.as_str(),
            ]);
        }
        w.into_inner().unwrap_or_default()
    }
}

impl Reputation for Cache {
    fn score(&self, ip: IpAddr) -> Option<u8> {
        self.lock().get(&ip).map(|e| e.report.score)
    }
}

/// Writes the table atomically ([`crate::files::write_atomic`]), so Vector never reads a
/// half-written table.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IntelError> {
    crate::files::write_atomic(path, bytes).map_err(|source| IntelError::Table {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates the table with its header only when it does not exist, so Vector, which refuses to
/// start on a missing file table, can start before the first check.
pub fn ensure_table(path: &Path) -> Result<(), IntelError> {
    if path.exists() {
        return Ok(());
    }
    write_atomic(path, &Cache::new(Duration::ZERO).to_csv())
}

/// Asks the pipeline to reload Vector (so it re-reads the table).
pub type ReloadVector = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The EVE reader's side: offers the public addresses of alerts; never waits.
#[derive(Clone)]
pub struct IntelHandle {
    tx: mpsc::Sender<IpAddr>,
    cache: Arc<Cache>,
    pending: Arc<Mutex<HashSet<IpAddr>>>,
    stats: Arc<IntelStats>,
}

impl IntelHandle {
    /// Queues the alert's public addresses that have no fresh result.
    pub fn offer_alert(&self, alert: &Alert) {
        for ip in [alert.src_ip, alert.dest_ip] {
            self.offer(ip);
        }
    }

    /// Queues one address unless it is not public, fresh in the cache, or already queued.
    pub fn offer(&self, ip: IpAddr) {
        if !is_public(ip) {
            return;
        }
        if self.cache.is_fresh(ip, Instant::now()) {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.insert(ip) {
            return;
        }
        if self.tx.try_send(ip).is_err() {
            pending.remove(&ip);
            self.stats.skipped_queue.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The checker: owns the quota, the client and the table file.
pub struct Intel {
    config: IntelConfig,
    cache: Arc<Cache>,
    stats: Arc<IntelStats>,
    quota: Quota,
    rx: mpsc::Receiver<IpAddr>,
    pending: Arc<Mutex<HashSet<IpAddr>>>,
    reload: ReloadVector,
    /// The table changed since Vector last reloaded.
    dirty: bool,
    last_reload: Option<Instant>,
}

impl Intel {
    /// The checker and the handle the EVE reader offers alerts to. `cache` is shared with the
    /// blocker (as its [`Reputation`]) and survives task restarts.
    pub fn new(
        config: IntelConfig,
        cache: Arc<Cache>,
        stats: Arc<IntelStats>,
        reload: ReloadVector,
    ) -> (IntelHandle, Self) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let pending = Arc::new(Mutex::new(HashSet::new()));
        let handle = IntelHandle {
            tx,
            cache: cache.clone(),
            pending: pending.clone(),
            stats: stats.clone(),
        };
        let quota = Quota::new(config.daily_quota);
        stats
            .quota_remaining
            .store(u64::from(config.daily_quota), Ordering::Relaxed);
        let intel = Self {
            config,
            cache,
            stats,
            quota,
            rx,
            pending,
            reload,
            dirty: false,
            last_reload: None,
        };
        (handle, intel)
    }

    /// Checks queued addresses until `shutdown` resolves; writes the table after each new
    /// result and reloads Vector at most once per `reload_min_interval`.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                ip = self.rx.recv() => {
                    let Some(ip) = ip else { break };
                    self.check(ip).await;
                }
                _ = tick.tick() => self.maybe_reload().await,
            }
        }
    }

    /// Checks one address (if it still needs it and the quota allows) and records the result.
    pub async fn check(&mut self, ip: IpAddr) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip);
        let now = Instant::now();
        if !is_public(ip) || self.cache.is_fresh(ip, now) {
            return;
        }
        if !self.quota.try_take(now, SystemTime::now()) {
            self.stats.skipped_quota.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let (result, limits) = self.config.client.check(ip, self.config.max_age_days).await;
        self.quota.observe(&limits, Instant::now());
        self.stats
            .quota_remaining
            .store(self.quota.remaining(SystemTime::now()), Ordering::Relaxed);
        match result {
            Ok(report) => {
                self.stats.checks_ok.fetch_add(1, Ordering::Relaxed);
                self.cache.insert(report, Instant::now());
                self.stats
                    .cached
                    .store(self.cache.len() as u64, Ordering::Relaxed);
                match write_atomic(&self.config.table_path, &self.cache.to_csv()) {
                    Ok(()) => self.dirty = true,
                    Err(e) => tracing::error!("{e}"),
                }
            }
            Err(CheckError::RateLimited { retry_after }) => {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                self.quota.back_off(retry_after, Instant::now());
                tracing::warn!(?retry_after, "AbuseIPDB rate limit: checks paused");
            }
            Err(e) => {
                self.stats.checks_failed.fetch_add(1, Ordering::Relaxed);
                if let CheckError::Unauthorized { .. } = e {
                    // A bad key stays bad: stop spending requests on it for an hour.
                    self.quota
                        .back_off(Duration::from_secs(3600), Instant::now());
                }
                tracing::warn!(%ip, "{e}");
            }
        }
    }

    /// Reloads Vector when the table changed and the last reload is old enough.
    pub async fn maybe_reload(&mut self) {
        if !self.dirty {
            return;
        }
        let now = Instant::now();
        if self
            .last_reload
            .is_some_and(|t| now.saturating_duration_since(t) < self.config.reload_min_interval)
        {
            return;
        }
        self.dirty = false;
        self.last_reload = Some(now);
        self.stats.reloads.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = (self.reload)().await {
            tracing::warn!("reloading Vector for the reputation table: {e}");
        }
    }
}
