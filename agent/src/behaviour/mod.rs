//! Behavioural detection over EVE records: what a Suricata rule cannot count.
//!
//! A rule's threshold counts matching packets per host in a window; it cannot count *distinct*
//! things — ports a source probed, subdomains it asked for — nor judge a session after it ended.
//! [`BehaviourDetector`] keeps that state per source over minutes of EVE time (record
//! timestamps, so a replayed capture is judged as it happened) from `flow` and `dns` records,
//! and returns alerts shaped like Suricata's EVE alerts (sid range [`SIDS`], ATT&CK metadata),
//! so they take the same ECS mapping and shipping as Suricata's. Each detection has one alert
//! per key and window, and each states its false-positive budget.
//!
//! - **Slow port scan** (9201010, T1046): a source's probe flows (TCP flows in which the client
//!   sent no data, UDP flows no service answered) to [`Options::scan_ports`] distinct ports of
//!   one host within [`Options::window_secs`]; UDP traceroute's ports and answers to multicast
//!   queries ([`MULTICAST_ANSWER_PORTS`]) are not probes. FP budget: a monitoring poller
//!   checking that many ports of one host (suppress its address).
//! - **Host sweep** (9201011, T1046): probe flows from one source to [`Options::sweep_hosts`]
//!   distinct hosts on one port within the window. FP budget: inventory and monitoring tools.
//! - **Login brute force** (9201020, T1110): [`Options::login_sessions`] short sessions
//!   (under [`Options::short_session_secs`] and [`SHORT_SESSION_BYTES`] to the client: what a
//!   refused login leaves) from one client to one login service (SSH, telnet, FTP, mail, RDP,
//!   VNC, databases; not SMB, whose clients open short sessions all day) within the window. FP budget: scripted jobs logging in that often
//!   without connection sharing.
//! - **DNS tunnel, unique subdomains** (9201040, T1071.004): [`Options::dns_unique`] distinct
//!   names under one registered domain from one client within the window, averaging at least
//!   [`Options::dns_mean_len`] characters and [`Options::dns_entropy_bits`] bits of entropy per
//!   character (encoded data, not host names). FP budget: reputation services that look hashes
//!   up over DNS.
//! - **DNS tunnel, bulk subdomains** (9201042, T1071.004): [`Options::dns_bulk_unique`]
//!   distinct names under one registered domain from one client within the window, whatever
//!   their length or encoding (tunnels with short labels: a tunnel moves data only by asking
//!   for many names), averaging at least [`Options::dns_bulk_mean_len`] characters. Reverse
//!   lookups (`in-addr.arpa`, `ip6.arpa`) and blocklist lookups (a reversed IPv4 address under
//!   the list's zone) are not counted. FP budget: software resolving a hundred hosts of one
//!   domain in ten minutes (a crawler, an inventory of cloud instances).
//! - **DNS tunnel, data-carrying records** (9201041, T1071.004): [`Options::dns_data_unique`]
//!   distinct names of at least [`Options::dns_data_len`] characters under one registered
//!   domain queried for NULL, TXT, CNAME, MX, SRV or private-use records. FP budget: DKIM/SPF
//!   checks of a mail server under one domain with long selectors.
//!
//! The registered domain is approximated as the last two labels (three when the second-level
//! label is a short public one such as `co.uk`): no public-suffix list ships with the sensor.

pub mod daemon;

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

use serde_json::{json, Value};

/// The detector's sid range, inside ids2's 9200000–9299999.
pub const SIDS: std::ops::RangeInclusive<u32> = 9_201_000..=9_201_999;
/// Slow (or fast) vertical port scan.
pub const SID_PORT_SCAN: u32 = 9_201_010;
/// Horizontal sweep of one port over many hosts.
pub const SID_HOST_SWEEP: u32 = 9_201_011;
/// Login brute force from short sessions.
pub const SID_LOGIN_BRUTE_FORCE: u32 = 9_201_020;
/// DNS tunnel: unique encoded subdomains under one domain.
pub const SID_DNS_UNIQUE: u32 = 9_201_040;
/// DNS tunnel: data-carrying record types under one domain.
pub const SID_DNS_RECORDS: u32 = 9_201_041;
/// DNS tunnel: very many unique subdomains of one domain, any encoding.
pub const SID_DNS_BULK: u32 = 9_201_042;

/// Bytes to the client under which a session counts as a refused login (an SSH key exchange
/// and a few failed attempts stay under it; a shell or a transfer does not).
pub const SHORT_SESSION_BYTES: u64 = 16_384;
/// Most keys (sources, pairs, domains) tracked per detection; the oldest half is forgotten past
/// it, so a spoofed flood cannot grow the detector without bound.
pub const MAX_KEYS: usize = 65_536;
/// Login services: SSH, telnet, FTP, SMTP submission, POP3, IMAP, RDP, VNC, MySQL,
/// PostgreSQL, MSSQL and their TLS ports. SMB (445) is left out: Windows clients open many
/// short SMB sessions to one server in normal work (the corpus has such a capture).
pub const LOGIN_PORTS: &[u64] = &[
    21, 22, 23, 110, 143, 465, 587, 993, 995, 1433, 3306, 3389, 5432, 5900,
];
/// UDP traceroute's destination ports (33434 plus three probes for each of up to 30 hops):
/// its probes are unanswered by design (the hops answer with ICMP), not a scan.
pub const TRACEROUTE_PORTS: std::ops::RangeInclusive<u64> = 33_434..=33_534;
/// UDP source ports of responders to multicast queries (mDNS, LLMNR, SSDP): they answer the
/// asker's port unicast, a flow Suricata cannot pair with the multicast query, so every answer
/// looks like an unanswered probe of a new port (the corpus's SMB capture: ten LLMNR answers).
pub const MULTICAST_ANSWER_PORTS: &[u64] = &[1900, 5353, 5355];
/// DNS record types that carry arbitrary data downstream (KEY: dns2tcp's other channel).
pub const DATA_RECORD_TYPES: &[&str] = &["NULL", "TXT", "CNAME", "MX", "SRV", "KEY", "PRIVATE"];

/// Thresholds (the defaults are the documented ones).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The window every detection counts over, in seconds of EVE time.
    pub window_secs: f64,
    /// Distinct probed ports of one host.
    pub scan_ports: usize,
    /// Distinct probed hosts on one port.
    pub sweep_hosts: usize,
    /// Short sessions to one login service.
    pub login_sessions: usize,
    /// A session shorter than this (seconds) may be a refused login.
    pub short_session_secs: f64,
    /// Distinct names under one registered domain.
    pub dns_unique: usize,
    /// Their mean length (characters left of the registered domain).
    pub dns_mean_len: f64,
    /// Their mean Shannon entropy, bits per character.
    pub dns_entropy_bits: f64,
    /// Distinct names under one registered domain, any length or encoding.
    pub dns_bulk_unique: usize,
    /// Their mean length (characters left of the registered domain).
    pub dns_bulk_mean_len: f64,
    /// Distinct names queried for data-carrying record types.
    pub dns_data_unique: usize,
    /// Their shortest length.
    pub dns_data_len: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            window_secs: 600.0,
            scan_ports: 8,
            sweep_hosts: 10,
            login_sessions: 5,
            short_session_secs: 30.0,
            dns_unique: 30,
            dns_mean_len: 20.0,
            dns_entropy_bits: 3.2,
            dns_bulk_unique: 100,
            dns_bulk_mean_len: 8.0,
            dns_data_unique: 8,
            dns_data_len: 16,
        }
    }
}

/// Distinct values per key within a sliding window, with one alert per key and window.
struct Distinct<K, V> {
    seen: HashMap<K, Window<V>>,
}

struct Window<V> {
    events: VecDeque<(f64, V)>,
    alerted_at: Option<f64>,
}

impl<K: Hash + Eq + Clone, V: Hash + Eq + Clone> Distinct<K, V> {
    fn new() -> Self {
        Self {
            seen: HashMap::new(),
        }
    }

    /// Records `value` for `key` at `t`; returns the distinct values within `window` seconds
    /// when they reach `min` and the key has not alerted within the window.
    fn add(&mut self, key: K, value: V, t: f64, window: f64, min: usize) -> Option<Vec<V>> {
        if self.seen.len() >= MAX_KEYS && !self.seen.contains_key(&key) {
            forget_oldest(&mut self.seen);
        }
        let w = self.seen.entry(key).or_insert_with(|| Window {
            events: VecDeque::new(),
            alerted_at: None,
        });
        // Flow records arrive in end order, not start order: keep the window sorted by time.
        let at = w.events.partition_point(|(s, _)| *s <= t);
        w.events.insert(at, (t, value));
        let newest = w.events.back().map_or(t, |(s, _)| *s);
        while w.events.front().is_some_and(|(s, _)| *s < newest - window) {
            w.events.pop_front();
        }
        if w.alerted_at.is_some_and(|a| newest - a < window) {
            return None;
        }
        let mut distinct = HashSet::new();
        let values: Vec<V> = w
            .events
            .iter()
            .filter(|(_, v)| distinct.insert(v.clone()))
            .map(|(_, v)| v.clone())
            .collect();
        if values.len() >= min {
            w.alerted_at = Some(newest);
            Some(values)
        } else {
            None
        }
    }
}

fn forget_oldest<K: Hash + Eq + Clone, V>(map: &mut HashMap<K, Window<V>>) {
    let mut ages: Vec<(f64, K)> = map
        .iter()
        .map(|(k, w)| (w.events.back().map_or(f64::MIN, |(t, _)| *t), k.clone()))
        .collect();
    ages.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, k) in ages.into_iter().take(map.len() / 2) {
        map.remove(&k);
    }
}

/// The detector; feed it every EVE record in file order.
pub struct BehaviourDetector {
    opts: Options,
    ports: Distinct<(String, String, &'static str), u64>,
    hosts: Distinct<(String, u64, &'static str), String>,
    logins: Distinct<(String, String, u64), u64>,
    dns_names: Distinct<(String, String), String>,
    dns_bulk: Distinct<(String, String), String>,
    dns_data: Distinct<(String, String), String>,
}

impl BehaviourDetector {
    /// A detector with these thresholds.
    pub fn new(opts: Options) -> Self {
        Self {
            opts,
            ports: Distinct::new(),
            hosts: Distinct::new(),
            logins: Distinct::new(),
            dns_names: Distinct::new(),
            dns_bulk: Distinct::new(),
            dns_data: Distinct::new(),
        }
    }

    /// Looks at one EVE record; returns the alerts it completes (usually none).
    pub fn observe(&mut self, record: &Value) -> Vec<Value> {
        match record["event_type"].as_str() {
            Some("flow") => self.flow(record),
            Some("dns") => self.dns(record),
            _ => Vec::new(),
        }
    }

    /// Alerts still pending at the end of a file (none today: every detection alerts as soon
    /// as its count is reached); kept so callers need not change when one waits.
    pub fn finish(&mut self) -> Vec<Value> {
        Vec::new()
    }

    fn flow(&mut self, r: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        let (Some(src), Some(dst), Some(dport)) = (
            r["src_ip"].as_str(),
            r["dest_ip"].as_str(),
            r["dest_port"].as_u64(),
        ) else {
            return out;
        };
        let f = &r["flow"];
        let Some(start) = f["start"].as_str().and_then(seconds) else {
            return out;
        };
        let end = f["end"].as_str().and_then(seconds).unwrap_or(start);
        let proto: &'static str = match r["proto"].as_str() {
            Some("TCP") => "tcp",
            Some("UDP") => "udp",
            _ => return out,
        };
        let o = self.opts.clone();
        let sport = r["src_port"].as_u64().unwrap_or(0);
        let not_a_probe = proto == "udp"
            && (TRACEROUTE_PORTS.contains(&dport) || MULTICAST_ANSWER_PORTS.contains(&sport));
        if is_probe(r, proto) && !not_a_probe {
            let key = (src.to_string(), dst.to_string(), proto);
            if let Some(ports) = self
                .ports
                .add(key, dport, start, o.window_secs, o.scan_ports)
            {
                out.push(alert(
                    r,
                    SID_PORT_SCAN,
                    &format!("IDS2 T1046 slow port scan ({} distinct {proto} ports of one host probed within {} s)", ports.len(), o.window_secs),
                    "attempted-recon",
                    ("T1046", "Network_Service_Discovery", "TA0007"),
                    format!("{} {proto} ports probed: {}", ports.len(), list(&ports, 20)),
                ));
            }
            let key = (src.to_string(), dport, proto);
            if let Some(hosts) =
                self.hosts
                    .add(key, dst.to_string(), start, o.window_secs, o.sweep_hosts)
            {
                out.push(alert(
                    r,
                    SID_HOST_SWEEP,
                    &format!("IDS2 T1046 host sweep ({} hosts probed on {proto} port {dport} within {} s)", hosts.len(), o.window_secs),
                    "attempted-recon",
                    ("T1046", "Network_Service_Discovery", "TA0007"),
                    format!("{} hosts probed: {}", hosts.len(), list(&hosts, 20)),
                ));
            }
        }
        let to_client = f["bytes_toclient"].as_u64().unwrap_or(0);
        let answered = f["pkts_toclient"].as_u64().unwrap_or(0) > 2;
        if proto == "tcp"
            && LOGIN_PORTS.contains(&dport)
            && answered
            && !is_probe(r, proto)
            && end - start < o.short_session_secs
            && to_client < SHORT_SESSION_BYTES
        {
            let key = (src.to_string(), dst.to_string(), dport);
            let id = r["flow_id"].as_u64().unwrap_or(0);
            if let Some(sessions) = self
                .logins
                .add(key, id, start, o.window_secs, o.login_sessions)
            {
                out.push(alert(
                    r,
                    SID_LOGIN_BRUTE_FORCE,
                    &format!("IDS2 T1110 login brute force ({} short sessions to one login service within {} s)", sessions.len(), o.window_secs),
                    "attempted-user",
                    ("T1110", "Brute_Force", "TA0006"),
                    format!("{} sessions to port {dport} under {} s and {SHORT_SESSION_BYTES} bytes each", sessions.len(), o.short_session_secs),
                ));
            }
        }
        out
    }

    fn dns(&mut self, r: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        let d = &r["dns"];
        if d["type"].as_str() != Some("query") {
            return out;
        }
        let (Some(src), Some(name), Some(t)) = (
            r["src_ip"].as_str(),
            d["rrname"].as_str(),
            r["timestamp"].as_str().and_then(seconds),
        ) else {
            return out;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let Some((sub, domain)) = split_registered(&name) else {
            return out;
        };
        let o = self.opts.clone();
        let key = (src.to_string(), domain.to_string());
        if let Some(names) =
            self.dns_names
                .add(key.clone(), sub.to_string(), t, o.window_secs, o.dns_unique)
        {
            let n = names.len() as f64;
            let mean_len = names.iter().map(|s| s.len() as f64).sum::<f64>() / n;
            let entropy = names.iter().map(|s| entropy(s)).sum::<f64>() / n;
            if mean_len >= o.dns_mean_len && entropy >= o.dns_entropy_bits {
                out.push(alert(
                    r,
                    SID_DNS_UNIQUE,
                    &format!("IDS2 T1071.004 DNS tunnelling ({} unique encoded subdomains of one domain within {} s)", names.len(), o.window_secs),
                    "policy-violation",
                    ("T1071.004", "DNS", "TA0011"),
                    format!("{} names under {domain}, mean {mean_len:.0} characters, {entropy:.2} bits/character", names.len()),
                ));
            }
        }
        if !reverse_lookup(sub, domain) {
            if let Some(names) = self.dns_bulk.add(
                key.clone(),
                sub.to_string(),
                t,
                o.window_secs,
                o.dns_bulk_unique,
            ) {
                let mean_len =
                    names.iter().map(|s| s.len() as f64).sum::<f64>() / names.len() as f64;
                if mean_len >= o.dns_bulk_mean_len {
                    out.push(alert(
                        r,
                        SID_DNS_BULK,
                        &format!("IDS2 T1071.004 DNS tunnelling ({} unique subdomains of one domain within {} s)", names.len(), o.window_secs),
                        "policy-violation",
                        ("T1071.004", "DNS", "TA0011"),
                        format!("{} names under {domain}, mean {mean_len:.0} characters", names.len()),
                    ));
                }
            }
        }
        let rrtype = d["rrtype"].as_str().unwrap_or("");
        let data_type = DATA_RECORD_TYPES.contains(&rrtype) || rrtype.starts_with("TYPE");
        if data_type && sub.len() >= o.dns_data_len {
            if let Some(names) =
                self.dns_data
                    .add(key, sub.to_string(), t, o.window_secs, o.dns_data_unique)
            {
                out.push(alert(
                    r,
                    SID_DNS_RECORDS,
                    &format!("IDS2 T1071.004 DNS tunnelling (long unique names queried for data-carrying records, {rrtype})"),
                    "policy-violation",
                    ("T1071.004", "DNS", "TA0011"),
                    format!("{} names of {}+ characters under {domain} for {rrtype}", names.len(), o.dns_data_len),
                ));
            }
        }
        out
    }
}

/// A TCP flow in which the client sent no data (a SYN answered by a reset, or a handshake
/// closed at once), or a UDP flow no service answered.
fn is_probe(r: &Value, proto: &str) -> bool {
    let f = &r["flow"];
    if r["app_proto"].as_str().is_some_and(|a| a != "failed") {
        return false;
    }
    match proto {
        "tcp" => {
            let ts = r["tcp"]["tcp_flags_ts"]
                .as_str()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or(0);
            // SYN seen, PSH never: no payload worth a push.
            ts & 0x02 != 0 && ts & 0x08 == 0 && f["pkts_toserver"].as_u64().unwrap_or(0) <= 4
        }
        _ => f["pkts_toclient"].as_u64().unwrap_or(0) == 0,
    }
}

/// Splits `name` into (subdomain, registered domain); `None` when it has no subdomain.
fn split_registered(name: &str) -> Option<(&str, &str)> {
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 3 {
        return None;
    }
    let n = labels.len();
    // `co.uk`, `com.au`, `ac.jp`…: a two-letter country code under a short second level.
    let keep = if labels[n - 1].len() == 2 && labels[n - 2].len() <= 3 {
        3
    } else {
        2
    };
    if n <= keep {
        return None;
    }
    let domain_len: usize = labels[n - keep..]
        .iter()
        .map(|l| l.len() + 1)
        .sum::<usize>()
        - 1;
    let split = name.len() - domain_len;
    Some((&name[..split - 1], &name[split..]))
}

/// Reverse lookups and DNS blocklist lookups: names under `in-addr.arpa`/`ip6.arpa`, or whose
/// first four labels are a (reversed) IPv4 address, as mail servers ask blocklists.
fn reverse_lookup(sub: &str, domain: &str) -> bool {
    if domain.ends_with(".arpa") || domain == "in-addr.arpa" {
        return true;
    }
    let labels: Vec<&str> = sub.split('.').take(4).collect();
    labels.len() == 4 && labels.iter().all(|l| l.parse::<u8>().is_ok())
}

/// Shannon entropy of `s`, bits per character (dots left out).
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes().filter(|b| *b != b'.') {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / f64::from(n);
            -p * p.log2()
        })
        .sum()
}

/// Seconds since the epoch of an EVE timestamp (`2024-04-03T13:17:03.662622+0000`).
fn seconds(ts: &str) -> Option<f64> {
    crate::eve::time_us(ts).map(|us| us as f64 / 1e6)
}

fn list<V: std::fmt::Display>(values: &[V], most: usize) -> String {
    let mut s: Vec<String> = values.iter().take(most).map(ToString::to_string).collect();
    if values.len() > most {
        s.push("…".into());
    }
    s.join(" ")
}

/// An EVE alert record for `record`, as Suricata would write it for a rule with this sid.
fn alert(
    record: &Value,
    sid: u32,
    signature: &str,
    category: &str,
    (technique, name, tactic): (&str, &str, &str),
    evidence: String,
) -> Value {
    let mut a = json!({
        "timestamp": record["timestamp"],
        "event_type": "alert",
        "src_ip": record["src_ip"],
        "dest_ip": record["dest_ip"],
        "proto": record["proto"],
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": sid,
            "rev": 1,
            "signature": signature,
            "category": match category {
                "attempted-recon" => "Attempted Information Leak",
                "attempted-user" => "Attempted User Privilege Gain",
                _ => "Potential Corporate Privacy Violation",
            },
            "severity": 2,
            "metadata": {
                "mitre_technique_id": [technique],
                "mitre_technique_name": [name],
                "mitre_tactic_id": [tactic],
                "ids2_detector": ["behaviour"],
                "ids2_evidence": [evidence],
            },
        },
    });
    for key in [
        "flow_id",
        "src_port",
        "dest_port",
        "community_id",
        "app_proto",
    ] {
        if !record[key].is_null() {
            a[key] = record[key].clone();
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(t: u32, dport: u64, dst: &str) -> Value {
        json!({
            "timestamp": format!("2024-04-03T13:{:02}:{:02}.000000+0000", t / 60, t % 60),
            "event_type": "flow", "flow_id": t, "src_ip": "10.0.0.9", "src_port": 40000,
            "dest_ip": dst, "dest_port": dport, "proto": "TCP",
            "flow": {"pkts_toserver": 1, "pkts_toclient": 1, "bytes_toserver": 60,
                     "bytes_toclient": 54,
                     "start": format!("2024-04-03T13:{:02}:{:02}.000000+0000", t / 60, t % 60),
                     "end": format!("2024-04-03T13:{:02}:{:02}.000000+0000", t / 60, t % 60)},
            "tcp": {"tcp_flags_ts": "02", "tcp_flags_tc": "14"}
        })
    }

    fn run(d: &mut BehaviourDetector, records: &[Value]) -> Vec<Value> {
        records.iter().flat_map(|r| d.observe(r)).collect()
    }

    #[test]
    fn timestamps_parse_as_eve_writes_them() {
        let a = seconds("2024-04-03T13:17:03.500000+0000").unwrap();
        let b = seconds("2024-04-03T14:17:03.500000+0100").unwrap();
        assert_eq!(a, b);
        assert_eq!(seconds("2024-04-03T13:17:04.500000+0000").unwrap() - a, 1.0);
        assert!(seconds("yesterday").is_none());
    }

    #[test]
    fn a_slow_scan_alerts_once_on_its_eighth_port() {
        let mut d = BehaviourDetector::new(Options::default());
        // One probe every 15 s (nmap -T1): far beyond any per-second threshold.
        let scan: Vec<Value> = (0..20)
            .map(|i| probe(i * 15, 1000 + u64::from(i), "10.0.0.1"))
            .collect();
        let alerts = run(&mut d, &scan);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(a["alert"]["signature_id"], SID_PORT_SCAN);
        assert_eq!(a["event_type"], "alert");
        assert_eq!(a["flow_id"], 105, "the eighth probe completes it");
        assert_eq!(a["alert"]["metadata"]["mitre_technique_id"][0], "T1046");
        assert!(SIDS.contains(&SID_PORT_SCAN));
    }

    #[test]
    fn repeated_probes_of_one_port_and_spread_out_probes_do_not_alert() {
        let mut d = BehaviourDetector::new(Options::default());
        // A client retrying one closed port every 10 s for ten minutes.
        let retries: Vec<Value> = (0..60).map(|i| probe(i * 10, 8080, "10.0.0.1")).collect();
        assert!(run(&mut d, &retries).is_empty());
        // Eight ports, but one every 90 s: never eight within the ten-minute window.
        let mut d = BehaviourDetector::new(Options::default());
        let slow: Vec<Value> = (0..8)
            .map(|i| probe(i * 90, 1000 + u64::from(i), "10.0.0.1"))
            .collect();
        assert!(run(&mut d, &slow).is_empty());
    }

    #[test]
    fn out_of_order_flows_count_by_start_time() {
        let mut d = BehaviourDetector::new(Options::default());
        let mut scan: Vec<Value> = (0..8)
            .map(|i| probe(i * 20, 2000 + u64::from(i), "10.0.0.1"))
            .collect();
        scan.reverse();
        assert_eq!(run(&mut d, &scan).len(), 1);
    }

    #[test]
    fn a_host_sweep_alerts() {
        let mut d = BehaviourDetector::new(Options::default());
        let sweep: Vec<Value> = (0..10)
            .map(|i| probe(i * 5, 445, &format!("10.0.1.{i}")))
            .collect();
        let alerts = run(&mut d, &sweep);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["alert"]["signature_id"], SID_HOST_SWEEP);
    }

    #[test]
    fn udp_traceroute_is_not_a_scan() {
        let mut d = BehaviourDetector::new(Options::default());
        let traceroute: Vec<Value> = (0..45)
            .map(|i| {
                let mut f = probe(i, 33_434 + u64::from(i), "192.0.2.7");
                f["proto"] = "UDP".into();
                f["flow"]["pkts_toclient"] = 0.into();
                f
            })
            .collect();
        assert!(run(&mut d, &traceroute).is_empty());
    }

    #[test]
    fn answers_to_multicast_queries_are_not_a_scan() {
        // LLMNR answers from 5355 to ten askers' ports; the same from an ephemeral port is.
        let answers = |sport: u64| -> Vec<Value> {
            (0..10)
                .map(|i| {
                    let mut f = probe(i, 50_000 + u64::from(i) * 7, "192.0.2.7");
                    f["proto"] = "UDP".into();
                    f["src_port"] = sport.into();
                    f["flow"]["pkts_toclient"] = 0.into();
                    f
                })
                .collect()
        };
        let mut d = BehaviourDetector::new(Options::default());
        assert!(run(&mut d, &answers(5355)).is_empty());
        let mut d = BehaviourDetector::new(Options::default());
        assert_eq!(run(&mut d, &answers(40_000)).len(), 1);
    }

    #[test]
    fn data_flows_are_not_probes() {
        let mut d = BehaviourDetector::new(Options::default());
        let web: Vec<Value> = (0..30)
            .map(|i| {
                let mut f = probe(i, 8000 + u64::from(i), "10.0.0.1");
                f["tcp"]["tcp_flags_ts"] = "1b".into();
                f["app_proto"] = "http".into();
                f
            })
            .collect();
        assert!(run(&mut d, &web).is_empty());
    }

    fn ssh_session(t: u32, secs: u32, to_client: u64) -> Value {
        let mut f = probe(t, 22, "10.0.0.1");
        f["app_proto"] = "ssh".into();
        f["tcp"]["tcp_flags_ts"] = "1b".into();
        f["flow"]["pkts_toclient"] = 12.into();
        f["flow"]["bytes_toclient"] = to_client.into();
        let end = t + secs;
        f["flow"]["end"] =
            format!("2024-04-03T13:{:02}:{:02}.000000+0000", end / 60, end % 60).into();
        f
    }

    #[test]
    fn short_ssh_sessions_are_a_brute_force_long_ones_are_not() {
        let mut d = BehaviourDetector::new(Options::default());
        // One refused session every 30 s: hydra -t 1 or a patient guesser; and four are not
        // enough (hydra with ten passwords opens five).
        let few: Vec<Value> = (0..4).map(|i| ssh_session(i * 30, 6, 4200)).collect();
        assert!(run(&mut d, &few).is_empty());
        let mut d = BehaviourDetector::new(Options::default());
        let guesses: Vec<Value> = (0..8).map(|i| ssh_session(i * 30, 6, 4200)).collect();
        let alerts = run(&mut d, &guesses);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["alert"]["signature_id"], SID_LOGIN_BRUTE_FORCE);
        let mut d = BehaviourDetector::new(Options::default());
        // An admin's sessions: long, or carrying a transfer.
        let work: Vec<Value> = (0..4)
            .map(|i| ssh_session(i * 30, 120, 4200))
            .chain((0..8).map(|i| ssh_session(200 + i * 30, 5, 2_000_000)))
            .collect();
        assert!(run(&mut d, &work).is_empty());
    }

    fn query(t: u32, name: &str, rrtype: &str) -> Value {
        json!({
            "timestamp": format!("2024-04-03T13:{:02}:{:02}.000000+0000", t / 60, t % 60),
            "event_type": "dns", "src_ip": "10.0.0.9", "src_port": 5353, "dest_ip": "10.0.0.53",
            "dest_port": 53, "proto": "UDP",
            "dns": {"type": "query", "id": 1, "rrname": name, "rrtype": rrtype}
        })
    }

    #[test]
    fn unique_encoded_subdomains_are_a_tunnel() {
        let mut d = BehaviourDetector::new(Options::default());
        // 24 base32 characters per query, under the 40-character label rule.
        let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut seed = 7u64;
        let tunnel: Vec<Value> = (0..40)
            .map(|i| {
                let label: String = (0..24)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        alphabet[(seed >> 59) as usize] as char
                    })
                    .collect();
                query(i, &format!("{label}.t.example.com"), "A")
            })
            .collect();
        let alerts = run(&mut d, &tunnel);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0]["alert"]["signature_id"], SID_DNS_UNIQUE);
    }

    #[test]
    fn ordinary_lookups_are_not_a_tunnel() {
        let mut d = BehaviourDetector::new(Options::default());
        let names = [
            "www", "mail", "api", "cdn", "static", "img", "login", "accounts",
        ];
        let browsing: Vec<Value> = (0..200)
            .map(|i| {
                query(
                    i,
                    &format!("{}.example.com", names[i as usize % names.len()]),
                    "A",
                )
            })
            .chain(
                (0..40).map(|i| query(300 + i, &format!("e{}.dscg.akamaiedge.net", 1000 + i), "A")),
            )
            .collect();
        assert!(run(&mut d, &browsing).is_empty());
    }

    #[test]
    fn data_record_queries_for_long_names_are_a_tunnel() {
        let mut d = BehaviourDetector::new(Options::default());
        let tunnel: Vec<Value> = (0..8)
            .map(|i| {
                query(
                    i * 3,
                    &format!(
                        "{:016x}{:08x}.x.example.org",
                        0xdead_beef_u64 * (i as u64 + 1),
                        i
                    ),
                    "NULL",
                )
            })
            .collect();
        let alerts = run(&mut d, &tunnel);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["alert"]["signature_id"], SID_DNS_RECORDS);
        // Short TXT names (SPF, DMARC) are everyday mail checks.
        let mut d = BehaviourDetector::new(Options::default());
        let mail: Vec<Value> = (0..30)
            .map(|i| query(i, &format!("_dmarc.d{i}.example.org"), "TXT"))
            .collect();
        assert!(run(&mut d, &mail).is_empty());
    }

    #[test]
    fn many_short_unique_subdomains_are_a_tunnel_blocklist_lookups_are_not() {
        let mut d = BehaviourDetector::new(Options::default());
        // 10-character base32 labels: under every length rule, but 120 names in two minutes.
        let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut seed = 11u64;
        let mut label = || -> String {
            (0..10)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    alphabet[(seed >> 59) as usize] as char
                })
                .collect()
        };
        let tunnel: Vec<Value> = (0..120)
            .map(|i| query(i, &format!("{}.t.example.net", label()), "A"))
            .collect();
        let sids: Vec<Value> = run(&mut d, &tunnel)
            .iter()
            .map(|a| a["alert"]["signature_id"].clone())
            .collect();
        assert_eq!(sids, vec![json!(SID_DNS_BULK)]);
        // A mail server asking a blocklist about 200 senders, and resolving their PTRs.
        let mut d = BehaviourDetector::new(Options::default());
        let mail: Vec<Value> = (0..200u32)
            .flat_map(|i| {
                let ip = format!("{}.{}.51.198", i % 250, i / 250 + 1);
                [
                    query(i, &format!("{ip}.zen.spamhaus.org"), "A"),
                    query(i, &format!("{ip}.in-addr.arpa"), "PTR"),
                ]
            })
            .collect();
        assert!(run(&mut d, &mail).is_empty());
        // 99 names is under the count.
        let mut d = BehaviourDetector::new(Options::default());
        let few: Vec<Value> = (0..99)
            .map(|i| query(i, &format!("host-{i:04}.example.org"), "A"))
            .collect();
        assert!(run(&mut d, &few).is_empty());
    }

    #[test]
    fn registered_domains_are_approximated() {
        assert_eq!(
            split_registered("a.b.example.com"),
            Some(("a.b", "example.com"))
        );
        assert_eq!(
            split_registered("x.example.co.uk"),
            Some(("x", "example.co.uk"))
        );
        assert_eq!(split_registered("example.com"), None);
        assert_eq!(split_registered("example.co.uk"), None);
        assert!(entropy("aaaa") < 0.01);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn the_key_table_is_bounded() {
        let mut w: Distinct<u32, u32> = Distinct::new();
        for k in 0..(MAX_KEYS as u32 + 10) {
            w.add(k, 1, f64::from(k), 600.0, 100);
        }
        assert!(w.seen.len() <= MAX_KEYS);
        assert!(w.seen.contains_key(&(MAX_KEYS as u32 + 9)));
    }
}
