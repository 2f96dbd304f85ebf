//! Webhooks: HTTP requests a provider makes to Junebug about a channel (an inbound SMS, a
//! delivery report, a USSD session step), served by Junebug's own HTTP server under
//! `/channels/{id}/inbound/{path}` and handed to the channel's transport
//! ([`crate::transport::Transport::webhook`]) through its actor.
//!
//! The types here are plain data, so the actors crate needs no HTTP server: the daemon turns
//! an actix-web request into a [`WebhookRequest`] and a [`WebhookResponse`] back into an
//! HTTP answer.
use serde_json::Value;

/// A provider's request to a channel's webhook.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// What follows `/channels/{id}/inbound/` (`""` for the bare prefix), e.g. `sms` or
    /// `status`: each channel type names the paths it serves.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Header names (lower case) and values, in the order they came.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The full URL the provider called, as it called it (scheme and host from the
    /// request), for signatures computed over it (Twilio's).
    pub url: String,
}

impl WebhookRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The form fields: the query's, then an `application/x-www-form-urlencoded` body's.
    pub fn form(&self) -> Vec<(String, String)> {
        let mut fields: Vec<(String, String)> = url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect();
        let is_form = self.header("content-type").is_some_and(|kind| {
            kind.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        if is_form {
            fields.extend(url::form_urlencoded::parse(&self.body).into_owned());
        }
        fields
    }

    /// The first value of form field `name` (see [`form`](Self::form)).
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// What the webhook answers the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookResponse {
    /// The HTTP status.
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its body.
    pub body: Vec<u8>,
}

impl WebhookResponse {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        WebhookResponse {
            status,
            content_type: "text/plain; charset=utf-8".to_owned(),
            body: body.into().into_bytes(),
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Self {
        WebhookResponse {
            status,
            content_type: "application/json".to_owned(),
            body: body.to_string().into_bytes(),
        }
    }

    /// 404: this channel serves nothing at the request's path.
    pub fn not_found(request: &WebhookRequest) -> Self {
        Self::text(
            404,
            format!("this channel serves no webhook at '{}'", request.path),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_come_from_the_query_then_a_form_body() {
        let request = WebhookRequest {
            query: "a=1&b=two%20words".into(),
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            )],
            body: b"c=%2B27&a=2".to_vec(),
            ..Default::default()
        };
        assert_eq!(request.field("a").as_deref(), Some("1"));
        assert_eq!(request.field("b").as_deref(), Some("two words"));
        assert_eq!(request.field("c").as_deref(), Some("+27"));
        assert_eq!(
            request.header("Content-Type").map(|v| &v[..11]),
            Some("application")
        );
    }

    #[test]
    fn a_body_that_is_not_a_form_is_not_read_as_one() {
        let request = WebhookRequest {
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"a": "1"}"#.to_vec(),
            ..Default::default()
        };
        assert_eq!(request.field("a"), None);
        assert_eq!(request.json().unwrap()["a"], "1");
    }
}
