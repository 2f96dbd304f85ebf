//! Channel logs on disk: what `GET /channels/{id}/logs` and
//! `GET /channels/{id}/messages/{msg_id}/logs` serve, kept across restarts.
//!
//! **Files.** One log per channel, JSON lines, under `logging_path`:
//! `{logging_path}/{channel_id}/000001.jsonl`, `000002.jsonl`, … ([`files`]). A file is named
//! by a sequence number that only grows and is never renamed, so a line's place (file, byte
//! offset) stays valid until rotation deletes the file. When a line would take the current
//! file beyond `log_rotate_size` bytes the next file is started, and the oldest files beyond
//! `max_log_files` (the current one included; 0 keeps all) are deleted. After a restart
//! writing goes on in the newest file. Each line is
//! `{"level", "timestamp", "logger", "message", "message_ids", "direction"?, "trace"?}`:
//! the Python level number (10 DEBUG … 50 CRITICAL), unix seconds (float), the channel id,
//! the text, the ids of the messages it concerns (possibly none), `inbound`/`outbound` for
//! traffic, and a protocol trace (a PDU, an HTTP exchange). DEBUG entries are written too.
//!
//! **Writing** never blocks a producer: [`ChannelLogs::push`] stamps the entry and hands it,
//! owned and as made (its trace a `Value`), to the [`writer`] thread over a bounded queue.
//! The thread takes everything waiting as one batch: it redacts ([`redact`]), serialises each
//! entry as one line into its channel's pending lines, rotates, writes each file's lines with
//! one write, then sends the batch's index rows as one job. When the queue is full (the disk
//! cannot keep up) entries are dropped and the process log says how many. Entries still
//! queued when the process is killed are lost, at most a few milliseconds' worth; dropping
//! [`ChannelLogs`] writes them.
//!
//! Channel logs do not go through slog (the process log does): slog filters levels at
//! compile time (`debug!` is compiled out of release builds unless a `release_max_level_*`
//! feature says otherwise), which silently emptied the DEBUG entries (PDUs, sends) of release
//! builds; and its key-values are text, so every trace was printed, carried as a string and
//! parsed back on the writer thread. Here a level is a number in the entry, written in every
//! build, and a trace is serialised once, straight into the file's buffer.
//!
//! **Redaction** is central, in the writer: secret-named fields of traces, passwords in URLs,
//! secret-named query parameters and `name: value` pairs in text ([`redact`]). Producers may
//! log whole configs, PDUs and HTTP exchanges.
//!
//! **Reading the newest entries** reads the channel's files backwards from the end, 64 KiB at
//! a time, newest file first, and stops as soon as it has `n` entries at INFO or above (the
//! original Junebug keeps those only; DEBUG lines are skipped by their first bytes). There is
//! no copy in memory, so memory does not grow with channels, and whatever is on disk,
//! from before a restart too, is served. An entry shows once the writer has written it,
//! normally within a millisecond. The answer keeps the original's shape: `logger`, `level`,
//! `timestamp`, `message`.
//!
//! **Logs by message**: the writer sends the place of every line that names a message to the
//! [`index`] (`{logging_path}/index.sqlite`, its own thread, group commits), one job per
//! batch once its lines are in the files, so a message's entries are found by its id and
//! read at their offsets, never by scanning files. They come whole (with `message_ids`,
//! `direction`, `trace`), every level, in time order, for `outbound_message_ttl`; rows go
//! with their files, their channel or their age.
//!
//! **Deleting a channel** deletes its log files and index rows ([`ChannelLogs::forget`]): the
//! API cannot serve them any more (the channel is a 404) and nothing would ever rotate them
//! away. Entries that arrive for it afterwards (a callback still in flight) are dropped. At
//! start, [`ChannelLogs::retain`] deletes the logs of channels deleted meanwhile (by another
//! process sharing the store, say); a directory holding anything but log files is not ours
//! and is never touched.
pub mod files;
pub mod index;
pub mod redact;
pub mod writer;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use junebug_actors::ports::{LogLevel, LogRecord};
use serde::Deserialize;
use serde_json::{json, Value};

use files::Limits;
use index::Index;
use writer::{Entry, WriterHandle, DEBUG_PREFIX};

/// Entries queued for the writer; beyond that they are dropped and counted, so logging
/// never blocks a channel.
const QUEUE_SIZE: usize = 8192;

/// The name of the index file under `logging_path`.
pub const INDEX_FILE: &str = "index.sqlite";

/// Where the logs live and how they rotate (from the configuration).
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `logging_path`.
    pub path: PathBuf,
    /// `log_rotate_size`, bytes.
    pub rotate_size: u64,
    /// `max_log_files`, 0 = unlimited.
    pub max_files: u32,
    /// `outbound_message_ttl`: how long a message's entries can be looked up by its id.
    pub message_ttl: Duration,
}

/// Why the logs could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// `logging_path` cannot be created.
    #[error("cannot create the channel log directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The message index cannot be opened.
    #[error("cannot open the channel log index {path}: {detail}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The writer thread cannot be started.
    #[error("cannot start the channel log writer: {0}")]
    Writer(std::io::Error),
}

/// The channel logs: writing (asynchronous), reading, deleting.
pub struct ChannelLogs {
    /// Feeds the writer thread. Declared first: dropping it writes what is queued and joins
    /// the writer before the index (whose rows the writer sends) shuts down.
    writer: WriterHandle,
    index: Index,
    root: PathBuf,
    message_ttl: Duration,
}

/// What `GET /channels/{id}/logs` shows of an entry (the original's shape).
#[derive(Deserialize)]
struct Brief {
    logger: String,
    level: u8,
    timestamp: f64,
    message: String,
}

/// An entry for the channel logs endpoint, if it is at INFO or above.
fn brief(line: &[u8]) -> Option<Value> {
    if line.starts_with(DEBUG_PREFIX) {
        return None;
    }
    let entry: Brief = serde_json::from_slice(line).ok()?;
    (entry.level >= LogLevel::Info as u8).then(|| {
        json!({
            "logger": entry.logger,
            "level": entry.level,
            "timestamp": entry.timestamp,
            "message": entry.message,
        })
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl ChannelLogs {
    /// Opens the logs under `settings.path` (creating it) and starts the writer and index
    /// threads. Failures to write later go to `process` (the process log).
    pub fn open(settings: LogSettings, process: slog::Logger) -> Result<ChannelLogs, LogsError> {
        Self::open_with_queue(settings, process, QUEUE_SIZE)
    }

    /// [`ChannelLogs::open`] with room for `queue_size` entries in the writer's queue.
    fn open_with_queue(
        settings: LogSettings,
        process: slog::Logger,
        queue_size: usize,
    ) -> Result<ChannelLogs, LogsError> {
        let root = settings.path;
        std::fs::create_dir_all(&root).map_err(|source| LogsError::Directory {
            path: root.clone(),
            source,
        })?;
        let index_path = root.join(INDEX_FILE);
        let index =
            Index::open(&index_path, settings.message_ttl, process.clone()).map_err(|detail| {
                LogsError::Index {
                    path: index_path,
                    detail,
                }
            })?;
        let writer = WriterHandle::start(
            root.clone(),
            Limits {
                rotate_size: settings.rotate_size.max(1),
                max_files: settings.max_files,
            },
            queue_size,
            index.sender(),
            process,
        )
        .map_err(LogsError::Writer)?;
        Ok(ChannelLogs {
            writer,
            index,
            root,
            message_ttl: settings.message_ttl,
        })
    }

    /// Adds an entry to a channel's log (written asynchronously, at every level, in every
    /// build), or drops and counts it when the writer is behind.
    pub fn push(&self, channel_id: &str, record: LogRecord) {
        self.writer.push(Entry {
            channel_id: channel_id.to_owned(),
            timestamp: unix_now(),
            record,
        });
    }

    /// A channel's newest `n` entries at INFO and above, newest first (every entry pushed
    /// before the call among them).
    pub async fn recent(&self, channel_id: &str, n: usize) -> Vec<Value> {
        let Some(dir) = files::channel_dir(&self.root, channel_id) else {
            return Vec::new();
        };
        self.writer.sync().await;
        tokio::task::spawn_blocking(move || files::newest(&dir, n, brief))
            .await
            .unwrap_or_default()
    }

    /// Every entry about message `message_id` in a channel's log (at every level, whole),
    /// oldest first, within `outbound_message_ttl` (every entry pushed before the call
    /// among them).
    pub async fn for_message(&self, channel_id: &str, message_id: &str) -> Vec<Value> {
        let Some(dir) = files::channel_dir(&self.root, channel_id) else {
            return Vec::new();
        };
        let jobs = self.index.sender();
        let since = unix_now() - self.message_ttl.as_secs_f64();
        let (channel_id, message_id) = (channel_id.to_owned(), message_id.to_owned());
        self.writer.sync().await;
        tokio::task::spawn_blocking(move || {
            let locations = index::find(&jobs, &channel_id, &message_id, since);
            let mut entries: Vec<Value> = files::read_at(&dir, &locations)
                .iter()
                .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
                .filter(|entry| {
                    entry["message_ids"]
                        .as_array()
                        .is_some_and(|ids| ids.iter().any(|id| id == message_id.as_str()))
                })
                .collect();
            let at = |entry: &Value| entry["timestamp"].as_f64().unwrap_or_default();
            entries.sort_by(|a, b| at(a).total_cmp(&at(b)));
            entries
        })
        .await
        .unwrap_or_default()
    }

    /// Deletes a deleted channel's log: its files and index rows go (after the writer's
    /// current batch), and its entries still queued or still to come are dropped.
    pub fn forget(&self, channel_id: &str) {
        self.writer.forget(channel_id);
    }

    /// Deletes the logs of channels not among `channel_ids` (deleted while this process was
    /// not running, or by another process) as [`ChannelLogs::forget`] does: call it at start.
    pub fn retain<'a>(&self, channel_ids: impl IntoIterator<Item = &'a str>) {
        let keep: HashSet<&str> = channel_ids.into_iter().collect();
        let Ok(dirs) = files::channel_dirs(&self.root) else {
            return;
        };
        for (channel_id, _) in dirs {
            if !keep.contains(channel_id.as_str()) {
                self.forget(&channel_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junebug_actors::ports::Direction;
    use std::sync::{Arc, Mutex};

    const CHANNEL: &str = "0b7e5e8c-6a4e-4b8e-9a53-8d2b6f0e6c11";

    fn settings(dir: &std::path::Path, rotate_size: u64, max_files: u32) -> LogSettings {
        LogSettings {
            path: dir.join("logs"),
            rotate_size,
            max_files,
            message_ttl: Duration::from_secs(3600),
        }
    }

    fn open(settings: &LogSettings) -> ChannelLogs {
        ChannelLogs::open(
            settings.clone(),
            slog::Logger::root(slog::Discard, slog::o!()),
        )
        .expect("logs open")
    }

    fn log_files(settings: &LogSettings) -> Vec<PathBuf> {
        channel_files(settings, CHANNEL)
    }

    fn channel_files(settings: &LogSettings, channel_id: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(settings.path.join(channel_id))
            .map(|dir| dir.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// A read sees every entry pushed before it, although the writer lets entries gather
    /// before writing them: the read waits for the writer to catch up with it.
    #[actix_rt::test]
    async fn reads_see_the_entries_pushed_before_them() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = open(&settings(tmp.path(), 1_000_000, 5));
        for n in 0..3 {
            logs.push(CHANNEL, LogRecord::info(format!("line {n}")).about("m1"));
            let recent = logs.recent(CHANNEL, 10).await;
            assert_eq!(recent.len(), n + 1, "{recent:?}");
            assert_eq!(recent[0]["message"], format!("line {n}"));
            assert_eq!(logs.for_message(CHANNEL, "m1").await.len(), n + 1);
        }
    }

    /// Entries are written whole, redacted, at every level; the endpoint's view shows INFO
    /// and above, newest first, in the original's shape; by message, every level, oldest
    /// first; all of it survives reopening.
    #[actix_rt::test]
    async fn entries_survive_reopening_and_are_found_by_message() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = settings(tmp.path(), 1_000_000, 5);
        let logs = open(&settings);
        logs.push(CHANNEL, LogRecord::info("Started"));
        logs.push(
            CHANNEL,
            LogRecord::debug("submit_sm")
                .about("m1")
                .going(Direction::Outbound)
                .with_trace(json!({"pdu": {"password": "hunter2", "short_message": "hi"}})),
        );
        logs.push(
            CHANNEL,
            LogRecord::warning("POST http://u:hunter3@h/x?token=t0p failed").about("m2"),
        );
        logs.push(
            CHANNEL,
            LogRecord::info("Message sent").about("m1").about("m2"),
        );
        drop(logs); // flushes

        let text: String = log_files(&settings)
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        assert!(!text.contains("hunter"), "{text}");
        assert!(!text.contains("t0p"), "{text}");
        assert_eq!(text.lines().count(), 4, "{text}");
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["level"], 20);
        assert_eq!(first["logger"], CHANNEL);
        assert_eq!(first["message_ids"], json!([]));
        assert!(first.get("trace").is_none() && first.get("direction").is_none());

        let logs = open(&settings);
        let recent = logs.recent(CHANNEL, 10).await;
        let messages: Vec<&str> = recent
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .collect();
        assert_eq!(
            messages,
            [
                "Message sent",
                "POST http://u:***@h/x?token=*** failed",
                "Started"
            ]
        );
        let mut keys: Vec<&String> = recent[0].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["level", "logger", "message", "timestamp"]);
        assert!(recent[0]["timestamp"].is_f64());
        assert_eq!(logs.recent(CHANNEL, 1).await.len(), 1);
        assert!(logs.recent("other", 10).await.is_empty());

        let m1 = logs.for_message(CHANNEL, "m1").await;
        let m1_messages: Vec<&str> = m1.iter().map(|e| e["message"].as_str().unwrap()).collect();
        assert_eq!(m1_messages, ["submit_sm", "Message sent"]);
        assert_eq!(m1[0]["level"], 10);
        assert_eq!(m1[0]["direction"], "outbound");
        assert_eq!(m1[0]["trace"]["pdu"]["password"], "***");
        assert_eq!(m1[0]["trace"]["pdu"]["short_message"], "hi");
        assert_eq!(logs.for_message(CHANNEL, "m2").await.len(), 2);
        assert!(logs.for_message(CHANNEL, "m3").await.is_empty());
        assert!(logs.for_message("other", "m1").await.is_empty());

        // Written after the restart: into the same file, and found by message too.
        logs.push(CHANNEL, LogRecord::info("Again").about("m1"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while logs.for_message(CHANNEL, "m1").await.len() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the entry is never indexed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(log_files(&settings).len(), 1);
    }

    /// Rotation keeps at most `max_log_files` files; the newest entries are still served, and
    /// lookups by message leave out what rotation deleted.
    #[actix_rt::test]
    async fn rotation_bounds_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = settings(tmp.path(), 600, 3);
        let logs = open(&settings);
        for n in 0..100 {
            logs.push(
                CHANNEL,
                LogRecord::info(format!("entry {n}")).about(format!("m{n}")),
            );
        }
        drop(logs);
        let files = log_files(&settings);
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(files
            .iter()
            .all(|f| std::fs::metadata(f).unwrap().len() <= 600));

        let logs = open(&settings);
        let recent = logs.recent(CHANNEL, 5).await;
        let messages: Vec<&str> = recent
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .collect();
        assert_eq!(
            messages,
            ["entry 99", "entry 98", "entry 97", "entry 96", "entry 95"]
        );
        assert_eq!(logs.for_message(CHANNEL, "m99").await.len(), 1);
        assert!(logs.for_message(CHANNEL, "m0").await.is_empty());
    }

    /// Forgetting a channel deletes its files; later entries for it are dropped; `retain`
    /// deletes the logs of channels that are gone.
    #[actix_rt::test]
    async fn forgetting_deletes_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = settings(tmp.path(), 1_000_000, 5);
        let logs = open(&settings);
        logs.push(CHANNEL, LogRecord::info("one").about("m1"));
        logs.push("kept", LogRecord::info("two"));
        logs.push("gone", LogRecord::info("three"));
        logs.forget(CHANNEL);
        logs.push(CHANNEL, LogRecord::info("late"));
        drop(logs);
        assert!(!settings.path.join(CHANNEL).exists());

        let logs = open(&settings);
        assert!(logs.for_message(CHANNEL, "m1").await.is_empty());
        logs.retain(["kept", CHANNEL]);
        drop(logs);
        assert!(settings.path.join("kept").exists());
        assert!(!settings.path.join("gone").exists());
        assert!(settings.path.join(INDEX_FILE).exists());
    }

    /// The messages of a channel's lines, in file order.
    fn written_messages(settings: &LogSettings, channel_id: &str) -> Vec<String> {
        channel_files(settings, channel_id)
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()["message"].to_string())
                    .collect::<Vec<_>>()
            })
            .map(|m| m.trim_matches('"').to_owned())
            .collect()
    }

    /// A process log that keeps every message with its `count`, if any.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Report>>>);

    /// A process log message and its `count`.
    type Report = (String, Option<u64>);

    impl slog::Drain for Recorder {
        type Ok = ();
        type Err = slog::Never;

        fn log(&self, record: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
            struct Count(Option<u64>);
            impl slog::Serializer for Count {
                fn emit_arguments(
                    &mut self,
                    key: slog::Key,
                    val: &std::fmt::Arguments<'_>,
                ) -> slog::Result {
                    if key == "count" {
                        self.0 = val.to_string().parse().ok();
                    }
                    Ok(())
                }
            }
            let mut count = Count(None);
            let _ = slog::KV::serialize(&record.kv(), record, &mut count);
            self.0
                .lock()
                .unwrap()
                .push((record.msg().to_string(), count.0));
            Ok(())
        }
    }

    /// DEBUG entries (PDUs, sends) are written and found by message: levels are data, not
    /// slog's compile-time filter, so this holds in release builds as well.
    #[actix_rt::test]
    async fn debug_entries_are_written_and_found_by_message() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = settings(tmp.path(), 1_000_000, 5);
        let logs = open(&settings);
        logs.push(
            CHANNEL,
            LogRecord::debug("deliver_sm")
                .about("m1")
                .going(Direction::Inbound)
                .with_trace(json!({"pdu": {"short_message": "hi"}})),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let found = loop {
            let found = logs.for_message(CHANNEL, "m1").await;
            if !found.is_empty() {
                break found;
            }
            assert!(std::time::Instant::now() < deadline, "never indexed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["level"], 10);
        assert_eq!(found[0]["direction"], "inbound");
        assert_eq!(found[0]["trace"]["pdu"]["short_message"], "hi");
        // Not among what the channel's logs endpoint shows, but on disk, DEBUG_PREFIX first.
        assert!(logs.recent(CHANNEL, 10).await.is_empty());
        let text = std::fs::read(&log_files(&settings)[0]).unwrap();
        assert!(text.starts_with(DEBUG_PREFIX));
    }

    /// A burst larger than the queue does not block the producer: what does not fit is
    /// dropped, and the process log gets the count; everything else is written.
    #[actix_rt::test]
    async fn a_burst_beyond_the_queue_is_dropped_and_reported() {
        const BURST: usize = 20_000;
        let tmp = tempfile::tempdir().unwrap();
        let settings = settings(tmp.path(), 100_000_000, 0);
        let process = Recorder::default();
        let logs = ChannelLogs::open_with_queue(
            settings.clone(),
            slog::Logger::root(process.clone(), slog::o!()),
            4,
        )
        .unwrap();
        for n in 0..BURST {
            logs.push(CHANNEL, LogRecord::debug(format!("entry {n}")));
        }
        drop(logs); // writes what was queued, reports the last drops

        let written = written_messages(&settings, CHANNEL).len();
        let reports = process.0.lock().unwrap().clone();
        let reported: u64 = reports
            .iter()
            .filter(|(message, _)| message.starts_with("Channel log entries were dropped"))
            .map(|(_, count)| count.expect("a count"))
            .sum();
        assert!(reported > 0, "{reports:?}");
        assert_eq!(written + reported as usize, BURST, "{reports:?}");
    }

    /// Entries of channels written in the same batches keep each channel's order, in the
    /// files and by message.
    #[actix_rt::test]
    async fn batches_keep_each_channels_order() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = settings(tmp.path(), 1_000_000, 5);
        let logs = open(&settings);
        let expected: Vec<String> = (0..1000).map(|n| format!("entry {n}")).collect();
        for message in &expected {
            for channel in [CHANNEL, "other"] {
                logs.push(channel, LogRecord::info(message.clone()).about("m1"));
            }
        }
        drop(logs);
        for channel in [CHANNEL, "other"] {
            assert_eq!(written_messages(&settings, channel), expected, "{channel}");
        }
        let logs = open(&settings);
        let found = logs.for_message("other", "m1").await;
        let messages: Vec<&str> = found
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .collect();
        assert_eq!(messages, expected);
    }
}
