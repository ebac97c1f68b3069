//! Fuzz targets over what an attacker writes and the agent reads: the EVE tailer, the ECS
//! mapping, the notification renderers and the two HTTP listeners (`/metrics`, the blocklist
//! feed). Each runs a few seconds here (CI) and minutes under `bench/fuzz-long.sh`; seeds are the
//! real EVE lines of `../shared/corpus/elastic-suricata` (a few built-in lines when it is absent).
//! The driver and the mutator are `core/tests/support/fuzz.rs`, shared with the config target.

#[path = "../../core/tests/support/fuzz.rs"]
mod fuzz;
#[path = "support/rendered.rs"]
mod rendered;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use arbtest::arbitrary::{self, Unstructured};
use ids2_agent::config::Settings;
use ids2_agent::ecs::{Mapper, ID_FIELD};
use ids2_agent::eve::{EveCounter, TailEvent, Tailer};
use ids2_agent::notify::{Alert, Digest, Message, Sensor};
use serde_json::Value;

/// Per-target budget in CI: six targets, two cores, about a minute of CPU in all.
const BUDGET: Duration = Duration::from_secs(8);

/// JSON and EVE vocabulary for the mutator.
const JSON_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"18446744073709551616",
    b"\"event_type\":\"alert\"",
    b"\"event_type\":\"stats\"",
    b"\"src_ip\":\"::ffff:10.0.0.1\"",
    b"\"dest_ip\":\"not an ip\"",
    b"\"alert\":{}",
    b"\"signature\":\"\\r\\nBcc: x@example.org\"",
    b"\"timestamp\":\"\"",
    b"\"tls\":{\"sni\":",
    b"\"http\":{\"http_user_agent\":",
    b"\"dns\":{\"rrname\":",
    b"\\u202e",
    b"\\\"",
    b"\"flow_id\":-1",
    b"\"src_port\":70000",
    b"\"proto\":[]",
];

/// Real EVE lines: the corpus' `*.log` lines and the originals of `test-events.json`.
fn eve_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/elastic-suricata");
        let mut seeds = Vec::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            if name.ends_with(".log") {
                seeds.extend(text.lines().filter(|l| !l.is_empty()).map(|l| l.as_bytes().to_vec()));
            } else if name == "test-events.json" {
                let doc: Value = serde_json::from_str(&text).unwrap();
                for ev in doc["events"].as_array().into_iter().flatten() {
                    if let Some(o) = ev["event"]["original"].as_str() {
                        seeds.push(o.as_bytes().to_vec());
                    }
                }
            }
        }
        if seeds.is_empty() {
            eprintln!("note: ../shared/corpus/elastic-suricata is absent: seeding from built-in lines");
            seeds.push(br#"{"timestamp":"2026-03-01T10:00:00.000000+0000","flow_id":7,"event_type":"alert","src_ip":"203.0.113.9","src_port":4444,"dest_ip":"192.168.1.5","dest_port":80,"proto":"TCP","alert":{"signature_id":2001,"signature":"ET TEST","category":"x","severity":1},"http":{"hostname":"example.org","http_user_agent":"curl"}}"#.to_vec());
            seeds.push(br#"{"timestamp":"2026-03-01T10:00:00.000000+0000","event_type":"dns","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","proto":"UDP","dns":{"type":"query","rrname":"example.org"}}"#.to_vec());
        }
        seeds
    })
}

/// A real EVE line mutated, or (one time in eight) raw bytes.
fn hostile_line(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    if u.ratio(1, 8)? {
        let n = u.int_in_range(0..=512)?;
        return Ok(u.bytes(n.min(u.len()))?.to_vec());
    }
    let seed = u.choose(eve_seeds())?;
    fuzz::mutate(u, seed, JSON_DICT)
}

// ---------------------------------------------------------------------------------------------
// The EVE tailer: appends of hostile bytes, polls with any budget, copytruncate and rotation at
// any byte of the stream. A model says exactly which events must come out.

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Line(Vec<u8>),
    Oversized,
}

/// What the tailer must hand out for one file's bytes; `closed` when the file ended for good
/// (rotated away or truncated), which makes a last line without its newline a line too.
fn expected(content: &[u8], closed: bool, max: usize, out: &mut Vec<Ev>) {
    let mut parts: Vec<&[u8]> = content.split(|&b| b == b'\n').collect();
    let partial = parts.pop().unwrap_or(b"");
    for line in parts {
        if line.len() > max {
            out.push(Ev::Oversized);
        } else if !line.is_empty() {
            out.push(Ev::Line(line.to_vec()));
        }
    }
    if partial.len() > max {
        out.push(Ev::Oversized);
    } else if closed && !partial.is_empty() {
        out.push(Ev::Line(partial.to_vec()));
    }
}

fn tailer_case(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eve.json");
    std::fs::write(&path, b"").unwrap();
    let max = if u.ratio(1, 8)? {
        u.int_in_range(60_000..=70_000)?
    } else {
        u.int_in_range(1..=300)?
    };
    let mut tailer = Tailer::new(path.clone(), max, false);
    let (mut got, mut want) = (Vec::new(), Vec::new());
    let mut current: Vec<u8> = Vec::new();
    let mut counter = EveCounter::default();
    let mut poll = |t: &mut Tailer, budget: usize, got: &mut Vec<Ev>| {
        t.poll(budget, |ev| match ev {
            TailEvent::Line(l) => {
                counter.line(l);
                // What the EVE reader does with a line next must not panic either.
                let _ = Alert::from_line(l);
                got.push(Ev::Line(l.to_vec()));
            }
            TailEvent::Oversized => {
                counter.oversized();
                got.push(Ev::Oversized);
            }
        })
        .unwrap()
    };
    // The first poll opens the file, as the agent's first poll does at start.
    poll(&mut tailer, 1, &mut got);
    let mut rotations = 0;
    for _ in 0..u.int_in_range(1..=24)? {
        match u.int_in_range(0..=9)? {
            0..=4 => {
                let mut bytes = match u.int_in_range(0..=3)? {
                    0 => {
                        let n = u.int_in_range(0..=64)?;
                        u.bytes(n.min(u.len()))?.to_vec()
                    }
                    1 => vec![
                        *u.choose(&[b'x', b'\0', b'\n', 0xff])?;
                        u.int_in_range(1..=3 * max.min(50_000))?
                    ],
                    _ => hostile_line(u)?,
                };
                if u.ratio(3, 4)? {
                    bytes.push(b'\n');
                }
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap()
                    .write_all(&bytes)
                    .unwrap();
                current.extend_from_slice(&bytes);
            }
            5..=7 => {
                let budget = u.int_in_range(1..=200_000)?;
                poll(&mut tailer, budget, &mut got);
            }
            8 => {
                // copytruncate: the tailer is caught up (bytes written and never read before a
                // truncation are gone for any reader), then sees the file cut to zero.
                while poll(&mut tailer, usize::MAX, &mut got) {}
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
                poll(&mut tailer, u.int_in_range(1..=200_000)?, &mut got);
                expected(&std::mem::take(&mut current), true, max, &mut want);
            }
            _ => {
                // Rotation: renamed, a new file created; polled before the next rotation (a
                // file rotated away twice between two polls is never opened, as with tail -F).
                rotations += 1;
                std::fs::rename(&path, dir.path().join(format!("eve.json.{rotations}"))).unwrap();
                std::fs::write(&path, b"").unwrap();
                poll(&mut tailer, u.int_in_range(1..=200_000)?, &mut got);
                expected(&std::mem::take(&mut current), true, max, &mut want);
            }
        }
    }
    while poll(&mut tailer, usize::MAX, &mut got) {}
    expected(&current, false, max, &mut want);
    assert_eq!(
        got.len(),
        want.len(),
        "max_line {max}: got {got:?}\nwant {want:?}"
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "event {i} of {}, max_line {max}", want.len());
    }
    // Every event is counted (an unparseable line as `unparsed`, a long one as `oversized`),
    // none lost.
    let counted: u64 = counter.counts().values().sum();
    assert_eq!(counted, got.len() as u64);
    // A restart resumes right after the last complete line of the current file.
    if let Some(pos) = tailer.position() {
        let end = current
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        assert_eq!(pos.offset, end as u64, "resume position");
    }
    Ok(())
}

#[test]
fn fuzz_eve_tailer() {
    fuzz::fuzz("eve-tailer", BUDGET, tailer_case);
}

// ---------------------------------------------------------------------------------------------
// The ECS mapping, through its public API (the VRL program may change under it): every line is
// mapped, or the `ecs_unmapped` transform of the rendered vector.toml ships it as it came.

fn settings() -> Settings {
    ids2_agent::config::from_str(
        "sensor: {id: lab-1, name: Lab one}\n\
         capture: {interface: eth1, home_net: [10.0.0.0/8, 192.168.0.0/16]}\n\
         opensearch: {domain: ids2, region: eu-west-1, endpoint: 'https://opensearch.invalid'}\n",
        Path::new("fuzz.yaml"),
    )
    .unwrap()
}

fn ecs_check(mapper: &mut Mapper, unmapped: &mut Mapper, line: &str) {
    match mapper.map_line(line) {
        Ok(doc) => {
            let id = ID_FIELD
                .split('.')
                .try_fold(&doc, |v, k| v.get(k))
                .and_then(Value::as_str);
            assert!(
                id.is_some_and(|id| !id.is_empty()),
                "mapped without {ID_FIELD}: {line:?} -> {doc}"
            );
        }
        Err(_) => {
            let doc = unmapped
                .map_line(line)
                .unwrap_or_else(|e| panic!("neither mapped nor shipped unmapped: {e}: {line:?}"));
            assert_eq!(doc["message"], line, "the unmapped document keeps the line");
            assert_eq!(doc["event"]["kind"], "pipeline_error");
            assert_eq!(doc["event"]["dataset"], "suricata.unmapped");
            assert_eq!(doc["event"]["id"].as_str().map(str::len), Some(64));
        }
    }
}

#[test]
fn fuzz_ecs_mapping() {
    let s = settings();
    let mut mapper = Mapper::new(&s).expect("the shipped program compiles");
    let toml = rendered::vector_toml(&s);
    let source = toml["transforms"]["ecs_unmapped"]["source"]
        .as_str()
        .expect("vector.toml has transforms.ecs_unmapped");
    let mut unmapped = Mapper::from_source(source).expect("ecs_unmapped compiles");
    // The unmapped path is exercised on purpose too, not only when a mutation happens to break.
    ecs_check(&mut mapper, &mut unmapped, "not json at all");
    ecs_check(&mut mapper, &mut unmapped, "[1,2,3]");
    fuzz::fuzz("ecs", BUDGET, |u| {
        let line = hostile_line(u)?;
        // The file source hands Vector text; what is not UTF-8 arrives replaced, as here.
        let text = String::from_utf8_lossy(&line);
        ecs_check(
            &mut mapper,
            &mut unmapped,
            text.trim_end_matches(['\n', '\r']),
        );
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// The notification renderers over alerts whose every string the attacker chose.

fn hostile_string(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let bytes = match u.int_in_range(0..=9)? {
        0 => vec![b'A'; u.int_in_range(0..=1_100_000)?],
        1..=3 => {
            let n = u.int_in_range(0..=256)?;
            u.bytes(n.min(u.len()))?.to_vec()
        }
        _ => fuzz::mutate(u, b"ET POLICY example.org <!channel> *x* `y`", NOTIFY_DICT)?,
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

const NOTIFY_DICT: &[&[u8]] = &[
    b"\r\nBcc: victim@example.org\r\n",
    b"\nSubject: fake",
    b"\r\n\r\n",
    b"<!channel>",
    b"<!here>",
    b"<@U012AB3CD>",
    b"<https://evil.example|click>",
    b"*",
    b"_",
    b"~",
    b"`",
    b"```",
    b"&amp;",
    b"&lt;",
    b"\"}",
    b"\"},\"text\":\"x",
    b"\\",
    "\u{2028}".as_bytes(),
    "\u{202e}".as_bytes(),
    b"=?utf-8?b?SGk=?=",
    b".\r\n",
    b"\r\n.\r\n",
];

fn hostile_ip(u: &mut Unstructured<'_>) -> arbitrary::Result<IpAddr> {
    Ok(if u.ratio(1, 2)? {
        IpAddr::V4(Ipv4Addr::from(u.arbitrary::<u32>()?))
    } else {
        IpAddr::V6(Ipv6Addr::from(u.arbitrary::<u128>()?))
    })
}

fn hostile_alert(u: &mut Unstructured<'_>) -> arbitrary::Result<Alert> {
    Ok(Alert {
        timestamp: hostile_string(u)?,
        src_ip: hostile_ip(u)?,
        src_port: u.arbitrary()?,
        dest_ip: hostile_ip(u)?,
        dest_port: u.arbitrary()?,
        proto: hostile_string(u)?,
        signature_id: u.arbitrary()?,
        signature: hostile_string(u)?,
        category: hostile_string(u)?,
        severity: u.arbitrary()?,
        attacker: None,
        event: Arc::new(Value::Null),
    })
}

fn renderer_case(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let sensor = Sensor {
        id: "lab-1".into(),
        name: "Lab sensor".into(),
    };
    let msg = if u.ratio(2, 3)? {
        Message::Alert(hostile_alert(u)?)
    } else {
        let mut signatures: Vec<(u64, String, u64)> = Vec::new();
        for _ in 0..u.int_in_range(0..=14)? {
            signatures.push((u.arbitrary()?, hostile_string(u)?, u.arbitrary()?));
        }
        Message::Digest(Digest {
            count: u.arbitrary()?,
            first_timestamp: hostile_string(u)?,
            last_timestamp: hostile_string(u)?,
            distinct_sources: u.arbitrary()?,
            signatures,
        })
    };
    let subject = msg.subject(&sensor);
    assert!(
        !subject.chars().any(char::is_control),
        "control character in the subject: {subject:?}"
    );
    assert!(subject.len() < 1_200, "subject of {} bytes", subject.len());
    // The body has the lines the renderer writes, never one an attacker added.
    let text = msg.text(&sensor);
    let lines = match &msg {
        Message::Alert(a) => 3 + usize::from(!a.category.is_empty()),
        Message::Digest(d) => 1 + d.signatures.len().min(10) + usize::from(d.signatures.len() > 10),
    };
    assert_eq!(text.lines().count(), lines, "{text:?}");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control character in the body: {text:?}"
    );
    assert!(text.len() < 16_000, "body of {} bytes", text.len());
    // Both JSON bodies read back as meant, and no string in them is over the cap.
    for json in [msg.generic_json(&sensor), msg.slack_json(&sensor)] {
        let body = serde_json::to_vec(&json).unwrap();
        let back: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, json);
        assert!(body.len() < 32_000, "JSON body of {} bytes", body.len());
    }
    let slack = msg.slack_json(&sensor);
    let slack_text = slack["text"].as_str().unwrap();
    assert!(!slack_text.contains(['<', '>']), "{slack_text:?}");
    assert_eq!(slack["mrkdwn"], false);
    // The e-mail the agent sends has exactly our headers.
    let email = ids2_agent::notify::compose_email(
        &"ids2@sensor.example.org".parse().unwrap(),
        &["soc@example.org".parse().unwrap()],
        &sensor,
        &msg,
    )
    .unwrap()
    .formatted();
    assert_eq!(
        header_names(&email),
        EMAIL_HEADERS,
        "{}",
        String::from_utf8_lossy(&email)
    );
    Ok(())
}

/// The headers of every notification e-mail, sorted (lettre writes no MIME-Version for a
/// plain body).
const EMAIL_HEADERS: [&str; 6] = [
    "Content-Transfer-Encoding",
    "Content-Type",
    "Date",
    "From",
    "Subject",
    "To",
];

/// Sorted names of the header fields of a formatted message (folded lines belong to a field).
fn header_names(email: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(email);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut names: Vec<String> = head
        .split("\r\n")
        .filter(|l| !l.starts_with([' ', '\t']))
        .map(|l| l.split(':').next().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn fuzz_notify_renderers() {
    fuzz::fuzz("notify", BUDGET, renderer_case);
}

// ---------------------------------------------------------------------------------------------
// The HTTP listeners: any request line and headers, sent raw over loopback. Each answer is an
// HTTP/1.1 response or a closed connection, no handler panics, and the listener still serves a
// well-formed request afterwards.

static PANICKED: AtomicBool = AtomicBool::new(false);

/// Records any panic, including one in a server task that nobody joins.
fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            previous(info);
        }));
    });
}

const HTTP_SEEDS: &[&[u8]] = &[
    b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Prometheus/2.45\r\nAccept: text/plain\r\n\r\n",
    b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /blocklist.txt HTTP/1.1\r\nHost: fw\r\nConnection: close\r\n\r\n",
    b"GET /blocklist.json HTTP/1.0\r\n\r\n",
    b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /blocklist.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
];

const HTTP_DICT: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b": ",
    b"Host: ",
    b"Content-Length: ",
    b"Content-Length: -1",
    b"Content-Length: 99999999999999999999",
    b"Transfer-Encoding: chunked",
    b"Expect: 100-continue",
    b"Connection: keep-alive",
    b"Upgrade: h2c",
    b"HTTP/1.1",
    b"HTTP/2.0",
    b"HTTP/0.9",
    b"/../",
    b"%2e%2e",
    b"?a=",
    b"#",
    b"*",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"GET ",
    b" ",
    b"\t",
    b"/metrics",
    b"/blocklist.txt",
    b"/blocklist.json",
    b"ffffffffffffffff\r\n",
    b"0\r\n\r\n",
];

/// Sends `request`, half-closes, reads the answer (bounded); returns the bytes received.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before reading everything: a reset then is fine.
    let _ = s.write_all(request);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = s.take(4 << 20).read_to_end(&mut answer);
    answer
}

/// Cases answered with an HTTP response, and cases in all: a target whose requests were all
/// dropped unanswered would prove nothing about the handlers.
#[derive(Default)]
struct Answered {
    answered: u64,
    cases: u64,
}

impl Answered {
    fn check(&self, target: &str) {
        eprintln!(
            "{target}: {} of {} requests answered",
            self.answered, self.cases
        );
        assert!(
            self.answered * 10 >= self.cases,
            "{target}: fewer than one request in ten was answered"
        );
    }
}

fn http_case(
    addr: SocketAddr,
    seen: &mut Answered,
    u: &mut Unstructured<'_>,
) -> arbitrary::Result<()> {
    let request = if u.ratio(1, 10)? {
        let n = u.int_in_range(0..=2048)?;
        u.bytes(n.min(u.len()))?.to_vec()
    } else {
        let seed = u.choose(HTTP_SEEDS)?;
        fuzz::mutate(u, seed, HTTP_DICT)?
    };
    let answer = exchange(addr, &request);
    seen.cases += 1;
    seen.answered += u64::from(!answer.is_empty());
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(b"HTTP/1.0 "),
        "not an HTTP answer to {:?}: {:?}",
        String::from_utf8_lossy(&request),
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    assert!(!PANICKED.load(Ordering::SeqCst), "a handler panicked");
    Ok(())
}

/// A well-formed request, the way Prometheus or a firewall sends it: without a half-close (a
/// server may close at once when the request and the end of input arrive together).
fn healthy(addr: SocketAddr, path: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.take(4 << 20).read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 200 "),
        "{path} no longer served: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn fuzz_metrics_endpoint() {
    watch_panics();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let metrics = Arc::new(ids2_agent::metrics::Metrics::new("fuzz"));
    let server = rt
        .block_on(ids2_agent::metrics::serve(
            "127.0.0.1:0".parse().unwrap(),
            ids2_agent::listen::Limits::default(),
            metrics,
        ))
        .unwrap();
    let addr = server.local_addr();
    let mut seen = Answered::default();
    fuzz::fuzz("metrics-http", BUDGET, |u| http_case(addr, &mut seen, u));
    seen.check("metrics-http");
    healthy(addr, "/metrics");
    rt.block_on(server.shutdown(Duration::from_secs(2)));
    assert!(!PANICKED.load(Ordering::SeqCst), "a handler panicked");
}

#[test]
fn fuzz_blocklist_endpoint() {
    use ids2_agent::block::{
        ip_or_cidr, Allowlist, BlockConfig, BlockStats, Blocker, NoReputation, PolicyConfig,
    };
    watch_panics();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let home = vec![ip_or_cidr("192.168.0.0/16").unwrap()];
    let cfg = BlockConfig {
        policy: PolicyConfig {
            min_severity: ids2_agent::config::Severity::High,
            categories: vec![],
            repeat: None,
            reputation_min_score: None,
            home_net: home.clone(),
        },
        allowlist: Allowlist::new(home, vec![], vec![]),
        ttl: Duration::from_secs(600),
        max_entries: 1000,
        feed_listen: "127.0.0.1:0".parse().unwrap(),
        feed_limits: ids2_agent::listen::Limits::default(),
        max_decisions_per_minute: 600,
        nft: None,
        discover_host: false,
        allow_hosts: vec![],
        queue_capacity: 64,
    };
    let (handle, mut blocker) =
        Blocker::new(cfg, Arc::new(NoReputation), Arc::new(BlockStats::default()));
    let addr = rt.block_on(blocker.bind_feed()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(blocker.run(async move {
        let _ = stopped.await;
    }));
    // A decision in the table, so the feed has something to render.
    assert!(handle.offer(&serde_json::json!({
        "event_type": "alert", "src_ip": "198.51.100.7", "dest_ip": "192.168.1.5",
        "alert": {"signature_id": 1, "signature": "x", "severity": 1}
    })));
    let mut seen = Answered::default();
    fuzz::fuzz("blocklist-http", BUDGET, |u| http_case(addr, &mut seen, u));
    seen.check("blocklist-http");
    healthy(addr, "/blocklist.txt");
    healthy(addr, "/blocklist.json");
    stop.send(()).unwrap();
    rt.block_on(task).unwrap().unwrap();
    assert!(!PANICKED.load(Ordering::SeqCst), "a handler panicked");
}
