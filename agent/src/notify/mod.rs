//! Alert notifications: alerts at or above `notifications.min_severity` go to a webhook
//! (generic JSON or Slack-compatible) and/or e-mail (SMTP over TLS).
//!
//! The EVE reader hands alerts over with [`NotifyHandle::offer`], which never waits: the queue
//! is bounded and an alert that does not fit is counted in `ids2_notifications_dropped_total`
//! and logged. [`Notifier::run`] deduplicates, rate-limits (a token bucket; what it holds back
//! goes into a periodic digest) and hands each message to one delivery task per channel, which
//! retries with exponential backoff, so a slow or failing channel delays neither the other
//! channel nor the EVE reader.

mod alert;
mod email;
mod limit;
mod message;
mod webhook;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use alert::Alert;
pub use email::{compose as compose_email, EmailConfig};
pub use limit::{Admit, Digest, Limiter};
pub use message::{Message, Sensor};
pub use webhook::WebhookConfig;

use crate::config::{Settings, Severity, SmtpTls};

/// Messages waiting per channel while one is being delivered (with its retries).
const CHANNEL_QUEUE: usize = 64;
/// How long shutdown waits for messages still being delivered.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why notifications could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A secret file named in the config could not be read.
    #[error("cannot read {key} file {path} (check that it exists and the agent may read it)")]
    SecretFile {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A secret file is empty.
    #[error("{key} file {path} is empty: its first line must hold the value")]
    EmptySecret {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// The SMTP transport could not be configured (e.g. a bad CA file).
    #[error("cannot configure SMTP: {0} (check notifications.email.ca_file)")]
    Smtp(String),
    /// An e-mail address lettre does not accept.
    #[error("e-mail address {0:?} is not usable: {1}")]
    Address(String, String),
}

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The request did not complete (connect, TLS, timeout).
    #[error("webhook request failed: {0}")]
    Http(String),
    /// The webhook answered with a non-success status.
    #[error("webhook answered HTTP {status}")]
    Status {
        /// The status code.
        status: u16,
        /// True for 4xx other than 408 and 429: retrying will not help.
        permanent: bool,
    },
    /// The SMTP conversation failed.
    #[error("SMTP delivery failed: {message}")]
    Smtp {
        /// lettre's message.
        message: String,
        /// True for a 5xx reply.
        permanent: bool,
    },
}

impl DeliveryError {
    /// True when retrying cannot succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            DeliveryError::Status {
                permanent: true,
                ..
            } | DeliveryError::Smtp {
                permanent: true,
                ..
            }
        )
    }
}

/// A notification channel; the label of `ids2_notifications_*_total{channel}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// The webhook.
    Webhook,
    /// E-mail.
    Email,
}

impl ChannelKind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Email => "email",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const CHANNELS: [ChannelKind; 2] = [ChannelKind::Webhook, ChannelKind::Email];

/// One way of delivering a message.
pub(crate) trait Channel: Send + Sync + 'static {
    fn kind(&self) -> ChannelKind;
    fn send<'a>(&'a self, msg: &'a Message) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// Counters behind the notification metrics.
#[derive(Debug, Default)]
pub struct NotifyStats {
    sent: [AtomicU64; 2],
    failed: [AtomicU64; 2],
    dropped: AtomicU64,
    deduplicated: AtomicU64,
    rate_limited: AtomicU64,
}

impl NotifyStats {
    /// Messages delivered on `channel`.
    pub fn sent(&self, channel: ChannelKind) -> u64 {
        self.sent[channel.index()].load(Ordering::Relaxed)
    }

    /// Messages given up on `channel` (after the retries, or refused for good).
    pub fn failed(&self, channel: ChannelKind) -> u64 {
        self.failed[channel.index()].load(Ordering::Relaxed)
    }

    /// Alerts dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Alerts not sent because an identical one was sent within the dedupe window.
    pub fn deduplicated(&self) -> u64 {
        self.deduplicated.load(Ordering::Relaxed)
    }

    /// Alerts held back by the rate limit (summarised in a digest instead).
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// The families in Prometheus text format 0.0.4, for the agent's `/metrics`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let mut family = |name: &str, help: &str, values: &[(Option<&str>, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (label, v) in values {
                match label {
                    Some(l) => {
                        let _ = writeln!(out, "{name}{{channel=\"{l}\"}} {v}");
                    }
                    None => {
                        let _ = writeln!(out, "{name} {v}");
                    }
                }
            }
        };
        let per = |f: &dyn Fn(ChannelKind) -> u64| -> Vec<(Option<&'static str>, u64)> {
            CHANNELS.iter().map(|c| (Some(c.label()), f(*c))).collect()
        };
        family(
            "ids2_notifications_sent_total",
            "Notifications delivered, by channel.",
            &per(&|c| self.sent(c)),
        );
        family(
            "ids2_notifications_failed_total",
            "Notifications given up after retries or refused for good, by channel.",
            &per(&|c| self.failed(c)),
        );
        family(
            "ids2_notifications_dropped_total",
            "Alerts not notified because the notification queue was full.",
            &[(None, self.dropped())],
        );
        family(
            "ids2_notifications_deduplicated_total",
            "Alerts not notified because the same signature, source and destination was notified within the dedupe window.",
            &[(None, self.deduplicated())],
        );
        family(
            "ids2_notifications_rate_limited_total",
            "Alerts over the rate limit, summarised in a digest instead.",
            &[(None, self.rate_limited())],
        );
    }
}

/// Retry schedule: `attempts` tries, waiting `initial` × 2^n (capped at `max`) in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts per message, the first included.
    pub attempts: u32,
    /// Wait after the first failure.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Retry {
    /// Wait after failed attempt number `n` (0-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Everything the notifier needs, resolved from the settings (secret files read).
#[derive(Clone)]
pub struct NotifyConfig {
    /// Who is notifying.
    pub sensor: Sensor,
    /// Least severe alert notified.
    pub min_severity: Severity,
    /// Dedupe window (zero: no dedupe).
    pub dedupe_window: Duration,
    /// Token-bucket size.
    pub burst: u32,
    /// Token-bucket refill rate.
    pub rate_per_minute: u32,
    /// Time between digests.
    pub digest_interval: Duration,
    /// Alert queue length.
    pub queue_capacity: usize,
    /// Retry schedule.
    pub retry: Retry,
    /// The webhook channel.
    pub webhook: Option<WebhookConfig>,
    /// The e-mail channel.
    pub email: Option<EmailConfig>,
}

impl NotifyConfig {
    /// Resolves `notifications` from validated settings, reading the secret files it names.
    pub fn from_settings(settings: &Settings) -> Result<Self, NotifyError> {
        let c = &settings.config;
        let n = &c.notifications;
        let webhook = match &n.webhook {
            None => None,
            Some(w) => Some(WebhookConfig {
                url: match (&w.url, &w.url_file) {
                    (Some(url), _) => url.clone(),
                    // Validation guarantees one of them; an empty path fails the read clearly.
                    (None, file) => read_secret(
                        "notifications.webhook.url_file",
                        file.as_deref().unwrap_or(""),
                    )?,
                },
                format: w.format,
                bearer_token: w
                    .bearer_token_file
                    .as_deref()
                    .map(|f| read_secret("notifications.webhook.bearer_token_file", f))
                    .transpose()?,
                timeout: Duration::from_secs(w.timeout_secs.into()),
            }),
        };
        let email = match &n.email {
            None => None,
            Some(e) => Some(EmailConfig {
                host: e.smtp_host.clone(),
                port: e.smtp_port.unwrap_or(match e.tls {
                    SmtpTls::Starttls => 587,
                    SmtpTls::Implicit => 465,
                }),
                tls: e.tls,
                extra_ca_pem: e
                    .ca_file
                    .as_deref()
                    .map(|f| {
                        std::fs::read(f).map_err(|source| NotifyError::SecretFile {
                            key: "notifications.email.ca_file",
                            path: f.to_string(),
                            source,
                        })
                    })
                    .transpose()?,
                credentials: match (&e.username, &e.password_file) {
                    (Some(u), Some(f)) => Some((
                        u.clone(),
                        read_secret("notifications.email.password_file", f)?,
                    )),
                    _ => None,
                },
                from: e.from.clone(),
                to: e.to.clone(),
                timeout: Duration::from_secs(e.timeout_secs.into()),
            }),
        };
        Ok(Self {
            sensor: Sensor {
                id: c.sensor.id.clone(),
                name: c.sensor.name.clone().unwrap_or_else(|| c.sensor.id.clone()),
            },
            min_severity: n.min_severity,
            dedupe_window: Duration::from_secs(n.dedupe_window_secs.into()),
            burst: n.burst,
            rate_per_minute: n.rate_per_minute,
            digest_interval: Duration::from_secs(n.digest_interval_secs.into()),
            queue_capacity: n.queue_capacity as usize,
            retry: Retry {
                attempts: n.retry_attempts,
                initial: Duration::from_millis(n.retry_initial_ms.into()),
                max: Duration::from_secs(n.retry_max_secs.into()),
            },
            webhook,
            email,
        })
    }

    /// True when at least one channel is configured.
    pub fn is_enabled(&self) -> bool {
        self.webhook.is_some() || self.email.is_some()
    }
}

fn read_secret(key: &'static str, path: &str) -> Result<String, NotifyError> {
    crate::files::secret_first_line(Path::new(path))
        .map_err(|source| NotifyError::SecretFile {
            key,
            path: path.to_string(),
            source,
        })?
        .ok_or_else(|| NotifyError::EmptySecret {
            key,
            path: path.to_string(),
        })
}

/// What [`NotifyHandle::offer`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued for the notifier.
    Queued,
    /// Not an alert, or below the severity threshold.
    Ignored,
    /// The queue was full: counted and logged.
    Dropped,
}

/// The EVE reader's side: cheap to clone, never waits.
#[derive(Clone)]
pub struct NotifyHandle {
    tx: mpsc::Sender<Alert>,
    min_severity: Severity,
    stats: Arc<NotifyStats>,
}

impl NotifyHandle {
    /// Offers an EVE event (any type; only qualifying alerts are queued).
    pub fn offer(&self, event: &Value) -> Offer {
        match Alert::from_eve(event) {
            Some(a) => self.offer_alert(a),
            None => Offer::Ignored,
        }
    }

    /// Offers a raw EVE line (any type).
    pub fn offer_line(&self, line: &[u8]) -> Offer {
        match Alert::from_line(line) {
            Some(a) => self.offer_alert(a),
            None => Offer::Ignored,
        }
    }

    /// Offers a parsed alert.
    pub fn offer_alert(&self, alert: Alert) -> Offer {
        if !self.min_severity.admits(alert.severity) {
            return Offer::Ignored;
        }
        match self.tx.try_send(alert) {
            Ok(()) => Offer::Queued,
            Err(e) => {
                let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // Logged at powers of two so a flood cannot flood the journal too.
                if n.is_power_of_two() {
                    let a = e.into_inner();
                    tracing::warn!(
                        dropped_total = n,
                        signature_id = a.signature_id,
                        src_ip = %a.src_ip,
                        "notification queue full: alert not notified \
                         (see ids2_notifications_dropped_total)"
                    );
                }
                Offer::Dropped
            }
        }
    }
}

/// The notification task.
pub struct Notifier {
    config: NotifyConfig,
    channels: Vec<Arc<dyn Channel>>,
    rx: mpsc::Receiver<Alert>,
    stats: Arc<NotifyStats>,
}

impl Notifier {
    /// Builds the channels; returns the handle for the EVE reader and the task.
    pub fn new(
        config: NotifyConfig,
        stats: Arc<NotifyStats>,
    ) -> Result<(NotifyHandle, Notifier), NotifyError> {
        let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
        if let Some(w) = &config.webhook {
            channels.push(Arc::new(webhook::Webhook::new(
                w.clone(),
                config.sensor.clone(),
            )?));
        }
        if let Some(e) = &config.email {
            channels.push(Arc::new(email::Email::new(
                e.clone(),
                config.sensor.clone(),
            )?));
        }
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let handle = NotifyHandle {
            tx,
            min_severity: config.min_severity,
            stats: stats.clone(),
        };
        Ok((
            handle,
            Notifier {
                config,
                channels,
                rx,
                stats,
            },
        ))
    }

    /// Runs until `shutdown` resolves or every handle is dropped; then sends the pending
    /// digest and waits up to 5 s for deliveries in progress (what is left is counted failed).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let cfg = &self.config;
        let mut limiter = Limiter::new(
            cfg.dedupe_window,
            cfg.burst,
            cfg.rate_per_minute,
            Instant::now().into_std(),
        );
        let mut workers = tokio::task::JoinSet::new();
        let mut queues = Vec::new();
        for channel in &self.channels {
            let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
            let pending = Arc::new(AtomicU64::new(0));
            workers.spawn(deliver(
                channel.clone(),
                rx,
                cfg.retry,
                self.stats.clone(),
                pending.clone(),
            ));
            queues.push((channel.kind(), tx, pending));
        }
        let dispatch = |msg: Message| {
            for (kind, tx, pending) in &queues {
                pending.fetch_add(1, Ordering::Relaxed);
                if tx.try_send(msg.clone()).is_err() {
                    pending.fetch_sub(1, Ordering::Relaxed);
                    self.stats.failed[kind.index()].fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        channel = kind.label(),
                        "notification channel backlog full (it is failing or slow): \
                         message counted as failed"
                    );
                }
            }
        };
        let mut digest =
            tokio::time::interval_at(Instant::now() + cfg.digest_interval, cfg.digest_interval);
        digest.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                alert = self.rx.recv() => {
                    let Some(alert) = alert else { break };
                    match limiter.admit(&alert, Instant::now().into_std()) {
                        Admit::Send => dispatch(Message::Alert(alert)),
                        Admit::Duplicate => {
                            self.stats.deduplicated.fetch_add(1, Ordering::Relaxed);
                        }
                        Admit::Deferred => {
                            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                _ = digest.tick() => {
                    limiter.prune(Instant::now().into_std());
                    if let Some(d) = limiter.take_digest() {
                        tracing::info!(held_back = d.count, "sending notification digest");
                        dispatch(Message::Digest(d));
                    }
                }
                _ = &mut shutdown => break,
            }
        }
        if let Some(d) = limiter.take_digest() {
            dispatch(Message::Digest(d));
        }
        let pendings: Vec<_> = queues.iter().map(|(k, _, p)| (*k, p.clone())).collect();
        drop(queues);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            workers.abort_all();
            for (kind, pending) in pendings {
                let left = pending.load(Ordering::Relaxed);
                if left > 0 {
                    self.stats.failed[kind.index()].fetch_add(left, Ordering::Relaxed);
                    tracing::warn!(
                        channel = kind.label(),
                        messages = left,
                        "shutdown: notifications still undelivered were abandoned"
                    );
                }
            }
        }
    }
}

async fn deliver(
    channel: Arc<dyn Channel>,
    mut rx: mpsc::Receiver<Message>,
    retry: Retry,
    stats: Arc<NotifyStats>,
    pending: Arc<AtomicU64>,
) {
    let kind = channel.kind();
    while let Some(msg) = rx.recv().await {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match channel.send(&msg).await {
                Ok(()) => {
                    stats.sent[kind.index()].fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) if e.is_permanent() || attempt >= retry.attempts => {
                    stats.failed[kind.index()].fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(channel = kind.label(), attempts = attempt, error = %e,
                        "notification not delivered");
                    break;
                }
                Err(e) => {
                    let wait = retry.delay(attempt - 1);
                    tracing::debug!(channel = kind.label(), attempt, error = %e,
                        retry_in_ms = wait.as_millis() as u64, "notification attempt failed");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        pending.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_and_cap() {
        let r = Retry {
            attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        let d: Vec<u128> = (0..5).map(|n| r.delay(n).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn stats_render_all_families() {
        let s = NotifyStats::default();
        s.sent[ChannelKind::Email.index()].fetch_add(2, Ordering::Relaxed);
        let mut out = String::new();
        s.render(&mut out);
        assert!(out.contains("ids2_notifications_sent_total{channel=\"email\"} 2\n"));
        assert!(out.contains("ids2_notifications_failed_total{channel=\"webhook\"} 0\n"));
        assert!(out.contains("# TYPE ids2_notifications_dropped_total counter\n"));
    }
}
