//! Reads a request body as JSON, whatever its Content-Type says (API.md 1), within the
//! configured size limit.
use actix_web::web;
use futures_util::StreamExt;
use serde_json::Value;

use super::errors::ApiError;

/// The body as JSON; 413 past `limit` bytes (checked before reading when the length is
/// announced), `JsonDecodeError` when it is not JSON.
pub async fn read_json(
    request: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Value, ApiError> {
    let announced = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::JsonDecode(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::JsonDecode(
            "No JSON object could be decoded".into(),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::JsonDecode(e.to_string()))
}
