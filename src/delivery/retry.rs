//! When a failed callback is tried again: exponential backoff with jitter, up to a number of
//! attempts and an age, and only for failures that may pass (connection errors, timeouts,
//! 5xx, 408 and 429); other 4xx answers are final.
use std::time::Duration;

/// How failed callbacks are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No attempt is made once the callback is this old.
    pub max_age: Duration,
    /// Wait after the first failure; doubles after each further one.
    pub initial: Duration,
    /// Longest wait between two attempts.
    pub max_delay: Duration,
}

/// Why an attempt failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// For the channel log.
    pub detail: String,
    /// Connection errors, timeouts, 5xx, 408 and 429 are worth another try.
    pub retryable: bool,
}

impl Failure {
    /// A failure from an HTTP status that is not 2xx.
    pub fn status(code: u16) -> Failure {
        Failure {
            detail: format!("HTTP {code}"),
            retryable: code >= 500 || code == 408 || code == 429,
        }
    }

    /// A failure to get an answer at all (refused, reset, timed out).
    pub fn transport(detail: impl Into<String>) -> Failure {
        Failure {
            detail: detail.into(),
            retryable: true,
        }
    }

    /// A callback that can never be sent as it is (an unusable URL).
    pub fn permanent(detail: impl Into<String>) -> Failure {
        Failure {
            detail: detail.into(),
            retryable: false,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempts + 1`, after `attempts` failed ones; `None` when the
    /// callback must be given up (dead-lettered): final failure, attempts used up, or too old
    /// by the time the next attempt would be due. Up to half the delay is taken off at random
    /// so callbacks that failed together do not all come back at once.
    pub fn next_delay(&self, failure: &Failure, attempts: u32, age: Duration) -> Option<Duration> {
        if !failure.retryable || attempts >= self.max_attempts {
            return None;
        }
        let exponent = attempts.saturating_sub(1).min(30);
        let full = self
            .initial
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let delay = full.mul_f64(1.0 - fastrand::f64() * 0.5);
        (age + delay < self.max_age).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            max_age: Duration::from_secs(3600),
            initial: Duration::from_secs(30),
            max_delay: Duration::from_secs(1800),
        }
    }

    /// 5xx, 408, 429 and transport errors are retried; other 4xx are final.
    #[test]
    fn which_failures_are_retried() {
        for code in [500, 502, 503, 408, 429] {
            assert!(Failure::status(code).retryable, "{code}");
        }
        for code in [400, 401, 403, 404, 410, 422] {
            assert!(!Failure::status(code).retryable, "{code}");
        }
        assert!(Failure::transport("connection refused").retryable);
        assert!(!Failure::permanent("bad URL").retryable);
    }

    /// Delays double from the initial one, with at most half taken off.
    #[test]
    fn delays_double_with_jitter() {
        let p = policy();
        let failure = Failure::status(503);
        for (attempts, full) in [(1u32, 30u64), (2, 60), (3, 120), (6, 960), (7, 1800)] {
            let d = p.next_delay(&failure, attempts, Duration::ZERO).unwrap();
            assert!(
                d > Duration::from_secs(full / 2) && d <= Duration::from_secs(full),
                "{attempts}: {d:?}"
            );
        }
    }

    /// Attempts and age are bounded; a final failure is never retried.
    #[test]
    fn gives_up_after_the_last_attempt_or_the_age() {
        let p = policy();
        let failure = Failure::status(503);
        assert_eq!(p.next_delay(&failure, 8, Duration::ZERO), None);
        assert_eq!(p.next_delay(&failure, 2, Duration::from_secs(3599)), None);
        assert_eq!(p.next_delay(&Failure::status(404), 1, Duration::ZERO), None);
    }

    /// The defaults spread eight attempts over about an hour.
    #[test]
    fn defaults_span_about_an_hour() {
        let p = policy();
        let failure = Failure::status(503);
        let full: u64 = (1..8).map(|a| 30u64 << (a - 1)).map(|s| s.min(1800)).sum();
        assert!((3000..=4500).contains(&full), "{full}");
        assert!(p
            .next_delay(&failure, 7, Duration::from_secs(1000))
            .is_some());
    }
}
