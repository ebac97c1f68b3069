//! Feed text → normalised indicators of one kind, pure.
//!
//! Every entry is normalised to the form Suricata's buffers hold (addresses in canonical form,
//! lowercase domains without a trailing dot, lowercase hex, certificate SHA-1s colon-separated
//! as `tls.cert_fingerprint` shows them), so the same indicator written two ways is one entry.
//! Entries that are not valid indicators of the feed's kind are counted, never fatal; a feed
//! that yields nothing valid, or more invalid entries than valid ones, is refused whole: that is
//! what a wrong format or a broken download looks like.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ids2_core::config::{allow_entry, AllowEntry, FeedFormat, IndicatorKind};
use ipnet::IpNet;

/// Widest CIDR expanded into addresses (IPv4 /20, IPv6 /116: 4096 addresses); datasets match
/// exact addresses, so wider networks are refused as entries.
const MAX_CIDR_ADDRESSES: u32 = 4096;

/// What one feed's text gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The valid indicators, normalised, allowlisted ones removed.
    pub indicators: BTreeSet<String>,
    /// Entries that are not valid indicators of the feed's kind.
    pub invalid: u64,
    /// Valid entries the allowlist covers.
    pub allowlisted: u64,
    /// Entries of another kind (MISP rows, STIX indicators) left for other feeds.
    pub other_kind: u64,
}

/// Why a feed's text was refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text is not the configured format at all.
    #[error("not a valid {format} feed: {reason}")]
    Format {
        /// The configured format.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The named CSV column is not in the header.
    #[error("the CSV header has no column {column:?} (it has {header:?})")]
    NoColumn {
        /// The configured column.
        column: String,
        /// The header's columns.
        header: Vec<String>,
    },
    /// Nothing valid, or mostly invalid entries.
    #[error(
        "{valid} valid and {invalid} invalid {kind} entries: refusing the feed (a wrong format \
         or a broken download)"
    )]
    Implausible {
        /// The feed's kind.
        kind: &'static str,
        /// Valid entries (allowlisted ones included).
        valid: u64,
        /// Invalid entries.
        invalid: u64,
    },
}

/// Parses `text` as `format`, keeping indicators of `kind` not covered by `allow`.
pub fn parse(
    text: &str,
    format: FeedFormat,
    column: Option<&str>,
    kind: IndicatorKind,
    allow: &[AllowEntry],
) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    let add = |raw: &str, out: &mut Parsed| match normalise(kind, raw) {
        Some(values) => {
            for v in values {
                if allowed(kind, &v, allow) {
                    out.allowlisted += 1;
                } else {
                    out.indicators.insert(v);
                }
            }
        }
        None => out.invalid += 1,
    };
    match format {
        FeedFormat::Plain => {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                if let Some(last) = line.split_whitespace().last() {
                    add(last, &mut out);
                }
            }
        }
        FeedFormat::Csv => {
            let rows = csv_rows(text);
            let (index, skip) = match column {
                None => (0, 0),
                Some(c) => match c.parse::<usize>() {
                    Ok(i) => (i, 0),
                    Err(_) => {
                        let header = rows.first().cloned().unwrap_or_default();
                        let i = header.iter().position(|h| h == c).ok_or_else(|| {
                            ParseError::NoColumn {
                                column: c.into(),
                                header: header.clone(),
                            }
                        })?;
                        (i, 1)
                    }
                },
            };
            for row in rows.iter().skip(skip) {
                match row.get(index) {
                    Some(v) if !v.is_empty() => add(v, &mut out),
                    _ => out.invalid += 1,
                }
            }
        }
        FeedFormat::MispCsv => {
            let rows = csv_rows(text);
            let header = rows.first().cloned().unwrap_or_default();
            let col = |name: &str| header.iter().position(|h| h == name);
            let (Some(t), Some(v)) = (col("type"), col("value")) else {
                return Err(ParseError::Format {
                    format: "MISP CSV",
                    reason: format!("the header has no `type` and `value` columns: {header:?}"),
                });
            };
            for row in rows.iter().skip(1) {
                let (Some(ty), Some(value)) = (row.get(t), row.get(v)) else {
                    out.invalid += 1;
                    continue;
                };
                match misp_value(kind, ty, value) {
                    Some(value) => add(value, &mut out),
                    None => out.other_kind += 1,
                }
            }
        }
        FeedFormat::Stix => {
            let bundle: serde_json::Value =
                serde_json::from_str(text).map_err(|e| ParseError::Format {
                    format: "STIX 2.1",
                    reason: e.to_string(),
                })?;
            let objects = match (bundle["type"].as_str(), bundle["objects"].as_array()) {
                (Some("bundle"), Some(objects)) => objects,
                _ => {
                    return Err(ParseError::Format {
                        format: "STIX 2.1",
                        reason: "expected a bundle: {\"type\": \"bundle\", \"objects\": [...]}"
                            .into(),
                    })
                }
            };
            for o in objects {
                if o["type"] != "indicator" || o["revoked"] == true {
                    continue;
                }
                if o["pattern_type"].as_str().is_some_and(|t| t != "stix") {
                    out.other_kind += 1;
                    continue;
                }
                match o["pattern"].as_str().and_then(stix_comparison) {
                    Some((k, value)) if k == kind => add(&value, &mut out),
                    Some(_) => out.other_kind += 1,
                    None => out.invalid += 1,
                }
            }
        }
    }
    let valid = out.indicators.len() as u64 + out.allowlisted;
    if valid == 0 || out.invalid > valid {
        return Err(ParseError::Implausible {
            kind: kind.name(),
            valid,
            invalid: out.invalid,
        });
    }
    Ok(out)
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    reader
        .records()
        .filter_map(Result::ok)
        .filter(|r| !(r.len() == 1 && r[0].is_empty()))
        .map(|r| r.iter().map(str::to_string).collect())
        .collect()
}

/// The value of a MISP attribute of type `ty` when it is of `kind`.
fn misp_value<'a>(kind: IndicatorKind, ty: &str, value: &'a str) -> Option<&'a str> {
    let first = || value.split('|').next();
    let last = || value.rsplit('|').next();
    match (kind, ty) {
        (IndicatorKind::Ip, "ip-dst" | "ip-src") => Some(value),
        (IndicatorKind::Ip, "ip-dst|port" | "ip-src|port") => first(),
        (IndicatorKind::Domain, "domain" | "hostname") => Some(value),
        (IndicatorKind::Domain, "domain|ip" | "hostname|port") => first(),
        (IndicatorKind::Url, "url" | "uri") => Some(value),
        (IndicatorKind::Ja3, "ja3-fingerprint-md5") => Some(value),
        (IndicatorKind::TlsCertSha1, "x509-fingerprint-sha1") => Some(value),
        (IndicatorKind::FileSha256, "sha256") => Some(value),
        (IndicatorKind::FileSha256, "filename|sha256") => last(),
        _ => None,
    }
}

/// A STIX pattern that is one equality comparison, as (kind, value).
fn stix_comparison(pattern: &str) -> Option<(IndicatorKind, String)> {
    let inner = pattern.trim().strip_prefix('[')?.strip_suffix(']')?;
    let (path, value) = inner.split_once('=')?;
    let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    // A quote inside the literal must be escaped; an unescaped one means a second comparison.
    let value = value.replace("\\'", "'").replace("\\\\", "\\");
    if value.contains('\'') || path.contains(['!', '<', '>']) {
        return None;
    }
    let path = path.trim().replace('"', "'");
    let kind = match path.as_str() {
        "ipv4-addr:value" | "ipv6-addr:value" => IndicatorKind::Ip,
        "domain-name:value" => IndicatorKind::Domain,
        "url:value" => IndicatorKind::Url,
        "file:hashes.'SHA-256'" | "file:hashes.SHA256" | "file:hashes.'SHA256'" => {
            IndicatorKind::FileSha256
        }
        "x509-certificate:hashes.'SHA-1'" | "x509-certificate:hashes.SHA1" => {
            IndicatorKind::TlsCertSha1
        }
        _ => return None,
    };
    Some((kind, value))
}

/// One raw entry as the values Suricata matches (several for a small CIDR), or `None` when it
/// is not a valid indicator of `kind`.
pub fn normalise(kind: IndicatorKind, raw: &str) -> Option<Vec<String>> {
    let raw = raw.trim();
    let one = |s: String| Some(vec![s]);
    match kind {
        IndicatorKind::Ip => ips(raw),
        IndicatorKind::Domain => one(domain(raw)?),
        IndicatorKind::Url => one(url_host(raw)?),
        IndicatorKind::Ja3 => one(hex(raw, 32)?),
        IndicatorKind::FileSha256 => one(hex(raw, 64)?),
        IndicatorKind::TlsCertSha1 => {
            let h = hex(&raw.replace(':', ""), 40)?;
            let pairs: Vec<&str> = (0..20).map(|i| &h[2 * i..2 * i + 2]).collect();
            one(pairs.join(":"))
        }
        IndicatorKind::Ja4 => {
            // JA4: a_b_c, 10 + 12 + 12 characters (protocol, version, counts, ALPN; two
            // truncated SHA-256s).
            let v = raw.to_ascii_lowercase();
            let parts: Vec<&str> = v.split('_').collect();
            let ok = parts.len() == 3
                && parts[0].len() == 10
                && parts[0].chars().all(|c| c.is_ascii_alphanumeric())
                && parts[1..]
                    .iter()
                    .all(|p| p.len() == 12 && p.chars().all(|c| c.is_ascii_hexdigit()));
            ok.then(|| vec![v])
        }
    }
}

fn ips(raw: &str) -> Option<Vec<String>> {
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(vec![ip.to_string()]);
    }
    // `203.0.113.7:443` (ThreatFox's ip:port) and `[2001:db8::1]:443`.
    if let Ok(sa) = raw.parse::<std::net::SocketAddr>() {
        return Some(vec![sa.ip().to_string()]);
    }
    let net: IpNet = raw.parse().ok()?;
    let host_bits = net.max_prefix_len() - net.prefix_len();
    if host_bits >= 32 || (1u32 << host_bits) > MAX_CIDR_ADDRESSES {
        return None;
    }
    Some(net.trunc().hosts_all().map(|ip| ip.to_string()).collect())
}

trait AllHosts {
    fn hosts_all(&self) -> Box<dyn Iterator<Item = IpAddr>>;
}

impl AllHosts for IpNet {
    /// Every address of the network, network and broadcast addresses included (a feed that
    /// lists a /24 means all of it).
    fn hosts_all(&self) -> Box<dyn Iterator<Item = IpAddr>> {
        match self {
            IpNet::V4(n) => {
                let (a, b) = (u32::from(n.network()), u32::from(n.broadcast()));
                Box::new((a..=b).map(|x| IpAddr::from(std::net::Ipv4Addr::from(x))))
            }
            IpNet::V6(n) => {
                let (a, b) = (u128::from(n.network()), u128::from(n.broadcast()));
                Box::new((a..=b).map(|x| IpAddr::from(std::net::Ipv6Addr::from(x))))
            }
        }
    }
}

fn domain(raw: &str) -> Option<String> {
    let d = raw
        .trim_end_matches('.')
        .trim_start_matches("*.")
        .to_ascii_lowercase();
    let ok = d.contains('.')
        && d.parse::<IpAddr>().is_err()
        && (1..=253).contains(&d.len())
        && d.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        && d.rsplit('.')
            .next()
            .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
    ok.then_some(d)
}

/// The host of `scheme://host[:port]/…`, as HTTP `Host` shows it (no port).
fn url_host(raw: &str) -> Option<String> {
    let (scheme, rest) = raw.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6
            .split(']')
            .next()?
            .parse::<std::net::Ipv6Addr>()
            .ok()?
            .to_string(),
        None => {
            let h = authority.split(':').next()?;
            match h.parse::<std::net::Ipv4Addr>() {
                Ok(ip) => ip.to_string(),
                Err(_) => domain(h)?,
            }
        }
    };
    Some(host)
}

fn hex(raw: &str, len: usize) -> Option<String> {
    (raw.len() == len && raw.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| raw.to_ascii_lowercase())
}

/// True when the allowlist covers a normalised indicator (addresses by network, domains and
/// URL hosts by domain or subdomain).
pub fn allowed(kind: IndicatorKind, value: &str, allow: &[AllowEntry]) -> bool {
    match kind {
        IndicatorKind::Ip | IndicatorKind::Domain | IndicatorKind::Url => {}
        _ => return false,
    }
    let ip = value.parse::<IpAddr>().ok();
    allow.iter().any(|a| match (a, ip) {
        (AllowEntry::Net(net), Some(ip)) => net.contains(&ip),
        (AllowEntry::Domain(d), None) => {
            value == d
                || value
                    .strip_suffix(d.as_str())
                    .is_some_and(|p| p.ends_with('.'))
        }
        _ => false,
    })
}

/// The allowlist of `intel.allowlist` and `blocking.allowlist` together.
pub fn allowlist(intel: &[String], blocking: &[String]) -> Vec<AllowEntry> {
    intel
        .iter()
        .chain(blocking)
        .filter_map(|s| allow_entry(s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use FeedFormat::*;
    use IndicatorKind::*;

    fn set(p: &Parsed) -> Vec<&str> {
        p.indicators.iter().map(String::as_str).collect()
    }

    #[test]
    fn plain_lists_with_comments_and_hosts_files() {
        let text = "# Feodo Tracker\n192.0.2.1\n\n 2001:DB8::1 # v6\n0.0.0.0 evil.example\nnope\n\
                    198.51.100.0/30\n10.0.0.0/8\n203.0.113.9:443\n";
        let allow = allowlist(&["192.0.2.0/24".into()], &[]);
        let p = parse(text, Plain, None, Ip, &allow).unwrap();
        assert_eq!(
            set(&p),
            [
                "198.51.100.0",
                "198.51.100.1",
                "198.51.100.2",
                "198.51.100.3",
                "2001:db8::1",
                "203.0.113.9"
            ]
        );
        // evil.example, nope and the /8 (too wide to expand).
        assert_eq!((p.invalid, p.allowlisted), (3, 1));
    }

    #[test]
    fn csv_by_index_and_by_header_name() {
        let sslbl = "# Listingdate,SHA1,Listingreason\n\
                     2024-01-01 00:00:00,A1B2C3D4E5F60718293A4B5C6D7E8F9012345678,Dridex C&C\n";
        let p = parse(sslbl, Csv, Some("1"), TlsCertSha1, &[]).unwrap();
        assert_eq!(
            set(&p),
            ["a1:b2:c3:d4:e5:f6:07:18:29:3a:4b:5c:6d:7e:8f:90:12:34:56:78"]
        );
        let tf = "\"first_seen\",\"ioc_value\",\"ioc_type\"\n\
                  \"2024\",\"Evil.Example.\",\"domain\"\n\"2024\",\"a.b.example\",\"domain\"\n";
        let p = parse(tf, Csv, Some("ioc_value"), Domain, &[]).unwrap();
        assert_eq!(set(&p), ["a.b.example", "evil.example"]);
        let e = parse(tf, Csv, Some("value"), Domain, &[]).unwrap_err();
        assert!(matches!(e, ParseError::NoColumn { .. }), "{e}");
        let ja3 = "# ja3_md5,Firstseen\nE7D705A3286E19EA42F587B344EE6865,2017\n";
        assert_eq!(
            set(&parse(ja3, Csv, None, Ja3, &[]).unwrap()),
            ["e7d705a3286e19ea42f587b344ee6865"]
        );
    }

    #[test]
    fn misp_rows_of_other_kinds_are_skipped() {
        let text = "uuid,event_id,category,type,value,comment,to_ids,date\n\
                    1,1,Network activity,ip-dst,192.0.2.5,,1,1700000000\n\
                    2,1,Network activity,ip-dst|port,192.0.2.6|8080,,1,1700000000\n\
                    3,1,Network activity,domain,evil.example,,1,1700000000\n\
                    4,1,Network activity,ip-src,not-an-ip,,1,1700000000\n";
        let p = parse(text, MispCsv, None, Ip, &[]).unwrap();
        assert_eq!(set(&p), ["192.0.2.5", "192.0.2.6"]);
        assert_eq!((p.invalid, p.other_kind), (1, 1));
        assert!(parse("a,b\n1,2\n", MispCsv, None, Ip, &[]).is_err());
    }

    #[test]
    fn stix_single_comparisons_only() {
        let text = r#"{"type":"bundle","id":"bundle--1","objects":[
            {"type":"indicator","pattern_type":"stix","pattern":"[ipv4-addr:value = '192.0.2.7']"},
            {"type":"indicator","pattern_type":"stix","pattern":"[domain-name:value = 'evil.example']"},
            {"type":"indicator","pattern_type":"stix","pattern":"[ipv4-addr:value = '192.0.2.8' OR ipv4-addr:value = '192.0.2.9']"},
            {"type":"indicator","pattern_type":"stix","revoked":true,"pattern":"[ipv4-addr:value = '192.0.2.10']"},
            {"type":"indicator","pattern_type":"stix","pattern":"[ipv6-addr:value = '2001:db8::7']"},
            {"type":"malware","name":"x"}]}"#;
        let p = parse(text, Stix, None, Ip, &[]).unwrap();
        assert_eq!(set(&p), ["192.0.2.7", "2001:db8::7"]);
        assert_eq!((p.invalid, p.other_kind), (1, 1));
        let sha = format!(
            r#"{{"type":"bundle","objects":[{{"type":"indicator","pattern":"[file:hashes.'SHA-256' = '{}']"}}]}}"#,
            "AB".repeat(32)
        );
        assert_eq!(
            set(&parse(&sha, Stix, None, FileSha256, &[]).unwrap()),
            ["ab".repeat(32).as_str()]
        );
        assert!(matches!(
            parse("{not json", Stix, None, Ip, &[]),
            Err(ParseError::Format { .. })
        ));
    }

    #[test]
    fn corrupt_feeds_are_refused_whole() {
        let garbage = "\u{0}\u{1}PK\u{3}\u{4}garbage\nmore garbage\n192.0.2.1\n";
        assert!(matches!(
            parse(garbage, Plain, None, Ip, &[]),
            Err(ParseError::Implausible {
                valid: 1,
                invalid: 2,
                ..
            })
        ));
        assert!(parse("# only comments\n", Plain, None, Domain, &[]).is_err());
    }

    #[test]
    fn urls_give_their_host_and_allowlisted_domains_cover_subdomains() {
        let text = "http://Evil.Example:8080/x.exe\nhttps://198.51.100.4/a\nftp://x.example/\n\
                    http://cdn.good.example/y\n";
        let allow = allowlist(&["good.example".into()], &[]);
        let p = parse(text, Plain, None, Url, &allow).unwrap();
        assert_eq!(set(&p), ["198.51.100.4", "evil.example"]);
        assert_eq!((p.invalid, p.allowlisted), (1, 1));
        assert!(!allowed(Domain, "notgood.example", &allow));
        assert_eq!(
            normalise(Ja4, "t13d1516h2_8daaf6152771_02713d6af862")
                .unwrap()
                .len(),
            1
        );
        assert_eq!(normalise(Ja4, "t13d1516h2_8daaf6152771"), None);
    }
}
