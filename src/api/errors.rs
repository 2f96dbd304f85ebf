//! Every error the API answers, and the one place that turns them into the Junebug envelope
//! (API.md 2.2–2.5).
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

use super::envelope::envelope;
use crate::backend::BackendError;

/// The werkzeug text of a 404 on an unknown path.
pub const NOT_FOUND_TEXT: &str = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.";

/// The werkzeug text of a 405.
pub const METHOD_NOT_ALLOWED_TEXT: &str = "The method is not allowed for the requested URL.";

/// One schema violation of a request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// What is wrong, naming the field and the value.
    pub message: String,
    /// Where in the schema the failing keyword is.
    pub schema_path: Vec<Value>,
}

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("json decode error: {0}")]
    JsonDecode(String),
    /// The body breaks the schema.
    #[error("api usage error: {0:?}")]
    InvalidBody(Vec<Violation>),
    /// A request that cannot be served as asked.
    #[error("api usage error: {0}")]
    ApiUsage(String),
    /// No channel with this id.
    #[error("channel {0} not found")]
    ChannelNotFound(String),
    /// `reply_to` names no inbound message we still have.
    #[error("inbound message {0} not found")]
    MessageNotFound(String),
    /// The content is longer than the channel's character limit.
    #[error("message too long")]
    MessageTooLong {
        /// The content.
        content: String,
        /// Its length in characters.
        length: usize,
        /// The channel's limit.
        limit: u64,
    },
    /// The channel type is unknown.
    #[error("invalid channel type {given}")]
    InvalidChannelType {
        /// The type asked for.
        given: String,
        /// The known types.
        known: Vec<&'static str>,
    },
    /// The channel's `config` is wrong for its type.
    #[error("invalid channel config: {0}")]
    InvalidChannelConfig(String),
    /// The body is larger than `max_body_size`.
    #[error("payload too large")]
    PayloadTooLarge(usize),
    /// No such path.
    #[error("not found")]
    NotFound,
    /// The path does not take this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A backend is down.
    #[error("backend unavailable: {0}")]
    Unavailable(#[from] BackendError),
}

fn one_error(kind: &str, message: impl Into<String>) -> Value {
    json!({ "errors": [{ "type": kind, "message": message.into() }] })
}

impl ApiError {
    fn parts(&self) -> (&'static str, Value) {
        match self {
            ApiError::JsonDecode(text) => ("json decode error", one_error("JsonDecodeError", text)),
            ApiError::InvalidBody(violations) => {
                let errors: Vec<Value> = violations
                    .iter()
                    .map(|v| {
                        json!({"type": "invalid_body", "message": v.message, "schema_path": v.schema_path})
                    })
                    .collect();
                ("api usage error", json!({ "errors": errors }))
            }
            ApiError::ApiUsage(text) => ("api usage error", one_error("ApiUsageError", text)),
            ApiError::ChannelNotFound(id) => (
                "channel not found",
                one_error("ChannelNotFound", format!("Channel with ID {id} not found")),
            ),
            ApiError::MessageNotFound(id) => (
                "message not found",
                one_error(
                    "MessageNotFound",
                    format!("Inbound message with id {id} not found"),
                ),
            ),
            ApiError::MessageTooLong {
                content,
                length,
                limit,
            } => (
                "message too long",
                one_error(
                    "MessageTooLong",
                    format!(
                        "Message content '{content}' is of length {length}, which is greater than the character limit of {limit}"
                    ),
                ),
            ),
            ApiError::InvalidChannelType { given, known } => (
                "invalid channel type",
                one_error(
                    "InvalidChannelType",
                    format!(
                        "Invalid channel type '{given}', must be one of: {}",
                        known.join(", ")
                    ),
                ),
            ),
            ApiError::InvalidChannelConfig(text) => (
                "invalid channel config",
                one_error("InvalidChannelConfig", text),
            ),
            ApiError::PayloadTooLarge(limit) => (
                "payload too large",
                one_error(
                    "PayloadTooLarge",
                    format!("The request body is larger than the limit of {limit} bytes"),
                ),
            ),
            ApiError::NotFound => (NOT_FOUND_TEXT, werkzeug_error(404, "Not Found", NOT_FOUND_TEXT)),
            ApiError::MethodNotAllowed => (
                METHOD_NOT_ALLOWED_TEXT,
                werkzeug_error(405, "Method Not Allowed", METHOD_NOT_ALLOWED_TEXT),
            ),
            ApiError::Unavailable(e) => (
                "backend unavailable",
                one_error("BackendUnavailable", e.to_string()),
            ),
        }
    }
}

fn werkzeug_error(code: u16, kind: &str, text: &str) -> Value {
    json!({"errors": [{"code": code, "type": kind, "message": format!("{code} {kind}: {text}")}]})
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::ChannelNotFound(_) | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (description, result) = self.parts();
        envelope(self.status_code(), Some(description), result)
    }
}
