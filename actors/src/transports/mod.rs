//! One module per channel type, each registered in [`crate::TransportRegistry::builtin`].
//!
//! - [`africastalking`]: Africa's Talking USSD (sessions over HTTP callbacks, CON/END) and SMS.
//! - [`dmark`]: DMARK Mobile USSD over HTTP (vumi's `DmarkUssdTransport`).
//! - [`http`]: a generic HTTP SMS aggregator, described by its config.
//! - [`irc`]: an IRC bot in channels and private messages.
//! - [`smpp`]: an SMPP 3.4 ESME for SMS and USSD.
//! - [`telnet`]: a telnet server; each connected client is an address (the getting-started
//!   channel type).
//! - [`twilio`]: Twilio SMS (Messages API, status callbacks, inbound webhook, signatures).
//! - [`twitter`]: an X (Twitter) account: mentions and direct messages (X API v2, polled).
//! - [`xmpp`]: an XMPP client: one-to-one chats, MUC rooms, delivery receipts (XEP-0184).
//! - [`ussd_http`]: what the synchronous USSD-over-HTTP types share: sessions, the webhook
//!   that waits for the application's reply, timeout and fallback.
//! - [`tls`]: TLS to a provider's server, for the types that dial out.
//! - [`web`]: the HTTP core every HTTP provider's type shares (client, channel-log traces,
//!   outcome rules, provider health, webhook errors).
//! - `testkit` (tests, or the `testkit` feature): the shared harness for transport and
//!   actor tests.
//!
//! Shared here: [`parse_config`], which turns a channel's JSON `config` into a channel
//! type's typed config and names the offending key when it cannot;
//! [`parse_client_endpoint`], vumi's `tcp:host=H:port=P` form of a server's address;
//! [`seconds`] for durations in configs; [`Password`], a secret whose `Debug` masks it;
//! [`report_status`], how a transport publishes the status of one of its components; and
//! [`LinkSlot`], where a transport that dials out keeps its current connection for sends to
//! wait on.
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::message::{StatusEvent, StatusLevel};
use crate::transport::{ConfigError, TransportContext};

pub mod africastalking;
pub mod dmark;
pub mod http;
pub mod irc;
pub mod reconnect;
pub mod smpp;
pub mod telnet;
pub mod tls;
pub mod twilio;
pub mod twitter;
pub mod ussd_http;
pub mod web;
pub mod xmpp;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

/// Deserialises a channel's `config` into `T`, with errors that name the key.
///
/// `null` counts as `{}`. Keys `T` does not know are ignored (old vumi configs carry many).
/// When a value has the wrong type, the error names its key: each key is tried alone, and
/// the first whose value fails on its own is the culprit. A missing required field is named
/// by serde itself. Cross-field rules belong to the type's own `validate`.
pub fn parse_config<T: DeserializeOwned>(config: &Value) -> Result<T, ConfigError> {
    let object = match config {
        Value::Null => Map::new(),
        Value::Object(object) => object.clone(),
        other => {
            return Err(ConfigError::new(
                "",
                format!("config must be a JSON object, not {other}"),
            ))
        }
    };
    let error = match serde_json::from_value::<T>(Value::Object(object.clone())) {
        Ok(parsed) => return Ok(parsed),
        Err(error) => error.to_string(),
    };
    if let Some(field) = missing_field(&error) {
        return Err(ConfigError::new(field, "is required"));
    }
    for (key, value) in &object {
        let alone = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
        if let Err(e) = serde_json::from_value::<T>(alone) {
            let message = e.to_string();
            if missing_field(&message).is_none() {
                return Err(ConfigError::new(key.as_str(), message));
            }
        }
    }
    Err(ConfigError::new("", error))
}

/// Host and port of a vumi client endpoint `tcp:host=H:port=P` (config key
/// `twisted_endpoint`).
pub fn parse_client_endpoint(endpoint: &str) -> Result<(String, u16), ConfigError> {
    let bad = || {
        ConfigError::new(
            "twisted_endpoint",
            format!("must look like tcp:host=HOST:port=PORT, not {endpoint:?}"),
        )
    };
    let mut fields = endpoint.split(':');
    if fields.next() != Some("tcp") {
        return Err(bad());
    }
    let (mut host, mut port) = (None, None);
    for field in fields {
        match field.split_once('=') {
            Some(("host", value)) if !value.is_empty() => host = Some(value.to_owned()),
            Some(("port", value)) => port = Some(value.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        }
    }
    host.zip(port).ok_or_else(bad)
}

/// Seconds from the config under `key`, or `default`; refused unless positive (and below
/// a billion, which `Duration` could not hold as a float anyway).
pub fn seconds(key: &str, value: Option<f64>, default: f64) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or(default);
    if value.is_finite() && value > 0.0 && value < 1e9 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(ConfigError::new(
            key,
            "must be a number of seconds greater than 0",
        ))
    }
}

/// A password from a channel config: its `Debug` never shows it, so it cannot leak through
/// a log of the settings. Only the code that puts it on the wire calls [`Password::reveal`].
#[derive(Deserialize, Clone, PartialEq, Eq)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// The password itself, for the login exchange (and nothing else).
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(********)")
    }
}

/// Publishes the status of a transport's `component` (`irc`, `xmpp`, …): its `level`, a
/// machine-readable `kind` (`connected`, `connection_lost`, …), words for people and details.
pub async fn report_status(
    ctx: &TransportContext,
    component: &str,
    level: StatusLevel,
    kind: &str,
    message: String,
    details: Map<String, Value>,
) {
    let status = StatusEvent {
        component: component.to_owned(),
        status: level,
        kind: kind.to_owned(),
        message,
        details,
    };
    ctx.status(status).await;
}

/// A connection that may have died.
pub trait Liveness {
    /// Whether it has died (a send on it would fail).
    fn is_dead(&self) -> bool;
}

/// The connection of a transport that dials out, while there is one: its reconnection loop
/// [`set`](LinkSlot::set)s and [`clear`](LinkSlot::clear)s it, and a send waits for a live
/// one with [`wait_live`](LinkSlot::wait_live).
pub struct LinkSlot<L> {
    link: RefCell<Option<Rc<L>>>,
    /// Woken when a connection is set.
    connected: Notify,
    /// Set when the transport stops: a connection that dies then is not reopened.
    stopping: Cell<bool>,
}

impl<L> Default for LinkSlot<L> {
    fn default() -> Self {
        LinkSlot {
            link: RefCell::new(None),
            connected: Notify::new(),
            stopping: Cell::new(false),
        }
    }
}

impl<L: Liveness> LinkSlot<L> {
    /// A new connection is up: wakes the sends that wait for one.
    pub fn set(&self, link: Rc<L>) {
        *self.link.borrow_mut() = Some(link);
        self.connected.notify_waiters();
    }

    /// The connection is gone.
    pub fn clear(&self) {
        self.link.borrow_mut().take();
    }

    /// The transport is stopping.
    pub fn stop(&self) {
        self.stopping.set(true);
    }

    /// Whether the transport is stopping.
    pub fn stopping(&self) -> bool {
        self.stopping.get()
    }

    /// The current connection, dead or alive.
    pub fn current(&self) -> Option<Rc<L>> {
        self.link.borrow().clone()
    }

    /// The live connection, waiting up to `wait` for one.
    pub async fn wait_live(&self, wait: Duration) -> Option<Rc<L>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let connected = self.connected.notified();
            tokio::pin!(connected);
            connected.as_mut().enable();
            let link = self.current().filter(|link| !link.is_dead());
            if link.is_some() {
                return link;
            }
            if tokio::time::timeout_at(deadline, connected).await.is_err() {
                return None;
            }
        }
    }
}

/// The field of serde's "missing field `name`" error.
fn missing_field(error: &str) -> Option<&str> {
    error
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Example {
        name: String,
        #[serde(default)]
        count: Option<u32>,
    }

    /// A wrong type is reported under its key; unknown keys are ignored.
    #[test]
    fn parse_config_names_the_bad_key() {
        let ok: Example = parse_config(&json!({"name": "a", "count": 2, "extra": [1]})).unwrap();
        assert_eq!(
            ok,
            Example {
                name: "a".into(),
                count: Some(2)
            }
        );
        let err = parse_config::<Example>(&json!({"name": "a", "count": "x"})).unwrap_err();
        assert_eq!(err.key, "count");
        assert!(err.message.contains("invalid type"), "{err}");
        let err = parse_config::<Example>(&json!({"count": 1})).unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.message.as_str()),
            ("name", "is required")
        );
        let err = parse_config::<Example>(&json!({"count": -1})).unwrap_err();
        assert_eq!(err.key, "count", "a bad value wins over a missing field");
        assert!(parse_config::<Example>(&json!(3)).is_err());
    }
}
