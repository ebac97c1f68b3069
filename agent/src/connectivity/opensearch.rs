//! `GET /_cluster/health` (and, for the fleet policy, any GET) on the OpenSearch endpoint, signed with SigV4 (credentials from the
//! shared credentials file and profile in the settings) or with basic auth (password file).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use super::ConnectivityError;
use crate::config::AuthSettings;

/// The result of one health request.
#[derive(Debug, Clone)]
pub struct OpenSearchReport {
    /// The cluster status (`green`, `yellow`), or why the check failed (including `red`).
    pub result: Result<String, String>,
    /// Time taken.
    pub latency: Duration,
}

/// Queries cluster health.
#[derive(Debug, Clone)]
pub struct OpenSearchChecker {
    client: reqwest::Client,
    base_url: String,
    region: String,
    auth: AuthSettings,
}

impl OpenSearchChecker {
    /// A checker for `base_url` (the endpoint; an `http://` URL is the test seam). `extra_ca_pem`
    /// adds a trusted CA next to the webpki roots.
    pub fn new(
        base_url: &str,
        region: &str,
        auth: AuthSettings,
        timeout: Duration,
        extra_ca_pem: Option<&[u8]>,
    ) -> Result<Self, ConnectivityError> {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("ids2-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ConnectivityError::Ca(e.to_string()))?;
            b = b.add_root_certificate(cert);
        }
        Ok(Self {
            client: b
                .build()
                .map_err(|e| ConnectivityError::Http(e.to_string()))?,
            base_url: base_url.trim_end_matches('/').to_string(),
            region: region.to_string(),
            auth,
        })
    }

    /// One signed `GET /_cluster/health`.
    pub async fn check(&self) -> OpenSearchReport {
        let start = Instant::now();
        let result = self.health().await;
        OpenSearchReport {
            result,
            latency: start.elapsed(),
        }
    }

    /// One signed GET of `path_and_query` (from `/`): the URL, the HTTP status and the JSON
    /// body. Errors say what failed (unreachable, credentials, a body that is not JSON).
    pub async fn get_json(
        &self,
        path_and_query: &str,
    ) -> Result<(String, u16, serde_json::Value), String> {
        let url = format!("{}{path_and_query}", self.base_url);
        let mut req = self.client.get(&url);
        match &self.auth {
            AuthSettings::Basic {
                username,
                password_file,
            } => {
                let password = read_first_line(password_file)?;
                req = req.basic_auth(username, Some(password));
            }
            AuthSettings::AwsSigv4 {
                profile,
                credentials_file,
                ..
            } => {
                let file = credentials_file
                    .clone()
                    .ok_or("opensearch.auth.credentials_file is not set; SigV4 needs it")?;
                let profile = profile.as_deref().unwrap_or("default");
                let creds = load_credentials(&file, profile)?;
                for (name, value) in sigv4_headers(&creds, &self.region, &url, SystemTime::now())? {
                    req = req.header(name, value);
                }
            }
        }
        let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("{url}: HTTP {status}, body is not JSON: {e}"))?;
        Ok((url, status.as_u16(), body))
    }

    async fn health(&self) -> Result<String, String> {
        let (url, status, body) = self.get_json("/_cluster/health").await?;
        if !(200..300).contains(&status) {
            return Err(format!("{url}: HTTP {status}: {body}"));
        }
        match body.get("status").and_then(|s| s.as_str()) {
            Some(s @ ("green" | "yellow")) => Ok(s.to_string()),
            Some(s) => Err(format!("cluster status is {s}")),
            None => Err(format!("{url}: no status in {body}")),
        }
    }
}

fn read_first_line(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().next().unwrap_or("").to_string())
        .map_err(|e| format!("cannot read password file {}: {e}", path.display()))
}

/// Reads `profile` from an AWS shared credentials file (INI: `[profile]`, `key = value`).
pub fn load_credentials(file: &PathBuf, profile: &str) -> Result<Credentials, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read AWS credentials file {}: {e}", file.display()))?;
    let mut in_section = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim() == profile;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Credentials::new(
            id,
            secret,
            token,
            None,
            "ids2-credentials-file",
        )),
        _ => Err(format!(
            "profile [{profile}] in {} has no aws_access_key_id/aws_secret_access_key",
            file.display()
        )),
    }
}

/// The SigV4 headers (`authorization`, `x-amz-date`, …) for a bodiless GET of `url`.
pub fn sigv4_headers(
    creds: &Credentials,
    region: &str,
    url: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("es")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let request = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| format!("SigV4 request: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("SigV4 signing: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_profile() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("aws");
        std::fs::write(
            &f,
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n\
             [ids2-sensor]\naws_access_key_id=AKIDSENSOR\naws_secret_access_key=s2\n\
             aws_session_token = tok\n",
        )
        .unwrap();
        let c = load_credentials(&f, "ids2-sensor").unwrap();
        assert_eq!(c.access_key_id(), "AKIDSENSOR");
        assert_eq!(c.secret_access_key(), "s2");
        assert_eq!(c.session_token(), Some("tok"));
        let err = load_credentials(&f, "nope").unwrap_err();
        assert!(err.contains("[nope]"), "{err}");
    }

    #[test]
    fn sigv4_headers_name_region_service_and_key() {
        let c = Credentials::new("AKIDEXAMPLE", "secret", None, None, "t");
        let h = sigv4_headers(
            &c,
            "eu-west-1",
            "https://x.example/_cluster/health",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/es/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            h.iter()
                .any(|(k, v)| k == "x-amz-date" && v == "20231114T221320Z"),
            "{h:?}"
        );
    }
}
