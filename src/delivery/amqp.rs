//! The AMQP integration for applications (API.md 11), for channels with an `amqp_queue` Q:
//! inbound messages are published to exchange `vumi` with routing key `Q.inbound`, events with
//! `Q.event`, and messages the application publishes with routing key `Q.outbound` are read
//! from queue `Q.outbound` and put on the channel's outbound queue, so they get the same
//! priorities, rate limits and events as messages sent over HTTP.
//!
//! Available with the production backends (RabbitMQ configured); the embedded backend refuses
//! `amqp_queue` at channel creation instead of silently dropping traffic.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use junebug_actors::message::{Event, Message, Priority};
use junebug_actors::ports::LogRecord;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use tokio::task::AbortHandle;

use crate::amqp::{declare_bound_queue, AmqpLink, VUMI_EXCHANGE};
use crate::backend::BackendError;
use crate::logs::ChannelLogs;
use crate::queue::Queue;
use crate::vumi;

/// How many application messages one channel reads ahead from `Q.outbound`.
const PREFETCH: u16 = 32;

/// Longest wait between attempts to consume `Q.outbound` again after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Publishes to and consumes from applications' AMQP queues.
pub struct AmqpApps {
    link: AmqpLink,
    queue: Arc<dyn Queue>,
    logs: Arc<ChannelLogs>,
    /// Per channel: its `amqp_queue` and the task consuming `Q.outbound`.
    consumers: Mutex<HashMap<String, (String, AbortHandle)>>,
    runtime: tokio::runtime::Handle,
}

/// `delivery_mode` 2: the broker keeps the message on disk.
fn persistent() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}

impl AmqpApps {
    /// The integration over `link`, feeding application messages into `queue`; consumer tasks
    /// run on the current runtime.
    pub fn new(link: AmqpLink, queue: Arc<dyn Queue>, logs: Arc<ChannelLogs>) -> Self {
        AmqpApps {
            link,
            queue,
            logs,
            consumers: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    async fn publish(
        &self,
        routing_key: String,
        body: serde_json::Value,
    ) -> Result<(), BackendError> {
        let payload =
            serde_json::to_vec(&body).map_err(|e| BackendError::new("amqp", e.to_string()))?;
        self.link
            .publish_confirmed(VUMI_EXCHANGE, &routing_key, &payload, persistent())
            .await
    }

    /// Publishes an inbound message to `Q.inbound`.
    pub async fn publish_inbound(
        &self,
        amqp_queue: &str,
        message: &Message,
    ) -> Result<(), BackendError> {
        self.publish(format!("{amqp_queue}.inbound"), vumi::message(message))
            .await
    }

    /// Publishes an event to `Q.event`.
    pub async fn publish_event(
        &self,
        amqp_queue: &str,
        channel_id: &str,
        event: &Event,
    ) -> Result<(), BackendError> {
        self.publish(
            format!("{amqp_queue}.event"),
            vumi::event(channel_id, event),
        )
        .await
    }

    /// Makes channel `channel_id` consume `Q.outbound` for `amqp_queue` (or nothing when
    /// `None`), replacing what it consumed before.
    pub fn attach(&self, channel_id: &str, amqp_queue: Option<&str>, transport_type: &str) {
        let mut consumers = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(q), Some((current, _))) = (amqp_queue, consumers.get(channel_id)) {
            if current == q {
                return;
            }
        }
        if let Some((_, task)) = consumers.remove(channel_id) {
            task.abort();
        }
        let Some(amqp_queue) = amqp_queue else {
            return;
        };
        let consumer = AppConsumer {
            link: self.link.clone(),
            queue: self.queue.clone(),
            logs: self.logs.clone(),
            channel_id: channel_id.to_owned(),
            transport_type: transport_type.to_owned(),
            queue_name: format!("{amqp_queue}.outbound"),
        };
        let task = self.runtime.spawn(consumer.run());
        consumers.insert(
            channel_id.to_owned(),
            (amqp_queue.to_owned(), task.abort_handle()),
        );
    }

    /// Stops consuming for a deleted channel.
    pub fn detach(&self, channel_id: &str) {
        self.attach(channel_id, None, "");
    }
}

/// Reads one channel's `Q.outbound` into its outbound queue.
struct AppConsumer {
    link: AmqpLink,
    queue: Arc<dyn Queue>,
    logs: Arc<ChannelLogs>,
    channel_id: String,
    transport_type: String,
    queue_name: String,
}

impl AppConsumer {
    /// Consumes for ever, starting again with backoff after any failure (the broker or the
    /// store being away): unacked messages are redelivered, so none is lost.
    async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Err(e) = self.consume().await {
                self.logs.push(
                    &self.channel_id,
                    LogRecord::warning(format!(
                        "Consuming {} stopped, retrying in {backoff:?}: {e}",
                        self.queue_name
                    )),
                );
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn consume(&self) -> Result<(), BackendError> {
        let fail = |e: lapin::Error| BackendError::new("amqp", e.to_string());
        let channel = self.link.channel().await?;
        declare_bound_queue(&channel, &self.queue_name, FieldTable::default()).await?;
        channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await
            .map_err(fail)?;
        let mut deliveries = channel
            .basic_consume(
                self.queue_name.as_str().into(),
                format!("junebug-{}", self.channel_id).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(fail)?;
        while let Some(delivery) = deliveries.next().await {
            let delivery = delivery.map_err(fail)?;
            match vumi::outbound(&delivery.data, &self.channel_id, &self.transport_type) {
                Ok(message) => {
                    let priority = delivery
                        .properties
                        .priority()
                        .and_then(Priority::new)
                        .unwrap_or_default();
                    self.queue
                        .enqueue(&self.channel_id, &message, priority)
                        .await?;
                    delivery
                        .ack(BasicAckOptions::default())
                        .await
                        .map_err(fail)?;
                }
                Err(e) => {
                    self.logs.push(
                        &self.channel_id,
                        LogRecord::error(format!(
                            "Dropped a message from {}: {e}",
                            self.queue_name
                        )),
                    );
                    delivery
                        .reject(BasicRejectOptions { requeue: false })
                        .await
                        .map_err(fail)?;
                }
            }
        }
        Err(BackendError::new("amqp", "the consumer was cancelled"))
    }
}
