//! What the feeds' recorded states tell the operator: the per-feed families of `/metrics` and
//! the summary each heartbeat carries, both read from `<intel.dir>/ids2-intel.json` (which
//! `ids2-agent intel update` and the daemon's schedule both write), so they agree whichever ran.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ids2_core::config::IntelFeed;
use ids2_core::heartbeat::{IntelFeedState, IntelSummary};
use time::OffsetDateTime;

use super::parse_time;

/// A feed is stale when it has not updated successfully within this many of its intervals: one
/// failed try is not yet stale, two in a row are.
pub const STALE_INTERVALS: i64 = 2;

/// When `state` last updated successfully, if ever.
fn last_success(state: Option<&IntelFeedState>) -> Option<OffsetDateTime> {
    state.and_then(|s| parse_time(&s.updated))
}

/// True when `feed` has no successful update within [`STALE_INTERVALS`] of its interval at
/// `now` (or none at all).
pub fn is_stale(feed: &IntelFeed, state: Option<&IntelFeedState>, now: OffsetDateTime) -> bool {
    last_success(state).is_none_or(|t| {
        now - t > time::Duration::seconds(i64::from(feed.interval_secs) * STALE_INTERVALS)
    })
}

/// The heartbeat's view of the configured `feeds`.
pub fn summary(
    feeds: &[IntelFeed],
    states: &BTreeMap<String, IntelFeedState>,
    now: OffsetDateTime,
) -> IntelSummary {
    let state = |f: &IntelFeed| states.get(&f.name);
    IntelSummary {
        versions: feeds
            .iter()
            .map(|f| {
                let version = state(f).map_or("none", |s| s.version.as_str());
                format!("{}:{version}", f.name)
            })
            .collect(),
        updated: feeds
            .iter()
            .filter_map(|f| last_success(state(f)))
            .min()
            .map(ids2_core::heartbeat::timestamp),
        stale: feeds
            .iter()
            .filter(|f| is_stale(f, state(f), now))
            .map(|f| f.name.clone())
            .collect(),
    }
}

/// The per-feed families in Prometheus text format 0.0.4; a configured feed that never updated
/// shows zeros (and is stale).
pub fn render_metrics(
    feeds: &[IntelFeed],
    states: &BTreeMap<String, IntelFeedState>,
    now: OffsetDateTime,
    out: &mut String,
) {
    let empty = IntelFeedState::default();
    let rows: Vec<(&IntelFeed, &IntelFeedState)> = feeds
        .iter()
        .map(|f| (f, states.get(&f.name).unwrap_or(&empty)))
        .collect();
    // Feed names are validated (lowercase letters, digits, '-') and kinds are fixed words: no
    // label value needs escaping.
    let mut family =
        |name: &str, kind: &str, help: &str, values: &mut dyn Iterator<Item = String>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for v in values {
                let _ = writeln!(out, "{name}{v}");
            }
        };
    family(
        "ids2_intel_feed_indicators",
        "gauge",
        "Indicators of the intel feed's active version, loaded in Suricata.",
        &mut rows.iter().map(|(f, s)| {
            format!(
                "{{feed=\"{}\",kind=\"{}\"}} {}",
                f.name,
                f.kind.name(),
                s.indicators
            )
        }),
    );
    family(
        "ids2_intel_feed_rejected",
        "gauge",
        "Entries of the intel feed's last good download left out: not a valid indicator, covered by an allowlist, or of another indicator kind.",
        &mut rows.iter().flat_map(|(f, s)| {
            [
                ("invalid", s.invalid),
                ("allowlisted", s.allowlisted),
                ("other_kind", s.other_kind),
            ]
            .map(|(reason, n)| format!("{{feed=\"{}\",reason=\"{reason}\"}} {n}", f.name))
        }),
    );
    family(
        "ids2_intel_feed_last_success_timestamp_seconds",
        "gauge",
        "When the intel feed last updated successfully (Unix time; 0 if never).",
        &mut rows.iter().map(|(f, s)| {
            let t = last_success(Some(s)).map_or(0, OffsetDateTime::unix_timestamp);
            format!("{{feed=\"{}\"}} {t}", f.name)
        }),
    );
    family(
        "ids2_intel_feed_update_failures_total",
        "counter",
        "Updates of the intel feed that failed (download, format or size); each kept the last good version.",
        &mut rows
            .iter()
            .map(|(f, s)| format!("{{feed=\"{}\"}} {}", f.name, s.failures)),
    );
    family(
        "ids2_intel_feed_stale",
        "gauge",
        "1 when the intel feed has not updated successfully within twice its interval_secs.",
        &mut rows.iter().map(|(f, s)| {
            let stale = is_stale(f, Some(s), now);
            format!("{{feed=\"{}\"}} {}", f.name, u8::from(stale))
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ids2_core::config::{FeedFormat, IndicatorKind, Severity};
    use time::macros::datetime;

    fn feed(name: &str, kind: IndicatorKind, interval_secs: u32) -> IntelFeed {
        IntelFeed {
            name: name.into(),
            source: format!("file:///srv/{name}.txt"),
            format: FeedFormat::Plain,
            column: None,
            kind,
            severity: Severity::High,
            interval_secs,
        }
    }

    fn states() -> BTreeMap<String, IntelFeedState> {
        let fresh = IntelFeedState {
            name: "c2".into(),
            kind: "ip".into(),
            version: "0123456789abcdef".into(),
            indicators: 1200,
            invalid: 3,
            allowlisted: 1,
            updated: "2026-12-03T09:30:00Z".into(),
            attempted: "2026-12-03T09:30:00Z".into(),
            ..Default::default()
        };
        // Last good at 06:00, failing every hourly try since.
        let failing = IntelFeedState {
            name: "bad".into(),
            kind: "domain".into(),
            version: "fedcba9876543210".into(),
            indicators: 40,
            updated: "2026-12-03T06:00:00Z".into(),
            attempted: "2026-12-03T09:00:00Z".into(),
            error: Some("HTTP 404".into()),
            failures: 3,
            ..Default::default()
        };
        [("c2".to_string(), fresh), ("bad".to_string(), failing)].into()
    }

    fn feeds() -> Vec<IntelFeed> {
        vec![
            feed("c2", IndicatorKind::Ip, 3600),
            feed("bad", IndicatorKind::Domain, 3600),
            feed("new", IndicatorKind::Ja3, 3600),
        ]
    }

    const NOW: OffsetDateTime = datetime!(2026-12-03 10:00:00 UTC);

    #[test]
    fn staleness_is_two_intervals_without_success() {
        let f = feed("c2", IndicatorKind::Ip, 3600);
        let at = |t: &str| IntelFeedState {
            updated: t.into(),
            ..Default::default()
        };
        assert!(!is_stale(&f, Some(&at("2026-12-03T08:00:00Z")), NOW));
        assert!(is_stale(&f, Some(&at("2026-12-03T07:59:59Z")), NOW));
        assert!(is_stale(&f, Some(&at("")), NOW), "never updated");
        assert!(is_stale(&f, None, NOW), "never tried");
    }

    #[test]
    fn the_heartbeat_names_versions_the_oldest_success_and_stale_feeds() {
        let s = summary(&feeds(), &states(), NOW);
        assert_eq!(
            s.versions,
            ["c2:0123456789abcdef", "bad:fedcba9876543210", "new:none"]
        );
        assert_eq!(s.updated.as_deref(), Some("2026-12-03T06:00:00.000Z"));
        assert_eq!(s.stale, ["bad", "new"]);
        assert_eq!(summary(&[], &states(), NOW), IntelSummary::default());
    }

    #[test]
    fn metrics_per_feed() {
        let mut out = String::new();
        render_metrics(&feeds(), &states(), NOW, &mut out);
        for line in [
            "ids2_intel_feed_indicators{feed=\"c2\",kind=\"ip\"} 1200\n",
            "ids2_intel_feed_indicators{feed=\"new\",kind=\"ja3\"} 0\n",
            "ids2_intel_feed_rejected{feed=\"c2\",reason=\"invalid\"} 3\n",
            "ids2_intel_feed_rejected{feed=\"c2\",reason=\"allowlisted\"} 1\n",
            "ids2_intel_feed_rejected{feed=\"c2\",reason=\"other_kind\"} 0\n",
            "ids2_intel_feed_last_success_timestamp_seconds{feed=\"c2\"} 1796290200\n",
            "ids2_intel_feed_last_success_timestamp_seconds{feed=\"new\"} 0\n",
            "ids2_intel_feed_update_failures_total{feed=\"bad\"} 3\n",
            "ids2_intel_feed_stale{feed=\"c2\"} 0\n",
            "ids2_intel_feed_stale{feed=\"bad\"} 1\n",
            "ids2_intel_feed_stale{feed=\"new\"} 1\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
        assert_eq!(out.matches("# TYPE ").count(), 5, "{out}");
        assert_eq!(out.matches("ids2_intel_feed_indicators{").count(), 3);
    }
}
