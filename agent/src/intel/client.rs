//! The AbuseIPDB v2 `check` call: `GET <base>/check?ipAddress=..&maxAgeInDays=..` with the API
//! key in the `Key` header, answering `{"data": {...}}`, or `{"errors": [...]}` with 401/403
//! (bad key), 422 (bad address) or 429 (quota; `Retry-After` seconds). Every answer carries
//! `X-RateLimit-Limit` / `X-RateLimit-Remaining`, and `X-RateLimit-Reset` (Unix time) when
//! the quota is spent.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde::Deserialize;

/// What AbuseIPDB knows about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The address checked.
    pub ip: IpAddr,
    /// `abuseConfidenceScore`, 0–100.
    pub score: u8,
    /// `totalReports` within `maxAgeInDays`.
    pub total_reports: u64,
    /// `countryCode`, ISO 3166-1 alpha-2.
    pub country_code: Option<String>,
    /// `isp`.
    pub isp: Option<String>,
    /// `usageType`, e.g. `Data Center/Web Hosting/Transit`.
    pub usage_type: Option<String>,
    /// `lastReportedAt`, RFC 3339, when ever reported.
    pub last_reported_at: Option<String>,
}

/// The rate-limit headers of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// `X-RateLimit-Limit`: checks per day on this key.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`: checks left today.
    pub remaining: Option<u64>,
    /// Time until `X-RateLimit-Reset`, or `Retry-After` on a 429.
    pub reset_in: Option<Duration>,
}

/// Why a check gave no report.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// 429: the daily quota is spent; retry after the given time.
    #[error("AbuseIPDB rate limit reached; retry in {retry_after:?}")]
    RateLimited {
        /// From `Retry-After` (or `X-RateLimit-Reset`).
        retry_after: Duration,
    },
    /// 401/403: the key is missing, wrong or revoked.
    #[error(
        "AbuseIPDB refused the API key (HTTP {status}): {detail}; check \
         enrichment.abuseipdb.api_key_file"
    )]
    Unauthorized {
        /// The status.
        status: u16,
        /// AbuseIPDB's `errors[0].detail`.
        detail: String,
    },
    /// Any other non-success status.
    #[error("AbuseIPDB answered HTTP {status}: {detail}")]
    Status {
        /// The status.
        status: u16,
        /// AbuseIPDB's `errors[0].detail`, or the body.
        detail: String,
    },
    /// The request did not complete (connection, timeout).
    #[error("cannot reach AbuseIPDB at {url}")]
    Transport {
        /// The base URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A 200 whose body is not the documented shape.
    #[error("AbuseIPDB answer not understood: {reason}")]
    Decode {
        /// What was wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
struct Envelope {
    data: Data,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    abuse_confidence_score: u8,
    #[serde(default)]
    total_reports: u64,
    country_code: Option<String>,
    isp: Option<String>,
    usage_type: Option<String>,
    last_reported_at: Option<String>,
}

#[derive(Deserialize)]
struct Errors {
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    detail: String,
}

/// An AbuseIPDB client for one key.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    key: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never printed.
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `base_url` (e.g. `https://api.abuseipdb.com/api/v2`, the test seam).
    pub fn new(base_url: &str, key: String, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("ids2-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
        })
    }

    /// Checks one address; the rate-limit headers come back whatever the outcome.
    pub async fn check(
        &self,
        ip: IpAddr,
        max_age_days: u32,
    ) -> (Result<Report, CheckError>, RateLimit) {
        let url = format!("{}/check", self.base_url);
        let sent = self
            .http
            .get(&url)
            .query(&[
                ("ipAddress", ip.to_string()),
                ("maxAgeInDays", max_age_days.to_string()),
            ])
            .header("Key", &self.key)
            .header("Accept", "application/json")
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(source) => {
                return (
                    Err(CheckError::Transport {
                        url: self.base_url.clone(),
                        source,
                    }),
                    RateLimit::default(),
                )
            }
        };
        let status = response.status().as_u16();
        let limits = rate_limit(response.headers(), status);
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(source) => {
                return (
                    Err(CheckError::Transport {
                        url: self.base_url.clone(),
                        source,
                    }),
                    limits,
                )
            }
        };
        let detail = || {
            serde_json::from_slice::<Errors>(&body)
                .ok()
                .and_then(|e| e.errors.into_iter().next())
                .map_or_else(
                    || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                    |e| e.detail,
                )
        };
        let result = match status {
            200 => serde_json::from_slice::<Envelope>(&body)
                .map(|e| Report {
                    ip,
                    score: e.data.abuse_confidence_score.min(100),
                    total_reports: e.data.total_reports,
                    country_code: e.data.country_code,
                    isp: e.data.isp,
                    usage_type: e.data.usage_type,
                    last_reported_at: e.data.last_reported_at,
                })
                .map_err(|e| CheckError::Decode {
                    reason: e.to_string(),
                }),
            429 => Err(CheckError::RateLimited {
                // Without a hint, wait an hour rather than hammer a spent quota.
                retry_after: limits.reset_in.unwrap_or(Duration::from_secs(3600)),
            }),
            401 | 403 => Err(CheckError::Unauthorized {
                status,
                detail: detail(),
            }),
            _ => Err(CheckError::Status {
                status,
                detail: detail(),
            }),
        };
        (result, limits)
    }
}

fn rate_limit(headers: &HeaderMap, status: u16) -> RateLimit {
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let reset_at = num("x-ratelimit-reset").map(|at| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Duration::from_secs(at.saturating_sub(now))
    });
    let retry_after = num("retry-after").map(Duration::from_secs);
    RateLimit {
        limit: num("x-ratelimit-limit"),
        remaining: num("x-ratelimit-remaining"),
        reset_in: if status == 429 {
            retry_after.or(reset_at)
        } else {
            reset_at
        },
    }
}
