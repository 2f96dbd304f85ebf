//! The embedded outbox: two tables in the SQLite file of [`crate::sqlite`].
//!
//! - `outbox_pending`: one row per pending callback. `seq` (AUTOINCREMENT, never reused)
//!   records the order they were added, which [`Outbox::pending`] keeps; `id` is unique, so
//!   adding an id again replaces its row in place.
//! - `outbox_dead_letters`: one row per dead letter, `seq` again giving the order they were
//!   buried (oldest first), indexed by channel.
//!
//! The callback is a JSON column; the delivery history has a column per field. One process
//! uses the file, so "this node's pending callbacks" are all of them. Every operation is one
//! database job, so a move between the tables ([`Outbox::bury`], [`Outbox::revive`]) is one
//! transaction: a callback is never in both tables, nor in neither.
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::types::Type;
use rusqlite::{params, Connection, Row};

use super::{Outbox, OutboxItem};
use crate::backend::BackendError;
use crate::sqlite::Database;

/// The tables of the embedded outbox.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox_pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, channel_id TEXT NOT NULL,
    callback TEXT NOT NULL, attempts INTEGER NOT NULL, created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL, last_error TEXT);
CREATE TABLE IF NOT EXISTS outbox_dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, channel_id TEXT NOT NULL,
    callback TEXT NOT NULL, attempts INTEGER NOT NULL, created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL, last_error TEXT);
CREATE INDEX IF NOT EXISTS outbox_dead_letters_by_channel
    ON outbox_dead_letters (channel_id, seq);
";

/// The columns of an item, in the order [`read_item`] reads them; the same in both tables.
const COLUMNS: &str = "id, channel_id, callback, attempts, created_at, next_attempt_at, last_error";

/// The embedded outbox.
pub struct EmbeddedOutbox {
    db: Arc<Database>,
}

impl EmbeddedOutbox {
    /// An outbox in `db` (whose schema includes [`SCHEMA`]).
    pub fn new(db: Arc<Database>) -> Self {
        EmbeddedOutbox { db }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Inserts a pending callback; one already pending under that id is replaced in place
/// (keeping its `seq`, hence its turn).
const INSERT_PENDING: &str = "INSERT INTO outbox_pending
    (id, channel_id, callback, attempts, created_at, next_attempt_at, last_error)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
    ON CONFLICT (id) DO UPDATE SET channel_id = excluded.channel_id,
        callback = excluded.callback, attempts = excluded.attempts,
        created_at = excluded.created_at, next_attempt_at = excluded.next_attempt_at,
        last_error = excluded.last_error";

/// Inserts the newest dead letter of a channel.
const INSERT_DEAD: &str = "INSERT INTO outbox_dead_letters
    (id, channel_id, callback, attempts, created_at, next_attempt_at, last_error)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// An item with its callback encoded as JSON, ready to insert (done before the database
/// job, so an item that cannot be encoded never reaches the database thread).
struct Encoded {
    item: OutboxItem,
    callback: String,
}

impl Encoded {
    fn new(item: &OutboxItem) -> Result<Encoded, serde_json::Error> {
        Ok(Encoded {
            callback: serde_json::to_string(&item.callback)?,
            item: item.clone(),
        })
    }

    /// Runs `sql` ([`INSERT_PENDING`] or [`INSERT_DEAD`]) for it.
    fn insert(&self, conn: &Connection, sql: &str) -> rusqlite::Result<()> {
        let item = &self.item;
        conn.prepare_cached(sql)?
            .execute(params![
                item.id,
                item.channel_id,
                self.callback,
                item.attempts,
                item.created_at,
                item.next_attempt_at,
                item.last_error
            ])
            .map(drop)
    }
}

/// [`Encoded::new`] for the trait's methods.
fn encode(item: &OutboxItem) -> Result<Encoded, BackendError> {
    Encoded::new(item).map_err(|e| {
        BackendError::new("sqlite", format!("cannot encode callback {}: {e}", item.id))
    })
}

/// Reads a row selected as [`COLUMNS`]; a callback we cannot parse is reported, not skipped.
fn read_item(row: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    let callback: String = row.get(2)?;
    Ok(OutboxItem {
        id: row.get(0)?,
        channel_id: row.get(1)?,
        callback: serde_json::from_str(&callback)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(2, Type::Text, Box::new(e)))?,
        attempts: row.get(3)?,
        created_at: row.get(4)?,
        next_attempt_at: row.get(5)?,
        last_error: row.get(6)?,
    })
}

/// A channel's dead letters, oldest first.
fn dead_letters_of(conn: &Connection, channel_id: &str) -> rusqlite::Result<Vec<OutboxItem>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox_dead_letters WHERE channel_id = ?1 ORDER BY seq"
    ))?;
    let rows = stmt.query_map([channel_id], read_item)?;
    rows.collect()
}

#[async_trait]
impl Outbox for EmbeddedOutbox {
    async fn add(&self, item: &OutboxItem) -> Result<(), BackendError> {
        let row = encode(item)?;
        self.db
            .call(move |conn| row.insert(conn, INSERT_PENDING))
            .await
    }

    /// Changes nothing if the callback is no longer pending (delivered, or buried).
    async fn update(&self, item: &OutboxItem) -> Result<(), BackendError> {
        let item = item.clone();
        self.db
            .call(move |conn| {
                conn.prepare_cached(
                    "UPDATE outbox_pending SET attempts = ?2, next_attempt_at = ?3,
                     last_error = ?4 WHERE id = ?1",
                )?
                .execute(params![
                    item.id,
                    item.attempts,
                    item.next_attempt_at,
                    item.last_error
                ])
                .map(drop)
            })
            .await
    }

    async fn remove(&self, ids: &[String]) -> Result<(), BackendError> {
        let ids = ids.to_vec();
        self.db
            .call(move |conn| {
                let mut delete = conn.prepare_cached("DELETE FROM outbox_pending WHERE id = ?1")?;
                for id in &ids {
                    delete.execute([id])?;
                }
                Ok(())
            })
            .await
    }

    async fn pending(&self) -> Result<Vec<OutboxItem>, BackendError> {
        self.db
            .call(|conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM outbox_pending ORDER BY seq"
                ))?;
                let rows = stmt.query_map([], read_item)?;
                rows.collect()
            })
            .await
    }

    /// One job: the pending row goes, `item` as given (its final attempt count and error)
    /// becomes the newest dead letter. It is buried even if it was not pending (the outbox
    /// could not keep it when it was posted), so no failure is forgotten.
    async fn bury(&self, item: &OutboxItem) -> Result<(), BackendError> {
        let row = encode(item)?;
        self.db
            .call(move |conn| {
                conn.prepare_cached("DELETE FROM outbox_pending WHERE id = ?1")?
                    .execute([&row.item.id])?;
                row.insert(conn, INSERT_DEAD)
            })
            .await
    }

    async fn dead_letters(&self, channel_id: &str) -> Result<Vec<OutboxItem>, BackendError> {
        let channel_id = channel_id.to_owned();
        self.db
            .call(move |conn| dead_letters_of(conn, &channel_id))
            .await
    }

    /// One job: read, delete, and insert as pending (after those already pending), so a
    /// dead letter is never lost nor revived twice.
    async fn revive(&self, channel_id: &str) -> Result<Vec<OutboxItem>, BackendError> {
        let channel_id = channel_id.to_owned();
        self.db
            .call(move |conn| {
                let due = now();
                let mut items = dead_letters_of(conn, &channel_id)?;
                conn.prepare_cached("DELETE FROM outbox_dead_letters WHERE channel_id = ?1")?
                    .execute([&channel_id])?;
                for item in &mut items {
                    item.attempts = 0;
                    item.next_attempt_at = due;
                    Encoded::new(item)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
                        .insert(conn, INSERT_PENDING)?;
                }
                Ok(items)
            })
            .await
    }

    async fn purge_dead(&self, channel_id: &str) -> Result<usize, BackendError> {
        let channel_id = channel_id.to_owned();
        self.db
            .call(move |conn| {
                conn.prepare_cached("DELETE FROM outbox_dead_letters WHERE channel_id = ?1")?
                    .execute([channel_id])
            })
            .await
    }
}
