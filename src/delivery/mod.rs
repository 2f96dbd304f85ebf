//! Callbacks: everything Junebug POSTs to applications (`mo_url`, `event_url`, `status_url`)
//! goes through [`Callbacks`], with one shared HTTP client.
//!
//! Every callback is first kept in the durable [`outbox`], then travels in a *lane* (one per
//! channel and destination `host:port`) whose items are delivered one after the other, so the
//! callbacks to one endpoint (a message's events above all) arrive in the order they happened,
//! even across retries. Lanes run side by side, so a slow or dead endpoint holds back only its
//! own lane. A failure that may pass is retried with backoff ([`retry`]); a final one, or the
//! last attempt, makes the callback a dead letter, kept until re-sent or purged.
//! Auth follows API.md 10: `user:pass@` in the URL becomes `Authorization: Basic …` (and is
//! removed from the URL); a token becomes `Authorization: Token <token>` and wins over Basic.
//! With a secret, callbacks are signed ([`signing`]). Every attempt is written to the channel
//! log: method, URL (credentials and secret-looking query values redacted), status, latency,
//! about the callback's message, with the exchange as its trace.
//!
//! - [`amqp`]: the AMQP side of application delivery;
//! - [`template`]: URL templates and the callback method;
//! - [`signing`]: the optional HMAC signature.
pub mod amqp;
pub mod outbox;
pub mod retry;
pub mod signing;
pub mod template;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use url::Url;

use crate::backend::BackendError;
use crate::logs::ChannelLogs;
use crate::metrics::exporter::Metrics;
use junebug_actors::ports::{Direction, LogRecord};
use outbox::{Outbox, OutboxItem};
use retry::{Failure, RetryPolicy};
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

/// Delivers callbacks: durably queued, in order per lane, retried, dead-lettered.
#[derive(Clone)]
pub struct Callbacks {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    outbox: Arc<dyn Outbox>,
    /// Ids of delivered callbacks, for [`clear_delivered`] to forget.
    delivered: mpsc::UnboundedSender<String>,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
    /// One lane per channel and destination (`host:port`), so a dead endpoint holds back
    /// only its own callbacks, and callbacks to one endpoint keep their order.
    lanes: Mutex<HashMap<(String, String), mpsc::UnboundedSender<OutboxItem>>>,
    /// Requests in flight per destination (so many channels cannot flood one host) and per
    /// channel (so one channel with many endpoints cannot take every connection), by key.
    bounds: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    max_per_destination: usize,
    max_per_channel: usize,
    runtime: tokio::runtime::Handle,
    logs: Arc<ChannelLogs>,
    logger: slog::Logger,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The lane of a callback URL: its channel and its destination.
fn lane_key(channel_id: &str, url: &str) -> (String, String) {
    let destination = Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_default();
    (channel_id.to_owned(), destination)
}

/// How callbacks are delivered.
pub struct DeliverySettings {
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries of failed callbacks.
    pub policy: RetryPolicy,
    /// Requests in flight at once to one destination (`host:port`), all channels together.
    pub max_per_destination: usize,
    /// Requests in flight at once for one channel, all destinations together.
    pub max_per_channel: usize,
}

impl Callbacks {
    /// Callbacks kept in `outbox`, run on the current runtime (whichever thread later asks
    /// for a post).
    pub fn new(
        settings: DeliverySettings,
        outbox: Arc<dyn Outbox>,
        logs: Arc<ChannelLogs>,
        metrics: Arc<Metrics>,
        logger: slog::Logger,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("junebug/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let (delivered, to_clear) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Handle::current();
        runtime.spawn(clear_delivered(outbox.clone(), to_clear, logger.clone()));
        Callbacks {
            inner: Arc::new(Inner {
                client,
                outbox,
                delivered,
                policy: settings.policy,
                metrics,
                lanes: Mutex::new(HashMap::new()),
                bounds: Mutex::new(HashMap::new()),
                max_per_destination: settings.max_per_destination.max(1),
                max_per_channel: settings.max_per_channel.max(1),
                runtime,
                logs,
                logger,
            }),
        }
    }

    /// Keeps `callback` in the outbox, then queues it in its lane. If the outbox cannot keep
    /// it (the store is down), it is still delivered, without a durable copy, and the error
    /// says so: a caller that can have its input sent again (an SMSC's deliver_sm) asks for
    /// that rather than risk losing it.
    pub async fn post(&self, channel_id: &str, callback: Callback) -> Result<(), BackendError> {
        let now = unix_now();
        let item = OutboxItem {
            id: junebug_actors::message::new_message_id(),
            channel_id: channel_id.to_owned(),
            callback,
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            last_error: None,
        };
        let kept = self.inner.outbox.add(&item).await;
        if let Err(e) = &kept {
            let text = format!("Cannot keep a callback in the outbox, delivering it anyway: {e}");
            self.inner.logs.push(channel_id, LogRecord::error(text));
        }
        self.queue(item);
        kept
    }

    /// Takes back this process's pending callbacks (at start), in the order they came.
    pub async fn resume(&self) -> Result<usize, BackendError> {
        let pending = self.inner.outbox.pending().await?;
        let count = pending.len();
        pending.into_iter().for_each(|item| self.queue(item));
        Ok(count)
    }

    /// A channel's dead letters, oldest first.
    pub async fn dead_letters(&self, channel_id: &str) -> Result<Vec<OutboxItem>, BackendError> {
        self.inner.outbox.dead_letters(channel_id).await
    }

    /// Sends a channel's dead letters again (each gets a fresh set of attempts).
    pub async fn retry_dead_letters(&self, channel_id: &str) -> Result<usize, BackendError> {
        let revived = self.inner.outbox.revive(channel_id).await?;
        let count = revived.len();
        revived.into_iter().for_each(|item| self.queue(item));
        Ok(count)
    }

    /// Deletes a channel's dead letters.
    pub async fn purge_dead_letters(&self, channel_id: &str) -> Result<usize, BackendError> {
        self.inner.outbox.purge_dead(channel_id).await
    }

    fn queue(&self, item: OutboxItem) {
        let key = lane_key(&item.channel_id, &item.callback.url);
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let lane = lanes.entry(key.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            self.inner
                .runtime
                .spawn(run_lane(self.inner.clone(), key.clone(), rx));
            tx
        });
        // The lane task lives as long as its sender, which is in the map.
        let _ = lane.send(item);
    }

    /// Ends a deleted channel's lanes once what they hold is delivered or dead-lettered.
    pub fn close_lanes(&self, channel_id: &str) {
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes.retain(|(channel, _), _| channel != channel_id);
    }
}

/// How many delivered callbacks one outbox round trip forgets at most.
const CLEAR_BATCH: usize = 512;

/// Forgets delivered callbacks in batches: a lane goes on to its next callback without
/// waiting for the outbox, and one round trip clears every callback delivered meanwhile.
/// A crash before a batch is cleared delivers its callbacks again after the restart, as a
/// crash between a delivery and its clearing always did (at-least-once).
async fn clear_delivered(
    outbox: Arc<dyn Outbox>,
    mut delivered: mpsc::UnboundedReceiver<String>,
    logger: slog::Logger,
) {
    let mut batch = Vec::with_capacity(CLEAR_BATCH);
    while delivered.recv_many(&mut batch, CLEAR_BATCH).await > 0 {
        if let Err(e) = outbox.remove(&batch).await {
            slog::warn!(logger, "Cannot clear delivered callbacks"; "count" => batch.len(), "error" => %e);
        }
        batch.clear();
    }
}

async fn run_lane(
    inner: Arc<Inner>,
    (channel_id, destination): (String, String),
    mut rx: mpsc::UnboundedReceiver<OutboxItem>,
) {
    let gate = Gate {
        channel: inner.bound(format!("channel {channel_id}"), inner.max_per_channel),
        destination: inner.bound(
            format!("destination {destination}"),
            inner.max_per_destination,
        ),
    };
    while let Some(item) = rx.recv().await {
        deliver(&inner, &gate, item).await;
    }
    // The lane was closed because its channel was deleted: drop the series its last
    // callbacks may have brought back.
    inner.metrics.forget(&channel_id);
}

/// The two bounds a lane's requests pass: its channel's and its destination's.
struct Gate {
    channel: Arc<tokio::sync::Semaphore>,
    destination: Arc<tokio::sync::Semaphore>,
}

impl Inner {
    /// The semaphore bounding `key` to `size` requests at once.
    fn bound(&self, key: String, size: usize) -> Arc<tokio::sync::Semaphore> {
        let mut bounds = self.bounds.lock().unwrap_or_else(|e| e.into_inner());
        bounds
            .entry(key)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(size)))
            .clone()
    }
}

/// Tries `item` until it is delivered or given up; the lane waits meanwhile, which keeps
/// the order of the callbacks to one endpoint (a message's events above all).
async fn deliver(inner: &Inner, gate: &Gate, mut item: OutboxItem) {
    let channel_id = item.channel_id.clone();
    loop {
        let wait = item.next_attempt_at - unix_now();
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        item.attempts += 1;
        let started = std::time::Instant::now();
        let outcome = {
            // The semaphores are never closed, so acquiring only waits. Every lane takes the
            // channel's permit first, then the destination's: no lane holds one while
            // waiting for a permit another lane holds and waits to complete with.
            let _channel = gate.channel.acquire().await;
            let _destination = gate.destination.acquire().await;
            send(&inner.client, &item.callback).await
        };
        let latency_ms = started.elapsed().as_millis();
        let callback = &item.callback;
        let about = callback
            .message_id
            .as_deref()
            .map(|id| format!(" for message {id}"))
            .unwrap_or_default();
        let line = format!(
            "{} {} ({}{about}, attempt {}): {} in {latency_ms} ms",
            callback.method.as_str(),
            redacted_url(&callback.url),
            callback.what.as_str(),
            item.attempts,
            outcome
                .as_ref()
                .map_or_else(|f| f.detail.clone(), |status| status.to_string()),
        );
        // The exchange, for logs by message (the log writer redacts the URL).
        let trace = serde_json::json!({
            "method": callback.method.as_str(),
            "url": callback.url,
            "status": outcome.as_ref().ok(),
            "error": outcome.as_ref().err().map(|f| f.detail.as_str()),
            "latency_ms": u64::try_from(latency_ms).unwrap_or(u64::MAX),
            "attempt": item.attempts,
        });
        let entry = |record: LogRecord| {
            about_message(record, callback)
                .going(Direction::Outbound)
                .with_trace(trace)
        };
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
        let failure = match outcome {
            Ok(_) => {
                inner.logs.push(&channel_id, entry(LogRecord::info(line)));
                // The task ends only with the last sender, which `inner` holds.
                let _ = inner.delivered.send(item.id);
                return;
            }
            Err(failure) => failure,
        };
        slog::warn!(inner.logger, "Callback failed"; "channel_id" => &channel_id, "detail" => &line);
        inner
            .logs
            .push(&channel_id, entry(LogRecord::warning(line)));
        item.last_error = Some(failure.detail.clone());
        let age = Duration::from_secs_f64((unix_now() - item.created_at).max(0.0));
        match inner.policy.next_delay(&failure, item.attempts, age) {
            Some(delay) => {
                item.next_attempt_at = unix_now() + delay.as_secs_f64();
                if let Err(e) = inner.outbox.update(&item).await {
                    slog::warn!(inner.logger, "Cannot save a callback's retry"; "error" => %e);
                }
            }
            None => {
                let text = format!(
                    "Gave up on the {} to {} after {} attempt(s), last: {}; it is a dead letter \
                     (POST /channels/{channel_id}/dead-letters/retry sends it again)",
                    callback.what.as_str(),
                    redacted_url(&callback.url),
                    item.attempts,
                    failure.detail
                );
                inner
                    .logs
                    .push(&channel_id, about_message(LogRecord::error(text), callback));
                inner
                    .metrics
                    .dead_letters
                    .with_label_values(&[channel_id.as_str(), callback.what.as_str()])
                    .inc();
                if let Err(e) = inner.outbox.bury(&item).await {
                    slog::error!(inner.logger, "Cannot keep a dead letter"; "error" => %e);
                }
                return;
            }
        }
    }
}

/// `record`, marked as concerning the message the callback is about (if any).
fn about_message(record: LogRecord, callback: &Callback) -> LogRecord {
    match &callback.message_id {
        Some(id) => record.about(id.clone()),
        None => record,
    }
}

/// Makes one request; a non-2xx answer is a failure.
async fn send(client: &reqwest::Client, callback: &Callback) -> Result<u16, Failure> {
    let url = match callback.method {
        CallbackMethod::Post => callback.url.clone(),
        CallbackMethod::Get => query_url(&callback.url, &callback.body),
    };
    let (url, basic) =
        split_credentials(&url).map_err(|e| Failure::permanent(format!("bad URL: {e}")))?;
    // What the signature covers: the body of a POST, the path and query of a GET.
    let (mut request, signed) = match callback.method {
        CallbackMethod::Post => {
            let body = serde_json::to_vec(&callback.body)
                .map_err(|e| Failure::permanent(e.to_string()))?;
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
    let response = request
        .send()
        .await
        .map_err(|e| Failure::transport(e.to_string()))?;
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(Failure::status(status.as_u16()))
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

/// A URL fit for logs and the API: without its credentials, and with secret-looking query
/// values masked.
pub fn redacted_url(url: &str) -> String {
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
        assert_eq!(redacted_url("http://a:b@h/x"), "http://h/x");
        assert_eq!(
            redacted_url("http://h/x?to=27&api_token=t0p&Password=p"),
            "http://h/x?to=27&api_token=***&Password=***"
        );
        assert_eq!(redacted_url("not a url"), "<unparseable URL>");
    }
}
