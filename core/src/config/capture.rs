//! `capture`: what Suricata listens on and how it spreads the work.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::schema::default_true;

/// Packet capture settings (Suricata af-packet).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// The one interface left up and captured on.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// The protected networks (Suricata `HOME_NET`), as CIDRs.
    #[serde(default = "default_home_net")]
    pub home_net: Vec<String>,
    /// Suricata worker threads on the capture interface.
    #[serde(default = "default_workers")]
    pub workers: u32,
    /// CPU cores the workers are pinned to; the others are left to the agent and Vector.
    #[serde(default = "default_cpu_cores")]
    pub cpu_cores: Vec<u32>,
    /// af-packet ring size, in packets per worker.
    #[serde(default = "default_ring_size")]
    pub ring_size: u32,
    /// tpacket-v3 block size in bytes: a power of two and a multiple of the Pi 5's 16 KiB pages.
    #[serde(default = "default_block_size")]
    pub block_size_bytes: u32,
    /// Pin the workers to `cpu_cores` exclusively at high priority (the Pi, whose cores are set
    /// aside for capture); off where the cores are shared with other work, such as the lab.
    #[serde(default = "default_true")]
    pub pin_workers: bool,
}

super::schema::default_from_fns! {
    Capture {
        interface: default_interface, home_net: default_home_net, workers: default_workers,
        cpu_cores: default_cpu_cores, ring_size: default_ring_size,
        block_size_bytes: default_block_size, pin_workers: default_true,
    }
}

/// Default capture interface.
pub fn default_interface() -> String {
    "eth0".into()
}

/// Default HOME_NET: the RFC 1918 ranges.
pub fn default_home_net() -> Vec<String> {
    ["192.168.0.0/16", "10.0.0.0/8", "172.16.0.0/12"]
        .map(String::from)
        .to_vec()
}

/// Default worker count: two of the Pi 5's four cores.
pub fn default_workers() -> u32 {
    2
}

/// Default worker cores: 2 and 3, leaving 0 and 1 to the agent, Vector and the OS.
pub fn default_cpu_cores() -> Vec<u32> {
    vec![2, 3]
}

/// Default af-packet ring size.
pub fn default_ring_size() -> u32 {
    2048
}

/// Default tpacket-v3 block size: 64 KiB, four 16 KiB pages.
pub fn default_block_size() -> u32 {
    65536
}

impl Capture {
    /// Checks every key; returns `home_net` parsed.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) -> Vec<IpNet> {
        let cap = self;
        if !is_interface_name(&cap.interface) {
            p.push(Problem::new(
                "capture.interface",
                &cap.interface,
                "expected a Linux interface name: 1–15 characters, no '/', ':' or spaces",
            ));
        }
        let mut nets = Vec::new();
        if cap.home_net.is_empty() {
            p.push(Problem::at(
                "capture.home_net",
                "must list at least one CIDR, e.g. [192.168.0.0/16]",
            ));
        }
        for (i, s) in cap.home_net.iter().enumerate() {
            match s.parse::<IpNet>() {
                Ok(n) => nets.push(n),
                Err(_) => p.push(Problem::new(
                    format!("capture.home_net[{i}]"),
                    s,
                    "expected a CIDR such as 192.168.1.0/24 or fd00::/8",
                )),
            }
        }
        if !(1..=16).contains(&cap.workers) {
            p.push(Problem::new(
                "capture.workers",
                cap.workers,
                "expected 1 to 16 worker threads (the Pi 5 has 4 cores; 2 is the default)",
            ));
        }
        if cap.cpu_cores.is_empty() {
            p.push(Problem::at(
                "capture.cpu_cores",
                "must list at least one CPU core, e.g. [2, 3]",
            ));
        }
        for (i, core) in cap.cpu_cores.iter().enumerate() {
            if *core > 255 {
                p.push(Problem::new(
                    format!("capture.cpu_cores[{i}]"),
                    core,
                    "expected a CPU core number from 0 to 255",
                ));
            }
            if cap.cpu_cores[..i].contains(core) {
                p.push(Problem::new(
                    format!("capture.cpu_cores[{i}]"),
                    core,
                    "each core may be listed once",
                ));
            }
        }
        if !(64..=1_048_576).contains(&cap.ring_size) {
            p.push(Problem::new(
                "capture.ring_size",
                cap.ring_size,
                "expected 64 to 1048576 packets",
            ));
        }
        let bs = cap.block_size_bytes;
        if !(bs.is_power_of_two() && (16_384..=4_194_304).contains(&bs)) {
            p.push(Problem::new(
                "capture.block_size_bytes",
                bs,
                "expected a power of two from 16384 to 4194304 (a multiple of the Pi 5's \
                 16 KiB page), e.g. 65536",
            ));
        }
        nets
    }
}

fn is_interface_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}
