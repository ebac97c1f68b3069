//! Threat intelligence against a stand-in for AbuseIPDB's API (the real service cannot be
//! reached here): a local HTTP server on loopback answering `GET /check` the way AbuseIPDB
//! documents it — the `data` envelope, `X-RateLimit-Limit`/`-Remaining` on every answer, 429
//! with `Retry-After` and `X-RateLimit-Reset` when its quota is spent, 401 with the `errors`
//! envelope for a wrong key. Then the reputation table joined into alerts by the real VRL
//! runtime (through `Mapper`) and by the real Vector's CSV table, and the blocking policy
//! reading the same cache.

#[path = "support/vector.rs"]
mod real_vector;
#[path = "support/rendered.rs"]
mod rendered;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ids2_agent::block::{Allowlist, Policy, PolicyConfig, Verdict};
use ids2_agent::config::{self, Severity};
use ids2_agent::ecs::{fields::emitted_fields, Mapper};
use ids2_agent::intel::{
    self, Cache, CheckError, Client, Intel, IntelConfig, IntelStats, ReloadVector, Report,
};
use ids2_agent::notify::Alert;
use tokio::net::TcpListener;

const KEY: &str = "test-key-0123456789";
const WAIT: Duration = Duration::from_secs(10);

/// The stand-in's state: addresses asked for, in order, and its own daily limit.
struct StandIn {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<(String, String)>>>,
}

/// Starts the stand-in. `limit` is the number of checks it allows before answering 429.
async fn stand_in(limit: u64, scores: HashMap<&'static str, u8>) -> StandIn {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let served = Arc::new(AtomicUsize::new(0));
    let scores = Arc::new(scores);
    let a = asked.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (a, served, scores) = (a.clone(), served.clone(), scores.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (a, served, scores) = (a.clone(), served.clone(), scores.clone());
                    async move { Ok::<_, Infallible>(answer(&req, &a, &served, &scores, limit)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    StandIn { addr, asked }
}

fn answer(
    req: &Request<hyper::body::Incoming>,
    asked: &Mutex<Vec<(String, String)>>,
    served: &AtomicUsize,
    scores: &HashMap<&'static str, u8>,
    limit: u64,
) -> Response<Full<Bytes>> {
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":")))
        .collect();
    let json = |status: u16, body: serde_json::Value, headers: Vec<(&str, String)>| {
        let mut b = Response::builder()
            .status(status)
            .header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(k, v);
        }
        b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
    };
    if req.uri().path() != "/api/v2/check" {
        return json(
            404,
            serde_json::json!({"errors": [{"detail": "not found", "status": 404}]}),
            vec![],
        );
    }
    if req.headers().get("key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return json(
            401,
            serde_json::json!({"errors": [{"detail": "Authentication failed. Your API key is either missing, incorrect, or revoked. Note: The APIv2 key differs from the APIv1 key.", "status": 401}]}),
            vec![],
        );
    }
    let ip = query.get("ipAddress").cloned().unwrap_or_default();
    asked.lock().unwrap().push((
        ip.clone(),
        query.get("maxAgeInDays").cloned().unwrap_or_default(),
    ));
    let n = served.fetch_add(1, Ordering::SeqCst) as u64;
    if n >= limit {
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        return json(
            429,
            serde_json::json!({"errors": [{"detail": format!("Daily rate limit of {limit} requests exceeded for this endpoint. See headers for additional details."), "status": 429}]}),
            vec![
                ("X-RateLimit-Limit", limit.to_string()),
                ("X-RateLimit-Remaining", "0".into()),
                ("X-RateLimit-Reset", reset.to_string()),
                ("Retry-After", "3600".into()),
            ],
        );
    }
    let score = scores.get(ip.as_str()).copied().unwrap_or(0);
    json(
        200,
        serde_json::json!({"data": {
            "ipAddress": ip,
            "isPublic": true,
            "ipVersion": if ip.contains(':') { 6 } else { 4 },
            "isWhitelisted": false,
            "abuseConfidenceScore": score,
            "countryCode": "NL",
            "usageType": "Data Center/Web Hosting/Transit",
            "isp": "Example Hosting B.V.",
            "domain": "example.net",
            "hostnames": [],
            "isTor": false,
            "totalReports": u64::from(score) * 3,
            "numDistinctUsers": 4,
            "lastReportedAt": if score > 0 { serde_json::json!("2026-11-20T08:15:00+00:00") } else { serde_json::Value::Null },
        }}),
        vec![
            ("X-RateLimit-Limit", limit.to_string()),
            ("X-RateLimit-Remaining", (limit - n - 1).to_string()),
        ],
    )
}

impl StandIn {
    fn base(&self) -> String {
        format!("http://{}/api/v2", self.addr)
    }

    fn asked(&self) -> Vec<String> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .map(|(ip, _)| ip.clone())
            .collect()
    }
}

fn client(base: &str, key: &str) -> Client {
    Client::new(base, key.into(), Duration::from_secs(5)).unwrap()
}

fn config(base: &str, quota: u32, ttl: Duration, table: &Path) -> IntelConfig {
    IntelConfig {
        client: client(base, KEY),
        max_age_days: 30,
        daily_quota: quota,
        cache_ttl: ttl,
        table_path: table.to_path_buf(),
        reload_min_interval: Duration::from_secs(3600),
    }
}

struct Rig {
    intel: Intel,
    handle: intel::IntelHandle,
    cache: Arc<Cache>,
    stats: Arc<IntelStats>,
    reloads: Arc<AtomicUsize>,
}

fn rig(config: IntelConfig) -> Rig {
    let cache = Arc::new(Cache::new(config.cache_ttl));
    let stats = Arc::new(IntelStats::default());
    let reloads = Arc::new(AtomicUsize::new(0));
    let r = reloads.clone();
    let reload: ReloadVector = Arc::new(move || {
        r.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    });
    let (handle, intel) = Intel::new(config, cache.clone(), stats.clone(), reload);
    Rig {
        intel,
        handle,
        cache,
        stats,
        reloads,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn the_documented_answer_and_rate_limit_headers_are_read() {
    let server = stand_in(1000, HashMap::from([("185.220.101.4", 97)])).await;
    let (report, limits) = client(&server.base(), KEY)
        .check(ip("185.220.101.4"), 45)
        .await;
    let report = report.unwrap();
    assert_eq!(
        report,
        Report {
            ip: ip("185.220.101.4"),
            score: 97,
            total_reports: 291,
            country_code: Some("NL".into()),
            isp: Some("Example Hosting B.V.".into()),
            usage_type: Some("Data Center/Web Hosting/Transit".into()),
            last_reported_at: Some("2026-11-20T08:15:00+00:00".into()),
        }
    );
    assert_eq!(limits.limit, Some(1000));
    assert_eq!(limits.remaining, Some(999));
    assert_eq!(
        server.asked.lock().unwrap()[0],
        ("185.220.101.4".to_string(), "45".to_string()),
        "ipAddress and maxAgeInDays are sent"
    );
}

#[tokio::test]
async fn a_wrong_key_is_a_named_401() {
    let server = stand_in(1000, HashMap::new()).await;
    let (result, _) = client(&server.base(), "wrong")
        .check(ip("8.8.8.8"), 30)
        .await;
    match result {
        Err(CheckError::Unauthorized { status, detail }) => {
            assert_eq!(status, 401);
            assert!(detail.contains("Authentication failed"), "{detail}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn remaining_zero_pauses_checks_until_the_reset() {
    let server = stand_in(2, HashMap::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = rig(config(
        &server.base(),
        1000,
        Duration::from_secs(3600),
        &dir.path().join("rep.csv"),
    ));
    for a in ["8.8.8.8", "8.8.4.4", "1.1.1.1", "9.9.9.9"] {
        r.intel.check(ip(a)).await;
    }
    assert_eq!(r.stats.checks_ok(), 2);
    assert_eq!(
        server.asked(),
        ["8.8.8.8", "8.8.4.4"],
        "the second answer said X-RateLimit-Remaining: 0, so nothing more is sent"
    );
    assert_eq!(r.stats.rate_limited(), 0);
    assert_eq!(r.stats.skipped_quota(), 2);
}

#[tokio::test]
async fn a_429_pauses_checks_until_retry_after() {
    // A key whose quota is already spent (e.g. shared with another tool): the first answer is 429.
    let server = stand_in(0, HashMap::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = rig(config(
        &server.base(),
        1000,
        Duration::from_secs(3600),
        &dir.path().join("rep.csv"),
    ));
    let (result, limits) = client(&server.base(), KEY).check(ip("1.0.0.1"), 30).await;
    match result {
        Err(CheckError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(3600), "from Retry-After")
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(limits.remaining, Some(0));
    for a in ["8.8.8.8", "8.8.4.4", "1.1.1.1"] {
        r.intel.check(ip(a)).await;
    }
    assert_eq!(r.stats.rate_limited(), 1);
    assert_eq!(
        server.asked(),
        ["1.0.0.1", "8.8.8.8"],
        "nothing is sent during the Retry-After pause"
    );
    assert_eq!(r.stats.skipped_quota(), 2);
    assert!(r.cache.is_empty());
}

#[tokio::test]
async fn our_daily_quota_is_never_exceeded() {
    let server = stand_in(1_000_000, HashMap::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = rig(config(
        &server.base(),
        2,
        Duration::from_secs(3600),
        &dir.path().join("rep.csv"),
    ));
    for a in ["8.8.8.8", "8.8.4.4", "1.1.1.1", "9.9.9.9", "1.0.0.1"] {
        r.intel.check(ip(a)).await;
    }
    assert_eq!(server.asked().len(), 2);
    assert_eq!(r.stats.skipped_quota(), 3);
}

#[tokio::test]
async fn results_are_reused_within_the_ttl_and_checked_again_after() {
    let server = stand_in(1000, HashMap::from([("8.8.8.8", 5)])).await;
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_millis(300);
    let mut r = rig(config(
        &server.base(),
        1000,
        ttl,
        &dir.path().join("rep.csv"),
    ));
    r.intel.check(ip("8.8.8.8")).await;
    r.intel.check(ip("8.8.8.8")).await;
    assert_eq!(server.asked().len(), 1, "the second check is a cache hit");
    assert_eq!(r.cache.get(ip("8.8.8.8")).unwrap().score, 5);
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    r.intel.check(ip("8.8.8.8")).await;
    assert_eq!(
        server.asked().len(),
        2,
        "an expired result is checked again"
    );
}

fn alert_line(src: &str, dest: &str) -> String {
    format!(
        r#"{{"timestamp":"2026-11-21T10:00:00.000000+0000","flow_id":1,"event_type":"alert","src_ip":"{src}","src_port":40000,"dest_ip":"{dest}","dest_port":22,"proto":"TCP","alert":{{"action":"allowed","gid":1,"signature_id":2001219,"rev":20,"signature":"ET SCAN Potential SSH Scan","category":"Attempted Information Leak","severity":1}}}}"#
    )
}

#[tokio::test]
async fn only_public_addresses_of_alerts_are_sent() {
    let server = stand_in(1000, HashMap::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let r = rig(config(
        &server.base(),
        1000,
        Duration::from_secs(3600),
        &dir.path().join("rep.csv"),
    ));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(r.intel.run(async move {
        let _ = rx.await;
    }));
    for (src, dest) in [
        ("10.1.2.3", "192.168.1.1"),
        ("127.0.0.1", "172.16.5.5"),
        ("fe80::1", "fd00::2"),
        ("100.64.1.1", "169.254.1.1"),
        ("203.0.113.9", "198.51.100.7"),
        ("192.168.1.10", "45.83.64.1"),
        ("2a01:4f8::1", "10.0.0.5"),
        ("192.168.1.10", "45.83.64.1"),
    ] {
        let alert = Alert::from_line(alert_line(src, dest).as_bytes()).unwrap();
        r.handle.offer_alert(&alert);
    }
    let deadline = Instant::now() + WAIT;
    while server.asked().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give a wrongly queued private address the time to show up before stopping.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = tx.send(());
    task.await.unwrap();
    let mut asked = server.asked();
    asked.sort();
    assert_eq!(asked, ["2a01:4f8::1", "45.83.64.1"]);
}

fn settings(dir: &Path, table: &Path) -> config::Settings {
    let key = dir.join("abuseipdb.key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    let text = format!(
        "sensor: {{id: lab-1}}\n\
         capture: {{interface: eth1, home_net: [192.168.0.0/16]}}\n\
         opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://search.example.org'}}\n\
         enrichment:\n  abuseipdb:\n    api_key_file: '{}'\n    table_path: '{}'\n",
        key.display(),
        table.display()
    );
    config::from_str(&text, Path::new("t.yaml")).unwrap()
}

#[tokio::test]
async fn the_reputation_table_is_joined_into_alerts_by_the_ecs_program() {
    let server = stand_in(
        1000,
        HashMap::from([("45.83.64.1", 88), ("2a01:4f8::1", 12)]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("state/reputation.csv");
    let s = settings(dir.path(), &table);
    // What the daemon does before the pipeline starts: the resolved config and an empty table.
    let resolved = IntelConfig::from_settings(&s).unwrap().expect("configured");
    assert_eq!(
        resolved.daily_quota, 1000,
        "the free tier's quota by default"
    );
    intel::ensure_table(&table).unwrap();
    let header = std::fs::read_to_string(&table).unwrap();
    assert!(header.starts_with("ip,type,score,reports,"), "{header}");

    let mut r = rig(config(
        &server.base(),
        1000,
        Duration::from_secs(3600),
        &table,
    ));
    r.intel.check(ip("45.83.64.1")).await;
    r.intel.check(ip("2a01:4f8::1")).await;
    assert_eq!(r.stats.checks_ok(), 2);

    let mut m = Mapper::new(&s).unwrap();
    let doc = m
        .map_line(&alert_line("45.83.64.1", "2a01:4f8::1"))
        .unwrap();
    let threats = doc["threat"]["enrichments"]
        .as_array()
        .expect("enrichments");
    assert_eq!(threats.len(), 2, "{doc:#}");
    let src = &threats[0];
    assert_eq!(src["indicator"]["ip"], "45.83.64.1");
    assert_eq!(src["indicator"]["type"], "ipv4-addr");
    assert_eq!(src["indicator"]["provider"], "AbuseIPDB");
    assert_eq!(src["indicator"]["confidence"], "High");
    assert_eq!(src["indicator"]["sightings"], 264);
    assert_eq!(src["indicator"]["last_seen"], "2026-11-20T08:15:00+00:00");
    assert_eq!(src["indicator"]["geo"]["country_iso_code"], "NL");
    assert_eq!(src["matched"]["field"], "source.ip");
    let dst = &threats[1];
    assert_eq!(dst["indicator"]["type"], "ipv6-addr");
    assert_eq!(dst["indicator"]["confidence"], "Low");
    assert_eq!(dst["matched"]["atomic"], "2a01:4f8::1");
    assert_eq!(doc["ids2"]["reputation"]["score"], 88);

    // Addresses the agent has not checked, and events that are not alerts, carry nothing.
    let other = m.map_line(&alert_line("8.8.8.8", "192.168.1.1")).unwrap();
    assert!(other.get("threat").is_none(), "{other:#}");
    let dns = r#"{"timestamp":"2026-11-21T10:00:00.000000+0000","flow_id":2,"event_type":"dns","src_ip":"45.83.64.1","src_port":53,"dest_ip":"192.168.1.2","dest_port":40000,"proto":"UDP","dns":{"version":3,"type":"response","id":7,"rcode":"NOERROR"}}"#;
    assert!(m.map_line(dns).unwrap().get("threat").is_none());

    // Every ECS field the join emits is listed for the index templates (ids2.* is ours).
    let listed: Vec<&str> = emitted_fields().iter().map(|f| f.name).collect();
    let names = rendered::ecs_leaf_names(&doc);
    for name in names.iter().filter(|n| !n.starts_with("ids2.")) {
        assert!(
            listed.contains(&name.as_str()),
            "{name} not in ecs_fields.tsv"
        );
    }

    // vector.toml loads the same file as a CSV table typed like the agent's columns.
    let text = rendered::vector_toml_text(&s);
    real_vector::validate("threat-intel enrichment", &text);
    let toml: toml::Table = text.parse().unwrap();
    let t = &toml["enrichment_tables"]["ids2_reputation"];
    assert_eq!(t["type"].as_str(), Some("file"));
    assert_eq!(
        t["file"]["path"].as_str(),
        Some(table.display().to_string().as_str())
    );
    assert_eq!(t["file"]["encoding"]["type"].as_str(), Some("csv"));
    assert_eq!(t["schema"]["score"].as_str(), Some("integer"));
    assert_eq!(t["schema"]["ip"].as_str(), Some("string"));

    // The real Vector's CSV table, over the same file, joins what the mapper joins.
    let lines = [
        alert_line("45.83.64.1", "2a01:4f8::1"),
        alert_line("8.8.8.8", "192.168.1.1"),
        dns.to_string(),
    ];
    let Some(docs) = real_vector::run_mapping(&text, &lines) else {
        return;
    };
    for line in &lines {
        let want = m.map_line(line).unwrap();
        let got = real_vector::same_event(&docs, &want);
        assert_eq!(got.get("threat"), want.get("threat"), "{line}");
        assert_eq!(
            got["ids2"].get("reputation"),
            want["ids2"].get("reputation"),
            "{line}"
        );
    }
    let scores: Vec<&serde_json::Value> = docs
        .iter()
        .map(|d| &d["ids2"]["reputation"]["score"])
        .collect();
    assert!(scores.contains(&&serde_json::Value::from(88)), "{docs:#?}");
}

#[tokio::test]
async fn a_changed_table_reloads_vector_at_most_once_per_interval() {
    let server = stand_in(1000, HashMap::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = rig(config(
        &server.base(),
        1000,
        Duration::from_secs(3600),
        &dir.path().join("rep.csv"),
    ));
    r.intel.maybe_reload().await;
    assert_eq!(r.reloads.load(Ordering::SeqCst), 0, "nothing changed yet");
    r.intel.check(ip("8.8.8.8")).await;
    r.intel.maybe_reload().await;
    assert_eq!(r.reloads.load(Ordering::SeqCst), 1);
    r.intel.check(ip("8.8.4.4")).await;
    r.intel.maybe_reload().await;
    assert_eq!(
        r.reloads.load(Ordering::SeqCst),
        1,
        "within reload_min_interval the change waits"
    );
    let csv = std::fs::read_to_string(dir.path().join("rep.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        3,
        "header and both rows are on disk: {csv}"
    );
}

#[test]
fn the_blocking_policy_reads_scores_from_the_cache() {
    let cache = Cache::new(Duration::from_secs(3600));
    cache.insert(
        Report {
            ip: ip("45.83.64.1"),
            score: 90,
            total_reports: 10,
            country_code: None,
            isp: None,
            usage_type: None,
            last_reported_at: None,
        },
        Instant::now(),
    );
    let home: Vec<ipnet::IpNet> = vec!["192.168.0.0/16".parse().unwrap()];
    let allow = Allowlist::new(home.clone(), vec![], vec![]);
    let mut policy = Policy::new(PolicyConfig {
        min_severity: Severity::Medium,
        categories: vec![],
        repeat: Some((3, Duration::from_secs(60))),
        reputation_min_score: Some(80),
        home_net: home,
    });
    let now = Instant::now();
    let bad = Alert::from_line(alert_line("45.83.64.1", "192.168.1.2").as_bytes()).unwrap();
    match policy.consider(&bad, &allow, &cache, now) {
        Verdict::Block { address, .. } => assert_eq!(address, ip("45.83.64.1")),
        v => panic!("a known-bad address is blocked on its first alert, got {v:?}"),
    }
    let unknown = Alert::from_line(alert_line("45.83.64.2", "192.168.1.2").as_bytes()).unwrap();
    assert!(matches!(
        policy.consider(&unknown, &allow, &cache, now),
        Verdict::Counted { seen: 1, .. }
    ));
}
