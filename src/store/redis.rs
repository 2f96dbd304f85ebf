//! The production Store: Redis, shared by every Junebug process of a deployment.
//!
//! Several processes read and write the same keys, so nothing is cached here: every call
//! is a round trip, and what one process writes the next call of any other process sees.
//! Expiry is Redis's own (`PX`/`PEXPIRE`, in milliseconds so sub-second TTLs work), not a
//! sweeper: an expired key is simply gone for everyone.
//!
//! # Keys
//!
//! Every key starts with the configured prefix (`redis.key_prefix`, e.g. `junebug:`), so
//! several deployments can share one Redis. With `{id}` a channel id and `{msg}` a message id:
//!
//! | key | type | holds | expiry |
//! |---|---|---|---|
//! | `channels` | set | the channel ids | none |
//! | `{id}:properties` | string | the channel's properties (JSON) | none |
//! | `{id}:status` | hash | component → its latest [`StatusEvent`] (JSON) | none |
//! | `{id}:cursors` | hash | cursor name → its value (how far a transport read its provider) | none |
//! | `{id}:sessions` | sorted set | live session ids (USSD), by when they go idle (ms) | the idle timeout, renewed |
//! | `{id}:inbound_messages:{msg}` | string | an inbound [`Message`] (JSON) | inbound TTL |
//! | `{id}:outbound_messages:{msg}` | string | an [`OutboundRecord`] (JSON) | outbound TTL |
//! | `{id}:outbound_messages:{msg}:events` | list | its [`Event`]s (JSON), ordered | TTL, renewed |
//! | `{id}:provider_ids:{pid}` | string | the [`PartRef`] a provider's message id points to (JSON) | outbound TTL |
//! | `{id}:outbound_messages:{msg}:part_reports` | hash | part number → its latest delivery report (JSON); `final` once the message's outcome was forwarded | TTL, renewed |
//! | `{id}:inbound_parts` | sorted set | the [`PartsKey`]s (JSON) of long inbound messages with parts kept, by when the first was kept (ms) | TTL, renewed |
//! | `{id}:inbound_parts:{sender}:{ref}:{total}` | hash | part sequence → its text | TTL, renewed |
//! | `{id}:{label}:{bucket}` | string | a count, labels of [`RATES`] | TTL, renewed |
//!
//! "Renewed": each RPUSH or INCR sets the expiry again, in the same atomic pipeline.
//!
//! This follows the original Junebug's layout (API.md §12) where it can; messages are plain
//! JSON strings rather than hashes with one field per event, so an event list keeps its order
//! and expires on its own.
//!
//! # Redis going away
//!
//! Every call goes through the shared [`RedisLink`] (short timeouts, reconnection by itself),
//! so while Redis is down a call fails within seconds with a [`BackendError`] (the API answers
//! 503) instead of hanging, and everything resumes once Redis is back.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use junebug_actors::message::{Event, Message, StatusEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{ChannelProperties, ExpiredParts, OutboundRecord, PartRef, PartsKey, Store, Tally};
use crate::backend::BackendError;
use crate::metrics::RATES;
use crate::redis_link::RedisLink;

/// The longest expiry we ask for, in milliseconds: Redis refuses an expiry whose deadline
/// overflows a 64-bit millisecond clock, and anything this long means "keep".
const MAX_TTL_MS: u64 = i64::MAX as u64 / 2;

/// The Redis Store. Cheap to share behind an `Arc`; every call may run concurrently (the
/// connection is multiplexed).
pub struct RedisStore {
    /// Names every key under the prefix.
    keys: Keys,
    /// The connection (shared with the callback outbox).
    link: Arc<RedisLink>,
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:password@]host:port/db`); every key will
    /// start with `key_prefix`.
    ///
    /// Fails if Redis cannot be reached now, so a daemon configured for Redis refuses to
    /// start rather than answering 503 to everything; once started, outages are survived.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisStore, BackendError> {
        Ok(RedisStore::new(
            Arc::new(RedisLink::connect(url).await?),
            key_prefix,
        ))
    }

    /// A store over an open `link`; every key will start with `key_prefix`.
    pub fn new(link: Arc<RedisLink>, key_prefix: &str) -> RedisStore {
        RedisStore {
            keys: Keys {
                prefix: key_prefix.to_owned(),
            },
            link,
        }
    }

    /// Reads the JSON string at `key`, if the key exists.
    async fn get_json<T: DeserializeOwned>(
        &self,
        key: String,
        what: impl FnOnce() -> String,
    ) -> Result<Option<T>, BackendError> {
        let text: Option<String> = self.link.query(redis::cmd("GET").arg(&key), what).await?;
        text.map(|text| from_json(&key, &text)).transpose()
    }

    /// Adds INCR and PEXPIRE of `tally`'s counter to `pipe` (an atomic one: the counter never
    /// exists without an expiry).
    fn count_in(&self, pipe: &mut redis::Pipeline, channel_id: &str, tally: &Tally<'_>) {
        let counter = self.keys.rate(channel_id, tally.label, tally.bucket);
        pipe.cmd("INCR")
            .arg(&counter)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&counter)
            .arg(ttl_ms(tally.ttl))
            .ignore();
    }

    /// Stores `value` as JSON at `key` for `ttl`.
    async fn set_json_px<T: Serialize>(
        &self,
        key: String,
        value: &T,
        ttl: Duration,
        what: impl FnOnce() -> String,
    ) -> Result<(), BackendError> {
        let cmd = redis::cmd("SET")
            .arg(&key)
            .arg(to_json(value)?)
            .arg("PX")
            .arg(ttl_ms(ttl))
            .to_owned();
        self.link.query(&cmd, what).await
    }
}

/// The names of our keys; see the module doc for the layout.
struct Keys {
    /// Starts every key.
    prefix: String,
}

impl Keys {
    fn channels(&self) -> String {
        format!("{}channels", self.prefix)
    }

    fn properties(&self, id: &str) -> String {
        format!("{}{id}:properties", self.prefix)
    }

    fn status(&self, id: &str) -> String {
        format!("{}{id}:status", self.prefix)
    }

    fn cursors(&self, id: &str) -> String {
        format!("{}{id}:cursors", self.prefix)
    }

    fn sessions(&self, id: &str) -> String {
        format!("{}{id}:sessions", self.prefix)
    }

    fn inbound(&self, id: &str, message_id: &str) -> String {
        format!("{}{id}:inbound_messages:{message_id}", self.prefix)
    }

    fn outbound(&self, id: &str, message_id: &str) -> String {
        format!("{}{id}:outbound_messages:{message_id}", self.prefix)
    }

    fn provider_id(&self, id: &str, provider_id: &str) -> String {
        format!("{}{id}:provider_ids:{provider_id}", self.prefix)
    }

    fn inbound_parts_index(&self, id: &str) -> String {
        format!("{}{id}:inbound_parts", self.prefix)
    }

    fn inbound_parts(&self, id: &str, key: &PartsKey) -> String {
        let PartsKey {
            sender,
            reference,
            total,
        } = key;
        format!(
            "{}{id}:inbound_parts:{sender}:{reference}:{total}",
            self.prefix
        )
    }

    fn part_reports(&self, id: &str, message_id: &str) -> String {
        format!(
            "{}{id}:outbound_messages:{message_id}:part_reports",
            self.prefix
        )
    }

    fn events(&self, id: &str, message_id: &str) -> String {
        format!("{}{id}:outbound_messages:{message_id}:events", self.prefix)
    }

    fn rate(&self, id: &str, label: &str, bucket: i64) -> String {
        format!("{}{id}:{label}:{bucket}", self.prefix)
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, BackendError> {
    serde_json::to_string(value).map_err(|e| BackendError::new("redis", e.to_string()))
}

/// Parses the JSON stored at `key`; a value we cannot read is reported, not skipped silently.
fn from_json<T: DeserializeOwned>(key: &str, text: &str) -> Result<T, BackendError> {
    serde_json::from_str(text)
        .map_err(|e| BackendError::new("redis", format!("unreadable JSON at key {key}: {e}")))
}

/// `ttl` as a Redis expiry: whole milliseconds, at least 1 (Redis refuses 0; a zero TTL
/// means "expired at once" and 1 ms is as good) and at most [`MAX_TTL_MS`].
/// Reads a long message's parts hash, deletes it and drops it from the index, in one step:
/// answers (fields, how many hashes were deleted).
fn take_parts_pipe(parts: &str, index: &str, member: &str) -> redis::Pipeline {
    redis::pipe()
        .atomic()
        .cmd("HGETALL")
        .arg(parts)
        .cmd("DEL")
        .arg(parts)
        .cmd("ZREM")
        .arg(index)
        .arg(member)
        .ignore()
        .to_owned()
}

/// The texts of a parts hash's fields, in sequence order.
fn texts_in_order(fields: BTreeMap<String, String>) -> Vec<String> {
    let numbered: BTreeMap<u8, String> = fields
        .into_iter()
        .filter_map(|(field, text)| Some((field.parse().ok()?, text)))
        .collect();
    numbered.into_values().collect()
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(MAX_TTL_MS)
        .clamp(1, MAX_TTL_MS)
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> Result<(), BackendError> {
        let _: String = self
            .link
            .query(&redis::cmd("PING"), || "cannot reach Redis".to_owned())
            .await?;
        Ok(())
    }

    /// One atomic pipeline, so no process ever sees the id without its properties.
    async fn save_channel(&self, id: &str, props: &ChannelProperties) -> Result<(), BackendError> {
        let pipe = redis::pipe()
            .atomic()
            .cmd("SADD")
            .arg(self.keys.channels())
            .arg(id)
            .ignore()
            .cmd("SET")
            .arg(self.keys.properties(id))
            .arg(to_json(props)?)
            .ignore()
            .to_owned();
        self.link
            .query_pipe(&pipe, || format!("cannot save channel {id}"))
            .await
    }

    async fn load_channel(&self, id: &str) -> Result<Option<ChannelProperties>, BackendError> {
        self.get_json(self.keys.properties(id), || {
            format!("cannot load channel {id}")
        })
        .await
    }

    /// Two round trips (SMEMBERS, then one MGET of every properties key). An id whose
    /// properties are gone by the MGET was deleted in between, and is left out.
    async fn load_channels(&self) -> Result<Vec<(String, ChannelProperties)>, BackendError> {
        let what = || "cannot list channels".to_owned();
        let mut ids: Vec<String> = self
            .link
            .query(redis::cmd("SMEMBERS").arg(self.keys.channels()), what)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        ids.sort();
        let keys: Vec<String> = ids.iter().map(|id| self.keys.properties(id)).collect();
        let values: Vec<Option<String>> =
            self.link.query(redis::cmd("MGET").arg(&keys), what).await?;
        ids.into_iter()
            .zip(keys.iter().zip(values))
            .filter_map(|(id, (key, text))| text.map(|text| (id, key, text)))
            .map(|(id, key, text)| Ok((id, from_json(key, &text)?)))
            .collect()
    }

    /// One atomic pipeline: SREM, and DEL of the properties, statuses, cursors and sessions.
    async fn delete_channel(&self, id: &str) -> Result<bool, BackendError> {
        let pipe = redis::pipe()
            .atomic()
            .cmd("SREM")
            .arg(self.keys.channels())
            .arg(id)
            .cmd("DEL")
            .arg(self.keys.properties(id))
            .cmd("DEL")
            .arg(self.keys.status(id))
            .ignore()
            .cmd("DEL")
            .arg(self.keys.cursors(id))
            .ignore()
            .cmd("DEL")
            .arg(self.keys.sessions(id))
            .ignore()
            .to_owned();
        let (removed, deleted): (u64, u64) = self
            .link
            .query_pipe(&pipe, || format!("cannot delete channel {id}"))
            .await?;
        Ok(removed > 0 || deleted > 0)
    }

    async fn save_inbound(
        &self,
        channel_id: &str,
        message: &Message,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let message_id = &message.message_id;
        self.set_json_px(
            self.keys.inbound(channel_id, message_id),
            message,
            ttl,
            || format!("cannot save inbound message {message_id} of channel {channel_id}"),
        )
        .await
    }

    async fn load_inbound(
        &self,
        channel_id: &str,
        message_id: &str,
    ) -> Result<Option<Message>, BackendError> {
        self.get_json(self.keys.inbound(channel_id, message_id), || {
            format!("cannot load inbound message {message_id} of channel {channel_id}")
        })
        .await
    }

    /// SET PX of the record, INCR and PEXPIRE of the counter: one atomic pipeline.
    async fn accept_outbound(
        &self,
        channel_id: &str,
        record: &OutboundRecord,
        ttl: Duration,
        tally: Tally<'_>,
    ) -> Result<(), BackendError> {
        let message_id = &record.message.message_id;
        let what = || format!("cannot save outbound message {message_id} of channel {channel_id}");
        let json = serde_json::to_string(record)
            .map_err(|e| BackendError::new("redis", format!("{}: {e}", what())))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.keys.outbound(channel_id, message_id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms(ttl))
            .ignore();
        self.count_in(&mut pipe, channel_id, &tally);
        self.link.query_pipe(&pipe, what).await
    }

    async fn load_outbound(
        &self,
        channel_id: &str,
        message_id: &str,
    ) -> Result<Option<OutboundRecord>, BackendError> {
        self.get_json(self.keys.outbound(channel_id, message_id), || {
            format!("cannot load outbound message {message_id} of channel {channel_id}")
        })
        .await
    }

    /// RPUSH and PEXPIRE, INCR and PEXPIRE of the rate, GET of the record, in one atomic
    /// pipeline: the list and the counter never exist without an expiry.
    async fn record_event(
        &self,
        channel_id: &str,
        event: &Event,
        ttl: Duration,
        tally: Tally<'_>,
    ) -> Result<Option<OutboundRecord>, BackendError> {
        let message_id = &event.user_message_id;
        let key = self.keys.events(channel_id, message_id);
        let record_key = self.keys.outbound(channel_id, message_id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("RPUSH")
            .arg(&key)
            .arg(to_json(event)?)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms(ttl))
            .ignore();
        self.count_in(&mut pipe, channel_id, &tally);
        pipe.cmd("GET").arg(&record_key);
        let (record,): (Option<String>,) = self
            .link
            .query_pipe(&pipe, || {
                format!(
                    "cannot save event {} of message {message_id} of channel {channel_id}",
                    event.event_id
                )
            })
            .await?;
        record.map(|text| from_json(&record_key, &text)).transpose()
    }

    /// One SET PX per part, in one pipeline.
    async fn map_provider_ids(
        &self,
        channel_id: &str,
        message_id: &str,
        provider_ids: &[String],
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let mut pipe = redis::pipe();
        let parts = provider_ids.len() as u32;
        for (provider_id, part) in provider_ids.iter().zip(0..) {
            let part_ref = PartRef {
                message_id: message_id.to_owned(),
                part,
                parts,
            };
            pipe.cmd("SET")
                .arg(self.keys.provider_id(channel_id, provider_id))
                .arg(to_json(&part_ref)?)
                .arg("PX")
                .arg(ttl_ms(ttl))
                .ignore();
        }
        self.link
            .query_pipe(&pipe, || {
                format!("cannot map provider ids of message {message_id} of channel {channel_id}")
            })
            .await
    }

    async fn find_provider_id(
        &self,
        channel_id: &str,
        provider_id: &str,
    ) -> Result<Option<PartRef>, BackendError> {
        self.get_json(self.keys.provider_id(channel_id, provider_id), || {
            format!("cannot look up provider id {provider_id} of channel {channel_id}")
        })
        .await
    }

    /// HSET, PEXPIRE and HGETALL of the message's part reports: one atomic pipeline.
    async fn record_part_report(
        &self,
        channel_id: &str,
        part: &PartRef,
        report: &Value,
        ttl: Duration,
    ) -> Result<BTreeMap<u32, Value>, BackendError> {
        let key = self.keys.part_reports(channel_id, &part.message_id);
        let pipe = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&key)
            .arg(part.part)
            .arg(to_json(report)?)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms(ttl))
            .ignore()
            .cmd("HGETALL")
            .arg(&key)
            .to_owned();
        let (fields,): (BTreeMap<String, String>,) = self
            .link
            .query_pipe(&pipe, || {
                format!(
                    "cannot record a part report of message {} of channel {channel_id}",
                    part.message_id
                )
            })
            .await?;
        // The hash also holds the `final` claim; only numbered fields are parts.
        fields
            .into_iter()
            .filter_map(|(field, text)| Some((field.parse::<u32>().ok()?, text)))
            .map(|(part, text)| Ok((part, from_json(&key, &text)?)))
            .collect()
    }

    /// HSETNX of a `final` field in the message's part-report hash.
    async fn claim_final_report(
        &self,
        channel_id: &str,
        message_id: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let key = self.keys.part_reports(channel_id, message_id);
        let pipe = redis::pipe()
            .atomic()
            .cmd("HSETNX")
            .arg(&key)
            .arg("final")
            .arg(1)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms(ttl))
            .ignore()
            .to_owned();
        let (claimed,): (bool,) = self
            .link
            .query_pipe(&pipe, || {
                format!(
                    "cannot claim the final report of message {message_id} of channel {channel_id}"
                )
            })
            .await?;
        Ok(claimed)
    }

    async fn events(&self, channel_id: &str, message_id: &str) -> Result<Vec<Event>, BackendError> {
        let key = self.keys.events(channel_id, message_id);
        let texts: Vec<String> = self
            .link
            .query(redis::cmd("LRANGE").arg(&key).arg(0).arg(-1), || {
                format!("cannot load events of message {message_id} of channel {channel_id}")
            })
            .await?;
        texts.iter().map(|text| from_json(&key, text)).collect()
    }

    /// The parts live in a hash; an index of the messages by first-part time lets expiry
    /// find them. Whoever deletes the hash (DEL answers 1) owns the whole message.
    async fn add_inbound_part(
        &self,
        channel_id: &str,
        key: &PartsKey,
        sequence: u8,
        text: &str,
        ttl: Duration,
    ) -> Result<Option<Vec<String>>, BackendError> {
        let parts = self.keys.inbound_parts(channel_id, key);
        let index = self.keys.inbound_parts_index(channel_id);
        let member = to_json(key)?;
        let what = || format!("cannot keep a part of a long message to channel {channel_id}");
        let keep = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&parts)
            .arg(sequence)
            .arg(text)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&parts)
            .arg(ttl_ms(ttl))
            .ignore()
            .cmd("ZADD")
            .arg(&index)
            .arg("NX")
            .arg(now_ms())
            .arg(&member)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&index)
            .arg(ttl_ms(ttl))
            .ignore()
            .cmd("HLEN")
            .arg(&parts)
            .to_owned();
        let (kept,): (u32,) = self.link.query_pipe(&keep, what).await?;
        if kept < u32::from(key.total) {
            return Ok(None);
        }
        let take = take_parts_pipe(&parts, &index, &member);
        let (fields, deleted): (BTreeMap<String, String>, u32) =
            self.link.query_pipe(&take, what).await?;
        Ok((deleted == 1).then(|| texts_in_order(fields)))
    }

    async fn take_expired_parts(
        &self,
        channel_id: &str,
        max_age: Duration,
    ) -> Result<Vec<ExpiredParts>, BackendError> {
        let index = self.keys.inbound_parts_index(channel_id);
        let what = || format!("cannot read the long messages kept for channel {channel_id}");
        let cutoff = now_ms().saturating_sub(ttl_ms(max_age));
        let members: Vec<String> = self
            .link
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&index)
                    .arg("-inf")
                    .arg(cutoff),
                what,
            )
            .await?;
        let mut expired = Vec::new();
        for member in members {
            let key: PartsKey = from_json(&index, &member)?;
            let parts = self.keys.inbound_parts(channel_id, &key);
            let take = take_parts_pipe(&parts, &index, &member);
            let (fields, deleted): (BTreeMap<String, String>, u32) =
                self.link.query_pipe(&take, what).await?;
            // Taken by another node meanwhile, or its hash expired: nothing to deliver.
            if deleted == 1 {
                expired.push(ExpiredParts {
                    key,
                    texts: texts_in_order(fields),
                });
            } else {
                let _: () = self
                    .link
                    .query(redis::cmd("ZREM").arg(&index).arg(&member), what)
                    .await?;
            }
        }
        Ok(expired)
    }

    async fn save_status(
        &self,
        channel_id: &str,
        status: &StatusEvent,
    ) -> Result<(), BackendError> {
        let cmd = redis::cmd("HSET")
            .arg(self.keys.status(channel_id))
            .arg(&status.component)
            .arg(to_json(status)?)
            .to_owned();
        self.link
            .query(&cmd, || {
                format!(
                    "cannot save status of {} of channel {channel_id}",
                    status.component
                )
            })
            .await
    }

    /// Sorted by component, like the embedded store.
    async fn statuses(&self, channel_id: &str) -> Result<Vec<StatusEvent>, BackendError> {
        let key = self.keys.status(channel_id);
        let fields: BTreeMap<String, String> = self
            .link
            .query(redis::cmd("HGETALL").arg(&key), || {
                format!("cannot load statuses of channel {channel_id}")
            })
            .await?;
        fields.values().map(|text| from_json(&key, text)).collect()
    }

    async fn cursor(&self, channel_id: &str, name: &str) -> Result<Option<String>, BackendError> {
        let cmd = redis::cmd("HGET")
            .arg(self.keys.cursors(channel_id))
            .arg(name)
            .to_owned();
        self.link
            .query(&cmd, || {
                format!("cannot load cursor {name} of channel {channel_id}")
            })
            .await
    }

    async fn save_cursor(
        &self,
        channel_id: &str,
        name: &str,
        value: &str,
    ) -> Result<(), BackendError> {
        let cmd = redis::cmd("HSET")
            .arg(self.keys.cursors(channel_id))
            .arg(name)
            .arg(value)
            .to_owned();
        self.link
            .query(&cmd, || {
                format!("cannot save cursor {name} of channel {channel_id}")
            })
            .await
    }

    /// One atomic pipeline: ZREMRANGEBYSCORE of the idle sessions, ZSCORE of this one, ZADD
    /// of its new idle time, PEXPIRE of the set (no session outlives it).
    async fn session_step(
        &self,
        channel_id: &str,
        session_id: &str,
        idle_timeout: Duration,
    ) -> Result<bool, BackendError> {
        let key = self.keys.sessions(channel_id);
        let now = now_ms();
        let pipe = redis::pipe()
            .atomic()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now)
            .ignore()
            .cmd("ZSCORE")
            .arg(&key)
            .arg(session_id)
            .cmd("ZADD")
            .arg(&key)
            .arg(now.saturating_add(ttl_ms(idle_timeout)))
            .arg(session_id)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms(idle_timeout))
            .ignore()
            .to_owned();
        let (score,): (Option<f64>,) = self
            .link
            .query_pipe(&pipe, || {
                format!("cannot record a step of session {session_id} of channel {channel_id}")
            })
            .await?;
        Ok(score.is_some())
    }

    /// ZSCORE and ZREM in one atomic pipeline: live if its idle time was still ahead.
    async fn end_session(&self, channel_id: &str, session_id: &str) -> Result<bool, BackendError> {
        let key = self.keys.sessions(channel_id);
        let pipe = redis::pipe()
            .atomic()
            .cmd("ZSCORE")
            .arg(&key)
            .arg(session_id)
            .cmd("ZREM")
            .arg(&key)
            .arg(session_id)
            .ignore()
            .to_owned();
        let (idle_at,): (Option<f64>,) = self
            .link
            .query_pipe(&pipe, || {
                format!("cannot end session {session_id} of channel {channel_id}")
            })
            .await?;
        Ok(idle_at.is_some_and(|at| at > now_ms() as f64))
    }

    /// INCR and PEXPIRE in one atomic pipeline: a counter never exists without an expiry.
    async fn count(
        &self,
        channel_id: &str,
        label: &str,
        bucket: i64,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let tally = Tally { label, bucket, ttl };
        self.count_in(&mut pipe, channel_id, &tally);
        self.link
            .query_pipe(&pipe, || {
                format!("cannot count {label} in bucket {bucket} of channel {channel_id}")
            })
            .await
    }

    /// One MGET of the counters of every label of [`RATES`]; labels never counted (or whose
    /// counter expired) are left out.
    async fn counts(
        &self,
        channel_id: &str,
        bucket: i64,
    ) -> Result<HashMap<String, u64>, BackendError> {
        let keys: Vec<String> = RATES
            .iter()
            .map(|(label, _)| self.keys.rate(channel_id, label, bucket))
            .collect();
        let values: Vec<Option<u64>> = self
            .link
            .query(redis::cmd("MGET").arg(&keys), || {
                format!("cannot load rate counts of bucket {bucket} of channel {channel_id}")
            })
            .await?;
        Ok(RATES
            .iter()
            .zip(values)
            .filter_map(|((label, _), count)| match count {
                Some(n) if n > 0 => Some(((*label).to_owned(), n)),
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zero TTL still makes a valid expiry, and an absurd one does not overflow Redis's clock.
    #[test]
    fn ttls_become_valid_redis_expiries() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_millis(200)), 200);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS);
    }
}
