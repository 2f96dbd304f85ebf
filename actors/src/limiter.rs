//! The per-channel rate limiter: a token bucket.
//!
//! `count` tokens per `window`: the bucket holds at most `count` tokens (so a burst of up to
//! `count` messages may go at once after a quiet spell) and refills continuously at
//! `count / window` tokens per second. A message costs one token per part. A channel without
//! a limit (no count, or 0) is never held back. Time is passed in, so tests need no clock.
use std::time::{Duration, Instant};

/// A rate limit: `count` messages per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages (parts) per window.
    pub count: u32,
    /// The window.
    pub window: Duration,
}

/// A token bucket, or no limit at all.
#[derive(Debug)]
pub struct RateLimiter {
    limit: Option<RateLimit>,
    tokens: f64,
    last_refill: Instant,
}

impl RateLimiter {
    /// A limiter for `limit` (`None`: unlimited), starting with a full bucket.
    pub fn new(limit: Option<RateLimit>, now: Instant) -> Self {
        let limit = limit.filter(|l| l.count > 0 && !l.window.is_zero());
        RateLimiter {
            tokens: limit.map_or(0.0, |l| f64::from(l.count)),
            limit,
            last_refill: now,
        }
    }

    /// Changes the limit in place (no restart needed); the tokens saved so far are kept,
    /// capped at the new bucket size.
    pub fn set_limit(&mut self, limit: Option<RateLimit>, now: Instant) {
        self.refill(now);
        let limit = limit.filter(|l| l.count > 0 && !l.window.is_zero());
        self.tokens = match (self.limit, limit) {
            (Some(_), Some(new)) => self.tokens.min(f64::from(new.count)),
            (None, Some(new)) => f64::from(new.count),
            (_, None) => 0.0,
        };
        self.limit = limit;
    }

    /// Takes `cost` tokens if they are there; otherwise says how long until they will be.
    /// A cost larger than the bucket is charged as a full bucket, so it still goes through.
    pub fn try_acquire(&mut self, cost: u32, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        self.refill(now);
        let cost = f64::from(cost.min(limit.count));
        if self.tokens >= cost {
            self.tokens -= cost;
            return Ok(());
        }
        let per_second = f64::from(limit.count) / limit.window.as_secs_f64();
        Err(Duration::from_secs_f64((cost - self.tokens) / per_second))
    }

    fn refill(&mut self, now: Instant) {
        if let Some(limit) = self.limit {
            let elapsed = now
                .saturating_duration_since(self.last_refill)
                .as_secs_f64();
            let per_second = f64::from(limit.count) / limit.window.as_secs_f64();
            self.tokens = (self.tokens + elapsed * per_second).min(f64::from(limit.count));
        }
        self.last_refill = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(count: u32, secs: u64) -> Option<RateLimit> {
        Some(RateLimit {
            count,
            window: Duration::from_secs(secs),
        })
    }

    /// Without a limit every message goes at once.
    #[test]
    fn unlimited_never_waits() {
        let now = Instant::now();
        for l in [None, limit(0, 1), limit(5, 0)] {
            let mut rl = RateLimiter::new(l, now);
            assert!((0..10_000).all(|_| rl.try_acquire(1, now).is_ok()));
        }
    }

    /// A full bucket allows a burst of `count`, then one message per `window / count`.
    #[test]
    fn bucket_allows_burst_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(limit(10, 1), t0);
        assert!((0..10).all(|_| rl.try_acquire(1, t0).is_ok()));
        let wait = rl.try_acquire(1, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(rl.try_acquire(1, t0 + Duration::from_millis(100)).is_ok());
        assert!(rl.try_acquire(1, t0 + Duration::from_millis(150)).is_err());
    }

    /// Over a long run the limiter admits `count` per window (plus the initial burst).
    #[test]
    fn keeps_to_the_limit_over_time() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(limit(100, 1), t0);
        let mut sent = 0;
        let mut now = t0;
        while now < t0 + Duration::from_secs(10) {
            match rl.try_acquire(1, now) {
                Ok(()) => sent += 1,
                Err(wait) => now += wait,
            }
        }
        assert!((1_000..=1_101).contains(&sent), "{sent}");
    }

    /// A multi-part message costs one token per part.
    #[test]
    fn parts_cost_one_token_each() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(limit(4, 1), t0);
        assert!(rl.try_acquire(3, t0).is_ok());
        assert!(rl.try_acquire(3, t0).is_err());
        assert!(rl.try_acquire(1, t0).is_ok());
    }

    /// Changing the limit takes effect at once.
    #[test]
    fn limit_can_change_without_restart() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(limit(1, 60), t0);
        assert!(rl.try_acquire(1, t0).is_ok());
        assert!(rl.try_acquire(1, t0).is_err());
        rl.set_limit(None, t0);
        assert!(rl.try_acquire(1, t0).is_ok());
    }
}
