//! The `config` of an `http` channel: [`HttpConfig`] as the API receives it, and
//! [`HttpSettings`], what [`HttpConfig::validate`] makes of it (templates parsed, URL checked,
//! defaults filled in), ready to build a [`ProviderRequest`] for each message.
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::template::Template;
use crate::message::{DeliveryStatus, Message};
use crate::transport::ConfigError;
use crate::transports::web::{
    Auth, Method, OutcomeRules, ProviderRequest, Redactor, RequestConfig,
};
use crate::transports::Password;

/// An `http` channel's `config` object. Every key but `url` is optional. No `Debug`: it
/// holds credentials in plain JSON (`auth`, `headers`); [`HttpSettings`] masks them.
#[derive(Deserialize, Clone, Default, PartialEq)]
pub struct HttpConfig {
    /// The provider's send URL, a template: `{to}`, `{from}`, `{content}`, `{message_id}`,
    /// `{reply_to}` and `{channel_id}` are replaced by the message's values, percent-encoded.
    /// Required; `http` or `https`.
    pub url: String,
    /// `POST` (default) or `GET`.
    #[serde(default)]
    pub method: Option<String>,
    /// A JSON body template: any JSON whose strings may hold placeholders (a string that is
    /// exactly one placeholder becomes that value, `null` when the message has none). The
    /// default for `POST` without `form_body`: `{"to": "{to}", "from": "{from}", "content":
    /// "{content}", "message_id": "{message_id}"}`.
    #[serde(default)]
    pub json_body: Option<Value>,
    /// Form fields instead: name → template. Sent as an `application/x-www-form-urlencoded`
    /// body with `POST`, appended to the URL's query with `GET`.
    #[serde(default)]
    pub form_body: Option<BTreeMap<String, String>>,
    /// Extra request headers, name → value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Credentials: `{"type": "basic", "username": …, "password": …}` or `{"type":
    /// "bearer", "token": …}` (see [`AuthConfig`]; kept as JSON here so that an error
    /// inside it is reported under `auth`). Never logged.
    #[serde(default)]
    pub auth: Option<Value>,
    /// Other values to mask in the channel log (an API key written into `url`, say).
    #[serde(default)]
    pub secrets: Vec<Password>,
    /// Where the provider's id of the message is in its JSON answer: a dotted path such as
    /// `id` or `data.messages.0.id`. Without it, messages get no provider id (and delivery
    /// reports cannot be matched).
    #[serde(default)]
    pub message_id_field: Option<String>,
    /// Statuses that mean accepted, besides 2xx.
    #[serde(default)]
    pub accepted_statuses: Vec<u16>,
    /// Statuses that mean rejected for good (default: 4xx other than 429, and 1xx/3xx).
    #[serde(default)]
    pub rejected_statuses: Vec<u16>,
    /// Statuses that mean try again later (default: 5xx).
    #[serde(default)]
    pub retry_statuses: Vec<u16>,
    /// `timeout`, `retry_delay`, `throttle_delay`, `degraded_after`: see [`RequestConfig`].
    #[serde(flatten)]
    pub requests: RequestConfig,
    /// Field names of the inbound (`mo`) webhook: `to`, `from`, `content`, `message_id` (the
    /// provider's id). Dotted paths in a JSON body. Defaults: the same names.
    #[serde(default)]
    pub mo_fields: MoFields,
    /// Field names of the delivery-report (`dlr`) webhook: `message_id` (the provider's id
    /// of our message, default `id`) and `status` (default `status`).
    #[serde(default)]
    pub dlr_fields: DlrFields,
    /// The provider's status values → `delivered`, `failed` or `pending`. Default:
    /// `delivered`, `failed` and `pending` mean themselves. Compared case-insensitively.
    #[serde(default)]
    pub dlr_statuses: Option<BTreeMap<String, DeliveryStatus>>,
    /// The `transport_type` of inbound messages (default `sms`).
    #[serde(default)]
    pub transport_type: Option<String>,
    /// When set, the webhooks take only requests that carry it (`Authorization: Bearer …`,
    /// an `X-Webhook-Token` header or a `token` query parameter); others get 401. Never logged.
    #[serde(default)]
    pub webhook_token: Option<Password>,
}

/// Credentials for the provider.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Password,
    },
    /// A bearer token.
    Bearer {
        /// The token.
        token: Password,
    },
}

/// Field names of the `mo` webhook.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MoFields {
    /// Our number (default `to`).
    #[serde(default)]
    pub to: Option<String>,
    /// The sender (default `from`). Required in each request.
    #[serde(default)]
    pub from: Option<String>,
    /// The text (default `content`).
    #[serde(default)]
    pub content: Option<String>,
    /// The provider's id of the message (default `message_id`).
    #[serde(default)]
    pub message_id: Option<String>,
}

/// Field names of the `dlr` webhook.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DlrFields {
    /// The provider's id of our message (default `id`).
    #[serde(default)]
    pub message_id: Option<String>,
    /// Its delivery status (default `status`).
    #[serde(default)]
    pub status: Option<String>,
}

/// A JSON body template, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonTemplate {
    /// A value without placeholders.
    Literal(Value),
    /// A string with placeholders.
    Text(Template),
    /// An array.
    Array(Vec<JsonTemplate>),
    /// An object.
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    fn parse(value: &Value) -> Result<JsonTemplate, String> {
        Ok(match value {
            Value::String(text) => JsonTemplate::Text(Template::parse(text)?),
            Value::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .map(JsonTemplate::parse)
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), JsonTemplate::parse(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => JsonTemplate::Literal(other.clone()),
        })
    }

    /// The body for `message`.
    pub fn render(&self, message: &Message, channel_id: &str) -> Value {
        match self {
            JsonTemplate::Literal(value) => value.clone(),
            JsonTemplate::Text(template) => match template.sole_field() {
                Some(field) => super::template::value(message, channel_id, field)
                    .map_or(Value::Null, |v| Value::String(v.to_owned())),
                None => Value::String(template.render(message, channel_id)),
            },
            JsonTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.render(message, channel_id))
                    .collect(),
            ),
            JsonTemplate::Object(fields) => Value::Object(Map::from_iter(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.render(message, channel_id))),
            )),
        }
    }
}

/// The request body, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// JSON.
    Json(JsonTemplate),
    /// Form fields (a body with POST, the query with GET).
    Form(Vec<(String, Template)>),
    /// None (GET without fields).
    None,
}

/// A validated `http` config. Its `Debug` shows header names only (values may be keys).
#[derive(Clone)]
pub struct HttpSettings {
    /// The URL template.
    pub url: Template,
    /// GET or POST.
    pub method: Method,
    /// What goes in the body (or the query).
    pub body: Body,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Credentials.
    pub auth: Option<Auth>,
    /// Masks the secrets above in the channel log.
    pub redactor: Redactor,
    /// Dotted path of the provider's message id in its answer.
    pub message_id_field: Option<String>,
    /// What answers mean.
    pub rules: OutcomeRules,
    /// Request timeout.
    pub timeout: Duration,
    /// Failures in a row before `degraded`.
    pub degraded_after: u32,
    /// `mo` field names: to, from, content, provider id.
    pub mo_fields: [String; 4],
    /// `dlr` field names: provider id, status.
    pub dlr_fields: [String; 2],
    /// Provider status (lower case) → outcome.
    pub dlr_statuses: BTreeMap<String, DeliveryStatus>,
    /// `transport_type` of inbound messages.
    pub transport_type: String,
    /// The token webhooks must carry, if any.
    pub webhook_token: Option<Password>,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpSettings")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("body", &self.body)
            .field("header_names", &header_names)
            .field("auth", &self.auth)
            .field("message_id_field", &self.message_id_field)
            .field("rules", &self.rules)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Header names whose configured values are secrets (masked in the channel log).
fn secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["key", "token", "auth", "secret", "pass"]
        .iter()
        .any(|part| name.contains(part))
}

impl HttpConfig {
    /// Checks the config and makes settings of it; errors name the key.
    pub fn validate(self) -> Result<HttpSettings, ConfigError> {
        let url = Template::parse(&self.url).map_err(|e| ConfigError::new("url", e))?;
        check_url(&url)?;
        let method = match self
            .method
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("POST") => Method::Post,
            Some("GET") => Method::Get,
            Some(other) => {
                return Err(ConfigError::new(
                    "method",
                    format!("must be POST or GET, not {other:?}"),
                ))
            }
        };
        let body = match (self.json_body, self.form_body) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "form_body",
                    "give json_body or form_body, not both",
                ))
            }
            (Some(_), None) if method == Method::Get => {
                return Err(ConfigError::new(
                    "json_body",
                    "a GET request has no body: use form_body (sent in the query)",
                ))
            }
            (Some(json), None) => Body::Json(
                JsonTemplate::parse(&json).map_err(|e| ConfigError::new("json_body", e))?,
            ),
            (None, Some(form)) => Body::Form(
                form.iter()
                    .map(|(name, value)| {
                        Template::parse(value)
                            .map(|t| (name.clone(), t))
                            .map_err(|e| ConfigError::new(format!("form_body.{name}"), e))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (None, None) if method == Method::Get => Body::None,
            (None, None) => Body::Json(
                JsonTemplate::parse(&serde_json::json!({
                    "to": "{to}", "from": "{from}", "content": "{content}",
                    "message_id": "{message_id}",
                }))
                .map_err(|e| ConfigError::new("json_body", e))?,
            ),
        };
        let mut headers = Vec::new();
        let mut secrets: Vec<String> = self.secrets.iter().map(|s| s.reveal().to_owned()).collect();
        for (name, value) in self.headers {
            let key = format!("headers.{name}");
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::new(key, "is not a valid header name"));
            }
            if reqwest::header::HeaderValue::from_str(&value).is_err() {
                return Err(ConfigError::new(key, "is not a valid header value"));
            }
            if secret_header(&name) {
                secrets.push(value.clone());
            }
            headers.push((name, value));
        }
        if let Some(token) = &self.webhook_token {
            if token.reveal().is_empty() {
                return Err(ConfigError::new("webhook_token", "must not be empty"));
            }
            secrets.push(token.reveal().to_owned());
        }
        let auth = match self.auth {
            None | Some(Value::Null) => None,
            Some(auth) => Some(
                serde_json::from_value::<AuthConfig>(auth)
                    .map_err(|e| ConfigError::new("auth", e.to_string()))?,
            ),
        };
        let auth = match auth {
            None => None,
            Some(AuthConfig::Basic { username, password }) => {
                if username.contains(':') {
                    return Err(ConfigError::new("auth.username", "must not contain ':'"));
                }
                secrets.push(password.reveal().to_owned());
                Some(Auth::Basic { username, password })
            }
            Some(AuthConfig::Bearer { token }) => {
                if token.reveal().is_empty() {
                    return Err(ConfigError::new("auth.token", "must not be empty"));
                }
                secrets.push(token.reveal().to_owned());
                Some(Auth::Bearer(token))
            }
        };
        if let Some(field) = &self.message_id_field {
            if field.is_empty() || field.split('.').any(str::is_empty) {
                return Err(ConfigError::new(
                    "message_id_field",
                    "must be a dotted path such as id or data.messages.0.id",
                ));
            }
        }
        for (key, list) in [
            ("accepted_statuses", &self.accepted_statuses),
            ("rejected_statuses", &self.rejected_statuses),
            ("retry_statuses", &self.retry_statuses),
        ] {
            if let Some(bad) = list.iter().find(|s| !(100..=599).contains(*s)) {
                return Err(ConfigError::new(
                    key,
                    format!("{bad} is not an HTTP status (100 to 599)"),
                ));
            }
        }
        let requests = self.requests.validate()?;
        let rules = OutcomeRules {
            accepted: self.accepted_statuses,
            rejected: self.rejected_statuses,
            retry: self.retry_statuses,
            ..requests.rules
        };
        let name = |value: Option<String>, default: &str, key: &str| {
            let value = value.unwrap_or_else(|| default.to_owned());
            if value.is_empty() {
                Err(ConfigError::new(key, "must not be empty"))
            } else {
                Ok(value)
            }
        };
        let mo = self.mo_fields;
        let mo_fields = [
            name(mo.to, "to", "mo_fields.to")?,
            name(mo.from, "from", "mo_fields.from")?,
            name(mo.content, "content", "mo_fields.content")?,
            name(mo.message_id, "message_id", "mo_fields.message_id")?,
        ];
        let dlr = self.dlr_fields;
        let dlr_fields = [
            name(dlr.message_id, "id", "dlr_fields.message_id")?,
            name(dlr.status, "status", "dlr_fields.status")?,
        ];
        let dlr_statuses = match self.dlr_statuses {
            Some(table) if table.is_empty() => {
                return Err(ConfigError::new("dlr_statuses", "must not be empty"))
            }
            Some(table) => table
                .into_iter()
                .map(|(k, v)| (k.to_lowercase(), v))
                .collect(),
            None => BTreeMap::from([
                ("delivered".to_owned(), DeliveryStatus::Delivered),
                ("failed".to_owned(), DeliveryStatus::Failed),
                ("pending".to_owned(), DeliveryStatus::Pending),
            ]),
        };
        Ok(HttpSettings {
            url,
            method,
            body,
            headers,
            auth,
            redactor: Redactor::new(secrets.iter().map(String::as_str)),
            message_id_field: self.message_id_field,
            rules,
            timeout: requests.timeout,
            degraded_after: requests.degraded_after,
            mo_fields,
            dlr_fields,
            dlr_statuses,
            transport_type: self.transport_type.unwrap_or_else(|| "sms".to_owned()),
            webhook_token: self.webhook_token,
        })
    }
}

/// The URL, filled with sample values, must be an absolute `http`/`https` URL.
fn check_url(url: &Template) -> Result<(), ConfigError> {
    let sample = Message {
        message_id: "0".repeat(32),
        timestamp: String::new(),
        to_addr: Some("+27000000000".into()),
        from_addr: Some("+27000000001".into()),
        group: None,
        in_reply_to: None,
        session_event: None,
        content: Some("sample text".into()),
        transport_name: String::new(),
        transport_type: String::new(),
        transport_metadata: Map::new(),
        helper_metadata: Map::new(),
        expires_at: None,
    };
    let rendered = url.render_url(&sample, "channel");
    match url::Url::parse(&rendered) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        Ok(parsed) => Err(ConfigError::new(
            "url",
            format!("must be an http or https URL, not {}", parsed.scheme()),
        )),
        Err(e) => Err(ConfigError::new("url", format!("is not a URL: {e}"))),
    }
}

impl HttpSettings {
    /// The request that sends `message` on channel `channel_id`.
    pub fn request(&self, message: &Message, channel_id: &str) -> ProviderRequest {
        let mut url = self.url.render_url(message, channel_id);
        let body = match (&self.body, self.method) {
            (Body::Json(template), _) => Some((
                "application/json".to_owned(),
                template
                    .render(message, channel_id)
                    .to_string()
                    .into_bytes(),
            )),
            (Body::Form(fields), Method::Post) => Some((
                "application/x-www-form-urlencoded".to_owned(),
                form(fields, message, channel_id).into_bytes(),
            )),
            (Body::Form(fields), Method::Get) => {
                let query = form(fields, message, channel_id);
                if !query.is_empty() {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&query);
                }
                None
            }
            (Body::None, _) => None,
        };
        ProviderRequest {
            method: self.method,
            url,
            headers: self.headers.clone(),
            auth: self.auth.clone(),
            body,
            timeout: self.timeout,
        }
    }
}

/// Form fields, encoded.
fn form(fields: &[(String, Template)], message: &Message, channel_id: &str) -> String {
    let mut encoder = url::form_urlencoded::Serializer::new(String::new());
    for (name, template) in fields {
        encoder.append_pair(name, &template.render(message, channel_id));
    }
    encoder.finish()
}
