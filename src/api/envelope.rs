//! The response envelope every answer comes in (API.md 2.1).
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};

/// `{"status", "code", "description", "result"}` with `code` the reason phrase.
pub fn envelope(status: StatusCode, description: Option<&str>, result: Value) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "status": status.as_u16(),
        "code": status.canonical_reason().unwrap_or(""),
        "description": description,
        "result": result,
    }))
}

/// A 200 with `description` and `result`.
pub fn ok(description: &str, result: Value) -> HttpResponse {
    envelope(StatusCode::OK, Some(description), result)
}

/// A 201 with `description` and `result`.
pub fn created(description: &str, result: Value) -> HttpResponse {
    envelope(StatusCode::CREATED, Some(description), result)
}
