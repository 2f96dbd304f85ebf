//! The `irc` channel type: a bot on one IRC server that talks in channels and in private
//! messages, with vumi's `IrcTransport` semantics (see [`mapping`]).
//!
//! Pieces:
//!
//! - [`config`]: [`IrcConfig`] (the JSON `config`, vumi's keys accepted) and [`IrcSettings`];
//! - [`codec`]: the wire form, pure and byte-tested: lines, parameters, cutting long text;
//! - [`mapping`]: IRC lines ↔ our [`Message`]s, pure and table-tested;
//! - [`session`]: one connection: connect, register, join, PING/PONG, read and write;
//! - this module: the channel type, the transport, and keeping a connection up
//!   (reconnection with backoff and jitter, status events).
//!
//! # Why not the `irc` crate
//!
//! DESIGN.md named the `irc` crate. It builds here and would run on the arbiter, but it does
//! by itself what this transport has to see and control: it answers PINGs and sends PASS,
//! NICK, USER and its own keepalive PINGs out of our sight (every line in and out must reach
//! the channel log, tagged with its message id, the password masked); its sender is a
//! fire-and-forget queue (a send must learn whether its lines were written, to retry when
//! not); it neither reconnects nor cuts text to IRC's line limit, so both would be ours
//! anyway. The protocol a bot needs is a few commands over a line codec, so this transport
//! speaks it itself over a tokio `TcpStream` (TLS through the shared [`crate::transports::tls`]).
//!
//! # Status events
//!
//! Component `irc`: `ok`/`connected` once registered (the JOINs are sent then);
//! `down`/`connection_lost` when the connection dies or cannot be opened;
//! `down`/`registration_failed` (details: `reply`) when the server refuses us (a wrong
//! password, say); `degraded`/`join_failed` (details: `channel`, `reply`) when a channel
//! cannot be joined, `degraded`/`kicked` (details: `channel`) when we are kicked out of one,
//! and `ok`/`rejoined` (details: `channel`) when we are back in it: unless
//! `rejoin_after_kick` is false, the channel JOINs again `rejoin_delay` seconds (default 5)
//! after a kick. A channel that bans us answers that JOIN with 474, reported as
//! `join_failed`; we do not try again until the next connection. `degraded`/`identify_failed`
//! when NickServ refuses `nickserv_password`.
//!
//! # Sending
//!
//! A send waits up to a few seconds for a connection, then asks to be tried again later
//! ([`SendError::Retry`]); so does a send whose lines could not be written. A message is
//! `submitted` once its lines are written to the server: IRC acknowledges nothing, so no
//! provider id; a server's later complaint about the target (no such nick, cannot send to
//! channel) is logged against the message. Each IRC line costs one rate-limit token.
use std::rc::Rc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::message::{Message, StatusLevel};
use crate::supervisor::Backoff;
use crate::transport::{
    ChannelType, ConfigError, SendError, Sent, Transport, TransportContext, TransportError,
};
use crate::transports::reconnect::{retry_send, Connection, Report, Run, Session};
use crate::transports::{parse_config, report_status};

pub mod codec;
pub mod config;
pub mod mapping;
pub mod session;

#[cfg(test)]
mod tests;

pub use config::{IrcConfig, IrcSettings};
use session::{Link, OpenError};

/// The `irc` channel type.
pub struct IrcType;

impl ChannelType for IrcType {
    fn name(&self) -> &'static str {
        "irc"
    }

    fn description(&self) -> &'static str {
        "An IRC bot: messages in channels (addressed by nick or not) and private messages"
    }

    fn build(&self, _channel_id: &str, config: &Value) -> Result<Rc<dyn Transport>, ConfigError> {
        let settings = parse_config::<IrcConfig>(config)?.validate()?;
        Ok(Rc::new(IrcTransport {
            settings: Rc::new(settings),
            connection: Connection::default(),
        }))
    }
}

/// An IRC channel's transport; see the module docs.
pub struct IrcTransport {
    settings: Rc<IrcSettings>,
    connection: Connection<Opener>,
}

/// How this channel opens its connection: its settings and context.
struct Opener {
    settings: Rc<IrcSettings>,
    ctx: TransportContext,
}

/// The status component of this channel type.
const COMPONENT: &str = "irc";

/// Publishes a status of component `irc`.
async fn status(
    ctx: &TransportContext,
    level: StatusLevel,
    kind: &str,
    message: String,
    details: Map<String, Value>,
) {
    report_status(ctx, COMPONENT, level, kind, message, details).await;
}

#[async_trait(?Send)]
impl Session for Opener {
    type Conn = Link;

    async fn open(&self) -> Result<(Rc<Link>, Run), Report> {
        match session::open(self.settings.clone(), self.ctx.clone()).await {
            Ok((link, reader)) => {
                let run = Box::pin(session::run(link.clone(), reader));
                Ok((link, run))
            }
            Err(OpenError::Refused { reply, text }) => {
                let message = format!("The IRC server refused to register us: {reply} {text}");
                let details = Map::from_iter([("reply".to_owned(), json!(reply))]);
                Err(Report::down("registration_failed", message, details))
            }
            Err(e) => Err(Report::down("connection_lost", e.to_string(), Map::new())),
        }
    }

    fn connected(&self, link: &Link) -> Report {
        let nick = link.nick();
        let message = format!("Connected to {} as {nick}", self.settings.server());
        Report::ok(
            "connected",
            message,
            Map::from_iter([("nick".to_owned(), json!(nick))]),
        )
    }

    fn context(&self) -> &TransportContext {
        &self.ctx
    }

    fn component(&self) -> &'static str {
        COMPONENT
    }

    fn backoff(&self) -> Backoff {
        self.settings.reconnect
    }

    fn protocol(&self) -> &'static str {
        "IRC"
    }
}

impl IrcTransport {
    /// The live connection's nick and mask length, or what they will likely be.
    fn mask_len(&self) -> usize {
        match self.connection.current() {
            Some(link) => link.mask_len(),
            None => session::guess_mask_len(&self.settings, &self.settings.nickname),
        }
    }
}

#[async_trait(?Send)]
impl Transport for IrcTransport {
    async fn start(&self, ctx: TransportContext) -> Result<(), TransportError> {
        let opener = Opener {
            settings: self.settings.clone(),
            ctx: ctx.clone(),
        };
        self.connection.start(&ctx, opener)
    }

    async fn send(&self, message: Message) -> Result<Sent, SendError> {
        let link = self.connection.for_send().await?;
        let outbound = mapping::outbound(&message, link.mask_len()).map_err(SendError::Rejected)?;
        link.send(&outbound.target, &outbound.lines, &message.message_id)
            .await
            .map_err(retry_send)?;
        Ok(Sent::default())
    }

    /// One token per IRC line the message goes out in (0 for a message that will be
    /// rejected, which sends nothing).
    fn cost(&self, message: &Message) -> u32 {
        mapping::outbound(message, self.mask_len())
            .map_or(0, |outbound| outbound.lines.len())
            .try_into()
            .unwrap_or(u32::MAX)
    }

    /// Says QUIT to the server (within the response timeout) and closes.
    async fn stop(&self) {
        let quit = async |link: Rc<Link>| link.quit("Junebug channel stopped").await;
        self.connection.stop(quit).await;
    }
}
