//! The [`Transport`] trait every channel type implements, the context a transport runs in,
//! and the [`TransportRegistry`] of channel types.
//!
//! A transport runs on its channel's arbiter (a single-threaded runtime), so its futures need
//! not be `Send`. It never talks to the daemon directly: everything goes through its
//! [`TransportContext`].
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use async_trait::async_trait;
use serde_json::Value;

use crate::message::{DeliveryReport, Event, Message, StatusEvent};
use crate::ports::{ChannelHost, InboundPart, LogRecord, PartialMessage, PortError, ReportOutcome};
use crate::webhook::{WebhookRequest, WebhookResponse};

/// A channel type's connection to its provider.
#[async_trait(?Send)]
pub trait Transport {
    /// Connects (listens, binds, logs in). Called once per (re)start of the channel; an error
    /// makes the supervisor restart the channel with backoff.
    async fn start(&self, ctx: TransportContext) -> Result<(), TransportError>;

    /// Sends one message. Several sends may run at once (up to the channel's window).
    async fn send(&self, message: Message) -> Result<Sent, SendError>;

    /// How many rate-limit tokens sending `message` costs: the number of parts it goes out
    /// in (an SMS longer than one part costs one token per part). One by default.
    fn cost(&self, _message: &Message) -> u32 {
        1
    }

    /// How many messages this transport can usefully have outstanding at once (an SMPP
    /// session's window of unanswered submit_sm, say). A channel without a `max_in_flight`
    /// of its own keeps this many in flight, or [`crate::channel::DEFAULT_WINDOW`] if more.
    fn window(&self) -> usize {
        1
    }

    /// Answers a provider's request to this channel's webhook (`/channels/{id}/inbound/…`):
    /// an inbound message, a delivery report, a USSD step. A channel type that takes none
    /// answers 404. Bad payloads get the answer the provider expects for errors (and a line
    /// in the channel log), never a panic.
    async fn webhook(&self, request: WebhookRequest) -> WebhookResponse {
        WebhookResponse::not_found(&request)
    }

    /// Disconnects. After it returns, the transport holds no socket and no task.
    async fn stop(&self);
}

/// A message the transport (or its provider) accepted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sent {
    /// The provider's ids for it, when the provider gives them: one per part for a message
    /// that went out in several parts (an SMS split in three has three SMSC ids), so that a
    /// delivery report about any part finds its message. The first is the message's
    /// `sent_message_id`.
    pub provider_ids: Vec<String>,
}

impl Sent {
    /// Accepted under the provider's id `id`.
    pub fn with_id(id: impl Into<String>) -> Self {
        Sent {
            provider_ids: vec![id.into()],
        }
    }
}

/// Why a send did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Final: the message is not sent and gets a `rejected` event with this reason.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Temporary: the message stays queued and is tried again after `after`.
    #[error("try again in {after:?}: {reason}")]
    Retry {
        /// Why.
        reason: String,
        /// How long to wait before the next attempt.
        after: Duration,
    },
    /// The provider asks us to slow down (SMPP `ESME_RTHROTTLED`, HTTP 429): the message is
    /// tried again and the whole channel pauses for `after` (doubled while the provider keeps
    /// asking, up to a minute), then resumes at its normal rate. Other channels go on.
    #[error("throttled by the provider for {after:?}")]
    Throttled {
        /// How long the provider asks us to wait (at least).
        after: Duration,
    },
}

/// A transport that cannot run (cannot listen, lost its connection for good, …).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

impl From<std::io::Error> for TransportError {
    fn from(e: std::io::Error) -> Self {
        TransportError(e.to_string())
    }
}

/// A bad channel `config`, found when the channel is created or updated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("config.{key}: {message}")]
pub struct ConfigError {
    /// The offending key inside `config`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// `key` is wrong because of `message`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Tells a channel actor that its transport can no longer run.
#[derive(actix::Message, Debug)]
#[rtype(result = "()")]
pub struct TransportFailed(pub String);

/// What a running transport may do: report inbound messages, events and statuses, write to
/// the channel log, and run background tasks whose failure restarts the channel.
#[derive(Clone)]
pub struct TransportContext {
    channel_id: Arc<str>,
    host: Arc<dyn ChannelHost>,
    failed: Recipient<TransportFailed>,
}

impl TransportContext {
    /// A context for `channel_id` whose failures go to `failed`.
    pub fn new(
        channel_id: Arc<str>,
        host: Arc<dyn ChannelHost>,
        failed: Recipient<TransportFailed>,
    ) -> Self {
        TransportContext {
            channel_id,
            host,
            failed,
        }
    }

    /// The channel's id.
    pub fn channel_id(&self) -> &str {
        &self.channel_id
    }

    /// Hands an inbound message to the daemon; see [`ChannelHost::inbound`].
    pub async fn inbound(&self, message: Message) -> Result<(), PortError> {
        self.host.inbound(&self.channel_id, message).await
    }

    /// Keeps a part of a long inbound message; see [`ChannelHost::inbound_part`].
    pub async fn inbound_part(
        &self,
        part: InboundPart,
        max_age: Duration,
    ) -> Result<Option<String>, PortError> {
        self.host
            .inbound_part(&self.channel_id, part, max_age)
            .await
    }

    /// Takes the long inbound messages that waited too long for their missing parts; see
    /// [`ChannelHost::expired_parts`].
    pub async fn expired_parts(&self, max_age: Duration) -> Result<Vec<PartialMessage>, PortError> {
        self.host.expired_parts(&self.channel_id, max_age).await
    }

    /// The channel's cursor `name`; see [`ChannelHost::cursor`].
    pub async fn cursor(&self, name: &str) -> Result<Option<String>, PortError> {
        self.host.cursor(&self.channel_id, name).await
    }

    /// Saves the channel's cursor `name`; see [`ChannelHost::save_cursor`].
    pub async fn save_cursor(&self, name: &str, value: &str) -> Result<(), PortError> {
        self.host.save_cursor(&self.channel_id, name, value).await
    }

    /// Records a step of session `session_id`; see [`ChannelHost::session_step`].
    pub async fn session_step(
        &self,
        session_id: &str,
        idle_timeout: Duration,
    ) -> Result<bool, PortError> {
        self.host
            .session_step(&self.channel_id, session_id, idle_timeout)
            .await
    }

    /// Forgets session `session_id`; see [`ChannelHost::end_session`].
    pub async fn end_session(&self, session_id: &str) -> Result<bool, PortError> {
        self.host.end_session(&self.channel_id, session_id).await
    }

    /// Reports an event about an outbound message (a delivery report, say).
    pub async fn event(&self, event: Event) {
        self.host.event(&self.channel_id, event).await
    }

    /// Reports a provider's delivery report; see [`ChannelHost::delivery_report`].
    pub async fn delivery_report(&self, report: DeliveryReport) -> ReportOutcome {
        self.host.delivery_report(&self.channel_id, report).await
    }

    /// Publishes a component status.
    pub async fn status(&self, status: StatusEvent) {
        self.host.status(&self.channel_id, status).await
    }

    /// Writes to the channel log.
    pub fn log(&self, record: LogRecord) {
        self.host.log(&self.channel_id, record)
    }

    /// Runs `task` on the channel's arbiter. If it returns an error or panics, the channel is
    /// restarted; if it returns `Ok`, nothing happens. The task is aborted when the returned
    /// handle is dropped, so a transport that drops its handles in `stop` leaves nothing behind.
    pub fn spawn<F>(&self, what: &'static str, task: F) -> TaskHandle
    where
        F: Future<Output = Result<(), TransportError>> + 'static,
    {
        let failed = self.failed.clone();
        let handle = tokio::task::spawn_local(task);
        let abort = handle.abort_handle();
        tokio::task::spawn_local(async move {
            let reason = match handle.await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => format!("{what} failed: {e}"),
                Err(e) if e.is_panic() => format!("{what} panicked: {}", panic_text(e)),
                Err(_) => return, // aborted on purpose
            };
            failed.do_send(TransportFailed(reason));
        });
        TaskHandle(abort)
    }
}

/// The text of a panic, for logs.
pub(crate) fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned()),
        Err(e) => e.to_string(),
    }
}

/// A background task of a transport; dropping it aborts the task.
#[derive(Debug)]
pub struct TaskHandle(tokio::task::AbortHandle);

impl Drop for TaskHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A channel type: its name, what it is, and how to build its transport from a `config`.
pub trait ChannelType: Send + Sync + 'static {
    /// The `type` key of the channel object, e.g. `telnet`.
    fn name(&self) -> &'static str;

    /// One line for people.
    fn description(&self) -> &'static str;

    /// Checks `config` and builds a transport for channel `channel_id`. Must not do I/O: the
    /// API calls it to validate a config, then drops the transport.
    fn build(&self, channel_id: &str, config: &Value) -> Result<Rc<dyn Transport>, ConfigError>;
}

/// The channel types this daemon knows, by name.
#[derive(Clone, Default)]
pub struct TransportRegistry {
    types: BTreeMap<&'static str, Arc<dyn ChannelType>>,
}

impl TransportRegistry {
    /// The channel types that ship with Junebug. Adding a type is one line here.
    pub fn builtin() -> Self {
        let mut registry = TransportRegistry::default();
        registry.register(crate::transports::africastalking::AfricasTalkingType);
        registry.register(crate::transports::dmark::DmarkType);
        registry.register(crate::transports::http::HttpType);
        registry.register(crate::transports::irc::IrcType);
        registry.register(crate::transports::smpp::SmppType);
        registry.register(crate::transports::telnet::TelnetType);
        registry.register(crate::transports::twilio::TwilioType);
        registry.register(crate::transports::twitter::TwitterType);
        registry.register(crate::transports::xmpp::XmppType);
        registry
    }

    /// Adds (or replaces) a channel type.
    pub fn register(&mut self, channel_type: impl ChannelType) {
        self.types
            .insert(channel_type.name(), Arc::new(channel_type));
    }

    /// The channel type called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn ChannelType>> {
        self.types.get(name).cloned()
    }

    /// Every type name, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.types.keys().copied().collect()
    }
}
