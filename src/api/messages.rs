//! Message endpoints (API.md 5): send, and a message's status.
use actix_web::{web, HttpRequest, HttpResponse};
use junebug_actors::message::{
    new_message_id, timestamp_now, Lane, Message, Priority, SessionEvent, TIMESTAMP_FORMAT,
};
use junebug_actors::ports::{Direction, LogRecord};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::read_json;
use super::channels::find_channel;
use super::envelope::{created, ok};
use super::errors::ApiError;
use super::validation::{validate, MESSAGE_SEND};
use super::State;
use crate::delivery::template::{CallbackMethod, TemplateKind, UrlTemplate};
use crate::store::OutboundRecord;
use crate::wire;

/// A send request, once it passed the schema.
#[derive(Deserialize)]
struct SendRequest {
    content: Option<String>,
    to: Option<String>,
    from: Option<String>,
    group: Option<String>,
    reply_to: Option<String>,
    event_url: Option<String>,
    event_auth_token: Option<String>,
    callback_secret: Option<String>,
    event_url_method: Option<Value>,
    priority: Option<Value>,
    #[serde(default)]
    channel_data: Map<String, Value>,
    expires_at: Option<String>,
    ttl: Option<u64>,
}

/// When a send stops being worth sending: its `expires_at`, else now + its `ttl`, else now +
/// the channel's `message_ttl` (0 or absent: never), in the wire timestamp format.
fn expiry(req: &SendRequest, channel_ttl: Option<u64>) -> Result<Option<String>, ApiError> {
    let at = match (&req.expires_at, req.ttl.or(channel_ttl.filter(|t| *t > 0))) {
        (Some(_), Some(_)) if req.ttl.is_some() => {
            return Err(ApiError::ApiUsage(
                "Give \"expires_at\" or \"ttl\", not both".into(),
            ))
        }
        (Some(text), _) => parse_instant(text).ok_or_else(|| {
            ApiError::ApiUsage(format!(
                "expires_at must be an ISO 8601 date and time (e.g. 2026-01-31T12:00:00Z), not '{text}'"
            ))
        })?,
        (None, Some(seconds)) => {
            let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
            chrono::Utc::now() + chrono::TimeDelta::try_seconds(seconds).unwrap_or(chrono::TimeDelta::MAX)
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(at.format(TIMESTAMP_FORMAT).to_string()))
}

/// An ISO 8601 instant: with a zone (`Z`, `+02:00`), or without one, taken as UTC.
fn parse_instant(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&chrono::Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .map(|at| at.and_utc())
}

/// The priority of a validated request (1–5, a numeric string, `bulk` or `realtime`).
fn priority(value: Option<&Value>) -> Priority {
    let level = match value {
        Some(Value::String(name)) if name == "realtime" => Some(Priority::REALTIME.level()),
        Some(Value::String(text)) => text.parse().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        _ => None,
    };
    level.and_then(Priority::new).unwrap_or_default()
}

/// Takes `channel_data.session_event` out, if it is one of ours.
fn take_session_event(data: &mut Map<String, Value>) -> Result<Option<SessionEvent>, ApiError> {
    match data.remove("session_event") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|_| {
                ApiError::ApiUsage(format!(
                "channel_data.session_event must be \"new\", \"resume\" or \"close\", not {value}"
            ))
            }),
    }
}

/// `POST /channels/{id}/messages/`.
pub async fn send(
    state: State,
    channel_id: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&request, payload, state.settings.max_body_size).await?;
    validate(&MESSAGE_SEND, &body)?;
    let req: SendRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::ApiUsage(format!("unreadable message: {e}")))?;
    if let Some(url) = &req.event_url {
        UrlTemplate::parse("event_url", url, TemplateKind::Event)
            .map_err(|e| ApiError::ApiUsage(e.to_string()))?;
    }
    let event_method = req.event_url_method.as_ref().unwrap_or(&Value::Null);
    CallbackMethod::parse("event_url_method", event_method)
        .map_err(|e| ApiError::ApiUsage(e.to_string()))?;
    let props = find_channel(&state, &channel_id).await?;
    if req.to.is_none() && req.reply_to.is_none() {
        return Err(ApiError::ApiUsage(
            "Either \"to\" or \"reply_to\" must be specified".into(),
        ));
    }
    let store = &state.host.store;
    let inbound = match &req.reply_to {
        Some(reply_to) => match store.load_inbound(&channel_id, reply_to).await? {
            Some(inbound) => Some(inbound),
            None if req.to.is_some() && state.settings.allow_expired_replies => None,
            None => return Err(ApiError::MessageNotFound(reply_to.clone())),
        },
        None => None,
    };
    let limit = props.get("character_limit").and_then(Value::as_u64);
    if let (Some(limit), Some(content)) = (limit, &req.content) {
        let length = content.chars().count();
        if length as u64 > limit {
            return Err(ApiError::MessageTooLong {
                content: content.clone(),
                length,
                limit,
            });
        }
    }
    let channel_type = props
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut message = build_message(&channel_id, channel_type, &req, inbound)?;
    message.expires_at = expiry(&req, props.get("message_ttl").and_then(Value::as_u64))?;
    let record = OutboundRecord {
        message: message.clone(),
        event_url: req.event_url.clone(),
        event_auth_token: req.event_auth_token.clone(),
        callback_secret: req.callback_secret.clone(),
        event_url_method: req.event_url_method.clone().filter(|m| !m.is_null()),
    };
    // The record first: if we die before queueing, it is an orphan nobody waits for.
    let tally = state.host.tally("outbound");
    store
        .accept_outbound(
            &channel_id,
            &record,
            state.host.settings.outbound_ttl,
            tally,
        )
        .await?;
    let priority = priority(req.priority.as_ref());
    let logs = &state.host.logs;
    logs.push(&channel_id, accepted_entry(&message, priority, &req));
    if let Err(e) = state
        .host
        .queue
        .enqueue(&channel_id, &message, priority)
        .await
    {
        let text = format!("Message {} could not be queued: {e}", message.message_id);
        logs.push(
            &channel_id,
            LogRecord::error(text).about(&message.message_id),
        );
        return Err(e.into());
    }
    state
        .host
        .metrics
        .messages
        .with_label_values(&[channel_id.as_str(), "outbound"])
        .inc();
    Ok(created("message submitted", wire::message_json(&message)))
}

/// The channel log entry of an accepted send, written just before it is queued (so it comes
/// before whatever the channel then logs about it). DEBUG: one per message would crowd the
/// operational lines out of `GET /channels/{id}/logs`; it shows in the message's own logs.
fn accepted_entry(message: &Message, priority: Priority, req: &SendRequest) -> LogRecord {
    let lane = match priority.lane() {
        Lane::Realtime => "realtime",
        Lane::Bulk => "bulk",
    };
    let to = message.to_addr.as_deref().unwrap_or("nobody");
    LogRecord::debug(format!(
        "Message {} to {to} accepted, queueing it in the {lane} lane (priority {})",
        message.message_id,
        priority.level()
    ))
    .about(&message.message_id)
    .going(Direction::Outbound)
    .with_trace(json!({
        "to": message.to_addr,
        "from": message.from_addr,
        "reply_to": message.in_reply_to,
        "priority": priority.level(),
        "lane": lane,
        "expires_at": message.expires_at,
        "event_url": req.event_url,
    }))
}

/// The outbound message of a send (API.md 5.2): a reply is addressed from the inbound
/// message it answers; anything else from the request.
fn build_message(
    channel_id: &str,
    channel_type: &str,
    req: &SendRequest,
    inbound: Option<Message>,
) -> Result<Message, ApiError> {
    let mut data = req.channel_data.clone();
    let session_event = take_session_event(&mut data)?;
    let message = match inbound {
        Some(inbound) => {
            let continue_session = data.remove("continue_session");
            let closes = continue_session == Some(json!(false))
                || session_event == Some(SessionEvent::Close);
            Message {
                message_id: new_message_id(),
                timestamp: timestamp_now(),
                to_addr: inbound.from_addr,
                from_addr: inbound.to_addr,
                group: inbound.group,
                in_reply_to: Some(inbound.message_id),
                session_event: closes.then_some(SessionEvent::Close),
                content: req.content.clone(),
                transport_name: channel_id.to_owned(),
                transport_type: inbound.transport_type,
                transport_metadata: inbound.transport_metadata,
                helper_metadata: data,
                expires_at: None,
            }
        }
        None => {
            if data.get("continue_session") == Some(&Value::Null) {
                data.remove("continue_session");
            }
            Message {
                message_id: new_message_id(),
                timestamp: timestamp_now(),
                to_addr: req.to.clone(),
                from_addr: req.from.clone(),
                group: req.group.clone(),
                in_reply_to: None,
                session_event,
                content: req.content.clone(),
                transport_name: channel_id.to_owned(),
                transport_type: channel_type.to_owned(),
                transport_metadata: Map::new(),
                helper_metadata: data,
                expires_at: None,
            }
        }
    };
    Ok(message)
}

/// `GET /channels/{id}/messages/{msg_id}`: every event of the message, in order.
pub async fn status(
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (channel_id, message_id) = path.into_inner();
    find_channel(&state, &channel_id).await?;
    let events: Vec<Value> = state
        .host
        .store
        .events(&channel_id, &message_id)
        .await?
        .iter()
        .map(|event| wire::event_json(&channel_id, event))
        .collect();
    let last = events.last();
    Ok(ok(
        "message status",
        json!({
            "id": message_id,
            "last_event_type": last.map(|e| e["event_type"].clone()),
            "last_event_timestamp": last.map(|e| e["timestamp"].clone()),
            "events": events,
        }),
    ))
}
