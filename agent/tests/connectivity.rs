//! Connectivity checks against real local servers: a TLS server on 127.0.0.1 with a CA made
//! in the test (valid, wrong host name, expired, untrusted), a DNS responder on 127.0.0.1,
//! and an HTTP server answering `_cluster/health`.
//!
//! Stand-ins, named as such: the DNS responder is a few lines of UDP (no DNS server package is
//! needed for one NXDOMAIN), and the OpenSearch data plane is a small HTTP server (nothing
//! installable here serves it, see DESIGN.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ids2_agent::config::AuthSettings;
use ids2_agent::connectivity::{DnsChecker, OpenSearchChecker, TlsChecker, TlsFailure};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use time::OffsetDateTime;
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

const DAY: i64 = 86_400;
const TIMEOUT: Duration = Duration::from_secs(5);

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        Self {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `host` valid from `from_days` to `to_days` relative to now.
    fn leaf(
        &self,
        host: &str,
        from_days: i64,
        to_days: i64,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut p = CertificateParams::new(vec![host.to_string()]).unwrap();
        let now = OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(from_days);
        p.not_after = now + time::Duration::days(to_days);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

/// A TLS server on 127.0.0.1:0 presenting `cert`; handshakes until the test ends.
async fn tls_server(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> SocketAddr {
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn valid_certificate_verifies_and_reports_expiry() {
    let ca = Ca::new("ids2 test CA");
    let (cert, key) = ca.leaf("sensor.test", -1, 30);
    let addr = tls_server(cert, key).await;
    let checker = TlsChecker::new(Some(ca.pem().as_bytes())).unwrap();
    let r = checker
        .check("sensor.test", addr.port(), Some(addr), TIMEOUT)
        .await;
    assert_eq!(r.result, Ok(()));
    let secs = r.expires_in_secs.expect("expiry of a verified certificate");
    assert!((29 * DAY..=30 * DAY).contains(&secs), "{secs}");
    assert!(r.latency > Duration::ZERO);
}

#[tokio::test]
async fn wrong_host_name_is_refused() {
    let ca = Ca::new("ids2 test CA");
    let (cert, key) = ca.leaf("sensor.test", -1, 30);
    let addr = tls_server(cert, key).await;
    let checker = TlsChecker::new(Some(ca.pem().as_bytes())).unwrap();
    let r = checker
        .check("other.test", addr.port(), Some(addr), TIMEOUT)
        .await;
    assert_eq!(r.result, Err(TlsFailure::WrongHostName));
}

#[tokio::test]
async fn expired_certificate_is_refused_and_says_how_long_ago() {
    let ca = Ca::new("ids2 test CA");
    let (cert, key) = ca.leaf("sensor.test", -60, -2);
    let addr = tls_server(cert, key).await;
    let checker = TlsChecker::new(Some(ca.pem().as_bytes())).unwrap();
    let r = checker
        .check("sensor.test", addr.port(), Some(addr), TIMEOUT)
        .await;
    assert_eq!(r.result, Err(TlsFailure::Expired));
    let secs = r
        .expires_in_secs
        .expect("the expired certificate's date is still reported");
    assert!((-3 * DAY..=-2 * DAY).contains(&secs), "{secs}");
}

#[tokio::test]
async fn untrusted_issuer_is_refused() {
    let ca = Ca::new("ids2 test CA");
    let (cert, key) = ca.leaf("sensor.test", -1, 30);
    let addr = tls_server(cert, key).await;
    // Only the webpki roots: the test CA is not among them.
    let checker = TlsChecker::new(None).unwrap();
    let r = checker
        .check("sensor.test", addr.port(), Some(addr), TIMEOUT)
        .await;
    assert_eq!(r.result, Err(TlsFailure::Untrusted));
    // And a different private CA does not help either.
    let other = Ca::new("another CA");
    let checker = TlsChecker::new(Some(other.pem().as_bytes())).unwrap();
    let r = checker
        .check("sensor.test", addr.port(), Some(addr), TIMEOUT)
        .await;
    assert_eq!(r.result, Err(TlsFailure::Untrusted));
}

#[tokio::test]
async fn closed_port_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let checker = TlsChecker::new(None).unwrap();
    let r = checker
        .check("sensor.test", addr.port(), Some(addr), TIMEOUT)
        .await;
    assert!(
        matches!(r.result, Err(TlsFailure::Connect(_))),
        "{:?}",
        r.result
    );
}

/// Stand-in DNS server: answers A for `ok.ids2.test` with 192.0.2.7, an empty NOERROR for
/// its other record types, and NXDOMAIN for every other name.
async fn dns_stand_in() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let q = &buf[..n];
            if n < 12 {
                continue;
            }
            let mut i = 12;
            let mut labels = Vec::new();
            while i < n && q[i] != 0 {
                let len = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[i + 1..i + 1 + len]).to_lowercase());
                i += 1 + len;
            }
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let question_end = i + 5;
            let name = labels.join(".");
            let known = name == "ok.ids2.test";
            let answer_a = known && qtype == 1;
            let mut r = Vec::new();
            r.extend_from_slice(&q[0..2]);
            r.extend_from_slice(&[0x81, if known { 0x80 } else { 0x83 }]);
            r.extend_from_slice(&[0, 1, 0, answer_a as u8, 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..question_end]);
            if answer_a {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
            }
            let _ = sock.send_to(&r, peer).await;
        }
    });
    addr
}

#[tokio::test]
async fn dns_resolves_and_reports_nxdomain() {
    let server = dns_stand_in().await;
    let dns = DnsChecker::with_server(server, TIMEOUT).unwrap();
    let ok = dns.check("ok.ids2.test").await;
    assert_eq!(ok.result, Ok(vec!["192.0.2.7".parse().unwrap()]));
    let nx = dns.check("missing.ids2.test").await;
    let err = nx.result.unwrap_err();
    assert!(err.contains("NXDOMAIN"), "{err}");
}

#[tokio::test]
async fn dns_without_a_server_fails_within_the_timeout() {
    // A bound UDP socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dns =
        DnsChecker::with_server(silent.local_addr().unwrap(), Duration::from_millis(300)).unwrap();
    let r = dns.check("ok.ids2.test").await;
    assert!(r.result.is_err());
    assert!(r.latency < Duration::from_secs(5), "{:?}", r.latency);
}

/// Stand-in for OpenSearch's `_cluster/health`: green when the request carries the expected
/// authorization, 403 otherwise. Returns the base URL and the authorization headers seen.
async fn opensearch_stand_in(
    accept_prefix: &'static str,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        s.lock().unwrap().push(auth.clone());
                        let ok = req.uri().path() == "/_cluster/health"
                            && auth.starts_with(accept_prefix);
                        let (status, body) = if ok {
                            (200, r#"{"cluster_name":"stand-in","status":"green"}"#)
                        } else {
                            (403, r#"{"message":"forbidden"}"#)
                        };
                        let resp = hyper::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn opensearch_health_signed_with_sigv4_from_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("aws");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id=AKIDWRONG\naws_secret_access_key=x\n\
         [ids2-sensor]\naws_access_key_id=AKIDSENSOR\naws_secret_access_key=y\n",
    )
    .unwrap();
    let (url, seen) = opensearch_stand_in("AWS4-HMAC-SHA256 Credential=AKIDSENSOR/").await;
    let auth = AuthSettings::AwsSigv4 {
        profile: Some("ids2-sensor".into()),
        credentials_file: Some(creds),
        role_arn: None,
    };
    let os = OpenSearchChecker::new(&url, "eu-west-1", auth, TIMEOUT, None).unwrap();
    let r = os.check().await;
    assert_eq!(r.result, Ok("green".to_string()));
    let header = seen.lock().unwrap()[0].clone();
    assert!(header.contains("/eu-west-1/es/aws4_request"), "{header}");
}

#[tokio::test]
async fn opensearch_basic_auth_and_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    // base64("ids2:s3cret")
    let (url, _) = opensearch_stand_in("Basic aWRzMjpzM2NyZXQ=").await;
    let good = AuthSettings::Basic {
        username: "ids2".into(),
        password_file: pw.clone(),
    };
    let os = OpenSearchChecker::new(&url, "eu-west-1", good, TIMEOUT, None).unwrap();
    assert_eq!(os.check().await.result, Ok("green".to_string()));
    let bad = AuthSettings::Basic {
        username: "other".into(),
        password_file: pw,
    };
    let os = OpenSearchChecker::new(&url, "eu-west-1", bad, TIMEOUT, None).unwrap();
    let err = os.check().await.result.unwrap_err();
    assert!(err.contains("403"), "{err}");
}
