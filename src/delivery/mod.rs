//! Callbacks: everything Junebug POSTs to applications (`mo_url`, `event_url`, `status_url`)
//! goes through [`Callbacks`], with one shared HTTP client.
//!
//! Each callback travels in a *lane* (one per channel here) whose items are posted one after
//! the other, so a channel's inbound messages and a message's events arrive in the order
//! they happened. Lanes run side by side, so a slow endpoint holds back only its own lane.
//! Auth follows API.md 10: `user:pass@` in the URL becomes `Authorization: Basic …` (and is
//! removed from the URL); a token becomes `Authorization: Token <token>` and wins over Basic.
//! With a secret, callbacks are signed ([`signing`]). Every attempt is written to the channel
//! log: method, URL (credentials and secret-looking query values redacted), status, latency.
//!
//! - [`amqp`]: the AMQP side of application delivery;
//! - [`template`]: URL templates and the callback method;
//! - [`signing`]: the optional HMAC signature.
pub mod amqp;
pub mod outbox;
pub mod signing;
pub mod template;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use url::Url;

use crate::logs::ChannelLogs;
use crate::metrics::exporter::Metrics;
use junebug_actors::ports::LogRecord;
use template::{query_url, CallbackMethod};

/// What a callback carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    /// An inbound message, to `mo_url`.
    Inbound,
    /// An event, to the message's `event_url`.
    Event,
    /// A status event, to `status_url`.
    Status,
}

impl CallbackKind {
    /// Its name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackKind::Inbound => "inbound message",
            CallbackKind::Event => "event",
            CallbackKind::Status => "status",
        }
    }
}

/// One callback to make (kept in the outbox until delivered or dead-lettered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    /// Where to.
    pub url: String,
    /// Sent as `Authorization: Token <token>`.
    pub token: Option<String>,
    /// The JSON body.
    pub body: Value,
    /// What it carries.
    pub what: CallbackKind,
    /// Signs the callback when set.
    pub secret: Option<String>,
    /// The message it is about, for the channel log.
    pub message_id: Option<String>,
    /// POST the JSON body (the default), or GET with its fields in the query.
    pub method: CallbackMethod,
}

/// Posts callbacks, in order per lane.
#[derive(Clone)]
pub struct Callbacks {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    lanes: Mutex<HashMap<String, mpsc::UnboundedSender<Callback>>>,
    runtime: tokio::runtime::Handle,
    logs: Arc<ChannelLogs>,
    logger: slog::Logger,
}

impl Callbacks {
    /// Callbacks with `timeout` per request, run on the current runtime (whichever thread
    /// later asks for a post).
    pub fn new(
        timeout: Duration,
        logs: Arc<ChannelLogs>,
        metrics: Arc<Metrics>,
        logger: slog::Logger,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("junebug/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Callbacks {
            inner: Arc::new(Inner {
                client,
                metrics,
                lanes: Mutex::new(HashMap::new()),
                runtime: tokio::runtime::Handle::current(),
                logs,
                logger,
            }),
        }
    }

    /// Queues `callback` in channel `channel_id`'s lane.
    pub fn post(&self, channel_id: &str, callback: Callback) {
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let lane = lanes.entry(channel_id.to_owned()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let inner = self.inner.clone();
            self.inner
                .runtime
                .spawn(run_lane(inner, channel_id.to_owned(), rx));
            tx
        });
        // The lane task lives as long as its sender, which is in the map.
        let _ = lane.send(callback);
    }

    /// Ends a deleted channel's lane once what it holds is posted.
    pub fn close_lane(&self, channel_id: &str) {
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes.remove(channel_id);
    }
}

async fn run_lane(
    inner: Arc<Inner>,
    channel_id: String,
    mut rx: mpsc::UnboundedReceiver<Callback>,
) {
    while let Some(callback) = rx.recv().await {
        let started = std::time::Instant::now();
        let outcome = send(&inner.client, &callback).await;
        let about = callback
            .message_id
            .as_deref()
            .map(|id| format!(" for message {id}"))
            .unwrap_or_default();
        let line = format!(
            "{} {} ({}{about}, attempt 1): {} in {} ms",
            callback.method.as_str(),
            redact(&callback.url),
            callback.what.as_str(),
            outcome
                .as_ref()
                .map_or_else(|e| e.clone(), |status| status.to_string()),
            started.elapsed().as_millis()
        );
        let result = if outcome.is_ok() {
            "delivered"
        } else {
            "failed"
        };
        inner
            .metrics
            .callbacks
            .with_label_values(&[channel_id.as_str(), callback.what.as_str(), result])
            .inc();
        match outcome {
            Ok(_) => inner.logs.push(&channel_id, LogRecord::info(line)),
            Err(_) => {
                slog::warn!(inner.logger, "Callback failed"; "channel_id" => &channel_id, "detail" => &line);
                inner.logs.push(&channel_id, LogRecord::error(line));
            }
        }
    }
    // The lane was closed because its channel was deleted: drop the series its last
    // callbacks may have brought back.
    inner.metrics.forget(&channel_id);
}

/// Makes one request; a non-2xx answer is an error.
async fn send(client: &reqwest::Client, callback: &Callback) -> Result<u16, String> {
    let url = match callback.method {
        CallbackMethod::Post => callback.url.clone(),
        CallbackMethod::Get => query_url(&callback.url, &callback.body),
    };
    let (url, basic) = split_credentials(&url).map_err(|e| format!("bad URL: {e}"))?;
    // What the signature covers: the body of a POST, the path and query of a GET.
    let (mut request, signed) = match callback.method {
        CallbackMethod::Post => {
            let body = serde_json::to_vec(&callback.body).map_err(|e| e.to_string())?;
            let request = client
                .post(url)
                .header("Content-Type", "application/json")
                .body(body.clone());
            (request, body)
        }
        CallbackMethod::Get => {
            let target = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            };
            (client.get(url), target.into_bytes())
        }
    };
    if let Some(secret) = &callback.secret {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        request = request.header(
            signing::SIGNATURE_HEADER,
            signing::signature(secret, now, &signed),
        );
    }
    if let Some(token) = &callback.token {
        request = request.header("Authorization", format!("Token {token}"));
    } else if let Some((user, password)) = basic {
        request = request.basic_auth(user, password);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(format!("HTTP {}", status.as_u16()))
    }
}

/// A user name and an optional password, from a URL.
type Credentials = (String, Option<String>);

/// Takes `user:pass@` out of a URL.
fn split_credentials(url: &str) -> Result<(Url, Option<Credentials>), url::ParseError> {
    let mut url = Url::parse(url)?;
    if url.username().is_empty() {
        return Ok((url, None));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let credentials = (decode(url.username()), url.password().map(decode));
    // Cannot fail: a URL with a username has a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, Some(credentials)))
}

/// Query parameters whose values are secrets, by what their names contain.
const SECRET_PARAMS: [&str; 5] = ["token", "pass", "secret", "key", "auth"];

/// A URL fit for logs: without its credentials, and with secret-looking query values masked.
fn redact(url: &str) -> String {
    let Ok((mut url, _)) = split_credentials(url) else {
        return "<unparseable URL>".to_owned();
    };
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let secret = SECRET_PARAMS.iter().any(|s| k.to_lowercase().contains(s));
            (
                k.into_owned(),
                if secret {
                    "***".to_owned()
                } else {
                    v.into_owned()
                },
            )
        })
        .collect();
    if !pairs.is_empty() {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Credentials in a URL are taken out (decoded) for Basic auth.
    #[test]
    fn credentials_move_from_url_to_basic_auth() {
        let (url, creds) = split_credentials("http://us%40er:p%3Ass@127.0.0.1:80/mo?x=1").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1/mo?x=1");
        assert_eq!(creds, Some(("us@er".into(), Some("p:ss".into()))));
        assert_eq!(split_credentials("http://h/x").unwrap().1, None);
        assert_eq!(redact("http://a:b@h/x"), "http://h/x");
        assert_eq!(
            redact("http://h/x?to=27&api_token=t0p&Password=p"),
            "http://h/x?to=27&api_token=***&Password=***"
        );
        assert_eq!(redact("not a url"), "<unparseable URL>");
    }
}
