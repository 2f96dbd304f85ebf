//! The `smpp` channel type: an SMPP 3.4 ESME for SMS and USSD.
//!
//! Pure pieces live in their own modules with their own tests: text codings ([`coding`],
//! [`gsm7`]), long-message parts ([`parts`]), delivery receipts ([`receipt`]) and the
//! PDUs ([`pdu`], our window on the `rusmpp` codec). On them:
//!
//! - [`session`]: one bound TCP session (window, sequence numbers, enquire_link);
//! - [`outbound`]: a message becomes one submit_sm per part;
//! - [`inbound`]: deliver_sm becomes an inbound message (SMS or USSD) or a delivery report;
//! - this module: the channel type, the transport, and keeping the sessions bound
//!   (reconnection with backoff and jitter, status events).
//!
//! # Status events
//!
//! Component `smpp` (or `smpp_transmitter` and `smpp_receiver` with two binds): `ok`/`bound`
//! once bound; `down`/`connection_lost` when the link dies or cannot be opened;
//! `down`/`bind_failed` (details: `command_status`) when the SMSC refuses the bind;
//! `degraded`/`throttled` while the SMSC throttles, back to `ok`/`bound` with the next
//! accepted submit_sm.
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use crate::message::{Message, StatusLevel};
use crate::supervisor::Backoff;
use crate::transport::{
    ChannelType, ConfigError, SendError, Sent, TaskHandle, Transport, TransportContext,
    TransportError,
};
use crate::transports::reconnect::{keep_connected, Dialer, Report, Run};
use crate::transports::{parse_config, report_status};

pub mod coding;
pub mod config;
pub mod gsm7;
pub mod inbound;
pub mod outbound;
pub mod parts;
pub mod pdu;
pub mod receipt;
pub mod session;

use config::{SmppConfig, SmppSettings};
use pdu::BindKind;
use session::{Link, OpenError};

/// How long a send waits for a bound session before the message is put back for later.
const WAIT_FOR_BIND: Duration = Duration::from_secs(5);

/// The `smpp` channel type.
pub struct SmppType;

impl ChannelType for SmppType {
    fn name(&self) -> &'static str {
        "smpp"
    }

    fn description(&self) -> &'static str {
        "An SMPP 3.4 ESME: SMS and USSD through an operator's or aggregator's SMSC"
    }

    fn build(&self, _channel_id: &str, config: &Value) -> Result<Rc<dyn Transport>, ConfigError> {
        let settings = parse_config::<SmppConfig>(config)?.validate()?;
        Ok(Rc::new(SmppTransport {
            settings: Rc::new(settings),
            running: RefCell::new(None),
        }))
    }
}

/// An SMPP channel's transport; see the module docs.
pub struct SmppTransport {
    settings: Rc<SmppSettings>,
    running: RefCell<Option<Running>>,
}

/// A started transport: the shared state and the tasks that keep the sessions bound.
struct Running {
    shared: Rc<Shared>,
    _tasks: Vec<TaskHandle>,
}

/// What the sessions, sends and deliver handlers share.
pub struct Shared {
    settings: Rc<SmppSettings>,
    ctx: TransportContext,
    /// The bound sessions, by kind.
    links: RefCell<Vec<Rc<Link>>>,
    /// Woken when a session binds.
    bound: Notify,
    /// Set once the SMSC throttled us, until a submit_sm goes through again.
    throttled: Cell<bool>,
    /// Set by `stop`: a session that dies then is not reopened.
    stopping: Cell<bool>,
    /// The next reference number for a long outbound message.
    next_reference: Cell<u16>,
}

impl Shared {
    /// The component name of a session's status.
    fn component(&self, kind: BindKind) -> String {
        match self.settings.bind_mode {
            config::BindMode::Transceiver => "smpp".to_owned(),
            config::BindMode::TransmitterReceiver => format!("smpp_{}", kind.name()),
        }
    }

    async fn status(
        &self,
        kind: BindKind,
        level: StatusLevel,
        what: &str,
        message: String,
        details: Map<String, Value>,
    ) {
        report_status(
            &self.ctx,
            &self.component(kind),
            level,
            what,
            message,
            details,
        )
        .await;
    }

    /// A bound session that carries submit_sm, waiting up to `wait` for one.
    async fn sending_link(&self, wait: Duration) -> Option<Rc<Link>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let bound = self.bound.notified();
            tokio::pin!(bound);
            bound.as_mut().enable();
            let link = self
                .links
                .borrow()
                .iter()
                .find(|link| link.kind().sends() && !link.is_dead())
                .cloned();
            if link.is_some() {
                return link;
            }
            if tokio::time::timeout_at(deadline, bound).await.is_err() {
                return None;
            }
        }
    }

    /// Delivers the parts of inbound long messages that waited too long for the rest,
    /// including those kept before a restart.
    async fn expire_parts(self: Rc<Self>) -> Result<(), TransportError> {
        let max_age = self.settings.multipart_timeout;
        loop {
            // On failure (logged by the host) the parts stay kept and are tried next round.
            if let Ok(expired) = self.ctx.expired_parts(max_age).await {
                for partial in expired {
                    inbound::deliver_partial(&self, partial).await;
                }
            }
            tokio::time::sleep(max_age / 2).await;
        }
    }
}

/// One bind (session) of a channel, kept up by [`keep_connected`].
struct Bind {
    shared: Rc<Shared>,
    kind: BindKind,
}

#[async_trait(?Send)]
impl Dialer for Bind {
    type Link = Rc<Link>;

    async fn open(&self) -> Result<(Rc<Link>, Run), Report> {
        let shared = &self.shared;
        let handler: Rc<dyn session::DeliverHandler> = shared.clone();
        match session::open(&shared.settings, self.kind, shared.ctx.clone(), handler).await {
            Ok((link, run)) => Ok((link, Box::pin(run))),
            Err(OpenError::Refused(command_status)) => {
                let details =
                    Map::from_iter([("command_status".to_owned(), json!(command_status))]);
                let message = format!("The SMSC refused the bind ({command_status:#010x})");
                Err(Report::down("bind_failed", message, details))
            }
            Err(e) => Err(Report::down("connection_lost", e.to_string(), Map::new())),
        }
    }

    fn up(&self, link: &Rc<Link>) -> Report {
        self.shared.links.borrow_mut().push(link.clone());
        self.shared.bound.notify_waiters();
        let message = format!("Bound to the SMSC as {}", self.kind.name());
        Report::ok("bound", message, Map::new())
    }

    fn down(&self, link: &Rc<Link>) {
        self.shared
            .links
            .borrow_mut()
            .retain(|l| !Rc::ptr_eq(l, link));
    }

    async fn report(&self, report: Report) {
        let component = self.shared.component(self.kind);
        report.publish(&self.shared.ctx, &component).await;
    }

    fn stopping(&self) -> bool {
        self.shared.stopping.get()
    }

    fn backoff(&self) -> Backoff {
        self.shared.settings.reconnect
    }

    fn protocol(&self) -> &'static str {
        "SMPP"
    }
}

#[async_trait(?Send)]
impl Transport for SmppTransport {
    async fn start(&self, ctx: TransportContext) -> Result<(), TransportError> {
        let shared = Rc::new(Shared {
            settings: self.settings.clone(),
            ctx: ctx.clone(),
            links: RefCell::new(Vec::new()),
            bound: Notify::new(),
            throttled: Cell::new(false),
            stopping: Cell::new(false),
            next_reference: Cell::new(fastrand::u16(..)),
        });
        let mut tasks = Vec::new();
        for kind in BindKind::for_mode(self.settings.bind_mode) {
            let bind = Bind {
                shared: shared.clone(),
                kind: *kind,
            };
            tasks.push(ctx.spawn("smpp session", async move {
                keep_connected(&bind).await;
                Ok(())
            }));
        }
        tasks.push(ctx.spawn("smpp multipart expiry", shared.clone().expire_parts()));
        *self.running.borrow_mut() = Some(Running {
            shared,
            _tasks: tasks,
        });
        Ok(())
    }

    async fn send(&self, message: Message) -> Result<Sent, SendError> {
        let shared = self.running.borrow().as_ref().map(|r| r.shared.clone());
        let Some(shared) = shared else {
            return Err(SendError::Retry {
                reason: "the SMPP transport is not running".into(),
                after: Duration::from_secs(1),
            });
        };
        let link = shared
            .sending_link(WAIT_FOR_BIND)
            .await
            .ok_or_else(|| SendError::Retry {
                reason: "not bound to the SMSC".into(),
                after: Duration::from_secs(1),
            })?;
        outbound::send(&shared, &link, &message).await
    }

    fn cost(&self, message: &Message) -> u32 {
        outbound::parts_needed(&self.settings, message)
    }

    /// The session's window: the channel keeps it full.
    fn window(&self) -> usize {
        self.settings.window_size
    }

    /// Stops taking messages, waits (bounded) for outstanding submit responses, unbinds and
    /// closes.
    async fn stop(&self) {
        let Some(running) = self.running.borrow_mut().take() else {
            return;
        };
        let shared = running.shared.clone();
        shared.stopping.set(true);
        let links = shared.links.borrow().clone();
        for link in links {
            link.drain(self.settings.window_size, self.settings.drain_timeout)
                .await;
            link.unbind().await;
        }
        drop(running);
    }
}
