//! EVE `flow` record → a fixed vector of numeric features for the forest.
//!
//! Counts are log-scaled (`ln(1 + x)`) so a 10 kB and a 10 MB flow are a few units apart rather
//! than six orders of magnitude: an Isolation Forest picks split points uniformly between a
//! feature's minimum and maximum, so a raw byte count would spend nearly every split on the
//! largest flows. Categorical fields become small integers or one-hot flags.
//!
//! Two features look beyond the flow itself: how many flows the same source started in the
//! minute around this one, and to how many distinct destination ports. A port scan or a SYN
//! flood is a crowd of individually unremarkable flows; these make the crowd visible. They
//! depend on the order flows are seen, so an [`Extractor`] carries that state: one per stream.
//!
//! Deliberately left out: `flow.reason` (how Suricata ended the flow — timeout, forced,
//! shutdown — an artefact of the capture run, not of the traffic: an offline `suricata -r`
//! ends every open flow with `shutdown`, a live sensor with `timeout`), `flow.alerted` (it
//! would make the model learn the signatures), and addresses (a baseline of addresses is an
//! allowlist, not a model of behaviour).

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

/// Number of features in a vector.
pub const N_FEATURES: usize = 23;

/// Seconds either side of a flow's start in which the same source's flows are counted.
pub const SOURCE_WINDOW_SECS: f64 = 60.0;
/// Most recent flows remembered per source (bounds memory and time per flow).
pub const SOURCE_HISTORY: usize = 512;
/// Most sources remembered; past it, sources idle for a window are forgotten first.
pub const SOURCE_LIMIT: usize = 16_384;

/// One flow's features, in [`FEATURES`] order.
pub type FeatureVector = [f32; N_FEATURES];

/// Feature names, in vector order; persisted with every model so a model made for another
/// feature list is refused rather than misread.
pub const FEATURES: [&str; N_FEATURES] = [
    // ln(1 + flow.bytes_toserver)
    "bytes_toserver_log",
    // ln(1 + flow.bytes_toclient)
    "bytes_toclient_log",
    // ln(1 + flow.pkts_toserver)
    "pkts_toserver_log",
    // ln(1 + flow.pkts_toclient)
    "pkts_toclient_log",
    // ln(1 + seconds from flow.start to flow.end), flow.age when the times are missing
    "duration_log",
    // ln(1 + bytes_toserver / pkts_toserver)
    "bytes_per_pkt_toserver_log",
    // ln(1 + bytes_toclient / pkts_toclient)
    "bytes_per_pkt_toclient_log",
    // pkts_toclient / (pkts_toserver + pkts_toclient): 0 for one-way flows
    "pkts_toclient_ratio",
    // destination port: 0 none (ICMP, other), 1 well-known (<1024), 2 registered, 3 dynamic
    "dest_port_class",
    // proto == TCP
    "proto_tcp",
    // proto == UDP
    "proto_udp",
    // proto == ICMP or IPv6-ICMP
    "proto_icmp",
    // app_proto names a parsed protocol (not absent, `failed` or `unknown`)
    "app_proto_known",
    // TCP flags seen to the server (tcp.tcp_flags_ts) and to the client (tcp.tcp_flags_tc),
    // one 0/1 feature each: a scan's SYN answered by RST, a flood's unanswered SYN or a
    // half-closed exfiltration differ from ordinary sessions mostly here.
    "syn_ts",
    "syn_tc",
    "rst_ts",
    "rst_tc",
    "fin_ts",
    "fin_tc",
    // PSH seen in either direction: the flow carried application data
    "psh",
    // tcp.state (TCP) or flow.state: 0 new, 1 established, 2 closed, 3 anything else
    "state",
    // ln(1 + flows from the same src_ip starting within SOURCE_WINDOW_SECS, seen earlier)
    "src_flows_window_log",
    // ln(1 + distinct dest_port values among those flows)
    "src_dest_ports_window_log",
];

/// Turns a stream of EVE records into feature vectors, remembering each source's recent
/// flows for the two per-source features.
#[derive(Debug, Default)]
pub struct Extractor {
    sources: HashMap<String, VecDeque<(f64, u16)>>,
    /// Reused for the distinct-port count, so a flow allocates nothing once its source is known.
    ports: Vec<u16>,
}

impl Extractor {
    /// An extractor that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The features of an EVE record, or `None` when it is not a `flow` record.
    pub fn extract(&mut self, eve: &Value) -> Option<FeatureVector> {
        let mut x = flow_features(eve)?;
        let start = eve
            .get("flow")
            .and_then(|f| f.get("start"))
            .and_then(Value::as_str)
            .or_else(|| eve.get("timestamp").and_then(Value::as_str))
            .and_then(parse_ts);
        let src = eve.get("src_ip").and_then(Value::as_str);
        let (Some(start), Some(src)) = (start, src) else {
            return Some(x);
        };
        let port = eve.get("dest_port").and_then(Value::as_u64).unwrap_or(0) as u16;
        if self.sources.len() >= SOURCE_LIMIT && !self.sources.contains_key(src) {
            self.sources.retain(|_, h| {
                h.back()
                    .is_some_and(|(t, _)| (start - t).abs() <= SOURCE_WINDOW_SECS)
            });
            if self.sources.len() >= SOURCE_LIMIT {
                self.sources.clear();
            }
        }
        if !self.sources.contains_key(src) {
            self.sources.insert(src.to_string(), VecDeque::new());
        }
        let history = self.sources.get_mut(src).expect("inserted above");
        let ports = &mut self.ports;
        ports.clear();
        ports.extend(
            history
                .iter()
                .filter(|(t, _)| (start - t).abs() <= SOURCE_WINDOW_SECS)
                .map(|(_, p)| *p),
        );
        let flows = ports.len();
        ports.sort_unstable();
        ports.dedup();
        x[N_FEATURES - 2] = (flows as f64).ln_1p() as f32;
        x[N_FEATURES - 1] = (ports.len() as f64).ln_1p() as f32;
        if history.len() == SOURCE_HISTORY {
            history.pop_front();
        }
        history.push_back((start, port));
        Some(x)
    }
}

/// The per-flow features (the per-source ones left at 0), or `None` for non-flow records.
fn flow_features(eve: &Value) -> Option<FeatureVector> {
    if eve.get("event_type")?.as_str()? != "flow" {
        return None;
    }
    let flow = eve.get("flow")?;
    let num = |key: &str| flow.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let (bytes_ts, bytes_tc) = (num("bytes_toserver"), num("bytes_toclient"));
    let (pkts_ts, pkts_tc) = (num("pkts_toserver"), num("pkts_toclient"));
    let duration = match (
        flow.get("start").and_then(Value::as_str).and_then(parse_ts),
        flow.get("end").and_then(Value::as_str).and_then(parse_ts),
    ) {
        (Some(start), Some(end)) => (end - start).max(0.0),
        _ => num("age").max(0.0),
    };
    let per_pkt = |bytes: f64, pkts: f64| if pkts > 0.0 { bytes / pkts } else { 0.0 };
    let ratio = if pkts_ts + pkts_tc > 0.0 {
        pkts_tc / (pkts_ts + pkts_tc)
    } else {
        0.0
    };
    let proto = eve.get("proto").and_then(Value::as_str).unwrap_or("");
    let (tcp, udp, icmp) = (
        proto.eq_ignore_ascii_case("tcp"),
        proto.eq_ignore_ascii_case("udp"),
        proto.eq_ignore_ascii_case("icmp") || proto.eq_ignore_ascii_case("ipv6-icmp"),
    );
    let port_class = match eve.get("dest_port").and_then(Value::as_u64) {
        Some(p) if tcp || udp => match p {
            0..=1023 => 1.0,
            1024..=49_151 => 2.0,
            _ => 3.0,
        },
        _ => 0.0,
    };
    let app_known = eve
        .get("app_proto")
        .and_then(Value::as_str)
        .is_some_and(|a| !a.is_empty() && a != "failed" && a != "unknown");
    let tcp_obj = eve.get("tcp");
    let flags = |key: &str| {
        tcp_obj
            .and_then(|t| t.get(key))
            .and_then(Value::as_str)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0)
    };
    let (ts, tc) = (flags("tcp_flags_ts"), flags("tcp_flags_tc"));
    let bit = |flags: u8, mask: u8| if flags & mask != 0 { 1.0 } else { 0.0 };
    let state = tcp_obj
        .and_then(|t| t.get("state"))
        .or_else(|| flow.get("state"))
        .and_then(Value::as_str)
        .map_or(3.0, |s| match s {
            "new" | "syn_sent" | "syn_recv" | "none" => 0.0,
            "established" => 1.0,
            "closed" | "fin_wait1" | "fin_wait2" | "closing" | "time_wait" | "close_wait"
            | "last_ack" => 2.0,
            _ => 3.0,
        });
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let values = [
        bytes_ts.ln_1p(),
        bytes_tc.ln_1p(),
        pkts_ts.ln_1p(),
        pkts_tc.ln_1p(),
        duration.ln_1p(),
        per_pkt(bytes_ts, pkts_ts).ln_1p(),
        per_pkt(bytes_tc, pkts_tc).ln_1p(),
        ratio,
        port_class,
        flag(tcp),
        flag(udp),
        flag(icmp),
        flag(app_known),
        bit(ts, 0x02),
        bit(tc, 0x02),
        bit(ts, 0x04),
        bit(tc, 0x04),
        bit(ts, 0x01),
        bit(tc, 0x01),
        bit(ts | tc, 0x08),
        state,
        0.0,
        0.0,
    ];
    Some(values.map(|v| v as f32))
}

/// Seconds since the Unix epoch of an EVE timestamp (`2024-04-03T13:17:03.662622+0000`).
///
/// Hand-parsed: this runs twice per flow, and Suricata always writes this one shape.
pub fn parse_ts(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0.0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let mut scale = 0.1;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            frac += f64::from(c - b'0') * scale;
            scale /= 10.0;
            i += 1;
        }
    }
    let offset = match b.get(i) {
        None | Some(b'Z') => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &s[i + 1..];
            let (h, m) = match rest.len() {
                4 => (digits(i + 1..i + 3)?, digits(i + 3..i + 5)?),
                5 if rest.as_bytes()[2] == b':' => (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?),
                _ => return None,
            };
            let secs = h * 3600 + m * 60;
            if sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        Some(_) => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(secs as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_parse_with_offsets() {
        assert_eq!(parse_ts("1970-01-01T00:00:00+0000"), Some(0.0));
        assert_eq!(parse_ts("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        let t = parse_ts("2024-04-03T13:17:03.5+0200").unwrap();
        assert_eq!(t, 1_712_150_223.5 - 7200.0);
        assert_eq!(
            parse_ts("2024-04-03T13:17:03-01:30"),
            Some(1_712_150_223.0 + 5400.0)
        );
        assert_eq!(parse_ts("2024-13-03T13:17:03+0000"), None);
        assert_eq!(parse_ts("yesterday"), None);
    }

    #[test]
    fn non_flow_records_have_no_features() {
        let mut e = Extractor::new();
        assert!(e.extract(&json!({"event_type": "alert"})).is_none());
        assert!(e.extract(&json!({"event_type": "flow"})).is_none());
        assert!(e.extract(&json!([1, 2])).is_none());
    }

    #[test]
    fn tcp_flow_features() {
        let eve = json!({
            "event_type": "flow", "proto": "TCP", "dest_port": 8080, "app_proto": "http",
            "flow": {"pkts_toserver": 4, "pkts_toclient": 6, "bytes_toserver": 400,
                     "bytes_toclient": 6000, "start": "2024-04-03T13:17:03.000000+0000",
                     "end": "2024-04-03T13:17:05.000000+0000", "age": 2, "state": "closed"},
            "tcp": {"tcp_flags_ts": "1b", "tcp_flags_tc": "17", "state": "closed"}
        });
        let f = Extractor::new().extract(&eve).unwrap();
        let get = |name: &str| f[FEATURES.iter().position(|n| *n == name).unwrap()];
        assert!((get("bytes_toclient_log") - 6001f32.ln()).abs() < 1e-5);
        assert!((get("duration_log") - 3f32.ln()).abs() < 1e-5);
        assert!((get("bytes_per_pkt_toclient_log") - 1001f32.ln()).abs() < 1e-5);
        assert!((get("pkts_toclient_ratio") - 0.6).abs() < 1e-6);
        assert_eq!(get("dest_port_class"), 2.0);
        assert_eq!((get("proto_tcp"), get("proto_udp")), (1.0, 0.0));
        assert_eq!(get("app_proto_known"), 1.0);
        // 0x1b = FIN|SYN|PSH|ACK to the server, 0x17 = FIN|SYN|RST|ACK to the client
        let flags = [
            "syn_ts", "syn_tc", "rst_ts", "rst_tc", "fin_ts", "fin_tc", "psh",
        ];
        assert_eq!(flags.map(get), [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(get("state"), 2.0);
    }

    #[test]
    fn icmp_and_failed_app_proto() {
        let eve = json!({
            "event_type": "flow", "proto": "ICMP", "app_proto": "failed",
            "flow": {"pkts_toserver": 3, "pkts_toclient": 0, "bytes_toserver": 300,
                     "bytes_toclient": 0, "age": 4, "state": "new"}
        });
        let f = Extractor::new().extract(&eve).unwrap();
        assert_eq!(f[8], 0.0, "ICMP has no port class");
        assert_eq!(f[11], 1.0);
        assert_eq!(f[12], 0.0);
        assert_eq!(f[7], 0.0, "one-way flow");
        assert!(
            (f[4] - 5f32.ln()).abs() < 1e-5,
            "age is the fallback duration"
        );
        assert_eq!(f[FEATURES.iter().position(|n| *n == "state").unwrap()], 0.0);
    }

    #[test]
    fn per_source_window_counts_flows_and_ports() {
        let flow = |src: &str, port: u64, secs: u64| {
            json!({"event_type": "flow", "src_ip": src, "dest_port": port, "proto": "TCP",
                   "flow": {"start": format!("2026-01-01T00:{:02}:{:02}+0000", secs / 60, secs % 60)}})
        };
        let mut e = Extractor::new();
        let mut last = [0.0; N_FEATURES];
        for (i, port) in [22, 23, 25, 25].into_iter().enumerate() {
            last = e.extract(&flow("10.0.0.9", port, i as u64)).unwrap();
        }
        // Three earlier flows from 10.0.0.9, to ports 22, 23 and 25.
        assert_eq!(last[N_FEATURES - 2], 3f32.ln_1p());
        assert_eq!(last[N_FEATURES - 1], 3f32.ln_1p());
        let other = e.extract(&flow("10.0.0.8", 22, 4)).unwrap();
        assert_eq!(other[N_FEATURES - 2..], [0.0, 0.0], "per source");
        let later = e.extract(&flow("10.0.0.9", 80, 200)).unwrap();
        assert_eq!(later[N_FEATURES - 2..], [0.0, 0.0], "outside the window");
    }
}
