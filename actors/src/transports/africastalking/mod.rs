//! The `africastalking` channel type: Africa's Talking USSD ([`ussd`], answered
//! synchronously through [`crate::transports::ussd_http`]) and, when `username` and
//! `api_key` are configured, SMS ([`sms`], through [`crate::transports::web`]).
//!
//! # Which way a message goes
//!
//! [`AfricasTalkingTransport::send`] decides, in one place: a reply to a USSD step (its
//! `transport_metadata.africastalking` has the step's `session_id`, copied from the step)
//! goes to the USSD machinery, which answers the waiting step or rejects a late reply; any
//! other message is an SMS, rejected with [`NO_SMS`] when SMS is not configured.
//!
//! # Wire format (Africa's Talking SMS API)
//!
//! | direction | request | Junebug's reading / answer |
//! |---|---|---|
//! | send (Junebug → Africa's Talking) | `POST {base_url}/version1/messaging`, headers `apiKey: <api_key>`, `Accept: application/json`; form (`application/x-www-form-urlencoded`, UTF-8): `username`, `to` (the message's `to`), `message` (the content), `from` (`sender_id`, when set), `linkId` (a reply to an inbound premium SMS) | `201` JSON `{"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: …", "Recipients": [{"statusCode": 101, "number": "+254…", "status": "Success", "cost": "KES 0.8000", "messageId": "ATXid_…"}]}}`: the recipient's `statusCode` decides (table below), provider id its `messageId`; no recipient: `rejected` quoting `Message`; `401` (wrong `apiKey`): `rejected` and status `down`/`auth_failed`; `429`: the channel pauses (`Retry-After`, else `throttle_delay`); `5xx`, timeout: retried after `retry_delay`; other `4xx`: `rejected` quoting the answer |
//! | delivery report (Africa's Talking → Junebug) | `POST /channels/{id}/inbound/dlr`, form: `id` (the `messageId`), `status`, `phoneNumber`, `networkCode`, `failureReason` (on failures), `retryCount` | `200 OK` once recorded (table below; `failureReason`, `networkCode`, `retryCount` in `event_details`); `400` without `id`/`status` or with an unknown status; `503` when it cannot be recorded |
//! | inbound SMS (Africa's Talking → Junebug) | `POST /channels/{id}/inbound/mo`, form: `from`, `to` (the short code), `text`, `id`, `linkId` (premium), `date`, `networkCode` | `200 OK` once kept (`id`, `linkId`, `date`, `networkCode` in `channel_data.africastalking` as `message_id`, `link_id`, `date`, `network_code`); `400` without `from`; `503` when it cannot be kept (the callback failed, as Africa's Talking's callback logs show) |
//!
//! | recipient `statusCode` | outcome |
//! |---|---|
//! | `100` Processed, `101` Sent, `102` Queued | `submitted` |
//! | `405` InsufficientBalance, `500` InternalServerError, `501` GatewayError | retried after `retry_delay` (the account or Africa's Talking must mend it, not the message) |
//! | `401` RiskHold, `402` InvalidSenderId, `403` InvalidPhoneNumber, `404` UnsupportedNumberType, `406` UserInBlacklist, `407` CouldNotRoute, `409` DoNotDisturbRejection, `502` RejectedByGateway, any other | `rejected` with the code and status |
//!
//! | delivery report `status` | event |
//! |---|---|
//! | `Success` | `delivery_succeeded` |
//! | `Failed`, `Rejected`, `AbsentSubscriber`, `Expired` | `delivery_failed` |
//! | `Sent`, `Submitted`, `Buffered` | `delivery_pending` |
//!
//! With `web_username`/`web_password`, the SMS webhooks, like the USSD one, take only
//! requests with those Basic credentials (401 and a warning in the channel log otherwise).
//!
//! # Status events
//!
//! With SMS configured, component `africastalking`: `ok`/`ready` at start;
//! `degraded`/`provider_failing` after `degraded_after` failed requests in a row;
//! `down`/`auth_failed` when the API key is refused; `ok`/`provider_ok` at the next success.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use crate::message::Message;
use crate::transport::{
    ChannelType, ConfigError, SendError, Sent, Transport, TransportContext, TransportError,
};
use crate::transports::parse_config;
use crate::transports::ussd_http::{UssdHttpConfig, UssdHttpTransport};
use crate::transports::web::{self, refuse_webhook, Health, ProviderResponse};
use crate::webhook::{WebhookRequest, WebhookResponse};

pub mod sms;
pub mod ussd;

pub use ussd::AfricasTalking;

/// The type's name and its status component.
const NAME: &str = "africastalking";

/// Why a message that is not a USSD reply is rejected when SMS is not configured.
pub const NO_SMS: &str = "This africastalking channel only answers USSD steps (send with \
    reply_to set to the step's id); configure username and api_key to send SMS.";

/// An `africastalking` channel's `config`: the USSD keys and the SMS keys side by side.
#[derive(Deserialize, Clone, Default)]
pub struct AfricasTalkingConfig {
    /// USSD: `reply_timeout`, `fallback_text`, `web_path`, … (see [`UssdHttpConfig`]).
    #[serde(flatten)]
    pub ussd: UssdHttpConfig,
    /// SMS: `username`, `api_key`, `sender_id`, `base_url`, … (see [`sms::SmsConfig`]).
    #[serde(flatten)]
    pub sms: sms::SmsConfig,
}

/// The `africastalking` entry of the [`crate::TransportRegistry`].
pub struct AfricasTalkingType;

impl ChannelType for AfricasTalkingType {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "Africa's Talking: USSD sessions over HTTP callbacks (CON/END), and SMS with delivery \
         reports and inbound messages"
    }

    fn build(&self, _channel_id: &str, config: &Value) -> Result<Rc<dyn Transport>, ConfigError> {
        let config = parse_config::<AfricasTalkingConfig>(config)?;
        let ussd = UssdHttpTransport::new(AfricasTalking, config.ussd.validate()?);
        let sms = config.sms.validate()?.map(|settings| Sms {
            health: Health::new(NAME, settings.requests.degraded_after),
            settings,
        });
        Ok(Rc::new(AfricasTalkingTransport {
            ussd,
            sms,
            ctx: RefCell::new(None),
        }))
    }
}

/// SMS settings and the health of the SMS API.
struct Sms {
    settings: sms::SmsSettings,
    health: Health,
}

/// An `africastalking` channel's transport: USSD always, SMS when configured.
pub struct AfricasTalkingTransport {
    ussd: UssdHttpTransport<AfricasTalking>,
    sms: Option<Sms>,
    /// Set by `start`, cleared by `stop`.
    ctx: RefCell<Option<TransportContext>>,
}

/// Whether `message` replies to a USSD step: the step's `session_id` is in the
/// `transport_metadata` the reply copied from it.
fn is_ussd_reply(message: &Message) -> bool {
    message.in_reply_to.is_some()
        && message
            .transport_metadata
            .get(NAME)
            .and_then(|meta| meta.get("session_id"))
            .is_some()
}

#[async_trait(?Send)]
impl Transport for AfricasTalkingTransport {
    async fn start(&self, ctx: TransportContext) -> Result<(), TransportError> {
        *self.ctx.borrow_mut() = Some(ctx.clone());
        if let Some(sms) = &self.sms {
            let message = "Ready to send SMS through Africa's Talking".to_owned();
            sms.health.ready(&ctx, message).await;
        }
        self.ussd.start(ctx).await
    }

    async fn send(&self, message: Message) -> Result<Sent, SendError> {
        if is_ussd_reply(&message) {
            return self.ussd.send(message).await;
        }
        let Some(sms) = &self.sms else {
            return Err(SendError::Rejected(NO_SMS.to_owned()));
        };
        let Some(ctx) = self.ctx.borrow().clone() else {
            return Err(SendError::Retry {
                reason: "the Africa's Talking transport is not running".into(),
                after: Duration::from_secs(1),
            });
        };
        let Some(to) = message.to_addr.as_deref().filter(|to| !to.is_empty()) else {
            return Err(SendError::Rejected("an SMS needs a 'to' number".into()));
        };
        let request = sms.settings.request(&message, to);
        let rules = &sms.settings.requests.rules;
        let read = |response: &ProviderResponse| sms::read_answer(response, rules);
        let with = (&sms.settings.redactor, &sms.health);
        web::submit(&ctx, with, &message.message_id, &request, rules, read).await
    }

    async fn webhook(&self, request: WebhookRequest) -> WebhookResponse {
        let is_sms_path = matches!(request.path.as_str(), "mo" | "dlr")
            && request.path != self.ussd.settings().web_path;
        if !is_sms_path {
            return self.ussd.webhook(request).await;
        }
        let Some(ctx) = self.ctx.borrow().clone() else {
            return WebhookResponse::text(503, "the channel is not running");
        };
        let redactor = self
            .sms
            .as_ref()
            .map(|sms| sms.settings.redactor.clone())
            .unwrap_or_default();
        if !self.ussd.authorised(&request) {
            let reason = "missing or wrong Basic credentials (web_username/web_password)";
            return refuse_webhook(&ctx, &redactor, &request, 401, reason);
        }
        if request.method != "POST" {
            return WebhookResponse::text(405, "use POST");
        }
        match request.path.as_str() {
            "mo" => sms::inbound(&ctx, &redactor, &request).await,
            _ => sms::delivery_report(&ctx, &redactor, &request).await,
        }
    }

    async fn stop(&self) {
        self.ctx.borrow_mut().take();
        self.ussd.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map};

    use super::*;

    fn config(value: Value) -> Result<AfricasTalkingConfig, ConfigError> {
        parse_config::<AfricasTalkingConfig>(&value)
    }

    /// USSD-only configs stay valid; SMS needs username and api_key together; errors name
    /// the key; `from` is an alias of `sender_id`.
    #[test]
    fn sms_settings_are_optional_but_whole() {
        assert!(config(json!({"reply_timeout": 5}))
            .unwrap()
            .sms
            .validate()
            .unwrap()
            .is_none());
        let sms = config(json!({"username": "sandbox", "api_key": "k", "from": "JB",
                                "base_url": "https://api.sandbox.africastalking.com/"}))
        .unwrap()
        .sms
        .validate()
        .unwrap()
        .unwrap();
        assert_eq!(
            sms.messaging_url,
            "https://api.sandbox.africastalking.com/version1/messaging"
        );
        assert_eq!(sms.sender_id.as_deref(), Some("JB"));
        for (value, key) in [
            (json!({"username": "u"}), "api_key"),
            (json!({"api_key": "k"}), "username"),
            (
                json!({"username": "u", "api_key": "k", "base_url": "x"}),
                "base_url",
            ),
            (
                json!({"username": "u", "api_key": "k", "timeout": 0}),
                "timeout",
            ),
        ] {
            let error = config(value.clone()).and_then(|c| c.sms.validate().map(|_| ()));
            assert_eq!(error.unwrap_err().key, key, "{value}");
        }
        assert_eq!(
            AfricasTalkingType
                .build("c", &json!({"api_key": 3}))
                .err()
                .map(|e| e.key),
            Some("api_key".to_owned())
        );
    }

    /// Only a reply carrying a USSD step's session id is a USSD reply.
    #[test]
    fn ussd_replies_are_told_from_sms() {
        let message = |in_reply_to: Option<&str>, meta: Value| Message {
            message_id: "m".into(),
            timestamp: String::new(),
            to_addr: Some("+254711000111".into()),
            from_addr: None,
            group: None,
            in_reply_to: in_reply_to.map(str::to_owned),
            session_event: None,
            content: Some("hi".into()),
            transport_name: "c".into(),
            transport_type: "sms".into(),
            transport_metadata: meta.as_object().cloned().unwrap_or_else(Map::new),
            helper_metadata: Map::new(),
            expires_at: None,
        };
        let step = json!({"africastalking": {"session_id": "ATUid_1"}});
        let sms = json!({"africastalking": {"link_id": "l"}});
        assert!(is_ussd_reply(&message(Some("in"), step.clone())));
        assert!(!is_ussd_reply(&message(None, step)));
        assert!(!is_ussd_reply(&message(Some("in"), sms)));
        assert!(!is_ussd_reply(&message(None, json!({}))));
    }
}
