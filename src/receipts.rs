//! Delivery reports: from a provider's message id to our message's event.
//!
//! Two problems live here:
//!
//! - **The race.** A provider may send a delivery report before its submit response has
//!   been processed (SMPP: the receipt's deliver_sm overtakes the submit_sm_resp, or arrives
//!   while the `submitted` event is still being recorded). Such a report waits — up to
//!   `delivery_report_hold` — until the id is mapped, instead of being dropped as the
//!   original Junebug does. Waiting is local: a channel's transport runs on one node, so the
//!   node that receives the report is the one that records the mapping; after a restart the
//!   mapping is in the Store.
//! - **Long messages.** Each part of a long SMS has its own provider id and its own report.
//!   The application gets one final event for the whole message: `delivery_failed` as soon
//!   as one part fails, `delivery_succeeded` once every part is delivered, with each part's
//!   report in `event_details.parts`. Pending reports of parts are kept, not forwarded.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use junebug_actors::message::DeliveryStatus;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::backend::BackendError;
use crate::store::{PartRef, Store};

/// Matches delivery reports to messages, holding those that arrive before their mapping.
pub struct ReceiptMatcher {
    hold: Duration,
    /// Reports waiting for a provider id, by (channel id, provider id).
    waiting: Mutex<HashMap<(String, String), Arc<Notify>>>,
}

impl ReceiptMatcher {
    /// Holds unknown reports for at most `hold`.
    pub fn new(hold: Duration) -> Self {
        ReceiptMatcher {
            hold,
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// `provider_ids` of `channel_id` are now in the Store: wakes reports waiting for them.
    pub fn mapped(&self, channel_id: &str, provider_ids: &[String]) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for provider_id in provider_ids {
            if let Some(notify) = waiting.remove(&(channel_id.to_owned(), provider_id.clone())) {
                notify.notify_waiters();
            }
        }
    }

    /// The message part `provider_id` belongs to, waiting up to the hold time for it to be
    /// mapped. `None` when it is still unknown then.
    pub async fn find(
        &self,
        store: &dyn Store,
        channel_id: &str,
        provider_id: &str,
    ) -> Result<Option<PartRef>, BackendError> {
        let deadline = Instant::now() + self.hold;
        let key = (channel_id.to_owned(), provider_id.to_owned());
        loop {
            let notify = {
                let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                waiting.entry(key.clone()).or_default().clone()
            };
            // Registered before looking, so a mapping recorded in between still wakes us.
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(part) = store.find_provider_id(channel_id, provider_id).await? {
                self.forget(&key, &notify);
                return Ok(Some(part));
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                self.forget(&key, &notify);
                return store.find_provider_id(channel_id, provider_id).await;
            }
        }
    }

    /// Drops a waiting entry nobody else waits on.
    fn forget(&self, key: &(String, String), notify: &Arc<Notify>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = waiting.get(key) {
            // Held by the map and by the caller only: no other report waits on this id.
            if Arc::ptr_eq(entry, notify) && Arc::strong_count(notify) == 2 {
                waiting.remove(key);
            }
        }
    }
}

/// One part's report as kept in the Store and shown in `event_details.parts`.
pub fn part_report(part: &PartRef, status: DeliveryStatus, details: &Map<String, Value>) -> Value {
    json!({ "part": part.part + 1, "status": status, "details": details })
}

/// The outcome of a long message from its parts' reports so far: failed as soon as one part
/// failed, delivered once every part is delivered, undecided (`None`) otherwise.
pub fn long_message_outcome(parts: u32, reports: &BTreeMap<u32, Value>) -> Option<DeliveryStatus> {
    let status = |report: &Value| serde_json::from_value(report["status"].clone()).ok();
    let statuses: Vec<Option<DeliveryStatus>> = reports.values().map(status).collect();
    if statuses.contains(&Some(DeliveryStatus::Failed)) {
        return Some(DeliveryStatus::Failed);
    }
    let delivered = statuses
        .iter()
        .filter(|s| **s == Some(DeliveryStatus::Delivered))
        .count();
    (delivered as u32 >= parts).then_some(DeliveryStatus::Delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(statuses: &[DeliveryStatus]) -> BTreeMap<u32, Value> {
        (0..)
            .zip(statuses)
            .map(|(i, s)| {
                let part = PartRef {
                    message_id: "m".into(),
                    part: i,
                    parts: 3,
                };
                (i, part_report(&part, *s, &Map::new()))
            })
            .collect()
    }

    /// One failed part decides the message at once; delivered needs every part.
    #[test]
    fn a_long_message_fails_with_one_part_and_succeeds_with_all() {
        use DeliveryStatus::*;
        assert_eq!(long_message_outcome(3, &reports(&[Delivered])), None);
        assert_eq!(
            long_message_outcome(3, &reports(&[Delivered, Pending, Delivered])),
            None
        );
        assert_eq!(
            long_message_outcome(3, &reports(&[Pending, Failed])),
            Some(Failed)
        );
        assert_eq!(
            long_message_outcome(3, &reports(&[Delivered, Delivered, Delivered])),
            Some(Delivered)
        );
    }
}
