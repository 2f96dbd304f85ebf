//! One provider request: the shared client, the request and its answer, sending and
//! logging it, and the request settings every HTTP provider's config takes.
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use super::health::Health;
use super::outcome::{describe, OutcomeRules};
use super::redact::Redactor;
use super::webhooks::{dotted, scalar_text};
use crate::ports::{Direction, LogRecord};
use crate::transport::{ConfigError, SendError, Sent, TransportContext};
use crate::transports::{seconds, Password};

/// How much of a provider's answer is read (the rest is dropped unread).
const MAX_BODY: usize = 1 << 20;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A request's trace masks the channel's secrets: in the URL, the body, and the
    /// `Authorization` header (whole).
    #[test]
    fn request_traces_mask_secrets() {
        let redactor = Redactor::new(["s3cr3t pass", "tok/en"]);
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
}
