//! The `twitter` channel type: mentions and direct messages of one X (Twitter) account,
//! through the X API v2.
//!
//! Pieces:
//!
//! - [`config`]: [`TwitterConfig`] (vumi `TwitterTransport`'s keys where they exist) and
//!   [`TwitterSettings`];
//! - [`oauth`]: OAuth 1.0a user-context signatures, or an OAuth 2.0 user access token;
//! - [`api`]: the requests, per-endpoint rate limits (`x-rate-limit-*`), what answers mean;
//! - [`poll`]: the poller and its cursors (since_id) kept in the Store;
//! - [`mapping`]: tweets and DMs to and from messages;
//! - this module: the channel type and sending.
//!
//! # Wire contract
//!
//! | direction | request | Junebug's reading |
//! |---|---|---|
//! | start | `GET /2/users/me` | the account's id and username (unless configured); `ok`/`ready` |
//! | mentions (poll) | `GET /2/users/:id/mentions?since_id=<cursor>&expansions=author_id&user.fields=username&tweet.fields=author_id,conversation_id,created_at&max_results=100`, following `meta.next_token` | each tweet (not our own) becomes an inbound message from `@author`; the cursor becomes the newest id once all are kept |
//! | direct messages (poll) | `GET /2/dm_events?event_types=MessageCreate&expansions=sender_id&user.fields=username&dm_event.fields=…&max_results=100`, pages newest first until the cursor | each `MessageCreate` not sent by us becomes an inbound message from `@sender` |
//! | tweet | `POST /2/tweets` `{"text", "reply": {"in_reply_to_tweet_id"}}` | 201 `{"data": {"id"}}`: `submitted`, provider id = the tweet id |
//! | direct message | `POST /2/dm_conversations/with/:participant_id/messages` `{"text"}` (the id from the DM replied to, a numeric `to`, or `GET /2/users/by/username/:name` for `to: "@name"`) | 201 `{"data": {"dm_event_id"}}`: `submitted`, provider id = the DM event id |
//! | any | 429, or `x-rate-limit-remaining: 0` | the endpoint pauses until `x-rate-limit-reset`; a send is `Throttled` (the channel pauses), the poller waits |
//! | any | 401 | status `down`/`auth_failed`; a send is `rejected`; the poller keeps trying every `poll_interval` |
//! | any | 5xx, timeout | a send is retried after `retry_delay`; status `degraded`/`provider_failing` |
//! | any | other 4xx | a send is `rejected` with the status and the body's start |
//!
//! X sends no delivery reports: a message ends at `submitted`.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::message::Message;
use crate::transport::{
    ChannelType, ConfigError, SendError, Sent, TaskHandle, Transport, TransportContext,
    TransportError,
};
use crate::transports::parse_config;

pub mod api;
pub mod config;
pub mod mapping;
pub mod oauth;
pub mod poll;

pub use config::{TwitterConfig, TwitterSettings};

/// The status component of this channel type, published through [`crate::transports::web::Health`]:
/// `ok`/`ready` at the first request that succeeds (`GET /2/users/me` at start),
/// `degraded`/`rate_limited` on a 429 (details `endpoint`, `reset_at` in epoch seconds,
/// `retry_in` seconds), `down`/`auth_failed` on a 401, `degraded`/`provider_failing` on a
/// 5xx, a timeout or no connection, `ok`/`provider_ok` at the next success after those.
pub const COMPONENT: &str = "twitter";

use api::{Api, ApiError};
use mapping::{Outbound, Recipient};

/// The `twitter` channel type.
pub struct TwitterType;

impl ChannelType for TwitterType {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    fn description(&self) -> &'static str {
        "An X (Twitter) account: mentions and direct messages through the X API v2"
    }

    fn build(&self, _channel_id: &str, config: &Value) -> Result<Rc<dyn Transport>, ConfigError> {
        let settings = Rc::new(parse_config::<TwitterConfig>(config)?.validate()?);
        Ok(Rc::new(TwitterTransport {
            api: Rc::new(Api::new(settings.clone())),
            settings,
            running: RefCell::new(None),
        }))
    }
}

/// A `twitter` channel's transport; see the module docs.
pub struct TwitterTransport {
    settings: Rc<TwitterSettings>,
    api: Rc<Api>,
    /// Set by `start`, cleared by `stop`: the context and the poller.
    running: RefCell<Option<(TransportContext, TaskHandle)>>,
}

#[async_trait(?Send)]
impl Transport for TwitterTransport {
    /// Starts the poller, which identifies the account first; nothing here waits on the API.
    async fn start(&self, ctx: TransportContext) -> Result<(), TransportError> {
        let poller = ctx.spawn(
            "the X API poller",
            poll::run(ctx.clone(), self.api.clone(), self.settings.clone()),
        );
        *self.running.borrow_mut() = Some((ctx, poller));
        Ok(())
    }

    async fn send(&self, message: Message) -> Result<Sent, SendError> {
        let Some(ctx) = self.running.borrow().as_ref().map(|(ctx, _)| ctx.clone()) else {
            return Err(SendError::Retry {
                reason: "the twitter transport is not running".into(),
                after: Duration::from_secs(1),
            });
        };
        let id = message.message_id.as_str();
        let api = &self.api;
        let sent = match mapping::outbound(&message)? {
            Outbound::Tweet { text, in_reply_to } => {
                self.enabled(self.settings.tweets, "tweets")?;
                api.post_tweet(&ctx, id, &text, in_reply_to.as_deref())
                    .await
            }
            Outbound::DirectMessage { to, text } => {
                self.enabled(self.settings.dms, "dms")?;
                let participant = match to {
                    Recipient::Id(user_id) => Ok(user_id),
                    Recipient::Username(name) => api.user_id(&ctx, id, &name).await,
                };
                match participant {
                    Ok(user_id) => api.send_dm(&ctx, id, &user_id, &text).await,
                    Err(e) => Err(e),
                }
            }
        };
        match sent.map_err(ApiError::into_send_error)? {
            provider_id if provider_id.is_empty() => Ok(Sent::default()),
            provider_id => Ok(Sent::with_id(provider_id)),
        }
    }

    async fn stop(&self) {
        self.running.borrow_mut().take();
    }
}

impl TwitterTransport {
    /// Refuses a kind of message the channel's `endpoints` leave out.
    fn enabled(&self, on: bool, endpoint: &str) -> Result<(), SendError> {
        if on {
            Ok(())
        } else {
            Err(SendError::Rejected(format!(
                "this channel's endpoints have no {endpoint}"
            )))
        }
    }
}
