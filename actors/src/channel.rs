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
use crate::ports::{ChannelHost, Delivery, Direction, LogRecord, SendDelay};
use crate::transport::{
    panic_text, ChannelType, SendError, Sent, Transport, TransportContext, TransportFailed,
};
use crate::webhook::{WebhookRequest, WebhookResponse};

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
    /// How many messages may be out with the provider (sent, not yet answered) at once: the
    /// channel's `max_in_flight`, or `None` for the transport's own window (at least
    /// [`DEFAULT_WINDOW`]). Three times as many more may be held ready or having their
    /// outcome recorded, so recording never keeps the window from being full.
    pub window: Option<usize>,
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

/// The in-flight window of a channel that sets none and whose transport has a smaller one.
pub const DEFAULT_WINDOW: usize = 10;

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

/// What a running channel holds: messages taken from its queue and not yet settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelLoad {
    /// In the mailbox, waiting for a send slot, the rate limiter or a throttled provider.
    pub held: usize,
    /// Handed to the transport, outcome not yet recorded (awaiting the provider's answer, or
    /// being recorded).
    pub sending: usize,
    /// Time since the channel last settled a message (or started): how long it has made no
    /// progress, for stuck-queue detection.
    pub idle_for: Duration,
}

/// Asks a channel what it holds.
#[derive(Message, Debug)]
#[rtype(result = "ChannelLoad")]
pub struct GetLoad;

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
    /// Sends handed to the transport and not yet answered, by send number.
    in_flight: HashMap<u64, AbortHandle>,
    /// Answered sends whose outcome is being recorded (they are acked after that).
    settling: usize,
    next_send: u64,
    /// Set while a timer waits for the limiter (or a throttle, or an expiry), with when it
    /// fires, so only one timer waits: the earliest.
    limiter_timer: Option<(SpawnHandle, Instant)>,
    /// The message that last waited for the rate limiter (so each wait is counted once).
    rate_limited: Option<String>,
    /// While the provider asked us to slow down: no send before this instant.
    throttled_until: Option<Instant>,
    /// The current throttle pause; doubles while the provider keeps asking.
    throttle_pause: Duration,
    feed: Option<AbortHandle>,
    /// How many sends may await the provider's answer at once (decided once the transport
    /// is built).
    window: usize,
    /// When the channel last settled a message, or started.
    last_progress: Instant,
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
            settling: 0,
            next_send: 0,
            limiter_timer: None,
            rate_limited: None,
            throttled_until: None,
            throttle_pause: Duration::ZERO,
            feed: None,
            window: DEFAULT_WINDOW,
            last_progress: Instant::now(),
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
        // A window's worth being sent, and three more held ready or having their outcome
        // recorded: recording takes several backend round trips, longer than a send on a
        // fast link, and the window must not wait for the queue meanwhile.
        let prefetch = self.window * 4;
        let feed = tokio::task::spawn_local(async move {
            let mut consumer = match host.consume(&id, prefetch).await {
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

    /// Sends what the window, the mailbox, a provider's throttle and the limiter allow.
    /// Expired messages are rejected on the way, without costing a send slot or a token.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let Some(transport) = self.transport.clone() else {
            return;
        };
        while !self.stopping && self.in_flight.len() < self.window {
            let Some(next) = self.mailbox.peek() else {
                return;
            };
            if next.message.is_expired() {
                if let Some(expired) = self.mailbox.pop() {
                    self.reject_expired(expired, ctx);
                }
                continue;
            }
            let now = Instant::now();
            let wait = match self.throttled_until.filter(|until| *until > now) {
                Some(until) => Err(until - now),
                None => self.limiter.try_acquire(transport.cost(&next.message), now),
            };
            if let Err(wait) = wait {
                let limiter_waits = self.throttled_until.is_none_or(|until| until <= now);
                if limiter_waits
                    && self.rate_limited.as_deref() != Some(next.message.message_id.as_str())
                {
                    self.rate_limited = Some(next.message.message_id.clone());
                    self.host.note(&self.spec.id, SendDelay::RateLimit);
                }
                // Wake up in time to reject the head message if it expires while waiting.
                let wait = next
                    .message
                    .expires_in()
                    .map_or(wait, |left| left.min(wait));
                self.wake_after(wait, ctx);
                return;
            }
            if let Some(delivery) = self.mailbox.pop() {
                self.dispatch(transport.clone(), delivery, ctx);
            }
        }
    }

    /// Pumps again after `wait`, unless a timer fires sooner already.
    fn wake_after(&mut self, wait: Duration, ctx: &mut Context<Self>) {
        let due = Instant::now() + wait;
        if let Some((timer, when)) = self.limiter_timer {
            if when <= due {
                return;
            }
            ctx.cancel_future(timer);
        }
        let timer = ctx.run_later(wait, |act, ctx| {
            act.limiter_timer = None;
            act.pump(ctx);
        });
        self.limiter_timer = Some((timer, due));
    }

    /// Drops the pending timer (the wait it served changed).
    fn cancel_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some((timer, _)) = self.limiter_timer.take() {
            ctx.cancel_future(timer);
        }
    }

    /// A message that expired while queued: rejected with reason `expired`, never sent.
    fn reject_expired(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let message_id = &delivery.message.message_id;
        self.log(
            LogRecord::info(format!("Message {message_id} expired before it was sent"))
                .about(message_id)
                .going(Direction::Outbound),
        );
        let event = Event::nack(message_id, "expired");
        self.settle(delivery, event, Vec::new(), ctx);
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
        // The provider answered (or the send ended): its window slot is free whatever came of
        // it, and recording the outcome does not hold the slot.
        self.in_flight.remove(&send_no);
        let message_id = delivery.message.message_id.clone();
        match result {
            Ok(Ok(sent)) => {
                self.throttle_pause = Duration::ZERO;
                self.log(
                    LogRecord::debug(format!("Message {message_id} sent"))
                        .about(&message_id)
                        .going(Direction::Outbound)
                        .with_trace(serde_json::json!({"provider_ids": sent.provider_ids})),
                );
                let event = Event::ack(&message_id, sent.provider_ids.first().cloned());
                self.settle(delivery, event, sent.provider_ids, ctx);
                self.pump(ctx); // the slot is free now, not once the outcome is recorded
            }
            Ok(Err(SendError::Throttled { after })) => {
                self.host.note(&self.spec.id, SendDelay::Throttled);
                self.throttle_pause = next_throttle_pause(self.throttle_pause, after);
                let pause = self.throttle_pause;
                self.log(LogRecord::warning(format!(
                    "The provider asked to slow down: pausing the channel for {pause:?}"
                )));
                self.throttled_until = Some(Instant::now() + pause);
                self.mailbox.push_front(delivery.priority.lane(), delivery);
                self.cancel_timer(ctx);
                self.wake_after(pause, ctx);
            }
            Ok(Err(SendError::Rejected(reason))) => {
                self.log(
                    LogRecord::info(format!("Message {message_id} rejected: {reason}"))
                        .about(&message_id)
                        .going(Direction::Outbound),
                );
                let event = Event::nack(&message_id, reason);
                self.settle(delivery, event, Vec::new(), ctx);
                self.pump(ctx);
            }
            Ok(Err(SendError::Retry { reason, after })) => {
                self.host.note(&self.spec.id, SendDelay::Retry);
                self.log(
                    LogRecord::warning(format!(
                        "Message {message_id} not sent, retrying in {after:?}: {reason}"
                    ))
                    .about(&message_id)
                    .going(Direction::Outbound),
                );
                ctx.run_later(after, move |act, ctx| {
                    act.mailbox.push_front(delivery.priority.lane(), delivery);
                    act.pump(ctx);
                });
            }
            Err(e) if e.is_panic() => {
                // The delivery is dropped unacked: the message is sent again after restart.
                let reason = format!(
                    "transport panicked sending message {message_id}: {}",
                    panic_text(e)
                );
                self.fail(reason, ctx);
            }
            Err(_) => {}
        }
    }

    /// Records a sent or rejected message's event (then the provider's ids for it, so that delivery reports are forwarded
    /// after `submitted`), then acks it in the queue.
    fn settle(
        &mut self,
        delivery: Delivery,
        event: Event,
        provider_ids: Vec<String>,
        ctx: &mut Context<Self>,
    ) {
        self.settling += 1;
        let host = self.host.clone();
        let id = self.spec.id.clone();
        let recorded = async move {
            host.event(&id, event).await;
            if !provider_ids.is_empty() {
                let message_id = &delivery.message.message_id;
                host.provider_ids(&id, message_id, &provider_ids).await;
            }
            delivery.receipt.ack().await
        };
        ctx.spawn(recorded.into_actor(self).map(move |acked, act, ctx| {
            act.settling -= 1;
            act.last_progress = Instant::now();
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
        self.window = self
            .spec
            .window
            .unwrap_or_else(|| transport.window().max(DEFAULT_WINDOW))
            .max(1);
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

/// A provider's request to the channel's webhook; see [`Transport::webhook`].
#[derive(Message)]
#[rtype(result = "WebhookResponse")]
pub struct Webhook(pub WebhookRequest);

impl Handler<Webhook> for ChannelActor {
    type Result = ResponseFuture<WebhookResponse>;

    fn handle(&mut self, Webhook(request): Webhook, _: &mut Context<Self>) -> Self::Result {
        match self.transport.clone() {
            Some(transport) => Box::pin(async move { transport.webhook(request).await }),
            // Starting or restarting: the provider will try again (they all retry on 5xx).
            None => Box::pin(async {
                WebhookResponse::text(503, "the channel is starting; try again shortly")
            }),
        }
    }
}

impl Handler<GetLoad> for ChannelActor {
    type Result = MessageResult<GetLoad>;

    fn handle(&mut self, _: GetLoad, _: &mut Context<Self>) -> Self::Result {
        MessageResult(ChannelLoad {
            held: self.mailbox.total(),
            sending: self.in_flight.len() + self.settling,
            idle_for: self.last_progress.elapsed(),
        })
    }
}

impl Handler<SetRateLimit> for ChannelActor {
    type Result = ();

    fn handle(&mut self, SetRateLimit(limit): SetRateLimit, ctx: &mut Context<Self>) {
        self.spec.rate_limit = limit;
        self.limiter.set_limit(limit, Instant::now());
        self.cancel_timer(ctx);
        self.pump(ctx);
    }
}

/// The longest pause a throttling provider can impose on a channel in one go.
pub const MAX_THROTTLE_PAUSE: Duration = Duration::from_secs(60);

/// The pause after a provider's "slow down" that asked for `after`, the previous pause
/// having been `previous`: at least what it asked, doubling while it keeps asking, never
/// over [`MAX_THROTTLE_PAUSE`] (a provider asking for longer is asked again then).
fn next_throttle_pause(previous: Duration, after: Duration) -> Duration {
    (previous * 2).max(after).min(MAX_THROTTLE_PAUSE)
}

/// How long the supervisor waits for a channel to stop before giving up on it.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use async_trait::async_trait;

    use super::*;
    use crate::message::{new_message_id, timestamp_now, EventKind, Priority};
    use crate::supervisor::{Backoff, ChannelSupervisor, StartChannel};
    use crate::transport::{ConfigError, TransportError, TransportRegistry};
    use crate::transports::testkit::{run_local, RecordingHost};

    /// A transport that asks to slow down on its first send (when told to), then accepts
    /// everything; each message costs as many tokens as its content has characters.
    struct Touchy {
        throttle_first: bool,
        calls: Cell<usize>,
    }

    #[async_trait(?Send)]
    impl Transport for Touchy {
        async fn start(&self, _: TransportContext) -> Result<(), TransportError> {
            Ok(())
        }
        async fn send(&self, _: crate::message::Message) -> Result<Sent, SendError> {
            self.calls.set(self.calls.get() + 1);
            if self.throttle_first && self.calls.get() == 1 {
                return Err(SendError::Throttled {
                    after: Duration::from_secs(1),
                });
            }
            Ok(Sent::default())
        }
        fn cost(&self, message: &crate::message::Message) -> u32 {
            message.content.as_deref().map_or(1, |c| c.len() as u32)
        }
        async fn stop(&self) {}
    }

    struct TouchyType;

    impl ChannelType for TouchyType {
        fn name(&self) -> &'static str {
            "touchy"
        }
        fn description(&self) -> &'static str {
            "throttles its first send (test only)"
        }
        fn build(&self, _: &str, config: &Value) -> Result<Rc<dyn Transport>, ConfigError> {
            Ok(Rc::new(Touchy {
                throttle_first: config["throttle"] == true,
                calls: Cell::new(0),
            }))
        }
    }

    fn message(channel: &str, content: &str) -> crate::message::Message {
        crate::message::Message {
            message_id: new_message_id(),
            timestamp: timestamp_now(),
            to_addr: Some("+27".into()),
            from_addr: None,
            group: None,
            in_reply_to: None,
            session_event: None,
            content: Some(content.into()),
            transport_name: channel.into(),
            transport_type: "touchy".into(),
            transport_metadata: Default::default(),
            helper_metadata: Default::default(),
            expires_at: None,
        }
    }

    fn spec(id: &str, throttle: bool) -> ChannelSpec {
        ChannelSpec {
            id: id.into(),
            channel_type: "touchy".into(),
            config: serde_json::json!({ "throttle": throttle }),
            rate_limit: None,
            window: Some(10),
        }
    }

    fn supervisor(host: &RecordingHost) -> Addr<ChannelSupervisor> {
        let mut registry = TransportRegistry::default();
        registry.register(TouchyType);
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        ChannelSupervisor::new(registry, host.as_host(), 2, backoff, logger).start()
    }

    /// A message costs its transport's number of parts in rate-limit tokens.
    #[test]
    fn a_message_costs_one_token_per_part() {
        run_local(|| async {
            let host = RecordingHost::new();
            let supervisor = supervisor(&host);
            // Six tokens per 3 s; two three-part messages use them all, the third waits 1.5 s.
            for content in ["abc", "def", "ghi"] {
                host.enqueue("parts", message("parts", content), Priority::BULK);
            }
            let mut spec = spec("parts", false);
            spec.rate_limit = Some(RateLimit {
                count: 6,
                window: Duration::from_secs(3),
            });
            let started = Instant::now();
            supervisor.send(StartChannel(spec)).await.unwrap().unwrap();
            for _ in 0..2 {
                host.events().next().await;
            }
            assert!(started.elapsed() < Duration::from_millis(1200));
            host.events().next().await;
            assert!(
                started.elapsed() >= Duration::from_millis(1400),
                "the third message did not wait for 3 tokens"
            );
        });
    }

    /// Pauses double while the provider keeps asking, start at what it asks, and stay under
    /// the cap even when it asks for more.
    #[test]
    fn throttle_pauses_double_up_to_the_cap() {
        let secs = Duration::from_secs;
        assert_eq!(next_throttle_pause(Duration::ZERO, secs(2)), secs(2));
        assert_eq!(next_throttle_pause(secs(2), secs(1)), secs(4));
        assert_eq!(next_throttle_pause(secs(2), secs(10)), secs(10));
        assert_eq!(next_throttle_pause(secs(40), secs(1)), MAX_THROTTLE_PAUSE);
        assert_eq!(
            next_throttle_pause(Duration::ZERO, secs(900)),
            MAX_THROTTLE_PAUSE
        );
    }

    /// A throttling provider pauses its channel alone; the message is retried, nothing lost.
    #[test]
    fn throttling_pauses_one_channel_then_it_recovers() {
        run_local(|| async {
            let host = RecordingHost::new();
            let supervisor = supervisor(&host);
            for n in 0..3 {
                host.enqueue(
                    "touchy",
                    message("touchy", &format!("t{n}")),
                    Priority::BULK,
                );
                host.enqueue("calm", message("calm", &format!("c{n}")), Priority::BULK);
            }
            let started = Instant::now();
            supervisor
                .send(StartChannel(spec("touchy", true)))
                .await
                .unwrap()
                .unwrap();
            supervisor
                .send(StartChannel(spec("calm", false)))
                .await
                .unwrap()
                .unwrap();

            // The calm channel sends everything during the other's pause.
            for _ in 0..3 {
                let (channel, event) = host.events().wait_for(|(c, _)| c == "calm").await;
                assert_eq!(channel, "calm");
                assert!(matches!(event.kind, EventKind::Ack { .. }));
            }
            // Ordering, not a stopwatch: calm is done while touchy still waits out its
            // pause (a second), so touchy's refused message is not sent yet.
            let touchy_acked = host.acked_ids("touchy").len();
            assert!(
                touchy_acked < 3,
                "calm was held up until touchy's pause ended"
            );
            host.logs()
                .wait_for(|(c, r)| c == "touchy" && r.message.contains("slow down"))
                .await;
            let mut touchy_acks = 0;
            while touchy_acks < 3 {
                let (channel, event) = host.events().next().await;
                if channel == "touchy" {
                    assert!(matches!(event.kind, EventKind::Ack { .. }), "{event:?}");
                    touchy_acks += 1;
                }
            }
            assert!(
                started.elapsed() >= Duration::from_secs(1),
                "the throttled channel did not pause"
            );
            // Sends already in flight when the provider complained go on; the refused one is
            // retried after the pause. (A message's queue ack follows its event.)
            for content in ["t0", "t1", "t2"] {
                host.acks()
                    .wait_for(|(c, m)| c == "touchy" && m.content.as_deref() == Some(content))
                    .await;
            }
        });
    }
}
