//! The X API v2 requests a `twitter` channel makes, their rate limits and what their answers
//! mean. Every request goes through [`web::exchange_about`] (the channel log, credentials
//! masked) and is signed by [`Credentials::authorize`].
//!
//! Rate limits are per endpoint: after a 429, or an answer with `x-rate-limit-remaining: 0`,
//! that endpoint is paused until its `x-rate-limit-reset`, and a request to it fails at once
//! with [`ApiError::RateLimited`] instead of spending a request the API would refuse.
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::config::TwitterSettings;
use super::oauth::encode;
use super::COMPONENT;
use crate::transport::{SendError, TransportContext};
use crate::transports::web::{self, Health, Method, OutcomeRules, ProviderRequest};

/// The pause after a 429 without a usable `x-rate-limit-reset`.
const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(60);

/// The longest pause a send asks its channel for: the channel clamps its own pause to a
/// minute, and a send that comes back while the endpoint is still paused asks again.
const MAX_SEND_PAUSE: Duration = Duration::from_secs(60);

/// Results per page of mentions and DM events (the API's maximum).
const PAGE_SIZE: &str = "100";

/// The endpoints, each with its own rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /2/users/me`.
    Me,
    /// `GET /2/users/:id/mentions`.
    Mentions,
    /// `GET /2/dm_events`.
    DmEvents,
    /// `POST /2/tweets`.
    PostTweet,
    /// `POST /2/dm_conversations/with/:participant_id/messages`.
    SendDm,
    /// `GET /2/users/by/username/:username`.
    UserByName,
}

impl Endpoint {
    /// The endpoint as the API documents it.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Me => "GET /2/users/me",
            Endpoint::Mentions => "GET /2/users/:id/mentions",
            Endpoint::DmEvents => "GET /2/dm_events",
            Endpoint::PostTweet => "POST /2/tweets",
            Endpoint::SendDm => "POST /2/dm_conversations/with/:participant_id/messages",
            Endpoint::UserByName => "GET /2/users/by/username/:username",
        }
    }
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The endpoint's rate limit is used up; it resets in `after`.
    RateLimited {
        /// Until the reset.
        after: Duration,
    },
    /// 401: the credentials are wrong or revoked.
    Unauthorized(String),
    /// Anything else, judged by the shared outcome rules (5xx and timeouts are
    /// [`SendError::Retry`], other 4xx [`SendError::Rejected`]).
    Failed(SendError),
}

impl ApiError {
    /// What a send that met this error returns.
    pub fn into_send_error(self) -> SendError {
        match self {
            ApiError::RateLimited { after } => SendError::Throttled {
                after: after.clamp(Duration::from_secs(1), MAX_SEND_PAUSE),
            },
            ApiError::Unauthorized(reason) => {
                SendError::Rejected(format!("the X API refused the credentials: {reason}"))
            }
            ApiError::Failed(e) => e,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::RateLimited { after } => write!(f, "rate limited for {}s", after.as_secs()),
            ApiError::Unauthorized(reason) => write!(f, "unauthorized: {reason}"),
            ApiError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// Who the channel's account is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user id.
    pub id: String,
    /// The screen name, without `@`.
    pub username: String,
}

/// One request: the endpoint, and the path and parameters that fill it in.
struct Call<'a> {
    endpoint: Endpoint,
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    /// The message it is about, for the channel log.
    about: Option<&'a str>,
}

/// A channel's client of the X API.
pub struct Api {
    settings: Rc<TwitterSettings>,
    rules: OutcomeRules,
    /// Paused endpoints, until when.
    paused: RefCell<HashMap<Endpoint, Instant>>,
    /// The status component (`twitter`).
    pub health: Health,
}

impl Api {
    /// A client with `settings`.
    pub fn new(settings: Rc<TwitterSettings>) -> Self {
        let rules = OutcomeRules {
            retry_after: settings.retry_delay,
            ..OutcomeRules::default()
        };
        Api {
            settings,
            rules,
            paused: RefCell::new(HashMap::new()),
            // The poller's requests are few and regular: one failure is worth saying.
            health: Health::new(COMPONENT, 1),
        }
    }

    /// How long `endpoint` stays paused, if it is.
    pub fn paused_for(&self, endpoint: Endpoint) -> Option<Duration> {
        let until = *self.paused.borrow().get(&endpoint)?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// `GET /2/users/me`: the account's id and screen name.
    pub async fn me(&self, ctx: &TransportContext) -> Result<Identity, ApiError> {
        let body = self
            .call(
                ctx,
                Call {
                    endpoint: Endpoint::Me,
                    method: Method::Get,
                    path: "/2/users/me".into(),
                    query: vec![],
                    body: None,
                    about: None,
                },
            )
            .await?;
        let field = |name: &str| body["data"][name].as_str().map(str::to_owned);
        match (field("id"), field("username")) {
            (Some(id), Some(username)) => Ok(Identity { id, username }),
            _ => Err(ApiError::Failed(SendError::Retry {
                reason: "GET /2/users/me answered without data.id and data.username".into(),
                after: self.settings.retry_delay,
            })),
        }
    }

    /// One page of `GET /2/users/:id/mentions` newer than `since_id`, authors expanded.
    pub async fn mentions(
        &self,
        ctx: &TransportContext,
        user_id: &str,
        since_id: &str,
        page: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut query = vec![
            ("since_id".into(), since_id.to_owned()),
            ("max_results".into(), PAGE_SIZE.into()),
            ("expansions".into(), "author_id".into()),
            (
                "tweet.fields".into(),
                "author_id,conversation_id,created_at".into(),
            ),
            ("user.fields".into(), "username".into()),
        ];
        query.extend(page.map(|token| ("pagination_token".into(), token.to_owned())));
        self.call(
            ctx,
            Call {
                endpoint: Endpoint::Mentions,
                method: Method::Get,
                path: format!("/2/users/{}/mentions", encode(user_id)),
                query,
                body: None,
                about: None,
            },
        )
        .await
    }

    /// The newest mention, to start from (`None` when there is none): a new channel does
    /// not replay the account's history.
    pub async fn newest_mention(
        &self,
        ctx: &TransportContext,
        user_id: &str,
    ) -> Result<Option<String>, ApiError> {
        let body = self
            .call(
                ctx,
                Call {
                    endpoint: Endpoint::Mentions,
                    method: Method::Get,
                    path: format!("/2/users/{}/mentions", encode(user_id)),
                    query: vec![("max_results".into(), "5".into())],
                    body: None,
                    about: None,
                },
            )
            .await?;
        Ok(body["meta"]["newest_id"].as_str().map(str::to_owned))
    }

    /// One page of `GET /2/dm_events` (newest first), senders expanded.
    pub async fn dm_events(
        &self,
        ctx: &TransportContext,
        page: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut query = vec![
            ("event_types".into(), "MessageCreate".into()),
            ("max_results".into(), PAGE_SIZE.into()),
            (
                "dm_event.fields".into(),
                "id,event_type,text,sender_id,dm_conversation_id,created_at".into(),
            ),
            ("expansions".into(), "sender_id".into()),
            ("user.fields".into(), "username".into()),
        ];
        query.extend(page.map(|token| ("pagination_token".into(), token.to_owned())));
        self.call(
            ctx,
            Call {
                endpoint: Endpoint::DmEvents,
                method: Method::Get,
                path: "/2/dm_events".into(),
                query,
                body: None,
                about: None,
            },
        )
        .await
    }

    /// `POST /2/tweets`: the new tweet's id.
    pub async fn post_tweet(
        &self,
        ctx: &TransportContext,
        message_id: &str,
        text: &str,
        in_reply_to: Option<&str>,
    ) -> Result<String, ApiError> {
        let mut body = json!({ "text": text });
        if let Some(tweet_id) = in_reply_to {
            body["reply"] = json!({ "in_reply_to_tweet_id": tweet_id });
        }
        let answer = self
            .call(
                ctx,
                Call {
                    endpoint: Endpoint::PostTweet,
                    method: Method::Post,
                    path: "/2/tweets".into(),
                    query: vec![],
                    body: Some(body),
                    about: Some(message_id),
                },
            )
            .await?;
        Ok(answer["data"]["id"].as_str().unwrap_or_default().to_owned())
    }

    /// `POST /2/dm_conversations/with/:participant_id/messages`: the DM event's id.
    pub async fn send_dm(
        &self,
        ctx: &TransportContext,
        message_id: &str,
        participant_id: &str,
        text: &str,
    ) -> Result<String, ApiError> {
        let answer = self
            .call(
                ctx,
                Call {
                    endpoint: Endpoint::SendDm,
                    method: Method::Post,
                    path: format!(
                        "/2/dm_conversations/with/{}/messages",
                        encode(participant_id)
                    ),
                    query: vec![],
                    body: Some(json!({ "text": text })),
                    about: Some(message_id),
                },
            )
            .await?;
        Ok(answer["data"]["dm_event_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// `GET /2/users/by/username/:username`: the user's id, to send a DM to `@username`.
    pub async fn user_id(
        &self,
        ctx: &TransportContext,
        message_id: &str,
        username: &str,
    ) -> Result<String, ApiError> {
        let answer = self
            .call(
                ctx,
                Call {
                    endpoint: Endpoint::UserByName,
                    method: Method::Get,
                    path: format!("/2/users/by/username/{}", encode(username)),
                    query: vec![],
                    body: None,
                    about: Some(message_id),
                },
            )
            .await?;
        // An unknown user is a 200 with `errors` and no `data`.
        answer["data"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Failed(SendError::Rejected(format!("no X user @{username}"))))
    }

    /// Makes `call`, notes its rate limit, publishes the status it implies, and returns the
    /// JSON body of a 2xx (`null` when it is not JSON).
    async fn call(&self, ctx: &TransportContext, call: Call<'_>) -> Result<Value, ApiError> {
        if let Some(after) = self.paused_for(call.endpoint) {
            return Err(ApiError::RateLimited { after });
        }
        let request = self.request(&call);
        let settings = &self.settings;
        let retry = settings.retry_delay;
        let response =
            match web::exchange_about(ctx, &settings.redactor, call.about, &request, retry).await {
                Ok(response) => response,
                Err(e) => {
                    self.health.note(ctx, &Err(e.clone())).await;
                    return Err(ApiError::Failed(e));
                }
            };
        if web::rate_limit_exhausted(&response) {
            let after = web::rate_limit_reset(&response, chrono::Utc::now())
                .unwrap_or(DEFAULT_RATE_LIMIT_PAUSE);
            self.paused
                .borrow_mut()
                .insert(call.endpoint, Instant::now() + after);
            if response.status == 429 {
                self.rate_limited(ctx, call.endpoint, after).await;
                return Err(ApiError::RateLimited { after });
            }
        }
        let judged = self.rules.judge(&response);
        match judged {
            Err(SendError::Rejected(reason)) if response.status == 401 => {
                self.health.credentials_refused(ctx, &reason).await;
                Err(ApiError::Unauthorized(reason))
            }
            judged => {
                self.health.note(ctx, &judged).await;
                judged
                    .map(|()| response.json().unwrap_or(Value::Null))
                    .map_err(ApiError::Failed)
            }
        }
    }

    /// Publishes that `endpoint` is paused for `after` (details: `endpoint`, `reset_at` in
    /// epoch seconds, `retry_in` seconds).
    async fn rate_limited(&self, ctx: &TransportContext, endpoint: Endpoint, after: Duration) {
        let endpoint = endpoint.as_str();
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
        self.health.rate_limited(ctx, message, details).await;
    }

    /// The signed request for `call`.
    fn request(&self, call: &Call<'_>) -> ProviderRequest {
        let settings = &self.settings;
        let base = format!("{}{}", settings.base_url, call.path);
        let url = if call.query.is_empty() {
            base.clone()
        } else {
            let query: Vec<String> = call
                .query
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            format!("{base}?{}", query.join("&"))
        };
        let auth = settings
            .credentials
            .authorize(call.method.as_str(), &base, &call.query);
        ProviderRequest {
            method: call.method,
            url,
            headers: vec![],
            auth: Some(auth),
            body: call
                .body
                .as_ref()
                .map(|body| ("application/json".to_owned(), body.to_string().into_bytes())),
            timeout: settings.timeout,
        }
    }
}
