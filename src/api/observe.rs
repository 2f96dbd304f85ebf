//! What the API tells ops about itself: one process-log line and one latency observation per
//! request, and `GET /metrics` (Prometheus text format, not the JSON envelope: it is for
//! Prometheus).
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use junebug_actors::message::StatusLevel;
use junebug_actors::supervisor::{GetChannelLoad, GetChannelStates};

use super::errors::ApiError;
use super::State;

/// Logs the request (method, path, status, latency) and observes its latency by route.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = request.app_data::<State>().cloned();
    let (method, path) = (request.method().to_string(), request.path().to_owned());
    let response = next.call(request).await?;
    let elapsed = started.elapsed();
    if let Some(state) = state {
        let status = response.status().as_u16();
        // Route patterns, not paths, so ids do not make one series per channel or message;
        // written `/channels/:channel_id` since some text parsers trip on braces in values.
        let route = response.request().match_pattern().map_or_else(
            || "unmatched".to_owned(),
            |p| p.replace('{', ":").replace('}', ""),
        );
        state
            .host
            .metrics
            .api_latency
            .with_label_values(&[method.as_str(), route.as_str(), &status.to_string()])
            .observe(elapsed.as_secs_f64());
        slog::info!(state.logger, "API request";
            "method" => &method, "path" => &path, "status" => status,
            "latency_ms" => elapsed.as_secs_f64() * 1000.0);
    }
    Ok(response)
}

/// `GET /metrics`: counters as they are, gauges read now from the queues and the supervisor.
pub async fn metrics(state: State) -> Result<HttpResponse, ApiError> {
    let host = &state.host;
    let metrics = &host.metrics;
    let channels = host.store.load_channels().await?;
    let running = state
        .supervisor
        .send(GetChannelStates)
        .await
        .unwrap_or_default();
    metrics.reset_gauges();
    for (id, _) in &channels {
        let waiting = host.queue.lengths(id).await?;
        for (lane, depth) in [("realtime", waiting.realtime), ("bulk", waiting.bulk)] {
            metrics
                .queue_depth
                .with_label_values(&[id.as_str(), lane])
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        let load = state
            .supervisor
            .send(GetChannelLoad(id.as_str().into()))
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        metrics
            .in_flight
            .with_label_values(&[id.as_str()])
            .set((load.held + load.sending) as i64);
        let channel = running.get(id.as_str());
        metrics
            .transport_up
            .with_label_values(&[id.as_str()])
            .set(i64::from(channel.is_some_and(|c| c.running)));
        metrics
            .restarts
            .with_label_values(&[id.as_str()])
            .set(channel.map_or(0, |c| i64::from(c.restarts)));
        for status in host.store.statuses(id).await? {
            let level = match status.status {
                StatusLevel::Ok => 2,
                StatusLevel::Degraded => 1,
                StatusLevel::Down => 0,
            };
            metrics
                .component_status
                .with_label_values(&[id.as_str(), status.component.as_str()])
                .set(level);
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render()))
}
