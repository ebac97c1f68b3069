//! `ids2-agent net …` against the real kernel, inside network namespaces made per test.
//!
//! Each test builds a "sensor" namespace whose links `eth0`, `eth1` and `wlan0` are veth ends
//! paired with `p0`, `p1`, `p2` in a "lan" namespace (10.77.N.2 ↔ 10.77.N.1), runs the real
//! binary there with `ip netns exec`, and reads the result back with `ip -j link`. The host's
//! own links are never touched. Needs root and iproute2; skips with a message otherwise.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

const AGENT: &str = env!("CARGO_BIN_EXE_ids2-agent");

/// Why these tests cannot run here, if they cannot.
fn missing_requirement() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("root (to create network namespaces)");
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("the `ip` command (iproute2)"),
    }
}

macro_rules! require_root {
    () => {
        if let Some(what) = missing_requirement() {
            eprintln!("SKIP {}: needs {what}", module_path!());
            return;
        }
    };
}

/// A network namespace deleted on drop (also when the test panics).
struct Netns {
    name: String,
}

impl Netns {
    fn new(role: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("ids2t-{}-{n}-{role}", std::process::id());
        run("ip", &["netns", "add", &name]);
        Netns { name }
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Each link's name → its flags (sorted) and index, as `ip -j link` reports them.
    fn links(&self) -> BTreeMap<String, (u64, Vec<String>)> {
        let json: Value = serde_json::from_str(&self.ip(&["-j", "link"])).unwrap();
        json.as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let mut flags: Vec<String> = l["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_string())
                    .collect();
                flags.sort();
                (
                    l["ifname"].as_str().unwrap().to_string(),
                    (l["ifindex"].as_u64().unwrap(), flags),
                )
            })
            .collect()
    }

    /// The links once the kernel has caught up with carrier changes: every peer is up, so a
    /// link reporting both `LOWER_UP` and `NO-CARRIER` is still between the two states.
    fn settled_links(&self) -> BTreeMap<String, (u64, Vec<String>)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let links = self.links();
            let transient = links.values().any(|(_, flags)| {
                flags.iter().any(|f| f == "LOWER_UP") && flags.iter().any(|f| f == "NO-CARRIER")
            });
            if !transient || Instant::now() >= deadline {
                return links;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asserts the links come back to `expected`. Admin state and promiscuous mode are set
    /// synchronously, but the kernel reports carrier (`NO-CARRIER`, `LOWER_UP`) through its
    /// link watcher up to a second later, so the comparison is retried for a bounded time.
    fn assert_links_return_to(&self, expected: &BTreeMap<String, (u64, Vec<String>)>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.links();
            if &now == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "links not restored:\n now: {now:?}\n was: {expected:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn up_links(&self) -> Vec<String> {
        self.links()
            .into_iter()
            .filter(|(_, (_, flags))| flags.iter().any(|f| f == "UP"))
            .map(|(name, _)| name)
            .collect()
    }

    /// A TCP listener on `addr:0` created inside this namespace (a socket keeps the namespace
    /// it was made in, so only the creating thread has to enter it).
    fn listen(&self, addr: &str) -> TcpListener {
        let path = PathBuf::from("/run/netns").join(&self.name);
        let addr = format!("{addr}:0");
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            TcpListener::bind(addr).unwrap()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The sensor and lan namespaces with the sensor's links in the given states.
struct Lab {
    sensor: Netns,
    lan: Netns,
    dir: tempfile::TempDir,
}

/// Initial state of one sensor link: (name, admin up, promiscuous).
type LinkSpec<'a> = (&'a str, bool, bool);

impl Lab {
    fn new(links: &[LinkSpec]) -> Self {
        let sensor = Netns::new("s");
        let lan = Netns::new("l");
        sensor.ip(&["link", "set", "lo", "up"]);
        for (n, (name, up, promisc)) in links.iter().enumerate() {
            let peer = format!("p{n}");
            sensor.ip(&[
                "link", "add", name, "type", "veth", "peer", "name", &peer, "netns", &lan.name,
            ]);
            sensor.ip(&["addr", "add", &format!("10.77.{n}.2/24"), "dev", name]);
            lan.ip(&["addr", "add", &format!("10.77.{n}.1/24"), "dev", &peer]);
            lan.ip(&["link", "set", &peer, "up"]);
            sensor.ip(&["link", "set", name, if *up { "up" } else { "down" }]);
            sensor.ip(&[
                "link",
                "set",
                name,
                "promisc",
                if *promisc { "on" } else { "off" },
            ]);
        }
        Lab {
            sensor,
            lan,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self, targets: &[String]) -> PathBuf {
        let path = self.dir.path().join("config.yaml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &path,
            format!(
                "sensor: {{id: lab-1}}\nopensearch: {{domain: ids2, region: eu-west-1}}\n\
                 capture: {{interface: eth0}}\n\
                 network: {{management_targets: [{}], rollback_timeout_secs: 2}}\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        path
    }

    fn agent(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.sensor.name, AGENT])
            .args(args)
            .output()
            .unwrap()
    }

    fn apply(&self, config: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["net", "apply", "--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.agent(&args)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn apply_from_mixed_states_leaves_only_lo_and_capture_up() {
    require_root!();
    let lab = Lab::new(&[
        ("eth0", false, false),
        ("eth1", true, false),
        ("wlan0", true, true),
    ]);
    let listener = lab.lan.listen("10.77.0.1");
    let target = listener.local_addr().unwrap().to_string();
    let config = lab.config(std::slice::from_ref(&target));

    let out = lab.apply(&config, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for line in [
        "eth0: set up, promiscuous on",
        "eth1: set down",
        "wlan0: set down",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains(&format!("{target} (TCP connect)")),
        "{stdout}"
    );
    assert_eq!(lab.sensor.up_links(), ["eth0", "lo"]);
    let links = lab.sensor.links();
    assert!(
        links["eth0"].1.contains(&"PROMISC".to_string()),
        "{links:?}"
    );
}

#[test]
fn second_apply_plans_nothing_and_changes_nothing() {
    require_root!();
    let lab = Lab::new(&[
        ("eth0", true, false),
        ("eth1", false, false),
        ("wlan0", true, false),
    ]);
    let listener = lab.lan.listen("10.77.0.1");
    let config = lab.config(&[listener.local_addr().unwrap().to_string()]);

    let first = lab.apply(&config, &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let after_first = lab.sensor.settled_links();

    let second = lab.apply(&config, &[]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let stdout = text(&second.stdout);
    assert!(stdout.starts_with("plan: no changes"), "{stdout}");
    assert_eq!(lab.sensor.links(), after_first);
}

#[test]
fn missing_capture_interface_is_refused_and_nothing_changes() {
    require_root!();
    let lab = Lab::new(&[("eth1", true, false), ("wlan0", true, false)]);
    let config = lab.config(&["gateway".into()]);
    let before = lab.sensor.settled_links();

    for extra in [&[][..], &["--dry-run"][..]] {
        let out = lab.apply(&config, extra);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("`eth0` does not exist"), "{stderr}");
        assert!(stderr.contains("eth1, wlan0"), "{stderr}");
        assert_eq!(lab.sensor.links(), before);
    }
}

#[test]
fn unreachable_tcp_target_rolls_every_link_back() {
    require_root!();
    let lab = Lab::new(&[
        ("eth0", false, false),
        ("eth1", true, true),
        ("wlan0", true, false),
    ]);
    // A port that was just free in the lan namespace: nothing listens there any more.
    let closed = lab
        .lan
        .listen("10.77.0.1")
        .local_addr()
        .unwrap()
        .to_string();
    let config = lab.config(std::slice::from_ref(&closed));
    let before = lab.sensor.settled_links();

    let out = lab.apply(&config, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{closed} (TCP connect)")) && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("restored to its previous state"),
        "{stderr}"
    );
    lab.sensor.assert_links_return_to(&before);
}

#[test]
fn gateway_behind_a_link_taken_down_rolls_back_links_and_default_route() {
    require_root!();
    let lab = Lab::new(&[
        ("eth0", false, false),
        ("eth1", true, false),
        ("wlan0", false, true),
    ]);
    lab.sensor
        .ip(&["route", "add", "default", "via", "10.77.1.1", "dev", "eth1"]);
    // The kernel drops IPv6 addresses and static routes of a link set down; both must return.
    lab.sensor
        .ip(&["-6", "addr", "add", "fd77:1::2/64", "dev", "eth1", "nodad"]);
    lab.sensor.ip(&[
        "-6",
        "route",
        "add",
        "fd77:99::/64",
        "via",
        "fd77:1::1",
        "dev",
        "eth1",
    ]);
    let config = lab.config(&["gateway".into()]);
    let before = lab.sensor.settled_links();

    let out = lab.apply(&config, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("gateway 10.77.1.1 (ICMP echo)"), "{stderr}");
    lab.sensor.assert_links_return_to(&before);
    let route = lab.sensor.ip(&["route", "show", "default"]);
    assert!(
        route.contains("via 10.77.1.1 dev eth1"),
        "route not restored: {route:?}"
    );
    let v6 = lab.sensor.ip(&["-6", "addr", "show", "dev", "eth1"]);
    assert!(
        v6.contains("fd77:1::2/64"),
        "IPv6 address not restored: {v6}"
    );
    let v6_route = lab.sensor.ip(&["-6", "route", "show", "fd77:99::/64"]);
    assert!(
        v6_route.contains("via fd77:1::1 dev eth1"),
        "IPv6 route not restored: {v6_route:?}"
    );
}

#[test]
fn gateway_on_the_capture_interface_keeps_answering() {
    require_root!();
    let lab = Lab::new(&[
        ("eth0", true, false),
        ("eth1", true, false),
        ("wlan0", false, false),
    ]);
    lab.sensor
        .ip(&["route", "add", "default", "via", "10.77.0.1", "dev", "eth0"]);
    lab.sensor
        .ip(&["-6", "addr", "add", "fd77::2/64", "dev", "eth0", "nodad"]);
    lab.lan
        .ip(&["-6", "addr", "add", "fd77::1/64", "dev", "p0", "nodad"]);
    let config = lab.config(&["gateway".into(), "fd77::1".into()]);

    let out = lab.apply(&config, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("gateway 10.77.0.1 (ICMP echo)"), "{stdout}");
    assert!(stdout.contains("fd77::1 (ICMP echo)"), "{stdout}");
    assert_eq!(lab.sensor.up_links(), ["eth0", "lo"]);
    let route = lab.sensor.ip(&["route", "show", "default"]);
    assert!(route.contains("via 10.77.0.1 dev eth0"), "{route:?}");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    require_root!();
    let lab = Lab::new(&[
        ("eth0", false, false),
        ("eth1", true, false),
        ("wlan0", true, true),
    ]);
    let config = lab.config(&["gateway".into()]);
    let before = lab.sensor.settled_links();

    let out = lab.apply(&config, &["--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.starts_with("dry run, nothing changed"), "{stdout}");
    for line in [
        "eth0: set up, promiscuous on",
        "eth1: set down",
        "wlan0: set down",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert_eq!(lab.sensor.links(), before);
}

#[test]
fn status_shows_links_addresses_gateway_and_plan() {
    require_root!();
    let lab = Lab::new(&[("eth0", true, true), ("eth1", true, false)]);
    lab.sensor
        .ip(&["route", "add", "default", "via", "10.77.1.1", "dev", "eth1"]);
    let config = lab.config(&["gateway".into()]);
    let before = lab.sensor.settled_links();

    let out = lab.agent(&["net", "status", "--config", config.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let eth1 = stdout.lines().find(|l| l.contains(" eth1 ")).unwrap_or("");
    assert!(
        eth1.contains("UP") && eth1.contains("10.77.1.2/24"),
        "{stdout}"
    );
    assert!(
        stdout.contains("default gateway: 10.77.1.1 dev eth1"),
        "{stdout}"
    );
    assert!(stdout.contains("eth1: set down"), "{stdout}");
    assert!(!stdout.contains("eth0: set"), "{stdout}");
    assert_eq!(lab.sensor.links(), before);
}

#[test]
fn unreadable_config_is_bad_input() {
    let out = Command::new(AGENT)
        .args([
            "net",
            "apply",
            "--config",
            "/nonexistent/ids2.yaml",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("/nonexistent/ids2.yaml"));
}
