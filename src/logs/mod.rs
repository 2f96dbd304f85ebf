//! Channel logs: what `GET /channels/{id}/logs` returns.
//!
//! For now an in-memory ring of the newest entries per channel (at level INFO and above, as
//! the original keeps); the on-disk, rotated log files come with the observability work.
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use junebug_actors::ports::{LogLevel, LogRecord};
use serde_json::{json, Value};

/// The newest log entries of every channel.
pub struct ChannelLogs {
    capacity: usize,
    rings: Mutex<HashMap<String, VecDeque<Value>>>,
}

impl ChannelLogs {
    /// Keeps at most `capacity` entries per channel.
    pub fn new(capacity: usize) -> Self {
        ChannelLogs {
            capacity: capacity.max(1),
            rings: Mutex::new(HashMap::new()),
        }
    }

    /// Adds an entry to a channel's log.
    pub fn push(&self, channel_id: &str, record: LogRecord) {
        if record.level < LogLevel::Info {
            return;
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let entry = json!({
            "logger": channel_id.to_lowercase(),
            "level": record.level as u8,
            "timestamp": timestamp,
            "message": record.message,
        });
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let ring = rings.entry(channel_id.to_owned()).or_default();
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// A channel's newest `n` entries, newest first.
    pub fn recent(&self, channel_id: &str, n: usize) -> Vec<Value> {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings
            .get(channel_id)
            .map(|ring| ring.iter().rev().take(n).cloned().collect())
            .unwrap_or_default()
    }

    /// Drops a deleted channel's entries.
    pub fn forget(&self, channel_id: &str) {
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings.remove(channel_id);
    }
}
