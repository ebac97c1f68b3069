//! Deduplication, the token-bucket rate limit and the digest of what the limit held back.
//! Pure: time comes in as arguments, so the tests drive it without sleeping.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::alert::Alert;

/// Most (signature, source, destination) keys remembered for deduplication; past it, expired
/// keys are forgotten first and, if that is not enough, the new key is not remembered (the
/// alert is still sent: the cap only bounds memory).
const DEDUPE_CAP: usize = 65_536;
/// Most distinct sources a digest counts exactly.
const DIGEST_SOURCES_CAP: usize = 4096;

/// What to do with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it now.
    Send,
    /// The same signature between the same addresses was notified within the window.
    Duplicate,
    /// Over the rate limit: it goes into the next digest.
    Deferred,
}

/// A summary of the alerts the rate limit held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// How many alerts were held back.
    pub count: u64,
    /// EVE timestamp of the first one.
    pub first_timestamp: String,
    /// EVE timestamp of the last one.
    pub last_timestamp: String,
    /// Distinct source addresses (exact up to 4096).
    pub distinct_sources: usize,
    /// (signature id, signature, count), most frequent first.
    pub signatures: Vec<(u64, String, u64)>,
}

#[derive(Debug, Default)]
struct Pending {
    count: u64,
    first: String,
    last: String,
    sources: HashSet<IpAddr>,
    signatures: BTreeMap<u64, (String, u64)>,
}

/// A token bucket: `capacity` tokens, refilled at `per_sec`.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Decides, alert by alert, whether to send, skip or defer.
#[derive(Debug)]
pub struct Limiter {
    window: Duration,
    seen: HashMap<(u64, IpAddr, IpAddr), Instant>,
    bucket: Bucket,
    pending: Pending,
}

impl Limiter {
    /// A limiter with a full bucket of `burst` tokens refilled at `per_minute`.
    pub fn new(window: Duration, burst: u32, per_minute: u32, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            window,
            seen: HashMap::new(),
            bucket: Bucket {
                capacity,
                per_sec: f64::from(per_minute.max(1)) / 60.0,
                tokens: capacity,
                at: now,
            },
            pending: Pending::default(),
        }
    }

    /// Dedupe first (a duplicate costs no token), then the rate limit.
    pub fn admit(&mut self, alert: &Alert, now: Instant) -> Admit {
        if !self.window.is_zero() {
            let key = (alert.signature_id, alert.src_ip, alert.dest_ip);
            if let Some(first) = self.seen.get(&key) {
                if now.saturating_duration_since(*first) < self.window {
                    return Admit::Duplicate;
                }
            }
            if self.seen.len() >= DEDUPE_CAP {
                self.prune(now);
            }
            if self.seen.len() < DEDUPE_CAP {
                self.seen.insert(key, now);
            }
        }
        if self.bucket.take(now) {
            return Admit::Send;
        }
        let p = &mut self.pending;
        if p.count == 0 {
            p.first = alert.timestamp.clone();
        }
        p.count += 1;
        p.last = alert.timestamp.clone();
        if p.sources.len() < DIGEST_SOURCES_CAP {
            p.sources.insert(alert.src_ip);
        }
        p.signatures
            .entry(alert.signature_id)
            .or_insert_with(|| (alert.signature.clone(), 0))
            .1 += 1;
        Admit::Deferred
    }

    /// Forgets dedupe keys older than the window.
    pub fn prune(&mut self, now: Instant) {
        let window = self.window;
        self.seen
            .retain(|_, first| now.saturating_duration_since(*first) < window);
    }

    /// The digest of everything deferred since the last one, if anything was.
    pub fn take_digest(&mut self) -> Option<Digest> {
        if self.pending.count == 0 {
            return None;
        }
        let p = std::mem::take(&mut self.pending);
        let mut signatures: Vec<(u64, String, u64)> = p
            .signatures
            .into_iter()
            .map(|(sid, (sig, n))| (sid, sig, n))
            .collect();
        signatures.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        Some(Digest {
            count: p.count,
            first_timestamp: p.first,
            last_timestamp: p.last,
            distinct_sources: p.sources.len(),
            signatures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(sid: u64, src: &str, ts: &str) -> Alert {
        Alert::from_eve(&json!({"event_type":"alert","timestamp":ts,"src_ip":src,
            "dest_ip":"192.168.1.1","alert":{"signature_id":sid,"signature":format!("sig {sid}"),"severity":1}}))
        .unwrap()
    }

    #[test]
    fn duplicates_within_window_only() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(60), 100, 60, t0);
        let a = alert(1, "203.0.113.1", "t0");
        assert_eq!(l.admit(&a, t0), Admit::Send);
        assert_eq!(l.admit(&a, t0 + Duration::from_secs(59)), Admit::Duplicate);
        assert_eq!(l.admit(&alert(1, "203.0.113.2", "t"), t0), Admit::Send);
        assert_eq!(l.admit(&alert(2, "203.0.113.1", "t"), t0), Admit::Send);
        assert_eq!(l.admit(&a, t0 + Duration::from_secs(60)), Admit::Send);
    }

    #[test]
    fn bucket_limits_then_refills_and_digest_summarises() {
        let t0 = Instant::now();
        // 3 at once, then one per 10 s.
        let mut l = Limiter::new(Duration::ZERO, 3, 6, t0);
        let got: Vec<Admit> = (0..8)
            .map(|i| {
                l.admit(
                    &alert(100 + i % 2, &format!("203.0.113.{i}"), &format!("t{i}")),
                    t0,
                )
            })
            .collect();
        assert_eq!(got.iter().filter(|a| **a == Admit::Send).count(), 3);
        assert_eq!(got.iter().filter(|a| **a == Admit::Deferred).count(), 5);
        assert_eq!(
            l.admit(&alert(1, "198.51.100.1", "x"), t0 + Duration::from_secs(5)),
            Admit::Deferred
        );
        assert_eq!(
            l.admit(&alert(1, "198.51.100.1", "y"), t0 + Duration::from_secs(11)),
            Admit::Send
        );
        let d = l.take_digest().unwrap();
        assert_eq!(d.count, 6);
        assert_eq!(
            (d.first_timestamp.as_str(), d.last_timestamp.as_str()),
            ("t3", "x")
        );
        assert_eq!(d.distinct_sources, 6);
        assert_eq!(d.signatures[0], (101, "sig 101".into(), 3));
        assert_eq!(d.signatures[1], (100, "sig 100".into(), 2));
        assert_eq!(d.signatures.iter().map(|s| s.2).sum::<u64>(), 6);
        assert!(l.take_digest().is_none());
    }

    #[test]
    fn duplicates_cost_no_token() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(600), 1, 1, t0);
        let a = alert(1, "203.0.113.1", "t");
        assert_eq!(l.admit(&a, t0), Admit::Send);
        for _ in 0..10 {
            assert_eq!(l.admit(&a, t0), Admit::Duplicate);
        }
        assert!(l.take_digest().is_none());
    }
}
