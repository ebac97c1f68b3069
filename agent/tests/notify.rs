//! Notifications against real servers on loopback: a local HTTP server (hyper) for the webhook
//! and aiosmtpd, a real SMTP server from PyPI, for e-mail over STARTTLS and implicit TLS with a
//! test CA made by rcgen.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ids2_agent::config::{Severity, SmtpTls, WebhookFormat};
use ids2_agent::notify::{
    ChannelKind, EmailConfig, Notifier, NotifyConfig, NotifyStats, Offer, Retry, Sensor,
    WebhookConfig,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

fn alert(sid: u64, src: &str, severity: u64) -> Value {
    json!({
        "timestamp": "2026-03-01T10:00:00.000000+0000", "flow_id": 42, "event_type": "alert",
        "src_ip": src, "src_port": 4444, "dest_ip": "192.168.1.10", "dest_port": 80,
        "proto": "TCP",
        "alert": {"action": "allowed", "gid": 1, "signature_id": sid, "rev": 1,
                  "signature": format!("ET TEST signature {sid}"),
                  "category": "A Network Trojan was detected", "severity": severity}
    })
}

fn config() -> NotifyConfig {
    NotifyConfig {
        sensor: Sensor {
            id: "lab-1".into(),
            name: "Lab sensor".into(),
        },
        min_severity: Severity::High,
        dedupe_window: Duration::from_secs(600),
        burst: 10,
        rate_per_minute: 60,
        digest_interval: Duration::from_secs(300),
        queue_capacity: 1024,
        retry: Retry {
            attempts: 4,
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        webhook: None,
        email: None,
    }
}

/// A recorded webhook request.
#[derive(Debug, Clone)]
struct Hit {
    authorization: Option<String>,
    body: Value,
}

/// A local webhook receiver answering with the queued statuses, then 200.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

async fn receiver(statuses: Vec<u16>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(VecDeque::from(statuses)));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (h, statuses) = (h.clone(), statuses.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (h, statuses) = (h.clone(), statuses.clone());
                    async move {
                        let authorization = req
                            .headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_string());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        h.lock().unwrap().push(Hit {
                            authorization,
                            body: serde_json::from_slice(&body).unwrap(),
                        });
                        let status = statuses.lock().unwrap().pop_front().unwrap_or(200);
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Receiver { addr, hits }
}

impl Receiver {
    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        let deadline = Instant::now() + WAIT;
        loop {
            let hits = self.hits.lock().unwrap().clone();
            if hits.len() >= n || Instant::now() > deadline {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn webhook(url: String, format: WebhookFormat) -> Option<WebhookConfig> {
    Some(WebhookConfig {
        url,
        format,
        bearer_token: None,
        timeout: Duration::from_secs(5),
    })
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the notifier; returns the handle, the stats and a stopper.
fn start(
    cfg: NotifyConfig,
) -> (
    ids2_agent::notify::NotifyHandle,
    Arc<NotifyStats>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let stats = Arc::new(NotifyStats::default());
    let (handle, notifier) = Notifier::new(cfg, stats.clone()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(notifier.run(async move {
        let _ = stopped.await;
    }));
    (handle, stats, stop, task)
}

#[tokio::test]
async fn generic_payload_deduplicated_and_filtered_by_severity() {
    let rx = receiver(vec![]).await;
    let cfg = NotifyConfig {
        webhook: webhook(rx.url(), WebhookFormat::Generic),
        ..config()
    };
    let (handle, stats, stop, task) = start(cfg);
    let a = alert(2001, "203.0.113.9", 1);
    assert_eq!(handle.offer(&a), Offer::Queued);
    assert_eq!(handle.offer(&a), Offer::Queued);
    assert_eq!(handle.offer(&alert(2002, "203.0.113.9", 2)), Offer::Ignored);
    assert_eq!(handle.offer(&json!({"event_type": "dns"})), Offer::Ignored);
    assert_eq!(handle.offer(&alert(2001, "203.0.113.10", 1)), Offer::Queued);
    wait_until("two deliveries and one duplicate", || {
        stats.sent(ChannelKind::Webhook) == 2 && stats.deduplicated() == 1
    })
    .await;
    let hits = rx.wait_for(2).await;
    assert_eq!(hits.len(), 2, "{hits:?}");
    let b = &hits[0].body;
    assert_eq!(b["type"], "alert");
    assert_eq!(b["sensor"], json!({"id": "lab-1", "name": "Lab sensor"}));
    assert_eq!(b["severity"], "high");
    assert_eq!(b["alert"]["signature_id"], 2001);
    assert_eq!(b["alert"]["signature"], "ET TEST signature 2001");
    assert_eq!(b["alert"]["category"], "A Network Trojan was detected");
    assert_eq!(b["alert"]["severity"], 1);
    assert_eq!(b["source"], json!({"ip": "203.0.113.9", "port": 4444}));
    assert_eq!(b["destination"], json!({"ip": "192.168.1.10", "port": 80}));
    assert_eq!(b["protocol"], "TCP");
    assert_eq!(b["flow_id"], 42);
    assert_eq!(hits[1].body["source"]["ip"], "203.0.113.10");
    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(rx.hits.lock().unwrap().len(), 2, "no further posts");
}

#[tokio::test]
async fn slack_payload_is_text_only() {
    let rx = receiver(vec![]).await;
    let cfg = NotifyConfig {
        webhook: webhook(rx.url(), WebhookFormat::Slack),
        ..config()
    };
    let (handle, stats, stop, task) = start(cfg);
    handle.offer(&alert(2001, "203.0.113.9", 1));
    wait_until("delivery", || stats.sent(ChannelKind::Webhook) == 1).await;
    let hits = rx.wait_for(1).await;
    let body = hits[0].body.as_object().unwrap();
    assert_eq!(body.keys().collect::<Vec<_>>(), ["mrkdwn", "text"]);
    assert_eq!(body["mrkdwn"], false);
    let text = body["text"].as_str().unwrap();
    for part in [
        "HIGH alert",
        "Lab sensor",
        "ET TEST signature 2001 (sid 2001)",
        "203.0.113.9:4444 → 192.168.1.10:80 TCP",
        "A Network Trojan was detected",
    ] {
        assert!(text.contains(part), "{part:?} missing in {text:?}");
    }
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn over_the_rate_limit_a_digest_replaces_the_storm() {
    let rx = receiver(vec![]).await;
    let cfg = NotifyConfig {
        webhook: webhook(rx.url(), WebhookFormat::Generic),
        burst: 2,
        rate_per_minute: 1,
        digest_interval: Duration::from_millis(500),
        ..config()
    };
    let (handle, stats, stop, task) = start(cfg);
    for i in 0..10 {
        let sid = 3000 + (i % 3);
        assert_eq!(
            handle.offer(&alert(sid, &format!("203.0.113.{i}"), 1)),
            Offer::Queued
        );
    }
    wait_until("two alerts and one digest", || {
        stats.sent(ChannelKind::Webhook) == 3
    })
    .await;
    let hits = rx.wait_for(3).await;
    let types: Vec<&str> = hits
        .iter()
        .map(|h| h.body["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["alert", "alert", "digest"]);
    let d = &hits[2].body;
    assert_eq!(d["count"], 8);
    assert_eq!(d["distinct_sources"], 8);
    let sigs = d["signatures"].as_array().unwrap();
    let total: u64 = sigs.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 8);
    assert_eq!(stats.rate_limited(), 8);
    // Nothing more is held back, so no further digest follows.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rx.hits.lock().unwrap().len(), 3);
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn retries_after_server_errors_then_gives_up() {
    // Two 500s then success: delivered on the third attempt.
    let rx = receiver(vec![500, 500]).await;
    let cfg = NotifyConfig {
        webhook: webhook(rx.url(), WebhookFormat::Generic),
        ..config()
    };
    let (handle, stats, stop, task) = start(cfg);
    handle.offer(&alert(1, "203.0.113.1", 1));
    wait_until("delivery after retries", || {
        stats.sent(ChannelKind::Webhook) == 1
    })
    .await;
    assert_eq!(rx.hits.lock().unwrap().len(), 3);
    assert_eq!(stats.failed(ChannelKind::Webhook), 0);
    stop.send(()).unwrap();
    task.await.unwrap();

    // Always 503: four attempts (the configured count), then counted failed.
    let rx = receiver(vec![503; 10]).await;
    let cfg = NotifyConfig {
        webhook: webhook(rx.url(), WebhookFormat::Generic),
        ..config()
    };
    let (handle, stats, stop, task) = start(cfg);
    handle.offer(&alert(1, "203.0.113.1", 1));
    wait_until("failure", || stats.failed(ChannelKind::Webhook) == 1).await;
    assert_eq!(rx.hits.lock().unwrap().len(), 4);
    stop.send(()).unwrap();
    task.await.unwrap();

    // 400 is permanent: one attempt only.
    let rx = receiver(vec![400]).await;
    let cfg = NotifyConfig {
        webhook: webhook(rx.url(), WebhookFormat::Generic),
        ..config()
    };
    let (handle, stats, stop, task) = start(cfg);
    handle.offer(&alert(1, "203.0.113.1", 1));
    wait_until("permanent failure", || {
        stats.failed(ChannelKind::Webhook) == 1
    })
    .await;
    assert_eq!(rx.hits.lock().unwrap().len(), 1);
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn full_queue_drops_and_counts_without_waiting() {
    let rx = receiver(vec![]).await;
    let cfg = NotifyConfig {
        webhook: webhook(rx.url(), WebhookFormat::Generic),
        queue_capacity: 16,
        ..config()
    };
    let stats = Arc::new(NotifyStats::default());
    // The notifier is not running, so nothing drains the queue.
    let (handle, _notifier) = Notifier::new(cfg, stats.clone()).unwrap();
    let offers: Vec<Offer> = (0..100)
        .map(|i| handle.offer(&alert(i, "203.0.113.1", 1)))
        .collect();
    assert_eq!(offers.iter().filter(|o| **o == Offer::Queued).count(), 16);
    assert_eq!(offers.iter().filter(|o| **o == Offer::Dropped).count(), 84);
    assert_eq!(stats.dropped(), 84);
    let mut text = String::new();
    stats.render(&mut text);
    assert!(
        text.contains("ids2_notifications_dropped_total 84\n"),
        "{text}"
    );
}

#[tokio::test]
async fn settings_secret_files_and_bearer_token() {
    let rx = receiver(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    let token_file = dir.path().join("token");
    std::fs::write(&url_file, format!("{}\n", rx.url())).unwrap();
    std::fs::write(&token_file, "t0ken\n").unwrap();
    let text = format!(
        "sensor: {{id: lab-1}}\nopensearch: {{domain: ids2, region: eu-west-1}}\n\
         notifications:\n  min_severity: medium\n  webhook: {{url_file: {}, bearer_token_file: {}, format: slack}}\n",
        url_file.display(),
        token_file.display()
    );
    let settings = ids2_agent::config::from_str(&text, std::path::Path::new("t.yaml")).unwrap();
    let cfg = NotifyConfig::from_settings(&settings).unwrap();
    assert!(cfg.is_enabled());
    let (handle, stats, stop, task) = start(cfg);
    assert_eq!(handle.offer(&alert(5, "203.0.113.1", 2)), Offer::Queued);
    wait_until("delivery", || stats.sent(ChannelKind::Webhook) == 1).await;
    let hits = rx.wait_for(1).await;
    assert_eq!(hits[0].authorization.as_deref(), Some("Bearer t0ken"));
    assert!(hits[0].body["text"]
        .as_str()
        .unwrap()
        .starts_with("MEDIUM alert"));
    stop.send(()).unwrap();
    task.await.unwrap();

    std::fs::write(&token_file, "\n").unwrap();
    let err = NotifyConfig::from_settings(&settings).err().unwrap();
    assert!(err.to_string().contains("bearer_token_file"), "{err}");
}

#[test]
fn metrics_pass_promtool() {
    let Ok(promtool) = which("promtool") else {
        eprintln!("SKIP metrics_pass_promtool: needs promtool (Debian package prometheus)");
        return;
    };
    let stats = NotifyStats::default();
    let mut text = String::new();
    stats.render(&mut text);
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

// ---- e-mail against aiosmtpd ----

/// The Python interpreter with aiosmtpd: `$IDS2_AIOSMTPD_PYTHON`, else the project venv.
fn aiosmtpd_python() -> Option<PathBuf> {
    let candidates = std::env::var_os("IDS2_AIOSMTPD_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/opt/ids2-venv/bin/python3")]);
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

const SMTP_SERVER: &str = r#"
import asyncio, email, email.policy, json, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult
cert, key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
def auth(server, session, envelope, mechanism, data):
    ok = data.login == b"ids2" and data.password == b"s3cret"
    return AuthResult(success=ok, auth_data=data)
class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        print(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
            "headers": list(msg.keys()), "subject": str(msg["subject"]),
            "body": msg.get_content(),
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "login": session.auth_data.login.decode() if session.authenticated else "",
            "data": envelope.content.decode("utf-8", "replace")}), flush=True)
        return "250 OK"
def factory():
    if mode == "starttls":
        return SMTP(Handler(), tls_context=ctx, require_starttls=True, authenticator=auth,
                    auth_require_tls=True)
    return SMTP(Handler(), authenticator=auth, auth_require_tls=False)
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", 0,
                                      ssl=ctx if mode == "implicit" else None)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"#;

struct SmtpServer {
    child: Child,
    port: u16,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA (rcgen) and a server certificate for 127.0.0.1 signed by it.
fn test_pki(dir: &std::path::Path) -> (PathBuf, PathBuf, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "ids2 test CA");
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path, issuer.pem().into_bytes())
}

fn smtp_server(python: &PathBuf, dir: &std::path::Path, mode: &str) -> (SmtpServer, Vec<u8>) {
    let (cert, key, ca_pem) = test_pki(dir);
    let script = dir.join("smtp_server.py");
    std::fs::write(&script, SMTP_SERVER).unwrap();
    let mut child = Command::new(python)
        .arg(&script)
        .args([cert.as_os_str(), key.as_os_str()])
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let port = lines
        .recv_timeout(WAIT)
        .expect("aiosmtpd did not start")
        .parse()
        .unwrap();
    (SmtpServer { child, port, lines }, ca_pem)
}

fn email_config(port: u16, tls: SmtpTls, ca: Option<Vec<u8>>) -> Option<EmailConfig> {
    Some(EmailConfig {
        host: "127.0.0.1".into(),
        port,
        tls,
        extra_ca_pem: ca,
        credentials: Some(("ids2".into(), "s3cret".into())),
        from: "ids2@sensor.example.org".into(),
        to: vec!["soc@example.org".into(), "oncall@example.org".into()],
        timeout: Duration::from_secs(10),
    })
}

async fn email_roundtrip(mode: &str, tls: SmtpTls) {
    let Some(python) = aiosmtpd_python() else {
        eprintln!(
            "SKIP e-mail test ({mode}): needs aiosmtpd (pip install aiosmtpd into \
             /opt/ids2-venv, as .ci/install-deps does, or set IDS2_AIOSMTPD_PYTHON)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = smtp_server(&python, dir.path(), mode);
    let cfg = NotifyConfig {
        email: email_config(server.port, tls, Some(ca)),
        ..config()
    };
    let (handle, stats, stop, task) = start(cfg);
    handle.offer(&alert(2001, "203.0.113.9", 1));
    wait_until("e-mail delivery", || {
        stats.sent(ChannelKind::Email) + stats.failed(ChannelKind::Email) >= 1
    })
    .await;
    assert_eq!(stats.sent(ChannelKind::Email), 1, "failed instead");
    let got: Value = serde_json::from_str(&server.lines.recv_timeout(WAIT).unwrap()).unwrap();
    assert_eq!(got["from"], "ids2@sensor.example.org");
    assert_eq!(got["to"], json!(["soc@example.org", "oncall@example.org"]));
    assert_eq!(got["tls"], true);
    assert_eq!(got["login"], "ids2");
    let data = got["data"].as_str().unwrap();
    assert!(
        data.contains("Subject: [ids2 Lab sensor] high alert: ET TEST signature 2001"),
        "{data}"
    );
    assert!(data.contains("203.0.113.9:4444"), "{data}");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn email_over_starttls_with_auth() {
    email_roundtrip("starttls", SmtpTls::Starttls).await;
}

#[tokio::test]
async fn email_over_implicit_tls_with_auth() {
    email_roundtrip("implicit", SmtpTls::Implicit).await;
}

// ---- attacker-controlled strings ----

/// What an attacker can put in the strings of an alert: CRLF and header-like text, Slack
/// mentions and links, Markdown, JSON-breaking quotes, and 1 MB of it.
const INJECTED: &str = "ET x\r\nBcc: victim@example.org\r\nSubject: fake\r\n\r\n<!channel> \
                        <https://evil.example|login> *bold* `code` \"},\"type\":\"forged\" \u{202e}";

fn hostile_alert() -> Value {
    let mut a = alert(6601, "203.0.113.66", 1);
    a["alert"]["signature"] = json!(format!("{INJECTED}{}", "A".repeat(1 << 20)));
    a["alert"]["category"] = json!(INJECTED);
    a["proto"] = json!("TCP\r\nX-Injected: 1");
    a["timestamp"] = json!("2026-03-01T10:00:00\n.\r\n");
    a["flow_id"] = json!({"nested": "x".repeat(1 << 16)});
    a
}

#[tokio::test]
async fn hostile_strings_reach_the_webhook_escaped_and_bounded() {
    for format in [WebhookFormat::Generic, WebhookFormat::Slack] {
        let rx = receiver(vec![]).await;
        let cfg = NotifyConfig {
            webhook: webhook(rx.url(), format),
            ..config()
        };
        let (handle, stats, stop, task) = start(cfg);
        assert_eq!(handle.offer(&hostile_alert()), Offer::Queued);
        wait_until("delivery", || stats.sent(ChannelKind::Webhook) == 1).await;
        let hits = rx.wait_for(1).await;
        let body = &hits[0].body;
        let raw = serde_json::to_string(body).unwrap();
        assert!(raw.len() < 4096, "{format:?}: {} bytes", raw.len());
        match format {
            WebhookFormat::Generic => {
                // One object of our shape: the quotes did not close a string early.
                assert_eq!(body["type"], "alert");
                let sig = body["alert"]["signature"].as_str().unwrap();
                assert!(
                    sig.starts_with("ET x\\r\\nBcc: victim@example.org\\r\\n"),
                    "{sig}"
                );
                assert!(sig.ends_with('…'), "{sig}");
                assert_eq!(sig.chars().count(), 201);
                assert!(!sig.contains(['\r', '\n', '\u{202e}']));
                assert_eq!(body["protocol"], "TCP\\r\\nX-Injected: 1");
                assert_eq!(
                    body["flow_id"],
                    Value::Null,
                    "only a numeric flow_id is passed on"
                );
            }
            WebhookFormat::Slack => {
                assert_eq!(body["mrkdwn"], false);
                let text = body["text"].as_str().unwrap();
                assert!(!text.contains(['<', '>']), "{text}");
                assert!(text.contains("&lt;!channel&gt;"), "{text}");
                assert!(
                    text.contains("&lt;https://evil.example|login&gt;"),
                    "{text}"
                );
                // Our four lines, none added by the attacker's CR/LF.
                assert_eq!(text.lines().count(), 4, "{text}");
            }
        }
        stop.send(()).unwrap();
        task.await.unwrap();
    }
}

#[tokio::test]
async fn hostile_strings_cannot_add_email_headers() {
    let Some(python) = aiosmtpd_python() else {
        eprintln!(
            "SKIP hostile_strings_cannot_add_email_headers: needs aiosmtpd (see .ci/install-deps)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = smtp_server(&python, dir.path(), "starttls");
    let cfg = NotifyConfig {
        email: email_config(server.port, SmtpTls::Starttls, Some(ca)),
        ..config()
    };
    let (handle, stats, stop, task) = start(cfg);
    handle.offer(&hostile_alert());
    wait_until("e-mail delivery", || {
        stats.sent(ChannelKind::Email) + stats.failed(ChannelKind::Email) >= 1
    })
    .await;
    assert_eq!(stats.sent(ChannelKind::Email), 1, "failed instead");
    let got: Value = serde_json::from_str(&server.lines.recv_timeout(WAIT).unwrap()).unwrap();
    // The envelope is ours alone: no Bcc recipient was smuggled in.
    assert_eq!(got["to"], json!(["soc@example.org", "oncall@example.org"]));
    let data = got["data"].as_str().unwrap();
    assert!(data.len() < 8192, "{} bytes", data.len());
    // Python's e-mail parser reads exactly our headers, one Subject, and no smuggled one.
    let mut headers: Vec<&str> = got["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    headers.sort_unstable();
    assert_eq!(
        headers,
        [
            "Content-Transfer-Encoding",
            "Content-Type",
            "Date",
            "From",
            "Subject",
            "To"
        ],
        "{data}"
    );
    let subject = got["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("[ids2 Lab sensor] high alert: ET x\\r\\nBcc: victim@example.org"),
        "{subject}"
    );
    assert!(
        subject.ends_with('…') && subject.chars().count() < 300,
        "{subject}"
    );
    // The body is ours too: the attacker's line breaks are shown, not obeyed.
    let body = got["body"].as_str().unwrap();
    assert_eq!(body.trim_end().lines().count(), 4, "{body}");
    assert!(body.contains("\\r\\nBcc: victim@example.org"), "{body}");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn email_refuses_an_untrusted_certificate() {
    let Some(python) = aiosmtpd_python() else {
        eprintln!(
            "SKIP email_refuses_an_untrusted_certificate: needs aiosmtpd (see .ci/install-deps)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, _ca) = smtp_server(&python, dir.path(), "starttls");
    // Another CA than the one that signed the server's certificate.
    let other = tempfile::tempdir().unwrap();
    let (_, _, other_ca) = test_pki(other.path());
    let cfg = NotifyConfig {
        email: email_config(server.port, SmtpTls::Starttls, Some(other_ca)),
        retry: Retry {
            attempts: 2,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(10),
        },
        ..config()
    };
    let (handle, stats, stop, task) = start(cfg);
    handle.offer(&alert(2001, "203.0.113.9", 1));
    wait_until("failure", || stats.failed(ChannelKind::Email) == 1).await;
    assert_eq!(stats.sent(ChannelKind::Email), 0);
    assert!(server.lines.try_recv().is_err(), "no message may arrive");
    stop.send(()).unwrap();
    task.await.unwrap();
}
