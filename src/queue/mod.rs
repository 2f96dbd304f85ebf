//! The `Queue`: each channel's durable outbound queue, in priority order.
//!
//! - [`embedded`]: a table in the SQLite file (the default);
//! - [`amqp`]: RabbitMQ, one durable priority queue per channel (production).
//!
//! A message is in the queue from the moment the API accepts it until its channel acks it
//! (after its outcome is recorded); a consumer that goes away leaves its unacked messages for
//! the next one.
use async_trait::async_trait;
use junebug_actors::message::{Message, Priority};
use junebug_actors::ports::OutboundConsumer;

use crate::backend::BackendError;

pub mod amqp;
pub mod embedded;

/// The queue backend.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Adds a message to a channel's queue; returns once it is durable.
    async fn enqueue(
        &self,
        channel_id: &str,
        message: &Message,
        priority: Priority,
    ) -> Result<(), BackendError>;

    /// Reads a channel's queue, highest priority first, then oldest first, with at most
    /// `prefetch` messages unacked.
    async fn consume(
        &self,
        channel_id: &str,
        prefetch: usize,
    ) -> Result<Box<dyn OutboundConsumer>, BackendError>;

    /// Removes every message still waiting (not those a consumer holds) and returns them.
    async fn purge(&self, channel_id: &str) -> Result<Vec<Message>, BackendError>;

    /// Removes a deleted channel's queue itself (call after [`Queue::purge`], once the
    /// channel has stopped consuming).
    async fn remove(&self, channel_id: &str) -> Result<(), BackendError>;
}
