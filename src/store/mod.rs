//! The `Store`: channel configs, messages kept for replies and events, statuses and rates.
//!
//! - [`embedded`]: SQLite in `data_dir` (the default, nothing to install);
//! - [`redis`]: Redis (production; several Junebug processes can share it).
//!
//! Data with a time to live (inbound messages, outbound records, events, rate buckets) is
//! never returned once expired, whatever the backend does to reclaim the space.
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use junebug_actors::message::{Event, Message, StatusEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::backend::BackendError;

pub mod cache;
pub mod embedded;
pub mod redis;

/// A channel's stored properties, exactly as the client gave (and merged) them.
pub type ChannelProperties = Map<String, Value>;

/// What we keep of an outbound message so its events can be routed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct OutboundRecord {
    /// The message as queued.
    pub message: Message,
    /// Where its events are POSTed.
    pub event_url: Option<String>,
    /// Sent as `Authorization: Token …` with its events.
    pub event_auth_token: Option<String>,
    /// Signs its event callbacks (instead of the channel's `callback_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_secret: Option<String>,
    /// `"GET"` or `"POST"` (the default) for its event callbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_url_method: Option<Value>,
}

/// Where a provider's message id points: one of our outbound messages, and which of its
/// parts (an SMS sent in three parts has three provider ids).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PartRef {
    /// Our message id.
    pub message_id: String,
    /// The part, from 0.
    pub part: u32,
    /// How many parts the message went out in.
    pub parts: u32,
}

/// What the parts of one long inbound message share: two senders (or two messages of
/// different lengths) that happen to use the same reference do not mix.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartsKey {
    /// Who sent it.
    pub sender: String,
    /// The concatenation reference the sender chose.
    pub reference: u16,
    /// How many parts it has.
    pub total: u8,
}

/// The parts of a long inbound message that waited too long for the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredParts {
    /// Which message.
    pub key: PartsKey,
    /// The texts of the parts that arrived, in sequence order.
    pub texts: Vec<String>,
}

/// One occurrence to count for a rate: `label` in time bucket `bucket`, kept for `ttl`.
#[derive(Debug, Clone, Copy)]
pub struct Tally<'a> {
    /// What is counted (`outbound`, `submitted`, …).
    pub label: &'a str,
    /// The time bucket.
    pub bucket: i64,
    /// How long the bucket's count is kept.
    pub ttl: Duration,
}

/// The state backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the backend answers (for `GET /health`).
    async fn ping(&self) -> Result<(), BackendError>;

    /// Creates or replaces a channel.
    async fn save_channel(&self, id: &str, props: &ChannelProperties) -> Result<(), BackendError>;
    /// One channel's properties.
    async fn load_channel(&self, id: &str) -> Result<Option<ChannelProperties>, BackendError>;
    /// Every channel, sorted by id.
    async fn load_channels(&self) -> Result<Vec<(String, ChannelProperties)>, BackendError>;
    /// Removes a channel, its statuses, cursors and sessions; false if there was none.
    async fn delete_channel(&self, id: &str) -> Result<bool, BackendError>;

    /// Keeps an inbound message for `ttl`, so it can be replied to.
    async fn save_inbound(
        &self,
        channel_id: &str,
        message: &Message,
        ttl: Duration,
    ) -> Result<(), BackendError>;
    /// An inbound message of this channel that has not expired.
    async fn load_inbound(
        &self,
        channel_id: &str,
        message_id: &str,
    ) -> Result<Option<Message>, BackendError>;

    /// Keeps an accepted outbound message's record for `ttl` and counts it (`tally`), in one
    /// round trip: accepting a send is the hot path.
    async fn accept_outbound(
        &self,
        channel_id: &str,
        record: &OutboundRecord,
        ttl: Duration,
        tally: Tally<'_>,
    ) -> Result<(), BackendError>;
    /// An outbound record of this channel that has not expired.
    async fn load_outbound(
        &self,
        channel_id: &str,
        message_id: &str,
    ) -> Result<Option<OutboundRecord>, BackendError>;

    /// Adds an event to its message's history (kept for `ttl`), counts it for the rates
    /// (`tally`) and returns its message's outbound record if still kept (where the event
    /// goes), in one round trip: every outcome of every message takes this path.
    async fn record_event(
        &self,
        channel_id: &str,
        event: &Event,
        ttl: Duration,
        tally: Tally<'_>,
    ) -> Result<Option<OutboundRecord>, BackendError>;
    /// A message's events, in the order they happened.
    async fn events(&self, channel_id: &str, message_id: &str) -> Result<Vec<Event>, BackendError>;

    /// Maps each of `provider_ids` (the parts of `message_id`, in order) to the message, for
    /// `ttl`.
    async fn map_provider_ids(
        &self,
        channel_id: &str,
        message_id: &str,
        provider_ids: &[String],
        ttl: Duration,
    ) -> Result<(), BackendError>;
    /// The message (and part) the provider knows as `provider_id`.
    async fn find_provider_id(
        &self,
        channel_id: &str,
        provider_id: &str,
    ) -> Result<Option<PartRef>, BackendError>;
    /// Records the latest delivery report of one part of a long message, kept for `ttl`, and
    /// returns the latest report of every part so far, by part number.
    async fn record_part_report(
        &self,
        channel_id: &str,
        part: &PartRef,
        report: &Value,
        ttl: Duration,
    ) -> Result<BTreeMap<u32, Value>, BackendError>;
    /// Claims the right to forward a long message's final delivery event: true for exactly
    /// one caller, however many nodes see the last parts' reports at once.
    async fn claim_final_report(
        &self,
        channel_id: &str,
        message_id: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError>;

    /// Keeps part `sequence` (from 1) of long inbound message `key`, for `ttl`. When that
    /// completes the message, forgets its parts and returns their texts in sequence order,
    /// to exactly one caller however many nodes receive the last parts at once. A part that
    /// comes again replaces its earlier copy.
    async fn add_inbound_part(
        &self,
        channel_id: &str,
        key: &PartsKey,
        sequence: u8,
        text: &str,
        ttl: Duration,
    ) -> Result<Option<Vec<String>>, BackendError>;
    /// Forgets and returns the long inbound messages whose first part was kept more than
    /// `max_age` ago, oldest first (each to exactly one caller).
    async fn take_expired_parts(
        &self,
        channel_id: &str,
        max_age: Duration,
    ) -> Result<Vec<ExpiredParts>, BackendError>;

    /// Keeps the latest status of a component.
    async fn save_status(&self, channel_id: &str, status: &StatusEvent)
        -> Result<(), BackendError>;
    /// The latest status of each component.
    async fn statuses(&self, channel_id: &str) -> Result<Vec<StatusEvent>, BackendError>;

    /// A channel's cursor `name`: how far its transport has read a provider's stream (the
    /// newest mention kept, say), so a restart resumes there. `None` until first saved.
    async fn cursor(&self, channel_id: &str, name: &str) -> Result<Option<String>, BackendError>;
    /// Replaces cursor `name` of a channel; kept until the channel is deleted.
    async fn save_cursor(
        &self,
        channel_id: &str,
        name: &str,
        value: &str,
    ) -> Result<(), BackendError>;

    /// Records a step of session `session_id` (a USSD session, say) of a channel: `true`
    /// when the session was live (its previous step less than the idle timeout it was given
    /// ago), `false` when it is new. It then stays live for `idle_timeout`. Sessions idle
    /// longer are forgotten; all of a channel's go with it.
    async fn session_step(
        &self,
        channel_id: &str,
        session_id: &str,
        idle_timeout: Duration,
    ) -> Result<bool, BackendError>;
    /// Forgets session `session_id` of a channel (it ended); whether it was live.
    async fn end_session(&self, channel_id: &str, session_id: &str) -> Result<bool, BackendError>;

    /// Counts one `label` occurrence in time bucket `bucket`, kept for `ttl`.
    async fn count(
        &self,
        channel_id: &str,
        label: &str,
        bucket: i64,
        ttl: Duration,
    ) -> Result<(), BackendError>;
    /// The counts of every label in `bucket`.
    async fn counts(
        &self,
        channel_id: &str,
        bucket: i64,
    ) -> Result<HashMap<String, u64>, BackendError>;
}
