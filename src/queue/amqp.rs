//! The RabbitMQ Queue: one durable priority queue per channel, `<prefix><channel id>.outbound`,
//! bound to the `vumi` exchange under its own name (over the shared [`AmqpLink`]).
//!
//! - **One priority queue, not one queue per lane.** The queue is declared with
//!   `x-max-priority: 5` and each message carries its [`Priority`] (1–5) as the AMQP
//!   `priority` property, so RabbitMQ itself hands out the highest priority first and, within a
//!   priority, the oldest first. One queue per lane would make a consumer read several queues
//!   and merge them, and with a prefetch window per queue it could not honour the order
//!   between lanes; purging, counting and deleting would touch several queues too. The cost:
//!   ordering applies to what waits in the queue, not to what a consumer has already prefetched
//!   (its window), which is what the embedded queue does as well.
//! - **Enqueue** publishes the message's JSON, persistent (`delivery_mode 2`), with its id as
//!   `message_id`, through the link's confirm-mode channel, with `mandatory`: it returns once
//!   RabbitMQ has confirmed it (on disk), and fails on a nack, a return (no queue) or a timeout.
//!   Queues are declared lazily and remembered per connection generation: after a reconnection
//!   they are declared again, in case the broker restarted without them.
//! - **Consume** opens a channel of its own with `basic.qos(prefetch)` and manual acks: the
//!   prefetch window is RabbitMQ's. When the connection or the channel dies, the consumer waits
//!   for the link, opens a new channel and consumer and goes on; RabbitMQ delivers again what
//!   was not acked (at-least-once; message ids make duplicates detectable). A consumer's channel
//!   closes when the consumer and every receipt it handed out are gone, which returns their
//!   unacked messages to the queue. The consumer ends (`None`) only when its queue was deleted.
//! - **Purge** takes what waits with `basic.get` and acks it all at once; messages other
//!   consumers hold are not waiting and stay.
//!
//! Nothing here is known to one process only: several Junebug processes may share the broker.
//! No `x-expires`: a queue lives until its channel is deleted.
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::StreamExt;
use junebug_actors::message::{Message, Priority};
use junebug_actors::ports::{Delivery, OutboundConsumer, PortError, Receipt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, BasicProperties, Channel, Consumer, ErrorKind};

use super::Queue;
use crate::amqp::{
    declare_bound_queue, fail, next_backoff, within, AmqpLink, BACKOFF_INITIAL, VUMI_EXCHANGE,
};
use crate::backend::BackendError;

/// The highest priority, as declared on every queue (`x-max-priority`).
const MAX_PRIORITY: i32 = 5;

/// The RabbitMQ Queue.
pub struct AmqpQueue {
    link: AmqpLink,
    prefix: String,
    /// Queues declared on the connection of generation `.0`.
    declared: Mutex<(u64, HashSet<String>)>,
    /// Held while declaring, so a burst of first enqueues declares once instead of opening
    /// a channel each (which exhausts the connection's channels). Declaring is rare: once
    /// per queue and connection.
    declaring: tokio::sync::Mutex<()>,
}

impl AmqpQueue {
    /// The queues `<queue_prefix><channel id>.outbound` over `link`.
    pub fn new(link: AmqpLink, queue_prefix: &str) -> AmqpQueue {
        AmqpQueue {
            link,
            prefix: queue_prefix.to_owned(),
            declared: Mutex::new((0, HashSet::new())),
            declaring: tokio::sync::Mutex::new(()),
        }
    }

    /// The name of a channel's queue (also its routing key on `vumi`).
    pub fn queue_name(&self, channel_id: &str) -> String {
        format!("{}{channel_id}.outbound", self.prefix)
    }

    /// Declares `queue` unless it was declared on the current connection.
    async fn ensure_declared(&self, queue: &str) -> Result<(), BackendError> {
        let generation = self.link.generation();
        if self.with_declared(generation, |queues| queues.contains(queue)) {
            return Ok(());
        }
        let _declaring = self.declaring.lock().await;
        let generation = self.link.generation();
        if self.with_declared(generation, |queues| queues.contains(queue)) {
            return Ok(());
        }
        let channel = self.link.channel().await?;
        declare_bound_queue(&channel, queue, priority_queue_arguments()).await?;
        self.with_declared(generation, |queues| queues.insert(queue.to_owned()));
        Ok(())
    }

    /// Runs `f` on the set of queues declared on connection `generation` (emptied first if
    /// the set was for another connection).
    fn with_declared<T>(&self, generation: u64, f: impl FnOnce(&mut HashSet<String>) -> T) -> T {
        // A poisoned lock only means another thread panicked holding it; the set is intact.
        let mut declared = self.declared.lock().unwrap_or_else(|e| e.into_inner());
        if declared.0 != generation {
            *declared = (generation, HashSet::new());
        }
        f(&mut declared.1)
    }

    fn forget(&self, queue: &str) {
        let mut declared = self.declared.lock().unwrap_or_else(|e| e.into_inner());
        declared.1.remove(queue);
    }
}

/// `x-max-priority`: RabbitMQ keeps one sub-queue per priority level.
fn priority_queue_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-priority".into(), AMQPValue::LongInt(MAX_PRIORITY));
    arguments
}

#[async_trait]
impl Queue for AmqpQueue {
    async fn enqueue(
        &self,
        channel_id: &str,
        message: &Message,
        priority: Priority,
    ) -> Result<(), BackendError> {
        let queue = self.queue_name(channel_id);
        let payload = serde_json::to_vec(message).map_err(|e| fail(e.to_string()))?;
        self.ensure_declared(&queue).await?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_priority(priority.level())
            .with_message_id(message.message_id.as_str().into())
            .with_content_type("application/json".into());
        let published = self
            .link
            .publish_mandatory(VUMI_EXCHANGE, &queue, &payload, properties)
            .await;
        if published.is_err() {
            // The queue may have been deleted behind our back: declare it again next time.
            self.forget(&queue);
        }
        published
    }

    async fn consume(
        &self,
        channel_id: &str,
        prefetch: usize,
    ) -> Result<Box<dyn OutboundConsumer>, BackendError> {
        let queue = self.queue_name(channel_id);
        self.ensure_declared(&queue).await?;
        let prefetch = u16::try_from(prefetch.max(1)).unwrap_or(u16::MAX);
        let session = Session::open(&self.link, &queue, prefetch, false)
            .await
            .map_err(|e| match e {
                OpenError::Gone => fail(format!("queue {queue:?} does not exist")),
                OpenError::Failed(e) => e,
            })?;
        Ok(Box::new(AmqpConsumer {
            link: self.link.clone(),
            queue,
            prefetch,
            session: Some(session),
        }))
    }

    async fn purge(&self, channel_id: &str) -> Result<Vec<Message>, BackendError> {
        let queue = self.queue_name(channel_id);
        self.ensure_declared(&queue).await?;
        let channel = self.link.channel().await?;
        let mut messages = Vec::new();
        let mut last_tag = None;
        loop {
            let got = within(
                &format!("cannot read queue {queue:?}"),
                channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false }),
            )
            .await?;
            let Some(got) = got else { break };
            last_tag = Some(got.delivery.delivery_tag);
            match serde_json::from_slice(&got.delivery.data) {
                Ok(message) => messages.push(message),
                Err(e) => log::error!(
                    "Purging an unreadable message from {queue}: {e}: {}",
                    String::from_utf8_lossy(&got.delivery.data)
                ),
            }
            // Stop at what waited when we started, even if producers keep adding.
            if got.message_count == 0 {
                break;
            }
        }
        if let Some(tag) = last_tag {
            // If this fails, the channel's close requeues everything: nothing is lost, and
            // the caller, told of the failure, cancels nothing.
            within(
                &format!("cannot ack what was taken from {queue:?}"),
                channel.basic_ack(tag, BasicAckOptions { multiple: true }),
            )
            .await?;
        }
        // Closing waits for RabbitMQ to have processed the ack before it.
        if let Err(e) = within("cannot close a channel", channel.close(200, "OK".into())).await {
            log::warn!(
                "Purged {queue} but could not close the channel: {}",
                e.detail
            );
        }
        Ok(messages)
    }

    async fn remove(&self, channel_id: &str) -> Result<(), BackendError> {
        let queue = self.queue_name(channel_id);
        self.forget(&queue);
        let channel = self.link.channel().await?;
        within(
            &format!("cannot delete queue {queue:?}"),
            channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()),
        )
        .await?;
        Ok(())
    }
}

/// Why a consumer could not be (re)opened.
enum OpenError {
    /// Its queue no longer exists.
    Gone,
    /// Anything else: try again later.
    Failed(BackendError),
}

/// A channel of a consumer, closed (returning its unacked messages to the queue) once the
/// consumer and every receipt it handed out are gone.
struct ConsumerChannel {
    channel: Channel,
    link: AmqpLink,
}

impl Drop for ConsumerChannel {
    fn drop(&mut self) {
        if self.channel.status().connected() {
            let channel = self.channel.clone();
            self.link.spawn_on_owner(async move {
                let _ = within("", channel.close(200, "OK".into())).await;
            });
        }
    }
}

/// One channel's consumption of the queue.
struct Session {
    channel: Arc<ConsumerChannel>,
    deliveries: Consumer,
}

impl Session {
    /// Opens a channel with `basic.qos(prefetch)` and consumes `queue` with manual acks.
    /// With `passive`, first checks that the queue still exists.
    async fn open(
        link: &AmqpLink,
        queue: &str,
        prefetch: u16,
        passive: bool,
    ) -> Result<Session, OpenError> {
        let channel = link.channel().await.map_err(OpenError::Failed)?;
        let channel = Arc::new(ConsumerChannel {
            channel,
            link: link.clone(),
        });
        let lapin = &channel.channel;
        if passive {
            let options = QueueDeclareOptions {
                passive: true,
                durable: true,
                ..QueueDeclareOptions::default()
            };
            let checked = tokio::time::timeout(
                crate::amqp::OPERATION_TIMEOUT,
                lapin.queue_declare(queue.into(), options, FieldTable::default()),
            )
            .await;
            match checked {
                Ok(Ok(_)) => {}
                Ok(Err(e)) if is_not_found(&e) => return Err(OpenError::Gone),
                Ok(Err(e)) => {
                    return Err(OpenError::Failed(fail(format!(
                        "cannot check queue {queue:?}: {e}"
                    ))))
                }
                Err(_) => {
                    return Err(OpenError::Failed(fail(format!(
                        "cannot check queue {queue:?}: no answer"
                    ))))
                }
            }
        }
        within(
            "cannot set the prefetch window",
            lapin.basic_qos(prefetch, BasicQosOptions::default()),
        )
        .await
        .map_err(OpenError::Failed)?;
        let deliveries = within(
            &format!("cannot consume queue {queue:?}"),
            lapin.basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .map_err(OpenError::Failed)?;
        Ok(Session {
            channel,
            deliveries,
        })
    }
}

fn is_not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404)
}

/// Reads one channel's queue; survives the loss of the connection.
struct AmqpConsumer {
    link: AmqpLink,
    queue: String,
    prefetch: u16,
    /// `None` after the channel died, until it is replaced.
    session: Option<Session>,
}

impl AmqpConsumer {
    /// Waits for the link and opens a new session, with backoff; `None` if the queue is gone
    /// or the link closed for good.
    async fn reopen(&self) -> Option<Session> {
        let mut delay = BACKOFF_INITIAL;
        loop {
            self.link.wait_connected().await.ok()?;
            match Session::open(&self.link, &self.queue, self.prefetch, true).await {
                Ok(session) => {
                    log::info!("Consuming {} again", self.queue);
                    return Some(session);
                }
                Err(OpenError::Gone) => {
                    log::info!("Queue {} was deleted: its consumer stops", self.queue);
                    return None;
                }
                Err(OpenError::Failed(e)) => {
                    log::warn!(
                        "Cannot consume {} again, retrying in {delay:?}: {}",
                        self.queue,
                        e.detail
                    );
                    tokio::time::sleep(delay).await;
                    delay = next_backoff(delay);
                }
            }
        }
    }

    /// Our delivery from lapin's; `None` (after rejecting it) for a message that is not ours.
    async fn delivery(
        &self,
        channel: &Arc<ConsumerChannel>,
        delivery: lapin::message::Delivery,
    ) -> Option<Delivery> {
        let priority = delivery
            .properties
            .priority()
            .and_then(Priority::new)
            .unwrap_or_default();
        match serde_json::from_slice::<Message>(&delivery.data) {
            Ok(message) => Some(Delivery {
                message,
                priority,
                receipt: Box::new(AmqpReceipt {
                    acker: delivery.acker,
                    _channel: channel.clone(),
                }),
            }),
            Err(e) => {
                // It can never be sent; left unacked it would take a window slot for ever.
                log::error!(
                    "Dropping an unreadable message from {}: {e}: {}",
                    self.queue,
                    String::from_utf8_lossy(&delivery.data)
                );
                let rejected = delivery.acker.reject(BasicRejectOptions { requeue: false });
                let _ = within("", rejected).await;
                None
            }
        }
    }
}

#[async_trait(?Send)]
impl OutboundConsumer for AmqpConsumer {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            let session = match self.session.as_mut() {
                Some(session) => session,
                None => self.session.insert(self.reopen().await?),
            };
            match session.deliveries.next().await {
                Some(Ok(delivery)) => {
                    let channel = session.channel.clone();
                    if let Some(delivery) = self.delivery(&channel, delivery).await {
                        return Some(delivery);
                    }
                }
                Some(Err(e)) => {
                    log::warn!("Consuming {} failed: {e}", self.queue);
                    self.session = None;
                }
                None => {
                    // Cancelled: the channel closed, or the queue was deleted (checked when
                    // reopening).
                    self.session = None;
                }
            }
        }
    }
}

/// Acks one delivery on the channel it came from.
struct AmqpReceipt {
    acker: Acker,
    /// Keeps the channel open until the delivery is settled.
    _channel: Arc<ConsumerChannel>,
}

#[async_trait]
impl Receipt for AmqpReceipt {
    async fn ack(self: Box<Self>) -> Result<(), PortError> {
        match within("cannot ack", self.acker.ack(BasicAckOptions::default())).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(PortError(
                "amqp: cannot ack: the delivery's channel is closed; RabbitMQ will deliver \
                 the message again"
                    .to_owned(),
            )),
            Err(e) => Err(e.into()),
        }
    }
}
