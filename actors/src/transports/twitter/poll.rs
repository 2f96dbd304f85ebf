//! The poller: every `poll_interval`, the mentions and direct messages newer than the
//! channel's cursors, handed on oldest first.
//!
//! Cursors (`mentions`, `dm_events`) are the newest id handed on, kept in the Store through
//! [`TransportContext::save_cursor`] and saved only once every message up to them was kept
//! ([`TransportContext::inbound`] returned `Ok`): a crash in between reads some again
//! (at-least-once; the application may see a duplicate) and never loses one. A channel
//! without a cursor yet starts from the newest item and does not replay the account's
//! history.
//!
//! Mentions are asked for with `since_id`. `GET /2/dm_events` has no `since_id`, so its
//! pages (newest first) are read until one reaches the cursor.
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;

use super::api::{Api, ApiError, Endpoint, Identity};
use super::config::TwitterSettings;
use super::mapping::{self, newer};
use crate::message::Message;
use crate::ports::{Direction, LogRecord};
use crate::transport::{TransportContext, TransportError};

/// The cursor of mentions.
pub const MENTIONS_CURSOR: &str = "mentions";

/// The cursor of direct messages.
pub const DM_CURSOR: &str = "dm_events";

/// At most this many pages are read per poll (100 items each); older items are skipped,
/// with a warning.
const MAX_PAGES: usize = 10;

/// Polls until the task is dropped. Returns an error (the channel restarts, and reads again
/// from its saved cursors) only when a message or cursor cannot be kept.
pub async fn run(
    ctx: TransportContext,
    api: Rc<Api>,
    settings: Rc<TwitterSettings>,
) -> Result<(), TransportError> {
    let mut known: Option<Identity> = None;
    loop {
        let us = match &known {
            Some(us) => us.clone(),
            None => match api.me(&ctx).await {
                Ok(me) => {
                    let us = Identity {
                        id: settings.user_id.clone().unwrap_or(me.id),
                        username: settings.screen_name.clone().unwrap_or(me.username),
                    };
                    known = Some(us.clone());
                    us
                }
                Err(e) => {
                    note(&ctx, "Could not identify the account", &e);
                    tokio::time::sleep(wait(&api, Endpoint::Me, settings.poll_interval)).await;
                    continue;
                }
            },
        };
        if settings.tweets && api.paused_for(Endpoint::Mentions).is_none() {
            if let Err(e) = mentions(&ctx, &api, &us).await? {
                note(&ctx, "Could not read mentions", &e);
            }
        }
        if settings.dms && api.paused_for(Endpoint::DmEvents).is_none() {
            if let Err(e) = direct_messages(&ctx, &api, &us).await? {
                note(&ctx, "Could not read direct messages", &e);
            }
        }
        tokio::time::sleep(next_poll(&api, &settings)).await;
    }
}

/// Until the next poll: the interval, or longer when every polled endpoint is paused.
fn next_poll(api: &Api, settings: &TwitterSettings) -> Duration {
    let polled = [
        (settings.tweets, Endpoint::Mentions),
        (settings.dms, Endpoint::DmEvents),
    ];
    polled
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, endpoint)| wait(api, *endpoint, settings.poll_interval))
        .min()
        .unwrap_or(settings.poll_interval)
}

/// The interval, or until `endpoint`'s rate limit resets if that is later.
fn wait(api: &Api, endpoint: Endpoint, interval: Duration) -> Duration {
    api.paused_for(endpoint)
        .map_or(interval, |left| left.max(interval))
}

/// A failed poll in the channel log (the status component already says it).
fn note(ctx: &TransportContext, what: &str, error: &ApiError) {
    ctx.log(LogRecord::warning(format!("{what}: {error}")).going(Direction::Inbound));
}

/// Keeps `messages` (oldest first), then saves `cursor` = `newest`. The outer error means
/// the Store or the application's side could not keep them.
async fn hand_on(
    ctx: &TransportContext,
    messages: Vec<Message>,
    cursor: &str,
    newest: &str,
) -> Result<(), TransportError> {
    for message in messages {
        let id = message.message_id.clone();
        let kind = message.transport_metadata["twitter"]["kind"].clone();
        ctx.log(
            LogRecord::debug(format!(
                "Inbound {} {id} from the X API",
                kind.as_str().unwrap_or("message")
            ))
            .about(id.as_str())
            .going(Direction::Inbound)
            .with_trace(Value::Object(message.transport_metadata.clone())),
        );
        ctx.inbound(message)
            .await
            .map_err(|e| TransportError(format!("could not keep inbound message {id}: {e}")))?;
    }
    ctx.save_cursor(cursor, newest)
        .await
        .map_err(|e| TransportError(format!("could not save the {cursor} cursor: {e}")))
}

/// Reads the mentions newer than the cursor and hands them on. The outer error: a message
/// or the cursor could not be kept (the channel restarts); the inner one: the API failed
/// (the status says so; the next poll tries again).
async fn mentions(
    ctx: &TransportContext,
    api: &Api,
    us: &Identity,
) -> Result<Result<(), ApiError>, TransportError> {
    let since = ctx
        .cursor(MENTIONS_CURSOR)
        .await
        .map_err(|e| TransportError(format!("could not read the mentions cursor: {e}")))?;
    let Some(since) = since else {
        return Ok(match api.newest_mention(ctx, &us.id).await {
            Ok(Some(newest)) => hand_on(ctx, vec![], MENTIONS_CURSOR, &newest)
                .await
                .map(Ok)?,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        });
    };
    let mut newest = since.clone();
    let mut found = Vec::new();
    let mut page_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = match api
            .mentions(ctx, &us.id, &since, page_token.as_deref())
            .await
        {
            Ok(page) => page,
            Err(e) => return Ok(Err(e)),
        };
        for tweet in page["data"].as_array().into_iter().flatten() {
            let Some(id) = tweet["id"].as_str() else {
                continue;
            };
            if newer(id, &newest) {
                newest = id.to_owned();
            }
            found.extend(mapping::mention(ctx.channel_id(), us, &page, tweet));
        }
        page_token = page["meta"]["next_token"].as_str().map(str::to_owned);
        if page_token.is_none() {
            break;
        }
    }
    skipped_pages(ctx, page_token.is_some(), "mentions");
    oldest_first(&mut found, "tweet_id");
    hand_on(ctx, found, MENTIONS_CURSOR, &newest).await.map(Ok)
}

/// Reads the direct messages newer than the cursor and hands them on; errors as for
/// [`mentions`].
async fn direct_messages(
    ctx: &TransportContext,
    api: &Api,
    us: &Identity,
) -> Result<Result<(), ApiError>, TransportError> {
    let seen = ctx
        .cursor(DM_CURSOR)
        .await
        .map_err(|e| TransportError(format!("could not read the dm_events cursor: {e}")))?;
    let mut newest = seen.clone().unwrap_or_default();
    let mut found = Vec::new();
    let mut page_token: Option<String> = None;
    'pages: for _ in 0..MAX_PAGES {
        let page = match api.dm_events(ctx, page_token.as_deref()).await {
            Ok(page) => page,
            Err(e) => return Ok(Err(e)),
        };
        for event in page["data"].as_array().into_iter().flatten() {
            let Some(id) = event["id"].as_str() else {
                continue;
            };
            if newer(id, &newest) {
                newest = id.to_owned();
            }
            match &seen {
                // Pages run newest first: the rest was handed on before.
                Some(seen) if !newer(id, seen) => {
                    page_token = None;
                    break 'pages;
                }
                Some(_) => {
                    found.extend(mapping::direct_message(ctx.channel_id(), us, &page, event))
                }
                // No cursor yet: only the newest id matters.
                None => {
                    page_token = None;
                    break 'pages;
                }
            }
        }
        page_token = page["meta"]["next_token"].as_str().map(str::to_owned);
        if page_token.is_none() {
            break;
        }
    }
    skipped_pages(ctx, page_token.is_some(), "direct messages");
    if newest.is_empty() {
        return Ok(Ok(()));
    }
    oldest_first(&mut found, "dm_event_id");
    hand_on(ctx, found, DM_CURSOR, &newest).await.map(Ok)
}

/// Warns when a poll stopped at [`MAX_PAGES`] with more to read.
fn skipped_pages(ctx: &TransportContext, more: bool, what: &str) {
    if more {
        ctx.log(LogRecord::warning(format!(
            "More than {MAX_PAGES} pages of new {what} since the last poll: older ones skipped"
        )));
    }
}

/// Sorts messages by their provider id (`transport_metadata.twitter[key]`), oldest first.
fn oldest_first(messages: &mut [Message], key: &str) {
    messages.sort_by(|a, b| {
        let id = |m: &Message| {
            m.transport_metadata["twitter"][key]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let (a, b) = (id(a), id(b));
        (a.len(), a).cmp(&(b.len(), b))
    });
}
