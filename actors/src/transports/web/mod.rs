//! The HTTP core every HTTP provider's channel type shares: one way to make a provider
//! request, log it and judge its answer, and one way to answer a provider's webhook.
//!
//! Pieces:
//!
//! - [`client`]: the one process-wide [`reqwest::Client`] (connection pools are shared by
//!   every HTTP channel; per-request timeouts come from each channel's config);
//! - [`ProviderRequest`] and [`exchange`]: one provider request for one message, written to
//!   the channel log twice (the request going out, the response coming in), both tagged with
//!   the message id and with the channel's secrets masked by a [`Redactor`];
//! - [`submit`]: [`exchange`], judged by the [`OutcomeRules`] and noted by [`Health`]: what
//!   a provider module's `send` calls before reading the provider's id from the answer;
//! - [`OutcomeRules`]: what an answer means (see the table below), overridable per channel;
//! - [`Health`]: the status of a provider's component (`http`, `twilio`, `twitter`, …):
//!   `degraded` after repeated failures or while rate limited, `down` when the credentials
//!   are refused, `ok` again after the next success; each change said once;
//! - [`bad_webhook`]: the answer to a webhook payload we cannot use (an error answer for the
//!   provider and a warning in the channel log, never a panic or a 500);
//! - [`inbound_message`], [`keep_inbound`] and [`record_report`]: an inbound SMS or a
//!   delivery report from a webhook, logged with its request and handed to the daemon, with
//!   503 for the provider when it cannot be kept (so that it sends it again).
//!
//! # Outcome rules
//!
//! | provider answer | outcome |
//! |---|---|
//! | a status listed in the channel's `accepted_statuses` / `rejected_statuses` / `retry_statuses` | accepted / [`SendError::Rejected`] / [`SendError::Retry`] |
//! | 2xx | accepted |
//! | 429 | [`SendError::Throttled`] for `Retry-After` (seconds or an HTTP date), else the default pause |
//! | 401 (through [`submit`]) | [`SendError::Rejected`], and the component's status `down`/`auth_failed` until the next accepted request |
//! | 5xx, a timeout, a connection error | [`SendError::Retry`] after the channel's retry delay |
//! | any other status (4xx, 3xx, 1xx) | [`SendError::Rejected`] naming the status and the start of the body |
//!
//! [`SendError::Rejected`]: crate::transport::SendError::Rejected
//! [`SendError::Retry`]: crate::transport::SendError::Retry
//! [`SendError::Throttled`]: crate::transport::SendError::Throttled
//!
//! # Why reqwest here
//!
//! DESIGN.md keeps HTTP *servers* out of `junebug-actors`, not HTTP clients toward providers
//! (STYLE.md habit 6). reqwest is the client the daemon already uses for callbacks, built with
//! the same rustls stack, so HTTP channel types add no second HTTP stack to the build.

mod health;
mod outcome;
mod redact;
mod request;
mod webhooks;

pub use health::Health;
pub use outcome::*;
pub use redact::*;
pub use request::*;
pub use webhooks::*;
