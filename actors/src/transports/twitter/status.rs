//! The `twitter` status component: one state, published when it changes.
//!
//! | state | level / kind | when |
//! |---|---|---|
//! | ready | `ok` / `ready` | the first request that succeeded (`GET /2/users/me` at start) |
//! | rate limited | `degraded` / `rate_limited` | a 429: details `endpoint`, `reset_at` (epoch seconds), `retry_in` (seconds) |
//! | auth failed | `down` / `auth_failed` | a 401: the credentials are wrong or revoked |
//! | failing | `degraded` / `provider_failing` | a 5xx, a timeout, no connection |
//! | recovered | `ok` / `provider_ok` | a request succeeded after any of the three above |
use std::cell::Cell;
use std::time::Duration;

use serde_json::{json, Map};

use crate::message::StatusLevel;
use crate::transport::TransportContext;
use crate::transports::report_status;

/// The name of the component.
pub const COMPONENT: &str = "twitter";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Starting,
    Ok,
    RateLimited,
    AuthFailed,
    Failing,
}

/// The channel's last published state.
#[derive(Debug)]
pub struct Condition {
    state: Cell<State>,
}

impl Default for Condition {
    fn default() -> Self {
        Condition {
            state: Cell::new(State::Starting),
        }
    }
}

impl Condition {
    /// A request succeeded.
    pub async fn ok(&self, ctx: &TransportContext) {
        let (kind, message) = match self.state.replace(State::Ok) {
            State::Ok => return,
            State::Starting => ("ready", "Connected to the X API"),
            _ => ("provider_ok", "The X API accepts requests again"),
        };
        let level = StatusLevel::Ok;
        report_status(ctx, COMPONENT, level, kind, message.into(), Map::new()).await;
    }

    /// The API answered 429 for `endpoint`; it resets in `after`.
    pub async fn rate_limited(&self, ctx: &TransportContext, endpoint: &str, after: Duration) {
        self.state.set(State::RateLimited);
        // The API's reset is a whole second and `after` was measured from it: rounding
        // gives that second back.
        let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 2);
        let reset_at = (chrono::Utc::now().timestamp_millis() + after_ms + 500) / 1000;
        let details = Map::from_iter([
            ("endpoint".to_owned(), json!(endpoint)),
            ("reset_at".to_owned(), json!(reset_at)),
            ("retry_in".to_owned(), json!(after.as_secs())),
        ]);
        let message = format!(
            "Rate limited by the X API on {endpoint}: paused for {}s",
            after.as_secs()
        );
        let level = StatusLevel::Degraded;
        report_status(ctx, COMPONENT, level, "rate_limited", message, details).await;
    }

    /// The API refused the credentials.
    pub async fn auth_failed(&self, ctx: &TransportContext, reason: &str) {
        if self.state.replace(State::AuthFailed) == State::AuthFailed {
            return;
        }
        let message = format!("The X API refused the channel's credentials: {reason}");
        let details = Map::from_iter([("reason".to_owned(), json!(reason))]);
        let level = StatusLevel::Down;
        report_status(ctx, COMPONENT, level, "auth_failed", message, details).await;
    }

    /// A request failed for a passing reason.
    pub async fn failing(&self, ctx: &TransportContext, reason: &str) {
        if self.state.replace(State::Failing) == State::Failing {
            return;
        }
        let message = format!("Requests to the X API fail: {reason}");
        let details = Map::from_iter([("reason".to_owned(), json!(reason))]);
        let level = StatusLevel::Degraded;
        report_status(ctx, COMPONENT, level, "provider_failing", message, details).await;
    }
}
