//! The `xmpp` channel type: an XMPP client account that chats one-to-one and in MUC rooms,
//! with vumi's `XMPPTransport` semantics for chats (see [`mapping`]) and delivery receipts
//! (XEP-0184).
//!
//! Pieces:
//!
//! - [`config`]: [`XmppConfig`] (the JSON `config`, vumi's keys accepted) and [`XmppSettings`];
//! - [`mapping`]: `<message/>` stanzas ↔ our [`Message`]s, pure and table-tested;
//! - [`session`]: one connection: connect, STARTTLS, SASL, bind, roster, presence, rooms,
//!   keepalive pings, and reading and writing stanzas (every one logged);
//! - this module: the channel type, the transport, and keeping a connection up
//!   (reconnection with backoff and jitter, status events).
//!
//! # Why tokio-xmpp's XML stream but not its `Client`
//!
//! tokio-xmpp's `Client` does STARTTLS, SASL and binding out of our sight, reconnects by
//! itself, and brings a DNS resolver and a TLS setup of its own. Every element in and out
//! must reach the channel log (the SASL exchange masked), a wrong password must become a
//! status rather than endless retries, and reconnection must follow the channel's backoff.
//! So the transport uses tokio-xmpp's RFC 6120 XML stream (parsing, stream resets, read
//! timeouts), xmpp-parsers' stanzas and the `sasl` crate's mechanisms, and takes each
//! negotiation step itself, with TLS from the shared [`crate::transports::tls`].
//!
//! # Status events
//!
//! Component `xmpp`: `ok`/`connected` (details: `jid`, the bound full JID) once logged in;
//! `down`/`connection_lost` when the connection dies or cannot be opened;
//! `down`/`auth_failed` (details: `condition`) when the server refuses the credentials;
//! `down`/`tls_unavailable` when the server offers no STARTTLS and `allow_plaintext` is off;
//! `degraded`/`join_failed` (details: `room`, `condition`) when a room cannot be joined.
//!
//! # Sending and receipts
//!
//! A send waits up to a few seconds for a connection, then asks to be tried again later
//! ([`SendError::Retry`]); so does a send that could not be written. A message is
//! `submitted` once its stanza is written, under the provider id = its stanza id = our
//! message id. One-to-one messages ask for a receipt (XEP-0184, unless `request_receipts`
//! is off): the peer's `<received/>` becomes `delivery_succeeded`, an error bounce
//! `delivery_failed`, through the same delivery-report port as SMPP receipts. Inbound chats
//! that ask for a receipt get one once they are recorded.
use std::rc::Rc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::message::{Message, StatusLevel};
use crate::supervisor::Backoff;
use crate::transport::{
    ChannelType, ConfigError, SendError, Sent, Transport, TransportContext, TransportError,
};
use crate::transports::reconnect::{retry_send, Connection, Report, Run, Session};
use crate::transports::{parse_config, report_status, Liveness};

pub mod config;
pub mod mapping;
pub mod session;

#[cfg(test)]
mod tests;

pub use config::{XmppConfig, XmppSettings};
use session::{Link, OpenError};

/// The `xmpp` channel type.
pub struct XmppType;

impl ChannelType for XmppType {
    fn name(&self) -> &'static str {
        "xmpp"
    }

    fn description(&self) -> &'static str {
        "An XMPP (Jabber) account: one-to-one chats, MUC rooms, delivery receipts"
    }

    fn build(&self, _channel_id: &str, config: &Value) -> Result<Rc<dyn Transport>, ConfigError> {
        let settings = parse_config::<XmppConfig>(config)?.validate()?;
        Ok(Rc::new(XmppTransport::new(settings)))
    }
}

/// An XMPP channel's transport; see the module docs.
pub struct XmppTransport {
    settings: Rc<XmppSettings>,
    connection: Connection<Opener>,
}

impl XmppTransport {
    /// A transport for `settings`, not started.
    pub fn new(settings: XmppSettings) -> Self {
        XmppTransport {
            settings: Rc::new(settings),
            connection: Connection::default(),
        }
    }
}

/// How this channel opens its connection: its settings and context.
struct Opener {
    settings: Rc<XmppSettings>,
    ctx: TransportContext,
}

impl Liveness for Link {
    fn is_dead(&self) -> bool {
        Link::is_dead(self)
    }
}

/// The status component of this channel type.
const COMPONENT: &str = "xmpp";

/// Publishes a status of component `xmpp`.
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
            Ok((link, session)) => Ok((link, Box::pin(session::run(session, self.ctx.clone())))),
            Err(e) => {
                let (kind, details) = match &e {
                    OpenError::Auth { condition, .. } => (
                        "auth_failed",
                        Map::from_iter([("condition".to_owned(), json!(condition))]),
                    ),
                    OpenError::NoTls => ("tls_unavailable", Map::new()),
                    OpenError::Connect(_) | OpenError::Bind(_) => ("connection_lost", Map::new()),
                };
                Err(Report::down(kind, e.to_string(), details))
            }
        }
    }

    fn connected(&self, link: &Link) -> Report {
        let jid = link.bound().to_string();
        let message = format!("Connected to {} as {jid}", self.settings.server());
        Report::ok(
            "connected",
            message,
            Map::from_iter([("jid".to_owned(), json!(jid))]),
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
        "XMPP"
    }
}

#[async_trait(?Send)]
impl Transport for XmppTransport {
    async fn start(&self, ctx: TransportContext) -> Result<(), TransportError> {
        let opener = Opener {
            settings: self.settings.clone(),
            ctx: ctx.clone(),
        };
        self.connection.start(&ctx, opener)
    }

    async fn send(&self, message: Message) -> Result<Sent, SendError> {
        let cx = mapping::OutboundContext {
            rooms: &self.settings.rooms,
            request_receipts: self.settings.request_receipts,
        };
        let outbound = mapping::outbound(&message, &cx).map_err(SendError::Rejected)?;
        let link = self.connection.for_send().await?;
        link.send(outbound.stanza, &message.message_id)
            .await
            .map_err(retry_send)?;
        // The stanza id is the message id: receipts and bounces name it.
        Ok(Sent::with_id(message.message_id))
    }

    /// Logs out (unavailable presence, end of stream, within the response timeout).
    async fn stop(&self) {
        let timeout = self.settings.response_timeout;
        let close = async |link: Rc<Link>| link.close(timeout).await;
        self.connection.stop(close).await;
    }
}
