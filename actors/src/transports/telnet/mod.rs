//! The `telnet` channel type (API.md 4.6): a telnet server where each connected client is an
//! address, `"<ip>:<port>"`. The getting-started channel type, and handy for demos.
//!
//! Pieces:
//!
//! - [`config`]: [`TelnetConfig`] (the JSON `config`) and [`TelnetSettings`] (validated);
//! - [`codec`]: the telnet wire codec (IAC negotiation, newlines), pure and byte-tested;
//! - this module: the session, i.e. the listener task and one client future per connection,
//!   and the mapping between telnet lines and our [`Message`]s.
//!
//! # Behaviour
//!
//! - A client connects: an inbound message with no content, `from` = the client's
//!   `"ip:port"`, `to` = `to_addr` or `"<listen host>:<bound port>"`, session event `new`.
//! - Each TCP read with application data is one inbound message (`resume`), its text without
//!   trailing `\r`/`\n`; lines are not split. Negotiation-only reads give nothing; `/quit`
//!   (any case) closes the connection instead.
//! - The client goes away (EOF, error, `/quit`, our close): an inbound message with no content
//!   and session event `close` (decision 15: forwarded, unlike the original).
//! - [`Transport::send`] writes `content + "\n"` (newlines as `\r\n`) to the client whose
//!   address is the message's `to`, closing it afterwards if the message's session event is
//!   `close`. With no such client, `UNKNOWN ADDR [<to>]: <content>` goes to every client and
//!   the send is rejected with `Unknown address.`; a client whose connection fails during the
//!   write gives `Connection lost.`.
//! - [`Transport::stop`] stops listening and closes every connection at once (decision 13:
//!   never wait on clients); their `close` messages are still delivered before it returns.
//!
//! # Tasks
//!
//! One task per running transport, spawned with [`TransportContext::spawn`]: it accepts
//! connections and drives every client as a future of its own inside it
//! (`FuturesUnordered`), so the task's handle is the only thing `stop` has to end, and a
//! listener or socket never outlives it. A client future runs a reader and a writer side by
//! side: the reader hands messages to the host one at a time (per-client order), the writer
//! drains the client's bounded queue, so neither a slow host nor a slow client blocks the
//! other direction or any other client.
pub mod codec;
pub mod config;

#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use self::codec::{encode_line, Decoder};
pub use self::config::{TelnetConfig, TelnetSettings};
use crate::message::{new_message_id, timestamp_now, Message, SessionEvent};
use crate::ports::LogRecord;
use crate::transport::{
    ChannelType, ConfigError, SendError, Sent, TaskHandle, Transport, TransportContext,
    TransportError,
};
use crate::transports::parse_config;

/// Lines queued for one client before `send` waits. Small: a client that does not read is
/// found out by [`WRITE_TIMEOUT`], not by a big buffer.
const CLIENT_QUEUE: usize = 16;

/// How long one write to a client may take. A client that has not taken a line within this
/// time is considered gone: its connection is closed and its pending sends fail with
/// `Connection lost.`. This bounds how long a send (and so a slot of the channel's send
/// window) can wait on one client.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`TelnetTransport::stop`] waits for the clients' `close` messages to be recorded
/// by the host before it drops them. Clients themselves are never waited on.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The largest read, so the largest inbound message, in bytes.
const READ_BUFFER: usize = 16 * 1024;

/// The longest pause after a failed `accept` (e.g. out of file descriptors); the pause
/// doubles from 10 ms up to this.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// What a rejected send to a client says when its connection failed.
const CONNECTION_LOST: &str = "Connection lost.";

/// The `telnet` entry of the [`crate::TransportRegistry`].
pub struct TelnetType;

impl ChannelType for TelnetType {
    fn name(&self) -> &'static str {
        "telnet"
    }

    fn description(&self) -> &'static str {
        "A telnet server: each connected client is an address (for demos and testing)"
    }

    fn build(&self, _channel_id: &str, config: &Value) -> Result<Rc<dyn Transport>, ConfigError> {
        let settings = parse_config::<TelnetConfig>(config)?.validate()?;
        Ok(Rc::new(TelnetTransport::new(settings)))
    }
}

/// A telnet channel's transport; see the module docs.
pub struct TelnetTransport {
    settings: TelnetSettings,
    /// [`WRITE_TIMEOUT`], shorter in tests.
    write_timeout: Duration,
    /// Set between `start` and `stop`.
    running: RefCell<Option<Running>>,
}

/// A started transport.
struct Running {
    shared: Rc<Shared>,
    /// The address the listener is bound to.
    local_addr: SocketAddr,
    /// Set to `true` to stop: the listener closes, every client closes.
    stop: watch::Sender<bool>,
    /// Resolves when the listener task has ended and dropped everything it held (its
    /// sender is dropped with the task's future, whether it finished or was aborted).
    finished: oneshot::Receiver<()>,
    /// The listener task; dropping it aborts the task.
    task: TaskHandle,
}

/// What the listener task and `send` share.
struct Shared {
    ctx: TransportContext,
    /// The `to` of inbound messages.
    to_addr: String,
    transport_type: String,
    /// How long one write to a client may take.
    write_timeout: Duration,
    /// The connected clients, by `"ip:port"`.
    clients: RefCell<HashMap<String, ClientEntry>>,
    /// Tells two connections from the same address apart (one gone, one new).
    next_client_id: Cell<u64>,
}

/// A connected client, as `send` sees it.
struct ClientEntry {
    id: u64,
    /// The client's writer queue.
    queue: mpsc::Sender<Outgoing>,
}

/// Bytes for a client's writer.
struct Outgoing {
    bytes: Vec<u8>,
    /// Close the connection after writing.
    then_close: bool,
    /// Told how the write went; dropped unanswered if the connection closes first.
    done: Option<oneshot::Sender<io::Result<()>>>,
}

impl Outgoing {
    /// Bytes nobody waits on (negotiation replies, `UNKNOWN ADDR` notices).
    fn notice(bytes: Vec<u8>) -> Self {
        Outgoing {
            bytes,
            then_close: false,
            done: None,
        }
    }
}

impl TelnetTransport {
    /// A transport for validated settings; it does nothing until started.
    pub fn new(settings: TelnetSettings) -> Self {
        TelnetTransport {
            settings,
            write_timeout: WRITE_TIMEOUT,
            running: RefCell::new(None),
        }
    }

    /// The address the transport listens on, while it runs (the real port with `tcp:0`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.running.borrow().as_ref().map(|r| r.local_addr)
    }

    /// The addresses of the connected clients, sorted.
    pub fn clients(&self) -> Vec<String> {
        let running = self.running.borrow();
        let mut clients: Vec<String> = running
            .as_ref()
            .map(|r| r.shared.clients.borrow().keys().cloned().collect())
            .unwrap_or_default();
        clients.sort();
        clients
    }
}

#[async_trait(?Send)]
impl Transport for TelnetTransport {
    async fn start(&self, ctx: TransportContext) -> Result<(), TransportError> {
        if self.running.borrow().is_some() {
            return Err(TransportError(
                "the telnet transport is already running".into(),
            ));
        }
        let listen = &self.settings.listen;
        let listener = bind(listen)
            .await
            .map_err(|e| TransportError(format!("cannot listen on {listen}: {e}")))?;
        let local_addr = listener.local_addr()?;
        let bound = format!("{}:{}", listen.host, local_addr.port());
        ctx.log(LogRecord::info(format!(
            "Starting a telnet transport listening on {bound}"
        )));
        let shared = Rc::new(Shared {
            ctx: ctx.clone(),
            to_addr: self.settings.to_addr.clone().unwrap_or(bound),
            transport_type: self.settings.transport_type.clone(),
            write_timeout: self.write_timeout,
            clients: RefCell::new(HashMap::new()),
            next_client_id: Cell::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        let (finished_tx, finished) = oneshot::channel();
        let task = ctx.spawn(
            "telnet listener",
            serve(listener, shared.clone(), stop_rx, finished_tx),
        );
        *self.running.borrow_mut() = Some(Running {
            shared,
            local_addr,
            stop,
            finished,
            task,
        });
        Ok(())
    }

    /// Sends one line to the client whose address is the message's `to`; see the module
    /// docs. A transport that is not running asks for a retry.
    async fn send(&self, message: Message) -> Result<Sent, SendError> {
        let shared = self.running.borrow().as_ref().map(|r| r.shared.clone());
        let Some(shared) = shared else {
            return Err(SendError::Retry {
                reason: "the telnet transport is not running".into(),
                after: Duration::from_secs(1),
            });
        };
        let to = message.to_addr.as_deref().unwrap_or_default();
        let content = message.content.as_deref().unwrap_or_default();
        let queue = shared.clients.borrow().get(to).map(|c| c.queue.clone());
        let Some(queue) = queue else {
            // Fire and forget: a client whose queue is full misses the notice.
            let notice = encode_line(&format!("UNKNOWN ADDR [{to}]: {content}"));
            for client in shared.clients.borrow().values() {
                let _ = client.queue.try_send(Outgoing::notice(notice.clone()));
            }
            return Err(SendError::Rejected("Unknown address.".into()));
        };
        let (done, written) = oneshot::channel();
        let line = Outgoing {
            bytes: encode_line(content),
            then_close: message.session_event == Some(SessionEvent::Close),
            done: Some(done),
        };
        // Waits while the queue is full; bounded because a stuck write ends the client
        // within WRITE_TIMEOUT, which fails every queued and waiting send.
        if queue.send(line).await.is_err() {
            return Err(SendError::Rejected(CONNECTION_LOST.into()));
        }
        match written.await {
            Ok(Ok(())) => Ok(Sent::default()),
            Ok(Err(_)) | Err(_) => Err(SendError::Rejected(CONNECTION_LOST.into())),
        }
    }

    async fn stop(&self) {
        let running = self.running.borrow_mut().take();
        let Some(Running {
            shared,
            stop,
            mut finished,
            task,
            ..
        }) = running
        else {
            return;
        };
        stop.send_replace(true);
        if tokio::time::timeout(STOP_GRACE, &mut finished)
            .await
            .is_err()
        {
            shared.ctx.log(LogRecord::warning(format!(
                "Clients were not deregistered within {STOP_GRACE:?}; dropping them."
            )));
            drop(task);
            // The abort drops the task's future, and with it the listener, the sockets and
            // the sender of `finished`; on this single-threaded runtime, all of it is gone
            // by the time this wakes.
            let _ = finished.await;
        }
    }
}

/// Listens on `listen`, with `SO_REUSEADDR` so a restart can rebind the port at once even
/// while old connections linger in `TIME_WAIT`.
async fn bind(listen: &config::ListenAddr) -> io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host((listen.host.as_str(), listen.port)).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(listen.backlog))
        {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address")))
}

/// The listener task: accepts clients and drives them until `stop` turns true, then closes
/// the listener, lets every client close and deliver its `close` message, and ends.
async fn serve(
    listener: TcpListener,
    shared: Rc<Shared>,
    mut stop: watch::Receiver<bool>,
    // Dropped when this future is (finished or aborted): tells `stop` everything is gone.
    _finished: oneshot::Sender<()>,
) -> Result<(), TransportError> {
    let mut clients = FuturesUnordered::new();
    let client_stop = stop.clone();
    let mut backoff = Duration::ZERO;
    // After a failed accept, accepting pauses until `pause` fires.
    let pause = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(pause);
    let mut paused = false;
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            accepted = listener.accept(), if !paused => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::ZERO;
                    clients.push(serve_client(shared.clone(), stream, peer, client_stop.clone()));
                }
                Err(e) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                    shared.ctx.log(LogRecord::warning(format!(
                        "Cannot accept a telnet client: {e}; pausing {backoff:?}."
                    )));
                    pause.as_mut().reset(tokio::time::Instant::now() + backoff);
                    paused = true;
                }
            },
            () = &mut pause, if paused => paused = false,
            Some(()) = clients.next() => {}
        }
    }
    // The port is free from here; the clients see `stop` and close.
    drop(listener);
    while clients.next().await.is_some() {}
    Ok(())
}

/// One client, from connect to the delivery of its `close` message.
async fn serve_client(
    shared: Rc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    // vumi's form: no brackets around an IPv6 address; IPv4-mapped addresses as IPv4.
    let addr = format!("{}:{}", peer.ip().to_canonical(), peer.port());
    let (queue, queue_rx) = mpsc::channel(CLIENT_QUEUE);
    let id = shared.register(&addr, queue.clone());
    shared.ctx.log(LogRecord::info(format!(
        "Registering client connected from '{addr}'"
    )));
    hand_on(&shared, shared.message(&addr, None, SessionEvent::New)).await;

    // Either side ending (EOF, /quit, a close requested by a send, an error, stop) closes
    // the connection: it sets `closing`, which ends the other side.
    let closing = watch::Sender::new(false);
    let (reader, writer) = stream.split();
    tokio::join!(
        async {
            read_side(&shared, &addr, reader, &queue, &closing).await;
            closing.send_replace(true);
        },
        async {
            write_side(writer, queue_rx, &closing, stop, shared.write_timeout).await;
            closing.send_replace(true);
        },
    );
    shared.deregister(&addr, id);
    drop(stream);
    shared
        .ctx
        .log(LogRecord::info("Deregistering client.".to_owned()));
    hand_on(&shared, shared.message(&addr, None, SessionEvent::Close)).await;
}

/// Reads what the client sends and delivers it, one message per read, in order, until the
/// client goes away, quits, or `closing` is set.
async fn read_side(
    shared: &Shared,
    addr: &str,
    mut reader: ReadHalf<'_>,
    replies: &mpsc::Sender<Outgoing>,
    closing: &watch::Sender<bool>,
) {
    let mut closed = closing.subscribe();
    let mut decoder = Decoder::new();
    let mut buffer = vec![0; READ_BUFFER];
    loop {
        // Only the wait for data is cut short by `closing`: a message read is always
        // delivered in full.
        let read = tokio::select! {
            biased;
            _ = closed.wait_for(|closed| *closed) => return,
            read = reader.read(&mut buffer) => read,
        };
        let mut decoded = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => decoder.decode(&buffer[..n]),
        };
        if !decoded.replies.is_empty() {
            let bytes = std::mem::take(&mut decoded.replies);
            let replies_sent = tokio::select! {
                biased;
                _ = closed.wait_for(|closed| *closed) => false,
                sent = replies.send(Outgoing::notice(bytes)) => sent.is_ok(),
            };
            if !replies_sent {
                return;
            }
        }
        let Some(text) = decoded.text() else {
            continue;
        };
        if text.eq_ignore_ascii_case("/quit") {
            return;
        }
        let message = shared.message(addr, Some(text), SessionEvent::Resume);
        hand_on(shared, message).await;
    }
}

/// Hands a client's line or session event to the daemon. A failure is logged by the host;
/// telnet has no way to have the line sent again.
async fn hand_on(shared: &Shared, message: Message) {
    let _ = shared.ctx.inbound(message).await;
}

/// Writes the client's queue out, each write within `write_timeout`, until a line asks to
/// close, a write fails, `closing` is set or the transport stops.
async fn write_side(
    mut writer: WriteHalf<'_>,
    mut queue: mpsc::Receiver<Outgoing>,
    closing: &watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
    write_timeout: Duration,
) {
    let mut closed = closing.subscribe();
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = closed.wait_for(|closed| *closed) => return,
            next = queue.recv() => next,
        };
        let Some(line) = next else { return };
        let written = tokio::select! {
            biased;
            // Stopping cuts a write short; the sender's `done` is dropped, so its send fails.
            _ = stop.wait_for(|stopped| *stopped) => return,
            written = tokio::time::timeout(write_timeout, writer.write_all(&line.bytes)) => {
                written.unwrap_or_else(|_| {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "the client is not reading"))
                })
            }
        };
        let failed = written.is_err();
        if let Some(done) = line.done {
            let _ = done.send(written);
        }
        if failed || line.then_close {
            return;
        }
    }
}

impl Shared {
    /// Adds a client to the address book; returns its id.
    fn register(&self, addr: &str, queue: mpsc::Sender<Outgoing>) -> u64 {
        let id = self.next_client_id.get();
        self.next_client_id.set(id + 1);
        self.clients
            .borrow_mut()
            .insert(addr.to_owned(), ClientEntry { id, queue });
        id
    }

    /// Removes client `id` from the address book, unless a newer connection from the same
    /// address has replaced it.
    fn deregister(&self, addr: &str, id: u64) {
        let mut clients = self.clients.borrow_mut();
        if clients.get(addr).is_some_and(|client| client.id == id) {
            clients.remove(addr);
        }
    }

    /// An inbound message from the client at `from`.
    fn message(&self, from: &str, content: Option<String>, event: SessionEvent) -> Message {
        Message {
            message_id: new_message_id(),
            timestamp: timestamp_now(),
            to_addr: Some(self.to_addr.clone()),
            from_addr: Some(from.to_owned()),
            group: None,
            in_reply_to: None,
            session_event: Some(event),
            content,
            transport_name: self.ctx.channel_id().to_owned(),
            transport_type: self.transport_type.clone(),
            transport_metadata: Default::default(),
            helper_metadata: Default::default(),
            expires_at: None,
        }
    }
}
