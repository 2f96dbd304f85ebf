//! The health of a channel's provider, published as the status of one component.

use serde_json::{json, Map, Value};

use crate::message::StatusLevel;
use crate::transport::{SendError, TransportContext};
use crate::transports::report_status;

/// The health of a channel's provider, published as a status of one component, once per
/// change:
///
/// | state | level / kind | when |
/// |---|---|---|
/// | ready | `ok` / `ready` | [`ready`](Health::ready) at start, or the first success |
/// | failing | `degraded` / `provider_failing` | `threshold` requests in a row failed (a 5xx, a timeout, a refused connection, a throttle) |
/// | auth failed | `down` / `auth_failed` | the provider refused the credentials (a 401) |
/// | rate limited | `degraded` / `rate_limited` | the provider's rate limit is used up, until its reset |
/// | recovered | `ok` / `provider_ok` | the next success after any of the three above |
#[derive(Debug)]
pub struct Health {
    component: &'static str,
    threshold: u32,
    failures: std::cell::Cell<u32>,
    condition: std::cell::Cell<Condition>,
}

/// The last published state of a [`Health`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Condition {
    Starting,
    Ok,
    Failing,
    AuthFailed,
    RateLimited,
}

impl Health {
    /// Health of `component`, degraded after `threshold` failures in a row.
    pub fn new(component: &'static str, threshold: u32) -> Self {
        Health {
            component,
            threshold: threshold.max(1),
            failures: std::cell::Cell::new(0),
            condition: std::cell::Cell::new(Condition::Starting),
        }
    }

    /// Publishes `ok`/`ready` (when a transport starts).
    pub async fn ready(&self, ctx: &TransportContext, message: String) {
        self.failures.set(0);
        self.condition.set(Condition::Ok);
        self.publish(ctx, StatusLevel::Ok, "ready", message, Map::new())
            .await;
    }

    /// Notes a request's outcome; publishes a status when the health changes. Rejections
    /// are about the message, not the provider's health, and count as successes here.
    pub async fn note(&self, ctx: &TransportContext, outcome: &Result<(), SendError>) {
        match outcome {
            Ok(()) | Err(SendError::Rejected(_)) => {
                self.failures.set(0);
                let (kind, message) = match self.condition.replace(Condition::Ok) {
                    Condition::Ok => return,
                    Condition::Starting => ("ready", "The provider accepts requests"),
                    _ => ("provider_ok", "The provider accepts requests again"),
                };
                self.publish(ctx, StatusLevel::Ok, kind, message.to_owned(), Map::new())
                    .await;
            }
            Err(e) => {
                let failures = self.failures.get().saturating_add(1);
                self.failures.set(failures);
                if failures < self.threshold
                    || self.condition.replace(Condition::Failing) == Condition::Failing
                {
                    return;
                }
                let message = match failures {
                    1 => format!("A provider request failed: {e}"),
                    n => format!("{n} provider requests in a row failed: {e}"),
                };
                let details = Map::from_iter([
                    ("failures".to_owned(), json!(failures)),
                    ("reason".to_owned(), json!(e.to_string())),
                ]);
                let level = StatusLevel::Degraded;
                self.publish(ctx, level, "provider_failing", message, details)
                    .await;
            }
        }
    }

    /// The provider refused the channel's credentials (`answer` says how): publishes
    /// `down`/`auth_failed` (details: `reason`) unless already said, and `ok`/`provider_ok`
    /// at the next accepted request.
    pub async fn credentials_refused(&self, ctx: &TransportContext, answer: &str) {
        self.failures.set(0);
        if self.condition.replace(Condition::AuthFailed) == Condition::AuthFailed {
            return;
        }
        let message = format!("The provider refused the channel's credentials: {answer}");
        let details = Map::from_iter([("reason".to_owned(), json!(answer))]);
        self.publish(ctx, StatusLevel::Down, "auth_failed", message, details)
            .await;
    }

    /// The provider's rate limit is used up: publishes `degraded`/`rate_limited` with
    /// `message` and `details` (what is paused, until when), and `ok`/`provider_ok` at the
    /// next accepted request.
    pub async fn rate_limited(
        &self,
        ctx: &TransportContext,
        message: String,
        details: Map<String, Value>,
    ) {
        self.condition.set(Condition::RateLimited);
        self.publish(ctx, StatusLevel::Degraded, "rate_limited", message, details)
            .await;
    }

    async fn publish(
        &self,
        ctx: &TransportContext,
        level: StatusLevel,
        kind: &str,
        message: String,
        details: Map<String, Value>,
    ) {
        report_status(ctx, self.component, level, kind, message, details).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Health says each change once: ready, failing after the threshold, auth failed (not
    /// again while it lasts), rate limited, and recovered after each.
    #[test]
    fn health_publishes_each_change_once() {
        use crate::transports::testkit::{run_local, RecordingHost};
        run_local(|| async {
            let host = RecordingHost::new();
            let (ctx, _failures) = host.context("ch");
            let health = Health::new("api", 2);
            let retry = Err(SendError::Retry {
                reason: "503".into(),
                after: Duration::from_secs(1),
            });
            health.note(&ctx, &Ok(())).await;
            health.note(&ctx, &retry).await;
            health.note(&ctx, &retry).await;
            health.note(&ctx, &retry).await;
            health
                .note(&ctx, &Err(SendError::Rejected("bad".into())))
                .await;
            health.credentials_refused(&ctx, "401").await;
            health.credentials_refused(&ctx, "401").await;
            health.note(&ctx, &Ok(())).await;
            health.rate_limited(&ctx, "wait".into(), Map::new()).await;
            health.note(&ctx, &Ok(())).await;
            health.note(&ctx, &Ok(())).await;
            // Every status is recorded by the time its `await` returns.
            let statuses = host.statuses().all();
            assert!(statuses.iter().all(|(_, status)| status.component == "api"));
            let kinds: Vec<&str> = statuses.iter().map(|(_, s)| s.kind.as_str()).collect();
            assert_eq!(
                kinds,
                [
                    "ready",
                    "provider_failing",
                    "provider_ok",
                    "auth_failed",
                    "provider_ok",
                    "rate_limited",
                    "provider_ok"
                ]
            );
        });
    }
}
