//! The OpenSearch endpoint `ids2-provision` talks to in tests: the osmem-server EMULATOR
//! (`osmem.rs`) behind a strict stand-in for exactly what the emulator lacks.
//!
//! Everything the emulator answers — index templates, `_search` with aggregations, `_bulk`,
//! `_count`, mappings — is forwarded to it unchanged, so those answers are the emulator's,
//! not ours. The stand-in plays only what no server here provides, as strictly as the real
//! services: SigV4 checking (every request must carry a signature that verifies against the
//! test's credentials, or the expected basic auth; the emulator ignores authentication), the
//! ISM plugin (updates need the sequence number), the Alerting and Notifications plugins, and
//! OpenSearch Dashboards' saved objects (writes need `osd-xsrf`). Reads of those come back the
//! way the real services return them (ISM and Dashboards metadata added). Anything a real
//! server would refuse, including a refusal by the emulator, is recorded as a violation,
//! which tests assert is empty.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use serde_json::{json, Value};

use crate::osmem::Osmem;

/// Test credentials the CLI is given through the environment.
pub const ACCESS_KEY: &str = "AKIDSTANDINTEST";
/// Secret of [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "standin/secret/key/for/tests";
/// Region the stand-in expects in signatures.
pub const REGION: &str = "eu-west-1";

/// What the stand-in accepts as authentication.
#[derive(Clone, Debug)]
pub enum Expect {
    /// SigV4 with [`ACCESS_KEY`]/[`SECRET_KEY`] for [`REGION`], service `es`.
    SigV4,
    /// Basic auth with this user and password.
    Basic(String, String),
    /// Every request is denied with 403, as an access policy without the caller does.
    DenyAll,
}

/// What the stand-in holds (the plugins' and Dashboards' objects) and has seen.
#[derive(Default, Debug)]
pub struct State {
    /// ISM policies by id: (policy, seq_no).
    pub policies: BTreeMap<String, (Value, u64)>,
    /// Saved objects by (type, id).
    pub saved: BTreeMap<(String, String), Value>,
    /// Notification channels by id.
    pub channels: BTreeMap<String, Value>,
    /// Alerting monitors by id: (monitor, seq_no).
    pub monitors: BTreeMap<String, (Value, u64)>,
    /// Writes (PUT/POST/DELETE) received, as "METHOD path", forwarded or not.
    pub writes: Vec<String>,
    /// Requests received, forwarded or not.
    pub requests: usize,
    /// Every way a request broke the rules.
    pub violations: Vec<String>,
}

/// The emulator and the stand-in in front of it.
pub struct StandIn {
    /// `http://127.0.0.1:<port>`: the stand-in, which forwards to the emulator.
    pub url: String,
    /// Shared state.
    pub state: Arc<Mutex<State>>,
    osmem: Arc<Osmem>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl StandIn {
    /// Starts the emulator, then the stand-in on an ephemeral loopback port.
    pub fn start(expect: Expect) -> Result<StandIn, String> {
        let osmem = Arc::new(Osmem::start()?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let state = Arc::new(Mutex::new(State::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let shared = state.clone();
        let upstream = osmem.url.clone();
        let client = reqwest::Client::new();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let ctx = Ctx {
                    state: shared.clone(),
                    expect: expect.clone(),
                    upstream: upstream.clone(),
                    client: client.clone(),
                };
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, ctx.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(StandIn {
            url: format!("http://{addr}"),
            state,
            osmem,
            runtime: Some(runtime),
        })
    }

    /// [`StandIn::start`], or `None` after a `SKIP` line saying what is missing (CI installs
    /// it): the test then returns.
    pub fn start_or_skip(expect: Expect) -> Option<StandIn> {
        match StandIn::start(expect) {
            Ok(s) => Some(s),
            Err(why) => {
                eprintln!("SKIP: {why}");
                None
            }
        }
    }

    /// Fails the test if the stand-in recorded anything a real OpenSearch would refuse.
    pub fn assert_clean(&self) {
        let st = self.state();
        assert!(
            st.violations.is_empty(),
            "stand-in violations: {:#?}",
            st.violations
        );
    }

    /// Locks the state for inspection or preloading.
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state lock")
    }

    /// One request straight to the emulator (not counted as the CLI's): status and JSON body.
    pub fn emulator(&self, method: &str, path: &str, body: Option<String>) -> (u16, Value) {
        let url = format!("{}{path}", self.osmem.url);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let kind = if path.contains("_bulk") {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        self.runtime.as_ref().expect("running").block_on(async {
            let mut req = reqwest::Client::new().request(method, &url);
            if let Some(body) = body {
                req = req.header("content-type", kind).body(body);
            }
            let r = req.send().await.expect("the emulator answers");
            let status = r.status().as_u16();
            let text = r.text().await.expect("a body");
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    /// The index template `name` as the emulator holds it.
    pub fn template(&self, name: &str) -> Option<Value> {
        match self.emulator("GET", &format!("/_index_template/{name}"), None) {
            (404, _) => None,
            (200, v) => v["index_templates"]
                .as_array()
                .and_then(|all| all.iter().find(|t| t["name"] == name))
                .map(|t| t["index_template"].clone()),
            (status, v) => panic!("GET _index_template/{name}: {status} {v}"),
        }
    }

    /// Indexes `docs` as (index, document) into the emulator, searchable at once.
    pub fn index(&self, docs: &[(String, Value)]) {
        let mut bulk = String::new();
        for (index, doc) in docs {
            bulk.push_str(&json!({"index": {"_index": index}}).to_string());
            bulk.push('\n');
            bulk.push_str(&doc.to_string());
            bulk.push('\n');
        }
        let (status, r) = self.emulator("POST", "/_bulk?refresh=true", Some(bulk));
        assert!(
            status == 200 && r["errors"] == false,
            "bulk into the emulator: {status} {r}"
        );
    }

    /// Puts the index template `name` that `build` makes, unless the emulator holds it.
    fn ensure_template(
        &self,
        name: &str,
        build: impl FnOnce() -> Result<Value, ids2_provision::mappings::MappingError>,
    ) {
        if self.template(name).is_none() {
            let template = build().unwrap_or_else(|e| panic!("the {name} template: {e}"));
            let (status, r) = self.emulator(
                "PUT",
                &format!("/_index_template/{name}"),
                Some(template.to_string()),
            );
            assert_eq!(status, 200, "{r}");
        }
    }

    /// Indexes heartbeat documents as Vector would (`ids2-heartbeat-YYYY.MM.DD` from each one's
    /// `@timestamp`), under the heartbeat template `setup` installs, put first if absent:
    /// without it the emulator maps `observer.hostname` as text and, as OpenSearch does,
    /// refuses to aggregate on it.
    pub fn seed_heartbeats(&self, docs: Vec<Value>) {
        self.ensure_template("ids2-heartbeat", || {
            ids2_provision::mappings::heartbeat_template("ids2", ids2_core::heartbeat::FIELDS, 1)
        });
        let docs: Vec<(String, Value)> = docs
            .into_iter()
            .map(|doc| {
                let ts = doc["@timestamp"]
                    .as_str()
                    .expect("a heartbeat's @timestamp");
                (daily_index("ids2-heartbeat", ts), doc)
            })
            .collect();
        self.index(&docs);
    }

    /// Indexes `(sensor, @timestamp)` pairs as the documents `vector.toml`'s `ecs_unmapped`
    /// ships for lines the ECS program could not map (`ids2-suricata.unmapped-YYYY.MM.DD`),
    /// under the suricata template `setup` installs, put first if absent. Their shape is that
    /// transform's; `tests/tests/shipping.rs` has the real Vector make and ship them.
    pub fn seed_unmapped(&self, lines: &[(&str, &str)]) {
        self.ensure_template("ids2-suricata", || {
            ids2_provision::mappings::suricata_template(
                "ids2",
                &ids2_core::ecs::emitted_fields(),
                1,
            )
        });
        let docs: Vec<(String, Value)> = lines
            .iter()
            .map(|(sensor, ts)| {
                let doc = json!({
                    "@timestamp": ts,
                    "message": format!("{{\"timestamp\":\"{ts}\",\"event_type\":\"al"),
                    "event": {"kind": "pipeline_error", "dataset": ids2_core::ecs::UNMAPPED_DATASET},
                    "observer": {"hostname": sensor},
                    "log": {"file": {"path": "/mnt/ram_logs/eve.json"}},
                    "host": {"name": sensor},
                });
                let base = format!("ids2-{}", ids2_core::ecs::UNMAPPED_DATASET);
                (daily_index(&base, ts), doc)
            })
            .collect();
        self.index(&docs);
    }
}

/// `<base>-YYYY.MM.DD`, the daily index Vector writes a document dated `timestamp` (RFC 3339) to.
fn daily_index(base: &str, timestamp: &str) -> String {
    format!("{base}-{}", timestamp[..10].replace('-', "."))
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// What each connection of the stand-in needs.
#[derive(Clone)]
struct Ctx {
    state: Arc<Mutex<State>>,
    expect: Expect,
    /// The emulator's URL.
    upstream: String,
    client: reqwest::Client,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, body: Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

/// Paths the stand-in plays itself: the plugins and Dashboards the emulator lacks.
fn played_here(path: &str) -> bool {
    [
        "/_plugins/_ism/",
        "/_plugins/_alerting/",
        "/_plugins/_notifications/",
        "/_dashboards/",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// An emulator refusal a real OpenSearch also gives and the CLI handles: a GET (or search) of
/// something absent, or a template that overlaps another at the same priority.
fn expected_refusal(method: &str, path: &str, status: u16, body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    (status == 404 && (method == "GET" || path.ends_with("/_search")))
        || (status == 400 && (text.contains("same priority") || text.contains("overlapping")))
}

async fn handle(req: Request<Incoming>, ctx: Ctx) -> Result<Reply, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    {
        let mut st = ctx.state.lock().expect("state lock");
        st.requests += 1;
        if let Err(why) = check_auth(&parts, &body, &ctx.expect) {
            if matches!(ctx.expect, Expect::DenyAll) {
                return Ok(reply(403, json!({"Message": why})));
            }
            st.violations.push(format!("{method} {path}: {why}"));
            // OpenSearch answers a failed basic login with 401, a bad signature with 403.
            let status = if matches!(ctx.expect, Expect::Basic(..)) {
                401
            } else {
                403
            };
            return Ok(reply(status, json!({"Message": why})));
        }
        // A search is a read, whatever its method.
        if method != "GET" && !path.ends_with("/_search") {
            st.writes.push(format!("{method} {path}"));
        }
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        if !body.is_empty() && content_type != Some("application/json") {
            st.violations.push(format!(
                "{method} {path}: a body without content-type application/json"
            ));
        }
    }
    if !played_here(&path) {
        return Ok(forward(&ctx, &parts, &method, &path, body).await);
    }
    let mut st = ctx.state.lock().expect("state lock");
    let parsed: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                st.violations
                    .push(format!("{method} {path}: body is not JSON: {e}"));
                return Ok(reply(400, json!({"error": "not json"})));
            }
        }
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let r = match (method.as_str(), segments.as_slice()) {
        ("GET", ["_plugins", "_ism", "policies", id]) => get_policy(&st, id),
        ("PUT", ["_plugins", "_ism", "policies", id]) => put_policy(&mut st, id, &query, parsed),
        ("GET", ["_dashboards", "api", "saved_objects", kind, id]) => get_saved(&st, kind, id),
        ("GET", ["_plugins", "_notifications", "configs", id]) => get_channel(&st, id),
        ("POST", ["_plugins", "_notifications", "configs"]) => post_channel(&mut st, parsed),
        ("PUT", ["_plugins", "_notifications", "configs", id]) => put_channel(&mut st, id, parsed),
        ("POST", ["_plugins", "_alerting", "monitors", "_search"]) => search_monitors(&st, parsed),
        ("POST", ["_plugins", "_alerting", "monitors"]) => post_monitor(&mut st, parsed),
        ("GET", ["_plugins", "_alerting", "monitors", id]) => get_monitor(&st, id),
        ("PUT", ["_plugins", "_alerting", "monitors", id]) => {
            put_monitor(&mut st, id, &query, parsed)
        }
        ("POST", ["_dashboards", "api", "saved_objects", kind, id]) => {
            let xsrf = parts.headers.contains_key("osd-xsrf");
            post_saved(&mut st, kind, id, &query, xsrf, parsed)
        }
        _ => Err((
            404,
            format!("no such route in the stand-in: {method} {path}"),
        )),
    };
    Ok(match r {
        Ok(v) => reply(200, v),
        Err((404, why))
            if (method == "GET" || path.ends_with("/_search"))
                && !why.starts_with("no such route") =>
        {
            reply(404, json!({"error": why, "status": 404}))
        }
        Err((status, why)) => {
            if status != 409 {
                st.violations.push(format!("{method} {path}: {why}"));
            }
            reply(
                status,
                json!({"error": {"type": "stand_in_rejection", "reason": why}, "status": status}),
            )
        }
    })
}

/// Sends the request on to the emulator as it came and returns the emulator's answer as it is.
async fn forward(
    ctx: &Ctx,
    parts: &hyper::http::request::Parts,
    method: &str,
    path: &str,
    body: Bytes,
) -> Reply {
    let target = format!(
        "{}{}",
        ctx.upstream,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(path)
    );
    let mut req = ctx.client.request(parts.method.clone(), &target);
    if let Some(kind) = parts.headers.get("content-type") {
        req = req.header("content-type", kind.clone());
    }
    let answer = match req.body(body.to_vec()).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let kind = r.headers().get("content-type").cloned();
            r.bytes().await.map(|b| (status, kind, b))
        }
        Err(e) => Err(e),
    };
    let (status, kind, bytes) = match answer {
        Ok(a) => a,
        Err(e) => {
            let why = format!("{method} {path}: the emulator did not answer: {e}");
            ctx.state
                .lock()
                .expect("state lock")
                .violations
                .push(why.clone());
            return reply(502, json!({"error": why}));
        }
    };
    if status >= 400 && !expected_refusal(method, path, status, &bytes) {
        ctx.state
            .lock()
            .expect("state lock")
            .violations
            .push(format!(
                "{method} {path}: the emulator refused it with {status}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(500)
                    .collect::<String>()
            ));
    }
    let mut r = Response::builder().status(status);
    if let Some(kind) = kind {
        r = r.header("content-type", kind);
    }
    r.body(Full::new(bytes)).expect("response")
}

type Handled = Result<Value, (u16, String)>;

// ---- authentication ---------------------------------------------------------------------

fn check_auth(
    parts: &hyper::http::request::Parts,
    body: &[u8],
    expect: &Expect,
) -> Result<(), String> {
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    match expect {
        Expect::DenyAll => Err(
            "User: arn:aws:iam::123456789012:user/stranger is not authorized to perform: es:ESHttpGet"
                .into(),
        ),
        Expect::Basic(user, pass) => {
            let want = format!("Basic {}", base64(&format!("{user}:{pass}")));
            (auth == want)
                .then_some(())
                .ok_or_else(|| format!("wrong basic auth header: {auth}"))
        }
        Expect::SigV4 => verify_sigv4(parts, body, auth),
    }
}

/// Parses the header, checks its form, then re-signs the received request with the test
/// credentials and compares: this proves the bytes sent are the bytes signed.
fn verify_sigv4(
    parts: &hyper::http::request::Parts,
    body: &[u8],
    auth: &str,
) -> Result<(), String> {
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| format!("not a SigV4 header: {auth}"))?;
    let mut fields = BTreeMap::new();
    for part in rest.split(", ") {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("malformed part `{part}`"))?;
        fields.insert(k, v);
    }
    let credential = fields.get("Credential").ok_or("no Credential")?;
    let signed = fields.get("SignedHeaders").ok_or("no SignedHeaders")?;
    let signature = fields.get("Signature").ok_or("no Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(format!("malformed credential scope `{credential}`"));
    };
    if *akid != ACCESS_KEY || *region != REGION || *service != "es" {
        return Err(format!("wrong key/region/service in `{credential}`"));
    }
    if signature.len() != 64 || !signature.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("signature is not 64 hex digits: `{signature}`"));
    }
    let amz_date = header(parts, "x-amz-date").ok_or("no x-amz-date")?;
    if !amz_date.starts_with(date) || amz_date.len() != 16 {
        return Err(format!(
            "x-amz-date `{amz_date}` does not match the scope date {date}"
        ));
    }
    let signed: Vec<&str> = signed.split(';').collect();
    for required in ["host", "x-amz-date", "x-amz-content-sha256"] {
        if !signed.contains(&required) {
            return Err(format!(
                "`{required}` is not among the signed headers {signed:?}"
            ));
        }
    }
    if !body.is_empty() && !signed.contains(&"content-type") {
        return Err("content-type is not signed".into());
    }
    let time = parse_amz_date(&amz_date).ok_or("unparseable x-amz-date")?;
    let age = SystemTime::now()
        .duration_since(time)
        .unwrap_or_else(|e| e.duration());
    if age > Duration::from_secs(300) {
        return Err(format!("x-amz-date {amz_date} is more than 5 minutes off"));
    }
    // Re-sign: the signer adds x-amz-date and x-amz-content-sha256 itself.
    let headers: Vec<(String, String)> = signed
        .iter()
        .filter(|h| !matches!(**h, "x-amz-date" | "x-amz-content-sha256"))
        .map(|h| {
            Ok((
                h.to_string(),
                header(parts, h).ok_or(format!("signed header {h} missing"))?,
            ))
        })
        .collect::<Result<_, String>>()?;
    let host = header(parts, "host").ok_or("no host header")?;
    let uri = format!(
        "http://{host}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "stand-in").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("es")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        parts.method.as_str(),
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(k, _)| *k == "authorization")
        .map(|(_, v)| v.to_string())
        .ok_or("re-signing produced no authorization header")?;
    (expected == auth)
        .then_some(())
        .ok_or_else(|| format!("signature does not verify: got `{auth}`, expected `{expected}`"))
}

fn header(parts: &hyper::http::request::Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `YYYYMMDDTHHMMSSZ` → time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    // Days from civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let v = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- ISM ----------------------------------------------------------------------------------

fn get_policy(st: &State, id: &str) -> Handled {
    let (policy, seq) = st
        .policies
        .get(id)
        .ok_or((404, format!("Policy not found: {id}")))?;
    let mut p = policy["policy"].clone();
    let m = p.as_object_mut().expect("validated");
    m.insert("policy_id".into(), json!(id));
    m.insert("last_updated_time".into(), json!(1_700_000_000_000u64));
    m.insert("schema_version".into(), json!(21));
    m.insert("error_notification".into(), Value::Null);
    if let Some(states) = m.get_mut("states").and_then(Value::as_array_mut) {
        for s in states {
            if let Some(actions) = s["actions"].as_array_mut() {
                for a in actions {
                    a["retry"] = json!({"count": 3, "backoff": "exponential", "delay": "1m"});
                }
            }
        }
    }
    if let Some(tpls) = m.get_mut("ism_template").and_then(Value::as_array_mut) {
        for t in tpls {
            t["last_updated_time"] = json!(1_700_000_000_000u64);
        }
    }
    Ok(json!({"_id": id, "_version": seq + 1, "_seq_no": seq, "_primary_term": 1, "policy": p}))
}

fn put_policy(st: &mut State, id: &str, query: &str, body: Option<Value>) -> Handled {
    let body = body.ok_or((400, "policy body missing".to_string()))?;
    let policy = body
        .get("policy")
        .and_then(Value::as_object)
        .ok_or((400, "no `policy` object".to_string()))?;
    let states = policy
        .get("states")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
        .ok_or((400, "policy.states must be a non-empty array".to_string()))?;
    let names: Vec<&str> = states.iter().filter_map(|s| s["name"].as_str()).collect();
    if names.len() != states.len() {
        return Err((400, "every state needs a name".into()));
    }
    let default = policy
        .get("default_state")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !names.contains(&default) {
        return Err((400, format!("default_state [{default}] is not a state")));
    }
    for s in states {
        for t in s["transitions"]
            .as_array()
            .ok_or((400, "transitions must be an array".to_string()))?
        {
            let target = t["state_name"].as_str().unwrap_or("");
            if !names.contains(&target) {
                return Err((400, format!("transition to unknown state [{target}]")));
            }
            if let Some(age) = t
                .pointer("/conditions/min_index_age")
                .and_then(Value::as_str)
            {
                let (n, unit) = age.split_at(age.len().saturating_sub(1));
                if n.parse::<u32>().is_err() || !["d", "h", "m", "s"].contains(&unit) {
                    return Err((400, format!("failed to parse min_index_age [{age}]")));
                }
            }
        }
        if !s["actions"].is_array() {
            return Err((400, "actions must be an array".into()));
        }
    }
    let params: BTreeMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let next_seq = match st.policies.get(id) {
        None => 0,
        Some((_, seq)) => {
            let given = params.get("if_seq_no").and_then(|s| s.parse::<u64>().ok());
            let term = params
                .get("if_primary_term")
                .and_then(|s| s.parse::<u64>().ok());
            if given != Some(*seq) || term != Some(1) {
                return Err((
                    409,
                    format!(
                        "version_conflict_engine_exception: [{id}] exists; seq_no {seq} required"
                    ),
                ));
            }
            seq + 1
        }
    };
    st.policies.insert(id.to_string(), (body, next_seq));
    Ok(json!({"_id": id, "_seq_no": next_seq, "_primary_term": 1}))
}

// ---- Dashboards saved objects -----------------------------------------------------------

fn get_saved(st: &State, kind: &str, id: &str) -> Handled {
    let o = st
        .saved
        .get(&(kind.to_string(), id.to_string()))
        .ok_or((404, format!("Saved object [{kind}/{id}] not found")))?;
    Ok(json!({
        "id": id, "type": kind, "updated_at": "2026-11-21T00:00:00.000Z", "version": "WzEsMV0=",
        "namespaces": ["default"], "migrationVersion": {kind: "7.10.0"},
        "attributes": o["attributes"], "references": o["references"]
    }))
}

fn post_saved(
    st: &mut State,
    kind: &str,
    id: &str,
    query: &str,
    xsrf: bool,
    body: Option<Value>,
) -> Handled {
    if !xsrf {
        return Err((400, "Request must contain a osd-xsrf header.".into()));
    }
    if !["index-pattern", "visualization", "search", "dashboard"].contains(&kind) {
        return Err((400, format!("unsupported saved object type [{kind}]")));
    }
    let body = body.ok_or((400, "body missing".to_string()))?;
    let obj = body
        .as_object()
        .ok_or((400, "body is not an object".to_string()))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["attributes", "references"].contains(&k.as_str()))
    {
        return Err((
            400,
            format!("[request body.{k}]: definition for this key is missing"),
        ));
    }
    let attrs = obj
        .get("attributes")
        .and_then(Value::as_object)
        .ok_or((400, "attributes must be an object".to_string()))?;
    let refs = obj
        .get("references")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for r in &refs {
        if !["name", "type", "id"].iter().all(|k| r[k].is_string()) {
            return Err((
                400,
                format!("reference {r} needs name, type and id strings"),
            ));
        }
    }
    attrs
        .get("title")
        .and_then(Value::as_str)
        .ok_or((400, "attributes.title must be a string".to_string()))?;
    let json_attr = |key: &str| -> Result<Option<Value>, (u16, String)> {
        attrs
            .get(key)
            .map(|v| {
                v.as_str()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .ok_or((400, format!("attributes.{key} must be a JSON string")))
            })
            .transpose()
    };
    match kind {
        "index-pattern" if attrs.get("timeFieldName").and_then(Value::as_str).is_none() => {
            return Err((400, "index pattern without timeFieldName".into()));
        }
        "visualization" => {
            let vis = json_attr("visState")?
                .ok_or((400, "visualization without visState".to_string()))?;
            if !vis["type"].is_string() || !vis["aggs"].is_array() {
                return Err((400, "visState needs type and aggs".into()));
            }
        }
        "dashboard" => {
            let panels = json_attr("panelsJSON")?
                .ok_or((400, "dashboard without panelsJSON".to_string()))?;
            for p in panels
                .as_array()
                .ok_or((400, "panelsJSON is not an array".to_string()))?
            {
                let name = p["panelRefName"].as_str().unwrap_or("");
                if !refs.iter().any(|r| r["name"] == name) {
                    return Err((400, format!("panel ref [{name}] has no reference")));
                }
                for (kind, id) in refs
                    .iter()
                    .filter_map(|r| Some((r["type"].as_str()?, r["id"].as_str()?)))
                {
                    if !st.saved.contains_key(&(kind.to_string(), id.to_string())) {
                        return Err((400, format!("dashboard references missing {kind}/{id}")));
                    }
                }
            }
        }
        _ => {}
    }
    if kind != "index-pattern" {
        let source = attrs
            .get("kibanaSavedObjectMeta")
            .and_then(|m| m.get("searchSourceJSON"))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .ok_or((
                400,
                "kibanaSavedObjectMeta.searchSourceJSON must be a JSON string".to_string(),
            ))?;
        if let Some(r) = source["indexRefName"].as_str() {
            if !refs.iter().any(|x| x["name"] == r) {
                return Err((400, format!("indexRefName [{r}] has no reference")));
            }
        }
    }
    let key = (kind.to_string(), id.to_string());
    if st.saved.contains_key(&key) && !query.split('&').any(|kv| kv == "overwrite=true") {
        return Err((409, format!("Saved object [{kind}/{id}] conflict")));
    }
    st.saved.insert(
        key,
        json!({"attributes": Value::Object(attrs.clone()), "references": refs}),
    );
    Ok(json!({"id": id, "type": kind}))
}

// ---- Notifications channels ---------------------------------------------------------------

fn check_channel(config: &Value) -> Result<(), (u16, String)> {
    let obj = config
        .as_object()
        .ok_or((400, "config must be an object".to_string()))?;
    for k in obj.keys() {
        if ![
            "name",
            "description",
            "config_type",
            "is_enabled",
            "webhook",
            "slack",
            "chime",
            "sns",
            "ses_account",
            "smtp_account",
            "email",
            "email_group",
            "microsoft_teams",
        ]
        .contains(&k.as_str())
        {
            return Err((400, format!("unknown config key [{k}]")));
        }
    }
    if !config["name"].is_string() {
        return Err((400, "config.name is required".into()));
    }
    match config["config_type"].as_str() {
        Some("webhook") => {
            let url = config
                .pointer("/webhook/url")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err((400, format!("webhook.url is not a URL: {url:?}")));
            }
            Ok(())
        }
        other => Err((
            400,
            format!("the stand-in plays webhook channels only, not {other:?}"),
        )),
    }
}

fn get_channel(st: &State, id: &str) -> Handled {
    let c = st
        .channels
        .get(id)
        .ok_or((404, format!("NotificationConfig {id} not found")))?;
    Ok(
        json!({"start_index": 0, "total_hits": 1, "total_hit_relation": "eq", "config_list": [{
        "config_id": id, "last_updated_time_ms": 1_700_000_000_000u64,
        "created_time_ms": 1_700_000_000_000u64, "config": c}]}),
    )
}

fn post_channel(st: &mut State, body: Option<Value>) -> Handled {
    let body = body.ok_or((400, "body missing".to_string()))?;
    let id = body["config_id"]
        .as_str()
        .ok_or((
            400,
            "config_id missing (the stand-in expects a chosen id)".to_string(),
        ))?
        .to_string();
    check_channel(&body["config"])?;
    if st.channels.contains_key(&id) {
        return Err((409, format!("config {id} already exists")));
    }
    st.channels.insert(id.clone(), body["config"].clone());
    Ok(json!({"config_id": id}))
}

fn put_channel(st: &mut State, id: &str, body: Option<Value>) -> Handled {
    let body = body.ok_or((400, "body missing".to_string()))?;
    if !st.channels.contains_key(id) {
        return Err((404, format!("NotificationConfig {id} not found")));
    }
    check_channel(&body["config"])?;
    st.channels.insert(id.to_string(), body["config"].clone());
    Ok(json!({"config_id": id}))
}

// ---- Alerting monitors --------------------------------------------------------------------

fn check_monitor(st: &State, m: &Value) -> Result<(), (u16, String)> {
    if m["type"] != "monitor" {
        return Err((400, "type must be \"monitor\"".into()));
    }
    let kind = m["monitor_type"].as_str().unwrap_or("");
    if kind != "bucket_level_monitor" {
        return Err((
            400,
            format!("the stand-in plays bucket_level_monitor only, not {kind:?}"),
        ));
    }
    if !m["name"].is_string() || !m["enabled"].is_boolean() {
        return Err((
            400,
            "name (string) and enabled (boolean) are required".into(),
        ));
    }
    let period = &m["schedule"]["period"];
    if period["interval"].as_u64().unwrap_or(0) < 1
        || !["MINUTES", "HOURS", "DAYS"].contains(&period["unit"].as_str().unwrap_or(""))
    {
        return Err((400, format!("schedule.period is not valid: {period}")));
    }
    let inputs = m["inputs"].as_array().filter(|a| a.len() == 1).ok_or((
        400,
        "a bucket-level monitor takes exactly one search input".to_string(),
    ))?;
    let search = &inputs[0]["search"];
    if search["indices"].as_array().is_none_or(|a| a.is_empty()) {
        return Err((400, "search.indices must be a non-empty array".into()));
    }
    let aggs = search["query"]["aggregations"].as_object().ok_or((
        400,
        "search.query.aggregations must be an object".to_string(),
    ))?;
    let triggers = m["triggers"]
        .as_array()
        .filter(|t| !t.is_empty())
        .ok_or((400, "triggers must be a non-empty array".to_string()))?;
    for t in triggers {
        let t = t.get("bucket_level_trigger").ok_or((
            400,
            "a bucket-level monitor takes bucket_level_trigger triggers".to_string(),
        ))?;
        if !t["name"].is_string() || !t["severity"].is_string() {
            return Err((
                400,
                "trigger name and severity (strings) are required".into(),
            ));
        }
        let cond = &t["condition"];
        let parent = cond["parent_bucket_path"].as_str().unwrap_or("");
        let agg = aggs.get(parent).ok_or((
            400,
            format!("parent_bucket_path [{parent}] names no aggregation"),
        ))?;
        if agg.get("composite").is_none() {
            return Err((
                400,
                format!("aggregation [{parent}] must be a composite aggregation"),
            ));
        }
        let sub = agg["aggs"].as_object().cloned().unwrap_or_default();
        let paths = cond["buckets_path"]
            .as_object()
            .filter(|p| !p.is_empty())
            .ok_or((
                400,
                "condition.buckets_path must be a non-empty object".to_string(),
            ))?;
        for (var, path) in paths {
            let name = path
                .as_str()
                .unwrap_or("")
                .split(['.', '>'])
                .next()
                .unwrap_or("");
            if name != "_count" && !sub.contains_key(name) {
                return Err((
                    400,
                    format!("buckets_path {var} -> {path} names no sub-aggregation"),
                ));
            }
            if !cond["script"]["source"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("params.{var}"))
            {
                return Err((
                    400,
                    format!("the condition script does not use params.{var}"),
                ));
            }
        }
        for a in t["actions"]
            .as_array()
            .ok_or((400, "actions must be an array".to_string()))?
        {
            let dest = a["destination_id"].as_str().unwrap_or("");
            if !st.channels.contains_key(dest) {
                return Err((
                    400,
                    format!("action destination [{dest}] is no notification channel"),
                ));
            }
            if !a["message_template"]["source"].is_string() || !a["name"].is_string() {
                return Err((
                    400,
                    "action name and message_template.source are required".into(),
                ));
            }
        }
    }
    Ok(())
}

fn monitor_reply(id: &str, m: &Value, seq: u64) -> Value {
    let mut m = m.clone();
    // What the plugin adds when it stores a monitor.
    m["last_update_time"] = json!(1_700_000_000_000u64);
    m["enabled_time"] = json!(1_700_000_000_000u64);
    m["schema_version"] = json!(5);
    m["owner"] = json!("alerting");
    if let Some(triggers) = m["triggers"].as_array_mut() {
        for (i, t) in triggers.iter_mut().enumerate() {
            t["bucket_level_trigger"]["id"] = json!(format!("trigger-{i}"));
            if let Some(actions) = t["bucket_level_trigger"]["actions"].as_array_mut() {
                for (j, a) in actions.iter_mut().enumerate() {
                    a["id"] = json!(format!("action-{i}-{j}"));
                }
            }
        }
    }
    json!({"_id": id, "_version": seq + 1, "_seq_no": seq, "_primary_term": 1, "monitor": m})
}

fn search_monitors(st: &State, body: Option<Value>) -> Handled {
    if st.monitors.is_empty() {
        return Err((404, "no such index [.opendistro-alerting-config]".into()));
    }
    let body = body.ok_or((400, "search body missing".to_string()))?;
    let name = body
        .pointer("/query/term/monitor.name.keyword")
        .and_then(Value::as_str)
        .ok_or((
            400,
            format!("the stand-in plays a term query on monitor.name.keyword only: {body}"),
        ))?;
    let hits: Vec<Value> = st
        .monitors
        .iter()
        .filter(|(_, (m, _))| m["name"] == name)
        .map(|(id, (m, seq))| {
            json!({"_index": ".opendistro-alerting-config", "_id": id,
            "_seq_no": seq, "_primary_term": 1, "_source": {"monitor": m}})
        })
        .collect();
    Ok(json!({"hits": {"total": {"value": hits.len(), "relation": "eq"}, "hits": hits}}))
}

fn post_monitor(st: &mut State, body: Option<Value>) -> Handled {
    let body = body.ok_or((400, "monitor body missing".to_string()))?;
    check_monitor(st, &body)?;
    let id = format!("mon{:04}", st.monitors.len() + 1);
    st.monitors.insert(id.clone(), (body.clone(), 0));
    Ok(monitor_reply(&id, &body, 0))
}

fn get_monitor(st: &State, id: &str) -> Handled {
    let (m, seq) = st
        .monitors
        .get(id)
        .ok_or((404, format!("Monitor not found: {id}")))?;
    Ok(monitor_reply(id, m, *seq))
}

fn put_monitor(st: &mut State, id: &str, query: &str, body: Option<Value>) -> Handled {
    let body = body.ok_or((400, "monitor body missing".to_string()))?;
    let seq = st
        .monitors
        .get(id)
        .map(|(_, seq)| *seq)
        .ok_or((404, format!("Monitor not found: {id}")))?;
    let params: BTreeMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    if params.get("if_seq_no") != Some(&seq.to_string().as_str())
        || params.get("if_primary_term") != Some(&"1")
    {
        return Err((
            409,
            format!("version_conflict_engine_exception: monitor {id} is at seq_no {seq}"),
        ));
    }
    check_monitor(st, &body)?;
    st.monitors.insert(id.to_string(), (body.clone(), seq + 1));
    Ok(monitor_reply(id, &body, seq + 1))
}

/// `ids2-provision` with nothing of the caller's environment but PATH: a private HOME (no AWS
/// config files) and the stand-in's own keys, so only this test's credentials can sign.
pub fn cli() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(env!("CARGO_BIN_EXE_ids2-provision"));
    let home = std::env::temp_dir().join(format!("ids2-standin-home-{}", std::process::id()));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    c
}

/// `ids2-provision opensearch setup` against the stand-in `s`, with `extra` arguments.
pub fn setup(s: &StandIn, extra: &[&str]) -> assert_cmd::assert::Assert {
    cli()
        .args([
            "opensearch",
            "setup",
            "--endpoint",
            &s.url,
            "--region",
            REGION,
        ])
        .args(extra)
        .assert()
}
