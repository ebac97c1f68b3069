//! The daily check budget: our own count per UTC day (`daily_quota`), tightened by what
//! AbuseIPDB says (`X-RateLimit-Remaining` 0 until `X-RateLimit-Reset`) and paused after a
//! 429 for its `Retry-After`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::RateLimit;

/// Checks left today and any pause in force.
#[derive(Debug, Clone)]
pub struct Quota {
    per_day: u32,
    day: u64,
    used: u32,
    paused_until: Option<Instant>,
}

fn utc_day(wall: SystemTime) -> u64 {
    wall.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 86_400
}

impl Quota {
    /// A fresh budget of `per_day` checks.
    pub fn new(per_day: u32) -> Self {
        Self {
            per_day,
            day: 0,
            used: 0,
            paused_until: None,
        }
    }

    fn roll(&mut self, wall: SystemTime) {
        let day = utc_day(wall);
        if day != self.day {
            self.day = day;
            self.used = 0;
        }
    }

    /// Takes one check if the budget and any pause allow it at `now` (`wall` decides the day).
    pub fn try_take(&mut self, now: Instant, wall: SystemTime) -> bool {
        self.roll(wall);
        if self.paused_until.is_some_and(|until| now < until) {
            return false;
        }
        if self.used >= self.per_day {
            return false;
        }
        self.used += 1;
        true
    }

    /// Checks left today by our own count.
    pub fn remaining(&mut self, wall: SystemTime) -> u64 {
        self.roll(wall);
        u64::from(self.per_day - self.used.min(self.per_day))
    }

    /// Applies AbuseIPDB's headers: nothing left means no check until the reset.
    pub fn observe(&mut self, limits: &RateLimit, now: Instant) {
        if limits.remaining == Some(0) {
            self.back_off(limits.reset_in.unwrap_or(Duration::from_secs(3600)), now);
        }
    }

    /// No check before `now + wait`.
    pub fn back_off(&mut self, wait: Duration, now: Instant) {
        let until = now + wait;
        if self.paused_until.is_none_or(|u| u < until) {
            self.paused_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_budget_is_kept_and_renews_at_utc_midnight() {
        let mut q = Quota::new(3);
        let now = Instant::now();
        let day1 = UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + 10);
        assert!((0..3).all(|_| q.try_take(now, day1)));
        assert!(
            !q.try_take(now, day1),
            "the fourth check of the day is refused"
        );
        assert_eq!(q.remaining(day1), 0);
        let day2 = day1 + Duration::from_secs(86_400);
        assert!(q.try_take(now, day2), "a new UTC day has a new budget");
        assert_eq!(q.remaining(day2), 2);
    }

    #[test]
    fn rate_limit_headers_and_429_pause_checks() {
        let mut q = Quota::new(1000);
        let now = Instant::now();
        let wall = SystemTime::now();
        q.observe(
            &RateLimit {
                limit: Some(1000),
                remaining: Some(0),
                reset_in: Some(Duration::from_secs(60)),
            },
            now,
        );
        assert!(!q.try_take(now + Duration::from_secs(59), wall));
        assert!(q.try_take(now + Duration::from_secs(61), wall));
        q.back_off(Duration::from_secs(30), now + Duration::from_secs(61));
        assert!(!q.try_take(now + Duration::from_secs(90), wall));
        assert!(q.try_take(now + Duration::from_secs(92), wall));
        // Remaining > 0 does not pause.
        q.observe(
            &RateLimit {
                limit: Some(1000),
                remaining: Some(5),
                reset_in: None,
            },
            now + Duration::from_secs(92),
        );
        assert!(q.try_take(now + Duration::from_secs(92), wall));
    }
}
