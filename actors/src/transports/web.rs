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
//! # Why reqwest here
//!
//! DESIGN.md keeps HTTP *servers* out of `junebug-actors`, not HTTP clients toward providers
//! (STYLE.md habit 6). reqwest is the client the daemon already uses for callbacks, built with
//! the same rustls stack, so HTTP channel types add no second HTTP stack to the build.
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::message::{new_message_id, timestamp_now, DeliveryReport, Message, StatusLevel};
use crate::ports::{Direction, LogRecord, ReportOutcome};
use crate::transport::{ConfigError, SendError, Sent, TransportContext};
use crate::transports::{report_status, seconds, Password};
use crate::webhook::{WebhookRequest, WebhookResponse};

/// What a secret is shown as in the channel log.
pub const MASK: &str = "********";

/// How much of a provider's body a rejection reason quotes.
const EXCERPT: usize = 200;

/// How much of a provider's answer is read (the rest is dropped unread).
const MAX_BODY: usize = 1 << 20;

/// How much of a body the channel log keeps.
const LOGGED_BODY: usize = 4096;

/// The process-wide HTTP client for provider requests.
///
/// Built on first use. Channels run on several arbiters (single-threaded runtimes); reqwest's
/// client is `Send + Sync` and its pooled connections are driven by the runtime that opened
/// them, which lives as long as the daemon. Redirects are not followed: a provider API that
/// redirects a submission is misconfigured, and following it could re-send credentials.
pub fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("junebug/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only fails when the TLS backend cannot initialise, which rustls with bundled
            // roots does not; fall back to the default client rather than panic.
            .unwrap_or_default()
    })
}

/// Masks a channel's secrets in what goes to the channel log.
///
/// Built from the secret values of a channel's config (passwords, tokens, API keys), so it
/// masks them wherever they appear: in a URL's query, a form or JSON body, a header. Values
/// of `Authorization` (and `Proxy-Authorization`) headers are masked whole. The daemon's log
/// writer redacts secret-*named* fields again; this catches secrets under any name.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secret forms)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor for `secrets` (empty ones are ignored). Each secret is also masked in its
    /// percent-encoded and form-encoded forms, as it appears in URLs and form bodies.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut all = Vec::new();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            all.push(secret.to_owned());
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            all.push(encoded.clone());
            all.push(encoded.replace('+', "%20"));
        }
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Redactor { secrets: all }
    }

    /// `text` with every secret masked.
    pub fn text(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        text
    }

    /// Headers as `[name, value]` pairs for a trace, credentials masked.
    pub fn headers<'a>(&self, headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        let pairs: Vec<Value> = headers
            .into_iter()
            .map(|(name, value)| {
                let lower = name.to_ascii_lowercase();
                let value = if lower == "authorization" || lower == "proxy-authorization" {
                    masked_credential(value)
                } else {
                    self.text(value)
                };
                json!([name, value])
            })
            .collect();
        Value::Array(pairs)
    }

    /// A body for a trace: text (cut to a few KiB), secrets masked.
    pub fn body(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        self.text(&cut(&text, LOGGED_BODY))
    }
}

/// `Basic dXNl…` → `Basic ********`: the scheme stays, the credential goes.
fn masked_credential(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} {MASK}"),
        None => MASK.to_owned(),
    }
}

/// At most `max` bytes of `text`, cut at a character boundary, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// HTTP methods a provider request may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: no body; fields go in the query.
    Get,
    /// `POST`.
    Post,
}

impl Method {
    /// `GET` or `POST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// Credentials for a provider request (their `Debug` masks the secret).
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Password,
    },
    /// `Authorization: Bearer token`.
    Bearer(Password),
    /// A ready-made `Authorization` value, for schemes signed per request (OAuth 1.0a).
    Header(Password),
}

/// One request to a provider, fully expanded.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderRequest {
    /// GET or POST.
    pub method: Method,
    /// The full URL, placeholders expanded and encoded.
    pub url: String,
    /// Extra headers, in order.
    pub headers: Vec<(String, String)>,
    /// Credentials, sent as an `Authorization` header.
    pub auth: Option<Auth>,
    /// The body and its content type, if any.
    pub body: Option<(String, Vec<u8>)>,
    /// How long the whole exchange may take.
    pub timeout: Duration,
}

/// A provider's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderResponse {
    /// The HTTP status.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl ProviderResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON, when it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends `request` about message `message_id` and returns the provider's answer, whatever
/// its status. A timeout or connection error becomes [`SendError::Retry`] after
/// `retry_after`. Both directions go to the channel log (DEBUG, with the exchange as trace),
/// a transport failure as a WARNING.
pub async fn exchange(
    ctx: &TransportContext,
    redactor: &Redactor,
    message_id: &str,
    request: &ProviderRequest,
    retry_after: Duration,
) -> Result<ProviderResponse, SendError> {
    exchange_about(ctx, redactor, Some(message_id), request, retry_after).await
}

/// Like [`exchange`], for a request that may concern no message yet (polling a provider for
/// inbound messages): its log entries are tagged with `message_id` only when there is one.
pub async fn exchange_about(
    ctx: &TransportContext,
    redactor: &Redactor,
    message_id: Option<&str>,
    request: &ProviderRequest,
    retry_after: Duration,
) -> Result<ProviderResponse, SendError> {
    let about = |record: LogRecord| match message_id {
        Some(id) => record.about(id),
        None => record,
    };
    ctx.log(about(
        LogRecord::debug(format!(
            "HTTP request {} {}",
            request.method.as_str(),
            redactor.text(&request.url)
        ))
        .going(Direction::Outbound)
        .with_trace(request_trace(redactor, request)),
    ));
    let method = match request.method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
    };
    let mut builder = client()
        .request(method, &request.url)
        .timeout(request.timeout);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder = match &request.auth {
        Some(Auth::Basic { username, password }) => {
            builder.basic_auth(username, Some(password.reveal()))
        }
        Some(Auth::Bearer(token)) => builder.bearer_auth(token.reveal()),
        Some(Auth::Header(value)) => builder.header("authorization", value.reveal()),
        None => builder,
    };
    if let Some((content_type, body)) = &request.body {
        builder = builder
            .header("content-type", content_type.as_str())
            .body(body.clone());
    }
    let result = async {
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        // A provider's answer is small; a huge one is cut rather than held whole.
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = MAX_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_BODY {
                break;
            }
        }
        Ok::<_, reqwest::Error>(ProviderResponse {
            status,
            headers,
            body,
        })
    }
    .await;
    match result {
        Ok(response) => {
            ctx.log(about(
                LogRecord::debug(format!("HTTP response {}", response.status))
                    .going(Direction::Inbound)
                    .with_trace(json!({
                        "status": response.status,
                        "headers": redactor.headers(
                            response.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
                        ),
                        "body": redactor.body(&response.body),
                    })),
            ));
            Ok(response)
        }
        Err(e) => {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "failed"
            };
            // reqwest's error text carries the URL: redact it too.
            let reason = redactor.text(&format!("HTTP request {what}: {e}"));
            ctx.log(about(
                LogRecord::warning(reason.clone()).going(Direction::Outbound),
            ));
            Err(SendError::Retry {
                reason,
                after: retry_after,
            })
        }
    }
}

/// Sends `request` for message `message_id`, judges the answer by `rules` and, when they
/// accept it, reads it with `read` (the provider's id, or a refusal inside a 2xx answer);
/// the outcome is noted on `health`. A 401 means the channel's credentials are wrong, which
/// no retry mends: the message is rejected and the component's status goes `down` (see
/// [`Health::credentials_refused`]).
pub async fn submit<T>(
    ctx: &TransportContext,
    (redactor, health): (&Redactor, &Health),
    message_id: &str,
    request: &ProviderRequest,
    rules: &OutcomeRules,
    read: impl FnOnce(&ProviderResponse) -> Result<T, SendError>,
) -> Result<T, SendError> {
    let response = match exchange(ctx, redactor, message_id, request, rules.retry_after).await {
        Ok(response) => response,
        Err(e) => {
            health.note(ctx, &Err(e.clone())).await;
            return Err(e);
        }
    };
    let judged = rules.judge(&response);
    if let (401, Err(e)) = (response.status, &judged) {
        health.credentials_refused(ctx, &describe(&response)).await;
        return Err(e.clone());
    }
    let outcome = judged.and_then(|()| read(&response));
    let noted = outcome.as_ref().map(|_| ()).map_err(Clone::clone);
    health.note(ctx, &noted).await;
    outcome
}

/// The trace of a request, for the channel log.
pub fn request_trace(redactor: &Redactor, request: &ProviderRequest) -> Value {
    let mut headers: Vec<(&str, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    match &request.auth {
        Some(Auth::Basic { .. }) => headers.push(("authorization", "Basic x".into())),
        Some(Auth::Bearer(_)) => headers.push(("authorization", "Bearer x".into())),
        Some(Auth::Header(value)) => headers.push(("authorization", value.reveal().to_owned())),
        None => {}
    }
    if let Some((content_type, _)) = &request.body {
        headers.push(("content-type", content_type.clone()));
    }
    json!({
        "method": request.method.as_str(),
        "url": redactor.text(&request.url),
        "headers": redactor.headers(headers.iter().map(|(k, v)| (*k, v.as_str()))),
        "body": request.body.as_ref().map(|(_, body)| redactor.body(body)),
    })
}

/// The request knobs every HTTP provider's config takes, flattened into its own config:
/// `timeout` (seconds a request may take, default 30), `retry_delay` (seconds before a
/// message that failed for a passing reason is tried again, default 5), `throttle_delay`
/// (seconds the channel pauses after a 429 without a usable `Retry-After`, default 1) and
/// `degraded_after` (failed requests in a row before the status is `degraded`, default 3).
#[derive(serde::Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RequestConfig {
    /// Seconds a request may take.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Seconds before a retry.
    #[serde(default)]
    pub retry_delay: Option<f64>,
    /// Seconds of pause after a 429 without `Retry-After`.
    #[serde(default)]
    pub throttle_delay: Option<f64>,
    /// Failures in a row before `degraded`.
    #[serde(default)]
    pub degraded_after: Option<u32>,
}

/// A validated [`RequestConfig`].
#[derive(Clone, Debug, PartialEq)]
pub struct RequestSettings {
    /// Request timeout.
    pub timeout: Duration,
    /// What answers mean (the defaults, with the channel's delays).
    pub rules: OutcomeRules,
    /// Failures in a row before `degraded`.
    pub degraded_after: u32,
}

impl RequestConfig {
    /// Checks the values and fills in the defaults; errors name the key.
    pub fn validate(&self) -> Result<RequestSettings, ConfigError> {
        let degraded_after = self.degraded_after.unwrap_or(3);
        if degraded_after == 0 {
            return Err(ConfigError::new("degraded_after", "must be at least 1"));
        }
        Ok(RequestSettings {
            timeout: seconds("timeout", self.timeout, 30.0)?,
            rules: OutcomeRules {
                retry_after: seconds("retry_delay", self.retry_delay, 5.0)?,
                throttle_after: seconds("throttle_delay", self.throttle_delay, 1.0)?,
                ..OutcomeRules::default()
            },
            degraded_after,
        })
    }
}

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
fn describe(response: &ProviderResponse) -> String {
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
                let message = format!("{failures} provider requests in a row failed: {e}");
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

/// An inbound message of `transport_type` from a provider's webhook, its provider-specific
/// fields `meta` kept under `component` in both `transport_metadata` (for replies) and
/// `helper_metadata` (the application's `channel_data`).
pub fn inbound_message(
    ctx: &TransportContext,
    component: &str,
    transport_type: &str,
    (from, to): (String, Option<String>),
    content: Option<String>,
    meta: Map<String, Value>,
) -> Message {
    let meta = Map::from_iter([(component.to_owned(), Value::Object(meta))]);
    Message {
        message_id: new_message_id(),
        timestamp: timestamp_now(),
        to_addr: to,
        from_addr: Some(from),
        group: None,
        in_reply_to: None,
        session_event: None,
        content,
        transport_name: ctx.channel_id().to_owned(),
        transport_type: transport_type.to_owned(),
        transport_metadata: meta.clone(),
        helper_metadata: meta,
        expires_at: None,
    }
}

/// Hands `message`, read from `request`, to the daemon: `kept` is the provider's answer
/// once it is kept, 503 (the provider should send it again) when it cannot be. Both the
/// request and a failure are written to the channel log.
pub async fn keep_inbound(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
    message: Message,
    kept: WebhookResponse,
) -> WebhookResponse {
    let id = message.message_id.clone();
    ctx.log(
        LogRecord::debug(format!("Inbound message {id} from the provider"))
            .about(id.as_str())
            .going(Direction::Inbound)
            .with_trace(webhook_trace(redactor, request)),
    );
    match ctx.inbound(message).await {
        Ok(()) => kept,
        Err(e) => {
            ctx.log(
                LogRecord::error(format!("Could not keep inbound message {id}: {e}"))
                    .about(id.as_str()),
            );
            WebhookResponse::text(503, "cannot take the message now, try again later")
        }
    }
}

/// Records `report`, read from `request` (its `details.provider_status`, the provider's
/// word for the status, goes into the log line): `answer` gets our id of the message it
/// concerns (`None` when it matches none: logged and dropped); 503 when it cannot be
/// recorded, so that the provider sends it again.
pub async fn record_report(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
    report: DeliveryReport,
    answer: impl FnOnce(Option<&str>) -> WebhookResponse,
) -> WebhookResponse {
    let provider_id = report.provider_message_id.clone();
    let raw_status = report
        .details
        .get("provider_status")
        .and_then(scalar_text)
        .unwrap_or_default();
    ctx.log(
        LogRecord::debug(redactor.text(&format!(
            "Delivery report for provider id {provider_id}: {raw_status}"
        )))
        .going(Direction::Inbound)
        .with_trace(webhook_trace(redactor, request)),
    );
    match ctx.delivery_report(report).await {
        ReportOutcome::Matched(id) => answer(Some(&id)),
        ReportOutcome::Unmatched => {
            ctx.log(LogRecord::info(redactor.text(&format!(
                "Delivery report for unknown provider id {provider_id} dropped"
            ))));
            answer(None)
        }
        ReportOutcome::Failed => {
            WebhookResponse::text(503, "cannot take the report now, try again later")
        }
    }
}

/// A webhook payload that cannot be used: the provider gets `400` with `reason` (JSON when
/// it sent JSON, else text), the channel log a WARNING with the request (secrets masked).
pub fn bad_webhook(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
    reason: &str,
) -> WebhookResponse {
    refuse_webhook(ctx, redactor, request, 400, reason)
}

/// Writes a refused webhook request to the channel log: a WARNING with `reason` and the
/// request (secrets masked). Returns the reason as logged, masked too (it may quote the
/// payload, an unknown status say), for the answer. For a provider whose error answers
/// are its own; [`refuse_webhook`] also answers.
pub fn log_refusal(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
    reason: &str,
) -> String {
    let reason = redactor.text(reason);
    ctx.log(
        LogRecord::warning(format!(
            "Refused a webhook request to '{}': {reason}",
            request.path
        ))
        .going(Direction::Inbound)
        .with_trace(webhook_trace(redactor, request)),
    );
    reason
}

/// Refuses a webhook request with `status` (401 for a missing or wrong token, say); like
/// [`bad_webhook`] otherwise.
pub fn refuse_webhook(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
    status: u16,
    reason: &str,
) -> WebhookResponse {
    let reason = log_refusal(ctx, redactor, request, reason);
    let reason = reason.as_str();
    let wants_json = request
        .header("content-type")
        .is_some_and(|kind| kind.to_ascii_lowercase().contains("json"));
    if wants_json {
        WebhookResponse::json(status, &json!({ "error": reason }))
    } else {
        WebhookResponse::text(status, reason)
    }
}

/// Whether `request` carries `token`: as `Authorization: Bearer <token>`, an
/// `X-Webhook-Token` header or a `token` query parameter. Compared in constant time.
pub fn has_token(request: &WebhookRequest, token: &str) -> bool {
    let same = |given: &str| same_secret(given, token);
    let bearer = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "));
    let header = request.header("x-webhook-token");
    let query = url::form_urlencoded::parse(request.query.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned());
    bearer.is_some_and(same) || header.is_some_and(same) || query.as_deref().is_some_and(same)
}

/// Whether `given` is `secret`, compared in constant time (for equal lengths), so that the
/// time of a refusal tells nothing about how much of a guess was right.
pub fn same_secret(given: &str, secret: &str) -> bool {
    given.len() == secret.len()
        && given
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// A provider's base URL from config `key` (an API root such as `https://api.example.com`,
/// configurable so that tests and sandboxes can point elsewhere): an absolute `http` or
/// `https` URL, returned without a trailing `/`.
pub fn base_url(key: &str, value: &str) -> Result<String, ConfigError> {
    match url::Url::parse(value) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
            Ok(value.trim_end_matches('/').to_owned())
        }
        Ok(parsed) => Err(ConfigError::new(
            key,
            format!("must be an http or https URL, not {}", parsed.scheme()),
        )),
        Err(e) => Err(ConfigError::new(key, format!("is not a URL: {e}"))),
    }
}

/// [`Sent`] with the provider's id of message `message_id` from the dotted `field` of its
/// JSON answer; without it (a warning in the channel log), [`Sent`] without an id, as the
/// message was accepted all the same (only its delivery reports cannot be matched).
pub fn sent_with_id(
    ctx: &TransportContext,
    message_id: &str,
    response: &ProviderResponse,
    field: &str,
) -> Sent {
    let provider_id = response
        .json()
        .as_ref()
        .and_then(|body| dotted(body, field))
        .and_then(scalar_text);
    match provider_id {
        Some(provider_id) => Sent::with_id(provider_id),
        None => {
            ctx.log(
                LogRecord::warning(format!(
                    "The provider accepted message {message_id} but its answer has no \
                     '{field}': its delivery reports cannot be matched"
                ))
                .about(message_id)
                .going(Direction::Inbound),
            );
            Sent::default()
        }
    }
}

/// The trace of a webhook request, for the channel log.
pub fn webhook_trace(redactor: &Redactor, request: &WebhookRequest) -> Value {
    json!({
        "method": request.method,
        "path": request.path,
        "query": redactor.text(&request.query),
        "headers": redactor.headers(
            request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
        ),
        "body": redactor.body(&request.body),
    })
}

/// The value at a dotted `path` in `value` (`data.id`, `messages.0.id`): object keys, or
/// array indexes where the value is an array.
pub fn dotted<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A scalar JSON value as text (`"abc"` → `abc`, `12` → `12`); `None` for null, objects
/// and arrays.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
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

    /// Secrets are masked wherever they appear, raw or encoded; Authorization headers whole.
    #[test]
    fn redaction() {
        let redactor = Redactor::new(["s3cr3t pass", "tok/en", ""]);
        assert_eq!(
            redactor.text("https://api.example/send?key=tok%2Fen&x=1"),
            "https://api.example/send?key=********&x=1"
        );
        assert_eq!(
            redactor.text("password=s3cr3t+pass&to=1"),
            "password=********&to=1"
        );
        assert_eq!(
            redactor.text(r#"{"auth": "s3cr3t pass"}"#),
            r#"{"auth": "********"}"#
        );
        let headers = redactor.headers([
            ("Authorization", "Basic dXNlcjpwYXNz"),
            ("X-Api", "tok/en"),
            ("Accept", "application/json"),
        ]);
        assert_eq!(
            headers,
            json!([
                ["Authorization", "Basic ********"],
                ["X-Api", "********"],
                ["Accept", "application/json"]
            ])
        );
        let request = ProviderRequest {
            method: Method::Post,
            url: "http://127.0.0.1/x?token=tok/en".into(),
            headers: vec![],
            auth: Some(Auth::Bearer(Password("tok/en".into()))),
            body: Some((
                "application/json".into(),
                br#"{"p":"s3cr3t pass"}"#.to_vec(),
            )),
            timeout: Duration::from_secs(1),
        };
        let trace = request_trace(&redactor, &request).to_string();
        assert!(
            !trace.contains("tok/en") && !trace.contains("s3cr3t"),
            "{trace}"
        );
        assert!(trace.contains("Bearer ********"), "{trace}");
    }

    /// Base URLs must be absolute http(s) URLs; a trailing `/` goes.
    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("base_url", "https://api.example/").unwrap(),
            "https://api.example"
        );
        assert_eq!(base_url("base_url", "ftp://x").unwrap_err().key, "base_url");
        assert!(base_url("public_url", "/relative").is_err());
    }

    /// Secrets compare whole.
    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("s3cr3t", "s3cr3t"));
        assert!(!same_secret("s3cr3", "s3cr3t"));
        assert!(!same_secret("s3cr3T", "s3cr3t"));
    }

    /// Dotted paths reach into objects and arrays.
    #[test]
    fn dotted_paths() {
        let value = json!({"data": {"messages": [{"id": 17}, {"id": "b"}]}});
        assert_eq!(dotted(&value, "data.messages.0.id"), Some(&json!(17)));
        assert_eq!(
            dotted(&value, "data.messages.1.id").and_then(scalar_text),
            Some("b".into())
        );
        assert_eq!(dotted(&value, "data.missing"), None);
        assert_eq!(dotted(&value, "data.messages.x"), None);
    }

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
