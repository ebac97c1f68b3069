//! TLS handshake with full verification (webpki roots plus an optional extra CA) and the
//! number of seconds until the server's certificate expires — reported even when the
//! handshake fails, so an expired certificate shows how long ago it expired.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use super::ConnectivityError;

/// Why a handshake failed, in the terms an operator acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// TCP connect failed (or the name did not resolve).
    Connect(String),
    /// The certificate does not name the host.
    WrongHostName,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet (clock?).
    NotYetValid,
    /// The certificate does not chain to a trusted root.
    Untrusted,
    /// Anything else in the handshake.
    Other(String),
    /// No answer within the timeout.
    Timeout,
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::Connect(e) => write!(f, "connect failed: {e}"),
            TlsFailure::WrongHostName => f.write_str("certificate is not valid for this host name"),
            TlsFailure::Expired => f.write_str("certificate has expired"),
            TlsFailure::NotYetValid => {
                f.write_str("certificate is not valid yet (check the clock)")
            }
            TlsFailure::Untrusted => f.write_str("certificate is not issued by a trusted CA"),
            TlsFailure::Other(e) => write!(f, "handshake failed: {e}"),
            TlsFailure::Timeout => f.write_str("timed out"),
        }
    }
}

/// The result of one handshake.
#[derive(Debug, Clone)]
pub struct TlsReport {
    /// Ok when the handshake verified.
    pub result: Result<(), TlsFailure>,
    /// Seconds until the leaf certificate's notAfter (negative when past), when one was seen.
    pub expires_in_secs: Option<i64>,
    /// Time taken.
    pub latency: Duration,
}

/// Runs verified handshakes.
#[derive(Debug, Clone)]
pub struct TlsChecker {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl TlsChecker {
    /// Trusts the webpki (Mozilla) roots plus every certificate in `extra_ca_pem` (the seam
    /// tests use for their own CA; a private PKI on a sensor could use it too).
    pub fn new(extra_ca_pem: Option<&[u8]>) -> Result<Self, ConnectivityError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_ca_pem {
            let mut reader = pem;
            let certs: Vec<_> = rustls_pemfile::certs(&mut reader)
                .collect::<Result<_, _>>()
                .map_err(|e| ConnectivityError::Ca(e.to_string()))?;
            if certs.is_empty() {
                return Err(ConnectivityError::Ca("no PEM certificate found".into()));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| ConnectivityError::Ca(e.to_string()))?;
            }
        }
        Ok(Self {
            roots: Arc::new(roots),
            provider: Arc::new(ring::default_provider()),
        })
    }

    /// Handshakes with `host:port`; `connect_to` overrides where the TCP connection goes (like
    /// curl's `--resolve`) while `host` is still what the certificate must name.
    pub async fn check(
        &self,
        host: &str,
        port: u16,
        connect_to: Option<SocketAddr>,
        timeout: Duration,
    ) -> TlsReport {
        let start = Instant::now();
        let capture = match self.verifier() {
            Ok(v) => v,
            Err(e) => {
                return TlsReport {
                    result: Err(TlsFailure::Other(e)),
                    expires_in_secs: None,
                    latency: start.elapsed(),
                }
            }
        };
        let result = tokio::time::timeout(
            timeout,
            self.handshake(host, port, connect_to, capture.clone()),
        )
        .await
        .unwrap_or(Err(TlsFailure::Timeout));
        let seen = capture
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        TlsReport {
            result,
            expires_in_secs: seen.as_deref().and_then(seconds_until_expiry),
            latency: start.elapsed(),
        }
    }

    fn verifier(&self) -> Result<Arc<CapturingVerifier>, String> {
        let inner =
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .build()
                .map_err(|e| e.to_string())?;
        Ok(Arc::new(CapturingVerifier {
            inner,
            seen: Mutex::new(None),
        }))
    }

    async fn handshake(
        &self,
        host: &str,
        port: u16,
        connect_to: Option<SocketAddr>,
        verifier: Arc<CapturingVerifier>,
    ) -> Result<(), TlsFailure> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| TlsFailure::Other(format!("bad server name {host:?}: {e}")))?;
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsFailure::Other(e.to_string()))?
            // "dangerous" only in name: the verifier delegates every decision to webpki and
            // merely keeps a copy of the certificate it was shown.
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let tcp = match connect_to {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((host, port)).await,
        }
        .map_err(|e| TlsFailure::Connect(e.to_string()))?;
        TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map(drop)
            .map_err(classify)
    }
}

fn classify(e: std::io::Error) -> TlsFailure {
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return TlsFailure::Other(e.to_string());
    };
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::WrongHostName
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsFailure::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsFailure::NotYetValid
            }
            CertificateError::UnknownIssuer => TlsFailure::Untrusted,
            other => TlsFailure::Other(format!("{other:?}")),
        },
        other => TlsFailure::Other(other.to_string()),
    }
}

/// Seconds from now until the certificate's notAfter.
pub fn seconds_until_expiry(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(not_after - now)
}

#[derive(Debug)]
struct CapturingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for CapturingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(end_entity.to_vec());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
