//! Test networks: a sensor namespace and a peer namespace joined by one veth pair, both
//! addressed and up, deleted on drop (even when the test panics). Names carry the pid and a
//! counter so tests running at the same time never collide. Needs root and iproute2.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth pair.
pub struct Pair {
    /// The sensor's namespace.
    pub sensor: String,
    /// The peer's namespace, where traffic to the sensor comes from.
    pub peer: String,
}

/// One end of the pair: the link's name inside its namespace and its address with prefix.
pub struct End<'a> {
    /// Link name, e.g. `eth0`.
    pub link: &'a str,
    /// Address with prefix length, e.g. `10.78.1.1/24`.
    pub cidr: &'a str,
}

impl Pair {
    /// The next pair number, to derive addresses before [`Pair::create`].
    pub fn next_number() -> u32 {
        COUNTER.fetch_add(1, Ordering::SeqCst)
    }

    /// Namespaces `<tag>-<pid>-<n>-{s,p}` with `sensor` and `peer` as the two ends.
    pub fn create(tag: &str, n: u32, sensor: End<'_>, peer: End<'_>) -> Pair {
        let id = format!("{tag}-{}-{n}", std::process::id());
        let pair = Pair {
            sensor: format!("{id}-s"),
            peer: format!("{id}-p"),
        };
        for ns in [&pair.sensor, &pair.peer] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n",
            &pair.sensor,
            "link",
            "add",
            sensor.link,
            "type",
            "veth",
            "peer",
            "name",
            peer.link,
            "netns",
            &pair.peer,
        ]);
        for (ns, end) in [(&pair.sensor, &sensor), (&pair.peer, &peer)] {
            ip(&["-n", ns, "addr", "add", end.cidr, "dev", end.link]);
            ip(&["-n", ns, "link", "set", end.link, "up"]);
        }
        pair
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.sensor, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `ip ARGS`, failing the test with ip's stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
