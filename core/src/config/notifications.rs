//! `notifications`: alert notifications by webhook and/or e-mail. Off until a channel is
//! configured.

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::schema::{none, Severity};
use super::validate::{check_abs_path, check_range, is_hostname, webhook_url_problem};

/// Alert notifications. Every alert at or above `min_severity` is sent to each configured
/// channel, once per signature, source and destination within `dedupe_window_secs`, at most
/// `burst` at once and `rate_per_minute` after that; alerts over the rate are summarised in
/// one digest every `digest_interval_secs`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    /// Least severe alert that is notified.
    #[serde(default = "default_notify_severity")]
    pub min_severity: Severity,
    /// Seconds during which the same signature between the same source and destination is
    /// notified only once.
    #[serde(default = "default_dedupe_window_secs")]
    pub dedupe_window_secs: u32,
    /// Notifications sent back to back before the rate limit applies (token-bucket size).
    #[serde(default = "default_notify_burst")]
    pub burst: u32,
    /// Sustained notifications per minute (token-bucket refill rate).
    #[serde(default = "default_rate_per_minute")]
    pub rate_per_minute: u32,
    /// Seconds between digests of the alerts the rate limit held back (sent only when some were).
    #[serde(default = "default_digest_interval_secs")]
    pub digest_interval_secs: u32,
    /// Alerts waiting to be processed; when full, further alerts are counted in
    /// `ids2_notifications_dropped_total` instead of slowing the EVE reader.
    #[serde(default = "default_notify_queue")]
    pub queue_capacity: u32,
    /// Delivery attempts per message and channel before it counts as failed.
    #[serde(default = "default_retry_attempts")]
    pub retry_attempts: u32,
    /// Wait before the first retry in milliseconds; doubled on each further retry.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u32,
    /// Longest wait between retries, in seconds.
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u32,
    /// HTTP webhook channel.
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// E-mail channel (SMTP over TLS).
    #[serde(default)]
    pub email: Option<Email>,
}

/// Payload shape of the webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// A JSON object with the alert's fields (`type`, `sensor`, `alert`, `source`, …).
    Generic,
    /// `{"text": "..."}`, accepted by Slack incoming webhooks and compatible chat tools.
    Slack,
}

/// The webhook channel. Exactly one of `url` and `url_file` is set; use `url_file` when the URL
/// itself is the secret (Slack incoming webhooks).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `https://…` URL posted to (plain `http://` only to a loopback address, e.g. a local relay).
    #[serde(default)]
    pub url: Option<String>,
    /// File whose first line is the URL.
    #[serde(default)]
    pub url_file: Option<String>,
    /// `generic` (default) or `slack`.
    #[serde(default = "default_webhook_format")]
    pub format: WebhookFormat,
    /// File whose first line is sent as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// Seconds one request may take.
    #[serde(default = "default_webhook_timeout_secs")]
    pub timeout_secs: u32,
}

/// How the SMTP connection is encrypted; there is no clear-text mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (submission, port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

/// The e-mail channel.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// SMTP server host name or address; the server's certificate must match it.
    pub smtp_host: String,
    /// SMTP port; defaults to 587 for `starttls` and 465 for `implicit`.
    #[serde(default)]
    pub smtp_port: Option<u16>,
    /// `starttls` (default) or `implicit`.
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    /// PEM file of an extra CA to trust for the server's certificate (a private relay);
    /// the public web roots are always trusted.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// SMTP user name; set together with `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// File whose first line is the SMTP password.
    #[serde(default)]
    pub password_file: Option<String>,
    /// Sender address.
    pub from: String,
    /// Recipient addresses.
    pub to: Vec<String>,
    /// Seconds one SMTP conversation may take.
    #[serde(default = "default_smtp_timeout_secs")]
    pub timeout_secs: u32,
}

super::schema::default_from_fns! {
    Notifications {
        min_severity: default_notify_severity, dedupe_window_secs: default_dedupe_window_secs,
        burst: default_notify_burst, rate_per_minute: default_rate_per_minute,
        digest_interval_secs: default_digest_interval_secs, queue_capacity: default_notify_queue,
        retry_attempts: default_retry_attempts, retry_initial_ms: default_retry_initial_ms,
        retry_max_secs: default_retry_max_secs, webhook: none, email: none,
    }
}

/// Default notification threshold: Suricata severity 1 only.
pub fn default_notify_severity() -> Severity {
    Severity::High
}

/// Default dedupe window: 10 minutes.
pub fn default_dedupe_window_secs() -> u32 {
    600
}

/// Default notification burst.
pub fn default_notify_burst() -> u32 {
    10
}

/// Default sustained notification rate.
pub fn default_rate_per_minute() -> u32 {
    6
}

/// Default digest period: 5 minutes.
pub fn default_digest_interval_secs() -> u32 {
    300
}

/// Default notification queue length.
pub fn default_notify_queue() -> u32 {
    1024
}

/// Default delivery attempts.
pub fn default_retry_attempts() -> u32 {
    5
}

/// Default first retry delay.
pub fn default_retry_initial_ms() -> u32 {
    1000
}

/// Default longest retry delay.
pub fn default_retry_max_secs() -> u32 {
    60
}

/// Default webhook payload.
pub fn default_webhook_format() -> WebhookFormat {
    WebhookFormat::Generic
}

/// Default webhook request timeout.
pub fn default_webhook_timeout_secs() -> u32 {
    10
}

/// Default SMTP encryption.
pub fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}

/// Default SMTP conversation timeout.
pub fn default_smtp_timeout_secs() -> u32 {
    30
}

impl Notifications {
    /// Checks the limits and each configured channel.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) {
        let n = self;
        check_range(
            p,
            "notifications.dedupe_window_secs",
            n.dedupe_window_secs,
            0..=86_400,
            "seconds",
        );
        check_range(p, "notifications.burst", n.burst, 1..=1000, "messages");
        check_range(
            p,
            "notifications.rate_per_minute",
            n.rate_per_minute,
            1..=600,
            "messages per minute",
        );
        check_range(
            p,
            "notifications.digest_interval_secs",
            n.digest_interval_secs,
            10..=86_400,
            "seconds",
        );
        check_range(
            p,
            "notifications.queue_capacity",
            n.queue_capacity,
            16..=65_536,
            "alerts",
        );
        check_range(
            p,
            "notifications.retry_attempts",
            n.retry_attempts,
            1..=20,
            "attempts",
        );
        check_range(
            p,
            "notifications.retry_initial_ms",
            n.retry_initial_ms,
            10..=60_000,
            "milliseconds",
        );
        check_range(
            p,
            "notifications.retry_max_secs",
            n.retry_max_secs,
            1..=3600,
            "seconds",
        );
        if n.retry_max_secs.saturating_mul(1000) < n.retry_initial_ms {
            p.push(Problem::new(
                "notifications.retry_max_secs",
                n.retry_max_secs,
                "must not be shorter than notifications.retry_initial_ms",
            ));
        }
        if let Some(w) = &n.webhook {
            if let Some(url) = &w.url {
                if let Err(why) = webhook_url_problem(url) {
                    p.push(Problem::new("notifications.webhook.url", url, why));
                }
            }
            if let Some(file) = &w.url_file {
                check_abs_path("notifications.webhook.url_file", file, p);
            }
            match (&w.url, &w.url_file) {
                (Some(_), Some(_)) => p.push(Problem::at(
                    "notifications.webhook",
                    "set either `url` or `url_file`, not both",
                )),
                (None, None) => p.push(Problem::at(
                    "notifications.webhook.url",
                    "required: set `url`, or `url_file` when the URL is a secret (Slack)",
                )),
                _ => {}
            }
            if let Some(f) = &w.bearer_token_file {
                check_abs_path("notifications.webhook.bearer_token_file", f, p);
            }
            check_range(
                p,
                "notifications.webhook.timeout_secs",
                w.timeout_secs,
                1..=120,
                "seconds",
            );
        }
        if let Some(e) = &n.email {
            if !is_hostname(&e.smtp_host) {
                p.push(Problem::new(
                    "notifications.email.smtp_host",
                    &e.smtp_host,
                    "expected a host name or address such as smtp.example.org",
                ));
            }
            if e.smtp_port == Some(0) {
                p.push(Problem::new(
                    "notifications.email.smtp_port",
                    0,
                    "expected a TCP port from 1 to 65535 (587 for starttls, 465 for implicit)",
                ));
            }
            for (key, file) in [("ca_file", &e.ca_file), ("password_file", &e.password_file)] {
                if let Some(f) = file {
                    check_abs_path(&format!("notifications.email.{key}"), f, p);
                }
            }
            match (&e.username, &e.password_file) {
                (Some(_), None) => p.push(Problem::at(
                    "notifications.email.password_file",
                    "required with `username`: the path of a file holding the SMTP password",
                )),
                (None, Some(_)) => p.push(Problem::at(
                    "notifications.email.username",
                    "required with `password_file`",
                )),
                _ => {}
            }
            if !is_mailbox(&e.from) {
                p.push(Problem::new(
                    "notifications.email.from",
                    &e.from,
                    "expected an e-mail address such as ids2@example.org",
                ));
            }
            if e.to.is_empty() {
                p.push(Problem::at(
                    "notifications.email.to",
                    "must list at least one recipient",
                ));
            }
            for (i, to) in e.to.iter().enumerate() {
                if !is_mailbox(to) {
                    p.push(Problem::new(
                        format!("notifications.email.to[{i}]"),
                        to,
                        "expected an e-mail address such as soc@example.org",
                    ));
                }
            }
            check_range(
                p,
                "notifications.email.timeout_secs",
                e.timeout_secs,
                1..=300,
                "seconds",
            );
        }
    }
}

fn is_mailbox(s: &str) -> bool {
    s.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && is_hostname(domain) && !s.contains(['<', '>', ' ', '\n', '\r', ','])
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{paths, problems_with};
    use super::super::validate::webhook_url_problem;

    #[test]
    fn response_defaults_are_off_and_documented() {
        let s = crate::config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let n = &s.config.notifications;
        assert!(n.webhook.is_none() && n.email.is_none());
        assert_eq!(n.min_severity, crate::config::Severity::High);
        let b = &s.config.blocking;
        assert!(!b.enabled && !b.nftables);
        assert_eq!(b.ttl_secs, 3600);
        assert_eq!(b.feed_listen, "0.0.0.0:9102");
    }

    #[test]
    fn severity_levels_follow_suricata_priority() {
        use crate::config::Severity;
        assert!(Severity::High.admits(1));
        assert!(!Severity::High.admits(2));
        assert!(Severity::Medium.admits(2) && !Severity::Medium.admits(3));
        assert!(Severity::Low.admits(3) && !Severity::Low.admits(4));
        assert!(Severity::Info.admits(255));
        let p = problems_with("notifications: {min_severity: hihg}\n");
        assert_eq!(paths(&p), ["notifications.min_severity"], "{p:#?}");
        assert!(p[0].message.contains("high"), "{p:#?}");
    }

    #[test]
    fn webhook_urls_need_tls_except_to_loopback() {
        for ok in [
            "https://hooks.example.org/x",
            "http://127.0.0.1:8080/hook",
            "http://[::1]:9/x",
            "http://localhost/x",
        ] {
            assert!(webhook_url_problem(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://hooks.example.org/x",
            "ftp://x",
            "https://",
            "https://u@h/",
        ] {
            assert!(webhook_url_problem(bad).is_err(), "{bad}");
        }
        let p = problems_with(
            "notifications: {webhook: {url: 'http://10.0.0.9/h', url_file: /run/u}}\n",
        );
        assert_eq!(
            paths(&p),
            ["notifications.webhook.url", "notifications.webhook"],
            "{p:#?}"
        );
        let p = problems_with("notifications: {webhook: {format: slack}}\n");
        assert_eq!(paths(&p), ["notifications.webhook.url"], "{p:#?}");
    }

    #[test]
    fn email_problems_named_by_key() {
        let p = problems_with(
            "notifications:\n  retry_initial_ms: 5000\n  retry_max_secs: 2\n  email:\n    \
             smtp_host: 'smtp host'\n    smtp_port: 0\n    username: ids2\n    \
             from: nobody\n    to: [ok@example.org, 'a@b, c@d']\n    ca_file: rel/ca.pem\n",
        );
        assert_eq!(
            paths(&p),
            [
                "notifications.retry_max_secs",
                "notifications.email.smtp_host",
                "notifications.email.smtp_port",
                "notifications.email.ca_file",
                "notifications.email.password_file",
                "notifications.email.from",
                "notifications.email.to[1]",
            ],
            "{p:#?}"
        );
        let p = problems_with(
            "notifications: {email: {smtp_host: h, from: a@h, to: [b@h], tls: plain}}\n",
        );
        assert_eq!(paths(&p), ["notifications.email.tls"], "{p:#?}");
    }

    #[test]
    fn inline_smtp_password_refused() {
        let p = problems_with(
            "notifications: {email: {smtp_host: h, from: a@h, to: [b@h], username: u, password: pw}}\n",
        );
        assert!(
            paths(&p).contains(&"notifications.email.password"),
            "{p:#?}"
        );
        assert!(!format!("{p:?}").contains("pw}"));
    }

    #[test]
    fn full_response_config_accepted() {
        let p = problems_with(
            "notifications:\n  min_severity: medium\n  webhook: {url_file: /run/credentials/ids2-agent/slack, format: slack}\n  \
             email: {smtp_host: smtp.example.org, tls: implicit, username: ids2, \
             password_file: /run/credentials/ids2-agent/smtp, from: ids2@example.org, to: [soc@example.org]}\n\
             blocking:\n  enabled: true\n  nftables: true\n  categories: [A Network Trojan was detected]\n  \
             repeat_offenders: {alerts: 3, window_secs: 600}\n  reputation_min_score: 90\n  \
             allowlist: [203.0.113.7, 198.51.100.0/24]\n  allow_home_net: [192.168.99.0/24]\n",
        );
        assert!(p.is_empty(), "{p:#?}");
    }
}
