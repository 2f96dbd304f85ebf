//! What a provider's answer means: the outcome rules, `Retry-After` and rate-limit headers.
use std::time::Duration;

use super::redact::cut;
use super::request::ProviderResponse;
use crate::transport::SendError;

/// How much of a provider's body a rejection reason quotes.
const EXCERPT: usize = 200;

/// What a provider's answer means: the shared defaults (module docs), with a channel's own
/// lists of statuses taking precedence.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeRules {
    /// Statuses that mean accepted besides 2xx.
    pub accepted: Vec<u16>,
    /// Statuses that mean rejected for good (checked after `accepted`).
    pub rejected: Vec<u16>,
    /// Statuses that mean try again later (checked after `rejected`).
    pub retry: Vec<u16>,
    /// The wait before a retry.
    pub retry_after: Duration,
    /// The pause after a 429 without a usable `Retry-After`.
    pub throttle_after: Duration,
}

impl Default for OutcomeRules {
    fn default() -> Self {
        OutcomeRules {
            accepted: Vec::new(),
            rejected: Vec::new(),
            retry: Vec::new(),
            retry_after: Duration::from_secs(5),
            throttle_after: Duration::from_secs(1),
        }
    }
}

/// The longest `Retry-After` honoured: a provider asking for more gets a minute (the channel
/// doubles its pause while the provider keeps asking, up to a minute anyway).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl OutcomeRules {
    /// Judges `response`: `Ok` when accepted.
    pub fn judge(&self, response: &ProviderResponse) -> Result<(), SendError> {
        let status = response.status;
        if self.accepted.contains(&status) {
            return Ok(());
        }
        if self.rejected.contains(&status) {
            return Err(self.rejected(response));
        }
        if self.retry.contains(&status) {
            return Err(SendError::Retry {
                reason: format!("the provider answered {}", describe(response)),
                after: self.retry_after,
            });
        }
        match status {
            200..=299 => Ok(()),
            429 => Err(SendError::Throttled {
                after: response
                    .header("retry-after")
                    .and_then(|value| retry_after(value, chrono::Utc::now()))
                    .map(|after| after.min(MAX_RETRY_AFTER))
                    .unwrap_or(self.throttle_after),
            }),
            500..=599 => Err(SendError::Retry {
                reason: format!("the provider answered {}", describe(response)),
                after: self.retry_after,
            }),
            _ => Err(self.rejected(response)),
        }
    }

    fn rejected(&self, response: &ProviderResponse) -> SendError {
        SendError::Rejected(format!("the provider refused it: {}", describe(response)))
    }
}

/// `HTTP 400: {"error": "bad number"}`: the status and the start of the body.
pub(super) fn describe(response: &ProviderResponse) -> String {
    let body = String::from_utf8_lossy(&response.body);
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if body.is_empty() {
        format!("HTTP {}", response.status)
    } else {
        format!("HTTP {}: {}", response.status, cut(&body, EXCERPT))
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (a date in the past means now).
pub fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or_default(),
    )
}

/// Whether `response` says the request's rate-limit window is used up: a 429, or
/// `x-rate-limit-remaining: 0` (the `x-rate-limit-*` headers of X/Twitter and others).
pub fn rate_limit_exhausted(response: &ProviderResponse) -> bool {
    response.status == 429
        || response
            .header("x-rate-limit-remaining")
            .is_some_and(|remaining| remaining.trim() == "0")
}

/// How long until the rate-limit window of `response` resets, from its
/// `x-rate-limit-reset` header (Unix epoch seconds); zero for a reset in the past, `None`
/// without a usable header.
pub fn rate_limit_reset(
    response: &ProviderResponse,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let reset: i64 = response.header("x-rate-limit-reset")?.trim().parse().ok()?;
    let at = chrono::DateTime::from_timestamp(reset, 0)?;
    Some((at - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> ProviderResponse {
        ProviderResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }
    /// The default rules: 2xx accepted, 429 throttled, 5xx retried, other 4xx rejected.
    #[test]
    fn default_outcome_rules() {
        let rules = OutcomeRules::default();
        assert_eq!(rules.judge(&response(200, &[], "")), Ok(()));
        assert_eq!(rules.judge(&response(202, &[], "")), Ok(()));
        assert_eq!(
            rules.judge(&response(429, &[("Retry-After", "7")], "")),
            Err(SendError::Throttled {
                after: Duration::from_secs(7)
            })
        );
        assert_eq!(
            rules.judge(&response(429, &[], "")),
            Err(SendError::Throttled {
                after: rules.throttle_after
            })
        );
        assert_eq!(
            rules.judge(&response(429, &[("retry-after", "99999")], "")),
            Err(SendError::Throttled {
                after: MAX_RETRY_AFTER
            })
        );
        assert!(matches!(
            rules.judge(&response(503, &[], "busy")),
            Err(SendError::Retry { after, .. }) if after == rules.retry_after
        ));
        let Err(SendError::Rejected(reason)) =
            rules.judge(&response(400, &[], "{\"error\":\n  \"bad number\"}"))
        else {
            panic!("400 is a rejection");
        };
        assert_eq!(
            reason,
            "the provider refused it: HTTP 400: {\"error\": \"bad number\"}"
        );
        assert!(matches!(
            rules.judge(&response(301, &[], "")),
            Err(SendError::Rejected(_))
        ));
    }

    /// A channel's lists take precedence over the defaults.
    #[test]
    fn configured_statuses_win() {
        let rules = OutcomeRules {
            accepted: vec![302],
            rejected: vec![200],
            retry: vec![404],
            ..Default::default()
        };
        assert_eq!(rules.judge(&response(302, &[], "")), Ok(()));
        assert!(matches!(
            rules.judge(&response(200, &[], "")),
            Err(SendError::Rejected(_))
        ));
        assert!(matches!(
            rules.judge(&response(404, &[], "")),
            Err(SendError::Retry { .. })
        ));
    }

    /// Rejection reasons quote at most a short excerpt of the body.
    #[test]
    fn rejection_reasons_are_short() {
        let long = "x".repeat(5000);
        let Err(SendError::Rejected(reason)) =
            OutcomeRules::default().judge(&response(422, &[], &long))
        else {
            panic!()
        };
        assert!(reason.len() < 300, "{}", reason.len());
        assert!(reason.ends_with('…'));
    }

    /// Retry-After in seconds or as an HTTP date; garbage is ignored.
    #[test]
    fn retry_after_forms() {
        let now = chrono::DateTime::parse_from_rfc2822("Sun, 06 Nov 1994 08:49:37 GMT")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    /// x-rate-limit-* headers: exhausted on 429 or remaining 0; the reset is an epoch second.
    #[test]
    fn rate_limit_headers() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let spent = response(
            200,
            &[
                ("x-rate-limit-remaining", "0"),
                ("x-rate-limit-reset", "1700000042"),
            ],
            "",
        );
        assert!(rate_limit_exhausted(&spent));
        assert_eq!(rate_limit_reset(&spent, now), Some(Duration::from_secs(42)));
        let fine = response(200, &[("x-rate-limit-remaining", "17")], "");
        assert!(!rate_limit_exhausted(&fine));
        assert_eq!(rate_limit_reset(&fine, now), None);
        let past = response(429, &[("x-rate-limit-reset", "1600000000")], "");
        assert!(rate_limit_exhausted(&past));
        assert_eq!(rate_limit_reset(&past, now), Some(Duration::ZERO));
        let garbage = response(429, &[("x-rate-limit-reset", "soon")], "");
        assert_eq!(rate_limit_reset(&garbage, now), None);
    }
}
