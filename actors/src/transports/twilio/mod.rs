//! The `twilio` channel type: SMS through Twilio's Programmable Messaging REST API, with its
//! status callbacks and inbound-message webhook.
//!
//! Pieces: [`config`] (the channel's `config`), [`signature`] (`X-Twilio-Signature`), and
//! this module: the channel type, sending, the two webhooks. The HTTP mechanics (client,
//! channel log, outcome rules, provider health, webhook refusals) are [`crate::transports::web`]'s.
//!
//! # Wire format (Twilio Messages API, `2010-04-01`)
//!
//! | direction | request | Junebug's reading / answer |
//! |---|---|---|
//! | send (Junebug → Twilio) | `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic (`AccountSid`:auth token, or API key SID:secret), form (`application/x-www-form-urlencoded`, UTF-8): `To` (the message's `to`), `From` and/or `MessagingServiceSid`, `Body` (the content), `StatusCallback` (when configured) | `201` JSON Message resource: `submitted`, provider id its `sid` (`SM…`); `401` (error 20003, wrong credentials): `rejected` and status `down`/`auth_failed`; `429` (error 20429): the channel pauses for `Retry-After` (else `throttle_delay`) and sends again; `5xx`, timeout, no connection: retried after `retry_delay`; other `4xx` (JSON `{code, message, more_info, status}`, e.g. `21211` invalid `To`): `rejected` quoting it |
//! | status callback (Twilio → Junebug) | `POST /channels/{id}/inbound/status`, form: `MessageSid`, `MessageStatus`, `ErrorCode` (on failures), `AccountSid`, `From`, `To`, … | `200` (empty) once recorded as a delivery event of the message whose `sid` it names (see the mapping below); `400` without `MessageSid`/`MessageStatus` or with an unknown status; `503` when it cannot be recorded |
//! | inbound SMS (Twilio → Junebug) | `POST` (or `GET`) `/channels/{id}/inbound/mo`, form: `MessageSid`, `AccountSid`, `MessagingServiceSid`, `From`, `To`, `Body`, `NumMedia`, `NumSegments`, `MediaUrl{N}` | `200` `text/xml` `<Response/>` (empty TwiML: Twilio sends no reply of its own) once kept; `400` without `MessageSid` or `From`; `503` when it cannot be kept (Twilio logs error 11200 and does not retry by default: point its fallback URL at the same webhook to get a second try) |
//!
//! `MessageStatus` → delivery event (`submitted` itself comes from the send's `201`):
//!
//! | `MessageStatus` | event |
//! |---|---|
//! | `delivered`, `read` (delivered, then read on a channel that reports it) | `delivery_succeeded` |
//! | `undelivered`, `failed`, `canceled` | `delivery_failed` (`ErrorCode` in `event_details.error_code`) |
//! | `accepted`, `scheduled`, `queued`, `sending`, `sent`, `partially_delivered` | `delivery_pending` |
//!
//! With `validate_signatures`, a webhook request must carry `X-Twilio-Signature`: base64
//! of HMAC-SHA1 keyed with the auth token, over the URL Twilio called (`public_url` +
//! path + query when configured, else the URL the request arrived at) followed by the
//! sorted POST parameters (see [`signature`]). A missing or wrong signature answers `403`
//! and is logged as a warning. Other paths answer 404, other methods 405.
//!
//! # Status events
//!
//! Component `twilio`: `ok`/`ready` at start; `degraded`/`provider_failing` after
//! `degraded_after` failed requests in a row; `down`/`auth_failed` when Twilio refuses the
//! credentials; `ok`/`provider_ok` at the next accepted message.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::message::{DeliveryReport, DeliveryStatus, Message};
use crate::transport::{
    ChannelType, ConfigError, SendError, Sent, Transport, TransportContext, TransportError,
};
use crate::transports::parse_config;
use crate::transports::web::{
    self, bad_webhook, refuse_webhook, Health, Method, ProviderRequest, ProviderResponse,
};
use crate::webhook::{WebhookRequest, WebhookResponse};

pub mod config;
pub mod signature;

pub use config::{TwilioConfig, TwilioSettings};

/// The type's name, its status component and its key in `channel_data`.
const NAME: &str = "twilio";

/// The `twilio` channel type.
pub struct TwilioType;

impl ChannelType for TwilioType {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "Twilio SMS: the Messages API, status callbacks and inbound-message webhooks"
    }

    fn build(&self, _channel_id: &str, config: &Value) -> Result<Rc<dyn Transport>, ConfigError> {
        let settings = parse_config::<TwilioConfig>(config)?.validate()?;
        let health = Health::new(NAME, settings.requests.degraded_after);
        Ok(Rc::new(TwilioTransport {
            settings,
            ctx: RefCell::new(None),
            health,
        }))
    }
}

/// A `twilio` channel's transport; see the module docs.
pub struct TwilioTransport {
    settings: TwilioSettings,
    /// Set by `start`, cleared by `stop`.
    ctx: RefCell<Option<TransportContext>>,
    health: Health,
}

/// The delivery event of a `MessageStatus`; `None` for a status an outbound message never
/// has (`receiving`, `received`) or one Twilio does not document.
pub fn delivery_status(message_status: &str) -> Option<DeliveryStatus> {
    match message_status {
        "delivered" | "read" => Some(DeliveryStatus::Delivered),
        "undelivered" | "failed" | "canceled" => Some(DeliveryStatus::Failed),
        "accepted" | "scheduled" | "queued" | "sending" | "sent" | "partially_delivered" => {
            Some(DeliveryStatus::Pending)
        }
        _ => None,
    }
}

/// The answer to an inbound message: empty TwiML, so that Twilio sends nothing back.
fn empty_twiml() -> WebhookResponse {
    WebhookResponse {
        status: 200,
        content_type: "text/xml; charset=utf-8".to_owned(),
        body: b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_vec(),
    }
}

impl TwilioTransport {
    /// The Messages API request for `message` (sent to `to`).
    fn request(&self, message: &Message, to: &str) -> ProviderRequest {
        let settings = &self.settings;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("To", to);
        if let Some(from) = &settings.sender.from {
            form.append_pair("From", from);
        }
        if let Some(service) = &settings.sender.messaging_service_sid {
            form.append_pair("MessagingServiceSid", service);
        }
        form.append_pair("Body", message.content.as_deref().unwrap_or_default());
        if let Some(callback) = &settings.status_callback {
            form.append_pair("StatusCallback", callback);
        }
        ProviderRequest {
            method: Method::Post,
            url: settings.messages_url.clone(),
            headers: vec![("Accept".to_owned(), "application/json".to_owned())],
            auth: Some(settings.auth.clone()),
            body: Some((
                "application/x-www-form-urlencoded".to_owned(),
                form.finish().into_bytes(),
            )),
            timeout: settings.requests.timeout,
        }
    }

    /// A status callback.
    async fn status(&self, ctx: &TransportContext, request: &WebhookRequest) -> WebhookResponse {
        let redactor = &self.settings.redactor;
        let (Some(sid), Some(status)) =
            (request.field("MessageSid"), request.field("MessageStatus"))
        else {
            let reason = "a status callback needs MessageSid and MessageStatus";
            return bad_webhook(ctx, redactor, request, reason);
        };
        let Some(delivery) = delivery_status(&status) else {
            let reason = format!("unknown MessageStatus '{status}'");
            return bad_webhook(ctx, redactor, request, &reason);
        };
        let mut details = Map::from_iter([
            ("provider_status".to_owned(), json!(status)),
            ("provider_message_id".to_owned(), json!(sid)),
        ]);
        if let Some(code) = request.field("ErrorCode").filter(|code| !code.is_empty()) {
            details.insert("error_code".to_owned(), json!(code));
        }
        let report = DeliveryReport {
            provider_message_id: sid,
            status: delivery,
            details,
        };
        let answer = |_: Option<&str>| WebhookResponse::text(200, "");
        web::record_report(ctx, redactor, request, report, answer).await
    }

    /// An inbound message.
    async fn mo(&self, ctx: &TransportContext, request: &WebhookRequest) -> WebhookResponse {
        let redactor = &self.settings.redactor;
        let form = request.form();
        let field = |name: &str| {
            form.iter()
                .find(|(key, value)| key == name && !value.is_empty())
                .map(|(_, value)| value.clone())
        };
        let (Some(sid), Some(from)) = (field("MessageSid"), field("From")) else {
            let reason = "an inbound message needs MessageSid and From";
            return bad_webhook(ctx, redactor, request, reason);
        };
        let mut meta = Map::from_iter([("message_sid".to_owned(), json!(sid))]);
        for (name, key) in [
            ("AccountSid", "account_sid"),
            ("MessagingServiceSid", "messaging_service_sid"),
            ("NumMedia", "num_media"),
            ("NumSegments", "num_segments"),
        ] {
            if let Some(value) = field(name) {
                meta.insert(key.to_owned(), json!(value));
            }
        }
        let media: Vec<String> = form
            .iter()
            .filter(|(key, _)| key.starts_with("MediaUrl"))
            .map(|(_, url)| url.clone())
            .collect();
        if !media.is_empty() {
            meta.insert("media_urls".to_owned(), json!(media));
        }
        let message =
            web::inbound_message(ctx, NAME, "sms", (from, field("To")), field("Body"), meta);
        web::keep_inbound(ctx, redactor, request, message, empty_twiml()).await
    }
}

#[async_trait(?Send)]
impl Transport for TwilioTransport {
    /// Nothing to connect: a request per message.
    async fn start(&self, ctx: TransportContext) -> Result<(), TransportError> {
        *self.ctx.borrow_mut() = Some(ctx.clone());
        self.health
            .ready(&ctx, "Ready to send through Twilio".to_owned())
            .await;
        Ok(())
    }

    async fn send(&self, message: Message) -> Result<Sent, SendError> {
        let Some(ctx) = self.ctx.borrow().clone() else {
            return Err(SendError::Retry {
                reason: "the Twilio transport is not running".into(),
                after: Duration::from_secs(1),
            });
        };
        let Some(to) = message.to_addr.as_deref().filter(|to| !to.is_empty()) else {
            return Err(SendError::Rejected(
                "a Twilio message needs a 'to' number".into(),
            ));
        };
        let request = self.request(&message, to);
        let id = &message.message_id;
        let settings = &self.settings;
        let (redactor, rules) = (&settings.redactor, &settings.requests.rules);
        let read = |response: &ProviderResponse| Ok(web::sent_with_id(&ctx, id, response, "sid"));
        web::submit(&ctx, (redactor, &self.health), id, &request, rules, read).await
    }

    async fn webhook(&self, request: WebhookRequest) -> WebhookResponse {
        let Some(ctx) = self.ctx.borrow().clone() else {
            return WebhookResponse::text(503, "the channel is not running");
        };
        if !matches!(request.path.as_str(), "mo" | "status") {
            return WebhookResponse::not_found(&request);
        }
        if !matches!(request.method.as_str(), "GET" | "POST") {
            return WebhookResponse::text(405, "use POST (or GET)");
        }
        let settings = &self.settings;
        if let Some(key) = &settings.signing_key {
            let public_url = settings.public_url.as_deref();
            if !signature::is_signed(&request, key.reveal(), public_url) {
                let reason = "missing or invalid X-Twilio-Signature";
                return refuse_webhook(&ctx, &settings.redactor, &request, 403, reason);
            }
        }
        match request.path.as_str() {
            "mo" => self.mo(&ctx, &request).await,
            _ => self.status(&ctx, &request).await,
        }
    }

    async fn stop(&self) {
        self.ctx.borrow_mut().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every documented outbound status has its event; inbound and unknown ones none.
    #[test]
    fn message_statuses_map_to_delivery_events() {
        use DeliveryStatus::*;
        for (status, event) in [
            ("delivered", Some(Delivered)),
            ("read", Some(Delivered)),
            ("undelivered", Some(Failed)),
            ("failed", Some(Failed)),
            ("canceled", Some(Failed)),
            ("queued", Some(Pending)),
            ("accepted", Some(Pending)),
            ("sending", Some(Pending)),
            ("sent", Some(Pending)),
            ("received", None),
            ("Delivered", None),
        ] {
            assert_eq!(delivery_status(status), event, "{status}");
        }
    }

    /// The send request: the Messages URL, Basic auth, the documented form fields.
    #[test]
    fn the_send_request() {
        let config = json!({"account_sid": "AC1", "auth_token": "t", "from": "+1555",
            "status_callback_url": "https://jb.example/cb"});
        let settings = parse_config::<TwilioConfig>(&config)
            .unwrap()
            .validate()
            .unwrap();
        let twilio = TwilioTransport {
            health: Health::new(NAME, 1),
            settings,
            ctx: RefCell::new(None),
        };
        let message = Message {
            message_id: "m1".into(),
            timestamp: String::new(),
            to_addr: Some("+27820001234".into()),
            from_addr: None,
            group: None,
            in_reply_to: None,
            session_event: None,
            content: Some("hé & co".into()),
            transport_name: "c".into(),
            transport_type: "sms".into(),
            transport_metadata: Map::new(),
            helper_metadata: Map::new(),
            expires_at: None,
        };
        let request = twilio.request(&message, "+27820001234");
        assert_eq!(
            request.url,
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
        );
        let (kind, body) = request.body.unwrap();
        assert_eq!(kind, "application/x-www-form-urlencoded");
        let fields: Vec<(String, String)> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("To", "+27820001234"),
                ("From", "+1555"),
                ("Body", "hé & co"),
                ("StatusCallback", "https://jb.example/cb")
            ]
        );
    }
}
