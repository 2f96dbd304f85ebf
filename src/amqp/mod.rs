//! The process's one RabbitMQ connection, shared by the Queue backend and the AMQP
//! integration for applications.
//!
//! - [`AmqpLink`]: a cheap handle on the connection. It hands out new channels
//!   ([`AmqpLink::channel`]) and publishes with publisher confirms on one long-lived
//!   confirm-mode channel ([`AmqpLink::publish_confirmed`]). lapin pipelines concurrent
//!   publishes and their confirms on that channel, so confirms come back batched under load
//!   while each caller still waits only for its own. [`AmqpLink::publish_mandatory`] also
//!   fails when no queue receives the message (the Queue backend's enqueue).
//! - A supervisor task watches the connection and, when it is lost, reconnects with
//!   exponential backoff (100 ms doubling to 5 s). Meanwhile every operation fails at once
//!   with a [`BackendError`] (the API answers 503) instead of waiting; consumers use
//!   [`AmqpLink::wait_connected`] to resume. Each connection has a new
//!   [`generation`](AmqpLink::generation), so callers that set up broker state redo it.
//! - [`declare_bound_queue`]: a durable queue bound to the `vumi` exchange under its own name.
//!
//! Why not lapin's own recovery (`enable_auto_recover` + `wait_for_recovery`)? It gives up
//! for good after a fixed number of attempts (16 by default), so a broker down for a few
//! minutes leaves the process without RabbitMQ until it restarts; it sleeps on the io-loop
//! thread; and it replays topology, QoS and consumers onto channels whose delivery tags start
//! again, which leaves what an old delivery's ack does to lapin's internals. A fresh
//! connection per generation is simpler to reason about: every channel of a lost connection
//! is dead, its unacked deliveries return to their queues, and their acks fail (the message
//! comes again) instead of landing on something else.
//!
//! lapin 4 registers the socket and the heartbeat with the tokio runtime it is connected on,
//! and only that runtime drives them (DESIGN 4). The link therefore remembers the runtime of
//! [`AmqpLink::connect`] (the daemon's main actix runtime) and reconnects there; callers on
//! other runtimes (the arbiters) only await lapin's runtime-agnostic futures.
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::runtime::Handle;
use tokio::sync::{watch, Mutex};

use crate::backend::BackendError;

/// The exchange of the vumi/Junebug AMQP contract (API.md 11): direct and durable.
pub const VUMI_EXCHANGE: &str = "vumi";

/// How long one broker operation (open a channel, declare, publish and confirm, ack) may take
/// before it counts as failed. Bounds every wait on a connection that died unnoticed.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening a connection may take (TCP, TLS, AMQP handshake, the first channels).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// First wait before reconnecting; doubles after each failed attempt.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(100);

/// Longest wait between two reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How often the supervisor looks at the connection's state, in case no event told it.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// The next backoff delay after `delay`.
pub fn next_backoff(delay: Duration) -> Duration {
    (delay * 2).min(BACKOFF_MAX)
}

/// A handle on the process's RabbitMQ connection. Clones share the connection; the
/// connection is closed when the last clone is dropped.
#[derive(Clone)]
pub struct AmqpLink {
    shared: Arc<Shared>,
}

struct Shared {
    /// What the supervisor last saw. The supervisor holds the sender and stops (closing the
    /// connection) when every receiver, i.e. every link, is gone.
    state: watch::Receiver<State>,
    /// The runtime the connection belongs to (see the module doc).
    runtime: Handle,
    /// The client-provided connection name, as `rabbitmqctl list_connections` shows it.
    name: String,
    /// The broker URL without its password, for messages.
    display_url: String,
    /// Set by [`AmqpLink::close`]: the supervisor must not reconnect.
    closing: Arc<AtomicBool>,
}

#[derive(Clone)]
enum State {
    /// Connected: the connection of this generation.
    Up(Arc<Live>),
    /// Lost; the supervisor is reconnecting. `generation` is that of the lost connection.
    Down { generation: u64 },
    /// The supervisor has stopped (every link dropped, or its runtime shut down).
    Closed,
}

/// One established connection.
struct Live {
    generation: u64,
    connection: Connection,
    /// The shared confirm-mode channel, reopened when a channel-level error closed it.
    publisher: Mutex<Option<Channel>>,
}

impl AmqpLink {
    /// Connects to `url` (`amqp://user:password@host:port/vhost`) and starts watching the
    /// connection on the current runtime. Fails if the broker cannot be reached now: a
    /// daemon configured for RabbitMQ does not start without it.
    pub async fn connect(url: &str) -> Result<AmqpLink, BackendError> {
        let name = format!("junebug pid {}", std::process::id());
        AmqpLink::connect_named(url, &name).await
    }

    /// [`AmqpLink::connect`] with the connection name shown by RabbitMQ (management UI,
    /// `rabbitmqctl list_connections client_properties`).
    pub async fn connect_named(url: &str, connection_name: &str) -> Result<AmqpLink, BackendError> {
        let display_url = redact(url);
        let runtime = Handle::try_current().map_err(|e| {
            fail(format!(
                "cannot connect to {display_url} outside a runtime: {e}"
            ))
        })?;
        let properties =
            ConnectionProperties::default().with_connection_name(connection_name.into());
        let live = open(url, &properties, 1)
            .await
            .map_err(|e| fail(format!("cannot connect to {display_url}: {}", e.detail)))?;
        let (sender, state) = watch::channel(State::Up(Arc::new(live)));
        let closing = Arc::new(AtomicBool::new(false));
        let supervisor = Supervisor {
            state: sender,
            closing: closing.clone(),
            url: url.to_owned(),
            display_url: display_url.clone(),
            properties,
        };
        runtime.spawn(supervisor.run());
        log::info!("Connected to RabbitMQ at {display_url} as {connection_name:?}");
        Ok(AmqpLink {
            shared: Arc::new(Shared {
                state,
                runtime,
                name: connection_name.to_owned(),
                display_url,
                closing,
            }),
        })
    }

    /// The client-provided connection name.
    pub fn connection_name(&self) -> &str {
        &self.shared.name
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.live().is_ok()
    }

    /// Which connection this is: 1 for the first, one more after each reconnection. Broker
    /// state declared on an older generation may be gone (the broker may have restarted).
    pub fn generation(&self) -> u64 {
        match &*self.shared.state.borrow() {
            State::Up(live) => live.generation,
            State::Down { generation } => *generation,
            State::Closed => u64::MAX,
        }
    }

    /// Waits until the link is connected (at once if it is). Fails only when the link is
    /// closed for good (its runtime is shutting down).
    pub async fn wait_connected(&self) -> Result<(), BackendError> {
        let mut state = self.shared.state.clone();
        // A connection that died unnoticed yet does not count: the supervisor will replace it.
        let seen = state
            .wait_for(|s| match s {
                State::Up(live) => live.connection.status().connected(),
                State::Down { .. } => false,
                State::Closed => true,
            })
            .await
            .map(|s| matches!(&*s, State::Up(_)));
        match seen {
            Ok(true) => Ok(()),
            _ => Err(self.closed()),
        }
    }

    /// Closes the connection now, cleanly (RabbitMQ returns what its channels held unacked to
    /// their queues at once), and for good: every clone fails from then on. Dropping the last
    /// clone does the same, if the link's runtime is still running.
    pub async fn close(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        let live = match &*self.shared.state.borrow() {
            State::Up(live) => Some(live.clone()),
            _ => None,
        };
        if let Some(live) = live {
            if live.connection.status().connected() {
                let closed = live.connection.close(200, "OK".into());
                if let Err(e) = within("cannot close the connection", closed).await {
                    log::warn!("{}", e.detail);
                }
            }
        }
        let mut state = self.shared.state.clone();
        let _ = tokio::time::timeout(
            OPERATION_TIMEOUT,
            state.wait_for(|s| matches!(s, State::Closed)),
        )
        .await;
    }

    /// A new channel on the current connection; fails at once while disconnected.
    pub async fn channel(&self) -> Result<Channel, BackendError> {
        let live = self.live()?;
        within("cannot open a channel", live.connection.create_channel()).await
    }

    /// Publishes on the shared confirm-mode channel and returns once RabbitMQ has confirmed
    /// the message (for a persistent message to a durable queue: written to disk). A nack, a
    /// timeout or a lost connection is an error: the message may or may not have arrived, so
    /// the caller must treat it as not accepted. Unroutable messages are confirmed too (use
    /// [`AmqpLink::publish_mandatory`] when there must be a queue).
    pub async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BackendError> {
        self.publish(exchange, routing_key, payload, properties, false)
            .await
    }

    /// [`AmqpLink::publish_confirmed`] with the `mandatory` flag: a message no queue receives
    /// is returned by RabbitMQ and this fails.
    ///
    /// Caveat: when RabbitMQ confirms several messages at once (`multiple`), lapin may hand
    /// a returned message to another publisher's confirm. Messages therefore carry a
    /// `message_id`; a publisher that receives someone else's returned message logs it as an
    /// error (that message was not queued although its publisher may have been told it was).
    pub async fn publish_mandatory(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BackendError> {
        self.publish(exchange, routing_key, payload, properties, true)
            .await
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<(), BackendError> {
        let live = self.live()?;
        let channel = live.publisher().await?;
        let message_id = properties.message_id().clone();
        let options = BasicPublishOptions {
            mandatory,
            immediate: false,
        };
        let confirmed = async {
            channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    options,
                    payload,
                    properties,
                )
                .await?
                .await
        };
        let what = format!("cannot publish to {exchange:?} with routing key {routing_key:?}");
        match within(&what, confirmed).await? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => {
                let returned_id = returned.delivery.properties.message_id().clone();
                if mandatory && (returned_id == message_id || message_id.is_none()) {
                    return Err(fail(format!(
                        "{what}: no queue is bound to it ({} {})",
                        returned.reply_code,
                        returned.reply_text.as_str()
                    )));
                }
                // Someone else's message (see `publish_mandatory`): ours went through.
                log::error!(
                    "RabbitMQ returned message {} published to {:?} with routing key {:?}, it \
                     was not queued: {} {}",
                    returned_id.as_ref().map(|id| id.as_str()).unwrap_or("?"),
                    returned.delivery.exchange.as_str(),
                    returned.delivery.routing_key.as_str(),
                    returned.reply_code,
                    returned.reply_text.as_str()
                );
                Ok(())
            }
            Confirmation::Nack(_) => Err(fail(format!("{what}: RabbitMQ refused it (nack)"))),
            Confirmation::NotRequested => {
                Err(fail(format!("{what}: the channel is not in confirm mode")))
            }
        }
    }

    /// Runs `task` on the runtime that owns the connection (for clean-ups started in `Drop`).
    pub(crate) fn spawn_on_owner<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shared.runtime.spawn(task);
    }

    /// The connection, if it is up.
    fn live(&self) -> Result<Arc<Live>, BackendError> {
        if self.shared.closing.load(Ordering::SeqCst) {
            return Err(self.closed());
        }
        match &*self.shared.state.borrow() {
            State::Up(live) if live.connection.status().connected() => Ok(live.clone()),
            State::Up(_) | State::Down { .. } => Err(fail(format!(
                "RabbitMQ at {} is unreachable, reconnecting",
                self.shared.display_url
            ))),
            State::Closed => Err(self.closed()),
        }
    }

    fn closed(&self) -> BackendError {
        fail(format!(
            "the connection to RabbitMQ at {} is closed for good",
            self.shared.display_url
        ))
    }
}

impl Live {
    /// The shared confirm-mode channel, reopened if it was closed.
    async fn publisher(&self) -> Result<Channel, BackendError> {
        let mut slot = self.publisher.lock().await;
        if let Some(channel) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(channel.clone());
        }
        let channel = confirm_channel(&self.connection).await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }
}

/// Declares the durable direct exchange `vumi`, the durable queue `queue` with `arguments`,
/// and binds the queue to the exchange with its own name as routing key. Idempotent; fails if
/// the queue exists with other arguments (RabbitMQ answers 406 and closes `channel`).
pub async fn declare_bound_queue(
    channel: &Channel,
    queue: &str,
    arguments: FieldTable,
) -> Result<(), BackendError> {
    declare_exchange(channel).await?;
    within(
        &format!("cannot declare queue {queue:?}"),
        channel.queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments),
    )
    .await?;
    within(
        &format!("cannot bind queue {queue:?} to {VUMI_EXCHANGE:?}"),
        channel.queue_bind(
            queue.into(),
            VUMI_EXCHANGE.into(),
            queue.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
}

/// Runs one broker operation with [`OPERATION_TIMEOUT`], its error prefixed by `what`.
pub(crate) async fn within<T>(
    what: &str,
    operation: impl Future<Output = lapin::Result<T>>,
) -> Result<T, BackendError> {
    match tokio::time::timeout(OPERATION_TIMEOUT, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(fail(format!("{what}: {e}"))),
        Err(_) => Err(fail(format!(
            "{what}: no answer from RabbitMQ within {OPERATION_TIMEOUT:?}"
        ))),
    }
}

/// A RabbitMQ failure.
pub(crate) fn fail(detail: impl Into<String>) -> BackendError {
    BackendError::new("amqp", detail)
}

/// `url` without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password, and this one has one.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(an unparsable URL)".to_owned(),
    }
}

async fn declare_exchange(channel: &Channel) -> Result<(), BackendError> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    within(
        &format!("cannot declare exchange {VUMI_EXCHANGE:?}"),
        channel.exchange_declare(
            VUMI_EXCHANGE.into(),
            ExchangeKind::Direct,
            options,
            FieldTable::default(),
        ),
    )
    .await
}

async fn confirm_channel(connection: &Connection) -> Result<Channel, BackendError> {
    let channel = within("cannot open a channel", connection.create_channel()).await?;
    within(
        "cannot put a channel in confirm mode",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    Ok(channel)
}

/// Opens connection number `generation` on the current runtime, declares the `vumi`
/// exchange (publishers may publish to it before any queue is declared) and opens the
/// confirm-mode publishing channel.
async fn open(
    url: &str,
    properties: &ConnectionProperties,
    generation: u64,
) -> Result<Live, BackendError> {
    let opened = async {
        // lapin's default runtime is `Runtime::tokio_current()`: bound to this runtime.
        let runtime = lapin::runtime::default_runtime().map_err(|e| fail(e.to_string()))?;
        let connection = Connection::connect_with_runtime(url, properties.clone(), runtime)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let channel = within("cannot open a channel", connection.create_channel()).await?;
        declare_exchange(&channel).await?;
        let _ = within("cannot close a channel", channel.close(200, "OK".into())).await;
        let publisher = confirm_channel(&connection).await?;
        Ok(Live {
            generation,
            connection,
            publisher: Mutex::new(Some(publisher)),
        })
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, opened).await {
        Ok(result) => result,
        Err(_) => Err(fail(format!("no connection within {CONNECT_TIMEOUT:?}"))),
    }
}

/// Watches the connection and replaces it when it is lost.
struct Supervisor {
    state: watch::Sender<State>,
    /// Set by [`AmqpLink::close`].
    closing: Arc<AtomicBool>,
    url: String,
    display_url: String,
    properties: ConnectionProperties,
}

impl Supervisor {
    async fn run(self) {
        let mut live = match &*self.state.borrow() {
            State::Up(live) => live.clone(),
            _ => return,
        };
        loop {
            tokio::select! {
                () = self.state.closed() => {
                    let _ = within("", live.connection.close(200, "OK".into())).await;
                    self.state.send_replace(State::Closed);
                    return;
                }
                () = lost(&live.connection) => {}
            }
            let generation = live.generation;
            drop(live);
            if self.closing.load(Ordering::SeqCst) {
                self.state.send_replace(State::Closed);
                return;
            }
            self.state.send_replace(State::Down { generation });
            log::warn!(
                "Lost the connection to RabbitMQ at {}, reconnecting",
                self.display_url
            );
            let Some(next) = self.reconnect(generation + 1).await else {
                self.state.send_replace(State::Closed);
                return;
            };
            if self.closing.load(Ordering::SeqCst) {
                let _ = within("", next.connection.close(200, "OK".into())).await;
                self.state.send_replace(State::Closed);
                return;
            }
            live = Arc::new(next);
            self.state.send_replace(State::Up(live.clone()));
            log::info!("Reconnected to RabbitMQ at {}", self.display_url);
        }
    }

    /// Tries to connect until it works, with backoff; `None` if every link went away.
    async fn reconnect(&self, generation: u64) -> Option<Live> {
        let mut delay = BACKOFF_INITIAL;
        loop {
            tokio::select! {
                () = self.state.closed() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            if self.closing.load(Ordering::SeqCst) {
                return None;
            }
            tokio::select! {
                () = self.state.closed() => return None,
                opened = open(&self.url, &self.properties, generation) => match opened {
                    Ok(live) => return Some(live),
                    Err(e) => log::warn!(
                        "Cannot reconnect to RabbitMQ at {}, retrying in {:?}: {}",
                        self.display_url,
                        next_backoff(delay),
                        e.detail
                    ),
                },
            }
            delay = next_backoff(delay);
        }
    }
}

/// Resolves when `connection` is no longer usable: an error event, or (checked every
/// [`WATCH_INTERVAL`]) a state other than connected.
async fn lost(connection: &Connection) {
    let mut events = connection.events_listener();
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    loop {
        if !connection.status().connected() {
            return;
        }
        tokio::select! {
            event = events.next() => if event.is_none() {
                return;
            },
            _ = tick.tick() => {}
        }
    }
}
