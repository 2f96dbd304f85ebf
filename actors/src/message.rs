//! The message and event model shared by transports, actors and the daemon.
//!
//! It follows vumi's message format (the original Junebug's internal model), so the AMQP
//! integration can publish these values as they are.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `YYYY-MM-DD HH:MM:SS.ffffff`, UTC, no zone marker: the timestamp format of the wire contract.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// The current time in [`TIMESTAMP_FORMAT`].
pub fn timestamp_now() -> String {
    chrono::Utc::now().format(TIMESTAMP_FORMAT).to_string()
}

/// A new message or event id: 32 lowercase hex characters (uuid4 without hyphens).
pub fn new_message_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Where a message stands in a session (USSD, telnet).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SessionEvent {
    /// The first message of a session.
    New,
    /// A message inside an open session.
    Resume,
    /// The session ends with this message.
    Close,
}

/// A user message, inbound or outbound (vumi `user_message`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Message {
    /// 32 hex characters.
    pub message_id: String,
    /// When the message was created, in [`TIMESTAMP_FORMAT`].
    pub timestamp: String,
    /// Destination address.
    pub to_addr: Option<String>,
    /// Source address.
    pub from_addr: Option<String>,
    /// Group address (a chat room, an IRC channel).
    pub group: Option<String>,
    /// For a reply: the id of the inbound message it answers.
    pub in_reply_to: Option<String>,
    /// Session state, for session-based channels.
    pub session_event: Option<SessionEvent>,
    /// The text; `None` is legitimate (a USSD session close, a telnet connect).
    pub content: Option<String>,
    /// The channel id.
    pub transport_name: String,
    /// The kind of transport (`telnet`, `sms`, `ussd`, …).
    pub transport_type: String,
    /// Data the transport needs to route a reply (session ids and the like).
    #[serde(default)]
    pub transport_metadata: Map<String, Value>,
    /// Channel-specific extras, exposed as `channel_data` in the HTTP API.
    #[serde(default)]
    pub helper_metadata: Map<String, Value>,
    /// For an outbound message: when it stops being worth sending, in [`TIMESTAMP_FORMAT`].
    /// A message still queued then is rejected with reason `expired` instead of sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl Message {
    /// How long until the message expires: `None` without an expiry, zero once expired.
    pub fn expires_in(&self) -> Option<std::time::Duration> {
        let at = chrono::NaiveDateTime::parse_from_str(
            self.expires_at.as_deref()?,
            "%Y-%m-%d %H:%M:%S%.f",
        )
        .ok()?;
        Some(
            (at - chrono::Utc::now().naive_utc())
                .to_std()
                .unwrap_or_default(),
        )
    }

    /// Whether the message has an expiry and it has passed.
    pub fn is_expired(&self) -> bool {
        self.expires_in().is_some_and(|left| left.is_zero())
    }
}

/// What happened to an outbound message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "event_type", rename_all = "snake_case")]
pub enum EventKind {
    /// The transport (or the provider) accepted the message.
    Ack {
        /// The provider's id for the message, if it gave one.
        sent_message_id: Option<String>,
    },
    /// The message was not sent and will not be.
    Nack {
        /// Why, in words a person can act on.
        nack_reason: String,
    },
    /// The provider reported on delivery to the handset.
    DeliveryReport {
        /// `delivered`, `failed` or `pending`.
        delivery_status: DeliveryStatus,
        /// What the provider said (raw status, error code, its message id, per-part
        /// outcomes of a long message); the API shows it as `event_details`.
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        details: Map<String, Value>,
    },
}

/// The three delivery report outcomes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Delivered to the handset.
    Delivered,
    /// Delivery failed for good.
    Failed,
    /// Still trying.
    Pending,
}

/// A provider's report on the delivery of a message it knows by its own id.
///
/// Transports cannot turn it into an [`Event`] themselves: only the daemon knows which of our
/// messages the provider's id belongs to (the mapping is shared by every node), and a report
/// about one part of a long message only becomes an event once the whole message's outcome
/// is known.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryReport {
    /// The provider's id of the message or part, as its submit response gave it.
    pub provider_message_id: String,
    /// What the report says.
    pub status: DeliveryStatus,
    /// The provider's raw fields (status text, error code, …) for `event_details`.
    pub details: Map<String, Value>,
}

/// An event about an outbound message (vumi `event`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Event {
    /// 32 hex characters.
    pub event_id: String,
    /// The id of the outbound message this event is about.
    pub user_message_id: String,
    /// When it happened, in [`TIMESTAMP_FORMAT`].
    pub timestamp: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// A new event about `user_message_id`, happening now.
    pub fn new(user_message_id: &str, kind: EventKind) -> Self {
        Event {
            event_id: new_message_id(),
            user_message_id: user_message_id.to_owned(),
            timestamp: timestamp_now(),
            kind,
        }
    }

    /// `ack`: the message was submitted.
    pub fn ack(user_message_id: &str, sent_message_id: Option<String>) -> Self {
        Self::new(user_message_id, EventKind::Ack { sent_message_id })
    }

    /// A delivery report: `status`, with the provider's `details`.
    pub fn delivery_report(
        user_message_id: &str,
        status: DeliveryStatus,
        details: Map<String, Value>,
    ) -> Self {
        Self::new(
            user_message_id,
            EventKind::DeliveryReport {
                delivery_status: status,
                details,
            },
        )
    }

    /// `nack`: the message was rejected for `reason`.
    pub fn nack(user_message_id: &str, reason: impl Into<String>) -> Self {
        Self::new(
            user_message_id,
            EventKind::Nack {
                nack_reason: reason.into(),
            },
        )
    }
}

/// The health level of a channel component, worst first.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum StatusLevel {
    /// Not working.
    Down,
    /// Working partly.
    Degraded,
    /// Working.
    Ok,
}

/// A status event a transport publishes about one of its components (API.md 10.3).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StatusEvent {
    /// The component, e.g. `smpp`.
    pub component: String,
    /// Its level.
    pub status: StatusLevel,
    /// A short machine-readable kind, e.g. `bound` or `connection_lost`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Words for people.
    pub message: String,
    /// Anything else worth knowing.
    #[serde(default)]
    pub details: Map<String, Value>,
}

/// Priority of an outbound message: 1 (lowest, `bulk`) to 5 (highest, `realtime`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority(u8);

/// The lanes of the priority mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Priorities 4 and 5: always sent before waiting bulk messages.
    Realtime,
    /// Priorities 1 to 3 (the default): sent when no realtime message waits, and never
    /// starved (see [`crate::mailbox`]).
    Bulk,
}

impl Priority {
    /// The lowest priority, the default.
    pub const BULK: Priority = Priority(1);
    /// The highest priority.
    pub const REALTIME: Priority = Priority(5);

    /// A priority from its number, if it is 1 to 5.
    pub fn new(level: u8) -> Option<Priority> {
        (1..=5).contains(&level).then_some(Priority(level))
    }

    /// Its number, 1 to 5.
    pub fn level(self) -> u8 {
        self.0
    }

    /// The mailbox lane it travels in.
    pub fn lane(self) -> Lane {
        if self.0 >= 4 {
            Lane::Realtime
        } else {
            Lane::Bulk
        }
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::BULK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_microseconds_and_no_zone() {
        let ts = timestamp_now();
        assert_eq!(ts.len(), "2015-10-06 14:16:34.578820".len(), "{ts}");
        assert!(chrono::NaiveDateTime::parse_from_str(&ts, "%Y-%m-%d %H:%M:%S%.f").is_ok());
    }

    #[test]
    fn message_ids_are_32_lowercase_hex() {
        let id = new_message_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_uppercase()));
    }

    #[test]
    fn events_serialise_in_vumi_shape() {
        let ev = Event::nack("abc", "Unknown address.");
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["event_type"], "nack");
        assert_eq!(v["nack_reason"], "Unknown address.");
        assert_eq!(v["user_message_id"], "abc");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn priorities_map_to_lanes() {
        assert_eq!(Priority::new(0), None);
        assert_eq!(Priority::new(6), None);
        assert_eq!(Priority::new(3).unwrap().lane(), Lane::Bulk);
        assert_eq!(Priority::new(4).unwrap().lane(), Lane::Realtime);
        assert_eq!(Priority::default(), Priority::BULK);
    }
}
