//! Dead letters (our extension): callbacks Junebug gave up on, kept per channel until sent
//! again or purged.
//!
//! - `GET /channels/{id}/dead-letters`: the list, oldest first;
//! - `POST /channels/{id}/dead-letters/retry`: send them all again, each with a fresh set of
//!   attempts;
//! - `DELETE /channels/{id}/dead-letters`: delete them.
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::channels::find_channel;
use super::envelope::ok;
use super::errors::ApiError;
use super::State;
use crate::delivery::outbox::OutboxItem;

/// What the API shows of a dead letter (secrets and tokens left out).
fn describe(item: &OutboxItem) -> Value {
    json!({
        "id": item.id,
        "kind": item.callback.what,
        "url": crate::delivery::redacted_url(&item.callback.url),
        "method": item.callback.method,
        "message_id": item.callback.message_id,
        "attempts": item.attempts,
        "created_at": item.created_at,
        "last_error": item.last_error,
        "body": item.callback.body,
    })
}

/// `GET /channels/{id}/dead-letters`.
pub async fn list(state: State, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    find_channel(&state, &id).await?;
    let items = state.host.callbacks.dead_letters(&id).await?;
    let result: Vec<Value> = items.iter().map(describe).collect();
    Ok(ok("dead letters listed", json!(result)))
}

/// `POST /channels/{id}/dead-letters/retry` (the body is ignored).
pub async fn retry(state: State, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    find_channel(&state, &id).await?;
    let retried = state.host.callbacks.retry_dead_letters(&id).await?;
    Ok(ok("dead letters retried", json!({ "retried": retried })))
}

/// `DELETE /channels/{id}/dead-letters`.
pub async fn purge(state: State, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    find_channel(&state, &id).await?;
    let purged = state.host.callbacks.purge_dead_letters(&id).await?;
    Ok(ok("dead letters purged", json!({ "purged": purged })))
}
