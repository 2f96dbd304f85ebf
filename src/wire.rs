//! The JSON shapes of API.md: messages (5.3, 10.1), events (10.2) and statuses (10.3), built
//! from the internal vumi-style model. One place, used by the API responses and the callbacks.
use junebug_actors::message::{DeliveryStatus, Event, EventKind, Message, StatusEvent};
use serde_json::{json, Map, Value};

/// `channel_data` of a message: its helper_metadata, plus `session_event` when set.
fn channel_data(message: &Message) -> Value {
    let mut data = message.helper_metadata.clone();
    if let Some(session_event) = message.session_event {
        data.insert("session_event".into(), json!(session_event));
    }
    Value::Object(data)
}

/// A message as the API and `mo_url` see it.
pub fn message_json(message: &Message) -> Value {
    json!({
        "to": message.to_addr,
        "from": message.from_addr,
        "group": message.group,
        "message_id": message.message_id,
        "channel_id": message.transport_name,
        "timestamp": message.timestamp,
        "reply_to": message.in_reply_to,
        "content": message.content,
        "channel_data": channel_data(message),
    })
}

/// The API's `event_type` for an event.
pub fn event_type(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Ack { .. } => "submitted",
        EventKind::Nack { .. } => "rejected",
        EventKind::DeliveryReport {
            delivery_status, ..
        } => match delivery_status {
            DeliveryStatus::Delivered => "delivery_succeeded",
            DeliveryStatus::Failed => "delivery_failed",
            DeliveryStatus::Pending => "delivery_pending",
        },
    }
}

/// An event as the API and `event_url` see it.
pub fn event_json(channel_id: &str, event: &Event) -> Value {
    let details = match &event.kind {
        EventKind::Nack { nack_reason } => json!({ "reason": nack_reason }),
        EventKind::DeliveryReport { details, .. } => Value::Object(details.clone()),
        EventKind::Ack { .. } => json!({}),
    };
    json!({
        "event_type": event_type(&event.kind),
        "message_id": event.user_message_id,
        "channel_id": channel_id,
        "timestamp": event.timestamp,
        "event_details": details,
    })
}

/// A status event as `status_url` and the channel object see it.
pub fn status_json(channel_id: &str, status: &StatusEvent) -> Value {
    let mut body = Map::new();
    body.insert("channel_id".into(), json!(channel_id));
    body.insert("component".into(), json!(status.component));
    body.insert("status".into(), json!(status.status));
    body.insert("type".into(), json!(status.kind));
    body.insert("message".into(), json!(status.message));
    body.insert("details".into(), Value::Object(status.details.clone()));
    Value::Object(body)
}
