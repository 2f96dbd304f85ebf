//! The embedded Queue: one table in the SQLite file of [`crate::sqlite`], plus a counter table.
//!
//! - **Rows.** `outbound_queue` holds one row per queued message. A consumer *claims* rows
//!   (marks them with its claim number) before handing them out, so no message goes to two
//!   consumers; an ack deletes the row. Claims die with their consumer and with the process
//!   (they are cleared at start), so an unacked message is handed out again: at-least-once.
//!   Waiting consumers are woken through a [`Notify`] per channel.
//! - **Lanes.** A consumer has one window of `prefetch` unacked messages *per lane*, and claims
//!   for each lane separately, highest priority first, then oldest first. So a realtime
//!   message reaches its channel at once even while the bulk window is full, and bulk messages
//!   keep flowing while realtime ones wait (the channel's mailbox then orders what it holds and
//!   keeps bulk from starving). This is what the RabbitMQ backend does with one queue per lane.
//! - **Counters.** `outbound_queue_waiting` counts the rows waiting (unclaimed) per channel and
//!   lane, so [`Queue::lengths`] is one primary-key lookup, never a scan. Every statement that
//!   changes the waiting set adjusts it in the same database job, hence in the same savepoint
//!   and transaction: enqueue (+1), claim (−claimed), release of a dropped consumer's claims
//!   (+released), purge (−purged), and an ack of a row that was waiting again (−1; an ack of a
//!   claimed row changes nothing). At open, when every claim is released, the counters are
//!   recomputed from the table (the one scan).
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use junebug_actors::message::{Lane, Message, Priority};
use junebug_actors::ports::{Delivery, OutboundConsumer, PortError, Receipt};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::{LaneLengths, Queue};
use crate::backend::BackendError;
use crate::sqlite::Database;

/// The queue table and its waiting counters. The `CASE` at the end maps priorities to lanes
/// as [`Priority::lane`] does (4 and 5 realtime, 1 to 3 bulk).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbound_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, channel_id TEXT NOT NULL,
    priority INTEGER NOT NULL, message TEXT NOT NULL, claim INTEGER);
CREATE INDEX IF NOT EXISTS outbound_queue_order
    ON outbound_queue (channel_id, claim, priority DESC, seq);
CREATE TABLE IF NOT EXISTS outbound_queue_waiting (
    channel_id TEXT NOT NULL, lane TEXT NOT NULL, waiting INTEGER NOT NULL,
    PRIMARY KEY (channel_id, lane)) WITHOUT ROWID;
SAVEPOINT outbound_queue_open;
UPDATE outbound_queue SET claim = NULL WHERE claim IS NOT NULL;
DELETE FROM outbound_queue_waiting;
INSERT INTO outbound_queue_waiting (channel_id, lane, waiting)
    SELECT channel_id, CASE WHEN priority >= 4 THEN 'realtime' ELSE 'bulk' END, COUNT(*)
    FROM outbound_queue GROUP BY 1, 2;
RELEASE outbound_queue_open;
";

/// The lanes, in the order a consumer serves them when both have something: realtime first.
const LANES: [Lane; 2] = [Lane::Realtime, Lane::Bulk];

/// A lane's name in `outbound_queue_waiting`.
fn lane_name(lane: Lane) -> &'static str {
    match lane {
        Lane::Realtime => "realtime",
        Lane::Bulk => "bulk",
    }
}

/// The priorities of `lane` (every lane for `None`), as the bounds of `priority BETWEEN ?
/// AND ?`, which the index serves as one range.
fn levels(lane: Option<Lane>) -> (u8, u8) {
    match lane {
        Some(Lane::Realtime) => (4, 5),
        Some(Lane::Bulk) => (1, 3),
        None => (1, 5),
    }
}

/// The lane of a stored priority.
fn lane_of(level: u8) -> Lane {
    Priority::new(level).unwrap_or_default().lane()
}

/// The query of the rows a consumer claims from `lane`, best first (then each is marked
/// with an UPDATE, not one UPDATE … RETURNING: a statement with RETURNING makes SQLite
/// prepare the cached ones again). Each lane's priorities are written into its own query, so
/// each lane has its own cached statement. SQLite (bundled, with STAT4) still prepares it
/// again when its bound LIMIT changes (about 2 % of the daemon's CPU under load); stepping
/// without a LIMIT measured slower.
fn claim_query(lane: Lane) -> String {
    let (lowest, highest) = levels(Some(lane));
    format!(
        "SELECT seq, priority, message FROM outbound_queue
         WHERE channel_id = ?1 AND claim IS NULL AND priority BETWEEN {lowest} AND {highest}
         ORDER BY priority DESC, seq LIMIT ?2"
    )
}

/// Index of `lane` in [`LANES`].
fn index(lane: Lane) -> usize {
    match lane {
        Lane::Realtime => 0,
        Lane::Bulk => 1,
    }
}

/// Adds `delta` to the waiting count of `channel_id`'s `lane`. Call it in the job that
/// changes the waiting set, so both commit or neither does.
fn adjust_waiting(
    conn: &Connection,
    channel_id: &str,
    lane: Lane,
    delta: i64,
) -> rusqlite::Result<()> {
    if delta == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO outbound_queue_waiting (channel_id, lane, waiting) VALUES (?1, ?2, ?3)
         ON CONFLICT (channel_id, lane) DO UPDATE SET waiting = waiting + excluded.waiting",
    )?
    .execute(params![channel_id, lane_name(lane), delta])
    .map(drop)
}

/// [`adjust_waiting`] for each lane, by `sign` times the number of `levels` in it.
fn adjust_waiting_by_levels(
    conn: &Connection,
    channel_id: &str,
    levels: impl IntoIterator<Item = u8>,
    sign: i64,
) -> rusqlite::Result<()> {
    let mut counts = [0i64; 2];
    for level in levels {
        counts[index(lane_of(level))] += 1;
    }
    for lane in LANES {
        adjust_waiting(conn, channel_id, lane, sign * counts[index(lane)])?;
    }
    Ok(())
}

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
    async fn ping(&self) -> Result<(), BackendError> {
        self.db.call(|conn| conn.execute_batch("SELECT 1")).await
    }

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
                .execute(params![id, priority.level(), json])?;
                adjust_waiting(conn, &id, priority.lane(), 1)
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
        let window = || LaneWindow {
            window: Arc::new(Semaphore::new(prefetch.max(1))),
            claimed: VecDeque::new(),
        };
        Ok(Box::new(EmbeddedConsumer {
            db: self.db.clone(),
            waker: self.waker(channel_id),
            channel_id: channel_id.to_owned(),
            claim: self.next_claim.fetch_add(1, Ordering::Relaxed),
            lanes: [window(), window()],
        }))
    }

    async fn purge(
        &self,
        channel_id: &str,
        lane: Option<Lane>,
    ) -> Result<Vec<Message>, BackendError> {
        let id = channel_id.to_owned();
        let (lowest, highest) = levels(lane);
        let rows: Vec<(u8, String)> = self
            .db
            .call(move |conn| {
                let rows = conn
                    .prepare_cached(
                        "DELETE FROM outbound_queue WHERE channel_id = ?1 AND claim IS NULL
                             AND priority BETWEEN ?2 AND ?3
                         RETURNING priority, message",
                    )?
                    .query_map(params![id, lowest, highest], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<(u8, String)>>>()?;
                adjust_waiting_by_levels(conn, &id, rows.iter().map(|row| row.0), -1)?;
                Ok(rows)
            })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|(_, json)| serde_json::from_str(json).ok())
            .collect())
    }

    async fn lengths(&self, channel_id: &str) -> Result<LaneLengths, BackendError> {
        let id = channel_id.to_owned();
        let counts: Vec<(String, i64)> = self
            .db
            .call(move |conn| {
                conn.prepare_cached(
                    "SELECT lane, waiting FROM outbound_queue_waiting WHERE channel_id = ?1",
                )?
                .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
            })
            .await?;
        let mut lengths = LaneLengths::default();
        for (lane, waiting) in counts {
            // The counters never go below zero; should one, "none waiting" is the truth.
            let waiting = u64::try_from(waiting).unwrap_or(0);
            if lane == lane_name(Lane::Realtime) {
                lengths.realtime = waiting;
            } else if lane == lane_name(Lane::Bulk) {
                lengths.bulk = waiting;
            }
        }
        Ok(lengths)
    }

    async fn remove(&self, channel_id: &str) -> Result<(), BackendError> {
        {
            let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
            wakers.remove(channel_id);
        }
        // What is left (messages a consumer held past the purge) goes with the channel, as
        // it does when RabbitMQ deletes a queue.
        let id = channel_id.to_owned();
        self.db
            .call(move |conn| {
                conn.prepare_cached("DELETE FROM outbound_queue WHERE channel_id = ?1")?
                    .execute([&id])?;
                conn.prepare_cached("DELETE FROM outbound_queue_waiting WHERE channel_id = ?1")?
                    .execute([&id])
                    .map(drop)
            })
            .await
    }
}

struct ClaimedRow {
    seq: i64,
    priority: u8,
    message: String,
}

/// One lane of a consumer.
struct LaneWindow {
    /// One permit per message of this lane handed out and not yet acked.
    window: Arc<Semaphore>,
    /// Rows claimed in one go but not handed out yet: never more than the free permits, so
    /// each can be handed out at once.
    claimed: VecDeque<ClaimedRow>,
}

struct EmbeddedConsumer {
    db: Arc<Database>,
    waker: Arc<Notify>,
    channel_id: String,
    claim: i64,
    /// In [`LANES`] order: realtime, then bulk.
    lanes: [LaneWindow; 2],
}

impl EmbeddedConsumer {
    /// Claims up to `limits[i]` waiting rows of lane `LANES[i]`, best first, in one job.
    async fn claim(&mut self, limits: [usize; 2]) -> Result<(), BackendError> {
        let (id, claim) = (self.channel_id.clone(), self.claim);
        let claimed = self
            .db
            .call(move |conn| {
                let mut claimed: [Vec<ClaimedRow>; 2] = Default::default();
                for lane in LANES {
                    let limit = limits[index(lane)];
                    if limit == 0 {
                        continue;
                    }
                    let rows = conn
                        .prepare_cached(&claim_query(lane))?
                        .query_map(params![id, limit as i64], |row| {
                            Ok(ClaimedRow {
                                seq: row.get(0)?,
                                priority: row.get(1)?,
                                message: row.get(2)?,
                            })
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    let mut mark =
                        conn.prepare_cached("UPDATE outbound_queue SET claim = ?1 WHERE seq = ?2")?;
                    for row in &rows {
                        mark.execute(params![claim, row.seq])?;
                    }
                    adjust_waiting(conn, &id, lane, -(rows.len() as i64))?;
                    claimed[index(lane)] = rows;
                }
                Ok(claimed)
            })
            .await?;
        for (lane, rows) in self.lanes.iter_mut().zip(claimed) {
            lane.claimed.extend(rows); // in the SELECT's order: best first
        }
        Ok(())
    }

    /// A claimed row as a delivery, realtime first; `None` if nothing is claimed.
    fn hand_out(&mut self) -> Option<Delivery> {
        for i in 0..self.lanes.len() {
            while let Some(row) = self.lanes[i].claimed.pop_front() {
                let Ok(permit) = self.lanes[i].window.clone().try_acquire_owned() else {
                    // Cannot happen (claims never exceed the free permits); keep it for later.
                    self.lanes[i].claimed.push_front(row);
                    break;
                };
                match serde_json::from_str(&row.message) {
                    Ok(message) => return Some(self.delivery(row, message, permit)),
                    Err(_) => continue, // unreadable row: cannot happen with rows we wrote
                }
            }
        }
        None
    }
}

/// Resolves when a slot frees up in `lane`'s window (at once if one freed since the window
/// was seen full); never if the last claim looked at this lane (`looked`: it had free slots
/// then, so new rows for it are announced by the channel's waker instead).
///
/// `looked` is what the claim saw, not the window now: an ack that lands while the claim runs
/// frees a slot the claim did not look for, and only this wait can notice it.
async fn slot_freed(lane: &LaneWindow, looked: bool) {
    if looked {
        return std::future::pending().await;
    }
    // The permit is given back at once: this only waits for an ack.
    let _ = lane.window.acquire().await;
}

#[async_trait(?Send)]
impl OutboundConsumer for EmbeddedConsumer {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self.hand_out() {
                return Some(delivery);
            }
            // Registered before looking, so an enqueue committed after the look wakes us.
            let waker = self.waker.clone();
            let woken = waker.notified();
            let limits = [0, 1].map(|i| self.lanes[i].window.available_permits());
            if limits.iter().any(|&limit| limit > 0) {
                if self.claim(limits).await.is_err() {
                    // The database thread is gone: the process is going down.
                    return None;
                }
                if self.lanes.iter().any(|lane| !lane.claimed.is_empty()) {
                    continue;
                }
            }
            // Nothing waits that a lane has room for: wait for a new message or an ack.
            tokio::select! {
                () = woken => {}
                () = slot_freed(&self.lanes[0], limits[0] > 0) => {}
                () = slot_freed(&self.lanes[1], limits[1] > 0) => {}
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
        let (id, claim) = (self.channel_id.clone(), self.claim);
        let waker = self.waker.clone();
        self.db.submit(
            move |conn| {
                let released = conn
                    .prepare_cached(
                        "UPDATE outbound_queue SET claim = NULL
                         WHERE channel_id = ?1 AND claim = ?2
                         RETURNING priority",
                    )?
                    .query_map(params![id, claim], |row| row.get::<_, u8>(0))?
                    .collect::<rusqlite::Result<Vec<u8>>>()?;
                adjust_waiting_by_levels(conn, &id, released, 1)
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
                // A SELECT then a DELETE, not DELETE … RETURNING (see the claim).
                let row = conn
                    .prepare_cached(
                        "SELECT channel_id, priority, claim IS NULL FROM outbound_queue
                         WHERE seq = ?1",
                    )?
                    .query_row([seq], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, u8>(1)?, row.get(2)?))
                    })
                    .optional()?;
                let Some((channel_id, level, waiting)) = row else {
                    return Ok(()); // purged meanwhile
                };
                conn.prepare_cached("DELETE FROM outbound_queue WHERE seq = ?1")?
                    .execute([seq])?;
                // A claimed row was not waiting; one whose consumer went away (releasing its
                // claim) before this ack was.
                if waiting {
                    adjust_waiting(conn, &channel_id, lane_of(level), -1)?;
                }
                Ok(())
            })
            .await
            .map_err(PortError::from)
    }
}
