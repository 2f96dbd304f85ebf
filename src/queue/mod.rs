//! The `Queue`: each channel's durable outbound queue, in two lanes (realtime: priorities
//! 4–5, bulk: 1–3), each in priority order.
//!
//! - [`embedded`]: a table in the SQLite file (the default);
//! - [`amqp`]: RabbitMQ, one durable queue per channel and lane (production).
//!
//! A message is in the queue from the moment the API accepts it until its channel acks it
//! (after its outcome is recorded); a consumer that goes away leaves its unacked messages for
//! the next one.
use async_trait::async_trait;
use junebug_actors::message::{Lane, Message, Priority};
use junebug_actors::ports::OutboundConsumer;

use crate::backend::BackendError;

pub mod amqp;
pub mod embedded;

/// Messages waiting in a channel's queue, per lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneLengths {
    /// Waiting in the realtime lane (priorities 4 and 5).
    pub realtime: u64,
    /// Waiting in the bulk lane (priorities 1 to 3).
    pub bulk: u64,
}

/// The queue backend.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Whether the backend answers (for `GET /health`).
    async fn ping(&self) -> Result<(), BackendError>;

    /// Adds a message to a channel's queue; returns once it is durable.
    async fn enqueue(
        &self,
        channel_id: &str,
        message: &Message,
        priority: Priority,
    ) -> Result<(), BackendError>;

    /// Reads a channel's queue: each lane highest priority first, then oldest first, with at
    /// most `prefetch` messages unacked per lane (so a full bulk window never holds back a
    /// realtime message), realtime first when both lanes have one ready.
    async fn consume(
        &self,
        channel_id: &str,
        prefetch: usize,
    ) -> Result<Box<dyn OutboundConsumer>, BackendError>;

    /// Removes every message still waiting in `lane` (every lane when `None`), not those a
    /// consumer holds, and returns them.
    async fn purge(
        &self,
        channel_id: &str,
        lane: Option<Lane>,
    ) -> Result<Vec<Message>, BackendError>;

    /// How many messages wait in each lane (not counting those a consumer holds). Cheap: no
    /// scan of the queue, so it can be polled every second.
    async fn lengths(&self, channel_id: &str) -> Result<LaneLengths, BackendError>;

    /// Removes a deleted channel's queue itself (call after [`Queue::purge`], once the
    /// channel has stopped consuming).
    async fn remove(&self, channel_id: &str) -> Result<(), BackendError>;
}
