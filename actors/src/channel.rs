//! The [`ChannelActor`]: one per running channel. It owns the channel's transport, its
//! priority mailbox and its rate limiter, and runs the send loop:
//!
//! 1. a feed task pulls deliveries from the channel's durable queue (at most `window`
//!    unacked, the queue's prefetch) into the mailbox;
//! 2. `pump` takes the next message by priority, waits for the limiter, and hands it to the
//!    transport in a task of its own (so a panic in the transport is caught, not fatal);
//! 3. the outcome becomes an event (`ack` or `nack`), recorded by the host; only then is the
//!    delivery acked, so a crash before that means the message is sent again after restart.
//!
//! A transport failure (start error, a failing background task, a panic) stops the actor;
//! its supervisor restarts it with backoff. Dropping the actor, even by a panic, tells the
//! supervisor, so no failure goes unnoticed.
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::Value;
use tokio::task::{AbortHandle, JoinError};

use crate::limiter::{RateLimit, RateLimiter};
use crate::mailbox::PriorityMailbox;
use crate::message::Event;
use crate::ports::{ChannelHost, Delivery, LogRecord};
use crate::transport::{
    panic_text, ChannelType, SendError, Sent, Transport, TransportContext, TransportFailed,
};

/// Everything the actor system needs to run one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSpec {
    /// The channel id.
    pub id: Arc<str>,
    /// The channel type, a key of the [`crate::TransportRegistry`].
    pub channel_type: String,
    /// The type-specific `config` object.
    pub config: Value,
    /// The channel's rate limit (`None`: unlimited).
    pub rate_limit: Option<RateLimit>,
    /// How many messages may be in flight (taken from the queue, not yet settled) at once.
    pub window: usize,
}

impl ChannelSpec {
    /// Whether going from `self` to `other` needs a new transport (a restart) rather than
    /// an update in place.
    pub fn needs_restart_for(&self, other: &ChannelSpec) -> bool {
        self.channel_type != other.channel_type
            || self.config != other.config
            || self.window != other.window
    }
}

/// A channel actor has exited; sent to the supervisor from the actor's `Drop`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ChannelExited {
    /// The channel.
    pub id: Arc<str>,
    /// Which start of the channel exited.
    pub generation: u64,
    /// Why, when it was not asked to stop.
    pub failure: Option<String>,
}

/// Asks the actor to stop its transport and exit. Answers once the transport is stopped.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Stop;

/// Changes the rate limit of a running channel, without a restart.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetRateLimit(pub Option<RateLimit>);

/// A delivery from the channel's queue, for the mailbox.
#[derive(Message)]
#[rtype(result = "()")]
struct Pulled(Delivery);

/// The actor of one channel.
pub struct ChannelActor {
    spec: ChannelSpec,
    channel_type: Arc<dyn ChannelType>,
    host: Arc<dyn ChannelHost>,
    supervisor: Recipient<ChannelExited>,
    generation: u64,
    transport: Option<Rc<dyn Transport>>,
    mailbox: PriorityMailbox<Delivery>,
    limiter: RateLimiter,
    /// Sends handed to the transport and not yet settled, by send number.
    in_flight: HashMap<u64, AbortHandle>,
    next_send: u64,
    /// Set while a timer waits for the limiter, so only one timer waits.
    limiter_timer: Option<SpawnHandle>,
    feed: Option<AbortHandle>,
    /// Set once the actor is on its way out: nothing new is sent.
    stopping: bool,
    /// Set when the actor exits because something failed.
    failure: Option<String>,
    /// Set when the actor exits because it was asked to.
    stopped_on_request: bool,
}

impl ChannelActor {
    /// An actor for `spec` (start it with `start_in_arbiter`). `generation` tells apart the
    /// successive starts of a channel in [`ChannelExited`].
    pub fn new(
        spec: ChannelSpec,
        channel_type: Arc<dyn ChannelType>,
        host: Arc<dyn ChannelHost>,
        supervisor: Recipient<ChannelExited>,
        generation: u64,
    ) -> Self {
        let limiter = RateLimiter::new(spec.rate_limit, Instant::now());
        ChannelActor {
            spec,
            channel_type,
            host,
            supervisor,
            generation,
            transport: None,
            mailbox: PriorityMailbox::default(),
            limiter,
            in_flight: HashMap::new(),
            next_send: 0,
            limiter_timer: None,
            feed: None,
            stopping: false,
            failure: None,
            stopped_on_request: false,
        }
    }

    fn log(&self, record: LogRecord) {
        self.host.log(&self.spec.id, record);
    }

    /// Starts reading the queue once the transport is up.
    fn open_feed(&mut self, ctx: &mut Context<Self>) {
        let addr = ctx.address();
        let host = self.host.clone();
        let id = self.spec.id.clone();
        let window = self.spec.window.max(1);
        let feed = tokio::task::spawn_local(async move {
            let mut consumer = match host.consume(&id, window).await {
                Ok(consumer) => consumer,
                Err(e) => {
                    addr.do_send(TransportFailed(format!("cannot open the queue: {e}")));
                    return;
                }
            };
            while let Some(delivery) = consumer.next().await {
                if addr.send(Pulled(delivery)).await.is_err() {
                    break;
                }
            }
        });
        self.feed = Some(feed.abort_handle());
    }

    /// Sends what the window, the mailbox and the limiter allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let Some(transport) = self.transport.clone() else {
            return;
        };
        while !self.stopping && self.in_flight.len() < self.spec.window.max(1) {
            if self.mailbox.is_empty() {
                return;
            }
            if let Err(wait) = self.limiter.try_acquire(1, Instant::now()) {
                if self.limiter_timer.is_none() {
                    self.limiter_timer = Some(ctx.run_later(wait, |act, ctx| {
                        act.limiter_timer = None;
                        act.pump(ctx);
                    }));
                }
                return;
            }
            if let Some(delivery) = self.mailbox.pop() {
                self.dispatch(transport.clone(), delivery, ctx);
            }
        }
    }

    /// Hands one message to the transport, in its own task so a panic is caught.
    fn dispatch(
        &mut self,
        transport: Rc<dyn Transport>,
        delivery: Delivery,
        ctx: &mut Context<Self>,
    ) {
        let send_no = self.next_send;
        self.next_send += 1;
        let message = delivery.message.clone();
        let task = tokio::task::spawn_local(async move { transport.send(message).await });
        self.in_flight.insert(send_no, task.abort_handle());
        ctx.spawn(
            task.into_actor(self)
                .map(move |result, act, ctx| act.on_sent(send_no, delivery, result, ctx)),
        );
    }

    fn on_sent(
        &mut self,
        send_no: u64,
        delivery: Delivery,
        result: Result<Result<Sent, SendError>, JoinError>,
        ctx: &mut Context<Self>,
    ) {
        let message_id = delivery.message.message_id.clone();
        match result {
            Ok(Ok(sent)) => {
                let event = Event::ack(&message_id, sent.provider_message_id);
                self.settle(send_no, delivery, event, ctx);
            }
            Ok(Err(SendError::Rejected(reason))) => {
                self.settle(send_no, delivery, Event::nack(&message_id, reason), ctx);
            }
            Ok(Err(SendError::Retry { reason, after })) => {
                self.in_flight.remove(&send_no);
                self.log(LogRecord::warning(format!(
                    "Message {message_id} not sent, retrying in {after:?}: {reason}"
                )));
                ctx.run_later(after, move |act, ctx| {
                    act.mailbox.push_front(delivery.priority.lane(), delivery);
                    act.pump(ctx);
                });
            }
            Err(e) if e.is_panic() => {
                // The delivery is dropped unacked: the message is sent again after restart.
                self.in_flight.remove(&send_no);
                let reason = format!(
                    "transport panicked sending message {message_id}: {}",
                    panic_text(e)
                );
                self.fail(reason, ctx);
            }
            Err(_) => {
                self.in_flight.remove(&send_no);
            }
        }
    }

    /// Records the outcome, then acks the queue, then frees the window slot.
    fn settle(&mut self, send_no: u64, delivery: Delivery, event: Event, ctx: &mut Context<Self>) {
        let host = self.host.clone();
        let id = self.spec.id.clone();
        let recorded = async move {
            host.event(&id, event).await;
            delivery.receipt.ack().await
        };
        ctx.spawn(recorded.into_actor(self).map(move |acked, act, ctx| {
            act.in_flight.remove(&send_no);
            if let Err(e) = acked {
                act.log(LogRecord::error(format!("Cannot ack a sent message: {e}")));
            }
            act.pump(ctx);
        }));
    }

    /// Stops the actor because its transport cannot go on; the supervisor restarts it.
    fn fail(&mut self, reason: String, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        self.log(LogRecord::error(format!("Channel failed: {reason}")));
        self.failure = Some(reason);
        self.shut_down(ctx);
    }

    /// Stops pulling and sending, stops the transport, then exits.
    fn shut_down(&mut self, ctx: &mut Context<Self>) {
        self.stopping = true;
        if let Some(feed) = self.feed.take() {
            feed.abort();
        }
        for (_, send) in self.in_flight.drain() {
            send.abort();
        }
        // Waiting deliveries are dropped unacked: they stay in the queue.
        self.mailbox.drain().for_each(drop);
        let transport = self.transport.take();
        ctx.wait(
            async move {
                if let Some(transport) = transport {
                    transport.stop().await;
                }
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.stop()),
        );
    }
}

impl Actor for ChannelActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let transport = match self.channel_type.build(&self.spec.id, &self.spec.config) {
            Ok(transport) => transport,
            Err(e) => return self.fail(format!("invalid config: {e}"), ctx),
        };
        self.log(LogRecord::info(format!(
            "Starting a {} transport with config: {}",
            self.spec.channel_type, self.spec.config
        )));
        self.transport = Some(transport.clone());
        let tctx = TransportContext::new(
            self.spec.id.clone(),
            self.host.clone(),
            ctx.address().recipient(),
        );
        let start = tokio::task::spawn_local(async move { transport.start(tctx).await });
        ctx.spawn(
            start
                .into_actor(self)
                .map(|started, act, ctx| match started {
                    Ok(Ok(())) => act.open_feed(ctx),
                    Ok(Err(e)) => act.fail(format!("cannot start the transport: {e}"), ctx),
                    Err(e) => act.fail(
                        format!("transport panicked starting: {}", panic_text(e)),
                        ctx,
                    ),
                }),
        );
    }
}

impl Drop for ChannelActor {
    fn drop(&mut self) {
        let failure = self.failure.take().or_else(|| {
            (!self.stopped_on_request).then(|| "the channel actor died unexpectedly".to_owned())
        });
        self.supervisor.do_send(ChannelExited {
            id: self.spec.id.clone(),
            generation: self.generation,
            failure,
        });
    }
}

impl Handler<Pulled> for ChannelActor {
    type Result = ();

    fn handle(&mut self, Pulled(delivery): Pulled, ctx: &mut Context<Self>) {
        if self.stopping {
            return; // dropped unacked: it stays queued
        }
        self.mailbox.push(delivery.priority.lane(), delivery);
        self.pump(ctx);
    }
}

impl Handler<TransportFailed> for ChannelActor {
    type Result = ();

    fn handle(&mut self, TransportFailed(reason): TransportFailed, ctx: &mut Context<Self>) {
        self.fail(reason, ctx);
    }
}

impl Handler<Stop> for ChannelActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) -> Self::Result {
        self.stopped_on_request = true;
        if !self.stopping {
            self.shut_down(ctx);
        }
        // `shut_down` queued the transport stop with `ctx.wait`; this answer comes after it.
        Box::pin(async {}.into_actor(self))
    }
}

impl Handler<SetRateLimit> for ChannelActor {
    type Result = ();

    fn handle(&mut self, SetRateLimit(limit): SetRateLimit, ctx: &mut Context<Self>) {
        self.spec.rate_limit = limit;
        self.limiter.set_limit(limit, Instant::now());
        if let Some(timer) = self.limiter_timer.take() {
            ctx.cancel_future(timer);
        }
        self.pump(ctx);
    }
}

/// How long the supervisor waits for a channel to stop before giving up on it.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
