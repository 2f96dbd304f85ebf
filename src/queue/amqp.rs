//! The RabbitMQ Queue: two durable queues per channel, one per lane,
//! `<prefix><channel id>.outbound.realtime` and `<prefix><channel id>.outbound.bulk`, each
//! bound to the `vumi` exchange under its own name (over the shared [`AmqpLink`]).
//!
//! - **One queue per lane.** A single priority queue orders what waits in it, but it cannot
//!   say how many messages of each lane wait (RabbitMQ reports one `message_count`), nor purge
//!   one lane (`basic.get` takes the best message, whatever its lane), and its consumer has
//!   one prefetch window for both lanes: with the window full of bulk deliveries, a realtime
//!   message waits in the broker until a bulk one is acked. With a queue per lane, counting
//!   is a passive `queue.declare` per lane (`message_count`, O(1) on the broker), a lane is
//!   purged by reading its queue only, and the consumer reads both queues with a window each
//!   (see below). Both queues keep `x-max-priority: 5` and each message carries its
//!   [`Priority`] (1–5) as the AMQP `priority` property, so within a lane RabbitMQ still hands
//!   out the highest priority first and, within a priority, the oldest first.
//! - **Enqueue** publishes the message's JSON to its lane's queue, persistent
//!   (`delivery_mode 2`), with its id as `message_id`, through the link's confirm-mode channel,
//!   with `mandatory`: it returns once RabbitMQ has confirmed it (on disk), and fails on a
//!   nack, a return (no queue) or a timeout. Queues are declared lazily, one declaration at a
//!   time, and remembered per connection generation: after a reconnection they are declared
//!   again, in case the broker restarted without them.
//! - **Consume** opens one channel of its own with two consumers, one per lane queue, manual
//!   acks, and `basic.qos(prefetch, global = false)`, which RabbitMQ applies *per consumer*:
//!   each lane has a window of `prefetch` unacked deliveries. So the realtime lane always has
//!   credit and a realtime message reaches the channel at once even while the bulk window is
//!   full, and bulk keeps flowing while realtime messages wait (the channel actor bounds what
//!   is actually in flight, and its mailbox sends realtime first without starving bulk).
//!   [`OutboundConsumer::next`] merges the two, realtime first when both have a delivery
//!   ready. When the connection or the channel dies, the consumer waits for the link, opens a
//!   new channel and consumers and goes on; RabbitMQ delivers again what was not acked
//!   (at-least-once; message ids make duplicates detectable). A consumer's channel closes when
//!   the consumer and every receipt it handed out are gone, which returns their unacked
//!   messages to the queues. The consumer ends (`None`) only when its queues were deleted
//!   (either of them missing counts).
//! - **Lengths** are the `message_count` of a passive `queue.declare` of each lane queue:
//!   ready messages, not those a consumer holds. A queue that does not exist (yet, or any
//!   more) counts 0 and is not created.
//! - **Purge** takes what waits in the lane's queue (or both) with `basic.get` and acks it all
//!   at once; messages consumers hold are not waiting and stay.
//!
//! Nothing here is known to one process only: several Junebug processes may share the broker.
//! No `x-expires`: the queues live until their channel is deleted.
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::StreamExt;
use junebug_actors::message::{Lane, Message, Priority};
use junebug_actors::ports::{Delivery, OutboundConsumer, PortError, Receipt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, BasicProperties, Channel, Consumer, ErrorKind};

use super::{LaneLengths, Queue};
use crate::amqp::{
    declare_bound_queue, fail, next_backoff, within, AmqpLink, BACKOFF_INITIAL, OPERATION_TIMEOUT,
    VUMI_EXCHANGE,
};
use crate::backend::BackendError;

/// The highest priority, as declared on every queue (`x-max-priority`).
const MAX_PRIORITY: i32 = 5;

/// The lanes, in the order the consumer prefers them: realtime first.
const LANES: [Lane; 2] = [Lane::Realtime, Lane::Bulk];

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
    /// The queues `<queue_prefix><channel id>.outbound.{realtime,bulk}` over `link`.
    pub fn new(link: AmqpLink, queue_prefix: &str) -> AmqpQueue {
        AmqpQueue {
            link,
            prefix: queue_prefix.to_owned(),
            declared: Mutex::new((0, HashSet::new())),
            declaring: tokio::sync::Mutex::new(()),
        }
    }

    /// The name of a channel's queue for `lane` (also its routing key on `vumi`):
    /// `<prefix><channel id>.outbound.realtime` or `<prefix><channel id>.outbound.bulk`.
    pub fn queue_name(&self, channel_id: &str, lane: Lane) -> String {
        let lane = match lane {
            Lane::Realtime => "realtime",
            Lane::Bulk => "bulk",
        };
        format!("{}{channel_id}.outbound.{lane}", self.prefix)
    }

    /// The names of a channel's queues, in [`LANES`] order.
    fn queue_names(&self, channel_id: &str) -> [String; 2] {
        LANES.map(|lane| self.queue_name(channel_id, lane))
    }

    /// The queues of `lane` (both for `None`).
    fn lane_queues(&self, channel_id: &str, lane: Option<Lane>) -> Vec<String> {
        match lane {
            Some(lane) => vec![self.queue_name(channel_id, lane)],
            None => self.queue_names(channel_id).to_vec(),
        }
    }

    /// Declares those of `queues` not declared on the current connection.
    async fn ensure_declared(&self, queues: &[String]) -> Result<(), BackendError> {
        let missing = |generation| {
            self.with_declared(generation, |declared| {
                queues.iter().any(|queue| !declared.contains(queue))
            })
        };
        if !missing(self.link.generation()) {
            return Ok(());
        }
        let _declaring = self.declaring.lock().await;
        let generation = self.link.generation();
        if !missing(generation) {
            return Ok(());
        }
        let channel = self.link.channel().await?;
        for queue in queues {
            if self.with_declared(generation, |declared| declared.contains(queue)) {
                continue;
            }
            declare_bound_queue(&channel, queue, priority_queue_arguments()).await?;
            self.with_declared(generation, |declared| declared.insert(queue.to_owned()));
        }
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

/// Checks that `queue` exists (a passive `queue.declare`) and returns what RabbitMQ says of
/// it, or `None` if it does not exist, in which case RabbitMQ has closed `channel`.
async fn declare_passive(
    channel: &Channel,
    queue: &str,
) -> Result<Option<lapin::Queue>, BackendError> {
    let options = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let checked = tokio::time::timeout(
        OPERATION_TIMEOUT,
        channel.queue_declare(queue.into(), options, FieldTable::default()),
    )
    .await;
    match checked {
        Ok(Ok(declared)) => Ok(Some(declared)),
        Ok(Err(e)) if is_not_found(&e) => Ok(None),
        Ok(Err(e)) => Err(fail(format!("cannot check queue {queue:?}: {e}"))),
        Err(_) => Err(fail(format!(
            "cannot check queue {queue:?}: no answer from RabbitMQ within {OPERATION_TIMEOUT:?}"
        ))),
    }
}

#[async_trait]
impl Queue for AmqpQueue {
    async fn ping(&self) -> Result<(), BackendError> {
        // A channel round trip proves the broker answers, not just that a socket is open.
        let channel = self.link.channel().await?;
        let _ = channel.close(200, "health check".into()).await;
        Ok(())
    }

    async fn enqueue(
        &self,
        channel_id: &str,
        message: &Message,
        priority: Priority,
    ) -> Result<(), BackendError> {
        let queue = self.queue_name(channel_id, priority.lane());
        let payload = serde_json::to_vec(message).map_err(|e| fail(e.to_string()))?;
        self.ensure_declared(std::slice::from_ref(&queue)).await?;
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
        let queues = self.queue_names(channel_id);
        self.ensure_declared(&queues).await?;
        let prefetch = u16::try_from(prefetch.max(1)).unwrap_or(u16::MAX);
        let session = Session::open(&self.link, &queues, prefetch, false)
            .await
            .map_err(|e| match e {
                OpenError::Gone(queue) => fail(format!("queue {queue:?} does not exist")),
                OpenError::Failed(e) => e,
            })?;
        Ok(Box::new(AmqpConsumer {
            link: self.link.clone(),
            queues,
            prefetch,
            session: Some(session),
        }))
    }

    async fn purge(
        &self,
        channel_id: &str,
        lane: Option<Lane>,
    ) -> Result<Vec<Message>, BackendError> {
        let queues = self.lane_queues(channel_id, lane);
        self.ensure_declared(&queues).await?;
        let channel = self.link.channel().await?;
        let mut messages = Vec::new();
        // Delivery tags count up on the channel across queues: acking the last one with
        // `multiple` acks everything taken from every queue.
        let mut last_tag = None;
        for queue in &queues {
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
        }
        if let Some(tag) = last_tag {
            // If this fails, the channel's close requeues everything: nothing is lost, and
            // the caller, told of the failure, cancels nothing.
            within(
                &format!("cannot ack what was taken from {queues:?}"),
                channel.basic_ack(tag, BasicAckOptions { multiple: true }),
            )
            .await?;
        }
        // Closing waits for RabbitMQ to have processed the ack before it.
        if let Err(e) = within("cannot close a channel", channel.close(200, "OK".into())).await {
            log::warn!(
                "Purged {queues:?} but could not close the channel: {}",
                e.detail
            );
        }
        Ok(messages)
    }

    async fn lengths(&self, channel_id: &str) -> Result<LaneLengths, BackendError> {
        let mut counts = [0u64; 2];
        let mut channel = None;
        for (count, queue) in counts.iter_mut().zip(self.queue_names(channel_id)) {
            let open = match channel.take() {
                Some(open) => open,
                None => self.link.channel().await?,
            };
            // A missing queue has nothing waiting; RabbitMQ closed the channel over it.
            if let Some(declared) = declare_passive(&open, &queue).await? {
                *count = u64::from(declared.message_count());
                channel = Some(open);
            }
        }
        // Dropping the last handle on the channel closes it.
        let [realtime, bulk] = counts;
        Ok(LaneLengths { realtime, bulk })
    }

    async fn remove(&self, channel_id: &str) -> Result<(), BackendError> {
        let queues = self.queue_names(channel_id);
        for queue in &queues {
            self.forget(queue);
        }
        let channel = self.link.channel().await?;
        for queue in &queues {
            within(
                &format!("cannot delete queue {queue:?}"),
                channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()),
            )
            .await?;
        }
        Ok(())
    }
}

/// Why a consumer could not be (re)opened.
enum OpenError {
    /// This queue of it no longer exists.
    Gone(String),
    /// Anything else: try again later.
    Failed(BackendError),
}

/// A channel of a consumer, closed (returning its unacked messages to the queues) once the
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

/// One channel's consumption of a channel's two queues.
struct Session {
    channel: Arc<ConsumerChannel>,
    /// One consumer per lane queue, in [`LANES`] order.
    deliveries: [Consumer; 2],
}

impl Session {
    /// Opens a channel with a per-consumer `basic.qos(prefetch)` and consumes `queues` with
    /// manual acks, one consumer each. With `passive`, first checks that the queues still
    /// exist.
    async fn open(
        link: &AmqpLink,
        queues: &[String; 2],
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
            for queue in queues {
                match declare_passive(lapin, queue).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(OpenError::Gone(queue.clone())),
                    Err(e) => return Err(OpenError::Failed(e)),
                }
            }
        }
        // `global: false`: RabbitMQ gives each consumer started after this on the channel a
        // window of its own (with `global: true` both would share one).
        within(
            "cannot set the prefetch window",
            lapin.basic_qos(prefetch, BasicQosOptions { global: false }),
        )
        .await
        .map_err(OpenError::Failed)?;
        let mut consumers = Vec::with_capacity(queues.len());
        for queue in queues {
            let consumer = within(
                &format!("cannot consume queue {queue:?}"),
                lapin.basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .map_err(OpenError::Failed)?;
            consumers.push(consumer);
        }
        let Ok(deliveries) = <[Consumer; 2]>::try_from(consumers) else {
            // Cannot happen: one consumer per queue, and there are two queues.
            return Err(OpenError::Failed(fail("expected two consumers")));
        };
        Ok(Session {
            channel,
            deliveries,
        })
    }
}

fn is_not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404)
}

/// Reads one channel's two queues; survives the loss of the connection.
struct AmqpConsumer {
    link: AmqpLink,
    /// The lane queues, in [`LANES`] order.
    queues: [String; 2],
    prefetch: u16,
    /// `None` after the channel died, until it is replaced.
    session: Option<Session>,
}

impl AmqpConsumer {
    /// Waits for the link and opens a new session, with backoff; `None` if a queue is gone
    /// or the link closed for good.
    async fn reopen(&self) -> Option<Session> {
        let mut delay = BACKOFF_INITIAL;
        let queues = &self.queues;
        loop {
            self.link.wait_connected().await.ok()?;
            match Session::open(&self.link, queues, self.prefetch, true).await {
                Ok(session) => {
                    log::info!("Consuming {queues:?} again");
                    return Some(session);
                }
                Err(OpenError::Gone(queue)) => {
                    log::info!("Queue {queue} was deleted: the consumer of {queues:?} stops");
                    return None;
                }
                Err(OpenError::Failed(e)) => {
                    log::warn!(
                        "Cannot consume {queues:?} again, retrying in {delay:?}: {}",
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
        queue: &str,
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
                    "Dropping an unreadable message from {queue}: {e}: {}",
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
            let [realtime, bulk] = &mut session.deliveries;
            // `biased`: when both lanes have a delivery ready, realtime goes first.
            let (lane, got) = tokio::select! {
                biased;
                got = realtime.next() => (0, got),
                got = bulk.next() => (1, got),
            };
            let queue = &self.queues[lane];
            match got {
                Some(Ok(delivery)) => {
                    let channel = session.channel.clone();
                    if let Some(delivery) = Self::delivery(queue, &channel, delivery).await {
                        return Some(delivery);
                    }
                }
                Some(Err(e)) => {
                    log::warn!("Consuming {queue} failed: {e}");
                    self.session = None;
                }
                None => {
                    // Cancelled: the channel closed, or the queue was deleted (checked when
                    // reopening). The other lane's consumer goes with the channel; what it
                    // held returns to its queue.
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
