//! `opensearch`: where events are shipped, and how the sensor authenticates there. Required.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::schema::none;
use super::validate::{check_abs_path, url_host};

/// The OpenSearch destination.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSearch {
    /// Name of the AWS OpenSearch domain.
    pub domain: String,
    /// AWS region of the domain, e.g. `eu-west-1`.
    pub region: String,
    /// HTTPS endpoint of the domain; `ids2-provision` fills it in. Optional until then. Plain
    /// `http://` only to a loopback address (a tunnel or relay on the sensor, a local server).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Prefix of every index and data stream the sensor writes.
    #[serde(default = "default_index_prefix")]
    pub index_prefix: String,
    /// How requests are authenticated. Secrets are never written here, only file paths.
    #[serde(default)]
    pub auth: Auth,
}

/// Authentication to OpenSearch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// `aws_sigv4` (default) or `basic`.
    #[serde(default = "default_auth_method")]
    pub method: String,
    /// sigv4: AWS profile name in the credentials file.
    #[serde(default)]
    pub profile: Option<String>,
    /// sigv4: shared credentials file (e.g. `/run/credentials/ids2-agent/aws`).
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// sigv4: IAM role to assume.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// basic: user name.
    #[serde(default)]
    pub username: Option<String>,
    /// basic: file whose first line is the password.
    #[serde(default)]
    pub password_file: Option<String>,
}

super::schema::default_from_fns! {
    Auth {
        method: default_auth_method, profile: none, credentials_file: none, role_arn: none,
        username: none, password_file: none,
    }
}

/// Default index prefix.
pub fn default_index_prefix() -> String {
    "ids2".into()
}

/// Default auth method.
pub fn default_auth_method() -> String {
    "aws_sigv4".into()
}

/// OpenSearch authentication, resolved from `opensearch.auth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum AuthSettings {
    /// Requests signed with SigV4.
    AwsSigv4 {
        /// Profile in the credentials file.
        profile: Option<String>,
        /// Shared credentials file.
        credentials_file: Option<PathBuf>,
        /// Role to assume.
        role_arn: Option<String>,
    },
    /// HTTP basic auth; the password is read from a file at run time.
    Basic {
        /// User name.
        username: String,
        /// File holding the password.
        password_file: PathBuf,
    },
}

impl OpenSearch {
    /// Checks the domain, region, endpoint and prefix; returns the resolved auth and the
    /// endpoint's host.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) -> (Option<AuthSettings>, Option<String>) {
        let o = self;
        let domain_ok = (3..=28).contains(&o.domain.len())
            && o.domain.starts_with(|ch: char| ch.is_ascii_lowercase())
            && o.domain
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
        if !domain_ok {
            p.push(Problem::new(
                "opensearch.domain",
                &o.domain,
                "expected an AWS OpenSearch domain name: 3–28 characters of a-z, 0-9 and '-', \
                 starting with a letter",
            ));
        }
        if !is_region(&o.region) {
            p.push(Problem::new(
                "opensearch.region",
                &o.region,
                "expected an AWS region such as eu-west-1 or us-east-2",
            ));
        }
        let mut host = None;
        if let Some(ep) = &o.endpoint {
            match url_host(ep) {
                Ok(h) => host = Some(h.to_string()),
                Err(why) => p.push(Problem::new(
                    "opensearch.endpoint",
                    ep,
                    // The loopback case is a tunnel or relay on the sensor itself (and the test seam).
                    format!("{why}, e.g. https://search-ids2-abc.eu-west-1.es.amazonaws.com"),
                )),
            }
        }
        let prefix_ok = (1..=32).contains(&o.index_prefix.len())
            && o.index_prefix
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            && !o.index_prefix.starts_with(['-', '_']);
        if !prefix_ok {
            p.push(Problem::new(
                "opensearch.index_prefix",
                &o.index_prefix,
                "expected 1–32 characters of a-z, 0-9 and '-' (OpenSearch index names are lower case)",
            ));
        }
        (o.auth.validate(p), host)
    }
}

impl Auth {
    /// Checks the keys of the chosen method; returns the resolved auth.
    fn validate(&self, p: &mut Vec<Problem>) -> Option<AuthSettings> {
        let a = self;
        let stray = |keys: &[(&str, bool)], method: &str, p: &mut Vec<Problem>| {
            for (k, set) in keys {
                if *set {
                    p.push(Problem::at(
                        format!("opensearch.auth.{k}"),
                        format!("does not apply to method `{method}`; remove it"),
                    ));
                }
            }
        };
        for (key, path) in [
            ("credentials_file", &a.credentials_file),
            ("password_file", &a.password_file),
        ] {
            if let Some(v) = path {
                check_abs_path(&format!("opensearch.auth.{key}"), v, p);
            }
        }
        match a.method.as_str() {
            "aws_sigv4" => {
                stray(
                    &[
                        ("username", a.username.is_some()),
                        ("password_file", a.password_file.is_some()),
                    ],
                    "aws_sigv4",
                    p,
                );
                if let Some(arn) = &a.role_arn {
                    if !arn.starts_with("arn:aws") || !arn.contains(":role/") {
                        p.push(Problem::new(
                            "opensearch.auth.role_arn",
                            arn,
                            "expected an IAM role ARN such as arn:aws:iam::123456789012:role/ids2-sensor",
                        ));
                    }
                }
                Some(AuthSettings::AwsSigv4 {
                    profile: a.profile.clone(),
                    credentials_file: a.credentials_file.as_ref().map(PathBuf::from),
                    role_arn: a.role_arn.clone(),
                })
            }
            "basic" => {
                stray(
                    &[
                        ("profile", a.profile.is_some()),
                        ("credentials_file", a.credentials_file.is_some()),
                        ("role_arn", a.role_arn.is_some()),
                    ],
                    "basic",
                    p,
                );
                let user = a.username.clone().filter(|u| !u.is_empty());
                if user.is_none() {
                    p.push(Problem::at(
                        "opensearch.auth.username",
                        "required when method is `basic`",
                    ));
                }
                if a.password_file.is_none() {
                    p.push(Problem::at(
                        "opensearch.auth.password_file",
                        "required when method is `basic`: the path of a file holding the password",
                    ));
                }
                Some(AuthSettings::Basic {
                    username: user?,
                    password_file: PathBuf::from(a.password_file.clone()?),
                })
            }
            other => {
                p.push(Problem::new(
                    "opensearch.auth.method",
                    other,
                    "expected `aws_sigv4` or `basic`",
                ));
                None
            }
        }
    }
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        assert!(is_region("eu-west-1"));
        assert!(is_region("us-gov-west-1"));
        assert!(!is_region("europe"));
        assert!(!is_region("eu-west-"));
    }

    #[test]
    fn opensearch_endpoint_needs_tls_except_to_loopback() {
        let with = |ep: &str| {
            format!(
                "sensor: {{id: s1}}\nopensearch: {{domain: ids2, region: eu-west-1, endpoint: '{ep}'}}\n"
            )
        };
        for (ep, host) in [
            (
                "https://search-x.eu-west-1.es.amazonaws.com",
                "search-x.eu-west-1.es.amazonaws.com",
            ),
            ("https://os.example:9200/", "os.example"),
            ("http://127.0.0.1:9200", "127.0.0.1"),
            ("http://localhost:9200", "localhost"),
        ] {
            let s = crate::config::from_str(&with(ep), std::path::Path::new("t.yaml")).unwrap();
            assert_eq!(s.opensearch_host.as_deref(), Some(host), "{ep}");
        }
        for bad in [
            "http://10.0.0.1:9200",
            "https://user@os.example",
            "os.example",
        ] {
            let err = crate::config::from_str(&with(bad), std::path::Path::new("t.yaml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("opensearch.endpoint"), "{bad}: {err}");
        }
    }
}
