//! The `http` channel type: a generic HTTP SMS aggregator, described entirely by its config.
//!
//! Pieces:
//!
//! - [`config`]: [`HttpConfig`] (the JSON `config`) and [`HttpSettings`], which builds each
//!   provider request;
//! - [`template`]: `{to}`-style placeholders in the URL, body and form fields;
//! - this module: the channel type, sending, and the two webhooks.
//!
//! The HTTP mechanics (the client, the channel log, what an answer means, status events,
//! answering bad webhooks) are the shared core's, [`crate::transports::web`].
//!
//! # Wire contract
//!
//! | direction | request | Junebug's reading / answer |
//! |---|---|---|
//! | send (Junebug → provider) | `method` `url` with `headers`, `auth`, a `json_body` or `form_body` built from the message | 2xx (or `accepted_statuses`): `submitted`, provider id from `message_id_field`; 429: the channel pauses for `Retry-After`, then retries; 5xx, timeout, no connection (or `retry_statuses`): retried after `retry_delay`; other 4xx (or `rejected_statuses`): `rejected` with the status and a body excerpt |
//! | inbound (provider → Junebug) | `POST` or `GET /channels/{id}/inbound/mo`, JSON or form fields named by `mo_fields` (`from` required) | 200 `{"message_id": <ours>}` once kept; 400 for a payload without the fields (logged as a warning); 503 when it cannot be kept (the provider should retry) |
//! | delivery report (provider → Junebug) | `POST` or `GET /channels/{id}/inbound/dlr`, JSON or form fields named by `dlr_fields`; the status mapped through `dlr_statuses` | 200 once the report is recorded as `delivery_succeeded`/`failed`/`pending` of its message (or known to match none); 400 for a missing field or an unknown status; 503 when it cannot be recorded |
//!
//! JSON field names may be dotted paths (`message.text`). Any other webhook path answers 404,
//! any other method 405. With `webhook_token` set, a webhook request without it (as
//! `Authorization: Bearer …`, `X-Webhook-Token` or `?token=`) answers 401 and is logged.
//!
//! # Status events
//!
//! Component `http`: `ok`/`ready` when the channel starts; `degraded`/`provider_failing`
//! (details: `failures`, `reason`) after `degraded_after` failed requests in a row (5xx,
//! timeouts, connection errors, throttling); `ok`/`provider_ok` at the next success.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::message::{new_message_id, timestamp_now, DeliveryReport, Message};
use crate::transport::{
    ChannelType, ConfigError, SendError, Sent, Transport, TransportContext, TransportError,
};
use crate::transports::parse_config;
use crate::transports::web::{
    self, bad_webhook, dotted, refuse_webhook, scalar_text, Health, ProviderResponse,
};
use crate::webhook::{WebhookRequest, WebhookResponse};

pub mod config;
pub mod template;

#[cfg(test)]
mod tests;

pub use config::{HttpConfig, HttpSettings};

/// The status component of this channel type.
const COMPONENT: &str = "http";

/// The `http` channel type.
pub struct HttpType;

impl ChannelType for HttpType {
    fn name(&self) -> &'static str {
        "http"
    }

    fn description(&self) -> &'static str {
        "A generic HTTP SMS aggregator: requests, answers and webhooks described by config"
    }

    fn build(&self, _channel_id: &str, config: &Value) -> Result<Rc<dyn Transport>, ConfigError> {
        let settings = parse_config::<HttpConfig>(config)?.validate()?;
        let health = Health::new(COMPONENT, settings.degraded_after);
        Ok(Rc::new(HttpTransport {
            settings: Rc::new(settings),
            ctx: RefCell::new(None),
            health,
        }))
    }
}

/// An `http` channel's transport; see the module docs.
pub struct HttpTransport {
    settings: Rc<HttpSettings>,
    /// Set by `start`, cleared by `stop`.
    ctx: RefCell<Option<TransportContext>>,
    health: Health,
}

impl HttpTransport {
    fn context(&self) -> Option<TransportContext> {
        self.ctx.borrow().clone()
    }
}

#[async_trait(?Send)]
impl Transport for HttpTransport {
    /// Nothing to connect: HTTP requests are made per message.
    async fn start(&self, ctx: TransportContext) -> Result<(), TransportError> {
        *self.ctx.borrow_mut() = Some(ctx.clone());
        let message = "Ready to send to the provider".to_owned();
        self.health.ready(&ctx, message).await;
        Ok(())
    }

    async fn send(&self, message: Message) -> Result<Sent, SendError> {
        let settings = &self.settings;
        let Some(ctx) = self.context() else {
            return Err(SendError::Retry {
                reason: "the HTTP transport is not running".into(),
                after: Duration::from_secs(1),
            });
        };
        let request = settings.request(&message, ctx.channel_id());
        let id = &message.message_id;
        let (redactor, rules) = (&settings.redactor, &settings.rules);
        let read = |response: &ProviderResponse| {
            Ok(match &settings.message_id_field {
                Some(field) => web::sent_with_id(&ctx, id, response, field),
                None => Sent::default(),
            })
        };
        web::submit(&ctx, (redactor, &self.health), id, &request, rules, read).await
    }

    async fn webhook(&self, request: WebhookRequest) -> WebhookResponse {
        let Some(ctx) = self.context() else {
            return WebhookResponse::text(503, "the channel is not running");
        };
        if !matches!(request.path.as_str(), "mo" | "dlr") {
            return WebhookResponse::not_found(&request);
        }
        if !matches!(request.method.as_str(), "GET" | "POST") {
            return WebhookResponse::text(405, "use POST (or GET)");
        }
        let redactor = &self.settings.redactor;
        if let Some(token) = &self.settings.webhook_token {
            if !web::has_token(&request, token.reveal()) {
                let reason = "missing or wrong webhook token";
                return refuse_webhook(&ctx, redactor, &request, 401, reason);
            }
        }
        let fields = match Fields::of(&request) {
            Ok(fields) => fields,
            Err(reason) => return bad_webhook(&ctx, redactor, &request, &reason),
        };
        match request.path.as_str() {
            "mo" => self.mo(&ctx, &request, &fields).await,
            _ => self.dlr(&ctx, &request, &fields).await,
        }
    }

    async fn stop(&self) {
        self.ctx.borrow_mut().take();
    }
}

impl HttpTransport {
    /// An inbound message.
    async fn mo(
        &self,
        ctx: &TransportContext,
        request: &WebhookRequest,
        fields: &Fields,
    ) -> WebhookResponse {
        let settings = &self.settings;
        let [to, from, content, provider_id] = &settings.mo_fields;
        let Some(from) = fields.get(from) else {
            let reason = format!("no '{from}' field (the sender)");
            return bad_webhook(ctx, &settings.redactor, request, &reason);
        };
        let provider_id = fields.get(provider_id);
        let mut http = Map::new();
        if let Some(provider_id) = &provider_id {
            http.insert("provider_message_id".into(), json!(provider_id));
        }
        let message = Message {
            message_id: new_message_id(),
            timestamp: timestamp_now(),
            to_addr: fields.get(to),
            from_addr: Some(from),
            group: None,
            in_reply_to: None,
            session_event: None,
            content: fields.get(content),
            transport_name: ctx.channel_id().to_owned(),
            transport_type: settings.transport_type.clone(),
            transport_metadata: http.clone(),
            helper_metadata: Map::from_iter([(COMPONENT.to_owned(), Value::Object(http))]),
            expires_at: None,
        };
        let kept = WebhookResponse::json(200, &json!({ "message_id": message.message_id }));
        web::keep_inbound(ctx, &settings.redactor, request, message, kept).await
    }

    /// A delivery report.
    async fn dlr(
        &self,
        ctx: &TransportContext,
        request: &WebhookRequest,
        fields: &Fields,
    ) -> WebhookResponse {
        let settings = &self.settings;
        let [id_field, status_field] = &settings.dlr_fields;
        let redactor = &settings.redactor;
        let Some(provider_id) = fields.get(id_field) else {
            let reason = format!("no '{id_field}' field (the message id)");
            return bad_webhook(ctx, redactor, request, &reason);
        };
        let Some(raw_status) = fields.get(status_field) else {
            let reason = format!("no '{status_field}' field (the delivery status)");
            return bad_webhook(ctx, redactor, request, &reason);
        };
        let Some(status) = settings.dlr_statuses.get(&raw_status.to_lowercase()) else {
            let known: Vec<&str> = settings.dlr_statuses.keys().map(String::as_str).collect();
            let reason = format!(
                "unknown delivery status '{raw_status}' (known: {})",
                known.join(", ")
            );
            return bad_webhook(ctx, redactor, request, &reason);
        };
        let report = DeliveryReport {
            provider_message_id: provider_id.clone(),
            status: *status,
            details: Map::from_iter([
                ("provider_status".to_owned(), json!(raw_status)),
                ("provider_message_id".to_owned(), json!(provider_id)),
            ]),
        };
        let answer = |id: Option<&str>| WebhookResponse::json(200, &json!({ "message_id": id }));
        web::record_report(ctx, redactor, request, report, answer).await
    }
}

/// A webhook's fields: a JSON object body, or form fields (query and form body).
enum Fields {
    Json(Value),
    Form(Vec<(String, String)>),
}

impl Fields {
    /// Reads `request`; the error says why it cannot be read.
    fn of(request: &WebhookRequest) -> Result<Fields, String> {
        let json = request
            .header("content-type")
            .is_some_and(|kind| kind.to_ascii_lowercase().contains("json"));
        if json {
            match request.json() {
                Ok(value @ Value::Object(_)) => Ok(Fields::Json(value)),
                Ok(_) => Err("the JSON body is not an object".into()),
                Err(e) => Err(format!("the body is not JSON: {e}")),
            }
        } else {
            Ok(Fields::Form(request.form()))
        }
    }

    /// Field `name` (a dotted path in JSON) as text; `None` when missing or not a scalar.
    fn get(&self, name: &str) -> Option<String> {
        match self {
            Fields::Json(body) => dotted(body, name).and_then(scalar_text),
            Fields::Form(fields) => fields
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone()),
        }
    }
}
