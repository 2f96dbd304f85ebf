//! `/channels/{id}/inbound/{path}`: providers' webhooks, handed to the channel's transport.
//!
//! Any method. A channel that does not exist answers 404 in the Junebug envelope (what a
//! provider's console shows when its webhook URL is wrong); a channel that exists but does
//! not run right now (starting, restarting after a failure) answers 503, which every
//! provider retries; anything else is the transport's answer as it gave it.
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use junebug_actors::supervisor::ChannelWebhook;
use junebug_actors::webhook::WebhookRequest;

use super::channels::find_channel;
use super::errors::ApiError;
use super::State;

/// The path of a webhook URL: the channel and what follows `inbound/`.
#[derive(serde::Deserialize)]
pub struct WebhookPath {
    channel_id: String,
    #[serde(default)]
    tail: String,
}

/// Any method on `/channels/{id}/inbound[/{tail}]`.
pub async fn webhook(
    state: State,
    path: web::Path<WebhookPath>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let WebhookPath { channel_id, tail } = path.into_inner();
    find_channel(&state, &channel_id).await?;
    let url = {
        let info = request.connection_info();
        format!("{}://{}{}", info.scheme(), info.host(), request.uri())
    };
    let webhook = WebhookRequest {
        method: request.method().to_string(),
        path: tail,
        query: request.query_string().to_owned(),
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body: body.to_vec(),
        url,
    };
    let answer = state
        .supervisor
        .send(ChannelWebhook(channel_id.as_str().into(), webhook))
        .await
        .ok()
        .flatten();
    let Some(answer) = answer else {
        return Ok(HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("the channel is not running; try again shortly"));
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok(HttpResponse::build(status)
        .content_type(answer.content_type)
        .body(answer.body))
}
