//! Indicator feeds with the real Suricata: feeds served from `file://` and from an HTTP server
//! on loopback are compiled, checked and swapped in; `suricata -r` over corpus captures (a TLS
//! session and a DNS query) alerts on the address, the domain and the JA3 that are on feeds,
//! with the feed and kind in the rule metadata, and never on an allowlisted address; a corrupt
//! feed is refused while the others update; and, as root, a live Suricata in a network
//! namespace alerts on an indicator an update added, with the same PID. Tests skip with a
//! message when suricata, the corpus or (for the live test) root and `ip` are missing; CI
//! provides them.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/netns.rs"]
mod netns;
#[path = "support/offline.rs"]
mod offline;
#[path = "support/rendered.rs"]
mod rendered;

use ids2_agent::config::{self, Settings};
use ids2_agent::ecs::{fields::emitted_fields, Mapper};
use ids2_agent::intel::feeds::{FeedUpdater, IntelFeedsError, IntelLoad, IntelReport};
use ids2_agent::suricata::Suricata;
use netns::{End, Pair};
use serde_json::Value;

/// The corpus captures: a TLS session to 18.138.183.195 (SNI fkp.samsungcloudsolution.com,
/// JA3 f271b89d…) from 192.168.0.43, and DNS queries for google.com.
const TLS_PCAP: &str = "tls_tls-pre-1970__input.pcap";
const DNS_PCAP: &str = "dns_dns-udp-eve-log-answer-only__dns-udp-google.com-a-aaaa-mx.pcap";
const TLS_SERVER: &str = "18.138.183.195";
const TLS_CLIENT: &str = "192.168.0.43";
const JA3: &str = "f271b89dfd3fc1647182ed19a5c37285";

fn suricata() -> Option<Suricata> {
    match Suricata::locate() {
        Ok(Some(s)) => Some(s),
        _ => {
            eprintln!("skipped: needs suricata (set IDS2_SURICATA or add it to PATH)");
            None
        }
    }
}

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pcaps");
    if dir.join(TLS_PCAP).is_file() && dir.join(DNS_PCAP).is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: needs the shared corpus (../shared/corpus/pcaps)");
        None
    }
}

/// Serves `body` over HTTP on loopback for at most `requests` requests (then the thread ends).
fn serve(body: String, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ja3.csv", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn settings(work: &Path, interface: &str, home_net: &str, intel: &str) -> Settings {
    let p = |s: &str| work.join(s).display().to_string();
    let yaml = format!(
        "sensor: {{id: intel-{pid}}}\n\
         capture: {{interface: {interface}, home_net: [{home_net}], workers: 1, cpu_cores: [0]}}\n\
         opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://os.example'}}\n\
         logs: {{path: {logs:?}}}\n\
         suricata: {{memory_mb: 128, rules_dir: {rules:?}, socket_path: {socket:?}, \
         eve_types: [alert, dns, tls, flow]}}\n\
         history: {{repo: {history:?}}}\n\
         paths: {{rendered_dir: {rendered:?}, vector_data_dir: {vector:?}}}\n\
         fleet: {{rules: {{scheduled: false}}}}\n\
         intel:\n  dir: {intel_dir:?}\n{intel}",
        pid = std::process::id(),
        logs = p("logs"),
        rules = p("rules"),
        socket = p("suricata.socket"),
        history = p("history.git"),
        rendered = p("rendered"),
        vector = p("vector"),
        intel_dir = p("intel"),
    );
    config::from_str(&yaml, Path::new("<test>")).unwrap()
}

fn prepare(s: &Settings, suricata: &Suricata) -> FeedUpdater {
    offline::render_checked(suricata, s, None);
    FeedUpdater::for_settings(s).unwrap()
}

/// `suricata -r` over `pcaps` with the rendered config (its rule files: the intel rules
/// through intel.dir/current); the EVE alerts.
fn replay(suricata: &Suricata, s: &Settings, pcaps: &[PathBuf], out: &Path) -> Vec<Value> {
    let input = out.join("in");
    offline::stage(pcaps, &input);
    offline::suricata_r(suricata, &offline::rendered_yaml(s), &input, out, &[]);
    let text = fs::read_to_string(out.join("eve.json")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event_type"] == "alert")
        .collect()
}

/// One update of every feed (what `ids2-agent intel update` runs).
fn update(u: &FeedUpdater) -> Result<IntelReport, IntelFeedsError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(u.update(true))
}

fn meta<'a>(alert: &'a Value, key: &str) -> &'a str {
    alert["alert"]["metadata"][key][0].as_str().unwrap_or("")
}

/// The EVE value the rule names as matched (`ids2_intel_field`).
fn matched(alert: &Value) -> String {
    let field = meta(alert, "ids2_intel_field");
    let mut v = alert;
    for part in field.split('.') {
        v = match v {
            Value::Array(items) => &items[0][part],
            other => &other[part],
        };
    }
    match v {
        Value::Array(items) => items[0].as_str().unwrap_or("").to_string(),
        other => other.as_str().unwrap_or("").to_string(),
    }
}

#[test]
fn feeds_detect_ip_domain_and_ja3_and_a_corrupt_feed_keeps_the_last_good_version() {
    let (Some(suricata), Some(corpus)) = (suricata(), corpus()) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let ips = w.join("ips.txt");
    fs::write(
        &ips,
        format!("# own C2 list\n{TLS_SERVER}\n{TLS_CLIENT}\nnot-an-address\n198.51.100.0/30\n"),
    )
    .unwrap();
    let domains = w.join("domains.txt");
    fs::write(
        &domains,
        "0.0.0.0 fkp.samsungcloudsolution.com\nGoogle.com.\n",
    )
    .unwrap();
    let ja3_url = serve(
        format!("# ja3_md5,Firstseen,Lastseen,Listingreason\n{JA3},2024-01-01,2024-01-02,test\n"),
        4,
    );
    let intel = format!(
        "  allowlist: [{TLS_CLIENT}]\n  feeds:\n    \
         - {{name: own-ips, source: 'file://{}', format: plain, kind: ip}}\n    \
         - {{name: own-domains, source: 'file://{}', format: plain, kind: domain, severity: medium}}\n    \
         - {{name: ja3-http, source: '{ja3_url}', format: csv, column: 0, kind: ja3}}\n",
        ips.display(),
        domains.display()
    );
    let s = settings(w, "eth0", "192.168.0.0/16", &intel);
    let updater = prepare(&s, &suricata);

    let first = update(&updater).unwrap();
    assert_eq!(first.failed(), 0, "{first}");
    let own = &first.feeds[0];
    // The address, the /30's four, the allowlisted client dropped, one invalid line.
    assert_eq!(own.state.indicators, 5, "{first}");
    assert_eq!((own.state.invalid, own.state.allowlisted), (1, 1));
    assert_eq!(own.change, Some((5, 0)));
    assert_eq!(first.feeds[1].state.indicators, 2);
    assert_eq!(first.feeds[2].state.indicators, 1);
    assert_eq!(first.load, IntelLoad::NotRunning);
    let commit = first.commit.clone().expect("recorded");
    let subject = git_subject(&s.config.history.repo, "dev-intel");
    assert!(
        subject.contains("own-ips +5 -0, own-domains +2 -0, ja3-http +1 -0"),
        "{subject} ({commit})"
    );

    let alerts = replay(
        &suricata,
        &s,
        &[corpus.join(TLS_PCAP), corpus.join(DNS_PCAP)],
        &w.join("replay1"),
    );
    let by_feed = |feed: &str| -> Vec<&Value> {
        alerts
            .iter()
            .filter(|a| meta(a, "ids2_intel_feed") == feed)
            .collect()
    };
    let ip = by_feed("own-ips");
    assert!(!ip.is_empty(), "{alerts:#?}");
    for a in &ip {
        assert_eq!(meta(a, "ids2_intel_kind"), "ip");
        assert_eq!(matched(a), TLS_SERVER, "{a}");
    }
    let domain = by_feed("own-domains");
    let mut names: Vec<String> = domain.iter().map(|a| matched(a)).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names,
        ["fkp.samsungcloudsolution.com", "google.com"],
        "{domain:#?}"
    );
    assert!(domain.iter().all(|a| a["alert"]["severity"] == 2));
    let ja3 = by_feed("ja3-http");
    assert_eq!(ja3.len(), 1, "{alerts:#?}");
    assert_eq!(meta(ja3[0], "ids2_intel_kind"), "ja3");
    assert_eq!(matched(ja3[0]), JA3);
    // The allowlisted client is on the feed, and sends every packet of the session: no alert
    // names it as the matched address.
    assert!(
        alerts.iter().all(|a| matched(a) != TLS_CLIENT),
        "{alerts:#?}"
    );

    // The ECS documents carry the feed and the indicator, in fields the ECS reference and
    // templates/ecs_fields.tsv (so the index templates) know.
    let mut mapper = Mapper::new(&s).unwrap();
    let fields = emitted_fields();
    let listed: Vec<&str> = fields.iter().map(|f| f.name).collect();
    let reference = rendered::ecs_reference();
    for (alert, kind, value) in [(ip[0], "ipv4-addr", TLS_SERVER), (ja3[0], "software", JA3)]
        .into_iter()
        .chain(domain.iter().map(|a| (*a, "domain-name", "")))
    {
        let doc = mapper.map_line(&alert.to_string()).unwrap();
        let t = &doc["threat"];
        assert_eq!(t["feed"]["name"], meta(alert, "ids2_intel_feed"), "{doc:#}");
        assert_eq!(t["indicator"]["type"], kind, "{doc:#}");
        let want = if value.is_empty() {
            matched(alert)
        } else {
            value.to_string()
        };
        assert_eq!(t["indicator"]["name"], want.as_str(), "{doc:#}");
        if kind == "ipv4-addr" {
            assert_eq!(t["indicator"]["ip"], TLS_SERVER);
        }
        if kind == "domain-name" {
            assert_eq!(t["indicator"]["url"]["domain"], want.as_str());
        }
        for leaf in rendered::ecs_leaf_names(&doc)
            .iter()
            .filter(|l| l.starts_with("threat."))
        {
            assert!(
                listed.contains(&leaf.as_str()),
                "{leaf} is not in ecs_fields.tsv"
            );
            if let Some(r) = &reference {
                assert!(r.contains_key(leaf), "{leaf} is not an ECS field");
            }
        }
    }

    // Unchanged feeds: nothing swapped, nothing recorded.
    let again = update(&updater).unwrap();
    assert_eq!(again.load, IntelLoad::NotNeeded);
    assert_eq!(again.commit, None);

    // The domain feed turns to garbage and the IP feed gains an address: the IP feed updates,
    // the domain feed keeps its last good version (and still matches).
    fs::write(
        &domains,
        "\u{0}\u{1}garbage\n<html>not a feed</html>\nx y z ???\n",
    )
    .unwrap();
    fs::write(&ips, format!("{TLS_SERVER}\n203.0.113.77\n")).unwrap();
    let third = update(&updater).unwrap();
    assert_eq!(third.failed(), 1, "{third}");
    let bad = &third.feeds[1];
    assert!(
        bad.error.as_deref().unwrap().contains("refusing"),
        "{third}"
    );
    assert_eq!(bad.state.indicators, 2, "the last good version stays");
    assert_eq!(third.feeds[0].change, Some((1, 4)));
    let alerts = replay(
        &suricata,
        &s,
        &[corpus.join(TLS_PCAP), corpus.join(DNS_PCAP)],
        &w.join("replay2"),
    );
    assert!(
        alerts
            .iter()
            .any(|a| meta(a, "ids2_intel_feed") == "own-domains" && matched(a) == "google.com"),
        "{alerts:#?}"
    );
    let states = updater.states();
    assert!(states["own-domains"].error.is_some());
    assert_eq!(states["own-ips"].indicators, 2);
}

#[test]
fn broken_compiled_sets_are_refused_by_suricata() {
    let Some(suricata) = suricata() else { return };
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let feed = w.join("f.txt");
    fs::write(&feed, "192.0.2.1\n").unwrap();
    let intel = format!(
        "  feeds:\n    - {{name: f, source: 'file://{}', format: plain, kind: ip}}\n",
        feed.display()
    );
    let s = settings(w, "eth0", "10.0.0.0/8", &intel);
    let updater = prepare(&s, &suricata);
    update(&updater).unwrap();
    let current = w.join("intel/current");
    let before = fs::read_link(&current).unwrap();
    // Suricata's dataset limits made too small for the set: the check fails, nothing is
    // swapped.
    let rendered = Path::new(&s.config.paths.rendered_dir).join("current/suricata.yaml");
    let text = fs::read_to_string(&rendered).unwrap();
    fs::write(
        &rendered,
        format!("{text}\ndatasets:\n  limits:\n    single-hashsize: 16\n"),
    )
    .unwrap();
    fs::write(&feed, "192.0.2.1\n192.0.2.2\n").unwrap();
    let err = update(&updater).unwrap_err();
    assert!(
        err.to_string().contains("suricata -T refused") && err.to_string().contains("hashsize"),
        "{err}"
    );
    assert_eq!(fs::read_link(&current).unwrap(), before);
    assert_eq!(updater.states()["f"].indicators, 1);
}

fn git_subject(repo: &str, branch: &str) -> String {
    let out = Command::new("git")
        .args(["--git-dir", repo, "log", "-1", "--format=%s", branch])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

// ---- live: Suricata in a network namespace -------------------------------------------------

/// Suricata capturing in `ns`; stopped on drop.
struct Live {
    child: Child,
    output: PathBuf,
}

impl Live {
    fn start(suricata: &Suricata, ns: &str, s: &Settings) -> Live {
        let logs = PathBuf::from(&s.config.logs.path);
        let output = logs.join("suricata.out");
        let out = fs::File::create(&output).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(suricata.binary())
            .arg("-c")
            .arg(Path::new(&s.config.paths.rendered_dir).join("current/suricata.yaml"))
            .arg("--af-packet")
            .arg("-l")
            .arg(&logs)
            .args(["--set", "threading.set-cpu-affinity=no"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let live = Live { child, output };
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let text = fs::read_to_string(&live.output).unwrap_or_default();
            if text.contains("Engine started") && Path::new(&s.config.suricata.socket_path).exists()
            {
                return live;
            }
            assert!(!text.contains("E: "), "Suricata failed to start:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "Suricata did not start within 90 s:\n{}",
            fs::read_to_string(&live.output).unwrap_or_default()
        );
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn intel_alerts(eve: &Path, feed: &str, address: &str) -> usize {
    let Ok(f) = fs::File::open(eve) else { return 0 };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .filter(|v| v["event_type"] == "alert" && meta(v, "ids2_intel_feed") == feed)
        .filter(|v| matched(v) == address)
        .count()
}

/// Sends UDP datagrams from `ns` to `to` every 200 ms until an alert naming `to` shows, or
/// `limit` passes; whether one did.
fn provoke(ns: &str, to: &str, eve: &Path, feed: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let (n, t) = (ns.to_string(), to.to_string());
        std::thread::spawn(move || {
            let f = fs::File::open(format!("/run/netns/{n}")).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            let _ = s.send_to(b"ids2 intel probe", (t.as_str(), 5009));
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        if intel_alerts(eve, feed, to) > 0 {
            return true;
        }
    }
    false
}

#[test]
fn live_suricata_takes_a_new_indicator_without_restarting() {
    let Some(suricata) = suricata() else { return };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (network namespaces and af-packet capture)");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: needs iproute2 (`ip`)");
        return;
    }
    let n = Pair::next_number() % 250;
    let (sensor_ip, peer_ip) = (format!("10.79.{n}.1"), format!("10.79.{n}.2"));
    let pair = Pair::create(
        "ids2in",
        n,
        End {
            link: "eth0",
            cidr: &format!("{sensor_ip}/24"),
        },
        End {
            link: "eth0",
            cidr: &format!("{peer_ip}/24"),
        },
    );
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let feed = w.join("c2.txt");
    fs::write(&feed, "192.0.2.200\n").unwrap();
    let intel = format!(
        "  feeds:\n    - {{name: live-c2, source: 'file://{}', format: plain, kind: ip}}\n",
        feed.display()
    );
    let s = settings(w, "eth0", "10.79.0.0/16", &intel);
    let updater = prepare(&s, &suricata);
    update(&updater).unwrap();
    let eve = Path::new(&s.config.logs.path).join("eve.json");

    let live = Live::start(&suricata, &pair.sensor, &s);
    let pid = live.child.id();
    // Not on the feed yet: datagrams to the sensor raise no intel alert.
    assert!(
        !provoke(
            &pair.peer,
            &sensor_ip,
            &eve,
            "live-c2",
            Duration::from_secs(3)
        ),
        "no alert before the indicator is on the feed"
    );
    fs::write(&feed, format!("192.0.2.200\n{sensor_ip}\n")).unwrap();
    let report = update(&updater).unwrap();
    assert_eq!(
        report.load,
        IntelLoad::Datasets {
            added: 1,
            removed: 0
        },
        "{report}"
    );
    assert!(
        provoke(
            &pair.peer,
            &sensor_ip,
            &eve,
            "live-c2",
            Duration::from_secs(20)
        ),
        "the added indicator alerts:\n{}",
        fs::read_to_string(&live.output).unwrap_or_default()
    );
    assert_eq!(live.child.id(), pid);
    let mut live = live;
    assert!(
        live.child.try_wait().unwrap().is_none(),
        "Suricata still runs"
    );
}
