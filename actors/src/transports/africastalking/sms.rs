//! Africa's Talking SMS: the send request and its answer, delivery reports and inbound
//! messages (the wire format is in the [parent module](super)'s docs).
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::message::{DeliveryReport, DeliveryStatus, Message};
use crate::transport::{ConfigError, SendError, Sent, TransportContext};
use crate::transports::web::{
    self, bad_webhook, dotted, scalar_text, Method, ProviderRequest, ProviderResponse, Redactor,
    RequestConfig, RequestSettings,
};
use crate::transports::Password;
use crate::webhook::{WebhookRequest, WebhookResponse};

/// Africa's Talking's live API root (the sandbox's is
/// `https://api.sandbox.africastalking.com`).
pub const DEFAULT_BASE_URL: &str = "https://api.africastalking.com";

/// The key of Africa's Talking's fields in `transport_metadata` and `channel_data`.
const KEY: &str = "africastalking";

/// The SMS keys of an `africastalking` channel's `config` (all optional: without
/// `username` and `api_key` the channel only answers USSD). No `Debug`: it holds the key.
#[derive(Deserialize, Clone, Default, PartialEq)]
pub struct SmsConfig {
    /// The Africa's Talking application's user name (`sandbox` in the sandbox).
    #[serde(default)]
    pub username: Option<String>,
    /// The application's API key. Never logged.
    #[serde(default)]
    pub api_key: Option<Password>,
    /// The sender: a registered short code or alphanumeric sender id (default: the
    /// account's). `from` is accepted too.
    #[serde(default, alias = "from")]
    pub sender_id: Option<String>,
    /// The API root (default [`DEFAULT_BASE_URL`]).
    #[serde(default)]
    pub base_url: Option<String>,
    /// `timeout`, `retry_delay`, `throttle_delay`, `degraded_after`.
    #[serde(flatten)]
    pub requests: RequestConfig,
}

/// What SMS sending needs, validated.
#[derive(Clone, Debug)]
pub struct SmsSettings {
    /// `{base_url}/version1/messaging`.
    pub messaging_url: String,
    /// The `username` field.
    pub username: String,
    /// The `apiKey` header.
    pub api_key: Password,
    /// The `from` field, if any.
    pub sender_id: Option<String>,
    /// Timeout, outcome rules, health threshold.
    pub requests: RequestSettings,
    /// Masks the API key in the channel log.
    pub redactor: Redactor,
}

impl SmsConfig {
    /// The SMS settings, or `None` when SMS is not configured; errors name the key.
    pub fn validate(self) -> Result<Option<SmsSettings>, ConfigError> {
        let username = self.username.filter(|name| !name.is_empty());
        let api_key = self.api_key.filter(|key| !key.reveal().is_empty());
        let (username, api_key) = match (username, api_key) {
            (None, None) => return Ok(None),
            (Some(username), Some(api_key)) => (username, api_key),
            (Some(_), None) => {
                return Err(ConfigError::new("api_key", "is required with username"))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new("username", "is required with api_key"))
            }
        };
        let base = web::base_url(
            "base_url",
            self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        let redactor = Redactor::new([api_key.reveal()]);
        Ok(Some(SmsSettings {
            messaging_url: format!("{base}/version1/messaging"),
            username,
            api_key,
            sender_id: self.sender_id.filter(|id| !id.is_empty()),
            requests: self.requests.validate()?,
            redactor,
        }))
    }
}

impl SmsSettings {
    /// The request that sends `message` to `to`. A reply to an inbound premium SMS carries
    /// its `linkId` (kept in the inbound message's `transport_metadata`).
    pub fn request(&self, message: &Message, to: &str) -> ProviderRequest {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("username", &self.username);
        form.append_pair("to", to);
        form.append_pair("message", message.content.as_deref().unwrap_or_default());
        if let Some(from) = &self.sender_id {
            form.append_pair("from", from);
        }
        let link_id = message
            .transport_metadata
            .get(KEY)
            .and_then(|meta| meta.get("link_id"))
            .and_then(Value::as_str);
        if let Some(link_id) = link_id {
            form.append_pair("linkId", link_id);
        }
        ProviderRequest {
            method: Method::Post,
            url: self.messaging_url.clone(),
            headers: vec![
                ("apiKey".to_owned(), self.api_key.reveal().to_owned()),
                ("Accept".to_owned(), "application/json".to_owned()),
            ],
            auth: None,
            body: Some((
                "application/x-www-form-urlencoded".to_owned(),
                form.finish().into_bytes(),
            )),
            timeout: self.requests.timeout,
        }
    }
}

/// What a recipient's `statusCode` means for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientOutcome {
    /// Taken: `100` Processed, `101` Sent, `102` Queued.
    Accepted,
    /// A passing trouble on Africa's Talking's side or the account's: `405`
    /// InsufficientBalance (a top-up mends it), `500` InternalServerError, `501`
    /// GatewayError. Tried again after `retry_delay`.
    Retry,
    /// About this message, its sender or its recipient, which sending again does not
    /// change: `401` RiskHold, `402` InvalidSenderId, `403` InvalidPhoneNumber, `404`
    /// UnsupportedNumberType, `406` UserInBlacklist, `407` CouldNotRoute, `409`
    /// DoNotDisturbRejection, `502` RejectedByGateway, and any code not documented.
    Rejected,
}

/// The outcome of a recipient's `statusCode`.
pub fn recipient_outcome(status_code: i64) -> RecipientOutcome {
    match status_code {
        100..=102 => RecipientOutcome::Accepted,
        405 | 500 | 501 => RecipientOutcome::Retry,
        _ => RecipientOutcome::Rejected,
    }
}

/// Reads an accepted (2xx) answer: the recipient's `messageId` when its `statusCode` is a
/// success; its `status` as the reason otherwise.
pub fn read_answer(
    response: &ProviderResponse,
    rules: &web::OutcomeRules,
) -> Result<Sent, SendError> {
    let body = response.json().unwrap_or(Value::Null);
    let recipient = dotted(&body, "SMSMessageData.Recipients.0");
    let Some(recipient) = recipient else {
        let said = dotted(&body, "SMSMessageData.Message")
            .and_then(scalar_text)
            .unwrap_or_else(|| String::from_utf8_lossy(&response.body).into_owned());
        return Err(SendError::Rejected(format!(
            "Africa's Talking sent it to no recipient: {said}"
        )));
    };
    let code = recipient.get("statusCode").and_then(Value::as_i64);
    let status = recipient
        .get("status")
        .and_then(scalar_text)
        .unwrap_or_default();
    let described = format!("statusCode {}, {status}", code.unwrap_or_default());
    match code.map(recipient_outcome) {
        Some(RecipientOutcome::Accepted) => {
            let id = recipient.get("messageId").and_then(scalar_text);
            Ok(id.map(Sent::with_id).unwrap_or_default())
        }
        Some(RecipientOutcome::Retry) => Err(SendError::Retry {
            reason: format!("Africa's Talking could not send it now ({described})"),
            after: rules.retry_after,
        }),
        Some(RecipientOutcome::Rejected) | None => Err(SendError::Rejected(format!(
            "Africa's Talking refused it ({described})"
        ))),
    }
}

/// The delivery event of a delivery report's `status`; `None` for an undocumented one.
pub fn delivery_status(status: &str) -> Option<DeliveryStatus> {
    match status {
        "Success" => Some(DeliveryStatus::Delivered),
        "Failed" | "Rejected" | "AbsentSubscriber" | "Expired" => Some(DeliveryStatus::Failed),
        "Sent" | "Submitted" | "Buffered" => Some(DeliveryStatus::Pending),
        _ => None,
    }
}

/// The answer Africa's Talking gets once a webhook request is taken.
fn ok() -> WebhookResponse {
    WebhookResponse::text(200, "OK")
}

/// A form field, `None` when missing or empty.
fn field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter()
        .find(|(key, value)| key == name && !value.is_empty())
        .map(|(_, value)| value.clone())
}

/// A delivery report (`POST …/inbound/dlr`).
pub async fn delivery_report(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
) -> WebhookResponse {
    let form = request.form();
    let (Some(id), Some(status)) = (field(&form, "id"), field(&form, "status")) else {
        return bad_webhook(
            ctx,
            redactor,
            request,
            "a delivery report needs id and status",
        );
    };
    let Some(delivery) = delivery_status(&status) else {
        let reason = format!("unknown delivery status '{status}'");
        return bad_webhook(ctx, redactor, request, &reason);
    };
    let mut details = Map::from_iter([
        ("provider_status".to_owned(), json!(status)),
        ("provider_message_id".to_owned(), json!(id)),
    ]);
    for (name, key) in [
        ("failureReason", "failure_reason"),
        ("networkCode", "network_code"),
        ("retryCount", "retry_count"),
    ] {
        if let Some(value) = field(&form, name) {
            details.insert(key.to_owned(), json!(value));
        }
    }
    let report = DeliveryReport {
        provider_message_id: id,
        status: delivery,
        details,
    };
    web::record_report(ctx, redactor, request, report, |_| ok()).await
}

/// An inbound SMS (`POST …/inbound/mo`).
pub async fn inbound(
    ctx: &TransportContext,
    redactor: &Redactor,
    request: &WebhookRequest,
) -> WebhookResponse {
    let form = request.form();
    let Some(from) = field(&form, "from") else {
        return bad_webhook(ctx, redactor, request, "an inbound message needs from");
    };
    let mut meta = Map::new();
    for (name, key) in [
        ("id", "message_id"),
        ("linkId", "link_id"),
        ("date", "date"),
        ("networkCode", "network_code"),
    ] {
        if let Some(value) = field(&form, name) {
            meta.insert(key.to_owned(), json!(value));
        }
    }
    let to = field(&form, "to");
    let message = web::inbound_message(ctx, KEY, "sms", (from, to), field(&form, "text"), meta);
    web::keep_inbound(ctx, redactor, request, message, ok()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: Value) -> ProviderResponse {
        ProviderResponse {
            status,
            headers: vec![],
            body: body.to_string().into_bytes(),
        }
    }

    fn answer(code: i64, status: &str) -> Value {
        json!({"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
            "Recipients": [{"statusCode": code, "number": "+254711000111", "status": status,
                            "cost": "KES 0.8000", "messageId": "ATXid_1"}]}})
    }

    /// Each documented statusCode has its outcome.
    #[test]
    fn recipient_status_codes() {
        use RecipientOutcome::*;
        for (code, outcome) in [
            (100, Accepted),
            (101, Accepted),
            (102, Accepted),
            (401, Rejected),
            (402, Rejected),
            (403, Rejected),
            (404, Rejected),
            (405, Retry),
            (406, Rejected),
            (407, Rejected),
            (409, Rejected),
            (500, Retry),
            (501, Retry),
            (502, Rejected),
            (999, Rejected),
        ] {
            assert_eq!(recipient_outcome(code), outcome, "{code}");
        }
    }

    /// The answer gives the messageId, or why it was not sent.
    #[test]
    fn answers() {
        let rules = web::OutcomeRules::default();
        assert_eq!(
            read_answer(&response(201, answer(101, "Success")), &rules),
            Ok(Sent::with_id("ATXid_1"))
        );
        assert_eq!(
            read_answer(&response(201, answer(403, "InvalidPhoneNumber")), &rules),
            Err(SendError::Rejected(
                "Africa's Talking refused it (statusCode 403, InvalidPhoneNumber)".into()
            ))
        );
        assert!(matches!(
            read_answer(&response(201, answer(500, "InternalServerError")), &rules),
            Err(SendError::Retry { .. })
        ));
        let none = json!({"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}});
        assert_eq!(
            read_answer(&response(201, none), &rules),
            Err(SendError::Rejected(
                "Africa's Talking sent it to no recipient: InvalidSenderId".into()
            ))
        );
    }

    /// Delivery report statuses.
    #[test]
    fn report_statuses() {
        use DeliveryStatus::*;
        for (status, event) in [
            ("Success", Some(Delivered)),
            ("Failed", Some(Failed)),
            ("Rejected", Some(Failed)),
            ("AbsentSubscriber", Some(Failed)),
            ("Expired", Some(Failed)),
            ("Sent", Some(Pending)),
            ("Submitted", Some(Pending)),
            ("Buffered", Some(Pending)),
            ("success", None),
        ] {
            assert_eq!(delivery_status(status), event, "{status}");
        }
    }
}
