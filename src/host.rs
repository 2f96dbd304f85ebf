//! [`Host`]: the daemon's side of the actors' ports. It records what channels report in the
//! Store, counts it for the rates, and forwards it to applications through [`Callbacks`].
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use junebug_actors::message::{DeliveryReport, Event, Message, SessionEvent, StatusEvent};
use junebug_actors::ports::{
    ChannelHost, Direction, InboundPart, LogRecord, OutboundConsumer, PartialMessage, PortError,
    ReportOutcome, SendDelay,
};
use serde_json::{json, Value};

use crate::backend::BackendError;
use crate::delivery::amqp::AmqpApps;
use crate::delivery::template::{CallbackMethod, TemplateKind, TemplateValues, UrlTemplate};
use crate::delivery::{Callback, CallbackKind, Callbacks};
use crate::logs::ChannelLogs;
use crate::metrics;
use crate::metrics::exporter::Metrics;
use crate::queue::Queue;
use crate::receipts::{long_message_outcome, part_report, ReceiptMatcher};
use crate::store::cache::ChannelCache;
use crate::store::{ChannelProperties, PartRef, PartsKey, Store, Tally};
use crate::wire;

/// How long the parts of a long inbound message are kept: at least as long as inbound
/// messages, and long enough that the transport's expiry (`max_age`) finds them first even
/// after a daemon restart of a few times `max_age`.
fn parts_ttl(inbound_ttl: Duration, max_age: Duration) -> Duration {
    inbound_ttl.max(max_age * 10)
}

/// Time settings the host applies.
#[derive(Debug, Clone, Copy)]
pub struct HostSettings {
    /// How long inbound messages can be replied to.
    pub inbound_ttl: Duration,
    /// How long events of an outbound message are recorded and forwarded.
    pub outbound_ttl: Duration,
    /// Rate bucket size, seconds.
    pub metric_window: f64,
}

/// Implements [`ChannelHost`] over the Store, the Queue, callbacks and channel logs.
pub struct Host {
    pub(crate) store: Arc<dyn Store>,
    /// The channels' properties, read through this cache on the per-message path.
    pub(crate) channels: ChannelCache,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) callbacks: Callbacks,
    /// The AMQP integration for applications, when RabbitMQ is configured.
    pub(crate) apps: Option<Arc<AmqpApps>>,
    pub(crate) logs: Arc<ChannelLogs>,
    pub(crate) metrics: Arc<Metrics>,
    /// Matches delivery reports to messages.
    pub(crate) receipts: ReceiptMatcher,
    pub(crate) settings: HostSettings,
    pub(crate) logger: slog::Logger,
}

/// A string property of a channel, if set.
fn text<'a>(props: &'a ChannelProperties, key: &str) -> Option<&'a str> {
    props.get(key).and_then(Value::as_str)
}

/// A stored callback URL expanded for one callback. URLs are checked when they are set; one
/// stored before templates existed that does not parse is used as written.
fn expand(url: &str, kind: TemplateKind, values: &TemplateValues<'_>) -> String {
    UrlTemplate::parse("url", url, kind).map_or_else(|_| url.to_owned(), |t| t.expand(values))
}

/// A stored callback method (checked when set; absent or unreadable: POST).
fn method(value: Option<&Value>) -> CallbackMethod {
    CallbackMethod::parse("method", value.unwrap_or(&Value::Null)).unwrap_or_default()
}

/// Whether the channel forwards inbound traffic (API.md 4.1: decided by key presence).
pub fn has_destination(props: &ChannelProperties) -> bool {
    props.contains_key("mo_url") || props.contains_key("amqp_queue")
}

impl Host {
    /// One `label` occurrence, now, for the channel's rates.
    pub fn tally<'a>(&self, label: &'a str) -> Tally<'a> {
        let window = self.settings.metric_window;
        Tally {
            label,
            bucket: metrics::current_bucket(window),
            ttl: metrics::bucket_ttl(window),
        }
    }

    /// Counts one `label` for the channel's rates.
    pub async fn count(&self, channel_id: &str, label: &str) {
        let Tally { bucket, ttl, .. } = self.tally(label);
        if let Err(e) = self.store.count(channel_id, label, bucket, ttl).await {
            self.backend_failed(channel_id, "count a rate", &e);
        }
    }

    fn backend_failed(&self, channel_id: &str, what: &str, error: &dyn std::fmt::Display) {
        slog::error!(self.logger, "Storage failed"; "channel_id" => channel_id, "action" => what, "error" => %error);
        self.logs.push(
            channel_id,
            LogRecord::error(format!("Cannot {what}: {error}")),
        );
    }

    /// Logs a backend failure that kept an inbound message (or part) from being kept.
    fn not_kept(&self, channel_id: &str, what: &str, error: BackendError) -> PortError {
        self.backend_failed(channel_id, what, &error);
        error.into()
    }

    /// Records an event and forwards it to its message's `event_url` and the channel's
    /// `amqp_queue`.
    pub async fn record_event(&self, channel_id: &str, event: &Event) {
        let mut channel = ChannelOnce::new(self, channel_id);
        let event_type = wire::event_type(&event.kind);
        let ttl = self.settings.outbound_ttl;
        let record = match self
            .store
            .record_event(channel_id, event, ttl, self.tally(event_type))
            .await
        {
            Ok(record) => record,
            Err(e) => {
                self.backend_failed(channel_id, "record an event", &e);
                None
            }
        };
        self.metrics
            .events
            .with_label_values(&[channel_id, event_type])
            .inc();
        // No record: not sent through the API, or older than outbound_message_ttl.
        if let Some(record) = record {
            if let Some(url) = record.event_url {
                let secret = match record.callback_secret {
                    Some(secret) => Some(secret),
                    None => channel.text("callback_secret").await,
                };
                let values = TemplateValues::event(channel_id, event, Some(&record.message));
                let callback = Callback {
                    url: expand(&url, TemplateKind::Event, &values),
                    token: record.event_auth_token,
                    body: wire::event_json(channel_id, event),
                    what: CallbackKind::Event,
                    secret,
                    message_id: Some(event.user_message_id.clone()),
                    method: method(record.event_url_method.as_ref()),
                };
                // Delivered even when the outbox could not keep it (that is logged).
                let _ = self.callbacks.post(channel_id, callback).await;
            }
        }
        if let Some(apps) = self.apps.as_deref() {
            if let Some(amqp_queue) = channel.text("amqp_queue").await {
                if let Err(e) = apps.publish_event(&amqp_queue, channel_id, event).await {
                    self.backend_failed(channel_id, "publish an event", &e);
                }
            }
        }
    }
}

/// A channel's properties, loaded from the Store on first use and at most once: an event
/// may need its `callback_secret` and its `amqp_queue`, or neither.
struct ChannelOnce<'a> {
    host: &'a Host,
    id: &'a str,
    loaded: Option<Option<Arc<ChannelProperties>>>,
}

impl<'a> ChannelOnce<'a> {
    fn new(host: &'a Host, id: &'a str) -> Self {
        ChannelOnce {
            host,
            id,
            loaded: None,
        }
    }

    /// Text property `key`, if the channel exists and has it (a Store failure is logged).
    async fn text(&mut self, key: &str) -> Option<String> {
        if self.loaded.is_none() {
            let props = match self.host.channels.get(self.id).await {
                Ok(props) => props,
                Err(e) => {
                    self.host.backend_failed(self.id, "look up the channel", &e);
                    None
                }
            };
            self.loaded = Some(props);
        }
        let props = self.loaded.as_ref()?.as_ref()?;
        text(props, key).map(str::to_owned)
    }
}

impl Host {
    /// Turns a matched report into its message's event: at once for a single-part message,
    /// once the outcome is decided for a long one.
    async fn report_part(
        &self,
        channel_id: &str,
        part: PartRef,
        report: DeliveryReport,
    ) -> ReportOutcome {
        let mut details = report.details;
        details.insert(
            "provider_message_id".into(),
            json!(report.provider_message_id),
        );
        let ttl = self.settings.outbound_ttl;
        let event = if part.parts <= 1 {
            Event::delivery_report(&part.message_id, report.status, details)
        } else {
            let store = &self.store;
            let reports = match store
                .record_part_report(
                    channel_id,
                    &part,
                    &part_report(&part, report.status, &details),
                    ttl,
                )
                .await
            {
                Ok(reports) => reports,
                Err(e) => {
                    self.backend_failed(channel_id, "record a part's delivery report", &e);
                    return ReportOutcome::Failed;
                }
            };
            let Some(status) = long_message_outcome(part.parts, &reports) else {
                return ReportOutcome::Matched(part.message_id); // undecided: await the others
            };
            match store
                .claim_final_report(channel_id, &part.message_id, ttl)
                .await
            {
                Ok(true) => {}
                Ok(false) => return ReportOutcome::Matched(part.message_id), // forwarded before
                Err(e) => {
                    self.backend_failed(channel_id, "record a delivery outcome", &e);
                    return ReportOutcome::Failed;
                }
            }
            let parts: Vec<Value> = reports.into_values().collect();
            let mut details = serde_json::Map::new();
            details.insert("parts".into(), Value::Array(parts));
            Event::delivery_report(&part.message_id, status, details)
        };
        self.record_event(channel_id, &event).await;
        ReportOutcome::Matched(event.user_message_id)
    }
}

#[async_trait]
impl ChannelHost for Host {
    async fn inbound(&self, channel_id: &str, message: Message) -> Result<(), PortError> {
        let props = match self.channels.get(channel_id).await {
            Ok(Some(props)) => props,
            Ok(None) => return Ok(()), // deleted meanwhile: nobody to hand it to
            Err(e) => return Err(self.not_kept(channel_id, "look up the channel", e)),
        };
        // Every step is tried, so the application gets what can reach it; any failure makes
        // the message "not kept", and a provider that can send it again is asked to.
        let mut kept = Ok(());
        if message.session_event != Some(SessionEvent::Close) {
            if let Err(e) = self
                .store
                .save_inbound(channel_id, &message, self.settings.inbound_ttl)
                .await
            {
                kept = Err(self.not_kept(channel_id, "store an inbound message", e));
            }
        }
        self.metrics
            .messages
            .with_label_values(&[channel_id, "inbound"])
            .inc();
        if has_destination(&props) {
            self.count(channel_id, "inbound").await;
        }
        if let Some(url) = text(&props, "mo_url") {
            let values = TemplateValues::inbound(channel_id, &message);
            let callback = Callback {
                url: expand(url, TemplateKind::Inbound, &values),
                token: text(&props, "mo_url_auth_token").map(str::to_owned),
                body: wire::message_json(&message),
                what: CallbackKind::Inbound,
                secret: text(&props, "callback_secret").map(str::to_owned),
                message_id: Some(message.message_id.clone()),
                method: method(props.get("mo_url_method")),
            };
            if let Err(e) = self.callbacks.post(channel_id, callback).await {
                kept = Err(PortError(e.to_string())); // the outbox logged it
            }
        }
        if let (Some(apps), Some(amqp_queue)) = (self.apps.as_deref(), text(&props, "amqp_queue")) {
            if let Err(e) = apps.publish_inbound(amqp_queue, &message).await {
                kept = Err(self.not_kept(channel_id, "publish an inbound message", e));
            }
        }
        kept
    }

    async fn inbound_part(
        &self,
        channel_id: &str,
        part: InboundPart,
        max_age: Duration,
    ) -> Result<Option<String>, PortError> {
        let key = PartsKey {
            sender: part.sender,
            reference: part.reference,
            total: part.total,
        };
        let ttl = parts_ttl(self.settings.inbound_ttl, max_age);
        match self
            .store
            .add_inbound_part(channel_id, &key, part.sequence, &part.text, ttl)
            .await
        {
            Ok(whole) => Ok(whole.map(|texts| texts.concat())),
            Err(e) => Err(self.not_kept(channel_id, "keep a part of a long message", e)),
        }
    }

    async fn expired_parts(
        &self,
        channel_id: &str,
        max_age: Duration,
    ) -> Result<Vec<PartialMessage>, PortError> {
        match self.store.take_expired_parts(channel_id, max_age).await {
            Ok(expired) => Ok(expired
                .into_iter()
                .map(|parts| PartialMessage {
                    sender: parts.key.sender,
                    text: parts.texts.concat(),
                })
                .collect()),
            Err(e) => Err(self.not_kept(channel_id, "read expired parts of long messages", e)),
        }
    }

    async fn cursor(&self, channel_id: &str, name: &str) -> Result<Option<String>, PortError> {
        self.store
            .cursor(channel_id, name)
            .await
            .map_err(|e| self.not_kept(channel_id, "read a cursor", e))
    }

    async fn save_cursor(
        &self,
        channel_id: &str,
        name: &str,
        value: &str,
    ) -> Result<(), PortError> {
        self.store
            .save_cursor(channel_id, name, value)
            .await
            .map_err(|e| self.not_kept(channel_id, "save a cursor", e))
    }

    async fn session_step(
        &self,
        channel_id: &str,
        session_id: &str,
        idle_timeout: Duration,
    ) -> Result<bool, PortError> {
        self.store
            .session_step(channel_id, session_id, idle_timeout)
            .await
            .map_err(|e| self.not_kept(channel_id, "record a session step", e))
    }

    async fn end_session(&self, channel_id: &str, session_id: &str) -> Result<bool, PortError> {
        self.store
            .end_session(channel_id, session_id)
            .await
            .map_err(|e| self.not_kept(channel_id, "end a session", e))
    }

    async fn event(&self, channel_id: &str, event: Event) {
        self.record_event(channel_id, &event).await;
    }

    async fn provider_ids(&self, channel_id: &str, message_id: &str, provider_ids: &[String]) {
        let ttl = self.settings.outbound_ttl;
        match self
            .store
            .map_provider_ids(channel_id, message_id, provider_ids, ttl)
            .await
        {
            Ok(()) => self.receipts.mapped(channel_id, provider_ids),
            Err(e) => self.backend_failed(channel_id, "map provider message ids", &e),
        }
    }

    async fn delivery_report(&self, channel_id: &str, report: DeliveryReport) -> ReportOutcome {
        let provider_id = report.provider_message_id.clone();
        match self
            .receipts
            .find(self.store.as_ref(), channel_id, &provider_id)
            .await
        {
            Ok(Some(part)) => {
                self.logs.push(
                    channel_id,
                    LogRecord::info(format!(
                        "Delivery report for part {} of {}: {:?}",
                        part.part + 1,
                        part.parts,
                        report.status
                    ))
                    .about(&part.message_id)
                    .going(Direction::Inbound),
                );
                self.report_part(channel_id, part, report).await
            }
            Ok(None) => {
                self.logs.push(
                    channel_id,
                    LogRecord::warning(format!(
                        "Dropped a delivery report for unknown provider message id {provider_id}"
                    ))
                    .going(Direction::Inbound),
                );
                ReportOutcome::Unmatched
            }
            Err(e) => {
                self.backend_failed(channel_id, "look up a provider message id", &e);
                ReportOutcome::Failed
            }
        }
    }

    async fn status(&self, channel_id: &str, status: StatusEvent) {
        if let Err(e) = self.store.save_status(channel_id, &status).await {
            self.backend_failed(channel_id, "store a status", &e);
        }
        match self.channels.get(channel_id).await {
            Ok(Some(props)) => {
                if let Some(url) = text(&props, "status_url") {
                    let values = TemplateValues::status_event(channel_id, &status);
                    let callback = Callback {
                        url: expand(url, TemplateKind::Status, &values),
                        token: None,
                        body: wire::status_json(channel_id, &status),
                        what: CallbackKind::Status,
                        secret: text(&props, "callback_secret").map(str::to_owned),
                        message_id: None,
                        method: method(props.get("status_url_method")),
                    };
                    // Delivered even when the outbox could not keep it (that is logged).
                    let _ = self.callbacks.post(channel_id, callback).await;
                }
            }
            Ok(None) => {}
            Err(e) => self.backend_failed(channel_id, "look up the channel", &e),
        }
    }

    fn note(&self, channel_id: &str, delay: SendDelay) {
        self.metrics
            .send_delays
            .with_label_values(&[channel_id, delay.as_str()])
            .inc();
    }

    fn log(&self, channel_id: &str, record: LogRecord) {
        self.logs.push(channel_id, record);
    }

    async fn consume(
        &self,
        channel_id: &str,
        prefetch: usize,
    ) -> Result<Box<dyn OutboundConsumer>, PortError> {
        Ok(self.queue.consume(channel_id, prefetch).await?)
    }
}
