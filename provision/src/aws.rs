//! AWS SDK setup shared by the control plane and SigV4 signing.
//!
//! Credentials are resolved before any call so that "not logged in" is reported as such,
//! with what to run, instead of surfacing as an opaque signing failure mid-way.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sdk_opensearch::config::SharedHttpClient;
use aws_smithy_http_client::tls;

/// Where AWS calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsTarget {
    /// Region, e.g. `eu-west-1`.
    pub region: String,
    /// Named profile from the shared config files; `None` uses the default chain.
    pub profile: Option<String>,
    /// Overrides the service endpoint (an emulator such as moto); `None` is the real AWS.
    pub endpoint_url: Option<String>,
}

/// Why the AWS side could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The region is not shaped like an AWS region.
    #[error(
        "`{0}` is not an AWS region name: expected e.g. eu-west-1, us-east-2 or ap-southeast-2"
    )]
    BadRegion(String),
    /// No credentials anywhere in the chain.
    #[error(
        "no usable AWS credentials{profile}: log in first — `aws sso login{sso}` for an SSO \
         profile, `aws configure` for access keys, or export AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY (AWS_PROFILE selects a profile)",
        profile = .profile.as_deref().map(|p| format!(" for profile `{p}`")).unwrap_or_default(),
        sso = .profile.as_deref().map(|p| format!(" --profile {p}")).unwrap_or_default()
    )]
    NoCredentials {
        /// The profile asked for, if any.
        profile: Option<String>,
        /// What the credential chain reported.
        #[source]
        source: CredentialsError,
    },
    /// Nothing to check AWS's TLS certificates against.
    #[error(
        "no trusted root certificate in {store}{errors}: install the system's CA certificates \
         (the ca-certificates package) or point SSL_CERT_FILE at a PEM bundle",
        errors = if .errors.is_empty() { String::new() } else { format!(" ({})", .errors.join("; ")) }
    )]
    NoRootCertificates {
        /// Where they were looked for: SSL_CERT_FILE / SSL_CERT_DIR, or the system's store.
        store: String,
        /// What loading them reported.
        errors: Vec<String>,
    },
}

impl AwsError {
    /// True when the operator's arguments, not the environment, are at fault.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, AwsError::BadRegion(_))
    }
}

/// Checks the shape `<area>-<place>-<n>` (`us-gov-west-1` included) without a fixed list,
/// which would go stale as AWS opens regions.
pub fn check_region(region: &str) -> Result<(), AwsError> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts.len() <= 4
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[0].len() == 2
        && parts[parts.len() - 1]
            .parse::<u8>()
            .is_ok_and(|n| (1..=20).contains(&n));
    if ok {
        Ok(())
    } else {
        Err(AwsError::BadRegion(region.to_string()))
    }
}

/// The HTTPS client of every AWS call (the control plane and the credential providers): rustls
/// on ring with the system's roots, chosen here because the SDK's default would be aws-lc.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Fails, saying where it looked, when the roots `https_client` trusts (SSL_CERT_FILE or
/// SSL_CERT_DIR when set, else the system's store) hold no certificate: the SDK would only find
/// out at its first HTTPS call, as an unknown issuer (and a panic in debug builds).
fn check_root_certificates() -> Result<(), AwsError> {
    let found = rustls_native_certs::load_native_certs();
    if !found.certs.is_empty() {
        return Ok(());
    }
    let set: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .into_iter()
        .filter_map(|var| std::env::var(var).ok().map(|v| format!("{var}={v}")))
        .collect();
    Err(AwsError::NoRootCertificates {
        store: if set.is_empty() {
            "the system's certificate store".to_string()
        } else {
            set.join(", ")
        },
        errors: found.errors.iter().map(ToString::to_string).collect(),
    })
}

/// Loads the SDK config for `target` and resolves credentials once.
pub async fn load(target: &AwsTarget) -> Result<(SdkConfig, Credentials), AwsError> {
    check_region(&target.region)?;
    // Only moto and the like answer plain HTTP; AWS itself, and its credential services, TLS.
    if !target
        .endpoint_url
        .as_deref()
        .is_some_and(|u| u.starts_with("http://"))
    {
        check_root_certificates()?;
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(target.region.clone()))
        .http_client(https_client());
    if let Some(p) = &target.profile {
        loader = loader.profile_name(p);
    }
    if let Some(url) = &target.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    let no_creds = |source| AwsError::NoCredentials {
        profile: target.profile.clone(),
        source,
    };
    let provider = config.credentials_provider().ok_or_else(|| {
        no_creds(CredentialsError::not_loaded(
            "the SDK found no credential provider",
        ))
    })?;
    let credentials = provider.provide_credentials().await.map_err(no_creds)?;
    Ok((config, credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_shapes() {
        for ok in [
            "eu-west-1",
            "us-east-2",
            "ap-southeast-4",
            "us-gov-west-1",
            "il-central-1",
        ] {
            assert!(check_region(ok).is_ok(), "{ok}");
        }
        for bad in [
            "eu-west",
            "euwest1",
            "EU-WEST-1",
            "eu-west-1a",
            "europe-west-1",
            "",
            "eu--1",
        ] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
    }
}
