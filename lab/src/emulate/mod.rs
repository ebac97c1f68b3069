//! Adversary emulator: replays ATT&CK techniques as real, bounded network traffic against a
//! target so the sensor's rules can be shown to fire (`ids2-lab emulate`, and the lab).
//!
//! A scenario file is a JSON array of entries `{"technique_id", "technique_name", "target"?,
//! "expect": {"sid"} | {"signature"}, …per-technique parameters}`. The whole file is parsed and
//! checked (known technique, known parameters, every count and rate under its hard cap, every
//! target allowed) before the first packet leaves. By default only loopback and the lab subnet
//! are allowed as targets; `--allow-target CIDR` widens that on purpose.

pub mod packets;
mod techniques;
pub mod tls;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use techniques::http_get;

/// The lab's LAN (attacker, victim): always an allowed target.
pub const LAB_SUBNET: &str = "10.77.0.0/24";
/// Hard cap on packets, connections or requests one scenario may send.
pub const MAX_SENDS_PER_SCENARIO: u32 = 5_000;
/// Hard cap on any scenario's send rate.
pub const MAX_RATE_PER_SEC: u32 = 2_000;
/// Hard cap on one scenario's run time; a scenario stops sending when it is reached.
pub const MAX_SCENARIO_SECS: u64 = 30;
/// Hard cap on the entries of one scenario file.
pub const MAX_SCENARIOS: usize = 64;
/// Shortest pause between beacons.
pub const MIN_INTERVAL_MS: u64 = 50;
/// Longest connect/read timeout.
pub const MAX_TIMEOUT_MS: u64 = 5_000;
/// Largest ICMP payload (keeps one echo inside a 1500-byte MTU).
pub const MAX_ICMP_PAYLOAD: usize = 1_400;
/// How long the lab waits for a scenario's detection, from its start, unless the entry says.
pub const DEFAULT_DETECT_WITHIN_SECS: u64 = 5;
/// Longest detection window an entry may ask for.
pub const MAX_DETECT_WITHIN_SECS: u64 = 120;
/// Most password guesses an SSH brute force makes per connection (OpenSSH's MaxAuthTries is 6).
pub const MAX_GUESSES_PER_CONNECTION: u32 = 6;

/// What the sensor should raise for a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The rule's sid.
    #[serde(default)]
    pub sid: Option<u32>,
    /// Or the rule's msg, exactly.
    #[serde(default)]
    pub signature: Option<String>,
}

impl Expect {
    /// True when an alert with this sid and signature is the expected one.
    pub fn matches(&self, sid: u32, signature: &str) -> bool {
        match (&self.sid, &self.signature) {
            (Some(want), _) => *want == sid,
            (None, Some(want)) => want == signature,
            (None, None) => false,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.sid, &self.signature) {
            (Some(sid), _) => write!(f, "sid {sid}"),
            (None, Some(sig)) => write!(f, "\"{sig}\""),
            (None, None) => f.write_str("-"),
        }
    }
}

/// One entry of a scenario file, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// ATT&CK technique id, e.g. `T1046`.
    pub technique_id: String,
    /// A human name for the entry.
    pub technique_name: String,
    /// The entry's own target; `None` uses the command's `--target`.
    pub target: Option<IpAddr>,
    /// The detection the sensor should raise.
    pub expect: Expect,
    /// How long the lab waits for it, from the scenario's start ([`DEFAULT_DETECT_WITHIN_SECS`]
    /// unless the entry's `detect_within_secs` says otherwise: a slow scenario sends for longer).
    pub detect_within: Duration,
    /// What to send.
    pub technique: Technique,
}

/// The traffic of one scenario, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Technique {
    /// T1046: TCP connect or UDP port scan.
    PortScan(PortScan),
    /// T1110: password guessing on HTTP basic auth or a banner login.
    BruteForce(BruteForce),
    /// T1071.001: periodic HTTP check-ins with an implant's user agent.
    HttpBeacon(HttpBeacon),
    /// T1071.004: data encoded in long random DNS labels.
    DnsTunnel(DnsTunnel),
    /// T1190: exploit strings in HTTP requests.
    Exploit(Exploit),
    /// T1048: data in large ICMP echo payloads (raw socket).
    IcmpExfil(IcmpExfil),
    /// T1498: SYN flood (raw socket).
    SynFlood(SynFlood),
    /// T1595: vulnerability-scanner probes.
    ActiveScan(ActiveScan),
    /// T1573.002: TLS handshakes from an implant's own TLS stack (a fixed JA3, an optional SNI).
    TlsHello(TlsHello),
}

/// Scan protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanProtocol {
    /// TCP connect scan.
    Tcp,
    /// One empty datagram per port.
    Udp,
}

/// A port or an inclusive range `"a-b"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    /// One port.
    One(u16),
    /// A range written `"1-1024"`.
    Range(String),
}

/// T1046 parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortScan {
    /// `tcp` (connect scan) or `udp`.
    #[serde(default = "default_scan_protocol")]
    pub protocol: ScanProtocol,
    /// Ports to probe.
    pub ports: Vec<PortSpec>,
    /// Probes per second.
    #[serde(default = "default_scan_rate")]
    pub rate_per_sec: u32,
    /// Pause between probes instead of `rate_per_sec`: a low-and-slow scan (one port every few
    /// seconds, slower than any 5-second threshold counts).
    #[serde(default)]
    pub interval_ms: Option<u64>,
    /// Connect timeout per TCP port.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// How T1110 logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginService {
    /// HTTP basic auth on `path`.
    HttpBasic,
    /// A line-based banner login (FTP style `USER`/`PASS`).
    Banner,
    /// SSH password logins with Debian's OpenSSH client (`ssh`), against a real sshd.
    Ssh,
}

/// T1110 parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BruteForce {
    /// `http_basic`, `banner` or `ssh`.
    pub service: LoginService,
    /// Target port (80 for HTTP, 21 for a banner login, 22 for SSH when omitted).
    #[serde(default)]
    pub port: Option<u16>,
    /// Protected HTTP path.
    #[serde(default = "default_admin_path")]
    pub path: String,
    /// User name tried with each password.
    #[serde(default = "default_username")]
    pub username: String,
    /// Login attempts (password guesses).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Guesses per SSH connection (1 to 6): guessers reconnect after one to a few tries to stay
    /// under a server's MaxAuthTries. SSH only.
    #[serde(default = "default_one")]
    pub guesses_per_connection: u32,
    /// Connections (SSH) or attempts per second.
    #[serde(default = "default_login_rate")]
    pub rate_per_sec: u32,
    /// Connect/read timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// T1071.001 parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpBeacon {
    /// Target port.
    #[serde(default = "default_http_port")]
    pub port: u16,
    /// Check-in path.
    #[serde(default = "default_beacon_path")]
    pub path: String,
    /// The implant's user agent.
    #[serde(default = "default_beacon_user_agent")]
    pub user_agent: String,
    /// Check-ins.
    #[serde(default = "default_beacons")]
    pub count: u32,
    /// Pause between check-ins.
    #[serde(default = "default_beacon_interval_ms")]
    pub interval_ms: u64,
    /// Connect/read timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// DNS query type for tunnelling: the record types tunnels (iodine, dnscat2, dns2tcp) ask for
/// to carry data downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum QueryType {
    /// Address query.
    A,
    /// Text query (the usual downstream channel).
    Txt,
    /// NULL record (type 10): arbitrary bytes, iodine's default.
    Null,
    /// Canonical name: an encoded name comes back.
    Cname,
    /// Mail exchanger: an encoded name comes back.
    Mx,
    /// Private-use type 65399, iodine's `-T PRIVATE`.
    Private,
}

impl QueryType {
    /// The record type's number.
    pub fn code(self) -> u16 {
        match self {
            QueryType::A => packets::QTYPE_A,
            QueryType::Txt => packets::QTYPE_TXT,
            QueryType::Null => 10,
            QueryType::Cname => 5,
            QueryType::Mx => 15,
            QueryType::Private => 65_399,
        }
    }
}

/// How a tunnel encodes its data into labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelEncoding {
    /// Lower-case base32 (`a-z2-7`), as iodine and dns2tcp send by default.
    Base32,
    /// base64 (`A-Za-z0-9+/`, `=` padding), as iodine's `-O base64` and DNSExfiltrator.
    Base64,
    /// Hex digits, as dnscat2.
    Hex,
}

/// T1071.004 parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsTunnel {
    /// Resolver port.
    #[serde(default = "default_dns_port")]
    pub port: u16,
    /// The tunnel's domain; each query is `<random label>.<domain>`.
    #[serde(default = "default_tunnel_domain")]
    pub domain: String,
    /// Queries.
    #[serde(default = "default_tunnel_queries")]
    pub count: u32,
    /// Length of the random label (at most 63).
    #[serde(default = "default_label_len")]
    pub label_len: usize,
    /// `TXT`, `A`, `NULL`, `CNAME`, `MX` or `PRIVATE`.
    #[serde(default = "default_query_type")]
    pub query_type: QueryType,
    /// How the data is encoded: `base32`, `base64` or `hex`.
    #[serde(default = "default_label_encoding")]
    pub encoding: LabelEncoding,
    /// Queries per second.
    #[serde(default = "default_login_rate")]
    pub rate_per_sec: u32,
}

/// Which exploit string T1190 sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExploitKind {
    /// `UNION SELECT` in a query parameter.
    SqlInjection,
    /// `../` sequences reaching for /etc/passwd.
    PathTraversal,
    /// A Log4Shell `${jndi:ldap://…}` lookup in request headers.
    Jndi,
}

/// T1190 parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exploit {
    /// Target port.
    #[serde(default = "default_http_port")]
    pub port: u16,
    /// `sql_injection`, `path_traversal` or `jndi`.
    pub exploit: ExploitKind,
    /// Requests.
    #[serde(default = "default_one")]
    pub count: u32,
    /// Connect/read timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// T1048 parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpExfil {
    /// Echo requests.
    #[serde(default = "default_exfil_count")]
    pub count: u32,
    /// Payload bytes per echo (at most 1400).
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: usize,
    /// Echoes per second.
    #[serde(default = "default_login_rate")]
    pub rate_per_sec: u32,
}

/// T1498 parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynFlood {
    /// Target port.
    #[serde(default = "default_http_port")]
    pub port: u16,
    /// SYNs.
    #[serde(default = "default_flood_count")]
    pub count: u32,
    /// SYNs per second.
    #[serde(default = "default_flood_rate")]
    pub rate_per_sec: u32,
}

/// T1595 parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveScan {
    /// Target port.
    #[serde(default = "default_http_port")]
    pub port: u16,
    /// The scanner's user agent.
    #[serde(default = "default_scanner_user_agent")]
    pub user_agent: String,
    /// Paths probed, one request each.
    #[serde(default = "default_probe_paths")]
    pub paths: Vec<String>,
    /// Requests per second.
    #[serde(default = "default_login_rate")]
    pub rate_per_sec: u32,
    /// Connect/read timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// T1573.002 parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsHello {
    /// Target port.
    #[serde(default = "default_tls_port")]
    pub port: u16,
    /// The server name the hello asks for (none: no `server_name` extension, which changes the
    /// JA3; see [`tls::ja3_hash`]).
    #[serde(default)]
    pub sni: Option<String>,
    /// Handshakes, one connection each.
    #[serde(default = "default_one")]
    pub count: u32,
    /// Handshakes per second.
    #[serde(default = "default_login_rate")]
    pub rate_per_sec: u32,
    /// Connect/read timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_scan_protocol() -> ScanProtocol {
    ScanProtocol::Tcp
}
fn default_scan_rate() -> u32 {
    200
}
fn default_timeout_ms() -> u64 {
    500
}
fn default_admin_path() -> String {
    "/admin".into()
}
fn default_username() -> String {
    "admin".into()
}
fn default_attempts() -> u32 {
    10
}
fn default_login_rate() -> u32 {
    20
}
fn default_http_port() -> u16 {
    80
}
fn default_tls_port() -> u16 {
    443
}
fn default_beacon_path() -> String {
    "/api/v1/check-in".into()
}
/// Internet Explorer 6 on Windows XP: the default of many implants, no real browser today.
fn default_beacon_user_agent() -> String {
    "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)".into()
}
fn default_beacons() -> u32 {
    4
}
fn default_beacon_interval_ms() -> u64 {
    250
}
fn default_dns_port() -> u16 {
    53
}
fn default_tunnel_domain() -> String {
    "t.exfil.lab".into()
}
fn default_tunnel_queries() -> u32 {
    5
}
fn default_label_len() -> usize {
    52
}
fn default_query_type() -> QueryType {
    QueryType::Txt
}
fn default_label_encoding() -> LabelEncoding {
    LabelEncoding::Base32
}
fn default_one() -> u32 {
    1
}
fn default_exfil_count() -> u32 {
    5
}
fn default_payload_bytes() -> usize {
    1_000
}
fn default_flood_count() -> u32 {
    600
}
fn default_flood_rate() -> u32 {
    1_000
}
fn default_scanner_user_agent() -> String {
    "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000001)".into()
}
fn default_probe_paths() -> Vec<String> {
    ["/", "/.env", "/.git/config", "/cgi-bin/test.cgi"]
        .map(String::from)
        .to_vec()
}

/// The fields every entry has; the rest are the technique's parameters.
#[derive(Deserialize)]
struct Common {
    technique_id: String,
    technique_name: String,
    #[serde(default)]
    target: Option<IpAddr>,
    expect: Expect,
    #[serde(default)]
    detect_within_secs: Option<u64>,
    #[serde(flatten)]
    params: Map<String, Value>,
}

/// Why a scenario file was refused or a scenario failed.
#[derive(Debug, thiserror::Error)]
pub enum EmulateError {
    /// The file could not be read.
    #[error("cannot read scenario file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a JSON array of objects.
    #[error("{origin}: not a JSON array of scenario objects: {message}")]
    Syntax {
        /// The file (or `inline`).
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// An entry is invalid; nothing was sent.
    #[error("{origin}: entry {index} ({technique}): {message}")]
    Entry {
        /// The file.
        origin: String,
        /// 0-based index in the array.
        index: usize,
        /// Its technique id, or `?`.
        technique: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// A target outside the allowed networks; nothing was sent.
    #[error(
        "entry {index} ({technique}): target {target} is outside the allowed networks ({allowed}); \
         pass --allow-target {target}/32 if you own it and mean it"
    )]
    TargetRefused {
        /// 0-based index.
        index: usize,
        /// Technique id.
        technique: String,
        /// The refused address.
        target: IpAddr,
        /// The allowed networks.
        allowed: String,
    },
    /// An entry has no target and no `--target` was given.
    #[error("entry {index} ({technique}) has no \"target\" and no --target was given")]
    NoTarget {
        /// 0-based index.
        index: usize,
        /// Technique id.
        technique: String,
    },
    /// Sending failed.
    #[error("entry {index} ({technique}): cannot {action}")]
    Send {
        /// 0-based index.
        index: usize,
        /// Technique id.
        technique: String,
        /// What failed, e.g. `open a raw socket (needs root or CAP_NET_RAW)`.
        action: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl EmulateError {
    /// True when the operator's input is at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, EmulateError::Send { .. } | EmulateError::Read { .. })
    }
}

/// Reads and checks a scenario file.
pub fn load(path: &Path) -> Result<Vec<Scenario>, EmulateError> {
    let text = std::fs::read_to_string(path).map_err(|source| EmulateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and checks scenario JSON; `origin` names it in messages.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Scenario>, EmulateError> {
    let syntax = |message: String| EmulateError::Syntax {
        origin: origin.to_string(),
        message,
    };
    let entries: Vec<Value> = serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?;
    if entries.is_empty() {
        return Err(syntax("the array is empty".into()));
    }
    if entries.len() > MAX_SCENARIOS {
        return Err(syntax(format!(
            "{} entries; at most {MAX_SCENARIOS} are allowed",
            entries.len()
        )));
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let technique = entry
                .get("technique_id")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            parse_entry(entry).map_err(|message| EmulateError::Entry {
                origin: origin.to_string(),
                index,
                technique,
                message,
            })
        })
        .collect()
}

fn parse_entry(entry: Value) -> Result<Scenario, String> {
    let common: Common = from_value(entry)?;
    match (&common.expect.sid, &common.expect.signature) {
        (Some(_), Some(_)) | (None, None) => {
            return Err("expect: give exactly one of \"sid\" or \"signature\"".into())
        }
        _ => {}
    }
    let params = Value::Object(common.params);
    let technique = match common.technique_id.as_str() {
        "T1046" => Technique::PortScan(from_value(params)?),
        "T1110" => Technique::BruteForce(from_value(params)?),
        "T1071.001" => Technique::HttpBeacon(from_value(params)?),
        "T1071.004" => Technique::DnsTunnel(from_value(params)?),
        "T1190" => Technique::Exploit(from_value(params)?),
        "T1048" => Technique::IcmpExfil(from_value(params)?),
        "T1498" => Technique::SynFlood(from_value(params)?),
        "T1595" => Technique::ActiveScan(from_value(params)?),
        "T1573.002" => Technique::TlsHello(from_value(params)?),
        other => {
            return Err(format!(
                "unknown technique_id `{other}`; supported: T1046, T1110, T1071.001, T1071.004, \
                 T1190, T1048, T1498, T1595, T1573.002"
            ))
        }
    };
    check_bounds(&technique)?;
    let detect_within = common
        .detect_within_secs
        .unwrap_or(DEFAULT_DETECT_WITHIN_SECS);
    within(
        "detect_within_secs",
        detect_within,
        1,
        MAX_DETECT_WITHIN_SECS,
    )?;
    Ok(Scenario {
        technique_id: common.technique_id,
        technique_name: common.technique_name,
        target: common.target,
        expect: common.expect,
        detect_within: Duration::from_secs(detect_within),
        technique,
    })
}

fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

fn within(name: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!("{name} is {value}; expected {min} to {max}"))
    }
}

/// Every count, rate and size against its hard cap: the emulator never runs unbounded.
fn check_bounds(t: &Technique) -> Result<(), String> {
    let sends = |n: u32| within("count", n.into(), 1, MAX_SENDS_PER_SCENARIO.into());
    let rate = |r: u32| within("rate_per_sec", r.into(), 1, MAX_RATE_PER_SEC.into());
    let timeout = |t: u64| within("timeout_ms", t, 1, MAX_TIMEOUT_MS);
    match t {
        Technique::PortScan(s) => {
            let ports = expand_ports(&s.ports)?;
            within(
                "number of ports",
                ports.len() as u64,
                1,
                MAX_SENDS_PER_SCENARIO.into(),
            )?;
            rate(s.rate_per_sec)?;
            if let Some(interval) = s.interval_ms {
                // The whole scan must fit in a scenario's time, or its last ports never go.
                let most = MAX_SCENARIO_SECS * 1000 / ports.len() as u64;
                within("interval_ms", interval, MIN_INTERVAL_MS, most).map_err(|m| {
                    format!("{m} ({} ports within {MAX_SCENARIO_SECS} s)", ports.len())
                })?;
            }
            timeout(s.timeout_ms)
        }
        Technique::BruteForce(b) => {
            within("attempts", b.attempts.into(), 1, 100)?;
            within("rate_per_sec", b.rate_per_sec.into(), 1, 100)?;
            within(
                "guesses_per_connection",
                b.guesses_per_connection.into(),
                1,
                MAX_GUESSES_PER_CONNECTION.into(),
            )?;
            if b.guesses_per_connection > 1 && b.service != LoginService::Ssh {
                return Err("guesses_per_connection applies to service `ssh` only".into());
            }
            http_path(&b.path)?;
            header_value("username", &b.username)?;
            timeout(b.timeout_ms)
        }
        Technique::HttpBeacon(b) => {
            within("count", b.count.into(), 1, 100)?;
            within(
                "interval_ms",
                b.interval_ms,
                MIN_INTERVAL_MS,
                MAX_SCENARIO_SECS * 1000 / u64::from(b.count.max(1)),
            )?;
            http_path(&b.path)?;
            header_value("user_agent", &b.user_agent)?;
            timeout(b.timeout_ms)
        }
        Technique::DnsTunnel(d) => {
            within("count", d.count.into(), 1, 500)?;
            within("label_len", d.label_len as u64, 1, 63)?;
            if d.encoding == LabelEncoding::Base64 && d.label_len < 4 {
                return Err("label_len is under 4: one base64 group needs 4 characters".into());
            }
            rate(d.rate_per_sec)?;
            if d.domain.len() + d.label_len < 250 {
                dns_name("domain", &d.domain)
            } else {
                Err(format!(
                    "domain `{}` is too long: with the random label it must stay under 250 \
                     characters",
                    d.domain
                ))
            }
        }
        Technique::Exploit(e) => {
            within("count", e.count.into(), 1, 100)?;
            timeout(e.timeout_ms)
        }
        Technique::IcmpExfil(x) => {
            sends(x.count)?;
            rate(x.rate_per_sec)?;
            within(
                "payload_bytes",
                x.payload_bytes as u64,
                1,
                MAX_ICMP_PAYLOAD as u64,
            )
        }
        Technique::SynFlood(f) => {
            sends(f.count)?;
            rate(f.rate_per_sec)
        }
        Technique::ActiveScan(a) => {
            within("paths", a.paths.len() as u64, 1, 100)?;
            a.paths.iter().try_for_each(|p| http_path(p))?;
            header_value("user_agent", &a.user_agent)?;
            within("rate_per_sec", a.rate_per_sec.into(), 1, 100)?;
            timeout(a.timeout_ms)
        }
        Technique::TlsHello(t) => {
            within("count", t.count.into(), 1, 100)?;
            within("rate_per_sec", t.rate_per_sec.into(), 1, 100)?;
            if let Some(sni) = &t.sni {
                dns_name("sni", sni)?;
            }
            timeout(t.timeout_ms)
        }
    }
}

/// A DNS name of letters, digits and hyphens in labels of 1–63, at most 253 characters.
fn dns_name(key: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{key} `{name}` is not a DNS name of letters, digits and hyphens (labels of 1–63)"
        ))
    }
}

fn http_path(p: &str) -> Result<(), String> {
    if p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!(
            "path `{p}` must start with / and hold printable ASCII without spaces"
        ))
    }
}

fn header_value(name: &str, v: &str) -> Result<(), String> {
    if v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!("{name} must be printable ASCII (no line breaks)"))
    }
}

/// The ports of a scan, in order, without duplicates.
pub fn expand_ports(specs: &[PortSpec]) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for spec in specs {
        let (lo, hi) = match spec {
            PortSpec::One(p) => (*p, *p),
            PortSpec::Range(r) => {
                let parsed = r
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
                match parsed {
                    Some((a, b)) if a <= b => (a, b),
                    _ => {
                        return Err(format!(
                            "ports: `{r}` is not a port or a range like \"1-1024\""
                        ))
                    }
                }
            }
        };
        if lo == 0 {
            return Err("ports: port 0 cannot be scanned".into());
        }
        if usize::from(hi - lo) >= MAX_SENDS_PER_SCENARIO as usize {
            return Err(format!(
                "ports: range {lo}-{hi} is longer than {MAX_SENDS_PER_SCENARIO}"
            ));
        }
        for p in lo..=hi {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
    }
    Ok(ports)
}

/// Which targets the emulator may send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPolicy {
    allowed: Vec<IpNet>,
}

impl TargetPolicy {
    /// Loopback and the lab subnet, plus `extra`.
    pub fn new(extra: &[IpNet]) -> Self {
        let mut allowed: Vec<IpNet> = ["127.0.0.0/8", "::1/128", LAB_SUBNET]
            .iter()
            .map(|n| n.parse().expect("built-in networks parse"))
            .collect();
        allowed.extend_from_slice(extra);
        Self { allowed }
    }

    /// True when `ip` is inside an allowed network.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|n| n.contains(&ip))
    }

    fn describe(&self) -> String {
        self.allowed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Resolves each scenario's target and checks it against the policy; all or nothing.
pub fn resolve_targets(
    scenarios: &[Scenario],
    default_target: Option<IpAddr>,
    policy: &TargetPolicy,
) -> Result<Vec<IpAddr>, EmulateError> {
    scenarios
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let target = s
                .target
                .or(default_target)
                .ok_or_else(|| EmulateError::NoTarget {
                    index,
                    technique: s.technique_id.clone(),
                })?;
            if !policy.allows(target) {
                return Err(EmulateError::TargetRefused {
                    index,
                    technique: s.technique_id.clone(),
                    target,
                    allowed: policy.describe(),
                });
            }
            if matches!(
                s.technique,
                Technique::IcmpExfil(_) | Technique::SynFlood(_)
            ) && !target.is_ipv4()
            {
                return Err(EmulateError::Entry {
                    origin: "scenarios".into(),
                    index,
                    technique: s.technique_id.clone(),
                    message: format!("{target}: raw-socket techniques support IPv4 targets only"),
                });
            }
            Ok(target)
        })
        .collect()
}

/// What one scenario sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Packets, connections or requests sent.
    pub count: u64,
    /// What `count` counts.
    pub unit: &'static str,
    /// Sends that failed (refused connections are answers, not failures).
    pub failures: u64,
    /// Wall time the scenario took.
    pub elapsed: Duration,
}

/// Sends one scenario's traffic to `target` (already allowed by [`resolve_targets`]).
pub fn run(index: usize, s: &Scenario, target: IpAddr) -> Result<Sent, EmulateError> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(MAX_SCENARIO_SECS);
    let (count, failures, unit) =
        techniques::send(&s.technique, target, deadline).map_err(|(action, source)| {
            EmulateError::Send {
                index,
                technique: s.technique_id.clone(),
                action,
                source,
            }
        })?;
    Ok(Sent {
        count,
        unit,
        failures,
        elapsed: start.elapsed(),
    })
}

/// `ids2-lab emulate`: loads, checks every entry and target, then runs the scenarios in order,
/// printing one line per scenario. Returns the printed report.
pub fn run_file(
    path: &Path,
    default_target: Option<IpAddr>,
    extra_allowed: &[IpNet],
) -> Result<String, EmulateError> {
    let scenarios = load(path)?;
    let targets = resolve_targets(
        &scenarios,
        default_target,
        &TargetPolicy::new(extra_allowed),
    )?;
    let mut report = format!(
        "{:<10} {:<34} {:<16} {:<14} {:>10} {:>9}\n",
        "technique", "name", "target", "expect", "sent", "time"
    );
    for (index, (s, target)) in scenarios.iter().zip(&targets).enumerate() {
        let sent = run(index, s, *target)?;
        let line = format!(
            "{:<10} {:<34} {:<16} {:<14} {:>10} {:>7}ms{}",
            s.technique_id,
            truncate(&s.technique_name, 34),
            target.to_string(),
            s.expect.to_string(),
            format!("{} {}", sent.count, sent.unit),
            sent.elapsed.as_millis(),
            if sent.failures > 0 {
                format!("  ({} failed)", sent.failures)
            } else {
                String::new()
            }
        );
        println!("{line}");
        report.push_str(&line);
        report.push('\n');
    }
    Ok(report)
}

pub(crate) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(entry: &str) -> Result<Scenario, EmulateError> {
        parse(&format!("[{entry}]"), "t.json").map(|mut v| v.remove(0))
    }

    fn entry_message(entry: &str) -> String {
        match one(entry) {
            Err(EmulateError::Entry { index, message, .. }) => {
                assert_eq!(index, 0);
                message
            }
            other => panic!("expected an entry error, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_scan_with_defaults() {
        let s = one(r#"{"technique_id":"T1046","technique_name":"Port Scan","ports":[22,"80-82"],"expect":{"sid":9200010}}"#).unwrap();
        let Technique::PortScan(p) = &s.technique else {
            panic!("{s:?}")
        };
        assert_eq!(p.protocol, ScanProtocol::Tcp);
        assert_eq!(expand_ports(&p.ports).unwrap(), vec![22, 80, 81, 82]);
        assert!(s.expect.matches(9200010, "anything"));
        assert!(!s.expect.matches(9200011, "anything"));
    }

    #[test]
    fn unknown_parameter_named_with_entry_index() {
        let text = r#"[{"technique_id":"T1498","technique_name":"ok","expect":{"sid":1}},
            {"technique_id":"T1498","technique_name":"flood","expect":{"sid":1},"rate":5}]"#;
        match parse(text, "f.json") {
            Err(e @ EmulateError::Entry { index: 1, .. }) => {
                let msg = e.to_string();
                assert!(msg.starts_with("f.json: entry 1 (T1498)"), "{msg}");
                assert!(msg.contains("unknown field `rate`"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn caps_are_enforced() {
        let m = entry_message(
            r#"{"technique_id":"T1498","technique_name":"f","expect":{"sid":1},"count":1000000}"#,
        );
        assert!(m.contains("count is 1000000; expected 1 to 5000"), "{m}");
        let m = entry_message(
            r#"{"technique_id":"T1048","technique_name":"x","expect":{"sid":1},"payload_bytes":9000}"#,
        );
        assert!(m.contains("payload_bytes"), "{m}");
        let m = entry_message(
            r#"{"technique_id":"T1046","technique_name":"s","expect":{"sid":1},"ports":["1-65535"]}"#,
        );
        assert!(m.contains("longer than 5000"), "{m}");
    }

    #[test]
    fn expect_needs_exactly_one_key_and_technique_must_be_known() {
        let m = entry_message(r#"{"technique_id":"T1498","technique_name":"f","expect":{}}"#);
        assert!(m.contains("exactly one"), "{m}");
        let m =
            entry_message(r#"{"technique_id":"T9999","technique_name":"f","expect":{"sid":1}}"#);
        assert!(m.contains("unknown technique_id `T9999`"), "{m}");
        let m = entry_message(
            r#"{"technique_id":"T1190","technique_name":"f","expect":{"sid":1},"exploit":"xss"}"#,
        );
        assert!(m.contains("exploit") && m.contains("sql_injection"), "{m}");
    }

    #[test]
    fn targets_outside_loopback_and_lab_are_refused_unless_allowed() {
        let s = parse(
            r#"[{"technique_id":"T1498","technique_name":"f","expect":{"sid":1}},
                {"technique_id":"T1498","technique_name":"f","expect":{"sid":1},"target":"10.77.0.20"}]"#,
            "t",
        )
        .unwrap();
        let outside: IpAddr = "192.0.2.7".parse().unwrap();
        match resolve_targets(&s, Some(outside), &TargetPolicy::new(&[])) {
            Err(EmulateError::TargetRefused {
                index: 0, target, ..
            }) => {
                assert_eq!(target, outside)
            }
            other => panic!("{other:?}"),
        }
        let widened = TargetPolicy::new(&["192.0.2.0/24".parse().unwrap()]);
        let t = resolve_targets(&s, Some(outside), &widened).unwrap();
        assert_eq!(t, vec![outside, "10.77.0.20".parse::<IpAddr>().unwrap()]);
        assert!(matches!(
            resolve_targets(&s, None, &widened),
            Err(EmulateError::NoTarget { index: 0, .. })
        ));
    }

    #[test]
    fn the_default_scenarios_parse() {
        let s = parse(crate::DEFAULT_SCENARIOS, "default.json").unwrap();
        let ids: Vec<&str> = s.iter().map(|s| s.technique_id.as_str()).collect();
        for want in [
            "T1046",
            "T1110",
            "T1071.001",
            "T1071.004",
            "T1190",
            "T1048",
            "T1498",
            "T1595",
            "T1573.002",
        ] {
            assert!(ids.contains(&want), "{want} missing from {ids:?}");
        }
    }
}
