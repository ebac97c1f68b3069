//! The lab's virtual LAN: four network namespaces made with `ip netns` and torn down by a Drop
//! guard.
//!
//! `lan` holds a bridge joining the attacker's and the victim's veths; tc `mirred` copies every
//! frame entering the bridge from either of them to the sensor's veth, so the sensor's `eth0`
//! sees the LAN like a switch's mirror port. Names carry the pid and a counter, so concurrent
//! labs (and tests) never collide.

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{setns, CloneFlags};

use super::LabError;

/// The attacker's address on the lab LAN.
pub const ATTACKER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);
/// The victim's address on the lab LAN.
pub const VICTIM_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 20);
/// A second address of the victim's: the botnet C2 server the lab's intel feed lists
/// ([`crate::intel_feeds`]).
pub const C2_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 66);
/// The LAN's prefix length (the subnet is `emulate::LAB_SUBNET`).
const PREFIX_LEN: u8 = 24;
/// The interface name inside the attacker, victim and sensor namespaces.
pub const IFACE: &str = "eth0";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The lab's namespaces; dropping it deletes them (and with them every veth and the bridge).
#[derive(Debug)]
pub struct Lan {
    /// Attacker namespace name.
    pub attacker: String,
    /// Victim namespace name.
    pub victim: String,
    /// Sensor namespace name.
    pub sensor: String,
    /// The switch namespace name.
    pub lan: String,
    created: Vec<String>,
}

impl Lan {
    /// Creates the namespaces, links, addresses and the mirror. On any failure what was made
    /// so far is removed.
    pub fn create() -> Result<Self, LabError> {
        let tag = format!(
            "ids2lab-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut lan = Lan {
            attacker: format!("{tag}-att"),
            victim: format!("{tag}-vic"),
            sensor: format!("{tag}-sen"),
            lan: format!("{tag}-lan"),
            created: Vec::new(),
        };
        lan.build()?;
        Ok(lan)
    }

    fn build(&mut self) -> Result<(), LabError> {
        for ns in [&self.lan, &self.attacker, &self.victim, &self.sensor] {
            ip(&["netns", "add", ns])?;
            self.created.push(ns.clone());
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let lan = self.lan.clone();
        ip(&["-n", &lan, "link", "add", "br0", "type", "bridge"])?;
        // No STP delay: ports forward as soon as they are up.
        ip(&[
            "-n",
            &lan,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        ip(&["-n", &lan, "link", "set", "br0", "up"])?;
        for (port, ns) in [
            ("p-att", self.attacker.clone()),
            ("p-vic", self.victim.clone()),
            ("p-sen", self.sensor.clone()),
        ] {
            ip(&[
                "-n", &lan, "link", "add", port, "type", "veth", "peer", "name", IFACE, "netns",
                &ns,
            ])?;
            ip(&["-n", &lan, "link", "set", port, "up"])?;
            ip(&["-n", &ns, "link", "set", IFACE, "up"])?;
        }
        for port in ["p-att", "p-vic"] {
            ip(&["-n", &lan, "link", "set", port, "master", "br0"])?;
            // Every frame the host sends into the switch is copied to the sensor's port. A u32
            // match-all rather than `matchall`: cls_u32 is in every kernel, cls_matchall is not.
            tc(&lan, &["qdisc", "add", "dev", port, "ingress"])?;
            tc(
                &lan,
                &[
                    "filter", "add", "dev", port, "parent", "ffff:", "protocol", "all", "u32",
                    "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev",
                    "p-sen",
                ],
            )?;
        }
        for (ns, addr) in [
            (&self.attacker, ATTACKER_IP),
            (&self.victim, VICTIM_IP),
            (&self.victim, C2_IP),
        ] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/{PREFIX_LEN}"),
                "dev",
                IFACE,
            ])?;
        }
        Ok(())
    }

    /// Moves the calling thread into namespace `ns` (sockets it opens afterwards live there).
    pub fn enter(ns: &str) -> Result<(), LabError> {
        let path = format!("/run/netns/{ns}");
        let file = File::open(&path).map_err(|source| LabError::Io {
            action: "open",
            path: path.clone().into(),
            source,
        })?;
        setns(file, CloneFlags::CLONE_NEWNET).map_err(|e| LabError::Setns {
            ns: ns.to_string(),
            source: e.into(),
        })
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("warning: cannot delete lab namespace {ns}: {e}");
            }
        }
    }
}

/// Runs `ip ARGS`.
fn ip(args: &[&str]) -> Result<(), LabError> {
    run("ip", args)
}

/// Runs `ip netns exec NS tc ARGS` (tc has no `-n` on older iproute2).
fn tc(ns: &str, args: &[&str]) -> Result<(), LabError> {
    let mut all = vec!["netns", "exec", ns, "tc"];
    all.extend_from_slice(args);
    run("ip", &all)
}

fn run(program: &str, args: &[&str]) -> Result<(), LabError> {
    super::command_output(Command::new(program).args(args)).map(drop)
}

/// True when a namespace of this name exists.
pub fn exists(ns: &str) -> bool {
    std::path::Path::new("/run/netns").join(ns).exists()
}
