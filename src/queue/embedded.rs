//! The embedded Queue: one table in the SQLite file of [`crate::sqlite`].
//!
//! A consumer *claims* rows (marks them with its claim number) before handing them out, so
//! no message goes to two consumers; an ack deletes the row. Claims die with their consumer
//! and with the process (they are cleared at start), so an unacked message is handed out
//! again: at-least-once. Waiting consumers are woken through a [`Notify`] per channel.
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use junebug_actors::message::{Message, Priority};
use junebug_actors::ports::{Delivery, OutboundConsumer, PortError, Receipt};
use rusqlite::params;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::Queue;
use crate::backend::BackendError;
use crate::sqlite::Database;

/// The queue table.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbound_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, channel_id TEXT NOT NULL,
    priority INTEGER NOT NULL, message TEXT NOT NULL, claim INTEGER);
CREATE INDEX IF NOT EXISTS outbound_queue_order
    ON outbound_queue (channel_id, claim, priority DESC, seq);
UPDATE outbound_queue SET claim = NULL WHERE claim IS NOT NULL;
";

/// The embedded Queue.
pub struct EmbeddedQueue {
    db: Arc<Database>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    next_claim: AtomicI64,
}

impl EmbeddedQueue {
    /// A queue in `db` (whose schema includes [`SCHEMA`]).
    pub fn new(db: Arc<Database>) -> Self {
        EmbeddedQueue {
            db,
            wakers: Mutex::new(HashMap::new()),
            next_claim: AtomicI64::new(1),
        }
    }

    fn waker(&self, channel_id: &str) -> Arc<Notify> {
        // A poisoned lock only means another thread panicked holding it; the map is intact.
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        wakers.entry(channel_id.to_owned()).or_default().clone()
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn enqueue(
        &self,
        channel_id: &str,
        message: &Message,
        priority: Priority,
    ) -> Result<(), BackendError> {
        let json = serde_json::to_string(message)
            .map_err(|e| BackendError::new("sqlite", e.to_string()))?;
        let id = channel_id.to_owned();
        self.db
            .call(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO outbound_queue (channel_id, priority, message) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, priority.level(), json])
                .map(drop)
            })
            .await?;
        self.waker(channel_id).notify_one();
        Ok(())
    }

    async fn consume(
        &self,
        channel_id: &str,
        prefetch: usize,
    ) -> Result<Box<dyn OutboundConsumer>, BackendError> {
        Ok(Box::new(EmbeddedConsumer {
            db: self.db.clone(),
            waker: self.waker(channel_id),
            channel_id: channel_id.to_owned(),
            claim: self.next_claim.fetch_add(1, Ordering::Relaxed),
            window: Arc::new(Semaphore::new(prefetch.max(1))),
            claimed: VecDeque::new(),
        }))
    }

    async fn purge(&self, channel_id: &str) -> Result<Vec<Message>, BackendError> {
        let id = channel_id.to_owned();
        let rows: Vec<String> = self
            .db
            .call(move |conn| {
                let mut stmt = conn.prepare(
                    "DELETE FROM outbound_queue WHERE channel_id = ?1 AND claim IS NULL
                     RETURNING message",
                )?;
                let rows = stmt.query_map([id], |row| row.get(0))?;
                rows.collect()
            })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
    }

    async fn remove(&self, channel_id: &str) -> Result<(), BackendError> {
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        wakers.remove(channel_id);
        Ok(())
    }
}

struct ClaimedRow {
    seq: i64,
    priority: u8,
    message: String,
}

struct EmbeddedConsumer {
    db: Arc<Database>,
    waker: Arc<Notify>,
    channel_id: String,
    claim: i64,
    /// One permit per message handed out and not yet acked.
    window: Arc<Semaphore>,
    /// Rows claimed in one go but not handed out yet (fewer than the window).
    claimed: VecDeque<ClaimedRow>,
}

impl EmbeddedConsumer {
    /// Claims up to `limit` waiting rows, best first.
    async fn claim(&mut self, limit: usize) -> Result<(), BackendError> {
        let (id, claim) = (self.channel_id.clone(), self.claim);
        let rows = self
            .db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "UPDATE outbound_queue SET claim = ?1 WHERE seq IN (
                         SELECT seq FROM outbound_queue WHERE channel_id = ?2 AND claim IS NULL
                         ORDER BY priority DESC, seq LIMIT ?3)
                     RETURNING seq, priority, message",
                )?;
                let rows = stmt.query_map(params![claim, id, limit as i64], |row| {
                    Ok(ClaimedRow {
                        seq: row.get(0)?,
                        priority: row.get(1)?,
                        message: row.get(2)?,
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let mut rows = rows;
        rows.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.seq));
        self.claimed.extend(rows);
        Ok(())
    }
}

#[async_trait(?Send)]
impl OutboundConsumer for EmbeddedConsumer {
    async fn next(&mut self) -> Option<Delivery> {
        let permit = self.window.clone().acquire_owned().await.ok()?;
        loop {
            if let Some(row) = self.claimed.pop_front() {
                match serde_json::from_str(&row.message) {
                    Ok(message) => return Some(self.delivery(row, message, permit)),
                    Err(_) => continue, // unreadable row: cannot happen with rows we wrote
                }
            }
            let waker = self.waker.clone();
            let woken = waker.notified();
            let limit = self.window.available_permits() + 1;
            if self.claim(limit).await.is_err() {
                // The database thread is gone: the process is going down.
                return None;
            }
            if self.claimed.is_empty() {
                woken.await;
            }
        }
    }
}

impl EmbeddedConsumer {
    fn delivery(
        &self,
        row: ClaimedRow,
        message: Message,
        permit: OwnedSemaphorePermit,
    ) -> Delivery {
        Delivery {
            message,
            priority: Priority::new(row.priority).unwrap_or_default(),
            receipt: Box::new(EmbeddedReceipt {
                db: self.db.clone(),
                seq: row.seq,
                _permit: permit,
            }),
        }
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        let claim = self.claim;
        let waker = self.waker.clone();
        self.db.submit(
            move |conn| {
                conn.execute(
                    "UPDATE outbound_queue SET claim = NULL WHERE claim = ?1",
                    [claim],
                )
                .map(drop)
            },
            move || waker.notify_one(),
        );
    }
}

struct EmbeddedReceipt {
    db: Arc<Database>,
    seq: i64,
    /// Frees the consumer's window slot when the receipt goes.
    _permit: OwnedSemaphorePermit,
}

#[async_trait]
impl Receipt for EmbeddedReceipt {
    async fn ack(self: Box<Self>) -> Result<(), PortError> {
        let seq = self.seq;
        self.db
            .call(move |conn| {
                conn.prepare_cached("DELETE FROM outbound_queue WHERE seq = ?1")?
                    .execute([seq])
                    .map(drop)
            })
            .await
            .map_err(PortError::from)
    }
}
