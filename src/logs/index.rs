//! The message index of the channel logs: which lines of which files concern a message, in
//! `{logging_path}/index.sqlite`, owned by a thread of its own.
//!
//! The log writer sends one row per (message id, line) it wrote, one job per batch of lines;
//! the thread takes whatever waits and writes it in one transaction (group commit), so the
//! index costs one SQLite commit per batch, never per line. Lookups travel through the same queue, so a lookup sees
//! every row sent before it. Rows go when their file is deleted by rotation, when their
//! channel is deleted, and when they are older than `outbound_message_ttl` (checked every
//! minute); lookups ignore older rows too. Channels are stored as small numbers, so a row is
//! a message id and four numbers.
use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

/// Rows and lookups queued for the index thread; beyond that the log writer waits (the
/// writer, never a producer of log entries).
const QUEUE: usize = 16 * 1024;

/// Jobs one transaction takes at most.
const MAX_BATCH: usize = 1024;

/// How often rows older than the TTL are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The index file is this thread's alone: exclusive locking (set before WAL, so the WAL
/// index lives in the heap) spares every transaction its file-lock system calls. Rows are
/// appended all the time, so checkpoints (each with an fsync) come every 4,000 WAL pages,
/// not SQLite's 1,000.
const SCHEMA: &str = "
PRAGMA locking_mode = EXCLUSIVE;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA wal_autocheckpoint = 4000;
CREATE TABLE IF NOT EXISTS channels (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS entries (
    message_id TEXT NOT NULL,
    channel INTEGER NOT NULL,
    file_seq INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_message ON entries (message_id, channel);
CREATE INDEX IF NOT EXISTS entries_by_file ON entries (channel, file_seq);
";

/// One line that concerns one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The message.
    pub message_id: String,
    /// The channel whose log has the line.
    pub channel_id: String,
    /// The file's sequence number.
    pub seq: u64,
    /// The line's byte offset in the file.
    pub offset: u64,
    /// The entry's timestamp, unix seconds.
    pub at: f64,
}

/// Where the lines of a message are: (file sequence number, offset), in the order written.
pub type Locations = Vec<(u64, u64)>;

/// What the index thread does.
pub enum Job {
    /// Adds rows.
    Add(Vec<Row>),
    /// A channel's files up to this sequence number were deleted.
    FilesDeleted {
        /// The channel.
        channel_id: String,
        /// The newest deleted file.
        through: u64,
    },
    /// A channel's log was deleted.
    Forget(String),
    /// Where the lines about a message are, among rows not older than `since`.
    Find {
        /// The channel.
        channel_id: String,
        /// The message.
        message_id: String,
        /// Unix seconds.
        since: f64,
        /// Gets the answer.
        reply: mpsc::Sender<Locations>,
    },
}

/// A handle to the index thread; it ends once every handle and sender is dropped.
pub struct Index {
    jobs: Option<mpsc::SyncSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Index {
    /// Opens (creating) the index file and starts its thread. `ttl` is how long rows are kept.
    pub fn open(path: &Path, ttl: Duration, logger: slog::Logger) -> Result<Index, String> {
        let conn = Connection::open(path).map_err(|e| e.to_string())?;
        conn.busy_timeout(Duration::from_secs(5))
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(|e| e.to_string())?;
        let (jobs, inbox) = mpsc::sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("junebug-log-index".into())
            .spawn(move || IndexThread::new(conn, ttl, logger).run(&inbox))
            .map_err(|e| e.to_string())?;
        Ok(Index {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// A sender of jobs (for the log writer).
    pub fn sender(&self) -> mpsc::SyncSender<Job> {
        self.jobs.clone().expect("present until dropped")
    }
}

impl Drop for Index {
    /// Lets the thread finish what was sent, then waits for it.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where the lines about `message_id` are (blocking: call it off the async threads).
pub fn find(
    jobs: &mpsc::SyncSender<Job>,
    channel_id: &str,
    message_id: &str,
    since: f64,
) -> Locations {
    let (reply, answer) = mpsc::channel();
    let job = Job::Find {
        channel_id: channel_id.to_owned(),
        message_id: message_id.to_owned(),
        since,
        reply,
    };
    if jobs.send(job).is_err() {
        return Vec::new();
    }
    answer.recv().unwrap_or_default()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

struct IndexThread {
    conn: Connection,
    ttl: Duration,
    logger: slog::Logger,
    /// Channel ids and their numbers.
    channels: HashMap<String, i64>,
    /// When rows were last pruned (never yet: at the first chance).
    last_prune: Option<Instant>,
}

impl IndexThread {
    fn new(conn: Connection, ttl: Duration, logger: slog::Logger) -> Self {
        IndexThread {
            conn,
            ttl,
            logger,
            channels: HashMap::new(),
            last_prune: None,
        }
    }

    fn run(mut self, inbox: &mpsc::Receiver<Job>) {
        loop {
            let first = match inbox.recv_timeout(PRUNE_EVERY) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.prune_if_due();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let batch: Vec<Job> = std::iter::once(first)
                .chain(std::iter::from_fn(|| inbox.try_recv().ok()).take(MAX_BATCH - 1))
                .collect();
            let mut replies = Vec::new();
            let done = self.in_transaction(|this| {
                for job in batch {
                    if let Some(reply) = this.run_job(job)? {
                        replies.push(reply);
                    }
                }
                Ok(())
            });
            if let Err(e) = done {
                slog::warn!(self.logger, "Cannot update the channel log index"; "error" => %e);
            }
            // Dropped unanswered lookups get an empty answer.
            for (reply, locations) in replies {
                let _ = reply.send(locations);
            }
            self.prune_if_due();
        }
    }

    fn in_transaction(
        &mut self,
        body: impl FnOnce(&mut Self) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = body(self).and_then(|()| self.conn.execute_batch("COMMIT"));
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            // Numbers given out in a rolled-back transaction are not in the table.
            self.channels.clear();
        }
        result
    }

    fn run_job(
        &mut self,
        job: Job,
    ) -> rusqlite::Result<Option<(mpsc::Sender<Locations>, Locations)>> {
        match job {
            Job::Add(rows) => {
                for row in rows {
                    let channel = self.channel_number(&row.channel_id)?;
                    self.conn
                        .prepare_cached(
                            "INSERT INTO entries (message_id, channel, file_seq, offset, at) \
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?
                        .execute(params![
                            row.message_id,
                            channel,
                            row.seq as i64,
                            row.offset as i64,
                            row.at
                        ])?;
                }
            }
            Job::FilesDeleted {
                channel_id,
                through,
            } => {
                if let Some(channel) = self.known_channel(&channel_id)? {
                    self.conn
                        .prepare_cached(
                            "DELETE FROM entries WHERE channel = ?1 AND file_seq <= ?2",
                        )?
                        .execute(params![channel, through as i64])?;
                }
            }
            Job::Forget(channel_id) => {
                if let Some(channel) = self.known_channel(&channel_id)? {
                    self.conn
                        .execute("DELETE FROM entries WHERE channel = ?1", [channel])?;
                    self.conn
                        .execute("DELETE FROM channels WHERE id = ?1", [channel])?;
                    self.channels.remove(&channel_id);
                }
            }
            Job::Find {
                channel_id,
                message_id,
                since,
                reply,
            } => {
                let mut locations = Vec::new();
                if let Some(channel) = self.known_channel(&channel_id)? {
                    let mut select = self.conn.prepare_cached(
                        "SELECT file_seq, offset FROM entries \
                         WHERE message_id = ?1 AND channel = ?2 AND at >= ?3 ORDER BY rowid",
                    )?;
                    let rows = select.query_map(params![message_id, channel, since], |r| {
                        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
                    })?;
                    for row in rows {
                        locations.push(row?);
                    }
                }
                return Ok(Some((reply, locations)));
            }
        }
        Ok(None)
    }

    /// The number of a channel, if it has one.
    fn known_channel(&mut self, channel_id: &str) -> rusqlite::Result<Option<i64>> {
        if let Some(number) = self.channels.get(channel_id) {
            return Ok(Some(*number));
        }
        let number: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM channels WHERE name = ?1")?
            .query_row([channel_id], |r| r.get(0))
            .optional()?;
        if let Some(number) = number {
            self.channels.insert(channel_id.to_owned(), number);
        }
        Ok(number)
    }

    /// The number of a channel, given one if it has none yet.
    fn channel_number(&mut self, channel_id: &str) -> rusqlite::Result<i64> {
        if let Some(number) = self.known_channel(channel_id)? {
            return Ok(number);
        }
        self.conn
            .prepare_cached("INSERT INTO channels (name) VALUES (?1)")?
            .execute([channel_id])?;
        let number = self.conn.last_insert_rowid();
        self.channels.insert(channel_id.to_owned(), number);
        Ok(number)
    }

    /// Deletes rows older than the TTL, at most once per [`PRUNE_EVERY`]. Rows are added in
    /// time order, so the old ones are those before the first young one: finding it reads
    /// only the rows that go.
    fn prune_if_due(&mut self) {
        if self.last_prune.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.last_prune = Some(Instant::now());
        let cutoff = unix_now() - self.ttl.as_secs_f64();
        let pruned = self.in_transaction(|this| {
            let first_young: Option<i64> = this
                .conn
                .query_row(
                    "SELECT rowid FROM entries WHERE at >= ?1 ORDER BY rowid LIMIT 1",
                    [cutoff],
                    |r| r.get(0),
                )
                .optional()?;
            match first_young {
                Some(rowid) => this
                    .conn
                    .execute("DELETE FROM entries WHERE rowid < ?1", [rowid])?,
                None => this.conn.execute("DELETE FROM entries", [])?,
            };
            Ok(())
        });
        if let Err(e) = pruned {
            slog::warn!(self.logger, "Cannot prune the channel log index"; "error" => %e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(message_id: &str, channel_id: &str, seq: u64, offset: u64, at: f64) -> Row {
        Row {
            message_id: message_id.into(),
            channel_id: channel_id.into(),
            seq,
            offset,
            at,
        }
    }

    #[test]
    fn finds_rows_by_message_until_their_files_or_channel_go() {
        let tmp = tempfile::tempdir().unwrap();
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let index = Index::open(
            &tmp.path().join("index.sqlite"),
            Duration::from_secs(60),
            logger,
        )
        .unwrap();
        let jobs = index.sender();
        let now = unix_now();
        jobs.send(Job::Add(vec![
            row("m1", "b", 0, 10, now - 120.0), // older than the TTL
            row("m1", "a", 1, 0, now),
            row("m2", "a", 1, 40, now),
            row("m1", "a", 2, 0, now),
            row("m1", "b", 1, 0, now),
        ]))
        .unwrap();
        let since = now - 60.0;
        assert_eq!(find(&jobs, "a", "m1", since), vec![(1, 0), (2, 0)]);
        assert_eq!(find(&jobs, "a", "m2", since), vec![(1, 40)]);
        assert_eq!(find(&jobs, "c", "m1", since), vec![]);
        jobs.send(Job::FilesDeleted {
            channel_id: "a".into(),
            through: 1,
        })
        .unwrap();
        assert_eq!(find(&jobs, "a", "m1", since), vec![(2, 0)]);
        assert_eq!(find(&jobs, "a", "m2", since), vec![]);
        jobs.send(Job::Forget("a".into())).unwrap();
        assert_eq!(find(&jobs, "a", "m1", since), vec![]);
        assert_eq!(find(&jobs, "b", "m1", since), vec![(1, 0)]);
        // A new channel "a" starts afresh.
        jobs.send(Job::Add(vec![row("m3", "a", 1, 0, now)]))
            .unwrap();
        assert_eq!(find(&jobs, "a", "m3", since), vec![(1, 0)]);
        drop(jobs);
        drop(index);

        // Reopened: the rows are still there, and the prune drops the old one.
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let path = tmp.path().join("index.sqlite");
        let index = Index::open(&path, Duration::from_secs(60), logger).unwrap();
        let jobs = index.sender();
        assert_eq!(find(&jobs, "b", "m1", 0.0), vec![(1, 0)]);
        drop(jobs);
        drop(index);
        let conn = Connection::open(&path).unwrap();
        let old: i64 = conn
            .query_row("SELECT count(*) FROM entries WHERE at < ?1", [since], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(old, 0);
    }
}
