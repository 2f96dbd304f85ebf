//! The [`ChannelSupervisor`]: the registry of running channels.
//!
//! It starts one [`ChannelActor`] per channel on a small pool of arbiters (threads ~ cores,
//! never a thread per channel), stops and restarts them on request, and restarts a channel
//! whose actor exited on a failure, alone, after an exponential backoff with jitter. A
//! channel that then runs for longer than the backoff ceiling starts again from the initial
//! delay next time it fails.
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::channel::{
    ChannelActor, ChannelExited, ChannelLoad, ChannelSpec, GetLoad, SetRateLimit, Stop, Webhook,
    STOP_TIMEOUT,
};
use crate::ports::{ChannelHost, LogRecord};
use crate::transport::TransportRegistry;
use crate::webhook::{WebhookRequest, WebhookResponse};

/// Restart delays: `initial`, doubling per consecutive failure, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Ceiling.
    pub max: Duration,
}

impl Backoff {
    /// The delay before restart number `failures` (1-based), with up to 50% jitter taken off
    /// so channels that fail together do not all come back at the same instant.
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(20);
        let full = self.initial.saturating_mul(1 << exponent).min(self.max);
        full.mul_f64(1.0 - fastrand::f64() * 0.5)
    }
}

/// Why the supervisor refused a request.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SupervisorError {
    /// The channel type is not in the registry.
    #[error("unknown channel type '{0}'")]
    UnknownType(String),
}

/// What the supervisor knows about one channel, for health checks and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelState {
    /// Whether an actor is running for it right now.
    pub running: bool,
    /// How many times it was restarted after a failure since the supervisor started it.
    pub restarts: u32,
    /// The last failure, if any.
    pub last_failure: Option<String>,
}

struct Slot {
    spec: ChannelSpec,
    actor: Option<Addr<ChannelActor>>,
    generation: u64,
    /// Consecutive failures, for the backoff.
    failures: u32,
    restarts: u32,
    last_failure: Option<String>,
    started_at: Instant,
    restart_timer: Option<SpawnHandle>,
}

/// Owns every running channel.
pub struct ChannelSupervisor {
    registry: TransportRegistry,
    host: Arc<dyn ChannelHost>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    channels: HashMap<Arc<str>, Slot>,
    backoff: Backoff,
    logger: slog::Logger,
}

impl ChannelSupervisor {
    /// A supervisor spreading channels over `arbiters` new threads.
    pub fn new(
        registry: TransportRegistry,
        host: Arc<dyn ChannelHost>,
        arbiters: usize,
        backoff: Backoff,
        logger: slog::Logger,
    ) -> Self {
        let arbiters = (0..arbiters.max(1))
            .map(|_| Arbiter::new().handle())
            .collect();
        ChannelSupervisor {
            registry,
            host,
            arbiters,
            next_arbiter: 0,
            channels: HashMap::new(),
            backoff,
            logger,
        }
    }

    /// Starts an actor for the channel in slot `id`.
    fn launch(&mut self, id: &Arc<str>, why: &'static str, ctx: &mut Context<Self>) {
        let Some(slot) = self.channels.get_mut(id) else {
            return;
        };
        let Some(channel_type) = self.registry.get(&slot.spec.channel_type) else {
            return; // checked when the slot was made
        };
        slot.generation += 1;
        slot.started_at = Instant::now();
        slog::info!(self.logger, "Channel started"; "channel_id" => &**id, "reason" => why,
            "type" => &slot.spec.channel_type);
        let arbiter = &self.arbiters[self.next_arbiter % self.arbiters.len()];
        self.next_arbiter += 1;
        let (spec, host, generation) = (slot.spec.clone(), self.host.clone(), slot.generation);
        let supervisor = ctx.address().recipient();
        slot.actor = Some(ChannelActor::start_in_arbiter(arbiter, move |_| {
            ChannelActor::new(spec, channel_type, host, supervisor, generation)
        }));
    }

    /// Stops the actor of slot `id` (if any) and resolves once it is gone.
    fn halt(
        &mut self,
        id: &Arc<str>,
        why: &'static str,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = ()> {
        let logger = self.logger.clone();
        let actor = self.channels.get_mut(id).and_then(|slot| {
            if let Some(timer) = slot.restart_timer.take() {
                ctx.cancel_future(timer);
            }
            slot.generation += 1; // the old actor's exit is no failure
            slot.actor.take()
        });
        let id = id.clone();
        async move {
            if let Some(actor) = actor {
                // Err means the actor is already gone, which is what we wanted.
                let _ = tokio::time::timeout(STOP_TIMEOUT, actor.send(Stop)).await;
                slog::info!(logger, "Channel stopped"; "channel_id" => &*id, "reason" => why);
            }
        }
    }
}

impl Actor for ChannelSupervisor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// Starts a channel (or restarts it with a new spec if it runs already).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), SupervisorError>")]
pub struct StartChannel(pub ChannelSpec);

/// Stops a channel for good (it is deleted). Answers once its transport has stopped.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopChannel(pub Arc<str>);

/// Stops a channel and starts it again with its current spec.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RestartChannel(pub Arc<str>);

/// A running channel's spec changed: restart it if the transport is affected, otherwise
/// update it in place (a new rate limit takes effect at once).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), SupervisorError>")]
pub struct UpdateChannel(pub ChannelSpec);

/// Reports the state of every channel.
#[derive(Message, Debug)]
#[rtype(result = "HashMap<Arc<str>, ChannelState>")]
pub struct GetChannelStates;

/// What a channel running in this process holds (`None` when it is not running here).
#[derive(Message, Debug)]
#[rtype(result = "Option<ChannelLoad>")]
pub struct GetChannelLoad(pub Arc<str>);

/// Stops every channel; answers once all have stopped.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopAll;

impl Handler<StartChannel> for ChannelSupervisor {
    type Result = ResponseActFuture<Self, Result<(), SupervisorError>>;

    fn handle(
        &mut self,
        StartChannel(spec): StartChannel,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        if self.registry.get(&spec.channel_type).is_none() {
            let err = SupervisorError::UnknownType(spec.channel_type);
            return Box::pin(async move { Err(err) }.into_actor(self));
        }
        let id = spec.id.clone();
        let (why, restarting) = match self.channels.contains_key(&id) {
            true => ("its spec changed", "restart for a new spec"),
            false => ("created or loaded", "start"),
        };
        let halted = self.halt(&id, why, ctx);
        let slot = self.channels.entry(id.clone()).or_insert_with(|| Slot {
            spec: spec.clone(),
            actor: None,
            generation: 0,
            failures: 0,
            restarts: 0,
            last_failure: None,
            started_at: Instant::now(),
            restart_timer: None,
        });
        slot.spec = spec;
        Box::pin(halted.into_actor(self).map(move |(), act, ctx| {
            act.launch(&id, restarting, ctx);
            Ok(())
        }))
    }
}

impl Handler<StopChannel> for ChannelSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, StopChannel(id): StopChannel, ctx: &mut Context<Self>) -> Self::Result {
        let halted = self.halt(&id, "deleted", ctx);
        self.channels.remove(&id);
        Box::pin(halted.into_actor(self))
    }
}

impl Handler<RestartChannel> for ChannelSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(
        &mut self,
        RestartChannel(id): RestartChannel,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        let halted = self.halt(&id, "restart requested", ctx);
        Box::pin(halted.into_actor(self).map(move |(), act, ctx| {
            if let Some(slot) = act.channels.get_mut(&id) {
                slot.failures = 0;
                act.launch(&id, "restart requested", ctx);
            }
        }))
    }
}

impl Handler<UpdateChannel> for ChannelSupervisor {
    type Result = ResponseActFuture<Self, Result<(), SupervisorError>>;

    fn handle(
        &mut self,
        UpdateChannel(spec): UpdateChannel,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        match self.channels.get_mut(&spec.id) {
            Some(slot) if !slot.spec.needs_restart_for(&spec) => {
                if let Some(actor) = &slot.actor {
                    actor.do_send(SetRateLimit(spec.rate_limit));
                }
                slot.spec = spec;
                Box::pin(async { Ok(()) }.into_actor(self))
            }
            _ => <Self as Handler<StartChannel>>::handle(self, StartChannel(spec), ctx),
        }
    }
}

impl Handler<ChannelExited> for ChannelSupervisor {
    type Result = ();

    fn handle(&mut self, exited: ChannelExited, ctx: &mut Context<Self>) {
        let Some(slot) = self.channels.get_mut(&exited.id) else {
            return; // deleted
        };
        if slot.generation != exited.generation {
            return; // an actor we stopped on purpose
        }
        slot.actor = None;
        let reason = exited
            .failure
            .unwrap_or_else(|| "the channel stopped by itself".to_owned());
        if slot.started_at.elapsed() > self.backoff.max {
            slot.failures = 0;
        }
        slot.failures += 1;
        slot.restarts += 1;
        slot.last_failure = Some(reason.clone());
        let delay = self.backoff.delay(slot.failures);
        slog::warn!(self.logger, "Channel failed, restarting it";
            "channel_id" => &*exited.id, "reason" => &reason, "delay_ms" => delay.as_millis() as u64);
        self.host.log(
            &exited.id,
            LogRecord::warning(format!(
                "Restarting the channel in {delay:?} after: {reason}"
            )),
        );
        let id = exited.id.clone();
        slot.restart_timer = Some(ctx.run_later(delay, move |act, ctx| {
            if let Some(slot) = act.channels.get_mut(&id) {
                slot.restart_timer = None;
                act.launch(&id, "recovery after a failure", ctx);
            }
        }));
    }
}

impl Handler<GetChannelStates> for ChannelSupervisor {
    type Result = MessageResult<GetChannelStates>;

    fn handle(&mut self, _: GetChannelStates, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.channels
                .iter()
                .map(|(id, slot)| {
                    let running = slot.actor.as_ref().is_some_and(|a| a.connected());
                    let state = ChannelState {
                        running,
                        restarts: slot.restarts,
                        last_failure: slot.last_failure.clone(),
                    };
                    (id.clone(), state)
                })
                .collect(),
        )
    }
}

impl Handler<GetChannelLoad> for ChannelSupervisor {
    type Result = ResponseFuture<Option<ChannelLoad>>;

    fn handle(
        &mut self,
        GetChannelLoad(id): GetChannelLoad,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let actor = self.channels.get(&id).and_then(|slot| slot.actor.clone());
        Box::pin(async move { actor?.send(GetLoad).await.ok() })
    }
}

/// Hands a provider's webhook request to channel `.0`; `None` if no such channel runs here.
#[derive(Message)]
#[rtype(result = "Option<WebhookResponse>")]
pub struct ChannelWebhook(pub Arc<str>, pub WebhookRequest);

impl Handler<ChannelWebhook> for ChannelSupervisor {
    type Result = ResponseFuture<Option<WebhookResponse>>;

    fn handle(
        &mut self,
        ChannelWebhook(id, request): ChannelWebhook,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let actor = self.channels.get(&id).and_then(|slot| slot.actor.clone());
        Box::pin(async move { actor?.send(Webhook(request)).await.ok() })
    }
}

impl Handler<StopAll> for ChannelSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: StopAll, ctx: &mut Context<Self>) -> Self::Result {
        let ids: Vec<_> = self.channels.keys().cloned().collect();
        let halts: Vec<_> = ids
            .iter()
            .map(|id| self.halt(id, "shutdown", ctx))
            .collect();
        self.channels.clear();
        Box::pin(
            async move {
                futures_util::future::join_all(halts).await;
            }
            .into_actor(self),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Restart delays double per failure up to the ceiling, with at most half taken off.
    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for (failures, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (50, 1000),
        ] {
            let full = Duration::from_millis(full);
            let d = b.delay(failures);
            assert!(d >= full / 2 && d <= full, "{failures}: {d:?}");
        }
    }
}
