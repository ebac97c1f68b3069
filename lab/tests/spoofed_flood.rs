//! Blocking cannot be turned against the network it protects, at packet level (issue #20): on
//! the lab's LAN the attacker floods the victim with large ICMP echoes whose source addresses
//! it forges (a raw socket with IP_HDRINCL): random public addresses, HOME_NET, the sensor's
//! default gateway and own address, its management targets and `blocking.allowlist` entries.
//! The real Suricata, run by the real agent in the sensor namespace, alerts once per source
//! (sid 9200060, exfiltration in large ICMP echo payloads: three echoes over 500 bytes), and
//! the agent's blocker decides, with `blocking.nftables: true` in that namespace. Two runs: one
//! bounded by `max_decisions_per_minute`, one by `max_entries`. What the running agent serves
//! (`/metrics`, `/blocklist.json`) and what the kernel holds (`nft -j list set inet ids2
//! blocked_v4` in the sensor namespace), sampled all along, must show: every spoofed source
//! alerted and every alert was judged (decided, rate-limited, refused at the cap or
//! allowlisted; none dropped); no protected address was ever in the feed or the set; no more
//! decisions than `max_decisions_per_minute` plus the bucket's refill over the run; never more
//! than `max_entries` entries; and, at the cap, what an operator sees (the gauge at the cap,
//! the refusal counter, the warning in the agent's log). Needs root, suricata and nft; skips
//! otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ids2_lab::emulate::packets;
use ids2_lab::{agent, netns};
use serde_json::Value;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

mod support {
    pub mod needs;
    pub mod this_build;
}

use support::needs;

/// The rule the flood trips: `itype:8; dsize:>500; threshold: type both, track by_src, count
/// 3, seconds 10`, one alert per source; policy-violation is Suricata severity 1, which the
/// default `blocking.min_severity: high` acts on.
const SID: u64 = 9_200_060;
/// Echoes per spoofed source: the rule's count.
const ECHOES_PER_SOURCE: usize = 3;
/// Bytes after each echo's ICMP header: over the rule's `dsize:>500`.
const PAYLOAD: usize = 600;
/// Random public sources per run: well over either limit.
const RANDOM_SOURCES: usize = 150;
/// Pause between two sources: about 300 echoes a second, which Suricata keeps up with while
/// CI runs the other tests beside it.
const PACE: Duration = Duration::from_millis(10);
/// Most packets and longest time one flood may take.
const MAX_PACKETS: usize = 5_000;
const MAX_FLOOD: Duration = Duration::from_secs(20);
/// Longest wait for the flood's alerts, and then for their judgements: the blocker looks up
/// the OpenSearch endpoint's name every minute, which cannot resolve in the namespace and holds
/// its queue meanwhile.
const SETTLE: Duration = Duration::from_secs(45);
/// How often the feed and the nftables set are sampled.
const SAMPLE: Duration = Duration::from_millis(200);
/// The feed inside the sensor namespace (`blocking.feed_listen`'s default port).
const FEED: &str = "http://127.0.0.1:9102/blocklist.json";

/// The sensor's own address on the LAN and its default gateway, set in the sensor namespace
/// before the agent starts: the blocker finds both over rtnetlink, as on a sensor.
const OWN: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 253);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 254);
/// `network.management_targets` besides `gateway`: a host (ping) and an `IP:PORT`.
const MANAGEMENT_HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 252);
const MANAGEMENT_TCP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 251);
/// `blocking.allowlist`: an address on the LAN and a public CIDR.
const ALLOWED_HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 250);
const ALLOWED_NET: &str = "203.0.113.0/28";
/// `blocking.allow_home_net`: the HOME_NET addresses blocking may act on. The gateway, the
/// sensor's own address, the management targets and the allowlisted host lie inside it, so
/// only their own allowlist entries spare them, not HOME_NET.
const ALLOW_HOME_NET: &str = "10.77.0.128/25";

/// The spoofed sources that must never be blocked, each with what protects it; the flood
/// sends them first, while the bucket and the table have room, so a missing protection would
/// show as a decision.
fn protected_sources() -> Vec<(Ipv4Addr, &'static str)> {
    // HOME_NET outside allow_home_net, clear of the attacker, the victim and its C2 address.
    let mut v: Vec<(Ipv4Addr, &'static str)> = (30..50)
        .map(|i| (Ipv4Addr::new(10, 77, 0, i), "HOME_NET"))
        .collect();
    v.extend([
        (GATEWAY, "the default gateway"),
        (OWN, "the sensor's own address"),
        (MANAGEMENT_HOST, "network.management_targets"),
        (MANAGEMENT_TCP, "network.management_targets (IP:PORT)"),
        (ALLOWED_HOST, "blocking.allowlist"),
        (Ipv4Addr::new(203, 0, 113, 5), "blocking.allowlist (CIDR)"),
        (Ipv4Addr::new(203, 0, 113, 9), "blocking.allowlist (CIDR)"),
    ]);
    v
}

/// HOME_NET addresses inside allow_home_net and on no allowlist: the control group, blocked
/// like an outside address, which shows that the protected addresses beside them owe nothing
/// to HOME_NET.
fn control_sources() -> Vec<Ipv4Addr> {
    (200..204).map(|i| Ipv4Addr::new(10, 77, 0, i)).collect()
}

/// `n` distinct random public addresses (none private, shared, reserved, documentation,
/// benchmarking, multicast or broadcast, so none is protected).
fn random_public(n: usize) -> Vec<Ipv4Addr> {
    let mut rng = packets::Rng::from_clock();
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let ip = Ipv4Addr::from(rng.next_u64() as u32);
        let [a, b, ..] = ip.octets();
        let public = !(a == 0
            || a >= 224
            || ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_documentation()
            || (a == 100 && (64..128).contains(&b))
            || (a == 198 && (18..20).contains(&b)));
        if public && seen.insert(ip) {
            out.push(ip);
        }
    }
    out
}

/// The blocking limits of one run.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_decisions_per_minute: u32,
    max_entries: u32,
}

/// The agent's blocking counters, from its `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct BlockMetrics {
    decisions: u64,
    blocked: u64,
    allowlisted: u64,
    dropped: u64,
    refused_full: u64,
    rate_limited: u64,
    nft_failures: u64,
}

impl BlockMetrics {
    fn parse(text: &str) -> Self {
        let get = |name: &str| {
            sample(text, name).unwrap_or_else(|| panic!("{name} is missing from /metrics"))
        };
        Self {
            decisions: get("ids2_block_decisions_total"),
            blocked: get("ids2_blocked_addresses"),
            allowlisted: get("ids2_block_allowlisted_total"),
            dropped: get("ids2_block_alerts_dropped_total"),
            refused_full: get("ids2_block_refused_full_total"),
            rate_limited: get("ids2_block_rate_limited_total"),
            nft_failures: get("ids2_block_nft_failures_total"),
        }
    }

    /// Alerts the blocker has finished with (an alert about an address already blocked is
    /// counted nowhere; the flood raises one alert per address).
    fn judged(&self) -> u64 {
        self.decisions + self.rate_limited + self.refused_full + self.allowlisted + self.dropped
    }
}

/// The value of `series` (a name with its labels, as written) in Prometheus text format.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let value = l.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

/// `GET url` (`http://addr/path`) over HTTP/1.1 from the calling thread's namespace; the body.
fn get(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_once('/').expect("a path");
    let addr: SocketAddr = authority.parse().expect("address:port");
    let fail = |e: std::io::Error| format!("GET {url}: {e}");
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(fail)?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(fail)?;
    write!(
        sock,
        "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut response = String::new();
    sock.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {url}: no HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {url}: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_string())
}

/// Runs `ip ARGS`, which must succeed; its output.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The addresses in the agent's nftables set `inet ids2 blocked_v4`, read in namespace `ns`.
fn nft_set(ns: &str) -> BTreeSet<Ipv4Addr> {
    let listing: Value = serde_json::from_str(&ip(&[
        "netns",
        "exec",
        ns,
        "nft",
        "-j",
        "list",
        "set",
        "inet",
        "ids2",
        "blocked_v4",
    ]))
    .expect("nft -j prints JSON");
    let set = listing["nftables"]
        .as_array()
        .and_then(|objects| objects.iter().find(|o| o["set"].is_object()))
        .map(|o| &o["set"])
        .expect("the set blocked_v4");
    let elements = set["elem"].as_array().cloned().unwrap_or_default();
    elements
        .iter()
        // An element with a timeout is an object; without one, the bare address.
        .map(|e| e["elem"]["val"].as_str().or(e.as_str()))
        .map(|v| v.and_then(|s| s.parse().ok()).expect("an IPv4 element"))
        .collect()
}

/// What the feed and the nftables set held over a run.
#[derive(Debug, Default)]
struct Seen {
    samples: u32,
    most_in_feed: usize,
    most_in_set: usize,
    /// Every address that was in the feed or the set at any sample.
    ever: BTreeSet<Ipv4Addr>,
    /// The last sample's feed decisions and set.
    decisions: Vec<Value>,
    set: BTreeSet<Ipv4Addr>,
}

impl Seen {
    fn sample(&mut self, ns: &str) {
        let feed: Value = serde_json::from_str(&get(FEED).unwrap_or_else(|e| panic!("{e}")))
            .expect("/blocklist.json is JSON");
        let decisions = feed["decisions"].as_array().cloned().expect("decisions");
        assert_eq!(feed["count"], decisions.len(), "{feed}");
        let set = nft_set(ns);
        self.samples += 1;
        self.most_in_feed = self.most_in_feed.max(decisions.len());
        self.most_in_set = self.most_in_set.max(set.len());
        for d in &decisions {
            let address = d["address"].as_str().and_then(|a| a.parse().ok());
            self.ever
                .insert(address.unwrap_or_else(|| panic!("a decision's address: {d}")));
        }
        self.ever.extend(&set);
        self.decisions = decisions;
        self.set = set;
    }
}

/// Samples the feed and the set from inside the sensor namespace until finished.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Seen>>,
}

impl Sampler {
    /// Starts once the feed answers: the blocker serves it after installing its nftables table
    /// and looking up the gateway and its own addresses, so from then on both are protected.
    fn start(ns: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (ns, flag) = (ns.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            netns::Lan::enter(&ns).expect("enter the sensor namespace");
            let deadline = Instant::now() + SETTLE;
            while let Err(e) = get(FEED) {
                assert!(
                    Instant::now() < deadline,
                    "the block feed never answered: {e}"
                );
                std::thread::sleep(SAMPLE);
            }
            let mut seen = Seen::default();
            seen.sample(&ns);
            let _ = ready_tx.send(());
            loop {
                let last = flag.load(Ordering::SeqCst);
                seen.sample(&ns);
                if last {
                    return seen;
                }
                std::thread::sleep(SAMPLE);
            }
        });
        let mut sampler = Self {
            stop,
            thread: Some(thread),
        };
        if ready_rx.recv().is_err() {
            // The thread panicked; its message says why.
            sampler.finish();
        }
        sampler
    }

    /// Stops after one last sample; what was seen.
    fn finish(&mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().expect("finished once");
        thread.join().expect("sampling the feed and the set failed")
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An IPv4 packet from `src` to `dst` carrying `icmp`. With IP_HDRINCL the kernel fills in
/// the total length, the checksum and the id, and sends the source as written.
fn ipv4_icmp(src: Ipv4Addr, dst: Ipv4Addr, icmp: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(icmp);
    p
}

/// Sends `ECHOES_PER_SOURCE` large echoes from each of `sources` (spoofed) to the victim, from
/// the attacker namespace; the packets sent and how long it took.
fn flood(attacker: &str, sources: &[Ipv4Addr]) -> (usize, Duration) {
    assert!(sources.len() * ECHOES_PER_SOURCE <= MAX_PACKETS);
    let ns = attacker.to_string();
    let sources = sources.to_vec();
    std::thread::spawn(move || {
        netns::Lan::enter(&ns).expect("enter the attacker namespace");
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
            .expect("a raw socket (root)");
        sock.set_header_included_v4(true).expect("IP_HDRINCL");
        let to = SockAddr::from(SocketAddrV4::new(netns::VICTIM_IP, 0));
        // Stand-in for exfiltrated data, as base64 chunks are.
        let payload = vec![b'Q'; PAYLOAD];
        let started = Instant::now();
        let mut sent = 0;
        for (i, src) in sources.iter().enumerate() {
            assert!(started.elapsed() < MAX_FLOOD, "the flood overran");
            for seq in 0..ECHOES_PER_SOURCE as u16 {
                let echo = packets::icmp_echo(i as u16, seq, &payload);
                sock.send_to(&ipv4_icmp(*src, netns::VICTIM_IP, &echo), &to)
                    .expect("send a spoofed echo");
                sent += 1;
            }
            std::thread::sleep(PACE);
        }
        (sent, started.elapsed())
    })
    .join()
    .expect("the flood failed")
}

/// The sources of the flood's alerts (sid 9200060) in the agent's ECS archive, and how many
/// alerts each raised.
fn alerted(archive: &Path) -> BTreeMap<Ipv4Addr, u32> {
    let text = std::fs::read_to_string(archive).unwrap_or_default();
    let mut by_source = BTreeMap::new();
    // The last line may be half written; it is read whole next time.
    for doc in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if doc["rule"]["id"].as_str() == Some(&SID.to_string()) {
            let src = doc["source"]["ip"].as_str().and_then(|s| s.parse().ok());
            *by_source
                .entry(src.unwrap_or_else(|| panic!("an alert's source.ip: {doc}")))
                .or_insert(0) += 1;
        }
    }
    by_source
}

/// What one run of the flood left.
struct Run {
    limits: Limits,
    protected: Vec<(Ipv4Addr, &'static str)>,
    controls: Vec<Ipv4Addr>,
    /// Controls and random public sources: every source the blocker may act on.
    blockable: BTreeSet<Ipv4Addr>,
    packets: usize,
    flood: Duration,
    /// From the flood's first packet to the last read of the counters.
    elapsed: Duration,
    alerted: BTreeMap<Ipv4Addr, u32>,
    metrics: BlockMetrics,
    alerts_counted: u64,
    seen: Seen,
    log: String,
    /// Suricata's exact capture totals on exit (packets, kernel drops).
    capture: Option<(u64, u64)>,
}

/// Starts the agent with `limits`, floods, waits until every alert is judged, and stops it.
fn run(lan: &netns::Lan, agent_bin: &Path, limits: Limits) -> Run {
    let work = tempfile::Builder::new()
        .prefix("ids2-spoofed-flood-")
        .tempdir()
        .unwrap();
    let archive = work.path().join("alerts.ecs.jsonl");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut config = ids2_lab::lab_config(work.path(), &archive, cpus);
    config.push_str(&format!(
        "network: {{management_targets: [gateway, {MANAGEMENT_HOST}, '{MANAGEMENT_TCP}:22']}}\n\
         blocking: {{enabled: true, nftables: true, max_decisions_per_minute: {}, \
         max_entries: {}, allowlist: [{ALLOWED_HOST}, {ALLOWED_NET}], \
         allow_home_net: [{ALLOW_HOME_NET}]}}\n",
        limits.max_decisions_per_minute, limits.max_entries
    ));
    ids2_agent::config::from_str(&config, Path::new("<spoofed flood>"))
        .unwrap_or_else(|e| panic!("the test's config: {e}"));
    let config_path = work.path().join("config.yaml");
    std::fs::write(&config_path, &config).unwrap();
    for dir in ["logs", "rules", "vector"] {
        std::fs::create_dir_all(work.path().join(dir)).unwrap();
    }

    let listener = agent::Relay::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let relay = agent::Relay::start(listener, &lan.sensor).unwrap();
    let log_path = work.path().join("agent.log");
    let sensor = agent::AgentProcess::start(
        agent_bin,
        &lan.sensor,
        &config_path,
        &log_path,
        relay.url(),
        &[],
    )
    .unwrap_or_else(|e| panic!("start the agent: {e}"));
    let mut sampler = Sampler::start(&lan.sensor);

    let protected = protected_sources();
    let controls = control_sources();
    let random = random_public(RANDOM_SOURCES);
    let sources: Vec<Ipv4Addr> = protected
        .iter()
        .map(|(ip, _)| *ip)
        .chain(controls.iter().copied())
        .chain(random.iter().copied())
        .collect();
    let started = Instant::now();
    let (packets, flood) = flood(&lan.attacker, &sources);

    let deadline = Instant::now() + SETTLE;
    let mut alerted_now = alerted(&archive);
    while alerted_now.len() < sources.len() && Instant::now() < deadline {
        std::thread::sleep(SAMPLE);
        alerted_now = alerted(&archive);
    }
    let alerts: u64 = alerted_now.values().map(|n| u64::from(*n)).sum();
    let metrics_text = || get(relay.url()).unwrap_or_else(|e| panic!("{e}"));
    let mut metrics = BlockMetrics::parse(&metrics_text());
    while metrics.judged() < alerts && Instant::now() < deadline {
        std::thread::sleep(SAMPLE);
        metrics = BlockMetrics::parse(&metrics_text());
    }
    let seen = sampler.finish();
    let text = metrics_text();
    let metrics = BlockMetrics::parse(&text);
    let elapsed = started.elapsed();
    let alerts_counted = sample(&text, r#"ids2_eve_events_total{event_type="alert"}"#).unwrap_or(0);
    let capture = sensor.stop();
    Run {
        limits,
        protected,
        blockable: controls.iter().chain(&random).copied().collect(),
        controls,
        packets,
        flood,
        elapsed,
        alerted: alerted(&archive),
        metrics,
        alerts_counted,
        seen,
        log: std::fs::read_to_string(&log_path).unwrap_or_default(),
        capture,
    }
}

impl Run {
    /// What must hold whatever the limits.
    fn check(&self, phase: &str) {
        let sources = self.protected.len() + self.blockable.len();
        assert_eq!(self.packets, sources * ECHOES_PER_SOURCE, "{phase}");
        assert!(self.flood < MAX_FLOOD, "{phase}: {:?}", self.flood);
        // Suricata saw the spoofed packets: one alert per source, each source as forged.
        let missing: Vec<Ipv4Addr> = self
            .protected
            .iter()
            .map(|(ip, _)| ip)
            .chain(&self.blockable)
            .filter(|ip| !self.alerted.contains_key(ip))
            .copied()
            .collect();
        assert!(
            missing.is_empty(),
            "{phase}: {} of {sources} spoofed sources raised no alert: {missing:?}; capture \
             totals {:?}",
            missing.len(),
            self.capture
        );
        assert!(
            self.alerted.values().all(|n| *n == 1) && self.alerted.len() == sources,
            "{phase}: one alert per spoofed source, and from no other: {:?}",
            self.alerted
        );
        let (captured, _) = self.capture.expect("Suricata printed its capture totals");
        assert!(captured >= self.packets as u64, "{phase}: {captured}");
        assert!(
            self.alerts_counted >= sources as u64,
            "{phase}: the agent's reader counted {} alerts",
            self.alerts_counted
        );

        // Never a protected address, in the feed or the kernel's set, at any sample; nothing
        // but the flood's blockable sources.
        assert!(
            self.seen.samples >= 5,
            "{phase}: {} samples",
            self.seen.samples
        );
        for ip in &self.seen.ever {
            if let Some((_, why)) = self.protected.iter().find(|(p, _)| p == ip) {
                panic!("{phase}: {ip} ({why}) was blocked");
            }
            assert!(self.blockable.contains(ip), "{phase}: {ip} was blocked");
        }
        let cap = self.limits.max_entries as usize;
        assert!(
            self.seen.most_in_feed <= cap && self.seen.most_in_set <= cap,
            "{phase}: {} in the feed, {} in the set, cap {cap}",
            self.seen.most_in_feed,
            self.seen.most_in_set
        );

        // Every alert was judged, none dropped: the protected ones allowlisted, the others
        // decided or refused by a limit.
        let m = &self.metrics;
        assert_eq!(m.dropped, 0, "{phase}: {m:?}");
        assert_eq!(m.nft_failures, 0, "{phase}: {m:?}");
        assert_eq!(m.allowlisted, self.protected.len() as u64, "{phase}: {m:?}");
        assert_eq!(
            m.decisions + m.rate_limited + m.refused_full,
            self.blockable.len() as u64,
            "{phase}: {m:?}"
        );

        // At the end the feed, the set and the gauge agree with the decisions (the TTL is an
        // hour), and each decision carries the alert that caused it.
        let feed: BTreeSet<Ipv4Addr> = self
            .seen
            .decisions
            .iter()
            .map(|d| d["address"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            feed, self.seen.set,
            "{phase}: the feed and the nftables set"
        );
        assert_eq!(feed.len() as u64, m.decisions, "{phase}: {m:?}");
        assert_eq!(m.blocked, m.decisions, "{phase}: {m:?}");
        for d in &self.seen.decisions {
            assert_eq!(d["alert"]["alert"]["signature_id"], SID, "{phase}: {d}");
            assert_eq!(d["alert"]["src_ip"], d["address"], "{phase}: {d}");
        }
    }

    fn print(&self, phase: &str) {
        let m = &self.metrics;
        let (captured, drops) = self.capture.unwrap_or_default();
        println!(
            "{phase} (max_decisions_per_minute {}, max_entries {}): {} spoofed packets from {} \
             sources in {:.1} s; Suricata captured {captured} packets ({drops} kernel drops) and \
             raised {} alerts; decisions {}, rate-limited {}, refused at the cap {}, allowlisted \
             {}, dropped {}; at most {} in the feed and {} in the nftables set over {} samples; \
             counters read {:.1} s after the first packet",
            self.limits.max_decisions_per_minute,
            self.limits.max_entries,
            self.packets,
            self.protected.len() + self.blockable.len(),
            self.flood.as_secs_f64(),
            self.alerted.values().sum::<u32>(),
            m.decisions,
            m.rate_limited,
            m.refused_full,
            m.allowlisted,
            m.dropped,
            self.seen.most_in_feed,
            self.seen.most_in_set,
            self.seen.samples,
            self.elapsed.as_secs_f64(),
        );
    }
}

#[test]
fn spoofed_flood_through_suricata_never_blocks_the_protected() {
    const NAME: &str = "spoofed_flood_through_suricata_never_blocks_the_protected";
    if !needs::root(NAME, "network namespaces, raw sockets, nftables")
        || needs::suricata(NAME).is_none()
    {
        return;
    }
    if ids2_agent::files::find_program("nft").is_none() {
        eprintln!("SKIP {NAME}: needs nft (.ci/install-deps)");
        return;
    }
    let agent_bin = support::this_build::agent_of_this_build();
    let lan = netns::Lan::create().unwrap_or_else(|e| panic!("create the lab's LAN: {e}"));
    let namespaces = [&lan.attacker, &lan.victim, &lan.sensor, &lan.lan].map(|n| n.to_string());
    let own = format!("{OWN}/24");
    ip(&["-n", &lan.sensor, "addr", "add", &own, "dev", netns::IFACE]);
    ip(&[
        "-n",
        &lan.sensor,
        "route",
        "add",
        "default",
        "via",
        &GATEWAY.to_string(),
    ]);

    // The rate limit binds: the table has room for every source.
    let rate = run(
        &lan,
        &agent_bin,
        Limits {
            max_decisions_per_minute: 20,
            max_entries: 10_000,
        },
    );
    rate.print("rate limit");
    rate.check("rate limit");
    let m = rate.metrics;
    let per_minute = f64::from(rate.limits.max_decisions_per_minute);
    // The bucket holds a minute's worth and was full when the flood began; it refills while
    // the flood is judged, until the counters were read.
    let refill = (per_minute * rate.elapsed.as_secs_f64() / 60.0).ceil() as u64;
    assert!(
        m.decisions >= per_minute as u64 && m.decisions <= per_minute as u64 + refill,
        "{} decisions in {:.1} s at {per_minute} a minute",
        m.decisions,
        rate.elapsed.as_secs_f64()
    );
    assert!(m.rate_limited > 0 && m.refused_full == 0, "{m:?}");
    assert!(
        rate.log
            .contains("block decision refused: blocking.max_decisions_per_minute reached"),
        "no rate-limit warning in the agent's log"
    );
    // The controls, sent before the random sources, are blocked although inside HOME_NET.
    for ip in &rate.controls {
        assert!(rate.seen.set.contains(ip), "control {ip} was not blocked");
    }

    // The table's cap binds: fewer entries than a minute's decisions.
    let cap = run(
        &lan,
        &agent_bin,
        Limits {
            max_decisions_per_minute: 60,
            max_entries: 8,
        },
    );
    cap.print("table cap");
    cap.check("table cap");
    let m = cap.metrics;
    // What an operator sees at the cap: the gauge at max_entries, the refusal counter, the
    // warning in the log.
    assert_eq!(m.decisions, 8, "{m:?}");
    assert_eq!(m.blocked, 8, "{m:?}");
    assert_eq!(cap.seen.set.len(), 8);
    assert_eq!(m.refused_full, cap.blockable.len() as u64 - 8, "{m:?}");
    assert_eq!(m.rate_limited, 0, "{m:?}");
    assert!(
        cap.log
            .contains("block decision refused: blocking.max_entries addresses already blocked"),
        "no cap warning in the agent's log"
    );

    drop(lan);
    for ns in &namespaces {
        assert!(!netns::exists(ns), "namespace {ns} left behind");
    }
}
