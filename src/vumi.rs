//! The vumi message format of the AMQP integration (API.md 11): what applications read from
//! `<amqp_queue>.inbound` / `<amqp_queue>.event` and write to `<amqp_queue>.outbound`.
//!
//! Our [`Message`] and [`Event`] already use vumi's field names; this adds the envelope
//! fields vumi clients expect and reads outbound messages leniently (an application need not
//! send ids or timestamps).
use junebug_actors::message::{new_message_id, timestamp_now, Event, Message};
use serde_json::{json, Map, Value};

/// vumi's message format version.
const MESSAGE_VERSION: &str = "20110921";

fn with_envelope(mut body: Map<String, Value>, message_type: &str) -> Value {
    body.insert("message_type".into(), json!(message_type));
    body.insert("message_version".into(), json!(MESSAGE_VERSION));
    for key in ["helper_metadata", "transport_metadata", "routing_metadata"] {
        body.entry(key).or_insert_with(|| json!({}));
    }
    Value::Object(body)
}

/// A user message in vumi format.
pub fn message(message: &Message) -> Value {
    let mut body = match serde_json::to_value(message) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(), // cannot happen: Message serialises to an object
    };
    for key in ["provider", "to_addr_type", "from_addr_type"] {
        body.insert(key.into(), Value::Null);
    }
    with_envelope(body, "user_message")
}

/// An event in vumi format, from channel `channel_id`.
pub fn event(channel_id: &str, event: &Event) -> Value {
    let mut body = match serde_json::to_value(event) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(), // cannot happen: Event serialises to an object
    };
    body.insert("transport_name".into(), json!(channel_id));
    with_envelope(body, "event")
}

/// Why an application's outbound message was refused.
#[derive(Debug, thiserror::Error)]
#[error("not a vumi user message: {0}")]
pub struct NotAMessage(String);

/// An application's outbound message for channel `channel_id` of type `transport_type`.
/// Missing ids and timestamps are filled in; the channel decides `transport_name`.
pub fn outbound(
    payload: &[u8],
    channel_id: &str,
    transport_type: &str,
) -> Result<Message, NotAMessage> {
    let Value::Object(mut body) =
        serde_json::from_slice(payload).map_err(|e| NotAMessage(e.to_string()))?
    else {
        return Err(NotAMessage("the payload is not a JSON object".into()));
    };
    let mut fill = |key: &str, value: Value| {
        if body.get(key).is_none_or(Value::is_null) {
            body.insert(key.to_owned(), value);
        }
    };
    fill("message_id", json!(new_message_id()));
    fill("timestamp", json!(timestamp_now()));
    fill("transport_type", json!(transport_type));
    body.insert("transport_name".into(), json!(channel_id));
    serde_json::from_value(Value::Object(body)).map_err(|e| NotAMessage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        Message {
            message_id: "a".repeat(32),
            timestamp: "2015-10-06 14:16:34.578820".into(),
            to_addr: Some("+27".into()),
            from_addr: None,
            group: None,
            in_reply_to: None,
            session_event: None,
            content: Some("hi".into()),
            transport_name: "ch".into(),
            transport_type: "telnet".into(),
            transport_metadata: Map::new(),
            helper_metadata: Map::new(),
            expires_at: None,
        }
    }

    /// A user message carries vumi's envelope fields.
    #[test]
    fn user_messages_have_the_vumi_envelope() {
        let v = message(&sample());
        assert_eq!(v["message_type"], "user_message");
        assert_eq!(v["message_version"], "20110921");
        assert_eq!(v["routing_metadata"], json!({}));
        assert_eq!(v["to_addr"], "+27");
        assert!(v.get("provider").is_some());
    }

    /// Events say which kind they are in vumi's words and name their channel.
    #[test]
    fn events_have_the_vumi_fields() {
        let v = event("ch", &Event::nack("m", "no"));
        assert_eq!(v["message_type"], "event");
        assert_eq!(v["event_type"], "nack");
        assert_eq!(v["nack_reason"], "no");
        assert_eq!(v["user_message_id"], "m");
        assert_eq!(v["transport_name"], "ch");
    }

    /// Outbound messages from applications get ids and the channel filled in.
    #[test]
    fn outbound_messages_are_read_leniently() {
        let m = outbound(
            br#"{"to_addr": "+27", "content": "x", "transport_name": "other"}"#,
            "ch",
            "telnet",
        )
        .unwrap();
        assert_eq!(
            (m.transport_name.as_str(), m.transport_type.as_str()),
            ("ch", "telnet")
        );
        assert_eq!(m.message_id.len(), 32);
        assert!(outbound(b"[1]", "ch", "telnet").is_err());
        assert!(outbound(b"{\"content\": 5}", "ch", "telnet").is_err());
        let round_trip =
            outbound(&serde_json::to_vec(&message(&sample())).unwrap(), "ch", "t").unwrap();
        assert_eq!(round_trip, sample());
    }
}
