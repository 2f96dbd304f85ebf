//! `GET /health` (API.md 7, extended). On the embedded backend: `200 health ok` with `{}`, as
//! the original without a RabbitMQ management interface. On the production backends: whether
//! Redis and RabbitMQ answer, and each channel queue's depth per lane and whether it is stuck
//! (messages waiting and nothing settled for `health.stuck_after` seconds, or its channel not
//! running here); `500` in the envelope when a backend is down or a queue is stuck.
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use junebug_actors::supervisor::GetChannelLoad;
use serde_json::{json, Value};

use super::envelope::{envelope, ok};
use super::errors::ApiError;
use super::State;

/// `GET /health`.
pub async fn health(state: State) -> Result<HttpResponse, ApiError> {
    if !state.settings.production {
        return Ok(ok("health ok", json!({})));
    }
    let host = &state.host;
    let store = host.store.ping().await;
    let queue = host.queue.ping().await;
    let backend = |name: &str, result: &Result<(), crate::backend::BackendError>| match result {
        Ok(()) => json!({"name": name, "ok": true}),
        Err(e) => json!({"name": name, "ok": false, "error": e.to_string()}),
    };
    let backends = vec![backend("redis", &store), backend("rabbitmq", &queue)];
    if store.is_err() || queue.is_err() {
        let result = json!({"backends": backends, "queues": []});
        return Ok(envelope(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("backend down"),
            result,
        ));
    }
    let mut queues: Vec<Value> = Vec::new();
    let mut stuck_any = false;
    for (id, _) in host.store.load_channels().await? {
        let waiting = host.queue.lengths(&id).await?;
        let load = state
            .supervisor
            .send(GetChannelLoad(id.as_str().into()))
            .await
            .ok()
            .flatten();
        let idle = load.is_none_or(|load| load.idle_for >= state.settings.stuck_after);
        for (lane, messages) in [("realtime", waiting.realtime), ("bulk", waiting.bulk)] {
            let stuck = messages > 0 && idle;
            stuck_any |= stuck;
            queues.push(
                json!({"name": format!("{id}.{lane}"), "channel_id": id, "lane": lane,
                               "messages": messages, "stuck": stuck}),
            );
        }
    }
    let result = json!({"backends": backends, "queues": queues});
    Ok(if stuck_any {
        envelope(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("queues stuck"),
            result,
        )
    } else {
        ok("queues ok", result)
    })
}
