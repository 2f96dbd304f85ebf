//! Queue control (our extension, DESIGN.md 7): how much a channel has waiting, and cancelling
//! what waits.
use actix_web::{web, HttpRequest, HttpResponse};
use junebug_actors::message::{Event, Lane};
use junebug_actors::supervisor::GetChannelLoad;
use serde::Deserialize;
use serde_json::json;

use super::channels::find_channel;
use super::envelope::ok;
use super::errors::ApiError;
use super::State;

/// `GET /channels/{id}/queue`: messages waiting per lane and in total, and how many this
/// process's channel holds (taken from the queue, not yet settled).
pub async fn length(state: State, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    find_channel(&state, &id).await?;
    let waiting = state.host.queue.lengths(&id).await?;
    let load = state
        .supervisor
        .send(GetChannelLoad(id.as_str().into()))
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    Ok(ok(
        "queue length",
        json!({
            "waiting": {
                "realtime": waiting.realtime,
                "bulk": waiting.bulk,
                "total": waiting.realtime + waiting.bulk,
            },
            "in_flight": load.held + load.sending,
        }),
    ))
}

/// The query of the cancel endpoint.
#[derive(Deserialize)]
struct CancelQuery {
    priority: Option<String>,
}

/// The lane a `priority` names: `bulk`, `realtime`, or a priority 1–5.
fn lane(priority: &str) -> Option<Lane> {
    match priority {
        "bulk" => Some(Lane::Bulk),
        "realtime" => Some(Lane::Realtime),
        level => Some(junebug_actors::message::Priority::new(level.parse().ok()?)?.lane()),
    }
}

/// `DELETE /channels/{id}/queue[?priority=bulk|realtime]`: cancels what waits (not what is
/// in flight); each cancelled message gets a `rejected` event with reason `cancelled`.
pub async fn cancel(
    state: State,
    id: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<CancelQuery>::from_query(request.query_string())
        .map_err(|e| ApiError::ApiUsage(format!("bad query string: {e}")))?;
    let lane = match query.priority.as_deref() {
        None => None,
        Some(text) => Some(lane(text).ok_or_else(|| {
            ApiError::ApiUsage(format!(
                "priority must be \"bulk\", \"realtime\" or 1 to 5, not '{text}'"
            ))
        })?),
    };
    find_channel(&state, &id).await?;
    let cancelled = cancel_waiting(&state, &id, lane).await?;
    Ok(ok("queue cancelled", json!({ "cancelled": cancelled })))
}

/// Purges what waits in `lane` (or every lane) and records a `cancelled` rejection for each.
pub async fn cancel_waiting(
    state: &super::ApiState,
    channel_id: &str,
    lane: Option<Lane>,
) -> Result<usize, ApiError> {
    let purged = state.host.queue.purge(channel_id, lane).await?;
    for message in &purged {
        let cancelled = Event::nack(&message.message_id, "cancelled");
        state.host.record_event(channel_id, &cancelled).await;
    }
    Ok(purged.len())
}
