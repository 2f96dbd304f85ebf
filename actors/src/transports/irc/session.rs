//! One connection to the IRC server: connect (TCP, optionally TLS), register (PASS, NICK,
//! USER), join the channels, then [`run`] it until it dies.
//!
//! While it runs it answers the server's PINGs, PINGs the server itself after
//! `ping_interval` of silence (no answer within `response_timeout` means the link is dead),
//! delivers PRIVMSGs as inbound messages (each recorded before the next line is read, so
//! inbound order is kept and nothing read is lost to a slow backend), follows our nick, and
//! reports channels it could not join. Every line in and out goes to the channel log at
//! DEBUG, with the id of the message it carries (the PASS line with its password masked).
//!
//! Reconnecting is the caller's job ([`super::IrcTransport`]).
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Map};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use super::codec::{Line, LineCodec};
use super::config::{IrcSettings, NickServ};
use super::mapping::{self, canonical, InboundContext};
use super::status;
use crate::message::StatusLevel;
use crate::ports::{Direction, LogRecord};
use crate::transport::TransportContext;
use crate::transports::tls::{dial, Connection};
use crate::transports::Liveness;

/// How many other nicks registration tries when ours is taken (each adds a `^`, as vumi's
/// bot did) before giving up until the next attempt.
const NICK_ATTEMPTS: usize = 5;

/// Replies that mean a JOIN failed (RFC 2812 §5.2, and 477/489 that servers use for
/// "registered users only" and "TLS only").
const JOIN_FAILURES: [&str; 9] = [
    "403", "405", "437", "471", "473", "474", "475", "477", "489",
];

/// Replies that refuse a PRIVMSG or NOTICE to a target (no such nick, cannot send to the
/// channel, no such channel).
const SEND_FAILURES: [&str; 3] = ["401", "403", "404"];

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The TCP connection or the TLS handshake failed.
    #[error("cannot connect to the IRC server: {0}")]
    Connect(String),
    /// The server refused to register us (a wrong password, a nick it does not take, a
    /// ban): a numeric reply, or `ERROR` when it just closed the link.
    #[error("the IRC server refused to register us: {reply} {text}")]
    Refused {
        /// The numeric reply, e.g. `464`.
        reply: String,
        /// What the server said.
        text: String,
    },
    /// Registration did not finish: the connection died, or the server took too long.
    #[error("registration failed: {0}")]
    Registration(String),
}

/// The lines from the server.
pub type Reader = FramedRead<ReadHalf<Box<dyn Connection>>, LineCodec>;

/// A registered connection, as sends and the reader see it.
pub struct Link {
    ctx: TransportContext,
    settings: Rc<IrcSettings>,
    /// The sending half; one writer at a time, so the lines of one message stay together.
    writer: Mutex<WriteHalf<Box<dyn Connection>>>,
    /// Our nick as the server knows us now.
    nick: RefCell<String>,
    /// `nick!user@host` as the server shows us to others, once it has shown it (in the echo
    /// of our JOIN): the exact size of the prefix our relayed lines carry.
    mask: RefCell<Option<String>>,
    /// Channels we are in (canonical names), from the server's echo of our JOINs.
    joined: RefCell<HashSet<String>>,
    /// Channels we were kicked from and not yet back in (canonical names): joining one
    /// again clears the `kicked` status.
    kicked: RefCell<HashSet<String>>,
    /// Set while our IDENTIFY waits for NickServ's answer (the JOINs wait with it).
    awaiting_nickserv: Cell<bool>,
    /// The last message sent to each target (canonical), so that the server's complaint
    /// about a target lands in that message's log.
    last_sent: RefCell<HashMap<String, String>>,
    /// Set once the link is dead, with why.
    death: RefCell<Option<String>>,
    /// Woken when it dies.
    dead: Notify,
}

impl Link {
    /// Our nick now.
    pub fn nick(&self) -> String {
        self.nick.borrow().clone()
    }

    /// How long `nick!user@host` is as others see us: exact once the server has shown it,
    /// else [`guess_mask_len`].
    pub fn mask_len(&self) -> usize {
        match &*self.mask.borrow() {
            Some(mask) => mask.len(),
            None => guess_mask_len(&self.settings, &self.nick.borrow()),
        }
    }

    /// Declares the link dead: the reader stops, later writes fail.
    pub fn kill(&self, reason: String) {
        if self.death.borrow().is_some() {
            return;
        }
        *self.death.borrow_mut() = Some(reason);
        self.dead.notify_one();
    }

    /// Writes `lines` in one go (each logged first, tagged with `about`), within the
    /// response timeout. A failure kills the link and says why.
    pub async fn write(&self, lines: &[Line], about: Option<&str>) -> Result<(), String> {
        if let Some(reason) = self.death.borrow().clone() {
            return Err(reason);
        }
        // Taken before logging, so the log shows lines in the order they go out.
        let mut writer = self.writer.lock().await;
        let mut bytes = Vec::new();
        for line in lines {
            let mut record = LogRecord::debug(format!("IRC sent: {}", self.loggable(line)))
                .going(Direction::Outbound);
            if let Some(id) = about {
                record = record.about(id);
            }
            self.ctx.log(record);
            bytes.extend_from_slice(line.wire().as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        let written = tokio::time::timeout(self.settings.response_timeout, async {
            writer.write_all(&bytes).await?;
            writer.flush().await
        })
        .await;
        let reason = match written {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => format!("cannot write to the IRC server: {e}"),
            Err(_) => "the IRC server does not take what we write".to_owned(),
        };
        self.kill(reason.clone());
        Err(reason)
    }

    /// Sends the lines of outbound message `message_id` to `target`.
    pub async fn send(&self, target: &str, lines: &[Line], message_id: &str) -> Result<(), String> {
        self.last_sent
            .borrow_mut()
            .insert(canonical(target), message_id.to_owned());
        self.write(lines, Some(message_id)).await
    }

    /// Says goodbye (QUIT) and marks the link dead; the server closes the connection.
    pub async fn quit(&self, reason: &str) {
        let _ = self.write(&[Line::new("QUIT", &[reason])], None).await;
        self.kill("we quit".into());
    }

    /// A line as the log shows it: without the server's or NickServ's password.
    fn loggable(&self, line: &Line) -> String {
        if line.is("PASS") {
            return "PASS ********".to_owned();
        }
        let wire = line.wire();
        match &self.settings.nickserv {
            Some(nickserv) => wire.replace(nickserv.password.reveal(), "********"),
            None => wire,
        }
    }

    /// Logs a line from the server.
    fn received(&self, text: &str, about: Option<&str>) {
        let mut record =
            LogRecord::debug(format!("IRC received: {text}")).going(Direction::Inbound);
        if let Some(id) = about {
            record = record.about(id);
        }
        self.ctx.log(record);
    }
}

impl Liveness for Link {
    /// Whether the link has died.
    fn is_dead(&self) -> bool {
        self.death.borrow().is_some()
    }
}

/// The longest `nick!user@host` is likely to be for `nick` before the server shows it: a
/// `~` before the user name (no ident) and a 63-byte host (the longest DNS label a server
/// shows). Erring long only makes lines a little shorter than they could be.
pub fn guess_mask_len(settings: &IrcSettings, nick: &str) -> usize {
    nick.len() + "!~".len() + settings.username.len() + "@".len() + 63
}

/// Connects, registers and joins the channels; returns the link and the lines to run it on.
pub async fn open(
    settings: Rc<IrcSettings>,
    ctx: TransportContext,
) -> Result<(Rc<Link>, Reader), OpenError> {
    let tls = settings.tls.as_ref();
    let stream = dial(
        &settings.host,
        settings.port,
        tls,
        settings.response_timeout,
    )
    .await
    .map_err(OpenError::Connect)?;
    let (read, write) = tokio::io::split(stream);
    let link = Rc::new(Link {
        ctx,
        settings: settings.clone(),
        writer: Mutex::new(write),
        nick: RefCell::new(settings.nickname.clone()),
        mask: RefCell::new(None),
        joined: RefCell::new(HashSet::new()),
        kicked: RefCell::new(HashSet::new()),
        awaiting_nickserv: Cell::new(false),
        last_sent: RefCell::new(HashMap::new()),
        death: RefCell::new(None),
        dead: Notify::new(),
    });
    let mut reader = FramedRead::new(read, LineCodec::default());
    let deadline = Instant::now() + settings.response_timeout;
    match tokio::time::timeout_at(deadline, register(&link, &mut reader)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(OpenError::Registration(format!(
                "the server did not welcome us within {:?}",
                settings.response_timeout
            )))
        }
    }
    match &settings.nickserv {
        None => join_channels(&link).await,
        Some(nickserv) => identify(&link, nickserv).await,
    }
    .map_err(OpenError::Registration)?;
    Ok((link, reader))
}

/// JOINs the configured channels.
async fn join_channels(link: &Link) -> Result<(), String> {
    for channel in &link.settings.channels {
        link.write(&[Line::new("JOIN", &[channel])], None).await?;
    }
    Ok(())
}

/// IDENTIFYs to NickServ as the configured nickname. The JOINs wait for its answer
/// ([`nickserv_answered`]), as channels may admit identified users only, or for
/// `response_timeout` without one.
async fn identify(link: &Rc<Link>, nickserv: &NickServ) -> Result<(), String> {
    link.awaiting_nickserv.set(true);
    let account = &link.settings.nickname;
    let text = format!("IDENTIFY {account} {}", nickserv.password.reveal());
    link.write(&[Line::new("PRIVMSG", &[&nickserv.nick, &text])], None)
        .await?;
    let link = link.clone();
    tokio::task::spawn_local(async move {
        tokio::time::sleep(link.settings.response_timeout).await;
        if link.awaiting_nickserv.replace(false) {
            link.ctx.log(LogRecord::warning(format!(
                "No answer to IDENTIFY within {:?}; joining anyway",
                link.settings.response_timeout
            )));
            let _ = join_channels(&link).await;
        }
    });
    Ok(())
}

/// What a NOTICE from NickServ says of our IDENTIFY: `Some(true)` identified, `Some(false)`
/// refused, `None` neither (its greeting, say). Services word it differently: Atheme "You
/// are now identified for …" / "Invalid password for …" / "… is not registered", Anope
/// "Password accepted - you are now recognized." / "Password incorrect.".
fn identify_outcome(text: &str) -> Option<bool> {
    let text = text.to_lowercase();
    if text.contains("you are now") {
        Some(true)
    } else if ["invalid", "incorrect", "not registered", "failed"]
        .iter()
        .any(|word| text.contains(word))
    {
        Some(false)
    } else {
        None
    }
}

/// Acts on NickServ's answer to our IDENTIFY: a status when it refused, then the JOINs.
async fn nickserv_answered(link: &Link, identified: bool, said: &str) {
    link.awaiting_nickserv.set(false);
    if identified {
        link.ctx
            .log(LogRecord::info(format!("Identified to NickServ: {said}")));
    } else {
        let message = format!("NickServ refused our IDENTIFY: {said}");
        link.ctx.log(LogRecord::warning(message.clone()));
        status(
            &link.ctx,
            StatusLevel::Degraded,
            "identify_failed",
            message,
            Map::new(),
        )
        .await;
    }
    let _ = join_channels(link).await;
}

/// PASS, NICK and USER, then reads until the server welcomes us (001), answering PINGs and
/// trying other nicks while ours is taken.
async fn register(link: &Link, reader: &mut Reader) -> Result<(), OpenError> {
    let settings = &link.settings;
    let mut hello = Vec::new();
    if let Some(password) = &settings.password {
        hello.push(Line::new("PASS", &[password.reveal()]));
    }
    hello.push(Line::new("NICK", &[&settings.nickname]));
    hello.push(Line::new(
        "USER",
        &[&settings.username, "0", "*", &settings.realname],
    ));
    link.write(&hello, None)
        .await
        .map_err(OpenError::Registration)?;
    let mut attempts = 0;
    loop {
        let text = match reader.next().await {
            Some(Ok(text)) => text,
            Some(Err(e)) => return Err(OpenError::Registration(e.to_string())),
            None => {
                return Err(OpenError::Registration(
                    "the server closed the connection".into(),
                ))
            }
        };
        link.received(&text, None);
        let Some(line) = Line::parse(&text) else {
            continue;
        };
        match line.command.as_str() {
            "001" => {
                if let Some(nick) = line.param(0) {
                    *link.nick.borrow_mut() = nick.to_owned();
                }
                return Ok(());
            }
            "433" | "436" | "437" if attempts < NICK_ATTEMPTS => {
                attempts += 1;
                let nick = format!("{}^", link.nick());
                *link.nick.borrow_mut() = nick.clone();
                link.write(&[Line::new("NICK", &[&nick])], None)
                    .await
                    .map_err(OpenError::Registration)?;
            }
            "432" | "433" | "436" | "437" | "464" | "465" => {
                return Err(OpenError::Refused {
                    reply: line.command.clone(),
                    text: line.params.last().cloned().unwrap_or_default(),
                })
            }
            _ if line.is("PING") => answer_ping(link, &line).await?,
            // Before the welcome, the server's closing words refuse us (ngIRCd says only
            // "ERROR :Access denied: Bad password?", no 464).
            _ if line.is("ERROR") => {
                return Err(OpenError::Refused {
                    reply: "ERROR".into(),
                    text: line.params.last().cloned().unwrap_or_default(),
                })
            }
            _ => {}
        }
    }
}

async fn answer_ping(link: &Link, ping: &Line) -> Result<(), OpenError> {
    let params: Vec<&str> = ping.params.iter().map(String::as_str).collect();
    link.write(&[Line::new("PONG", &params)], None)
        .await
        .map_err(OpenError::Registration)
}

/// Runs a registered link until it dies; returns why.
pub async fn run(link: Rc<Link>, mut reader: Reader) -> String {
    let settings = link.settings.clone();
    let server = settings.server();
    let mut last_heard = Instant::now();
    let mut pinged: Option<Instant> = None;
    let mut dropped = 0;
    loop {
        if let Some(reason) = link.death.borrow().clone() {
            return reason;
        }
        let wake = match pinged {
            Some(at) => at + settings.response_timeout,
            None => last_heard + settings.ping_interval,
        };
        tokio::select! {
            next = reader.next() => {
                last_heard = Instant::now();
                pinged = None;
                match next {
                    Some(Ok(text)) => handle(&link, &server, &text).await,
                    Some(Err(e)) => link.kill(format!("cannot read from the IRC server: {e}")),
                    None => link.kill("the IRC server closed the connection".into()),
                }
                if reader.decoder().dropped > dropped {
                    dropped = reader.decoder().dropped;
                    link.ctx.log(LogRecord::warning(
                        "Dropped an over-long line from the IRC server.",
                    ));
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if pinged.is_some() {
                    link.kill(format!(
                        "the IRC server did not answer our PING within {:?}",
                        settings.response_timeout
                    ));
                } else {
                    pinged = Some(Instant::now());
                    let _ = link.write(&[Line::new("PING", &[&settings.nickname])], None).await;
                }
            }
            () = link.dead.notified() => {}
        }
    }
}

/// Acts on one line from the server.
async fn handle(link: &Rc<Link>, server: &str, text: &str) {
    let Some(line) = Line::parse(text) else {
        link.received(text, None);
        return;
    };
    let nick = link.nick();
    let cx = InboundContext {
        nick: &nick,
        server,
        channel_id: link.ctx.channel_id(),
        transport_type: &link.settings.transport_type,
    };
    if let Some(nickserv) = &link.settings.nickserv {
        let said = line.params.last().map(String::as_str).unwrap_or_default();
        let from_nickserv = line
            .nick()
            .is_some_and(|from| canonical(from) == canonical(&nickserv.nick));
        if link.awaiting_nickserv.get() && line.is("NOTICE") && from_nickserv {
            link.received(text, None);
            if let Some(identified) = identify_outcome(said) {
                nickserv_answered(link, identified, said).await;
            }
            return;
        }
    }
    if let Some(message) = mapping::inbound(&line, &cx) {
        link.received(text, Some(&message.message_id));
        // A failure was logged by the host; IRC has no way to have the line sent again.
        let _ = link.ctx.inbound(message).await;
        return;
    }
    link.received(text, None);
    let from_us = line
        .nick()
        .is_some_and(|from| canonical(from) == canonical(&nick));
    let command = line.command.to_ascii_uppercase();
    match command.as_str() {
        "PING" => {
            let params: Vec<&str> = line.params.iter().map(String::as_str).collect();
            let _ = link.write(&[Line::new("PONG", &params)], None).await;
        }
        "ERROR" => link.kill(format!(
            "the IRC server closed the link: {}",
            line.params.last().map(String::as_str).unwrap_or_default()
        )),
        "JOIN" if from_us => {
            let Some(channel) = line.param(0) else { return };
            *link.mask.borrow_mut() = line.prefix.clone();
            link.joined.borrow_mut().insert(canonical(channel));
            link.ctx
                .log(LogRecord::info(format!("Joined {channel} as {nick}")));
            if link.kicked.borrow_mut().remove(&canonical(channel)) {
                let message = format!("Back in {channel} after a kick");
                let details = Map::from_iter([("channel".to_owned(), json!(channel))]);
                status(&link.ctx, StatusLevel::Ok, "rejoined", message, details).await;
            }
        }
        "PART" if from_us => {
            if let Some(channel) = line.param(0) {
                link.joined.borrow_mut().remove(&canonical(channel));
            }
        }
        "KICK"
            if line
                .param(1)
                .is_some_and(|who| canonical(who) == canonical(&nick)) =>
        {
            let channel = line.param(0).unwrap_or_default();
            link.joined.borrow_mut().remove(&canonical(channel));
            link.kicked.borrow_mut().insert(canonical(channel));
            let by = line.nick().unwrap_or_default();
            let reason = line.param(2).unwrap_or_default();
            let message = format!("Kicked from {channel} by {by}: {reason}");
            link.ctx.log(LogRecord::warning(message.clone()));
            let details = Map::from_iter([("channel".to_owned(), json!(channel))]);
            status(&link.ctx, StatusLevel::Degraded, "kicked", message, details).await;
            if let Some(delay) = link.settings.rejoin_after_kick {
                rejoin_later(link, channel.to_owned(), delay);
            }
        }
        "NICK" if from_us => {
            if let Some(new) = line.param(0) {
                *link.nick.borrow_mut() = new.to_owned();
                *link.mask.borrow_mut() = None;
                link.ctx
                    .log(LogRecord::info(format!("Our nick is now {new}")));
            }
        }
        "QUIT" | "NICK" => reclaim_nick(link, &line).await,
        _ if JOIN_FAILURES.contains(&command.as_str()) && joining(link, &line) => {
            let channel = line.param(1).unwrap_or_default();
            let said = line.params.last().map(String::as_str).unwrap_or_default();
            let message = format!("Cannot join {channel}: {command} {said}");
            link.ctx.log(LogRecord::warning(message.clone()));
            let details = Map::from_iter([
                ("channel".to_owned(), json!(channel)),
                ("reply".to_owned(), json!(command)),
            ]);
            status(
                &link.ctx,
                StatusLevel::Degraded,
                "join_failed",
                message,
                details,
            )
            .await;
        }
        _ if SEND_FAILURES.contains(&command.as_str()) => {
            let target = line.param(1).unwrap_or_default();
            let said = line.params.last().map(String::as_str).unwrap_or_default();
            let mut record = LogRecord::warning(format!(
                "The IRC server refused a message to {target}: {command} {said}"
            ));
            if let Some(id) = link.last_sent.borrow().get(&canonical(target)) {
                record = record.about(id.clone());
            }
            link.ctx.log(record);
        }
        _ => {}
    }
}

/// Joins `channel` again after `delay`, unless the link died or we are back in it by then.
///
/// A task of its own so that the reader goes on meanwhile; it holds the link only for the
/// delay, and a dead link refuses the write.
fn rejoin_later(link: &Rc<Link>, channel: String, delay: Duration) {
    let link = link.clone();
    tokio::task::spawn_local(async move {
        tokio::time::sleep(delay).await;
        if !link.joined.borrow().contains(&canonical(&channel)) {
            let _ = link.write(&[Line::new("JOIN", &[&channel])], None).await;
        }
    });
}

/// Whether an error reply is about a channel we were joining (one of ours, not joined yet).
fn joining(link: &Link, line: &Line) -> bool {
    let Some(channel) = line.param(1).map(canonical) else {
        return false;
    };
    !link.joined.borrow().contains(&channel)
        && link
            .settings
            .channels
            .iter()
            .any(|ours| canonical(ours) == channel)
}

/// Takes our configured nick back when the one holding it (a ghost of our own earlier
/// connection, typically) quits or changes nick.
async fn reclaim_nick(link: &Link, line: &Line) {
    let wanted = &link.settings.nickname;
    let freed = line
        .nick()
        .is_some_and(|from| canonical(from) == canonical(wanted));
    if freed && canonical(&link.nick()) != canonical(wanted) {
        let _ = link.write(&[Line::new("NICK", &[wanted])], None).await;
    }
}
