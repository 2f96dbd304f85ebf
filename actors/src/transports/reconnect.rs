//! Keeping a dialled connection up, for every channel type that connects to its provider
//! (IRC, SMPP, XMPP): open it, report it up, run it until it dies, report it lost, wait a
//! backoff, open it again — until the transport stops. Each type says what opening, running
//! and reporting mean for it through [`Dialer`]; the loop and its rules live here once.
//!
//! A type with one connection per channel (IRC, XMPP) says only how to open it, as a
//! [`Session`], and runs it through a [`Connection`]: the loop, its status reports, handing
//! sends the live connection, stopping. (SMPP keeps several binds per channel and is a
//! [`Dialer`] itself.)
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::message::StatusLevel;
use crate::supervisor::Backoff;
use crate::transport::{ConfigError, SendError, TaskHandle, TransportContext, TransportError};
use crate::transports::{report_status, seconds, LinkSlot, Liveness};

/// How long a send waits for a connection before its message is put back for later.
const WAIT_FOR_CONNECTION: Duration = Duration::from_secs(5);

/// When a send that could not go out is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The backoff of config keys `reconnect_initial` (seconds, default 1) and `reconnect_max`
/// (default 60, not below the initial delay), shared by the channel types that dial out.
pub fn backoff(initial: Option<f64>, max: Option<f64>) -> Result<Backoff, ConfigError> {
    let initial = seconds("reconnect_initial", initial, 1.0)?;
    let max = seconds("reconnect_max", max, 60.0)?;
    if max < initial {
        return Err(ConfigError::new(
            "reconnect_max",
            "must not be smaller than reconnect_initial",
        ));
    }
    Ok(Backoff { initial, max })
}

/// A connection's run: resolves, with the reason, when the connection dies.
pub type Run = Pin<Box<dyn Future<Output = String>>>;

/// A status to publish: its level, a machine-readable kind (`connected`, `bind_failed`, …),
/// words for people, and details.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Ok, degraded or down.
    pub level: StatusLevel,
    /// What happened, for machines.
    pub kind: &'static str,
    /// What happened, for people.
    pub message: String,
    /// Facts about it (`nick`, `command_status`, …).
    pub details: Map<String, Value>,
}

impl Report {
    /// An `ok` report.
    pub fn ok(kind: &'static str, message: String, details: Map<String, Value>) -> Self {
        Report {
            level: StatusLevel::Ok,
            kind,
            message,
            details,
        }
    }

    /// Publishes the report as the status of the channel's `component`.
    pub async fn publish(self, ctx: &TransportContext, component: &str) {
        let Report {
            level,
            kind,
            message,
            details,
        } = self;
        report_status(ctx, component, level, kind, message, details).await;
    }

    /// A `down` report.
    pub fn down(kind: &'static str, message: String, details: Map<String, Value>) -> Self {
        Report {
            level: StatusLevel::Down,
            kind,
            message,
            details,
        }
    }
}

/// What [`keep_connected`] needs from a channel type.
#[async_trait(?Send)]
pub trait Dialer {
    /// A live connection, as sends use it.
    type Link;

    /// Opens a connection: the link and its run; or why not, as a `down` report.
    async fn open(&self) -> Result<(Self::Link, Run), Report>;

    /// The connection is up: make it available to sends; the `ok` report to publish.
    fn up(&self, link: &Self::Link) -> Report;

    /// The connection died: sends must no longer use it.
    fn down(&self, link: &Self::Link);

    /// Publishes a status of this connection.
    async fn report(&self, report: Report);

    /// Whether the transport is stopping: a connection that dies then is not reopened.
    fn stopping(&self) -> bool;

    /// The reconnection backoff.
    fn backoff(&self) -> Backoff;

    /// The protocol's name for people (`IRC`, `SMPP`, …).
    fn protocol(&self) -> &'static str;
}

/// Keeps `dialer`'s connection up until the transport stops. A failure to open, or a lost
/// connection, is reported `down` and followed by a backoff (doubling from the initial
/// delay up to the maximum, up to half taken off at random so that many channels do not
/// reconnect in step); a connection that comes up resets the backoff.
pub async fn keep_connected<D: Dialer>(dialer: &D) {
    let backoff = dialer.backoff();
    let mut failures = 0u32;
    while !dialer.stopping() {
        match dialer.open().await {
            Ok((link, run)) => {
                failures = 0;
                let up = dialer.up(&link);
                dialer.report(up).await;
                let reason = run.await;
                dialer.down(&link);
                if dialer.stopping() {
                    break;
                }
                let message = format!("Lost the {} connection: {reason}", dialer.protocol());
                dialer
                    .report(Report::down("connection_lost", message, Map::new()))
                    .await;
            }
            Err(refused) => dialer.report(refused).await,
        }
        failures += 1;
        tokio::time::sleep(backoff.delay(failures)).await;
    }
}

/// A protocol with one connection per channel (IRC, XMPP), as [`Connection`] runs it.
#[async_trait(?Send)]
pub trait Session {
    /// A live connection, as sends use it.
    type Conn: Liveness;

    /// Opens a connection: the link and its run; or why not, as a `down` report.
    async fn open(&self) -> Result<(Rc<Self::Conn>, Run), Report>;

    /// The `ok` report of a connection that came up.
    fn connected(&self, link: &Self::Conn) -> Report;

    /// The channel's context, where reports go.
    fn context(&self) -> &TransportContext;

    /// The status component (`irc`, …).
    fn component(&self) -> &'static str;

    /// The protocol's name for people (`IRC`, …).
    fn protocol(&self) -> &'static str;

    /// The reconnection backoff.
    fn backoff(&self) -> Backoff;
}

/// A [`Session`] as [`keep_connected`] dials it: the live connection goes into a
/// [`LinkSlot`] for sends, reports become statuses of the session's component.
struct Kept<S: Session> {
    session: S,
    slot: LinkSlot<S::Conn>,
}

#[async_trait(?Send)]
impl<S: Session> Dialer for Kept<S> {
    type Link = Rc<S::Conn>;

    async fn open(&self) -> Result<(Rc<S::Conn>, Run), Report> {
        self.session.open().await
    }

    fn up(&self, link: &Rc<S::Conn>) -> Report {
        self.slot.set(link.clone());
        self.session.connected(link)
    }

    fn down(&self, _: &Rc<S::Conn>) {
        self.slot.clear();
    }

    async fn report(&self, report: Report) {
        let (ctx, component) = (self.session.context(), self.session.component());
        report.publish(ctx, component).await;
    }

    fn stopping(&self) -> bool {
        self.slot.stopping()
    }

    fn backoff(&self) -> Backoff {
        self.session.backoff()
    }

    fn protocol(&self) -> &'static str {
        self.session.protocol()
    }
}

/// The connection of a transport with one connection per channel, while started: kept up
/// by a task of the channel's, and shared with sends.
pub struct Connection<S: Session> {
    running: RefCell<Option<(Rc<Kept<S>>, TaskHandle)>>,
}

impl<S: Session> Default for Connection<S> {
    fn default() -> Self {
        Connection {
            running: RefCell::new(None),
        }
    }
}

impl<S: Session + 'static> Connection<S> {
    /// Starts keeping `session`'s connection up, on the channel's arbiter.
    pub fn start(&self, ctx: &TransportContext, session: S) -> Result<(), TransportError> {
        if self.running.borrow().is_some() {
            return Err(TransportError(format!(
                "the {} transport is already running",
                session.protocol()
            )));
        }
        let kept = Rc::new(Kept {
            session,
            slot: LinkSlot::default(),
        });
        let looping = kept.clone();
        let task = ctx.spawn("the connection", async move {
            keep_connected(&*looping).await;
            Ok(())
        });
        *self.running.borrow_mut() = Some((kept, task));
        Ok(())
    }

    /// The current connection, dead or alive, if started.
    pub fn current(&self) -> Option<Rc<S::Conn>> {
        let running = self.running.borrow();
        running.as_ref().and_then(|(kept, _)| kept.slot.current())
    }

    /// The live connection for a send, waiting a few seconds for one; else the send is to
    /// be tried again later.
    pub async fn for_send(&self) -> Result<Rc<S::Conn>, SendError> {
        let kept = self.running.borrow().as_ref().map(|(kept, _)| kept.clone());
        let Some(kept) = kept else {
            return Err(retry_send("the transport is not running".into()));
        };
        let protocol = kept.session.protocol();
        kept.slot
            .wait_live(WAIT_FOR_CONNECTION)
            .await
            .ok_or_else(|| retry_send(format!("not connected to the {protocol} server")))
    }

    /// Stops: a connection that dies from now on is not reopened; the live one, if any, is
    /// handed to `close` (to say goodbye to the server), then the task ends.
    pub async fn stop<F: AsyncFnOnce(Rc<S::Conn>)>(&self, close: F) {
        let Some((kept, task)) = self.running.borrow_mut().take() else {
            return;
        };
        kept.slot.stop();
        if let Some(link) = kept.slot.current() {
            close(link).await;
        }
        drop(task);
    }
}

/// A send that could not go out now: to be tried again after [`RETRY_AFTER`].
pub fn retry_send(reason: String) -> SendError {
    SendError::Retry {
        reason,
        after: RETRY_AFTER,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::time::Duration;

    use super::*;

    /// A dialer whose opens follow a script, and that writes down what the loop does.
    struct Scripted {
        /// Per open, in order: `None` refuses; `Some(reason)` connects, and the run ends with
        /// that reason (the last connection also stops the transport).
        opens: RefCell<Vec<Option<&'static str>>>,
        seen: RefCell<Vec<String>>,
        stopping: Cell<bool>,
    }

    #[async_trait(?Send)]
    impl Dialer for Scripted {
        type Link = u32;

        async fn open(&self) -> Result<(u32, Run), Report> {
            let next = self.opens.borrow_mut().remove(0);
            let last = self.opens.borrow().is_empty();
            match next {
                None => Err(Report::down("refused", "no".into(), Map::new())),
                Some(reason) => {
                    if last {
                        self.stopping.set(true); // stopped while this one runs
                    }
                    Ok((7, Box::pin(async move { reason.to_owned() })))
                }
            }
        }

        fn up(&self, link: &u32) -> Report {
            self.seen.borrow_mut().push(format!("up {link}"));
            Report::ok("connected", "yes".into(), Map::new())
        }

        fn down(&self, link: &u32) {
            self.seen.borrow_mut().push(format!("down {link}"));
        }

        async fn report(&self, report: Report) {
            let line = format!("{:?} {} {}", report.level, report.kind, report.message);
            self.seen.borrow_mut().push(line);
        }

        fn stopping(&self) -> bool {
            self.stopping.get()
        }

        fn backoff(&self) -> Backoff {
            let tiny = Duration::from_millis(1);
            Backoff {
                initial: tiny,
                max: tiny,
            }
        }

        fn protocol(&self) -> &'static str {
            "TEST"
        }
    }

    #[test]
    fn reports_each_refusal_and_loss_and_reopens_until_stopped() {
        let dialer = Scripted {
            opens: RefCell::new(vec![None, Some("reset by peer"), Some("unbound")]),
            seen: RefCell::new(Vec::new()),
            stopping: Cell::new(false),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(keep_connected(&dialer));
        assert_eq!(
            dialer.seen.into_inner(),
            [
                "Down refused no",
                "up 7",
                "Ok connected yes",
                "down 7",
                "Down connection_lost Lost the TEST connection: reset by peer",
                "up 7",
                "Ok connected yes",
                "down 7", // and no "lost": the transport is stopping
            ]
        );
    }
}
