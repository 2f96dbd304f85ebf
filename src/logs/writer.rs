//! The writer: a [`slog::Drain`] run by slog-async on a thread of its own. It turns each
//! record into one redacted JSON line in its channel's current file, rotates, and sends the
//! line's place to the index for every message the entry concerns.
//!
//! Records carry their entry as key-values (see the `KEY_*` names); a record with
//! [`KEY_FORGET`] instead deletes a channel's log, in order with the entries before it. A
//! record without a channel is slog-async's own report of entries dropped because the queue
//! was full: it goes to the process log.
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use slog::{Drain, Never, OwnedKVList, Record, KV};

use super::files::{self, Appender, Limits};
use super::index::{Job, Row};
use super::redact::{redact_json, redact_text};

/// The channel id.
pub const KEY_CHANNEL: &str = "junebug_channel";
/// The Python level number.
pub const KEY_LEVEL: &str = "junebug_level";
/// Unix seconds when the entry was made.
pub const KEY_TIMESTAMP: &str = "junebug_timestamp";
/// The message ids, a JSON array (empty: none).
pub const KEY_MESSAGE_IDS: &str = "junebug_message_ids";
/// `inbound` or `outbound` (empty: none).
pub const KEY_DIRECTION: &str = "junebug_direction";
/// The trace as JSON text (empty: none).
pub const KEY_TRACE: &str = "junebug_trace";
/// Deletes the log of this channel.
pub const KEY_FORGET: &str = "junebug_forget";

/// Log files kept open at once; the idlest is closed beyond that, so thousands of channels
/// do not take thousands of file descriptors.
const MAX_OPEN_FILES: usize = 128;

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
    direction: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<&'a Value>,
}

/// How every DEBUG line starts.
pub const DEBUG_PREFIX: &[u8] = b"{\"level\":10,";

/// The key-values of one record.
#[derive(Default)]
struct Fields {
    channel: Option<String>,
    level: Option<u8>,
    timestamp: Option<f64>,
    message_ids: String,
    direction: String,
    trace: String,
    forget: Option<String>,
    count: Option<String>,
}

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let text = val.to_string();
        match key {
            KEY_CHANNEL => self.channel = Some(text),
            KEY_LEVEL => self.level = text.parse().ok(),
            KEY_TIMESTAMP => self.timestamp = text.parse().ok(),
            KEY_MESSAGE_IDS => self.message_ids = text,
            KEY_DIRECTION => self.direction = text,
            KEY_TRACE => self.trace = text,
            KEY_FORGET => self.forget = Some(text),
            "count" => self.count = Some(text),
            _ => {}
        }
        Ok(())
    }
}

/// What the writer thread owns.
struct State {
    appenders: HashMap<String, Appender>,
    open_files: usize,
    /// Ticks once per line: when each appender was last used.
    clock: u64,
}

/// The drain that writes the channel log files.
pub struct Writer {
    root: PathBuf,
    limits: Limits,
    state: Mutex<State>,
    index: mpsc::SyncSender<Job>,
    /// Channels deleted in this process: their late entries are dropped, not written into a
    /// directory nobody reads or rotates any more.
    forgotten: Arc<Mutex<HashSet<String>>>,
    process: slog::Logger,
}

impl Writer {
    /// A writer of the files under `root`.
    pub fn new(
        root: PathBuf,
        limits: Limits,
        index: mpsc::SyncSender<Job>,
        forgotten: Arc<Mutex<HashSet<String>>>,
        process: slog::Logger,
    ) -> Self {
        Writer {
            root,
            limits,
            state: Mutex::new(State {
                appenders: HashMap::new(),
                open_files: 0,
                clock: 0,
            }),
            index,
            forgotten,
            process,
        }
    }

    fn write(&self, channel_id: &str, fields: Fields, message: &str) {
        let Some(dir) = files::channel_dir(&self.root, channel_id) else {
            return;
        };
        let message_ids: Vec<String> = match fields.message_ids.as_str() {
            "" => Vec::new(),
            ids => serde_json::from_str(ids).unwrap_or_default(),
        };
        let mut trace: Option<Value> = match fields.trace.as_str() {
            "" => None,
            text => Some(serde_json::from_str(text).unwrap_or(Value::String(text.to_owned()))),
        };
        if let Some(trace) = &mut trace {
            redact_json(trace);
        }
        let redacted = redact_text(message);
        let timestamp = fields.timestamp.unwrap_or_default();
        let logger = channel_id.to_lowercase();
        let line = Line {
            level: fields.level.unwrap_or(20),
            timestamp,
            logger: &logger,
            message: redacted.as_deref().unwrap_or(message),
            message_ids: &message_ids,
            direction: Some(fields.direction.as_str()).filter(|d| !d.is_empty()),
            trace: trace.as_ref(),
        };
        let Ok(mut bytes) = serde_json::to_vec(&line) else {
            return;
        };
        bytes.push(b'\n');

        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State {
            appenders,
            open_files,
            clock,
        } = &mut *state;
        *clock += 1;
        if !appenders.contains_key(channel_id) {
            match Appender::resume(dir.clone()) {
                Ok(appender) => {
                    appenders.insert(channel_id.to_owned(), appender);
                }
                Err(e) => {
                    slog::error!(self.process, "Cannot write a channel log";
                        "channel_id" => channel_id, "dir" => %dir.display(), "error" => %e);
                    return;
                }
            }
        }
        let was_open = appenders.get(channel_id).is_some_and(Appender::is_open);
        if !was_open && *open_files >= MAX_OPEN_FILES {
            let idlest = appenders
                .values_mut()
                .filter(|a| a.is_open())
                .min_by_key(|a| a.last_used);
            if let Some(idlest) = idlest {
                idlest.close();
                *open_files -= 1;
            }
        }
        let Some(appender) = appenders.get_mut(channel_id) else {
            return;
        };
        appender.last_used = *clock;
        let written = appender.append(&bytes, self.limits);
        *open_files = (*open_files + usize::from(appender.is_open())) - usize::from(was_open);
        let written = match written {
            Ok(written) => {
                appender.failing = false;
                written
            }
            Err(e) => {
                if !appender.failing {
                    appender.failing = true;
                    slog::error!(self.process, "Cannot write a channel log";
                        "channel_id" => channel_id, "dir" => %dir.display(), "error" => %e);
                }
                return;
            }
        };
        drop(state);
        if let Some(through) = written.deleted_through {
            let _ = self.index.send(Job::FilesDeleted {
                channel_id: channel_id.to_owned(),
                through,
            });
        }
        if !message_ids.is_empty() {
            let rows = message_ids
                .into_iter()
                .map(|message_id| Row {
                    message_id,
                    channel_id: channel_id.to_owned(),
                    seq: written.seq,
                    offset: written.offset,
                    at: timestamp,
                })
                .collect();
            let _ = self.index.send(Job::Add(rows));
        }
    }

    /// Deletes a channel's files and index rows.
    fn forget(&self, channel_id: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(appender) = state.appenders.remove(channel_id) {
            if appender.is_open() {
                state.open_files -= 1;
            }
        }
        drop(state);
        if let Some(dir) = files::channel_dir(&self.root, channel_id) {
            if let Err(e) = files::remove_channel(&dir) {
                slog::warn!(self.process, "Cannot delete a channel's log files";
                    "channel_id" => channel_id, "error" => %e);
            }
        }
        let _ = self.index.send(Job::Forget(channel_id.to_owned()));
    }
}

impl Drain for Writer {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record<'_>, _: &OwnedKVList) -> Result<(), Never> {
        let mut fields = Fields::default();
        let _ = record.kv().serialize(record, &mut fields);
        if let Some(channel_id) = fields.forget.take() {
            self.forget(&channel_id);
            return Ok(());
        }
        let Some(channel_id) = fields.channel.take() else {
            slog::warn!(self.process, "Channel log entries were dropped: the log writer could not keep up";
                "count" => fields.count.unwrap_or_default());
            return Ok(());
        };
        let forgotten = self
            .forgotten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&channel_id);
        if !forgotten {
            self.write(&channel_id, fields, &record.msg().to_string());
        }
        Ok(())
    }
}
