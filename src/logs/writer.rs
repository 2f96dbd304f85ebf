//! The writer: a thread of its own that owns the channel log files. Producers hand it owned
//! entries over a bounded queue ([`WriterHandle::push`], never blocking: a full queue drops
//! the entry and counts it); the thread takes everything waiting as one batch, redacts each
//! entry, serialises it as one JSON line into its channel's pending lines, rotates, then
//! writes each file's lines with one write, and only then sends the batch's index rows as one
//! job, so a lookup never finds a row whose line is not in the file yet.
//!
//! Deleting a channel's log ([`WriterHandle::forget`]) does not travel in the queue, where it
//! could be dropped: it is noted beside it and done by the thread after the batch in which it
//! sees it; from then on the channel's entries are dropped.
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use junebug_actors::ports::LogRecord;
use serde::Serialize;
use serde_json::Value;

use super::files::{self, Appender, Limits};
use super::index::{Job, Row};
use super::redact::{redact_json, redact_text};

/// Log files kept open at once; the idlest is closed beyond that, so thousands of channels
/// do not take thousands of file descriptors.
const MAX_OPEN_FILES: usize = 128;

/// Entries one batch takes at most, so a producer faster than the disk still sees its
/// entries written (and indexed) every few milliseconds.
const MAX_BATCH: usize = 4096;

/// How long the thread lets entries gather once one arrives. Busy channels log several
/// entries per message: written one wake-up each, they cost a thread switch, a file write
/// and an index transaction apiece; gathered, one of each per few milliseconds. Logs are
/// read by people and by `GET …/logs`, for whom a few milliseconds are nothing.
const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// How every DEBUG line starts.
pub const DEBUG_PREFIX: &[u8] = b"{\"level\":10,";

/// One entry on its way to a channel's log, owned, as the producer made it.
pub struct Entry {
    /// The channel whose log it goes to.
    pub channel_id: String,
    /// Unix seconds, taken when it was pushed.
    pub timestamp: f64,
    /// The entry itself, its trace untouched until the writer redacts it.
    pub record: LogRecord,
}

/// One line of a log file. `level` comes first, so readers can skip DEBUG lines by their
/// first bytes without parsing them ([`DEBUG_PREFIX`]).
#[derive(Serialize)]
struct Line<'a> {
    level: u8,
    timestamp: f64,
    logger: &'a str,
    message: &'a str,
    message_ids: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<&'a Value>,
}

/// What producers and the writer thread share besides the queue.
#[derive(Default)]
struct Shared {
    /// Entries dropped because the queue was full, not reported yet.
    dropped: AtomicU64,
    /// Channels whose log is to be deleted, not seen by the thread yet.
    forgets: Mutex<Vec<String>>,
}

/// What goes through the queue.
enum Command {
    /// An entry to write.
    Write(Entry),
    /// Wakes the thread for a forget noted in [`Shared::forgets`].
    Wake,
    /// Answered once every entry queued before it is written and its index rows are sent.
    Sync(tokio::sync::oneshot::Sender<()>),
}

/// The producers' side of the writer thread. Dropping it writes what is queued and waits for
/// the thread.
pub struct WriterHandle {
    queue: Option<mpsc::SyncSender<Command>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl WriterHandle {
    /// Starts the writer of the files under `root`, with room for `queue_size` entries;
    /// rows go to `index`, failures and drops to `process` (the process log).
    pub fn start(
        root: PathBuf,
        limits: Limits,
        queue_size: usize,
        index: mpsc::SyncSender<Job>,
        process: slog::Logger,
    ) -> io::Result<WriterHandle> {
        let (queue, inbox) = mpsc::sync_channel(queue_size);
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            root,
            limits,
            appenders: HashMap::new(),
            open_files: 0,
            clock: 0,
            forgotten: HashSet::new(),
            line: Vec::new(),
            index,
            shared: shared.clone(),
            process,
        };
        let thread = std::thread::Builder::new()
            .name("junebug-channel-logs".into())
            .spawn(move || writer.run(&inbox))?;
        Ok(WriterHandle {
            queue: Some(queue),
            shared,
            thread: Some(thread),
        })
    }

    /// Queues an entry, or drops and counts it when the queue is full.
    pub fn push(&self, entry: Entry) {
        let Some(queue) = &self.queue else {
            return;
        };
        if let Err(mpsc::TrySendError::Full(_)) = queue.try_send(Command::Write(entry)) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Returns once every entry pushed before the call is in its file and its index rows are
    /// on their way to the index (ahead of any lookup sent after this returns), so a read
    /// sees what was logged before it.
    pub async fn sync(&self) {
        let Some(queue) = &self.queue else {
            return;
        };
        let (reply, done) = tokio::sync::oneshot::channel();
        let mut command = Command::Sync(reply);
        loop {
            match queue.try_send(command) {
                Ok(()) => break,
                // A full queue means a busy writer: try again shortly.
                Err(mpsc::TrySendError::Full(back)) => {
                    command = back;
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Err(mpsc::TrySendError::Disconnected(_)) => return,
            }
        }
        let _ = done.await; // an error: the thread is gone, nothing more will be written
    }

    /// Deletes a channel's files and index rows, after the entries written so far; its
    /// entries still queued or still to come are dropped.
    pub fn forget(&self, channel_id: &str) {
        self.shared
            .forgets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(channel_id.to_owned());
        // A full queue wakes the thread anyway.
        if let Some(queue) = &self.queue {
            let _ = queue.try_send(Command::Wake);
        }
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the writer thread owns.
struct Writer {
    root: PathBuf,
    limits: Limits,
    appenders: HashMap<String, Appender>,
    open_files: usize,
    /// Ticks once per line: when each appender was last used.
    clock: u64,
    /// Channels deleted in this process: their late entries are dropped, not written into a
    /// directory nobody reads or rotates any more.
    forgotten: HashSet<String>,
    /// The line being made, kept to spare an allocation per line.
    line: Vec<u8>,
    index: mpsc::SyncSender<Job>,
    shared: Arc<Shared>,
    process: slog::Logger,
}

/// What a batch leaves for the index.
#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    /// Per channel, the newest file rotation deleted.
    deleted: HashMap<String, u64>,
    /// Channels with appenders holding lines to write.
    dirty: Vec<String>,
    /// Channels whose lines of this batch may not all be in their file: their rows are not
    /// sent.
    failed: HashSet<String>,
}

impl Writer {
    fn run(mut self, inbox: &mpsc::Receiver<Command>) {
        let mut commands = Vec::new();
        // Ends once every handle is dropped and the queue is empty.
        while let Ok(first) = inbox.recv() {
            // Entries gather; a reader waiting for them does not.
            let gather = !matches!(first, Command::Sync(_));
            commands.push(first);
            if gather {
                std::thread::sleep(GATHER);
            }
            commands.extend(std::iter::from_fn(|| inbox.try_recv().ok()).take(MAX_BATCH - 1));
            self.run_batch(&mut commands);
        }
        self.run_batch(&mut commands);
    }

    /// Writes a batch, sends its index rows, then does the forgets noted meanwhile.
    fn run_batch(&mut self, commands: &mut Vec<Command>) {
        let forgets = std::mem::take(
            &mut *self
                .shared
                .forgets
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        self.forgotten.extend(forgets.iter().cloned());
        let mut batch = Batch::default();
        let mut syncs = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Write(entry) => self.write(entry, &mut batch),
                Command::Sync(reply) => syncs.push(reply),
                Command::Wake => {}
            }
        }
        for channel_id in std::mem::take(&mut batch.dirty) {
            let Some(appender) = self.appenders.get_mut(&channel_id) else {
                continue;
            };
            let was_open = appender.is_open();
            let flushed = appender.flush();
            // A failed write closes the file.
            self.open_files -= usize::from(was_open && !appender.is_open());
            self.outcome(&channel_id, flushed, &mut batch);
        }
        let Batch {
            mut rows,
            deleted,
            failed,
            ..
        } = batch;
        if !failed.is_empty() {
            rows.retain(|row| !failed.contains(&row.channel_id));
        }
        if !rows.is_empty() {
            let _ = self.index.send(Job::Add(rows));
        }
        // After the rows: those of lines in the deleted files go too.
        for (channel_id, through) in deleted {
            let _ = self.index.send(Job::FilesDeleted {
                channel_id,
                through,
            });
        }
        for channel_id in forgets {
            self.forget(&channel_id);
        }
        for reply in syncs {
            let _ = reply.send(()); // the reader may have given up
        }
        let dropped = self.shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            slog::warn!(self.process, "Channel log entries were dropped: the log writer could not keep up";
                "count" => dropped);
        }
    }

    /// Adds an entry's line to its channel's pending lines, and its rows to the batch.
    fn write(&mut self, entry: Entry, batch: &mut Batch) {
        let Entry {
            channel_id,
            timestamp,
            mut record,
        } = entry;
        if channel_id.is_empty() || self.forgotten.contains(&channel_id) {
            return;
        }
        if let Some(trace) = &mut record.trace {
            redact_json(trace);
        }
        let redacted = redact_text(&record.message);
        // Mostly a lowercase UUID already: then no copy.
        let logger = if channel_id.chars().any(char::is_uppercase) {
            Cow::Owned(channel_id.to_lowercase())
        } else {
            Cow::Borrowed(channel_id.as_str())
        };
        let line = Line {
            level: record.level as u8,
            timestamp,
            logger: &logger,
            message: redacted.as_deref().unwrap_or(&record.message),
            message_ids: &record.message_ids,
            direction: record.direction.map(|d| d.as_str()),
            trace: record.trace.as_ref(),
        };
        self.line.clear();
        if serde_json::to_writer(&mut self.line, &line).is_err() {
            return;
        }
        self.line.push(b'\n');

        if !self.make_ready(&channel_id, batch) {
            return;
        }
        let Some(appender) = self.appenders.get_mut(&channel_id) else {
            return;
        };
        let was_dirty = appender.is_dirty();
        let was_open = appender.is_open();
        let appended = appender.append(&self.line, self.limits);
        let (dirty, open) = (appender.is_dirty(), appender.is_open());
        self.open_files = (self.open_files + usize::from(open)) - usize::from(was_open);
        if dirty && !was_dirty {
            batch.dirty.push(channel_id.clone());
        }
        let Some(written) = self.outcome(&channel_id, appended, batch) else {
            return;
        };
        if let Some(through) = written.deleted_through {
            batch.deleted.insert(channel_id.clone(), through);
        }
        batch
            .rows
            .extend(record.message_ids.into_iter().map(|message_id| Row {
                message_id,
                channel_id: channel_id.clone(),
                seq: written.seq,
                offset: written.offset,
                at: timestamp,
            }));
    }

    /// Readies a channel's appender for a line: made (taking up its newest file) if it has
    /// none yet, marked as used, and room made for its file to open: the idlest open one is
    /// closed beyond [`MAX_OPEN_FILES`]. Whether it has one.
    fn make_ready(&mut self, channel_id: &str, batch: &mut Batch) -> bool {
        self.clock += 1;
        if !self.appenders.contains_key(channel_id) {
            let Some(dir) = files::channel_dir(&self.root, channel_id) else {
                return false;
            };
            match Appender::resume(dir.clone()) {
                Ok(appender) => {
                    self.appenders.insert(channel_id.to_owned(), appender);
                }
                Err(e) => {
                    slog::error!(self.process, "Cannot write a channel log";
                        "channel_id" => channel_id, "dir" => %dir.display(), "error" => %e);
                    return false;
                }
            }
        }
        let is_open = self
            .appenders
            .get(channel_id)
            .is_some_and(Appender::is_open);
        if !is_open && self.open_files >= MAX_OPEN_FILES {
            let idlest = self
                .appenders
                .iter_mut()
                .filter(|(_, a)| a.is_open())
                .min_by_key(|(_, a)| a.last_used)
                .map(|(id, a)| (id.clone(), a.close()));
            if let Some((idlest, closed)) = idlest {
                self.open_files -= 1;
                self.outcome(&idlest, closed, batch);
            }
        }
        let clock = self.clock;
        self.appenders
            .get_mut(channel_id)
            .map(|appender| appender.last_used = clock)
            .is_some()
    }

    /// What came of writing to a channel's file: a failure is reported once per run of
    /// failures, and the channel's rows of this batch are not sent.
    fn outcome<T>(
        &mut self,
        channel_id: &str,
        result: io::Result<T>,
        batch: &mut Batch,
    ) -> Option<T> {
        let appender = self.appenders.get_mut(channel_id)?;
        match result {
            Ok(value) => {
                appender.failing = false;
                Some(value)
            }
            Err(e) => {
                if !appender.failing {
                    appender.failing = true;
                    let dir = files::channel_dir(&self.root, channel_id).unwrap_or_default();
                    slog::error!(self.process, "Cannot write a channel log";
                        "channel_id" => channel_id, "dir" => %dir.display(), "error" => %e);
                }
                batch.failed.insert(channel_id.to_owned());
                None
            }
        }
    }

    /// Deletes a channel's files and index rows.
    fn forget(&mut self, channel_id: &str) {
        if let Some(appender) = self.appenders.remove(channel_id) {
            if appender.is_open() {
                self.open_files -= 1;
            }
        }
        if let Some(dir) = files::channel_dir(&self.root, channel_id) {
            if let Err(e) = files::remove_channel(&dir) {
                slog::warn!(self.process, "Cannot delete a channel's log files";
                    "channel_id" => channel_id, "error" => %e);
            }
        }
        let _ = self.index.send(Job::Forget(channel_id.to_owned()));
    }
}
