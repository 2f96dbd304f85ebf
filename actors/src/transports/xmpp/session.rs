//! One connection to the XMPP server: connect, STARTTLS (whenever offered), SASL, bind, then
//! the roster, our presence and the rooms ([`open`]); then [`run`] it until it dies.
//!
//! The XML stream itself (parsing, stream resets, read timeouts) is tokio-xmpp's
//! [`XmppStream`]; every step on it is ours, so that every element in and out passes
//! through [`Wire`] and reaches the channel log at DEBUG, tagged with the id of the message
//! it carries. SASL payloads are masked there (they carry the password, or proofs of it).
//!
//! While it runs, one task owns the stream: it reads elements, writes what sends ask for
//! (through [`Link::send`]), pings the server (XEP-0199) after `ping_interval` of silence —
//! no answer within `response_timeout` and the stream's read timeout kills the link — answers
//! the server's pings, roster pushes and receipt requests, accepts subscription requests when
//! the config says so, reports rooms it could not join, and hands messages, receipts
//! (XEP-0184) and bounces to the daemon.
//!
//! Reconnecting is the caller's job ([`super::XmppTransport`]).
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::str::FromStr;

use futures_util::{SinkExt, StreamExt};
use sasl::client::mechanisms::{Plain, Scram};
use sasl::client::Mechanism;
use sasl::common::scram::{Sha1, Sha256};
use sasl::common::{ChannelBinding, Credentials};
use serde_json::{json, Map};
use tokio::io::BufStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_xmpp::xmlstream::{
    initiate_stream, FallibleStreamElement, ReadError, StreamHeader, Timeouts, XmppStream,
    XmppStreamElement,
};
use tokio_xmpp::PrintRawXml;
use xmpp_parsers::bind::{BindQuery, BindResponse};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{FullJid, Jid};
use xmpp_parsers::message::Message as MessageStanza;
use xmpp_parsers::muc::muc::History;
use xmpp_parsers::muc::Muc;
use xmpp_parsers::ns;
use xmpp_parsers::ping::Ping;
use xmpp_parsers::presence::{Presence, Show, Type as PresenceType};
use xmpp_parsers::roster::Roster;
use xmpp_parsers::sasl::{Auth, Mechanism as SaslMechanism, Nonza, Response};
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use xmpp_parsers::starttls;
use xmpp_parsers::stream_features::StreamFeatures;

use super::config::XmppSettings;
use super::mapping::{self, Inbound, InboundContext};
use super::status;
use crate::message::{DeliveryReport, DeliveryStatus, StatusLevel};
use crate::ports::{Direction, LogRecord, ReportOutcome};
use crate::transport::TransportContext;
use crate::transports::tls::{self, Connection};

/// What replaces SASL payloads in the log.
const MASK: &str = "********";

/// The stream's I/O: TCP, or TLS over it after STARTTLS.
type Io = BufStream<Box<dyn Connection>>;

/// The XML stream to the server.
pub type Stream = XmppStream<Io>;

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The TCP connection, the TLS handshake or the stream failed (or timed out).
    #[error("cannot connect to the XMPP server: {0}")]
    Connect(String),
    /// The server offers no STARTTLS and the config does not allow logging in without it.
    #[error(
        "the XMPP server does not offer STARTTLS, and allow_plaintext is off: \
         not logging in without TLS"
    )]
    NoTls,
    /// The server refused our credentials (or offered no mechanism we speak).
    #[error("the XMPP server refused the login: {condition}{}", text_suffix(.text))]
    Auth {
        /// The SASL condition, e.g. `not-authorized`.
        condition: String,
        /// The server's words, if any.
        text: String,
    },
    /// Resource binding failed.
    #[error("the XMPP server did not bind a resource: {0}")]
    Bind(String),
}

fn text_suffix(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" ({text})")
    }
}

/// Logs every element in and out, and bounds every write.
#[derive(Clone)]
struct Wire {
    ctx: TransportContext,
    timeout: std::time::Duration,
}

impl Wire {
    /// Logs `element` going `direction`, tagged with `about`.
    fn log(&self, direction: Direction, element: &XmppStreamElement, about: Option<&str>) {
        let verb = match direction {
            Direction::Inbound => "received",
            Direction::Outbound => "sent",
        };
        let mut record =
            LogRecord::debug(format!("XMPP {verb}: {}", loggable(element))).going(direction);
        if let Some(id) = about {
            record = record.about(id);
        }
        self.ctx.log(record);
    }

    /// Logs a note about the stream (headers, TLS), which is not an element.
    fn note(&self, direction: Direction, text: String) {
        self.ctx.log(LogRecord::debug(text).going(direction));
    }

    /// Writes `element` (logged first), within the response timeout.
    async fn send(
        &self,
        stream: &mut Stream,
        element: &XmppStreamElement,
        about: Option<&str>,
    ) -> Result<(), String> {
        self.log(Direction::Outbound, element, about);
        match tokio::time::timeout(self.timeout, stream.send(element)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot write to the XMPP server: {e}")),
            Err(_) => Err("the XMPP server does not take what we write".to_owned()),
        }
    }

    /// The next element during negotiation (logged); soft timeouts and unreadable elements
    /// are skipped (the caller bounds the whole negotiation in time).
    async fn recv(&self, stream: &mut Stream) -> Result<XmppStreamElement, String> {
        loop {
            match stream.next().await {
                Some(Ok(FallibleStreamElement::Ok(element))) => {
                    self.log(Direction::Inbound, &element, None);
                    return Ok(element);
                }
                Some(Ok(FallibleStreamElement::Err(e))) => self.invalid(&e.to_string()),
                Some(Err(ReadError::SoftTimeout)) => {}
                Some(Err(ReadError::ParseError(e))) => self.invalid(&e.to_string()),
                Some(Err(ReadError::HardError(e))) => {
                    return Err(format!("cannot read from the XMPP server: {e}"))
                }
                Some(Err(ReadError::StreamFooterReceived)) | None => {
                    return Err("the XMPP server closed the stream".to_owned())
                }
            }
        }
    }

    /// Logs an element that could not be read (it is skipped).
    fn invalid(&self, why: &str) {
        self.ctx.log(
            LogRecord::warning(format!(
                "Ignored an unreadable element from the XMPP server: {why}"
            ))
            .going(Direction::Inbound),
        );
    }
}

/// An element as the log shows it: SASL payloads masked, everything else as XML.
pub fn loggable(element: &XmppStreamElement) -> String {
    let xml = PrintRawXml(element).to_string();
    match element {
        XmppStreamElement::Sasl(Nonza::Failure(_) | Nonza::Abort(_)) => xml,
        XmppStreamElement::Sasl(_) => mask_content(&xml),
        _ => xml,
    }
}

/// `<name attrs>content</name>` with its content masked (unchanged when it has none).
fn mask_content(xml: &str) -> String {
    match (xml.find('>'), xml.rfind("</")) {
        (Some(open), Some(close)) if open + 1 < close && !xml[..open].ends_with('/') => {
            format!("{}{MASK}{}", &xml[..=open], &xml[close..])
        }
        (Some(open), _) if xml[..open].ends_with('/') => xml.to_owned(),
        // Unexpected shapes are masked whole rather than risk a secret.
        _ => MASK.to_owned(),
    }
}

/// A request to the task that owns the stream.
enum Request {
    /// Write a message stanza (about message `about`); say whether it was written.
    Send {
        stanza: Box<MessageStanza>,
        about: String,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Say goodbye (unavailable presence, stream footer) and stop; say when done.
    Close { done: oneshot::Sender<()> },
}

/// A logged-in connection, as sends see it.
pub struct Link {
    /// Our full JID, as the server bound it.
    bound: FullJid,
    /// To the task that owns the stream.
    requests: mpsc::Sender<Request>,
    /// Set once the link is dead, with why.
    death: RefCell<Option<String>>,
    /// Woken when it dies.
    dead: Notify,
}

impl Link {
    /// Our full JID.
    pub fn bound(&self) -> &FullJid {
        &self.bound
    }

    /// Whether the link has died.
    pub fn is_dead(&self) -> bool {
        self.death.borrow().is_some()
    }

    /// Declares the link dead: the task stops, later sends fail.
    pub fn kill(&self, reason: String) {
        if self.death.borrow().is_some() {
            return;
        }
        *self.death.borrow_mut() = Some(reason);
        self.dead.notify_one();
    }

    /// Writes `stanza`, the message `about`; `Err` says why it could not be written.
    pub async fn send(&self, stanza: MessageStanza, about: &str) -> Result<(), String> {
        if let Some(reason) = self.death.borrow().clone() {
            return Err(reason);
        }
        let (done, written) = oneshot::channel();
        let request = Request::Send {
            stanza: Box::new(stanza),
            about: about.to_owned(),
            done,
        };
        let lost = || "the XMPP connection was lost".to_owned();
        self.requests.send(request).await.map_err(|_| lost())?;
        written.await.unwrap_or_else(|_| Err(lost()))
    }

    /// Logs out (unavailable presence, end of stream), waiting at most `wait`.
    pub async fn close(&self, wait: std::time::Duration) {
        let (done, closed) = oneshot::channel();
        if self.requests.send(Request::Close { done }).await.is_ok() {
            let _ = tokio::time::timeout(wait, closed).await;
        }
        self.kill("we logged out".into());
    }
}

/// What [`run`] needs besides the link.
pub struct Session {
    link: Rc<Link>,
    stream: Stream,
    requests: mpsc::Receiver<Request>,
    wire: Wire,
    settings: Rc<XmppSettings>,
}

/// Connects, negotiates, logs in and binds, then asks for the roster, announces our
/// presence and joins the rooms; returns the link and the session to [`run`].
pub async fn open(
    settings: Rc<XmppSettings>,
    ctx: TransportContext,
) -> Result<(Rc<Link>, Session), OpenError> {
    let wire = Wire {
        ctx,
        timeout: settings.response_timeout,
    };
    // Every step answers within the response timeout; the whole login within a few.
    let deadline = settings.response_timeout * 4;
    let (bound, mut stream) = tokio::time::timeout(deadline, login(&settings, &wire))
        .await
        .map_err(|_| {
            OpenError::Connect(format!("the login did not finish within {deadline:?}"))
        })??;
    let (requests_tx, requests) = mpsc::channel(16);
    let link = Rc::new(Link {
        bound,
        requests: requests_tx,
        death: RefCell::new(None),
        dead: Notify::new(),
    });
    for element in announcements(&settings) {
        wire.send(&mut stream, &element, None)
            .await
            .map_err(OpenError::Connect)?;
    }
    let session = Session {
        link: link.clone(),
        stream,
        requests,
        wire,
        settings,
    };
    Ok((link, session))
}

/// What we say once bound: ask for the roster (so subscription requests reach us), our
/// presence, then a presence to each room (joining it, without its history).
fn announcements(settings: &XmppSettings) -> Vec<XmppStreamElement> {
    let roster = Iq::from_get(
        "roster",
        Roster {
            ver: None,
            items: vec![],
        },
    );
    let mut presence = Presence::available();
    presence.show = settings.show.as_deref().and_then(|show| match show {
        "away" => Some(Show::Away),
        "chat" => Some(Show::Chat),
        "dnd" => Some(Show::Dnd),
        "xa" => Some(Show::Xa),
        _ => None,
    });
    if let Some(text) = &settings.status_message {
        presence
            .statuses
            .insert(xmpp_parsers::message::Lang::default(), text.clone());
    }
    let mut elements = vec![
        XmppStreamElement::Stanza(roster.into()),
        XmppStreamElement::Stanza(presence.into()),
    ];
    for room in &settings.rooms {
        // Validated in the config: the nick makes a JID with every room.
        let Ok(occupant) = room.with_resource_str(&settings.nickname) else {
            continue;
        };
        let join = Presence::available()
            .with_to(Jid::from(occupant))
            .with_payload(Muc::new().with_history(History::new().with_maxstanzas(0)));
        elements.push(XmppStreamElement::Stanza(join.into()));
    }
    elements
}

/// TCP, stream, STARTTLS, SASL, bind.
async fn login(settings: &XmppSettings, wire: &Wire) -> Result<(FullJid, Stream), OpenError> {
    let connection = tls::dial(
        &settings.host,
        settings.port,
        None,
        settings.response_timeout,
    )
    .await
    .map_err(OpenError::Connect)?;
    let timeouts = Timeouts {
        read_timeout: settings.ping_interval,
        response_timeout: settings.response_timeout,
    };
    let domain = settings.jid.domain().to_string();
    let (mut features, mut stream) = open_stream(connection, &domain, timeouts, wire).await?;
    let mut encrypted = false;
    if features.can_starttls() {
        let request = XmppStreamElement::Starttls(starttls::Nonza::Request(starttls::Request));
        wire.send(&mut stream, &request, None)
            .await
            .map_err(OpenError::Connect)?;
        loop {
            match wire.recv(&mut stream).await.map_err(OpenError::Connect)? {
                XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)) => break,
                XmppStreamElement::Starttls(_) => {
                    return Err(OpenError::Connect("the server refused STARTTLS".into()))
                }
                _ => {}
            }
        }
        let plain = stream.into_inner().into_inner();
        let secured = tls::connect(plain, &settings.tls)
            .await
            .map_err(OpenError::Connect)?;
        wire.note(
            Direction::Outbound,
            format!("XMPP: TLS established with {}", settings.tls.server_name),
        );
        encrypted = true;
        (features, stream) = open_stream(Box::new(secured), &domain, timeouts, wire).await?;
    }
    if !encrypted && !settings.allow_plaintext {
        return Err(OpenError::NoTls);
    }
    authenticate(&mut stream, &features.sasl_mechanisms, settings, wire).await?;
    let header = StreamHeader {
        to: Some(Cow::Borrowed(domain.as_str())),
        from: None,
        id: None,
    };
    let pending = stream
        .initiate_reset()
        .send_header(header)
        .await
        .map_err(|e| OpenError::Connect(e.to_string()))?;
    (features, stream) = received_features(pending, wire).await?;
    if !features.can_bind() {
        return Err(OpenError::Bind(
            "the server offers no resource binding".into(),
        ));
    }
    let bound = bind(&mut stream, settings, wire).await?;
    Ok((bound, stream))
}

/// Opens a stream over `io` and reads the server's features.
async fn open_stream(
    io: Box<dyn Connection>,
    domain: &str,
    timeouts: Timeouts,
    wire: &Wire,
) -> Result<(StreamFeatures, Stream), OpenError> {
    let header = StreamHeader {
        to: Some(Cow::Borrowed(domain)),
        from: None,
        id: None,
    };
    wire.note(
        Direction::Outbound,
        format!("XMPP sent: <stream:stream to='{domain}' version='1.0'>"),
    );
    let pending = initiate_stream(BufStream::new(io), ns::JABBER_CLIENT, header, timeouts)
        .await
        .map_err(|e| OpenError::Connect(e.to_string()))?;
    received_features(pending, wire).await
}

/// Logs the server's stream header, then reads and logs its features.
async fn received_features(
    pending: tokio_xmpp::xmlstream::PendingFeaturesRecv<Io>,
    wire: &Wire,
) -> Result<(StreamFeatures, Stream), OpenError> {
    let header = pending.header();
    wire.note(
        Direction::Inbound,
        format!(
            "XMPP received: <stream:stream from='{}' id='{}' version='1.0'>",
            header.from.as_deref().unwrap_or_default(),
            header.id.as_deref().unwrap_or_default()
        ),
    );
    let (features, stream) = pending
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| OpenError::Connect(e.to_string()))?;
    wire.note(
        Direction::Inbound,
        format!("XMPP received: {}", PrintRawXml(&features)),
    );
    Ok((features, stream))
}

/// A SASL condition as its element name, e.g. `not-authorized`.
fn condition_name(condition: &impl std::fmt::Debug) -> String {
    let debug = format!("{condition:?}");
    let mut name = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('-');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

/// SASL: SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN, the best the server offers. The server's
/// signature is verified on success (SCRAM).
async fn authenticate(
    stream: &mut Stream,
    offered: &BTreeSet<String>,
    settings: &XmppSettings,
    wire: &Wire,
) -> Result<(), OpenError> {
    let node = settings
        .jid
        .node()
        .map(|n| n.to_string())
        .unwrap_or_default();
    let credentials = Credentials::default()
        .with_username(node)
        .with_password(settings.password.reveal())
        .with_channel_binding(ChannelBinding::None);
    let refused = |condition: &str, text: String| OpenError::Auth {
        condition: condition.to_owned(),
        text,
    };
    let mechanism: Result<Box<dyn Mechanism>, _> = if offered.contains("SCRAM-SHA-256") {
        Scram::<Sha256>::from_credentials(credentials).map(|m| Box::new(m) as Box<dyn Mechanism>)
    } else if offered.contains("SCRAM-SHA-1") {
        Scram::<Sha1>::from_credentials(credentials).map(|m| Box::new(m) as Box<dyn Mechanism>)
    } else if offered.contains("PLAIN") {
        Plain::from_credentials(credentials).map(|m| Box::new(m) as Box<dyn Mechanism>)
    } else {
        let offered: Vec<&str> = offered.iter().map(String::as_str).collect();
        return Err(refused(
            "no-mechanism",
            format!("the server offers only {offered:?}"),
        ));
    };
    let mut mechanism = mechanism.map_err(|e| refused("client-error", format!("{e:?}")))?;
    let name = SaslMechanism::from_str(mechanism.name())
        .map_err(|e| refused("client-error", e.to_string()))?;
    let auth = XmppStreamElement::Sasl(Nonza::Auth(Auth {
        mechanism: name,
        data: mechanism.initial(),
    }));
    wire.send(stream, &auth, None)
        .await
        .map_err(OpenError::Connect)?;
    loop {
        match wire.recv(stream).await.map_err(OpenError::Connect)? {
            XmppStreamElement::Sasl(Nonza::Challenge(challenge)) => {
                let data = mechanism
                    .response(&challenge.data)
                    .map_err(|e| refused("bad-challenge", format!("{e:?}")))?;
                let response = XmppStreamElement::Sasl(Nonza::Response(Response { data }));
                wire.send(stream, &response, None)
                    .await
                    .map_err(OpenError::Connect)?;
            }
            XmppStreamElement::Sasl(Nonza::Success(success)) => {
                return mechanism
                    .success(&success.data)
                    .map_err(|e| refused("server-not-verified", format!("{e:?}")));
            }
            XmppStreamElement::Sasl(Nonza::Failure(failure)) => {
                let text = failure.texts.values().next().cloned().unwrap_or_default();
                return Err(refused(&condition_name(&failure.defined_condition), text));
            }
            XmppStreamElement::StreamError(e) => {
                return Err(OpenError::Connect(format!("stream error: {e}")))
            }
            _ => {}
        }
    }
}

/// Binds a resource; our full JID.
async fn bind(
    stream: &mut Stream,
    settings: &XmppSettings,
    wire: &Wire,
) -> Result<FullJid, OpenError> {
    const ID: &str = "bind";
    let request = Iq::from_set(ID, BindQuery::new(settings.resource.clone()));
    wire.send(stream, &XmppStreamElement::Stanza(request.into()), None)
        .await
        .map_err(OpenError::Connect)?;
    loop {
        match wire.recv(stream).await.map_err(OpenError::Connect)? {
            XmppStreamElement::Stanza(Stanza::Iq(Iq::Result {
                id,
                payload: Some(payload),
                ..
            })) if id == ID => {
                return BindResponse::try_from(payload)
                    .map(|response| response.jid)
                    .map_err(|e| OpenError::Bind(e.to_string()));
            }
            XmppStreamElement::Stanza(Stanza::Iq(Iq::Error { id, error, .. })) if id == ID => {
                return Err(OpenError::Bind(condition_name(&error.defined_condition)));
            }
            XmppStreamElement::StreamError(e) => {
                return Err(OpenError::Connect(format!("stream error: {e}")))
            }
            _ => {}
        }
    }
}

/// Runs a logged-in session until the link dies; returns why.
pub async fn run(session: Session, ctx: TransportContext) -> String {
    let Session {
        link,
        mut stream,
        mut requests,
        wire,
        settings,
    } = session;
    let mut pings = 0u64;
    loop {
        if let Some(reason) = link.death.borrow().clone() {
            return reason;
        }
        tokio::select! {
            next = stream.next() => match next {
                Some(Ok(FallibleStreamElement::Ok(element))) => {
                    let handler = Handler { wire: &wire, settings: &settings, ctx: &ctx };
                    if let Err(reason) = handler.handle(&mut stream, element).await {
                        link.kill(reason);
                    }
                }
                Some(Ok(FallibleStreamElement::Err(e))) => wire.invalid(&e.to_string()),
                Some(Err(ReadError::ParseError(e))) => wire.invalid(&e.to_string()),
                Some(Err(ReadError::SoftTimeout)) => {
                    // Silence: ping the server; its answer (or its absence) tells.
                    pings += 1;
                    let ping = Iq::from_get(format!("ping-{pings}"), Ping)
                        .with_to(Jid::from(settings.jid.domain().to_owned()));
                    let ping = XmppStreamElement::Stanza(ping.into());
                    if let Err(reason) = wire.send(&mut stream, &ping, None).await {
                        link.kill(reason);
                    }
                }
                Some(Err(ReadError::HardError(e))) => {
                    link.kill(format!("the XMPP connection failed: {e}"));
                }
                Some(Err(ReadError::StreamFooterReceived)) | None => {
                    link.kill("the XMPP server closed the stream".into());
                }
            },
            request = requests.recv() => match request {
                Some(Request::Send { stanza, about, done }) => {
                    let element = XmppStreamElement::Stanza(Stanza::Message(*stanza));
                    let written = wire.send(&mut stream, &element, Some(&about)).await;
                    if let Err(reason) = &written {
                        link.kill(reason.clone());
                    }
                    let _ = done.send(written);
                }
                Some(Request::Close { done }) => {
                    let goodbye = XmppStreamElement::Stanza(Presence::unavailable().into());
                    let _ = wire.send(&mut stream, &goodbye, None).await;
                    wire.note(Direction::Outbound, "XMPP sent: </stream:stream>".into());
                    let _ = tokio::time::timeout(wire.timeout, stream.shutdown()).await;
                    link.kill("we logged out".into());
                    let _ = done.send(());
                }
                None => link.kill("the XMPP transport stopped".into()),
            },
            () = link.dead.notified() => {}
        }
    }
}

/// Acts on one element from the server.
struct Handler<'a> {
    wire: &'a Wire,
    settings: &'a XmppSettings,
    ctx: &'a TransportContext,
}

impl Handler<'_> {
    /// Handles `element`; `Err` when the link must die.
    async fn handle(&self, stream: &mut Stream, element: XmppStreamElement) -> Result<(), String> {
        match element {
            XmppStreamElement::Stanza(Stanza::Message(message)) => {
                self.message(stream, message).await
            }
            XmppStreamElement::Stanza(Stanza::Presence(presence)) => {
                let element = XmppStreamElement::Stanza(Stanza::Presence(presence));
                self.wire.log(Direction::Inbound, &element, None);
                let XmppStreamElement::Stanza(Stanza::Presence(presence)) = element else {
                    return Ok(());
                };
                self.presence(stream, presence).await
            }
            XmppStreamElement::Stanza(Stanza::Iq(iq)) => {
                let element = XmppStreamElement::Stanza(Stanza::Iq(iq));
                self.wire.log(Direction::Inbound, &element, None);
                let XmppStreamElement::Stanza(Stanza::Iq(iq)) = element else {
                    return Ok(());
                };
                self.iq(stream, iq).await
            }
            XmppStreamElement::StreamError(e) => {
                let reason = format!("the XMPP server ended the stream: {e}");
                self.wire
                    .log(Direction::Inbound, &XmppStreamElement::StreamError(e), None);
                Err(reason)
            }
            other => {
                self.wire.log(Direction::Inbound, &other, None);
                Ok(())
            }
        }
    }

    /// A `<message/>`: a message for the application, a receipt, a bounce, or nothing.
    async fn message(&self, stream: &mut Stream, stanza: MessageStanza) -> Result<(), String> {
        let cx = InboundContext {
            jid: &self.settings.jid,
            nickname: &self.settings.nickname,
            rooms: &self.settings.rooms,
            channel_id: self.ctx.channel_id(),
            transport_type: &self.settings.transport_type,
        };
        let inbound = mapping::inbound(&stanza, &cx);
        let receipt = mapping::receipt_for(&stanza);
        let element = XmppStreamElement::Stanza(Stanza::Message(stanza));
        match inbound {
            Inbound::Message(message) => {
                let id = message.message_id.clone();
                self.wire.log(Direction::Inbound, &element, Some(&id));
                // Only once the message is kept do we confirm that it arrived; a failure to
                // keep it is logged by the host.
                let kept = self.ctx.inbound(*message).await.is_ok();
                if let (true, Some(receipt)) = (kept, receipt) {
                    let receipt = XmppStreamElement::Stanza(receipt.into());
                    self.wire.send(stream, &receipt, Some(&id)).await?;
                }
            }
            Inbound::Receipt(id) => {
                self.wire.log(Direction::Inbound, &element, Some(&id));
                self.report(&id, DeliveryStatus::Delivered, Map::new())
                    .await;
            }
            Inbound::Bounce { id, reason } => {
                self.wire.log(Direction::Inbound, &element, Some(&id));
                let details = Map::from_iter([("reason".to_owned(), json!(reason))]);
                self.report(&id, DeliveryStatus::Failed, details).await;
            }
            Inbound::Nothing => self.wire.log(Direction::Inbound, &element, None),
        }
        Ok(())
    }

    /// Hands a receipt or a bounce about our stanza `id` (our message id) to the daemon.
    async fn report(
        &self,
        id: &str,
        status: DeliveryStatus,
        details: Map<String, serde_json::Value>,
    ) {
        let report = DeliveryReport {
            provider_message_id: id.to_owned(),
            status,
            details,
        };
        match self.ctx.delivery_report(report).await {
            ReportOutcome::Matched(_) => {}
            ReportOutcome::Unmatched => self.ctx.log(
                LogRecord::info(format!("A delivery report for {id} matches no message."))
                    .about(id),
            ),
            // XMPP has no way to make the peer send it again.
            ReportOutcome::Failed => self.ctx.log(
                LogRecord::warning(format!("Could not record the delivery report for {id}."))
                    .about(id),
            ),
        }
    }

    /// A `<presence/>`: subscription requests, and what rooms say about our joining.
    async fn presence(&self, stream: &mut Stream, presence: Presence) -> Result<(), String> {
        let Some(from) = presence.from.clone() else {
            return Ok(());
        };
        let bare = from.to_bare();
        match presence.type_ {
            PresenceType::Subscribe | PresenceType::Unsubscribe
                if self.settings.auto_accept_subscriptions =>
            {
                // As vumi did: accept, and ask back (or drop both ways).
                let (answer, ask) = if presence.type_ == PresenceType::Subscribe {
                    (Presence::subscribed(), Presence::subscribe())
                } else {
                    (
                        Presence::new(PresenceType::Unsubscribed),
                        Presence::unsubscribe(),
                    )
                };
                for reply in [answer, ask] {
                    let reply = reply.with_to(Jid::from(bare.clone()));
                    let reply = XmppStreamElement::Stanza(reply.into());
                    self.wire.send(stream, &reply, None).await?;
                }
                self.ctx.log(LogRecord::info(format!(
                    "Accepted the {:?} of {bare}.",
                    presence.type_
                )));
            }
            PresenceType::Error if self.settings.rooms.contains(&bare) => {
                let condition = presence
                    .payloads
                    .iter()
                    .find(|p| p.name() == "error")
                    .and_then(|e| e.children().find(|c| c.name() != "text"))
                    .map(|c| c.name().to_owned())
                    .unwrap_or_else(|| "undefined-condition".into());
                let message = format!("Could not join the room {bare}: {condition}");
                let details = Map::from_iter([
                    ("room".to_owned(), json!(bare.as_str())),
                    ("condition".to_owned(), json!(condition)),
                ]);
                status(
                    self.ctx,
                    StatusLevel::Degraded,
                    "join_failed",
                    message,
                    details,
                )
                .await;
            }
            PresenceType::None
                if self.settings.rooms.contains(&bare)
                    && from.resource().map(|r| r.as_str()) == Some(&self.settings.nickname) =>
            {
                self.ctx.log(LogRecord::info(format!(
                    "Joined the room {bare} as {}.",
                    self.settings.nickname
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// An `<iq/>`: answer pings and roster pushes; refuse other requests, as RFC 6120 asks.
    async fn iq(&self, stream: &mut Stream, iq: Iq) -> Result<(), String> {
        let (from, id, payload, get) = match iq {
            Iq::Get {
                from, id, payload, ..
            } => (from, id, payload, true),
            Iq::Set {
                from, id, payload, ..
            } => (from, id, payload, false),
            Iq::Result { .. } | Iq::Error { .. } => return Ok(()),
        };
        let ours = payload.is("ping", ns::PING) && get
            || payload.is("query", ns::ROSTER)
                && !get
                && from
                    .as_ref()
                    .is_none_or(|from| from.to_bare() == self.settings.jid);
        let answer = if ours {
            Iq::Result {
                from: None,
                to: from,
                id,
                payload: None,
            }
        } else {
            Iq::Error {
                from: None,
                to: from,
                id,
                error: StanzaError::new(
                    ErrorType::Cancel,
                    DefinedCondition::ServiceUnavailable,
                    "en",
                    "Not supported by this client",
                ),
                payload: None,
            }
        };
        self.wire
            .send(stream, &XmppStreamElement::Stanza(answer.into()), None)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SASL payloads never reach the log; failures do (they carry no secret).
    #[test]
    fn sasl_payloads_are_masked() {
        let auth = XmppStreamElement::Sasl(Nonza::Auth(Auth {
            mechanism: SaslMechanism::Plain,
            data: b"\0alice\0hunter2".to_vec(),
        }));
        let shown = loggable(&auth);
        assert!(
            shown.starts_with("<auth") && shown.contains("PLAIN"),
            "{shown}"
        );
        assert!(shown.contains(MASK), "{shown}");
        assert!(!shown.contains("AGFsaWNlAGh1bnRlcjI="), "{shown}");
        let response = XmppStreamElement::Sasl(Nonza::Response(Response {
            data: b"c=biws,r=abc,p=secretproof".to_vec(),
        }));
        assert!(!loggable(&response).contains("cD1zZWNyZXRwcm9vZg"));
        assert_eq!(mask_content("<success xmlns='x'/>"), "<success xmlns='x'/>");
        assert_eq!(mask_content("garbage"), MASK);
    }

    /// SASL conditions are reported by their element names.
    #[test]
    fn condition_names() {
        use xmpp_parsers::sasl::DefinedCondition as Sasl;
        assert_eq!(condition_name(&Sasl::NotAuthorized), "not-authorized");
        assert_eq!(condition_name(&Sasl::Aborted), "aborted");
    }
}
