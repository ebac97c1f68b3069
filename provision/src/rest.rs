//! A small JSON client for the OpenSearch and Dashboards REST APIs, signing each request
//! with SigV4 (service `es`) or sending HTTP basic auth.
//!
//! Signing happens on the finished request, after reqwest has fixed the URL and body, so
//! the bytes signed are the bytes sent.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;

/// How requests authenticate.
#[derive(Clone)]
pub enum Auth {
    /// AWS SigV4 with these credentials, for this region.
    SigV4 {
        /// Resolved credentials.
        credentials: Credentials,
        /// Region of the domain.
        region: String,
    },
    /// HTTP basic auth (fine-grained access control's internal users).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::SigV4 { region, .. } => write!(f, "SigV4 ({region})"),
            Auth::Basic { username, .. } => write!(f, "Basic ({username})"),
        }
    }
}

/// A response: status and parsed JSON body (`Null` when the body is empty or not JSON).
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub json: Value,
    /// Raw body text, for error messages.
    pub text: String,
}

/// Why a request got no HTTP answer we can use.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Connection refused, DNS failure, TLS failure, timeout.
    #[error(
        "cannot reach {url}: check the endpoint URL, that this machine may reach it (a VPC \
         domain answers only inside its VPC; use an SSH tunnel or a bastion), and proxy settings"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The request could not be signed.
    #[error("cannot sign the request to {url} with SigV4")]
    Signing {
        /// The URL.
        url: String,
        /// What the signer said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The REST client.
pub struct Rest {
    http: reqwest::Client,
    auth: Auth,
}

impl Rest {
    /// A client that gives up on a request after `timeout`.
    pub fn new(auth: Auth, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ids2-provision/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, auth })
    }

    /// Sends one request; `extra` headers (e.g. `osd-xsrf`) are signed along with the rest.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        extra: &[(&'static str, &'static str)],
    ) -> Result<Response, RestError> {
        let unreachable = |source| RestError::Unreachable {
            url: url.to_string(),
            source,
        };
        let mut builder = self.http.request(method, url);
        if let Some(b) = body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b).expect("JSON values always serialise"));
        }
        for (k, v) in extra {
            builder = builder.header(*k, *v);
        }
        if let Auth::Basic { username, password } = &self.auth {
            builder = builder.basic_auth(username, Some(password));
        }
        let mut request = builder.build().map_err(unreachable)?;
        if let Auth::SigV4 {
            credentials,
            region,
        } = &self.auth
        {
            sign_request(&mut request, credentials, region).map_err(|source| {
                RestError::Signing {
                    url: url.to_string(),
                    source,
                }
            })?;
        }
        let response = self.http.execute(request).await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Response { status, json, text })
    }
}

/// Adds `x-amz-date`, `x-amz-content-sha256`, the session token if any, and `authorization`.
fn sign_request(
    request: &mut reqwest::Request,
    credentials: &Credentials,
    region: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let body = request
        .body()
        .and_then(|b| b.as_bytes())
        .unwrap_or_default()
        .to_vec();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let mut settings = SigningSettings::default();
    // The header lets the domain check the body against the signature without re-hashing
    // a streamed body; OpenSearch Serverless requires it and managed domains accept it.
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("es")
        .time(SystemTime::now())
        .settings(settings)
        .build()?
        .into();
    let signable = SignableRequest::new(
        request.method().as_str(),
        request.url().as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )?;
    let (instructions, _signature) = sign(signable, &params)?.into_parts();
    let (new_headers, _params) = instructions.into_parts();
    for h in new_headers {
        let mut value = HeaderValue::from_str(h.value())?;
        value.set_sensitive(h.sensitive());
        request
            .headers_mut()
            .insert(HeaderName::from_static(h.name()), value);
    }
    Ok(())
}
