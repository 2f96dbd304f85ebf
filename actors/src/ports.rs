//! The small traits through which the daemon feeds and observes the actors.
//!
//! The daemon implements [`ChannelHost`] with its Store, Queue, callback delivery and channel
//! logs; the actors only ever see these traits, so they know nothing of the HTTP API, of
//! SQLite, Redis or RabbitMQ.
use std::time::Duration;

use async_trait::async_trait;

use crate::message::{DeliveryReport, Event, Message, Priority, StatusEvent};

/// Everything a running channel needs from the daemon.
///
/// Methods that record something (`inbound`, `event`) return once it is durably recorded, so
/// a channel acks its queue only after its outcome is safe.
#[async_trait]
pub trait ChannelHost: Send + Sync + 'static {
    /// A message arrived from the provider: record it (for `reply_to`) and forward it to the
    /// application. Returns once it is durably kept for forwarding (delivery failures are
    /// then the host's business: it retries), or an error when it could not be kept (a
    /// backend is down) — a transport whose provider can send it again asks for that.
    async fn inbound(&self, channel_id: &str, message: Message) -> Result<(), PortError>;

    /// Keeps one part of a long inbound message until the others arrive, durably: a restart
    /// between the parts loses none already kept. Returns once the part is kept: the whole
    /// text when this part completed the message (the parts are then forgotten), else
    /// `None`. `max_age` is how long the transport waits for missing parts (see
    /// [`expired_parts`](Self::expired_parts)); the host keeps parts well beyond it.
    async fn inbound_part(
        &self,
        channel_id: &str,
        part: InboundPart,
        max_age: Duration,
    ) -> Result<Option<String>, PortError>;

    /// Forgets and returns the long inbound messages whose first part was kept more than
    /// `max_age` ago (oldest first), so the transport can deliver what arrived of them.
    async fn expired_parts(
        &self,
        channel_id: &str,
        max_age: Duration,
    ) -> Result<Vec<PartialMessage>, PortError>;

    /// The channel's cursor `name`: how far its transport has read a provider's stream (the
    /// newest mention kept, say), as last saved with [`save_cursor`](Self::save_cursor);
    /// `None` until first saved. Survives restarts of the channel and of the daemon.
    async fn cursor(&self, channel_id: &str, name: &str) -> Result<Option<String>, PortError>;

    /// Durably replaces the channel's cursor `name`. A transport saves a cursor only after
    /// what it read up to there was kept ([`inbound`](Self::inbound) returned `Ok`), so a
    /// crash in between reads some of it again (at-least-once) and never loses any.
    async fn save_cursor(&self, channel_id: &str, name: &str, value: &str)
        -> Result<(), PortError>;

    /// Records a step of session `session_id` (a USSD session): `true` when it was live
    /// (its previous step less than the idle timeout ago), `false` when it is new; it then
    /// stays live for `idle_timeout`. Kept in the Store, so a restart of the channel or of
    /// the daemon in the middle of a session resumes it.
    async fn session_step(
        &self,
        channel_id: &str,
        session_id: &str,
        idle_timeout: Duration,
    ) -> Result<bool, PortError>;

    /// Forgets session `session_id` (it ended); whether it was live.
    async fn end_session(&self, channel_id: &str, session_id: &str) -> Result<bool, PortError>;

    /// Something happened to an outbound message: record it and forward it.
    async fn event(&self, channel_id: &str, event: Event);

    /// The provider accepted outbound message `message_id` under `provider_ids` (one per part).
    /// The host remembers the mapping for as long as the message's events are kept, and
    /// releases delivery reports that arrived for these ids before it was known. Called after
    /// the message's `submitted` event is recorded, so the application sees `submitted`
    /// before any delivery event.
    async fn provider_ids(&self, channel_id: &str, message_id: &str, provider_ids: &[String]);

    /// The provider reported on the delivery of a message or part. Returns once the report's
    /// event is recorded (or folded into its long message's outcome), or once the report is
    /// known to match no message — after waiting a bounded time for a submit response that
    /// may have raced behind it — so a transport can acknowledge it to the provider then.
    async fn delivery_report(&self, channel_id: &str, report: DeliveryReport) -> ReportOutcome;

    /// A transport component changed status.
    async fn status(&self, channel_id: &str, status: StatusEvent);

    /// Counts a delay in sending (for `/metrics`). Does nothing unless the host counts.
    fn note(&self, _channel_id: &str, _delay: SendDelay) {}

    /// A line for the channel's log (what ops read through `GET /channels/{id}/logs`).
    fn log(&self, channel_id: &str, record: LogRecord);

    /// Opens the channel's durable outbound queue. The consumer hands out at most `prefetch`
    /// deliveries per lane that are not yet acked (the actor's own window then bounds what is
    /// actually being sent), realtime first when both lanes have one ready.
    async fn consume(
        &self,
        channel_id: &str,
        prefetch: usize,
    ) -> Result<Box<dyn OutboundConsumer>, PortError>;
}

/// One part of a long inbound message (SMS concatenation, say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundPart {
    /// Who sent it: parts of different senders never mix.
    pub sender: String,
    /// The reference the sender gave every part of the message.
    pub reference: u16,
    /// How many parts the message has (2 or more).
    pub total: u8,
    /// Which part this is, from 1.
    pub sequence: u8,
    /// Its decoded text.
    pub text: String,
}

/// A long inbound message some of whose parts never came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialMessage {
    /// Who sent it.
    pub sender: String,
    /// The texts of the parts that came, joined in sequence order.
    pub text: String,
}

/// Why a message waited on its way out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendDelay {
    /// It waited for the channel's rate limiter (counted once per message).
    RateLimit,
    /// The transport asked to try it again later.
    Retry,
    /// The provider asked the channel to slow down.
    Throttled,
}

impl SendDelay {
    /// `rate_limit`, `retry` or `throttled`, as `/metrics` labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            SendDelay::RateLimit => "rate_limit",
            SendDelay::Retry => "retry",
            SendDelay::Throttled => "throttled",
        }
    }
}

/// What became of a delivery report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportOutcome {
    /// It became an event (or part of one) of the message it concerns: our id of it.
    Matched(String),
    /// No message is known under its id, even after waiting: it is logged and dropped.
    Unmatched,
    /// It could not be recorded (a backend is down): the transport should make the provider
    /// send it again (SMPP: a temporary error in deliver_sm_resp).
    Failed,
}

/// A failure of the daemon side (a backend that is down, say).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String);

/// Reads one channel's durable outbound queue.
#[async_trait(?Send)]
pub trait OutboundConsumer {
    /// The next message to send, in the backend's priority order. Waits while the queue is
    /// empty or `prefetch` deliveries are unacked; `None` when the queue is gone for good.
    async fn next(&mut self) -> Option<Delivery>;
}

/// A message taken from the queue but not yet settled.
///
/// Dropping it without [`Receipt::ack`] leaves the message in the queue: it is delivered
/// again after the channel restarts (at-least-once; the message id tells duplicates apart).
pub struct Delivery {
    /// The message to send.
    pub message: Message,
    /// Its priority.
    pub priority: Priority,
    /// Removes it from the queue once its outcome is recorded.
    pub receipt: Box<dyn Receipt>,
}

/// Acknowledges one delivery.
#[async_trait]
pub trait Receipt: Send {
    /// Removes the message from the queue for good.
    async fn ack(self: Box<Self>) -> Result<(), PortError>;
}

/// Python logging levels, as the original Junebug writes them in channel logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogLevel {
    /// 10
    Debug = 10,
    /// 20
    Info = 20,
    /// 30
    Warning = 30,
    /// 40
    Error = 40,
    /// 50
    Critical = 50,
}

/// Which way the thing a log entry describes travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the provider (or the application's callback endpoint) towards Junebug.
    Inbound,
    /// From Junebug towards the provider (or the application).
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`, as written in the log files.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// One entry of a channel's log.
///
/// Besides words for people it carries what lets ops find it again: the ids of the messages
/// it concerns (`GET /channels/{id}/messages/{msg_id}/logs` is indexed on them), which way
/// it went, and for protocol traces the decoded PDU or HTTP exchange. Secrets inside a trace
/// (passwords, tokens, `Authorization` headers, `user:pass@` in URLs) are redacted by the log
/// writer, so producers may put whole PDUs and requests in.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// How serious.
    pub level: LogLevel,
    /// Words for people.
    pub message: String,
    /// Our ids of the messages this entry concerns (outbound or inbound).
    pub message_ids: Vec<String>,
    /// Which way it went, when it describes traffic.
    pub direction: Option<Direction>,
    /// The protocol trace: a decoded PDU, an HTTP exchange (method, url, status, headers, body).
    pub trace: Option<serde_json::Value>,
}

impl LogRecord {
    /// An entry at `level`.
    pub fn new(level: LogLevel, message: impl Into<String>) -> Self {
        LogRecord {
            level,
            message: message.into(),
            message_ids: Vec::new(),
            direction: None,
            trace: None,
        }
    }

    /// A DEBUG entry (kept in the log files, not shown by `GET /channels/{id}/logs`).
    pub fn debug(message: impl Into<String>) -> Self {
        Self::new(LogLevel::Debug, message)
    }

    /// An INFO entry.
    pub fn info(message: impl Into<String>) -> Self {
        Self::new(LogLevel::Info, message)
    }

    /// A WARNING entry.
    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(LogLevel::Warning, message)
    }

    /// An ERROR entry.
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(LogLevel::Error, message)
    }

    /// Marks the entry as concerning message `message_id`.
    pub fn about(mut self, message_id: impl Into<String>) -> Self {
        self.message_ids.push(message_id.into());
        self
    }

    /// Marks which way the traffic it describes went.
    pub fn going(mut self, direction: Direction) -> Self {
        self.direction = Some(direction);
        self
    }

    /// Attaches a protocol trace.
    pub fn with_trace(mut self, trace: serde_json::Value) -> Self {
        self.trace = Some(trace);
        self
    }
}
