//! `domain ensure/status/delete` against a real AWS emulator (moto_server), through the CLI.
//! Each test starts its own moto on a free loopback port; tests skip when moto is absent.
//! The AWS API is HTTPS only, and moto speaks plain HTTP: one test puts a TLS front (rustls, a
//! test CA) before moto, so the SDK's HTTPS client and its certificate checks run too.

#[path = "support/moto.rs"]
mod moto;

use assert_cmd::Command;
use aws_sdk_opensearch::config::{BehaviorVersion, Credentials, Region};
use predicates::prelude::*;

const OPERATOR: &str = "arn:aws:iam::123456789012:user/alice";
const SENSOR_ROLE: &str = "arn:aws:iam::123456789012:role/ids2-sensor";

/// The CLI with dummy credentials and nothing from the host's AWS setup.
fn cli(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ids2-provision"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    c
}

fn domain_args<'a>(cmd: &'a str, m: &'a moto::Moto) -> Vec<&'a str> {
    domain_args_at(cmd, &m.url)
}

/// `domain CMD` for domain `ids2` in eu-west-1, its API at `url`.
fn domain_args_at<'a>(cmd: &'a str, url: &'a str) -> Vec<&'a str> {
    vec![
        "domain",
        cmd,
        "--name",
        "ids2",
        "--region",
        "eu-west-1",
        "--endpoint-url",
        url,
    ]
}

/// An SDK client on moto, to inspect its state independently of the CLI.
fn sdk(m: &moto::Moto) -> aws_sdk_opensearch::Client {
    let config = aws_sdk_opensearch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(&m.url)
        .http_client(ids2_provision::aws::https_client())
        .build();
    aws_sdk_opensearch::Client::from_conf(config)
}

fn domain_names(m: &moto::Moto) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(sdk(m).list_domain_names().send())
        .unwrap()
        .domain_names()
        .iter()
        .filter_map(|d| d.domain_name().map(str::to_string))
        .collect()
}

#[test]
fn ensure_twice_creates_once_with_secure_defaults() {
    let Some(m) = moto::Moto::start(false) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let mut args = domain_args("ensure", &m);
    args.extend(["--principal", OPERATOR, "--principal", SENSOR_ROLE]);

    let first = cli(home.path()).args(&args).assert().success();
    let first_out = String::from_utf8(first.get_output().stdout.clone()).unwrap();
    let first_err = String::from_utf8(first.get_output().stderr.clone()).unwrap();
    assert!(first_err.contains("created domain ids2"), "{first_err}");
    assert!(
        first_out.trim().starts_with("https://"),
        "endpoint printed: {first_out}"
    );
    assert_eq!(m.create_calls(), 1);
    assert_eq!(domain_names(&m), ["ids2"]);

    let second = cli(home.path()).args(&args).assert().success();
    let second_out = String::from_utf8(second.get_output().stdout.clone()).unwrap();
    let second_err = String::from_utf8(second.get_output().stderr.clone()).unwrap();
    assert!(
        second_err.contains("already exists; nothing changed"),
        "{second_err}"
    );
    assert!(
        !second_err.contains("warning"),
        "a domain we created is secure: {second_err}"
    );
    assert_eq!(second_out, first_out, "same endpoint both times");
    assert_eq!(
        m.create_calls(),
        1,
        "the second ensure must not call CreateDomain"
    );
    assert_eq!(domain_names(&m), ["ids2"]);

    // What moto holds is what ensure asked for.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt
        .block_on(sdk(&m).describe_domain().domain_name("ids2").send())
        .unwrap();
    let d = out.domain_status().unwrap();
    let ep = d.domain_endpoint_options().unwrap();
    assert_eq!(ep.enforce_https(), Some(true));
    assert_eq!(
        ep.tls_security_policy().map(|p| p.as_str()),
        Some("Policy-Min-TLS-1-2-2019-07")
    );
    assert_eq!(
        d.encryption_at_rest_options().unwrap().enabled(),
        Some(true)
    );
    assert_eq!(
        d.node_to_node_encryption_options().unwrap().enabled(),
        Some(true)
    );
    let policy: serde_json::Value = serde_json::from_str(d.access_policies().unwrap()).unwrap();
    assert_eq!(
        policy["Statement"][0]["Principal"]["AWS"],
        serde_json::json!([OPERATOR, SENSOR_ROLE])
    );
    assert_eq!(
        policy["Statement"][0]["Resource"],
        "arn:aws:es:eu-west-1:123456789012:domain/ids2/*"
    );
    assert_eq!(d.engine_version(), Some("OpenSearch_2.19"));
}

#[test]
fn ensure_without_principal_for_a_new_domain_is_refused_before_create() {
    let Some(m) = moto::Moto::start(false) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    cli(home.path())
        .args(domain_args("ensure", &m))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs at least one --principal"));
    assert_eq!(m.create_calls(), 0);
    assert!(domain_names(&m).is_empty());
}

#[test]
fn status_shows_the_domain_and_not_found_names_the_fix() {
    let Some(m) = moto::Moto::start(false) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    cli(home.path())
        .args(domain_args("status", &m))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "no OpenSearch domain `ids2` in region eu-west-1",
        ))
        .stderr(predicate::str::contains("list-domain-names"));
    let mut args = domain_args("ensure", &m);
    args.extend(["--principal", OPERATOR]);
    cli(home.path()).args(&args).assert().success();
    cli(home.path())
        .args(domain_args("status", &m))
        .assert()
        .success()
        .stdout(predicate::str::contains("state:     active"))
        .stdout(predicate::str::contains("1 x t3.small.search, 10 GiB each"))
        .stdout(predicate::str::contains(
            "HTTPS enforced, TLS 1.2+, encrypted at rest and between nodes",
        ));
}

#[test]
fn delete_needs_yes_then_removes_and_reports_not_found_after() {
    let Some(m) = moto::Moto::start(false) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let mut args = domain_args("ensure", &m);
    args.extend(["--principal", OPERATOR]);
    cli(home.path()).args(&args).assert().success();
    let before = m.requests().len();

    cli(home.path())
        .args(domain_args("delete", &m))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("without --yes"));
    assert_eq!(m.requests().len(), before, "refusal sends nothing");
    assert_eq!(domain_names(&m), ["ids2"]);

    let mut yes = domain_args("delete", &m);
    yes.push("--yes");
    cli(home.path())
        .args(&yes)
        .assert()
        .success()
        .stdout(predicate::str::contains("deletion of domain ids2 started"));
    assert!(domain_names(&m).is_empty());
    cli(home.path())
        .args(&yes)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no OpenSearch domain `ids2`"));
}

#[test]
fn no_credentials_is_reported_before_any_call() {
    let Some(m) = moto::Moto::start(false) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    cli(home.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(domain_args("status", &m))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no usable AWS credentials"))
        .stderr(predicate::str::contains("aws sso login"));
    assert!(m.requests().is_empty(), "{:?}", m.requests());
}

#[test]
fn rejected_credentials_are_reported_with_both_fixes() {
    // moto with IAM enforcement on: the dummy key is unknown to it, as a revoked key is to AWS.
    let Some(m) = moto::Moto::start(true) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    cli(home.path())
        .args(domain_args("status", &m))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("AWS refused DescribeDomain"))
        .stderr(predicate::str::contains("InvalidClientTokenId"))
        .stderr(predicate::str::contains("es:DescribeDomain"));
    assert_eq!(m.create_calls(), 0);
}

#[test]
fn unreachable_api_and_bad_region_are_explained() {
    let home = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind, read it back, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    cli(home.path())
        .args(domain_args_at("status", &url))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "cannot reach the OpenSearch Service API",
        ))
        .stderr(predicate::str::contains("caused by"));
    cli(home.path())
        .args(["domain", "status", "--name", "ids2", "--region", "eu-wets1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`eu-wets1` is not an AWS region name",
        ));
    cli(home.path())
        .args([
            "domain",
            "ensure",
            "--name",
            "IDS2",
            "--region",
            "eu-west-1",
        ])
        .args(["--principal", OPERATOR])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a valid domain name"));
    cli(home.path())
        .args([
            "domain",
            "ensure",
            "--name",
            "ids2",
            "--region",
            "eu-west-1",
        ])
        .args(["--principal", "alice"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not an IAM principal ARN"));
}

#[test]
fn multi_node_domain_spreads_nodes_over_zones() {
    let Some(m) = moto::Moto::start(false) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let mut args = domain_args("ensure", &m);
    args.extend([
        "--principal",
        OPERATOR,
        "--instance-count",
        "2",
        "--volume-gb",
        "20",
    ]);
    cli(home.path()).args(&args).assert().success();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt
        .block_on(sdk(&m).describe_domain().domain_name("ids2").send())
        .unwrap();
    let d = out.domain_status().unwrap();
    let c = d.cluster_config().unwrap();
    assert_eq!(c.instance_count(), Some(2));
    assert_eq!(c.zone_awareness_enabled(), Some(true));
    assert_eq!(
        c.zone_awareness_config()
            .and_then(|z| z.availability_zone_count()),
        Some(2)
    );
    assert_eq!(d.ebs_options().unwrap().volume_size(), Some(20));
    assert_eq!(
        d.ebs_options().unwrap().volume_type().map(|v| v.as_str()),
        Some("gp3")
    );
}

fn test_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "ids2 test CA");
    rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// A TLS front on 127.0.0.1:0 presenting a leaf for 127.0.0.1 signed by a new CA, passing each
/// connection on to moto; the CA's PEM and the front's `https://` URL.
fn tls_front(rt: &tokio::runtime::Runtime, m: &moto::Moto) -> (String, String) {
    use std::sync::Arc;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::rustls::{crypto::ring, ServerConfig};

    let ca = test_ca();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let backend = m.url.trim_start_matches("http://").to_string();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                // A refused handshake is the untrusted case working: nothing to pass on.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut moto = tokio::net::TcpStream::connect(&backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut moto).await;
            });
        }
    });
    (ca.pem(), url)
}

#[test]
fn the_api_is_reached_over_tls_only_with_a_trusted_certificate() {
    let Some(m) = moto::Moto::start(false) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ca, url) = tls_front(&rt, &m);
    let home = tempfile::tempdir().unwrap();
    let ca_file = home.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let args = domain_args_at("status", &url);
    // `domain status` through the front with only `roots` trusted: it fails either way (moto
    // has no domain), and what it says tells how far it got.
    let status_trusting = |roots: &std::path::Path| {
        cli(home.path())
            .env("SSL_CERT_FILE", roots)
            .args(&args)
            .assert()
            .code(1)
    };
    let describes = || {
        m.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/2021-01-01/opensearch/domain/"))
            .count()
    };

    // The CA in the trust store (the system roots' loader reads SSL_CERT_FILE): moto's answer
    // comes back through TLS.
    status_trusting(&ca_file).stderr(predicate::str::contains(
        "no OpenSearch domain `ids2` in region eu-west-1",
    ));
    assert_eq!(describes(), 1, "{:?}", m.requests());

    // Another CA trusted instead: the same front's certificate is refused, so the connection
    // fails and nothing reaches moto. (Against this front the SDK's error ends at "client error
    // (Connect)"; against `openssl s_server` it goes on to "invalid peer certificate:
    // UnknownIssuer", checked by hand.)
    let other = home.path().join("other-ca.pem");
    std::fs::write(&other, test_ca().pem()).unwrap();
    status_trusting(&other)
        .stderr(predicate::str::contains(format!(
            "cannot reach the OpenSearch Service API at {url}"
        )))
        .stderr(predicate::str::contains("client error (Connect)"));
    assert_eq!(describes(), 1, "{:?}", m.requests());

    // No root at all: said before any call, with where it looked and the fix.
    let missing = home.path().join("no-such-file.pem");
    status_trusting(&missing)
        .stderr(predicate::str::contains(format!(
            "no trusted root certificate in SSL_CERT_FILE={}",
            missing.display()
        )))
        .stderr(predicate::str::contains("ca-certificates"));
    assert_eq!(describes(), 1, "{:?}", m.requests());
}
