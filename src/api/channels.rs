//! Channel endpoints (API.md 3, 4): list, create, get, update, delete, restart, logs (of the
//! channel, and of one of its messages).
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use junebug_actors::channel::ChannelSpec;
use junebug_actors::limiter::RateLimit;
use junebug_actors::supervisor::{RestartChannel, StartChannel, StopChannel, UpdateChannel};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::read_json;
use super::envelope::{created, ok};
use super::errors::ApiError;
use super::validation::{validate, CHANNEL_CREATE, CHANNEL_UPDATE};
use super::{ApiState, State};
use crate::delivery::template::{CallbackMethod, TemplateKind, UrlTemplate};
use crate::host::Host;
use crate::metrics;
use crate::store::ChannelProperties;
use crate::wire;

/// The actor-side spec of a stored channel.
pub fn channel_spec(id: &str, props: &ChannelProperties) -> ChannelSpec {
    let number = |key: &str| props.get(key).and_then(Value::as_u64);
    let rate_limit = number("rate_limit_count").map(|count| RateLimit {
        count: u32::try_from(count).unwrap_or(u32::MAX),
        // A count without a window is per second.
        window: Duration::from_secs(number("rate_limit_window").filter(|w| *w > 0).unwrap_or(1)),
    });
    ChannelSpec {
        id: id.into(),
        channel_type: props
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        config: props.get("config").cloned().unwrap_or_else(|| json!({})),
        rate_limit,
        window: number("max_in_flight").and_then(|n| usize::try_from(n).ok()),
    }
}

/// Checks `type` and `config` of a channel against the registry.
fn check_type_and_config(state: &ApiState, props: &ChannelProperties) -> Result<(), ApiError> {
    let given = props
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let channel_type = state
        .registry
        .get(given)
        .ok_or_else(|| ApiError::InvalidChannelType {
            given: given.to_owned(),
            known: state.registry.names(),
        })?;
    let config = props.get("config").cloned().unwrap_or_else(|| json!({}));
    channel_type
        .build("", &config)
        .map(drop)
        .map_err(|e| ApiError::InvalidChannelConfig(e.to_string()))
}

/// Refuses `amqp_queue` without a broker (the embedded backend) rather than dropping the
/// channel's AMQP traffic.
fn check_amqp_queue(state: &ApiState, props: &ChannelProperties) -> Result<(), ApiError> {
    let wants_amqp = props.get("amqp_queue").is_some_and(|q| !q.is_null());
    if wants_amqp && state.host.apps.is_none() {
        return Err(ApiError::ApiUsage(
            "amqp_queue needs RabbitMQ: this Junebug runs on the embedded backend \
             (set redis.url and amqp.url for the production backends)"
                .into(),
        ));
    }
    Ok(())
}

/// Points the channel's AMQP application consumer at its current `amqp_queue` (if any).
pub fn attach_apps(host: &Host, id: &str, props: &ChannelProperties) {
    if let Some(apps) = &host.apps {
        let text = |key: &str| props.get(key).and_then(Value::as_str);
        apps.attach(id, text("amqp_queue"), text("type").unwrap_or_default());
    }
}

/// Checks the channel's callback URL templates and methods, naming the field on error.
fn check_callbacks(props: &ChannelProperties) -> Result<(), ApiError> {
    for (field, kind) in [
        ("mo_url", TemplateKind::Inbound),
        ("status_url", TemplateKind::Status),
    ] {
        if let Some(url) = props.get(field).and_then(Value::as_str) {
            UrlTemplate::parse(field, url, kind).map_err(|e| ApiError::ApiUsage(e.to_string()))?;
        }
    }
    for field in ["mo_url_method", "status_url_method"] {
        let method = props.get(field).unwrap_or(&Value::Null);
        CallbackMethod::parse(field, method).map_err(|e| ApiError::ApiUsage(e.to_string()))?;
    }
    Ok(())
}

/// Loads a channel or answers 404.
pub async fn find_channel(state: &ApiState, id: &str) -> Result<Arc<ChannelProperties>, ApiError> {
    state
        .host
        .channels
        .get(id)
        .await?
        .ok_or_else(|| ApiError::ChannelNotFound(id.to_owned()))
}

/// The channel object: stored properties, `id` and the `status` block (API.md 4.3).
async fn channel_object(
    state: &ApiState,
    id: &str,
    props: ChannelProperties,
) -> Result<Value, ApiError> {
    let store = &state.host.store;
    let statuses = store.statuses(id).await?;
    let window = state.settings.metric_window;
    let counts = store
        .counts(id, metrics::current_bucket(window) - 1)
        .await?;
    let worst = statuses.iter().map(|s| s.status).min();
    let components: Map<String, Value> = statuses
        .iter()
        .map(|s| (s.component.clone(), wire::status_json(id, s)))
        .collect();
    let mut status = metrics::rates(&counts, window);
    status.insert("status".into(), json!(worst));
    status.insert("components".into(), Value::Object(components));
    let mut object = props;
    object.insert("id".into(), json!(id));
    object.insert("status".into(), Value::Object(status));
    Ok(Value::Object(object))
}

/// `GET /channels/`: the sorted channel ids.
pub async fn list(state: State) -> Result<HttpResponse, ApiError> {
    let ids: Vec<String> = state
        .host
        .store
        .load_channels()
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    Ok(ok("channels listed", json!(ids)))
}

/// `POST /channels/`.
pub async fn create(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&request, payload, state.settings.max_body_size).await?;
    validate(&CHANNEL_CREATE, &body)?;
    let props = into_object(body);
    check_type_and_config(&state, &props)?;
    check_amqp_queue(&state, &props)?;
    check_callbacks(&props)?;
    let id = uuid::Uuid::new_v4().to_string();
    state.host.store.save_channel(&id, &props).await?;
    state.host.channels.saved(&id, &props);
    start(&state, StartChannel(channel_spec(&id, &props))).await;
    attach_apps(&state.host, &id, &props);
    Ok(created(
        "channel created",
        channel_object(&state, &id, props).await?,
    ))
}

async fn start(state: &ApiState, message: StartChannel) {
    // Unknown types were refused above, so the supervisor cannot refuse; a dead supervisor
    // means the daemon is stopping.
    let _ = state.supervisor.send(message).await;
}

/// `GET /channels/{id}`.
pub async fn get(state: State, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let props = find_channel(&state, &id).await?;
    Ok(ok(
        "channel found",
        channel_object(&state, &id, (*props).clone()).await?,
    ))
}

/// `POST /channels/{id}`: shallow merge; `config` and `metadata` are replaced wholesale.
pub async fn update(
    state: State,
    id: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&request, payload, state.settings.max_body_size).await?;
    validate(&CHANNEL_UPDATE, &body)?;
    let mut props = (*find_channel(&state, &id).await?).clone();
    props.extend(into_object(body));
    check_type_and_config(&state, &props)?;
    check_amqp_queue(&state, &props)?;
    check_callbacks(&props)?;
    state.host.store.save_channel(&id, &props).await?;
    state.host.channels.saved(&id, &props);
    let _ = state
        .supervisor
        .send(UpdateChannel(channel_spec(&id, &props)))
        .await;
    attach_apps(&state.host, &id, &props);
    Ok(ok(
        "channel updated",
        channel_object(&state, &id, props).await?,
    ))
}

/// `DELETE /channels/{id}`: stops the channel; messages still queued are cancelled, each
/// with a `rejected` event (reason `cancelled`), never dropped silently.
pub async fn delete(state: State, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    find_channel(&state, &id).await?;
    let _ = state.supervisor.send(StopChannel(id.as_str().into())).await;
    if let Some(apps) = &state.host.apps {
        apps.detach(&id);
    }
    super::queue::cancel_waiting(&state, &id, None).await?;
    state.host.queue.remove(&id).await?;
    state.host.store.delete_channel(&id).await?;
    state.host.channels.forget(&id);
    state.host.logs.forget(&id);
    state.host.metrics.forget(&id);
    state.host.callbacks.close_lanes(&id);
    // Nobody can reach a deleted channel's dead letters any more.
    state.host.callbacks.purge_dead_letters(&id).await?;
    Ok(ok("channel deleted", json!({})))
}

/// `POST /channels/{id}/restart` (the body is ignored).
pub async fn restart(state: State, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    find_channel(&state, &id).await?;
    let _ = state
        .supervisor
        .send(RestartChannel(id.as_str().into()))
        .await;
    Ok(ok("channel restarted", json!({})))
}

/// A validated body's object (the schemas require one, so nothing is lost).
pub fn into_object(body: Value) -> Map<String, Value> {
    match body {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The query of the logs endpoint.
#[derive(Deserialize)]
struct LogsQuery {
    n: Option<String>,
}

/// `GET /channels/{id}/logs[?n=N]`: newest first, at most `max_logs`.
pub async fn logs(
    state: State,
    id: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<LogsQuery>::from_query(request.query_string())
        .map_err(|e| ApiError::ApiUsage(format!("bad query string: {e}")))?;
    let max = state.settings.max_logs;
    let n = match &query.n {
        None => max,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n > 0 => usize::try_from(n).unwrap_or(max).min(max),
            _ => {
                return Err(ApiError::ApiUsage(format!(
                    "n must be a positive integer, not '{text}'"
                )))
            }
        },
    };
    find_channel(&state, &id).await?;
    Ok(ok(
        "logs retrieved",
        json!(state.host.logs.recent(&id, n).await),
    ))
}

/// `GET /channels/{id}/messages/{msg_id}/logs`: every log entry about the message (all
/// levels, with `message_ids`, `direction` and `trace`), oldest first, for as long as
/// `outbound_message_ttl`. An unknown message has none.
pub async fn message_logs(
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, message_id) = path.into_inner();
    find_channel(&state, &id).await?;
    let entries = state.host.logs.for_message(&id, &message_id).await;
    Ok(ok("logs retrieved", json!(entries)))
}
