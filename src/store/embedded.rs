//! The embedded Store: tables in the SQLite file of [`crate::sqlite`].
//!
//! Expiry is a column (`expires_at`, unix seconds); reads ignore expired rows and a sweep
//! ([`EmbeddedStore::sweep`]) deletes them.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use junebug_actors::message::{Event, Message, StatusEvent};
use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use super::{ChannelProperties, ExpiredParts, OutboundRecord, PartRef, PartsKey, Store, Tally};
use crate::backend::BackendError;
use crate::sqlite::Database;

/// The tables of the embedded store.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS channels (id TEXT PRIMARY KEY, properties TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inbound_messages (
    channel_id TEXT NOT NULL, message_id TEXT NOT NULL, message TEXT NOT NULL,
    expires_at REAL NOT NULL, PRIMARY KEY (channel_id, message_id));
CREATE TABLE IF NOT EXISTS outbound_messages (
    channel_id TEXT NOT NULL, message_id TEXT NOT NULL, record TEXT NOT NULL,
    expires_at REAL NOT NULL, PRIMARY KEY (channel_id, message_id));
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, channel_id TEXT NOT NULL,
    message_id TEXT NOT NULL, event TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_message ON events (channel_id, message_id, seq);
CREATE TABLE IF NOT EXISTS provider_ids (
    channel_id TEXT NOT NULL, provider_id TEXT NOT NULL, part_ref TEXT NOT NULL,
    expires_at REAL NOT NULL, PRIMARY KEY (channel_id, provider_id));
CREATE TABLE IF NOT EXISTS part_reports (
    channel_id TEXT NOT NULL, message_id TEXT NOT NULL, part INTEGER NOT NULL,
    report TEXT NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (channel_id, message_id, part));
CREATE TABLE IF NOT EXISTS inbound_parts (
    channel_id TEXT NOT NULL, sender TEXT NOT NULL, reference INTEGER NOT NULL,
    total INTEGER NOT NULL, sequence INTEGER NOT NULL, text TEXT NOT NULL,
    kept_at REAL NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (channel_id, sender, reference, total, sequence));
CREATE TABLE IF NOT EXISTS statuses (
    channel_id TEXT NOT NULL, component TEXT NOT NULL, status TEXT NOT NULL,
    PRIMARY KEY (channel_id, component));
CREATE TABLE IF NOT EXISTS cursors (
    channel_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (channel_id, name));
CREATE TABLE IF NOT EXISTS sessions (
    channel_id TEXT NOT NULL, session_id TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (channel_id, session_id));
CREATE TABLE IF NOT EXISTS rates (
    channel_id TEXT NOT NULL, label TEXT NOT NULL, bucket INTEGER NOT NULL,
    count INTEGER NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (channel_id, label, bucket));
";

/// Adds one to a rate counter.
fn count_in(
    conn: &rusqlite::Connection,
    channel_id: &str,
    label: &str,
    bucket: i64,
    expires_at: f64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO rates VALUES (?1, ?2, ?3, 1, ?4)
         ON CONFLICT (channel_id, label, bucket) DO UPDATE SET count = count + 1",
    )?
    .execute(params![channel_id, label, bucket, expires_at])
    .map(drop)
}

/// The outbound record of a message, unless it expired before `now`.
fn select_outbound(
    conn: &rusqlite::Connection,
    channel_id: &str,
    message_id: &str,
    now: f64,
) -> rusqlite::Result<Option<OutboundRecord>> {
    conn.prepare_cached(
        "SELECT record FROM outbound_messages
         WHERE channel_id = ?1 AND message_id = ?2 AND expires_at > ?3",
    )?
    .query_row(params![channel_id, message_id, now], |row| {
        from_json(&row.get::<_, String>(0)?)
    })
    .optional()
}

/// Reads (then deletes) every kept part of one long inbound message: their texts in sequence
/// order.
fn take_parts(
    conn: &rusqlite::Connection,
    channel_id: &str,
    key: &PartsKey,
) -> rusqlite::Result<Vec<String>> {
    let which = params![channel_id, key.sender, key.reference, key.total];
    let texts = conn
        .prepare_cached(
            "SELECT text FROM inbound_parts
             WHERE channel_id = ?1 AND sender = ?2 AND reference = ?3 AND total = ?4
             ORDER BY sequence",
        )?
        .query_map(which, |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    conn.prepare_cached(
        "DELETE FROM inbound_parts
         WHERE channel_id = ?1 AND sender = ?2 AND reference = ?3 AND total = ?4",
    )?
    .execute(which)?;
    Ok(texts)
}

/// The embedded Store.
pub struct EmbeddedStore {
    db: Arc<Database>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, BackendError> {
    serde_json::to_string(value).map_err(|e| BackendError::new("sqlite", e.to_string()))
}

/// Parses a stored JSON column; a row we cannot read is reported, not skipped silently.
fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

impl EmbeddedStore {
    /// A store in `db` (whose schema includes [`SCHEMA`]).
    pub fn new(db: Arc<Database>) -> Self {
        EmbeddedStore { db }
    }

    /// Deletes expired rows; run now and then.
    pub async fn sweep(&self) -> Result<(), BackendError> {
        self.db
            .call(|conn| {
                let t = now();
                for table in [
                    "inbound_messages",
                    "outbound_messages",
                    "events",
                    "rates",
                    "provider_ids",
                    "part_reports",
                    "inbound_parts",
                ] {
                    conn.execute(&format!("DELETE FROM {table} WHERE expires_at <= ?1"), [t])?;
                }
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> Result<(), BackendError> {
        self.db.call(|conn| conn.execute_batch("SELECT 1")).await
    }

    async fn save_channel(&self, id: &str, props: &ChannelProperties) -> Result<(), BackendError> {
        let (id, props) = (id.to_owned(), to_json(props)?);
        self.db
            .call(move |conn| {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO channels (id, properties) VALUES (?1, ?2)",
                )?
                .execute(params![id, props])
                .map(drop)
            })
            .await
    }

    async fn load_channel(&self, id: &str) -> Result<Option<ChannelProperties>, BackendError> {
        let id = id.to_owned();
        self.db
            .call(move |conn| {
                conn.prepare_cached("SELECT properties FROM channels WHERE id = ?1")?
                    .query_row([id], |row| from_json(&row.get::<_, String>(0)?))
                    .optional()
            })
            .await
    }

    async fn load_channels(&self) -> Result<Vec<(String, ChannelProperties)>, BackendError> {
        self.db
            .call(|conn| {
                let mut stmt = conn.prepare("SELECT id, properties FROM channels ORDER BY id")?;
                let rows = stmt.query_map([], |row| {
                    Ok((row.get(0)?, from_json(&row.get::<_, String>(1)?)?))
                })?;
                rows.collect()
            })
            .await
    }

    async fn delete_channel(&self, id: &str) -> Result<bool, BackendError> {
        let id = id.to_owned();
        self.db
            .call(move |conn| {
                conn.prepare_cached("DELETE FROM statuses WHERE channel_id = ?1")?
                    .execute([&id])?;
                conn.prepare_cached("DELETE FROM cursors WHERE channel_id = ?1")?
                    .execute([&id])?;
                conn.prepare_cached("DELETE FROM sessions WHERE channel_id = ?1")?
                    .execute([&id])?;
                Ok(conn
                    .prepare_cached("DELETE FROM channels WHERE id = ?1")?
                    .execute([&id])?
                    > 0)
            })
            .await
    }

    async fn save_inbound(
        &self,
        channel_id: &str,
        message: &Message,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let row = (
            channel_id.to_owned(),
            message.message_id.clone(),
            to_json(message)?,
        );
        let expires = now() + ttl.as_secs_f64();
        self.db
            .call(move |conn| {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO inbound_messages VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![row.0, row.1, row.2, expires])
                .map(drop)
            })
            .await
    }

    async fn load_inbound(
        &self,
        channel_id: &str,
        message_id: &str,
    ) -> Result<Option<Message>, BackendError> {
        let key = (channel_id.to_owned(), message_id.to_owned());
        self.db
            .call(move |conn| {
                conn.prepare_cached(
                    "SELECT message FROM inbound_messages
                     WHERE channel_id = ?1 AND message_id = ?2 AND expires_at > ?3",
                )?
                .query_row(params![key.0, key.1, now()], |row| {
                    from_json(&row.get::<_, String>(0)?)
                })
                .optional()
            })
            .await
    }

    async fn accept_outbound(
        &self,
        channel_id: &str,
        record: &OutboundRecord,
        ttl: Duration,
        tally: Tally<'_>,
    ) -> Result<(), BackendError> {
        let row = (
            channel_id.to_owned(),
            record.message.message_id.clone(),
            to_json(record)?,
        );
        let (label, bucket) = (tally.label.to_owned(), tally.bucket);
        let (expires, count_expires) = (now() + ttl.as_secs_f64(), now() + tally.ttl.as_secs_f64());
        self.db
            .call(move |conn| {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO outbound_messages VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![row.0, row.1, row.2, expires])?;
                count_in(conn, &row.0, &label, bucket, count_expires)
            })
            .await
    }

    async fn load_outbound(
        &self,
        channel_id: &str,
        message_id: &str,
    ) -> Result<Option<OutboundRecord>, BackendError> {
        let key = (channel_id.to_owned(), message_id.to_owned());
        self.db
            .call(move |conn| select_outbound(conn, &key.0, &key.1, now()))
            .await
    }

    async fn record_event(
        &self,
        channel_id: &str,
        event: &Event,
        ttl: Duration,
        tally: Tally<'_>,
    ) -> Result<Option<OutboundRecord>, BackendError> {
        let row = (
            channel_id.to_owned(),
            event.user_message_id.clone(),
            to_json(event)?,
        );
        let (label, bucket) = (tally.label.to_owned(), tally.bucket);
        let now = now();
        let (expires, count_expires) = (now + ttl.as_secs_f64(), now + tally.ttl.as_secs_f64());
        self.db
            .call(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO events (channel_id, message_id, event, expires_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![row.0, row.1, row.2, expires])?;
                count_in(conn, &row.0, &label, bucket, count_expires)?;
                select_outbound(conn, &row.0, &row.1, now)
            })
            .await
    }

    async fn map_provider_ids(
        &self,
        channel_id: &str,
        message_id: &str,
        provider_ids: &[String],
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let parts = provider_ids.len() as u32;
        let rows = provider_ids
            .iter()
            .zip(0..)
            .map(|(provider_id, part)| {
                let part_ref = PartRef {
                    message_id: message_id.to_owned(),
                    part,
                    parts,
                };
                Ok((provider_id.clone(), to_json(&part_ref)?))
            })
            .collect::<Result<Vec<_>, BackendError>>()?;
        let channel_id = channel_id.to_owned();
        let expires = now() + ttl.as_secs_f64();
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "INSERT OR REPLACE INTO provider_ids (channel_id, provider_id, part_ref, expires_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (provider_id, part_ref) in &rows {
                    stmt.execute(params![channel_id, provider_id, part_ref, expires])?;
                }
                Ok(())
            })
            .await
    }

    async fn find_provider_id(
        &self,
        channel_id: &str,
        provider_id: &str,
    ) -> Result<Option<PartRef>, BackendError> {
        let key = (channel_id.to_owned(), provider_id.to_owned());
        self.db
            .call(move |conn| {
                conn.prepare_cached(
                    "SELECT part_ref FROM provider_ids
                     WHERE channel_id = ?1 AND provider_id = ?2 AND expires_at > ?3",
                )?
                .query_row(params![key.0, key.1, now()], |row| {
                    from_json(&row.get::<_, String>(0)?)
                })
                .optional()
            })
            .await
    }

    async fn record_part_report(
        &self,
        channel_id: &str,
        part: &PartRef,
        report: &Value,
        ttl: Duration,
    ) -> Result<BTreeMap<u32, Value>, BackendError> {
        let row = (
            channel_id.to_owned(),
            part.message_id.clone(),
            part.part,
            to_json(report)?,
        );
        let expires = now() + ttl.as_secs_f64();
        self.db
            .call(move |conn| {
                conn.prepare_cached("INSERT OR REPLACE INTO part_reports
                     (channel_id, message_id, part, report, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![row.0, row.1, row.2, row.3, expires],
                )?;
                let mut stmt = conn.prepare_cached(
                    "SELECT part, report FROM part_reports
                     WHERE channel_id = ?1 AND message_id = ?2 AND part >= 0 AND expires_at > ?3",
                )?;
                let reports = stmt
                    .query_map(params![row.0, row.1, now()], |r| {
                        Ok((r.get::<_, u32>(0)?, from_json(&r.get::<_, String>(1)?)?))
                    })?
                    .collect();
                reports
            })
            .await
    }

    /// The claim is a row with part number -1: only one INSERT OR IGNORE inserts it.
    async fn claim_final_report(
        &self,
        channel_id: &str,
        message_id: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let key = (channel_id.to_owned(), message_id.to_owned());
        let expires = now() + ttl.as_secs_f64();
        self.db
            .call(move |conn| {
                let inserted = conn.prepare_cached("INSERT OR IGNORE INTO part_reports
                     (channel_id, message_id, part, report, expires_at) VALUES (?1, ?2, -1, 'final', ?3)")?.execute(params![key.0, key.1, expires],
                )?;
                Ok(inserted == 1)
            })
            .await
    }

    async fn events(&self, channel_id: &str, message_id: &str) -> Result<Vec<Event>, BackendError> {
        let key = (channel_id.to_owned(), message_id.to_owned());
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT event FROM events
                     WHERE channel_id = ?1 AND message_id = ?2 AND expires_at > ?3 ORDER BY seq",
                )?;
                let rows = stmt.query_map(params![key.0, key.1, now()], |row| {
                    from_json(&row.get::<_, String>(0)?)
                })?;
                rows.collect()
            })
            .await
    }

    /// One row per part; the message is complete when it has `total` rows. The transaction
    /// makes the count and the take one step.
    async fn add_inbound_part(
        &self,
        channel_id: &str,
        key: &PartsKey,
        sequence: u8,
        text: &str,
        ttl: Duration,
    ) -> Result<Option<Vec<String>>, BackendError> {
        let (channel_id, key, text) = (channel_id.to_owned(), key.clone(), text.to_owned());
        let kept_at = now();
        let expires = kept_at + ttl.as_secs_f64();
        self.db
            .call(move |conn| {
                let which = params![channel_id, key.sender, key.reference, key.total];
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO inbound_parts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    channel_id,
                    key.sender,
                    key.reference,
                    key.total,
                    sequence,
                    text,
                    kept_at,
                    expires
                ])?;
                let kept: u32 = conn
                    .prepare_cached(
                        "SELECT COUNT(*) FROM inbound_parts
                         WHERE channel_id = ?1 AND sender = ?2 AND reference = ?3 AND total = ?4",
                    )?
                    .query_row(which, |row| row.get(0))?;
                if kept < u32::from(key.total) {
                    return Ok(None);
                }
                take_parts(conn, &channel_id, &key).map(Some)
            })
            .await
    }

    async fn take_expired_parts(
        &self,
        channel_id: &str,
        max_age: Duration,
    ) -> Result<Vec<ExpiredParts>, BackendError> {
        let channel_id = channel_id.to_owned();
        let cutoff = now() - max_age.as_secs_f64();
        self.db
            .call(move |conn| {
                let keys = conn
                    .prepare_cached(
                        "SELECT sender, reference, total FROM inbound_parts WHERE channel_id = ?1
                         GROUP BY sender, reference, total HAVING MIN(kept_at) < ?2
                         ORDER BY MIN(kept_at)",
                    )?
                    .query_map(params![channel_id, cutoff], |row| {
                        Ok(PartsKey {
                            sender: row.get(0)?,
                            reference: row.get(1)?,
                            total: row.get(2)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                keys.into_iter()
                    .map(|key| {
                        let texts = take_parts(conn, &channel_id, &key)?;
                        Ok(ExpiredParts { key, texts })
                    })
                    .collect()
            })
            .await
    }

    async fn save_status(
        &self,
        channel_id: &str,
        status: &StatusEvent,
    ) -> Result<(), BackendError> {
        let row = (
            channel_id.to_owned(),
            status.component.clone(),
            to_json(status)?,
        );
        self.db
            .call(move |conn| {
                conn.prepare_cached("INSERT OR REPLACE INTO statuses VALUES (?1, ?2, ?3)")?
                    .execute(params![row.0, row.1, row.2])
                    .map(drop)
            })
            .await
    }

    async fn statuses(&self, channel_id: &str) -> Result<Vec<StatusEvent>, BackendError> {
        let id = channel_id.to_owned();
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT status FROM statuses WHERE channel_id = ?1 ORDER BY component",
                )?;
                let rows = stmt.query_map([id], |row| from_json(&row.get::<_, String>(0)?))?;
                rows.collect()
            })
            .await
    }

    async fn cursor(&self, channel_id: &str, name: &str) -> Result<Option<String>, BackendError> {
        let key = (channel_id.to_owned(), name.to_owned());
        self.db
            .call(move |conn| {
                conn.prepare_cached(
                    "SELECT value FROM cursors WHERE channel_id = ?1 AND name = ?2",
                )?
                .query_row(params![key.0, key.1], |row| row.get(0))
                .optional()
            })
            .await
    }

    async fn save_cursor(
        &self,
        channel_id: &str,
        name: &str,
        value: &str,
    ) -> Result<(), BackendError> {
        let row = (channel_id.to_owned(), name.to_owned(), value.to_owned());
        self.db
            .call(move |conn| {
                conn.prepare_cached("INSERT OR REPLACE INTO cursors VALUES (?1, ?2, ?3)")?
                    .execute(params![row.0, row.1, row.2])
                    .map(drop)
            })
            .await
    }

    /// One job, so one transaction: forget the channel's idle sessions, look this one up,
    /// renew it.
    async fn session_step(
        &self,
        channel_id: &str,
        session_id: &str,
        idle_timeout: Duration,
    ) -> Result<bool, BackendError> {
        let key = (channel_id.to_owned(), session_id.to_owned());
        let now = now();
        let expires_at = now + idle_timeout.as_secs_f64();
        self.db
            .call(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM sessions WHERE channel_id = ?1 AND expires_at <= ?2",
                )?
                .execute(params![key.0, now])?;
                let live = conn
                    .query_row(
                        "SELECT 1 FROM sessions WHERE channel_id = ?1 AND session_id = ?2",
                        params![key.0, key.1],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                conn.prepare_cached("INSERT OR REPLACE INTO sessions VALUES (?1, ?2, ?3)")?
                    .execute(params![key.0, key.1, expires_at])?;
                Ok(live)
            })
            .await
    }

    async fn end_session(&self, channel_id: &str, session_id: &str) -> Result<bool, BackendError> {
        let key = (channel_id.to_owned(), session_id.to_owned());
        let now = now();
        self.db
            .call(move |conn| {
                let removed = conn
                    .prepare_cached(
                        "DELETE FROM sessions WHERE channel_id = ?1 AND session_id = ?2 \
                     AND expires_at > ?3",
                    )?
                    .execute(params![key.0, key.1, now])?;
                Ok(removed > 0)
            })
            .await
    }

    async fn count(
        &self,
        channel_id: &str,
        label: &str,
        bucket: i64,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let key = (channel_id.to_owned(), label.to_owned());
        let expires = now() + ttl.as_secs_f64();
        self.db
            .call(move |conn| count_in(conn, &key.0, &key.1, bucket, expires))
            .await
    }

    async fn counts(
        &self,
        channel_id: &str,
        bucket: i64,
    ) -> Result<HashMap<String, u64>, BackendError> {
        let id = channel_id.to_owned();
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT label, count FROM rates
                     WHERE channel_id = ?1 AND bucket = ?2 AND expires_at > ?3",
                )?;
                let rows = stmt.query_map(params![id, bucket, now()], |row| {
                    Ok((row.get(0)?, row.get::<_, i64>(1)?.unsigned_abs()))
                })?;
                rows.collect()
            })
            .await
    }
}
