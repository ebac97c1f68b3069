//! `intel`: threat-intelligence indicator feeds that Suricata matches itself, at line rate.
//!
//! Not to be confused with `enrichment.abuseipdb`, which looks up the addresses of alerts that
//! already fired: an `intel` feed is a list of indicators (addresses, domains, JA3s, …) that
//! the agent downloads, compiles into Suricata datasets and rules, and keeps up to date.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::Problem;
use super::schema::{default_true, Severity};
use super::validate::{check_abs_path, check_range, is_hostname, url_host};

/// Indicator feeds matched by Suricata (datasets and generated rules in the ids2 sid range),
/// updated live without restarting it. Off until a preset or a feed is listed. One line enables
/// the abuse.ch feeds: `intel: {presets: [feodo_tracker, sslbl, urlhaus, threatfox]}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Intel {
    /// Built-in feeds enabled by name: `feodo_tracker`, `sslbl` (two feeds: JA3 fingerprints and
    /// certificate SHA-1s), `urlhaus`, `threatfox`.
    #[serde(default)]
    pub presets: Vec<IntelPreset>,
    /// Further feeds: your own lists, CSV, STIX 2.1 or MISP exports.
    #[serde(default)]
    pub feeds: Vec<IntelFeed>,
    /// Addresses, CIDRs and domain names never matched, whatever a feed says (a domain covers its
    /// subdomains). `blocking.allowlist` applies as well.
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// Whether the daemon updates each feed on its own every `interval_secs`
    /// (`ids2-agent intel update` works either way).
    #[serde(default = "default_true")]
    pub scheduled: bool,
    /// Directory of the compiled indicator sets and generated rules (each generation beside the
    /// last good one; `current` points at the active one).
    #[serde(default = "default_intel_dir")]
    pub dir: String,
    /// Seconds one feed download may take (5–600).
    #[serde(default = "default_intel_timeout_secs")]
    pub timeout_secs: u32,
    /// Most indicators kept from one feed (1–5000000); a longer feed is refused and keeps its
    /// last good version.
    #[serde(default = "default_intel_max_indicators")]
    pub max_indicators_per_feed: u32,
}

/// A built-in feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntelPreset {
    /// abuse.ch Feodo Tracker: botnet command-and-control IP addresses.
    FeodoTracker,
    /// abuse.ch SSLBL: malicious JA3 fingerprints and TLS certificate SHA-1s.
    Sslbl,
    /// abuse.ch URLhaus: hosts serving malware.
    Urlhaus,
    /// abuse.ch ThreatFox: malware domains.
    Threatfox,
}

/// One indicator feed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntelFeed {
    /// The feed's name (lowercase letters, digits and `-`, at most 32): shown in alerts as
    /// `threat.feed.name`, in metrics and in the history.
    pub name: String,
    /// Where it is fetched from: `https://…`, `http://` to a loopback address, or `file:///…`.
    pub source: String,
    /// `plain` (one indicator per line, `#` comments, hosts-file lines give their last field),
    /// `csv`, `stix` (a STIX 2.1 bundle) or `misp_csv` (a MISP CSV export).
    pub format: FeedFormat,
    /// With `format: csv`: the column holding the indicator, a 0-based index or a header name
    /// (default the first column).
    #[serde(default, deserialize_with = "column_text")]
    pub column: Option<String>,
    /// What the indicators are: `ip` (addresses and CIDRs), `domain`, `url`, `ja3`, `ja4`,
    /// `tls_cert_sha1` or `file_sha256`.
    pub kind: IndicatorKind,
    /// Severity of the alerts a match raises.
    #[serde(default = "default_feed_severity")]
    pub severity: Severity,
    /// Seconds between updates of this feed (300–2592000, five minutes to 30 days).
    #[serde(default = "default_feed_interval_secs")]
    pub interval_secs: u32,
}

/// How a feed is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedFormat {
    /// One indicator per line; `#` starts a comment; a line of several fields (a hosts file's
    /// `0.0.0.0 name`) gives its last field.
    Plain,
    /// Comma-separated values; lines starting with `#` are comments; the indicator is in `column`.
    Csv,
    /// A STIX 2.1 bundle: indicators whose pattern is one equality comparison on `ipv4-addr`,
    /// `ipv6-addr`, `domain-name`, `url`, `file:hashes` or `x509-certificate:hashes`.
    Stix,
    /// A MISP CSV export (`type` and `value` columns); rows of another kind are skipped.
    MispCsv,
}

/// What a feed's indicators are, and so what Suricata matches them against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorKind {
    /// IPv4/IPv6 addresses and CIDRs, matched as source or destination of any packet.
    Ip,
    /// Domain names, matched in DNS queries, TLS SNI and HTTP Host.
    Domain,
    /// URLs, matched by their host in HTTP Host.
    Url,
    /// JA3 client fingerprints (MD5).
    Ja3,
    /// JA4 client fingerprints.
    Ja4,
    /// SHA-1 fingerprints of TLS server certificates.
    TlsCertSha1,
    /// SHA-256 of files seen in HTTP, SMTP, FTP, SMB or NFS transfers.
    FileSha256,
}

impl IndicatorKind {
    /// The kind's name as written in the config (and in rule metadata).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Domain => "domain",
            Self::Url => "url",
            Self::Ja3 => "ja3",
            Self::Ja4 => "ja4",
            Self::TlsCertSha1 => "tls_cert_sha1",
            Self::FileSha256 => "file_sha256",
        }
    }
}

/// Default directory of compiled indicator sets.
pub fn default_intel_dir() -> String {
    "/var/lib/ids2/intel".into()
}

/// Default download timeout: one minute.
pub fn default_intel_timeout_secs() -> u32 {
    60
}

/// Default cap on one feed's indicators: one million.
pub fn default_intel_max_indicators() -> u32 {
    1_000_000
}

/// Default severity of a feed match.
pub fn default_feed_severity() -> Severity {
    Severity::High
}

/// Default feed update period: one hour (abuse.ch asks for no more than every five minutes).
pub fn default_feed_interval_secs() -> u32 {
    3600
}

super::schema::default_from_fns! {
    Intel {
        presets: Vec::new, feeds: Vec::new, allowlist: Vec::new, scheduled: default_true,
        dir: default_intel_dir, timeout_secs: default_intel_timeout_secs,
        max_indicators_per_feed: default_intel_max_indicators,
    }
}

/// Most feeds (presets included): each gets ten sids of the intel range.
pub const MAX_FEEDS: usize = 99;

/// A CSV column may be written as a number or as a header name.
fn column_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Column {
        Index(u64),
        Name(String),
    }
    Ok(Option::<Column>::deserialize(d)?.map(|c| match c {
        Column::Index(i) => i.to_string(),
        Column::Name(n) => n,
    }))
}

impl IntelPreset {
    /// The feeds this preset stands for.
    pub fn feeds(self) -> Vec<IntelFeed> {
        let feed =
            |name: &str, source: &str, format, column: Option<&str>, kind, severity| IntelFeed {
                name: name.into(),
                source: source.into(),
                format,
                column: column.map(Into::into),
                kind,
                severity,
                interval_secs: default_feed_interval_secs(),
            };
        use FeedFormat::*;
        use IndicatorKind::*;
        match self {
            Self::FeodoTracker => vec![feed(
                "feodo-tracker",
                "https://feodotracker.abuse.ch/downloads/ipblocklist.txt",
                Plain,
                None,
                Ip,
                Severity::High,
            )],
            Self::Sslbl => vec![
                feed(
                    "sslbl-ja3",
                    "https://sslbl.abuse.ch/blacklist/ja3_fingerprints.csv",
                    Csv,
                    Some("0"),
                    Ja3,
                    Severity::High,
                ),
                feed(
                    "sslbl-cert",
                    "https://sslbl.abuse.ch/blacklist/sslblacklist.csv",
                    Csv,
                    Some("1"),
                    TlsCertSha1,
                    Severity::High,
                ),
            ],
            Self::Urlhaus => vec![feed(
                "urlhaus",
                "https://urlhaus.abuse.ch/downloads/hostfile/",
                Plain,
                None,
                Domain,
                Severity::Medium,
            )],
            Self::Threatfox => vec![feed(
                "threatfox",
                "https://threatfox.abuse.ch/downloads/hostfile/",
                Plain,
                None,
                Domain,
                Severity::Medium,
            )],
        }
    }
}

impl Intel {
    /// Every feed: the presets' in the order listed, then `feeds`.
    pub fn all_feeds(&self) -> Vec<IntelFeed> {
        self.presets
            .iter()
            .flat_map(|p| p.feeds())
            .chain(self.feeds.iter().cloned())
            .collect()
    }

    /// True when at least one feed is configured.
    pub fn enabled(&self) -> bool {
        !self.presets.is_empty() || !self.feeds.is_empty()
    }

    /// Checks every feed, the allowlist and the limits.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) {
        for (i, preset) in self.presets.iter().enumerate() {
            if self.presets[..i].contains(preset) {
                p.push(Problem::new(
                    format!("intel.presets[{i}]"),
                    preset_name(*preset),
                    "each preset may be listed once",
                ));
            }
        }
        let mut names: Vec<String> = self
            .presets
            .iter()
            .flat_map(|p| p.feeds())
            .map(|f| f.name)
            .collect();
        for (i, f) in self.feeds.iter().enumerate() {
            let key = |k: &str| format!("intel.feeds[{i}].{k}");
            let name_ok = (1..=32).contains(&f.name.len())
                && f.name
                    .starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && f.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !name_ok {
                p.push(Problem::new(
                    key("name"),
                    &f.name,
                    "expected 1 to 32 lowercase letters, digits or '-', starting with a letter \
                     or digit, e.g. own-c2-list",
                ));
            } else if names.contains(&f.name) {
                p.push(Problem::new(
                    key("name"),
                    &f.name,
                    "another feed (or a preset's feed) has this name; names must be unique",
                ));
            }
            names.push(f.name.clone());
            if let Err(why) = feed_source_problem(&f.source) {
                p.push(Problem::new(key("source"), &f.source, why));
            }
            match (&f.column, f.format) {
                (Some(c), FeedFormat::Csv) if c.trim().is_empty() => p.push(Problem::new(
                    key("column"),
                    c,
                    "expected a 0-based column index or a header name",
                )),
                (Some(c), FeedFormat::Plain | FeedFormat::Stix | FeedFormat::MispCsv) => {
                    p.push(Problem::new(
                        key("column"),
                        c,
                        "applies only to format: csv (a MISP export's value column is found by \
                         its header); remove it or set format: csv",
                    ))
                }
                _ => {}
            }
            let unsupported = match (f.format, f.kind) {
                (FeedFormat::Stix, IndicatorKind::Ja3 | IndicatorKind::Ja4) => {
                    Some("STIX 2.1 patterns have no object for JA3/JA4 fingerprints")
                }
                (FeedFormat::MispCsv, IndicatorKind::Ja4) => {
                    Some("MISP has no attribute type for JA4 fingerprints")
                }
                _ => None,
            };
            if let Some(why) = unsupported {
                p.push(Problem::new(
                    key("kind"),
                    f.kind.name(),
                    format!("{why}; use format: plain or csv for this kind"),
                ));
            }
            check_range(
                p,
                &key("interval_secs"),
                f.interval_secs,
                300..=2_592_000,
                "seconds (5 minutes to 30 days)",
            );
        }
        if names.len() > MAX_FEEDS {
            p.push(Problem::new(
                "intel.feeds",
                names.len(),
                format!("at most {MAX_FEEDS} feeds, presets' feeds included"),
            ));
        }
        for (i, entry) in self.allowlist.iter().enumerate() {
            if allow_entry(entry).is_none() {
                p.push(Problem::new(
                    format!("intel.allowlist[{i}]"),
                    entry,
                    "expected an IP address, a CIDR such as 203.0.113.0/24, or a domain name",
                ));
            }
        }
        check_abs_path("intel.dir", &self.dir, p);
        check_range(
            p,
            "intel.timeout_secs",
            self.timeout_secs,
            5..=600,
            "seconds",
        );
        check_range(
            p,
            "intel.max_indicators_per_feed",
            self.max_indicators_per_feed,
            1..=5_000_000,
            "indicators",
        );
    }
}

/// The preset's name as written in the config.
pub fn preset_name(p: IntelPreset) -> &'static str {
    match p {
        IntelPreset::FeodoTracker => "feodo_tracker",
        IntelPreset::Sslbl => "sslbl",
        IntelPreset::Urlhaus => "urlhaus",
        IntelPreset::Threatfox => "threatfox",
    }
}

/// An allowlist entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// An address or a network.
    Net(IpNet),
    /// A domain and its subdomains, lowercase.
    Domain(String),
}

/// Parses an allowlist entry: an IP, a CIDR or a domain name.
pub fn allow_entry(s: &str) -> Option<AllowEntry> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(AllowEntry::Net(net));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(AllowEntry::Net(IpNet::from(ip)));
    }
    let d = s.trim_end_matches('.').to_ascii_lowercase();
    (d.contains('.') && is_hostname(&d)).then_some(AllowEntry::Domain(d))
}

fn feed_source_problem(s: &str) -> Result<(), &'static str> {
    if let Some(path) = s.strip_prefix("file://") {
        let ok = path.starts_with('/')
            && path.len() > 1
            && !path.split('/').any(|part| part == "..")
            && !path.chars().any(|c| c.is_control() || c.is_whitespace());
        return if ok {
            Ok(())
        } else {
            Err("expected file:///ABSOLUTE/PATH without '..' or spaces")
        };
    }
    match url_host(s) {
        Ok(_)
            if s.split_once("://")
                .is_some_and(|(_, rest)| rest.contains('/')) =>
        {
            Ok(())
        }
        Ok(_) => Err("expected https://HOST/PATH of the feed"),
        Err(_) => Err(
            "expected https://HOST/PATH, http:// to a loopback address, or file:///PATH \
             (plain http would let anyone on the path rewrite the feed)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{paths, problems_with};
    use super::*;

    #[test]
    fn one_line_enables_the_abuse_ch_presets() {
        let s = crate::config::from_str(
            &format!(
                "{}intel: {{presets: [feodo_tracker, sslbl, urlhaus, threatfox]}}\n",
                super::super::testing::MINIMAL
            ),
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let feeds = s.config.intel.all_feeds();
        let names: Vec<_> = feeds.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "feodo-tracker",
                "sslbl-ja3",
                "sslbl-cert",
                "urlhaus",
                "threatfox"
            ]
        );
        assert!(feeds.iter().all(|f| f.source.starts_with("https://")));
        assert_eq!(feeds[1].kind, IndicatorKind::Ja3);
        assert_eq!(feeds[2].kind, IndicatorKind::TlsCertSha1);
        assert!(s.config.intel.enabled());
    }

    #[test]
    fn intel_is_off_by_default() {
        assert!(problems_with("").is_empty());
        assert!(!Intel::default().enabled());
    }

    #[test]
    fn own_feeds_accept_every_format_and_column_forms() {
        let p = problems_with(
            "intel:\n  feeds:\n    \
             - {name: own, source: 'file:///etc/ids2/c2.txt', format: plain, kind: ip}\n    \
             - {name: csv-1, source: 'https://feeds.example.org/x.csv', format: csv, column: 2, kind: domain}\n    \
             - {name: csv-2, source: 'http://127.0.0.1:8080/x.csv', format: csv, column: ioc_value, kind: url, severity: low}\n    \
             - {name: stix, source: 'file:///srv/bundle.json', format: stix, kind: file_sha256, interval_secs: 86400}\n    \
             - {name: misp, source: 'file:///srv/misp.csv', format: misp_csv, kind: ja3}\n  \
             allowlist: [10.0.0.0/8, 192.0.2.1, example.org]\n",
        );
        assert!(p.is_empty(), "{p:#?}");
    }

    #[test]
    fn every_bad_key_is_named_at_once() {
        let p = problems_with(
            "intel:\n  presets: [sslbl, sslbl]\n  feeds:\n    \
             - {name: Bad_Name, source: 'ftp://x/y', format: plain, column: 1, kind: ip}\n    \
             - {name: sslbl-ja3, source: 'http://feeds.example.org/x', format: stix, kind: ja3, interval_secs: 10}\n    \
             - {name: ok, source: 'file://relative', format: csv, kind: domain}\n  \
             allowlist: [not a domain]\n  dir: relative\n  timeout_secs: 0\n  max_indicators_per_feed: 0\n",
        );
        assert_eq!(
            paths(&p),
            [
                "intel.presets[1]",
                "intel.feeds[0].name",
                "intel.feeds[0].source",
                "intel.feeds[0].column",
                "intel.feeds[1].name",
                "intel.feeds[1].source",
                "intel.feeds[1].kind",
                "intel.feeds[1].interval_secs",
                "intel.feeds[2].source",
                "intel.allowlist[0]",
                "intel.dir",
                "intel.timeout_secs",
                "intel.max_indicators_per_feed",
            ],
            "{p:#?}"
        );
        assert_eq!(p[2].value.as_deref(), Some("ftp://x/y"));
        assert!(p[2].message.contains("https://"), "{}", p[2].message);
        assert!(p[6].message.contains("STIX"), "{}", p[6].message);
    }

    #[test]
    fn unknown_format_and_kind_are_named() {
        let p = problems_with(
            "intel:\n  feeds:\n    - {name: a, source: 'file:///a', format: xml, kind: hash}\n",
        );
        assert_eq!(
            paths(&p),
            ["intel.feeds[0].format", "intel.feeds[0].kind"],
            "{p:#?}"
        );
        assert!(p[0].message.contains("plain"), "{}", p[0].message);
        assert!(p[1].message.contains("ja3"), "{}", p[1].message);
    }

    #[test]
    fn allowlist_entries_parse() {
        assert_eq!(
            allow_entry("Example.ORG."),
            Some(AllowEntry::Domain("example.org".into()))
        );
        assert!(matches!(
            allow_entry("2001:db8::/32"),
            Some(AllowEntry::Net(_))
        ));
        assert_eq!(allow_entry("localhost"), None);
    }
}
