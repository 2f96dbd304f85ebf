//! Webhooks from a provider: inbound messages and delivery reports handed to the daemon,
//! refusals, tokens, and reading their JSON.

use serde_json::{json, Map, Value};

use super::redact::Redactor;
use crate::message::{new_message_id, timestamp_now, DeliveryReport, Message};
use crate::ports::{Direction, LogRecord, ReportOutcome};
use crate::transport::TransportContext;
use crate::webhook::{WebhookRequest, WebhookResponse};

/// An inbound message of `transport_type` from a provider's webhook, its provider-specific
/// fields `meta` kept under `component` in both `transport_metadata` (for replies) and
/// `helper_metadata` (the application's `channel_data`).
pub fn inbound_message(
    ctx: &TransportContext,
    component: &str,
    transport_type: &str,
    (from, to): (String, Option<String>),
    content: Option<String>,
    meta: Map<String, Value>,
) -> Message {
    let meta = Map::from_iter([(component.to_owned(), Value::Object(meta))]);
    Message {
        message_id: new_message_id(),
        timestamp: timestamp_now(),
        to_addr: to,
        from_addr: Some(from),
        group: None,
        in_reply_to: None,
        session_event: None,
        content,
        transport_name: ctx.channel_id().to_owned(),
        transport_type: transport_type.to_owned(),
        transport_metadata: meta.clone(),
        helper_metadata: meta,
        expires_at: None,
    }
}

/// Hands `message`, read from `request`, to the daemon: `kept` is the provider's answer
/// once it is kept, 503 (the provider should send it again) when it cannot be. Both the
/// request and a failure are written to the channel log.
pub async fn keep_inbound(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
    message: Message,
    kept: WebhookResponse,
) -> WebhookResponse {
    let id = message.message_id.clone();
    ctx.log(
        LogRecord::debug(format!("Inbound message {id} from the provider"))
            .about(id.as_str())
            .going(Direction::Inbound)
            .with_trace(webhook_trace(redactor, request)),
    );
    match ctx.inbound(message).await {
        Ok(()) => kept,
        Err(e) => {
            ctx.log(
                LogRecord::error(format!("Could not keep inbound message {id}: {e}"))
                    .about(id.as_str()),
            );
            WebhookResponse::text(503, "cannot take the message now, try again later")
        }
    }
}

/// Records `report`, read from `request` (its `details.provider_status`, the provider's
/// word for the status, goes into the log line): `answer` gets our id of the message it
/// concerns (`None` when it matches none: logged and dropped); 503 when it cannot be
/// recorded, so that the provider sends it again.
pub async fn record_report(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
    report: DeliveryReport,
    answer: impl FnOnce(Option<&str>) -> WebhookResponse,
) -> WebhookResponse {
    let provider_id = report.provider_message_id.clone();
    let raw_status = report
        .details
        .get("provider_status")
        .and_then(scalar_text)
        .unwrap_or_default();
    ctx.log(
        LogRecord::debug(redactor.text(&format!(
            "Delivery report for provider id {provider_id}: {raw_status}"
        )))
        .going(Direction::Inbound)
        .with_trace(webhook_trace(redactor, request)),
    );
    match ctx.delivery_report(report).await {
        ReportOutcome::Matched(id) => answer(Some(&id)),
        ReportOutcome::Unmatched => {
            ctx.log(LogRecord::info(redactor.text(&format!(
                "Delivery report for unknown provider id {provider_id} dropped"
            ))));
            answer(None)
        }
        ReportOutcome::Failed => {
            WebhookResponse::text(503, "cannot take the report now, try again later")
        }
    }
}

/// A webhook payload that cannot be used: the provider gets `400` with `reason` (JSON when
/// it sent JSON, else text), the channel log a WARNING with the request (secrets masked).
pub fn bad_webhook(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
    reason: &str,
) -> WebhookResponse {
    refuse_webhook(ctx, redactor, request, 400, reason)
}

/// Writes a refused webhook request to the channel log: a WARNING with `reason` and the
/// request (secrets masked). Returns the reason as logged, masked too (it may quote the
/// payload, an unknown status say), for the answer. For a provider whose error answers
/// are its own; [`refuse_webhook`] also answers.
pub fn log_refusal(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
    reason: &str,
) -> String {
    let reason = redactor.text(reason);
    ctx.log(
        LogRecord::warning(format!(
            "Refused a webhook request to '{}': {reason}",
            request.path
        ))
        .going(Direction::Inbound)
        .with_trace(webhook_trace(redactor, request)),
    );
    reason
}

/// Refuses a webhook request with `status` (401 for a missing or wrong token, say); like
/// [`bad_webhook`] otherwise.
pub fn refuse_webhook(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
    status: u16,
    reason: &str,
) -> WebhookResponse {
    let reason = log_refusal(ctx, redactor, request, reason);
    let reason = reason.as_str();
    let wants_json = request
        .header("content-type")
        .is_some_and(|kind| kind.to_ascii_lowercase().contains("json"));
    if wants_json {
        WebhookResponse::json(status, &json!({ "error": reason }))
    } else {
        WebhookResponse::text(status, reason)
    }
}

/// Whether `request` carries `token`: as `Authorization: Bearer <token>`, an
/// `X-Webhook-Token` header or a `token` query parameter. Compared in constant time.
pub fn has_token(request: &WebhookRequest, token: &str) -> bool {
    let same = |given: &str| same_secret(given, token);
    let bearer = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "));
    let header = request.header("x-webhook-token");
    let query = url::form_urlencoded::parse(request.query.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned());
    bearer.is_some_and(same) || header.is_some_and(same) || query.as_deref().is_some_and(same)
}

/// Whether `given` is `secret`, compared in constant time (for equal lengths), so that the
/// time of a refusal tells nothing about how much of a guess was right.
pub fn same_secret(given: &str, secret: &str) -> bool {
    given.len() == secret.len()
        && given
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// The trace of a webhook request, for the channel log.
pub fn webhook_trace(redactor: &Redactor, request: &WebhookRequest) -> Value {
    json!({
        "method": request.method,
        "path": request.path,
        "query": redactor.text(&request.query),
        "headers": redactor.headers(
            request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
        ),
        "body": redactor.body(&request.body),
    })
}

/// The value at a dotted `path` in `value` (`data.id`, `messages.0.id`): object keys, or
/// array indexes where the value is an array.
pub fn dotted<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A scalar JSON value as text (`"abc"` → `abc`, `12` → `12`); `None` for null, objects
/// and arrays.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secrets compare whole.
    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("s3cr3t", "s3cr3t"));
        assert!(!same_secret("s3cr3", "s3cr3t"));
        assert!(!same_secret("s3cr3T", "s3cr3t"));
    }

    /// Dotted paths reach into objects and arrays.
    #[test]
    fn dotted_paths() {
        let value = json!({"data": {"messages": [{"id": 17}, {"id": "b"}]}});
        assert_eq!(dotted(&value, "data.messages.0.id"), Some(&json!(17)));
        assert_eq!(
            dotted(&value, "data.messages.1.id").and_then(scalar_text),
            Some("b".into())
        );
        assert_eq!(dotted(&value, "data.missing"), None);
        assert_eq!(dotted(&value, "data.messages.x"), None);
    }
}
