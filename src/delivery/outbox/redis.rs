//! The Redis outbox: keys beside the Store's, under the same prefix, shared by every Junebug
//! process (node) of a deployment.
//!
//! # Keys
//!
//! With `{node}` this process's node name, `{id}` a callback's id and `{channel}` a channel id:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `outbox:{node}:pending` | sorted set | the ids of the node's pending callbacks, scored by when they were added |
//! | `outbox:item:{id}` | string | a pending [`OutboxItem`] (JSON) |
//! | `{channel}:dead_letters` | list | the channel's dead [`OutboxItem`]s (JSON), oldest first |
//!
//! None expires: a pending callback waits until delivered or buried, a dead letter until
//! revived or purged.
//!
//! # Order and ownership
//!
//! A node's pending set is written only by that node, so the node gives the scores: unix
//! microseconds, made strictly increasing within the process and starting above the highest
//! score already in the set (see `RedisOutbox::scores`). A restart therefore keeps the
//! order even if the clock stepped back. Each node reads only its own set; dead letters are
//! per channel, and whichever node revives them takes them into its own set.
//!
//! # Atomicity
//!
//! Every change of more than one key is one MULTI/EXEC pipeline. [`Outbox::revive`] must
//! read the list before it can write the items, so it WATCHes the list on a connection of its
//! own (a WATCH on the shared multiplexed connection would be cleared by other calls' EXEC)
//! and tries again, after a growing pause, if a node buried, revived or purged in between:
//! a dead letter is never lost nor revived twice, at the cost of an error if the channel's
//! dead letters keep changing for every try.
//!
//! # Connection
//!
//! The shared [`RedisLink`] (the Store's connection too): short, bounded timeouts, and
//! reconnection by itself.
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::RedisError;

use super::{Outbox, OutboxItem};
use crate::backend::BackendError;
use crate::redis_link::{failure, RedisLink};

/// How many times [`Outbox::revive`] tries when the dead letters keep changing under it.
const REVIVE_TRIES: u32 = 12;
/// The first pause between two tries of [`Outbox::revive`], doubled each time up to
/// [`REVIVE_MAX_PAUSE`]: a burst of burials on the channel passes meanwhile.
const REVIVE_MIN_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause between two tries of [`Outbox::revive`] (all pauses: about 0.4 s).
const REVIVE_MAX_PAUSE: Duration = Duration::from_millis(64);

/// The Redis outbox of one node. Cheap to share behind an `Arc`; calls may run concurrently.
pub struct RedisOutbox {
    /// Names every key under the prefix.
    keys: Keys,
    /// The connection (shared with the Store).
    link: Arc<RedisLink>,
    /// The last score given in this node's pending set (unix microseconds).
    last_score: Mutex<u64>,
}

impl RedisOutbox {
    /// Connects to the Redis at `url`; every key will start with `key_prefix`, and pending
    /// callbacks will belong to `node`.
    ///
    /// Fails if Redis cannot be reached now (it also reads the node's highest score).
    pub async fn connect(
        url: &str,
        key_prefix: &str,
        node: &str,
    ) -> Result<RedisOutbox, BackendError> {
        RedisOutbox::new(Arc::new(RedisLink::connect(url).await?), key_prefix, node).await
    }

    /// The outbox of `node` over an open `link`; every key will start with `key_prefix`.
    /// Reads the node's highest score, so it fails if Redis cannot be reached now.
    pub async fn new(
        link: Arc<RedisLink>,
        key_prefix: &str,
        node: &str,
    ) -> Result<RedisOutbox, BackendError> {
        let outbox = RedisOutbox {
            keys: Keys {
                prefix: key_prefix.to_owned(),
                node: node.to_owned(),
            },
            link,
            last_score: Mutex::new(0),
        };
        let highest: Vec<(String, f64)> = outbox
            .link
            .query(
                redis::cmd("ZRANGE")
                    .arg(outbox.keys.pending())
                    .arg(-1)
                    .arg(-1)
                    .arg("WITHSCORES"),
                || format!("cannot read the pending callbacks of node {node}"),
            )
            .await?;
        if let Some((_, score)) = highest.first() {
            // Scores are whole microseconds, exact in an f64 for the next 200 years.
            *outbox
                .last_score
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = *score as u64;
        }
        Ok(outbox)
    }

    /// `count` new scores for this node's pending set, the first returned: after every
    /// score given so far, and no earlier than now.
    fn scores(&self, count: usize) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        let now = u64::try_from(now).unwrap_or(u64::MAX / 2);
        let mut last = self
            .last_score
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let first = now.max(*last + 1);
        *last = first + count.saturating_sub(1) as u64;
        first
    }

    /// One try of [`Outbox::revive`] on `conn`, a connection of its own: `None` if the dead
    /// letters changed between the read and the write (then nothing was written).
    async fn try_revive(
        &self,
        conn: &mut MultiplexedConnection,
        channel_id: &str,
    ) -> Result<Option<Vec<OutboxItem>>, BackendError> {
        let what = || format!("cannot revive the dead letters of channel {channel_id}");
        let fail = |e: RedisError| failure(what(), &e);
        let dead = self.keys.dead_letters(channel_id);
        let read = redis::pipe()
            .cmd("WATCH")
            .arg(&dead)
            .ignore()
            .cmd("LRANGE")
            .arg(&dead)
            .arg(0)
            .arg(-1)
            .to_owned();
        let (texts,): (Vec<String>,) = read.query_async(&mut *conn).await.map_err(fail)?;
        if texts.is_empty() {
            // No UNWATCH needed: the connection closes when `revive` returns.
            return Ok(Some(Vec::new()));
        }
        let due = unix_now();
        let mut items = Vec::with_capacity(texts.len());
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(&dead).ignore();
        for (score, text) in (self.scores(texts.len())..).zip(&texts) {
            let mut item = from_json(&dead, text)?;
            item.attempts = 0;
            item.next_attempt_at = due;
            pipe.cmd("SET")
                .arg(self.keys.item(&item.id))
                .arg(to_json(&item)?)
                .ignore()
                .cmd("ZADD")
                .arg(self.keys.pending())
                .arg("NX")
                .arg(score)
                .arg(&item.id)
                .ignore();
            items.push(item);
        }
        // EXEC answers nil, and runs nothing, when the watched list changed.
        let done: Option<redis::Value> = pipe.query_async(&mut *conn).await.map_err(fail)?;
        Ok(done.map(|_| items))
    }
}

/// The names of our keys; see the module doc for the layout.
struct Keys {
    /// Starts every key.
    prefix: String,
    /// This process's node name.
    node: String,
}

impl Keys {
    fn pending(&self) -> String {
        format!("{}outbox:{}:pending", self.prefix, self.node)
    }

    fn item(&self, id: &str) -> String {
        format!("{}outbox:item:{id}", self.prefix)
    }

    fn dead_letters(&self, channel_id: &str) -> String {
        format!("{}{channel_id}:dead_letters", self.prefix)
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn to_json(item: &OutboxItem) -> Result<String, BackendError> {
    serde_json::to_string(item)
        .map_err(|e| BackendError::new("redis", format!("cannot encode callback {}: {e}", item.id)))
}

/// Parses the JSON stored at `key`; a value we cannot read is reported, not skipped silently.
fn from_json(key: &str, text: &str) -> Result<OutboxItem, BackendError> {
    serde_json::from_str(text)
        .map_err(|e| BackendError::new("redis", format!("unreadable JSON at key {key}: {e}")))
}

#[async_trait]
impl Outbox for RedisOutbox {
    /// SET of the item and ZADD NX of its id, one atomic pipeline. Adding an id again
    /// replaces the item but keeps its place.
    async fn add(&self, item: &OutboxItem) -> Result<(), BackendError> {
        let json = to_json(item)?;
        let pipe = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.keys.item(&item.id))
            .arg(json)
            .ignore()
            .cmd("ZADD")
            .arg(self.keys.pending())
            .arg("NX")
            .arg(self.scores(1))
            .arg(&item.id)
            .ignore()
            .to_owned();
        self.link
            .query_pipe(&pipe, || format!("cannot keep callback {}", item.id))
            .await
    }

    /// SET XX: changes nothing if the callback is no longer pending (delivered, or buried).
    async fn update(&self, item: &OutboxItem) -> Result<(), BackendError> {
        let cmd = redis::cmd("SET")
            .arg(self.keys.item(&item.id))
            .arg(to_json(item)?)
            .arg("XX")
            .to_owned();
        let _: Option<String> = self
            .link
            .query(&cmd, || format!("cannot update callback {}", item.id))
            .await?;
        Ok(())
    }

    /// ZREM and DEL, one atomic pipeline.
    /// One ZREM of every id and one DEL of their items, in one atomic pipeline.
    async fn remove(&self, ids: &[String]) -> Result<(), BackendError> {
        if ids.is_empty() {
            return Ok(());
        }
        let items: Vec<String> = ids.iter().map(|id| self.keys.item(id)).collect();
        let pipe = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(self.keys.pending())
            .arg(ids)
            .ignore()
            .cmd("DEL")
            .arg(&items)
            .ignore()
            .to_owned();
        self.link
            .query_pipe(&pipe, || format!("cannot remove {} callback(s)", ids.len()))
            .await
    }

    /// Two round trips (ZRANGE, then one MGET of the items). An id whose item is gone by the
    /// MGET was delivered in between, and is left out.
    async fn pending(&self) -> Result<Vec<OutboxItem>, BackendError> {
        let what = || {
            format!(
                "cannot read the pending callbacks of node {}",
                self.keys.node
            )
        };
        let ids: Vec<String> = self
            .link
            .query(
                redis::cmd("ZRANGE").arg(self.keys.pending()).arg(0).arg(-1),
                what,
            )
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.keys.item(id)).collect();
        let texts: Vec<Option<String>> =
            self.link.query(redis::cmd("MGET").arg(&keys), what).await?;
        keys.iter()
            .zip(texts)
            .filter_map(|(key, text)| text.map(|text| from_json(key, &text)))
            .collect()
    }

    /// ZREM, DEL and RPUSH of `item` as given (its final attempt count and error), one
    /// atomic pipeline. It is buried even if it was not pending (the outbox could not keep
    /// it when it was posted), so no failure is forgotten.
    async fn bury(&self, item: &OutboxItem) -> Result<(), BackendError> {
        let pipe = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(self.keys.pending())
            .arg(&item.id)
            .ignore()
            .cmd("DEL")
            .arg(self.keys.item(&item.id))
            .ignore()
            .cmd("RPUSH")
            .arg(self.keys.dead_letters(&item.channel_id))
            .arg(to_json(item)?)
            .ignore()
            .to_owned();
        self.link
            .query_pipe(&pipe, || {
                format!(
                    "cannot bury callback {} of channel {}",
                    item.id, item.channel_id
                )
            })
            .await
    }

    async fn dead_letters(&self, channel_id: &str) -> Result<Vec<OutboxItem>, BackendError> {
        let key = self.keys.dead_letters(channel_id);
        let texts: Vec<String> = self
            .link
            .query(redis::cmd("LRANGE").arg(&key).arg(0).arg(-1), || {
                format!("cannot read the dead letters of channel {channel_id}")
            })
            .await?;
        texts.iter().map(|text| from_json(&key, text)).collect()
    }

    /// WATCH and LRANGE, then MULTI: DEL of the list, SET and ZADD NX of each item, EXEC; on
    /// a connection of its own, tried again after a pause if the list changed in between
    /// (another node buried, revived or purged). Fails if it keeps changing for all
    /// `REVIVE_TRIES`: only while burials on that channel come faster than two round trips.
    async fn revive(&self, channel_id: &str) -> Result<Vec<OutboxItem>, BackendError> {
        let what = || format!("cannot revive the dead letters of channel {channel_id}");
        let mut conn = self
            .link
            .dedicated()
            .await
            .map_err(|e| failure(what(), &e))?;
        let mut pause = REVIVE_MIN_PAUSE;
        for _ in 0..REVIVE_TRIES {
            if let Some(items) = self.try_revive(&mut conn, channel_id).await? {
                return Ok(items);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(REVIVE_MAX_PAUSE);
        }
        let detail = format!("{}: they kept changing ({REVIVE_TRIES} tries)", what());
        Err(BackendError::new("redis", detail))
    }

    /// LLEN and DEL, one atomic pipeline.
    async fn purge_dead(&self, channel_id: &str) -> Result<usize, BackendError> {
        let key = self.keys.dead_letters(channel_id);
        let pipe = redis::pipe()
            .atomic()
            .cmd("LLEN")
            .arg(&key)
            .cmd("DEL")
            .arg(&key)
            .ignore()
            .to_owned();
        let (count,): (usize,) = self
            .link
            .query_pipe(&pipe, || {
                format!("cannot purge the dead letters of channel {channel_id}")
            })
            .await?;
        Ok(count)
    }
}
