//! The outbox: callbacks that are not delivered yet, kept durably so that a daemon restart
//! loses none, and the dead letters of each channel (callbacks that failed for good, kept
//! until re-sent or purged).
//!
//! - [`embedded`]: tables in the SQLite file;
//! - [`redis`]: Redis keys under the store's prefix.
//!
//! Pending callbacks belong to the process (`node`) that accepted them: at start a process
//! takes back its own pending callbacks. Dead letters belong to their channel, whatever node
//! buried them.
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Callback;
use crate::backend::BackendError;

pub mod embedded;
pub mod redis;

/// One callback and its delivery history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// 32 hex characters.
    pub id: String,
    /// The channel it is for.
    pub channel_id: String,
    /// What to send.
    pub callback: Callback,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was first queued (unix seconds).
    pub created_at: f64,
    /// When the next attempt is due (unix seconds).
    pub next_attempt_at: f64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// Durable storage of pending callbacks and dead letters.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Keeps a new pending callback; returns once it is durable.
    async fn add(&self, item: &OutboxItem) -> Result<(), BackendError>;
    /// Saves a pending callback's new attempt count, due time and last error.
    async fn update(&self, item: &OutboxItem) -> Result<(), BackendError>;
    /// Forgets delivered callbacks, in one round trip (unknown ids are skipped).
    async fn remove(&self, ids: &[String]) -> Result<(), BackendError>;
    /// This node's pending callbacks, in the order they were added.
    async fn pending(&self) -> Result<Vec<OutboxItem>, BackendError>;
    /// Moves a pending callback to its channel's dead letters.
    async fn bury(&self, item: &OutboxItem) -> Result<(), BackendError>;
    /// A channel's dead letters, oldest first.
    async fn dead_letters(&self, channel_id: &str) -> Result<Vec<OutboxItem>, BackendError>;
    /// Moves a channel's dead letters back to this node's pending callbacks (attempts reset,
    /// due now) and returns them, oldest first.
    async fn revive(&self, channel_id: &str) -> Result<Vec<OutboxItem>, BackendError>;
    /// Deletes a channel's dead letters; returns how many there were.
    async fn purge_dead(&self, channel_id: &str) -> Result<usize, BackendError>;
}
