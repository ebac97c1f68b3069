//! Blocking end to end: alerts in, the HTTP feed read over loopback, decisions expiring, the
//! allowlist never blocked, and (as root) the nftables set enforced inside network namespaces
//! made by the test, with real traffic from a peer namespace.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/netns.rs"]
mod netns;

use ids2_agent::block::{
    ip_or_cidr, Allowlist, BlockConfig, BlockHandle, BlockStats, Blocker, Nft, NoReputation,
    Policy, PolicyConfig, Verdict,
};
use ids2_agent::config::Severity;
use ids2_agent::notify::Alert;
use ipnet::IpNet;
use netns::{End, Pair};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn alert(src: &str, dst: &str, severity: u64) -> Value {
    json!({
        "timestamp": "2026-03-01T10:00:00.000000+0000", "event_type": "alert",
        "src_ip": src, "src_port": 4444, "dest_ip": dst, "dest_port": 22, "proto": "TCP",
        "alert": {"signature_id": 2210, "signature": "ET SCAN test", "severity": severity,
                  "category": "Attempted Information Leak"}
    })
}

fn net(s: &str) -> IpNet {
    ip_or_cidr(s).unwrap()
}

fn config(ttl: Duration) -> BlockConfig {
    let home = vec![net("192.168.0.0/16")];
    BlockConfig {
        policy: PolicyConfig {
            min_severity: Severity::High,
            categories: vec![],
            repeat: None,
            reputation_min_score: None,
            home_net: home.clone(),
        },
        allowlist: Allowlist::new(
            home,
            vec![],
            vec![(net("203.0.113.0/28"), "blocking.allowlist".into())],
        ),
        ttl,
        max_entries: 100_000,
        feed_listen: "127.0.0.1:0".parse().unwrap(),
        feed_limits: ids2_agent::listen::Limits::default(),
        max_decisions_per_minute: 10_000,
        nft: None,
        // The test must not depend on the host's gateway: it is checked in the unit tests.
        discover_host: false,
        allow_hosts: vec![],
        queue_capacity: 20_000,
    }
}

struct Running {
    handle: BlockHandle,
    stats: Arc<BlockStats>,
    feed: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ids2_agent::block::BlockError>>,
}

async fn start(cfg: BlockConfig) -> Running {
    let stats = Arc::new(BlockStats::default());
    let (handle, mut blocker) = Blocker::new(cfg, Arc::new(NoReputation), stats.clone());
    let feed = blocker.bind_feed().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(blocker.run(async move {
        let _ = stopped.await;
    }));
    Running {
        handle,
        stats,
        feed,
        stop,
        task,
    }
}

impl Running {
    async fn get(&self, path: &str) -> (u16, String) {
        let resp = reqwest::get(format!("http://{}{path}", self.feed))
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn feed_lists_decisions_with_reason_and_they_expire() {
    // Long enough that the checks below run before expiry even on a loaded machine.
    let ttl = Duration::from_secs(5);
    let r = start(config(ttl)).await;
    assert_eq!(r.get("/blocklist.txt").await, (200, String::new()));
    assert!(r.handle.offer(&alert("198.51.100.7", "192.168.1.5", 1)));
    // An inside host talking out: the outside end is blocked.
    assert!(r.handle.offer(&alert("192.168.1.5", "2001:db8::66", 1)));
    // Below the threshold: not blocked.
    assert!(r.handle.offer(&alert("198.51.100.8", "192.168.1.5", 2)));
    wait_until("two decisions", || r.stats.decisions() == 2).await;
    let (status, text) = r.get("/blocklist.txt").await;
    assert_eq!(status, 200);
    assert_eq!(text, "198.51.100.7\n2001:db8::66\n");
    let (_, body) = r.get("/blocklist.json").await;
    let j: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["count"], 2);
    let d = &j["decisions"][0];
    assert_eq!(d["address"], "198.51.100.7");
    assert!(d["reason"].as_str().unwrap().contains("sid 2210"), "{d}");
    assert_eq!(d["alert"]["src_ip"], "198.51.100.7");
    assert_eq!(d["alert"]["alert"]["signature"], "ET SCAN test");
    assert!(d["expires_in_secs"].as_u64().unwrap() <= ttl.as_secs());
    let decided = time::OffsetDateTime::parse(
        d["decided_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        d["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((expires - decided).whole_seconds(), ttl.as_secs() as i64);
    assert_eq!(r.stats.blocked(), 2);
    assert_eq!(r.get("/other").await.0, 404);

    // After the TTL the feed is empty and the gauge back to zero.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(r.get("/blocklist.txt").await.1, "");
    wait_until("gauge at zero", || r.stats.blocked() == 0).await;
    // A new alert from the same address after expiry makes a new decision.
    r.handle.offer(&alert("198.51.100.7", "192.168.1.5", 1));
    wait_until("third decision", || r.stats.decisions() == 3).await;
    assert_eq!(r.get("/blocklist.txt").await.1, "198.51.100.7\n");
    let mut m = String::new();
    r.stats.render(&mut m);
    assert!(m.contains("ids2_block_decisions_total 3\n"), "{m}");
    assert!(m.contains("ids2_blocked_addresses 1\n"), "{m}");
    r.stop().await;
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// An address drawn from a mix of allowlisted ranges and the whole space.
    fn addr(&mut self, protected: &[IpNet]) -> IpAddr {
        let pick = self.next();
        if pick.is_multiple_of(2) {
            let n = protected[(pick / 2) as usize % protected.len()];
            match n {
                IpNet::V4(v4) => {
                    let host = (self.next() as u32) & !u32::from(v4.netmask());
                    IpAddr::V4(Ipv4Addr::from(u32::from(v4.network()) | host))
                }
                IpNet::V6(v6) => {
                    let host = (u128::from(self.next()) << 64 | u128::from(self.next()))
                        & !u128::from(v6.netmask());
                    IpAddr::V6((u128::from(v6.network()) | host).into())
                }
            }
        } else if pick.is_multiple_of(3) {
            IpAddr::V6((u128::from(self.next()) << 64 | u128::from(self.next())).into())
        } else {
            IpAddr::V4(Ipv4Addr::from(self.next() as u32))
        }
    }
}

#[tokio::test]
async fn allowlist_is_never_blocked() {
    let protected: Vec<IpNet> = [
        "192.168.0.0/16",
        "10.0.0.0/8",
        "203.0.113.0/28",
        "198.51.100.10/32",
        "2001:db8:aaaa::/48",
        "fd00::/8",
        "127.0.0.0/8",
        "224.0.0.0/4",
        "0.0.0.0/32",
        "255.255.255.255/32",
        "ff00::/8",
        "::1/128",
        "::/128",
    ]
    .iter()
    .map(|s| net(s))
    .collect();
    let home = vec![net("192.168.0.0/16"), net("10.0.0.0/8"), net("fd00::/8")];
    let allowlist = Allowlist::new(
        home.clone(),
        vec![],
        vec![
            (net("203.0.113.0/28"), "blocking.allowlist".into()),
            (net("198.51.100.10"), "network.management_targets".into()),
            (net("2001:db8:aaaa::/48"), "blocking.allowlist".into()),
        ],
    );
    let is_protected = |ip: IpAddr| protected.iter().any(|n| n.contains(&ip));

    // The policy alone, over many addresses on both ends of alerts.
    let mut policy = Policy::new(PolicyConfig {
        min_severity: Severity::Info,
        categories: vec![],
        repeat: None,
        reputation_min_score: None,
        home_net: home.clone(),
    });
    let mut rng = Rng(0x1d52_0002);
    let now = Instant::now();
    let mut blocked = 0;
    for _ in 0..50_000 {
        let (src, dst) = (rng.addr(&protected), rng.addr(&protected));
        let a = Alert::from_eve(&alert(&src.to_string(), &dst.to_string(), 1)).unwrap();
        if let Verdict::Block { address, .. } = policy.consider(&a, &allowlist, &NoReputation, now)
        {
            assert!(
                !is_protected(address),
                "{address} blocked (alert {src} → {dst})"
            );
            blocked += 1;
        }
    }
    assert!(
        blocked > 5_000,
        "the generator must also produce blockable addresses"
    );

    // The whole blocker: every allowlisted source stays out of the feed, every other is in.
    let mut cfg = config(Duration::from_secs(600));
    cfg.policy.home_net = home;
    cfg.allowlist = allowlist;
    let r = start(cfg).await;
    let mut expected = std::collections::BTreeSet::new();
    let mut protected_alerts = 0u64;
    for _ in 0..5_000 {
        let src = rng.addr(&protected);
        assert!(r.handle.offer(&alert(&src.to_string(), "192.168.1.1", 1)));
        if is_protected(src) {
            protected_alerts += 1;
        } else {
            expected.insert(src);
        }
    }
    wait_until("every alert judged", || {
        r.stats.allowlisted() == protected_alerts && r.stats.decisions() == expected.len() as u64
    })
    .await;
    let (_, text) = r.get("/blocklist.txt").await;
    let listed: std::collections::BTreeSet<IpAddr> =
        text.lines().map(|l| l.parse().unwrap()).collect();
    let wrongly: Vec<_> = listed.iter().filter(|ip| is_protected(**ip)).collect();
    assert!(
        wrongly.is_empty(),
        "allowlisted addresses in the feed: {wrongly:?}"
    );
    let missing: Vec<_> = expected.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    r.stop().await;
}

#[tokio::test]
async fn repeat_offenders_from_settings() {
    let text = "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n\
                capture: {home_net: [192.168.0.0/16]}\n\
                network: {management_targets: [gateway, 198.51.100.50, '198.51.100.51:22']}\n\
                blocking:\n  enabled: true\n  feed_listen: 127.0.0.1:0\n  \
                categories: [Attempted Information Leak]\n  \
                repeat_offenders: {alerts: 3, window_secs: 60}\n";
    let settings = ids2_agent::config::from_str(text, std::path::Path::new("t.yaml")).unwrap();
    let mut cfg = BlockConfig::from_settings(&settings).unwrap().unwrap();
    assert_eq!(cfg.ttl, Duration::from_secs(3600));
    assert!(cfg.nft.is_none(), "nftables is off unless asked for");
    cfg.discover_host = false;
    let r = start(cfg).await;
    for _ in 0..2 {
        r.handle.offer(&alert("198.51.100.7", "192.168.1.5", 1));
    }
    // Management targets are never blocked, however often they alert.
    for _ in 0..5 {
        r.handle.offer(&alert("198.51.100.50", "192.168.1.5", 1));
        r.handle.offer(&alert("198.51.100.51", "192.168.1.5", 1));
    }
    wait_until("allowlisted alerts judged", || r.stats.allowlisted() == 10).await;
    assert_eq!(r.get("/blocklist.txt").await.1, "");
    r.handle.offer(&alert("198.51.100.7", "192.168.1.5", 1));
    wait_until("decision on the third alert", || r.stats.decisions() == 1).await;
    assert_eq!(r.get("/blocklist.txt").await.1, "198.51.100.7\n");
    r.stop().await;

    let off = ids2_agent::config::from_str(
        "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n",
        std::path::Path::new("t.yaml"),
    )
    .unwrap();
    assert!(
        BlockConfig::from_settings(&off).unwrap().is_none(),
        "blocking is off by default"
    );
}

// ---- nftables in network namespaces (root) ----

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        || Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The sensor (198.51.100.1) and a peer (198.51.100.2) namespace, joined by a veth pair.
fn pair() -> Pair {
    let n = Pair::next_number();
    let (a, b) = (
        format!("vbs{}-{n}", std::process::id()),
        format!("vbp{}-{n}", std::process::id()),
    );
    Pair::create(
        "ids2-blk",
        n,
        End {
            link: &a,
            cidr: "198.51.100.1/24",
        },
        End {
            link: &b,
            cidr: "198.51.100.2/24",
        },
    )
}

/// One ping from the peer to the sensor.
fn peer_reaches_sensor(pair: &Pair) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.peer,
            "ping",
            "-c1",
            "-W1",
            "198.51.100.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn nft_list(pair: &Pair) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.sensor,
            "nft",
            "-j",
            "list",
            "table",
            "inet",
            "ids2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn nftables_set_drops_a_blocked_peer_until_expiry() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP nftables_set_drops_a_blocked_peer_until_expiry: needs root (network namespaces, nftables)");
        return;
    }
    if !have("nft") || !have("ping") {
        eprintln!("SKIP nftables_set_drops_a_blocked_peer_until_expiry: needs nft (Debian nftables) and ping (iputils-ping)");
        return;
    }
    let pair = pair();
    assert!(
        peer_reaches_sensor(&pair),
        "peer must reach the sensor before any block"
    );

    let mut cfg = config(Duration::from_secs(4));
    cfg.nft = Some(Nft::with_command(
        ["ip", "netns", "exec", &pair.sensor, "nft"]
            .map(String::from)
            .to_vec(),
    ));
    let r = start(cfg).await;
    // The table is installed at start; wait for it, then check traffic still flows.
    let deadline = Instant::now() + WAIT;
    while !Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.sensor,
            "nft",
            "list",
            "table",
            "inet",
            "ids2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "table inet ids2 never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        peer_reaches_sensor(&pair),
        "an empty set must not drop anything"
    );

    r.handle.offer(&alert("198.51.100.2", "192.168.1.5", 1));
    wait_until("decision", || r.stats.decisions() == 1).await;
    let blocked_at = Instant::now();
    // The element (with its timeout) is in the set once nft has run.
    let deadline = Instant::now() + WAIT;
    loop {
        let listing: Value = serde_json::from_str(&nft_list(&pair)).unwrap();
        let has = listing["nftables"].as_array().unwrap().iter().any(|o| {
            o["set"]["name"] == "blocked_v4"
                && o["set"]["flags"]
                    .as_array()
                    .is_some_and(|f| f.contains(&json!("timeout")))
                && o["set"]["elem"].as_array().is_some_and(|e| {
                    e.iter()
                        .any(|x| x["elem"]["val"] == "198.51.100.2" && x["elem"]["timeout"] == 4)
                })
        });
        if has {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "element never reached the set: {listing}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !peer_reaches_sensor(&pair),
        "a blocked peer must not get through"
    );
    assert_eq!(r.get("/blocklist.txt").await.1, "198.51.100.2\n");

    // After the TTL both the kernel set and the feed let it go.
    let until = blocked_at + Duration::from_millis(4500);
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    assert!(
        peer_reaches_sensor(&pair),
        "the block must end with its TTL"
    );
    assert_eq!(r.get("/blocklist.txt").await.1, "");
    r.stop().await;
}

// ---- a spoofed-source flood ----

/// What a flood of alerts with spoofed sources must leave behind.
struct Flood {
    /// Addresses that must never be blocked, and why.
    protected: Vec<(IpNet, &'static str)>,
    max_entries: usize,
    per_minute: u32,
}

/// Floods the blocker with 20 000 high-severity alerts whose sources are random (IPv4 and IPv6)
/// or inside `protected` (HOME_NET, the gateway, the sensor's own address, management targets,
/// the allowlist), as a spoofing attacker would make Suricata write them; checks the feed and
/// the counters an operator watches.
async fn flood(mut cfg: BlockConfig, f: Flood) {
    cfg.max_entries = f.max_entries;
    cfg.max_decisions_per_minute = f.per_minute;
    let started = Instant::now();
    let r = start(cfg).await;
    let nets: Vec<IpNet> = f.protected.iter().map(|(n, _)| *n).collect();
    let mut rng = Rng(0x5eed_f100d);
    for i in 0..20_000u32 {
        let src = rng.addr(&nets);
        // Aimed at a host inside HOME_NET, as Suricata's rules mostly are.
        let a = alert(&src.to_string(), "192.168.1.5", 1);
        assert!(
            r.handle.offer(&a),
            "alert {i} dropped: the queue holds the flood"
        );
    }
    wait_until("every alert judged", || {
        r.stats.allowlisted()
            + r.stats.decisions()
            + r.stats.refused_full()
            + r.stats.rate_limited()
            >= 20_000
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let (_, text) = r.get("/blocklist.txt").await;
    let listed: Vec<IpAddr> = text.lines().map(|l| l.parse().unwrap()).collect();
    for ip in &listed {
        if let Some((_, why)) = f.protected.iter().find(|(n, _)| n.contains(ip)) {
            panic!("{ip} ({why}) was blocked");
        }
    }
    assert!(
        listed.len() <= f.max_entries,
        "{} entries over the cap",
        listed.len()
    );
    // A bucket of one minute's worth, refilled while the flood ran.
    let allowed = f64::from(f.per_minute) * (1.0 + elapsed / 60.0);
    assert!(
        (r.stats.decisions() as f64) <= allowed.ceil(),
        "{} decisions in {elapsed:.1} s at {} a minute",
        r.stats.decisions(),
        f.per_minute
    );
    assert!(
        r.stats.allowlisted() > 5_000,
        "the flood must hit the allowlist too"
    );
    let mut m = String::new();
    r.stats.render(&mut m);
    assert!(
        m.contains(&format!("ids2_blocked_addresses {}\n", listed.len())),
        "{m}"
    );
    if f.max_entries < f.per_minute as usize {
        // At the cap: the table is full, the rest refused and counted.
        assert_eq!(listed.len(), f.max_entries);
        assert!(r.stats.refused_full() > 0);
        assert!(
            m.contains(&format!(
                "ids2_block_refused_full_total {}\n",
                r.stats.refused_full()
            )),
            "{m}"
        );
    } else {
        assert!(r.stats.rate_limited() > 0);
        assert!(
            m.contains(&format!(
                "ids2_block_rate_limited_total {}\n",
                r.stats.rate_limited()
            )),
            "{m}"
        );
    }
    r.stop().await;
}

fn flood_protected() -> Vec<(IpNet, &'static str)> {
    vec![
        (net("192.168.0.0/16"), "HOME_NET"),
        (net("fd00::/8"), "HOME_NET"),
        (net("203.0.113.0/28"), "blocking.allowlist"),
        (net("198.51.100.50/32"), "management target"),
        (net("198.51.100.51/32"), "management target"),
    ]
}

fn flood_config() -> BlockConfig {
    let mut cfg = config(Duration::from_secs(600));
    cfg.policy.home_net = vec![net("192.168.0.0/16"), net("fd00::/8")];
    cfg.allowlist = Allowlist::new(
        cfg.policy.home_net.clone(),
        vec![],
        vec![
            (net("203.0.113.0/28"), "blocking.allowlist".into()),
            (net("198.51.100.50"), "network.management_targets".into()),
            (net("198.51.100.51"), "network.management_targets".into()),
        ],
    );
    cfg
}

#[tokio::test]
async fn spoofed_flood_is_rate_limited_and_never_blocks_the_protected() {
    flood(
        flood_config(),
        Flood {
            protected: flood_protected(),
            max_entries: 10_000,
            per_minute: 50,
        },
    )
    .await;
}

#[tokio::test]
async fn spoofed_flood_stops_at_the_table_cap() {
    flood(
        flood_config(),
        Flood {
            protected: flood_protected(),
            max_entries: 25,
            per_minute: 500,
        },
    )
    .await;
}

/// The same flood inside a network namespace the test makes, with a default gateway there: the
/// blocker finds the gateway and its own address over rtnetlink, as on the sensor, and spoofed
/// alerts from either never block them.
#[test]
fn spoofed_flood_never_blocks_the_discovered_gateway() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP spoofed_flood_never_blocks_the_discovered_gateway: needs root (network namespaces)");
        return;
    }
    let n = Pair::next_number();
    let (a, b) = (
        format!("vfs{}-{n}", std::process::id()),
        format!("vfp{}-{n}", std::process::id()),
    );
    let pair = Pair::create(
        "ids2-fld",
        n,
        End {
            link: &a,
            cidr: "198.18.7.1/24",
        },
        End {
            link: &b,
            cidr: "198.18.7.254/24",
        },
    );
    netns::ip(&[
        "-n",
        &pair.sensor,
        "route",
        "add",
        "default",
        "via",
        "198.18.7.254",
    ]);
    let ns = format!("/var/run/netns/{}", pair.sensor);
    // Every socket of this thread's runtime (rtnetlink, the feed) lives in the sensor namespace.
    std::thread::spawn(move || {
        let file = std::fs::File::open(&ns).unwrap();
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut cfg = flood_config();
            cfg.discover_host = true;
            let mut protected = flood_protected();
            protected.push((net("198.18.7.254/32"), "default gateway"));
            protected.push((net("198.18.7.1/32"), "the sensor's own address"));
            flood(
                cfg,
                Flood {
                    protected,
                    max_entries: 10_000,
                    per_minute: 50,
                },
            )
            .await;
        });
    })
    .join()
    .expect("the flood inside the namespace failed");
}
