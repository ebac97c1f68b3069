//! What a notification says: one alert or a digest, rendered as generic JSON, Slack-compatible
//! JSON (`{"text": …}`) or an e-mail subject and plain-text body.
//!
//! Every string from EVE (signature, category, protocol, timestamp) was written, directly or
//! not, by whoever the sensor watches. Each goes out through [`untrusted`]: control characters
//! (CR and LF first: e-mail header and body-line injection) shown escaped, never raw, and cut at
//! a length cap with an ellipsis, so a 1 MB signature makes a short message. The Slack text is
//! also escaped the way Slack requires (`&`, `<`, `>`: no `<!channel>` mention, no `<url|link>`)
//! and sent with `mrkdwn` off, so `*`, `_`, `~` and backticks stay literal.

use serde_json::{json, Value};

use super::alert::Alert;
use super::limit::Digest;

/// Signatures listed in a digest; the rest are summed up in one line.
const DIGEST_TOP: usize = 10;
/// Longest signature or category shown, in characters (an ellipsis marks a cut).
pub const TEXT_MAX_CHARS: usize = 200;
/// Longest protocol or timestamp shown, in characters: Suricata writes far fewer.
pub const SHORT_MAX_CHARS: usize = 40;

/// An attacker-controlled string made safe for any of the renderings: control characters and
/// the Unicode line separators and direction overrides written as `\n`, `\r`, `\t` or
/// `\u{…}`, and at most `max_chars` characters, then `…` when cut.
pub fn untrusted(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 2) + 3);
    let mut len = 0;
    for c in s.chars() {
        let escaped = match c {
            '\n' => Some("\\n".to_string()),
            '\r' => Some("\\r".to_string()),
            '\t' => Some("\\t".to_string()),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{feff}'
                )
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c) =>
            {
                Some(format!("\\u{{{:x}}}", c as u32))
            }
            _ => None,
        };
        let width = escaped.as_ref().map_or(1, |e| e.len());
        if len + width > max_chars {
            out.push('…');
            return out;
        }
        len += width;
        match escaped {
            Some(e) => out.push_str(&e),
            None => out.push(c),
        }
    }
    out
}

/// Slack's escaping of message text: without it `<!channel>` pings everyone and
/// `<https://…|text>` makes a disguised link.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The sensor a notification comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensor {
    /// `sensor.id`.
    pub id: String,
    /// `sensor.name`.
    pub name: String,
}

/// One notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A single alert.
    Alert(Alert),
    /// The alerts the rate limit held back.
    Digest(Digest),
}

impl Message {
    /// A one-line summary (e-mail subject).
    pub fn subject(&self, sensor: &Sensor) -> String {
        match self {
            Message::Alert(a) => format!(
                "[ids2 {}] {} alert: {}",
                untrusted(&sensor.name, TEXT_MAX_CHARS),
                a.level().name(),
                untrusted(&a.signature, TEXT_MAX_CHARS)
            ),
            Message::Digest(d) => format!(
                "[ids2 {}] digest: {} alerts held back by the rate limit",
                untrusted(&sensor.name, TEXT_MAX_CHARS),
                d.count
            ),
        }
    }

    /// Plain text: the Slack `text` and the e-mail body.
    pub fn text(&self, sensor: &Sensor) -> String {
        match self {
            Message::Alert(a) => {
                let mut t = format!(
                    "{} alert on sensor {} ({}): {} (sid {})\n{} → {} {}\nat {}",
                    a.level().name().to_uppercase(),
                    sensor.name,
                    sensor.id,
                    untrusted(&a.signature, TEXT_MAX_CHARS),
                    a.signature_id,
                    Alert::endpoint(a.src_ip, a.src_port),
                    Alert::endpoint(a.dest_ip, a.dest_port),
                    untrusted(&a.proto, SHORT_MAX_CHARS),
                    untrusted(&a.timestamp, SHORT_MAX_CHARS)
                );
                if !a.category.is_empty() {
                    t.push_str(&format!(
                        "\ncategory: {}",
                        untrusted(&a.category, TEXT_MAX_CHARS)
                    ));
                }
                t
            }
            Message::Digest(d) => {
                let mut t = format!(
                    "Sensor {} ({}): {} alerts between {} and {} were over the notification \
                     rate limit and are summarised here ({} distinct sources).",
                    sensor.name,
                    sensor.id,
                    d.count,
                    untrusted(&d.first_timestamp, SHORT_MAX_CHARS),
                    untrusted(&d.last_timestamp, SHORT_MAX_CHARS),
                    d.distinct_sources
                );
                for (sid, sig, n) in d.signatures.iter().take(DIGEST_TOP) {
                    let sig = untrusted(sig, TEXT_MAX_CHARS);
                    t.push_str(&format!("\n{n} × {sig} (sid {sid})"));
                }
                if d.signatures.len() > DIGEST_TOP {
                    // Saturating: the counts are the limiter's, but a sum must not panic.
                    let rest = d.signatures[DIGEST_TOP..]
                        .iter()
                        .fold(0u64, |sum, s| sum.saturating_add(s.2));
                    t.push_str(&format!(
                        "\n{rest} more from {} other signatures",
                        d.signatures.len() - DIGEST_TOP
                    ));
                }
                t
            }
        }
    }

    /// The generic webhook payload.
    pub fn generic_json(&self, sensor: &Sensor) -> Value {
        let sensor_json = json!({"id": sensor.id, "name": sensor.name});
        match self {
            Message::Alert(a) => json!({
                "type": "alert",
                "sensor": sensor_json,
                "timestamp": untrusted(&a.timestamp, SHORT_MAX_CHARS),
                "severity": a.level().name(),
                "alert": {
                    "signature_id": a.signature_id,
                    "signature": untrusted(&a.signature, TEXT_MAX_CHARS),
                    "category": untrusted(&a.category, TEXT_MAX_CHARS),
                    "severity": a.severity,
                },
                "source": {"ip": a.src_ip.to_string(), "port": a.src_port},
                "destination": {"ip": a.dest_ip.to_string(), "port": a.dest_port},
                "protocol": untrusted(&a.proto, SHORT_MAX_CHARS),
                // Suricata writes a number; anything else is not passed on.
                "flow_id": a.event.get("flow_id").filter(|v| v.is_u64()),
            }),
            Message::Digest(d) => json!({
                "type": "digest",
                "sensor": sensor_json,
                "count": d.count,
                "first_timestamp": untrusted(&d.first_timestamp, SHORT_MAX_CHARS),
                "last_timestamp": untrusted(&d.last_timestamp, SHORT_MAX_CHARS),
                "distinct_sources": d.distinct_sources,
                "signatures": d.signatures.iter().map(|(sid, sig, n)| json!({
                    "signature_id": sid, "signature": untrusted(sig, TEXT_MAX_CHARS), "count": n,
                })).collect::<Vec<_>>(),
            }),
        }
    }

    /// The Slack-compatible webhook payload: escaped text, formatting off.
    pub fn slack_json(&self, sensor: &Sensor) -> Value {
        json!({ "text": slack_escape(&self.text(sensor)), "mrkdwn": false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_escapes_controls_and_cuts_with_an_ellipsis() {
        assert_eq!(untrusted("ET POLICY x", 20), "ET POLICY x");
        assert_eq!(
            untrusted("a\r\nBcc: x@example.org\u{0}\u{202e}", 100),
            "a\\r\\nBcc: x@example.org\\u{0}\\u{202e}"
        );
        assert_eq!(untrusted(&"é".repeat(1000), 5), "ééééé…");
        // An escape is never cut in half.
        assert_eq!(untrusted("abcd\n", 5), "abcd…");
        assert_eq!(
            untrusted(&"A".repeat(1 << 20), TEXT_MAX_CHARS)
                .chars()
                .count(),
            TEXT_MAX_CHARS + 1
        );
    }

    #[test]
    fn digest_sum_of_huge_counts_saturates() {
        // Found by the notify fuzz target: the "N more" sum overflowed.
        let sig = |n| (1, "x".to_string(), n);
        let d = Digest {
            count: 1,
            first_timestamp: String::new(),
            last_timestamp: String::new(),
            distinct_sources: 1,
            signatures: std::iter::repeat_n(sig(u64::MAX), DIGEST_TOP + 2).collect(),
        };
        let sensor = Sensor {
            id: "s".into(),
            name: "s".into(),
        };
        let text = Message::Digest(d).text(&sensor);
        assert!(
            text.ends_with(&format!("\n{} more from 2 other signatures", u64::MAX)),
            "{text}"
        );
    }

    #[test]
    fn slack_text_cannot_mention_or_link() {
        assert_eq!(
            slack_escape("<!channel> <https://evil.example|bank> & co"),
            "&lt;!channel&gt; &lt;https://evil.example|bank&gt; &amp; co"
        );
    }
}
