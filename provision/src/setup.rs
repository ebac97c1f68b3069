//! `opensearch setup`: index templates, the ISM policy, Dashboards saved objects and the
//! Alerting monitors (sensor offline, and the health checks of [`crate::health`]).
//!
//! Every object is built (and so validated) before the first request. Each is then read
//! back, compared with [`crate::diff::first_difference`] and written only when it differs,
//! so a second run sends nothing but GETs and reports "no changes".

use std::fmt;
use std::path::{Path, PathBuf};

use ids2_core::ecs::emitted_fields;
use ids2_core::heartbeat;
use reqwest::Method;
use serde_json::Value;

use crate::aws::{self, AwsError, AwsTarget};
use crate::diff::first_difference;
use crate::endpoint::Endpoint;
use crate::fleet;
use crate::health;
use crate::mappings::{self, MappingError};
use crate::objects::{self, SavedObject};
use crate::rest::{Auth, Response, Rest, RestError};

/// What to install, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupOptions {
    /// The domain endpoint (no trailing slash).
    pub endpoint: String,
    /// OpenSearch Dashboards' base URL (AWS serves it under `<endpoint>/_dashboards`).
    pub dashboards_url: String,
    /// Prefix of every index (`opensearch.index_prefix` in the sensor config).
    pub index_prefix: String,
    /// Days an index is kept before ISM deletes it.
    pub retention_days: u32,
    /// Replicas per shard (0 for a one-node domain, where a replica could never be placed).
    pub replicas: u32,
    /// Seconds without a heartbeat after which the offline monitor raises an alert.
    pub offline_after_secs: u32,
    /// Webhook the offline monitor notifies (a Notifications channel); none: alerts only show
    /// in Alerting.
    pub alert_webhook_url: Option<String>,
    /// What the health monitors page on.
    pub health: health::Thresholds,
    /// Install the index templates alone: no ISM policy, Dashboards objects, channel or
    /// monitor (for a cluster without those plugins, such as the osmem-server emulator).
    pub templates_only: bool,
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// It did not exist and was written.
    Created,
    /// It existed but differed (the first difference is given) and was rewritten.
    Updated(String),
    /// It already matched; nothing was sent.
    Unchanged,
}

/// One object and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// E.g. `index template ids2-suricata`.
    pub object: String,
    /// What was done.
    pub action: Action,
}

/// The outcome of a setup run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Every object, in the order handled.
    pub changes: Vec<Change>,
}

impl Report {
    /// Number of objects written.
    pub fn writes(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.action != Action::Unchanged)
            .count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            match &c.action {
                Action::Created => writeln!(f, "created   {}", c.object)?,
                Action::Updated(why) => writeln!(f, "updated   {} ({why})", c.object)?,
                Action::Unchanged => writeln!(f, "unchanged {}", c.object)?,
            }
        }
        match self.writes() {
            0 => write!(f, "no changes"),
            n => write!(f, "{n} change{} applied", if n == 1 { "" } else { "s" }),
        }
    }
}

/// Why setup failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A URL we will not send credentials to.
    #[error(
        "`{0}` is not a usable endpoint: expected https://HOST[:PORT] (plain http only to \
         localhost, e.g. through an SSH tunnel)"
    )]
    BadUrl(String),
    /// Index prefix breaks OpenSearch's naming rules.
    #[error(
        "index prefix `{0}` is not valid: use 1–32 characters of a-z, 0-9 and '-', not starting \
         with '-' (it must equal opensearch.index_prefix in the sensors' config.yaml)"
    )]
    BadPrefix(String),
    /// Retention out of range.
    #[error("--retention-days {0} is out of range: expected 1 to 3650 days")]
    BadRetention(u32),
    /// Health thresholds out of range, every one named.
    #[error("health monitor thresholds out of range: {}", .0.join("; "))]
    BadHealth(Vec<String>),
    /// Offline threshold out of range.
    #[error(
        "--offline-after-secs {0} is out of range: expected 30 to 86400 seconds (at least two \
         heartbeat intervals; sensors beat every 15 s by default)"
    )]
    BadOfflineAfter(u32),
    /// The webhook URL is not one we will send alerts to.
    #[error("webhook URL `{0}` is not usable: expected https://HOST/PATH")]
    BadWebhook(String),
    /// SigV4 needs a region the endpoint does not reveal.
    #[error(
        "cannot tell the AWS region from the endpoint host `{0}`: pass --region (the domain's \
         region, e.g. eu-west-1)"
    )]
    NoRegion(String),
    /// Basic auth without a user.
    #[error("--auth basic needs --username")]
    NoUsername,
    /// Basic auth without a password source.
    #[error(
        "--auth basic needs the password: pass --password-file FILE (first line) or set \
         IDS2_OPENSEARCH_PASSWORD"
    )]
    NoPassword,
    /// Basic auth password file.
    #[error(
        "cannot read the password file {}: create it with the user's password on its first \
         line (mode 0600), or set IDS2_OPENSEARCH_PASSWORD", path.display()
    )]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Credentials or region.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The field list cannot be mapped.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// No HTTP answer.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// 401.
    #[error(
        "{method} {url} was refused as unauthenticated (HTTP 401): with --auth basic check \
         --username and the password; with sigv4, a domain with fine-grained access control \
         may need its IAM principal mapped as a backend role, or use --auth basic"
    )]
    Unauthorized {
        /// HTTP method.
        method: Method,
        /// URL.
        url: String,
    },
    /// 403.
    #[error(
        "{method} {url} was denied (HTTP 403: {message}): with sigv4 your IAM principal must be \
         in the domain's access policy (`ids2-provision domain ensure --principal <ARN>` sets \
         it when it creates the domain; `aws sts get-caller-identity` shows who you are) and \
         the credentials must be for the domain's account; with fine-grained access control \
         the user needs the all_access role or index, ISM and Dashboards permissions"
    )]
    AccessDenied {
        /// HTTP method.
        method: Method,
        /// URL.
        url: String,
        /// The server's message.
        message: String,
    },
    /// Another template claims the same indices at the same priority.
    #[error(
        "index template `{name}` conflicts with an existing template: {reason} — list them with \
         `GET _index_template`, then delete the other template or change its priority (ours is \
         {priority}) and run setup again"
    )]
    TemplateConflict {
        /// Our template.
        name: String,
        /// The server's explanation.
        reason: String,
        /// Our priority.
        priority: u32,
    },
    /// Anything else the server refused.
    #[error("{method} {url} returned HTTP {status}: {body}")]
    Http {
        /// HTTP method.
        method: Method,
        /// URL.
        url: String,
        /// Status.
        status: u16,
        /// Body, shortened.
        body: String,
    },
    /// The server answered 200 with something we cannot read.
    #[error("{url} answered with an unexpected shape: {what}")]
    Shape {
        /// URL.
        url: String,
        /// What was missing.
        what: String,
    },
}

impl SetupError {
    /// True when the operator's arguments are at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        match self {
            SetupError::Aws(e) => e.is_bad_input(),
            SetupError::BadUrl(_)
            | SetupError::BadPrefix(_)
            | SetupError::BadRetention(_)
            | SetupError::BadOfflineAfter(_)
            | SetupError::BadHealth(_)
            | SetupError::BadWebhook(_)
            | SetupError::NoRegion(_)
            | SetupError::NoUsername
            | SetupError::NoPassword => true,
            _ => false,
        }
    }
}

/// Checks an endpoint URL: https, or http to loopback only, since credentials go with it.
pub fn check_endpoint(url: &str) -> Result<Endpoint, SetupError> {
    let e = Endpoint::parse(url).ok_or_else(|| SetupError::BadUrl(url.to_string()))?;
    if e.scheme == "https" || e.is_loopback() {
        Ok(e)
    } else {
        Err(SetupError::BadUrl(url.to_string()))
    }
}

/// Checks a Dashboards URL, which may carry a path (`/_dashboards`).
pub fn check_dashboards_url(url: &str) -> Result<String, SetupError> {
    let trimmed = url.trim_end_matches('/');
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| SetupError::BadUrl(url.to_string()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    check_endpoint(&format!("{scheme}://{authority}"))
        .map_err(|_| SetupError::BadUrl(url.to_string()))?;
    Ok(trimmed.to_string())
}

/// Checks the options whole before anything is sent.
pub fn check_options(o: &SetupOptions) -> Result<(), SetupError> {
    check_endpoint(&o.endpoint)?;
    check_dashboards_url(&o.dashboards_url)?;
    let p = &o.index_prefix;
    let ok = (1..=32).contains(&p.len())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !p.starts_with('-');
    if !ok {
        return Err(SetupError::BadPrefix(p.clone()));
    }
    if !(1..=3650).contains(&o.retention_days) {
        return Err(SetupError::BadRetention(o.retention_days));
    }
    if !(30..=86_400).contains(&o.offline_after_secs) {
        return Err(SetupError::BadOfflineAfter(o.offline_after_secs));
    }
    let health = o.health.problems();
    if !health.is_empty() {
        return Err(SetupError::BadHealth(health));
    }
    if let Some(url) = &o.alert_webhook_url {
        let ok = url
            .strip_prefix("https://")
            .and_then(|rest| rest.split(['/', '?', '#']).next())
            .is_some_and(|host| !host.is_empty() && !host.contains('@'));
        if !ok {
            // The URL is often a secret (Slack): do not echo it whole.
            let shown: String = url.chars().take(12).collect();
            return Err(SetupError::BadWebhook(format!("{shown}…")));
        }
    }
    Ok(())
}

/// SigV4 auth for `endpoint`: the region is `region` or read from an AWS endpoint host.
pub async fn sigv4_auth(
    endpoint: &str,
    region: Option<&str>,
    profile: Option<&str>,
) -> Result<Auth, SetupError> {
    let e = check_endpoint(endpoint)?;
    let region = match region {
        Some(r) => r.to_string(),
        None => e
            .aws_domain_and_region()
            .map(|(_, r)| r)
            .ok_or_else(|| SetupError::NoRegion(e.host.clone()))?,
    };
    let target = AwsTarget {
        region: region.clone(),
        profile: profile.map(str::to_string),
        endpoint_url: None,
    };
    let (_config, credentials) = aws::load(&target).await?;
    Ok(Auth::SigV4 {
        credentials,
        region,
    })
}

/// Basic auth; the password comes from `password` or else the first line of `password_file`.
pub fn basic_auth(
    username: Option<&str>,
    password: Option<String>,
    password_file: Option<&Path>,
) -> Result<Auth, SetupError> {
    let username = username
        .filter(|u| !u.is_empty())
        .ok_or(SetupError::NoUsername)?;
    let password = match (password, password_file) {
        (Some(p), _) => p,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|source| SetupError::PasswordFile {
                path: path.to_path_buf(),
                source,
            })?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        (None, None) => return Err(SetupError::NoPassword),
    };
    Ok(Auth::Basic {
        username: username.to_string(),
        password,
    })
}

/// Everything setup wants on the server, built and validated up front.
struct Plan {
    templates: Vec<(String, Value)>,
    policy: (String, Value),
    saved: Vec<SavedObject>,
    channel: Option<(String, Value)>,
    /// The offline monitor, then one per health check.
    monitors: Vec<Value>,
}

fn plan(o: &SetupOptions) -> Result<Plan, SetupError> {
    check_options(o)?;
    let prefix = &o.index_prefix;
    Ok(Plan {
        templates: vec![
            (
                format!("{prefix}-suricata"),
                mappings::suricata_template(prefix, &emitted_fields(), o.replicas)?,
            ),
            (
                format!("{prefix}-heartbeat"),
                mappings::heartbeat_template(prefix, heartbeat::FIELDS, o.replicas)?,
            ),
            (
                format!("{prefix}-anomaly"),
                mappings::anomaly_template(prefix, ids2_core::anomaly::FIELDS, o.replicas)?,
            ),
        ],
        policy: (
            objects::policy_id(prefix),
            objects::ism_policy(prefix, o.retention_days),
        ),
        saved: objects::saved_objects(prefix),
        channel: o.alert_webhook_url.as_ref().map(|url| {
            (
                fleet::channel_id(prefix),
                fleet::webhook_channel(prefix, url),
            )
        }),
        monitors: {
            let channel = o
                .alert_webhook_url
                .as_ref()
                .map(|_| fleet::channel_id(prefix));
            let mut m = vec![fleet::offline_monitor(
                prefix,
                o.offline_after_secs,
                channel.as_deref(),
            )];
            m.extend(
                health::Check::ALL
                    .iter()
                    .map(|c| c.monitor(prefix, &o.health, channel.as_deref())),
            );
            m
        },
    })
}

/// Installs or updates every object that differs; see the module docs.
pub async fn setup(rest: &Rest, o: &SetupOptions) -> Result<Report, SetupError> {
    let plan = plan(o)?;
    let base = o.endpoint.trim_end_matches('/');
    let dash = o.dashboards_url.trim_end_matches('/');
    let mut report = Report::default();
    for (name, body) in &plan.templates {
        let action = ensure_template(rest, base, name, body).await?;
        report.changes.push(Change {
            object: format!("index template {name}"),
            action,
        });
    }
    if o.templates_only {
        return Ok(report);
    }
    let (id, body) = &plan.policy;
    let action = ensure_policy(rest, base, id, body).await?;
    report.changes.push(Change {
        object: format!("ISM policy {id}"),
        action,
    });
    for object in &plan.saved {
        let action = ensure_saved_object(rest, dash, object).await?;
        report.changes.push(Change {
            object: format!("dashboards {} {}", object.kind, object.id),
            action,
        });
    }
    if let Some((id, config)) = &plan.channel {
        let action = ensure_channel(rest, base, id, config).await?;
        report.changes.push(Change {
            object: format!("notification channel {id}"),
            action,
        });
    }
    for monitor in &plan.monitors {
        let action = ensure_monitor(rest, base, monitor).await?;
        report.changes.push(Change {
            object: format!(
                "alerting monitor {}",
                monitor["name"].as_str().unwrap_or("")
            ),
            action,
        });
    }
    Ok(report)
}

async fn ensure_channel(
    rest: &Rest,
    base: &str,
    id: &str,
    config: &Value,
) -> Result<Action, SetupError> {
    let url = format!("{base}/_plugins/_notifications/configs/{id}");
    let (action, method, put_url, body) = match get(rest, &url).await? {
        None => (
            Action::Created,
            Method::POST,
            format!("{base}/_plugins/_notifications/configs"),
            serde_json::json!({"config_id": id, "config": config}),
        ),
        Some(r) => {
            let have = &r.json["config_list"][0]["config"];
            match first_difference(config, have) {
                None => return Ok(Action::Unchanged),
                // The webhook URL may be a secret: name the key, not the value.
                Some(why) => (
                    Action::Updated(format!("config.{}", why.split(':').next().unwrap_or(&why))),
                    Method::PUT,
                    url.clone(),
                    serde_json::json!({"config": config}),
                ),
            }
        }
    };
    let r = rest
        .send(method.clone(), &put_url, Some(&body), &[])
        .await?;
    check(method, &put_url, r)?;
    Ok(action)
}

/// Monitors get server-made ids, so ours is found by name; a second monitor of the same name
/// is never created.
async fn ensure_monitor(rest: &Rest, base: &str, monitor: &Value) -> Result<Action, SetupError> {
    let search = format!("{base}/_plugins/_alerting/monitors/_search");
    let query = serde_json::json!({
        "query": {"term": {"monitor.name.keyword": monitor["name"]}}
    });
    let r = rest.send(Method::POST, &search, Some(&query), &[]).await?;
    // Before the first monitor exists the alerting config index does not, and search says 404.
    let found = if r.status == 404 {
        None
    } else {
        let r = check(Method::POST, &search, r)?;
        r.json["hits"]["hits"]
            .as_array()
            .ok_or_else(|| SetupError::Shape {
                url: search.clone(),
                what: "no hits.hits array".into(),
            })?
            .first()
            .and_then(|h| h["_id"].as_str().map(str::to_string))
    };
    let Some(id) = found else {
        let url = format!("{base}/_plugins/_alerting/monitors");
        let r = rest.send(Method::POST, &url, Some(monitor), &[]).await?;
        check(Method::POST, &url, r)?;
        return Ok(Action::Created);
    };
    let url = format!("{base}/_plugins/_alerting/monitors/{id}");
    let have = get(rest, &url).await?.ok_or_else(|| SetupError::Shape {
        url: url.clone(),
        what: "the monitor found by name is gone".into(),
    })?;
    let why = match first_difference(monitor, &have.json["monitor"]) {
        None => return Ok(Action::Unchanged),
        Some(why) => why,
    };
    let (Some(seq), Some(term)) = (
        have.json["_seq_no"].as_u64(),
        have.json["_primary_term"].as_u64(),
    ) else {
        return Err(SetupError::Shape {
            url,
            what: "no _seq_no/_primary_term".into(),
        });
    };
    let put_url = format!("{url}?if_seq_no={seq}&if_primary_term={term}");
    let r = rest.send(Method::PUT, &put_url, Some(monitor), &[]).await?;
    check(Method::PUT, &put_url, r)?;
    Ok(Action::Updated(format!("monitor.{why}")))
}

async fn ensure_template(
    rest: &Rest,
    base: &str,
    name: &str,
    body: &Value,
) -> Result<Action, SetupError> {
    let url = format!("{base}/_index_template/{name}");
    let current = match get(rest, &url).await? {
        None => None,
        Some(r) => Some(
            r.json["index_templates"]
                .as_array()
                .and_then(|all| all.iter().find(|t| t["name"] == name))
                .map(|t| t["index_template"].clone())
                .ok_or_else(|| SetupError::Shape {
                    url: url.clone(),
                    what: format!("no index_templates entry named {name}"),
                })?,
        ),
    };
    let action = match &current {
        None => Action::Created,
        Some(have) => match first_difference(body, have) {
            None => return Ok(Action::Unchanged),
            Some(why) => Action::Updated(why),
        },
    };
    let r = rest.send(Method::PUT, &url, Some(body), &[]).await?;
    if r.status == 400 && is_template_conflict(&r.json) {
        return Err(SetupError::TemplateConflict {
            name: name.to_string(),
            reason: r.json["error"]["reason"]
                .as_str()
                .unwrap_or(&r.text)
                .to_string(),
            priority: mappings::TEMPLATE_PRIORITY,
        });
    }
    check(Method::PUT, &url, r)?;
    Ok(action)
}

fn is_template_conflict(body: &Value) -> bool {
    let reason = body["error"]["reason"].as_str().unwrap_or_default();
    body["error"]["type"] == "illegal_argument_exception"
        && (reason.contains("same priority") || reason.contains("overlapping"))
}

async fn ensure_policy(
    rest: &Rest,
    base: &str,
    id: &str,
    body: &Value,
) -> Result<Action, SetupError> {
    let url = format!("{base}/_plugins/_ism/policies/{id}");
    let (action, put_url) = match get(rest, &url).await? {
        None => (Action::Created, url.clone()),
        Some(r) => {
            let have = &r.json;
            match first_difference(&body["policy"], &have["policy"]) {
                None => return Ok(Action::Unchanged),
                Some(why) => {
                    // ISM refuses an update without the version it replaces.
                    let (Some(seq), Some(term)) =
                        (have["_seq_no"].as_u64(), have["_primary_term"].as_u64())
                    else {
                        return Err(SetupError::Shape {
                            url,
                            what: "no _seq_no/_primary_term".into(),
                        });
                    };
                    (
                        Action::Updated(format!("policy.{why}")),
                        format!("{url}?if_seq_no={seq}&if_primary_term={term}"),
                    )
                }
            }
        }
    };
    let r = rest.send(Method::PUT, &put_url, Some(body), &[]).await?;
    check(Method::PUT, &put_url, r)?;
    Ok(action)
}

async fn ensure_saved_object(
    rest: &Rest,
    dash: &str,
    object: &SavedObject,
) -> Result<Action, SetupError> {
    let url = format!("{dash}/api/saved_objects/{}/{}", object.kind, object.id);
    let body = object.body();
    let action = match get_dashboards(rest, &url).await? {
        None => Action::Created,
        Some(r) => match first_difference(&body, &r.json) {
            None => return Ok(Action::Unchanged),
            Some(why) => Action::Updated(why),
        },
    };
    let put_url = format!("{url}?overwrite=true");
    let r = rest
        .send(Method::POST, &put_url, Some(&body), &[("osd-xsrf", "true")])
        .await?;
    check(Method::POST, &put_url, r)?;
    Ok(action)
}

/// GET that maps 404 to `None`.
async fn get(rest: &Rest, url: &str) -> Result<Option<Response>, SetupError> {
    let r = rest.send(Method::GET, url, None, &[]).await?;
    if r.status == 404 {
        return Ok(None);
    }
    check(Method::GET, url, r).map(Some)
}

async fn get_dashboards(rest: &Rest, url: &str) -> Result<Option<Response>, SetupError> {
    let r = rest
        .send(Method::GET, url, None, &[("osd-xsrf", "true")])
        .await?;
    if r.status == 404 {
        return Ok(None);
    }
    check(Method::GET, url, r).map(Some)
}

fn check(method: Method, url: &str, r: Response) -> Result<Response, SetupError> {
    let url = url.to_string();
    match r.status {
        200..=299 => Ok(r),
        401 => Err(SetupError::Unauthorized { method, url }),
        403 => Err(SetupError::AccessDenied {
            method,
            url,
            message: r.json["message"]
                .as_str()
                .or(r.json["Message"].as_str())
                .or(r.json["error"]["reason"].as_str())
                .unwrap_or(r.text.trim())
                .chars()
                .take(300)
                .collect(),
        }),
        status => Err(SetupError::Http {
            method,
            url,
            status,
            body: r.text.chars().take(500).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SetupOptions {
        SetupOptions {
            endpoint: "https://search-ids2-x.eu-west-1.es.amazonaws.com".into(),
            dashboards_url: "https://search-ids2-x.eu-west-1.es.amazonaws.com/_dashboards".into(),
            index_prefix: "ids2".into(),
            retention_days: 30,
            replicas: 0,
            offline_after_secs: 60,
            alert_webhook_url: None,
            health: health::Thresholds::default(),
            templates_only: false,
        }
    }

    #[test]
    fn options_are_checked_before_anything_is_sent() {
        assert!(plan(&opts()).is_ok());
        let mut o = opts();
        o.endpoint = "http://search-ids2-x.eu-west-1.es.amazonaws.com".into();
        assert!(matches!(plan(&o), Err(SetupError::BadUrl(_))));
        o = opts();
        o.index_prefix = "IDS2".into();
        assert!(matches!(plan(&o), Err(SetupError::BadPrefix(_))));
        o = opts();
        o.retention_days = 0;
        assert!(matches!(plan(&o), Err(SetupError::BadRetention(0))));
        o = opts();
        o.dashboards_url = "http://10.0.0.1/_dashboards".into();
        assert!(matches!(plan(&o), Err(SetupError::BadUrl(_))));
        o.dashboards_url = "http://127.0.0.1:5601".into();
        o.endpoint = "http://127.0.0.1:9200".into();
        assert!(plan(&o).is_ok());
        o.offline_after_secs = 10;
        assert!(matches!(plan(&o), Err(SetupError::BadOfflineAfter(10))));
        o.offline_after_secs = 60;
        o.alert_webhook_url = Some("http://hooks.example.org/secret-token".into());
        let Err(err) = plan(&o) else {
            panic!("a plain-http webhook was accepted")
        };
        assert!(matches!(err, SetupError::BadWebhook(_)));
        assert!(!err.to_string().contains("secret-token"));
    }

    #[test]
    fn conflict_is_recognised_from_the_server_reason() {
        let body = serde_json::json!({"error": {"type": "illegal_argument_exception",
            "reason": "index template [ids2-suricata] has index patterns [ids2-suricata.*] matching patterns from existing templates [old] with patterns (old => [ids2-*]) that have the same priority [200], multiple index templates may not match during index creation, please use a different priority"}});
        assert!(is_template_conflict(&body));
        let other =
            serde_json::json!({"error": {"type": "mapper_parsing_exception", "reason": "x"}});
        assert!(!is_template_conflict(&other));
    }

    #[test]
    fn report_says_no_changes_when_nothing_was_written() {
        let r = Report {
            changes: vec![Change {
                object: "index template ids2-suricata".into(),
                action: Action::Unchanged,
            }],
        };
        assert!(r.to_string().ends_with("no changes"));
        assert_eq!(r.writes(), 0);
    }
}
