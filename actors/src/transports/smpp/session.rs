//! One SMPP session: a TCP connection to the SMSC, bound as transceiver, transmitter or
//! receiver.
//!
//! A [`Link`] matches responses to requests by sequence number, bounds the submit_sm that
//! await their response (the window), answers the SMSC's enquire_link and unbind, sends our
//! own enquire_link every interval and declares the link dead when one goes unanswered for
//! the response timeout. Every PDU in and out goes to the channel log (DEBUG, with its decoded
//! fields and the message id it concerns).
//!
//! [`open`] connects and binds; the returned future runs the link until it dies and says why.
//! Reconnecting is the caller's job ([`super::connection`]).
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures_util::{SinkExt, StreamExt};
use rusmpp::tokio_codec::CommandCodec;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::config::SmppSettings;
use super::pdu::{self, BindKind, Command, CommandId, CommandStatus, Pdu};
use crate::ports::{Direction, LogRecord};
use crate::transport::TransportContext;
use crate::transports::tls::dial;

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The link died (or was closed) before the response came.
    #[error("the SMPP link closed: {0}")]
    Closed(String),
    /// No response within the response timeout.
    #[error("no response from the SMSC within the response timeout")]
    Timeout,
}

/// Why a session could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// TCP connection failed.
    #[error("cannot connect to the SMSC: {0}")]
    Connect(String),
    /// The SMSC refused the bind.
    #[error("the SMSC refused the bind with command_status {0:#010x}")]
    Refused(u32),
    /// The bind got no answer or the link died during it.
    #[error("bind failed: {0}")]
    Bind(LinkError),
}

/// What a session does with the deliver_sm it receives: handles it and answers it (through
/// [`Link::respond`]) once it is safe to.
pub trait DeliverHandler {
    /// Called for each deliver_sm; the future runs on its own task, so a slow handler never
    /// holds up the responses behind it on the link.
    fn deliver(
        self: Rc<Self>,
        link: Rc<Link>,
        command: Command,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()>>>;
}

/// A bound SMPP session.
pub struct Link {
    kind: BindKind,
    ctx: TransportContext,
    out: mpsc::UnboundedSender<Command>,
    pending: RefCell<HashMap<u32, oneshot::Sender<Command>>>,
    next_sequence: Cell<u32>,
    window: Semaphore,
    timeout: std::time::Duration,
    dead: Notify,
    death: RefCell<Option<String>>,
}

impl Link {
    /// Which bind this is.
    pub fn kind(&self) -> BindKind {
        self.kind
    }

    /// Whether the link has died.
    pub fn is_dead(&self) -> bool {
        self.death.borrow().is_some()
    }

    /// Sends a request and waits for its response (at most the response timeout).
    pub async fn request(&self, pdu: Pdu, about: Option<&str>) -> Result<Command, LinkError> {
        let sequence = self.next_sequence.get();
        // Sequence numbers run 1..=0x7FFFFFFF (SMPP 3.4 §3.2).
        self.next_sequence.set(if sequence >= 0x7FFF_FFFF {
            1
        } else {
            sequence + 1
        });
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(sequence, tx);
        self.write(Command::new(CommandStatus::EsmeRok, sequence, pdu), about);
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(response)) => {
                self.log(Direction::Inbound, &response, about);
                Ok(response)
            }
            Ok(Err(_)) => Err(LinkError::Closed(
                self.death.borrow().clone().unwrap_or_default(),
            )),
            Err(_) => {
                self.pending.borrow_mut().remove(&sequence);
                Err(LinkError::Timeout)
            }
        }
    }

    /// Sends a submit_sm within the window: waits for a free slot first, and keeps it until
    /// the response (or the timeout).
    pub async fn submit(&self, pdu: Pdu, about: &str) -> Result<Command, LinkError> {
        let _slot = self
            .window
            .acquire()
            .await
            .map_err(|_| LinkError::Closed("closing".into()))?;
        if let Some(reason) = self.death.borrow().clone() {
            return Err(LinkError::Closed(reason));
        }
        self.request(pdu, Some(about)).await
    }

    /// Answers the SMSC's request `sequence`.
    pub fn respond(&self, sequence: u32, status: u32, pdu: Pdu, about: Option<&str>) {
        let status = CommandStatus::from(status);
        self.write(Command::new(status, sequence, pdu), about);
    }

    /// Waits until no submit_sm awaits a response, at most `bound`.
    pub async fn drain(&self, window_size: usize, bound: std::time::Duration) {
        let all = u32::try_from(window_size).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(bound, self.window.acquire_many(all)).await;
    }

    /// Unbinds politely (waiting at most the response timeout) and closes.
    pub async fn unbind(&self) {
        let _ = self.request(Pdu::Unbind, None).await;
        self.kill("unbound".into());
    }

    /// Declares the link dead: pending requests fail, the run future returns.
    pub fn kill(&self, reason: String) {
        if self.death.borrow().is_some() {
            return;
        }
        *self.death.borrow_mut() = Some(reason);
        self.pending.borrow_mut().clear(); // their receivers see Closed
        self.window.close();
        self.dead.notify_waiters();
        self.dead.notify_one();
    }

    fn write(&self, command: Command, about: Option<&str>) {
        self.log(Direction::Outbound, &command, about);
        if self.out.send(command).is_err() {
            self.kill("the connection is closed".into());
        }
    }

    fn log(&self, direction: Direction, command: &Command, about: Option<&str>) {
        let mut record = LogRecord::debug(format!(
            "SMPP {} {:?} #{}",
            if direction == Direction::Outbound {
                "sent"
            } else {
                "received"
            },
            command.id(),
            command.sequence_number()
        ))
        .going(direction)
        .with_trace(pdu::trace(command));
        if let Some(id) = about {
            record = record.about(id);
        }
        self.ctx.log(record);
    }

    /// Routes one PDU from the SMSC.
    fn incoming(self: &Rc<Self>, command: Command, handler: &Rc<dyn DeliverHandler>) {
        let id = command.id();
        if u32::from(id) & 0x8000_0000 != 0 || id == CommandId::GenericNack {
            // A response: its waiter logs it with the message it concerns; a late one (whose
            // waiter gave up) is logged here.
            let waiter = self.pending.borrow_mut().remove(&command.sequence_number());
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send(command);
                }
                None => self.log(Direction::Inbound, &command, None),
            }
            return;
        }
        match id {
            CommandId::DeliverSm => {
                // Logged by the handler, which knows the message it concerns.
                let task = handler.clone().deliver(self.clone(), command);
                tokio::task::spawn_local(task);
            }
            CommandId::EnquireLink => {
                self.log(Direction::Inbound, &command, None);
                self.respond(command.sequence_number(), 0, Pdu::EnquireLinkResp, None);
            }
            CommandId::Unbind => {
                self.log(Direction::Inbound, &command, None);
                self.respond(command.sequence_number(), 0, Pdu::UnbindResp, None);
                self.kill("the SMSC unbound".into());
            }
            _ => {
                self.log(Direction::Inbound, &command, None);
                // ESME_RINVCMDID: we do not take this request.
                self.respond(command.sequence_number(), 0x03, Pdu::GenericNack, None);
            }
        }
    }

    /// Logs a PDU received by a deliver handler, tagged with the message it concerns.
    pub fn log_received(&self, command: &Command, about: Option<&str>) {
        self.log(Direction::Inbound, command, about);
    }
}

/// Connects, binds as `kind`, and returns the link with the future that runs it until it
/// dies; that future yields the reason.
pub async fn open(
    settings: &SmppSettings,
    kind: BindKind,
    ctx: TransportContext,
    handler: Rc<dyn DeliverHandler>,
) -> Result<(Rc<Link>, impl Future<Output = String>), OpenError> {
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
    let (out, mut outgoing) = mpsc::unbounded_channel::<Command>();
    let link = Rc::new(Link {
        kind,
        ctx,
        out,
        pending: RefCell::new(HashMap::new()),
        next_sequence: Cell::new(1),
        window: Semaphore::new(settings.window_size),
        timeout: settings.response_timeout,
        dead: Notify::new(),
        death: RefCell::new(None),
    });

    // Weak: the link owns the sender this task drains, so a strong reference would keep
    // both alive forever.
    let writer_link = Rc::downgrade(&link);
    let writer = AbortOnDrop(tokio::task::spawn_local(async move {
        let mut sink = FramedWrite::new(write, CommandCodec::new());
        while let Some(command) = outgoing.recv().await {
            if let Err(e) = sink.send(&command).await {
                if let Some(link) = writer_link.upgrade() {
                    link.kill(format!("cannot write to the SMSC: {e}"));
                }
                return;
            }
        }
    }));

    let mut frames = FramedRead::new(read, CommandCodec::new());
    let reader_link = link.clone();
    let keepalive = settings.enquire_link_interval;
    let run = async move {
        let link = reader_link;
        let _writer = writer;
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let mut keepalives = Vec::new();
        loop {
            if let Some(reason) = link.death.borrow().clone() {
                return reason;
            }
            tokio::select! {
                frame = frames.next() => match frame {
                    Some(Ok(command)) => link.incoming(command, &handler),
                    Some(Err(e)) => link.kill(format!("unreadable PDU from the SMSC: {e}")),
                    None => link.kill("the SMSC closed the connection".into()),
                },
                _ = ticks.tick() => {
                    let link = link.clone();
                    keepalives.retain(|task: &tokio::task::JoinHandle<()>| !task.is_finished());
                    keepalives.push(tokio::task::spawn_local(async move {
                        if let Err(LinkError::Timeout) = link.request(Pdu::EnquireLink, None).await {
                            link.kill("enquire_link unanswered: the link is dead".into());
                        }
                    }));
                },
                _ = link.dead.notified() => {}
            }
        }
    };
    let mut run = Box::pin(run);

    // Bind while the link runs (the bind response arrives through it).
    let bind = pdu::bind(kind, settings).map_err(|e| OpenError::Bind(LinkError::Closed(e)))?;
    let response = tokio::select! {
        response = link.request(bind, None) => response.map_err(OpenError::Bind)?,
        reason = &mut run => return Err(OpenError::Bind(LinkError::Closed(reason))),
    };
    match pdu::status(&response) {
        0 => Ok((link, run)),
        status => {
            link.kill("bind refused".into());
            Err(OpenError::Refused(status))
        }
    }
}

/// Aborts a task when dropped, so a dead link leaves no writer behind.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
