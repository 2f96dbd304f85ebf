//! The HTTP API (API.md): routes, the shared state they use, and the 404/405 fallbacks.
//!
//! - [`envelope`] and [`errors`]: the response shapes; handlers return [`errors::ApiError`].
//! - [`body`] and [`validation`]: reading and checking request bodies.
//! - [`channels`], [`messages`], [`queue`]: the endpoints.
//!
//! Every route answers with and without a trailing slash (API.md 15.3): paths are normalised
//! by trimming the slash before routing.
use std::sync::Arc;

use actix::Addr;
use actix_web::middleware::{NormalizePath, TrailingSlash};
use actix_web::{web, HttpResponse};
use junebug_actors::supervisor::ChannelSupervisor;
use junebug_actors::TransportRegistry;

use crate::host::Host;

pub mod body;
pub mod channels;
pub mod dead_letters;
pub mod envelope;
pub mod errors;
pub mod health;
pub mod messages;
pub mod observe;
pub mod queue;
pub mod validation;
pub mod webhooks;

use errors::ApiError;

/// Limits and switches the API applies.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Upper bound of the logs endpoint.
    pub max_logs: usize,
    /// Request body limit, bytes.
    pub max_body_size: usize,
    /// Send an unresolvable reply as a plain message when `to` is given.
    pub allow_expired_replies: bool,
    /// Rate bucket size, seconds.
    pub metric_window: f64,
    /// Whether Junebug runs on Redis + RabbitMQ (health then checks them).
    pub production: bool,
    /// How long a queue may wait without progress before health calls it stuck.
    pub stuck_after: std::time::Duration,
}

/// What every handler can reach.
pub struct ApiState {
    /// The process log (every request is logged).
    pub logger: slog::Logger,
    /// Store, queue, callbacks and channel logs.
    pub host: Arc<Host>,
    /// Runs the channels.
    pub supervisor: Addr<ChannelSupervisor>,
    /// The known channel types.
    pub registry: TransportRegistry,
    /// Limits and switches.
    pub settings: ApiSettings,
}

/// Shared state as handlers extract it.
pub type State = web::Data<ApiState>;

/// The path normaliser that makes `/x/` and `/x` the same route.
pub fn normalize_path() -> NormalizePath {
    NormalizePath::new(TrailingSlash::Trim)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Providers' webhooks, any method: `/channels/{id}/inbound` and everything under it.
pub fn webhook_routes() -> actix_web::Scope {
    web::scope("/channels/{channel_id}/inbound")
        .route("", web::to(webhooks::webhook))
        .route("/{tail:.*}", web::to(webhooks::webhook))
}

/// Registers every route on an actix-web app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource =
        |path: &str| web::resource(path.to_owned()).default_service(web::to(method_not_allowed));
    cfg.service(
        resource("/channels")
            .route(web::get().to(channels::list))
            .route(web::post().to(channels::create)),
    )
    .service(
        resource("/channels/{channel_id}")
            .route(web::get().to(channels::get))
            .route(web::post().to(channels::update))
            .route(web::delete().to(channels::delete)),
    )
    .service(resource("/channels/{channel_id}/restart").route(web::post().to(channels::restart)))
    .service(
        resource("/channels/{channel_id}/dead-letters")
            .route(web::get().to(dead_letters::list))
            .route(web::delete().to(dead_letters::purge)),
    )
    .service(
        resource("/channels/{channel_id}/dead-letters/retry")
            .route(web::post().to(dead_letters::retry)),
    )
    .service(
        resource("/channels/{channel_id}/queue")
            .route(web::get().to(queue::length))
            .route(web::delete().to(queue::cancel)),
    )
    .service(resource("/channels/{channel_id}/logs").route(web::get().to(channels::logs)))
    .service(webhook_routes())
    .service(resource("/channels/{channel_id}/messages").route(web::post().to(messages::send)))
    .service(
        resource("/channels/{channel_id}/messages/{message_id}")
            .route(web::get().to(messages::status)),
    )
    .service(
        resource("/channels/{channel_id}/messages/{message_id}/logs")
            .route(web::get().to(channels::message_logs)),
    )
    .service(resource("/health").route(web::get().to(health::health)))
    .service(resource("/metrics").route(web::get().to(observe::metrics)))
    .default_service(web::to(not_found));
}
