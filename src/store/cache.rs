//! [`ChannelCache`]: channel properties kept in memory for the per-message path.
//!
//! Every send, event, inbound message and status needs its channel's properties (to check
//! the channel exists, read `character_limit`, `callback_secret`, `mo_url` …). Reading them
//! from the Store each time was one backend round trip and one JSON parse per use, several
//! per message. The cache keeps each channel's properties for at most [`FRESH_FOR`]:
//!
//! - changes made through this process ([`ChannelCache::saved`], [`ChannelCache::forget`])
//!   are seen at once;
//! - changes made by another process sharing the Store (production, several nodes) are seen
//!   within [`FRESH_FOR`].
//!
//! Only channels that exist are cached, so a channel created anywhere is found at once.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ChannelProperties, Store};
use crate::backend::BackendError;

/// How long a cached copy is used before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Channel properties by channel id, each with when it was read.
pub struct ChannelCache {
    store: Arc<dyn Store>,
    entries: Mutex<HashMap<String, (Instant, Arc<ChannelProperties>)>>,
}

impl ChannelCache {
    /// A cache in front of `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        ChannelCache {
            store,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A channel's properties: the cached copy while fresh, else read from the Store.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<ChannelProperties>>, BackendError> {
        if let Some((read_at, props)) = self.lock().get(id) {
            if read_at.elapsed() < FRESH_FOR {
                return Ok(Some(props.clone()));
            }
        }
        let read_at = Instant::now();
        match self.store.load_channel(id).await? {
            Some(props) => {
                let props = Arc::new(props);
                self.lock().insert(id.to_owned(), (read_at, props.clone()));
                Ok(Some(props))
            }
            None => {
                self.lock().remove(id);
                Ok(None)
            }
        }
    }

    /// This process saved `props` for channel `id`.
    pub fn saved(&self, id: &str, props: &ChannelProperties) {
        let entry = (Instant::now(), Arc::new(props.clone()));
        self.lock().insert(id.to_owned(), entry);
    }

    /// Channel `id` was deleted.
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<ChannelProperties>)>> {
        // A poisoned lock only means another thread panicked holding it; the map is intact.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
